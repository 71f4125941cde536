"""Signed file URLs: `{base}/files/generations/{g}/versions/{n}/{path}?exp=..&sig=..`, which serve
a version's file with no credentials until `exp` (Unix seconds), so that `<img src>` and
`<audio src>` work. The signature is an HMAC-SHA256, under the server's URL signing key, of the
version, the path and the expiry: whoever holds the URL may read that one file until then, and
nothing else (the model of presigned object-store URLs).

URLs made within the same half period are the same URL, so browsers' caches hold across listings;
each works for between `seconds` and 1.5 times `seconds`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import urllib.parse

from server.config import Settings
from server.domain import PermissionDenied, VersionRef

_log = logging.getLogger("atelier.api")
ROUTE = "/files/"


class FileUrls:
    def __init__(self, *, key: bytes, seconds: float, base: str) -> None:
        self._key = key
        self._seconds = int(seconds)
        # The base for calls that did not come through the web port (the gRPC port's callers).
        self._base = base.rstrip("/")

    @classmethod
    def of(cls, settings: Settings, *, web_url: str) -> FileUrls:
        """The server's URLs: its key (or a random one, with a warning), its public base."""
        key = settings.url_signing_key.encode()
        if not key:
            _log.warning(
                "ATELIER_URL_SIGNING_KEY is not set: file URLs are signed with a random key of this "
                "process, so they stop working when it restarts and other replicas refuse them"
            )
            key = secrets.token_bytes(32)
        return cls(key=key, seconds=settings.file_url_seconds, base=settings.public_url or web_url)

    def url(self, ref: VersionRef, path: str, *, base: str | None = None, now: float | None = None) -> str:
        """The signed URL of a version's file, on `base` (the web port as the caller reached it)
        unless the server has a public URL."""
        step = max(self._seconds // 2, 1)
        expires = (int(now if now is not None else time.time()) // step + 1) * step + self._seconds
        signature = self._sign(ref, path, expires)
        location = f"{ROUTE}generations/{ref.generation_id}/versions/{ref.number}/{urllib.parse.quote(path)}"
        return f"{base or self._base}{location}?exp={expires}&sig={signature}"

    def check(self, ref: VersionRef, path: str, expires: str, signature: str) -> None:
        """Raises PermissionDenied (URL_SIGNATURE_INVALID or URL_EXPIRED) unless the URL is one
        this server signed and it has not expired."""
        if not expires.isdigit() or not hmac.compare_digest(
            self._sign(ref, path, int(expires)).encode(), signature.encode("utf-8", "replace")
        ):
            raise PermissionDenied(
                "this file URL's signature is not valid: ask for a fresh URL (ListFiles)",
                reason="URL_SIGNATURE_INVALID",
            )
        if int(expires) < time.time():
            raise PermissionDenied(
                "this file URL has expired: ask for a fresh URL (ListFiles)",
                reason="URL_EXPIRED",
                metadata={"expired": expires},
            )

    def _sign(self, ref: VersionRef, path: str, expires: int) -> str:
        signed = f"{ref.generation_id}/{ref.number}/{path}\n{expires}".encode()
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
