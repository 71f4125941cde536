"""TLS and mutual TLS on the real server: the SDK, the CLI and grpcurl get through with the right
certificates (made at test time), and every other caller is refused at the handshake."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from atelier import AsyncAtelierClient, AtelierClient, RetryPolicy, Unavailable, VersionState
from grpc_health.v1 import health_pb2

from support.databases import fresh_database
from tests._support import ROOT, ServerProcess, tool_env
from tests._tls_support import (
    Pki,
    health_check,
    refusal,
    tls_channel,
    web_client,
    web_fingerprint,
    web_refused,
)
from tests._web_support import ok
from tests.conftest import BACKENDS, check_backend

README_ADDRESS = "127.0.0.1:50051"
PROMPT = "a python CLI that converts celsius to fahrenheit"
# A refusal is final: one attempt shows it, without the SDK's retries.
ONCE = RetryPolicy(max_attempts=1)


@contextmanager
def _server(request: pytest.FixtureRequest, tmp: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    with fresh_database(check_backend(request.param), tmp) as url:
        server = ServerProcess(database_url=url, log_path=tmp / "server.log", env=env).start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture(scope="module", params=BACKENDS)
def tls_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[ServerProcess]:
    with _server(request, tmp_path_factory.mktemp("tls"), pki.server_env()) as server:
        assert "(TLS, database" in server.log()
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
def mtls_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[ServerProcess]:
    with _server(request, tmp_path_factory.mktemp("mtls"), pki.server_env(mutual=True)) as server:
        assert "(mutual TLS, database" in server.log()
        yield server


def _run(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Wide enough for `atelier models`' table to show names whole.
    environment = {**tool_env(), "COLUMNS": "200", **(env or {})}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def _atelier(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "atelier", "--target", server.target, *args], env=env)


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(["grpcurl", *args])


def _grpcurl_refused(*args: str) -> bool:
    """Whether grpcurl fails to list the services (it retries a refused handshake until its
    connect timeout: 3 s, not its default 10)."""
    return _grpcurl("-connect-timeout", "3", *args, "list").returncode != 0


def _run_readme_recipe(index: int, server: ServerProcess, pki: Pki, cwd: Path) -> str:
    """Runs the README's TLS (0) or mutual TLS (1) recipe against `server`; what it printed."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### TLS and mutual TLS", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the README's TLS section lost its recipes"
    for path, name in ((pki.ca, "ca.pem"), (pki.client_cert, "client.pem"), (pki.client_key, "client.key")):
        shutil.copyfile(path, cwd / name)
    script = str(blocks[index]).replace(README_ADDRESS, server.target)
    result = _run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env={"ATELIER_TARGET": server.target})
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "SERVING"' in result.stdout  # grpcurl's health check
    assert re.search(r"^│ offline ", result.stdout, flags=re.M)  # atelier models
    return result.stdout


def _generate_and_wait(client: AtelierClient) -> None:
    done = client.wait(client.generate(PROMPT).name)
    assert done.state is VersionState.COMPLETED
    assert "README.md" in {file.path for file in client.files(done.name)}


# TLS


def test_the_sdk_works_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    with AtelierClient(tls_server.target, root_certificates=pki.ca.read_bytes()) as client:
        _generate_and_wait(client)


