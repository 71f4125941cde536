"""`atelier-server migrate`: brings the database schema up to date."""

from __future__ import annotations

import argparse

from server.commands._command import Command, open_database, say
from server.config import Settings


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings, migrated=False)
    try:
        before = db.migrate()
        after, _ = db.schema_revisions()
    finally:
        db.dispose()
    if before == after:
        say(f"the database schema is up to date (revision {after})")
    else:
        say(f"migrated the database schema from revision {before or '(none)'} to {after}")
    return 0


COMMAND = Command(
    name="migrate",
    help="bring the database schema up to date, then exit",
    description="Brings the schema of the database named by ATELIER_DATABASE_URL up to the newest "
    "revision, in one transaction, then exits. Several processes may run it at once: one migrates "
    "while the others wait (a PostgreSQL advisory lock; SQLite's write lock), then find nothing "
    "left to do. Run it once per release before starting replicas with "
    "ATELIER_MIGRATE_ON_START=0.",
    run=_run,
)
