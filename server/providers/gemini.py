"""The Gemini provider: Google's models through google-genai, with our own retries.

One call is three stages:

- Send: builds the request (the branch's earlier turns, then the new user turn) and sends it,
  until the model starts answering.
- Receive: reads the streamed answer, reporting how much has arrived every so often.
- Parse: turns the answer into a change set. A text model answers with a JSON change set
  (asked for with a JSON schema); an image model answers with images, which become files.

The new user turn carries the prompt, the attachments and (when a tree is refined) the tree's
files: see `build_user_turn` for the exact rules and the context budget. The turns
a call adds (`ChangeSet.turns`) are exactly the contents it sent and received, with the model's
streamed chunks merged into one turn, so sending them back as history replays them unchanged.

Retries are ours, not the SDK's: at most `provider_max_attempts` requests per call, with capped
exponential backoff and jitter, on 408/429/5xx answers, timeouts and broken connections. Every
failure is a ProviderError; a failed call returns no files at all.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import posixpath
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import anyio
import httpx2
import pydantic
from google import genai
from google.genai import errors, types
from google.genai.client import DebugConfig

from server.config import Settings
from server.files import guess_mime_type, path_problem
from server.providers._base import (
    Attachment,
    ChangeSet,
    FileUpsert,
    Part,
    Progress,
    ProviderError,
    ProviderRequest,
    SourceFile,
    Turn,
)

STAGE_TITLES = ("Send", "Receive", "Parse")
# How many bytes of the tree's files one user turn may carry; the rest is listed by path and size.
FILE_CONTEXT_BUDGET = 1024 * 1024
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
# Inline data types Gemini reads; other binary files are listed, not sent.
_INLINE_MEDIA = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "application/pdf"}
)
_IMAGE_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}
# The header of a file shown in a user turn; also how earlier turns are read back (see _last_seen).
_FILE_HEADER = re.compile(r"^--- file: (?P<path>.+) \((?P<mime>[^,()]*), (?P<size>\d+) bytes\) ---$")

SYSTEM_INSTRUCTION = """\
You are Atelier's generator. You produce and modify a tree of files: a small project.

Answer with one JSON object and nothing else (no prose, no Markdown fences):
{"summary": "...", "upserts": [{"path": "...", "content": "...", "encoding": "text", \
"mime_type": "..."}], "deletions": ["..."]}

- "upserts" lists every file you create or change, each with its complete new content, never a \
diff or an excerpt. Do not list files you leave unchanged.
- Files you do not mention are kept as they are. List a path in "deletions" only when the \
request asks for that file to be removed.
- Paths are relative, use "/", and never start with "/" or contain "..".
- "encoding" is "text" for text (UTF-8) files and "base64" only for binary files.
- "mime_type" is the file's MIME type, for example "text/x-python" or "text/markdown".
- "summary" says in one or two sentences what you did.

