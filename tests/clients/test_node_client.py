"""A non-Python client: clients/node/generate.mjs (@grpc/grpc-js, protos loaded at run time)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._client_support import TOKEN, WORKFLOW_PROMPT, client_server, npm_installed
from tests._support import ROOT, ServerProcess

NODE_CLIENT = ROOT / "clients" / "node"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js (`node`) is not on PATH")


@pytest.fixture(scope="module")
def node_client() -> Path:
    """clients/node with its pinned packages."""
    npm_installed(NODE_CLIENT, "@grpc/grpc-js")
    return NODE_CLIENT / "generate.mjs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with client_server(tmp_path_factory.mktemp("node-server")) as process:
        yield process


def _run(
    script: Path, server: ServerProcess, *args: str, token: str = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env.update(ATELIER_TARGET=server.target, ATELIER_TOKEN=token)
    return subprocess.run(
        ["node", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_node_client_generates_and_follows_progress_to_completed(
    node_client: Path, server: ServerProcess
) -> None:
    result = _run(node_client, server, WORKFLOW_PROMPT)
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["state"] == "VERSION_STATE_COMPLETED"
    assert any(e["type"] == "PROGRESS_EVENT_TYPE_STAGE_STARTED" for e in events)
    assert events[0]["version"] in result.stderr


def test_the_node_client_reports_a_refused_call(node_client: Path, server: ServerProcess) -> None:
    result = _run(node_client, server, WORKFLOW_PROMPT, token="wrong")
    assert result.returncode == 2 and "UNAUTHENTICATED" in result.stderr
    assert "(reason INVALID_TOKEN, domain atelier.v1)" in result.stderr, result.stderr
