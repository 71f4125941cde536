"""API keys: found by their public id; the secret itself is never stored, only its SHA-256."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from storage._clock import utcnow
from storage._database import Transaction
from storage._models import ApiKey
from storage._tables import API_KEY, from_row, full_row, one_or_none


def create_api_key(
    tx: Transaction, *, key_id: str, principal: str, scopes: str, secret_sha256: str
) -> ApiKey:
    row = full_row(
        API_KEY,
        {
            "id": key_id,
            "principal": principal,
            "scopes": scopes,
            "secret_sha256": secret_sha256,
            "create_time": utcnow(),
        },
    )
    tx.execute(sa.insert(API_KEY), row)
    return from_row(ApiKey, row)


def get_api_key(tx: Transaction, *, key_id: str) -> ApiKey | None:
    return one_or_none(tx, ApiKey, _BY_ID, id=key_id)


def list_api_keys(tx: Transaction) -> Sequence[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    statement = sa.select(API_KEY).order_by(API_KEY.c.create_time, API_KEY.c.id)
    return [from_row(ApiKey, row) for row in tx.execute(statement)]


def has_api_keys(tx: Transaction) -> bool:
    """Whether any key was ever created (revoked ones count: revoking never reopens a server)."""
    return bool(tx.execute(sa.select(sa.exists().select_from(API_KEY))).scalar_one())


def revoke_api_key(tx: Transaction, *, key_id: str) -> ApiKey | None:
    """Revokes the key now, unless it already was; returns it (None: no such key)."""
    tx.execute(
        sa.update(API_KEY)
        .where(API_KEY.c.id == key_id, API_KEY.c.revoke_time.is_(None))
        .values(revoke_time=utcnow())
    )
    return get_api_key(tx, key_id=key_id)


def mark_api_key_used(tx: Transaction, *, key_id: str, when: datetime) -> None:
    tx.execute(sa.update(API_KEY).where(API_KEY.c.id == key_id).values(last_used_time=when))


_BY_ID = sa.select(API_KEY).where(API_KEY.c.id == sa.bindparam("id"))