The latest message is the request to carry out now. When a project exists already, that message \
lists its files and shows their current content (files unchanged since an earlier message are \
not shown again). Earlier messages are the conversation so far: the requests and your answers."""

REPAIR_REQUEST = (
    "Your last answer was not a valid change set: {problem}. Answer again with only the JSON "
    'object {{"summary": ..., "upserts": [...], "deletions": [...]}} described in your instructions.'
)

CHANGE_SET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "description": "What was done, in one or two sentences."},
        "upserts": {
            "type": "array",
            "description": "Every file created or changed, with its complete new content.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Relative path, with / separators."},
                    "content": {"type": "string", "description": "The whole content of the file."},
                    "encoding": {"type": "string", "enum": ["text", "base64"]},
                    "mime_type": {"type": "string"},
                },
                "required": ["path", "content", "encoding", "mime_type"],
            },
        },
        "deletions": {
            "type": "array",
            "description": "Paths of files to remove; only when the request asks for it.",
            "items": {"type": "string"},
        },
    },
    "required": ["summary", "upserts", "deletions"],
}


class GeminiProvider:
    """Serves Gemini models. Keeps one google-genai client for its whole life."""

    def __init__(self, settings: Settings) -> None:
        if not settings.gemini_api_key:
            raise ValueError("the gemini provider needs an API key: set GEMINI_API_KEY")
        self._settings = settings
        # One client for the provider's life: Client.__del__ closes its transport. Retries are
        # ours (see _Call), so the SDK makes exactly one attempt per request; attempts=1 also
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

    async def aclose(self) -> None:
        """Closes the client's connections (the provider is unusable afterwards)."""
        await self._client.aio.aclose()

    async def run(self, request: ProviderRequest, progress: Progress) -> ChangeSet:
        image = self.is_image_model(request.model)
        async with progress.stage("Send"):
            user_turn = build_user_turn(
                request, image_model=image, budget=self._settings.provider_context_budget_bytes
            )
            contents = [*(to_content(turn) for turn in request.history), to_content(user_turn)]
            config = self._config(request, image_model=image)
            await progress.message(_describe_request(request, user_turn))
            call = _Call(self, request.model, contents, config, progress)
            await call.start()
        async with progress.stage("Receive"):
            answer = await call.receive()
        async with progress.stage("Parse"):
            if image:
                change_set = image_change_set(request, user_turn, answer)
            else:
                change_set = await self._text_change_set(
                    request, user_turn, contents, config, answer, progress
                )
            if change_set.upserts:
                await progress.output([file.path for file in change_set.upserts])
            await progress.message(_describe_change_set(change_set))
        return change_set

    def _config(self, request: ProviderRequest, *, image_model: bool) -> types.GenerateContentConfig:
        if image_model:
            return types.GenerateContentConfig(
                system_instruction=request.system_instruction or None,
                response_modalities=["TEXT", "IMAGE"],
            )
        instruction = SYSTEM_INSTRUCTION
        if request.system_instruction:
            instruction += "\n\n" + request.system_instruction
        return types.GenerateContentConfig(
            system_instruction=instruction,
            response_mime_type="application/json",
            response_json_schema=CHANGE_SET_SCHEMA,
        )

    async def _text_change_set(
        self,
        request: ProviderRequest,
        user_turn: Turn,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        answer: Answer,
        progress: Progress,
    ) -> ChangeSet:
        try:
            parsed = parse_change_set(answer.text, request)
            return _text_result(request, (user_turn, answer.turn), parsed, answer)
        except InvalidAnswer as exc:
            problem = exc.problem + answer.cut_off_note
        # One repair: the model sees its own answer and what is wrong with it. An empty answer
        # cannot be sent back (a content needs parts), so then the same request is simply sent again.
        await progress.message(f"the model's answer was not a valid change set ({problem}); asking once more")
        repair = Turn(role="user", parts=(Part(text=REPAIR_REQUEST.format(problem=problem)),))
        exchange: tuple[Turn, ...] = (answer.turn, repair) if answer.parts else ()
        call = _Call(self, request.model, [*contents, *map(to_content, exchange)], config, progress)
        await call.start()
        second = await call.receive()
        try:
            parsed = parse_change_set(second.text, request)
        except InvalidAnswer as exc:
            raise ProviderError(
                f"{request.model} did not answer with a valid change set, twice: {exc.problem}"
                f"{second.cut_off_note}",
                reason="MODEL_OUTPUT_INVALID",
                code="INTERNAL",
            ) from None
        turns = (user_turn, *exchange, second.turn)
        return _text_result(request, turns, parsed, second, notes=("the first answer was repaired",))


# The user turn.


