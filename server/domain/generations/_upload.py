"""An upload as it streams in: each file's bytes go to storage part by part as they arrive, and
the first byte over a limit refuses the upload, so no process ever holds a whole big file.

A file of up to `PART_BYTES` is kept whole until the version is made (small files are stored
in batches as they add up); a bigger one is stored as parts of `PART_BYTES`, each in its own
transaction, then put together by reference (`storage.put_parted_blob`). What a refused or
abandoned upload stored is referred to by nothing: the garbage collector removes it once its
grace period is over (storage/_blobs.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import storage
from server.domain import _transactions as transactions
from server.domain import change_sets
from server.domain.errors import FieldViolation, InvalidArgument
from server.files import content_problem, guess_mime_type, path_problem
from server.providers import ChangeSet, ProviderError

PART_BYTES = 4 * 1024 * 1024
# What a file's first bytes must show: its type's signature, or whether it is text (a guessed type).
_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class _Incoming:
    path: str
    mime_type: str
    size: int = 0
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    head: bytearray = field(default_factory=bytearray)
    checked: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    parts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Parted:
    sha256: str
    size: int
    parts: tuple[str, ...]


class Upload:
    """The files of one upload, received in order: `start_file`, then its bytes with `write`."""

    def __init__(self, db: storage.Database, limits: change_sets.Limits) -> None:
        self._db = db
        self._limits = limits
        self._entries: dict[str, storage.TreeEntry] = {}
        self._current: _Incoming | None = None
        self._total = 0
        # Small files' contents not yet stored, and big files' parts to put together.
        self._small: list[bytes] = []
        self._small_bytes = 0
        self._parted: list[Parted] = []

    async def start_file(self, path: str, mime_type: str) -> None:
        """The next file. An empty MIME type is guessed from the path (and the first bytes)."""
        await self._end_file()
        problem = path_problem(path)
        if problem is None and path in self._entries:
            problem = "is named twice in one upload"
        if problem is not None:
            raise InvalidArgument(
                f"the upload cannot hold file {path!r}: it {problem}",
                reason="INVALID_CHANGES",
                violations=[FieldViolation("file", f"{path!r} {problem}")],
            )
        if len(self._entries) + 1 > self._limits.max_tree_files:
            raise _too_large(
                f"the upload is over the limit of {self._limits.max_tree_files} files", "TREE_TOO_LARGE"
            )
        self._current = _Incoming(path, mime_type)

    async def write(self, data: bytes) -> None:
        """More bytes of the current file; refused at once if they take it or the upload over a limit."""
        incoming = self._current
        if incoming is None:
            raise InvalidArgument(
                "data arrived before any file was started",
                reason="UPLOAD_DATA_WITHOUT_FILE",
                violations=[FieldViolation("file", "must be set before the file's data")],
            )
        incoming.size += len(data)
        self._total += len(data)
        if incoming.size > self._limits.max_file_bytes:
            raise _too_large(
                f"file {incoming.path!r} is over the limit of {self._limits.max_file_bytes} bytes",
                "FILE_TOO_LARGE",
            )
        if self._total > self._limits.max_tree_bytes:
            raise _too_large(
                f"the upload is over the limit of {self._limits.max_tree_bytes} bytes", "TREE_TOO_LARGE"
            )
        incoming.hasher.update(data)
        if len(incoming.head) < _HEAD_BYTES:
            incoming.head += data[: _HEAD_BYTES - len(incoming.head)]
            if len(incoming.head) == _HEAD_BYTES:
                _check_content(incoming)
        incoming.buffer += data
        # Strictly over: a file of exactly one part's size stays whole.
        while len(incoming.buffer) > PART_BYTES:
            part = bytes(incoming.buffer[:PART_BYTES])
            del incoming.buffer[:PART_BYTES]
            incoming.parts.append(await self._store([part]))

    async def finish(self) -> tuple[list[storage.TreeEntry], list[bytes], list[Parted]]:
        """The tree's entries, once every file has ended and the tree passes its checks, with the
        contents still to be stored in the transaction that refers to them."""
        await self._end_file()
        if not self._entries:
            raise InvalidArgument(
                "the upload holds no files",
                reason="EMPTY_UPLOAD",
                violations=[FieldViolation("file", "send one")],
            )
        try:
            # Case clashes, files inside files, and the tree's limits, as for any new tree.
            change_sets.apply_changes(self._entries, ChangeSet(), self._limits)
        except ProviderError as exc:
            raise InvalidArgument(
                exc.message, reason=exc.reason, violations=[FieldViolation("file", exc.message)]
            ) from exc
        return list(self._entries.values()), self._small, self._parted

    async def _end_file(self) -> None:
        incoming, self._current = self._current, None
        if incoming is None:
            return
        if not incoming.checked:
            _check_content(incoming)
        sha256 = incoming.hasher.hexdigest()
        if incoming.parts:
            if incoming.buffer:
                incoming.parts.append(await self._store([bytes(incoming.buffer)]))
            self._parted.append(Parted(sha256, incoming.size, tuple(incoming.parts)))
        else:
            self._small.append(bytes(incoming.buffer))
            self._small_bytes += incoming.size
            if self._small_bytes > PART_BYTES:
                await self._store(self._small)
                self._small, self._small_bytes = [], 0
        mime_type = incoming.mime_type or guess_mime_type(incoming.path, bytes(incoming.head))
        self._entries[incoming.path] = storage.TreeEntry(incoming.path, sha256, incoming.size, mime_type)

    async def _store(self, contents: list[bytes]) -> str:
        """Stores contents in a transaction of their own (the collector's grace period keeps them
        until the version refers to them); returns the last one's SHA-256."""
        hashes = await transactions.write(self._db, lambda tx: storage.put_blobs(tx, contents))
        return hashes[-1]


def _check_content(incoming: _Incoming) -> None:
    """A declared type is a claim to check against the file's first bytes; a guessed one is not."""
    incoming.checked = True
    if not incoming.mime_type:
        return
    problem = content_problem(incoming.mime_type, bytes(incoming.head))
    if problem is not None:
        raise InvalidArgument(
            f"{incoming.path!r} {problem}",
            reason="CONTENT_TYPE_MISMATCH",
            violations=[FieldViolation("file", f"{incoming.path!r} {problem}")],
        )


def _too_large(message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason, violations=[FieldViolation("data", message)])
