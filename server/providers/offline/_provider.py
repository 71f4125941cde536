"""The offline provider: Plan, Write and Check, for a generation or a refinement."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from server.providers._base import (
    OPEN_GATE,
    ChangeSet,
    DraftAnswer,
    DraftRequest,
    ModelGate,
    Progress,
    ProviderError,
    ProviderRequest,
    TokenCount,
    estimate_tokens,
)
from server.providers.offline._checks import file_problems
from server.providers.offline._draft import Draft, Outcome
from server.providers.offline._instructions import parse_instructions
from server.providers.offline._plan import LABELS, plan_project
from server.providers.offline._prompt_draft import draft_prompt
from server.providers.offline._render import render_project

STAGE_TITLES = ("Plan", "Write", "Check")


class OfflineProvider:
    """Writes plausible files from the prompt alone.

    `pace_seconds` is a pause at the start of each stage, so that a person can watch the
    stages, cancel a job or stop the server while it runs (ATELIER_OFFLINE_PACE_SECONDS, for
    demonstrations). The pause is an awaited sleep: cancelling the job ends it at once.
    """

    def __init__(self, *, pace_seconds: float = 0.0) -> None:
        self._pace = pace_seconds

    @property
    def name(self) -> str:
        return "offline"

    async def ready(self) -> None:
        """Always ready: it runs in the server's process."""

    async def aclose(self) -> None:
        """Nothing to end."""

    def stage_titles(self, request: ProviderRequest) -> Sequence[str]:
        return STAGE_TITLES

    async def count_tokens(self, model: str, text: str) -> TokenCount:
        # No model, no token counter: the documented estimate.
        return estimate_tokens(text)

    async def run(
        self, request: ProviderRequest, progress: Progress, gate: ModelGate = OPEN_GATE
    ) -> ChangeSet:
        # A refinement is known by its tree: Regenerate of an empty tree generates.
        if request.source_files:
            return await _refine(request, progress, self._pace)
        return await _generate(request, progress, self._pace)

    async def draft(self, request: DraftRequest, gate: ModelGate = OPEN_GATE) -> DraftAnswer:
        """A deterministic rewrite of the text, asking no model (see `_prompt_draft`)."""
        return draft_prompt(request)


async def _generate(request: ProviderRequest, progress: Progress, pace: float) -> ChangeSet:
    async with progress.stage("Plan"):
        await _pause(pace)
        plan = plan_project(request.prompt)
        await progress.message(
            f"planned {len(plan.files)} files for {plan.title}, a {LABELS[plan.language]} project"
        )
    async with progress.stage("Write"):
        await _pause(pace)
        files = render_project(plan, request.attachments)
        for file in files:
            await progress.message(f"wrote {file.path} ({len(file.data)} bytes)")
        await progress.output([file.path for file in files])
    async with progress.stage("Check"):
        await _pause(pace)
        problems = [problem for file in files for problem in file_problems(file.path, file.data)]
        readme = files[0].data.decode("utf-8")
        problems += [
            f"README.md does not mention {file.path}" for file in files[1:] if f"`{file.path}`" not in readme
        ]
        if [file.path for file in files] != [path for path, _ in plan.files]:
            problems.append("the files written are not the files planned")
        _raise_if_any(problems)
        await progress.message(f"checked {len(files)} files")
    count = len(files)
    return ChangeSet(
        upserts=tuple(files),
        summary=f"wrote {count} file{'s' if count != 1 else ''}",
        notes=(f"language: {plan.language}", f"project: {plan.slug}"),
    )


async def _refine(request: ProviderRequest, progress: Progress, pace: float) -> ChangeSet:
    async with progress.stage("Plan"):
        await _pause(pace)
        if not request.prompt.strip():
            raise ProviderError("the prompt is empty", reason="OFFLINE_EMPTY_PROMPT", code="INVALID_ARGUMENT")
        instructions = parse_instructions(request.prompt, [file.path for file in request.source_files])
        count = len(instructions)
        await progress.message(
            f"planned {count} edit{'s' if count != 1 else ''}: "
            + "; ".join(instruction.summary for instruction in instructions)
        )
    async with progress.stage("Write"):
        await _pause(pace)
        draft = Draft(request.source_files)
        notes: list[str] = []
        for instruction in instructions:
            notes.append(draft.apply(instruction))
            await progress.message(notes[-1])
        outcome = draft.outcome()
        produced = sorted([file.path for file in outcome.upserts] + [new for _, new in outcome.renames])
        if produced:
            await progress.output(produced)
    async with progress.stage("Check"):
        await _pause(pace)
        notes += _check_outcome(outcome)
        written = len(outcome.upserts)
        await progress.message(f"checked {written} written file{'s' if written != 1 else ''}")
    return ChangeSet(
        upserts=outcome.upserts,
        deletions=outcome.deletions,
        renames=outcome.renames,
        summary=outcome.summary,
        notes=tuple(notes),
    )


async def _pause(pace: float) -> None:
    if pace > 0:
        await anyio.sleep(pace)


def _check_outcome(outcome: Outcome) -> list[str]:
    """Fails on a problem in our own writing; returns warnings for content we were given."""
    problems: list[str] = []
    warnings: list[str] = []
    for file in outcome.upserts:
        found = file_problems(file.path, file.data)
        baseline = outcome.baselines.get(file.path)
        if found and baseline is not None and file_problems(file.path, baseline):
            warnings.append(f"kept as given, though {found[0]}")
        else:
            problems += found
    _raise_if_any(problems)
    return warnings


def _raise_if_any(problems: list[str]) -> None:
    if problems:
        raise ProviderError(
            "the offline provider wrote invalid files: " + "; ".join(problems),
            reason="OFFLINE_CHECK_FAILED",
            code="INTERNAL",
        )
