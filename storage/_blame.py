"""Blame: for each file of a version, the version that last changed it.

It walks the version's ancestry from the newest version back, carrying each path that is still
unexplained to the parent whose file is the same (by content hash). A version stored as a delta
against its parent names exactly the paths it changed, so most steps read nothing but the delta
rows; only a snapshot step, or a path a delta did touch, looks up the parent's entries (for the
paths still open). The cost so grows with the history and the paths asked about, never with the
files' bytes. A merge's file equal to `ours` came from that side, else one equal to `theirs`
from the other; a file equal to neither was made by the merge.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence

import sqlalchemy as sa

from storage._database import Transaction
from storage._models import Version
from storage._tables import MANIFEST, VERSION, from_row
from storage._trees import _chain

# Expanding IN lists are sent in chunks of this many values (SQLite's bound is 32,766).
_CHUNK = 1000

_VERSIONS_OF_GENERATION = sa.select(VERSION).where(VERSION.c.generation_id == sa.bindparam("generation_id"))


def blame(tx: Transaction, *, version: Version, paths: Mapping[str, str]) -> dict[str, Version]:
    """For each of `paths` (a path of `version`'s tree and its content hash there), the version
    that last changed it: added it, or wrote different contents to it."""
    rows = tx.execute(_VERSIONS_OF_GENERATION, {"generation_id": version.generation_id})
    versions = {row.number: row for row in (from_row(Version, r) for r in rows)}
    deltas = _delta_rows(tx, versions, version.number, paths)
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
            touched = pending & deltas.get(current.id or 0, set())
        else:
            touched = set(pending)
        pending -= touched
        hand(parent.number, pending)
        if not touched:
            continue
        theirs = (
            versions.get(current.merge_parent_number) if current.merge_parent_number is not None else None
        )
        in_parent = _hashes(tx, parent, touched)
        same = {path for path in touched if in_parent.get(path) == paths[path]}
        hand(parent.number, same)
        changed = touched - same
        if theirs is not None and changed:
            in_theirs = _hashes(tx, theirs, changed)
            from_theirs = {path for path in changed if in_theirs.get(path) == paths[path]}
            hand(theirs.number, from_theirs)
            changed -= from_theirs
        found.update(dict.fromkeys(changed, current))
    return found


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


def _delta_rows(
    tx: Transaction, versions: Mapping[int, Version], number: int, paths: Collection[str]
) -> dict[int, set[str]]:
    """The paths each delta-stored ancestor's rows name (of `paths` only), by version id."""
    ids = [
        row.id
        for n in _ancestors(versions, number)
        if (row := versions[n]).manifest_base_id is not None and row.id is not None
    ]
    found: dict[int, set[str]] = {}
    for chunk in _chunks(ids):
        for version_id, path in tx.execute(
            sa.select(MANIFEST.c.version_id, MANIFEST.c.path).where(MANIFEST.c.version_id.in_(chunk))
        ):
            if path in paths:
                found.setdefault(version_id, set()).add(path)
    return found


def _hashes(tx: Transaction, version: Version, paths: Iterable[str]) -> dict[str, str]:
    """The content hash of each of `paths` in `version`'s tree (absent: no such file)."""
    assert version.id is not None
    chain = _chain(tx, version.id)
    order = {vid: position for position, vid in enumerate(chain)}
    newest: dict[str, tuple[int, str | None]] = {}
    for chunk in _chunks(list(paths)):
        for version_id, path, digest, deleted in tx.execute(
            sa.select(
                MANIFEST.c.version_id, MANIFEST.c.path, MANIFEST.c.blob_sha256, MANIFEST.c.deleted
            ).where(MANIFEST.c.version_id.in_(chain), MANIFEST.c.path.in_(chunk))
        ):
            position = order[version_id]
            if path not in newest or newest[path][0] < position:
                newest[path] = (position, None if deleted else digest)
    return {path: digest for path, (_, digest) in newest.items() if digest is not None}


def _chunks(values: Sequence[object]) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
