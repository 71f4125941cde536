"""Connect's two encodings of our messages, JSON (compact, one line a message) and binary, with
a request body that does not parse answered INVALID_ARGUMENT with ErrorInfo (never UNKNOWN)."""

from __future__ import annotations

from typing import TypeVar

from connectrpc.codec import Codec
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from server.domain import FieldViolation, InvalidArgument
from server.web._errors import connect_error

_M = TypeVar("_M", bound=Message)
# What of a parser's complaint is echoed back.
_COMPLAINT_CHARACTERS = 200


def _malformed(message: Message, encoding: str, problem: str) -> Exception:
    name = message.DESCRIPTOR.full_name
    return connect_error(
        InvalidArgument(
            f"the request body is not a {name} in {encoding}: {problem[:_COMPLAINT_CHARACTERS]}",
            reason="MALFORMED_REQUEST",
            metadata={"message": name, "encoding": encoding},
            violations=[FieldViolation("body", f"must be a {name} in {encoding}")],
        )
    )


class _Json(Codec[Message, Message]):
    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message: _M) -> _M:
        try:
            json_format.Parse(bytes(data), message)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            raise _malformed(message, "JSON", str(exc)) from exc
        return message


class _Binary(Codec[Message, Message]):
    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message: _M) -> _M:
        try:
            message.ParseFromString(bytes(data))
        except (DecodeError, RecursionError) as exc:
            raise _malformed(message, "binary protobuf", str(exc)) from exc
        return message


CODECS: list[Codec[Message, Message]] = [_Binary(), _Json()]
