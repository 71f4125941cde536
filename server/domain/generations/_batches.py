"""A fan-out's outputs together: GetBatch, and one Progress stream for all of them.

A batch is named by its first version's number; its versions were created in one transaction,
so they are numbered consecutively. Its stream follows every output at once (each as Progress
follows one version) and tags each event with its output; events of one output keep their
order, and an output's terminal event comes as soon as it is stored, whatever the others do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator

import storage
from server.domain import _transactions as transactions
from server.domain.errors import FieldViolation, InvalidArgument
from server.domain.generations._base import not_found
from server.domain.generations._progress import ProgressVerbs
from server.domain.principals import Principal
from server.domain.resources import (
    Batch,
    BatchCounts,
    BatchEvent,
    BatchRef,
    ProgressEvent,
    VersionRef,
    VersionState,
    version_of,
)

# What each output's follower hands the merging loop: an event, or the follower's end (None),
# or the error that ended it.
_Item = tuple[int, ProgressEvent | BaseException | None]


def _batch_name(ref: BatchRef) -> str:
    return f"generations/{ref.generation_id}/batches/{ref.number}"


class BatchVerbs(ProgressVerbs):
    async def get_batch(self, *, caller: Principal, ref: BatchRef) -> Batch:
        def read(tx: storage.Transaction) -> list[storage.Version]:
            rows = storage.list_batch(
                tx, owner=caller.owner_filter, generation_id=ref.generation_id, batch_number=ref.number
            )
            if not rows:
                raise not_found("batch", _batch_name(ref), "BATCH_NOT_FOUND")
            return rows

        rows = await transactions.read(self._db, read)
        return Batch(
            ref=ref,
            versions=tuple(
                version_of(row, self._runner.estimate_of(row.id) if row.id is not None else None)
                for row in rows
            ),
        )

    async def batch_progress(
        self, *, caller: Principal, ref: BatchRef, resume_token: str
    ) -> AsyncIterator[BatchEvent]:
        """Every output's events after the resume token (all of them without one), tagged by
        output, until every output has reached a terminal state."""
        batch = await self.get_batch(caller=caller, ref=ref)
        numbers = [version.number for version in batch.versions]
        cursors = _parse_resume_token(resume_token, numbers) if resume_token else {}
        # Each output as the caller last saw it: its seq, and its state then (QUEUED before any).
        seen = {number: cursors.get(number, (0, VersionState.QUEUED)) for number in numbers}
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        async def follow(number: int) -> None:
            try:
                ref_ = VersionRef(ref.generation_id, number)
                async for event in self.progress(caller=caller, ref=ref_, after_seq=seen[number][0]):
                    await queue.put((number, event))
                await queue.put((number, None))
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # handed to the stream's reader, which raises it
                await queue.put((number, error))

        followers = [asyncio.create_task(follow(number)) for number in numbers]
        try:
            running = len(followers)
            while running:
                number, item = await queue.get()
                if item is None:
                    running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                seen[number] = (item.seq, item.state)
                yield BatchEvent(
                    version_number=number,
                    event=item,
                    counts=BatchCounts.of(state for _, state in seen.values()),
                    resume_token=_resume_token(seen),
                )
        finally:
            # The caller went away (or an output's stream failed): the others stop too; the jobs
            # never notice.
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)


def _resume_token(seen: dict[int, tuple[int, VersionState]]) -> str:
    """Where a batch's stream is: each output's last seq and its state then."""
    raw = json.dumps([[number, seq, state.value] for number, (seq, state) in sorted(seen.items())])
    return base64.urlsafe_b64encode(raw.replace(" ", "").encode()).decode().rstrip("=")


def _parse_resume_token(token: str, numbers: list[int]) -> dict[int, tuple[int, VersionState]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursors = {
            int(number): (int(seq), VersionState(state))
            for number, seq, state in data
            if not isinstance(number, bool) and not isinstance(seq, bool) and seq >= 0
        }
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
        cursors = None
    if cursors is None or not set(cursors) <= set(numbers):
        raise InvalidArgument(
            "resume_token is not a token this batch's Progress returned",
            reason="INVALID_CURSOR",
            violations=[FieldViolation("resume_token", "must be an event's resume_token from this batch")],
        )
    return cursors
