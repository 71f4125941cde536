"""What we send: the system instruction and config, and the new user turn with its context.

`build_user_turn` holds the rules for what one user turn carries (the prompt, the attachments
and, when a tree is refined, the tree's files within a context budget), and
`generation_config` what a text or an image model is asked to answer with.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from google.genai import types

from server.files import FileContent
from server.providers._base import Part, ProviderRequest, Turn, as_text, is_media
from server.providers.gemini._answer import InvalidAnswer, read_upsert
from server.providers.gemini._contents import answer_text, primary_image

# How many bytes of the tree's files one user turn may carry; the rest is listed by path and size.
FILE_CONTEXT_BUDGET = 1024 * 1024
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


def generation_config(request: ProviderRequest, *, image_model: bool) -> types.GenerateContentConfig:
    """An image model answers with text and images; a text model with a JSON change set, and its
    thought summaries (a text model that does not think is asked again without them, see _call)."""
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
        # Its thought summaries show what it is doing during a long call. Only text models:
        # Gemini 2.5 Flash Image answers 400 "Thinking is not enabled" to this.
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )


def repair_turn(problem: str) -> Turn:
    """The user turn that shows the model what is wrong with its answer."""
    return Turn(role="user", parts=(Part(text=REPAIR_REQUEST.format(problem=problem)),))


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


def _attachment_parts(attachment: FileContent) -> list[Part]:
    label = f"FileContent {attachment.path} ({attachment.mime_type}, {len(attachment.data)} bytes)"
    if is_media(attachment.mime_type):
        return [Part(text=label + ":"), Part(data=attachment.data, mime_type=attachment.mime_type)]
    text = as_text(attachment.data)
    if text is not None:
        return [Part(text=f"{label}:\n{text}")]
    return [Part(text=f"{label}: binary content, not shown.")]


def _files_context(
    files: Sequence[FileContent], seen: Mapping[str, bytes], prompt: str, budget: int
) -> list[Part]:
    texts = {file.path: as_text(file.data) for file in files if not is_media(file.mime_type)}
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
    shown: list[FileContent] = []
    for file in candidates:
        readable = texts.get(file.path) is not None or is_media(file.mime_type)
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
        elif texts.get(file.path) is None and not is_media(file.mime_type):
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
    primary = primary_image(request.source_files)
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
            document = json.loads(answer_text(turn.parts))
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        for upsert in document.get("upserts") or []:
            try:
                path, data, _ = read_upsert(upsert)
            except InvalidAnswer:
                continue
            seen[path] = data
        for path in document.get("deletions") or []:
            if isinstance(path, str):
                seen.pop(path, None)
    return seen


def _last_history_image(history: Sequence[Turn]) -> bytes | None:
    for turn in reversed(history):
        for part in reversed(list(turn.parts)):
            if part.data is not None and not part.thought and (part.mime_type or "").startswith("image/"):
                return part.data
    return None


def describe_request(request: ProviderRequest, user_turn: Turn) -> str:
    sent = sum(len(part.data) if part.data is not None else len(part.text or "") for part in user_turn.parts)
    earlier = len(request.history)
    what = [f"the prompt ({sent} bytes with its context)"]
    if request.attachments:
        count = len(request.attachments)
        what.append(f"{count} attachment{'s' if count != 1 else ''}")
    if earlier:
        what.insert(0, f"{earlier} earlier turn{'s' if earlier != 1 else ''}")
    return f"sending {', '.join(what)} to {request.model}"
