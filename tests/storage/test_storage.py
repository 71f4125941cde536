"""Storage verbs against real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import storage
from server.files import FileContent
from storage import _events as storage_events


@pytest.fixture
def db(database_url: str) -> Iterator[storage.Database]:
    database = storage.Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _generate(
    db: storage.Database, prompt: str = "a tiny app", request_id: str | None = None
) -> storage.Version:
    with db.write() as tx:
        _, version = storage.create_generation(
            tx,
            owner="alice",
            prompt=prompt,
            model="offline",
            provider="offline",
            request_id=request_id,
            request_fingerprint="f",
            attachments=[FileContent(path="a.png", mime_type="image/png", data=b"\x89PNG")],
        )
    return version


def test_migrations_create_every_table_and_can_run_again(db: storage.Database) -> None:
    db.migrate()  # a second run is a no-op
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"blob", "generation", "version", "manifest_entry", "event", "job", "session", "turn"} <= tables
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0014"
        # The migrations build exactly the schema the models describe.
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    database = storage.Database(f"sqlite:///{tmp_path}/wal.db")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    database.dispose()


def test_create_generation_makes_a_queued_version_with_job_session_and_first_event(
    db: storage.Database,
) -> None:
    version = _generate(db)
    assert version.id is not None
    with db.read() as tx:
        stored = storage.get_version(tx, owner="alice", generation_id=version.generation_id, number=1)
        assert stored is not None and stored.state == storage.VersionState.QUEUED
        events = storage.list_events(tx, version_id=version.id, after_seq=0)
        assert [(e.seq, e.type, e.state) for e in events] == [(1, "STATE", "QUEUED")]
        job = storage.job_for_version(tx, version_id=version.id)
        assert job is not None and job.status == storage.JobStatus.QUEUED
        assert [a.mime_type for a in storage.list_attachments(tx, version_id=version.id)] == ["image/png"]
        conversation = tx.execute(
            sa.select(storage.ConversationSession).where(sa.column("generation_id") == version.generation_id)
        ).scalar_one()
        assert conversation.turn_count == 0


def test_other_owners_see_nothing(db: storage.Database) -> None:
    version = _generate(db)
    with db.read() as tx:
        assert storage.get_version(tx, owner="bob", generation_id=version.generation_id, number=1) is None
        assert storage.get_generation(tx, owner="bob", generation_id=version.generation_id) is None
        assert storage.list_generations(tx, owner="bob", before_id=None, limit=10) == []
        assert storage.get_conversation(tx, owner="bob", generation_id=version.generation_id) is None
        assert (
            storage.list_versions(
                tx, owner="bob", generation_id=version.generation_id, after_number=0, limit=10
            )
            == []
        )


def test_no_owner_filter_finds_every_owners_rows(db: storage.Database) -> None:
    """owner=None is an admin's view: the same rows, whoever owns them."""
    version = _generate(db)
    g = version.generation_id
    with db.read() as tx:
        found = storage.get_version(tx, owner=None, generation_id=g, number=1)
        assert found is not None and found.owner == "alice"
        assert storage.get_version(tx, owner=None, generation_id=g, number=2) is None
        assert storage.get_generation(tx, owner=None, generation_id=g) is not None
        assert storage.get_conversation(tx, owner=None, generation_id=g) is not None
        assert [
            v.number for v in storage.list_versions(tx, owner=None, generation_id=g, after_number=0, limit=9)
        ] == [1]
        assert [r.id for r in storage.list_generations(tx, owner=None, before_id=None, limit=10)] == [g]


def test_api_keys_keep_a_hash_and_are_revoked_not_deleted(db: storage.Database) -> None:
    with db.read() as tx:
        assert not storage.has_api_keys(tx)
    with db.write() as tx:
        storage.create_api_key(
            tx, key_id="k1", principal="alice", scopes="read write", secret_sha256="ab" * 32
        )
    with db.write() as tx:
        revoked = storage.revoke_api_key(tx, key_id="k1")
        assert revoked is not None and revoked.revoke_time is not None
        again = storage.revoke_api_key(tx, key_id="k1")
        assert again is not None and again.revoke_time == revoked.revoke_time
        assert storage.revoke_api_key(tx, key_id="nope") is None
        storage.mark_api_key_used(tx, key_id="k1", when=storage.utcnow())
    with db.read() as tx:
        assert storage.has_api_keys(tx)  # a revoked key still counts: the server stays closed
        (listed,) = storage.list_api_keys(tx)
        assert (listed.principal, listed.secret_sha256, listed.last_used_time is not None) == (
            "alice",
            "ab" * 32,
            True,
        )
        stored = storage.get_api_key(tx, key_id="k1")
        assert stored is not None and stored.revoke_time is not None


