"""JWT bearer tokens from an OIDC provider, checked against its JWKS (a file or an http(s) URL).

A token is accepted when its signature verifies with a key of the JWKS (by `kid`), with an
asymmetric algorithm that key allows, and when it carries the configured `iss` and `aud`, a
`sub` and an unexpired `exp`. `sub` is the principal; its scopes come from the `scope` claim
(space-separated) or `scp` (a list or a string), as `read` or `atelier:read` and so on, other
scopes ignored; a token with neither claim gets read and write.

The JWKS is read once, read again when a token names a `kid` it lacks (a provider rotating its
keys; at most once per `_REFRESH_UNKNOWN_KID_SECONDS`, so that made-up kids cannot make the server
fetch on every call), and when it is older than `_MAX_AGE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import jwt

from server.config import SCOPES, Settings
from server.domain import Principal, Unauthenticated, Unavailable

_log = logging.getLogger("atelier.auth")
_MAX_AGE_SECONDS = 3600.0
_REFRESH_UNKNOWN_KID_SECONDS = 10.0
_FETCH_TIMEOUT_SECONDS = 10.0
_MAX_JWKS_BYTES = 1024 * 1024
# Clock skew allowed between the provider and this server, for exp, nbf and iat.
_LEEWAY_SECONDS = 30
# The algorithms a key of each type may sign with. Symmetric (HS*) ones are never accepted: the
# JWKS is public, and a token "signed" with it as an HMAC secret must not verify.
_ALGORITHMS = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
}
_ANY_ALGORITHM = frozenset().union(*_ALGORITHMS.values())
_DEFAULT_SCOPES = ("read", "write")

# PyJWT's errors, most specific first, as the reason each is refused with.
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "JWT_EXPIRED", "the token has expired"),
    (jwt.ImmatureSignatureError, "JWT_NOT_YET_VALID", "the token is not valid yet (nbf)"),
    (jwt.InvalidIssuedAtError, "JWT_NOT_YET_VALID", "the token was issued in the future (iat)"),
    (
        jwt.InvalidIssuerError,
        "JWT_WRONG_ISSUER",
        "the token's issuer (iss) is not the one this server trusts",
    ),
    (jwt.InvalidAudienceError, "JWT_WRONG_AUDIENCE", "the token's audience (aud) is not this server"),
    (jwt.InvalidSignatureError, "JWT_BAD_SIGNATURE", "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "JWT_ALGORITHM_NOT_ALLOWED", "the token's algorithm is not allowed"),
    (jwt.MissingRequiredClaimError, "JWT_MISSING_CLAIM", "the token lacks a required claim"),
    (jwt.InvalidTokenError, "JWT_MALFORMED", "the token is not a valid JWT"),
)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class JwtVerifier:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = settings.jwt_jwks
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._clock = clock
        self._keys: dict[str | None, Mapping[str, Any]] = {}
        self._loaded_at: float | None = None
        self._refreshed_for_kid_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _refused("JWT_MALFORMED", f"the token is not a valid JWT: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm not in _ANY_ALGORITHM:
            raise _refused(
                "JWT_ALGORITHM_NOT_ALLOWED",
                f"the token's algorithm {str(algorithm)[:20]!r} is not allowed; "
                f"use one of {', '.join(sorted(_ANY_ALGORITHM))}",
            )
        kid = header.get("kid")
        jwk = await self._key(kid if isinstance(kid, str) else None)
        if jwk is None:
            raise _refused(
                "JWT_UNKNOWN_KEY",
                "the token's key id (kid) is not in the provider's JWKS",
                kid=str(kid)[:100],
            )
        if algorithm not in _allowed_algorithms(jwk):
            raise _refused(
                "JWT_ALGORITHM_NOT_ALLOWED", f"the token's algorithm {algorithm} does not fit its key"
            )
        try:
            claims = jwt.decode(
                token,
                key=jwt.PyJWK(dict(jwk), algorithm),
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            reason, message = next((r, m) for kind, r, m in _REASONS if isinstance(exc, kind))
            metadata = {"claim": exc.claim} if isinstance(exc, jwt.MissingRequiredClaimError) else {}
            raise _refused(reason, f"{message}: {exc}", **metadata) from exc
        except jwt.PyJWTError as exc:  # the JWKS key itself is unusable
            _log.warning("a key of the JWKS cannot verify tokens: %s", exc)
            raise _refused("JWT_UNKNOWN_KEY", "the token's key in the provider's JWKS is not usable") from exc
        try:
            return Principal.of(claims["sub"], _scopes(claims))
        except (TypeError, ValueError) as exc:
            raise _refused(
                "JWT_INVALID_SUBJECT", f"the token's subject (sub) is not a principal: {exc}"
            ) from exc

    async def _key(self, kid: str | None) -> Mapping[str, Any] | None:
        async with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= _MAX_AGE_SECONDS:
                await self._load(keep_old=self._loaded_at is not None)
            elif self._find(kid) is None and (
                self._refreshed_for_kid_at is None
                or now - self._refreshed_for_kid_at >= _REFRESH_UNKNOWN_KID_SECONDS
            ):
                self._refreshed_for_kid_at = now
                await self._load(keep_old=True)
            return self._find(kid)

    def _find(self, kid: str | None) -> Mapping[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    async def _load(self, *, keep_old: bool) -> None:
        try:
            document = await anyio.to_thread.run_sync(self._fetch)
            keys = _usable_keys(document)
        except (OSError, ValueError) as exc:
            _log.warning("could not read the JWKS from %s: %s", self._source, exc)
            if keep_old:
                return
            raise Unavailable(
                "the server cannot read its identity provider's keys (JWKS) now; try again",
                reason="JWKS_UNAVAILABLE",
            ) from exc
        self._keys = keys
        self._loaded_at = self._clock()

    def _fetch(self) -> Any:
        if self._source.startswith(("https://", "http://")):
            request = urllib.request.Request(self._source, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_SECONDS) as response:
                data = response.read(_MAX_JWKS_BYTES + 1)
        else:
            data = Path(self._source).read_bytes()
        if len(data) > _MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is over {_MAX_JWKS_BYTES} bytes")
        return json.loads(data)


def _usable_keys(document: Any) -> dict[str | None, Mapping[str, Any]]:
    """The JWKS's signing keys of the types above, by kid (ValueError if it is not a JWKS)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is a JSON object with a "keys" list')
    keys: dict[str | None, Mapping[str, Any]] = {}
    for key in document["keys"]:
        if isinstance(key, dict) and key.get("kty") in _ALGORITHMS and key.get("use", "sig") == "sig":
            keys[key.get("kid")] = key
    return keys


def _allowed_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    family = _ALGORITHMS[jwk["kty"]]
    declared = jwk.get("alg")
    return family & {declared} if declared else family


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    granted = claims.get("scope", claims.get("scp"))
    if granted is None:
        return list(_DEFAULT_SCOPES)
    names = granted.split() if isinstance(granted, str) else granted
    if not isinstance(names, list):
        return []
    return [scope for name in names if (scope := str(name).removeprefix("atelier:")) in SCOPES]


def _refused(reason: str, message: str, **metadata: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason, metadata=metadata)
