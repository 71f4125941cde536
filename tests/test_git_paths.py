"""The server's path rule and the SDK's export refuse the same paths: those `git fsck` refuses
(a `.git` component however a file system may spell it), and those that leave the tree.

The two cannot share code (the SDK is installed without the server), so this pins them together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from atelier._files import destination, upload_files

from server.files import path_problem

# git's fsck refuses a tree entry that is `.git` to any file system git protects (fsck.c,
# `is_hfs_dotgit` and `is_ntfs_dotgit`): any case; on NTFS with trailing dots and spaces, or as
# the short name `git~1`; on HFS+ with code points it ignores (zero-width joiners, direction marks).
REFUSED = [
    ".git",
    ".git/config",
    ".GIT/config",
    ".Git/HEAD",
    "src/.git/hooks/pre-commit",
    "a/b/.git",
    ".git./config",
    ".git../config",
    ".git /config",
    ".git. . /x",
    "git~1/config",
    "GIT~1",
    "a/Git~1/x",
    ".g\u200cit/config",
    "\u200d.git/config",
    ".gi\ufefft",
    ".git\u200e",
    # and what leaves the tree
    "",
    "/etc/passwd",
    "../evil",
    "a/../../evil",
    "a//b",
    "./a",
    "a\\b",
    "a\x00b",
]
ACCEPTED = [
    ".gitignore",
    ".gitmodules",
    ".gitattributes",
    ".github/workflows/ci.yml",
    ".gitkeep",
    "git",
    "git/config",
    "a.git/x",
    "x.git",
    ".git2/x",
    "git~2",
    "git~1x",
    ".git-x",
    "..git",
    ".g.it",
    ".\u0131git",  # dotless i: HFS+ does not fold it to i
    "src/app.py",
]


@pytest.mark.parametrize("path", REFUSED)
def test_both_refuse(tmp_path: Path, path: str) -> None:
    assert path_problem(path) is not None
    with pytest.raises(ValueError, match="refusing"):
        destination(tmp_path, path)


@pytest.mark.parametrize("path", ACCEPTED)
def test_both_accept(tmp_path: Path, path: str) -> None:
    assert path_problem(path) is None
    assert destination(tmp_path, path) == tmp_path.resolve().joinpath(*path.split("/"))


def test_an_upload_from_a_directory_leaves_out_what_git_refuses(tmp_path: Path) -> None:
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    assert [path for path, _ in upload_files(tmp_path)] == [".gitignore", "src/app.py"]
