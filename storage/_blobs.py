"""Content-addressed blobs: each distinct content is stored once, and collected once nothing refers to it.

What refers to a blob is a foreign key: a manifest entry (a version's tree), an attachment or a
turn_blob row (a turn's inline data). So the database itself refuses a reference to a blob that
is gone, and refuses to remove a blob something refers to.

The collector and the writers meet on the blob rows. A writer that finds its content already
stored (`INSERT ... ON CONFLICT DO NOTHING`) refers to a row that the collector may be about to
delete: it has read "unused" and will delete in a moment. So on PostgreSQL a writer holds every
blob it found with FOR KEY SHARE until its transaction ends, and the collector takes the rows it
deletes with FOR UPDATE SKIP LOCKED, then checks again that nothing refers to them, in a
statement that starts after it holds them:

- a writer that held a blob first makes the collector skip it;
- a writer that comes after the collector took a blob waits, finds the row gone, and stores it anew;
- a reference committed before the collector took the row is seen by its check.

On SQLite one transaction writes at a time, so a writer and the collector never interleave.
A writer that stores a content in one transaction and refers to it in a later one (a streamed
upload) is covered by the collector's grace period on `create_time` instead.

A big content can be stored in parts (`put_parted_blob`): an upload stores each part, itself a
blob, as it streams in, so that no process ever holds the whole file. The blob's row then holds
no data, its `blob_part` rows refer to its parts in order, and `read_blob(s)` joins them. The
parts are referenced by those rows like any blob; deleting the blob deletes its part rows, and
the parts are collected on a later pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from storage._clock import utcnow
from storage._database import Transaction
from storage._errors import WriteConflict
from storage._models import Blob
from storage._tables import ATTACHMENT, BLOB, BLOB_PART, MANIFEST, TURN_BLOB


class FileContent(Protocol):
    """A file with its bytes, as storage takes it (the server's one such type fits)."""

    @property
    def path(self) -> str: ...
    @property
    def mime_type(self) -> str: ...
    @property
    def data(self) -> bytes: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_blobs(tx: Transaction, contents: Iterable[bytes]) -> list[str]:
    """Stores each content unless it is already stored; returns their SHA-256s in order.

    Every blob returned stays stored at least until the transaction ends: the collector cannot
    take one from under a writer about to refer to it.
    """
    rows: dict[str, dict[str, object]] = {}
    hashes: list[str] = []
    now = utcnow()
    for data in contents:
        digest = sha256_hex(data)
        hashes.append(digest)
        rows.setdefault(digest, {"sha256": digest, "size": len(data), "data": data, "create_time": now})
    if rows:
        # Sorted, so that concurrent writers take the index locks in one order.
        values = [rows[key] for key in sorted(rows)]
        if tx.get_bind().dialect.name == "postgresql":
            _store_and_hold(tx, values)
        else:
            tx.execute(_INSERT_BLOB_SQLITE, values)
    return hashes


# A blob can vanish between the insert that found it and the lock that holds it only when the
# collector deleted it in that instant; storing it again cannot race the collector twice in a row
# unless something is badly wrong.
_STORE_ATTEMPTS = 5
_IDS_PER_STATEMENT = 500


def put_parted_blob(tx: Transaction, *, sha256: str, size: int, parts: Sequence[str]) -> None:
    """Stores the content whose SHA-256 and size are given as the concatenation of `parts` (blobs
    already stored, in order), unless that content is already stored, whole or in parts.

    The parts must still be stored: the collector leaves blobs alone for its grace period after
    they are stored, so the parts of an upload must be put together within it.
    """
    row = {"sha256": sha256, "size": size, "data": b"", "create_time": utcnow()}
    if tx.get_bind().dialect.name == "postgresql":
        inserted = bool(list(tx.execute(_INSERT_BLOB_POSTGRESQL, [row]).scalars()))
        if not inserted:
            _store_and_hold(tx, [row])
    else:
        inserted = bool(tx.execute(_INSERT_BLOB_SQLITE, row).rowcount)  # type: ignore[attr-defined]
    if inserted:
        tx.execute(
            sa.insert(BLOB_PART),
            [
                {"blob_sha256": sha256, "position": position, "part_sha256": part}
                for position, part in enumerate(parts)
            ],
        )


def _store_and_hold(tx: Transaction, values: list[dict[str, object]]) -> None:
    pending = values
    for _ in range(_STORE_ATTEMPTS):
        inserted = set(tx.execute(_INSERT_BLOB_POSTGRESQL, pending).scalars())
        found = [str(row["sha256"]) for row in pending if row["sha256"] not in inserted]
        held: set[str] = set()
        for start in range(0, len(found), _IDS_PER_STATEMENT):
            held.update(tx.execute(_HOLD, {"sha256s": found[start : start + _IDS_PER_STATEMENT]}).scalars())
        pending = [row for row in pending if row["sha256"] not in inserted and row["sha256"] not in held]
        if not pending:
            return
    raise WriteConflict(f"blobs kept vanishing while being stored: {[row['sha256'] for row in pending][:5]}")


_INSERT_BLOB_SQLITE = sqlite.insert(BLOB).on_conflict_do_nothing(index_elements=["sha256"])
_INSERT_BLOB_POSTGRESQL = (
    postgresql.insert(BLOB).on_conflict_do_nothing(index_elements=["sha256"]).returning(BLOB.c.sha256)
)
# FOR KEY SHARE: writers do not block one another, and the collector's FOR UPDATE skips the row.
_HOLD = (
    sa.select(BLOB.c.sha256)
    .where(BLOB.c.sha256.in_(sa.bindparam("sha256s", expanding=True)))
    .with_for_update(read=True, key_share=True)
)


def read_blob(tx: Transaction, sha256: str) -> bytes | None:
    return read_blobs(tx, [sha256]).get(sha256)


def read_blobs(tx: Transaction, sha256s: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs at once, by SHA-256 (those stored in parts put together)."""
    wanted = sorted(set(sha256s))
    found: dict[str, bytes] = {}
    parted: list[str] = []
    for start in range(0, len(wanted), _IDS_PER_STATEMENT):  # bounded IN lists
        rows = tx.execute(
            sa.select(col(Blob.sha256), col(Blob.size), col(Blob.data)).where(
                col(Blob.sha256).in_(wanted[start : start + _IDS_PER_STATEMENT])
            )
        )
        for digest, size, data in rows:
            if size and not data:
                parted.append(digest)
            else:
                found[digest] = data
    for digest in parted:
        found[digest] = b"".join(tx.execute(_PARTS_OF, {"sha256": digest}).scalars())
    return found


_PART = BLOB.alias("part")
_PARTS_OF = (
    sa.select(_PART.c.data)
    .select_from(BLOB_PART.join(_PART, _PART.c.sha256 == BLOB_PART.c.part_sha256))
    .where(BLOB_PART.c.blob_sha256 == sa.bindparam("sha256"))
    .order_by(BLOB_PART.c.position)
)


@dataclass(frozen=True, slots=True)
class BlobScan:
    """One window of the blobs in SHA-256 order: those of it nothing refers to, and where it ended."""

    unused: list[str]
    # The window's last SHA-256, where the next window starts; None once there are no more blobs.
    last: str | None


def _unused(sha256: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.and_(
        ~sa.exists().where(MANIFEST.c.blob_sha256 == sha256),
        ~sa.exists().where(ATTACHMENT.c.blob_sha256 == sha256),
        ~sa.exists().where(TURN_BLOB.c.blob_sha256 == sha256),
        ~sa.exists().where(BLOB_PART.c.part_sha256 == sha256),
    )


def _build_scan() -> sa.Select[Any]:
    window = (
        sa.select(BLOB.c.sha256)
        .where(BLOB.c.sha256 > sa.bindparam("after"))
        .order_by(BLOB.c.sha256)
        .limit(sa.bindparam("limit"))
        .subquery("scanned")
    )
    return sa.select(window.c.sha256, _unused(window.c.sha256).label("unused")).order_by(window.c.sha256)


_SCAN = _build_scan()


def scan_blobs(tx: Transaction, *, after: str, limit: int) -> BlobScan:
    """The next `limit` blobs after `after` (in SHA-256 order), and which of them nothing refers to.

    Reads only the blobs' keys (an index), never their contents. What it finds unused is a
    candidate: `delete_unused_blobs` checks again before it deletes.
    """
    rows = tx.execute(_SCAN, {"after": after, "limit": limit}).all()
    return BlobScan(
        unused=[sha256 for sha256, unused in rows if unused], last=rows[-1][0] if len(rows) == limit else None
    )


def delete_unused_blobs(tx: Transaction, sha256s: Sequence[str], *, created_before: datetime) -> int:
    """Deletes those of the blobs that nothing refers to and that were stored before `created_before`
    (or before blobs had a create_time); returns how many it deleted.

    On PostgreSQL it first takes the rows (FOR UPDATE SKIP LOCKED: a writer holding one keeps
    it), then checks for references in a later statement, which sees every reference committed
    before the rows were taken.
    """
    deleted = 0
    for start in range(0, len(sha256s), _IDS_PER_STATEMENT):
        batch = sorted(sha256s[start : start + _IDS_PER_STATEMENT])
        taken = list(tx.execute(_TAKE, {"sha256s": batch, "created_before": created_before}).scalars())
        if taken:
            deleted += tx.execute(_DELETE_UNUSED, {"sha256s": taken}).rowcount  # type: ignore[attr-defined]
    return deleted


_TAKE = (
    sa.select(BLOB.c.sha256)
    .where(
        BLOB.c.sha256.in_(sa.bindparam("sha256s", expanding=True)),
        sa.or_(BLOB.c.create_time.is_(None), BLOB.c.create_time < sa.bindparam("created_before")),
    )
    .order_by(BLOB.c.sha256)
    .with_for_update(skip_locked=True)
)
_DELETE_UNUSED = sa.delete(BLOB).where(
    BLOB.c.sha256.in_(sa.bindparam("sha256s", expanding=True)), _unused(BLOB.c.sha256)
)
