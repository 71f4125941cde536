"""What the latest jobs of this process produced, kept for the jobs that continue from it.

A tweak or an iteration starts from its parent's tree and (for a tweak) the conversation
up to the parent's answer. Both are immutable once stored: a version's tree never changes
after it ended, and the branch that ends at a turn is the same forever (turns are only ever
added after it). So the job that made a version leaves both here, and the next job on it
skips reading them back from the database. Entries are bounded in number and in bytes;
anything missing is read from the database as before.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import storage
from server.providers._base import SourceFile, Turn

_K = TypeVar("_K")
_V = TypeVar("_V")

_MAX_ENTRIES = 64
_MAX_BYTES = 64 * 1024 * 1024
# Larger items are not kept at all: they would push out everything else.
_MAX_ITEM_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Tree:
    """A version's tree with its files' contents, as a job that starts from it needs them."""

    entries: Mapping[str, storage.TreeEntry]
    contents: Mapping[str, bytes]  # by SHA-256

    def files(self) -> list[SourceFile]:
        """The files in path order (bytes of the UTF-8 path), as providers receive them."""
        ordered = sorted(self.entries.values(), key=lambda e: e.path.encode())
        return [SourceFile(e.path, e.mime_type, self.contents[e.blob_sha256]) for e in ordered]


class _Bounded(Generic[_K, _V]):
    """A least-recently-used map bounded in entries and in (declared) bytes."""

    def __init__(self) -> None:
        self._items: collections.OrderedDict[_K, tuple[_V, int]] = collections.OrderedDict()
        self._bytes = 0

    def get(self, key: _K) -> _V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: _K, value: _V, size: int) -> None:
        if size > _MAX_ITEM_BYTES:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._items[key] = (value, size)
        self._bytes += size
        while len(self._items) > _MAX_ENTRIES or self._bytes > _MAX_BYTES:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped


class Recent:
    """Trees by version id, and conversation branches by the id of their last turn."""

    def __init__(self) -> None:
        self._trees: _Bounded[int, Tree] = _Bounded()
        self._branches: _Bounded[int, tuple[Turn, ...]] = _Bounded()

    def tree(self, version_id: int) -> Tree | None:
        return self._trees.get(version_id)

    def keep_tree(self, version_id: int, tree: Tree) -> None:
        self._trees.put(version_id, tree, sum(map(len, tree.contents.values())) + 200 * len(tree.entries))

    def branch(self, head_turn_id: int) -> tuple[Turn, ...] | None:
        return self._branches.get(head_turn_id)

    def keep_branch(self, head_turn_id: int, turns: Sequence[Turn]) -> None:
        size = sum(len(p.data or b"") + len(p.text or "") for turn in turns for p in turn.parts)
        self._branches.put(head_turn_id, tuple(turns), size)
