"""What requests cost: EstimateCost before one runs, and the usage summed after (GetUsage).

The estimate prices each output's calls at the model's prices (server.config's price table):
the prompt's input tokens counted by the model's provider (google-genai's count_tokens for
Gemini; the offline and scripted providers estimate one token per 4 bytes), what else each call
sends estimated locally at the providers' rule (`estimate_input_tokens`: the base version's files,
the attachments, the earlier turns of the conversation a Tweak replays), the output assumed from
the price table's per-call estimates. Everything it cannot know is said in its assumptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import storage
from server.config import ModelConfig
from server.domain import _transactions as transactions
from server.domain.costs import CURRENCY, Estimate, cost_of
from server.domain.generations._base import ServiceBase, refinable_version_row
from server.domain.generations._create import CreateVerbs, regenerable_row
from server.domain.generations._fanout import Output, Variant, plan_outputs
from server.domain.principals import Principal
from server.domain.resources import READABLE_STATES, UsageRow, VersionKind, VersionRef
from server.files import FileContent
from server.providers import (
    BYTES_PER_TOKEN,
    MEDIA_PART_TOKENS,
    ProviderError,
    TokenCount,
    as_text,
    estimate_input_tokens,
    estimate_tokens,
    is_media,
    text_size,
)


@dataclass(frozen=True, slots=True)
class CostQuestion:
    """The request to price: a Generate (no `base`), or a Tweak, Iterate or Regenerate of `base`.

    `prompt` is empty for a Regenerate (the base's own prompt is asked again), and so are its
    `attachments` (the base's own are sent again).
    """

    kind: VersionKind
    prompt: str
    model: str = ""
    base: VersionRef | None = None
    variants: Sequence[Variant] = ()
    count: int | None = None
    attachments: Sequence[FileContent] = ()


@dataclass(frozen=True, slots=True)
class _Base:
    """What a request builds on, read in one transaction: the version, the bytes of files the model
    is sent with it, the attachments a Regenerate sends again, and the stored turns of the
    conversation the job sends before the new prompt."""

    row: storage.Version
    tree_bytes: int
    attachments: list[FileContent]
    turns: list[storage.Turn]


class CostVerbs(CreateVerbs, ServiceBase):
    async def estimate_cost(self, *, caller: Principal, question: CostQuestion) -> Estimate:
        outputs = plan_outputs(question.variants, question.count, limit=self._settings.max_batch_size)
        self._check_attachments(question.attachments)
        assumptions: list[str] = []
        prompt, model, context_bytes = question.prompt, question.model, 0
        attachments: Sequence[FileContent] = question.attachments
        turns: list[storage.Turn] = []
        if question.kind != VersionKind.GENERATE:
            base = question.base
            assert base is not None
            known = await transactions.read(self._db, lambda tx: _base_of(tx, caller, base, question.kind))
            row = known.row
            # The model is sent at most the context budget of the files' contents (the others go
            # by path, size and hash, which this does not count).
            context_bytes = min(known.tree_bytes, self._settings.provider_context_budget_bytes)
            model = model or row.model
            if question.kind == VersionKind.REGENERATE:
                prompt, attachments = row.prompt, known.attachments
            turns = known.turns
            if context_bytes:
                assumptions.append(
                    f"the {context_bytes} bytes of the base version's files the model is sent (at most "
                    "the server's context budget) are estimated at one token per 4 bytes"
                )
        self.check_prompt(prompt)
        config = self._resolve_model(model)
        prompts = [output.prompt(prompt) for output in outputs] if outputs else [prompt]
        for asked in prompts:
            self.check_prompt(asked)
        # What every call sends besides its prompt, the same for each output of a fan-out.
        sent = (
            -(-context_bytes // BYTES_PER_TOKEN)
            + _attachment_tokens(attachments, assumptions)
            + _history_tokens(turns, assumptions)
        )
        counted = await self._count(config, prompts, assumptions)
        input_tokens = sum(count.tokens for count in counted) + sent * len(prompts)
        calls = len(prompts)
        output_tokens = config.estimated_output_tokens * calls
        images = config.estimated_images * calls
        assumptions.extend(_assumptions(config, outputs, counted))
        return Estimate(
            model=config,
            outputs=len(prompts),
            calls=calls,
            input_tokens=input_tokens,
            input_tokens_counted=all(count.counted for count in counted)
            and not (context_bytes or attachments or turns),
            output_tokens=output_tokens,
            images=images,
            cost=cost_of(config, input_tokens=input_tokens, output_tokens=output_tokens, images=images),
            assumptions=tuple(assumptions),
        )

    async def usage(
        self, *, caller: Principal, principal: str, start: datetime | None, end: datetime | None
    ) -> list[UsageRow]:
        """What was spent by principal, model and day: the caller's own, or (an admin) everyone's
        or `principal`'s. Another principal's name, asked by a non-admin, finds nothing."""
        owner = caller.owner_filter
        if owner is None:
            owner = principal or None
        elif principal and principal != owner:
            return []
        rows = await transactions.read(
            self._db, lambda tx: storage.usage_by_day(tx, owner=owner, start=start, end=end)
        )
        return [
            UsageRow(
                principal=row.owner,
                model=row.model,
                day=row.day,
                versions=row.versions,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                images=row.images,
                cost=row.cost,
            )
            for row in rows
        ]

    async def _count(
        self, model: ModelConfig, prompts: list[str], assumptions: list[str]
    ) -> list[TokenCount]:
        """Each prompt's tokens, each distinct prompt counted once, by the provider's counter; its
        estimate instead when the counter fails (said in the assumptions)."""
        counts: dict[str, TokenCount] = {}
        for prompt in dict.fromkeys(prompts):
            try:
                counts[prompt] = await self._runner.count_tokens(model, prompt)
            except ProviderError as error:
                assumptions.append(
                    f"the provider's token counter failed ({error.message}): estimated instead"
                )
                counts[prompt] = estimate_tokens(prompt)
        return [counts[prompt] for prompt in prompts]


def _base_of(tx: storage.Transaction, caller: Principal, base: VersionRef, kind: VersionKind) -> _Base:
    """The version a refinement builds on (or a Regenerate asks again), and what the job would
    send with it (as jobs._claim gathers it): the files' bytes, a Regenerate's attachments, and
    the turns of the branch it continues (a Tweak continues the base's; a Regenerate, the one
    its version continued)."""
    attachments: list[FileContent] = []
    if kind == VersionKind.REGENERATE:
        row = regenerable_row(tx, caller, base)
        assert row.id is not None
        stored = storage.list_attachments(tx, version_id=row.id)
        contents = storage.read_blobs(tx, (a.blob_sha256 for a in stored))
        attachments = [FileContent(a.name, a.mime_type, contents[a.blob_sha256]) for a in stored]
        head_turn_id = row.base_turn_id
        files: storage.Version | None = None
        if row.parent_number is not None:
            parent = storage.get_version(
                tx, owner=caller.owner_filter, generation_id=base.generation_id, number=row.parent_number
            )
            files = parent if parent is not None and parent.state in READABLE_STATES else None
    else:
        row = files = refinable_version_row(tx, caller, base, "")
        # An Iterate starts a conversation of its own: it is sent the files, not the turns.
        head_turn_id = row.head_turn_id if kind == VersionKind.TWEAK else None
    turns = storage.branch_turns(tx, head_turn_id=head_turn_id)
    if files is None or files.id is None:
        return _Base(row, 0, attachments, turns)
    tree_bytes = sum(entry.size for entry in storage.read_tree(tx, version_id=files.id).values())
    return _Base(row, tree_bytes, attachments, turns)


def _attachment_tokens(attachments: Sequence[FileContent], assumptions: list[str]) -> int:
    """The attachments' tokens, as the provider sends them (media as inline data, text as text,
    other binary files by name only), estimated locally and said so."""
    if not attachments:
        return 0
    media = sum(1 for attachment in attachments if is_media(attachment.mime_type))
    texts = [
        text
        for attachment in attachments
        if not is_media(attachment.mime_type) and (text := as_text(attachment.data)) is not None
    ]
    named = len(attachments) - media - len(texts)
    counted: list[str] = []
    if media:
        counted.append(f"{_plural(media, 'image or other media file')} at {MEDIA_PART_TOKENS} tokens each")
    if texts:
        counted.append(f"{text_size(*texts):,} bytes of text at {BYTES_PER_TOKEN} bytes a token")
    if named:
        counted.append(f"{_plural(named, 'other binary file')}, named only, not sent")
    assumptions.append(
        f"{_plural(len(attachments), 'attachment')} ({', '.join(counted)}), sent with each call, "
        f"{_are(len(attachments))} estimated locally"
    )
    return estimate_input_tokens(texts, media)


def _history_tokens(turns: Sequence[storage.Turn], assumptions: list[str]) -> int:
    """The tokens of the earlier turns the job sends before the new prompt, as they are stored:
    text parts by their bytes, inline data as media parts; estimated locally and said so."""
    if not turns:
        return 0
    parts = [part for turn in turns for part in turn.parts]
    media = sum(1 for part in parts if "blob" in part)
    texts = [str(part.get("text") or "") for part in parts if "blob" not in part]
    counted = [f"{text_size(*texts):,} bytes of text at {BYTES_PER_TOKEN} bytes a token"]
    if media:
        counted.append(f"{_plural(media, 'media part')} at {MEDIA_PART_TOKENS} tokens each")
    assumptions.append(
        f"{_plural(len(turns), 'earlier turn')} of the conversation ({', '.join(counted)}), which "
        f"the model is sent again with each call, {_are(len(turns))} estimated locally"
    )
    return estimate_input_tokens(texts, media)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def _assumptions(model: ModelConfig, outputs: list[Output] | None, counted: list[TokenCount]) -> list[str]:
    said = [
        f"{len(outputs) if outputs else 1} output(s), one call to the model each (a reply that is not a "
        "valid change set is asked once more, which this does not count)",
        f"each call answers about {model.estimated_output_tokens} output tokens (thinking included)"
        + (f" and {model.estimated_images} image(s)" if model.estimated_images else ""),
        "prices in USD from the server's price table: "
        f"{model.input_price_per_million:g} per 1M input tokens, "
        f"{model.output_price_per_million:g} per 1M output tokens, {model.image_price:g} per image",
    ]
    if not all(count.counted for count in counted):
        said.append(
            "the prompt's tokens are estimated at one token per 4 bytes of UTF-8 (the provider has "
            "no token counter, or it failed)"
        )
    if not (model.input_price_per_million or model.output_price_per_million or model.image_price):
        said.append(f"{model.name} has no price in the table: it is taken as free")
    return said


__all__ = ["CURRENCY", "CostQuestion", "CostVerbs"]
