"""`atelier-server`: the server's own commands. Each module adds its subcommand with `register`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from server.commands import _keys

# One line per command module.
_COMMANDS = (_keys,)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atelier-server", description="Run and manage an Atelier server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(commands)
    arguments = parser.parse_args(argv)
    raise SystemExit(arguments.run(arguments))
