"""The web port: every RPC over Connect with JSON (as curl sends it), streams in Connect's
envelopes, gRPC-Web, the same auth and errors (ErrorInfo in the details) as the gRPC port, CORS
by allowlist, /healthz and one graceful shutdown for both ports."""

from __future__ import annotations

import base64
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2

from support.databases import fresh_database
from tests._support import ServerProcess, script
from tests._web_support import (
    SERVICE_PATH,
    check_connect_error,
    envelope,
    envelopes,
    error_info,
    ok,
    stream,
    unary,
)
from tests.conftest import BACKENDS, check_backend
from tests.integration.conftest import SERVER_ENV, module_server

ORIGIN = "http://localhost:5173"
WEB_ENV = {
    **SERVER_ENV,
    "ATELIER_TOKENS": SERVER_ENV["ATELIER_TOKENS"] + ",reader-token:alice:read",
    "ATELIER_CORS_ORIGINS": f"{ORIGIN}, https://console.example.com",
    "ATELIER_MAX_MESSAGE_BYTES": str(2 * 1024 * 1024),
}


@pytest.fixture(scope="module", params=BACKENDS)
def web_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with module_server(request, tmp_path_factory, "web", WEB_ENV) as process:
        yield process


@pytest.fixture(scope="module")
def web(web_server: ServerProcess) -> Iterator[httpx.Client]:
    assert web_server.web_url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=web_server.web_url, timeout=30) as client:
        yield client


def _wait(web: httpx.Client, name: str, token: str = "alice-token") -> dict[str, Any]:
    events, end = stream(web, "Progress", {"name": name}, token)
    assert "error" not in end, end
    assert events[-1]["state"] in ("VERSION_STATE_COMPLETED", "VERSION_STATE_NEEDS_REVIEW"), events[-1]
    return ok(web, "GetVersion", {"name": name}, token)


@pytest.fixture(scope="module")
def done(web: httpx.Client) -> dict[str, Any]:
    """A COMPLETED version of alice's, made through the web port."""
    version = ok(web, "Generate", {"prompt": "a small tree", "model": "offline"}, "alice-token")
    assert version["state"] == "VERSION_STATE_QUEUED"
    return _wait(web, version["name"])


def test_every_unary_rpc_answers_connect_json(web: httpx.Client, done: dict[str, Any]) -> None:
    name = done["name"]
    generation = name.split("/versions/")[0]
    alice = "alice-token"
    models = ok(web, "ListModels", {}, alice)
    assert models["defaultModel"] == "scripted"
    assert [m["name"] for m in models["models"]] == ["scripted", "offline"]
    assert ok(web, "GetVersion", {"name": name}, alice)["state"] == "VERSION_STATE_COMPLETED"
    assert [v["name"] for v in ok(web, "ListVersions", {"parent": generation}, alice)["versions"]] == [name]
    assert ok(web, "GetGeneration", {"name": generation}, alice)["name"] == generation
    assert generation in [g["name"] for g in ok(web, "ListGenerations", {}, alice)["generations"]]
    files = ok(web, "ListFiles", {"parent": name}, alice)["files"]
    assert files and all(f["sha256"] and f["mimeType"] for f in files)
    assert ok(web, "Diff", {"base": name, "target": name}, alice) == {}
    assert ok(web, "GetSession", {"name": f"{generation}/session"}, alice)["name"] == f"{generation}/session"
    assert ok(web, "ListTurns", {"parent": f"{generation}/session"}, alice)["turns"]

    tweak = ok(web, "Tweak", {"name": name, "prompt": "add notes.txt", "etag": done["etag"]}, alice)
    iterate = ok(web, "Iterate", {"parent": name, "prompt": "add other.txt"}, alice)
    again = ok(web, "Regenerate", {"name": name, "requestId": "web-regenerate-1"}, alice)
    assert (
        again["name"] == ok(web, "Regenerate", {"name": name, "requestId": "web-regenerate-1"}, alice)["name"]
    )
    for made in (tweak, iterate, again):
        _wait(web, made["name"])
    merged = ok(
        web,
        "Merge",
        {"ours": tweak["name"], "theirs": iterate["name"], "strategy": "MERGE_STRATEGY_OURS"},
        alice,
    )
    assert merged["version"]["kind"] == "VERSION_KIND_MERGE"
    late = ok(web, "Generate", {"prompt": script(stages=2, delay=5), "model": "scripted"}, alice)
    assert ok(web, "CancelVersion", {"name": late["name"]}, alice)["name"] == late["name"]

    upload = ok(
        web,
        "UploadFiles",
        {
            "description": "from a browser",
            "files": [
                {"path": "index.html", "data": base64.b64encode(b"<p>hi</p>").decode()},
                {
                    "path": "src/app.js",
                    "mimeType": "text/javascript",
                    "data": base64.b64encode(b"1;").decode(),
                },
            ],
        },
        alice,
    )
    assert (upload["state"], upload["kind"]) == ("VERSION_STATE_COMPLETED", "VERSION_KIND_UPLOAD")
    listed = ok(web, "ListFiles", {"parent": upload["name"]}, alice)["files"]
    assert [(f["path"], f["mimeType"]) for f in listed] == [
        ("index.html", "text/html"),
        ("src/app.js", "text/javascript"),
    ]
    uploaded = upload["name"].split("/versions/")[0]
    deleted = ok(web, "DeleteGeneration", {"name": uploaded}, alice)
    assert deleted["deleteTime"]
    assert "deleteTime" not in ok(web, "UndeleteGeneration", {"name": uploaded}, alice)


