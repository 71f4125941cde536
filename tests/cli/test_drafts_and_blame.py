"""`atelier draft` and `atelier blame`, as a person and a script use them."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import RunCli


def _json(run_cli: RunCli, *args: str) -> Any:
    result = run_cli("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_draft_edit_generate_and_blame(run_cli: RunCli) -> None:
    draft = _json(run_cli, "draft", "new", "a  greeting script", "--context", "python", "--model", "offline")
    assert draft["name"].startswith("drafts/")
    assert (draft["prompt"], draft["edited"]) == ("A greeting script. Style: Python.", False)
    short_id = draft["name"].removeprefix("drafts/")
    edited = _json(run_cli, "draft", "edit", short_id, "A python script that greets.")
    assert (edited["prompt"], edited["drafted_prompt"], edited["edited"]) == (
        "A python script that greets.",
        draft["prompt"],
        True,
    )
    shown = run_cli("draft", "show", draft["name"])
    assert (
        shown.returncode == 0 and "A python script that greets." in shown.stdout and "edited" in shown.stdout
    )
    assert draft["name"] in [d["name"] for d in _json(run_cli, "draft", "list")]

    v1 = _json(run_cli, "generate", "--draft", short_id)
    assert (v1["state"], v1["prompt"], v1["draft"]) == (
        "COMPLETED",
        "A python script that greets.",
        draft["name"],
    )
    v2 = _json(run_cli, "iterate", v1["name"], 'add notes.txt with content "hi"')
    generation = v1["name"].rsplit("/versions/", 1)[0]
    blame = _json(run_cli, "blame", generation)  # a generation stands for its latest version
    assert blame["version"] == v2["name"]
    by_path = {b["path"]: (b["version"], b["kind"]) for b in blame["files"]}
    assert by_path.pop("notes.txt") == (v2["name"], "ITERATE")
    assert by_path and set(by_path.values()) == {(v1["name"], "GENERATE")}
    one = run_cli("blame", v2["name"], "notes.txt")
    assert (
        one.returncode == 0 and "notes.txt" in one.stdout and "v2" in one.stdout and "ITERATE" in one.stdout
    )


def test_draft_new_with_a_request_id_answers_the_first_draft_again(run_cli: RunCli) -> None:
    args = ("draft", "new", "a greeting script", "--model", "offline", "--request-id", "cli-draft-1")
    first = _json(run_cli, *args)
    assert _json(run_cli, *args) == first
    # Another text with the same request id is refused, with the reason.
    reused = run_cli("draft", "new", "a farewell script", "--model", "offline", "--request-id", "cli-draft-1")
    assert reused.returncode == 5 and "REQUEST_ID_REUSED" in reused.stderr, reused.stderr
    # Without one, each command drafts anew.
    assert _json(run_cli, *args[:-2])["name"] != _json(run_cli, *args[:-2])["name"]


def test_generate_needs_a_prompt_or_a_draft(run_cli: RunCli) -> None:
    result = run_cli("generate")
    assert result.returncode == 2 and "usage:" in result.stderr and "--draft" in result.stderr
    missing = run_cli("draft", "show", "0123abcd")
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_draft_delete(run_cli: RunCli) -> None:
    draft = _json(run_cli, "draft", "new", "never mind", "--model", "offline")
    deleted = run_cli("draft", "delete", draft["name"].removeprefix("drafts/"))
    assert deleted.returncode == 0 and f"Deleted {draft['name']}." in deleted.stdout
    assert draft["name"] not in [d["name"] for d in _json(run_cli, "draft", "list")]
    again = run_cli("draft", "delete", draft["name"])
    assert again.returncode != 0 and "not found" in again.stderr
