"""Soft delete, purge and the blob collector, against real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

import storage
from server.files import FileContent

_OLD = timedelta(days=1)


@pytest.fixture
def db(database_url: str) -> Iterator[storage.Database]:
    database = storage.Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _upload(
    db: storage.Database, files: dict[str, bytes], *, owner: str = "alice", attachment: bytes | None = None
) -> storage.Version:
    """A generation whose version 1 is COMPLETED with `files` (and a conversation turn that refers
    to `attachment`, if given), as an upload would make it."""
    with db.write() as tx:
        _, version = storage.create_generation(
            tx,
            owner=owner,
            prompt="files",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
            attachments=[FileContent("in.bin", "application/octet-stream", attachment)] if attachment else (),
            kind=storage.VersionKind.UPLOAD,
            queue_job=False,
        )
        entries = storage.store_files(tx, [FileContent(p, "text/plain", d) for p, d in files.items()])
        storage.write_tree(tx, version=version, entries=entries)
        if attachment is not None:
            conversation = storage.get_conversation(tx, owner=owner, generation_id=version.generation_id)
            assert conversation is not None
            digest = storage.put_blobs(tx, [attachment])[0]
            storage.record_exchange(
                tx,
                version=version,
                session_id=conversation.id,
                turns=[storage.NewTurn("user", [{"blob": digest, "mime_type": "application/octet-stream"}])],
            )
        storage.append_event(
            tx, version=version, type=storage.EventType.STATE, state=storage.VersionState.COMPLETED
        )
    return version


def _collect(db: storage.Database, *, created_before: datetime | None = None) -> int:
    """One full blob collection; returns how many blobs it deleted."""
    cutoff = created_before or storage.utcnow() + timedelta(seconds=1)
    deleted, after = 0, ""
    while True:
        with db.read() as tx:
            scan = storage.scan_blobs(tx, after=after, limit=3)
        with db.write() as tx:
            deleted += storage.delete_unused_blobs(tx, scan.unused, created_before=cutoff)
        if scan.last is None:
            return deleted
        after = scan.last


def _blobs(db: storage.Database) -> set[str]:
    with db.read() as tx:
        return set(tx.execute(sa.text("SELECT sha256 FROM blob")).scalars())


def _count(db: storage.Database, table: str, generation_id: str) -> int:
    queries = {
        "generation": "SELECT count(*) FROM generation WHERE id = :g",
        "version": "SELECT count(*) FROM version WHERE generation_id = :g",
        "session": "SELECT count(*) FROM session WHERE generation_id = :g",
        "event": "SELECT count(*) FROM event JOIN version ON version.id = event.version_id"
        " WHERE version.generation_id = :g",
        "manifest_entry": "SELECT count(*) FROM manifest_entry JOIN version"
        " ON version.id = manifest_entry.version_id WHERE version.generation_id = :g",
        "turn": "SELECT count(*) FROM turn JOIN session ON session.id = turn.session_id"
        " WHERE session.generation_id = :g",
    }
    with db.engine.connect() as connection:
        return int(connection.execute(sa.text(queries[table]), {"g": generation_id}).scalar_one())


def test_a_deleted_generation_is_hidden_until_undeleted(db: storage.Database) -> None:
    version = _upload(db, {"a.txt": b"a"})
    gid = version.generation_id
    now = storage.utcnow()
    with db.write() as tx:
        deleted = storage.delete_generation(tx, generation_id=gid, now=now, expire_time=now + _OLD)
        assert deleted is not None and deleted.delete_time is not None and deleted.expire_time is not None
        assert storage.delete_generation(tx, generation_id=gid, now=now, expire_time=now) is None
    with db.read() as tx:
        assert storage.get_generation(tx, owner="alice", generation_id=gid) is None
        assert storage.get_version(tx, owner="alice", generation_id=gid, number=1) is None
        assert storage.get_conversation(tx, owner="alice", generation_id=gid) is None
        assert storage.list_generations(tx, owner="alice", before_id=None, limit=10) == []
        listed = storage.list_generations(tx, owner="alice", before_id=None, limit=10, show_deleted=True)
        assert [g.id for g in listed] == [gid]
        assert storage.get_deleted_generation(tx, owner="bob", generation_id=gid) is None
    with db.write() as tx:
        assert storage.undelete_generation(tx, owner="bob", generation_id=gid, now=now) is None
        restored = storage.undelete_generation(tx, owner="alice", generation_id=gid, now=now)
        assert restored is not None and restored.delete_time is None and restored.expire_time is None
        assert restored.update_time == now, "undeleted counts as updated, for retention"
    with db.read() as tx:
        assert storage.get_version(tx, owner="alice", generation_id=gid, number=1) is not None


def test_an_expired_deletion_cannot_be_undone_and_is_due_for_the_purge(db: storage.Database) -> None:
    version = _upload(db, {"a.txt": b"a"})
    now = storage.utcnow()
    with db.write() as tx:
        storage.delete_generation(tx, generation_id=version.generation_id, now=now - _OLD, expire_time=now)
    with db.write() as tx:
        assert (
            storage.undelete_generation(tx, owner="alice", generation_id=version.generation_id, now=now)
            is None
        )
        assert storage.expired_generations(tx, now=now - timedelta(seconds=1), limit=10) == []
        assert storage.expired_generations(tx, now=now, limit=10) == [version.generation_id]


def test_a_deleted_generation_takes_no_new_version(db: storage.Database) -> None:
    version = _upload(db, {"a.txt": b"a"})
    with db.read() as tx:
        generation = storage.get_generation(tx, owner="alice", generation_id=version.generation_id)
    assert generation is not None
    now = storage.utcnow()
    with db.write() as tx:
        storage.delete_generation(tx, generation_id=generation.id, now=now, expire_time=now + _OLD)
    with pytest.raises(storage.GenerationDeleted), db.write() as tx:
        storage.create_version(
            tx,
            generation=generation,
            kind=storage.VersionKind.TWEAK,
            prompt="late",
            model="offline",
            provider="offline",
            parent_number=1,
            base_turn_id=None,
            turn=1,
            request_id=None,
            request_fingerprint=None,
        )


def test_retention_finds_generations_not_updated_since(db: storage.Database) -> None:
    old, new = _upload(db, {"a.txt": b"a"}), _upload(db, {"b.txt": b"b"})
    with db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE generation SET update_time = :t WHERE id = :g"),
            {"t": storage.utcnow() - _OLD, "g": old.generation_id},
        )
    with db.read() as tx:
        due = storage.generations_updated_before(tx, before=storage.utcnow() - timedelta(hours=1), limit=10)
    assert due == [old.generation_id]
    assert new.generation_id not in due


def test_a_purge_removes_every_row_of_the_generation_and_the_collector_its_own_blobs(
    db: storage.Database,
) -> None:
    doomed = _upload(db, {"shared.txt": b"shared", "own.txt": b"only the doomed one"}, attachment=b"\x00own")
    kept = _upload(db, {"shared.txt": b"shared", "mine.txt": b"kept"})
    gid = doomed.generation_id
    tables = ("generation", "version", "session", "event", "manifest_entry", "turn")
    assert all(_count(db, table, gid) for table in tables)
    with db.write() as tx:
        assert storage.purge_generation(tx, generation_id=gid)
        assert not storage.purge_generation(tx, generation_id=gid)
    assert [_count(db, table, gid) for table in tables] == [0] * len(tables)
    assert _collect(db) == 2
    assert _blobs(db) == {storage.sha256_hex(b"shared"), storage.sha256_hex(b"kept")}
    with db.read() as tx:
        assert kept.id is not None
        tree = storage.read_tree(tx, version_id=kept.id)
        contents = storage.read_blobs(tx, [entry.blob_sha256 for entry in tree.values()])
    assert sorted(contents.values()) == [b"kept", b"shared"]


def test_the_collector_keeps_what_a_tree_an_attachment_or_a_turn_refers_to(db: storage.Database) -> None:
    version = _upload(db, {"tree.txt": b"in a tree"}, attachment=b"attached, and in a turn")
    with db.write() as tx:
        storage.put_blobs(tx, [b"nothing refers to me"])
    assert _collect(db) == 1
    assert len(_blobs(db)) == 2
    # Now only the turn refers to the attachment's content.
    with db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM version_attachment WHERE version_id = :v"), {"v": version.id})
    assert _collect(db) == 0
    assert len(_blobs(db)) == 2


def test_the_collector_leaves_blobs_younger_than_its_grace(db: storage.Database) -> None:
    with db.write() as tx:
        storage.put_blobs(tx, [b"stored a moment ago"])
    assert _collect(db, created_before=storage.utcnow() - timedelta(minutes=5)) == 0
    assert _collect(db) == 1


def test_a_writer_reusing_an_unused_blob_keeps_it_from_a_concurrent_collector(db: storage.Database) -> None:
    """The race: the collector finds a blob unused while a writer, which found it already stored
    (ON CONFLICT DO NOTHING), is about to refer to it. The writer must win."""
    content = b"stored once, then no longer used"
    with db.write() as tx:
        storage.put_blobs(tx, [content])
    digest = storage.sha256_hex(content)
    with db.read() as tx:
        assert digest in storage.scan_blobs(tx, after="", limit=100).unused
    target = _upload(db, {"other.txt": b"x"})
    stored = threading.Event()
    go_on = threading.Event()
    outcome: dict[str, object] = {}

    def writer() -> None:
        try:
            with db.write() as tx:
                storage.put_blobs(tx, [content])
                stored.set()
                go_on.wait(10)
                storage.write_tree(
                    tx,
                    version=target,
                    entries=[storage.TreeEntry("reused.txt", digest, len(content), "text/plain")],
                )
            outcome["writer"] = "committed"
        except Exception as exc:
            outcome["writer"] = exc

    def collector() -> None:
        try:
            with db.write() as tx:
                outcome["deleted"] = storage.delete_unused_blobs(
                    tx, [digest], created_before=storage.utcnow() + timedelta(seconds=1)
                )
        except Exception as exc:
            outcome["deleted"] = exc

    write = threading.Thread(target=writer)
    write.start()
    assert stored.wait(10)
    collect = threading.Thread(target=collector)
    collect.start()
    # PostgreSQL: the collector skips the held row and ends at once. SQLite: it waits for the
    # writer's transaction. Either way it must not delete what the writer refers to.
    collect.join(1 if not db.is_sqlite else 0.2)
    go_on.set()
    write.join(10)
    collect.join(10)
    assert outcome == {"writer": "committed", "deleted": 0}
    with db.read() as tx:
        assert storage.read_blob(tx, digest) == content


def test_a_blob_stored_in_parts_reads_back_whole_and_its_parts_are_kept_while_it_is(
    db: storage.Database,
) -> None:
    parts = [b"first part, ", b"second part, ", b"last"]
    whole = b"".join(parts)
    with db.write() as tx:
        hashes = storage.put_blobs(tx, parts)
    with db.write() as tx:
        storage.put_parted_blob(tx, sha256=storage.sha256_hex(whole), size=len(whole), parts=hashes)
        # Stored again (a retried upload): nothing changes.
        storage.put_parted_blob(tx, sha256=storage.sha256_hex(whole), size=len(whole), parts=hashes)
    with db.read() as tx:
        assert storage.read_blob(tx, storage.sha256_hex(whole)) == whole
        assert storage.read_blobs(tx, [storage.sha256_hex(whole), hashes[0]]) == {
            storage.sha256_hex(whole): whole,
            hashes[0]: parts[0],
        }
    version = _upload(db, {"other.txt": b"other"})
    with db.write() as tx:
        entry = storage.TreeEntry(
            "big.bin", storage.sha256_hex(whole), len(whole), "application/octet-stream"
        )
        storage.write_tree(tx, version=version, entries=[entry])
    # The tree refers to the whole, and the whole to its parts: nothing goes.
    assert _collect(db) == 0
    with db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM manifest_entry WHERE version_id = :v"), {"v": version.id})
    # The whole goes first (its part rows with it), then its parts, on the next pass.
    assert _collect(db) >= 1
    _collect(db)
    assert not {storage.sha256_hex(whole), *hashes} & _blobs(db)
