"""`atelier-server`: the server's command line. One module per command, registered below."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from server.commands import _backup, _gc, _keys, _migrate, _restore, _serve, _settings
from server.commands._command import Command, run

COMMANDS: tuple[Command, ...] = (
    _serve.COMMAND,
    _migrate.COMMAND,
    _backup.COMMAND,
    _restore.COMMAND,
    _gc.COMMAND,
    _keys.COMMAND,
    _settings.COMMAND,
)


def main(argv: Sequence[str] | None = None) -> None:
    """The `atelier-server` console script."""
    raise SystemExit(run(COMMANDS, sys.argv[1:] if argv is None else argv))


__all__ = ["COMMANDS", "Command", "main"]
