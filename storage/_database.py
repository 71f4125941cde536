"""Engines, transactions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlmodel import Session

from storage._errors import (
    DatabaseMissing,
    RequestIdTaken,
    SchemaOutOfDate,
    StorageError,
    StorageUnavailable,
    WriteConflict,
)

_MIGRATIONS = Path(__file__).parent / "migrations"
# The key of the PostgreSQL advisory lock that migrations hold ("atelier" in ASCII).
_MIGRATION_LOCK = 0x6174656C696572
_BEGIN_MODE = "atelier_begin_mode"
# Connections a pool keeps open. On SQLite, work is CPU in this process (SQLite runs in it, and
# Python's GIL lets one thread run at a time): a few connections keep the one writer and the
# readers busy, and more only add threads that take the GIL from the writer. The many-jobs
# benchmark (docs/PERFORMANCE.md) ran 1,000 jobs in 1.36x the model's latency with 8 threads
# and connections, 1.48x with 16, and 1.6-1.7x with 40 threads on SQLAlchemy's default pool of
# 5 (+10 opened and closed again as needed). On PostgreSQL a transaction mostly waits on the
# network, so more of them overlap usefully.
_SQLITE_POOL_SIZE = 8
_POSTGRES_POOL_SIZE = 10
_POSTGRES_MAX_OVERFLOW = 20
_log = logging.getLogger("atelier.storage")


class Transaction(Session):
    """One database transaction: every storage verb takes the one it runs in.

    Opened by `Database.write()` or `Database.read()`; its scope is the `with` block.
    """


class Database:
    """One database: SQLite (the default) or PostgreSQL, chosen by URL.

    `write()` and `read()` open a transaction whose scope is the `with` block: it commits
    when the block ends and rolls back if it raises. On SQLite a write transaction takes
    the write lock up front (`BEGIN IMMEDIATE`), so two writers never deadlock upgrading
    their locks; readers never wait for writers (WAL mode).
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.drivername == "postgresql":
            # psycopg (3) is the driver Atelier installs; SQLAlchemy's default would be psycopg2.
            self.url = self.url.set(drivername="postgresql+psycopg")
            url = self.url.render_as_string(hide_password=False)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
            # How many transactions may usefully run at once: what the pool holds.
            self.max_connections = _SQLITE_POOL_SIZE
        else:
            self.engine = sa.create_engine(
                url, pool_size=_POSTGRES_POOL_SIZE, max_overflow=_POSTGRES_MAX_OVERFLOW, pool_pre_ping=True
            )
            self.max_connections = _POSTGRES_POOL_SIZE + _POSTGRES_MAX_OVERFLOW
        sa.event.listen(self.engine, "handle_error", _translate_error)
        self._write_engine = self.engine.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.is_sqlite else nullcontext()
        )

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for logs."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        # SQLite has one writer at a time. Writers of this process queue on a lock instead of
        # in SQLite's busy handler, which polls with sleeps of up to 100 ms and so turns
        # contention into long, uneven waits. (Other processes still meet the busy handler.)
        with (
            self._write_lock,
            Transaction(self._write_engine, expire_on_commit=False) as tx,
            tx.begin(),
        ):
            yield tx

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with Transaction(self.engine, expire_on_commit=False) as tx, tx.begin():
            yield tx

    def listen(self, channels: Sequence[str], callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Calls `callback(channel, payload)` for each PostgreSQL NOTIFY on `channels`, from a
        background thread, until the returned function is called. (SQLite has no other
        processes to hear from: nothing happens there.)"""
        if self.is_sqlite:
            return lambda: None
        stopped = threading.Event()

        def run() -> None:
            while not stopped.is_set():
                try:
                    connection = psycopg.connect(
                        self.url.set(drivername="postgresql").render_as_string(hide_password=False),
                        autocommit=True,
                    )
                    with connection:
                        for channel in channels:
                            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                        while not stopped.is_set():
                            for note in connection.notifies(timeout=0.5):
                                callback(note.channel, note.payload)
                except psycopg.Error:
                    _log.warning("lost the PostgreSQL notification connection; reconnecting", exc_info=True)
                    stopped.wait(1.0)

        thread = threading.Thread(target=run, name="atelier-listen", daemon=True)
        thread.start()

        def stop() -> None:
            stopped.set()
            thread.join(timeout=5)

        return stop

    def migrate(self) -> str | None:
        """Brings the schema up to the newest Alembic revision; returns the revision it found
        (None: no schema yet).

        Safe to run from several processes at once: one migrates while the others wait, and
        then find nothing left to do (see `_run_migrations`).
        """
        return self._run_migrations(lambda config: command.upgrade(config, "head"))

    def check_schema(self) -> None:
        """Raises SchemaOutOfDate unless the schema is at the newest revision this code knows."""
        current, head = self.schema_revisions()
        if current == head:
            return
        if current is None:
            raise SchemaOutOfDate(
                f"the database {self.display_url} has no schema yet: run `atelier-server migrate`"
            )
        known = {
            script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()
        }
        if current in known:
            raise SchemaOutOfDate(
                f"the database schema is at revision {current}; this server needs {head}: "
                "run `atelier-server migrate`"
            )
        raise SchemaOutOfDate(
            f"the database schema is at revision {current}, which this server does not know "
            f"(it knows up to {head}): it was migrated by a newer release; run that release"
        )

    def schema_revisions(self) -> tuple[str | None, str]:
        """The Alembic revision the database is at (None: no schema yet), and the newest one this
        code knows."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert head is not None
        with self.engine.connect() as connection:
            # Alembic says which dialect it uses at INFO: noise for a mere look at the revision.
            alembic_log = logging.getLogger("alembic.runtime.migration")
            level = alembic_log.level
            alembic_log.setLevel(logging.WARNING)
            try:
                current = MigrationContext.configure(connection).get_current_revision()
            finally:
                alembic_log.setLevel(level)
        return current, head

    def downgrade(self, revision: str) -> None:
        """Takes the schema back down to an earlier Alembic revision (for an operator's rollback)."""
        self._run_migrations(lambda config: command.downgrade(config, revision))

    def _run_migrations(self, run: Callable[[Config], None]) -> str | None:
        """Runs `run` under the migration lock; returns the revision the schema was at."""
        config = _alembic_config()
        # Migrations run in one transaction that first takes the database's migration lock:
        # PostgreSQL's advisory lock, SQLite's write lock (BEGIN IMMEDIATE). A second process
        # migrating at the same time waits for the first to commit, then reads the revision the
        # first left and finds nothing to do, instead of applying the same steps twice.
        with self._write_engine.connect() as connection:
            # SQLite changes a table by copying it into a new one and dropping the old: with foreign
            # keys enforced, dropping a table others refer to fails. The pragma only takes effect
            # outside a transaction, so it goes to the driver's connection, which is in autocommit.
            driver = connection.connection.driver_connection if self.is_sqlite else None
            if driver is not None:
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    if not self.is_sqlite:
                        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                    found = MigrationContext.configure(connection).get_current_revision()
                    config.attributes["connection"] = connection
                    run(config)
                    if driver is not None:
                        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if problems:
                            raise StorageError(f"the migration broke foreign keys: {problems[:5]}")
            finally:
                if driver is not None:
                    driver.execute("PRAGMA foreign_keys=ON")
        return found

    def dispose(self) -> None:
        self.engine.dispose()


# How long connections opening a new database at once may take to agree on WAL mode.
_WAL_SWITCH_SECONDS = 30.0


def _enter_wal_mode(cursor: sqlite3.Cursor) -> None:
    """Switches the database to WAL mode (a no-op once it is). Two connections making that switch
    at once, on a new database (replicas, or `serve` and `migrate`, starting together), both
    hold a shared lock and need an exclusive one: SQLite refuses one of them at once, "database
    is locked", without waiting in its busy handler, since waiting could deadlock. That one
    tries again (measured: 74 refusals in 200 rounds of 4 processes opening a new file)."""
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _sqlite_engine(url: str) -> sa.Engine:
    database = make_url(url).database
    pool: dict[str, int] = {}
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # The overflow serves what runs beside the transactions' threads (the scheduler's
        # claims, migrations at start) without closing and opening connections as the default
        # pool (5, +10) did. (An in-memory database keeps SQLAlchemy's one connection per thread.)
        pool = {"pool_size": _SQLITE_POOL_SIZE, "max_overflow": _SQLITE_POOL_SIZE}
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of pysqlite's own
        # implicit (and always DEFERRED) transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enter_wal_mode(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _translate_error(context: sa.engine.ExceptionContext) -> BaseException | None:
    """Raises storage's own error instead of SQLAlchemy's, so that no caller depends on SQLAlchemy."""
    if context.is_pre_ping:
        return None  # the pool's liveness check handles its own failures
    original = context.sqlalchemy_exception or context.original_exception
    message = str(context.original_exception)
    if isinstance(original, sa.exc.IntegrityError):
        # SQLite names the columns ("version.owner, version.request_id"), PostgreSQL the constraint
        # (uq_version_owner_request_id, uq_draft_owner_request_id).
        if "request_id" in message:
            return RequestIdTaken(message)
        return WriteConflict(message)
    # A connection refused for its database: libpq gives no SQLSTATE then, only its message.
    missing = _MISSING_DATABASE.search(message) if context.dialect.name == "postgresql" else None
    if missing is not None:
        return DatabaseMissing(message, missing.group(1))
    if context.is_disconnect or isinstance(original, sa.exc.InterfaceError):
        return StorageUnavailable(message)
    if isinstance(original, sa.exc.OperationalError) and (
        context.dialect.name != "sqlite" or message.startswith(_SQLITE_UNAVAILABLE)
    ):
        # PostgreSQL's operational errors are about the server or the connection; SQLite also
        # reports its own mistakes (no such column) this way.
        return StorageUnavailable(message)
    return StorageError(message)


_MISSING_DATABASE = re.compile(r'FATAL:\s+database "(.+)" does not exist')
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "unable to open database file",
    "disk I/O error",
    "database or disk is full",
)