def build_user_turn(
    request: ProviderRequest, *, image_model: bool, budget: int = FILE_CONTEXT_BUDGET
) -> Turn:
    """The new user turn: what the model is asked now. The same request always gives the same turn.

    Text models (context first and the request last, as Google advises for long contexts):
    - when a tree is refined (source_files not empty), a manifest of every file (path, type, size,
      and whether it is shown), then the content of each file the conversation has not already
      shown unchanged (see `_last_seen`), most relevant first (files the prompt names, then text,
      then images and PDFs, in tree order), within `budget` bytes (the setting
      provider_context_budget_bytes). Files over the budget, and binary files Gemini cannot
      read, are listed by path, type, size and SHA-256 only. With no history every file is a
      candidate, so ITERATE (and any first turn) sends the tree; a TWEAK sends only what changed
      since the model last saw it;
    - then each attachment;
    - last, the prompt, verbatim.

    Image models (the prompt first, then the pictures, as in Google's image-editing examples):
    - the prompt, verbatim, then each attachment;
    - when a tree is refined, its primary image (the first image file) as inline data, unless it
      is exactly the last image of the history, which the model has already, with its thought
      signature (the usual TWEAK). Other files are not sent.

    An attachment is a text part naming it, followed by its content: text inline in that part,
    images, PDFs, audio and video as an inline_data part; other binaries are named only.
    """
    attachments = [part for attachment in request.attachments for part in _attachment_parts(attachment)]
    if image_model:
        context = _image_context(request) if request.source_files else []
        parts = [Part(text=request.prompt), *attachments, *context]
    else:
        files = (
            _files_context(request.source_files, _last_seen(request.history), request.prompt, budget)
            if request.source_files
            else []
        )
        parts = [*files, *attachments, Part(text=request.prompt)]
    return Turn(role="user", parts=tuple(parts))


def _attachment_parts(attachment: Attachment) -> list[Part]:
    label = f"Attachment {attachment.name} ({attachment.mime_type}, {len(attachment.data)} bytes)"
    if _is_media(attachment.mime_type):
        return [Part(text=label + ":"), Part(data=attachment.data, mime_type=attachment.mime_type)]
    text = _as_text(attachment.data)
    if text is not None:
        return [Part(text=f"{label}:\n{text}")]
    return [Part(text=f"{label}: binary content, not shown.")]


def _files_context(
    files: Sequence[SourceFile], seen: Mapping[str, bytes], prompt: str, budget: int
) -> list[Part]:
    texts = {file.path: _as_text(file.data) for file in files if not _is_media(file.mime_type)}
    candidates = [file for file in files if seen.get(file.path) != file.data]
    # Most relevant first: the files the prompt names, then text (what the model edits), then
    # pictures and PDFs (context).
    words = prompt.lower()
    candidates.sort(
        key=lambda file: (
            not (file.path.lower() in words or PurePosixPath(file.path).name.lower() in words),
            texts.get(file.path) is None,
        )
    )
    shown: list[SourceFile] = []
    for file in candidates:
        readable = texts.get(file.path) is not None or _is_media(file.mime_type)
        if readable and len(file.data) <= budget:
            shown.append(file)
            budget -= len(file.data)
    shown_paths = {file.path for file in shown}

    total = sum(len(file.data) for file in files)
    lines = [
        f"The project's current files ({len(files)} files, {total} bytes). "
        "Files you do not change are kept as they are."
    ]
    for file in files:
        digest = hashlib.sha256(file.data).hexdigest()
        line = f"- {file.path} ({file.mime_type}, {len(file.data)} bytes, sha256 {digest})"
        if file.path in shown_paths:
            line += ": shown below"
        elif seen.get(file.path) == file.data:
            line += ": unchanged since it was last shown in this conversation"
        elif texts.get(file.path) is None and not _is_media(file.mime_type):
            line += ": binary, not shown"
        else:
            line += ": not shown, over the context budget"
        lines.append(line)
    parts = [Part(text="\n".join(lines))]
    for file in shown:
        header = f"--- file: {file.path} ({file.mime_type}, {len(file.data)} bytes) ---"
        text = texts.get(file.path)
        if text is not None:
            parts.append(Part(text=f"{header}\n{text}"))
        else:
            parts.extend((Part(text=header), Part(data=file.data, mime_type=file.mime_type)))
    return parts


def _image_context(request: ProviderRequest) -> list[Part]:
    primary = _primary_image(request.source_files)
    if primary is None:
        return []
    if primary.data == _last_history_image(request.history):
        return []
    return [
        Part(text=f"The current image ({primary.path}):"),
        Part(data=primary.data, mime_type=primary.mime_type),
    ]


