"""Programs the tests start answer Ctrl-C, even when `make test` runs as a background job."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

from tests._support import ROOT

_REPORT = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"


def _python(code: str, preexec_fn: Callable[[], None] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=preexec_fn,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_program_the_tests_start_handles_sigint() -> None:
    assert _python(_REPORT) == "True"


def test_answer_ctrl_c_undoes_an_inherited_ignore() -> None:
    """What a background job's shell does (SIGINT ignored), then what the test session does."""
    starter = (
        "import subprocess, sys\n"
        "from support.processes import answer_ctrl_c\n"
        "answer_ctrl_c()\n"
        f"subprocess.run([sys.executable, '-c', {_REPORT!r}])\n"
    )
    ignoring = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {_REPORT!r}])\n"

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    assert _python(ignoring, preexec_fn=ignore_sigint) == "False"
    assert _python(starter, preexec_fn=ignore_sigint) == "True"
