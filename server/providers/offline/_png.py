"""A tiny PNG writer and reader, and the offline provider's picture of a prompt.

Pure Python (zlib and struct) so the offline provider needs no imaging library. The
reader exists to check what the writer made: it verifies every chunk's CRC and that the
image data inflates to exactly the size the header promises.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Bytes per pixel at bit depth 8, by colour type (greyscale, RGB, palette, grey+alpha, RGBA).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@dataclass(frozen=True, slots=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """Encodes 8-bit RGB pixels (rows top to bottom, 3 bytes a pixel) as a PNG file."""
    if width <= 0 or height <= 0 or len(rgb) != width * height * 3:
        raise ValueError(f"{len(rgb)} bytes are not {width}x{height} RGB pixels")
    stride = width * 3
    # Filter type 0 (none) before every row: the pictures are small, so simplicity wins.
    raw = b"".join(b"\x00" + rgb[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 9)),
            _chunk(b"IEND", b""),
        )
    )


def read_png_header(data: bytes) -> PngHeader:
    """Returns the header of a valid non-interlaced PNG; raises ValueError if it is not one."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("missing PNG signature")
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError("the first chunk is not a 13-byte IHDR")
    if chunks[-1][0] != b"IEND":
        raise ValueError("the last chunk is not IEND")
    width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if width == 0 or height == 0 or color_type not in _CHANNELS or interlace != 0:
        raise ValueError("unsupported or invalid IHDR")
    image_data = b"".join(body for kind, body in chunks if kind == b"IDAT")
    try:
        raw = zlib.decompress(image_data)
    except zlib.error as exc:
        raise ValueError(f"image data does not inflate: {exc}") from exc
    row_bytes = (width * _CHANNELS[color_type] * bit_depth + 7) // 8
    if len(raw) != height * (1 + row_bytes):
        raise ValueError(f"image data is {len(raw)} bytes, expected {height * (1 + row_bytes)}")
    return PngHeader(width=width, height=height, bit_depth=bit_depth, color_type=color_type)


def prompt_picture(text: str, *, size: int = 64) -> bytes:
    """A size x size PNG that depends only on `text`: a mirrored block pattern over a gradient.

    The bytes are stable for a given zlib build, so the same text gives the same file.
    """
    digest = hashlib.sha256(text.encode("utf-8", "replace")).digest()
    background, foreground, accent = digest[0:3], digest[3:6], digest[6:9]
    cells = 8
    cell = max(1, size // cells)
    pixels = bytearray()
    for y in range(size):
        for x in range(size):
            column, row = min(x // cell, cells - 1), min(y // cell, cells - 1)
            # Mirror the left half so the pattern reads as a deliberate emblem, not noise.
            bit_index = row * (cells // 2) + min(column, cells - 1 - column)
            if digest[9 + bit_index // 8] >> (bit_index % 8) & 1:
                pixels += foreground
            else:
                pixels += bytes(_blend(background, accent, y, size))
    return encode_png(size, size, bytes(pixels))


def _blend(start: bytes, end: bytes, step: int, steps: int) -> list[int]:
    return [a + (b - a) * step // max(1, steps - 1) for a, b in zip(start, end, strict=True)]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks: list[tuple[bytes, bytes]] = []
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError("truncated chunk header")
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        end = offset + 8 + length
        if end + 4 > len(data):
            raise ValueError(f"truncated {kind!r} chunk")
        body = data[offset + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if crc != zlib.crc32(kind + body):
            raise ValueError(f"bad CRC in {kind!r} chunk")
        chunks.append((kind, body))
        offset = end + 4
    return chunks