def test_blobs_are_stored_once(db: storage.Database) -> None:
    with db.write() as tx:
        first = storage.put_blobs(tx, [b"same", b"same", b"other"])
    with db.write() as tx:
        second = storage.put_blobs(tx, [b"same"])
    assert first[0] == first[1] == second[0] == storage.sha256_hex(b"same")
    with db.read() as tx:
        count = tx.execute(sa.select(sa.func.count()).select_from(storage.Blob)).scalar_one()
        assert count == 2
        assert storage.read_blob(tx, first[2]) == b"other"


def test_events_are_gap_free_and_a_terminal_version_takes_no_more(db: storage.Database) -> None:
    version = _generate(db)
    with db.write() as tx:
        storage.append_event(
            tx, version=version, type=storage.EventType.STATE, state=storage.VersionState.RUNNING
        )
        storage.append_event(
            tx, version=version, type=storage.EventType.STAGE_STARTED, stage=1, total_stages=2
        )
        storage.append_event(
            tx,
            version=version,
            type=storage.EventType.STATE,
            state=storage.VersionState.FAILED,
            error=storage.ErrorDetail(code="UNAVAILABLE", reason="X", message="down"),
        )
    with pytest.raises(storage.StateConflict), db.write() as tx:
        storage.append_event(tx, version=version, type=storage.EventType.MESSAGE, message="late")
    assert version.id is not None
    with db.read() as tx:
        events = storage.list_events(tx, version_id=version.id, after_seq=0)
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert events[2].stage == 1 and events[2].total_stages == 2
        latest = storage.get_version_by_id(tx, version.id)
        assert (latest.state, latest.error_reason, latest.last_event_seq) == ("FAILED", "X", 4)
        assert latest.complete_time is not None
        assert [e.seq for e in storage.list_events(tx, version_id=version.id, after_seq=2)] == [3, 4]


