"""Who is calling: `authorization: Bearer <credential>` metadata turned into a `Principal`.

A credential is one of: a development token from ATELIER_TOKENS, an API key (`atk_...`, kept
in the database, see server.domain.api_keys), or a JWT from the configured OIDC provider. With
none of them configured and no API key ever created, every caller is principal `local` with
read and write: the development default of `make run`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from server.api._jwt import JwtVerifier, looks_like_jwt
from server.config import Settings
from server.domain import READ, WRITE, ApiKeys, Principal, Unauthenticated
from server.domain.api_keys import KEY_PREFIX

LOCAL = Principal("local", frozenset({READ, WRITE}))


class Authenticator:
    def __init__(self, *, settings: Settings, api_keys: ApiKeys) -> None:
        self._dev_tokens = [
            (token.encode(), Principal.of(name, scopes))
            for token, (name, scopes) in settings.dev_tokens.items()
        ]
        self._api_keys = api_keys
        self._jwt = JwtVerifier(settings) if settings.jwt_jwks else None

    async def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The caller; Unauthenticated (with a reason) when its credential is missing or not valid."""
        if await self._open():
            return LOCAL
        header = next((value for key, value in metadata or () if key == "authorization"), None)
        if header is None:
            raise Unauthenticated(
                "this server requires `authorization: Bearer <token>` metadata", reason="MISSING_CREDENTIALS"
            )
        text = header.decode(errors="replace") if isinstance(header, bytes) else header
        scheme, _, credential = text.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _invalid_token()
        principal = self._dev_token(credential)
        if principal is not None:
            return principal
        if credential.startswith(KEY_PREFIX):
            return await self._api_keys.authenticate(credential)
        if self._jwt is not None and looks_like_jwt(credential):
            return await self._jwt.verify(credential)
        raise _invalid_token()

    async def _open(self) -> bool:
        return not self._dev_tokens and self._jwt is None and not await self._api_keys.exist()

    def _dev_token(self, credential: str) -> Principal | None:
        given = credential.encode()
        # Every token is compared, in constant time, so that timing tells nothing of them.
        found = [principal for token, principal in self._dev_tokens if hmac.compare_digest(token, given)]
        return found[0] if found else None


def _invalid_token() -> Unauthenticated:
    return Unauthenticated("the bearer token is not valid on this server", reason="INVALID_TOKEN")
