"""A turn kept in memory is exactly the turn the database gives back, so a cached branch and a
branch read from the database send the model the same history."""

from __future__ import annotations

import pytest

import storage
from server.domain import conversation
from server.domain._recent import LoadedTree, Recent
from server.providers._base import Part, Turn

_TURNS = [
    Turn(role="user", parts=[Part(text="draw a cat"), Part(data=b"\x89PNG...", mime_type="image/png")]),
    Turn(
        role="model",
        parts=[
            Part(text="thinking about cats", thought=True, thought_signature=b"\x00sig"),
            Part(data=b"raw bytes", mime_type=None),
            Part(text=None),
        ],
    ),
]


def test_a_turn_read_back_from_memory_equals_the_stored_one(database_url: str) -> None:
    db = storage.Database(database_url)
    db.migrate()
    with db.write() as tx:
        _, version = storage.create_generation(
            tx,
            owner="alice",
            prompt="p",
            model="m",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
        )
        conversation_session = storage.get_conversation(
            tx, owner="alice", generation_id=version.generation_id
        )
        assert conversation_session is not None
        storage.record_exchange(
            tx,
            version=version,
            session_id=conversation_session.id,
            turns=[conversation.to_record(tx, turn) for turn in _TURNS],
        )
    with db.read() as tx:
        stored = conversation.history(tx, head_turn_id=version.head_turn_id)
    db.dispose()
    assert stored == [conversation.as_read_back(turn) for turn in _TURNS]
    # The mime type a part lacked is the one storing it gives, in memory too.
    assert stored[1].parts[1].mime_type == "application/octet-stream"


def test_recent_keeps_what_fits_and_drops_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.domain import _recent

    monkeypatch.setattr(_recent, "_MAX_ENTRIES", 2)
    monkeypatch.setattr(_recent, "_MAX_ITEM_BYTES", 250)
    recent = Recent()
    for turn_id in (1, 2):
        recent.keep_branch(turn_id, _TURNS[:1])
    assert recent.branch(1) is not None  # 1 is now the most recently used
    recent.keep_branch(3, _TURNS[:1])
    assert recent.branch(2) is None and recent.branch(1) is not None and recent.branch(3) is not None
    recent.keep_branch(4, [Turn(role="user", parts=[Part(text="x" * 251)])])
    assert recent.branch(4) is None  # too large to keep
    entry = storage.TreeEntry(path="a.txt", blob_sha256="ab", size=2, mime_type="text/plain")
    recent.keep_tree(7, LoadedTree({"a.txt": entry}, {"ab": b"hi"}))
    kept = recent.tree(7)
    assert kept is not None and [f.data for f in kept.files()] == [b"hi"]
