"""The audit log: one JSON line per mutating call, on the `atelier.audit` logger, whatever its
outcome: who called (None: not authenticated), which method, the resource it made or acted on,
and OK or the status code with its ErrorInfo reason."""

from __future__ import annotations

import json
import logging

_log = logging.getLogger("atelier.audit")
# A resource name is echoed only this far: a name that long is refused anyway.
_RESOURCE_CHARACTERS = 256


def record(*, principal: str | None, method: str, resource: str, outcome: str, reason: str = "") -> None:
    line: dict[str, str | None] = {
        "principal": principal,
        "method": method,
        "resource": resource[:_RESOURCE_CHARACTERS],
        "outcome": outcome,
    }
    if reason:
        line["reason"] = reason
    _log.info(json.dumps(line))
