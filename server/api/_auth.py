"""Who is calling: `authorization: Bearer <token>` metadata mapped to a principal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from server.domain import Unauthenticated

LOCAL_PRINCIPAL = "local"


class Authenticator:
    def __init__(self, principals_by_token: Mapping[str, str]) -> None:
        self._principals = dict(principals_by_token)

    def principal(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
        """The caller's principal. With no tokens configured (the dev default) everyone is `local`."""
        if not self._principals:
            return LOCAL_PRINCIPAL
        header = next((value for key, value in metadata or () if key == "authorization"), None)
        if header is None:
            raise Unauthenticated(
                "this server requires `authorization: Bearer <token>` metadata", reason="MISSING_CREDENTIALS"
            )
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        principal = self._principals.get(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            raise Unauthenticated("the bearer token is not valid on this server", reason="INVALID_TOKEN")
        return principal
