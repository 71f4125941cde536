"""What the `atelier` command shows of the scheduler: models' limits and live state, a queued
version's place and ETA (status, watch), and every version's ledger.

Jobs on the model `one-at-a-time` (max_concurrent = 1) run one after another, so the later ones
queue. The server looks at the queue about once per poll (0.5 s here), after a job waited a second.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from atelier import AtelierClient

from tests._client_support import TOKEN, queueing_server
from tests._support import ServerProcess, script
from tests.cli.conftest import ATELIER, RunCli, cli_env

_USAGE = {"input_tokens": 120, "output_tokens": 45, "thinking_tokens": 7}
_QUEUED_LINE = re.compile(r"queued: (\d+)(?:st|nd|rd|th) in line")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with queueing_server(tmp_path_factory.mktemp("cli-queueing-server")) as process:
        yield process


def _json(run_cli: RunCli, *args: str) -> object:
    result = run_cli("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_models_show_their_limits_and_live_state(run_cli: RunCli, server: ServerProcess) -> None:
    with AtelierClient(server.target, token=TOKEN) as client:
        names = [
            client.generate(script(stages=1, delay=10.0, files={f"{i}.txt": "x"}), model="one-at-a-time").name
            for i in range(3)
        ]
        time.sleep(0.5)
        models = _json(run_cli, "models")
        # Wide enough for each model's row on one line.
        wide = {**cli_env(server), "COLUMNS": "200"}
        table = subprocess.run([*ATELIER, "models"], env=wide, capture_output=True, text=True, timeout=60)
        for name in names:  # the next test's jobs need the model
            client.cancel(name)

    assert isinstance(models, list)
    by_name = {model["name"]: model for model in models}
    limited, unlimited = by_name["one-at-a-time"], by_name["scripted"]
    assert (limited["max_concurrent"], limited["requests_per_minute"], limited["tokens_per_minute"]) == (
        1,
        600,
        250000,
    )
    assert (limited["status"]["jobs_in_flight"], limited["status"]["jobs_queued"]) == (1, 2), limited
    assert limited["status"]["cooldown_until"] is None
    assert (
        unlimited["max_concurrent"],
        unlimited["requests_per_minute"],
        unlimited["tokens_per_minute"],
    ) == (
        None,
        None,
        None,
    )
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "one-at-a-time" in line)
    # limits, in flight, queued (between the table's column rules)
    assert re.search(r"1 at once, 600/min, 250000 tokens/min\s+\S\s+1\s+\S\s+2\s+\S", row), table.stdout


def test_status_and_watch_show_the_queue_and_the_ledger(run_cli: RunCli, server: ServerProcess) -> None:
    with AtelierClient(server.target, token=TOKEN) as client:
        names = [
            client.generate(
                script(stages=1, delay=1.0, files={f"{i}.txt": "x"}, usage=_USAGE), model="one-at-a-time"
            ).name
            for i in range(6)
        ]
    last = names[-1]
    time.sleep(1.8)  # the last job has waited over a second, and the queue was looked at since
    status = run_cli("status", last)
    watched = run_cli("watch", last)
    document = _json(run_cli, "status", last)

    assert status.returncode == 0, status.stderr
    assert re.search(r"queue\s+\d+(st|nd|rd|th) in line", status.stdout), status.stdout

    assert watched.returncode == 0, watched.stdout + watched.stderr
    positions = [int(p) for p in _QUEUED_LINE.findall(watched.stderr)]
    assert positions and positions == sorted(positions, reverse=True), watched.stderr
    assert "starts " in watched.stderr, "once the model has run times, the line says when the job starts"
    assert "1 attempt" in watched.stdout, watched.stdout
    assert "tokens: 120 in, 45 out, 7 thinking over 1 request" in watched.stdout, watched.stdout

    assert isinstance(document, dict)
    ledger = document["ledger"]
    assert ledger["attempts"] == 1
    # The scripted model has no price: each request costs nothing, and made no image.
    assert ledger["usage"] == [{**_USAGE, "cost": 0.0, "images": 0}]
    assert ledger["queue_time"] >= 2.0  # seconds: several jobs ran before it
    assert ledger["run_time"] >= 1.0 and ledger["cooldown_time"] == 0
    assert (document["queue_position"], document["estimated_start_time"]) == (0, None)
