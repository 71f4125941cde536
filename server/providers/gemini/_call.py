"""How we call the model: google-genai's client, the model's gate, our retries, per-attempt deadlines.

Every request to the model first passes the gate (`ModelGate.before_request`, given the
request's input tokens as estimated here), then tells it how the model answered: a 429 is
`refused`, with the delay the answer asks for, and the job waits out the model's cooldown in the
gate without spending an attempt; anything else is `answered`. A 429 for a used-up daily quota
fails the call at once. An answer's usage tells the gate the model's own count of the input
tokens (`tokens_counted`), which corrects the estimate.

Other retries are ours, not the SDK's: at most `provider_max_attempts` attempts per call, with
capped exponential backoff and jitter, on 408/5xx answers, timeouts and broken connections.
Every failure of the API becomes a ProviderError here (`_errors` says which), and nowhere else.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator

import anyio
from google.genai import errors, types

from server import metrics
from server.config import Settings
from server.providers._base import ModelGate, Progress, ProviderError
from server.providers.gemini._answer import Answer
from server.providers.gemini._contents import estimated_input_tokens, merge_parts, without_thought_text
from server.providers.gemini._errors import (
    UNREADABLE,
    AttemptTimedOut,
    IncompleteAnswer,
    daily_quota_error,
    exhausted_error,
    is_daily_quota,
    is_quota_refusal,
    provider_error,
    refuses_thoughts,
    requested_delay,
    transient,
)
from server.providers.gemini._received import Received
from server.providers.gemini._remote import GeminiWorker
from server.providers.gemini._worker import WorkerOptions

# How often Receive reports progress, at most.
_RECEIVE_REPORT_SECONDS = 0.5

# Finish reasons that mean the answer was withheld for policy reasons.
_BLOCKED_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "ESCALATION",
        "PUP_LIMITED_DISABLED",
    }
)


class Caller:
    """Calls Gemini models for one provider, through one google-genai client for its whole life,
    which lives in a worker process of its own (`_worker`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._worker = GeminiWorker(
            WorkerOptions(
                api_key=settings.gemini_api_key,
                base_url=settings.gemini_base_url or None,
                api_version=settings.gemini_api_version,
                timeout_ms=int(settings.gemini_timeout_seconds * 1000),
                # Room for every job this process runs at once (see _transport).
                max_connections=settings.max_in_flight,
            )
        )
        self.jitter = random.Random()
        # Models that answered that they do not think: they are asked without thought summaries.
        self._thoughtless: set[str] = set()

    @property
    def worker(self) -> GeminiWorker:
        return self._worker

    @property
    def settings(self) -> Settings:
        return self._settings

    def call(
        self,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        progress: Progress,
        gate: ModelGate,
    ) -> Call:
        if model in self._thoughtless:
            config = without_thoughts(config)
        return Call(self, model, contents, config, progress, gate)

    def does_not_think(self, model: str) -> None:
        self._thoughtless.add(model)

    async def aclose(self) -> None:
        """Ends the worker process and its connections (the caller is unusable afterwards)."""
        await self._worker.aclose()


def without_thoughts(config: types.GenerateContentConfig) -> types.GenerateContentConfig:
    return config.model_copy(update={"thinking_config": None})


def _asks_for_thoughts(config: types.GenerateContentConfig) -> bool:
    return config.thinking_config is not None and bool(config.thinking_config.include_thoughts)


class Call:
    """One call to the model: requests until one answers in full, within provider_max_attempts
    failed attempts (a 429 is not one: the gate makes the job wait instead)."""

    def __init__(
        self,
        caller: Caller,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        progress: Progress,
        gate: ModelGate,
    ) -> None:
        self._caller = caller
        self._settings = caller.settings
        self._model = model
        self._contents = contents
        self._config = config
        self._progress = progress
        self._gate = gate
        # What each request of the call takes from the model's tokens-per-minute budget.
        self._input_tokens = estimated_input_tokens(contents, config)
        self._failures = 0
        self._backoff = self._settings.provider_backoff_initial_seconds
        self._stream: AsyncIterator[types.GenerateContentResponse] | None = None
        self._first: types.GenerateContentResponse | None = None
        # When the current attempt must have its whole answer (anyio's clock).
        self._deadline = 0.0

    @property
    def _max_attempts(self) -> int:
        return max(1, self._settings.provider_max_attempts)

    async def start(self) -> None:
        """Sends the request until the model starts answering (its first chunk arrives).

        Each request waits for the gate first, and the gate hears how each one ended: every
        request it lets out is followed by exactly one answered() or refused()."""
        while True:
            await self._gate.before_request(self._input_tokens)
            self._deadline = anyio.current_time() + self._settings.gemini_attempt_seconds
            try:
                async with self._within_attempt():
                    self._stream = await self._caller.worker.stream(self._model, self._contents, self._config)
                    try:
                        self._first = await anext(self._stream)
                    except StopAsyncIteration:
                        self._first = None
            except Exception as exc:
                await self._close()
                if is_quota_refusal(exc):
                    await self._refused(exc)
                    continue
                self._gate.answered()
                if refuses_thoughts(exc) and _asks_for_thoughts(self._config):
                    await self._ask_without_thoughts()
                    continue
                await self._retry_or_raise(exc)
                continue
            except BaseException:
                # Cancelled: the model neither answered nor refused, so the gate hears nothing
                # (an answer would end a cooldown early). The runner hands a probe this job
                # held to another job when the job ends.
                await self._close()
                raise
            self._gate.answered()
            return

    async def receive(self) -> Answer:
        """Reads the answer to the end; a broken stream is retried with a new request."""
        while True:
            try:
                return await self._read()
            except Exception as exc:
                await self._close()
                await self._retry_or_raise(exc)
            await self.start()

    async def _refused(self, exc: errors.APIError) -> None:
        """The model refused for quota: fails at once if the quota is the day's, else tells the
        gate how long the model asks to wait (the next before_request waits it out)."""
        if is_daily_quota(exc):
            # The model did answer; only this job's call ends, and the gate has no cooldown to start.
            self._gate.answered()
            raise daily_quota_error(exc, self._model) from exc
        delay = requested_delay(exc)
        self._gate.refused(retry_after=delay)
        asked = f"; it asks to wait {delay:.1f} s" if delay is not None else ""
        await self._progress.message(f"{self._model} is over its quota (429){asked}")

    async def _ask_without_thoughts(self) -> None:
        self._caller.does_not_think(self._model)
        self._config = without_thoughts(self._config)
        await self._progress.message(f"{self._model} does not think: asking again without thought summaries")

    @contextlib.asynccontextmanager
    async def _within_attempt(self) -> AsyncIterator[None]:
        """Bounds the attempt as a whole: the SDK's timeout only bounds each wait for bytes, so an
        answer that trickles in could otherwise hold the job for ever."""
        with anyio.move_on_at(self._deadline) as scope:
            yield
        if scope.cancelled_caught:
            raise AttemptTimedOut(self._settings.gemini_attempt_seconds)

    async def _read(self) -> Answer:
        async with self._within_attempt():
            return await self._read_all()

    async def _read_all(self) -> Answer:
        received = Received()
        reported = time.monotonic()
        try:
            if self._first is not None:
                received.add(self._first)
            if self._stream is not None:
                async for chunk in self._stream:
                    received.add(chunk)
                    if time.monotonic() - reported >= _RECEIVE_REPORT_SECONDS:
                        news = received.news()
                        if news is not None:
                            reported = time.monotonic()
                            await self._progress.message(news)
        finally:
            # One report per request that said what it used, whether or not its answer is whole.
            usage = received.usage
            if usage is not None:
                self._progress.usage(usage)
                if usage.input_tokens:  # 0: the model did not count them
                    self._gate.tokens_counted(estimated=self._input_tokens, actual=usage.input_tokens)
        await self._close()
        await self._progress.message(
            f"received {received.amount} in {received.chunks} chunks"
            + (f" (finish reason {received.finish_reason})" if received.finish_reason else "")
        )
        return self._checked(received)

    def _checked(self, received: Received) -> Answer:
        model = self._model
        if received.block_reason:
            detail = f": {received.block_message}" if received.block_message else ""
            raise ProviderError(
                f"{model} refused the prompt (blocked: {received.block_reason}){detail}",
                reason="MODEL_SAFETY_BLOCKED",
                code="FAILED_PRECONDITION",
            )
        if not received.saw_candidate:
            raise ProviderError(
                f"{model} returned no answer (no candidates) and gave no reason",
                reason="MODEL_NO_CANDIDATES",
                code="UNAVAILABLE",
                retryable=True,
            )
        if received.finish_reason in _BLOCKED_FINISH:
            detail = f": {received.finish_message}" if received.finish_message else ""
            raise ProviderError(
                f"{model} withheld its answer (finish reason {received.finish_reason}){detail}",
                reason="MODEL_SAFETY_BLOCKED",
                code="FAILED_PRECONDITION",
            )
        if not received.finish_reason:
            raise IncompleteAnswer("the answer stopped before the model finished it")
        parts = merge_parts(received.parts)
        return Answer(
            parts=without_thought_text(parts) if _asks_for_thoughts(self._config) else parts,
            finish_reason=received.finish_reason,
            usage=received.usage_note,
        )

    async def _close(self) -> None:
        stream, self._stream, self._first = self._stream, None, None
        aclose = getattr(stream, "aclose", None)
        if aclose is None:
            return
        # Releasing the connection must not be interrupted, even when the job is being cancelled.
        # A stream that failed has nothing left to release, so its errors are of no interest.
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await aclose()

    async def _retry_or_raise(self, exc: Exception) -> None:
        """Waits before the next attempt if `exc` is worth one and attempts remain; else raises."""
        if isinstance(exc, ProviderError):
            raise exc
        why = transient(exc)
        if why is None:
            if isinstance(exc, (errors.APIError, *UNREADABLE)):
                raise provider_error(exc, self._model) from exc
            raise exc  # Not the API's doing: let the runner report (and log) a crash.
        metrics.MODEL_ERRORS.labels(self._model).inc()
        self._failures += 1
        if self._failures >= self._max_attempts:
            raise exhausted_error(exc, why, self._model, self._failures) from exc
        cap = self._settings.provider_backoff_max_seconds
        ceiling = min(cap, self._backoff)
        # Equal jitter: between half and all of the current backoff, never above the cap.
        delay = ceiling / 2 + self._caller.jitter.uniform(0, ceiling / 2)
        hinted = requested_delay(exc)
        if hinted is not None:
            delay = max(delay, min(cap, hinted))
        self._backoff = min(cap, self._backoff * 2)
        await self._progress.message(
            f"{why}, retrying in {delay:.1f} s (attempt {self._failures + 1} of {self._max_attempts})"
        )
        await anyio.sleep(delay)
