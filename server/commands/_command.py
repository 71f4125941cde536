"""What every `atelier-server` command shares: its shape, the settings, the database, clean errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import storage
from server.config import Settings, load_settings

PROG = "atelier-server"


class CommandError(Exception):
    """A command cannot do what it was asked; the message says why and what to do (exit code 2)."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, its one-line help, and what it does (an exit code)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, Settings], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    # Shown by `atelier-server NAME --help` under the usage line; the help line if empty.
    description: str = ""


def run(commands: Sequence[Command], argv: Sequence[str] | None) -> int:
    """Parses `argv`, reads the settings and runs the command; returns the exit code.

    0: done. 1: the work failed (the database or a tool refused). 2: a usage or configuration
    error, in one line on stderr (argparse's own errors exit 2 as well).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The Atelier server. Settings come from ATELIER_* variables and the file named "
        "by ATELIER_CONFIG (see README.md).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        command.add_arguments(sub)
        sub.set_defaults(chosen=command)
    arguments = parser.parse_args(argv)
    chosen: Command = arguments.chosen
    try:
        settings = load_settings()
    except (ValueError, OSError) as exc:
        return _fail(f"configuration error: {exc}", 2)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return chosen.run(arguments, settings)
    except (CommandError, storage.SchemaOutOfDate) as exc:
        return _fail(f"{chosen.name}: {exc}", 2)
    except storage.StorageUnavailable as exc:
        return _fail(f"{chosen.name}: cannot use the database: {_first_line(exc)}", 2)
    except storage.StorageError as exc:
        return _fail(f"{chosen.name}: {_first_line(exc)}", 1)


def open_database(settings: Settings, *, migrated: bool = True) -> storage.Database:
    """The configured database; with `migrated`, only if its schema is the one this code needs."""
    db = storage.Database(settings.database_url)
    if migrated:
        try:
            db.check_schema()
        except BaseException:
            db.dispose()
            raise
    return db


def say(message: str) -> None:
    """What a command reports on success: one line on stdout."""
    print(message, flush=True)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
