"""Test support: the real server in a subprocess, and typed helpers.

What the benchmark needs as well (fresh databases, the Gemini fake) is in support/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, file_pb2, generation_pb2, progress_pb2

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {
    generation_pb2.VERSION_STATE_COMPLETED,
    generation_pb2.VERSION_STATE_FAILED,
    generation_pb2.VERSION_STATE_CANCELLED,
    generation_pb2.VERSION_STATE_NEEDS_REVIEW,
}
_LISTENING = re.compile(r"Atelier listening on (\S+):(\d+)")
_WEB = re.compile(r"Atelier web on (https?://\S+)")


class ServerProcess:
    """The real server (`python -m server`) on a free port, in a subprocess; killed when a `with`
    block that holds it ends."""

    def __init__(self, *, database_url: str, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.target = ""
        # The web port's base URL (http://127.0.0.1:port), when it is on.
        self.web_url = ""

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ATELIER_", "GEMINI_", "GOOGLE_"))
        }
        env.update(
            ATELIER_LISTEN="127.0.0.1:0",
            ATELIER_WEB_LISTEN="127.0.0.1:0",
            ATELIER_DATABASE_URL=self.database_url,
            ATELIER_LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.target = f"{match.group(1)}:{match.group(2)}"
                web = _WEB.search(text)
                self.web_url = web.group(1) if web else ""
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{text}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the server did not start in {timeout} s:\n{self.log()}")

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (a graceful shutdown); returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)


def tool_env() -> dict[str, str]:
    """The caller's environment, less its Atelier settings, with the project's tools (grpcurl,
    atelier) first on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    return env


class Api:
    """The generated stub with a caller's token attached to every call."""

    def __init__(self, channel: grpc.Channel, token: str | None = None) -> None:
        self.stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def generate(self, prompt: str, **fields: object) -> generation_pb2.Version:
        request = pb.GenerateRequest(prompt=prompt, **fields)  # type: ignore[arg-type]
        version: generation_pb2.Version = self.stub.Generate(request, metadata=self.metadata, timeout=10)
        return version

    def get(self, name: str) -> generation_pb2.Version:
        version: generation_pb2.Version = self.stub.GetVersion(
            pb.GetVersionRequest(name=name), metadata=self.metadata, timeout=10
        )
        return version

    def progress(
        self, name: str, after_seq: int = 0, timeout: float = 30
    ) -> list[progress_pb2.ProgressEvent]:
        return list(
            self.stub.Progress(
                pb.ProgressRequest(name=name, after_seq=after_seq), metadata=self.metadata, timeout=timeout
            )
        )

    def wait(self, name: str, timeout: float = 30) -> generation_pb2.Version:
        """Follows Progress to the end, then returns the version."""
        self.progress(name, timeout=timeout)
        return self.get(name)

    def read_file(self, name: str, path: str) -> tuple[pb.ReadFileResponse, bytes]:
        chunks = list(
            self.stub.ReadFile(pb.ReadFileRequest(name=name, path=path), metadata=self.metadata, timeout=10)
        )
        return chunks[0], b"".join(chunk.data for chunk in chunks)

    def upload(self, *messages: pb.UploadTreeRequest) -> generation_pb2.Version:
        version: generation_pb2.Version = self.stub.UploadTree(
            iter(messages), metadata=self.metadata, timeout=10
        )
        return version

    def generation_count(self) -> int:
        response = self.stub.ListGenerations(
            pb.ListGenerationsRequest(page_size=1000), metadata=self.metadata
        )
        return len(response.generations)

    def export(self, name: str) -> dict[str, bytes]:
        """The version's whole tree (ExportTree), path -> bytes."""
        files: dict[str, bytes] = {}
        path = ""
        for chunk in self.stub.ExportTree(
            pb.ExportTreeRequest(name=name), metadata=self.metadata, timeout=30
        ):
            if chunk.HasField("file"):
                path = chunk.file.path
                files[path] = b""
            files[path] += chunk.data
        return files

    def list_files(self, name: str) -> list[str]:
        response = self.stub.ListFiles(
            pb.ListFilesRequest(parent=name, page_size=1000), metadata=self.metadata, timeout=10
        )
        return [file.path for file in response.files]


def file_message(path: str, data: bytes, mime_type: str = "") -> pb.UploadTreeRequest:
    """An UploadTree message that starts a file and carries all its bytes."""
    return pb.UploadTreeRequest(file=file_pb2.File(path=path, mime_type=mime_type), data=data)


def script(**fields: object) -> str:
    """A prompt for the scripted provider (see server/providers/scripted.py)."""
    import json

    return json.dumps(fields)


def fails(call: Callable[[], object]) -> grpc.RpcError:
    """The error of a call that must fail (a streaming call is read to its end)."""
    import pytest

    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return caught.value


def check_error(error: grpc.RpcError, code: grpc.StatusCode, reason: str, field: str | None = None) -> None:
    """The error has the status code, an ErrorInfo with the reason, and (if given) a field violation."""
    assert error.code() == code, error.details()
    info, bad_request = error_details(error)
    assert (info.reason, info.domain) == (reason, "atelier.v1"), info  # type: ignore[attr-defined]
    assert error.details()
    if field is not None:
        assert bad_request is not None
        assert field in [v.field for v in bad_request.field_violations], bad_request  # type: ignore[attr-defined]


def error_details(error: grpc.RpcError) -> tuple[object, object | None]:
    """The ErrorInfo and (if any) BadRequest carried by a failed call."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error}"
    info, bad_request = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    assert info is not None, f"no ErrorInfo on {error}"
    return info, bad_request
