"""`atelier-server backup DEST`: a backup of the whole database, taken while the server runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import storage
from server.commands._command import Command, open_database, say
from server.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "destination", metavar="DEST", type=Path, help="the backup file to write (must not exist)"
    )


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    destination: Path = arguments.destination
    storage.backup_database(settings.database_url, destination)
    db = open_database(settings, migrated=False)
    say(f"backed up {db.display_url} to {destination} ({destination.stat().st_size} bytes)")
    db.dispose()
    return 0


COMMAND = Command(
    name="backup",
    help="write a backup of the whole database to DEST, while the server runs",
    description="Writes a consistent backup of the database named by ATELIER_DATABASE_URL to DEST, "
    "while servers go on using it. SQLite: SQLite's online backup API, into one self-contained "
    "database file. PostgreSQL: pg_dump's custom format (pg_dump must be installed, of at least "
    "the server's major version). `restore` reads it back.",
    add_arguments=_arguments,
    run=_run,
)
