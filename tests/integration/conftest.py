"""A real server per backend, shared by a test module; tests that restart servers make their own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import grpc
import pytest
from atelier.v1 import generation_pb2

from support.databases import fresh_database
from tests._support import Api, ServerProcess
from tests.conftest import BACKENDS, check_backend

# alice and bob read and write their own work; root (an admin) reaches everyone's.
TOKENS = "alice-token:alice,bob-token:bob,root-token:root:admin"
# Short leases and heartbeats, so that crash recovery and cancellation are quick to observe.
SERVER_ENV = {
    "ATELIER_PROVIDER": "scripted",
    "ATELIER_TOKENS": TOKENS,
    "ATELIER_JOB_LEASE_SECONDS": "3",
    "ATELIER_JOB_HEARTBEAT_SECONDS": "0.5",
    "ATELIER_PROGRESS_POLL_SECONDS": "0.5",
    "ATELIER_SHUTDOWN_GRACE_SECONDS": "1",
    "ATELIER_MAX_PROMPT_BYTES": str(1024 * 1024),  # big enough for scripted binary files
}


@contextmanager
def module_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """The real server on the module's backend (`request.param`) and a fresh database, killed after."""
    backend = check_backend(request.param)
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    with fresh_database(backend, tmp) as url:
        process = ServerProcess(database_url=url, log_path=tmp / "server.log", env=env).start()
        try:
            yield process
        finally:
            process.kill()


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with module_server(request, tmp_path_factory, "server", SERVER_ENV) as process:
        yield process


@pytest.fixture(scope="module", params=BACKENDS)
def plain_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server as `make run` starts it: the offline provider and no tokens."""
    with module_server(request, tmp_path_factory, "plain") as process:
        yield process


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as channel:
        yield channel


@pytest.fixture
def alice(channel: grpc.Channel) -> Api:
    return Api(channel, "alice-token")


@pytest.fixture
def bob(channel: grpc.Channel) -> Api:
    return Api(channel, "bob-token")


@pytest.fixture
def root(channel: grpc.Channel) -> Api:
    return Api(channel, "root-token")


@pytest.fixture
def server_channel_factory(server: ServerProcess) -> object:
    return server.channel


@pytest.fixture(scope="module")
def done(server: ServerProcess) -> generation_pb2.Version:
    """A COMPLETED version of alice's, made by the offline model, to refine, list and read."""
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        return api.wait(api.generate("a small tree", model="offline").name)
