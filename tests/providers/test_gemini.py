"""The Gemini provider, through the real google-genai client, against a local fake of the API."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest
from google import genai
from google.genai import types

from server.config import Settings
from server.providers._base import (
    Attachment,
    ChangeSet,
    FileUpsert,
    JobKind,
    Part,
    ProviderError,
    ProviderRequest,
    SourceFile,
    Turn,
)
from server.providers.gemini import GeminiProvider, _call
from server.providers.gemini._contents import merge_parts
from server.providers.gemini._request import CHANGE_SET_SCHEMA, build_user_turn
from tests.fakes.gemini import FakeGemini, RecordedRequest, Reply, b64decode, inline_data_of, make_png
from tests.providers._recording import RecordingProgress

TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-2.5-flash-image"
RED = make_png(rgb=(220, 30, 30))
BLUE = make_png(3, 3, rgb=(20, 40, 220))


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's environment may redirect or replay the client."""
    for name in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_CLIENT_MODE",
        "GOOGLE_GENAI_REPLAYS_DIRECTORY",
        "GOOGLE_GENAI_REPLAY_ID",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeGemini]:
    with FakeGemini(default=None) as server:
        yield server


@pytest.fixture
def fake(_server: FakeGemini) -> Iterator[FakeGemini]:
    # No default reply: an unexpected request fails the test with a 500.
    _server.clear()
    yield _server
    assert _server.pending == 0, "a scripted reply was never asked for"


def settings_for(base_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": "gemini",
        "gemini_api_key": "test-key",
        "gemini_base_url": base_url,
        "gemini_timeout_seconds": 5.0,
        "provider_backoff_initial_seconds": 0.01,
        "provider_backoff_max_seconds": 0.05,
        **changes,
    }
    return dataclasses.replace(Settings(), **values)


def request_for(
    prompt: str = "a hello world script",
    *,
    kind: JobKind = JobKind.GENERATE,
    model: str = TEXT_MODEL,
    attachments: Sequence[Attachment] = (),
    source_files: Sequence[SourceFile] = (),
    history: Sequence[Turn] = (),
    system_instruction: str = "",
) -> ProviderRequest:
    return ProviderRequest(
        kind=kind,
        prompt=prompt,
        model=model,
        attachments=attachments,
        source_files=source_files,
        history=history,
        system_instruction=system_instruction,
    )


