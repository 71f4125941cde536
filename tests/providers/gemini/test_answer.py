"""How the provider reads the answer: JSON change sets and their repair, images, streamed parts."""

from __future__ import annotations

import json

import pytest
from google.genai import types

from server.files import FileContent
from server.providers._base import (
    Part,
    Turn,
)
from server.providers.gemini._contents import merge_parts
from support.gemini_fake import FakeGemini, Reply
from tests.providers.gemini._support import (
    BLUE,
    IMAGE_MODEL,
    RED,
    failure,
    only,
    request_for,
    run,
)

# Text models.


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
async def test_a_generate_answer_without_files_fails(fake: FakeGemini) -> None:
    fake.reply_json_files({}, summary="nothing to do")

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("NO_FILES", "FAILED_PRECONDITION")


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
    assert change_set.upserts == (FileContent("a.txt", "text/plain", b"A\n"),)
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


# Image models.


@pytest.mark.anyio
async def test_an_image_model_makes_image_png(fake: FakeGemini) -> None:
    fake.reply_image(RED, text="A red square.", thought_signature=b"sig-red")

    change_set, progress = await run(fake.base_url, request_for("a red square", model=IMAGE_MODEL))

    sent = only(fake.requests)
    assert sent.model == IMAGE_MODEL
    assert sent.generation_config == {"responseModalities": ["TEXT", "IMAGE"]}
    assert "systemInstruction" not in sent.body
    assert change_set.upserts == (FileContent("image.png", "image/png", RED),)
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
