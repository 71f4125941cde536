"""Heavy work leaves the event loop; light work stays on it (server/cpu.py)."""

from __future__ import annotations

import threading

import pytest

from server.cpu import OFF_LOOP_BYTES, off_the_loop


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_heavy_work_runs_in_a_worker_thread_and_light_work_on_the_loop() -> None:
    loop = threading.get_ident()
    assert await off_the_loop(100, threading.get_ident) == loop
    assert await off_the_loop(OFF_LOOP_BYTES, threading.get_ident) != loop
