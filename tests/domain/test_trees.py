"""Applying change sets to trees, and three-way merges of trees: pure functions, every rule."""

from __future__ import annotations

import pytest

import storage
from server.domain import change_sets, trees
from server.files import FileContent
from server.providers._base import ChangeSet, ProviderError


def _entry(path: str, content: str) -> storage.TreeEntry:
    return storage.TreeEntry(path, storage.sha256_hex(content.encode()), len(content), "text/plain")


BASE = {p: _entry(p, p) for p in ("README.md", "src/a.py", "src/b.py", "docs/x.md")}


def test_untouched_files_are_carried_forward_as_the_same_entries() -> None:
    merged = change_sets.apply_changes(
        BASE, ChangeSet(upserts=[FileContent("src/c.py", "text/x-python", b"c")])
    )
    assert {e.path for e in merged.carried} == set(BASE)
    assert all(entry is BASE[entry.path] for entry in merged.carried)
    assert [f.path for f in merged.written] == ["src/c.py"]
    assert (merged.added, merged.modified, merged.deleted, merged.file_count) == (1, 0, 0, 5)


def test_deletions_renames_and_identical_rewrites() -> None:
    changes = ChangeSet(
        upserts=[FileContent("src/a.py", "text/plain", b"src/a.py"), FileContent("src/b.py", "", b"new")],
        deletions=["docs/x.md"],
        renames=[("README.md", "README.txt")],
    )
    merged = change_sets.apply_changes(BASE, changes)
    paths = {e.path for e in merged.carried} | {f.path for f in merged.written}
    assert paths == {"README.txt", "src/a.py", "src/b.py"}
    # Rewriting a file with its own contents is not a change; the rename counts as one of each.
    assert (merged.added, merged.modified, merged.deleted) == (1, 1, 2)
    assert [(f.path, f.mime_type) for f in merged.written] == [("src/b.py", "text/x-python")]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (ChangeSet(upserts=[FileContent("/etc/passwd", "", b"")]), "'/etc/passwd' is absolute"),
        (
            ChangeSet(upserts=[FileContent("../up.txt", "", b"")]),
            "'../up.txt' has an empty, '.' or '..' segment",
        ),
        (ChangeSet(upserts=[FileContent("a\\b.txt", "", b"")]), "backslash"),
        (ChangeSet(upserts=[FileContent("nul\x00.txt", "", b"")]), "NUL"),
        (ChangeSet(upserts=[FileContent("x" * 1100, "", b"")]), "longer than 1024 bytes"),
        (ChangeSet(upserts=[FileContent("n.txt", "", b"1"), FileContent("n.txt", "", b"2")]), "named twice"),
        (ChangeSet(upserts=[FileContent("readme.md", "", b"")]), "differ only in case"),
        (ChangeSet(upserts=[FileContent("src/a.py/inner.py", "", b"")]), "which is a file"),
        (ChangeSet(deletions=["nope.txt"]), "names no file"),
        (ChangeSet(renames=[("src/a.py", "src/b.py")]), "already exists"),
    ],
)
def test_invalid_changes_fail_and_name_the_offending_paths(changes: ChangeSet, fragment: str) -> None:
    with pytest.raises(ProviderError) as caught:
        change_sets.apply_changes(BASE, changes)
    assert caught.value.reason == "INVALID_CHANGES" and fragment in caught.value.message


def test_limits_on_one_file_and_on_the_tree() -> None:
    limits = change_sets.Limits(max_file_bytes=10, max_tree_bytes=40, max_tree_files=5)
    with pytest.raises(ProviderError) as caught:
        change_sets.apply_changes(BASE, ChangeSet(upserts=[FileContent("big.bin", "", b"x" * 11)]), limits)
    assert caught.value.reason == "FILE_TOO_LARGE" and "big.bin" in caught.value.message
    with pytest.raises(ProviderError) as caught:
        change_sets.apply_changes(
            BASE, ChangeSet(upserts=[FileContent(f"n{i}", "", b"x") for i in range(2)]), limits
        )
    assert caught.value.reason == "TREE_TOO_LARGE"


@pytest.mark.parametrize(
    ("prompt", "asks"),
    [
        ("delete the old docs", True),
        ("Remove tests", True),
        ("clean up the repo", True),
        ("add a schema", False),
    ],
)
def test_prompts_that_ask_for_deletion(prompt: str, asks: bool) -> None:
    assert change_sets.asks_for_deletion(prompt) is asks


def test_three_way_merge_rules() -> None:
    base = {
        "same": _entry("same", "0"),
        "ours": _entry("ours", "0"),
        "both": _entry("both", "0"),
        "del": _entry("del", "0"),
        "bothsame": _entry("bothsame", "0"),
    }
    ours = base | {
        "ours": _entry("ours", "1"),
        "both": _entry("both", "1"),
        "bothsame": _entry("bothsame", "9"),
        "new": _entry("new", "o"),
    }
    theirs = {k: v for k, v in base.items() if k != "del"} | {
        "both": _entry("both", "2"),
        "bothsame": _entry("bothsame", "9"),
        "new": _entry("new", "t"),
    }
    ours["del"] = _entry("del", "changed")
    merged, conflicts = trees.three_way(base, ours, theirs)
    assert {c.path: c.kind for c in conflicts} == {
        "both": trees.ConflictKind.BOTH_CHANGED,
        "del": trees.ConflictKind.CHANGED_AND_DELETED,
        "new": trees.ConflictKind.BOTH_ADDED,
    }
    assert (
        merged["ours"] == ours["ours"]
        and merged["bothsame"] == ours["bothsame"]
        and merged["same"] == base["same"]
    )
    resolved, _ = trees.three_way(base, ours, theirs, trees.Strategy.THEIRS)
    assert resolved["both"] == theirs["both"] and "del" not in resolved and resolved["new"] == theirs["new"]
    only_theirs_deleted = {k: v for k, v in base.items() if k != "same"}
    merged, conflicts = trees.three_way(base, base, only_theirs_deleted)
    assert "same" not in merged and not conflicts


def test_diff_and_unified_diff() -> None:
    target = {k: v for k, v in BASE.items() if k != "docs/x.md"} | {
        "src/a.py": _entry("src/a.py", "v2"),
        "n.md": _entry("n.md", "n"),
    }
    changes = trees.diff(BASE, target)
    assert [(c.path, c.change) for c in changes] == [
        ("docs/x.md", trees.Change.REMOVED),
        ("n.md", trees.Change.ADDED),
        ("src/a.py", trees.Change.MODIFIED),
    ]
    text = trees.unified_diff("a.txt", b"one\ntwo\n", b"one\nthree\n")
    assert "--- a/a.txt" in text and "-two" in text and "+three" in text
    assert trees.unified_diff("x.bin", b"\xff\xfe", b"ok") == ""
