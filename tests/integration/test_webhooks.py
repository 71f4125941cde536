"""Signed webhooks against a real server and local receivers: signatures checked by an independent
implementation (the `standardwebhooks` package), event filters, retries until a receiver comes
up, a restart with a delivery pending, listing and replaying, and refused destinations."""

from __future__ import annotations

import functools
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from atelier.v1 import webhook_pb2 as wh
from standardwebhooks import Webhook, WebhookVerificationError

from support.databases import fresh_database
from tests._support import Api, ServerProcess, check_error, fails, script
from tests._webhook_support import SECRET, Received, Receiver
from tests.conftest import BACKENDS, check_backend
from tests.integration.conftest import SERVER_ENV

STARTED, OUTPUT, COMPLETED = (
    wh.WEBHOOK_EVENT_TYPE_STARTED,
    wh.WEBHOOK_EVENT_TYPE_OUTPUT,
    wh.WEBHOOK_EVENT_TYPE_COMPLETED,
)
CANCELLED = wh.WEBHOOK_EVENT_TYPE_CANCELLED


def _env(*receivers: Receiver) -> dict[str, str]:
    return {
        **SERVER_ENV,
        "ATELIER_WEBHOOK_SECRET": SECRET,
        "ATELIER_WEBHOOK_ALLOWED_URLS": ",".join(r.url("/hooks") for r in receivers),
        # Quick retries, so that a receiver that comes up late is reached within a second.
        "ATELIER_WEBHOOK_RETRY_SCHEDULE": ",".join(["0.3"] * 20),
        "ATELIER_WEBHOOK_POLL_SECONDS": "0.1",
        "ATELIER_WEBHOOK_TIMEOUT_SECONDS": "2",
        # Offline jobs pause in each stage, so that one can be cancelled while it runs.
        "ATELIER_OFFLINE_PACE_SECONDS": "5",
    }


class Hooks:
    def __init__(self, server: ServerProcess, up: Receiver, late: Receiver, gone: Receiver) -> None:
        self.server, self.up, self.late, self.gone = server, up, late, gone


@pytest.fixture(scope="module", params=BACKENDS)
def hooks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    backend = check_backend(request.param)
    tmp = tmp_path_factory.mktemp(f"webhooks-{backend}")
    up, late, gone = Receiver().start(), Receiver(), Receiver(status=410).start()
    with fresh_database(backend, tmp) as url:
        env = _env(up, late, gone)
        server = ServerProcess(database_url=url, log_path=tmp / "server.log", env=env).start()
        try:
            yield Hooks(server, up, late, gone)
        finally:
            server.kill()
            for receiver in (up, late, gone):
                receiver.stop()


@pytest.fixture
def alice(hooks: Hooks) -> Iterator[Api]:
    with hooks.server.channel() as channel:
        yield Api(channel, "alice-token")


def _verified(item: Received) -> dict[str, object]:
    """The payload, once the independent implementation has verified its signature."""
    payload: dict[str, object] = Webhook(SECRET).verify(item.body, item.headers)
    return payload


def _deliveries(api: Api, parent: str) -> list[wh.WebhookDelivery]:
    response = api.stub.ListWebhookDeliveries(
        wh.ListWebhookDeliveriesRequest(parent=parent), metadata=api.metadata, timeout=10
    )
    return list(response.deliveries)


