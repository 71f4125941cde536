"""What the provider sends: the user turn and its context, the history, the config."""

from __future__ import annotations

import hashlib
import re

import pytest
from google.genai import types

from server.files import FileContent
from server.providers._base import (
    JobKind,
    Part,
    ProviderRequest,
    Turn,
)
from server.providers.gemini._contents import estimated_input_tokens
from server.providers.gemini._request import CHANGE_SET_SCHEMA, build_user_turn
from support.gemini_fake import FakeGemini
from tests.providers.gemini._support import (
    BLUE,
    IMAGE_MODEL,
    RED,
    TEXT_MODEL,
    asks_for_thoughts,
    only,
    request_for,
    run,
    wire_parts,
)

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
    # A text model is asked for its thought summaries, which progress shows while it works.
    assert asks_for_thoughts(sent)

    assert change_set.upserts == (
        FileContent("hello.py", "text/x-python", b"print('hello')\n"),
        FileContent("data.bin", "application/octet-stream", b"\x00\x01\xff"),
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
async def test_attachments_follow_the_prompt(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})
    attachments = (
        FileContent("sketch.png", "image/png", RED),
        FileContent("notes.md", "text/markdown", b"# Notes\nuse tabs\n"),
        FileContent("archive.zip", "application/zip", b"PK\x03\x04\x00\xff"),
    )

    await run(fake.base_url, request_for("build it", attachments=attachments))

    parts = wire_parts(only(fake.requests).contents[-1])
    assert parts == [
        ("text", f"FileContent sketch.png (image/png, {len(RED)} bytes):"),
        ("data", (RED, "image/png")),
        ("text", "FileContent notes.md (text/markdown, 17 bytes):\n# Notes\nuse tabs\n"),
        ("text", "FileContent archive.zip (application/zip, 6 bytes): binary content, not shown."),
        ("text", "build it"),
    ]


# Refining a tree.


SOURCE = (
    FileContent("app.py", "text/x-python", b"print('v1')\n"),
    FileContent("logo.png", "image/png", RED),
    FileContent("blob.bin", "application/octet-stream", b"\x00\xff\x10"),
    FileContent("notes.txt", "text/plain", b"remember\n"),
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
    assert change_set.upserts == (FileContent("app.py", "text/x-python", b"print('v2')\n"),)
    assert change_set.deletions == ("notes.txt",)
    assert "ignored the deletion of ghost.txt, which is not in the project" in change_set.notes


@pytest.mark.anyio
async def test_files_over_the_budget_are_listed_not_sent(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})
    source = (
        FileContent("big.txt", "text/plain", b"x" * 30),
        FileContent("small.txt", "text/plain", b"tiny\n"),
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
        FileContent("app.py", "text/x-python", b"print('v1')\n"),
        FileContent("extra.md", "text/markdown", b"# added by hand\n"),
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


def _without_sha(text: str) -> str:
    """Manifest lines with their SHA-256 column removed (the digests are checked separately)."""
    return re.sub(r", sha256 [0-9a-f]{64}\)", ")", text)


def test_the_manifest_lists_every_file_with_its_sha256_and_named_files_come_first() -> None:
    files = [FileContent(f"src/m{i}.py", "text/x-python", b"x" * 100) for i in range(5)]
    request = ProviderRequest(
        kind=JobKind.ITERATE, prompt="fix src/m4.py please", model="m", source_files=files
    )
    turn = build_user_turn(request, image_model=False, budget=150)
    texts = [part.text or "" for part in turn.parts]
    for file in files:
        assert f"sha256 {hashlib.sha256(file.data).hexdigest()}" in texts[0]
    shown = [text.split("\n", 1)[0] for text in texts[1:] if text.startswith("--- file:")]
    assert shown == ["--- file: src/m4.py (text/x-python, 100 bytes) ---"], "the named file wins the budget"


# Image models.


@pytest.mark.anyio
async def test_an_image_tweak_replays_the_first_image_and_replaces_it(fake: FakeGemini) -> None:
    fake.reply_image(RED, text="A red square.", thought_signature=b"sig-red")
    first, _ = await run(fake.base_url, request_for("a red square", model=IMAGE_MODEL))
    fake.reply_image(BLUE, text="Now blue.", thought_signature=b"sig-blue")
    source = (
        FileContent("README.md", "text/markdown", b"# Square\n"),
        FileContent("image.png", "image/png", RED),
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
    assert change_set.upserts == (FileContent("image.png", "image/png", BLUE),)
    assert change_set.summary == "Now blue."


@pytest.mark.anyio
async def test_an_image_iteration_without_history_sends_the_current_image(fake: FakeGemini) -> None:
    fake.reply_image(BLUE)
    source = (FileContent("art/logo.png", "image/png", RED),)

    change_set, _ = await run(
        fake.base_url, request_for("bluer", kind=JobKind.ITERATE, model=IMAGE_MODEL, source_files=source)
    )

    assert wire_parts(only(fake.requests).contents[-1]) == [
        ("text", "bluer"),
        ("text", "The current image (art/logo.png):"),
        ("data", (RED, "image/png")),
    ]
    assert change_set.upserts == (FileContent("art/logo.png", "image/png", BLUE),)
    assert change_set.summary == "updated art/logo.png"


def test_a_requests_input_tokens_are_estimated_from_its_utf8_text_and_its_media_parts() -> None:
    contents: list[types.ContentDict] = [
        {
            "role": "user",
            "parts": [{"text": "abcd" * 10}, {"inline_data": {"data": RED, "mime_type": "image/png"}}],
        },
        {"role": "model", "parts": [{"text": "é" * 6, "thought": True}]},  # 12 bytes of UTF-8
        {"role": "user", "parts": [{"file_data": {"file_uri": "https://x/a.pdf"}}, {"text": "x"}]},
    ]
    config = types.GenerateContentConfig(system_instruction="s" * 7)
    # (40 + 12 + 1 + 7) bytes at 4 a token, and 258 for each of the two media parts.
    assert estimated_input_tokens(contents, config) == 15 + 2 * 258
    assert estimated_input_tokens([], types.GenerateContentConfig()) == 0
