"""Where a client connects and how: arguments first, then `ATELIER_*` environment variables."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import grpc

from atelier._retry import RetryPolicy

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
# Following a job can take long; it still has a deadline, which `timeout=` overrides per call.
DEFAULT_PROGRESS_TIMEOUT = 3600.0
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# About 4 s of retries for a single call; a Progress stream waits longer (about 25 s, counted from
# its last event) for a restarting server to come back.
DEFAULT_RETRY = RetryPolicy(max_attempts=5, initial_backoff=0.25, max_backoff=4.0)
DEFAULT_PROGRESS_RETRY = RetryPolicy(max_attempts=10, initial_backoff=0.25, max_backoff=4.0)


class _Default(enum.Enum):
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default.DEFAULT
"""A sentinel: "use the client's setting", distinct from `None` (which means "no deadline")."""

Timeout: TypeAlias = float | Literal[_Default.DEFAULT] | None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A client's resolved settings."""

    target: str
    token: str | None
    tls: bool
    root_certificates: bytes | None
    # A client certificate and its key, for servers that ask for one (mutual TLS).
    certificate_chain: bytes | None
    private_key: bytes | None = field(repr=False)
    timeout: float | None
    retry: RetryPolicy
    progress_retry: RetryPolicy

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def timeout_for(self, timeout: Timeout, *, default: float | None = None) -> float | None:
        if timeout is DEFAULT:
            return self.timeout if default is None else default
        return timeout


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _pem_file(env: Mapping[str, str], variable: str) -> bytes | None:
    path = env.get(variable)
    return Path(path).read_bytes() if path else None


def resolve_config(
    *,
    target: str | None,
    token: str | None,
    tls: bool | None,
    root_certificates: bytes | None,
    timeout: float | None,
    retry: RetryPolicy | None,
    progress_retry: RetryPolicy | None = None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Arguments win; then ATELIER_TARGET, ATELIER_TOKEN, ATELIER_TLS and the files named by
    ATELIER_TLS_CA_FILE, ATELIER_TLS_CLIENT_CERT_FILE and ATELIER_TLS_CLIENT_KEY_FILE; then the
    defaults. Any certificate asks for TLS, unless `tls=False` says otherwise."""
    env = os.environ if environ is None else environ
    if root_certificates is None:
        root_certificates = _pem_file(env, "ATELIER_TLS_CA_FILE")
    if certificate_chain is None:
        certificate_chain = _pem_file(env, "ATELIER_TLS_CLIENT_CERT_FILE")
    if private_key is None:
        private_key = _pem_file(env, "ATELIER_TLS_CLIENT_KEY_FILE")
    if (certificate_chain is None) != (private_key is None):
        raise ValueError(
            "a client certificate goes with its private key: give both certificate_chain and private_key "
            "(ATELIER_TLS_CLIENT_CERT_FILE and ATELIER_TLS_CLIENT_KEY_FILE), or neither"
        )
    certificates = root_certificates is not None or certificate_chain is not None
    use_tls = tls if tls is not None else (_flag(env.get("ATELIER_TLS")) or certificates)
    return ClientConfig(
        target=check_target(target or env.get("ATELIER_TARGET") or DEFAULT_TARGET),
        token=token if token is not None else (env.get("ATELIER_TOKEN") or None),
        tls=use_tls,
        root_certificates=root_certificates,
        certificate_chain=certificate_chain,
        private_key=private_key,
        timeout=timeout,
        retry=retry if retry is not None else DEFAULT_RETRY,
        progress_retry=progress_retry if progress_retry is not None else DEFAULT_PROGRESS_RETRY,
    )


def check_target(target: str) -> str:
    """The target, unless it is a web URL: gRPC would take `http://…` for a DNS name and fail later,
    far from the cause."""
    scheme, separator, rest = target.partition("://")
    if separator and scheme.lower() in ("http", "https"):
        address = rest.rstrip("/")
        with_tls = " with TLS (--tls, tls=True or ATELIER_TLS=1)" if scheme.lower() == "https" else ""
        raise ValueError(
            f"the target {target!r} is a web URL; a gRPC target is HOST:PORT: use {address!r}{with_tls}"
        )
    return target


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Progress streams can be quiet for minutes: ping so that NATs and proxies keep them open.
        # The server allows a ping every 10 s.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Reconnect soon after a server restart, so that retries find it (gRPC's default waits
        # up to 120 s between connection attempts).
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def _channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials:
    # No root certificates: gRPC's own roots (or GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
    return grpc.ssl_channel_credentials(
        root_certificates=config.root_certificates,
        private_key=config.private_key,
        certificate_chain=config.certificate_chain,
    )


def sync_channel(config: ClientConfig) -> grpc.Channel:
    if config.tls:
        return grpc.secure_channel(config.target, _channel_credentials(config), options=channel_options())
    return grpc.insecure_channel(config.target, options=channel_options())


def aio_channel(config: ClientConfig) -> grpc.aio.Channel:
    if config.tls:
        return grpc.aio.secure_channel(config.target, _channel_credentials(config), options=channel_options())
    return grpc.aio.insecure_channel(config.target, options=channel_options())
