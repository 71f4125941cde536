"""The offline provider's DraftPrompt: a tidy, deterministic rewrite of the caller's text.

No model is asked. The draft is the caller's text with its whitespace collapsed, its first
letter capitalised and a full stop at its end; a context follows as `Style: <context>.` (the
same tidying). The target model changes nothing. The same request always drafts the same prompt.
"""

from __future__ import annotations

from server.providers._base import DraftAnswer, DraftRequest


def draft_prompt(request: DraftRequest) -> DraftAnswer:
    parts = [_sentence(request.text)]
    if request.context.strip():
        parts.append("Style: " + _sentence(request.context))
    return DraftAnswer(prompt=" ".join(parts))


def _sentence(text: str) -> str:
    words = " ".join(text.split())
    if not words:
        return ""
    words = words[0].upper() + words[1:]
    return words if words.endswith((".", "!", "?")) else words + "."
