"""Resource names and page tokens (AIP-122, AIP-158)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from server.domain import BatchRef, FieldViolation, InvalidArgument, VersionRef, bounds

_GENERATION = re.compile(r"generations/([a-z0-9][a-z0-9-]{0,62})")
_SESSION = re.compile(r"generations/([a-z0-9][a-z0-9-]{0,62})/session")
_BATCH = re.compile(r"generations/([a-z0-9][a-z0-9-]{0,62})/batches/([1-9][0-9]{0,17})")
_DRAFT = re.compile(r"drafts/([a-z0-9][a-z0-9-]{0,62})")
_VERSION = re.compile(r"generations/([a-z0-9][a-z0-9-]{0,62})/versions/([1-9][0-9]{0,17})")
_WEBHOOK_DELIVERY = re.compile(
    r"generations/([a-z0-9][a-z0-9-]{0,62})/versions/([1-9][0-9]{0,17})/webhookDeliveries/(msg_[a-z0-9]{1,36})"
)

T = TypeVar("T")
_Key = TypeVar("_Key", int, str)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# The longest name the patterns above match is about 110 characters.
MAX_NAME_LENGTH = 256
# A files listing's token holds a path (up to 1,024 bytes), escaped in JSON (up to six characters
# a byte), then in base64.
MAX_PAGE_TOKEN_LENGTH = 12 * 1024
# Keys are version and turn numbers (no larger than their columns hold), generation ids and paths.
_MAX_NUMBER_KEY = max(bounds.VERSION_NUMBER, bounds.TURN_NUMBER)


def generation_name(generation_id: str) -> str:
    return f"generations/{generation_id}"


def version_name(generation_id: str, number: int) -> str:
    return f"generations/{generation_id}/versions/{number}"


def parse_generation_name(name: str, *, field: str = "name") -> str:
    match = _GENERATION.fullmatch(name)
    if match is None:
        raise _malformed(field, name, "generations/{generation}")
    return match.group(1)


def draft_name(draft_id: str) -> str:
    return f"drafts/{draft_id}"


def parse_draft_name(name: str, *, field: str = "name") -> str:
    match = _DRAFT.fullmatch(name)
    if match is None:
        raise _malformed(field, name, "drafts/{draft}")
    return match.group(1)


def session_name(generation_id: str) -> str:
    return f"generations/{generation_id}/session"


def turn_name(generation_id: str, number: int) -> str:
    return f"generations/{generation_id}/session/turns/{number}"


def parse_session_name(name: str, *, field: str = "name") -> str:
    match = _SESSION.fullmatch(name)
    if match is None:
        raise _malformed(field, name, "generations/{generation}/session")
    return match.group(1)


def parse_version_name(name: str, *, field: str = "name") -> VersionRef:
    match = _VERSION.fullmatch(name)
    if match is None:
        raise _malformed(field, name, "generations/{generation}/versions/{number}")
    number = int(match.group(2))
    if number > bounds.VERSION_NUMBER:
        # No version has it, and PostgreSQL refuses to compare its column with it.
        raise InvalidArgument(
            f"{field} names version {number}; no version number is over {bounds.VERSION_NUMBER}",
            reason="INVALID_NAME",
            metadata={"field": field, "pattern": "generations/{generation}/versions/{number}"},
            violations=[FieldViolation(field, f"the version number must be at most {bounds.VERSION_NUMBER}")],
        )
    return VersionRef(generation_id=match.group(1), number=number)


def batch_name(generation_id: str, number: int) -> str:
    return f"generations/{generation_id}/batches/{number}"


def is_batch_name(name: str) -> bool:
    return "/batches/" in name


def parse_batch_name(name: str, *, field: str = "name") -> BatchRef:
    match = _BATCH.fullmatch(name)
    if match is None:
        raise _malformed(field, name, "generations/{generation}/batches/{batch}")
    return BatchRef(generation_id=match.group(1), number=int(match.group(2)))


def parse_webhook_delivery_name(name: str, *, field: str = "name") -> tuple[VersionRef, str]:
    match = _WEBHOOK_DELIVERY.fullmatch(name)
    if match is None:
        pattern = "generations/{generation}/versions/{number}/webhookDeliveries/{delivery}"
        raise _malformed(field, name, pattern)
    return VersionRef(generation_id=match.group(1), number=int(match.group(2))), match.group(3)


def parse_generation_or_version_name(name: str, *, field: str = "parent") -> tuple[str, int | None]:
    """A generation's name, or a version's: (generation id, version number or None)."""
    version = _VERSION.fullmatch(name)
    if version is not None:
        return version.group(1), int(version.group(2))
    generation = _GENERATION.fullmatch(name)
    if generation is None:
        pattern = "generations/{generation} or generations/{generation}/versions/{number}"
        raise _malformed(field, name, pattern)
    return generation.group(1), None


def _malformed(field: str, name: str, pattern: str) -> InvalidArgument:
    described = repr(name) if name else "empty"
    return InvalidArgument(
        f"{field} is {described}; expected a resource name like {pattern}",
        reason="INVALID_NAME",
        metadata={"field": field, "pattern": pattern},
        violations=[FieldViolation(field, f"must match {pattern}")],
    )


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(
            f"page_size is {requested}; it must not be negative",
            reason="INVALID_PAGE_SIZE",
            violations=[FieldViolation("page_size", "must be 0 (the default) or positive")],
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_of(items: Sequence[T], size: int, scope: str, key: Callable[[T], object]) -> tuple[Sequence[T], str]:
    """The first `size` items, and the token of the next page (empty when there is none).

    Callers fetch `size + 1` items: the extra one only says that another page exists.
    """
    page = items[:size]
    token = encode_page_token(scope, key(page[-1])) if len(items) > size else ""
    return page, token


def encode_page_token(scope: str, key: object) -> str:
    """An opaque token for the next page; `scope` ties it to the listing it came from."""
    raw = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, scope: str, key_type: type[_Key]) -> _Key | None:
    """The key of the last item before the next page (None for the first page), if `token` is one
    this listing (`scope`) returned: its key is of `key_type`, and one an item can have."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        data = None
    key = data.get("k") if isinstance(data, dict) and data.get("s") == scope else None
    # A bool is an int to Python, and a forged key may be of any size: neither came from here.
    if isinstance(key, key_type) and not isinstance(key, bool) and _possible_key(key):
        return key
    raise InvalidArgument(
        "page_token is not a token this listing returned",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "must be a next_page_token from the same listing")],
    )


def _possible_key(key: int | str) -> bool:
    if isinstance(key, int):
        return 0 < key <= _MAX_NUMBER_KEY
    return 0 < len(key) <= bounds.PATH and "\x00" not in key
