"""Webhooks through the SDK, against the real server and a local receiver: a subscription on
generate, tweak and iterate (sync and async), its signed deliveries listed and replayed as typed
`WebhookDelivery`s, and a refused URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from atelier import (
    AsyncAtelierClient,
    AtelierClient,
    InvalidArgument,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEventType,
)
from standardwebhooks import Webhook as Verifier

from tests._client_support import TOKEN
from tests._support import ServerProcess
from tests._webhook_support import SECRET, Receiver, hooked_client_server

COMPLETED = WebhookEventType.COMPLETED


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Receiver]]:
    with hooked_client_server(tmp_path_factory.mktemp("sdk-webhooks")) as pair:
        yield pair


@pytest.fixture(scope="module")
def server(hooked: tuple[ServerProcess, Receiver]) -> ServerProcess:
    return hooked[0]


@pytest.fixture(scope="module")
def receiver(hooked: tuple[ServerProcess, Receiver]) -> Receiver:
    return hooked[1]


def wait_deliveries(
    client: AtelierClient, parent: str, check: Callable[[list[WebhookDelivery]], bool]
) -> list[WebhookDelivery]:
    deadline = time.monotonic() + 15
    while True:
        found = list(client.webhook_deliveries(parent))
        if check(found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def _delivered(deliveries: list[WebhookDelivery]) -> bool:
    return bool(deliveries) and all(d.state is WebhookDeliveryState.DELIVERED for d in deliveries)


def test_a_generate_with_a_webhook_is_delivered_signed_listed_and_replayed(
    client: AtelierClient, receiver: Receiver
) -> None:
    version = client.generate("a python CLI", webhook=Webhook(receiver.url("/hooks"), (COMPLETED,)))
    client.wait(version.name)
    received = receiver.wait_for(lambda _: len(receiver.of(version.name)) == 1)
    item = receiver.of(version.name)[0]
    payload = Verifier(SECRET).verify(item.body, item.headers)
    assert payload["type"] == "version.completed" and payload["data"]["name"] == version.name
    assert received

    [delivery] = wait_deliveries(client, version.name, _delivered)
    assert delivery.name.startswith(f"{version.name}/webhookDeliveries/")
    assert delivery.name.rsplit("/", 1)[1] == item.headers["webhook-id"]
    assert delivery.event_type is COMPLETED and delivery.url == receiver.url("/hooks")
    assert delivery.event_time is not None and delivery.deliver_time is not None
    [attempt] = delivery.attempts
    assert attempt.status_code == 204 and attempt.error == "" and attempt.attempt_time is not None

    # The generation's list holds the version's deliveries.
    assert [d.name for d in client.webhook_deliveries(version.generation)] == [delivery.name]

    replayed = client.replay_webhook_delivery(delivery.name)
    assert replayed.name == delivery.name and replayed.event_type is COMPLETED
    receiver.wait_for(lambda _: len(receiver.of(version.name)) == 2)
    again = receiver.of(version.name)[1]
    assert again.headers["webhook-id"] == item.headers["webhook-id"] and again.body == item.body
    assert Verifier(SECRET).verify(again.body, again.headers)["type"] == "version.completed"
    [after] = wait_deliveries(client, version.name, lambda found: len(found[0].attempts) == 2)
    assert after.state is WebhookDeliveryState.DELIVERED


def test_tweak_and_iterate_take_a_webhook_and_the_async_client_too(
    client: AtelierClient, server: ServerProcess, receiver: Receiver
) -> None:
    v1 = client.wait(client.generate("a python CLI").name)
    # No events named: started and the terminal one.
    v2 = client.wait(
        client.tweak(v1.name, "add file docs/usage.md", webhook=Webhook(receiver.url("/hooks"))).name
    )
    found = wait_deliveries(client, v2.name, lambda found: len(found) == 2 and _delivered(found))
    assert [d.event_type for d in found] == [WebhookEventType.STARTED, COMPLETED]

    async def work() -> str:
        async with AsyncAtelierClient(server.target, token=TOKEN) as aclient:
            hook = Webhook(receiver.url("/hooks"), (WebhookEventType.OUTPUT, COMPLETED))
            v3 = await aclient.iterate(v2.name, "add file app/schemas/project.py", webhook=hook)
            await aclient.wait(v3.name)
            deadline = time.monotonic() + 15
            while not _delivered(listed := [d async for d in aclient.webhook_deliveries(v3.name)]):
                assert time.monotonic() < deadline, listed
                await asyncio.sleep(0.05)
            assert [d.event_type for d in listed] == [WebhookEventType.OUTPUT, COMPLETED]
            replayed = await aclient.replay_webhook_delivery(listed[-1].name)
            assert replayed.name == listed[-1].name
            return v3.name

    v3 = asyncio.run(work())
    types = [
        r.payload["type"]
        for r in receiver.wait_for(lambda _: len(receiver.of(v3)) == 3)
        if r.payload["data"]["name"] == v3
    ]
    assert types == ["version.output", "version.completed", "version.completed"]


def test_a_url_the_server_does_not_allow_is_refused(client: AtelierClient) -> None:
    before = len(list(client.list_generations()))
    with pytest.raises(InvalidArgument) as caught:
        client.generate("a python CLI", webhook=Webhook("http://127.0.0.1:9/elsewhere"))
    assert caught.value.reason == "WEBHOOK_URL_NOT_ALLOWED"
    assert len(list(client.list_generations())) == before  # nothing was created
