"""What a process that starts others (the test session, the benchmark) does first."""

from __future__ import annotations

import signal


def answer_ctrl_c() -> None:
    """Handles SIGINT (Ctrl-C) as Python does when a terminal starts it, in this process and in
    every program it starts.

    A background job (`make test &`) starts with SIGINT ignored, and an ignored signal stays
    ignored across fork and exec: a tool or CLI the tests start would shrug off the Ctrl-C a
    test sends it. A handled signal, by contrast, is reset to its default on exec, so once this
    process handles SIGINT every program it starts begins with the default.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
