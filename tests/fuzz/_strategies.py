"""Hypothesis strategies for any protobuf message, built from its descriptor alone.

`Strategies.message(descriptor)` walks the message's fields: every string, bytes, integer, float,
bool, enum, nested message, repeated and map field gets a value (or none), whatever the message
is. A field added to the proto tomorrow is fuzzed tomorrow, with no change here.

The values aim at the edges: strings with NUL bytes, huge and unusual Unicode, lengths next to
the bounds of the columns that store them, strings shaped like resource names, paths and page
tokens (and the real ones of resources that exist, so that calls get past the first lookup);
integers at the bounds of their type; enum numbers the proto does not define.
"""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# Lengths on either side of the bounds strings meet: short columns, the request_id and MIME
# type columns, attachment names and paths, the prompt and message limits.
_LENGTHS = [63, 64, 65, 199, 200, 201, 254, 255, 256, 1023, 1024, 1025, 4097, 65_537, 1_048_577]
_UNITS = ["a", "\x00", "é", "\U0001d11e", "\u202e", "/", "generations/", "../", " ", "\ufeff"]
_PATHS = [
    "",
    ".",
    "..",
    "../etc/passwd",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "a/",
    ".git/config",
    "x/.git/HEAD",
    ".GIT/config",
    "a\\b",
    "CON",
    "nul.txt",
    "a\x00b",
    "\U0001d11e.txt",
    "README.md",
    " a.txt",
]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_UNSET = object()
# How deep nested messages go (google.protobuf.Struct and Value nest without end).
_MAX_DEPTH = 3
_MAX_REPEATED = 4
# Headers of the binary types a server may check bytes against.
_MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"%PDF-1.7\n",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"RIFF\x00\x00\x00\x00WAVE",
    b"ID3",
]


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted(n for n in {low, low + 1, -1, 0, 1, 2, 50, 1000, 1001, high - 1, high} if low <= n <= high)
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight."""
    indexes = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indexes).flatmap(lambda index: choices[index][1])


def _page_token(scope: str, key: object) -> str:
    raw = json.dumps({"s": scope, "k": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Strategies:
    """Strategies for messages, seeded with `known`: real resource names, paths, models and
    tokens that exist on the server being fuzzed, by the field they fit: "Message.field" (such as
    "GetSessionRequest.name") or a field name ("name", "path", "model", ...); a field named
    nowhere there draws from all of them."""

    def __init__(self, known: Mapping[str, Sequence[str]], *, plain: bool = False) -> None:
        # Plain strategies draw ordinary values (defined enums, small numbers, plain words)
        # around the real ones: requests that pass validation and go deep.
        self._plain = plain
        self._known = {field: sorted(set(values)) for field, values in known.items() if values}
        everything = sorted({value for values in known.values() for value in values})
        self._known[""] = everything or [""]
        self._strings: dict[str, st.SearchStrategy[str]] = {}
        short = st.text(max_size=24)
        real_ids = sorted({value.split("/")[1] for value in everything if value.startswith("generations/")})
        ids = st.one_of(
            st.sampled_from(real_ids or ["0"]), st.text(alphabet="abcdef0123456789-", max_size=70), short
        )
        numbers = st.one_of(
            st.sampled_from(
                ["0", "1", "2", "-1", "01", "1e3", "99999999999999999999", "9223372036854775808"]
            ),
            st.integers(0, 10**20).map(str),
        )
        resources = st.one_of(
            st.builds("generations/{}".format, ids),
            st.builds("generations/{}/versions/{}".format, ids, numbers),
            st.builds("generations/{}/session".format, ids),
            st.builds("generations/{}/versions/{}/{}".format, ids, numbers, short),
        )
        keys = st.one_of(
            st.integers(-(2**70), 2**70),
            st.booleans(),
            st.none(),
            short,
            st.floats(),
            st.lists(st.integers()),
        )
        scopes = st.one_of(
            st.builds("versions:{}".format, ids),
            st.builds("files:{}/{}".format, ids, numbers),
            st.builds("turns:{}:{}".format, ids, resources),
            st.sampled_from(["generations", "generations:alice"]),
            short,
        )
        tokens = st.one_of(
            st.builds(_page_token, scopes, keys),
            st.builds(lambda text: base64.urlsafe_b64encode(text.encode()).decode(), short),
        )
        paths = st.one_of(st.sampled_from(_PATHS), st.lists(short, min_size=1, max_size=5).map("/".join))
        # Real values weigh most, so that a request whose every field must be right to
        # get past validation is drawn often enough to reach the storage and the jobs behind it.
        self._nasty = (
            (2, st.text(max_size=40)),
            (1, st.builds(lambda a, b: f"{a}\x00{b}", short, short)),
            (1, st.builds(operator.mul, st.sampled_from(_UNITS), st.sampled_from(_LENGTHS))),
            (1, resources),
            (1, tokens),
            (1, paths),
        )
        self.blobs: st.SearchStrategy[bytes] = _weighted(
            (3, st.binary(max_size=64)),
            (1, st.builds(operator.add, st.sampled_from(_MAGIC), st.binary(max_size=32))),
            (
                1,
                st.builds(operator.mul, st.sampled_from([b"\x00", b"a", b"\xff"]), st.sampled_from(_LENGTHS)),
            ),
            (1, self.strings("").map(lambda text: text.encode())),
        )

    def strings(self, field: str) -> st.SearchStrategy[str]:
        """Strings for a field of this name: the real values that fit it, or anything."""
        if field not in self._strings:
            known = st.sampled_from(self._known.get(field, self._known[""]))
            if self._plain:
                plain = st.text(st.characters(categories=["L", "N", "Zs"]), max_size=30)
                weight = 9 if field in self._known else 1
                self._strings[field] = _weighted((weight, known), (1, plain))
            else:
                self._strings[field] = _weighted((6, known), *self._nasty)
        return self._strings[field]

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        """Messages of the descriptor's type, each field set or left unset."""
        cls = message_factory.GetMessageClass(descriptor)
        fields = {
            field.name: self._field(field, depth)
            for field in descriptor.fields
            if depth < _MAX_DEPTH or field.type != FieldDescriptor.TYPE_MESSAGE
        }
        # Each field is set three times in four: an unset field is mostly refused early.
        values = st.fixed_dictionaries(
            {name: _weighted((3, value), (1, st.just(_UNSET))) for name, value in fields.items()}
        )
        return values.map(lambda drawn: _build(cls, {k: v for k, v in drawn.items() if v is not _UNSET}))

    def _field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key = self._single(entry.fields_by_name["key"], depth + 1)
            value = self._single(entry.fields_by_name["value"], depth + 1)
            return st.dictionaries(key, value, max_size=_MAX_REPEATED)
        single = self._single(field, depth)
        return st.lists(single, max_size=_MAX_REPEATED) if field.is_repeated else single

    def _single(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            qualified = f"{field.containing_type.name}.{field.name}" if field.containing_type else ""
            return self.strings(qualified if qualified in self._known else field.name)
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.blobs
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
        if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            defined = [value.number for value in field.enum_type.values]
            # Open (proto3) enums carry any int32: a server must refuse the ones it does not know.
            if self._plain:
                return st.sampled_from(defined)
            return st.one_of(st.sampled_from(defined), _integers(-(2**31), 2**31 - 1))
        if kind in _INT_RANGES:
            return st.integers(0, 60) if self._plain else _integers(*_INT_RANGES[kind])
        if kind == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            return self.message(field.message_type, depth + 1)
        raise TypeError(f"no strategy for {field.full_name} (type {kind})")


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        target: Any = getattr(message, name)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif isinstance(value, list):
            if value and isinstance(value[0], Message):
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
