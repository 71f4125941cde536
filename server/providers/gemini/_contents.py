"""Our turns as google-genai contents, and back: the one place where the two shapes meet.

Also the tree's primary image, which both sides need: a request shows it to an image model, and
the model's answer replaces it. (What is sent as media, and what it counts, is the providers'
shared rule: `_base.is_media`, `_base.estimate_input_tokens`.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.genai import types

from server.files import FileContent
from server.providers._base import INLINE_MEDIA, Part, Turn, estimate_input_tokens


def estimated_input_tokens(contents: Iterable[types.ContentDict], config: types.GenerateContentConfig) -> int:
    """The request's input tokens, estimated here and now (the model's countTokens would be a
    request of its own): its text, the system instruction's included, and each inline or file
    media part, at estimate_input_tokens' rule. What the model's tokens-per-minute budget takes
    before the request goes out."""
    texts: list[str] = []
    if isinstance(config.system_instruction, str):
        texts.append(config.system_instruction)
    media = 0
    for content in contents:
        for part in content.get("parts") or ():
            if part.get("inline_data") is not None or part.get("file_data") is not None:
                media += 1
            text = part.get("text")
            if text:
                texts.append(text)
    return estimate_input_tokens(texts, media)


def primary_image(files: Sequence[FileContent]) -> FileContent | None:
    """The tree's first image that Gemini reads: what an image model is shown and redraws."""
    return next(
        (file for file in files if file.mime_type in INLINE_MEDIA and file.mime_type != "application/pdf"),
        None,
    )


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


def without_thought_text(parts: Sequence[Part]) -> list[Part]:
    """The parts without the text of thought summaries, which we ask for only to show progress:
    sent back as history they would take room in every later request, and other Gemini clients
    drop them because they confuse the model. A thought's signature stays, on an empty part."""
    kept: list[Part] = []
    for part in parts:
        if part.thought and part.data is None:
            if part.thought_signature is not None:
                kept.append(Part(text="", thought=True, thought_signature=part.thought_signature))
            continue
        kept.append(part)
    return kept


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


def answer_text(parts: Iterable[Part]) -> str:
    """The answer's text: its text parts, without thoughts."""
    return "".join(part.text for part in parts if part.text and not part.thought and part.data is None)
