"""The one small interface every provider implements.

A provider turns a request (a prompt, attachments, and for refinements the tree being
refined) into a change set of files. It reports its work as stages through a
`Progress` object; the job runner owns numbering, persistence and cancellation.
Providers know nothing of gRPC or SQL.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from server.files import FileContent


class JobKind(enum.StrEnum):
    """Why the provider is called. It travels from the RPC to the provider untouched."""

    GENERATE = "generate"
    TWEAK = "tweak"
    ITERATE = "iterate"
    REGENERATE = "regenerate"


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a conversation message: text, or inline data (an image, a file)."""

    text: str | None = None
    data: bytes | None = None
    mime_type: str | None = None
    # Whether the part is the model's thinking rather than its answer.
    thought: bool = False
    # Opaque provider data that must be sent back unchanged on later turns (Gemini's thought signatures).
    thought_signature: bytes | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation with the model."""

    role: Literal["user", "model"]
    parts: Sequence[Part]


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    kind: JobKind
    prompt: str
    model: str
    # Input files sent with the prompt (`path` is each one's display name).
    attachments: Sequence[FileContent] = ()
    # The tree being refined, in path order (empty for GENERATE).
    source_files: Sequence[FileContent] = ()
    # The earlier turns of this branch of the conversation, oldest first, exactly as they were
    # exchanged. A provider sends them before the new prompt, so the model builds on what it made.
    history: Sequence[Turn] = ()
    system_instruction: str = ""


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What the provider made: files to write and, for refinements, explicit removals.

    Files of the source tree that the change set does not mention are kept.
    """

    # Files to write. An empty `mime_type` is guessed from the path and the contents.
    upserts: Sequence[FileContent] = ()
    deletions: Sequence[str] = ()
    # (old path, new path) pairs; the file's contents move unchanged.
    renames: Sequence[tuple[str, str]] = ()
    summary: str = ""
    notes: Sequence[str] = field(default_factory=tuple)
    # The turns this call added to the conversation: the user turn as sent, then the model's turn.
    # Left empty, the runner records the prompt (with attachments) and the summary.
    turns: Sequence[Turn] = ()


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """A prompt to draft (DraftPrompt): the caller's text and context, for `target_model`.

    `model` is the text model that drafts; `target_outputs` are what the target model makes
    ("text", "image"), so that the draft suits it.
    """

    text: str
    context: str
    model: str
    target_model: str
    target_outputs: Sequence[str] = ("text",)


@dataclass(frozen=True, slots=True)
class DraftAnswer:
    """The drafted prompt, and what the request to the model used (None: no model was asked)."""

    prompt: str
    usage: ModelUsage | None = None


class Progress(Protocol):
    """How a provider reports its work. Every call is also a cancellation checkpoint."""

    def stage(self, title: str) -> AbstractAsyncContextManager[None]:
        """Runs the next declared stage: reported started on entry and done on a clean exit."""
        ...

    async def message(self, text: str) -> None:
        """Reports what the current stage is doing."""
        ...

    async def output(self, paths: Sequence[str]) -> None:
        """Reports files this job has produced so far (partial output)."""
        ...

    def usage(self, usage: ModelUsage) -> None:
        """Reports what one request to the model used, for the version's ledger."""
        ...


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """The tokens one request to the model used, as the model reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    # Images in the answer (priced per image for image models).
    images: int = 0


@dataclass(frozen=True, slots=True)
class TokenCount:
    """How many input tokens a prompt is: counted by the model's own counter, or estimated."""

    tokens: int
    counted: bool


# The estimate for providers without a token counter: about 4 bytes of UTF-8 per token, the usual
# rule of thumb for English text with BPE tokenizers.
BYTES_PER_TOKEN = 4

# What Gemini counts for an image (or a PDF page) at most 384 pixels each way, as its documentation
# says; a larger one is cut into 768-pixel tiles of 258 tokens each, and audio and video count
# by the second. The estimate counts every media part as the least it can be: the model's own
# count, after the answer, corrects it.
MEDIA_PART_TOKENS = 258

# The types a model is sent as media (inline data): Gemini's, the one provider that sends files to
# a model. Other binary files are named, not sent.
INLINE_MEDIA = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "application/pdf"}
)


def is_media(mime_type: str) -> bool:
    """Whether a file of this type is sent to the model as media (inline data)."""
    return mime_type in INLINE_MEDIA or mime_type.startswith(("audio/", "video/"))


