"""CPU-heavy work kept off the event loop.

Every job of a process shares one event loop, and a thousand of them may be waiting on their
models at once. Hashing a large tree, or parsing a large answer, on the loop would stall every
other job's progress and every call for as long as it takes: work that weighs more than a
little goes to a worker thread instead. Light work stays on the loop, where it costs no hop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

_T = TypeVar("_T")

# About a millisecond of hashing or JSON parsing: below it, a thread hop costs more than it saves.
OFF_LOOP_BYTES = 256 * 1024


async def off_the_loop(weight: int, function: Callable[..., _T], *args: object) -> _T:
    """`function(*args)`, in a worker thread when `weight` (about the bytes it handles) is large."""
    if weight < OFF_LOOP_BYTES:
        return function(*args)
    return await anyio.to_thread.run_sync(function, *args)
