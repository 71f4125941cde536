"""How we read the model's answer: a JSON change set from a text model, images from an image model.

Every answer becomes a ChangeSet whose `turns` are the user turn as sent and the model's answer,
so that sending them back as history replays them unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from server.files import FileContent, guess_mime_type, path_problem
from server.providers._base import ChangeSet, Part, ProviderError, ProviderRequest, Turn
from server.providers.gemini._contents import answer_text, primary_image

_IMAGE_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


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
        return answer_text(self.parts)

    @property
    def cut_off_note(self) -> str:
        if self.finish_reason == "MAX_TOKENS":
            return " (the answer was cut off at the model's output limit)"
        return ""


class InvalidAnswer(Exception):
    """The model's text is not a valid change set."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ParsedChangeSet:
    upserts: tuple[FileContent, ...]
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
    files: dict[str, FileContent] = {}
    for number, upsert in enumerate(upserts, 1):
        path, data, mime_type = read_upsert(upsert, number)
        if path in files:
            raise InvalidAnswer(f"{path} is written twice")
        files[path] = FileContent(path=path, mime_type=mime_type, data=data)
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


def read_upsert(upsert: object, number: int = 0) -> tuple[str, bytes, str]:
    """One entry of a change set's "upserts": its path, bytes and MIME type; raises InvalidAnswer."""
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


def text_change_set(
    request: ProviderRequest,
    turns: Sequence[Turn],
    parsed: ParsedChangeSet,
    answer: Answer,
    *,
    notes: Sequence[str] = (),
) -> ChangeSet:
    """The change set of a text model's parsed answer; raises ProviderError if it makes nothing."""
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
    primary = primary_image(request.source_files)
    notes: list[str] = []
    upserts: list[FileContent] = []
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
        upserts.append(FileContent(path=path, mime_type=mime_type, data=part.data or b""))
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


def describe_change_set(change_set: ChangeSet) -> str:
    count = len(change_set.upserts)
    text = f"{count} file{'s' if count != 1 else ''} to write"
    if change_set.deletions:
        text += f", {len(change_set.deletions)} to delete"
    return text
