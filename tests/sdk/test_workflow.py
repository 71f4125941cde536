"""A whole piece of work through the SDK: generate, tweak, iterate, diff and export, on a real server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from atelier import (
    AsyncAtelierClient,
    AtelierClient,
    FailedPrecondition,
    FileChange,
    MergeStrategy,
    ProgressEventType,
    TurnRole,
    VersionKind,
    VersionState,
)

from tests._client_support import TOKEN, WORKFLOW_ITERATE, WORKFLOW_PROMPT, WORKFLOW_TWEAK, tree_of
from tests._support import ROOT, ServerProcess


def test_generate_tweak_iterate_diff_and_export(client: AtelierClient, tmp_path: Path) -> None:
    queued = client.generate(WORKFLOW_PROMPT)
    assert (queued.state, queued.kind, queued.number) == (VersionState.QUEUED, VersionKind.GENERATE, 1)
    assert queued.request_id  # made by the SDK, so that a retried Generate cannot start a second job

    events = list(client.progress(queued.name))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].terminal and events[-1].state == VersionState.COMPLETED
    stages = [e for e in events if e.type == ProgressEventType.STAGE_STARTED]
    assert stages and all(e.total_stages == stages[0].total_stages for e in stages)
    v1 = client.wait(queued.name)
    assert v1.state == VersionState.COMPLETED and v1.file_count == 5

    v2 = client.wait(client.tweak(v1.name, WORKFLOW_TWEAK, etag=v1.etag).name)
    assert (v2.kind, v2.state, v2.parent, v2.turn) == (VersionKind.TWEAK, VersionState.COMPLETED, v1.name, 2)
    v3 = client.wait(client.iterate(v2.name, WORKFLOW_ITERATE).name)
    assert (v3.kind, v3.state, v3.parent) == (VersionKind.ITERATE, VersionState.COMPLETED, v2.name)

    changes = client.diff(v1.name, v3.name, text=True)
    assert [(c.path, c.change) for c in changes] == [
        ("app/schemas/project.py", FileChange.ADDED),
        ("docs/usage.md", FileChange.ADDED),
    ]
    assert all(c.base is None and c.target is not None and c.unified_diff.startswith("---") for c in changes)

    written = client.export(v3.name, tmp_path / "v3")
    exported = tree_of(tmp_path / "v3")
    listed = list(client.files(v3.name, page_size=2))  # several pages, fetched on their own
    assert (
        sorted(exported)
        == [f.path for f in listed]
        == sorted(p.relative_to(tmp_path / "v3").as_posix() for p in written)
    )
    assert {"docs/usage.md", "app/schemas/project.py", "README.md"} <= set(exported)
    for file in listed:
        assert exported[file.path] == client.read_file(v3.name, file.path)
        assert len(exported[file.path]) == file.size
    # v1's files come through unchanged: Iterate and Tweak merge, never replace.
    client.export(v1.name, tmp_path / "v1")
    v1_tree = tree_of(tmp_path / "v1")
    assert {path: exported[path] for path in v1_tree} == v1_tree

    assert [v.name for v in client.versions(v1.generation, page_size=1)] == [v1.name, v2.name, v3.name]
    assert client.session(v1.generation).turn_count == 3
    branch = list(client.turns(v1.generation, version=v2.name))
    assert [t.role for t in branch] == [TurnRole.USER, TurnRole.MODEL] * 2
    assert branch[2].text == WORKFLOW_TWEAK
    assert v1.generation in [g.name for g in client.list_generations(page_size=1)]


def test_merge_and_upload(client: AtelierClient, tmp_path: Path) -> None:
    source = tmp_path / "mine"
    (source / "src").mkdir(parents=True)
    (source / "src" / "app.py").write_text("print('hello')\n")
    (source / "notes.md").write_text("# notes\n")
    base = client.upload(source, description="my own tree")
    assert (base.kind, base.state, base.file_count) == (VersionKind.UPLOAD, VersionState.COMPLETED, 2)
    ours = client.upload({"src/app.py": "print('ours')\n", "notes.md": "# notes\n"})
    assert ours.generation != base.generation  # each upload starts a generation

    one = client.wait(client.iterate(base.name, "add file docs/a.md").name)
    two = client.wait(client.iterate(base.name, "add file docs/b.md").name)
    result = client.merge(one.name, two.name, strategy=MergeStrategy.OURS)
    assert result.merged and result.version is not None
    assert (result.version.kind, result.version.merge_parent) == (VersionKind.MERGE, two.name)
    assert {"docs/a.md", "docs/b.md", "src/app.py"} <= {f.path for f in client.files(result.version.name)}
    # Neither an upload nor a merge can be asked of a model again.
    for made_without_a_model in (base, result.version):
        with pytest.raises(FailedPrecondition) as refused:
            client.regenerate(made_without_a_model.name)
        assert refused.value.reason == "NOT_REGENERATABLE"
        assert refused.value.metadata["kind"] == made_without_a_model.kind.value


def test_uploaded_files_get_the_mime_types_the_server_guesses(client: AtelierClient) -> None:
    # The SDK sends no MIME type for an uploaded file: the server's one guesser decides.
    version = client.upload(
        {
            "notes.md": "# notes\n",
            "app.py": "print('hi')\n",
            "data.json": "{}\n",
            "web/main.ts": "export {};\n",
            "page.html": "<p>hi</p>\n",
            "LICENSE": "plain text without a suffix\n",
            "blob": b"\x00\x01\x02\xff",
        }
    )
    assert {f.path: f.mime_type for f in client.files(version.name)} == {
        "LICENSE": "text/plain",
        "app.py": "text/x-python",
        "blob": "application/octet-stream",
        "data.json": "application/json",
        "notes.md": "text/markdown",
        "page.html": "text/html",
        "web/main.ts": "text/x-typescript",
    }


def test_the_async_client_does_the_same_work(server: ServerProcess, tmp_path: Path) -> None:
    async def work() -> None:
        async with AsyncAtelierClient(server.target, token=TOKEN) as client:
            models = await client.models()
            assert [m.name for m in models if m.default] == ["offline"]
            v1 = await client.wait((await client.generate(WORKFLOW_PROMPT)).name)
            v2 = await client.wait((await client.tweak(v1.name, WORKFLOW_TWEAK)).name)
            seqs = [event.seq async for event in client.progress(v2.name, after_seq=3)]
            assert seqs == list(range(4, v2.last_event_seq + 1))
            changes = await client.diff(v1.name, v2.name)
            assert [(c.path, c.change) for c in changes] == [("docs/usage.md", FileChange.ADDED)]
            written = await client.export(v2.name, tmp_path / "out")
            assert len(written) == v2.file_count
            assert tree_of(tmp_path / "out")["docs/usage.md"] == await client.read_file(
                v2.name, "docs/usage.md"
            )
            assert [v.number async for v in client.versions(v1.generation)] == [1, 2]

    asyncio.run(work())


def test_the_example_consumer_runs(server: ServerProcess, tmp_path: Path) -> None:
    example = ROOT / "clients" / "python" / "examples" / "generate_and_wait.py"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env.update(ATELIER_TARGET=server.target, ATELIER_TOKEN=TOKEN)
    result = subprocess.run(
        [sys.executable, str(example), WORKFLOW_PROMPT, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stage 1/" in result.stdout and (tmp_path / "out" / "README.md").is_file()


def test_the_readme_sdk_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## Python SDK and CLI", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env.update(ATELIER_TARGET=server.target, ATELIER_TOKEN=TOKEN)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stage 1/" in result.stdout and "VERSION_NOT_FOUND" in result.stdout
    assert (tmp_path / "out" / "docs" / "usage.md").is_file()
