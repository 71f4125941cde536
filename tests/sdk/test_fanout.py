"""Fan-out and cost through the SDK, both clients: a batch followed on one stream, waited for,
and priced; usage summed."""

from __future__ import annotations

import asyncio

import pytest
from atelier import AsyncAtelierClient, AtelierClient, Attachment, Variant, VersionState

from tests._client_support import TOKEN
from tests._support import ServerProcess, script


def test_a_batch_streams_every_output_and_waits_for_all(client: AtelierClient) -> None:
    first = client.generate(script(stages=1, delay=0.1), model="scripted", count=3)
    assert first.batch is not None and first.variant == "1"
    events = list(client.progress(first.batch))
    outputs = {event.version for event in events}
    assert outputs == {first.name.replace("/versions/1", f"/versions/{n}") for n in (1, 2, 3)}
    assert all(event.batch == first.batch and event.batch_counts for event in events)
    last = events[-1].batch_counts
    assert last is not None and last.done and last.completed == last.total == 3
    batch = client.wait_batch(first.batch)
    assert [v.variant for v in batch.versions] == ["1", "2", "3"] and batch.done
    assert all(v.state == VersionState.COMPLETED for v in batch.versions)


def test_variants_estimate_and_usage(client: AtelierClient) -> None:
    first = client.generate(
        "a tiny tool", variants=["front", Variant(name="side", prompt_suffix="from the side")]
    )
    batch = client.wait_batch(first.batch or "")
    assert [(v.variant, v.prompt.splitlines()[-1]) for v in batch.versions] == [
        ("front", "front"),
        ("side", "from the side"),
    ]
    estimate = client.estimate_cost("a tiny tool", variants=["front", "side"])
    # The offline model has no token counter: one token per 4 bytes, and no price.
    assert (estimate.outputs, estimate.input_tokens_counted, estimate.cost) == (2, False, 0.0)
    assert estimate.input_tokens == 2 * -(-len("a tiny tool\n\nfront") // 4)
    refined = client.estimate_cost("make it blue", tweak=batch.versions[0].name)
    assert refined.outputs == 1 and refined.input_tokens > 3
    usage = client.usage()
    assert usage.currency == "USD" and {row.principal for row in usage.rows} == {"alice"}
    assert sum(row.versions for row in usage.rows) >= 2


def test_an_estimate_prices_the_attachments(client: AtelierClient) -> None:
    notes = Attachment("notes.txt", "text/plain", "ü".encode() * 50)  # 100 bytes of UTF-8
    sketch = Attachment("sketch.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(40))
    plain = client.estimate_cost("a tiny tool", variants=["front", "side"])
    attached = client.estimate_cost("a tiny tool", variants=["front", "side"], attachments=[notes, sketch])
    assert attached.input_tokens - plain.input_tokens == 2 * (100 // 4 + 258)
    assert (
        "2 attachments (1 image or other media file at 258 tokens each, 100 bytes of text at 4 bytes "
        "a token), sent with each call, are estimated locally"
    ) in attached.assumptions
    done = client.wait(client.generate("a tiny tool").name)
    tweak = client.estimate_cost("make it blue", tweak=done.name)
    tweak_attached = client.estimate_cost("make it blue", tweak=done.name, attachments=[sketch])
    assert tweak_attached.input_tokens - tweak.input_tokens == 258
    assert any(a.startswith("2 earlier turns of the conversation (") for a in tweak.assumptions)
    with pytest.raises(ValueError, match="attachments"):
        client.estimate_cost(iterate=done.name, attachments=[sketch])


def test_the_async_client_fans_out_too(server: ServerProcess) -> None:
    async def run() -> None:
        async with AsyncAtelierClient(server.target, token=TOKEN) as client:
            first = await client.generate("an async tool", count=2)
            assert first.batch is not None
            seen = [event async for event in client.progress(first.batch)]
            assert {event.version for event in seen if event.terminal} == {
                first.name,
                first.name.replace("/versions/1", "/versions/2"),
            }
            batch = await client.wait_batch(first.batch)
            assert batch.counts.completed == 2
            regenerated = await client.regenerate(batch.versions[1].name, variants=["again"])
            assert regenerated.variant == "again" and regenerated.batch
            assert (await client.wait_batch(regenerated.batch)).counts.completed == 1

    asyncio.run(run())