def _wait_deliveries(api: Api, parent: str, check: object, timeout: float = 15) -> list[wh.WebhookDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        found = _deliveries(api, parent)
        if check(found):  # type: ignore[operator]
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_deliveries_are_signed_as_standard_webhooks_say_and_filtered(hooks: Hooks, alice: Api) -> None:
    hook = wh.WebhookSubscription(url=hooks.up.url(), events=[STARTED, OUTPUT, COMPLETED])
    version = alice.generate(script(stages=1), webhook=hook)
    alice.wait(version.name)
    got = hooks.up.wait_for(lambda _: len(hooks.up.of(version.name)) == 3)
    mine = hooks.up.of(version.name)
    payloads = [_verified(item) for item in mine]
    assert [p["type"] for p in payloads] == ["version.started", "version.output", "version.completed"]
    completed = payloads[-1]
    data = completed["data"]
    assert isinstance(data, dict)
    assert data["name"] == version.name and data["state"] == "VERSION_STATE_COMPLETED"
    assert data["fileCount"] == "1"  # the proto's JSON mapping: int64 as a string
    assert payloads[0]["data"]["state"] == "VERSION_STATE_RUNNING"  # type: ignore[index]
    assert payloads[1]["paths"] == ["answer.txt"]
    assert str(completed["timestamp"]).endswith("Z")
    # The headers, exactly as the spec names them; each delivery its own id.
    for item in mine:
        assert item.path == "/hooks"
        assert item.headers["webhook-id"].startswith("msg_")
        assert item.headers["webhook-signature"].startswith("v1,")
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 60
        assert item.headers["content-type"] == "application/json"
    assert len({item.headers["webhook-id"] for item in mine}) == 3
    assert got
    # A signature over anything else fails: the check can fail.
    forged = Received(mine[0].path, mine[0].headers, mine[0].body.replace(b"started", b"stArted"))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(forged.body, forged.headers)

    # No events named: the state changes (started and the end), not the outputs.
    second = alice.generate(script(stages=1), webhook=wh.WebhookSubscription(url=hooks.up.url()))
    alice.wait(second.name)
    hooks.up.wait_for(lambda _: len(hooks.up.of(second.name)) == 2)
    time.sleep(0.3)  # nothing more comes
    assert [_verified(i)["type"] for i in hooks.up.of(second.name)] == [
        "version.started",
        "version.completed",
    ]
    listed = _wait_deliveries(
        alice, second.name, lambda d: all(x.state == wh.WEBHOOK_DELIVERY_STATE_DELIVERED for x in d)
    )
    assert [d.event_type for d in listed] == [STARTED, COMPLETED]
    assert all(len(d.attempts) == 1 and d.attempts[0].status_code == 204 for d in listed)
    assert all(d.name.startswith(second.name + "/webhookDeliveries/msg_") for d in listed)
    assert {d.name.rsplit("/", 1)[1] for d in listed} == {
        i.headers["webhook-id"] for i in hooks.up.of(second.name)
    }


def test_tweak_and_iterate_take_a_webhook(hooks: Hooks, alice: Api) -> None:
    base = alice.wait(alice.generate(script(stages=1)).name)
    hook = wh.WebhookSubscription(url=hooks.up.url(), events=[COMPLETED])
    tweaked = alice.stub.Tweak(
        pb.TweakRequest(name=base.name, prompt=script(files={"t.txt": "tweak"}), webhook=hook),
        metadata=alice.metadata,
    )
    iterated = alice.stub.Iterate(
        pb.IterateRequest(parent=base.name, prompt=script(files={"i.txt": "iterate"}), webhook=hook),
        metadata=alice.metadata,
    )
    for version in (tweaked, iterated):
        alice.wait(version.name)
        name = version.name
        hooks.up.wait_for(lambda _: len(hooks.up.of(name)) == 1)  # noqa: B023 (used at once)
        assert _verified(hooks.up.of(version.name)[0])["type"] == "version.completed"
    assert _deliveries(alice, base.name) == []  # the base version asked for no webhook


def test_a_receiver_that_is_down_at_first_gets_the_delivery_when_it_comes_up(
    hooks: Hooks, alice: Api
) -> None:
    hook = wh.WebhookSubscription(url=hooks.late.url(), events=[COMPLETED])
    version = alice.wait(alice.generate(script(stages=1), webhook=hook).name)
    assert version.state == gen.VERSION_STATE_COMPLETED
    failing = _wait_deliveries(alice, version.name, lambda d: len(d) == 1 and len(d[0].attempts) >= 2)
    first = failing[0]
    assert first.state == wh.WEBHOOK_DELIVERY_STATE_PENDING
    assert first.attempts[0].status_code == 0 and "Connect" in first.attempts[0].error
    assert first.HasField("next_attempt_time")
    hooks.late.start()
    hooks.late.wait_for(lambda _: len(hooks.late.of(version.name)) == 1)
    [item] = hooks.late.of(version.name)
    assert _verified(item)["type"] == "version.completed"
    assert item.headers["webhook-id"] == first.name.rsplit("/", 1)[1]  # the same id as the failed attempts
    done = _wait_deliveries(alice, version.name, lambda d: d[0].state == wh.WEBHOOK_DELIVERY_STATE_DELIVERED)[
        0
    ]
    assert done.attempts[-1].status_code == 204 and done.HasField("deliver_time")
    assert not done.HasField("next_attempt_time")


def test_a_failed_version_is_reported_with_its_error(hooks: Hooks, alice: Api) -> None:
    hook = wh.WebhookSubscription(url=hooks.up.url())
    fail = {
        "code": "FAILED_PRECONDITION",
        "reason": "SCRIPTED_FAILURE",
        "message": "no luck",
        "retryable": False,
    }
    version = alice.wait(alice.generate(script(stages=1, fail=fail), webhook=hook).name)
    assert version.state == gen.VERSION_STATE_FAILED
    hooks.up.wait_for(lambda _: len(hooks.up.of(version.name)) == 2)
    failed = _verified(hooks.up.of(version.name)[-1])
    assert failed["type"] == "version.failed"
    data = failed["data"]
    assert isinstance(data, dict) and data["state"] == "VERSION_STATE_FAILED"
    assert "no luck" in data["error"]["message"]
    assert data["error"]["details"][0]["reason"] == "SCRIPTED_FAILURE"


def test_a_receiver_that_answers_410_gone_gets_no_more_attempts(hooks: Hooks, alice: Api) -> None:
    hook = wh.WebhookSubscription(url=hooks.gone.url(), events=[COMPLETED])
    version = alice.wait(alice.generate(script(stages=1), webhook=hook).name)
    [delivery] = _wait_deliveries(
        alice, version.name, lambda d: len(d) == 1 and d[0].state == wh.WEBHOOK_DELIVERY_STATE_FAILED
    )
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(410, "HTTP 410")]
    assert not delivery.HasField("next_attempt_time")


