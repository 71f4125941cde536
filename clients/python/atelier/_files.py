"""Files on the caller's disk: uploads from a directory, and exports that stay inside theirs."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import grpc

from atelier import _errors as errors
from atelier.v1 import atelier_service_pb2, file_pb2

# A path component git refuses, as the server's path rule does (server/files.py, where the rule is
# explained; tests/test_git_paths.py pins the two together): `.git` to NTFS or to HFS+.
_NTFS_DOT_GIT = re.compile(r"(?:\.git|git~1)[. ]*", re.IGNORECASE | re.ASCII)
_HFS_DOT_GIT = re.compile(r"\.git", re.IGNORECASE | re.ASCII)
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def _is_dot_git(name: str) -> bool:
    """Whether a file name is `.git` to some file system (git refuses such a name in a tree)."""
    return bool(_NTFS_DOT_GIT.fullmatch(name) or _HFS_DOT_GIT.fullmatch(name.translate(_HFS_IGNORED)))


def destination(root: Path, path: str) -> Path:
    """Where a tree's `path` goes under `root`; raises ValueError for a path that would land outside
    it (absolute, `..`, a drive, a backslash trick, or through a symlink that points out), or inside
    a `.git` directory."""
    pure = PurePosixPath(path)
    parts = path.split("/")
    if (
        not path
        or "\\" in path
        or "\x00" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in parts)
        or (os.name == "nt" and ":" in path)
    ):
        raise ValueError(f"refusing to write {path!r}: it is not a plain relative path")
    if any(_is_dot_git(part) for part in parts):
        raise ValueError(f"refusing to write {path!r}: git refuses a .git segment")
    base = root.resolve()
    target = base.joinpath(*pure.parts)
    resolved = target.resolve()
    if resolved != target or not resolved.is_relative_to(base):
        raise ValueError(f"refusing to write {path!r}: it would land outside {root}")
    return target


def upload_files(source: str | os.PathLike[str] | Mapping[str, bytes | str]) -> list[tuple[str, bytes]]:
    """The (path, bytes) pairs of an upload: a mapping as given (text is UTF-8), or every regular
    file under a directory, by relative `/`-separated path, in path order. Symlinks are skipped, and
    so is any `.git` (git's own files, which the server refuses as git does)."""
    if isinstance(source, Mapping):
        return [
            (path, data.encode("utf-8") if isinstance(data, str) else bytes(data))
            for path, data in sorted(source.items())
        ]
    root = Path(source)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    files: list[tuple[str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not _is_dot_git(name))
        for filename in sorted(name for name in filenames if not _is_dot_git(name)):
            full = Path(dirpath, filename)
            if full.is_symlink() or not full.is_file():
                continue
            files.append((full.relative_to(root).as_posix(), full.read_bytes()))
    return sorted(files)


class TreeWriter:
    """Writes an ExportTree stream to disk under `root`, checking every path and every file's SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[Path] = []
        self._file: file_pb2.File | None = None
        self._target: Path | None = None
        self._handle: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._size = 0

    def feed(self, response: atelier_service_pb2.ExportTreeResponse) -> None:
        if response.HasField("file"):
            self._finish()
            self._start(response.file)
        if self._handle is None:
            raise ValueError("the export stream sent data before naming its file")
        if response.offset != self._size:
            raise ValueError(f"the export of {self._file.path if self._file else '?'} skipped bytes")
        self._handle.write(response.data)
        self._hash.update(response.data)
        self._size += len(response.data)

    def close(self) -> list[Path]:
        """Finishes the last file; returns every path written, in the stream's order."""
        self._finish()
        return list(self.written)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _start(self, file: file_pb2.File) -> None:
        target = destination(self.root, file.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Checked again after mkdir: a directory made meanwhile could be a symlink pointing out.
        target = destination(self.root, file.path)
        self._file, self._target = file, target
        self._handle = target.open("wb")
        self._hash = hashlib.sha256()
        self._size = 0

    def _finish(self) -> None:
        if self._handle is None or self._file is None or self._target is None:
            return
        self._handle.close()
        self._handle = None
        file = self._file
        if self._size != file.size or (file.sha256 and self._hash.hexdigest() != file.sha256):
            raise errors.sdk_error(
                errors.AtelierError,
                f"{file.path} arrived damaged: {self._size} bytes with a different SHA-256 than listed",
                reason="CHECKSUM_MISMATCH",
                code=grpc.StatusCode.DATA_LOSS,
                path=file.path,
            )
        self.written.append(self._target)
