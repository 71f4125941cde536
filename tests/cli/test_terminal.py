"""The `atelier` command in a real terminal (a pty): the live progress bar, --json, and Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable

import pexpect
import pytest
from atelier import AtelierClient, VersionState

from tests._client_support import TOKEN
from tests._support import ServerProcess
from tests.cli.conftest import ATELIER, cli_env

_NAME = re.compile(r"generations/[a-z0-9-]+/versions/\d+")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _spawn(
    server: ServerProcess, *args: str, preexec_fn: Callable[[], None] | None = None
) -> pexpect.spawn[str]:
    return pexpect.spawn(
        ATELIER[0],
        [*ATELIER[1:], *args],
        env=cli_env(server),
        dimensions=(30, 120),
        timeout=30,
        encoding="utf-8",
        preexec_fn=preexec_fn,
    )


def _expect(child: pexpect.spawn[str], pattern: str | re.Pattern[str]) -> re.Match[str]:
    child.expect(pattern)
    assert isinstance(child.match, re.Match)
    return child.match


def _slow(stages: int, delay: float) -> str:
    return json.dumps({"stages": stages, "delay": delay, "messages_per_stage": 2})


def test_generate_shows_a_live_progress_bar_with_stages(server: ServerProcess) -> None:
    child = _spawn(server, "generate", _slow(3, 0.9), "--model", "scripted")
    name = _expect(child, _NAME).group(0)
    total = _expect(child, r"stage 1/(\d+)").group(1)  # the script's 3 stages, and the server's own last one
    assert int(total) >= 3
    child.expect("━")  # the bar itself, redrawn in place
    child.expect(rf"stage 2/{total}")
    child.expect("step 2: message 2 of 2")
    child.expect(rf"stage {total}/{total}")
    child.expect(r"COMPLETED: wrote 1 file")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with AtelierClient(server.target, token=TOKEN) as client:
        assert client.get(name).state == VersionState.COMPLETED


def test_json_in_a_terminal_is_one_document(server: ServerProcess) -> None:
    child = _spawn(server, "--json", "generate", "a small python package")
    output = child.read()
    child.close()
    assert child.exitstatus == 0
    document = json.loads(output)
    assert document["state"] == "COMPLETED" and document["kind"] == "GENERATE"


# Also as a shell without job control starts `atelier ... &`, with SIGINT ignored: the command
# restores Ctrl-C itself.
@pytest.mark.parametrize("inherit", [None, _ignore_sigint], ids=["sigint-default", "sigint-ignored"])
def test_ctrl_c_detaches_and_the_job_still_completes(
    server: ServerProcess, inherit: Callable[[], None] | None
) -> None:
    child = _spawn(server, "generate", _slow(2, 1.0), "--model", "scripted", preexec_fn=inherit)
    name = _expect(child, _NAME).group(0)
    child.expect(r"stage 1/")
    child.sendintr()
    assert _expect(child, r"atelier watch (generations/\S+)").group(1) == name
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    with AtelierClient(server.target, token=TOKEN) as client:
        assert client.wait(name, timeout=30).state == VersionState.COMPLETED


def test_ctrl_c_with_cancel_on_interrupt_cancels_the_job(server: ServerProcess) -> None:
    child = _spawn(server, "generate", _slow(2, 10.0), "--model", "scripted", "--cancel-on-interrupt")
    name = _expect(child, _NAME).group(0)
    child.expect(r"stage 1/")
    child.sendintr()
    child.expect(f"{name} CANCELLED: Cancelled by the user")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    with AtelierClient(server.target, token=TOKEN) as client:
        ended = client.wait(name, timeout=30)
    # Recorded as the user's doing, for whoever looks at the version later.
    assert (ended.state, ended.message) == (VersionState.CANCELLED, "Cancelled by the user")
    assert ended.error is not None and ended.error.message == "cancelled by the user"
