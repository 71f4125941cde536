from atelier.v1 import file_pb2 as _file_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_CHANGE_UNSPECIFIED: _ClassVar[FileChange]
    FILE_CHANGE_ADDED: _ClassVar[FileChange]
    FILE_CHANGE_REMOVED: _ClassVar[FileChange]
    FILE_CHANGE_MODIFIED: _ClassVar[FileChange]

class ConflictKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_KIND_UNSPECIFIED: _ClassVar[ConflictKind]
    CONFLICT_KIND_BOTH_CHANGED: _ClassVar[ConflictKind]
    CONFLICT_KIND_CHANGED_AND_DELETED: _ClassVar[ConflictKind]
    CONFLICT_KIND_BOTH_ADDED: _ClassVar[ConflictKind]

class MergeStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERGE_STRATEGY_UNSPECIFIED: _ClassVar[MergeStrategy]
    MERGE_STRATEGY_OURS: _ClassVar[MergeStrategy]
    MERGE_STRATEGY_THEIRS: _ClassVar[MergeStrategy]
FILE_CHANGE_UNSPECIFIED: FileChange
FILE_CHANGE_ADDED: FileChange
FILE_CHANGE_REMOVED: FileChange
FILE_CHANGE_MODIFIED: FileChange
CONFLICT_KIND_UNSPECIFIED: ConflictKind
CONFLICT_KIND_BOTH_CHANGED: ConflictKind
CONFLICT_KIND_CHANGED_AND_DELETED: ConflictKind
CONFLICT_KIND_BOTH_ADDED: ConflictKind
MERGE_STRATEGY_UNSPECIFIED: MergeStrategy
MERGE_STRATEGY_OURS: MergeStrategy
MERGE_STRATEGY_THEIRS: MergeStrategy

class FileDiff(_message.Message):
    __slots__ = ("path", "change", "base", "target", "unified_diff")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UNIFIED_DIFF_FIELD_NUMBER: _ClassVar[int]
    path: str
    change: FileChange
    base: _file_pb2.File
    target: _file_pb2.File
    unified_diff: str
    def __init__(self, path: _Optional[str] = ..., change: _Optional[_Union[FileChange, str]] = ..., base: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., target: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., unified_diff: _Optional[str] = ...) -> None: ...

class MergeConflict(_message.Message):
    __slots__ = ("path", "kind", "base", "ours", "theirs")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: ConflictKind
    base: _file_pb2.File
    ours: _file_pb2.File
    theirs: _file_pb2.File
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[ConflictKind, str]] = ..., base: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., ours: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., theirs: _Optional[_Union[_file_pb2.File, _Mapping]] = ...) -> None: ...
