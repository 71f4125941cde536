"""`atelier-server serve`: runs the server until SIGTERM or SIGINT (what `make run` runs)."""

from __future__ import annotations

import argparse

import anyio

from server.app import serve
from server.commands._command import Command
from server.config import Settings


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    anyio.run(serve, settings, backend="asyncio")
    return 0


COMMAND = Command(
    name="serve",
    help="serve the gRPC API and run jobs until SIGTERM or SIGINT",
    description="Serves the atelier.v1 gRPC API on ATELIER_LISTEN and runs jobs until SIGTERM or "
    "SIGINT, then stops gracefully. It first brings the database schema up to date, unless "
    "ATELIER_MIGRATE_ON_START is off (then the schema must be current: see `migrate`). "
    "With ATELIER_GC_INTERVAL_SECONDS it also collects garbage (see `gc`).",
    run=_run,
)
