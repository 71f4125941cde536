"""Fresh, empty databases for the tests and the benchmark, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "ATELIER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_unavailable_reason() -> str | None:
    """None if PostgreSQL answers at POSTGRES_URL, else why not."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL is not reachable at {make_url(POSTGRES_URL).render_as_string()}: {exc}"
    return None


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the given backend; dropped afterwards (PostgreSQL)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'atelier.db'}"
        return
    name = f"atelier_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