def test_a_fan_out_its_batch_stream_and_costs_over_connect_json(web: httpx.Client) -> None:
    alice = "alice-token"
    request = {"prompt": "a small tree", "model": "offline", "variants": [{"name": "a"}, {"name": "b"}]}
    estimate = ok(web, "EstimateCost", {"generate": request}, alice)
    assert (estimate["model"], estimate["outputs"], estimate["calls"]) == ("offline", "2", "2")
    first = ok(web, "Generate", request, alice)
    batch = first["batch"]
    events, end = stream(web, "Progress", {"name": batch}, alice)
    assert end == {}
    ended = [e for e in events if e["state"] == "VERSION_STATE_COMPLETED"]
    assert sorted(e["version"] for e in ended) == [first["name"], first["name"][:-1] + "2"]
    assert ended[-1]["batchCounts"]["completed"] == "2" and ended[-1]["resumeToken"]
    # Resumed from its last token, the stream has nothing more to say.
    rest, end = stream(web, "Progress", {"name": batch, "resumeToken": ended[-1]["resumeToken"]}, alice)
    assert end == {} and not [e for e in rest if e.get("state") == "VERSION_STATE_COMPLETED"]
    got = ok(web, "GetBatch", {"name": batch}, alice)
    assert [v["variant"] for v in got["versions"]] == ["a", "b"] and got["done"] is True
    assert "rows" in ok(web, "GetUsage", {}, alice)


def test_drafts_and_blame_answer_connect_json(web: httpx.Client, done: dict[str, Any]) -> None:
    alice = "alice-token"
    draft = ok(web, "DraftPrompt", {"text": "a tiny cli", "context": "terse", "model": "offline"}, alice)
    assert draft["name"].startswith("drafts/") and draft["prompt"] == draft["draftedPrompt"]
    assert ok(web, "GetDraft", {"name": draft["name"]}, alice) == draft
    assert draft["name"] in [d["name"] for d in ok(web, "ListDrafts", {}, alice)["drafts"]]
    edited = ok(web, "UpdateDraft", {"name": draft["name"], "prompt": "a tiny cli that greets"}, alice)
    assert (edited["prompt"], edited["edited"]) == ("a tiny cli that greets", True)
    made = _wait(web, ok(web, "Generate", {"draft": draft["name"]}, alice)["name"])
    assert (made["prompt"], made["draft"]) == ("a tiny cli that greets", draft["name"])
    dropped = ok(web, "DraftPrompt", {"text": "never mind", "model": "offline"}, alice)
    assert ok(web, "DeleteDraft", {"name": dropped["name"]}, alice) == {}

    name = done["name"]
    blamed = ok(web, "Blame", {"name": name}, alice)["files"]
    paths = [f["path"] for f in ok(web, "ListFiles", {"parent": name}, alice)["files"]]
    assert [b["path"] for b in blamed] == paths
    assert {(b["version"], b["kind"]) for b in blamed} == {(name, "VERSION_KIND_GENERATE")}
    with_blame = ok(web, "ListFiles", {"parent": name, "includeBlame": True}, alice)["files"]
    assert [f["blame"] for f in with_blame] == blamed