async def run(base_url: str, request: ProviderRequest, **changes: Any) -> tuple[ChangeSet, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        return await provider.run(request, progress), progress
    finally:
        await provider.aclose()


async def failure(
    base_url: str, request: ProviderRequest, **changes: Any
) -> tuple[ProviderError, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.run(request, progress)
    finally:
        await provider.aclose()
    return caught.value, progress


def wire_parts(content: dict[str, Any]) -> list[tuple[str, Any]]:
    """A content's parts as comparable (kind, value) pairs, decoding inline data and signatures."""
    found: list[tuple[str, Any]] = []
    for part in content["parts"]:
        blob = inline_data_of(part)
        if blob is not None:
            found.append(("data", blob))
        elif "text" in part:
            found.append(("text", part["text"]))
        if "thoughtSignature" in part:
            found.append(("signature", b64decode(part["thoughtSignature"])))
    return found


def only(requests: list[RecordedRequest]) -> RecordedRequest:
    assert len(requests) == 1, [r.path for r in requests]
    return requests[0]


# Generating with a text model.


@pytest.mark.anyio
async def test_generate_streams_a_json_change_set_into_files(fake: FakeGemini) -> None:
    fake.reply_json_files(
        {"hello.py": "print('hello')\n", "data.bin": b"\x00\x01\xff"}, summary="wrote hello"
    )

    change_set, progress = await run(fake.base_url, request_for("a hello world script"))

    sent = only(fake.requests)
    assert sent.api_key == "test-key"
    assert sent.path == f"/v1beta/models/{TEXT_MODEL}:streamGenerateContent"
    assert sent.query == {"alt": "sse"} and sent.stream
    assert sent.contents == [{"role": "user", "parts": [{"text": "a hello world script"}]}]
    assert "tree of files" in sent.system_instruction_text
    assert "JSON" in sent.system_instruction_text
    assert sent.generation_config["responseMimeType"] == "application/json"
    assert sent.generation_config["responseJsonSchema"] == CHANGE_SET_SCHEMA
    assert "responseModalities" not in sent.generation_config

    assert change_set.upserts == (
        FileUpsert("hello.py", "text/x-python", b"print('hello')\n"),
        FileUpsert("data.bin", "application/octet-stream", b"\x00\x01\xff"),
    )
    assert change_set.deletions == ()
    assert change_set.summary == "wrote hello"
    assert f"model: {TEXT_MODEL}" in change_set.notes
    assert progress.clean_run() == ["Send", "Receive", "Parse"]
    assert progress.outputs == [["hello.py", "data.bin"]]
    assert any(
        re.fullmatch(r"received \d+ characters in 3 chunks \(finish reason STOP\)", m)
        for m in progress.messages
    )


@pytest.mark.anyio
async def test_the_turns_are_the_user_turn_sent_and_one_merged_model_turn(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"}, summary="wrote a")

    change_set, _ = await run(fake.base_url, request_for("write a"))

    user, model = change_set.turns
    assert user == Turn(role="user", parts=(Part(text="write a"),))
    expected = {"summary": "wrote a", "upserts": [{"path": "a.txt", "content": "A\n"}], "deletions": []}
    assert model.role == "model" and len(model.parts) == 1
    document = json.loads(model.parts[0].text or "")
    assert document["summary"] == expected["summary"] and document["deletions"] == []
    assert [(u["path"], u["content"]) for u in document["upserts"]] == [("a.txt", "A\n")]


@pytest.mark.anyio
async def test_the_key_comes_from_settings_not_the_environment(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "environment-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    fake.reply_json_files({"a.txt": "A\n"})

    await run(fake.base_url, request_for())

    assert only(fake.requests).api_key == "test-key"


@pytest.mark.anyio
async def test_attachments_follow_the_prompt(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})
    attachments = (
        Attachment("sketch.png", "image/png", RED),
        Attachment("notes.md", "text/markdown", b"# Notes\nuse tabs\n"),
        Attachment("archive.zip", "application/zip", b"PK\x03\x04\x00\xff"),
    )

    await run(fake.base_url, request_for("build it", attachments=attachments))

    parts = wire_parts(only(fake.requests).contents[-1])
    assert parts == [
        ("text", f"Attachment sketch.png (image/png, {len(RED)} bytes):"),
        ("data", (RED, "image/png")),
        ("text", "Attachment notes.md (text/markdown, 17 bytes):\n# Notes\nuse tabs\n"),
        ("text", "Attachment archive.zip (application/zip, 6 bytes): binary content, not shown."),
        ("text", "build it"),
    ]


@pytest.mark.anyio
async def test_a_generate_answer_without_files_fails(fake: FakeGemini) -> None:
    fake.reply_json_files({}, summary="nothing to do")

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("NO_FILES", "FAILED_PRECONDITION")


# Refining a tree.


SOURCE = (
    SourceFile("app.py", "text/x-python", b"print('v1')\n"),
    SourceFile("logo.png", "image/png", RED),
    SourceFile("blob.bin", "application/octet-stream", b"\x00\xff\x10"),
    SourceFile("notes.txt", "text/plain", b"remember\n"),
)


@pytest.mark.anyio
async def test_a_refinement_sends_the_tree_and_merges_its_answer(fake: FakeGemini) -> None:
    fake.reply_json_files({"app.py": "print('v2')\n"}, summary="bumped", deletions=["notes.txt", "ghost.txt"])

    change_set, _ = await run(
        fake.base_url, request_for("bump the version", kind=JobKind.ITERATE, source_files=SOURCE)
    )

    parts = wire_parts(only(fake.requests).contents[-1])
    assert parts[-1] == ("text", "bump the version")
    kind, manifest = parts[0]
    assert kind == "text"
    assert [_without_sha(line) for line in manifest.splitlines()] == [
        "The project's current files (4 files, "
        f"{sum(len(f.data) for f in SOURCE)} bytes). Files you do not change are kept as they are.",
        "- app.py (text/x-python, 12 bytes): shown below",
        f"- logo.png (image/png, {len(RED)} bytes): shown below",
        "- blob.bin (application/octet-stream, 3 bytes): binary, not shown",
        "- notes.txt (text/plain, 9 bytes): shown below",
    ]
    # Text files first, then the picture.
    assert parts[1:-1] == [
        ("text", "--- file: app.py (text/x-python, 12 bytes) ---\nprint('v1')\n"),
        ("text", "--- file: notes.txt (text/plain, 9 bytes) ---\nremember\n"),
        ("text", f"--- file: logo.png (image/png, {len(RED)} bytes) ---"),
        ("data", (RED, "image/png")),
    ]
    assert change_set.upserts == (FileUpsert("app.py", "text/x-python", b"print('v2')\n"),)
    assert change_set.deletions == ("notes.txt",)
    assert "ignored the deletion of ghost.txt, which is not in the project" in change_set.notes


@pytest.mark.anyio
async def test_files_over_the_budget_are_listed_not_sent(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})
    source = (
        SourceFile("big.txt", "text/plain", b"x" * 30),
        SourceFile("small.txt", "text/plain", b"tiny\n"),
    )

    await run(
        fake.base_url,
        request_for("edit", kind=JobKind.ITERATE, source_files=source),
        provider_context_budget_bytes=20,
    )

    texts = only(fake.requests).texts()
    assert "- big.txt (text/plain, 30 bytes): not shown, over the context budget" in _without_sha(texts[0])
    assert texts[1:] == ["--- file: small.txt (text/plain, 5 bytes) ---\ntiny\n", "edit"]


@pytest.mark.anyio
async def test_a_tweak_sends_history_first_and_skips_files_it_already_showed(fake: FakeGemini) -> None:
    fake.reply_json_files({"app.py": "print('v1')\n"}, summary="first")
    first, _ = await run(fake.base_url, request_for("an app"))
    fake.reply_json_files({"app.py": "print('v2')\n"}, summary="second")
    source = (
        SourceFile("app.py", "text/x-python", b"print('v1')\n"),
        SourceFile("extra.md", "text/markdown", b"# added by hand\n"),
    )

    await run(
        fake.base_url,
        request_for(
            "bump it",
            kind=JobKind.TWEAK,
            source_files=source,
            history=first.turns,
            system_instruction="Prefer short files.",
        ),
    )

    earlier, sent = fake.requests
    assert [content["role"] for content in sent.contents] == ["user", "model", "user"]
    assert sent.contents[0] == earlier.contents[0]
    assert sent.system_instruction_text.endswith("\n\nPrefer short files.")
    texts = sent.texts()
    assert (
        "- app.py (text/x-python, 12 bytes): unchanged since it was last shown in this conversation"
        in _without_sha(texts[0])
    )
    assert texts[1:] == ["--- file: extra.md (text/markdown, 16 bytes) ---\n# added by hand\n", "bump it"]


@pytest.mark.anyio
async def test_history_is_sent_in_order_with_images_and_thought_signatures(fake: FakeGemini) -> None:
    fake.reply_json_files({"cat.txt": "meow\n"})
    history = (
        Turn("user", (Part(text="draw a cat"), Part(data=RED, mime_type="image/png"))),
        Turn(
            "model",
            (
                Part(text="thinking about cats", thought=True),
                Part(text="Here it is.", thought_signature=b"sig-text"),
                Part(data=BLUE, mime_type="image/png", thought_signature=b"sig-image"),
            ),
        ),
    )

    await run(
        fake.base_url,
        request_for("describe it", kind=JobKind.TWEAK, history=history, source_files=SOURCE[:1]),
    )

    contents = only(fake.requests).contents
    assert [content["role"] for content in contents] == ["user", "model", "user"]
    assert wire_parts(contents[0]) == [("text", "draw a cat"), ("data", (RED, "image/png"))]
    assert contents[1]["parts"][0] == {"text": "thinking about cats", "thought": True}
    assert wire_parts(contents[1]) == [
        ("text", "thinking about cats"),
        ("text", "Here it is."),
        ("signature", b"sig-text"),
        ("data", (BLUE, "image/png")),
        ("signature", b"sig-image"),
    ]
    assert wire_parts(contents[2])[-1] == ("text", "describe it")


@pytest.mark.anyio
async def test_turns_round_trip_to_identical_contents(fake: FakeGemini) -> None:
    history = (
        Turn("user", (Part(text="start"),)),
        Turn("model", (Part(text="{}", thought_signature=b"\xfa\xfb"),)),
    )
    fake.reply_json_files({"a.txt": "A\n"}, summary="one")
    first, _ = await run(
        fake.base_url, request_for("one", kind=JobKind.TWEAK, history=history, source_files=SOURCE)
    )
    fake.reply_json_files({"b.txt": "B\n"}, summary="two")
    await run(
        fake.base_url,
        request_for("two", kind=JobKind.TWEAK, history=(*history, *first.turns), source_files=SOURCE),
    )

    one, two = fake.requests
    # Everything the first request sent comes back byte for byte, then the model's answer.
    assert two.contents[: len(one.contents)] == one.contents
    answer_text = first.turns[1].parts[0].text
    assert two.contents[len(one.contents)] == {"role": "model", "parts": [{"text": answer_text}]}


# Retries and failures.


@pytest.mark.anyio
async def test_a_rate_limit_is_retried_then_succeeds(fake: FakeGemini) -> None:
    fake.reply_error(429, "Resource has been exhausted")
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for())

    assert len(fake.requests) == 2
    assert fake.requests[0].body == fake.requests[1].body
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    retries = [m for m in progress.messages if "retrying" in m]
    assert len(retries) == 1
    assert re.fullmatch(r"model busy \(429\), retrying in \d+\.\d s \(attempt 2 of 4\)", retries[0])
    assert progress.clean_run() == ["Send", "Receive", "Parse"]


@pytest.mark.anyio
async def test_server_errors_on_every_try_end_unavailable(fake: FakeGemini) -> None:
    for _ in range(3):
        fake.reply_error(500, "internal error")

    error, progress = await failure(fake.base_url, request_for(), provider_max_attempts=3)

    assert len(fake.requests) == 3
    assert (error.reason, error.code, error.retryable) == ("MODEL_UNAVAILABLE", "UNAVAILABLE", True)
    assert "after 3 attempts" in error.message and "internal error" in error.message
    assert [m for m in progress.messages if "retrying" in m] == [
        m for m in progress.messages if re.fullmatch(r"model unavailable \(500\), retrying in .*", m)
    ]
    assert len([m for m in progress.messages if "retrying" in m]) == 2


@pytest.mark.anyio
async def test_rate_limits_on_every_try_end_resource_exhausted(fake: FakeGemini) -> None:
    for _ in range(2):
        fake.reply_error(429, "quota exceeded")

    error, _ = await failure(fake.base_url, request_for(), provider_max_attempts=2)

    assert len(fake.requests) == 2
    assert (error.reason, error.code) == ("MODEL_RATE_LIMITED", "RESOURCE_EXHAUSTED")
    assert "quota exceeded" in error.message


@pytest.mark.anyio
async def test_a_broken_stream_is_retried(fake: FakeGemini) -> None:
    fake.reply_mid_stream_error(503, "overloaded")
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for())

    assert len(fake.requests) == 2
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert any(m.startswith("model unavailable (503), retrying in") for m in progress.messages)
    # The merged turn holds the successful answer only.
    assert len(change_set.turns) == 2


