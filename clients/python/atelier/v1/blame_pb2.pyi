import datetime

from atelier.v1 import generation_pb2 as _generation_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileBlame(_message.Message):
    __slots__ = ("path", "version", "kind", "prompt", "create_time")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    path: str
    version: str
    kind: _generation_pb2.VersionKind
    prompt: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, path: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[_Union[_generation_pb2.VersionKind, str]] = ..., prompt: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
