"""The command as a new user tries it: listings, short names, standard flags, output that pipes
whole, messages in the command line's words, and cancellation that says what happened.

Most commands run in this process (`atelier._cli.main`, against the real server), which is much
faster than a Python start per command; what needs a terminal or raw bytes runs as a process."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest
from atelier import AtelierClient, VersionState
from atelier._cli import main

from tests._client_support import TOKEN, free_port
from tests._support import ServerProcess, script
from tests.cli.conftest import ATELIER, cli_env

_BINARY = bytes(range(256)) * 4


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


@pytest.fixture
def cli(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """`atelier ARGS` in this process, with its own state file (so its own current generation)."""
    monkeypatch.chdir(tmp_path)
    for key in (
        "ATELIER_TLS",
        "ATELIER_TLS_CA_FILE",
        "ATELIER_TLS_CLIENT_CERT_FILE",
        "ATELIER_TLS_CLIENT_KEY_FILE",
    ):
        monkeypatch.delenv(key, raising=False)

    def run(*args: str, input: str = "", state: str = "state.json", token: str = TOKEN) -> Ran:
        monkeypatch.setenv("ATELIER_TARGET", server.target)
        monkeypatch.setenv("ATELIER_TOKEN", token)
        monkeypatch.setenv("ATELIER_STATE_FILE", str(tmp_path / state))
        monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 0
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def _json(cli: Cli, *args: str, exit_code: int = 0, **kwargs: Any) -> Any:
    result = cli("--json", *args, **kwargs)
    assert result.returncode == exit_code, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_list_files_turns_and_short_names(cli: Cli, tmp_path: Path) -> None:
    first = _json(cli, "generate", "a tiny python library")
    v1 = _json(cli, "generate", "a python CLI that greets")
    generation = v1["name"].rsplit("/versions/", 1)[0]
    gid = generation.removeprefix("generations/")

    listed = _json(cli, "list")
    names = [g["name"] for g in listed]
    assert names.index(generation) < names.index(first["name"].rsplit("/versions/", 1)[0])  # newest first

    # `v1` is version 1 of the generation last made or named (remembered in the state file).
    v2 = _json(cli, "iterate", "v1", "add file docs/a.md")
    assert v2["parent"] == v1["name"] and v2["name"] == f"{generation}/versions/2"
    # The end of an id, the start of it, GEN/3 and GEN/v3.
    files = _json(cli, "files", gid[-6:])  # a generation: its latest version
    assert files["version"] == v2["name"] and "docs/a.md" in [f["path"] for f in files["files"]]
    assert _json(cli, "status", f"{gid[-6:]}/1")["name"] == v1["name"]
    assert _json(cli, "status", f"{gid[:-3]}/v2")["name"] == v2["name"]
    table = cli("files", "v1")
    assert table.returncode == 0 and "README.md" in table.stdout and "5 files" in table.stderr

    # Naming the first generation makes it the current one.
    assert _json(cli, "status", first["name"])["name"] == first["name"]
    assert _json(cli, "status", "v1")["name"] == first["name"]

    turns = _json(cli, "turns", gid, "--branch", f"{gid}/1")
    assert [(t["role"], t["version"]) for t in turns["turns"]] == [
        ("USER", v1["name"]),
        ("MODEL", v1["name"]),
    ]
    shown = cli("turns", gid)
    assert shown.returncode == 0 and "#3 USER → v2: add file docs/a.md" in shown.stdout

    # A typo gets a suggestion; a start shared by several generations asks for more.
    typo = cli("status", gid[-6:-1] + "x")
    assert typo.returncode == 3 and f"did you mean {gid}?" in typo.stderr, typo.stderr
    ambiguous = cli("status", gid[:4])
    assert ambiguous.returncode == 2 and "give more of its id" in ambiguous.stderr
    bad_number = cli("status", f"{gid}/latest")
    assert bad_number.returncode == 2 and "version number" in bad_number.stderr


def test_v_names_without_state_mean_the_newest_generation(cli: Cli, tmp_path: Path) -> None:
    newest = _json(cli, "generate", "a small go service", state="a.json")
    status = _json(cli, "status", "v1", state="b.json")
    assert status["name"] == newest["name"]


def test_delete_undelete_and_list_deleted(cli: Cli, tmp_path: Path) -> None:
    v1 = _json(cli, "generate", "a thing to delete")
    generation = v1["name"].rsplit("/versions/", 1)[0]
    gid = generation.removeprefix("generations/")

    deleted = _json(cli, "delete", gid[-8:])
    assert deleted["name"] == generation and deleted["delete_time"] and deleted["expire_time"]
    assert generation not in [g["name"] for g in _json(cli, "list")]
    shown = {g["name"]: g for g in _json(cli, "list", "--deleted")}
    assert shown[generation]["delete_time"] == deleted["delete_time"]
    gone = cli("status", generation)
    assert gone.returncode == 3

    said = cli("undelete", gid[-8:])  # found among the deleted ones
    assert said.returncode == 0 and f"restored {generation} (1 versions)" in said.stdout, said.stderr
    assert _json(cli, "status", f"{gid}/1")["state"] == "COMPLETED"
    again = cli("undelete", generation)
    assert again.returncode == 5 and "GENERATION_NOT_DELETED" in again.stderr
    hint = cli("delete", generation)
    assert hint.returncode == 0 and f"atelier undelete {gid}" in hint.stdout


def test_upload_and_cat_keep_binary_off_the_terminal(cli: Cli, server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "mine"
    state = {"ATELIER_STATE_FILE": str(tmp_path / "state.json")}
    (source / "img").mkdir(parents=True)
    (source / "img" / "logo.bin").write_bytes(_BINARY)
    (source / "notes.txt").write_text("hello\n")
    uploaded = _json(cli, "upload", str(source), "--description", "my files")
    assert (uploaded["kind"], uploaded["state"], uploaded["file_count"]) == ("UPLOAD", "COMPLETED", 2)
    missing = cli("upload", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr

    piped = subprocess.run(
        [*ATELIER, "cat", "v1", "img/logo.bin"],
        env={**cli_env(server), **state},
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 0 and piped.stdout == _BINARY  # a pipe gets the bytes as they are
    written = cli("cat", "v1", "img/logo.bin", "-o", str(tmp_path / "logo.bin"))
    assert written.returncode == 0 and (tmp_path / "logo.bin").read_bytes() == _BINARY

    def in_terminal(*args: str) -> tuple[int | None, str]:
        child = pexpect.spawn(
            ATELIER[0],
            [*ATELIER[1:], *args],
            env={**cli_env(server), **state},
            timeout=30,
            encoding="latin-1",
        )
        output = child.read()
        child.close()
        return child.exitstatus, output

    code, output = in_terminal("cat", "v1", "img/logo.bin")
    assert code == 2 and "is binary (1024 bytes)" in output and "-o FILE" in output and "--force" in output
    code, output = in_terminal("cat", "v1", "img/logo.bin", "--force")
    assert code == 0 and "\x7f" in output


def test_the_prompt_from_stdin_or_a_file(cli: Cli, tmp_path: Path) -> None:
    from_stdin = _json(cli, "generate", "-", "--no-wait", input="a prompt from a pipe\n")
    assert from_stdin["prompt"] == "a prompt from a pipe"
    (tmp_path / "brief.md").write_text("a prompt\nfrom a file\n")
    from_file = _json(cli, "generate", "@brief.md", "--no-wait")
    assert from_file["prompt"] == "a prompt\nfrom a file"
    literal = _json(cli, "generate", "@@home is where the heart is", "--no-wait")
    assert literal["prompt"] == "@home is where the heart is"
    tweaked = _json(cli, "iterate", from_file["name"], "@brief.md", "--no-wait")
    assert tweaked["prompt"] == "a prompt\nfrom a file"

    missing = cli("generate", "@nowhere.md")
    assert missing.returncode == 2 and "@nowhere.md: no such file" in missing.stderr
    attach = cli("generate", "a prompt", "--attach", "nowhere.png")
    assert attach.returncode == 2 and "--attach nowhere.png: no such file" in attach.stderr


def test_version_help_examples_typos_and_completion(cli: Cli, tmp_path: Path) -> None:
    version = cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"atelier \d+\.\d+\.\d+\S*\n", version.stdout)
    top = cli("--help")
    assert "examples:" in top.stdout and "atelier completion bash" in top.stdout and "v3" in top.stdout
    generate = cli("generate", "--help")
    assert "examples:" in generate.stdout and "atelier generate @brief.md" in generate.stdout
    typo = cli("lsit")
    assert typo.returncode == 2 and "did you mean 'list'?" in typo.stderr
    choice = cli("merge", "v1", "v2", "--strategy", "their")
    assert choice.returncode == 2 and "did you mean 'theirs'?" in choice.stderr

    bash = cli("--target", "127.0.0.1:1", "completion", "bash")  # needs no server
    assert bash.returncode == 0 and "complete -o default -F _atelier_complete atelier" in bash.stdout
    assert "list)" in bash.stdout and "--cancel-on-interrupt" in bash.stdout
    (tmp_path / "atelier.bash").write_text(bash.stdout)
    # Completing `atelier li` in bash itself.
    probe = (
        f"source {tmp_path / 'atelier.bash'}; COMP_WORDS=(atelier li); COMP_CWORD=1; "
        "_atelier_complete; echo ${COMPREPLY[@]}; COMP_WORDS=(atelier cat --f); COMP_CWORD=2; "
        "_atelier_complete; echo ${COMPREPLY[@]}"
    )
    completed = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=10)
    assert completed.stdout.split("\n")[:2] == ["list", "--force"], completed.stdout + completed.stderr
    zsh = cli("completion", "zsh")
    assert zsh.stdout.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    fish = cli("completion", "fish")
    assert "complete -c atelier -n 'not __fish_seen_subcommand_from" in fish.stdout
    assert "complete -c atelier -n '__fish_seen_subcommand_from cat' -s o -l output -r -F" in fish.stdout
    if shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n", "-c", zsh.stdout], timeout=10).returncode == 0


def test_piped_output_is_never_cut(cli: Cli) -> None:
    # No COLUMNS: a pipe used to get 80 columns, and long cells ended in `…`.
    models = cli("models")
    row = next(line for line in models.stdout.splitlines() if "offline" in line)
    assert "Offline (deterministic, no network)" in row and "…" not in models.stdout
    assert len(row) > 80
    _json(cli, "generate", "a prompt long enough to push the listing of generations past eighty columns")
    listed = cli("list")
    assert "…" not in listed.stdout and re.search(r"│ [0-9a-f]{20} │", listed.stdout)
    assert max(len(line) for line in listed.stdout.splitlines()) > 80


def test_messages_speak_the_command_line(cli: Cli, server: ServerProcess) -> None:
    unknown = cli("generate", "a prompt", "--model", "gemini-9")
    assert unknown.returncode == 2 and "`atelier models` names the models" in unknown.stderr
    assert "ListModels" not in unknown.stderr

    no_token = cli("models", token="")
    assert no_token.returncode == 5 and "--token" in no_token.stderr and "ATELIER_TOKEN" in no_token.stderr
    assert "metadata" not in no_token.stderr
    document = _json(cli, "models", token="", exit_code=5)
    assert document["error"]["reason"] == "MISSING_CREDENTIALS" and "--token" in document["error"]["hint"]

    down = cli("--target", f"127.0.0.1:{free_port()}", "--timeout", "3", "models")
    assert down.returncode == 4 and "make run" in down.stderr and "--target" in down.stderr
    url = cli("--target", f"http://{server.target}", "models")
    assert url.returncode == 2 and f"use '{server.target}'" in url.stderr
    secure = cli("--target", f"https://{server.target}/", "models")
    assert secure.returncode == 2 and "with TLS" in secure.stderr


def test_cancel_says_what_happened(cli: Cli, server: ServerProcess) -> None:
    with AtelierClient(server.target, token=TOKEN) as client:
        running = client.generate(script(stages=1, delay=30.0), model="scripted")
        queued_until = time.monotonic() + 10
        while client.get(running.name).state != VersionState.RUNNING and time.monotonic() < queued_until:
            time.sleep(0.05)
        said = cli("cancel", running.name)
        assert said.returncode == 0, said.stderr
        assert f"Cancellation of {running.name} was requested: it was RUNNING" in said.stdout
        ended = client.wait(running.name, timeout=30)
        assert ended.state == VersionState.CANCELLED and ended.message == "Cancelled by the user"
        assert ended.error is not None and ended.error.message == "cancelled by the user"

        other = client.generate(script(stages=1, delay=30.0), model="scripted")
        waited = cli("cancel", other.name, "--wait")
        assert waited.returncode == 0 and f"{other.name} CANCELLED: Cancelled by the user" in waited.stdout
