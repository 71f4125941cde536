"""The Gemini path end to end: the real server, the real google-genai client, a local fake of Gemini.

What the server sends on the wire is asserted: each tweak carries its branch's whole history,
after restarts too, and every failure leaves the parent version untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

from support.databases import fresh_database
from support.gemini_fake import USAGE, FakeGemini, Reply, inline_data_of, make_png
from tests._support import Api, ServerProcess
from tests.conftest import BACKENDS, check_backend

TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-2.5-flash-image"


def _env(fake: FakeGemini) -> dict[str, str]:
    return {
        "ATELIER_PROVIDER": "gemini",
        "GEMINI_API_KEY": "test-key",
        "ATELIER_GEMINI_BASE_URL": fake.base_url,
        "ATELIER_PROVIDER_MAX_ATTEMPTS": "3",
        "ATELIER_PROVIDER_BACKOFF_INITIAL_SECONDS": "0.01",
        "ATELIER_PROVIDER_BACKOFF_MAX_SECONDS": "0.05",
        "ATELIER_JOB_LEASE_SECONDS": "3",
        "ATELIER_JOB_HEARTBEAT_SECONDS": "0.5",
    }


@pytest.fixture(params=BACKENDS)
def gemini_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, FakeGemini]]:
    backend = check_backend(request.param)
    with FakeGemini(default=None) as fake, fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=_env(fake)).start()
        try:
            yield server, fake
        finally:
            server.kill()


def _tweak(api: Api, name: str, prompt: str) -> gen.Version:
    version: gen.Version = api.stub.Tweak(pb.TweakRequest(name=name, prompt=prompt), metadata=api.metadata)
    return version


def _files(api: Api, name: str) -> dict[str, bytes]:
    return {path: api.read_file(name, path)[1] for path in api.list_files(name)}


def _model_text(content: dict[str, Any]) -> str:
    return "".join(str(part.get("text", "")) for part in content["parts"])


def test_tweaks_send_the_branch_history_across_restarts_and_forks(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini_server
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_json_files({"app.py": "print('hello')\n"}, summary="a tiny app")
        v1 = api.wait(api.generate("a tiny python app").name)
        assert v1.state == gen.VERSION_STATE_COMPLETED, v1.error.message
        assert v1.model == TEXT_MODEL and _files(api, v1.name) == {"app.py": b"print('hello')\n"}
        first = fake.requests[-1]
        assert first.api_key == "test-key" and first.model == TEXT_MODEL and first.stream
        assert first.generation_config["responseMimeType"] == "application/json"
        assert len(first.contents) == 1 and "a tiny python app" in "".join(first.texts())

        fake.reply_json_files({"test_app.py": "def test(): pass\n"}, summary="added a test")
        v2 = api.wait(_tweak(api, v1.name, "add a test").name)
        assert v2.state == gen.VERSION_STATE_COMPLETED and v2.turn == 2
        second = fake.requests[-1]
        # Turn 2 carries turn 1: the user content exactly as sent, then the model's answer.
        assert second.contents[0] == first.contents[0]
        assert second.contents[1]["role"] == "model" and '"app.py"' in _model_text(second.contents[1])
        assert second.contents[2]["role"] == "user" and "add a test" in "".join(second.texts())
        assert set(_files(api, v2.name)) == {"app.py", "test_app.py"}

    server.kill()  # a crash: nothing of the conversation may live only in memory
    server.start()
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_json_files({"README.md": "# App\n"}, summary="documented")
        v3 = api.wait(_tweak(api, v2.name, "document it").name)
        assert v3.state == gen.VERSION_STATE_COMPLETED and v3.turn == 3
        third = fake.requests[-1]
        assert len(third.contents) == 5
        assert third.contents[:3] == second.contents[:3]
        assert '"test_app.py"' in _model_text(third.contents[3])

        # Tweaking v1 again forks: only v1's branch is sent.
        fake.reply_json_files({"cli.py": "import sys\n"}, summary="a cli")
        fork = api.wait(_tweak(api, v1.name, "make it a CLI").name)
        assert fork.state == gen.VERSION_STATE_COMPLETED and fork.parent == v1.name
        forked = fake.requests[-1]
        assert len(forked.contents) == 3 and forked.contents[:2] == second.contents[:2]
        assert "add a test" not in str(forked.contents)
        assert set(_files(api, fork.name)) == {"app.py", "cli.py"}


def test_provider_failures_end_the_version_and_leave_the_parent_untouched(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini_server
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_json_files({"app.py": "x = 1\n"})
        parent = api.wait(api.generate("an app").name)
        files = _files(api, parent.name)

        def tweak_ends(*, expect: int) -> gen.Version:
            before = len(fake.requests)
            version = api.wait(_tweak(api, parent.name, "change it").name)
            assert version.state == expect, version.error.message
            assert _files(api, parent.name) == files and api.get(parent.name).etag == parent.etag
            assert len(fake.requests) > before
            return version

        fake.reply_error(429, "quota").reply_json_files({"app.py": "x = 2\n"})
        count = len(fake.requests)
        ok = tweak_ends(expect=gen.VERSION_STATE_COMPLETED)
        assert len(fake.requests) - count == 2 and _files(api, ok.name)["app.py"] == b"x = 2\n"

        cases = [
            (lambda: fake.reply_error(403, "API key not valid for this model"), "PERMISSION_DENIED", 1),
            (lambda: [fake.reply_error(500, "boom") for _ in range(3)], "UNAVAILABLE", 3),
            (lambda: fake.reply_error(400, "bad field contents"), "INVALID_ARGUMENT", 1),
            (lambda: fake.reply_no_candidates(), None, 1),
            (lambda: fake.reply_blocked("SAFETY"), "FAILED_PRECONDITION", 1),
            (lambda: [fake.reply_raw_text("not json") for _ in range(2)], None, 2),
        ]
        for script, code, requests in cases:
            script()
            count = len(fake.requests)
            failed = tweak_ends(expect=gen.VERSION_STATE_FAILED)
            assert len(fake.requests) - count == requests, failed.error.message
            assert failed.error.message and failed.file_count == 0
            if code is not None:
                assert failed.error.code == getattr(grpc.StatusCode, code).value[0], failed.error.message
        assert fake.pending == 0


def test_an_image_tweak_sends_the_first_image_and_keeps_the_new_one(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini_server
    first_png, second_png = make_png(rgb=(10, 20, 30)), make_png(width=3, rgb=(200, 100, 50))
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_image(first_png, text="a portrait")
        v1 = api.wait(api.generate("a fashion photo", model=IMAGE_MODEL).name)
        assert v1.state == gen.VERSION_STATE_COMPLETED, v1.error.message
        assert fake.requests[-1].generation_config["responseModalities"] == ["TEXT", "IMAGE"]
        (image_path,) = [p for p in api.list_files(v1.name) if p.endswith(".png")]
        assert api.read_file(v1.name, image_path)[1] == first_png

        fake.reply_image(second_png, text="zoomed out")
        v2 = api.wait(_tweak(api, v1.name, "zoom out to show the model's face").name)
        assert v2.state == gen.VERSION_STATE_COMPLETED, v2.error.message
        request = fake.requests[-1]
        sent = [inline_data_of(part) for content in request.contents[:-1] for part in content["parts"]]
        assert (first_png, "image/png") in sent, "the second request carries the first image"
        model_parts = request.contents[1]["parts"]
        assert any(part.get("thoughtSignature") or part.get("thought_signature") for part in model_parts)
        first, data = api.read_file(v2.name, image_path)
        assert data == second_png and first.file.mime_type == "image/png"
        assert api.read_file(v1.name, image_path)[1] == first_png


def test_list_models_shows_the_configured_gemini_models(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, _ = gemini_server
    with server.channel() as channel:
        models = Api(channel).stub.ListModels(pb.ListModelsRequest())
    names = {m.name: m for m in models.models}
    assert models.default_model == TEXT_MODEL
    assert list(names[IMAGE_MODEL].output_modalities) == ["text", "image"]
    assert names["offline"].provider == "offline"


def test_an_iteration_that_adds_one_file_keeps_every_file_of_its_parent(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    """V1 has 14 files; "Add missing schema file" returns one file; V2 must have all 15."""
    server, fake = gemini_server
    app = {f"app/{name}.py": f'"""{name}"""\n'.encode() for name in ("main", "db", "config", "deps")}
    app |= {
        f"app/routers/{name}.py": f"# router {name}\n".encode() for name in ("projects", "users", "health")
    }
    app |= {f"app/models/{name}.py": f"# model {name}\n".encode() for name in ("project", "user")}
    app |= {"app/__init__.py": b"", "README.md": b"# Projects API\n", "pyproject.toml": b"[project]\n"}
    app |= {"tests/test_projects.py": b"def test(): pass\n", "Dockerfile": b"FROM python:3.11\n"}
    assert len(app) == 14
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_json_files({path: data.decode() for path, data in app.items()}, summary="a projects API")
        v1 = api.wait(api.generate("a FastAPI projects service").name)
        assert v1.file_count == 14 and _files(api, v1.name) == app

        schema = "from pydantic import BaseModel\n\nclass Project(BaseModel):\n    name: str\n"
        fake.reply_json_files({"app/schemas/project.py": schema}, summary="added the schema")
        queued = api.stub.Iterate(pb.IterateRequest(parent=v1.name, prompt="Add missing schema file"))
        assert queued.kind == gen.VERSION_KIND_ITERATE and queued.parent == v1.name
        events = api.progress(queued.name)
        v2 = api.get(queued.name)

        assert v2.state == gen.VERSION_STATE_COMPLETED, v2.error.message
        files = _files(api, v2.name)
        assert v2.file_count == len(files) == 15
        assert {path: files[path] for path in app} == app, "the 14 files of V1 are byte-identical"
        assert files["app/schemas/project.py"] == schema.encode()
        assert (v2.added_count, v2.modified_count, v2.deleted_count) == (1, 0, 0)
        merge_events = [e.message for e in events if e.message.startswith("merged onto")]
        assert merge_events and "1 added" in merge_events[0] and "15 in the new tree" in merge_events[0]
        # The model saw the parent's full file list.
        sent = " ".join(fake.requests[-1].texts())
        assert all(path in sent for path in app)


def test_another_server_process_continues_the_conversation(
    gemini_server: tuple[ServerProcess, FakeGemini], tmp_path: Path
) -> None:
    first, fake = gemini_server
    second = ServerProcess(database_url=first.database_url, log_path=tmp_path / "second.log", env=_env(fake))
    second.start()
    try:
        with first.channel() as channel_a, second.channel() as channel_b:
            a, b = Api(channel_a), Api(channel_b)
            fake.reply_json_files({"app.py": "v = 1\n"}, summary="made by A")
            v1 = a.wait(a.generate("an app").name)
            opening = fake.requests[-1]
            fake.reply_json_files({"app.py": "v = 2\n"}, summary="made by B")
            # B serves the tweak (and, with both running workers, either may run the job).
            v2 = b.wait(_tweak(b, v1.name, "bump v").name)
            assert v2.state == gen.VERSION_STATE_COMPLETED and v2.turn == 2
            sent = fake.requests[-1]
            assert sent.contents[0] == opening.contents[0] and sent.contents[1]["role"] == "model"
            assert a.read_file(v2.name, "app.py")[1] == b"v = 2\n"
    finally:
        second.kill()


def test_an_answer_that_trickles_past_the_attempt_deadline_is_retried_then_fails(tmp_path: Path) -> None:
    # Each chunk arrives well within google-genai's timeout (which only bounds each wait), but
    # the whole answer takes longer than the attempt may: only the attempt deadline stops it.
    trickle = dataclasses.replace(Reply.json_files({"app.py": "x = 3\n"}, pieces=4), chunk_delay_seconds=0.5)
    with FakeGemini(default=None) as fake, fresh_database("sqlite", tmp_path) as url:
        env = {**_env(fake), "ATELIER_GEMINI_ATTEMPT_SECONDS": "1"}
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel)
                fake.reply_json_files({"app.py": "x = 1\n"})
                parent = api.wait(api.generate("an app").name)

                fake.reply(trickle).reply_json_files({"app.py": "x = 2\n"})
                name = _tweak(api, parent.name, "change it").name
                messages = [event.message for event in api.progress(name, timeout=30)]
                assert api.get(name).state == gen.VERSION_STATE_COMPLETED
                assert any("no complete answer within 1 s, retrying" in m for m in messages), messages
                assert _files(api, name)["app.py"] == b"x = 2\n"

                fake.reply(trickle, trickle, trickle)
                failed = api.wait(_tweak(api, parent.name, "change it again").name, timeout=30)
                assert failed.state == gen.VERSION_STATE_FAILED
                assert failed.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
                assert "after 3 attempts (no complete answer within 1 s)" in failed.error.message
                assert _files(api, parent.name) == {"app.py": b"x = 1\n"}
                assert fake.pending == 0
        finally:
            server.kill()


def test_a_repeated_draft_request_id_sends_gemini_one_request(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini_server
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_text("A red fox in fresh snow.")
        request = pb.DraftPromptRequest(text="a fox in snow", model=IMAGE_MODEL, request_id="fox-1")
        first = api.stub.DraftPrompt(request, metadata=api.metadata)
        sent = len(fake.requests)
        # A retry (as after a lost answer) is answered from storage: Gemini is not asked again.
        assert api.stub.DraftPrompt(request, metadata=api.metadata) == first
        other = pb.DraftPromptRequest(text="a wolf in snow", model=IMAGE_MODEL, request_id="fox-1")
        with pytest.raises(grpc.RpcError) as reused:
            api.stub.DraftPrompt(other, metadata=api.metadata)
        assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert len(fake.requests) == sent == 1


def test_a_prompt_the_text_model_drafted_runs_on_the_image_model(
    gemini_server: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini_server
    with server.channel() as channel:
        api = Api(channel)
        fake.reply_text("A red fox in fresh snow, watercolour, soft morning light.")
        request = pb.DraftPromptRequest(text="a fox in snow", context="watercolour", model=IMAGE_MODEL)
        draft = api.stub.DraftPrompt(request, metadata=api.metadata)
        # The text model drafts: it is sent the text, the context, and the image model's guidance.
        sent = fake.requests[-1]
        assert sent.model == TEXT_MODEL
        said = "".join(sent.texts())
        assert "a fox in snow" in said and "watercolour" in said and IMAGE_MODEL in said
        assert "a model that makes images" in sent.system_instruction_text
        assert (draft.prompt, draft.model, draft.drafter_model) == (
            "A red fox in fresh snow, watercolour, soft morning light.",
            IMAGE_MODEL,
            TEXT_MODEL,
        )
        assert (draft.usage.input_tokens, draft.usage.output_tokens) == (
            USAGE["promptTokenCount"],
            USAGE["candidatesTokenCount"],
        )
        # The draft, as edited, is what the image model receives.
        edited = draft.prompt + " A wide shot."
        api.stub.UpdateDraft(pb.UpdateDraftRequest(name=draft.name, prompt=edited), metadata=api.metadata)
        fake.reply_image(make_png(), text="a fox")
        version = api.wait(api.generate("", draft=draft.name).name)
        assert version.state == gen.VERSION_STATE_COMPLETED, version.error.message
        assert (version.model, version.prompt, version.draft) == (IMAGE_MODEL, edited, draft.name)
        assert fake.requests[-1].model == IMAGE_MODEL and edited in "".join(fake.requests[-1].texts())
