"""Processes that start others (the test session, the benchmark): what they do first, and how
they find the processes a server started."""

from __future__ import annotations

import signal
from pathlib import Path


def answer_ctrl_c() -> None:
    """Handles SIGINT (Ctrl-C) as Python does when a terminal starts it, in this process and in
    every program it starts.

    A background job (`make test &`) starts with SIGINT ignored, and an ignored signal stays
    ignored across fork and exec: a tool or CLI the tests start would shrug off the Ctrl-C a
    test sends it. A handled signal, by contrast, is reset to its default on exec, so once this
    process handles SIGINT every program it starts begins with the default.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run, and theirs (Linux)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                pids = [int(text) for text in children.read_text().split()]
            except OSError:
                continue
            found.extend(pids)
            todo.extend(pids)
    return found
