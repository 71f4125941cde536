"""What the per-method logic needs to know of a call, whichever transport carried it (gRPC on the
main port, Connect or gRPC-Web on the web port)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from server.domain import Deadline


class Call(Protocol):
    def metadata(self) -> Sequence[tuple[str, str | bytes]]:
        """The request's metadata (gRPC) or headers (HTTP), keys in lowercase."""
        ...

    def deadline(self) -> Deadline:
        """When the caller stops waiting (its timeout, or its going away), for the domain's writes."""
        ...

    def web_base(self) -> str | None:
        """The web port's base URL as this caller reached it (scheme and host), for the file URLs
        an answer carries; None when the call did not come through the web port."""
        ...