def test_the_streaming_rpcs_answer_in_connect_envelopes(web: httpx.Client, done: dict[str, Any]) -> None:
    name = done["name"]
    events, end = stream(web, "Progress", {"name": name, "afterSeq": "0"}, "alice-token")
    assert end == {}
    seqs = [int(event["seq"]) for event in events]
    assert seqs == sorted(seqs) and seqs[0] == 1
    assert events[-1]["state"] == "VERSION_STATE_COMPLETED"
    resumed, _ = stream(web, "Progress", {"name": name, "afterSeq": str(seqs[-2])}, "alice-token")
    assert [int(event["seq"]) for event in resumed] == seqs[-1:]

    path = "README.md"
    chunks, end = stream(web, "ReadFile", {"name": name, "path": path}, "alice-token")
    assert end == {} and chunks[0]["file"]["path"] == path
    text = b"".join(base64.b64decode(chunk.get("data", "")) for chunk in chunks)
    exported, end = stream(web, "ExportTree", {"name": name}, "alice-token")
    assert end == {}
    assert path in [chunk["file"]["path"] for chunk in exported if "file" in chunk]
    assert text and text.decode()


def test_errors_carry_error_info_as_on_grpc(web: httpx.Client, done: dict[str, Any]) -> None:
    error = check_connect_error(
        unary(web, "GetVersion", {"name": "nope"}, "alice-token"), 400, "invalid_argument", "INVALID_NAME"
    )
    bad_request = [d for d in error["details"] if d["type"] == "google.rpc.BadRequest"]
    assert bad_request and bad_request[0]["debug"]["fieldViolations"][0]["field"] == "name"
    # Another owner's version is not found, exactly as on the gRPC port.
    check_connect_error(
        unary(web, "GetVersion", {"name": done["name"]}, "bob-token"), 404, "not_found", "VERSION_NOT_FOUND"
    )
    # Inside a stream the error is the end-of-stream message, with the same details.
    _, end = stream(web, "ReadFile", {"name": done["name"], "path": "missing.txt"}, "alice-token")
    assert end["error"]["code"] == "not_found"
    assert error_info(end["error"]).reason == "FILE_NOT_FOUND"
    # A text that breaks the one rule for texts, and a JSON body that is not the message.
    check_connect_error(
        unary(web, "Generate", {"prompt": "bad\x00", "model": "offline"}, "alice-token"),
        400,
        "invalid_argument",
        "NUL_IN_TEXT",
    )
    response = web.post(
        f"{SERVICE_PATH}/GetVersion",
        content=b"{not json",
        headers={"content-type": "application/json", "authorization": "Bearer alice-token"},
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_argument"


def test_the_same_credentials_and_scopes(web: httpx.Client, web_server: ServerProcess) -> None:
    check_connect_error(unary(web, "ListModels", {}), 401, "unauthenticated", "MISSING_CREDENTIALS")
    check_connect_error(unary(web, "ListModels", {}, "wrong-token"), 401, "unauthenticated", "INVALID_TOKEN")
    assert ok(web, "ListModels", {}, "reader-token")["defaultModel"] == "scripted"
    check_connect_error(
        unary(web, "Generate", {"prompt": "p"}, "reader-token"), 403, "permission_denied", "SCOPE_REQUIRED"
    )
    # Mutations through the web port are audited as through the gRPC port.
    audit = [line for line in web_server.log().splitlines() if "atelier.audit" in line]
    assert any(
        '"method": "Generate", "resource": "", "outcome": "PERMISSION_DENIED"' in line for line in audit
    ), audit


def test_grpc_web(web: httpx.Client, done: dict[str, Any]) -> None:
    request = pb.GetVersionRequest(name=done["name"]).SerializeToString()
    response = web.post(
        f"{SERVICE_PATH}/GetVersion",
        content=struct.pack(">BI", 0, len(request)) + request,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": "Bearer alice-token",
        },
    )
    assert response.status_code == 200
    (flags, data), (trailer_flags, trailers) = envelopes(response.content)
    assert flags == 0 and generation_pb2.Version.FromString(data).name == done["name"]
    assert trailer_flags == 0x80 and b"grpc-status: 0" in trailers.lower().replace(
        b"grpc-status:0", b"grpc-status: 0"
    )