def test_the_async_sdk_trusts_the_ca_named_by_the_environment(
    tls_server: ServerProcess, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_TLS_CA_FILE", str(pki.ca))

    async def generate() -> VersionState:
        async with AsyncAtelierClient(tls_server.target) as client:
            version = await client.generate(PROMPT)
            return (await client.wait(version.name)).state

    assert asyncio.run(generate()) is VersionState.COMPLETED


def test_health_and_reflection_work_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    with tls_channel(tls_server.target, trust=pki) as channel:
        assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING
    listed = _grpcurl("-cacert", str(pki.ca), tls_server.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"atelier.v1.AtelierService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = _grpcurl("-cacert", str(pki.ca), tls_server.target, "describe", "atelier.v1.AtelierService")
    assert "rpc Generate ( .atelier.v1.GenerateRequest )" in described.stdout, described.stderr


def test_the_web_port_speaks_tls_with_the_same_certificate(
    tls_server: ServerProcess, pki: Pki, stranger: Pki
) -> None:
    assert tls_server.web_url.startswith("https://127.0.0.1:")
    assert web_fingerprint(tls_server.web_url, trust=pki) == pki.server_fingerprint()
    assert web_refused(tls_server.web_url, trust=stranger)  # a client that does not trust its CA
    with web_client(tls_server.web_url, trust=pki) as web:
        assert web.get("/healthz").status_code == 200
        assert "offline" in {model["provider"] for model in ok(web, "ListModels", {})["models"]}
    # Plain HTTP is not served on it.
    with pytest.raises(httpx.TransportError):
        httpx.get(tls_server.web_url.replace("https://", "http://", 1) + "/healthz", timeout=5)

    # A file's URL, made by a call on the gRPC port, is the web port's https URL, served over TLS.
    with AtelierClient(tls_server.target, root_certificates=pki.ca.read_bytes()) as client:
        done = client.wait(client.generate(PROMPT).name)
        readme = next(file for file in client.files(done.name) if file.path == "README.md")
    assert readme.download_url.startswith(f"{tls_server.web_url}/files/")
    with web_client(tls_server.web_url, trust=pki) as web:
        served = web.get(readme.download_url)
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == readme.sha256


def test_the_readme_tls_recipe_works(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    out = _run_readme_recipe(0, tls_server, pki, tmp_path)
    assert '"default_model": "offline"' in out  # grpcurl's ListModels


def test_the_cli_works_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    generated = _atelier(tls_server, "--ca-file", str(pki.ca), "--json", "generate", PROMPT)
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["state"] == "COMPLETED"
    # --tls alone trusts gRPC's default roots, which gRPC reads from this variable when it is set.
    models = _atelier(tls_server, "--tls", "--json", "models", GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(pki.ca))
    assert models.returncode == 0, models.stderr
    from_environment = _atelier(tls_server, "--json", "models", ATELIER_TLS_CA_FILE=str(pki.ca))
    assert json.loads(from_environment.stdout) == json.loads(models.stdout)


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server: ServerProcess) -> None:
    with grpc.insecure_channel(tls_server.target) as channel:
        assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
    with AtelierClient(tls_server.target, tls=False, retry=ONCE) as client, pytest.raises(Unavailable):
        client.models()
    assert _grpcurl_refused("-plaintext", tls_server.target)
    cli = _atelier(tls_server, "--timeout", "3", "models")
    assert cli.returncode == 4, cli.stdout + cli.stderr


def test_a_client_that_does_not_trust_the_servers_ca_is_refused(
    tls_server: ServerProcess, stranger: Pki
) -> None:
    with tls_channel(tls_server.target, trust=stranger) as channel:
        assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
    refused = _grpcurl("-cacert", str(stranger.ca), tls_server.target, "list")
    assert refused.returncode != 0 and "certificate" in refused.stderr


# Mutual TLS


def test_mutual_tls_accepts_a_certificate_from_its_ca(mtls_server: ServerProcess, pki: Pki) -> None:
    with AtelierClient(
        mtls_server.target,
        root_certificates=pki.ca.read_bytes(),
        certificate_chain=pki.client_cert.read_bytes(),
        private_key=pki.client_key.read_bytes(),
    ) as client:
        _generate_and_wait(client)
    with tls_channel(mtls_server.target, trust=pki, identity=pki) as channel:
        assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING
    listed = _grpcurl(
        "-cacert", str(pki.ca), "-cert", str(pki.client_cert), "-key", str(pki.client_key),
        mtls_server.target, "list",
    )  # fmt: skip
    assert "atelier.v1.AtelierService" in listed.stdout, listed.stderr


def test_the_web_port_asks_every_caller_for_a_certificate_under_mutual_tls(
    mtls_server: ServerProcess, pki: Pki, stranger: Pki
) -> None:
    assert web_fingerprint(mtls_server.web_url, trust=pki, identity=pki) == pki.server_fingerprint()
    assert web_refused(mtls_server.web_url, trust=pki)  # no certificate
    assert web_refused(mtls_server.web_url, trust=pki, identity=stranger)  # one from another CA
    with web_client(mtls_server.web_url, trust=pki, identity=pki) as web:
        assert ok(web, "ListModels", {})["models"]


def test_the_readme_mutual_tls_recipe_works(mtls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    _run_readme_recipe(1, mtls_server, pki, tmp_path)


def test_the_sdk_and_cli_read_a_client_certificate_from_the_environment(
    mtls_server: ServerProcess, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "ATELIER_TLS_CA_FILE": str(pki.ca),
        "ATELIER_TLS_CLIENT_CERT_FILE": str(pki.client_cert),
        "ATELIER_TLS_CLIENT_KEY_FILE": str(pki.client_key),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def models() -> list[str]:
        async with AsyncAtelierClient(mtls_server.target) as client:
            return [model.name for model in await client.models()]

    assert "offline" in asyncio.run(models())
    cli = _atelier(mtls_server, "--json", "generate", PROMPT, **env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["state"] == "COMPLETED"


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_server: ServerProcess, pki: Pki) -> None:
    with tls_channel(mtls_server.target, trust=pki) as channel:
        assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
    with (
        AtelierClient(mtls_server.target, root_certificates=pki.ca.read_bytes(), retry=ONCE) as client,
        pytest.raises(Unavailable),
    ):
        client.models()
    assert _grpcurl_refused("-cacert", str(pki.ca), mtls_server.target)
    cli = _atelier(mtls_server, "--ca-file", str(pki.ca), "--timeout", "3", "models")
    assert cli.returncode == 4, cli.stdout + cli.stderr


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mtls_server: ServerProcess, pki: Pki, stranger: Pki
) -> None:
    with tls_channel(mtls_server.target, trust=pki, identity=stranger) as channel:
        assert refusal(channel) == grpc.StatusCode.UNAVAILABLE
    with (
        AtelierClient(
            mtls_server.target,
            root_certificates=pki.ca.read_bytes(),
            certificate_chain=stranger.client_cert.read_bytes(),
            private_key=stranger.client_key.read_bytes(),
            retry=ONCE,
        ) as client,
        pytest.raises(Unavailable),
    ):
        client.models()
    assert _grpcurl_refused(
        "-cacert", str(pki.ca), "-cert", str(stranger.client_cert), "-key", str(stranger.client_key),
        mtls_server.target,
    )  # fmt: skip
    cli = _atelier(
        mtls_server,
        *("--ca-file", str(pki.ca), "--cert-file", str(stranger.client_cert)),
        *("--key-file", str(stranger.client_key), "--timeout", "3", "models"),
    )
    assert cli.returncode == 4, cli.stdout + cli.stderr


# The client's own settings


def test_a_client_certificate_without_its_key_is_refused_before_connecting(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ATELIER_TLS_CLIENT_CERT_FILE and ATELIER_TLS_CLIENT_KEY_FILE"):
        AtelierClient("127.0.0.1:1", certificate_chain=pki.client_cert.read_bytes())
    cli = _run([sys.executable, "-m", "atelier", "--cert-file", str(pki.client_cert), "models"])
    assert cli.returncode == 2 and "--cert-file and --key-file go together" in cli.stderr
    from_environment = _run(
        [sys.executable, "-m", "atelier", "models"], env={"ATELIER_TLS_CLIENT_KEY_FILE": str(pki.client_key)}
    )
    assert from_environment.returncode == 2
    assert "a client certificate goes with its private key" in from_environment.stderr
    unreadable = _run([sys.executable, "-m", "atelier", "--ca-file", str(tmp_path / "nope.pem"), "models"])
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
