"""The offline provider: real stages, deterministic files that reflect the prompt, and
refinements that change only what the instructions name."""

from __future__ import annotations

import json
import struct
import time
import tomllib
import zlib

import anyio
import pytest

from server.files import FileContent
from server.providers._base import ChangeSet, JobKind, ProviderError, ProviderRequest
from server.providers.offline import OfflineProvider, _plan, _render
from server.providers.offline._checks import file_problems
from server.providers.offline._instructions import (
    AddFile,
    ChangeFile,
    DeleteFiles,
    RenameFiles,
    ReplaceText,
    parse_instructions,
    split_clauses,
)
from server.providers.offline._png import prompt_picture
from tests._support import ROOT
from tests.providers._recording import RecordingProgress

SOURCE = (
    FileContent("README.md", "text/markdown", b"# Demo\n"),
    FileContent("notes.txt", "text/plain", b"old notes\n"),
    FileContent("src/demo/main.py", "text/x-python", b"def main() -> None:\n    pass\n"),
    FileContent("data.json", "application/json", b'{"name": "demo"}\n'),
    FileContent("index.html", "text/html", b"<html><body><p>Hi</p></body></html>\n"),
    FileContent("logo.png", "image/png", b"\x89PNG\r\n\x1a\nnot really"),
)


async def generate(prompt: str, kind: JobKind = JobKind.GENERATE) -> tuple[ChangeSet, RecordingProgress]:
    provider = OfflineProvider()
    request = ProviderRequest(kind=kind, prompt=prompt, model="offline")
    progress = RecordingProgress()
    change_set = await provider.run(request, progress)
    assert progress.clean_run() == list(provider.stage_titles(request))
    return change_set, progress


async def refine(prompt: str) -> tuple[ChangeSet, RecordingProgress]:
    provider = OfflineProvider()
    request = ProviderRequest(kind=JobKind.ITERATE, prompt=prompt, model="offline", source_files=SOURCE)
    progress = RecordingProgress()
    change_set = await provider.run(request, progress)
    assert progress.clean_run() == list(provider.stage_titles(request))
    return change_set, progress


async def refinement_error(prompt: str) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await refine(prompt)
    return caught.value


def files_of(change_set: ChangeSet) -> dict[str, bytes]:
    return {file.path: file.data for file in change_set.upserts}


def decode_png(data: bytes) -> tuple[tuple[int, ...], bytes]:
    """Decodes a PNG independently of the provider's reader: (IHDR fields, inflated rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: list[tuple[bytes, bytes]] = []
    offset = 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    header = struct.unpack(">IIBBBBB", chunks[0][1])
    return header, zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))


# Generation


@pytest.mark.anyio
async def test_a_python_project_reflects_the_prompt() -> None:
    change_set, progress = await generate("a CLI that converts celsius to fahrenheit")

    files = files_of(change_set)
    package = "src/celsius_fahrenheit_cli"
    assert list(files) == [
        "README.md",
        "pyproject.toml",
        f"{package}/__init__.py",
        f"{package}/main.py",
        "tests/test_main.py",
    ]
    readme = files["README.md"].decode()
    assert "> a CLI that converts celsius to fahrenheit" in readme
    assert all(f"`{path}`" in readme for path in files if path != "README.md")
    assert tomllib.loads(files["pyproject.toml"].decode())["project"]["name"] == "celsius-fahrenheit-cli"
    namespace: dict[str, object] = {}
    exec(compile(files[f"{package}/main.py"], "main.py", "exec"), namespace)
    convert = namespace["convert_celsius_fahrenheit"]
    assert callable(convert) and "21.5" in convert("21.5")
    assert {file.path: file.mime_type for file in change_set.upserts}["pyproject.toml"] == "application/toml"
    assert {file.mime_type for file in change_set.upserts if file.path.endswith(".py")} == {"text/x-python"}
    assert change_set.summary == "wrote 5 files"
    assert change_set.deletions == () and change_set.renames == ()
    assert progress.outputs == [list(files)]
    assert progress.messages[0] == "planned 5 files for Celsius Fahrenheit CLI, a Python project"


@pytest.mark.anyio
async def test_generation_is_byte_identical_for_the_same_prompt() -> None:
    prompt = "a website for a bakery, with a logo"
    first, first_progress = await generate(prompt)
    second, second_progress = await generate(prompt)

    assert first == second
    assert first_progress.messages == second_progress.messages
    other, _ = await generate("a website for a florist, with a logo")
    assert files_of(other)["assets/logo.png"] != files_of(first)["assets/logo.png"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prompt", "expected", "main_file", "identifier"),
    [
        (
            "a node script that counts words",
            ["README.md", "package.json", "src/index.js", "test/index.test.js"],
            "src/index.js",
            "countWords",
        ),
        (
            "a bot that fetches news, in TypeScript",
            ["README.md", "package.json", "tsconfig.json", "src/index.ts", "src/index.test.ts"],
            "src/index.ts",
            "fetchNews",
        ),
        (
            "a golang service that greets visitors",
            ["README.md", "go.mod", "main.go", "greet.go", "greet_test.go"],
            "greet.go",
            "GreetVisitors",
        ),
        (
            "convert celsius to fahrenheit in Rust",
            ["README.md", "Cargo.toml", "src/lib.rs", "src/main.rs"],
            "src/lib.rs",
            "convert_celsius_fahrenheit",
        ),
        (
            "an HTML page that shows the weather",
            ["README.md", "index.html", "styles.css", "script.js"],
            "script.js",
            "showWeather",
        ),
    ],
)
async def test_each_language_gets_its_own_small_project(
    prompt: str, expected: list[str], main_file: str, identifier: str
) -> None:
    change_set, _ = await generate(prompt)

    files = files_of(change_set)
    assert list(files) == expected
    assert identifier in files[main_file].decode()
    assert all(not file_problems(path, data) for path, data in files.items())
    for path, data in files.items():
        if path.endswith(".json") and "package" in path:
            assert json.loads(data)["description"] == prompt


@pytest.mark.anyio
async def test_go_counts_as_a_language_only_where_a_language_name_would_stand() -> None:
    go, _ = await generate("a go web server")
    verb, _ = await generate("go fetch the news with a python bot")

    assert "go.mod" in files_of(go) and "pyproject.toml" not in files_of(go)
    assert "src/news_bot/main.py" in files_of(verb)


@pytest.mark.anyio
@pytest.mark.parametrize("language", ["python", "node", "typescript", "golang", "rust", "html"])
async def test_hostile_prompts_still_give_valid_files(language: str) -> None:
    prompt = (
        f'a {language} tool to parse "quotes" \\ back\\slashes """ {{braces}} ${{x}}'
        "\n\x00\x7f\ufeff\u2028 caf\u00e9"
    )

    change_set, _ = await generate(prompt)

    # Check would have failed the run; this also proves the prompt survived into the code.
    files = files_of(change_set)
    assert any("caf\u00e9" in data.decode() for path, data in files.items() if path != "README.md")
    assert all(not file_problems(path, data) for path, data in files.items())


