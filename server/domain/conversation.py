"""Turns between the provider's form (parts with bytes) and the stored form (parts with blob refs)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Literal

from sqlmodel import Session

import storage
from server.providers._base import Attachment, Part, Turn


def to_record(session: Session, turn: Turn) -> storage.NewTurn:
    """The stored form of a turn; inline data is stored as blobs (once each)."""
    parts: list[dict[str, object]] = []
    for part in turn.parts:
        stored: dict[str, object]
        if part.data is not None:
            (digest,) = storage.put_blobs(session, [part.data])
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
        parts.append(stored)
    return storage.NewTurn(role=turn.role, parts=parts)


def from_record(session: Session, record: storage.Turn) -> Turn:
    """The provider's form of a stored turn, with its inline data read back."""
    parts = []
    for stored in record.parts:
        signature = stored.get("thought_signature")
        common = {
            "thought": bool(stored.get("thought", False)),
            "thought_signature": base64.b64decode(str(signature)) if signature else None,
        }
        if "blob" in stored:
            data = storage.read_blob(session, str(stored["blob"]))
            if data is None:
                raise LookupError(f"blob {stored['blob']} of turn {record.id} is missing")
            parts.append(Part(data=data, mime_type=str(stored["mime_type"]), **common))  # type: ignore[arg-type]
        else:
            parts.append(Part(text=str(stored.get("text", "")), **common))  # type: ignore[arg-type]
    role: Literal["user", "model"] = "model" if record.role == "model" else "user"
    return Turn(role=role, parts=parts)


def history(session: Session, *, head_turn_id: int | None) -> list[Turn]:
    """The turns of a branch, oldest first, as the provider sends them."""
    return [
        from_record(session, record) for record in storage.branch_turns(session, head_turn_id=head_turn_id)
    ]


def default_exchange(prompt: str, attachments: Sequence[Attachment], answer: str) -> list[Turn]:
    """What a provider that reports no turns of its own exchanged: the prompt, then its summary."""
    user_parts = [Part(text=prompt), *(Part(data=a.data, mime_type=a.mime_type) for a in attachments)]
    return [Turn(role="user", parts=user_parts), Turn(role="model", parts=[Part(text=answer)])]
