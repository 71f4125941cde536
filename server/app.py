"""Builds and runs the Atelier server: the API, health, reflection and the job workers."""

from __future__ import annotations

import errno
import functools
import gc
import logging
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import NoReturn

import anyio
import grpc
import prometheus_client
from atelier.v1 import atelier_service_pb2, atelier_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

import storage
from server import metrics
from server.api import AtelierMethods, AtelierServicer, FileUrls, version_json
from server.config import Settings
from server.domain import (
    ApiKeys,
    EventHub,
    GenerationService,
    JobRunner,
    WebhookDeliverer,
    follow_other_replicas,
    poll_followed_versions,
)
from server.domain.gc import collect_periodically
from server.providers import ProviderRegistry
from server.tls import ServerTls
from server.web import WebServer, web_app

_log = logging.getLogger("atelier")
SERVICE_NAME = atelier_service_pb2.DESCRIPTOR.services_by_name["AtelierService"].full_name


def _server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Progress streams can be quiet for a long time: ping to keep them (and NATs) alive,
        # and let clients ping us as often as every 10 s.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC turns SO_REUSEPORT on by default: a second server on the same port would then
        # listen too, and calls would land on either at random. Off, the second one fails.
        ("grpc.so_reuseport", 0),
    ]


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully. SIGHUP reloads the TLS certificates."""
    try:
        tls = ServerTls(settings) if settings.tls_cert_file else None
    except ValueError as exc:
        _exit_with(f"configuration error: {exc}")
    # The address next: a server that cannot listen says so before it touches the database.
    server = grpc.aio.server(options=_server_options(settings))
    port = _listen(server, settings.listen, None if tls is None else tls.credentials)
    web = (
        WebServer(
            listen=settings.web_listen,
            grace_seconds=settings.shutdown_grace_seconds,
            tls=None if tls is None else tls.web_context,
        )
        if settings.web_listen
        else None
    )
    db = storage.Database(settings.database_url)
    await _migrate(db, on_start=settings.migrate_on_start)
    providers = ProviderRegistry(settings)
    await providers.ready()
    hub = EventHub()
    runner = JobRunner(db=db, hub=hub, providers=providers, settings=settings)
    # Without a secret nothing can be signed: no deliverer, and requests with a webhook are refused.
    deliverer = (
        WebhookDeliverer(db=db, settings=settings, render=version_json) if settings.webhook_secrets else None
    )
    if deliverer is not None:
        hub.add_listener(deliverer.on_events)
    service = GenerationService(
        db=db,
        hub=hub,
        runner=runner,
        settings=settings,
        wake_webhooks=deliverer.wake if deliverer is not None else lambda: None,
    )

    file_urls = FileUrls.of(settings, web_url=web.url) if web is not None else None
    methods = AtelierMethods(
        service=service,
        api_keys=ApiKeys(db=db, cache_seconds=settings.api_key_cache_seconds),
        settings=settings,
        file_urls=file_urls,
    )
    atelier_service_pb2_grpc.add_AtelierServiceServicer_to_server(AtelierServicer(methods), server)
    serving = True
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    host = settings.listen.rsplit(":", 1)[0]

    stop_listening = follow_other_replicas(
        db, hub, runner, on_generation_gone=lambda generation_id: service.after_deletion([generation_id], ())
    )
    stop_metrics = _serve_metrics(settings.metrics_listen)
    async with anyio.create_task_group() as group:
        group.start_soon(_watch_loop_lag)
        if settings.gc_interval_seconds > 0:
            group.start_soon(
                functools.partial(
                    collect_periodically,
                    db,
                    settings,
                    on_gone=service.after_deletion,
                )
            )
        await group.start(runner.run)
        if deliverer is not None:
            await group.start(deliverer.run)
        await group.start(
            functools.partial(poll_followed_versions, db, hub, interval=settings.progress_poll_seconds)
        )
        # Signals are caught before "listening" is said: a SIGHUP sent on that word reloads
        # rather than ends the server. Without TLS, SIGHUP keeps its usual meaning.
        reload_signal = () if tls is None else (signal.SIGHUP,)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, *reload_signal) as signals:
            await server.start()
            if web is not None:
                await group.start(
                    web.run, web_app(methods, service, file_urls, settings, serving=lambda: serving)
                )
                _log.info("Atelier web on %s (Connect, gRPC-Web, files, /healthz)", web.url)
            _tune_python_gc()
            await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
            await health.set("", health_pb2.HealthCheckResponse.SERVING)
            if tls is not None:
                _log.info("%s: certificate SHA-256 %s", tls.mode, tls.certificates.fingerprint)
            _log.info(
                "Atelier listening on %s:%d (%s, database %s, provider %s, default model %s)",
                host,
                port,
                "plaintext" if tls is None else tls.mode,
                db.display_url,
                settings.provider,
                settings.resolved_default_model.name,
            )
            async for signum in signals:
                if signum == signal.SIGHUP and tls is not None:
                    await _reload_certificates(tls)
                    continue
                _log.info("received %s: shutting down", signal.Signals(signum).name)
                break
        # Health first, so that load balancers stop sending calls; then refuse new calls,
        # let running jobs reach their end (or requeue them), and finish the calls in flight.
        await health.enter_graceful_shutdown()
        serving = False
        await runner.stop()
        # Both ports at once: each lets its calls in flight end within the grace period.
        if web is not None:
            web.stop()
        await server.stop(settings.shutdown_grace_seconds)
        await _stopped(web)
        # Last: calls in flight (DraftPrompt asks a model too) have ended.
        await providers.aclose()
        group.cancel_scope.cancel()
    await anyio.to_thread.run_sync(stop_listening)
    stop_metrics()
    db.dispose()
    _log.info("Atelier stopped")


async def _stopped(web: WebServer | None) -> None:
    """Waits for the web port to finish its calls in flight (its own grace period)."""
    if web is not None:
        await web.finished.wait()


def _listen(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None) -> int:
    """Binds the server to `listen` (host:port), with TLS when `credentials` are given, and returns
    the port, or exits with one clear line."""
    problem = _address_problem(listen)
    if problem is None:
        try:
            if credentials is None:
                port: int = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, credentials)
            return port
        except RuntimeError:
            problem = "gRPC could not bind it (GRPC_VERBOSITY=debug says why)"
    raise SystemExit(f"atelier-server: cannot listen on {listen}: {problem}")


def _address_problem(listen: str) -> str | None:
    """Why nothing can listen on `listen`, found by binding it first (gRPC would only log the
    reason); None if it is free, or if only gRPC can tell."""
    host, _, port = listen.rpartition(":")
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, ValueError):
        return None
    with socket.socket(family, kind) as probe:
        # As gRPC does, so that a port in TIME_WAIT does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            return f"{exc.strerror}" + (" (is another Atelier server running there?)" if in_use else "")
    return None


async def _migrate(db: storage.Database, *, on_start: bool) -> None:
    """Brings the schema up to date (or, not `on_start`, checks that it is), or exits with one clear
    line when there is no database to open."""
    try:
        await anyio.to_thread.run_sync(db.migrate if on_start else db.check_schema)
    except storage.DatabaseMissing as exc:
        url = db.url
        options = [
            f"-h {url.host}" if url.host else "",
            f"-p {url.port}" if url.port else "",
            f"-U {url.username}" if url.username else "",
        ]
        createdb = " ".join(["createdb", *filter(None, options), shlex.quote(exc.database)])
        _exit_with(
            f"PostgreSQL at {db.display_url} has no database {exc.database!r}: create it with {createdb}"
        )
    except storage.StorageUnavailable as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines())
        _exit_with(f"cannot open the database {db.display_url}: {reason}")


def _exit_with(message: str) -> NoReturn:
    print(f"atelier-server: {message}", file=sys.stderr)
    raise SystemExit(2)


async def _reload_certificates(tls: ServerTls) -> None:
    try:
        certificates = await anyio.to_thread.run_sync(tls.reload)
    except ValueError as exc:
        _log.error("SIGHUP: TLS certificates not reloaded, the ones in use stay: %s", exc)
        return
    _log.info(
        "SIGHUP: TLS certificates reloaded; new connections get certificate SHA-256 %s",
        certificates.fingerprint,
    )


def _serve_metrics(listen: str) -> Callable[[], None]:
    """Serves Prometheus metrics on `listen` (host:port) from a thread; returns how to stop."""
    if not listen:
        return lambda: None
    host, _, port = listen.rpartition(":")
    try:
        http, thread = prometheus_client.start_http_server(int(port), addr=host or "127.0.0.1")
    except OSError as exc:
        raise SystemExit(f"atelier-server: cannot serve metrics on {listen}: {exc}") from exc
    _log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", http.server_port)

    def stop() -> None:
        http.shutdown()
        thread.join(timeout=5)

    return stop


# Python's cycle collector (not Atelier's blob collector), tuned once the server is up. Its
# defaults (700, 10, 10) suit a short script: with a thousand jobs in flight the server ran about
# 900 young and 9 full collections per thousand jobs, 2.7 s of its 27 s of CPU, and each full one
# stopped the event loop for 100-500 ms as the heap grew. With a young generation 7x larger and a
# full collection only after 100 of the middle one: 0.7 s in all, the longest middle collection
# about 45 ms (the many-jobs benchmark). Garbage with cycles waits longer to be collected;
# everything else is freed by reference counting as before.
_GC_THRESHOLDS = (5000, 10, 100)


def _tune_python_gc() -> None:
    """Freezes what start-up made (modules, settings, the providers' clients: it lives as long as
    the process, so no collection need look at it again) and sets the thresholds above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def _watch_loop_lag() -> None:
    """Measures how late the event loop runs a timer: the time something else kept it busy.
    A job that blocks the loop stalls every other job's progress and every call."""
    interval = 0.1
    while True:
        before = time.monotonic()
        await anyio.sleep(interval)
        metrics.LOOP_LAG_SECONDS.observe(max(0.0, time.monotonic() - before - interval))
