"""Where webhooks may go: the allowed URL prefixes, or else public https hosts only.

A webhook URL comes from a caller and the server POSTs to it, so an unchecked one would let any
caller reach the server's own network (SSRF). With ATELIER_WEBHOOK_ALLOWED_URLS set, a URL must
fall under one of its prefixes, and only then may it be private. Without it, a URL must be https
and its host must have only public addresses: checked when the request comes, and again before
each attempt (a name can start resolving elsewhere later).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

import anyio

from server.config import Settings, UrlPattern
from server.domain.errors import FieldViolation, InvalidArgument


class DestinationRefused(Exception):
    """Why a URL is no place to deliver to."""


def allowed_by_pattern(url: str, patterns: tuple[UrlPattern, ...]) -> bool:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    return any(_matches(pattern, parts.scheme, host, port, path) for pattern in patterns)


def _matches(pattern: UrlPattern, scheme: str, host: str, port: int, path: str) -> bool:
    if pattern.scheme != scheme or pattern.port != port:
        return False
    if pattern.host.startswith("*."):
        if not host.endswith(pattern.host[1:]):
            return False
    elif pattern.host != host:
        return False
    prefix = pattern.path
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def _syntax_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.fragment:
        return "must not have a #fragment"
    return None


async def check_destination(url: str, settings: Settings) -> None:
    """Raises DestinationRefused unless webhooks may be delivered to `url` now."""
    problem = _syntax_problem(url)
    if problem is not None:
        raise DestinationRefused(f"the webhook URL {problem}")
    patterns = settings.webhook_url_patterns
    if patterns:
        if not allowed_by_pattern(url, patterns):
            raise DestinationRefused(
                "the webhook URL is not under any URL this server allows (ATELIER_WEBHOOK_ALLOWED_URLS)"
            )
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise DestinationRefused("the webhook URL must be https (or allowed by ATELIER_WEBHOOK_ALLOWED_URLS)")
    await _check_public(parts.hostname or "", parts.port or 443)


async def _check_public(host: str, port: int) -> None:
    try:
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DestinationRefused(f"the webhook URL's host {host!r} does not resolve: {exc}") from exc
    for *_, address in found:
        if not _public(str(address[0])):
            raise DestinationRefused(
                f"the webhook URL's host {host!r} has a private address ({address[0]}); "
                "only ATELIER_WEBHOOK_ALLOWED_URLS may name private destinations"
            )


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_webhook_url(url: str, settings: Settings) -> None:
    """A request's webhook URL, checked: INVALID_ARGUMENT (WEBHOOK_URL_NOT_ALLOWED) if refused."""
    try:
        await check_destination(url, settings)
    except DestinationRefused as refused:
        raise InvalidArgument(
            str(refused),
            reason="WEBHOOK_URL_NOT_ALLOWED",
            metadata={"url": url},
            violations=[FieldViolation("webhook.url", str(refused))],
        ) from refused
