"""Builds and runs the Atelier server: the API, health, reflection and the job workers."""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable

import anyio
import grpc
import prometheus_client
from atelier.v1 import atelier_service_pb2, atelier_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

import storage
from server import metrics
from server.api import AtelierServicer
from server.config import Settings
from server.domain import (
    EventHub,
    GenerationService,
    JobRunner,
    follow_other_replicas,
    poll_followed_versions,
)
from server.domain.gc import collect_periodically
from server.providers import ProviderRegistry

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
    ]


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    db = storage.Database(settings.database_url)
    await anyio.to_thread.run_sync(db.migrate if settings.migrate_on_start else db.check_schema)
    providers = ProviderRegistry(settings)
    hub = EventHub()
    runner = JobRunner(db=db, hub=hub, providers=providers, settings=settings)
    service = GenerationService(db=db, hub=hub, runner=runner, settings=settings)

    server = grpc.aio.server(options=_server_options(settings))
    atelier_service_pb2_grpc.add_AtelierServiceServicer_to_server(
        AtelierServicer(service=service, settings=settings), server
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise SystemExit(f"could not listen on {settings.listen}")
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
                    after_pass=lambda report: service.after_deletion(report.gone, report.stopped_version_ids),
                )
            )
        await group.start(runner.run)
        await group.start(
            functools.partial(poll_followed_versions, db, hub, interval=settings.progress_poll_seconds)
        )
        await server.start()
        await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        _log.info(
            "Atelier listening on %s:%d (database %s, provider %s, default model %s)",
            host,
            port,
            db.display_url,
            settings.provider,
            settings.resolved_default_model.name,
        )
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                _log.info("received %s: shutting down", signal.Signals(signum).name)
                break
        # Health first, so that load balancers stop sending calls; then refuse new calls,
        # let running jobs reach their end (or requeue them), and finish the calls in flight.
        await health.enter_graceful_shutdown()
        await runner.stop()
        await server.stop(settings.shutdown_grace_seconds)
        group.cancel_scope.cancel()
    await anyio.to_thread.run_sync(stop_listening)
    stop_metrics()
    db.dispose()
    _log.info("Atelier stopped")


def _serve_metrics(listen: str) -> Callable[[], None]:
    """Serves Prometheus metrics on `listen` (host:port) from a thread; returns how to stop."""
    if not listen:
        return lambda: None
    host, _, port = listen.rpartition(":")
    try:
        http, thread = prometheus_client.start_http_server(int(port), addr=host or "127.0.0.1")
    except OSError as exc:
        raise SystemExit(f"atelier: cannot serve metrics on {listen}: {exc}") from exc
    _log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", http.server_port)

    def stop() -> None:
        http.shutdown()
        thread.join(timeout=5)

    return stop


async def _watch_loop_lag() -> None:
    """Measures how late the event loop runs a timer: the time something else kept it busy.
    A job that blocks the loop stalls every other job's progress and every call."""
    interval = 0.1
    while True:
        before = time.monotonic()
        await anyio.sleep(interval)
        metrics.LOOP_LAG_SECONDS.observe(max(0.0, time.monotonic() - before - interval))