def _last_seen(history: Sequence[Turn]) -> dict[str, bytes]:
    """The content of each path as the conversation last showed it: in a user turn's file context
    (our own `--- file:` parts) or in one of the model's JSON change sets."""
    seen: dict[str, bytes] = {}
    for turn in history:
        if turn.role == "user":
            parts = list(turn.parts)
            for index, part in enumerate(parts):
                if part.text is None or not part.text.startswith("--- file: "):
                    continue
                header, newline, rest = part.text.partition("\n")
                match = _FILE_HEADER.match(header)
                if match is None:
                    continue
                if newline:
                    seen[match["path"]] = rest.encode("utf-8")
                elif index + 1 < len(parts) and parts[index + 1].data is not None:
                    seen[match["path"]] = parts[index + 1].data or b""
            continue
        try:
            document = json.loads(_answer_text(turn.parts))
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        for upsert in document.get("upserts") or []:
            try:
                path, data, _ = _read_upsert(upsert)
            except InvalidAnswer:
                continue
            seen[path] = data
        for path in document.get("deletions") or []:
            if isinstance(path, str):
                seen.pop(path, None)
    return seen


# Conversions between our turns and google-genai's contents.


def to_content(turn: Turn) -> types.ContentDict:
    """A turn as google-genai content, in its dict form.

    Dicts, not `types.Content` objects: the SDK validates the contents of every request, and
    validating model instances costs it several times what validating dicts does (at 60 turns
    of history, 14 ms against 2.5 ms). What goes on the wire is the same.
    """
    parts: list[types.PartDict] = []
    for part in turn.parts:
        if part.data is not None:
            media: types.PartDict = {
                "inline_data": {"data": part.data, "mime_type": part.mime_type or "application/octet-stream"}
            }
            parts.append(_with_thought(media, part))
            if part.text:
                parts.append({"text": part.text})
        else:
            parts.append(_with_thought({"text": part.text or ""}, part))
    return {"role": turn.role, "parts": parts}


def _with_thought(sdk_part: types.PartDict, part: Part) -> types.PartDict:
    if part.thought:
        sdk_part["thought"] = True
    if part.thought_signature is not None:
        sdk_part["thought_signature"] = part.thought_signature
    return sdk_part


def merge_parts(parts: Iterable[types.Part]) -> list[Part]:
    """The parts of a streamed answer as one turn's parts.

    Consecutive text parts of the same kind (answer or thought) are joined; a thought signature
    stays on the joined part (a second signature starts a new part, so none is lost). Inline
    data parts are kept as they are, with their signatures. Parts of other kinds (function calls,
    which we never ask for) are dropped.
    """
    merged: list[Part] = []
    for sdk_part in parts:
        part = _from_sdk_part(sdk_part)
        if part is None:
            continue
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.data is None
            and part.data is None
            and previous.thought == part.thought
            and not (previous.thought_signature and part.thought_signature)
        ):
            merged[-1] = Part(
                text=(previous.text or "") + (part.text or ""),
                thought=previous.thought,
                thought_signature=previous.thought_signature or part.thought_signature,
            )
        else:
            merged.append(part)
    return merged


def _from_sdk_part(part: types.Part) -> Part | None:
    thought = bool(part.thought)
    blob = part.inline_data
    if blob is not None and blob.data is not None:
        return Part(
            data=blob.data,
            mime_type=blob.mime_type or "application/octet-stream",
            thought=thought,
            thought_signature=part.thought_signature,
        )
    if part.text is not None or part.thought_signature is not None:
        return Part(text=part.text or "", thought=thought, thought_signature=part.thought_signature)
    return None


# Calling the model.


@dataclass
class Answer:
    """The model's whole answer to one request."""

    parts: list[Part]
    finish_reason: str
    usage: str = ""

    @property
    def turn(self) -> Turn:
        return Turn(role="model", parts=tuple(self.parts))

    @property
    def text(self) -> str:
        return _answer_text(self.parts)

    @property
    def cut_off_note(self) -> str:
        if self.finish_reason == "MAX_TOKENS":
            return " (the answer was cut off at the model's output limit)"
        return ""


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


