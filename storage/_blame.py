"""Blame: for each file of a version, the version that last changed it.

It walks the version's ancestry from the newest version back, carrying each path that is still
unexplained to the parent whose file is the same (by content hash). A version stored as a delta
against its parent names exactly the paths it changed, so most steps look at nothing but the delta
rows. The rows of every delta-stored ancestor are read in one query, and a snapshot's rows only when
a lookup reaches it, for the paths asked about: the cost grows with the history and the paths asked
about, never with the files' bytes. A merge's file equal to `ours` came from that side, else one
equal to `theirs` from the other; a file equal to neither was made by the merge.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TypeVar

import sqlalchemy as sa

from storage._database import Transaction
from storage._models import Version
from storage._tables import MANIFEST, VERSION, from_row

# Expanding IN lists are sent in chunks of this many values (SQLite's bound is 32,766).
_CHUNK = 1000
_T = TypeVar("_T")

_VERSIONS_OF_GENERATION = sa.select(VERSION).where(VERSION.c.generation_id == sa.bindparam("generation_id"))


def blame(tx: Transaction, *, version: Version, paths: Mapping[str, str]) -> dict[str, Version]:
    """For each of `paths` (a path of `version`'s tree and its content hash there), the version
    that last changed it: added it, or wrote different contents to it."""
    rows = tx.execute(_VERSIONS_OF_GENERATION, {"generation_id": version.generation_id})
    versions = {row.number: row for row in (from_row(Version, r) for r in rows)}
    trees = _Trees(tx, versions, version.number, paths)
    found: dict[str, Version] = {}
    # Paths still open at each version: their contents there are the target's.
    open_at: dict[int, set[str]] = {version.number: set(paths)}
    heap = [-version.number]

    def hand(number: int, handed: set[str]) -> None:
        if not handed:
            return
        held = open_at.get(number)
        if held is None:
            open_at[number] = handed
            heapq.heappush(heap, -number)
        elif len(held) >= len(handed):
            held |= handed
        else:
            open_at[number] = handed | held

    # Newest first: every child of a version is handled before it, so its open paths are complete.
    while heap:
        current = versions[-heapq.heappop(heap)]
        pending = open_at.pop(current.number)
        parent = versions.get(current.parent_number) if current.parent_number is not None else None
        if parent is None:
            found.update(dict.fromkeys(pending, current))
            continue
        if current.manifest_base_id == parent.id:
            # A delta against the parent: only the paths it names may differ from the parent's.
            touched = pending & trees.delta(current).keys()
        else:
            touched = set(pending)
        pending -= touched
        same = {path for path in touched if trees.hash_in(parent, path) == paths[path]}
        pending |= same
        hand(parent.number, pending)
        changed = touched - same
        theirs = (
            versions.get(current.merge_parent_number) if current.merge_parent_number is not None else None
        )
        if theirs is not None and changed:
            from_theirs = {path for path in changed if trees.hash_in(theirs, path) == paths[path]}
            hand(theirs.number, from_theirs)
            changed -= from_theirs
        found.update(dict.fromkeys(changed, current))
    return found


class _Trees:
    """The content hashes of the asked-for paths in the ancestry's trees, read in a few queries: the
    rows of every delta-stored ancestor at once, and a snapshot's rows when a lookup reaches it."""

    def __init__(
        self, tx: Transaction, versions: Mapping[int, Version], number: int, paths: Collection[str]
    ) -> None:
        self._tx = tx
        self._paths = list(paths)
        # Plain ints: a lookup walks up to a chain's length of them (a row's attributes cost more).
        self._base_of = {row.id or 0: row.manifest_base_id for row in versions.values()}
        ids = [
            row.id
            for n in _ancestors(versions, number)
            if (row := versions[n]).manifest_base_id is not None and row.id is not None
        ]
        self._deltas: dict[int, dict[str, str | None]] = {}
        for chunk in _chunks(ids):
            for version_id, path, digest, deleted in tx.execute(_DELTA_ROWS, {"ids": chunk}):
                if path in paths:
                    self._deltas.setdefault(version_id, {})[path] = None if deleted else digest
        self._snapshots: dict[int, dict[str, str]] = {}

    def delta(self, version: Version) -> Mapping[str, str | None]:
        """The asked-for paths a delta-stored version's rows name (None: deleted there)."""
        return self._deltas.get(version.id or 0, {})

    def hash_in(self, version: Version, path: str) -> str | None:
        """The path's content hash in `version`'s tree (None: no such file)."""
        current = version.id or 0
        while (base := self._base_of[current]) is not None:
            rows = self._deltas.get(current)
            if rows is not None and path in rows:
                return rows[path]
            current = base
        return self._snapshot(current).get(path)

    def _snapshot(self, version_id: int) -> dict[str, str]:
        found = self._snapshots.get(version_id)
        if found is None:
            found = self._snapshots[version_id] = {}
            for chunk in _chunks(self._paths):
                params = {"version_id": version_id, "paths": chunk}
                found.update((path, digest) for path, digest in self._tx.execute(_SNAPSHOT_ROWS, params))
        return found


_DELTA_ROWS = sa.select(
    MANIFEST.c.version_id, MANIFEST.c.path, MANIFEST.c.blob_sha256, MANIFEST.c.deleted
).where(MANIFEST.c.version_id.in_(sa.bindparam("ids", expanding=True)))
_SNAPSHOT_ROWS = sa.select(MANIFEST.c.path, MANIFEST.c.blob_sha256).where(
    MANIFEST.c.version_id == sa.bindparam("version_id"),
    MANIFEST.c.path.in_(sa.bindparam("paths", expanding=True)),
)


def _ancestors(versions: Mapping[int, Version], number: int) -> set[int]:
    seen: set[int] = set()
    stack = [number]
    while stack:
        current = stack.pop()
        if current in seen or current not in versions:
            continue
        seen.add(current)
        row = versions[current]
        stack.extend(n for n in (row.parent_number, row.merge_parent_number) if n is not None)
    return seen


def _chunks(values: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
