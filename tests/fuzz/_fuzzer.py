"""Calls every RPC of AtelierService with messages made by _strategies, on a real server, through
both of its doors: the gRPC port, and the web port's Connect protocol.

One batch per RPC: a unary call gets one fuzzed request, a server-streaming call is read to its
end, the client-streaming UploadTree gets a stream of fuzzed messages. Each case runs as a
random caller: mostly alice, sometimes another principal, an admin, nobody, or a made-up
token. Each case is sent to the gRPC port, then to the web port as Connect (binary or JSON, at
random), or, one time in four there, as a body of random bytes. No answer may be UNKNOWN or
INTERNAL (nor, on the web port, anything but a Connect answer), and after each batch the server
must still be up and healthy. Before each batch, fresh resources are made (an upload, a
generation, a tweak), so that the batch's names reach real versions, files, sessions and page
tokens.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from atelier.v1 import atelier_service_pb2 as pb
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._support import Api, ServerProcess, file_message, script
from tests.fuzz._strategies import Strategies

SERVICE = pb.DESCRIPTOR.services_by_name["AtelierService"]
TOKENS = ["alice-token", "bob-token", "root-token"]
_FORBIDDEN = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
_FORBIDDEN_NAMES = {code.name for code in _FORBIDDEN}
# Connect's end-of-stream flag on an enveloped message.
_END_STREAM = 0x02
# A Progress stream of a version still running waits for its end: not for longer than this.
_CALL_TIMEOUT_SECONDS = 10.0
_MAX_STREAM_MESSAGES = 8
# At most this many responses of a server stream are read (a whole tree may be large).
_MAX_RESPONSES = 10_000
# Stands for a made-up token among the callers.
_MADE_UP = "made-up"


@dataclass
class Figures:
    cases: int = 0
    batches: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    # The same cases' answers on the web port (Connect), by code.
    web_codes: Counter[str] = field(default_factory=Counter)
    # A few of the calls that ran out of time (allowed: a Progress stream follows a running job).
    timeouts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, backend: str) -> str:
        codes = ", ".join(f"{code} {count}" for code, count in self.codes.most_common())
        web = ", ".join(f"{code} {count}" for code, count in self.web_codes.most_common())
        return (
            f"fuzz on {backend}: {self.cases} cases over {self.batches} RPCs, "
            f"{sum(self.codes[name] for name in _FORBIDDEN_NAMES)} UNKNOWN or INTERNAL on gRPC and "
            f"{sum(self.web_codes[name] for name in _FORBIDDEN_NAMES)} on Connect, "
            f"{self.seconds:.0f} s; gRPC answers: {codes}; Connect answers: {web}"
        )


class Fuzzer:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.figures = Figures()

    def run(self, cases: int) -> Figures:
        """About `cases` cases in all, spread evenly over the service's RPCs."""
        started = time.monotonic()
        per_method = math.ceil(cases / len(SERVICE.methods))
        with (
            self.server.channel() as channel,
            httpx.Client(base_url=self.server.web_url, timeout=_CALL_TIMEOUT_SECONDS + 5) as web,
        ):
            for method in SERVICE.methods:
                batch_started, before = time.monotonic(), self.figures.cases
                self.batch(channel, web, method, per_method)
                self.check_alive(channel, web, method)
                took = time.monotonic() - batch_started
                print(f"  {method.name}: {self.figures.cases - before} cases, {took:.1f} s", flush=True)
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def batch(
        self, channel: grpc.Channel, web: httpx.Client, method: MethodDescriptor, examples: int
    ) -> None:
        known = self.seed(channel)
        # Half the cases are plain requests, which mostly get past validation; half go for the edges.
        request = st.one_of(
            Strategies(known, plain=True).message(method.input_type),
            Strategies(known).message(method.input_type),
        )
        payload = st.lists(request, max_size=_MAX_STREAM_MESSAGES) if method.client_streaming else request
        made_up = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
        # Mostly alice, so that most cases get past authentication.
        callers = st.sampled_from([TOKENS[0]] * 12 + [*TOKENS[1:], None, _MADE_UP]).flatmap(
            lambda token: made_up if token is _MADE_UP else st.just(token)
        )
        callable_ = _callable(channel, method)
        # On the web port: binary or JSON Connect, or (one time in four) a body of random bytes.
        codecs = st.sampled_from(["proto", "json"])
        garbage = st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=80))

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(payload=payload, caller=callers, codec=codecs, noise=garbage)
        def case(payload: Any, caller: str | None, codec: str, noise: bytes | None) -> None:
            metadata = [("authorization", f"Bearer {caller}")] if caller is not None else []
            code = _call(callable_, method, payload, metadata)
            self.figures.cases += 1
            self.figures.codes[code.name] += 1
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and len(self.figures.timeouts) < 5:
                self.figures.timeouts.append(f"{method.name} {_short(payload)}")
            if code in _FORBIDDEN:
                trace = _last_traceback(self.server.log())
                raise AssertionError(f"{method.name} answered {code.name} to {_short(payload)}\n{trace}")
            web_code = _connect_call(web, method, payload, metadata, codec, noise)
            self.figures.web_codes[web_code] += 1
            if web_code in _FORBIDDEN_NAMES or web_code.startswith("HTTP "):
                trace = _last_traceback(self.server.log())
                sent = f"{len(noise)} random bytes" if noise is not None else f"{codec}: {_short(payload)}"
                raise AssertionError(f"{method.name} on Connect answered {web_code} to {sent}\n{trace}")

        case()
        self.figures.batches += 1

    def check_alive(self, channel: grpc.Channel, web: httpx.Client, method: MethodDescriptor) -> None:
        process = self.server.process
        assert process is not None and process.poll() is None, f"the server died during {method.name}"
        assert web.get("/healthz").status_code == 200, f"the web port is unhealthy after {method.name}"
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, f"unhealthy after {method.name}"

    def seed(self, channel: grpc.Channel) -> dict[str, list[str]]:
        """Makes fresh resources; returns their names and the values that reach them, by the
        name of the request field they fit."""
        api = Api(channel, TOKENS[0])
        upload = api.upload(
            pb.UploadTreeRequest(description="fuzz seed"),
            file_message("README.md", b"# seed\n"),
            file_message("src/main.py", b"print('seed')\n"),
        )
        generated = api.wait(api.generate("a tiny seed CLI", model="offline").name)
        tweaked = api.stub.Tweak(
            pb.TweakRequest(name=generated.name, prompt="add file docs/notes.md"),
            metadata=api.metadata,
            timeout=10,
        )
        running = api.generate(script(stages=1, delay=2.0), model="scripted")
        versions = [upload.name, generated.name, tweaked.name, running.name]
        generations = [name.rsplit("/versions/", 1)[0] for name in versions]
        sessions = [f"{name}/session" for name in generations]
        version_page = api.stub.ListVersions(
            pb.ListVersionsRequest(parent=generations[1], page_size=1), metadata=api.metadata, timeout=10
        )
        generation_page = api.stub.ListGenerations(
            pb.ListGenerationsRequest(page_size=1), metadata=api.metadata, timeout=10
        )
        models = api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata, timeout=10)
        by_generation = ("GetGeneration", "DeleteGeneration", "UndeleteGeneration")
        return {
            "name": versions,
            "parent": versions,
            **{f"{method}Request.name": generations for method in by_generation},
            "ListVersionsRequest.parent": generations,
            "GetSessionRequest.name": sessions,
            "ListTurnsRequest.parent": sessions,
            **{field: versions for field in ("ours", "theirs", "base", "target", "version")},
            "path": [*api.list_files(generated.name), "README.md", "src/main.py"],
            "model": [model.name for model in models.models],
            "etag": [generated.etag],
            "page_token": [version_page.next_page_token, generation_page.next_page_token],
            "owner": ["alice", "bob", "root"],
            "mime_type": ["text/plain", "text/markdown", "application/json", "image/png"],
        }