def test_cors_follows_the_allowlist(web: httpx.Client) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    allowed = web.options(f"{SERVICE_PATH}/ListModels", headers={"origin": ORIGIN, **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "POST" in allowed.headers["access-control-allow-methods"]
    refused = web.options(
        f"{SERVICE_PATH}/ListModels", headers={"origin": "https://evil.example", **preflight}
    )
    assert refused.status_code == 403 and "grpc-status" not in refused.headers
    assert "https://evil.example is not allowed" in refused.text and "ATELIER_CORS_ORIGINS" in refused.text
    assert "access-control-allow-origin" not in refused.headers
    call = unary(web, "ListModels", {}, "alice-token")
    assert "access-control-allow-origin" not in call.headers  # no origin, no CORS
    call = web.post(
        f"{SERVICE_PATH}/ListModels",
        content="{}",
        headers={
            "content-type": "application/json",
            "authorization": "Bearer alice-token",
            "origin": "https://console.example.com",
        },
    )
    assert call.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "grpc-status-details-bin" in call.headers["access-control-expose-headers"]


def test_health_size_limit_and_unknown_paths(web: httpx.Client) -> None:
    health = web.get("/healthz")
    assert (health.status_code, health.text) == (200, "SERVING\n")
    too_big = web.post(
        f"{SERVICE_PATH}/Generate",
        content=b"x" * (2 * 1024 * 1024 + 1),
        headers={"content-type": "application/json", "authorization": "Bearer alice-token"},
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "resource_exhausted"
    assert "2097152 bytes" in too_big.json()["message"]
    assert web.get("/no/such/page").status_code == 404
    unknown = unary(web, "NoSuchMethod", {}, "alice-token")
    assert unknown.status_code == 404


@pytest.fixture(params=BACKENDS)
def lone_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    backend = check_backend(request.param)
    with fresh_database(backend, tmp_path) as url:
        process = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=WEB_ENV).start()
        try:
            yield process
        finally:
            process.kill()


def _health(web: httpx.Client) -> int:
    time.sleep(0.05)
    try:
        return web.get("/healthz", timeout=2).status_code
    except httpx.TransportError:
        return 0


def test_one_graceful_shutdown_for_both_ports(lone_server: ServerProcess) -> None:
    """SIGTERM with a Progress stream open on the web port: both ports stop, within the grace period."""
    with httpx.Client(base_url=lone_server.web_url, timeout=30) as web:
        version = ok(
            web, "Generate", {"prompt": script(stages=2, delay=30), "model": "scripted"}, "alice-token"
        )
        streamed: list[bytes] = []

        def follow() -> None:
            with web.stream(
                "POST",
                f"{SERVICE_PATH}/Progress",
                content=envelope({"name": version["name"]}),
                headers={"content-type": "application/connect+json", "authorization": "Bearer alice-token"},
            ) as response:
                for chunk in response.iter_bytes():
                    streamed.append(chunk)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        deadline = time.monotonic() + 10
        while not streamed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert streamed, "the stream sent its first events"
        started = time.monotonic()
        assert lone_server.process is not None
        lone_server.process.send_signal(signal.SIGTERM)
        # While the jobs are stopped, /healthz says so (load balancers stop sending calls).
        health = [_health(web) for _ in range(5)]
        assert 503 in health, health
        assert lone_server.process.wait(20) == 0
        assert time.monotonic() - started < 10
        follower.join(5)
        assert not follower.is_alive(), "the web stream ended with the server"
    log = lone_server.log()
    assert "received SIGTERM: shutting down" in log and "Atelier stopped" in log