def test_latest_event_seqs_of_many_versions_come_in_a_few_statements(
    db: storage.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = [_generate(db, prompt=f"app {index}") for index in range(5)]
    with db.write() as tx:
        for version in versions[:2]:
            storage.append_event(tx, version=version, type=storage.EventType.MESSAGE, message="more")
    ids = [version.id for version in versions if version.id is not None]
    monkeypatch.setattr(storage_events, "_IDS_PER_STATEMENT", 2)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.read() as tx:
            found = storage.last_event_seqs(tx, version_ids=[*ids, *ids, 1_000_000])  # duplicates, a stranger
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert found == {ids[0]: 2, ids[1]: 2, ids[2]: 1, ids[3]: 1, ids[4]: 1}
    assert len([s for s in statements if "last_event_seq" in s]) == 3  # 6 distinct ids, 2 a statement
    with db.read() as tx:
        assert storage.last_event_seqs(tx, version_ids=[]) == {}


def test_a_request_id_names_one_version_per_owner(db: storage.Database) -> None:
    _generate(db, request_id="r-1")
    with pytest.raises(storage.RequestIdTaken):
        _generate(db, request_id="r-1")
    with db.read() as tx:
        found = storage.find_version_by_request_id(tx, owner="alice", request_id="r-1")
        assert found is not None and found.number == 1


def _reserve_draft(db: storage.Database, owner: str, request_id: str) -> storage.Draft:
    with db.write() as tx:
        return storage.reserve_draft(
            tx,
            owner=owner,
            request_id=request_id,
            request_fingerprint="f",
            text="a cat",
            context="",
            model="offline",
            drafter_model="offline",
            provider="offline",
        )


def test_a_request_id_names_one_draft_per_owner_and_a_reservation_is_no_draft(db: storage.Database) -> None:
    reserved = _reserve_draft(db, "alice", "r-1")
    assert reserved.revision == storage.RESERVED_DRAFT
    with pytest.raises(storage.RequestIdTaken):
        _reserve_draft(db, "alice", "r-1")
    # Another owner's request id never collides; nor does a version's.
    _reserve_draft(db, "bob", "r-1")
    _generate(db, request_id="r-1")
    with db.read() as tx:
        # Until the model has drafted, no read sees the reservation but the request id's.
        assert storage.get_draft(tx, owner="alice", draft_id=reserved.id) is None
        assert storage.list_drafts(tx, owner=None, before_id=None, limit=10) == []
        found = storage.find_draft_by_request_id(tx, owner="alice", request_id="r-1")
        assert found is not None and found.id == reserved.id
    with db.write() as tx:
        done = storage.complete_draft(tx, draft_id=reserved.id, drafted_prompt="A cat.", input_tokens=3)
    assert done is not None
    assert (done.revision, done.prompt, done.drafted_prompt, done.input_tokens) == (1, "A cat.", "A cat.", 3)
    with db.write() as tx:
        # Completed once: a second completion finds no reservation.
        assert storage.complete_draft(tx, draft_id=reserved.id, drafted_prompt="again") is None
    with db.read() as tx:
        draft = storage.get_draft(tx, owner="alice", draft_id=reserved.id)
        assert draft is not None and (draft.prompt, draft.request_id) == ("A cat.", "r-1")
        assert [d.id for d in storage.list_drafts(tx, owner="alice", before_id=None, limit=10)] == [
            reserved.id
        ]


def test_only_reservations_older_than_the_bound_are_deleted_as_abandoned(db: storage.Database) -> None:
    old = _reserve_draft(db, "alice", "r-old")
    fresh = _reserve_draft(db, "alice", "r-fresh")
    done = _reserve_draft(db, "alice", "r-done")
    with db.write() as tx:
        assert storage.complete_draft(tx, draft_id=done.id, drafted_prompt="A cat.") is not None
    # Only `old` was made before the bound (a completed draft is never a reservation).
    bound = fresh.create_time
    with db.write() as tx:
        tx.execute(
            sa.update(storage.Draft)
            .where(storage.Draft.id == old.id)  # type: ignore[arg-type]
            .values(create_time=bound - timedelta(hours=1))
        )
        tx.execute(
            sa.update(storage.Draft)
            .where(storage.Draft.id == done.id)  # type: ignore[arg-type]
            .values(create_time=bound - timedelta(hours=1))
        )
    with db.write() as tx:
        assert storage.delete_abandoned_reservations(tx, created_before=bound) == 1
    with db.read() as tx:
        assert storage.find_draft_by_request_id(tx, owner="alice", request_id="r-old") is None
        kept = storage.find_draft_by_request_id(tx, owner="alice", request_id="r-fresh")
        assert kept is not None and kept.revision == storage.RESERVED_DRAFT
        assert storage.get_draft(tx, owner="alice", draft_id=done.id) is not None
    with db.write() as tx:
        assert storage.delete_abandoned_reservations(tx, created_before=bound) == 0


def test_each_job_is_claimed_once_even_by_concurrent_workers(db: storage.Database) -> None:
    versions = [_generate(db, prompt=f"p{i}") for i in range(12)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            with db.write() as tx:
                job = storage.claim_job(tx, worker=name, lease=timedelta(seconds=30))
            if job is None:
                return
            with lock:
                claimed.append(job.version_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(v.id for v in versions if v.id is not None)


def test_leases_renew_expire_and_carry_cancellation(db: storage.Database) -> None:
    version = _generate(db)
    with db.write() as tx:
        job = storage.claim_job(tx, worker="w1", lease=timedelta(seconds=-1))
    assert job is not None and job.attempt == 1
    with db.write() as tx:
        assert [j.id for j in storage.expired_jobs(tx)] == [job.job_id]
        assert storage.renew_lease(tx, job_id=job.job_id, worker="w2", lease=timedelta(seconds=30)) is None
        assert storage.renew_lease(tx, job_id=job.job_id, worker="w1", lease=timedelta(seconds=30)) is False
    with db.write() as tx:
        assert storage.expired_jobs(tx) == []
        assert version.id is not None
        storage.request_cancel(tx, version_id=version.id)
    with db.write() as tx:
        assert storage.renew_lease(tx, job_id=job.job_id, worker="w1", lease=timedelta(seconds=30)) is True
        storage.requeue_job(tx, job_id=job.job_id, version=version, message="Requeued")
    with db.write() as tx:
        again = storage.claim_job(tx, worker="w2", lease=timedelta(seconds=30))
        assert again is not None and again.attempt == 2
        assert storage.holds_lease(tx, job_id=job.job_id, worker="w2")
        assert not storage.holds_lease(tx, job_id=job.job_id, worker="w1")


def test_manifest_lists_in_byte_order_with_keyset_pages(db: storage.Database) -> None:
    version = _generate(db)
    paths = ["b.txt", "B.txt", "a/z.py", "a.txt", "é.md", "_x"]
    with db.write() as tx:
        storage.write_tree(
            tx,
            version=version,
            entries=storage.store_files(
                tx, [FileContent(path=p, mime_type="text/plain", data=p.encode()) for p in paths]
            ),
        )
    expected = sorted(paths, key=lambda p: p.encode())
    assert version.id is not None
    with db.read() as tx:
        first = storage.list_manifest(tx, version_id=version.id, limit=4)
        rest = storage.list_manifest(tx, version_id=version.id, after_path=first[-1].path, limit=10)
        assert [e.path for e in [*first, *rest]] == expected
        assert storage.get_version_by_id(tx, version.id).file_count == len(paths)


def test_a_session_runs_one_job_at_a_time(db: storage.Database) -> None:
    first = _generate(db)
    with db.write() as tx:
        generation = storage.get_generation(tx, owner="alice", generation_id=first.generation_id)
        assert generation is not None
        second = storage.create_version(
            tx,
            generation=generation,
            kind=storage.VersionKind.TWEAK,
            prompt="again",
            model="offline",
            provider="offline",
            parent_number=1,
            base_turn_id=None,
            turn=2,
            request_id=None,
            request_fingerprint=None,
        )
    assert second.number == 2
    other = _generate(db, prompt="another generation")
    with db.write() as tx:
        claimed = storage.claim_job(tx, worker="w", lease=timedelta(seconds=30))
    with db.write() as tx:
        also = storage.claim_job(tx, worker="w", lease=timedelta(seconds=30))
    with db.write() as tx:
        none = storage.claim_job(tx, worker="w", lease=timedelta(seconds=30))
    assert claimed is not None and claimed.version_id == first.id
    assert also is not None and also.version_id == other.id, "the busy session's next job waits"
    assert none is None
    with db.write() as tx:
        storage.finish_job(tx, job_id=claimed.job_id)
    with db.write() as tx:
        last = storage.claim_job(tx, worker="w", lease=timedelta(seconds=30))
    assert last is not None and last.version_id == second.id


def test_turns_form_branches(db: storage.Database) -> None:
    version = _generate(db)
    with db.read() as tx:
        conversation = storage.get_conversation(tx, owner="alice", generation_id=version.generation_id)
    assert conversation is not None
    text: list[dict[str, object]] = [{"text": "hello"}]
    with db.write() as tx:
        storage.record_exchange(
            tx,
            version=version,
            session_id=conversation.id,
            turns=[storage.NewTurn("user", text), storage.NewTurn("model", text)],
        )
    head = version.head_turn_id
    with db.write() as tx:
        for _ in range(2):  # two forks from the same head
            generation = storage.get_generation(tx, owner="alice", generation_id=version.generation_id)
            assert generation is not None
            fork = storage.create_version(
                tx,
                generation=generation,
                kind=storage.VersionKind.TWEAK,
                prompt="fork",
                model="offline",
                provider="offline",
                parent_number=1,
                base_turn_id=head,
                turn=2,
                request_id=None,
                request_fingerprint=None,
            )
            storage.record_exchange(
                tx,
                version=fork,
                session_id=conversation.id,
                turns=[
                    storage.NewTurn("user", [{"text": f"fork {fork.number}"}]),
                    storage.NewTurn("model", text),
                ],
            )
    with db.read() as tx:
        forks = [
            storage.get_version(tx, owner="alice", generation_id=version.generation_id, number=n)
            for n in (2, 3)
        ]
        branches = [storage.branch_turns(tx, head_turn_id=f.head_turn_id if f else None) for f in forks]
        assert [[t.number for t in branch] for branch in branches] == [[1, 2, 3, 4], [1, 2, 5, 6]]
        assert branches[1][2].parts == [{"text": "fork 3"}]
        reread = storage.get_conversation(tx, owner="alice", generation_id=version.generation_id)
        assert reread is not None and reread.turn_count == 3
        assert len(storage.list_turns(tx, session_id=conversation.id, after_number=0, limit=100)) == 6


def test_migration_0004_places_old_merges_on_their_ours_branch_and_uploads_at_turn_0(
    db: storage.Database,
) -> None:
    """Merges and uploads stored before 0004 (no head turn, turn 1) get what they are made with now."""
    with db.write() as tx:
        _, upload = storage.create_generation(
            tx,
            owner="alice",
            prompt="my files",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
            kind=storage.VersionKind.UPLOAD,
            queue_job=False,
        )
        conversation = storage.get_conversation(tx, owner="alice", generation_id=upload.generation_id)
        generation = storage.get_generation(tx, owner="alice", generation_id=upload.generation_id)
        assert conversation is not None and generation is not None
        tweak = storage.create_version(
            tx,
            generation=generation,
            kind=storage.VersionKind.TWEAK,
            prompt="tweak",
            model="offline",
            provider="offline",
            parent_number=1,
            base_turn_id=None,
            turn=1,
            request_id=None,
            request_fingerprint=None,
        )
        storage.record_exchange(
            tx,
            version=tweak,
            session_id=conversation.id,
            turns=[storage.NewTurn("user", [{"text": "t"}]), storage.NewTurn("model", [{"text": "a"}])],
        )
        merges = []
        for ours in (2, 3):  # a merge of the tweak, then a merge of that merge
            merges.append(
                storage.create_version(
                    tx,
                    generation=generation,
                    kind=storage.VersionKind.MERGE,
                    prompt="merge",
                    model="offline",
                    provider="offline",
                    parent_number=ours,
                    merge_parent_number=1,
                    base_turn_id=tweak.head_turn_id,
                    head_turn_id=tweak.head_turn_id,
                    turn=1,
                    request_id=None,
                    request_fingerprint=None,
                    queue_job=False,
                )
            )
    assert upload.turn == 0 and tweak.head_turn_id is not None

    def stored() -> list[tuple[int, int | None]]:
        # Read as any revision stores them: the model of today has columns 0003 lacks.
        with db.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT turn, head_turn_id FROM version WHERE generation_id = :g ORDER BY number"),
                {"g": upload.generation_id},
            )
            return [(turn, head) for turn, head in rows]

    now = [(0, None), (1, tweak.head_turn_id), (1, tweak.head_turn_id), (1, tweak.head_turn_id)]
    assert stored() == now
    db.downgrade("0003")
    assert stored() == [(1, None), (1, tweak.head_turn_id), (1, None), (1, None)], "as 0003 stored them"
    db.migrate()
    assert stored() == now


def _new_version(db: storage.Database, first: storage.Version, parent: int) -> storage.Version:
    with db.write() as tx:
        generation = storage.get_generation(tx, owner="alice", generation_id=first.generation_id)
        assert generation is not None
        return storage.create_version(
            tx,
            generation=generation,
            kind=storage.VersionKind.ITERATE,
            prompt="change",
            model="offline",
            provider="offline",
            parent_number=parent,
            base_turn_id=None,
            turn=1,
            request_id=None,
            request_fingerprint=None,
        )


@pytest.mark.parametrize("writer", ["whole tree", "changes"])
def test_trees_are_stored_as_deltas_that_read_back_whole(db: storage.Database, writer: str) -> None:
    v1 = _generate(db)
    files = {f"src/f{i:04}.py": f"print({i})\n".encode() for i in range(500)}
    with db.write() as tx:
        entries = storage.store_files(tx, [FileContent(p, "text/plain", d) for p, d in files.items()])
        storage.write_tree(tx, version=v1, entries=entries)
    versions = [v1]
    expected = dict(files)
    for step in range(40):  # longer than the longest delta chain
        parent = versions[-1]
        child = _new_version(db, v1, parent.number)
        expected.pop(f"src/f{step:04}.py")
        expected[f"src/f{step + 100:04}.py"] = f"changed {step}".encode()
        expected[f"new/{step}.md"] = b"new"
        assert parent.id is not None and child.id is not None
        with db.write() as tx:
            parent_tree = storage.read_tree(tx, version_id=parent.id)
            parent_row = storage.get_version_by_id(tx, parent.id)
            if writer == "whole tree":
                entries = storage.store_files(
                    tx, [FileContent(p, "text/plain", d) for p, d in expected.items()]
                )
                storage.write_tree(tx, version=child, entries=entries, parent=(parent_row, parent_tree))
            else:
                # Only what changed, plus an upsert that changes nothing and a deletion of nothing.
                upserts = storage.store_files(
                    tx,
                    [
                        FileContent(p, "text/plain", expected[p])
                        for p in (f"src/f{step + 100:04}.py", f"new/{step}.md", "src/f0499.py")
                    ],
                )
                storage.write_changes(
                    tx,
                    version=child,
                    parent=(parent_row, parent_tree),
                    upserts=upserts,
                    deletions=[f"src/f{step:04}.py", "no/such/file.py"],
                )
            rows = tx.execute(
                sa.select(sa.func.count())
                .select_from(storage.ManifestEntry)
                .where(sa.column("version_id") == child.id)
            ).scalar_one()
        assert rows < 10 or child.manifest_base_id is None, "a delta writes only what changed"
        assert (child.added_count, child.modified_count, child.deleted_count) == (1, 1, 1)
        assert child.file_count == len(expected)
        versions.append(child)
    assert max(v.manifest_chain for v in versions) == storage._trees.MAX_DELTA_CHAIN
    assert any(v.manifest_base_id is None for v in versions[1:]), "a long chain ends in a new snapshot"
    last = versions[-1]
    assert last.id is not None
    with db.read() as tx:
        tree = storage.read_tree(tx, version_id=last.id)
        assert {p: storage.read_blob(tx, e.blob_sha256) for p, e in tree.items()} == expected
        listed = storage.list_manifest(tx, version_id=last.id, limit=100)
        rest = storage.list_manifest(tx, version_id=last.id, after_path=listed[-1].path)
        assert [e.path for e in listed + rest] == sorted(expected, key=str.encode)
        assert storage.get_manifest_entry(tx, version_id=last.id, path="src/f0000.py") is None
        found = storage.get_manifest_entry(tx, version_id=last.id, path="src/f0139.py")
        assert found is not None and storage.read_blob(tx, found.blob_sha256) == b"changed 39"
        # The first version is untouched by its descendants.
        assert v1.id is not None
        assert {p: e.size for p, e in storage.read_tree(tx, version_id=v1.id).items()} == {
            p: len(d) for p, d in files.items()
        }


def _queue(tx: storage.Transaction, prompt: str, limit: int) -> storage.Version:
    return storage.create_generation(
        tx,
        owner="alice",
        prompt=prompt,
        model="offline",
        provider="offline",
        request_id=None,
        request_fingerprint=None,
        max_queued_jobs=limit,
    )[1]


def test_the_cap_on_queued_jobs_holds_between_concurrent_writers_and_a_refusal_writes_nothing(
    db: storage.Database,
) -> None:
    with db.write() as tx:
        _queue(tx, "first", 2)
    outcome: list[object] = []

    def second_writer() -> None:
        try:
            with db.write() as tx:
                outcome.append(_queue(tx, "third", 2))
        except storage.TooManyQueuedJobs as exc:
            outcome.append(exc)

    with db.write() as tx:
        _queue(tx, "second", 2)
        # Another writer (another replica) counts while this one has not committed: it must wait.
        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()
    writer.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], storage.TooManyQueuedJobs)
    assert (outcome[0].count, outcome[0].limit) == (2, 2)
    with db.read() as tx:
        assert len(storage.list_generations(tx, owner="alice", before_id=None, limit=10)) == 2
    # Another owner has a cap of its own.
    with db.write() as tx:
        storage.create_generation(
            tx,
            owner="bob",
            prompt="bob's",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
            max_queued_jobs=2,
        )