@pytest.mark.anyio
async def test_a_picture_prompt_gets_a_valid_deterministic_png() -> None:
    change_set, _ = await generate("a logo for a coffee shop")

    assert [(file.path, file.mime_type) for file in change_set.upserts] == [
        ("README.md", "text/markdown"),
        ("logo.png", "image/png"),
    ]
    png = files_of(change_set)["logo.png"]
    (width, height, bit_depth, color_type, compression, filtering, interlace), rows = decode_png(png)
    assert (width, height, bit_depth, color_type) == (64, 64, 8, 2)
    assert (compression, filtering, interlace) == (0, 0, 0)
    assert len(rows) == height * (1 + width * 3)
    stride = 1 + width * 3
    assert {rows[row * stride] for row in range(height)} == {0}
    pixels = {
        rows[i : i + 3] for row in range(height) for i in range(row * stride + 1, (row + 1) * stride, 3)
    }
    assert len(pixels) > 2, "the picture is a pattern, not a flat colour"
    assert "coffee" in files_of(change_set)["README.md"].decode().lower()


@pytest.mark.anyio
async def test_a_picture_can_come_with_code() -> None:
    change_set, _ = await generate("a python app with a logo")

    files = files_of(change_set)
    assert "assets/logo.png" in files and "src/logo_app/main.py" in files
    assert decode_png(files["assets/logo.png"])[0][:2] == (64, 64)


@pytest.mark.anyio
async def test_regenerate_without_a_tree_generates() -> None:
    generated, _ = await generate("a todo list app", JobKind.GENERATE)
    regenerated, _ = await generate("a todo list app", JobKind.REGENERATE)

    assert regenerated == generated


@pytest.mark.anyio
async def test_an_empty_prompt_is_refused() -> None:
    with pytest.raises(ProviderError) as caught:
        await generate(" \n\t ")

    assert (caught.value.reason, caught.value.code) == ("OFFLINE_EMPTY_PROMPT", "INVALID_ARGUMENT")


