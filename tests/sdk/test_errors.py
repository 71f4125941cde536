"""Failures come back as typed exceptions carrying the server's ErrorInfo; jobs that fail say why."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from atelier import (
    AtelierClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
    VersionState,
    WaitTimeout,
)

from tests._client_support import TOKEN, free_port
from tests._support import ServerProcess


def test_a_missing_version_is_not_found_with_its_reason(client: AtelierClient) -> None:
    name = "generations/nope/versions/1"
    with pytest.raises(NotFound) as caught:
        client.get(name)
    error = caught.value
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.NOT_FOUND,
        "VERSION_NOT_FOUND",
        "atelier.v1",
    )
    assert error.metadata == {"name": name} and name in error.message
    assert isinstance(error.__cause__, grpc.RpcError)  # raised `from` the gRPC error, at one boundary
    with pytest.raises(NotFound):
        list(client.progress(name))  # streams too


def test_an_empty_prompt_is_invalid_argument_with_a_field_violation(client: AtelierClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.generate("   ")
    assert caught.value.reason == "EMPTY_PROMPT"
    assert [v.field for v in caught.value.field_violations] == ["prompt"]
    assert caught.value.field_violations[0].description


def test_a_server_with_tokens_refuses_callers_without_a_valid_one(server: ServerProcess) -> None:
    with AtelierClient(server.target, token="") as anonymous, pytest.raises(Unauthenticated) as caught:
        anonymous.models()
    assert caught.value.reason == "MISSING_CREDENTIALS"
    with AtelierClient(server.target, token="wrong") as stranger, pytest.raises(Unauthenticated) as caught:
        stranger.list_generations().__next__()
    assert caught.value.reason == "INVALID_TOKEN"


def test_the_target_and_token_come_from_the_environment(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_TARGET", server.target)
    monkeypatch.setenv("ATELIER_TOKEN", TOKEN)
    with AtelierClient() as client:
        assert client.target == server.target
        assert [m.name for m in client.models()] == ["scripted", "offline"]


def test_no_server_is_unavailable_after_bounded_retries() -> None:
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.1)
    started = time.monotonic()
    with AtelierClient(f"127.0.0.1:{free_port()}", retry=retry) as client, pytest.raises(Unavailable):
        client.models()
    assert time.monotonic() - started < 10


def test_wait_times_out_with_a_typed_error_and_the_job_goes_on(client: AtelierClient) -> None:
    slow = client.generate(json.dumps({"stages": 1, "delay": 30}), model="scripted")
    with pytest.raises(WaitTimeout) as caught:
        client.wait(slow.name, timeout=0.5)
    assert caught.value.reason == "WAIT_TIMEOUT" and caught.value.domain == "atelier.sdk"
    assert not client.get(slow.name).done
    with pytest.raises(FailedPrecondition) as not_ready:
        client.read_file(slow.name, "answer.txt")
    assert not_ready.value.reason == "VERSION_NOT_READY"
    client.cancel(slow.name)
    cancelled = client.wait(slow.name, timeout=15)
    assert cancelled.state == VersionState.CANCELLED and cancelled.error is not None


def test_a_failed_job_ends_failed_with_its_error_info(client: AtelierClient) -> None:
    script = {
        "stages": 1,
        "fail": {"code": "RESOURCE_EXHAUSTED", "reason": "QUOTA", "message": "out of quota"},
    }
    version = client.wait(client.generate(json.dumps(script), model="scripted").name, timeout=30)
    assert version.state == VersionState.FAILED and version.error is not None
    assert (version.error.code, version.error.reason) == ("RESOURCE_EXHAUSTED", "QUOTA")
    assert version.error.domain == "atelier.v1" and "out of quota" in version.error.message


@pytest.mark.parametrize("path", ["../evil", "/etc/passwd", "a/../../evil", "a\\..\\evil", "", "a//b", "./a"])
def test_export_refuses_paths_that_leave_the_directory(tmp_path: Path, path: str) -> None:
    from atelier._files import destination

    with pytest.raises(ValueError, match="refusing"):
        destination(tmp_path, path)


def test_export_refuses_to_write_through_a_symlink_that_points_out(tmp_path: Path) -> None:
    from atelier._files import destination

    (tmp_path / "outside").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ValueError, match="refusing"):
        destination(tmp_path / "root", "link/file.txt")
    assert destination(tmp_path / "root", "src/ok.txt") == (tmp_path / "root" / "src" / "ok.txt").resolve()


@pytest.mark.parametrize(
    ("target", "advice"),
    [("http://127.0.0.1:50051", "use '127.0.0.1:50051'"), ("https://atelier.example/", "with TLS")],
)
def test_a_web_url_is_not_a_target(target: str, advice: str) -> None:
    # gRPC would take it for a host name and fail much later, saying only UNAVAILABLE.
    with pytest.raises(ValueError, match="is a web URL; a gRPC target is HOST:PORT") as refused:
        AtelierClient(target)
    assert advice in str(refused.value)
