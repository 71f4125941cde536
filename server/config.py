"""The one place Atelier's configuration comes from.

Values are read from an optional TOML file named by `ATELIER_CONFIG`, then from
`ATELIER_*` environment variables, which win. Everything else (the server, the
providers, ListModels) reads the resulting `Settings`.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_PREFIX = "ATELIER_"
# The scopes a credential can carry (see server.domain.principals), and the longest principal name
# (the owner columns hold 200 characters).
SCOPES = ("read", "write", "admin")
MAX_PRINCIPAL_LENGTH = 200
# What a development token (ATELIER_TOKENS) grants when it names no scopes.
_DEFAULT_TOKEN_SCOPES = ("read", "write")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A model clients may ask for, and the provider that serves it."""

    name: str
    provider: str
    display_name: str
    output_modalities: tuple[str, ...] = ("text",)
    # Limits that hold across every replica on one database: model calls in flight, requests per
    # minute, and input tokens per minute (what Gemini's TPM quota counts; each request's tokens
    # are estimated before it goes out, then corrected by the model's own count). None: no limit
    # of its own (a provider's real quota shows itself as 429s).
    max_concurrent: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    # The price table (USD): per million input tokens, per million output tokens (thinking tokens
    # are billed as output), and per image the model answers with. 0: free, or no price known.
    input_price_per_million: float = 0.0
    output_price_per_million: float = 0.0
    image_price: float = 0.0
    # What EstimateCost assumes one call to the model answers with (it cannot know beforehand).
    estimated_output_tokens: int = 1000
    estimated_images: int = 0


# Built-in prices (USD) of the models Atelier knows by name, as Google listed them for the paid
# tier in 2025; a config file's [[models]] entries set their own. Gemini bills an image as 1290
# output tokens ($30 per million): the image model's price is per image instead, and its few text
# tokens are not billed on top.
_BUILTIN_PRICES: dict[str, dict[str, float | int]] = {
    "gemini-2.5-flash": {"input_price_per_million": 0.30, "output_price_per_million": 2.50},
    "gemini-2.5-flash-image": {
        "input_price_per_million": 0.30,
        "image_price": 0.039,
        "estimated_output_tokens": 50,
        "estimated_images": 1,
    },
}


def _priced(model: ModelConfig) -> ModelConfig:
    """The model with its built-in prices, if Atelier knows it by name."""
    return replace(model, **_BUILTIN_PRICES.get(model.name, {}))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class UrlPattern:
    """A destination webhooks may be delivered to: a scheme, a host (`*.example.com`: its
    subdomains), a port and a path prefix."""

    scheme: str
    host: str
    port: int
    path: str


# The models each provider serves unless the config file lists models itself.
_BUILTIN_MODELS: dict[str, tuple[ModelConfig, ...]] = {
    "offline": (
        ModelConfig(
            "offline", "offline", "Offline (deterministic, no network)", output_modalities=("text", "image")
        ),
    ),
    "scripted": (ModelConfig("scripted", "scripted", "Scripted (for tests)"),),
}


