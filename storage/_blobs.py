"""Content-addressed blobs: each distinct content is stored once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from storage._database import Transaction
from storage._models import Blob
from storage._tables import BLOB


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
    """Stores each content unless it is already stored; returns their SHA-256s in order."""
    rows: dict[str, dict[str, object]] = {}
    hashes: list[str] = []
    for data in contents:
        digest = sha256_hex(data)
        hashes.append(digest)
        rows.setdefault(digest, {"sha256": digest, "size": len(data), "data": data})
    if rows:
        # Sorted, so that concurrent writers take the index locks in one order.
        values = [rows[key] for key in sorted(rows)]
        tx.execute(_INSERT_BLOB[tx.get_bind().dialect.name], values)
    return hashes


_INSERT_BLOB = {
    "postgresql": postgresql.insert(BLOB).on_conflict_do_nothing(index_elements=["sha256"]),
    "sqlite": sqlite.insert(BLOB).on_conflict_do_nothing(index_elements=["sha256"]),
}


def read_blob(tx: Transaction, sha256: str) -> bytes | None:
    return tx.execute(sa.select(col(Blob.data)).where(col(Blob.sha256) == sha256)).scalar_one_or_none()


def read_blobs(tx: Transaction, sha256s: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs at once, by SHA-256."""
    wanted = sorted(set(sha256s))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        rows = tx.execute(
            sa.select(col(Blob.sha256), col(Blob.data)).where(
                col(Blob.sha256).in_(wanted[start : start + 500])
            )
        )
        found.update((digest, data) for digest, data in rows)
    return found