@pytest.mark.anyio
async def test_a_refused_key_fails_at_once_with_a_clear_message(fake: FakeGemini) -> None:
    fake.reply_error(403, "Method doesn't allow unregistered callers.")

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_PERMISSION_DENIED", "PERMISSION_DENIED")
    assert error.message.startswith(f"the Gemini API key was refused for model {TEXT_MODEL}: ")
    assert "Method doesn't allow unregistered callers." in error.message
    assert "check that the key is valid" in error.message


@pytest.mark.anyio
async def test_an_invalid_key_400_is_a_refused_key(fake: FakeGemini) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
        }
    }
    fake.reply(Reply(status=400, error=body))

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "API key not valid" in error.message


@pytest.mark.anyio
async def test_a_bad_request_is_invalid_argument_with_the_models_message(fake: FakeGemini) -> None:
    fake.reply_error(400, "Unsupported MIME type: application/x-nonsense")

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert "Unsupported MIME type: application/x-nonsense" in error.message


@pytest.mark.anyio
async def test_an_unknown_model_is_not_found(fake: FakeGemini) -> None:
    fake.reply_error(404, "models/gemini-9 is not found for API version v1beta")

    error, _ = await failure(fake.base_url, request_for(model="gemini-9"))

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_NOT_FOUND", "FAILED_PRECONDITION")
    assert "gemini-9" in error.message and "is not found" in error.message


