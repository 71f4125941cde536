from atelier.v1 import generation_pb2 as _generation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Variant(_message.Message):
    __slots__ = ("name", "prompt_suffix")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompt_suffix: str
    def __init__(self, name: _Optional[str] = ..., prompt_suffix: _Optional[str] = ...) -> None: ...

class BatchCounts(_message.Message):
    __slots__ = ("queued", "running", "completed", "failed", "cancelled", "needs_review", "total")
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    queued: int
    running: int
    completed: int
    failed: int
    cancelled: int
    needs_review: int
    total: int
    def __init__(self, queued: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., needs_review: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("name", "versions", "counts", "done")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[_generation_pb2.Version]
    counts: BatchCounts
    done: bool
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[_generation_pb2.Version, _Mapping]]] = ..., counts: _Optional[_Union[BatchCounts, _Mapping]] = ..., done: _Optional[bool] = ...) -> None: ...
