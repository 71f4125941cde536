"""Limits per principal, against the real server with tiny limits: the request rate (RetryInfo,
which the SDK honours), queued jobs, open streams and uploads (slots freed however a call ends),
the same limits on the web port (Connect), and uploads that stream to storage and are refused at
the first byte over a limit."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import os
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import atelier
import grpc
import httpx
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import storage
from server.config import load_settings
from server.domain.gc import collect_garbage
from tests._client_support import free_port
from tests._support import Api, ServerProcess, check_error, error_details, fails, file_message
from tests._web_support import SERVICE_PATH, bearer, check_connect_error, envelope, error_info, stream, unary
from tests.conftest import BACKENDS
from tests.integration.conftest import SERVER_ENV, module_server

RATE = 50
MiB = 1024 * 1024
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_PRINCIPALS = ["rate", "sdk", "queue", "stream", "up1", "up2", "up3", "big", "webrate", "webstream", "webup"]
_TOKENS = ",".join(f"{name}-token:{name}" for name in _PRINCIPALS)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        **SERVER_ENV,
        "ATELIER_TOKENS": _TOKENS,
        # No job runs here: versions stay QUEUED, so their jobs count and their streams stay open.
        "ATELIER_MAX_IN_FLIGHT": "0",
        "ATELIER_RATE_LIMIT_PER_SECOND": str(RATE),
        "ATELIER_RATE_LIMIT_BURST": str(RATE),
        "ATELIER_MAX_QUEUED_JOBS_PER_PRINCIPAL": "2",
        "ATELIER_MAX_STREAMS_PER_PRINCIPAL": "2",
        "ATELIER_MAX_UPLOADS_PER_PRINCIPAL": "1",
        "ATELIER_MAX_UPLOADS": "2",
        "ATELIER_MAX_FILE_BYTES": str(12 * MiB),
        "ATELIER_MAX_TREE_BYTES": str(16 * MiB),
        "ATELIER_MAX_TREE_FILES": "5",
        "ATELIER_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    with module_server(request, tmp_path_factory, "limits", env) as process:
        yield process


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with server.channel() as channel:
        yield channel


@pytest.fixture(scope="module")
def web(server: ServerProcess) -> Iterator[httpx.Client]:
    """The same server's web port (Connect)."""
    with httpx.Client(base_url=server.web_url, timeout=30) as client:
        yield client


def _retry_delay(error: grpc.RpcError) -> float | None:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds() / 1e9)
    return None


def _exhaust(api: Api) -> grpc.RpcError:
    """Calls until the principal's bucket is empty; the refusal."""
    for _ in range(RATE * 4):
        try:
            api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata, timeout=5)
        except grpc.RpcError as error:
            return error
    raise AssertionError(f"{RATE * 4} calls in a row were all accepted")


