"""Where webhooks may go, and how they are signed, checked without a server."""

from __future__ import annotations

import base64
import time

import anyio
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from server.config import Settings, load_settings
from server.domain.webhooks import signature_header
from server.domain.webhooks._destinations import DestinationRefused, check_destination


def _refused(url: str, settings: Settings) -> str | None:
    async def check() -> str | None:
        try:
            await check_destination(url, settings)
        except DestinationRefused as refused:
            return str(refused)
        return None

    return anyio.run(check)


def test_without_an_allowlist_only_public_https_destinations_are_allowed() -> None:
    settings = Settings()
    assert _refused("https://8.8.8.8/hooks", settings) is None
    for url, problem in [
        ("http://8.8.8.8/hooks", "must be https"),
        ("https://127.0.0.1/hooks", "private address"),
        ("https://10.1.2.3/hooks", "private address"),
        ("https://169.254.169.254/latest/meta-data", "private address"),  # cloud metadata
        ("https://[::1]/hooks", "private address"),
        ("https://[::ffff:127.0.0.1]/hooks", "private address"),  # IPv4 in IPv6 clothing
        ("https://localhost/hooks", "private address"),
        ("https://user:pw@8.8.8.8/hooks", "user name or password"),
        ("https://8.8.8.8:99999/hooks", "not a URL"),
        ("file:///etc/passwd", "http(s) URL"),
    ]:
        refused = _refused(url, settings)
        assert refused is not None and problem in refused, (url, refused)


def test_an_allowlist_is_the_only_way_in_and_may_name_private_hosts() -> None:
    settings = load_settings(
        {"ATELIER_WEBHOOK_ALLOWED_URLS": "http://127.0.0.1:9000/hooks,https://*.example.com/in/"}
    )
    for url in (
        "http://127.0.0.1:9000/hooks",
        "http://127.0.0.1:9000/hooks/alice",
        "https://a.example.com/in/x",
        "https://b.a.example.com/in/",
    ):
        assert _refused(url, settings) is None, url
    for url in (
        "http://127.0.0.1:9000/hooksmith",  # a prefix ends at a path segment
        "http://127.0.0.1:9001/hooks",
        "https://127.0.0.1:9000/hooks",
        "https://example.com/in/x",  # *. means subdomains
        "https://a.example.com.evil.net/in/x",
        "https://8.8.8.8/hooks",  # public, but not allowed: the list is the only way in
    ):
        assert _refused(url, settings) is not None, url


def test_signatures_verify_with_an_independent_implementation() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    keys = load_settings({"ATELIER_WEBHOOK_SECRET": f"{secret},{old}"}).webhook_secrets
    body = b'{"type":"version.completed","timestamp":"2026-01-01T00:00:00Z","data":{}}'
    now = int(time.time())
    header = signature_header(keys, "msg_1", now, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
    assert len(header.split(" ")) == 2  # one per secret: receivers of either verify it
    Webhook(secret).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})
