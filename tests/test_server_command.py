"""`atelier-server`: its commands, their help, clean errors, and migrations run by several at once."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import storage
from server.commands import COMMANDS
from tests._support import ROOT, ServerProcess

NAMES = ["serve", "migrate", "backup", "restore", "gc", "keys", "settings"]


def atelier_server(
    *arguments: str, env: dict[str, str] | None = None, module: str = "server.commands"
) -> subprocess.CompletedProcess[str]:
    """The command, run as operators run it, with only the ATELIER_* settings given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ATELIER_", "GEMINI_", "GOOGLE_"))}
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_console_script_is_installed_and_lists_every_command() -> None:
    script = Path(sys.executable).parent / "atelier-server"
    assert script.is_file()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for name in NAMES:
        assert f"    {name} " in done.stdout
    assert [command.name for command in COMMANDS] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_command_has_its_own_help(name: str) -> None:
    done = atelier_server(name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: atelier-server {name}")
    description = next(command.description for command in COMMANDS if command.name == name)
    assert description.split()[0] in done.stdout


def test_python_m_server_is_serve() -> None:
    done = atelier_server("--help", module="server")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: atelier-server serve")


@pytest.mark.parametrize("name", NAMES)
def test_a_configuration_error_is_one_line_and_exit_code_2(name: str) -> None:
    arguments = {"backup": ["out.db"], "restore": ["in.db"], "keys": ["list"]}.get(name, [])
    done = atelier_server(name, *arguments, env={"ATELIER_MIGRATE_ON_START": "maybe"})
    assert done.returncode == 2
    assert done.stderr == (
        "atelier-server: configuration error: ATELIER_MIGRATE_ON_START must be true or false "
        "(or 1 or 0), got 'maybe'\n"
    )


def test_an_unknown_command_is_a_usage_error() -> None:
    done = atelier_server("frobnicate")
    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr


def test_a_database_that_cannot_be_reached_is_one_line() -> None:
    done = atelier_server(
        "migrate", env={"ATELIER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    assert done.returncode == 2
    assert done.stderr.startswith("atelier-server: migrate: cannot use the database: ")
    assert done.stderr.count("\n") == 1


def _schema_is_current(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == storage.Database(url).schema_revisions()[1]
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()


def test_migrations_run_at_once_all_succeed_and_leave_one_schema(database_url: str) -> None:
    """What several replicas starting together do (serve migrates first, unless told not to)."""
    env = {"ATELIER_DATABASE_URL": database_url}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: atelier_server("migrate", env=env), range(4)))
    assert [done.returncode for done in results] == [0] * 4, [done.stderr for done in results]
    said = sorted(done.stdout.strip() for done in results)
    assert said[0].startswith("migrated the database schema from revision (none) to ")
    assert all(line.startswith("the database schema is up to date") for line in said[1:]), said
    _schema_is_current(database_url)
    again = atelier_server("migrate", env=env)
    assert again.returncode == 0 and again.stdout.startswith("the database schema is up to date")


def test_serve_without_migrating_needs_a_current_schema(database_url: str, tmp_path: Path) -> None:
    env = {
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_MIGRATE_ON_START": "0",
        # Free ports, so that a server running on the defaults does not answer first.
        "ATELIER_LISTEN": "127.0.0.1:0",
        "ATELIER_WEB_LISTEN": "127.0.0.1:0",
    }
    refused = atelier_server("serve", env=env)
    assert refused.returncode == 2
    assert refused.stderr.startswith("atelier-server: serve: the database ")
    assert "run `atelier-server migrate`" in refused.stderr and refused.stderr.count("\n") == 1
    assert atelier_server("migrate", env=env).returncode == 0
    server = ServerProcess(database_url=database_url, log_path=tmp_path / "server.log", env=env).start()
    assert server.terminate() == 0


def test_gc_refuses_bad_names_and_says_which_generations_it_did_not_find(database_url: str) -> None:
    env = {"ATELIER_DATABASE_URL": database_url}
    unmigrated = atelier_server("gc", env=env)
    assert unmigrated.returncode == 2 and "run `atelier-server migrate`" in unmigrated.stderr
    assert atelier_server("migrate", env=env).returncode == 0
    bad = atelier_server("gc", "--purge", "nope", env=env)
    assert bad.returncode == 2
    assert (
        bad.stderr == "atelier-server: gc: --purge takes a generation name like generations/ID, got 'nope'\n"
    )
    missing = atelier_server("gc", "--purge", "generations/g-missing", env=env)
    assert missing.returncode == 1
    assert missing.stdout.splitlines() == [
        "deleted 0 generations (retention), purged 0, removed 0 unused blobs and 0 abandoned draft "
        "reservations",
        "not found, so not purged: generations/g-missing",
    ]
    negative = atelier_server("gc", "--grace", "-1", env=env)
    assert negative.returncode == 2 and "--grace must not be negative" in negative.stderr


def test_backup_and_restore_refuse_to_overwrite(database_url: str, tmp_path: Path) -> None:
    env = {"ATELIER_DATABASE_URL": database_url}
    assert atelier_server("migrate", env=env).returncode == 0
    existing = tmp_path / "existing.backup"
    existing.write_bytes(b"precious")
    done = atelier_server("backup", str(existing), env=env)
    assert done.returncode == 1
    assert done.stderr == f"atelier-server: backup: {existing} exists already: name a new file " + (
        "(a backup never overwrites one)\n"
    )
    assert existing.read_bytes() == b"precious"
    backup = tmp_path / "atelier.backup"
    assert atelier_server("backup", str(backup), env=env).returncode == 0
    into_live = atelier_server("restore", str(backup), env=env)
    assert into_live.returncode == 1
    assert "the database to restore into is not empty" in into_live.stderr
    assert into_live.stderr.count("\n") == 1
    wrong_kind = atelier_server("restore", str(existing), env=env)
    assert wrong_kind.returncode == 1
    assert "restore it into the kind of database it came from" in wrong_kind.stderr
