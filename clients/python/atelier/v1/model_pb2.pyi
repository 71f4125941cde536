import datetime

from atelier.v1 import cost_pb2 as _cost_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Model(_message.Message):
    __slots__ = ("name", "provider", "display_name", "output_modalities", "default", "max_concurrent", "requests_per_minute", "status", "price", "tokens_per_minute")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MODALITIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    display_name: str
    output_modalities: _containers.RepeatedScalarFieldContainer[str]
    default: bool
    max_concurrent: int
    requests_per_minute: int
    status: ModelStatus
    price: _cost_pb2.Price
    tokens_per_minute: int
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., display_name: _Optional[str] = ..., output_modalities: _Optional[_Iterable[str]] = ..., default: _Optional[bool] = ..., max_concurrent: _Optional[int] = ..., requests_per_minute: _Optional[int] = ..., status: _Optional[_Union[ModelStatus, _Mapping]] = ..., price: _Optional[_Union[_cost_pb2.Price, _Mapping]] = ..., tokens_per_minute: _Optional[int] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("jobs_in_flight", "jobs_queued", "cooldown_end_time")
    JOBS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    JOBS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_END_TIME_FIELD_NUMBER: _ClassVar[int]
    jobs_in_flight: int
    jobs_queued: int
    cooldown_end_time: _timestamp_pb2.Timestamp
    def __init__(self, jobs_in_flight: _Optional[int] = ..., jobs_queued: _Optional[int] = ..., cooldown_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
