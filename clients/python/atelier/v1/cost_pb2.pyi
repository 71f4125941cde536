from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Price(_message.Message):
    __slots__ = ("input_per_million_tokens", "output_per_million_tokens", "per_image", "currency", "estimated_output_tokens", "estimated_images")
    INPUT_PER_MILLION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PER_MILLION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    input_per_million_tokens: float
    output_per_million_tokens: float
    per_image: float
    currency: str
    estimated_output_tokens: int
    estimated_images: int
    def __init__(self, input_per_million_tokens: _Optional[float] = ..., output_per_million_tokens: _Optional[float] = ..., per_image: _Optional[float] = ..., currency: _Optional[str] = ..., estimated_output_tokens: _Optional[int] = ..., estimated_images: _Optional[int] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("principal", "model", "day", "versions", "input_tokens", "output_tokens", "images", "cost")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    principal: str
    model: str
    day: str
    versions: int
    input_tokens: int
    output_tokens: int
    images: int
    cost: float
    def __init__(self, principal: _Optional[str] = ..., model: _Optional[str] = ..., day: _Optional[str] = ..., versions: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., images: _Optional[int] = ..., cost: _Optional[float] = ...) -> None: ...
