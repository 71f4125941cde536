"""A client learns what the server accepts in a request (ListModels' `limits`, the server's
settings) before it sends, through gRPC, Connect, the SDK and the CLI; and those are the limits
the server holds requests to."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from atelier import AsyncAtelierClient, AtelierClient, InvalidArgument, RequestLimits
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc

from server.config import Settings
from tests._client_support import TOKEN, client_server
from tests._support import ServerProcess, tool_env
from tests._web_support import check_connect_error, ok, unary

# Not the defaults, so that what a client is shown must come from this server's settings.
_SETTINGS = {
    "ATELIER_MAX_BATCH_SIZE": "5",
    "ATELIER_MAX_PROMPT_BYTES": "1000",
    "ATELIER_MAX_ATTACHMENT_BYTES": "0",
    "ATELIER_MAX_TREE_FILES": "77",
}
_DEFAULTS = Settings()
_EXPECTED = RequestLimits(
    max_batch_size=5,
    max_prompt_bytes=1000,
    max_attachment_bytes=0,
    max_message_bytes=_DEFAULTS.max_message_bytes,
    max_file_bytes=_DEFAULTS.max_file_bytes,
    max_tree_bytes=_DEFAULTS.max_tree_bytes,
    max_tree_files=77,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with client_server(tmp_path_factory.mktemp("limits"), **_SETTINGS) as process:
        yield process


def test_list_models_says_what_the_server_accepts_over_grpc_and_connect(server: ServerProcess) -> None:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(server.target) as channel:
        response = atelier_service_pb2_grpc.AtelierServiceStub(channel).ListModels(
            pb.ListModelsRequest(), metadata=metadata, timeout=10
        )
    assert response.limits == pb.RequestLimits(**dataclasses.asdict(_EXPECTED))

    with httpx.Client(base_url=server.web_url, timeout=10) as web:
        limits = ok(web, "ListModels", {}, token=TOKEN)["limits"]
    # Connect's JSON: 64-bit integers as strings, and a zero left out.
    assert limits == {
        "maxBatchSize": 5,
        "maxPromptBytes": "1000",
        "maxMessageBytes": str(_DEFAULTS.max_message_bytes),
        "maxFileBytes": str(_DEFAULTS.max_file_bytes),
        "maxTreeBytes": str(_DEFAULTS.max_tree_bytes),
        "maxTreeFiles": 77,
    }


def test_the_sdk_gives_them_typed(server: ServerProcess) -> None:
    with AtelierClient(server.target, token=TOKEN) as client:
        assert client.limits() == _EXPECTED

    async def ask() -> RequestLimits:
        async with AsyncAtelierClient(server.target, token=TOKEN) as client:
            return await client.limits()

    assert asyncio.run(ask()) == _EXPECTED


def test_the_cli_shows_them_under_the_models(server: ServerProcess, tmp_path: Path) -> None:
    env = {**tool_env(), "ATELIER_TARGET": server.target, "ATELIER_TOKEN": TOKEN, "COLUMNS": "400"}
    shown = subprocess.run(
        [sys.executable, "-m", "atelier", "models"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "Requests: prompts of at most 1000 B, no attachments, 5 outputs a fan-out, files of 32 MiB, "
        "trees of 512 MiB and 77 files, messages of 32 MiB." in shown.stdout
    )


def test_the_server_holds_requests_to_the_limits_it_shows(server: ServerProcess) -> None:
    limits = _EXPECTED
    with AtelierClient(server.target, token=TOKEN) as client:
        # At the limit: accepted.
        batch = client.generate("x" * limits.max_prompt_bytes, count=limits.max_batch_size)
        assert batch.batch
        # One over: refused, saying which limit.
        with pytest.raises(InvalidArgument) as too_long:
            client.generate("x" * (limits.max_prompt_bytes + 1))
        assert too_long.value.reason == "PROMPT_TOO_LARGE"
        with pytest.raises(InvalidArgument) as too_many:
            client.generate("a lighthouse", count=limits.max_batch_size + 1)
        assert too_many.value.reason == "INVALID_COUNT"
    with httpx.Client(base_url=server.web_url, timeout=10) as web:
        attachment = {"name": "a.txt", "mimeType": "text/plain", "data": "aGk="}
        refused = unary(web, "Generate", {"prompt": "a lighthouse", "attachments": [attachment]}, TOKEN)
    check_connect_error(refused, 400, "invalid_argument", "ATTACHMENTS_TOO_LARGE")
