"""Blame: its time per call on a 10,000-file tree after 100 versions, and that it follows the history,
not the bytes.

Two histories of the same shape are written straight into storage (as _iterate does): version 1 an
upload of 10,000 files, then 99 versions that each change 10 files (iterations, with a side branch
merged back every 10 versions). They differ only in the size of every file: 100 B, or 4 KB (40
times the bytes). A real server then answers Blame on the last version through gRPC: the whole tree
in pages of 1,000 files, and one file at a time. The per-call time on the 4 KB history over the one on
the 100 B history is the scaling figure (about 1: bytes are never read); ListFiles of the same pages
is shown as the floor a listing costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc

import storage
from bench._servers import atelier_server
from bench._targets import Target, Verdict, judge
from server.files import FileContent

FILES = 10_000
VERSIONS = 100
CHANGED_FILES = 10
PAGE = 1_000
SIZES = (100, 4_000)
PASSES = 3
SINGLE_CALLS = 20
OWNER = "local"  # the principal of a server with no credentials configured

BYTES_TARGET = Target("blame.bytes_ratio", "Blame per page, 4 KB files / 100 B files", ceiling=1.5)
PAGE_TARGET = Target("blame.page_ms", "Blame of 1,000 files after 100 versions, ms per call", ceiling=500)


@dataclass(frozen=True, slots=True)
class BlameRun:
    file_bytes: int
    tree_bytes: int
    build_seconds: float
    # Median ms per call: a page of 1,000 files of Blame, of ListFiles, and Blame of one file.
    page_ms: float
    list_page_ms: float
    one_file_ms: float
    # The whole tree's blame, all 10 pages, in ms (the median pass).
    whole_ms: float
    # How many files the last version's blame names each version for, by kind: a check.
    blamed_to_upload: int


@dataclass(frozen=True, slots=True)
class BlameStats:
    runs: tuple[BlameRun, ...]

    @property
    def bytes_ratio(self) -> float:
        small, large = self.runs[0], self.runs[-1]
        return large.page_ms / small.page_ms if small.page_ms else float("inf")


def _content(index: int, size: int, salt: str = "") -> bytes:
    head = f"# file {index} {salt}\n".encode()
    return head + b"x" * max(0, size - len(head))


def _path(index: int) -> str:
    return f"src/f{index % FILES:05}.py"


class _History:
    """Versions written straight to storage, each from its parent's tree held in memory."""

    def __init__(self, db: storage.Database, file_bytes: int) -> None:
        self.db = db
        self.file_bytes = file_bytes
        self.step = 0
        self.changed: set[str] = set()
        with db.write() as tx:
            self.generation, first = storage.create_generation(
                tx,
                owner=OWNER,
                prompt="a 10,000-file tree",
                model="offline",
                provider="offline",
                request_id=None,
                request_fingerprint=None,
                kind=storage.VersionKind.UPLOAD,
                queue_job=False,
            )
            entries = storage.store_files(
                tx, [FileContent(_path(i), "text/x-python", _content(i, file_bytes)) for i in range(FILES)]
            )
            storage.write_tree(tx, version=first, entries=entries)
            _complete(tx, first)
        self.tree = {entry.path: entry for entry in entries}

    def iterate(
        self, parent: tuple[storage.Version, dict[str, storage.TreeEntry]]
    ) -> tuple[storage.Version, dict[str, storage.TreeEntry]]:
        self.step += 1
        changes = {
            _path(self.step * CHANGED_FILES + k): _content(k, self.file_bytes, f"v{self.step}")
            for k in range(CHANGED_FILES)
        }
        self.changed |= changes.keys()
        return self._write(parent, storage.VersionKind.ITERATE, None, changes)

    def merge(
        self,
        ours: tuple[storage.Version, dict[str, storage.TreeEntry]],
        theirs: tuple[storage.Version, dict[str, storage.TreeEntry]],
        base: dict[str, storage.TreeEntry],
    ) -> tuple[storage.Version, dict[str, storage.TreeEntry]]:
        # The branches change different files: the merge takes theirs' changes (against their
        # common base) onto ours.
        taken = {p: e for p, e in theirs[1].items() if base.get(p) != e}
        return self._write(ours, storage.VersionKind.MERGE, theirs[0].number, taken)

    def _write(
        self,
        parent: tuple[storage.Version, dict[str, storage.TreeEntry]],
        kind: storage.VersionKind,
        merge_parent: int | None,
        changes: dict[str, bytes] | dict[str, storage.TreeEntry],
    ) -> tuple[storage.Version, dict[str, storage.TreeEntry]]:
        with self.db.write() as tx:
            version = storage.create_version(
                tx,
                generation=self.generation,
                kind=kind,
                prompt=f"{kind.lower()} {self.step}",
                model="offline",
                provider="offline",
                parent_number=parent[0].number,
                merge_parent_number=merge_parent,
                base_turn_id=None,
                turn=1,
                request_id=None,
                request_fingerprint=None,
                queue_job=False,
            )
            upserts = [
                value
                if isinstance(value, storage.TreeEntry)
                else storage.store_files(tx, [FileContent(path, "text/x-python", value)])[0]
                for path, value in changes.items()
            ]
            storage.write_changes(tx, version=version, parent=parent, upserts=upserts, deletions=())
            _complete(tx, version)
        tree = dict(parent[1])
        tree.update((entry.path, entry) for entry in upserts)
        return version, tree


