"""Resource ids."""

from __future__ import annotations

import secrets
import time


def new_generation_id() -> str:
    """A 20-character lowercase id that sorts by creation time (milliseconds, then 40 random bits)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def new_session_id() -> str:
    return secrets.token_hex(10)
