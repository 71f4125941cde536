"""The Gemini provider: sends the request, receives the answer and reads it, in three stages."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from google.genai import types

from server.config import Settings
from server.cpu import off_the_loop
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
    Turn,
)
from server.providers.gemini._answer import (
    Answer,
    InvalidAnswer,
    describe_change_set,
    image_change_set,
    parse_change_set,
    text_change_set,
)
from server.providers.gemini._call import Caller
from server.providers.gemini._contents import to_content
from server.providers.gemini._draft import draft_prompt
from server.providers.gemini._errors import provider_error
from server.providers.gemini._request import (
    build_user_turn,
    describe_request,
    generation_config,
    repair_turn,
)

STAGE_TITLES = ("Send", "Receive", "Parse")


class GeminiProvider:
    """Serves Gemini models. Keeps one google-genai client for its whole life."""

    def __init__(self, settings: Settings) -> None:
        if not settings.gemini_api_key:
            raise ValueError("the gemini provider needs an API key: set GEMINI_API_KEY")
        self._settings = settings
        self._caller = Caller(settings)

    @property
    def name(self) -> str:
        return "gemini"

    def stage_titles(self, request: ProviderRequest) -> Sequence[str]:
        return STAGE_TITLES

    def is_image_model(self, model: str) -> bool:
        """Whether `model` answers with images (its ModelConfig lists "image" as an output)."""
        try:
            found = self._settings.find_model(model)
        except ValueError:
            found = None
        if found is not None:
            return "image" in found.output_modalities
        return model == self._settings.gemini_image_model

    async def ready(self) -> None:
        """Waits until calls can go out at once: the worker process that makes them has started."""
        await self._caller.worker.ready()

    async def count_tokens(self, model: str, text: str) -> TokenCount:
        """Gemini's own count (models.countTokens), in one attempt: an estimate asks no retries."""
        try:
            tokens = await self._caller.worker.count_tokens(model, text)
        except Exception as exc:
            raise provider_error(exc, model) from exc
        return TokenCount(tokens=tokens, counted=True)

    async def aclose(self) -> None:
        """Ends the worker process and its connections (the provider is unusable afterwards)."""
        await self._caller.aclose()

    async def run(
        self, request: ProviderRequest, progress: Progress, gate: ModelGate = OPEN_GATE
    ) -> ChangeSet:
        image = self.is_image_model(request.model)
        async with progress.stage("Send"):
            # Up to the context budget of file contents to format: off the loop when large.
            weight = sum(len(f.data) for f in (*request.source_files, *request.attachments))
            user_turn = await off_the_loop(
                weight,
                functools.partial(
                    build_user_turn,
                    request,
                    image_model=image,
                    budget=self._settings.provider_context_budget_bytes,
                ),
            )
            contents = [*(to_content(turn) for turn in request.history), to_content(user_turn)]
            config = generation_config(request, image_model=image)
            await progress.message(describe_request(request, user_turn))
            call = self._caller.call(request.model, contents, config, progress, gate)
            await call.start()
        async with progress.stage("Receive"):
            answer = await call.receive()
        async with progress.stage("Parse"):
            if image:
                change_set = await off_the_loop(
                    len(answer.text) + sum(len(p.data or b"") for p in answer.parts),
                    image_change_set,
                    request,
                    user_turn,
                    answer,
                )
            else:
                change_set = await self._text_change_set(
                    request, user_turn, contents, config, answer, progress, gate
                )
            if change_set.upserts:
                await progress.output([file.path for file in change_set.upserts])
            await progress.message(describe_change_set(change_set))
        return change_set

    async def draft(self, request: DraftRequest, gate: ModelGate = OPEN_GATE) -> DraftAnswer:
        """Asks the text model `request.model` for a prompt suited to the target model."""
        return await draft_prompt(self._caller, request, gate)

    async def _text_change_set(
        self,
        request: ProviderRequest,
        user_turn: Turn,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        answer: Answer,
        progress: Progress,
        gate: ModelGate,
    ) -> ChangeSet:
        try:
            parsed = await off_the_loop(len(answer.text), parse_change_set, answer.text, request)
            return text_change_set(request, (user_turn, answer.turn), parsed, answer)
        except InvalidAnswer as exc:
            problem = exc.problem + answer.cut_off_note
        # One repair: the model sees its own answer and what is wrong with it. An empty answer
        # cannot be sent back (a content needs parts), so then the same request is simply sent again.
        await progress.message(f"the model's answer was not a valid change set ({problem}); asking once more")
        exchange: tuple[Turn, ...] = (answer.turn, repair_turn(problem)) if answer.parts else ()
        repair = [*contents, *map(to_content, exchange)]
        call = self._caller.call(request.model, repair, config, progress, gate)
        await call.start()
        second = await call.receive()
        try:
            parsed = await off_the_loop(len(second.text), parse_change_set, second.text, request)
        except InvalidAnswer as exc:
            raise ProviderError(
                f"{request.model} did not answer with a valid change set, twice: {exc.problem}"
                f"{second.cut_off_note}",
                reason="MODEL_OUTPUT_INVALID",
                code="INTERNAL",
            ) from None
        turns = (user_turn, *exchange, second.turn)
        return text_change_set(request, turns, parsed, second, notes=("the first answer was repaired",))