def _complete(tx: storage.Transaction, version: storage.Version) -> None:
    storage.append_event(
        tx, version=version, type=storage.EventType.STATE, state=storage.VersionState.COMPLETED
    )


def build_history(database_url: str, file_bytes: int) -> tuple[str, int]:
    """Writes the history; returns the last version's name and how many files it changed after v1."""
    db = storage.Database(database_url)
    db.migrate()
    history = _History(db, file_bytes)
    with db.read() as tx:
        first = storage.get_version(tx, owner=OWNER, generation_id=history.generation.id, number=1)
    assert first is not None
    main = (first, history.tree)
    while main[0].number < VERSIONS:
        if main[0].number % 10 == 7 and main[0].number + 3 <= VERSIONS:
            side = history.iterate(main)
            main = history.merge(history.iterate(main), side, main[1])
        else:
            main = history.iterate(main)
    db.dispose()
    name = f"generations/{history.generation.id}/versions/{main[0].number}"
    return name, len(history.changed)


def _median_ms(call: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _measure(
    stub: atelier_service_pb2_grpc.AtelierServiceStub, name: str
) -> tuple[float, float, float, float, int]:
    page_times: list[float] = []
    whole_times: list[float] = []
    blamed_to_upload = 0
    for _ in range(PASSES):
        request = pb.BlameRequest(name=name, page_size=PAGE)
        started = time.perf_counter()
        blamed_to_upload = 0
        while True:
            call_started = time.perf_counter()
            response = stub.Blame(request, timeout=120)
            page_times.append((time.perf_counter() - call_started) * 1000)
            blamed_to_upload += sum(1 for b in response.files if b.version.endswith("/versions/1"))
            if not response.next_page_token:
                break
            request.page_token = response.next_page_token
        whole_times.append((time.perf_counter() - started) * 1000)
    list_ms = _median_ms(
        lambda: stub.ListFiles(pb.ListFilesRequest(parent=name, page_size=PAGE), timeout=120), 10
    )
    one_ms = _median_ms(
        lambda: stub.Blame(pb.BlameRequest(name=name, path=_path(FILES - 1)), timeout=120), SINGLE_CALLS
    )
    return statistics.median(page_times), list_ms, one_ms, statistics.median(whole_times), blamed_to_upload


def measure_blame(workdir: Path, *, say: Callable[[str], None]) -> BlameStats:
    runs = []
    for file_bytes in SIZES:
        say(f"blame: {VERSIONS} versions of a {FILES:,}-file tree of {file_bytes:,} B files (SQLite)")
        built: dict[str, object] = {}

        def prepare(url: str, file_bytes: int = file_bytes, built: dict[str, object] = built) -> None:
            started = time.perf_counter()
            built["name"], built["changed"] = build_history(url, file_bytes)
            built["seconds"] = time.perf_counter() - started

        with (
            atelier_server("sqlite", workdir, label=f"blame-{file_bytes}", prepare=prepare) as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
            name = str(built["name"])
            page_ms, list_ms, one_ms, whole_ms, to_upload = _measure(stub, name)
        changed = int(str(built["changed"]))
        if to_upload != FILES - changed:
            raise RuntimeError(f"blame named v1 for {to_upload} files; {FILES - changed} were never changed")
        runs.append(
            BlameRun(
                file_bytes=file_bytes,
                tree_bytes=FILES * file_bytes,
                build_seconds=float(str(built["seconds"])),
                page_ms=page_ms,
                list_page_ms=list_ms,
                one_file_ms=one_ms,
                whole_ms=whole_ms,
                blamed_to_upload=to_upload,
            )
        )
    return BlameStats(runs=tuple(runs))


def blame_verdicts(stats: BlameStats) -> list[Verdict]:
    return [
        judge(PAGE_TARGET, max(run.page_ms for run in stats.runs)),
        judge(BYTES_TARGET, stats.bytes_ratio),
    ]


def render_blame(stats: BlameStats) -> list[str]:
    lines = [
        f"  Blame of the last of {VERSIONS} versions (10 files changed per version, a merge every 10),"
        f" {FILES:,} files, through the server (SQLite)",
        f"  {'file size':>10} {'tree':>8} {'page of 1,000 ms':>17} {'ListFiles page ms':>18}"
        f" {'one file ms':>12} {'whole tree ms':>14}",
    ]
    for run in stats.runs:
        lines.append(
            f"  {run.file_bytes:>8,} B {run.tree_bytes / 1e6:>6.0f} MB {run.page_ms:>17.1f}"
            f" {run.list_page_ms:>18.1f} {run.one_file_ms:>12.1f} {run.whole_ms:>14.1f}"
        )
    for target, value, ok in blame_verdicts(stats):
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"  {target.title}: {shown} (target {target.bound})  {'PASS' if ok else 'FAIL'}")
    return lines


def blame_json(stats: BlameStats) -> dict[str, object]:
    return {
        "runs": [
            {
                "file_bytes": run.file_bytes,
                "tree_bytes": run.tree_bytes,
                "page_ms": run.page_ms,
                "list_page_ms": run.list_page_ms,
                "one_file_ms": run.one_file_ms,
                "whole_ms": run.whole_ms,
                "build_seconds": run.build_seconds,
            }
            for run in stats.runs
        ],
        "bytes_ratio": stats.bytes_ratio,
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stats = measure_blame(Path(tmp), say=lambda text: print(f"bench: {text}"))
        print("\n".join(render_blame(stats)))
