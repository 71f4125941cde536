import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATE_UNSPECIFIED: _ClassVar[VersionState]
    VERSION_STATE_QUEUED: _ClassVar[VersionState]
    VERSION_STATE_RUNNING: _ClassVar[VersionState]
    VERSION_STATE_COMPLETED: _ClassVar[VersionState]
    VERSION_STATE_FAILED: _ClassVar[VersionState]
    VERSION_STATE_CANCELLED: _ClassVar[VersionState]
    VERSION_STATE_NEEDS_REVIEW: _ClassVar[VersionState]

class VersionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_KIND_UNSPECIFIED: _ClassVar[VersionKind]
    VERSION_KIND_GENERATE: _ClassVar[VersionKind]
    VERSION_KIND_TWEAK: _ClassVar[VersionKind]
    VERSION_KIND_ITERATE: _ClassVar[VersionKind]
    VERSION_KIND_REGENERATE: _ClassVar[VersionKind]
    VERSION_KIND_UPLOAD: _ClassVar[VersionKind]
    VERSION_KIND_MERGE: _ClassVar[VersionKind]
VERSION_STATE_UNSPECIFIED: VersionState
VERSION_STATE_QUEUED: VersionState
VERSION_STATE_RUNNING: VersionState
VERSION_STATE_COMPLETED: VersionState
VERSION_STATE_FAILED: VersionState
VERSION_STATE_CANCELLED: VersionState
VERSION_STATE_NEEDS_REVIEW: VersionState
VERSION_KIND_UNSPECIFIED: VersionKind
VERSION_KIND_GENERATE: VersionKind
VERSION_KIND_TWEAK: VersionKind
VERSION_KIND_ITERATE: VersionKind
VERSION_KIND_REGENERATE: VersionKind
VERSION_KIND_UPLOAD: VersionKind
VERSION_KIND_MERGE: VersionKind

class Generation(_message.Message):
    __slots__ = ("name", "prompt", "model", "provider", "version_count", "latest_version", "session", "create_time", "update_time", "owner", "delete_time", "expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompt: str
    model: str
    provider: str
    version_count: int
    latest_version: str
    session: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    owner: str
    delete_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., prompt: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., version_count: _Optional[int] = ..., latest_version: _Optional[str] = ..., session: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[str] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("name", "number", "kind", "parent", "prompt", "model", "state", "stage", "total_stages", "message", "error", "file_count", "etag", "request_id", "last_event_seq", "create_time", "update_time", "complete_time", "turn", "added_count", "modified_count", "deleted_count", "merge_parent", "queue_position", "estimated_start_time", "estimated_complete_time", "ledger", "batch", "variant", "draft")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    ADDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MERGE_PARENT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    name: str
    number: int
    kind: VersionKind
    parent: str
    prompt: str
    model: str
    state: VersionState
    stage: int
    total_stages: int
    message: str
    error: _status_pb2.Status
    file_count: int
    etag: str
    request_id: str
    last_event_seq: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    turn: int
    added_count: int
    modified_count: int
    deleted_count: int
    merge_parent: str
    queue_position: int
    estimated_start_time: _timestamp_pb2.Timestamp
    estimated_complete_time: _timestamp_pb2.Timestamp
    ledger: Ledger
    batch: str
    variant: str
    draft: str
    def __init__(self, name: _Optional[str] = ..., number: _Optional[int] = ..., kind: _Optional[_Union[VersionKind, str]] = ..., parent: _Optional[str] = ..., prompt: _Optional[str] = ..., model: _Optional[str] = ..., state: _Optional[_Union[VersionState, str]] = ..., stage: _Optional[int] = ..., total_stages: _Optional[int] = ..., message: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., file_count: _Optional[int] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ..., last_event_seq: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., turn: _Optional[int] = ..., added_count: _Optional[int] = ..., modified_count: _Optional[int] = ..., deleted_count: _Optional[int] = ..., merge_parent: _Optional[str] = ..., queue_position: _Optional[int] = ..., estimated_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ledger: _Optional[_Union[Ledger, _Mapping]] = ..., batch: _Optional[str] = ..., variant: _Optional[str] = ..., draft: _Optional[str] = ...) -> None: ...

class Ledger(_message.Message):
    __slots__ = ("queue_duration", "run_duration", "cooldown_duration", "attempts", "usage", "input_tokens", "output_tokens", "images", "cost")
    QUEUE_DURATION_FIELD_NUMBER: _ClassVar[int]
    RUN_DURATION_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_DURATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    queue_duration: _duration_pb2.Duration
    run_duration: _duration_pb2.Duration
    cooldown_duration: _duration_pb2.Duration
    attempts: int
    usage: _containers.RepeatedCompositeFieldContainer[ModelUsage]
    input_tokens: int
    output_tokens: int
    images: int
    cost: float
    def __init__(self, queue_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., run_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cooldown_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempts: _Optional[int] = ..., usage: _Optional[_Iterable[_Union[ModelUsage, _Mapping]]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., images: _Optional[int] = ..., cost: _Optional[float] = ...) -> None: ...

class ModelUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "thinking_tokens", "cost", "images")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THINKING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cost: float
    images: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., thinking_tokens: _Optional[int] = ..., cost: _Optional[float] = ..., images: _Optional[int] = ...) -> None: ...
