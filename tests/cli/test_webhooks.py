"""The command line's webhooks against the real server and a local receiver: --webhook and
--webhook-event on generate, tweak and iterate, `atelier webhooks list` and `replay`, and the
errors (a URL the server refuses, an event without a URL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook as Verifier

from tests._support import ServerProcess
from tests._webhook_support import SECRET, Receiver, hooked_client_server
from tests.cli.conftest import RunCli


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Receiver]]:
    with hooked_client_server(tmp_path_factory.mktemp("cli-webhooks")) as pair:
        yield pair


@pytest.fixture(scope="module")
def server(hooked: tuple[ServerProcess, Receiver]) -> ServerProcess:
    return hooked[0]


@pytest.fixture(scope="module")
def receiver(hooked: tuple[ServerProcess, Receiver]) -> Receiver:
    return hooked[1]


def _json(run_cli: RunCli, *args: str) -> Any:
    result = run_cli("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _delivered(run_cli: RunCli, parent: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        found: list[dict[str, Any]] = _json(run_cli, "webhooks", "list", parent)["deliveries"]
        if len(found) == count and all(d["state"] == "DELIVERED" for d in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_generate_tweak_and_iterate_with_a_webhook_then_list_and_replay(
    run_cli: RunCli, receiver: Receiver
) -> None:
    url = receiver.url("/hooks")
    v1 = _json(run_cli, "generate", "a python CLI", "--webhook", url, "--webhook-event", "COMPLETED")
    [delivery] = _delivered(run_cli, v1["name"], 1)
    assert delivery["event_type"] == "COMPLETED" and len(delivery["attempts"]) == 1
    item = receiver.wait_for(lambda _: len(receiver.of(v1["name"])) == 1)[-1]
    assert Verifier(SECRET).verify(item.body, item.headers)["type"] == "version.completed"

    v2 = _json(run_cli, "tweak", v1["name"], "add file docs/usage.md", "--webhook", url)
    assert [d["event_type"] for d in _delivered(run_cli, v2["name"], 2)] == ["STARTED", "COMPLETED"]
    v3 = _json(run_cli, "iterate", v2["name"], "add file a.py", "--webhook", url, "--webhook-event", "output")
    assert [d["event_type"] for d in _delivered(run_cli, v3["name"], 1)] == ["OUTPUT"]

    # The table: the deliveries of the whole generation (v1 names it too), with their last status.
    table = run_cli("webhooks", "list", v1["name"].rsplit("/versions/", 1)[0])
    assert table.returncode == 0, table.stderr
    out = " ".join(table.stdout.split())
    assert out.count("DELIVERED") == 4 and "204" in out and "completed" in out and "output" in out

    replayed = run_cli("webhooks", "replay", delivery["name"])
    assert replayed.returncode == 0, replayed.stderr
    assert "Replayed" in replayed.stdout and "204" in " ".join(replayed.stdout.split())
    receiver.wait_for(lambda _: len(receiver.of(v1["name"])) == 2)
    assert receiver.of(v1["name"])[1].headers["webhook-id"] == item.headers["webhook-id"]
    [after] = _json(run_cli, "webhooks", "list", v1["name"])["deliveries"]
    assert len(after["attempts"]) == 2


def test_a_url_the_server_does_not_allow_is_a_clear_error(run_cli: RunCli) -> None:
    result = run_cli("generate", "a python CLI", "--webhook", "http://127.0.0.1:9/elsewhere")
    assert result.returncode == 2, result.stdout + result.stderr  # INVALID_ARGUMENT: a usage error
    assert "INVALID_ARGUMENT [WEBHOOK_URL_NOT_ALLOWED]" in result.stderr, result.stderr
    assert "ATELIER_WEBHOOK_ALLOWED_URLS" in result.stderr  # what to change, on the server


def test_webhook_mistakes_are_usage_errors(run_cli: RunCli) -> None:
    lone = run_cli("generate", "a python CLI", "--webhook-event", "completed")
    assert lone.returncode == 2 and "--webhook-event needs --webhook URL" in lone.stderr
    bad = run_cli("generate", "a python CLI", "--webhook", "http://x", "--webhook-event", "finished")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "completed" in bad.stderr
    missing = run_cli("webhooks", "replay", "generations/nope/versions/1/webhookDeliveries/msg_x")
    assert missing.returncode == 3 and "not found" in missing.stderr, missing.stderr