def _gemini_models(settings: Settings) -> tuple[ModelConfig, ...]:
    return (
        _priced(ModelConfig(settings.gemini_model, "gemini", f"Gemini ({settings.gemini_model})")),
        _priced(
            ModelConfig(
                settings.gemini_image_model,
                "gemini",
                f"Gemini image ({settings.gemini_image_model})",
                output_modalities=("text", "image"),
                estimated_images=1,
            )
        ),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the server. The comment right above a field is its documentation: the
    settings table of docs/OPERATIONS.md and the README is generated from it (`make docs`)."""

    # The gRPC address to serve on, host:port (port 0 picks a free port).
    listen: str = "127.0.0.1:50051"
    # The database: SQLite (sqlite:///path/to/atelier.db) or PostgreSQL
    # (postgresql+psycopg://user:password@host:5432/database).
    database_url: str = "sqlite:///./var/atelier.db"
    # The provider whose first model serves requests that name no model.
    provider: str = "offline"
    # A model name; empty means the first model of `provider`.
    default_model: str = ""
    # Development tokens, comma-separated: "token:principal" (read and write) or
    # "token:principal:scope+scope" (for example "root-token:root:admin"). With no tokens, no JWT
    # settings and no API key ever created, every caller is principal `local` (read and write).
    tokens: str = ""
    # JWT bearer tokens from an OIDC provider: its JWKS (a file path or an http(s) URL, such as
    # the provider's jwks_uri). Needs the issuer and audience too: all three, or none.
    jwt_jwks: str = ""
    # The `iss` every JWT must carry.
    jwt_issuer: str = ""
    # The `aud` every JWT must carry (one of its audiences).
    jwt_audience: str = ""
    # How long this process trusts what it read of an API key: a revoked key stops working
    # within this many seconds (0: read the key on every call).
    api_key_cache_seconds: float = 5.0
    # The longest prompt a request may carry; a longer one is refused (INVALID_ARGUMENT).
    max_prompt_bytes: int = 32 * 1024
    # The most bytes a request's attachments may hold, all together (0: none are accepted).
    max_attachment_bytes: int = 16 * 1024 * 1024
    # The largest gRPC message the server receives or sends.
    max_message_bytes: int = 32 * 1024 * 1024
    # Jobs this process runs at once. A job mostly waits on its model, so this is about memory
    # and the models' limits, not about cores. 0: this process serves the API and runs no job.
    max_in_flight: int = 1000
    # Jobs one principal may have running at once, across every replica (0: no cap).
    max_in_flight_per_principal: int = 0
    # A principal's request rate, per second, on each replica (server/api/_limits.py): a token
    # bucket, kept by each replica for itself, so behind a balancer over n replicas a principal
    # gets up to n times it. Over it, RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo (0: no
    # limit). Like every limit per principal, the default stops a runaway client, not a busy one.
    rate_limit_per_second: float = 1000.0
    # How many requests a principal may make at once before its rate limit applies (the bucket).
    rate_limit_burst: int = 2000
    # Jobs a principal may have queued or running, across every replica (counted in the
    # database); over it, Generate, Tweak, Iterate and Regenerate get TOO_MANY_QUEUED_JOBS
    # (0: no cap).
    max_queued_jobs_per_principal: int = 10_000
    # Server streams (Progress, ReadFile, ExportTree) a principal may have open at once on one
    # replica: TOO_MANY_STREAMS (0: no cap).
    max_streams_per_principal: int = 1000
    # Uploads (UploadTree, and UploadFiles on the web port) a principal may have open at once on
    # one replica: TOO_MANY_UPLOADS (0: no cap).
    max_uploads_per_principal: int = 8
    # Uploads one replica receives at once, from everyone: SERVER_UPLOADS_BUSY (0: no cap).
    max_uploads: int = 64
    # The largest file a version's tree may hold (an upload's, an attachment's or a model's).
    max_file_bytes: int = 32 * 1024 * 1024
    # The most bytes a version's tree may hold, all files together.
    max_tree_bytes: int = 512 * 1024 * 1024
    # The most files a version's tree may hold.
    max_tree_files: int = 100_000
    # A refinement that deletes more than this share of the tree, unasked, ends NEEDS_REVIEW.
    max_deletion_share: float = 0.5
    # How long a worker's claim on a job lasts without renewal: a crashed worker's job is
    # requeued after this.
    job_lease_seconds: float = 30.0
    # How often a worker renews the leases of its jobs (and sees cancellations).
    job_heartbeat_seconds: float = 2.0
    # How many times a job may lose its worker (crashed, killed); then it fails WORKER_LOST.
    job_max_attempts: int = 3
    # On SIGTERM, running jobs get this long to finish; then they are requeued for another replica.
    shutdown_grace_seconds: float = 10.0
    # How often this process reads, in one statement for all its Progress streams, the latest
    # event of every version they follow: it finds events that no notification announced.
    progress_poll_seconds: float = 1.0
    # The server's log level: DEBUG, INFO, WARNING or ERROR.
    log_level: str = "INFO"
    # The Gemini API key (google-genai); also read from GEMINI_API_KEY.
    gemini_api_key: str = field(default="", repr=False)
    # The Gemini text model offered (with ATELIER_PROVIDER=gemini and no [[models]]).
    gemini_model: str = "gemini-2.5-flash"
    # The Gemini image model offered (with ATELIER_PROVIDER=gemini and no [[models]]).
    gemini_image_model: str = "gemini-2.5-flash-image"
    # Overrides Google's endpoint (tests point it at a local fake).
    gemini_base_url: str = ""
    # The Gemini API version google-genai calls.
    gemini_api_version: str = "v1beta"
    # The longest wait for the next bytes of a Gemini answer (google-genai's timeout); timing
    # out counts as a failed attempt (retried like a 5xx).
    gemini_timeout_seconds: float = 120.0
    # The longest one Gemini request may take to answer in full, however steadily it streams;
    # timing out counts as a failed attempt (retried like a 5xx).
    gemini_attempt_seconds: float = 600.0
    # How many bytes of a tree's file contents go to the model with a refinement; the other
    # files are listed by path, size and SHA-256.
    provider_context_budget_bytes: int = 1024 * 1024
    # Tries per model call on 5xx and timeouts (with capped exponential backoff), then the
    # version fails.
    provider_max_attempts: int = 4
    # The first backoff between tries of a model call; it doubles on each try, up to
    # ATELIER_PROVIDER_BACKOFF_MAX_SECONDS.
    provider_backoff_initial_seconds: float = 0.5
    # The longest backoff between tries of a model call.
    provider_backoff_max_seconds: float = 8.0
    # A 429 cools the whole model down: the cooldown honours the delay the answer asks for, and
    # backs off (up to this) while probes are refused.
    model_cooldown_max_seconds: float = 60.0
    # How long a job may wait in all for its model's cooldowns and request budget; then it
    # fails MODEL_QUOTA_EXHAUSTED.
    provider_max_wait_seconds: float = 300.0
    # Where Prometheus metrics are served (host:port); empty: not served.
    metrics_listen: str = ""
    # TLS on the gRPC port and the web port: the server's PEM certificate chain, set with
    # ATELIER_TLS_KEY_FILE (both, or neither: plaintext). SIGHUP reads the TLS files again
    # (server/tls.py).
    tls_cert_file: str = ""
    # The unencrypted PEM private key of the TLS certificate.
    tls_key_file: str = ""
    # PEM roots that callers' certificates must chain to: every caller must present one (mutual
    # TLS). Needs the certificate and key files.
    tls_client_ca_file: str = ""
    # Whether `serve` brings the database schema up to date before it serves. With several
    # replicas, turn it off and run `atelier-server migrate` once per release instead (either
    # way, concurrent migrations wait for one another: see storage.Database.migrate).
    migrate_on_start: bool = True
    # How long a deleted generation can be undeleted before the garbage collector purges it.
    deleted_retention_seconds: float = 7 * 24 * 3600.0
    # Generations not updated (no new version) for this long are deleted, as by DeleteGeneration
    # (0: kept for ever).
    retention_seconds: float = 0.0
    # How often `serve` collects garbage: retention, purges, blobs nothing refers to, and draft
    # reservations a stopped server left (0: never; `atelier-server gc` does it on demand).
    gc_interval_seconds: float = 3600.0
    # The collector leaves blobs stored less than this long ago, for writers that store contents
    # in one transaction and refer to them in a later one.
    gc_grace_seconds: float = 3600.0
    # The most outputs one fan-out (Generate or Regenerate with variants or a count) may ask for.
    max_batch_size: int = 16
    # The offline provider pauses this long at the start of each of its stages (0: no pause), so
    # that stages, Cancel and Ctrl-C can be watched: `make demo` sets it.
    offline_pace_seconds: float = 0.0
    # Webhooks (README "Webhooks"). The signing secrets, comma-separated, in the Standard Webhooks
    # form `whsec_<base64 of 24 to 64 random bytes>`:
    # each signs every delivery, so a new secret can be added before an old one is dropped.
    # Empty: webhooks are off, and a request with one is refused.
    webhook_secret: str = field(default="", repr=False)
    # Where deliveries may go, comma-separated: URL prefixes such as `https://hooks.example.com/`
    # or `http://127.0.0.1:9000/atelier` (a host may start with `*.` for its subdomains). A URL
    # allowed here may be private. Empty: any https URL whose host has only public addresses
    # (checked when the request comes and again before each attempt).
    webhook_allowed_urls: str = ""
    # The pauses between attempts, in seconds, comma-separated: after the last one fails, the
    # delivery is given up (FAILED). Each pause varies by up to a fifth (jitter).
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000"
    # How long one attempt may take.
    webhook_timeout_seconds: float = 15.0
    # How many attempts this process makes at once.
    webhook_max_in_flight: int = 16
    # How often the deliverer looks for due deliveries (it is also woken by this process's jobs).
    webhook_poll_seconds: float = 1.0
    # The web port (host:port), in the same process: AtelierService over Connect and gRPC-Web,
    # files by signed URL, /healthz. Empty: no web port.
    web_listen: str = "127.0.0.1:8080"
    # The origins (scheme://host[:port], comma-separated) whose pages may call the web port from
    # a browser (CORS); "*" allows any. Empty: only pages the web port serves itself.
    cors_origins: str = ""
    # Whether the web port serves the web console (clients/web/console/public) at `/`.
    web_console: bool = True
    # The web port's address as clients reach it (for example https://atelier.example.com behind
    # a proxy), the base of file URLs. Empty: the address the request came to (for a gRPC call,
    # the web port's own address).
    public_url: str = ""
    # The HMAC key that signs file URLs. Replicas behind one address must share it. Empty: a
    # random key per process, so URLs stop working when the process restarts (a warning says so).
    url_signing_key: str = field(default="", repr=False)
    # How long a file URL works: between this and 1.5 times this, since URLs made within the same
    # half period are the same URL (so that browsers' caches hold).
    file_url_seconds: float = 3600.0
    # Models from the config file's [[models]] tables; empty means the built-in ones.
    models: tuple[ModelConfig, ...] = field(default=())

    @property
    def dev_tokens(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """ATELIER_TOKENS as token -> (principal, scopes)."""
        result: dict[str, tuple[str, tuple[str, ...]]] = {}
        entries = [item.strip() for item in self.tokens.split(",") if item.strip()]
        for number, entry in enumerate(entries, 1):
            parts = entry.split(":")
            token, principal = (*parts, "", "")[:2]
            named = parts[2] if len(parts) == 3 else ""
            scopes = tuple(named.split("+")) if named else _DEFAULT_TOKEN_SCOPES
            if len(parts) not in (2, 3) or not token or not principal or set(scopes) - set(SCOPES):
                raise ValueError(
                    f"{_PREFIX}TOKENS entries are token:principal or token:principal:scope+scope "
                    f"(scopes: {', '.join(SCOPES)}); entry {number} is not"  # it holds a secret: not echoed
                )
            if len(principal) > MAX_PRINCIPAL_LENGTH:
                raise ValueError(f"{_PREFIX}TOKENS: a principal is at most {MAX_PRINCIPAL_LENGTH} characters")
            result[token] = (principal, scopes)
        return result

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip())

    @property
    def available_models(self) -> tuple[ModelConfig, ...]:
        """The models of the configured provider (and the offline one, which needs nothing)."""
        return _models_of(self)[0]

    @property
    def resolved_default_model(self) -> ModelConfig:
        models = self.available_models
        if self.default_model:
            for model in models:
                if model.name == self.default_model:
                    return model
            raise ValueError(f"the default model {self.default_model!r} is not configured")
        for model in models:
            if model.provider == self.provider:
                return model
        return models[0]

    @property
    def webhook_secrets(self) -> tuple[bytes, ...]:
        """The signing keys of ATELIER_WEBHOOK_SECRET, decoded (empty: webhooks are off)."""
        keys: list[bytes] = []
        for number, entry in enumerate((item.strip() for item in self.webhook_secret.split(",")), 1):
            if not entry:
                continue
            encoded = entry.removeprefix("whsec_")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not entry.startswith("whsec_") or not 24 <= len(key) <= 64:
                raise ValueError(
                    f"{_PREFIX}WEBHOOK_SECRET entries are whsec_ then the base64 of 24 to 64 random bytes "
                    f"(README, Webhooks, makes one); entry {number} is not"
                )
            keys.append(key)
        return tuple(keys)

    @property
    def webhook_url_patterns(self) -> tuple[UrlPattern, ...]:
        """ATELIER_WEBHOOK_ALLOWED_URLS, parsed."""
        patterns: list[UrlPattern] = []
        for entry in (item.strip() for item in self.webhook_allowed_urls.split(",")):
            if not entry:
                continue
            parts = urllib.parse.urlsplit(entry)
            try:
                port = parts.port
            except ValueError:
                port = -1
            host = (parts.hostname or "").lower()
            if (
                parts.scheme not in ("http", "https")
                or not host
                or port == -1
                or parts.query
                or parts.username
            ):
                raise ValueError(
                    f"{_PREFIX}WEBHOOK_ALLOWED_URLS entries are http(s) URL prefixes such as "
                    f"https://hooks.example.com/ (a host may start with *.), got {entry!r}"
                )
            default_port = 443 if parts.scheme == "https" else 80
            patterns.append(UrlPattern(parts.scheme, host, port or default_port, parts.path or "/"))
        return tuple(patterns)

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """ATELIER_WEBHOOK_RETRY_SCHEDULE as seconds."""
        try:
            delays = tuple(float(item) for item in self.webhook_retry_schedule.split(",") if item.strip())
        except ValueError:
            delays = (-1.0,)
        if any(delay < 0 or delay != delay for delay in delays):
            raise ValueError(
                f"{_PREFIX}WEBHOOK_RETRY_SCHEDULE is seconds between attempts, comma-separated "
                f"(for example 5,300,1800), got {self.webhook_retry_schedule!r}"
            )
        return delays

    def find_model(self, name: str) -> ModelConfig | None:
        return _models_of(self)[1].get(name)


# The model list of each Settings, built once: every job asks for its model's entry, and a
# slotted frozen dataclass has no room to cache it. Keyed by identity (the entry holds the
# Settings, so its id is not reused while cached); bounded for processes that make many.
_MODELS_CACHE: dict[int, tuple[Settings, tuple[ModelConfig, ...], dict[str, ModelConfig]]] = {}
_MODELS_CACHE_SIZE = 16


def _models_of(settings: Settings) -> tuple[tuple[ModelConfig, ...], dict[str, ModelConfig]]:
    cached = _MODELS_CACHE.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1], cached[2]
    models = _build_models(settings)
    by_name: dict[str, ModelConfig] = {}
    for model in models:
        by_name.setdefault(model.name, model)  # the first of a name wins, as a scan would find it
    if len(_MODELS_CACHE) >= _MODELS_CACHE_SIZE:
        _MODELS_CACHE.clear()
    _MODELS_CACHE[id(settings)] = (settings, models, by_name)
    return models, by_name


def _build_models(settings: Settings) -> tuple[ModelConfig, ...]:
    if settings.models:
        return settings.models
    providers = dict.fromkeys([settings.provider, "offline"])
    models: list[ModelConfig] = []
    for provider in providers:
        if provider == "gemini":
            models.extend(_gemini_models(settings))
        elif provider in _BUILTIN_MODELS:
            models.extend(_BUILTIN_MODELS[provider])
        else:
            known = ", ".join(sorted([*_BUILTIN_MODELS, "gemini"]))
            raise ValueError(f"unknown provider {provider!r}; known: {known}")
    return tuple(models)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads the configuration file (if any) and the environment, and checks the result."""
    environ = os.environ if environ is None else environ
    if f"{_PREFIX}WORKERS" in environ:
        raise ValueError(
            f"{_PREFIX}WORKERS is gone: jobs wait on models, not on cores, so set how many run at once "
            f"with {_PREFIX}MAX_IN_FLIGHT (default 1000), and each model's limits in the config file"
        )
    values: dict[str, Any] = {}
    config_path = environ.get(f"{_PREFIX}CONFIG")
    if config_path:
        values.update(_read_file(Path(config_path)))
    known = {f.name: f for f in fields(Settings) if f.name != "models"}
    for name, spec in known.items():
        raw = environ.get(_PREFIX + name.upper())
        if raw is not None:
            values[name] = _parse(raw, spec.type, name)
    if "gemini_api_key" not in values and environ.get("GEMINI_API_KEY"):
        values["gemini_api_key"] = environ["GEMINI_API_KEY"]
    settings = replace(Settings(), **values)
    # Fail at start-up, not on the first request.
    _check_ranges(settings)
    _check_database_url(settings.database_url)
    _check_tls(settings)
    _ = settings.dev_tokens, settings.resolved_default_model, settings.webhook_secrets
    _ = settings.webhook_retry_delays, settings.webhook_url_patterns
    _check_web(settings)
    _check_jwt(settings)
    uses_gemini = any(model.provider == "gemini" for model in settings.available_models)
    if uses_gemini and not settings.gemini_api_key:
        raise ValueError("the gemini provider needs an API key: set GEMINI_API_KEY")
    return settings


# Numbers that must be above zero (a zero lease, poll or limit would stop the server working),
# and numbers that may be zero but never negative.
_POSITIVE = (
    "max_prompt_bytes",
    "max_message_bytes",
    "max_file_bytes",
    "max_tree_bytes",
    "max_tree_files",
    "job_lease_seconds",
    "job_heartbeat_seconds",
    "job_max_attempts",
    "progress_poll_seconds",
    "gemini_timeout_seconds",
    "gemini_attempt_seconds",
    "provider_max_attempts",
    "model_cooldown_max_seconds",
    "max_batch_size",
    "webhook_timeout_seconds",
    "webhook_max_in_flight",
    "webhook_poll_seconds",
    "file_url_seconds",
)
_NOT_NEGATIVE = (
    "max_attachment_bytes",
    "max_in_flight",
    "max_in_flight_per_principal",
    "rate_limit_per_second",
    "rate_limit_burst",
    "max_queued_jobs_per_principal",
    "max_streams_per_principal",
    "max_uploads_per_principal",
    "max_uploads",
    "provider_max_wait_seconds",
    "max_deletion_share",
    "shutdown_grace_seconds",
    "provider_context_budget_bytes",
    "provider_backoff_initial_seconds",
    "provider_backoff_max_seconds",
    "api_key_cache_seconds",
    "deleted_retention_seconds",
    "retention_seconds",
    "gc_interval_seconds",
    "gc_grace_seconds",
    "offline_pace_seconds",
)


def _check_ranges(settings: Settings) -> None:
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise ValueError(f"{_PREFIX}{name.upper()} must be above 0, got {getattr(settings, name)!r}")
    for name in _NOT_NEGATIVE:
        if getattr(settings, name) < 0:
            raise ValueError(f"{_PREFIX}{name.upper()} must not be negative, got {getattr(settings, name)!r}")


# The databases Atelier runs on, with the drivers it installs (a bare `postgresql` means psycopg).
_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


def _check_database_url(url: str) -> None:
    scheme, separator, _ = url.partition("://")
    if separator and scheme in _DATABASE_SCHEMES:
        return
    # Only the scheme is echoed: the rest of a URL may hold a password.
    given = f"is a {scheme}:// URL" if separator and len(scheme) < 40 else "is not a database URL"
    raise ValueError(
        f"{_PREFIX}DATABASE_URL {given}; Atelier runs on SQLite (sqlite:///path/to/atelier.db) "
        "or PostgreSQL (postgresql+psycopg://user@host/database)"
    )


def _check_tls(settings: Settings) -> None:
    # Whether the files can be read and hold what they should is checked when the server starts
    # (server/tls.py): other commands that read the settings do not need them.
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ValueError(
            f"{_PREFIX}TLS_CERT_FILE and {_PREFIX}TLS_KEY_FILE go together: set both (TLS) or neither"
        )
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise ValueError(
            f"{_PREFIX}TLS_CLIENT_CA_FILE (mutual TLS) needs the server's own certificate too: "
            f"set {_PREFIX}TLS_CERT_FILE and {_PREFIX}TLS_KEY_FILE"
        )


def _check_web(settings: Settings) -> None:
    for origin in settings.cors_origin_list:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(
                f"{_PREFIX}CORS_ORIGINS lists origins such as https://app.example.com (or *), got {origin!r}"
            )
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise ValueError(f"{_PREFIX}PUBLIC_URL is an http(s) URL, got {settings.public_url!r}")


def _check_jwt(settings: Settings) -> None:
    given = {name: getattr(settings, name) for name in ("jwt_jwks", "jwt_issuer", "jwt_audience")}
    if any(given.values()) and not all(given.values()):
        missing = ", ".join(_PREFIX + name.upper() for name, value in given.items() if not value)
        raise ValueError(f"JWT bearer tokens need {_PREFIX}JWT_JWKS, _ISSUER and _AUDIENCE: set {missing}")
    source = settings.jwt_jwks
    if not source or source.startswith(("https://", "http://")):
        return
    if "://" in source:
        raise ValueError(f"{_PREFIX}JWT_JWKS is a file path or an http(s) URL, got {source!r}")
    if not Path(source).is_file():
        raise ValueError(f"{_PREFIX}JWT_JWKS names no file: {source}")


def _read_file(path: Path) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    models = tuple(
        ModelConfig(
            name=entry["name"],
            provider=entry["provider"],
            display_name=entry.get("display_name", entry["name"]),
            output_modalities=tuple(entry.get("output_modalities", ("text",))),
            max_concurrent=_limit(entry, "max_concurrent", path),
            requests_per_minute=_limit(entry, "requests_per_minute", path),
            tokens_per_minute=_limit(entry, "tokens_per_minute", path),
            **_prices(entry, path),
        )
        for entry in data.pop("models", [])
    )
    known = {f.name for f in fields(Settings)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
    return {**data, "models": models} if models else data


def _parse(raw: str, type_name: object, name: str) -> object:
    if type_name in ("bool", bool):
        value = _BOOLEANS.get(raw.strip().lower())
        if value is None:
            raise ValueError(f"{_PREFIX}{name.upper()} must be true or false (or 1 or 0), got {raw!r}")
        return value
    try:
        if type_name in ("int", int):
            return int(raw)
        if type_name in ("float", float):
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{_PREFIX}{name.upper()} must be a number, got {raw!r}") from exc
    return raw


_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


_PRICE_KEYS = ("input_price_per_million", "output_price_per_million", "image_price")
_ESTIMATE_KEYS = ("estimated_output_tokens", "estimated_images")


def _prices(entry: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """A [[models]] entry's prices and estimates, checked; built-in ones for a model left unpriced."""
    given: dict[str, Any] = {}
    for key in (*_PRICE_KEYS, *_ESTIMATE_KEYS):
        value = entry.get(key)
        if value is None:
            continue
        whole = key in _ESTIMATE_KEYS
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or value < 0:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{path}: model {entry.get('name')!r}: {key} must be {kind}, 0 or more")
        given[key] = value
    if not any(key in given for key in _PRICE_KEYS):
        return {**_BUILTIN_PRICES.get(str(entry.get("name")), {}), **given}
    return given


def _limit(entry: Mapping[str, Any], key: str, path: Path) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: model {entry.get('name')!r}: {key} must be a whole number above 0")
    return value
