"""The worker process that makes google-genai's calls: errors cross it as the SDK raised them, a
worker that dies is replaced and its calls are retried, and it ends with its server."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import anyio
import httpx2
import pydantic
import pytest
from google.genai import errors

from server.providers.gemini import GeminiProvider
from server.providers.gemini._errors import is_quota_refusal, requested_delay, transient
from server.providers.gemini._worker import failure, raised_again
from support.gemini_fake import FakeGemini
from support.processes import child_pids
from tests._support import ServerProcess
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import request_for, settings_for


def _across(exc: BaseException) -> Exception:
    """`exc` as the server's side raises it again, after the trip through the pipe."""
    return raised_again(pickle.loads(pickle.dumps(failure(7, exc))))


def test_a_refusal_keeps_its_class_code_body_and_retry_after() -> None:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down", "details": []}}
    response = httpx2.Response(429, headers={"Retry-After": "3"})
    again = _across(errors.ClientError(429, body, response=response))

    assert isinstance(again, errors.ClientError) and again.code == 429
    assert again.details == body and again.message == "slow down" and again.status == "RESOURCE_EXHAUSTED"
    assert is_quota_refusal(again) and requested_delay(again) == 3.0


def test_a_server_error_stays_a_server_error() -> None:
    again = _across(errors.ServerError(503, {"error": {"code": 503, "message": "busy"}}))
    assert isinstance(again, errors.ServerError) and again.code == 503
    assert transient(again) == "model unavailable (503)"


@pytest.mark.parametrize(
    "exc",
    [httpx2.ReadTimeout("read timed out"), httpx2.ConnectError("refused"), ConnectionResetError("reset")],
    ids=["httpx-timeout", "httpx-connect", "connection-reset"],
)
def test_transport_errors_keep_their_class_and_stay_retryable(exc: Exception) -> None:
    again = _across(exc)
    assert type(again) is type(exc) and str(again) == str(exc)
    assert transient(again) is not None


def test_an_unreadable_answer_stays_unreadable_and_anything_else_is_a_crash() -> None:
    class Strict(pydantic.BaseModel):
        n: int

    with pytest.raises(pydantic.ValidationError) as caught:
        Strict(n="x")  # type: ignore[arg-type]
    assert isinstance(_across(caught.value), errors.UnknownApiResponseError)

    crash = _across(KeyError("surprise"))
    assert type(crash) is RuntimeError and "KeyError" in str(crash)


def _workers_of(pid: int) -> list[int]:
    """The Gemini worker processes `pid` started (Linux)."""
    return [child for child in child_pids(pid) if b"gemini._worker" in _cmdline(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # it ended meanwhile


@pytest.mark.anyio
async def test_a_worker_that_dies_is_replaced_and_the_call_is_retried(fake: FakeGemini) -> None:
    fake.latency_seconds = 1.0
    fake.reply_json_files({"lost.txt": "never read\n"})
    fake.reply_json_files({"a.txt": "A\n"})
    provider = GeminiProvider(settings_for(fake.base_url))
    try:
        await provider.ready()
        [first] = _workers_of(os.getpid())
        async with anyio.create_task_group() as group:
            results = []

            async def run() -> None:
                results.append(await provider.run(request_for(), RecordingProgress()))

            group.start_soon(run)
            for _ in range(500):  # until the request is at the model, which answers after 1 s
                if fake.requests:
                    break
                await anyio.sleep(0.01)
            assert len(fake.requests) == 1
            os.kill(first, signal.SIGKILL)
        [second] = _workers_of(os.getpid())
    finally:
        await provider.aclose()

    assert second != first
    assert len(fake.requests) == 2  # the request the dead worker held was sent again
    assert [file.path for file in results[0].upserts] == ["a.txt"]
    assert _workers_of(os.getpid()) == []  # closing the provider ended its worker


def test_the_worker_ends_when_its_server_is_killed(fake: FakeGemini, tmp_path: Path) -> None:
    server = ServerProcess(
        database_url=f"sqlite:///{tmp_path / 'atelier.db'}",
        log_path=tmp_path / "server.log",
        env={
            "ATELIER_PROVIDER": "gemini",
            "GEMINI_API_KEY": "test-key",
            "ATELIER_GEMINI_BASE_URL": fake.base_url,
        },
    ).start()
    assert server.process is not None
    try:
        [worker] = _workers_of(server.process.pid)
    finally:
        server.kill()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{worker}").exists() or "Z" in _state(worker), "the worker outlived its server"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