@pytest.mark.anyio
async def test_an_answer_without_candidates_fails(fake: FakeGemini) -> None:
    fake.reply_no_candidates()

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_NO_CANDIDATES", "UNAVAILABLE")


@pytest.mark.anyio
async def test_a_blocked_prompt_fails_with_its_reason(fake: FakeGemini) -> None:
    fake.reply_blocked("PROHIBITED_CONTENT")

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_SAFETY_BLOCKED", "FAILED_PRECONDITION")
    assert "PROHIBITED_CONTENT" in error.message


@pytest.mark.anyio
async def test_a_withheld_answer_fails_with_its_finish_reason(fake: FakeGemini) -> None:
    fake.reply_blocked("SAFETY", in_prompt=False)

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_SAFETY_BLOCKED", "FAILED_PRECONDITION")
    assert "finish reason SAFETY" in error.message


@pytest.mark.anyio
async def test_a_dead_endpoint_is_retried_then_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    error, progress = await failure(f"http://127.0.0.1:{port}", request_for(), provider_max_attempts=2)

    assert (error.reason, error.code) == ("MODEL_UNAVAILABLE", "UNAVAILABLE")
    assert any(m.startswith("connection to the model failed") for m in progress.messages)


@pytest.mark.anyio
async def test_a_slow_answer_times_out_and_is_retried(fake: FakeGemini) -> None:
    fake.reply(Reply.json_files({"slow.txt": "late\n"}, delay_seconds=0.6))
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for(), gemini_timeout_seconds=0.2)

    assert len(fake.requests) == 2
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert any(m.startswith("model timed out, retrying in") for m in progress.messages)


