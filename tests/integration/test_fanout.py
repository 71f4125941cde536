"""Fan-out and cost end to end: the real server, the real google-genai client, the Gemini fake.

A fan-out's outputs run at once and stream on one Progress call as each finishes; one failing
leaves the others alone. EstimateCost prices a request from a known price table and the fake's
token counter; the ledger carries what the fake's usageMetadata said, priced; GetUsage sums it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import batch_pb2, file_pb2
from atelier.v1 import generation_pb2 as gen
from google.protobuf import timestamp_pb2

from support.databases import fresh_database
from support.gemini_fake import USAGE, FakeGemini, RecordedRequest, Reply, count_tokens
from tests._support import Api, ServerProcess, check_error, fails
from tests.conftest import BACKENDS, check_backend

MODEL = "gemini-2.5-flash"
# The price table the server is given (USD): per 1M input tokens, per 1M output tokens.
INPUT_PRICE, OUTPUT_PRICE, ESTIMATED_OUTPUT = 2.0, 10.0, 100
CONFIG = f"""
[[models]]
name = "{MODEL}"
provider = "gemini"
input_price_per_million = {INPUT_PRICE}
output_price_per_million = {OUTPUT_PRICE}
estimated_output_tokens = {ESTIMATED_OUTPUT}
"""
# Each variant's answer comes after its own delay, so they finish in a known order; `back` fails.
# The gaps are wide enough (0.6 s) that a loaded machine starting the four a little apart does not
# reorder them.
DELAYS = {"front": 0.1, "back": 0.7, "side": 1.3, "three-quarter": 1.9}
COMPLETED, FAILED = gen.VERSION_STATE_COMPLETED, gen.VERSION_STATE_FAILED


def _answer(request: RecordedRequest) -> Reply:
    words = " ".join(request.texts()).split()
    variant = next((name for name in DELAYS if name in words), "")
    if variant == "back":
        return Reply.failure(400, "the back view is not allowed", delay_seconds=DELAYS[variant])
    return Reply.json_files(
        {f"{variant or 'view'}.md": f"# {variant}\n"}, summary=variant, delay_seconds=DELAYS.get(variant, 0.0)
    )


@pytest.fixture(scope="module", params=BACKENDS)
def gemini(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    backend = check_backend(request.param)
    tmp = tmp_path_factory.mktemp(f"fanout-{backend}")
    config = tmp / "atelier.toml"
    config.write_text(CONFIG)
    env = {
        "ATELIER_CONFIG": str(config),
        "ATELIER_PROVIDER": "gemini",
        "GEMINI_API_KEY": "test-key",
        "ATELIER_TOKENS": "alice-token:alice,bob-token:bob,root-token:root:admin",
        "ATELIER_PROVIDER_MAX_ATTEMPTS": "1",
        "ATELIER_PROGRESS_POLL_SECONDS": "0.5",
    }
    with FakeGemini(default=_answer) as fake, fresh_database(backend, tmp) as url:
        server = ServerProcess(
            database_url=url,
            log_path=tmp / "server.log",
            env={**env, "ATELIER_GEMINI_BASE_URL": fake.base_url},
        ).start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture(scope="module")
def channel(gemini: ServerProcess) -> Iterator[grpc.Channel]:
    with gemini.channel() as channel:
        yield channel


def _variants(*names: str) -> list[batch_pb2.Variant]:
    return [batch_pb2.Variant(name=name) for name in names]


def _batch(api: Api, name: str) -> batch_pb2.Batch:
    batch: batch_pb2.Batch = api.stub.GetBatch(
        pb.GetBatchRequest(name=name), metadata=api.metadata, timeout=10
    )
    return batch


def test_a_fan_out_streams_each_output_as_it_finishes_and_one_failure_fails_only_itself(
    channel: grpc.Channel,
) -> None:
    alice = Api(channel, "alice-token")
    first = alice.generate("a knight, character sheet", variants=_variants(*DELAYS), request_id="sheet-1")
    assert first.number == 1 and first.variant == "front" and not first.parent
    batch_name = first.batch
    assert batch_name == first.name.replace("/versions/1", "/batches/1")
    # A retry answers the same batch and starts nothing.
    again = alice.generate("a knight, character sheet", variants=_variants(*DELAYS), request_id="sheet-1")
    assert again.name == first.name

    started = time.monotonic()
    ended: dict[str, tuple[float, int]] = {}
    last_seq: dict[str, int] = {}
    events = alice.stub.Progress(pb.ProgressRequest(name=batch_name), metadata=alice.metadata, timeout=30)
    for event in events:
        assert event.batch == batch_name and event.resume_token
        assert event.seq == last_seq.get(event.version, 0) + 1  # in order, per output, no gaps
        last_seq[event.version] = event.seq
        if event.state in (COMPLETED, FAILED):
            ended[event.version] = (time.monotonic() - started, event.state)
            counts = event.batch_counts
            # The event that ends an output already counts it.
            assert counts.total == 4 and counts.completed + counts.failed == len(ended)
    assert counts.completed == 3 and counts.failed == 1 and counts.queued == counts.running == 0

    batch = _batch(alice, batch_name)
    by_variant = {v.variant: v for v in batch.versions}
    assert list(by_variant) == list(DELAYS) and [v.number for v in batch.versions] == [1, 2, 3, 4]
    assert batch.done and (batch.counts.completed, batch.counts.failed) == (3, 1)
    assert by_variant["back"].state == FAILED and by_variant["back"].error.message
    for name, version in by_variant.items():
        assert version.batch == batch_name and not version.parent and version.turn in (0, 1)
        assert name in version.prompt and version.prompt.startswith("a knight, character sheet")
        if name != "back":
            assert version.state == COMPLETED and alice.list_files(version.name) == [f"{name}.md"]
    # Each output came on the stream as it finished: in the order of the fake's delays, the first
    # one long before the last (the four ran at once, not one after another).
    order = sorted(ended, key=lambda version: ended[version][0])
    assert order == [by_variant[name].name for name in DELAYS]
    assert ended[order[0]][0] < ended[order[-1]][0] - 1.0

    # Each output is its own branch: tweaking `side` sends the model side's exchange only.
    side = by_variant["side"]
    tweak = alice.stub.Tweak(pb.TweakRequest(name=side.name, prompt="add a shield"), metadata=alice.metadata)
    assert alice.wait(tweak.name).state == COMPLETED
    turns = alice.stub.ListTurns(
        pb.ListTurnsRequest(parent=side.name.split("/versions/")[0] + "/session", version=tweak.name),
        metadata=alice.metadata,
    ).turns
    texts = " ".join(part.text for turn in turns for part in turn.parts)
    assert "side" in texts and "front" not in texts.split() and "add a shield" in texts

    # A resumed stream starts after the token's event; an ended batch's stream from its last token is empty.
    resumed = list(
        alice.stub.Progress(
            pb.ProgressRequest(name=batch_name, resume_token=event.resume_token), metadata=alice.metadata
        )
    )
    assert resumed == []

    # Regenerate fans out too: two siblings of `front`, a batch of their own.
    front = by_variant["front"]
    regenerated = alice.stub.Regenerate(
        pb.RegenerateRequest(name=front.name, count=2), metadata=alice.metadata, timeout=10
    )
    assert regenerated.batch.endswith(f"/batches/{regenerated.number}") and regenerated.variant == "1"
    list(alice.stub.Progress(pb.ProgressRequest(name=regenerated.batch), metadata=alice.metadata))
    again_batch = _batch(alice, regenerated.batch)
    assert [v.kind for v in again_batch.versions] == [gen.VERSION_KIND_REGENERATE] * 2
    assert again_batch.counts.completed == 2 and all(not v.parent for v in again_batch.versions)
    # Nobody else sees the batch.
    check_error(
        fails(lambda: _batch(Api(channel, "bob-token"), batch_name)),
        grpc.StatusCode.NOT_FOUND,
        "BATCH_NOT_FOUND",
    )


def test_the_ledger_carries_the_real_cost_and_usage_sums_it_by_principal(channel: grpc.Channel) -> None:
    alice, bob, root = (Api(channel, f"{who}-token") for who in ("alice", "bob", "root"))
    done = alice.wait(alice.generate("a one-file app about the front", model=MODEL).name)
    assert done.state == COMPLETED
    ledger = done.ledger
    output = USAGE["candidatesTokenCount"] + USAGE["thoughtsTokenCount"]
    expected = (USAGE["promptTokenCount"] * INPUT_PRICE + output * OUTPUT_PRICE) / 1e6
    assert (ledger.input_tokens, ledger.output_tokens) == (USAGE["promptTokenCount"], output)
    assert ledger.cost == pytest.approx(expected) and ledger.usage[0].cost == pytest.approx(expected)
    bobs = bob.wait(bob.generate("bob's front page").name)
    assert bobs.ledger.cost == pytest.approx(expected)

    def usage(api: Api, **fields: object) -> pb.GetUsageResponse:
        response: pb.GetUsageResponse = api.stub.GetUsage(
            pb.GetUsageRequest(**fields),  # type: ignore[arg-type]
            metadata=api.metadata,
            timeout=10,
        )
        return response

    mine = usage(alice)
    assert {row.principal for row in mine.rows} == {"alice"} and mine.currency == "USD"
    assert [row.model for row in mine.rows] == [MODEL] and mine.rows[0].day == time.strftime(
        "%Y-%m-%d", time.gmtime()
    )
    # Alice's versions so far, each priced from the same usageMetadata (the failed one answered nothing).
    assert mine.rows[0].cost == pytest.approx(mine.rows[0].versions * expected - expected * _failed(alice))
    assert mine.total_cost == pytest.approx(sum(row.cost for row in mine.rows))
    assert usage(alice, principal="bob").rows == []  # not an admin: only its own
    everyone = usage(root)
    assert {row.principal for row in everyone.rows} == {"alice", "bob"}
    assert [row.principal for row in usage(root, principal="bob").rows] == ["bob"]
    assert usage(root, principal="bob").total_cost == pytest.approx(expected)
    past = timestamp_pb2.Timestamp(seconds=int(time.time()) - 3600)
    assert usage(root, end_time=past).rows == []
    assert usage(root, start_time=past).total_cost == pytest.approx(everyone.total_cost)


def _failed(api: Api) -> int:
    """How many of the caller's versions failed without a usage (the fake's 400 carries none)."""
    response = api.stub.ListGenerations(pb.ListGenerationsRequest(page_size=100), metadata=api.metadata)
    failed = 0
    for generation in response.generations:
        versions = api.stub.ListVersions(
            pb.ListVersionsRequest(parent=generation.name), metadata=api.metadata
        )
        failed += sum(1 for v in versions.versions if v.state == FAILED and not v.ledger.usage)
    return failed


def test_estimate_cost_counts_the_prompt_with_the_models_counter_and_prices_every_output(
    channel: grpc.Channel,
) -> None:
    alice = Api(channel, "alice-token")
    prompt = "a knight character sheet"
    request = pb.GenerateRequest(prompt=prompt, model=MODEL, variants=_variants("front", "side", "back"))
    estimate = alice.stub.EstimateCost(pb.EstimateCostRequest(generate=request), metadata=alice.metadata)
    # The fake counts one token per word: each variant's prompt is the request's plus its name.
    per_output = [
        count_tokens({"contents": [{"parts": [{"text": f"{prompt}\n\n{name}"}]}]})
        for name in ("front", "side", "back")
    ]
    assert per_output == [5, 5, 5]
    assert (estimate.outputs, estimate.calls, estimate.input_tokens) == (3, 3, 15)
    assert estimate.input_tokens_counted and estimate.output_tokens == 3 * ESTIMATED_OUTPUT
    assert estimate.cost == pytest.approx((15 * INPUT_PRICE + 3 * ESTIMATED_OUTPUT * OUTPUT_PRICE) / 1e6)
    assert estimate.model == MODEL and estimate.price.input_per_million_tokens == INPUT_PRICE
    assert estimate.currency == "USD" and any("output tokens" in a for a in estimate.assumptions)
    counted = pb.EstimateCostRequest(generate=pb.GenerateRequest(prompt=prompt, count=4))
    assert alice.stub.EstimateCost(counted, metadata=alice.metadata).input_tokens == 4 * 4
    # A refinement also sends the base version's files: estimated, and said so.
    done = alice.wait(alice.generate("the front view").name)
    tweak = pb.EstimateCostRequest(tweak=pb.TweakRequest(name=done.name, prompt="make it red"))
    refined = alice.stub.EstimateCost(tweak, metadata=alice.metadata)
    assert refined.input_tokens > 3 and not refined.input_tokens_counted
    assert any("bytes of the base version's files" in a for a in refined.assumptions)
    # ListModels shows the price table.
    models = alice.stub.ListModels(pb.ListModelsRequest(), metadata=alice.metadata).models
    price = next(m.price for m in models if m.name == MODEL)
    assert (price.input_per_million_tokens, price.output_per_million_tokens) == (INPUT_PRICE, OUTPUT_PRICE)


def test_estimate_cost_counts_attachments_and_the_turns_a_tweak_sends_again(channel: grpc.Channel) -> None:
    alice = Api(channel, "alice-token")

    def estimate(request: pb.EstimateCostRequest) -> pb.EstimateCostResponse:
        answer: pb.EstimateCostResponse = alice.stub.EstimateCost(request, metadata=alice.metadata)
        return answer

    prompt, notes = "a knight character sheet", b"strong and brave, " * 10  # 180 bytes of text
    png = file_pb2.Attachment(name="sketch.png", mime_type="image/png", data=b"\x89PNG\r\n\x1a\n" + bytes(40))
    text = file_pb2.Attachment(name="notes.txt", mime_type="text/plain", data=notes)
    plain = estimate(pb.EstimateCostRequest(generate=pb.GenerateRequest(prompt=prompt, model=MODEL, count=2)))
    attached = estimate(
        pb.EstimateCostRequest(
            generate=pb.GenerateRequest(prompt=prompt, model=MODEL, count=2, attachments=[text, png])
        )
    )
    # The prompt is counted by the model's counter; each output's attachments are estimated here.
    assert (plain.input_tokens, plain.input_tokens_counted) == (2 * 4, True)
    assert attached.input_tokens - plain.input_tokens == 2 * (180 // 4 + 258)
    assert not attached.input_tokens_counted and attached.cost > plain.cost
    assert (
        "2 attachments (1 image or other media file at 258 tokens each, 180 bytes of text at 4 bytes "
        "a token), sent with each call, are estimated locally"
    ) in attached.assumptions
    assert not any("attachment" in said for said in plain.assumptions)
    bad = file_pb2.Attachment(name="sketch.png", mime_type="png", data=b"x")
    check_error(
        fails(
            lambda: estimate(
                pb.EstimateCostRequest(generate=pb.GenerateRequest(prompt=prompt, attachments=[bad]))
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ATTACHMENT",
    )
    # A Tweak sends the earlier turns of its branch again: two after v1, four after v2 (which the
    # fake answers with a file of its own, side.md).
    v1 = alice.wait(alice.generate("the first view", model=MODEL).name)
    tweaked = alice.stub.Tweak(
        pb.TweakRequest(name=v1.name, prompt="now from the side"), metadata=alice.metadata
    )
    v2 = alice.wait(tweaked.name)
    assert (v1.state, v2.state) == (COMPLETED, COMPLETED)
    of_v1, of_v2 = (
        estimate(pb.EstimateCostRequest(tweak=pb.TweakRequest(name=v.name, prompt="bigger")))
        for v in (v1, v2)
    )
    assert of_v2.input_tokens > of_v1.input_tokens and not of_v2.input_tokens_counted
    assert any(said.startswith("2 earlier turns of the conversation (") for said in of_v1.assumptions)
    assert any(said.startswith("4 earlier turns of the conversation (") for said in of_v2.assumptions)
    assert not any("not counted" in said for said in of_v2.assumptions)
    # A Tweak's attachment is priced too.
    with_png = estimate(
        pb.EstimateCostRequest(tweak=pb.TweakRequest(name=v2.name, prompt="bigger", attachments=[png]))
    )
    assert with_png.input_tokens - of_v2.input_tokens == 258
    # Regenerating v2 asks its prompt again after v1's two turns.
    again = estimate(pb.EstimateCostRequest(regenerate=pb.RegenerateRequest(name=v2.name)))
    assert any(said.startswith("2 earlier turns of the conversation (") for said in again.assumptions)


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"count": 0}, "INVALID_COUNT", "count"),
        ({"count": -1}, "INVALID_COUNT", "count"),
        ({"count": 17}, "INVALID_COUNT", "count"),
        ({"count": 2, "variants": [batch_pb2.Variant(name="a")]}, "VARIANTS_AND_COUNT", "count"),
        ({"variants": [batch_pb2.Variant(name=str(n)) for n in range(17)]}, "TOO_MANY_VARIANTS", "variants"),
        (
            {"variants": [batch_pb2.Variant(name="a"), batch_pb2.Variant(name="a")]},
            "INVALID_VARIANT",
            "variants[1].name",
        ),
        ({"variants": [batch_pb2.Variant(name="front view")]}, "INVALID_VARIANT", "variants[0].name"),
        ({"variants": [batch_pb2.Variant()]}, "INVALID_VARIANT", "variants[0]"),
        (
            {"variants": [batch_pb2.Variant(name="a", prompt_suffix="x" * 40_000)]},
            "PROMPT_TOO_LARGE",
            "prompt",
        ),
    ],
)
def test_bad_fan_outs_are_refused_and_nothing_is_made(
    channel: grpc.Channel, fields: dict[str, object], reason: str, field: str
) -> None:
    bob = Api(channel, "bob-token")
    before = bob.generation_count()
    error = fails(lambda: bob.generate("a knight", **fields))
    check_error(error, grpc.StatusCode.INVALID_ARGUMENT, reason, field)
    estimate = pb.EstimateCostRequest(generate=pb.GenerateRequest(prompt="a knight", **fields))  # type: ignore[arg-type]
    check_error(
        fails(lambda: bob.stub.EstimateCost(estimate, metadata=bob.metadata)),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert bob.generation_count() == before


def test_bad_batch_names_cursors_and_ranges_are_refused(channel: grpc.Channel) -> None:
    alice = Api(channel, "alice-token")
    first = alice.generate("two of them", count=2)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    progress = alice.stub.Progress
    check_error(
        fails(lambda: progress(pb.ProgressRequest(name=first.batch, after_seq=3), metadata=alice.metadata)),
        invalid,
        "INVALID_CURSOR",
    )
    check_error(
        fails(
            lambda: progress(
                pb.ProgressRequest(name=first.batch, resume_token="nope"), metadata=alice.metadata
            )
        ),
        invalid,
        "INVALID_CURSOR",
    )
    check_error(
        fails(
            lambda: progress(pb.ProgressRequest(name=first.name, resume_token="x"), metadata=alice.metadata)
        ),
        invalid,
        "INVALID_CURSOR",
    )
    check_error(fails(lambda: _batch(alice, first.batch + "x")), invalid, "INVALID_NAME")
    missing = first.batch.replace("/batches/1", "/batches/9")
    check_error(fails(lambda: _batch(alice, missing)), grpc.StatusCode.NOT_FOUND, "BATCH_NOT_FOUND")
    check_error(
        fails(lambda: alice.stub.EstimateCost(pb.EstimateCostRequest(), metadata=alice.metadata)),
        invalid,
        "MISSING_REQUEST",
    )
    now = timestamp_pb2.Timestamp(seconds=int(time.time()))
    backwards = pb.GetUsageRequest(start_time=now, end_time=now)
    check_error(
        fails(lambda: alice.stub.GetUsage(backwards, metadata=alice.metadata)), invalid, "INVALID_TIME_RANGE"
    )
    # A time protobuf cannot hold (found by make fuzz: it answered INTERNAL).
    beyond = pb.GetUsageRequest(start_time=timestamp_pb2.Timestamp(seconds=-(2**63)))
    check_error(
        fails(lambda: alice.stub.GetUsage(beyond, metadata=alice.metadata)), invalid, "INVALID_TIME_RANGE"
    )
    # A stream resumed from the middle brings exactly the events after that point, and the same end.
    full = list(progress(pb.ProgressRequest(name=first.batch), metadata=alice.metadata))
    middle = len(full) // 2
    resumed = list(
        progress(
            pb.ProgressRequest(name=first.batch, resume_token=full[middle].resume_token),
            metadata=alice.metadata,
        )
    )
    assert sorted((e.version, e.seq) for e in resumed) == sorted(
        (e.version, e.seq) for e in full[middle + 1 :]
    )
    assert resumed[-1].batch_counts == full[-1].batch_counts and full[-1].batch_counts.completed == 2