@pytest.mark.anyio
async def test_check_fails_the_run_when_the_writer_gets_it_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dict(_render._RENDERERS["python"](_plan.plan_project("a calculator")))
    broken["src/calculator/main.py"] = "def broken(:\n"
    monkeypatch.setitem(_render._RENDERERS, "python", lambda plan: broken)
    progress = RecordingProgress()

    with pytest.raises(ProviderError) as caught:
        await OfflineProvider().run(ProviderRequest(JobKind.GENERATE, "a calculator", "offline"), progress)

    assert (caught.value.reason, caught.value.code) == ("OFFLINE_CHECK_FAILED", "INTERNAL")
    assert "src/calculator/main.py" in caught.value.message
    assert progress.events[-1] == ("fail", "Check")


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("a.py", b"def broken(:\n"),
        ("a.json", b"{"),
        ("a.toml", b"name = "),
        ("a.html", b"<html><body></html>"),
        ("a.md", b"\xff\xfe"),
        ("a.png", b"\x89PNG\r\n\x1a\n"),
    ],
)
def test_file_problems_finds_broken_files(path: str, data: bytes) -> None:
    assert file_problems(path, data)


def test_file_problems_catches_a_corrupted_png_crc() -> None:
    png = bytearray(prompt_picture("anything"))
    assert file_problems("a.png", bytes(png)) == []
    png[20] ^= 0xFF  # inside the IHDR body
    assert "CRC" in file_problems("a.png", bytes(png))[0]


# Refinement


@pytest.mark.anyio
async def test_add_a_file_with_content() -> None:
    change_set, progress = await refine('add file docs/notes.md with content "Hello\\nWorld"')

    assert [(file.path, file.mime_type, file.data) for file in change_set.upserts] == [
        ("docs/notes.md", "text/markdown", b"Hello\nWorld\n")
    ]
    assert (change_set.deletions, change_set.renames) == ((), ())
    assert change_set.summary == "added 1 file"
    assert progress.outputs == [["docs/notes.md"]]


@pytest.mark.anyio
async def test_add_a_file_without_content_gets_a_plausible_one() -> None:
    change_set, _ = await refine("create app/schemas/project.py for the project schema")

    source = files_of(change_set)["app/schemas/project.py"].decode()
    compile(source, "project.py", "exec")
    assert "class Project:" in source and "project schema" in source


@pytest.mark.anyio
async def test_change_a_file_to_say_something() -> None:
    change_set, _ = await refine("change README.md to say hello")

    assert files_of(change_set) == {"README.md": b"# Demo\n\nhello\n"}
    assert change_set.summary == "changed 1 file"


@pytest.mark.anyio
async def test_a_change_to_python_keeps_it_valid() -> None:
    change_set, _ = await refine("update src/demo/main.py to handle errors")

    source = files_of(change_set)["src/demo/main.py"]
    assert source.startswith(SOURCE[2].data)
    assert source.endswith(b"# Requested change: update src/demo/main.py to handle errors\n")
    compile(source, "main.py", "exec")


@pytest.mark.anyio
async def test_a_change_to_json_and_html_keeps_them_valid() -> None:
    change_set, _ = await refine("update data.json to say hi; in index.html, add a footer")

    files = files_of(change_set)
    assert json.loads(files["data.json"]) == {"name": "demo", "changes": ["hi"]}
    assert b"<!-- Requested change: in index.html, add a footer -->\n</body>" in files["index.html"]
    assert not file_problems("index.html", files["index.html"])


@pytest.mark.anyio
async def test_replace_text_in_a_file() -> None:
    change_set, _ = await refine('replace "Demo" with "Atelier" in README.md')

    assert files_of(change_set) == {"README.md": b"# Atelier\n"}


@pytest.mark.anyio
async def test_delete_a_file() -> None:
    change_set, progress = await refine("delete notes.txt")

    assert (change_set.upserts, change_set.deletions, change_set.renames) == ((), ("notes.txt",), ())
    assert change_set.summary == "deleted 1 file"
    assert progress.outputs == []


@pytest.mark.anyio
async def test_delete_a_folder() -> None:
    change_set, _ = await refine("remove the src folder")

    assert change_set.deletions == ("src/demo/main.py",)


@pytest.mark.anyio
async def test_rename_a_file() -> None:
    change_set, _ = await refine("rename notes.txt to docs/notes.txt")

    assert (change_set.upserts, change_set.deletions) == ((), ())
    assert change_set.renames == (("notes.txt", "docs/notes.txt"),)
    assert change_set.summary == "renamed 1 file"


@pytest.mark.anyio
async def test_a_file_found_by_its_name_is_renamed_in_its_folder() -> None:
    change_set, _ = await refine("rename main.py to app.py")

    assert change_set.renames == (("src/demo/main.py", "src/demo/app.py"),)


@pytest.mark.anyio
async def test_a_renamed_then_changed_file_does_not_depend_on_merge_order() -> None:
    change_set, _ = await refine("rename notes.txt to b.txt; change b.txt to say hi")

    assert change_set.renames == ()
    assert change_set.deletions == ("notes.txt",)
    assert files_of(change_set) == {"b.txt": b"old notes\nhi\n"}