def test_deliveries_are_listed_by_version_or_generation_and_replayed(hooks: Hooks, alice: Api) -> None:
    hook = wh.WebhookSubscription(url=hooks.up.url(), events=[COMPLETED])
    version = alice.wait(alice.generate(script(stages=1), webhook=hook).name)
    [delivery] = _wait_deliveries(
        alice, version.name, lambda d: len(d) == 1 and d[0].state == wh.WEBHOOK_DELIVERY_STATE_DELIVERED
    )
    generation = version.name.rsplit("/versions/", 1)[0]
    assert [d.name for d in _deliveries(alice, generation)] == [delivery.name]
    page = alice.stub.ListWebhookDeliveries(
        wh.ListWebhookDeliveriesRequest(parent=generation, page_size=1), metadata=alice.metadata
    )
    assert len(page.deliveries) == 1 and page.next_page_token == ""

    replayed = alice.stub.ReplayWebhookDelivery(
        wh.ReplayWebhookDeliveryRequest(name=delivery.name), metadata=alice.metadata
    )
    assert replayed.state == wh.WEBHOOK_DELIVERY_STATE_PENDING
    hooks.up.wait_for(lambda _: len(hooks.up.of(version.name)) == 2)
    first, again = hooks.up.of(version.name)
    assert first.body == again.body  # the same event, the same body and id
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    _verified(again)
    after = _wait_deliveries(
        alice,
        version.name,
        lambda d: len(d[0].attempts) == 2 and d[0].state == wh.WEBHOOK_DELIVERY_STATE_DELIVERED,
    )
    assert [a.status_code for a in after[0].attempts] == [204, 204]

    # Owner-scoped, like every resource: another caller finds nothing.
    with hooks.server.channel() as channel:
        bob = Api(channel, "bob-token")
        for call in (
            functools.partial(
                bob.stub.ListWebhookDeliveries,
                wh.ListWebhookDeliveriesRequest(parent=version.name),
                metadata=bob.metadata,
            ),
            functools.partial(
                bob.stub.ReplayWebhookDelivery,
                wh.ReplayWebhookDeliveryRequest(name=delivery.name),
                metadata=bob.metadata,
            ),
        ):
            check_error(fails(call), grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND")
    missing = delivery.name.rsplit("/", 1)[0] + "/msg_000000000000ffffffffffffff"
    check_error(
        fails(
            functools.partial(
                alice.stub.ReplayWebhookDelivery,
                wh.ReplayWebhookDeliveryRequest(name=missing),
                metadata=alice.metadata,
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "WEBHOOK_DELIVERY_NOT_FOUND",
    )
    for bad in ("generations", "generations/x/versions/1/webhookDeliveries/nope"):
        check_error(
            fails(
                functools.partial(
                    alice.stub.ReplayWebhookDelivery,
                    wh.ReplayWebhookDeliveryRequest(name=bad),
                    metadata=alice.metadata,
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
            "name",
        )


def test_disallowed_destinations_and_bad_events_are_refused_and_nothing_is_made(
    hooks: Hooks, alice: Api
) -> None:
    before = alice.generation_count()
    cases = [
        (hooks.up.url("/elsewhere"), [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),  # a path not allowed
        ("http://127.0.0.1:1/hooks", [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),
        ("http://169.254.169.254/latest/meta-data", [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),
        (f"http://user:pw@127.0.0.1:{hooks.up.port}/hooks", [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),
        ("ftp://example.com/hooks", [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),
        ("", [], "WEBHOOK_URL_NOT_ALLOWED", "webhook.url"),
        (hooks.up.url(), [0], "INVALID_WEBHOOK_EVENT", "webhook.events[0]"),
        (hooks.up.url(), [COMPLETED, 99], "INVALID_WEBHOOK_EVENT", "webhook.events[1]"),
    ]
    for url, events, reason, field in cases:
        hook = wh.WebhookSubscription(url=url, events=events)  # type: ignore[arg-type]
        request = pb.GenerateRequest(prompt="hi", webhook=hook)
        error = fails(functools.partial(alice.stub.Generate, request, metadata=alice.metadata))
        check_error(error, grpc.StatusCode.INVALID_ARGUMENT, reason, field)
    assert alice.generation_count() == before


def test_cancel_during_a_paced_offline_job_ends_cancelled_and_is_reported(hooks: Hooks, alice: Api) -> None:
    hook = wh.WebhookSubscription(url=hooks.up.url(), events=[STARTED, CANCELLED])
    version = alice.generate("a small tree", model="offline", webhook=hook)
    hooks.up.wait_for(lambda _: len(hooks.up.of(version.name)) == 1)  # started: pausing in Plan
    assert alice.get(version.name).state == gen.VERSION_STATE_RUNNING
    started = time.monotonic()
    alice.stub.CancelVersion(pb.CancelVersionRequest(name=version.name), metadata=alice.metadata)
    ended = alice.wait(version.name)
    assert ended.state == gen.VERSION_STATE_CANCELLED
    assert time.monotonic() - started < 4, "the pace's sleep did not give way to the cancel"
    hooks.up.wait_for(lambda _: len(hooks.up.of(version.name)) == 2)
    assert [_verified(i)["type"] for i in hooks.up.of(version.name)] == [
        "version.started",
        "version.cancelled",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pending_delivery_is_delivered_after_the_server_is_killed_and_restarted(
    backend: str, tmp_path: Path
) -> None:
    check_backend(backend)
    receiver = Receiver()
    env = {
        **_env(receiver),
        "ATELIER_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1",
        "ATELIER_METRICS_LISTEN": "127.0.0.1:0",
    }
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                hook = wh.WebhookSubscription(url=receiver.url(), events=[COMPLETED])
                version = api.wait(api.generate(script(stages=1), webhook=hook).name)
                _wait_deliveries(api, version.name, lambda d: len(d) == 1 and len(d[0].attempts) == 1)
            server.kill()  # kill -9 with the delivery pending
            receiver.start()
            server.start()
            receiver.wait_for(lambda got: len(got) == 1)
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                [done] = _wait_deliveries(
                    api, version.name, lambda d: d[0].state == wh.WEBHOOK_DELIVERY_STATE_DELIVERED
                )
            address = re.findall(r"metrics on (http://\S+/metrics)", server.log())[-1]
            metrics = urllib.request.urlopen(address, timeout=10).read().decode()
        finally:
            server.kill()
            receiver.stop()
    assert _verified(receiver.received[0])["type"] == "version.completed"
    # The restarted process made the one attempt that succeeded.
    assert re.search(r'^atelier_webhook_attempts_total\{outcome="delivered"\} 1\.0$', metrics, re.M), metrics
    assert [a.status_code for a in done.attempts][-1] == 204
    assert {a.status_code for a in done.attempts[:-1]} == {0}