@pytest.mark.anyio
async def test_cancelling_stops_the_call_promptly(fake: FakeGemini) -> None:
    fake.reply(Reply.json_files({"a.txt": "A\n"}, delay_seconds=1.0))
    provider = GeminiProvider(settings_for(fake.base_url))
    started = time.monotonic()
    try:
        with anyio.move_on_after(0.2) as scope:
            await provider.run(request_for(), RecordingProgress())
    finally:
        await provider.aclose()

    assert scope.cancelled_caught
    assert time.monotonic() - started < 0.8


# Answers that are not valid change sets.


@pytest.mark.anyio
async def test_malformed_json_is_repaired_once(fake: FakeGemini) -> None:
    fake.reply_raw_text("Sure! Here are your files: {")
    fake.reply_json_files({"a.txt": "A\n"}, summary="fixed")

    change_set, progress = await run(fake.base_url, request_for("make a"))

    first, second = fake.requests
    assert [content["role"] for content in second.contents] == ["user", "model", "user"]
    assert second.contents[0] == first.contents[0]
    assert second.texts(1) == ["Sure! Here are your files: {"]
    assert second.texts()[0].startswith("Your last answer was not a valid change set: it is not JSON")
    assert change_set.upserts == (FileUpsert("a.txt", "text/plain", b"A\n"),)
    assert [turn.role for turn in change_set.turns] == ["user", "model", "user", "model"]
    assert any("asking once more" in m for m in progress.messages)
    assert progress.clean_run() == ["Send", "Receive", "Parse"]


@pytest.mark.anyio
async def test_a_change_set_breaking_the_rules_is_repaired(fake: FakeGemini) -> None:
    fake.reply_json_files({"../escape.txt": "x"})
    fake.reply_json_files({"inside.txt": "x"})

    change_set, _ = await run(fake.base_url, request_for())

    assert "'../escape.txt' is not a relative path inside the project" in fake.requests[1].texts()[0]
    assert [file.path for file in change_set.upserts] == ["inside.txt"]