def as_text(data: bytes) -> str | None:
    """A file's bytes as the text a model is shown, or None for binary content."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_size(*texts: str) -> int:
    """The size in UTF-8 of `texts` together."""
    # An ASCII text's length is its size in UTF-8, found without encoding a copy: a request's
    # context can be megabytes, and this runs on the event loop.
    return sum(len(text) if text.isascii() else len(text.encode()) for text in texts)


def estimate_tokens(*texts: str) -> TokenCount:
    """A documented estimate of the tokens of `texts` together: one per BYTES_PER_TOKEN bytes of
    UTF-8, rounded up."""
    return TokenCount(tokens=-(-text_size(*texts) // BYTES_PER_TOKEN), counted=False)


def estimate_input_tokens(texts: Sequence[str], media_parts: int) -> int:
    """The tokens of input made of `texts` (estimate_tokens) and `media_parts` parts of media
    (inline data or files, MEDIA_PART_TOKENS each): the one local estimate of what a model is
    sent, for a request's tokens-per-minute budget and for EstimateCost."""
    return estimate_tokens(*texts).tokens + media_parts * MEDIA_PART_TOKENS


class ModelGate(Protocol):
    """The model's capacity, shared by every job of every replica. A provider asks it before each
    request to the model, and tells it how the model answered. The job runner owns it.

    A 429 cools the whole model down: while it cools, only probes go out, and the other jobs
    wait here instead of spending their attempts.
    """

    async def before_request(self, input_tokens: int = 0) -> None:
        """Waits until a request may go out: no cooldown (or this request is the probe), within
        the model's requests per minute, and within its input tokens per minute for the
        request's `input_tokens`, estimated before sending (0: not estimated, no tokens taken).
        Raises ProviderError (MODEL_QUOTA_EXHAUSTED) once the job has waited longer than the
        server allows in all."""
        ...

    def answered(self) -> None:
        """The model took the request (it answered, or failed for another reason than quota).
        A request cancelled before either is reported neither way."""
        ...

    def refused(self, *, retry_after: float | None) -> None:
        """The model answered 429, asking to wait `retry_after` seconds (None: it did not say).
        The next `before_request` waits out the cooldown this starts or extends."""
        ...

    def tokens_counted(self, *, estimated: int, actual: int) -> None:
        """The model reported a request's input tokens: `actual`, against the `estimated` ones
        given to before_request. The tokens-per-minute budget is corrected by the difference."""
        ...


class _OpenGate:
    """A gate that never waits: for providers that call no model, and for calling one directly."""

    async def before_request(self, input_tokens: int = 0) -> None:
        return None

    def answered(self) -> None:
        return None

    def refused(self, *, retry_after: float | None) -> None:
        return None

    def tokens_counted(self, *, estimated: int, actual: int) -> None:
        return None


OPEN_GATE: ModelGate = _OpenGate()


class ProviderError(Exception):
    """A provider's failure, with a machine-readable reason (an ErrorInfo reason).

    `code` is the name of the gRPC status code that describes the failure, for example
    "UNAVAILABLE", "RESOURCE_EXHAUSTED", "PERMISSION_DENIED" or "INVALID_ARGUMENT".
    """

    def __init__(self, message: str, *, reason: str, code: str = "INTERNAL", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code
        self.retryable = retryable


class Provider(Protocol):
    """A source of generated files."""

    @property
    def name(self) -> str: ...

    async def ready(self) -> None:
        """Returns once the provider can start work at once (the server says it is listening
        only then): a provider with a process of its own waits for it to have started."""
        ...

    async def aclose(self) -> None:
        """Ends what `ready` started; called once, when the server stops (no call runs then)."""
        ...

    def stage_titles(self, request: ProviderRequest) -> Sequence[str]:
        """The titles of the stages `run` will go through, in order, known before it starts."""
        ...

    async def run(
        self, request: ProviderRequest, progress: Progress, gate: ModelGate = OPEN_GATE
    ) -> ChangeSet:
        """Does the work, asking `gate` before each request to a model. Raises ProviderError on failure."""
        ...

    async def count_tokens(self, model: str, text: str) -> TokenCount:
        """How many input tokens `text` is for `model`: the provider's token counter where it
        has one, else `estimate_tokens`. Raises ProviderError when the counter fails."""
        ...

    async def draft(self, request: DraftRequest, gate: ModelGate = OPEN_GATE) -> DraftAnswer:
        """Drafts a prompt with a text model, asking `gate` before each request to it. Raises
        ProviderError on failure."""
        ...
