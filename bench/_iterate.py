"""Iterate: does the cost of a new version follow the change, or the size of the tree?

Two measurements, on SQLite:
- the storage commit of an iteration (new blobs, the manifest, the version's final event) for
  parent trees of 100, 1,000 and 10,000 files, changing 10 files each time, with the database
  growth per iteration; and a 1 MB tree iterated 100 times with one 1 KB change each time.
  The scaling targets are about this commit alone, which writes the change and not the tree
  (docs/STORAGE.md); building the model's context reads the parent's file list, and is linear
  in the parent by nature (docs/PERFORMANCE.md, "Iterate scaling");
- the same iterations end to end through the real server (Iterate + Progress to COMPLETED,
  with the scripted provider), for the record.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, file_pb2

import storage
from bench._servers import atelier_server
from server.files import FileContent
from support.databases import fresh_database

SIZES = (100, 1_000, 10_000)
CHANGED_FILES = 10
FILE_BYTES = 1_000
ITERATIONS = 25


@dataclass(frozen=True, slots=True)
class TreeSize:
    files: int
    commit_ms: float
    growth_bytes_per_iteration: float
    changed_bytes_per_iteration: int
    end_to_end_ms: float | None


@dataclass(frozen=True, slots=True)
class IterateStats:
    sizes: tuple[TreeSize, ...]
    # A 1 MB tree iterated 100 times, one 1 KB change each time.
    small_change_growth_bytes: int


def _content(index: int, salt: str = "") -> bytes:
    head = f"# file {index} {salt}\n".encode()
    return head + b"x" * (FILE_BYTES - len(head))


def _db_bytes(db: storage.Database) -> int:
    """The SQLite file's size once the WAL is folded into it."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
        free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
    return int((pages - free) * size)


def _first_version(db: storage.Database, files: int) -> storage.Version:
    with db.write() as tx:
        _, version = storage.create_generation(
            tx,
            owner="bench",
            prompt="bench tree",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
            kind=storage.VersionKind.UPLOAD,
            queue_job=False,
        )
        entries = storage.store_files(
            tx, [FileContent(f"src/f{i:05}.py", "text/x-python", _content(i)) for i in range(files)]
        )
        storage.write_tree(tx, version=version, entries=entries)
    return version


def _iterate_once(
    db: storage.Database, parent: storage.Version, changes: dict[str, bytes]
) -> tuple[storage.Version, float]:
    """One iteration: the parent's tree is read first (the context), then the commit is timed."""
    assert parent.id is not None
    with db.read() as tx:
        base = storage.read_tree(tx, version_id=parent.id)
        parent_row = storage.get_version_by_id(tx, parent.id)
    started = time.perf_counter()
    with db.write() as tx:
        generation = storage.get_generation(tx, owner="bench", generation_id=parent.generation_id)
        assert generation is not None
        version = storage.create_version(
            tx,
            generation=generation,
            kind=storage.VersionKind.ITERATE,
            prompt="change some files",
            model="offline",
            provider="offline",
            parent_number=parent.number,
            base_turn_id=None,
            turn=1,
            request_id=None,
            request_fingerprint=None,
            queue_job=False,
        )
        written = storage.store_files(
            tx, [FileContent(path, "text/x-python", data) for path, data in changes.items()]
        )
        storage.write_changes(tx, version=version, parent=(parent_row, base), upserts=written, deletions=())
        storage.append_event(
            tx, version=version, type=storage.EventType.STATE, state=storage.VersionState.COMPLETED
        )
    return version, (time.perf_counter() - started) * 1000


def _storage_commits(workdir: Path) -> dict[int, tuple[float, float]]:
    """The median commit time and the database growth per iteration, for each tree size.

    The sizes take turns, one iteration each, so that whatever else the machine does during the
    measurement weighs on all of them alike: their ratio is the figure that matters.
    """
    with contextlib.ExitStack() as stack:
        dbs: dict[int, storage.Database] = {}
        versions: dict[int, storage.Version] = {}
        for files in SIZES:
            directory = workdir / f"tree-{files}"
            directory.mkdir()
            db = storage.Database(stack.enter_context(fresh_database("sqlite", directory)))
            stack.callback(db.dispose)
            db.migrate()
            version = _first_version(db, files)
            dbs[files] = db
            # A first iteration warms the caches and prepared statements.
            versions[files], _ = _iterate_once(db, version, {"warm-up.txt": b"warm"})
        before = {files: _db_bytes(db) for files, db in dbs.items()}
        times: dict[int, list[float]] = {files: [] for files in SIZES}
        for step in range(ITERATIONS):
            for files, db in dbs.items():
                changes = {
                    f"src/f{(step * CHANGED_FILES + k) % files:05}.py": _content(k, f"v{step}")
                    for k in range(CHANGED_FILES)
                }
                versions[files], elapsed = _iterate_once(db, versions[files], changes)
                times[files].append(elapsed)
        return {
            files: (statistics.median(times[files]), (_db_bytes(db) - before[files]) / ITERATIONS)
            for files, db in dbs.items()
        }


def _small_changes(workdir: Path) -> int:
    with fresh_database("sqlite", workdir) as url:
        db = storage.Database(url)
        db.migrate()
        version = _first_version(db, 1_000)  # 1,000 files of 1 KB: a 1 MB tree
        before = _db_bytes(db)
        for step in range(100):
            version, _ = _iterate_once(db, version, {f"src/f{step:05}.py": _content(step, f"v{step}")})
        growth = _db_bytes(db) - before
        db.dispose()
    return growth