@pytest.mark.anyio
async def test_an_unmapped_request_becomes_a_readme_note() -> None:
    change_set, _ = await refine("make it nicer")

    assert files_of(change_set) == {"README.md": b"# Demo\n\n## Changes\n\n- make it nicer\n"}


@pytest.mark.anyio
async def test_a_request_that_mentions_one_file_changes_that_file() -> None:
    change_set, _ = await refine("make main.py handle errors")

    assert list(files_of(change_set)) == ["src/demo/main.py"]


@pytest.mark.anyio
async def test_several_instructions_apply_in_order() -> None:
    prompt = "add a.md; delete notes.txt\nrename src/demo/main.py to src/demo/app.py and then make it nicer"

    change_set, progress = await refine(prompt)

    assert sorted(files_of(change_set)) == ["README.md", "a.md"]
    assert change_set.deletions == ("notes.txt",)
    assert change_set.renames == (("src/demo/main.py", "src/demo/app.py"),)
    assert change_set.summary == "added 1 file, changed 1 file, renamed 1 file, deleted 1 file"
    assert progress.outputs == [["README.md", "a.md", "src/demo/app.py"]]
    assert progress.messages[0].startswith("planned 4 edits: add a.md; delete notes.txt; rename")


@pytest.mark.anyio
async def test_refinement_is_deterministic() -> None:
    prompt = "create docs/logo.png; make it nicer; update src/demo/main.py to log"
    first, _ = await refine(prompt)
    second, _ = await refine(prompt)

    assert first == second
    assert decode_png(files_of(first)["docs/logo.png"])[0][:2] == (64, 64)


@pytest.mark.anyio
async def test_content_the_user_gave_is_kept_with_a_warning() -> None:
    change_set, _ = await refine('add file bad.py with content "def ("')

    assert files_of(change_set) == {"bad.py": b"def (\n"}
    assert any(note.startswith("kept as given") for note in change_set.notes)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "prompt", ["delete missing.txt", "change missing.txt to say hi", "rename missing.txt to found.txt"]
)
async def test_an_unknown_path_is_an_invalid_argument(prompt: str) -> None:
    error = await refinement_error(prompt)

    assert (error.reason, error.code) == ("OFFLINE_UNKNOWN_PATH", "INVALID_ARGUMENT")
    assert "missing.txt" in error.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("add file ../evil.txt", "OFFLINE_BAD_PATH"),
        ("create README.md", "OFFLINE_PATH_EXISTS"),
        ("rename notes.txt to README.md", "OFFLINE_PATH_EXISTS"),
        ("change logo.png to say hi", "OFFLINE_CANNOT_EDIT"),
        ('replace "absent" with "x" in README.md', "OFFLINE_TEXT_NOT_FOUND"),
        ("", "OFFLINE_EMPTY_PROMPT"),
    ],
)
async def test_impossible_instructions_are_refused(prompt: str, reason: str) -> None:
    error = await refinement_error(prompt)

    assert (error.reason, error.code) == (reason, "INVALID_ARGUMENT")


def test_clauses_split_on_separators_but_never_inside_quotes() -> None:
    prompt = 'add a.txt with content "x; y\\" and then z"\n- delete b.txt.'

    assert split_clauses(prompt) == ['add a.txt with content "x; y\\" and then z"', "delete b.txt"]
    assert split_clauses("1. add a.md, then delete b.md;; please remove c.md.") == [
        "add a.md",
        "delete b.md",
        "remove c.md",
    ]


def test_the_readme_examples_of_the_instruction_language_parse_as_documented() -> None:
    section = (ROOT / "README.md").read_text().split("### What the offline provider understands", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    tree = ["README.md", "src/app.py", "docs/guide.md", "notes.txt", "b.txt", "c.txt"]
    parsed = [[type(i) for i in parse_instructions(line, tree)] for line in block.splitlines()]
    assert parsed == [
        [AddFile],
        [AddFile],
        [ChangeFile],
        [ChangeFile],
        [ReplaceText],
        [DeleteFiles],
        [DeleteFiles],
        [RenameFiles],
        [RenameFiles],
        [AddFile, DeleteFiles, RenameFiles],
    ]


@pytest.mark.anyio
async def test_a_pace_pauses_each_stage_and_gives_way_to_cancellation() -> None:
    provider = OfflineProvider(pace_seconds=0.05)
    progress = RecordingProgress()
    started = time.monotonic()
    await provider.run(ProviderRequest(JobKind.GENERATE, "a python cli", "offline"), progress)
    assert time.monotonic() - started >= 0.15  # three stages
    with anyio.move_on_after(0.1) as scope:
        await OfflineProvider(pace_seconds=60).run(
            ProviderRequest(JobKind.GENERATE, "a python cli", "offline"), RecordingProgress()
        )
    assert scope.cancelled_caught
