"""Turns between the provider's form (parts with bytes) and the stored form (parts with blob refs)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Literal

import storage
from server.files import FileContent
from server.providers import Part, Turn


def to_record(tx: storage.Transaction, turn: Turn) -> storage.NewTurn:
    """The stored form of a turn; inline data is stored as blobs (once each)."""
    parts = []
    for part in turn.parts:
        digest = storage.put_blobs(tx, [part.data])[0] if part.data is not None else ""
        parts.append(_stored_part(part, digest))
    return storage.NewTurn(role=turn.role, parts=parts)


def from_record(tx: storage.Transaction, record: storage.Turn) -> Turn:
    """The provider's form of a stored turn, with its inline data read back."""
    parts = []
    for stored in record.parts:
        data = None
        if "blob" in stored:
            data = storage.read_blob(tx, str(stored["blob"]))
            if data is None:
                raise LookupError(f"blob {stored['blob']} of turn {record.id} is missing")
        parts.append(_part(stored, data))
    return Turn(role=_role(record.role), parts=parts)


def as_read_back(turn: Turn) -> Turn:
    """The turn exactly as `from_record` gives it back once stored, without the database."""
    parts = [_part(_stored_part(part, "unstored"), part.data) for part in turn.parts]
    return Turn(role=_role(turn.role), parts=parts)


def _stored_part(part: Part, digest: str) -> dict[str, object]:
    stored: dict[str, object]
    if part.data is not None:
        stored = {
            "blob": digest,
            "mime_type": part.mime_type or "application/octet-stream",
            "size": len(part.data),
        }
    else:
        stored = {"text": part.text or ""}
    if part.thought:
        stored["thought"] = True
    if part.thought_signature is not None:
        stored["thought_signature"] = base64.b64encode(part.thought_signature).decode()
    return stored


def _part(stored: dict[str, object], data: bytes | None) -> Part:
    signature = stored.get("thought_signature")
    thought = bool(stored.get("thought", False))
    thought_signature = base64.b64decode(str(signature)) if signature else None
    if "blob" in stored:
        return Part(
            data=data,
            mime_type=str(stored["mime_type"]),
            thought=thought,
            thought_signature=thought_signature,
        )
    return Part(text=str(stored.get("text", "")), thought=thought, thought_signature=thought_signature)


def _role(role: str) -> Literal["user", "model"]:
    return "model" if role == "model" else "user"


def history(tx: storage.Transaction, *, head_turn_id: int | None) -> list[Turn]:
    """The turns of a branch, oldest first, as the provider sends them."""
    return [from_record(tx, record) for record in storage.branch_turns(tx, head_turn_id=head_turn_id)]


def default_exchange(prompt: str, attachments: Sequence[FileContent], answer: str) -> list[Turn]:
    """What a provider that reports no turns of its own exchanged: the prompt, then its summary."""
    user_parts = [Part(text=prompt), *(Part(data=a.data, mime_type=a.mime_type) for a in attachments)]
    return [Turn(role="user", parts=user_parts), Turn(role="model", parts=[Part(text=answer)])]
