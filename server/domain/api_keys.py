"""API keys: `atk_<id>_<secret>`, kept in the database as a principal, scopes and a hash of the secret.

A key is found by its id; its secret is checked against the stored SHA-256 in constant time
(`hmac.compare_digest`). The secret is 256 random bits from the operating system, so its hash
cannot be reversed by guessing: a slow password hash (bcrypt, argon2) protects passwords that
people choose, which are few enough to try one by one, and would only make every call slower.

Keys live in the database, so creating or revoking one needs no restart. Each process keeps
what it read of a key for `cache_seconds` (ATELIER_API_KEY_CACHE_SECONDS): a revoked key stops
working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import storage
from server.config import SCOPES
from server.domain import _transactions as transactions
from server.domain._lru import LRU
from server.domain.errors import NotFound, Unauthenticated
from server.domain.principals import Principal

KEY_PREFIX = "atk_"
_KEY = re.compile(r"atk_([0-9a-f]{16})_([0-9a-f]{64})")
_CACHED_KEYS = 4096
# A key's last use is written when a server reads the key and the stored time is older than this.
_LAST_USED_STEP = timedelta(minutes=1)
_log = logging.getLogger("atelier.auth")


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What is known of a key, never its secret."""

    id: str
    principal: str
    scopes: tuple[str, ...]
    create_time: datetime
    revoke_time: datetime | None
    last_used_time: datetime | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    info: ApiKeyInfo
    # The whole key, secret included: shown once, when it is made, and kept nowhere.
    key: str


class ApiKeys:
    def __init__(
        self, *, db: storage.Database, cache_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._clock = clock
        # key id -> (read at, the stored key or None for no such key)
        self._cache: LRU[str, tuple[float, storage.ApiKey | None]] = LRU(max_entries=_CACHED_KEYS)
        self._exist_checked_at: float | None = None
        self._exist = False

    async def create(self, *, principal: str, scopes: Iterable[str]) -> NewApiKey:
        """A new key for `principal` with `scopes` (ValueError if either is not valid)."""
        checked = Principal.of(principal, scopes)
        key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        row = await transactions.write(
            self._db,
            lambda tx: storage.create_api_key(
                tx,
                key_id=key_id,
                principal=checked.name,
                scopes=" ".join(s for s in SCOPES if s in checked.scopes),
                secret_sha256=_digest(secret),
            ),
        )
        self._exist = True
        return NewApiKey(_info_of(row), f"{KEY_PREFIX}{key_id}_{secret}")

    async def list_all(self) -> list[ApiKeyInfo]:
        rows = await transactions.read(self._db, storage.list_api_keys)
        return [_info_of(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revokes the key (a key already revoked keeps its first revocation time)."""
        row = await transactions.write(self._db, lambda tx: storage.revoke_api_key(tx, key_id=key_id))
        if row is None:
            raise NotFound(f"no API key {key_id!r}", reason="API_KEY_NOT_FOUND", metadata={"key_id": key_id})
        self._cache.put(key_id, (self._clock(), row))
        return _info_of(row)

    async def exist(self) -> bool:
        """Whether any key was ever made. Once one was, the answer stays yes (keys are revoked,
        never deleted), so a server with keys never falls back to letting everyone in."""
        now = self._clock()
        if self._exist or (
            self._exist_checked_at is not None and now - self._exist_checked_at < self._cache_seconds
        ):
            return self._exist
        self._exist = await transactions.read(self._db, storage.has_api_keys)
        self._exist_checked_at = now
        return self._exist

    async def authenticate(self, key: str) -> Principal:
        """The principal `key` stands for; Unauthenticated if it is not a valid key or was revoked."""
        match = _KEY.fullmatch(key)
        if match is None:
            raise _invalid()
        key_id, secret = match.groups()
        row, fresh = await self._stored(key_id)
        # Both branches compare, so that an unknown id and a wrong secret take the same time.
        expected = row.secret_sha256 if row is not None else _digest("")
        if not hmac.compare_digest(expected, _digest(secret)) or row is None:
            raise _invalid()
        if row.revoke_time is not None:
            raise Unauthenticated(
                f"API key {key_id} was revoked; ask for a new one",
                reason="API_KEY_REVOKED",
                metadata={"key_id": key_id},
            )
        if fresh:
            await self._mark_used(row)
        return Principal.of(row.principal, row.scopes.split())

    async def _stored(self, key_id: str) -> tuple[storage.ApiKey | None, bool]:
        """The stored key (or None) and whether it was just read rather than taken from the cache."""
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1], False
        row = await transactions.read(self._db, lambda tx: storage.get_api_key(tx, key_id=key_id))
        self._cache.put(key_id, (now, row))
        return row, True

    async def _mark_used(self, row: storage.ApiKey) -> None:
        now = storage.utcnow()
        if row.last_used_time is not None and now - row.last_used_time < _LAST_USED_STEP:
            return
        try:
            await transactions.write(
                self._db, lambda tx: storage.mark_api_key_used(tx, key_id=row.id, when=now)
            )
        except storage.StorageError:
            # Bookkeeping: the call it is for goes on.
            _log.warning("could not record the use of API key %s", row.id, exc_info=True)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _invalid() -> Unauthenticated:
    return Unauthenticated("the API key is not valid on this server", reason="INVALID_API_KEY")


def _info_of(row: storage.ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        principal=row.principal,
        scopes=tuple(row.scopes.split()),
        create_time=row.create_time,
        revoke_time=row.revoke_time,
        last_used_time=row.last_used_time,
    )
