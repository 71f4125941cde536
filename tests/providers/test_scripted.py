"""The scripted provider does exactly what the script in its prompt says."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest

from server.files import FileContent
from server.providers._base import ChangeSet, JobKind, ProviderError, ProviderRequest
from server.providers.scripted import ScriptedProvider
from tests.providers._recording import RecordingProgress


def request_for(prompt: str | dict[str, Any]) -> ProviderRequest:
    text = prompt if isinstance(prompt, str) else json.dumps(prompt)
    return ProviderRequest(kind=JobKind.GENERATE, prompt=text, model="scripted")


async def run(prompt: str | dict[str, Any]) -> tuple[ChangeSet, RecordingProgress]:
    progress = RecordingProgress()
    change_set = await ScriptedProvider().run(request_for(prompt), progress)
    return change_set, progress


async def failure(prompt: str | dict[str, Any]) -> tuple[BaseException, RecordingProgress]:
    progress = RecordingProgress()
    with pytest.raises(Exception) as caught:
        await ScriptedProvider().run(request_for(prompt), progress)
    return caught.value, progress


@pytest.mark.anyio
async def test_a_plain_prompt_runs_the_defaults() -> None:
    change_set, progress = await run("hello there")

    assert ScriptedProvider().stage_titles(request_for("hello there")) == ("Step 1", "Step 2")
    assert progress.events == [
        ("enter", "Step 1"),
        ("message", "Step 1", "step 1: message 1 of 1"),
        ("exit", "Step 1"),
        ("enter", "Step 2"),
        ("message", "Step 2", "step 2: message 1 of 1"),
        ("output", "Step 2", "answer.txt"),
        ("exit", "Step 2"),
    ]
    assert change_set.upserts == (FileContent("answer.txt", "text/plain", b"hello there"),)
    assert (change_set.deletions, change_set.renames) == ((), ())


@pytest.mark.anyio
async def test_a_json_prompt_that_is_not_an_object_runs_the_defaults() -> None:
    change_set, _ = await run("[1, 2]")

    assert change_set.upserts == (FileContent("answer.txt", "text/plain", b"[1, 2]"),)


@pytest.mark.anyio
async def test_stages_and_messages_follow_the_script() -> None:
    script = {"stages": 3, "messages_per_stage": 2}
    _, progress = await run(script)

    entered = [event[1] for event in progress.events if event[0] == "enter"]
    exited = [event[1] for event in progress.events if event[0] == "exit"]
    assert entered == exited == list(ScriptedProvider().stage_titles(request_for(script)))
    assert entered == ["Step 1", "Step 2", "Step 3"]
    messages = [event[1:] for event in progress.events if event[0] == "message"]
    assert messages == [(f"Step {n}", f"step {n}: message {m} of 2") for n in (1, 2, 3) for m in (1, 2)]


@pytest.mark.anyio
async def test_zero_stages_still_produce_the_files() -> None:
    change_set, progress = await run({"stages": 0, "files": {"a.txt": "A"}})

    assert ScriptedProvider().stage_titles(request_for({"stages": 0})) == ()
    assert progress.events == [("output", "None", "a.txt")]
    assert [file.path for file in change_set.upserts] == ["a.txt"]


@pytest.mark.anyio
async def test_files_binary_files_deletions_and_renames() -> None:
    png = b"\x89PNG\r\n\x1a\n..."
    change_set, progress = await run(
        {
            "files": {"docs/a.md": "# A\n", "b.txt": "b"},
            "binary_files": {"c.png": base64.b64encode(png).decode()},
            "deletions": ["old.txt"],
            "renames": [["x.txt", "y.txt"]],
        }
    )

    assert change_set.upserts == (
        FileContent("docs/a.md", "text/markdown", b"# A\n"),
        FileContent("b.txt", "text/plain", b"b"),
        FileContent("c.png", "image/png", png),
    )
    assert change_set.deletions == ("old.txt",)
    assert change_set.renames == (("x.txt", "y.txt"),)
    assert ("output", "Step 2", "docs/a.md", "b.txt", "c.png") in progress.events


@pytest.mark.anyio
async def test_a_script_of_only_deletions_writes_no_answer() -> None:
    change_set, progress = await run({"deletions": ["a.txt"]})

    assert change_set.upserts == ()
    assert not [event for event in progress.events if event[0] == "output"]


@pytest.mark.anyio
async def test_delay_sleeps_in_each_stage() -> None:
    started = anyio.current_time()
    await run({"stages": 2, "delay": 0.05, "messages_per_stage": 2})

    assert anyio.current_time() - started >= 0.1


@pytest.mark.anyio
async def test_delay_is_cancellable() -> None:
    progress = RecordingProgress()
    started = anyio.current_time()

    with anyio.move_on_after(0.05) as scope:
        await ScriptedProvider().run(request_for({"delay": 30}), progress)

    assert scope.cancelled_caught
    assert anyio.current_time() - started < 5
    assert progress.events[-1] == ("fail", "Step 1")


@pytest.mark.anyio
async def test_fail_raises_after_the_last_stage_by_default() -> None:
    fail = {"code": "RESOURCE_EXHAUSTED", "reason": "QUOTA", "message": "out of quota", "retryable": True}
    error, progress = await failure({"fail": fail, "files": {"a.txt": "A"}})

    assert isinstance(error, ProviderError)
    assert (error.code, error.reason, error.message, error.retryable) == (
        "RESOURCE_EXHAUSTED",
        "QUOTA",
        "out of quota",
        True,
    )
    assert progress.events[-2:] == [("output", "Step 2", "a.txt"), ("exit", "Step 2")]


@pytest.mark.anyio
async def test_fail_defaults() -> None:
    error, _ = await failure({"fail": {}})

    assert isinstance(error, ProviderError)
    assert (error.code, error.reason, error.retryable) == ("UNAVAILABLE", "SCRIPTED_FAILURE", False)


@pytest.mark.anyio
async def test_fail_at_stage_raises_inside_that_stage() -> None:
    error, progress = await failure({"stages": 3, "fail": "boom", "fail_at_stage": 2})

    assert isinstance(error, ProviderError) and error.message == "boom"
    assert [event for event in progress.events if event[0] != "message"] == [
        ("enter", "Step 1"),
        ("exit", "Step 1"),
        ("enter", "Step 2"),
        ("fail", "Step 2"),
    ]


@pytest.mark.anyio
async def test_crash_raises_a_plain_runtime_error() -> None:
    error, progress = await failure({"crash": "kaboom", "fail_at_stage": 1})

    assert type(error) is RuntimeError and str(error) == "kaboom"
    assert progress.events[-1] == ("fail", "Step 1")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "script",
    [
        {"stages": "3"},
        {"stages": -1},
        {"stages": True},
        {"messages_per_stage": 1.5},
        {"delay": "slow"},
        {"delay": -1},
        {"files": ["a.txt"]},
        {"files": {"a.txt": 1}},
        {"files": {"a.txt": "\ud800"}},
        {"binary_files": {"a.bin": "not base64!"}},
        {"deletions": "a.txt"},
        {"renames": [["a.txt"]]},
        {"fail": 3},
        {"fail": {"code": "NOT_A_CODE"}},
        {"fail": {"code": "OK"}},
        {"fail": {"retryable": "yes"}},
        {"fail": {"colour": "red"}},
        {"crash": 1},
        {"fail": "x", "crash": "y"},
        {"fail_at_stage": 1},
        {"fail": "x", "fail_at_stage": 3},
        {"fail": "x", "fail_at_stage": 0},
        {"unknown": 1},
    ],
)
async def test_an_invalid_script_fails_before_any_stage(script: dict[str, Any]) -> None:
    provider = ScriptedProvider()
    request = request_for(script)
    progress = RecordingProgress()

    assert provider.stage_titles(request) == ("Step 1", "Step 2")
    with pytest.raises(ProviderError) as caught:
        await provider.run(request, progress)

    assert (caught.value.reason, caught.value.code) == ("SCRIPT_INVALID", "INVALID_ARGUMENT")
    assert progress.events == []
