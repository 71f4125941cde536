"""Plain text for the offline provider: one safe line, ASCII letters, word lists."""

from __future__ import annotations

import unicodedata


def one_line(text: str) -> str:
    """Text on one line with no control characters, safe inside any comment syntax and string literal."""
    # U+FEFF too: Go rejects a byte order mark anywhere but at the start of a file.
    printable = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char == "\ufeff" else char
        for char in text
    )
    return " ".join(printable.split())


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def word_set(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())
