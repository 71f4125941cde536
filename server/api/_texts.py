"""One rule for every string of every request, checked before any handler sees it: no NUL, and no
more characters than its bound.

PostgreSQL refuses NUL in text and values longer than their column, where SQLite stores both; so
that both databases answer alike (and neither answers INTERNAL), nothing reaches them that either
would refuse. A new field of a request is covered as soon as it exists: by its name's bound, or by
the default one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.api import _names
from server.domain import FieldViolation, InvalidArgument, bounds

# Bounds by a field's name, in any request and any message a request holds.
_BY_NAME = {
    "request_id": bounds.REQUEST_ID,
    "model": bounds.MODEL,
    "mime_type": bounds.MIME_TYPE,
    "path": bounds.PATH,
    "page_token": _names.MAX_PAGE_TOKEN_LENGTH,
    "url": bounds.WEBHOOK_URL,
}
# Fields whose name means something else than elsewhere (a name here is a display name, stored).
_BY_FULL_NAME = {"atelier.v1.Attachment.name": bounds.ATTACHMENT_NAME}
# Prompts, and the texts a prompt is drafted from, are bounded in UTF-8 bytes by the domain
# (`max_prompt_bytes`, reason PROMPT_TOO_LARGE); a variant's suffix is part of its output's prompt,
# bounded with it.
_PROMPTS = frozenset({"prompt", "description", "prompt_suffix", "text", "context"})
# Resource names, etags and any other string: longer than any valid one.
_DEFAULT = _names.MAX_NAME_LENGTH


def bound_of(field: FieldDescriptor) -> int | None:
    """How many characters `field` may hold (None: the domain bounds it, in bytes)."""
    if field.name in _PROMPTS:
        return None
    return _BY_FULL_NAME.get(field.full_name) or _BY_NAME.get(field.name, _DEFAULT)


class _Problem(NamedTuple):
    field: str
    description: str
    # The bound broken; None when the text holds NUL.
    limit: int | None


def check_texts(request: Message) -> None:
    """Raises InvalidArgument naming every string of `request` that holds NUL or is over its bound."""
    problems = list(_problems(request, ""))
    if not problems:
        return
    with_nul = [problem for problem in problems if problem.limit is None]
    if with_nul:
        raise InvalidArgument(
            f"{with_nul[0].field} contains NUL (U+0000), which no text may hold",
            reason="NUL_IN_TEXT",
            metadata={"field": with_nul[0].field},
            violations=[FieldViolation(problem.field, problem.description) for problem in with_nul],
        )
    first = problems[0]
    raise InvalidArgument(
        f"{first.field} {first.description}",
        reason="TEXT_TOO_LONG",
        metadata={"field": first.field, "limit": str(first.limit)},
        violations=[FieldViolation(problem.field, problem.description) for problem in problems],
    )


def _problems(message: Message, prefix: str) -> Iterator[_Problem]:
    for field, value in message.ListFields():
        path = prefix + field.name
        values = list(value) if field.is_repeated else [value]
        for index, item in enumerate(values):
            where = f"{path}[{index}]" if field.is_repeated else path
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _problems(item, where + ".")
            elif field.type == FieldDescriptor.TYPE_STRING:
                if "\x00" in item:
                    yield _Problem(where, "must not contain NUL (U+0000)", None)
                    continue
                limit = bound_of(field)
                if limit is not None and len(item) > limit:
                    yield _Problem(where, f"is {len(item)} characters long; the limit is {limit}", limit)
