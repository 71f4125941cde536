from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Model(_message.Message):
    __slots__ = ("name", "provider", "display_name", "output_modalities", "default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODALITIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    display_name: str
    output_modalities: _containers.RepeatedScalarFieldContainer[str]
    default: bool
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., display_name: _Optional[str] = ..., output_modalities: _Optional[_Iterable[str]] = ..., default: _Optional[bool] = ...) -> None: ...