def test_a_principal_over_its_rate_is_refused_with_retry_info_and_others_are_not(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    error = _exhaust(Api(channel, "rate-token"))
    check_error(error, _EXHAUSTED, "RATE_LIMITED")
    delay = _retry_delay(error)
    assert delay is not None and 0 < delay <= 1 / RATE + 0.01
    # Another principal has a bucket of its own.
    Api(channel, "queue-token").stub.ListModels(
        pb.ListModelsRequest(), metadata=Api(channel, "queue-token").metadata
    )
    time.sleep(delay)
    metrics = urllib.request.urlopen(
        f"http://{server.extra_env['ATELIER_METRICS_LISTEN']}/metrics", timeout=5
    )
    assert 'atelier_limit_refusals_total{reason="RATE_LIMITED"}' in metrics.read().decode()
    Api(channel, "rate-token").stub.ListModels(
        pb.ListModelsRequest(), metadata=Api(channel, "rate-token").metadata
    )


def _rate_refusals(server: ServerProcess) -> float:
    """How many calls the server refused as RATE_LIMITED (its Prometheus counter)."""
    address = server.extra_env["ATELIER_METRICS_LISTEN"]
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    line = 'atelier_limit_refusals_total{reason="RATE_LIMITED"} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


def test_the_sdk_surfaces_retry_after_and_retries_after_it(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    once = atelier.RetryPolicy(max_attempts=1)
    # Were the refusal retried on this policy's backoff, the call would take 5 s.
    retrying = atelier.RetryPolicy(max_attempts=3, initial_backoff=5, max_backoff=5, jitter=0)
    # One channel, so that the calls follow one another closely.
    with (
        atelier.AtelierClient(channel=channel, token="sdk-token", retry=once) as client,
        atelier.AtelierClient(channel=channel, token="sdk-token", retry=retrying) as patient,
    ):
        # A loaded machine may let the bucket refill before the patient call: then again.
        for _ in range(5):
            refused_before = _rate_refusals(server)
            with pytest.raises(atelier.ResourceExhausted) as caught:
                for _ in range(RATE * 4):
                    client.models()
            assert caught.value.reason == "RATE_LIMITED"
            assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 1 / RATE + 0.01
            start = time.monotonic()
            assert patient.models()
            assert time.monotonic() - start < 2
            # The patient call was refused too, and retried after RetryInfo's delay.
            if _rate_refusals(server) >= refused_before + 2:
                return
    raise AssertionError("the patient call was never refused first")


def test_queued_jobs_are_capped_across_the_database_and_a_refusal_writes_nothing(
    channel: grpc.Channel,
) -> None:
    api = Api(channel, "queue-token")
    first = api.generate("one", request_id="queue-1")
    uploaded = api.upload(file_message("a.txt", b"a\n"))  # COMPLETED at once: it queues no job
    api.stub.Iterate(pb.IterateRequest(parent=uploaded.name, prompt="more"), metadata=api.metadata)
    refusals = {
        "Generate": lambda: api.generate(
            "three", attachments=[file_pb2.Attachment(name="a.txt", mime_type="text/plain", data=b"x")]
        ),
        "Tweak": lambda: api.stub.Tweak(
            pb.TweakRequest(name=uploaded.name, prompt="b"), metadata=api.metadata
        ),
        "Iterate": lambda: api.stub.Iterate(
            pb.IterateRequest(parent=uploaded.name, prompt="c"), metadata=api.metadata
        ),
    }
    for method, call in refusals.items():
        error = fails(call)
        check_error(error, _EXHAUSTED, "TOO_MANY_QUEUED_JOBS")
        assert "2" in error.details(), method
    assert api.generation_count() == 2
    listed = api.stub.ListVersions(
        pb.ListVersionsRequest(parent=uploaded.name.rsplit("/versions/", 1)[0]), metadata=api.metadata
    )
    assert len(listed.versions) == 2
    # A retry of a request that made a version answers with it: it starts no job.
    assert api.generate("one", request_id="queue-1").name == first.name
    api.stub.CancelVersion(pb.CancelVersionRequest(name=first.name), metadata=api.metadata, timeout=10)
    # A cancelled job no longer counts: a place is free, for one more.
    api.stub.Regenerate(pb.RegenerateRequest(name=first.name), metadata=api.metadata)
    check_error(
        fails(lambda: api.stub.Regenerate(pb.RegenerateRequest(name=first.name), metadata=api.metadata)),
        _EXHAUSTED,
        "TOO_MANY_QUEUED_JOBS",
    )


def _until(probe: Callable[[], bool], what: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < end, what
        time.sleep(0.05)


def _open_progress(api: Api, name: str, timeout: float | None = None) -> Any:
    """A Progress stream with its first event read (so the server holds it), or raises the refusal."""
    call = api.stub.Progress(pb.ProgressRequest(name=name), metadata=api.metadata, timeout=timeout)
    next(call)
    return call


def _refusal(open_stream: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        open_stream()
    return caught.value


def test_open_streams_are_capped_and_a_cancelled_or_expired_stream_frees_its_slot(
    channel: grpc.Channel,
) -> None:
    api = Api(channel, "stream-token")
    name = api.generate("stays queued").name
    held = [_open_progress(api, name), _open_progress(api, name, timeout=1.5)]
    check_error(_refusal(lambda: _open_progress(api, name)), _EXHAUSTED, "TOO_MANY_STREAMS")
    # ReadFile and ExportTree count too.
    check_error(fails(lambda: api.export(name)), _EXHAUSTED, "TOO_MANY_STREAMS")

    held[0].cancel()

    def reopened() -> bool:
        try:
            held[0] = _open_progress(api, name)
        except grpc.RpcError as error:
            assert error.code() == _EXHAUSTED
            return False
        return True

    _until(reopened, "a cancelled stream's slot was never freed")
    # The second stream's deadline passes: its slot is freed too.
    _until(reopened, "an expired stream's slot was never freed")
    for call in held:
        call.cancel()


class _HeldUpload:
    """An UploadTree that sends its first file, then waits until released."""

    def __init__(self, api: Api, path: str) -> None:
        self.release = threading.Event()

        def messages() -> Iterator[pb.UploadTreeRequest]:
            yield file_message(path, b"held\n")
            self.release.wait(30)

        self.future = api.stub.UploadTree.future(messages(), metadata=api.metadata, timeout=40)

    def finish(self) -> str:
        self.release.set()
        return str(self.future.result().name)


def _upload_refusal(api: Api) -> str:
    """The reason an empty upload is refused: EMPTY_UPLOAD once a slot is free (it writes nothing)."""
    info, _ = error_details(fails(lambda: api.upload()))
    return str(info.reason)  # type: ignore[attr-defined]


def test_uploads_are_capped_per_principal_and_per_server(channel: grpc.Channel) -> None:
    one, two, three = (Api(channel, f"up{n}-token") for n in (1, 2, 3))
    first = _HeldUpload(one, "a.txt")
    _until(lambda: _upload_refusal(one) == "TOO_MANY_UPLOADS", "the held upload never took its slot")
    second = _HeldUpload(two, "b.txt")
    _until(lambda: _upload_refusal(three) == "SERVER_UPLOADS_BUSY", "the server's cap never held")
    assert first.finish() and second.finish()
    _until(lambda: _upload_refusal(one) == "EMPTY_UPLOAD", "a finished upload's slot was never freed")
    assert _upload_refusal(three) == "EMPTY_UPLOAD"


def _unused_blobs(url: str) -> int:
    """Blobs that nothing refers to (what the collector would remove)."""
    db = storage.Database(url)
    try:
        with db.read() as tx:
            return len(storage.scan_blobs(tx, after="", limit=1_000_000).unused)
    finally:
        db.dispose()


def _collect(url: str) -> None:
    """One pass of the collector, with no grace period, as `atelier-server gc --grace 0` runs it."""
    db = storage.Database(url)
    try:
        anyio.run(functools.partial(collect_garbage, db, load_settings({}), grace_seconds=0))
    finally:
        db.dispose()


def test_a_big_file_streams_into_parts_and_reads_back_whole(channel: grpc.Channel) -> None:
    api = Api(channel, "big-token")
    data = os.urandom(9 * MiB + 123)
    chunks = [data[i : i + MiB] for i in range(0, len(data), MiB)]
    messages = [pb.UploadTreeRequest(file=file_pb2.File(path="big.bin"), data=chunks[0])]
    messages += [pb.UploadTreeRequest(data=chunk) for chunk in chunks[1:]]
    messages.append(file_message("small.txt", b"small\n"))
    version = api.upload(*messages)
    assert api.export(version.name) == {"big.bin": data, "small.txt": b"small\n"}
    assert api.read_file(version.name, "big.bin")[1] == data


class _HugeUpload:
    """An UploadTree stream: `first`, then 100 MiB of data in 256 KiB chunks; counts the chunks
    gRPC took from it."""

    def __init__(self, first: pb.UploadTreeRequest) -> None:
        self.first = first
        self.sent = 0

    def __iter__(self) -> Iterator[pb.UploadTreeRequest]:
        yield self.first
        for _ in range(400):
            self.sent += 1
            yield pb.UploadTreeRequest(data=os.urandom(256 * 1024))


def test_a_file_over_the_limit_is_refused_before_the_stream_ends_and_its_parts_are_collected(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    api = Api(channel, "big-token")
    before = _unused_blobs(server.database_url)
    upload = _HugeUpload(pb.UploadTreeRequest(file=file_pb2.File(path="huge.bin")))
    error = fails(lambda: api.stub.UploadTree(iter(upload), metadata=api.metadata, timeout=30))
    check_error(error, grpc.StatusCode.INVALID_ARGUMENT, "FILE_TOO_LARGE", "data")
    # Refused at 12 MiB and a byte (49 chunks): what gRPC had buffered by then is all that went
    # (about 58 chunks; the old server read all 400 before it answered).
    assert upload.sent < 100, upload.sent
    # The parts stored as the file came (two of 4 MiB) are referred to by nothing, and the
    # collector takes them.
    assert _unused_blobs(server.database_url) == before + 2
    _collect(server.database_url)
    assert _unused_blobs(server.database_url) == 0


def test_an_over_long_description_is_refused_before_the_files_are_read(
    server: ServerProcess, channel: grpc.Channel
) -> None:
    api = Api(channel, "big-token")
    before = _unused_blobs(server.database_url)
    # A description one byte over the test server's max_prompt_bytes (1 MiB, SERVER_ENV).
    first = pb.UploadTreeRequest(description="d" * (MiB + 1), file=file_pb2.File(path="huge.bin"))
    upload = _HugeUpload(first)
    error = fails(lambda: api.stub.UploadTree(iter(upload), metadata=api.metadata, timeout=30))
    check_error(error, grpc.StatusCode.INVALID_ARGUMENT, "PROMPT_TOO_LARGE", "description")
    # Refused at the first message: only what gRPC had buffered went (the file-size test above
    # sees about 58 chunks go before its refusal at 49), and no part was stored.
    assert upload.sent < 40, upload.sent
    assert _unused_blobs(server.database_url) == before


def test_the_trees_limits_hold_for_uploads(channel: grpc.Channel) -> None:
    api = Api(channel, "big-token")
    many = [file_message(f"f{n}.txt", b"x") for n in range(6)]
    check_error(fails(lambda: api.upload(*many)), grpc.StatusCode.INVALID_ARGUMENT, "TREE_TOO_LARGE", "data")
    nine = b"n" * (9 * MiB)
    check_error(
        fails(lambda: api.upload(file_message("a.bin", nine), file_message("b.bin", nine))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "TREE_TOO_LARGE",
        "data",
    )
    check_error(
        fails(lambda: api.upload(file_message("a.txt", b"1"), file_message("a.txt", b"2"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CHANGES",
        "file",
    )


def _connect_retry_delay(error: dict[str, Any]) -> float | None:
    """The google.rpc.RetryInfo delay among a Connect error's details."""
    for detail in error.get("details", ()):
        if detail["type"] == "google.rpc.RetryInfo":
            info = error_details_pb2.RetryInfo()
            info.ParseFromString(base64.b64decode(detail["value"] + "=="))
            return float(info.retry_delay.ToNanoseconds() / 1e9)
    return None


def test_the_web_port_refuses_over_the_rate_with_retry_info_from_the_same_limiter(
    server: ServerProcess, channel: grpc.Channel, web: httpx.Client
) -> None:
    token = "webrate-token"
    refused_before = _rate_refusals(server)
    # Many at once: one Connect call after another may not outrun the bucket's refill.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: unary(web, "ListModels", {}, token), range(RATE * 4)))
    refused = [response for response in responses if response.status_code != 200]
    assert refused, f"{RATE * 4} Connect calls were all accepted"
    response = refused[0]
    error = check_connect_error(response, 429, "resource_exhausted", "RATE_LIMITED")
    delay = _connect_retry_delay(error)
    assert delay is not None and 0 < delay <= 1 / RATE + 0.01
    assert _rate_refusals(server) >= refused_before + 1
    # One bucket per principal for both ports: with its bucket emptied on the gRPC port, the
    # principal's next Connect call is refused (a loaded machine may refill it in between: again).
    grpc_api = Api(channel, token)
    for _ in range(5):
        time.sleep(delay)
        _exhaust(grpc_api)
        if unary(web, "ListModels", {}, token).status_code == 429:
            return
    raise AssertionError("the web port never shared the gRPC port's bucket")


@contextlib.contextmanager
def _connect_progress(web: httpx.Client, name: str, token: str) -> Iterator[None]:
    """A Connect Progress stream with its first event read (so the server holds it), closed on exit."""
    with web.stream(
        "POST",
        f"{SERVICE_PATH}/Progress",
        content=envelope({"name": name}),
        headers={"content-type": "application/connect+json", **bearer(token)},
    ) as response:
        assert response.status_code == 200
        received = b""
        chunks = response.iter_bytes()
        while len(received) < 5 or len(received) < 5 + struct.unpack(">I", received[1:5])[0]:
            received += next(chunks)
        assert received[0] == 0, f"the stream ended at once: {received!r}"
        yield


def test_the_web_ports_streams_count_against_the_same_cap_and_a_closed_one_frees_its_slot(
    channel: grpc.Channel, web: httpx.Client
) -> None:
    token = "webstream-token"
    api = Api(channel, token)
    name = api.generate("stays queued").name
    with contextlib.ExitStack() as held:
        held.enter_context(_connect_progress(web, name, token))
        second = contextlib.ExitStack()
        second.enter_context(_connect_progress(web, name, token))
        # A third stream is refused on either port.
        _, end = stream(web, "Progress", {"name": name}, token)
        assert end["error"]["code"] == "resource_exhausted", end
        assert error_info(end["error"]).reason == "TOO_MANY_STREAMS"
        check_error(_refusal(lambda: _open_progress(api, name)), _EXHAUSTED, "TOO_MANY_STREAMS")
        second.close()  # the browser goes away: the server ends its call and frees the slot

        def reopened() -> bool:
            try:
                held.callback(_open_progress(api, name).cancel)
            except grpc.RpcError as error:
                assert error.code() == _EXHAUSTED
                return False
            return True

        _until(reopened, "a closed Connect stream's slot was never freed")


def test_upload_files_takes_an_upload_slot(channel: grpc.Channel, web: httpx.Client) -> None:
    token = "webup-token"
    files = {"files": [{"path": "a.txt", "data": base64.b64encode(b"a\n").decode()}]}
    api = Api(channel, token)
    held = _HeldUpload(api, "held.txt")
    try:
        # Once gRPC sees the held upload's slot taken, UploadFiles must meet it too.
        _until(lambda: _upload_refusal(api) == "TOO_MANY_UPLOADS", "the held upload never took its slot")
        check_connect_error(
            unary(web, "UploadFiles", files, token), 429, "resource_exhausted", "TOO_MANY_UPLOADS"
        )
    finally:
        assert held.finish()
    _until(
        lambda: unary(web, "UploadFiles", files, token).status_code == 200,
        "a finished upload's slot was never freed for UploadFiles",
    )
