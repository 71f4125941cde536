"""`atelier-server restore SRC`: a backup restored into an empty database."""

from __future__ import annotations

import argparse
from pathlib import Path

import storage
from server.commands._command import Command, open_database, say
from server.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", type=Path, help="a file written by `atelier-server backup`")


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    source: Path = arguments.source
    storage.restore_database(settings.database_url, source)
    db = open_database(settings, migrated=False)
    try:
        current, head = db.schema_revisions()
        say(f"restored {source} into {db.display_url} (schema revision {current})")
        if current != head:
            say(f"its schema is older than this server's ({head}): `migrate` or `serve` brings it up")
    finally:
        db.dispose()
    return 0


COMMAND = Command(
    name="restore",
    help="restore a backup (from `backup`) into an empty database",
    description="Restores SRC, written by `atelier-server backup`, into the database named by "
    "ATELIER_DATABASE_URL, which must be empty (a new SQLite file, or a database made with "
    "createdb): a restore never overwrites data. Restore into the kind of database the backup "
    "came from. Stop the servers, or point them at the restored database once it is done.",
    add_arguments=_arguments,
    run=_run,
)