@pytest.mark.anyio
async def test_malformed_twice_fails(fake: FakeGemini) -> None:
    fake.reply_raw_text("not json")
    fake.reply_raw_text("still not json")

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 2
    assert (error.reason, error.code) == ("MODEL_OUTPUT_INVALID", "INTERNAL")


# Image models.


@pytest.mark.anyio
async def test_an_image_model_makes_image_png(fake: FakeGemini) -> None:
    fake.reply_image(RED, text="A red square.", thought_signature=b"sig-red")

    change_set, progress = await run(fake.base_url, request_for("a red square", model=IMAGE_MODEL))

    sent = only(fake.requests)
    assert sent.model == IMAGE_MODEL
    assert sent.generation_config == {"responseModalities": ["TEXT", "IMAGE"]}
    assert "systemInstruction" not in sent.body
    assert change_set.upserts == (FileUpsert("image.png", "image/png", RED),)
    assert change_set.summary == "A red square."
    assert progress.outputs == [["image.png"]]
    user, model = change_set.turns
    assert user == Turn("user", (Part(text="a red square"),))
    assert model == Turn(
        "model",
        (Part(text="A red square."), Part(data=RED, mime_type="image/png", thought_signature=b"sig-red")),
    )


@pytest.mark.anyio
async def test_several_images_are_numbered(fake: FakeGemini) -> None:
    # Two streamed chunks: a red PNG (not yet finished), then a blue JPEG with the finish reason.
    red = {"candidates": [{"content": Reply.image(RED).chunks[0]["candidates"][0]["content"], "index": 0}]}
    blue = Reply.image(BLUE, mime_type="image/jpeg").chunks[0]
    fake.reply(Reply(chunks=(red, blue)))

    change_set, _ = await run(fake.base_url, request_for("two pictures", model=IMAGE_MODEL))

    assert [(file.path, file.mime_type) for file in change_set.upserts] == [
        ("image.png", "image/png"),
        ("image-2.jpg", "image/jpeg"),
    ]


@pytest.mark.anyio
async def test_an_image_tweak_replays_the_first_image_and_replaces_it(fake: FakeGemini) -> None:
    fake.reply_image(RED, text="A red square.", thought_signature=b"sig-red")
    first, _ = await run(fake.base_url, request_for("a red square", model=IMAGE_MODEL))
    fake.reply_image(BLUE, text="Now blue.", thought_signature=b"sig-blue")
    source = (
        SourceFile("README.md", "text/markdown", b"# Square\n"),
        SourceFile("image.png", "image/png", RED),
    )

    change_set, _ = await run(
        fake.base_url,
        request_for(
            "make it blue", kind=JobKind.TWEAK, model=IMAGE_MODEL, source_files=source, history=first.turns
        ),
    )

    _, sent = fake.requests
    assert [content["role"] for content in sent.contents] == ["user", "model", "user"]
    assert wire_parts(sent.contents[1]) == [
        ("text", "A red square."),
        ("data", (RED, "image/png")),
        ("signature", b"sig-red"),
    ]
    # The image is in the history already, so the new turn is just the prompt.
    assert wire_parts(sent.contents[2]) == [("text", "make it blue")]
    assert change_set.upserts == (FileUpsert("image.png", "image/png", BLUE),)
    assert change_set.summary == "Now blue."


@pytest.mark.anyio
async def test_an_image_iteration_without_history_sends_the_current_image(fake: FakeGemini) -> None:
    fake.reply_image(BLUE)
    source = (SourceFile("art/logo.png", "image/png", RED),)

    change_set, _ = await run(
        fake.base_url, request_for("bluer", kind=JobKind.ITERATE, model=IMAGE_MODEL, source_files=source)
    )

    assert wire_parts(only(fake.requests).contents[-1]) == [
        ("text", "bluer"),
        ("text", "The current image (art/logo.png):"),
        ("data", (RED, "image/png")),
    ]
    assert change_set.upserts == (FileUpsert("art/logo.png", "image/png", BLUE),)
    assert change_set.summary == "updated art/logo.png"


