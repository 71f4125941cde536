"""The README's Webhooks recipe, run as written: its secret, its receiver and its grpcurl calls."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.databases import fresh_database
from tests._support import ROOT, ServerProcess, tool_env
from tests.conftest import BACKENDS, check_backend
from tests.integration.test_grpcurl import README_ADDRESS

README_RECEIVER = "127.0.0.1:8000"


def _section() -> str:
    return (ROOT / "README.md").read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, receiver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        assert receiver.poll() is None, "the README's receiver exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the README's receiver never listened"
            time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_readme_webhook_recipe_works(backend: str, tmp_path: Path) -> None:
    check_backend(backend)
    section = _section()
    shell = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    setup = next(block for block in shell if "export ATELIER_WEBHOOK_SECRET" in block)
    calls = "\n".join(block for block in shell if "grpcurl" in block)
    # The receiver is the section's one Python block that serves HTTP (another shows the SDK).
    [receiver_code] = [
        block for block in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "HTTPServer" in block
    ]
    # The README's way to make a secret, as written.
    export = next(line for line in setup.splitlines() if line.startswith("export ATELIER_WEBHOOK_SECRET"))
    made = subprocess.run(
        ["bash", "-c", f'{export}\nprintf %s "$ATELIER_WEBHOOK_SECRET"'], capture_output=True, text=True
    )
    secret = made.stdout
    assert secret.startswith("whsec_") and len(secret) == 6 + 44, made.stderr

    port = _free_port()
    (tmp_path / "receiver.py").write_text(receiver_code.replace("8000", str(port)))
    env = {**tool_env(), "ATELIER_WEBHOOK_SECRET": secret}
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(
            database_url=url,
            log_path=tmp_path / "server.log",
            env={
                "ATELIER_WEBHOOK_SECRET": secret,
                "ATELIER_WEBHOOK_ALLOWED_URLS": f"http://127.0.0.1:{port}/hooks",
            },
        )
        receiver = subprocess.Popen(
            # Unbuffered: each line is read as it comes, and none hides in a buffer from select().
            [sys.executable, "receiver.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        try:
            server.start()
            _wait_listening(port, receiver)
            script = calls.replace(README_RECEIVER, f"127.0.0.1:{port}").replace(
                README_ADDRESS, server.target
            )
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path,
                env=tool_env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            printed: list[str] = []
            assert receiver.stdout is not None
            deadline = time.monotonic() + 15
            while not any(line.startswith("version.completed") for line in printed):
                ready, _, _ = select.select([receiver.stdout], [], [], max(0.0, deadline - time.monotonic()))
                assert ready, f"the README's receiver printed only {printed}"
                printed.append(receiver.stdout.readline().decode().strip())
        finally:
            receiver.kill()
            server.kill()
    out = result.stdout
    assert '"state": "WEBHOOK_DELIVERY_STATE_PENDING"' in out  # the replay's answer
    assert (
        '"eventType": "WEBHOOK_EVENT_TYPE_COMPLETED"' in out
        or '"event_type": "WEBHOOK_EVENT_TYPE_COMPLETED"' in out
    )
    started, completed = printed[0].split(), printed[-1].split()
    assert started[0] == "version.started" and started[2] == "VERSION_STATE_RUNNING"
    assert completed[0] == "version.completed" and completed[2] == "VERSION_STATE_COMPLETED"
