"""Version trees, stored as snapshots or as deltas against an earlier version's tree.

A version's tree is either a snapshot (one manifest row per file) or a delta: the rows that
differ from its base version's tree, with `deleted` rows for removed paths. An iteration
that changes 10 files of a 10,000-file tree so writes about 10 rows. To keep reads linear in
a tree's own size, a snapshot is taken instead of a delta when the chain of deltas behind it
grows long, or when its deltas add up to a large share of the tree. docs/STORAGE.md says why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from storage._blobs import FileContent, put_blobs
from storage._database import Transaction
from storage._models import ManifestEntry, Version
from storage._tables import MANIFEST, VERSION

# A delta is written only while the chain stays short and its rows stay a small share of the
# tree: reading a tree then costs at most about 1.5 times its size.
MAX_DELTA_CHAIN = 32
MAX_DELTA_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """A file of a version's tree whose contents are already stored as a blob."""

    path: str
    blob_sha256: str
    size: int
    mime_type: str


def store_files(tx: Transaction, files: Sequence[FileContent]) -> list[TreeEntry]:
    """Stores the files' contents (each distinct content once) and returns their tree entries."""
    hashes = put_blobs(tx, (file.data for file in files))
    return [
        TreeEntry(path=file.path, blob_sha256=digest, size=len(file.data), mime_type=file.mime_type)
        for file, digest in zip(files, hashes, strict=True)
    ]


def _entry(row: ManifestEntry) -> TreeEntry:
    assert row.blob_sha256 is not None
    return TreeEntry(path=row.path, blob_sha256=row.blob_sha256, size=row.size, mime_type=row.mime_type)


def _build_chain() -> sa.Select[Any]:
    start = (
        sa.select(VERSION.c.id, VERSION.c.manifest_base_id, sa.literal(0).label("depth"))
        .where(VERSION.c.id == sa.bindparam("version_id"))
        .cte("chain", recursive=True)
    )
    chain = start.union_all(
        sa.select(VERSION.c.id, VERSION.c.manifest_base_id, (start.c.depth + 1).label("depth")).join(
            start, VERSION.c.id == start.c.manifest_base_id
        )
    )
    return sa.select(chain.c.id).order_by(chain.c.depth.desc())


_CHAIN = _build_chain()
_ROWS_OF = sa.select(
    MANIFEST.c.version_id,
    MANIFEST.c.path,
    MANIFEST.c.blob_sha256,
    MANIFEST.c.size,
    MANIFEST.c.mime_type,
    MANIFEST.c.deleted,
).where(MANIFEST.c.version_id.in_(sa.bindparam("chain", expanding=True)))


def _chain(tx: Transaction, version_id: int) -> list[int]:
    """The version ids whose manifest rows make up the tree, the snapshot first (one query)."""
    return list(tx.execute(_CHAIN, {"version_id": version_id}).scalars())


def read_tree(tx: Transaction, *, version_id: int) -> dict[str, TreeEntry]:
    """A version's whole tree, by path."""
    chain = _chain(tx, version_id)
    order = {vid: position for position, vid in enumerate(chain)}
    rows = tx.execute(_ROWS_OF, {"chain": chain}).all()
    tree: dict[str, TreeEntry] = {}
    for _version_id, path, blob_sha256, size, mime_type, deleted in sorted(rows, key=lambda r: order[r[0]]):
        if deleted:
            tree.pop(path, None)
        else:
            tree[path] = TreeEntry(path=path, blob_sha256=blob_sha256, size=size, mime_type=mime_type)
    return tree


def list_manifest(
    tx: Transaction, *, version_id: int, after_path: str | None = None, limit: int | None = None
) -> list[TreeEntry]:
    """A version's files in path order (byte order of the UTF-8 path on every database)."""
    base = tx.execute(
        sa.select(col(Version.manifest_base_id)).where(col(Version.id) == version_id)
    ).scalar_one()
    if base is None:  # a snapshot: the database sorts and pages
        path = col(ManifestEntry.path).collate(_binary_collation(tx))
        statement = select(ManifestEntry).where(ManifestEntry.version_id == version_id)
        if after_path is not None:
            statement = statement.where(path > after_path)
        statement = statement.order_by(path)
        if limit is not None:
            statement = statement.limit(limit)
        return [_entry(row) for row in tx.exec(statement).all()]
    entries = sorted(read_tree(tx, version_id=version_id).values(), key=lambda e: e.path.encode())
    if after_path is not None:
        entries = [e for e in entries if e.path.encode() > after_path.encode()]
    return entries[:limit] if limit is not None else entries


def get_manifest_entry(tx: Transaction, *, version_id: int, path: str) -> TreeEntry | None:
    chain = _chain(tx, version_id)
    rows = tx.exec(
        select(ManifestEntry).where(col(ManifestEntry.version_id).in_(chain), ManifestEntry.path == path)
    ).all()
    if not rows:
        return None
    newest = max(rows, key=lambda row: chain.index(row.version_id))
    return None if newest.deleted else _entry(newest)


