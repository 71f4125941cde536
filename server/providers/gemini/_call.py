"""How we call the model: google-genai's client, our retries, per-attempt deadlines, error mapping.

Retries are ours, not the SDK's: at most `provider_max_attempts` requests per call, with capped
exponential backoff and jitter, on 408/429/5xx answers, timeouts and broken connections. Every
failure of the API becomes a ProviderError here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pydantic
from google import genai
from google.genai import errors, types
from google.genai.client import DebugConfig

from server.config import Settings
from server.providers._base import Progress, ProviderError
from server.providers.gemini._answer import Answer
from server.providers.gemini._contents import merge_parts

# How often Receive reports progress, at most.
_RECEIVE_REPORT_SECONDS = 0.5

# Statuses worth another try: timeouts, rate limits and server errors.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
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
    """Calls Gemini models for one provider, with one google-genai client for its whole life."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # One client for the provider's life: Client.__del__ closes its transport. Retries are
        # ours (see Call), so the SDK makes exactly one attempt per request; attempts=1 also
        # turns off the hidden retry its aiohttp transport would otherwise make.
        self._client = genai.Client(
            vertexai=False,
            api_key=settings.gemini_api_key,
            # Never record or replay, whatever GOOGLE_GENAI_CLIENT_MODE says.
            debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url or None,
                api_version=settings.gemini_api_version,
                timeout=int(settings.gemini_timeout_seconds * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        self._random = random.Random()

    def call(
        self,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        progress: Progress,
    ) -> Call:
        return Call(self._client, self._settings, self._random, model, contents, config, progress)

    async def aclose(self) -> None:
        """Closes the client's connections (the caller is unusable afterwards)."""
        await self._client.aio.aclose()


@dataclass
class _Received:
    """What has arrived so far on one attempt."""

    parts: list[types.Part] = field(default_factory=list)
    chunks: int = 0
    saw_candidate: bool = False
    finish_reason: str = ""
    finish_message: str = ""
    block_reason: str = ""
    block_message: str = ""
    usage: str = ""
    characters: int = 0
    data_bytes: int = 0

    def add(self, chunk: types.GenerateContentResponse) -> None:
        self.chunks += 1
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            self.block_reason = _enum_name(feedback.block_reason)
            self.block_message = feedback.block_reason_message or ""
        if chunk.usage_metadata is not None:
            usage = chunk.usage_metadata
            self.usage = (
                f"tokens: {usage.prompt_token_count or 0} in, {usage.candidates_token_count or 0} out"
                + (f", {usage.thoughts_token_count} thinking" if usage.thoughts_token_count else "")
            )
        if not chunk.candidates:
            return
        self.saw_candidate = True
        candidate = chunk.candidates[0]
        if candidate.content is not None and candidate.content.parts:
            for part in candidate.content.parts:
                self.parts.append(part)
                self.characters += len(part.text or "")
                if part.inline_data is not None and part.inline_data.data is not None:
                    self.data_bytes += len(part.inline_data.data)
        if candidate.finish_reason is not None:
            self.finish_reason = _enum_name(candidate.finish_reason)
            self.finish_message = candidate.finish_message or ""

    @property
    def amount(self) -> str:
        text = f"{self.characters} characters"
        return text + (f" and {self.data_bytes} bytes of images" if self.data_bytes else "")


def _enum_name(value: object) -> str:
    return str(getattr(value, "value", value))


class _AttemptTimedOut(Exception):
    """An attempt did not get its whole answer within ATELIER_GEMINI_ATTEMPT_SECONDS."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")


class _IncompleteAnswer(Exception):
    """The stream ended before the model said it had finished (worth another try)."""


class Call:
    """One call to the model: up to provider_max_attempts requests, until one answers in full."""

    def __init__(
        self,
        client: genai.Client,
        settings: Settings,
        jitter: random.Random,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        progress: Progress,
    ) -> None:
        self._client = client
        self._settings = settings
        self._jitter = jitter
        self._model = model
        self._contents = contents
        self._config = config
        self._progress = progress
        self._attempt = 0
        self._backoff = self._settings.provider_backoff_initial_seconds
        self._stream: AsyncIterator[types.GenerateContentResponse] | None = None
        self._first: types.GenerateContentResponse | None = None
        # When the current attempt must have its whole answer (anyio's clock).
        self._deadline = 0.0

    @property
    def _max_attempts(self) -> int:
        return max(1, self._settings.provider_max_attempts)

    async def start(self) -> None:
        """Sends the request until the model starts answering (its first chunk arrives)."""
        while True:
            self._attempt += 1
            self._deadline = anyio.current_time() + self._settings.gemini_attempt_seconds
            try:
                async with self._within_attempt():
                    models = self._client.aio.models
                    self._stream = await models.generate_content_stream(
                        model=self._model, contents=self._contents, config=self._config
                    )
                    try:
                        self._first = await anext(self._stream)
                    except StopAsyncIteration:
                        self._first = None
                return
            except Exception as exc:
                await self._close()
                await self._retry_or_raise(exc)

    async def receive(self) -> Answer:
        """Reads the answer to the end; a broken stream is retried with a new request."""
        while True:
            try:
                return await self._read()
            except Exception as exc:
                await self._close()
                await self._retry_or_raise(exc)
            await self.start()

    @contextlib.asynccontextmanager
    async def _within_attempt(self) -> AsyncIterator[None]:
        """Bounds the attempt as a whole: the SDK's timeout only bounds each wait for bytes, so an
        answer that trickles in could otherwise hold the job for ever."""
        with anyio.move_on_at(self._deadline) as scope:
            yield
        if scope.cancelled_caught:
            raise _AttemptTimedOut(self._settings.gemini_attempt_seconds)

    async def _read(self) -> Answer:
        async with self._within_attempt():
            return await self._read_all()

    async def _read_all(self) -> Answer:
        received = _Received()
        reported = time.monotonic()
        if self._first is not None:
            received.add(self._first)
        if self._stream is not None:
            async for chunk in self._stream:
                received.add(chunk)
                if time.monotonic() - reported >= _RECEIVE_REPORT_SECONDS:
                    reported = time.monotonic()
                    await self._progress.message(f"received {received.amount} so far")
        await self._close()
        await self._progress.message(
            f"received {received.amount} in {received.chunks} chunks"
            + (f" (finish reason {received.finish_reason})" if received.finish_reason else "")
        )
        return self._checked(received)

    def _checked(self, received: _Received) -> Answer:
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
            raise _IncompleteAnswer("the answer stopped before the model finished it")
        return Answer(
            parts=merge_parts(received.parts), finish_reason=received.finish_reason, usage=received.usage
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
        why = _transient(exc)
        if why is None:
            if isinstance(exc, (errors.APIError, *_UNREADABLE)):
                raise _provider_error(exc, self._model) from exc
            raise exc  # Not the API's doing: let the runner report (and log) a crash.
        if self._attempt >= self._max_attempts:
            raise _exhausted_error(exc, why, self._model, self._attempt) from exc
        cap = self._settings.provider_backoff_max_seconds
        ceiling = min(cap, self._backoff)
        # Equal jitter: between half and all of the current backoff, never above the cap.
        delay = ceiling / 2 + self._jitter.uniform(0, ceiling / 2)
        hinted = _retry_delay_hint(exc)
        if hinted is not None:
            delay = max(delay, min(cap, hinted))
        self._backoff = min(cap, self._backoff * 2)
        await self._progress.message(
            f"{why}, retrying in {delay:.1f} s (attempt {self._attempt + 1} of {self._max_attempts})"
        )
        await anyio.sleep(delay)


def _transient(exc: Exception) -> str | None:
    """A short description of a failure worth another try, or None."""
    if isinstance(exc, errors.APIError):
        if exc.code == 429:
            return "model busy (429)"
        if exc.code == 408:
            return "model timed out (408)"
        if exc.code in _TRANSIENT_STATUS:
            return f"model unavailable ({exc.code})"
        return None
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return "model timed out"
    if isinstance(
        exc, (httpx2.NetworkError, httpx2.RemoteProtocolError, ConnectionError)
    ) or _is_aiohttp_transient(exc):
        return f"connection to the model failed ({type(exc).__name__})"
    if isinstance(exc, _IncompleteAnswer):
        return "the answer stopped before it finished"
    if isinstance(exc, _AttemptTimedOut):
        return str(exc)
    return None


# What the SDK raises when an answer is not the JSON it expects.
_UNREADABLE = (errors.UnknownApiResponseError, json.JSONDecodeError, pydantic.ValidationError)


def _is_aiohttp_transient(exc: Exception) -> bool:
    # google-genai uses aiohttp when it is installed; it is not one of our dependencies.
    return any(
        cls.__module__.startswith("aiohttp")
        and cls.__name__ in ("ClientConnectionError", "ServerTimeoutError")
        for cls in type(exc).__mro__
    )


def _retry_delay_hint(exc: Exception) -> float | None:
    """The delay a 429 asks for (google.rpc.RetryInfo), in seconds, if any."""
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def _error_reason(exc: Exception) -> str:
    """The google.rpc.ErrorInfo reason of an API error, if it has one (e.g. API_KEY_INVALID)."""
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("ErrorInfo"):
            return str(detail.get("reason", ""))
    return ""


def _error_details(exc: Exception) -> list[dict[str, Any]]:
    """The `details` of a Google error body: [{"@type": ..., ...}, ...]."""
    body = exc.details if isinstance(exc, errors.APIError) else None
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [detail for detail in details or [] if isinstance(detail, dict)]


def _provider_error(exc: Exception, model: str) -> ProviderError:
    """The ProviderError for a failure that another try would not fix."""
    if not isinstance(exc, errors.APIError):
        return ProviderError(
            f"the Gemini API gave an answer that could not be read ({type(exc).__name__}: {exc})",
            reason="MODEL_BAD_RESPONSE",
            code="UNAVAILABLE",
        )
    said = exc.message or exc.status or "no message"
    key_refused = exc.code in (401, 403) or _error_reason(exc) == "API_KEY_INVALID"
    if key_refused:
        return ProviderError(
            f"the Gemini API key was refused for model {model}: {said} "
            "\u2014 check that the key is valid and has access to this model",
            reason="MODEL_PERMISSION_DENIED",
            code="PERMISSION_DENIED",
        )
    if exc.code == 400:
        return ProviderError(
            f"the Gemini API rejected the request to {model}: {said}",
            reason="MODEL_INVALID_ARGUMENT",
            code="INVALID_ARGUMENT",
        )
    if exc.code == 404:
        return ProviderError(
            f"the Gemini API has no model {model!r} that can generate content: {said}",
            reason="MODEL_NOT_FOUND",
            code="FAILED_PRECONDITION",
        )
    if 400 <= exc.code < 500:
        return ProviderError(
            f"the Gemini API refused the request to {model} ({exc.code}): {said}",
            reason="MODEL_REQUEST_REJECTED",
            code="FAILED_PRECONDITION",
        )
    return ProviderError(
        f"the Gemini API failed on {model} ({exc.code}): {said}",
        reason="MODEL_UNAVAILABLE",
        code="UNAVAILABLE",
        retryable=True,
    )


def _exhausted_error(exc: Exception, why: str, model: str, attempts: int) -> ProviderError:
    said = f": {exc.message}" if isinstance(exc, errors.APIError) and exc.message else ""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(exc, errors.APIError) and exc.code == 429:
        return ProviderError(
            f"{model} is over its rate limit or quota, after {tries}{said}",
            reason="MODEL_RATE_LIMITED",
            code="RESOURCE_EXHAUSTED",
            retryable=True,
        )
    return ProviderError(
        f"{model} is unavailable, after {tries} ({why}){said}",
        reason="MODEL_UNAVAILABLE",
        code="UNAVAILABLE",
        retryable=True,
    )