def _upload(stub: atelier_service_pb2_grpc.AtelierServiceStub, files: int) -> str:
    def messages() -> Iterator[pb.UploadTreeRequest]:
        yield pb.UploadTreeRequest(description=f"bench tree of {files} files")
        for index in range(files):
            yield pb.UploadTreeRequest(file=file_pb2.File(path=f"src/f{index:05}.py"), data=_content(index))

    name: str = stub.UploadTree(messages(), timeout=300).name
    return name


def _end_to_end(workdir: Path) -> dict[int, float]:
    medians: dict[int, float] = {}
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    with (
        atelier_server("sqlite", workdir, label="iterate", env={"ATELIER_PROVIDER": "scripted"}) as server,
        grpc.insecure_channel(server.target, options=options) as channel,
    ):
        stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        for files in SIZES:
            parent = _upload(stub, files)
            times = []
            for step in range(5):
                script = {"files": {f"src/f{k:05}.py": f"changed {step} {k}\n" for k in range(CHANGED_FILES)}}
                started = time.perf_counter()
                version = stub.Iterate(
                    pb.IterateRequest(parent=parent, prompt=json.dumps(script)), timeout=60
                )
                for _ in stub.Progress(pb.ProgressRequest(name=version.name), timeout=300):
                    pass
                times.append((time.perf_counter() - started) * 1000)
                parent = version.name
            medians[files] = statistics.median(times)
    return medians


def measure_iterate(workdir: Path, *, say: Callable[[str], None], end_to_end: bool = True) -> IterateStats:
    sizes = []
    say("iterate: end to end through the server (scripted provider)")
    through_server = _end_to_end(workdir) if end_to_end else {}
    say(f"iterate: storage commits on trees of {', '.join(f'{files:,}' for files in SIZES)} files, in turns")
    commits = _storage_commits(workdir)
    for files in SIZES:
        commit_ms, growth = commits[files]
        sizes.append(
            TreeSize(
                files=files,
                commit_ms=commit_ms,
                growth_bytes_per_iteration=growth,
                changed_bytes_per_iteration=CHANGED_FILES * FILE_BYTES,
                end_to_end_ms=through_server.get(files),
            )
        )
    say("iterate: a 1 MB tree, 100 iterations of one 1 KB change")
    (workdir / "small-changes").mkdir()
    return IterateStats(
        sizes=tuple(sizes), small_change_growth_bytes=_small_changes(workdir / "small-changes")
    )


def growth_limit(size: TreeSize) -> float:
    """The target: at most 2x the changed bytes plus 1 KiB per changed path."""
    return 2 * size.changed_bytes_per_iteration + 1024 * CHANGED_FILES


_SCALING_CEILING = 2.0
_SMALL_CHANGES_CEILING = 1_000_000
_SCALING_TITLE = "Iterate commit time, largest tree / smallest"
_SMALL_CHANGES_TITLE = "Iterate database growth, 1 MB tree and 100 small changes"


def _growth_title(size: TreeSize) -> str:
    return f"Iterate growth per iteration at {size.files:,} files"


def commit_scaling(stats: IterateStats) -> float:
    """The commit time at the largest tree over the one at the smallest."""
    smallest, largest = stats.sizes[0], stats.sizes[-1]
    return largest.commit_ms / smallest.commit_ms if smallest.commit_ms else float("inf")


def iterate_verdicts(stats: IterateStats) -> list[tuple[str, bool]]:
    """Each Iterate target, named, with whether it is met."""
    verdicts = [
        (
            f"Iterate growth per iteration at {size.files:,} files",
            size.growth_bytes_per_iteration <= growth_limit(size),
        )
        for size in stats.sizes
    ]
    verdicts.append((_SCALING_TITLE, commit_scaling(stats) <= _SCALING_CEILING))
    verdicts.append(
        (
            _SMALL_CHANGES_TITLE,
            stats.small_change_growth_bytes < _SMALL_CHANGES_CEILING,
        )
    )
    return verdicts


def render_iterate(stats: IterateStats) -> str:
    smallest, largest = stats.sizes[0], stats.sizes[-1]
    ok = dict(iterate_verdicts(stats))

    def verdict(title: str) -> str:
        return "PASS" if ok[title] else "FAIL"

    lines = [
        "",
        f"  Iterate ({CHANGED_FILES} files of {FILE_BYTES} B changed per iteration; SQLite)",
        "  tree files    commit ms   growth/iteration   limit   result   end to end ms",
    ]
    for size in stats.sizes:
        e2e = f"{size.end_to_end_ms:13.1f}" if size.end_to_end_ms is not None else "            -"
        lines.append(
            f"  {size.files:10,} {size.commit_ms:12.2f} {size.growth_bytes_per_iteration:14,.0f} B"
            f" {growth_limit(size):9,.0f}   {verdict(_growth_title(size)):6} {e2e}"
        )
    scaling = commit_scaling(stats)
    lines.append(
        f"  commit time at {largest.files:,} files / at {smallest.files:,} files: {scaling:.2f}x"
        f"  (target <= 2x)  {verdict(_SCALING_TITLE)}"
    )
    small = stats.small_change_growth_bytes
    lines.append(
        f"  1 MB tree, 100 iterations of one 1 KB change: database grew {small:,} B"
        f"  (target < 1,000,000 B)  {verdict(_SMALL_CHANGES_TITLE)}"
    )
    return "\n".join(lines)


def iterate_json(stats: IterateStats) -> dict[str, object]:
    return {
        "sizes": [
            {
                "files": size.files,
                "commit_ms": size.commit_ms,
                "growth_bytes_per_iteration": size.growth_bytes_per_iteration,
                "growth_limit_bytes": growth_limit(size),
                "end_to_end_ms": size.end_to_end_ms,
            }
            for size in stats.sizes
        ],
        "small_change_growth_bytes": stats.small_change_growth_bytes,
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(render_iterate(measure_iterate(Path(tmp), say=lambda text: print(f"bench: {text}"))))