def write_tree(
    tx: Transaction,
    *,
    version: Version,
    entries: Sequence[TreeEntry],
    parent: tuple[Version, Mapping[str, TreeEntry]] | None = None,
) -> None:
    """Records a version's whole tree, as a delta against `parent` (a version and its tree) when
    that is cheap.

    Also sets the version's file count and its added, modified and deleted counts against `parent`.
    """
    tree = {entry.path: entry for entry in entries}
    parent_tree: Mapping[str, TreeEntry] = parent[1] if parent is not None else {}
    # Entries carried over from the parent are the very same objects: `is` settles most paths
    # without comparing fields.
    changed = [
        entry for path, entry in tree.items() if (old := parent_tree.get(path)) is not entry and old != entry
    ]
    removed = [path for path in parent_tree if path not in tree]
    _record(tx, version, parent, changed, removed, lambda: tree.values())


def write_changes(
    tx: Transaction,
    *,
    version: Version,
    parent: tuple[Version, Mapping[str, TreeEntry]],
    upserts: Sequence[TreeEntry],
    deletions: Sequence[str],
) -> None:
    """Records a version's tree as `parent` (a version and its tree) plus changes, like write_tree.

    Costs what the change costs, not what the tree holds, unless a snapshot is due.
    """
    parent_tree = parent[1]
    changed = [entry for entry in upserts if parent_tree.get(entry.path) != entry]
    upserted = {entry.path for entry in upserts}
    removed = [path for path in dict.fromkeys(deletions) if path in parent_tree and path not in upserted]

    def whole() -> Iterable[TreeEntry]:
        tree = dict(parent_tree)
        for path in removed:
            del tree[path]
        tree.update((entry.path, entry) for entry in changed)
        return tree.values()

    _record(tx, version, parent, changed, removed, whole)


def _record(
    tx: Transaction,
    version: Version,
    parent: tuple[Version, Mapping[str, TreeEntry]] | None,
    changed: Sequence[TreeEntry],
    removed: Sequence[str],
    whole: Callable[[], Iterable[TreeEntry]],
) -> None:
    """Writes the tree's rows (a delta, or a snapshot made by `whole`) and the version's counts."""
    assert version.id is not None
    parent_tree: Mapping[str, TreeEntry] = parent[1] if parent is not None else {}
    added = sum(1 for entry in changed if entry.path not in parent_tree)
    file_count = len(parent_tree) + added - len(removed)
    values: dict[str, object] = {
        "file_count": file_count,
        "added_count": added,
        "modified_count": len(changed) - added,
        "deleted_count": len(removed),
    }
    delta_rows = len(changed) + len(removed)
    use_delta = (
        parent is not None
        and parent[0].manifest_chain < MAX_DELTA_CHAIN
        and parent[0].manifest_delta_rows + delta_rows <= max(64, MAX_DELTA_SHARE * file_count)
    )
    if use_delta:
        assert parent is not None
        values.update(
            manifest_base_id=parent[0].id,
            manifest_chain=parent[0].manifest_chain + 1,
            manifest_delta_rows=parent[0].manifest_delta_rows + delta_rows,
        )
        rows = [_row(version.id, entry) for entry in changed] + [
            {
                "version_id": version.id,
                "path": path,
                "blob_sha256": None,
                "size": 0,
                "mime_type": "",
                "deleted": True,
            }
            for path in removed
        ]
    else:
        values.update(manifest_base_id=None, manifest_chain=0, manifest_delta_rows=0)
        rows = [_row(version.id, entry) for entry in whole()]
    if rows:
        tx.execute(_INSERT_MANIFEST, rows)
    tx.execute(
        _set_tree(tuple(values)),
        {"version_id": version.id, **{f"new_{key}": value for key, value in values.items()}},
    )
    for key, value in values.items():
        setattr(version, key, value)


_INSERT_MANIFEST = sa.insert(MANIFEST)


@functools.cache
def _set_tree(columns: tuple[str, ...]) -> sa.Update:
    return (
        sa.update(VERSION)
        .where(VERSION.c.id == sa.bindparam("version_id"))
        .values({column: sa.bindparam(f"new_{column}") for column in columns})
    )


def _row(version_id: int, entry: TreeEntry) -> dict[str, object]:
    return {
        "version_id": version_id,
        "path": entry.path,
        "blob_sha256": entry.blob_sha256,
        "size": entry.size,
        "mime_type": entry.mime_type,
        "deleted": False,
    }


def _binary_collation(tx: Transaction) -> str:
    return "C" if tx.get_bind().dialect.name == "postgresql" else "BINARY"
