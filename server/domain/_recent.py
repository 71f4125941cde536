"""What the latest jobs of this process produced, kept for the jobs that continue from it.

A tweak or an iteration starts from its parent's tree and (for a tweak) the conversation
up to the parent's answer. Both are immutable once stored: a version's tree never changes
after it ended, and the branch that ends at a turn is the same forever (turns are only ever
added after it). So the job that made a version leaves both here, and the next job on it
skips reading them back from the database. Entries are bounded in number and in bytes;
anything missing is read from the database as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.domain._lru import LRU
from server.domain.trees import Tree
from server.files import FileContent
from server.providers import Turn

_MAX_ENTRIES = 64
_MAX_BYTES = 64 * 1024 * 1024
_MAX_ITEM_BYTES = 8 * 1024 * 1024
# About what one tree entry (path, hash, size, MIME type) costs in memory, beside its contents.
_ENTRY_BYTES = 200


@dataclass(frozen=True, slots=True)
class LoadedTree:
    """A version's tree with its files' contents loaded, as a job that starts from it needs them."""

    entries: Tree
    contents: Mapping[str, bytes]  # by SHA-256

    def files(self) -> list[FileContent]:
        """The files in path order (bytes of the UTF-8 path), as providers receive them."""
        ordered = sorted(self.entries.values(), key=lambda e: e.path.encode())
        return [FileContent(e.path, e.mime_type, self.contents[e.blob_sha256]) for e in ordered]


class Recent:
    """Trees by version id, and conversation branches by the id of their last turn."""

    def __init__(self) -> None:
        bounds = {"max_entries": _MAX_ENTRIES, "max_bytes": _MAX_BYTES, "max_item_bytes": _MAX_ITEM_BYTES}
        self._trees: LRU[int, LoadedTree] = LRU(**bounds)
        self._branches: LRU[int, tuple[Turn, ...]] = LRU(**bounds)

    def tree(self, version_id: int) -> LoadedTree | None:
        return self._trees.get(version_id)

    def keep_tree(self, version_id: int, tree: LoadedTree) -> None:
        size = sum(map(len, tree.contents.values())) + _ENTRY_BYTES * len(tree.entries)
        self._trees.put(version_id, tree, size)

    def branch(self, head_turn_id: int) -> tuple[Turn, ...] | None:
        return self._branches.get(head_turn_id)

    def keep_branch(self, head_turn_id: int, turns: Sequence[Turn]) -> None:
        size = sum(len(p.data or b"") + len(p.text or "") for turn in turns for p in turn.parts)
        self._branches.put(head_turn_id, tuple(turns), size)