def _callable(channel: grpc.Channel, method: MethodDescriptor) -> Any:
    path = f"/{SERVICE.full_name}/{method.name}"
    serialize = _serialize
    deserialize = lambda data: data  # noqa: E731 (the answer's bytes are not looked at)
    if method.client_streaming:
        return channel.stream_unary(path, request_serializer=serialize, response_deserializer=deserialize)
    if method.server_streaming:
        return channel.unary_stream(path, request_serializer=serialize, response_deserializer=deserialize)
    return channel.unary_unary(path, request_serializer=serialize, response_deserializer=deserialize)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _call(
    callable_: Any, method: MethodDescriptor, payload: Any, metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    try:
        if method.client_streaming:
            callable_(iter(payload), metadata=metadata, timeout=_CALL_TIMEOUT_SECONDS)
        elif method.server_streaming:
            responses = callable_(payload, metadata=metadata, timeout=_CALL_TIMEOUT_SECONDS)
            for index, _ in enumerate(responses):
                if index >= _MAX_RESPONSES:
                    responses.cancel()
                    break
        else:
            callable_(payload, metadata=metadata, timeout=_CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def _connect_call(
    web: httpx.Client,
    method: MethodDescriptor,
    payload: Any,
    metadata: list[tuple[str, str]],
    codec: str,
    noise: bytes | None,
) -> str:
    """The call on the web port, as Connect: the name of the code it answered ("OK" included), or
    `HTTP <status>` for an answer that is not Connect's."""
    # HTTP/1.1 forbids a header value that ends in a space (a made-up empty token's "Bearer ").
    headers = {key: value.strip() for key, value in metadata}
    headers["connect-timeout-ms"] = str(int(_CALL_TIMEOUT_SECONDS * 1000))
    path = f"/{SERVICE.full_name}/{method.name}"
    messages = payload if method.client_streaming else [payload]
    try:
        encoded = [_encode(message, codec) for message in messages]
    except json_format.SerializeToJsonError:
        codec = "proto"  # a message JSON cannot hold (a Timestamp out of range) goes as binary
        encoded = [_encode(message, codec) for message in messages]
    unary = not (method.client_streaming or method.server_streaming)
    framed = encoded[0] if unary else b"".join(_frame(data) for data in encoded)
    body = noise if noise is not None else framed
    try:
        if unary:
            answer = web.post(path, content=body, headers={**headers, "content-type": f"application/{codec}"})
            return "OK" if answer.status_code == 200 else _connect_error(answer.status_code, answer.content)
        streaming = {**headers, "content-type": f"application/connect+{codec}"}
        with web.stream("POST", path, content=body, headers=streaming) as answer:
            if answer.status_code != 200:
                return _connect_error(answer.status_code, answer.read())
            return _end_of_stream(answer)
    except httpx.TimeoutException:
        return "DEADLINE_EXCEEDED"


def _encode(message: Message, codec: str) -> bytes:
    if codec == "proto":
        return message.SerializeToString()
    return json_format.MessageToJson(message).encode()


def _frame(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def _connect_error(status: int, body: bytes) -> str:
    """A Connect error's code, from its JSON body."""
    try:
        code = json.loads(body)["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
    return str(code).upper()


def _end_of_stream(answer: httpx.Response) -> str:
    """Reads a Connect stream to its end-of-stream message (at most _MAX_RESPONSES messages):
    its error's code, or OK."""
    buffer, messages = b"", 0
    for chunk in answer.iter_bytes():
        buffer += chunk
        while len(buffer) >= 5:
            flags, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            data, buffer = buffer[5 : 5 + length], buffer[5 + length :]
            if flags & _END_STREAM:
                error = json.loads(data or b"{}").get("error")
                return "OK" if error is None else str(error.get("code", "unknown")).upper()
            messages += 1
            if messages >= _MAX_RESPONSES:
                return "OK"
    return "HTTP 200 without an end-of-stream message"


def _short(payload: Any) -> str:
    text = repr(payload)
    return text if len(text) < 2000 else f"{text[:2000]}… ({len(text)} characters)"


def _last_traceback(log: str) -> str:
    """The end of the server log from its last traceback (what an INTERNAL left there)."""
    start = log.rfind("Traceback")
    return log[start:][-4000:] if start >= 0 else "(no traceback in the server log)"
