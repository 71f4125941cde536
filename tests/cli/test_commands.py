"""The `atelier` command, as a script uses it: --json documents on stdout and telling exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atelier import AtelierClient

from tests._client_support import TOKEN, WORKFLOW_ITERATE, WORKFLOW_PROMPT, WORKFLOW_TWEAK, free_port, tree_of
from tests._support import ServerProcess
from tests.cli.conftest import RunCli


def _json(run_cli: RunCli, *args: str, exit_code: int = 0) -> Any:
    result = run_cli("--json", *args)
    assert result.returncode == exit_code, result.stdout + result.stderr
    return json.loads(result.stdout)  # exactly one JSON document


def test_generate_tweak_iterate_diff_and_export(
    run_cli: RunCli, server: ServerProcess, tmp_path: Path
) -> None:
    v1 = _json(run_cli, "generate", WORKFLOW_PROMPT)
    assert (v1["state"], v1["kind"], v1["file_count"]) == ("COMPLETED", "GENERATE", 5)
    generation = v1["name"].rsplit("/versions/", 1)[0]
    v2 = _json(run_cli, "tweak", v1["name"], WORKFLOW_TWEAK)
    assert (v2["state"], v2["parent"], v2["turn"]) == ("COMPLETED", v1["name"], 2)
    # A generation's name stands for its latest version.
    v3 = _json(run_cli, "iterate", generation, WORKFLOW_ITERATE)
    assert (v3["state"], v3["kind"], v3["parent"]) == ("COMPLETED", "ITERATE", v2["name"])

    diff = _json(run_cli, "diff", v1["name"], v3["name"])
    assert [(f["path"], f["change"]) for f in diff["files"]] == [
        ("app/schemas/project.py", "ADDED"),
        ("docs/usage.md", "ADDED"),
    ]
    against_parent = run_cli("diff", v3["name"])  # one version: against its parent, for people
    assert against_parent.returncode == 0 and against_parent.stdout.split() == ["A", "app/schemas/project.py"]

    exported = _json(run_cli, "export", v3["name"], str(tmp_path / "cli-export"))
    assert len(exported["files"]) == v3["file_count"] == 7
    with AtelierClient(server.target, token=TOKEN) as client:
        client.export(v3["name"], tmp_path / "sdk-export")
        readme = client.read_file(v3["name"], "README.md")
    on_disk = tree_of(tmp_path / "cli-export")
    assert on_disk == tree_of(tmp_path / "sdk-export")
    assert {"docs/usage.md", "app/schemas/project.py"} <= set(on_disk)

    cat = run_cli("cat", v3["name"], "README.md")
    assert cat.returncode == 0 and cat.stdout.encode() == readme == on_disk["README.md"]
    log = _json(run_cli, "log", generation)
    assert [(v["number"], v["parent"]) for v in log["versions"]] == [
        (1, None),
        (2, v1["name"]),
        (3, v2["name"]),
    ]
    tree = run_cli("log", v3["name"])
    assert tree.returncode == 0 and "v3 ITERATE COMPLETED" in tree.stdout
    status = _json(run_cli, "status", generation)
    assert status["latest_version"]["name"] == v3["name"]


def test_models_merge_cancel_and_no_wait(run_cli: RunCli) -> None:
    models = _json(run_cli, "models")
    assert [(m["name"], m["default"]) for m in models] == [("scripted", False), ("offline", True)]
    v1 = _json(run_cli, "generate", "a tiny python library")
    ours = _json(run_cli, "iterate", v1["name"], "add file docs/a.md")
    theirs = _json(run_cli, "iterate", v1["name"], "add file docs/b.md")
    merged = _json(run_cli, "merge", ours["name"], theirs["name"], "--strategy", "theirs")
    assert merged["version"]["kind"] == "MERGE" and merged["conflicts"] == []
    # A merge is no model's answer: regenerating it is refused, saying what to do instead.
    refused = run_cli("regenerate", merged["version"]["name"])
    assert refused.returncode == 5, refused.stderr
    assert "NOT_REGENERATABLE" in refused.stderr and "Merge v2 and v3 again" in refused.stderr

    slow = json.dumps({"stages": 1, "delay": 30})
    queued = _json(run_cli, "generate", slow, "--model", "scripted", "--no-wait")
    assert queued["state"] in ("QUEUED", "RUNNING")
    cancelled = _json(run_cli, "cancel", queued["name"])
    assert cancelled["name"] == queued["name"]
    # Following a version that ends CANCELLED (or FAILED) exits 1.
    watched = _json(run_cli, "watch", queued["name"], exit_code=1)
    assert watched["state"] == "CANCELLED"


def test_exit_codes_tell_failures_apart(run_cli: RunCli, server: ServerProcess) -> None:
    missing = _json(run_cli, "status", "generations/nope/versions/1", exit_code=3)
    assert missing["error"]["reason"] == "VERSION_NOT_FOUND" and missing["exit_code"] == 3
    invalid = _json(run_cli, "generate", " ", exit_code=2)
    assert invalid["error"]["field_violations"][0]["field"] == "prompt"
    failed = _json(
        run_cli, "generate", json.dumps({"stages": 1, "fail": "no luck"}), "--model", "scripted", exit_code=1
    )
    assert failed["state"] == "FAILED" and failed["error"]["reason"] == "SCRIPTED_FAILURE"
    unauthenticated = _json(run_cli, "--token", "wrong", "models", exit_code=5)
    assert unauthenticated["error"]["code"] == "UNAUTHENTICATED"
    nobody = run_cli("--target", f"127.0.0.1:{free_port()}", "--timeout", "5", "models")
    assert nobody.returncode == 4 and "UNAVAILABLE" in nobody.stderr
    usage = run_cli("generate")
    assert usage.returncode == 2 and "usage:" in usage.stderr