@pytest.mark.anyio
async def test_an_image_model_answering_without_an_image_fails(fake: FakeGemini) -> None:
    fake.reply_text("I cannot draw that.")

    error, _ = await failure(fake.base_url, request_for("a square", model=IMAGE_MODEL))

    assert (error.reason, error.code) == ("NO_IMAGE", "FAILED_PRECONDITION")


# Merging streamed parts.


def test_merging_joins_text_and_keeps_signatures_and_data() -> None:
    streamed = [
        types.Part(text="thinking ", thought=True),
        types.Part(text="more", thought=True),
        types.Part(text='{"sum'),
        types.Part(text='mary": 1}'),
        types.Part(text="", thought_signature=b"s1"),
        types.Part(text=" tail", thought_signature=b"s2"),
        types.Part(inline_data=types.Blob(data=b"img", mime_type="image/png"), thought_signature=b"s3"),
        types.Part(text="after"),
    ]

    assert merge_parts(streamed) == [
        Part(text="thinking more", thought=True),
        Part(text='{"summary": 1}', thought_signature=b"s1"),
        Part(text=" tail", thought_signature=b"s2"),
        Part(data=b"img", mime_type="image/png", thought_signature=b"s3"),
        Part(text="after"),
    ]


def test_the_fake_decodes_both_base64_alphabets() -> None:
    data = b"\xfb\xff\xfe"
    assert b64decode(base64.b64encode(data).decode()) == data
    assert b64decode(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data


@pytest.mark.anyio
async def test_an_empty_cut_off_answer_is_asked_again_as_it_was(fake: FakeGemini) -> None:
    fake.reply(Reply(chunks=({"candidates": [{"finishReason": "MAX_TOKENS", "index": 0}]},)))
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for())

    first, second = fake.requests
    # An empty model turn cannot be sent back, so the repair is the same request again.
    assert second.body == first.body
    assert [turn.role for turn in change_set.turns] == ["user", "model"]
    assert any("cut off at the model's output limit" in m for m in progress.messages)


@pytest.mark.anyio
async def test_receive_reports_progress_as_chunks_arrive(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_call, "_RECEIVE_REPORT_SECONDS", 0.0)
    fake.reply_json_files({"a.txt": "A\n"})

    _, progress = await run(fake.base_url, request_for())

    receiving = [event[2] for event in progress.events if event[:2] == ("message", "Receive")]
    assert len(receiving) == 3
    assert all(re.fullmatch(r"received \d+ characters so far", m) for m in receiving[:2])
    assert receiving[2].startswith("received ") and "in 3 chunks" in receiving[2]


@pytest.mark.anyio
async def test_the_fake_also_answers_generate_content(fake: FakeGemini) -> None:
    fake.reply_text("hello there")
    client = genai.Client(
        vertexai=False, api_key="test-key", http_options=types.HttpOptions(base_url=fake.base_url)
    )

    response = await client.aio.models.generate_content(model=TEXT_MODEL, contents="hi")
    await client.aio.aclose()

    assert response.text == "hello there"
    sent = only(fake.requests)
    assert (sent.version, sent.stream, sent.api_key) == ("v1", False, "test-key")  # the SDK default version


def _without_sha(text: str) -> str:
    """Manifest lines with their SHA-256 column removed (the digests are checked separately)."""
    return re.sub(r", sha256 [0-9a-f]{64}\)", ")", text)


def test_the_manifest_lists_every_file_with_its_sha256_and_named_files_come_first() -> None:
    files = [SourceFile(f"src/m{i}.py", "text/x-python", b"x" * 100) for i in range(5)]
    request = ProviderRequest(
        kind=JobKind.ITERATE, prompt="fix src/m4.py please", model="m", source_files=files
    )
    turn = build_user_turn(request, image_model=False, budget=150)
    texts = [part.text or "" for part in turn.parts]
    for file in files:
        assert f"sha256 {hashlib.sha256(file.data).hexdigest()}" in texts[0]
    shown = [text.split("\n", 1)[0] for text in texts[1:] if text.startswith("--- file:")]
    assert shown == ["--- file: src/m4.py (text/x-python, 100 bytes) ---"], "the named file wins the budget"
