import datetime

from atelier.v1 import batch_pb2 as _batch_pb2
from atelier.v1 import generation_pb2 as _generation_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProgressEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROGRESS_EVENT_TYPE_UNSPECIFIED: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_STATE: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_STAGE_STARTED: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_STAGE_DONE: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_MESSAGE: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_OUTPUT: _ClassVar[ProgressEventType]
    PROGRESS_EVENT_TYPE_QUEUED: _ClassVar[ProgressEventType]
PROGRESS_EVENT_TYPE_UNSPECIFIED: ProgressEventType
PROGRESS_EVENT_TYPE_STATE: ProgressEventType
PROGRESS_EVENT_TYPE_STAGE_STARTED: ProgressEventType
PROGRESS_EVENT_TYPE_STAGE_DONE: ProgressEventType
PROGRESS_EVENT_TYPE_MESSAGE: ProgressEventType
PROGRESS_EVENT_TYPE_OUTPUT: ProgressEventType
PROGRESS_EVENT_TYPE_QUEUED: ProgressEventType

class ProgressEvent(_message.Message):
    __slots__ = ("seq", "version", "type", "state", "stage", "total_stages", "message", "paths", "error", "create_time", "queue_position", "estimated_start_time", "estimated_complete_time", "batch", "batch_counts", "resume_token")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_COUNTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    version: str
    type: ProgressEventType
    state: _generation_pb2.VersionState
    stage: int
    total_stages: int
    message: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    error: _status_pb2.Status
    create_time: _timestamp_pb2.Timestamp
    queue_position: int
    estimated_start_time: _timestamp_pb2.Timestamp
    estimated_complete_time: _timestamp_pb2.Timestamp
    batch: str
    batch_counts: _batch_pb2.BatchCounts
    resume_token: str
    def __init__(self, seq: _Optional[int] = ..., version: _Optional[str] = ..., type: _Optional[_Union[ProgressEventType, str]] = ..., state: _Optional[_Union[_generation_pb2.VersionState, str]] = ..., stage: _Optional[int] = ..., total_stages: _Optional[int] = ..., message: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_position: _Optional[int] = ..., estimated_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., batch: _Optional[str] = ..., batch_counts: _Optional[_Union[_batch_pb2.BatchCounts, _Mapping]] = ..., resume_token: _Optional[str] = ...) -> None: ...
