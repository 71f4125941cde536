"""What every process the tests and the benchmark start does before it runs."""

from __future__ import annotations

import signal


def restore_default_sigint() -> None:
    """Pass as `preexec_fn`: the child answers SIGINT (Ctrl-C) as if a terminal had started it.

    A background job (`make test &`) starts with SIGINT ignored, and an ignored signal stays
    ignored across exec: a child that does not install its own handler (a CLI, a tool) would
    shrug off the Ctrl-C a test sends it. Popen's `restore_signals` resets SIGPIPE and SIGXFSZ,
    never SIGINT.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
