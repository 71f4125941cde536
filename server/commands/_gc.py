"""`atelier-server gc`: one garbage collection pass (retention, purges, unused blobs)."""

from __future__ import annotations

import argparse
import re

import anyio

from server.commands._command import Command, CommandError, open_database, say
from server.config import Settings
from server.domain.gc import GcReport, collect_garbage

_GENERATION = re.compile(r"generations/([a-z0-9][a-z0-9-]{0,62})")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--purge",
        metavar="NAME",
        action="append",
        default=[],
        help="also purge this generation (generations/ID) now, deleted or not, of any owner: "
        "its versions, files, events and session are gone for good (repeatable)",
    )
    parser.add_argument(
        "--grace",
        metavar="SECONDS",
        type=float,
        help="collect blobs stored more than this long ago (default ATELIER_GC_GRACE_SECONDS); "
        "0 removes a purged generation's contents at once",
    )


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    ids = []
    for name in arguments.purge:
        match = _GENERATION.fullmatch(name)
        if match is None:
            raise CommandError(f"--purge takes a generation name like generations/ID, got {name!r}")
        ids.append(match.group(1))
    if arguments.grace is not None and arguments.grace < 0:
        raise CommandError(f"--grace must not be negative, got {arguments.grace}")
    db = open_database(settings)
    try:
        report: GcReport = anyio.run(
            lambda: collect_garbage(db, settings, purge_now=ids, grace_seconds=arguments.grace)
        )
    finally:
        db.dispose()
    say(
        f"deleted {len(report.deleted)} generations (retention), purged {len(report.purged)}, "
        f"removed {report.blobs_deleted} unused blobs and {report.reservations_deleted} abandoned "
        "draft reservations"
    )
    missing = [f"generations/{generation_id}" for generation_id in ids if generation_id not in report.purged]
    if missing:
        say(f"not found, so not purged: {', '.join(missing)}")
        return 1
    return 0


COMMAND = Command(
    name="gc",
    help="collect garbage once: retention, expired deletions, unused blobs",
    description="One garbage collection pass on the database named by ATELIER_DATABASE_URL: "
    "generations not updated for ATELIER_RETENTION_SECONDS (if set) are deleted as by "
    "DeleteGeneration; deleted generations whose expiry passed, and those named by --purge, "
    "are purged for good; then blobs that nothing refers to any more are removed. Safe to run "
    "while servers run, and in several processes at once.",
    add_arguments=_arguments,
    run=_run,
)
