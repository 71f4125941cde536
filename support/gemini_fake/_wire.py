"""What travels between google-genai and the fake: requests as recorded, and the encodings both use."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


def b64encode(data: bytes) -> str:
    """Standard base64, as the real service sends it."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decodes base64 in either alphabet (the SDK sends URL-safe), padded or not."""
    normalized = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)


def make_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small, valid, solid-colour PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def inline_data_of(part: Mapping[str, Any]) -> tuple[bytes, str] | None:
    """The (bytes, MIME type) of a request part's inline data, whatever its spelling; else None."""
    blob = part.get("inlineData", part.get("inline_data"))
    if not isinstance(blob, Mapping):
        return None
    mime_type = blob.get("mime_type", blob.get("mimeType", ""))
    return b64decode(str(blob.get("data", ""))), str(mime_type)


def iter_parts(contents: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(role, part) for every part of request contents, in order."""
    for content in contents:
        for part in content.get("parts", []):
            yield str(content.get("role", "")), part


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    # The path without its query, e.g. "/v1beta/models/gemini-2.5-flash:streamGenerateContent".
    path: str
    query: Mapping[str, str]
    # Header names are lower-cased.
    headers: Mapping[str, str]
    body: JsonObject
    version: str
    model: str
    stream: bool
    # When it arrived (time.monotonic()), e.g. to count the requests made during a storm.
    received_at: float = 0.0

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def contents(self) -> list[JsonObject]:
        return list(self.body.get("contents", []))

    @property
    def generation_config(self) -> JsonObject:
        return dict(self.body.get("generationConfig", {}))

    @property
    def system_instruction_text(self) -> str:
        instruction = self.body.get("systemInstruction") or {}
        return "".join(str(part.get("text", "")) for part in instruction.get("parts", []))

    def texts(self, index: int = -1) -> list[str]:
        """The text parts of one content (the last, the new user turn, by default)."""
        return [str(part["text"]) for part in self.contents[index].get("parts", []) if "text" in part]

    def inline_data(self, index: int = -1) -> list[tuple[bytes, str]]:
        """The inline data parts of one content (the last by default), decoded."""
        found = (inline_data_of(part) for part in self.contents[index].get("parts", []))
        return [item for item in found if item is not None]
