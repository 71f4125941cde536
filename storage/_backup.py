"""Backups of a whole database, taken while the server runs, and restores into an empty one.

- SQLite: SQLite's online backup API (`sqlite3.Connection.backup`) copies a consistent snapshot
  page by page while writers go on (WAL mode), into one self-contained file.
- PostgreSQL: `pg_dump --format=custom` (a consistent snapshot, in one transaction, while
  writers go on) and `pg_restore --single-transaction` (all or nothing). They come with the
  PostgreSQL client package, whose major version must be at least the server's.

A backup is written under a temporary name and renamed once complete, so a failed or
interrupted backup never leaves a file that looks whole. A restore refuses a database that
already holds tables: it never merges into, or overwrites, live data.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from storage._errors import StorageError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PG_DUMP_MAGIC = b"PGDMP"


class BackupError(StorageError):
    """A backup or a restore could not be made; the message says why and what to do."""


def backup_database(url: str, destination: Path) -> None:
    """Writes a backup of the database at `url` to `destination`, which must not exist yet."""
    if destination.exists():
        raise BackupError(f"{destination} exists already: name a new file (a backup never overwrites one)")
    parsed = make_url(url)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            _sqlite_backup(_sqlite_path(parsed), partial)
        else:
            _run_client("pg_dump", ["--format=custom", "--no-owner", "--no-acl", f"--file={partial}"], parsed)
        partial.rename(destination)
    finally:
        partial.unlink(missing_ok=True)


def restore_database(url: str, source: Path) -> None:
    """Restores the backup at `source` into the database at `url`, which must be empty."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    parsed = make_url(url)
    with source.open("rb") as file:
        header = file.read(len(_SQLITE_MAGIC))
    if parsed.get_backend_name() == "sqlite":
        if not header.startswith(_SQLITE_MAGIC):
            raise BackupError(
                f"{source} is not a SQLite backup; restore it into the kind of database it came from"
            )
        path = _sqlite_path(parsed)
        path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_tables(url)
        _sqlite_restore(source, path)
    else:
        if not header.startswith(_PG_DUMP_MAGIC):
            raise BackupError(
                f"{source} is not a pg_dump archive; restore it into the kind of database it came from"
            )
        _refuse_tables(url)
        _run_client(
            "pg_restore",
            ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", str(source)],
            parsed,
        )


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(url.database)


def _sqlite_backup(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise BackupError(f"there is no SQLite database at {source}")
    # Read-only: a backup never changes what it copies. pages=-1 copies in one step, from one
    # snapshot; writers in WAL mode go on meanwhile.
    with (
        closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as reader,
        closing(sqlite3.connect(destination)) as writer,
    ):
        reader.backup(writer, pages=-1)
        # One self-contained file: no WAL beside it.
        writer.execute("PRAGMA journal_mode=DELETE")


def _sqlite_restore(source: Path, destination: Path) -> None:
    with (
        closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as reader,
        closing(sqlite3.connect(destination)) as writer,
    ):
        reader.backup(writer, pages=-1)
        writer.execute("PRAGMA journal_mode=WAL")


def _refuse_tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        tables = sa.inspect(engine).get_table_names()
    except sa.exc.OperationalError as exc:
        raise BackupError(f"cannot open the database to restore into: {str(exc.orig).strip()}") from exc
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the database to restore into is not empty (it has {len(tables)} tables): "
            "restore into a new, empty database"
        )


def _run_client(program: str, arguments: list[str], url: URL) -> None:
    """Runs pg_dump or pg_restore against the database at `url` (its password goes in the
    environment, never on the command line, where other users could read it)."""
    executable = shutil.which(program)
    if executable is None:
        raise BackupError(
            f"{program} is not installed: install the PostgreSQL client package "
            "(for example postgresql-client), of at least the server's major version"
        )
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    command = [executable, *arguments, f"--dbname={target}"]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        detail = (finished.stderr or finished.stdout).strip().splitlines()
        raise BackupError(f"{program} failed: {detail[-1] if detail else f'exit code {finished.returncode}'}")
