"""Blame from stored trees, whether they are stored as deltas or as snapshots, on both databases."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

import storage
from server.files import FileContent
from storage import _trees


@pytest.fixture
def db(database_url: str) -> Iterator[storage.Database]:
    database = storage.Database(database_url)
    database.migrate()
    yield database
    database.dispose()


class _Builder:
    """Versions made straight in storage: each is its parent's tree plus changes."""

    def __init__(self, db: storage.Database, files: Mapping[str, str]) -> None:
        self.db = db
        with db.write() as tx:
            self.generation, first = storage.create_generation(
                tx,
                owner="alice",
                prompt="v1",
                model="offline",
                provider="offline",
                request_id=None,
                request_fingerprint=None,
                kind=storage.VersionKind.UPLOAD,
                queue_job=False,
            )
            storage.write_tree(tx, version=first, entries=storage.store_files(tx, _contents(files)))
        self.numbers = {1: first}

    def change(
        self,
        parent: int,
        upserts: Mapping[str, str] = {},
        deletions: tuple[str, ...] = (),
        theirs: int | None = None,
    ) -> int:
        with self.db.write() as tx:
            parent_row = storage.get_version_by_id(tx, self.numbers[parent].id or 0)
            version = storage.create_version(
                tx,
                generation=self.generation,
                kind=storage.VersionKind.MERGE if theirs else storage.VersionKind.ITERATE,
                prompt=f"v{self.generation.version_count + 1}",
                model="offline",
                provider="offline",
                parent_number=parent,
                merge_parent_number=theirs,
                base_turn_id=None,
                turn=1,
                request_id=None,
                request_fingerprint=None,
                queue_job=False,
            )
            storage.write_changes(
                tx,
                version=version,
                parent=(parent_row, storage.read_tree(tx, version_id=parent_row.id or 0)),
                upserts=storage.store_files(tx, _contents(upserts)),
                deletions=deletions,
            )
        self.numbers[version.number] = version
        return version.number

    def blame(self, number: int) -> dict[str, int]:
        with self.db.read() as tx:
            row = storage.get_version_by_id(tx, self.numbers[number].id or 0)
            tree = storage.read_tree(tx, version_id=row.id or 0)
            found = storage.blame(tx, version=row, paths={p: e.blob_sha256 for p, e in tree.items()})
        return {path: version.number for path, version in found.items()}

    def is_snapshot(self, number: int) -> bool:
        with self.db.read() as tx:
            return storage.get_version_by_id(tx, self.numbers[number].id or 0).manifest_base_id is None


def _contents(files: Mapping[str, str]) -> list[FileContent]:
    return [FileContent(path, "text/plain", text.encode()) for path, text in files.items()]


def _history(db: storage.Database) -> _Builder:
    b = _Builder(db, {"a": "1", "b": "1", "c": "1", "d": "1"})
    b.change(1, {"a": "2"})  # v2
    b.change(2, {"b": "3"})  # v3
    b.change(2, {"c": "4"})  # v4
    b.change(3, {"a": "1"})  # v5: back to v1's contents, still a change
    b.change(5, {"c": "4", "e": "6"}, theirs=4)  # v6: a merge (c from theirs) adding a file of its own
    b.change(6, deletions=("d",))  # v7
    b.change(7, {"d": "1"})  # v8: d again, with v1's contents
    b.change(8, {"c": "4"})  # v9: writes the contents c already has: no change
    return b


EXPECTED = {"a": 5, "b": 3, "c": 4, "d": 8, "e": 6}


def test_blame_walks_deltas_and_merges(db: storage.Database) -> None:
    history = _history(db)
    assert not any(history.is_snapshot(n) for n in range(2, 10))
    assert history.blame(9) == EXPECTED
    assert history.blame(1) == dict.fromkeys("abcd", 1)


def test_blame_is_the_same_when_trees_are_snapshots(
    db: storage.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_trees, "MAX_DELTA_CHAIN", 1)  # a snapshot after each delta
    history = _history(db)
    assert [n for n in range(1, 10) if history.is_snapshot(n)] == [1, 3, 4, 6, 8]
    assert history.blame(9) == EXPECTED
