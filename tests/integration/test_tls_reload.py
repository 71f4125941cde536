"""SIGHUP gives new connections the certificates now in the files, while the connections already
open, their streams and the server go on. TLS involves no database: these run on SQLite only."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2
from grpc_health.v1 import health_pb2

from tests._support import Api, ServerProcess, script
from tests._tls_support import Pki, health_check, refusal, tls_channel, web_fingerprint, web_refused

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """Where the server reads its certificate, key and client CA: the files a rotation replaces."""
    return tmp_path / "live"


@pytest.fixture
def server(tmp_path: Path, live: Path, pki: Pki) -> Iterator[ServerProcess]:
    """A mutual TLS server whose files are, at first, `pki`'s."""
    pki.copy_server_files(to=live)
    process = ServerProcess(
        database_url=f"sqlite:///{tmp_path / 'atelier.db'}",
        log_path=tmp_path / "server.log",
        env={
            "ATELIER_PROVIDER": "scripted",
            "ATELIER_TLS_CERT_FILE": str(live / "server.pem"),
            "ATELIER_TLS_KEY_FILE": str(live / "server.key"),
            "ATELIER_TLS_CLIENT_CA_FILE": str(live / "ca.pem"),
        },
    ).start()
    try:
        yield process
    finally:
        process.kill()


def _sighup(server: ServerProcess, then_logged: str) -> None:
    assert server.process is not None
    before = server.log().count(then_logged)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while server.log().count(then_logged) == before:
        assert server.process.poll() is None, server.log()
        assert time.monotonic() < deadline, f"not logged: {then_logged}\n{server.log()}"
        time.sleep(0.05)


def test_sighup_gives_new_connections_the_new_certificates(
    server: ServerProcess, live: Path, pki: Pki, stranger: Pki
) -> None:
    old, new = pki, stranger
    with tls_channel(server.target, trust=old, identity=old) as open_channel:
        api = Api(open_channel)
        version = api.generate(script(stages=3, delay=0.5))
        stream = api.stub.Progress(pb.ProgressRequest(name=version.name), timeout=30)
        next(stream)  # the stream is open before the reload

        new.copy_server_files(to=live)
        _sighup(
            server,
            f"TLS certificates reloaded; new connections get certificate SHA-256 {new.server_fingerprint()}",
        )

        with tls_channel(server.target, trust=new, identity=new) as channel:
            assert health_check(channel) == SERVING
        # The server's certificate changed: a client that trusts only the old CA is refused...
        with tls_channel(server.target, trust=old, identity=old) as channel:
            assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
        # ...and so did the client CA: a certificate from the old one no longer gets in.
        with tls_channel(server.target, trust=new, identity=old) as channel:
            assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
        # The web port's new connections too.
        assert web_fingerprint(server.web_url, trust=new, identity=new) == new.server_fingerprint()
        assert web_refused(server.web_url, trust=old, identity=old)
        assert web_refused(server.web_url, trust=new, identity=old)

        # The connection made before the reload goes on, with its stream and new calls.
        list(stream)
        assert api.get(version.name).state == generation_pb2.VERSION_STATE_COMPLETED
        assert health_check(open_channel) == SERVING
    assert server.terminate() == 0


def test_a_bad_reload_keeps_the_certificates_in_use(
    server: ServerProcess, live: Path, pki: Pki, stranger: Pki
) -> None:
    (live / "server.key").write_text("not a key\n")
    _sighup(
        server,
        "SIGHUP: TLS certificates not reloaded, the ones in use stay: "
        f"ATELIER_TLS_KEY_FILE: {live / 'server.key'} holds no PEM private key",
    )
    with tls_channel(server.target, trust=pki, identity=pki) as channel:
        assert health_check(channel) == SERVING

    # Once the files are right, the next SIGHUP takes them.
    stranger.copy_server_files(to=live)
    _sighup(server, f"certificate SHA-256 {stranger.server_fingerprint()}")
    with tls_channel(server.target, trust=stranger, identity=stranger) as channel:
        assert health_check(channel) == SERVING