class _AttemptTimedOut(Exception):
    """An attempt did not get its whole answer within ATELIER_GEMINI_ATTEMPT_SECONDS."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")


class _IncompleteAnswer(Exception):
    """The stream ended before the model said it had finished (worth another try)."""


class _Call:
    """One call to the model: up to provider_max_attempts requests, until one answers in full."""

    def __init__(
        self,
        provider: GeminiProvider,
        model: str,
        contents: list[types.ContentDict],
        config: types.GenerateContentConfig,
        progress: Progress,
    ) -> None:
        self._provider = provider
        self._settings = provider._settings
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
                    models = self._provider._client.aio.models
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
        delay = ceiling / 2 + self._provider._random.uniform(0, ceiling / 2)
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


# Reading answers.


class InvalidAnswer(Exception):
    """The model's text is not a valid change set."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ParsedChangeSet:
    upserts: tuple[FileUpsert, ...]
    deletions: tuple[str, ...]
    summary: str
    notes: tuple[str, ...]


def parse_change_set(text: str, request: ProviderRequest) -> ParsedChangeSet:
    """Reads and checks a JSON change set; raises InvalidAnswer saying what is wrong."""
    if not text.strip():
        raise InvalidAnswer("the answer is empty")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidAnswer(f"it is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise InvalidAnswer("it is not a JSON object")
    summary = document.get("summary", "")
    upserts = document.get("upserts", [])
    deletions = document.get("deletions", [])
    if not isinstance(summary, str):
        raise InvalidAnswer('"summary" is not a string')
    if not isinstance(upserts, list):
        raise InvalidAnswer('"upserts" is not a list')
    if not isinstance(deletions, list) or not all(isinstance(path, str) for path in deletions):
        raise InvalidAnswer('"deletions" is not a list of paths')
    files: dict[str, FileUpsert] = {}
    for number, upsert in enumerate(upserts, 1):
        path, data, mime_type = _read_upsert(upsert, number)
        if path in files:
            raise InvalidAnswer(f"{path} is written twice")
        files[path] = FileUpsert(path=path, mime_type=mime_type, data=data)
    existing = {file.path for file in request.source_files}
    removed: list[str] = []
    notes: list[str] = []
    for raw in deletions:
        path = _checked_path(raw)
        if path in files:
            raise InvalidAnswer(f"{path} is both written and deleted")
        if path in existing:
            if path not in removed:
                removed.append(path)
        else:
            notes.append(f"ignored the deletion of {path}, which is not in the project")
    return ParsedChangeSet(tuple(files.values()), tuple(removed), summary.strip(), tuple(notes))


def _read_upsert(upsert: object, number: int = 0) -> tuple[str, bytes, str]:
    where = f"upsert {number}" if number else "an upsert"
    if not isinstance(upsert, dict):
        raise InvalidAnswer(f"{where} is not an object")
    path, content = upsert.get("path"), upsert.get("content")
    encoding, mime_type = upsert.get("encoding") or "text", upsert.get("mime_type") or ""
    if not isinstance(path, str) or not isinstance(content, str):
        raise InvalidAnswer(f'{where} needs a "path" and a "content" string')
    path = _checked_path(path)
    if not isinstance(mime_type, str):
        raise InvalidAnswer(f'the "mime_type" of {path} is not a string')
    if encoding == "text":
        data = content.encode("utf-8")
    elif encoding == "base64":
        try:
            normalized = content.strip().replace("-", "+").replace("_", "/")
            data = base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidAnswer(f"the base64 content of {path} does not decode") from None
    else:
        raise InvalidAnswer(f'the "encoding" of {path} is {encoding!r}, not "text" or "base64"')
    return path, data, mime_type or guess_mime_type(path, data)


def _checked_path(path: str) -> str:
    cleaned = path.strip().removeprefix("./")
    problem = path_problem(cleaned)
    if problem is not None:
        raise InvalidAnswer(f"{path!r} is not a relative path inside the project: it {problem}")
    return cleaned


def _text_result(
    request: ProviderRequest,
    turns: Sequence[Turn],
    parsed: ParsedChangeSet,
    answer: Answer,
    *,
    notes: Sequence[str] = (),
) -> ChangeSet:
    if not parsed.upserts and not request.source_files:
        raise ProviderError(
            f"{request.model} answered with no files to create", reason="NO_FILES", code="FAILED_PRECONDITION"
        )
    count = len(parsed.upserts)
    summary = parsed.summary or (
        f"wrote {count} file{'s' if count != 1 else ''}"
        + (f", deleted {len(parsed.deletions)}" if parsed.deletions else "")
    )
    extra = () if parsed.upserts or parsed.deletions else ("the model changed nothing",)
    return ChangeSet(
        upserts=parsed.upserts,
        deletions=parsed.deletions,
        summary=summary,
        notes=(*_answer_notes(request, answer), *notes, *parsed.notes, *extra),
        turns=tuple(turns),
    )


def image_change_set(request: ProviderRequest, user_turn: Turn, answer: Answer) -> ChangeSet:
    """The answer's images as files: image.png, image-2.png... or, refining a tree that has an
    image, the first one replaces that image (at its path) and any others go beside it."""
    images = [part for part in answer.parts if part.data is not None and not part.thought]
    images = [part for part in images if (part.mime_type or "").startswith("image/")]
    if not images:
        raise ProviderError(
            f"{request.model} answered without an image"
            + (
                f" (finish reason {answer.finish_reason})" if answer.finish_reason not in ("", "STOP") else ""
            ),
            reason="NO_IMAGE",
            code="FAILED_PRECONDITION",
        )
    taken = {file.path for file in request.source_files}
    primary = _primary_image(request.source_files)
    notes: list[str] = []
    upserts: list[FileUpsert] = []
    for number, part in enumerate(images, 1):
        mime_type = part.mime_type or "image/png"
        extension = _IMAGE_EXTENSIONS.get(mime_type, ".img")
        if number == 1 and primary is not None:
            path = primary.path
            if primary.mime_type != mime_type:
                notes.append(f"{path} now holds a {mime_type} image")
        else:
            stem = posixpath.splitext(primary.path)[0] if primary is not None else "image"
            path = f"{stem}{extension}" if number == 1 else f"{stem}-{number}{extension}"
            suffix = number
            while path in taken:
                suffix += 1
                path = f"{stem}-{suffix}{extension}"
        taken.add(path)
        upserts.append(FileUpsert(path=path, mime_type=mime_type, data=part.data or b""))
    text = answer.text.strip()
    verb = "updated" if primary is not None else "made"
    summary = text or f"{verb} {', '.join(upsert.path for upsert in upserts)}"
    return ChangeSet(
        upserts=tuple(upserts),
        summary=summary,
        notes=(*_answer_notes(request, answer), *notes),
        turns=(user_turn, answer.turn),
    )


def _answer_notes(request: ProviderRequest, answer: Answer) -> tuple[str, ...]:
    notes = [f"model: {request.model}", f"finish reason: {answer.finish_reason}"]
    if answer.usage:
        notes.append(answer.usage)
    return tuple(notes)


# Small helpers.


def _answer_text(parts: Iterable[Part]) -> str:
    return "".join(part.text for part in parts if part.text and not part.thought and part.data is None)


def _is_media(mime_type: str) -> bool:
    return mime_type in _INLINE_MEDIA or mime_type.startswith(("audio/", "video/"))


def _as_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _primary_image(files: Sequence[SourceFile]) -> SourceFile | None:
    return next(
        (file for file in files if file.mime_type in _INLINE_MEDIA and file.mime_type != "application/pdf"),
        None,
    )


def _last_history_image(history: Sequence[Turn]) -> bytes | None:
    for turn in reversed(history):
        for part in reversed(list(turn.parts)):
            if part.data is not None and not part.thought and (part.mime_type or "").startswith("image/"):
                return part.data
    return None


def _enum_name(value: object) -> str:
    return str(getattr(value, "value", value))


def _describe_request(request: ProviderRequest, user_turn: Turn) -> str:
    sent = sum(len(part.data) if part.data is not None else len(part.text or "") for part in user_turn.parts)
    earlier = len(request.history)
    what = [f"the prompt ({sent} bytes with its context)"]
    if request.attachments:
        count = len(request.attachments)
        what.append(f"{count} attachment{'s' if count != 1 else ''}")
    if earlier:
        what.insert(0, f"{earlier} earlier turn{'s' if earlier != 1 else ''}")
    return f"sending {', '.join(what)} to {request.model}"


def _describe_change_set(change_set: ChangeSet) -> str:
    count = len(change_set.upserts)
    text = f"{count} file{'s' if count != 1 else ''} to write"
    if change_set.deletions:
        text += f", {len(change_set.deletions)} to delete"
    return text


__all__ = ["GeminiProvider"]
