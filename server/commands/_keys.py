"""`atelier-server keys create|list|revoke`: API keys, kept in the server's database.

The new key is printed once, on stdout alone (so `KEY=$(atelier-server keys create ...)` works);
only its hash is stored. Servers see a new or revoked key without a restart, within
ATELIER_API_KEY_CACHE_SECONDS.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from server.commands._command import Command, CommandError, open_database
from server.config import SCOPES, Settings
from server.domain import ApiKeyInfo, ApiKeys, NotFound
from server.domain.api_keys import KEY_PREFIX

_T = TypeVar("_T")


def _add_arguments(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it, once")
    create.add_argument("--principal", required=True, help="the name the key's calls act as")
    create.add_argument(
        "--scopes",
        default="read,write",
        help=f"comma-separated, from {', '.join(SCOPES)} (default: read,write; admin reaches every "
        "principal's data)",
    )
    create.set_defaults(action_run=_create)
    listing = actions.add_parser("list", help="every key, revoked ones too (never a secret)")
    listing.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    listing.set_defaults(action_run=_list)
    revoke = actions.add_parser("revoke", help="stop a key working")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (as `keys list` shows), or the key")
    revoke.set_defaults(action_run=_revoke)


def _run(arguments: argparse.Namespace, settings: Settings) -> int:
    action: Callable[[argparse.Namespace, Settings], int] = arguments.action_run
    return action(arguments, settings)


def _create(arguments: argparse.Namespace, settings: Settings) -> int:
    scopes = [scope.strip() for scope in arguments.scopes.split(",") if scope.strip()]
    try:
        made = _with_keys(settings, lambda keys: keys.create(principal=arguments.principal, scopes=scopes))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(made.key)
    print(
        f"created API key {made.info.id} for principal {made.info.principal!r} "
        f"({' '.join(made.info.scopes)}). It is shown only this once: keep it now.",
        file=sys.stderr,
    )
    return 0


def _list(arguments: argparse.Namespace, settings: Settings) -> int:
    listed = _with_keys(settings, lambda keys: keys.list_all())
    if arguments.json:
        print(json.dumps([_as_json(info) for info in listed], indent=2))
        return 0
    rows = [("ID", "PRINCIPAL", "SCOPES", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (
            info.id,
            info.principal,
            ",".join(info.scopes),
            f"{info.create_time:%Y-%m-%d %H:%M:%S}",
            f"{info.last_used_time:%Y-%m-%d %H:%M:%S}" if info.last_used_time else "-",
            f"{info.revoke_time:%Y-%m-%d %H:%M:%S}" if info.revoke_time else "-",
        )
        for info in listed
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(arguments: argparse.Namespace, settings: Settings) -> int:
    key_id: str = arguments.key_id
    if key_id.startswith(KEY_PREFIX):  # the whole key was given: its id is its second part
        key_id = key_id.removeprefix(KEY_PREFIX).partition("_")[0]
    try:
        revoked = _with_keys(settings, lambda keys: keys.revoke(key_id))
    except NotFound as exc:
        print(f"atelier-server: {exc.message}", file=sys.stderr)
        return 1
    print(f"revoked API key {revoked.id} of principal {revoked.principal!r} at {revoked.revoke_time}")
    return 0


def _with_keys(settings: Settings, work: Callable[[ApiKeys], Awaitable[_T]]) -> _T:
    db = open_database(settings, migrated=False)
    try:
        # The keys may be made before any server ever ran on this database.
        db.migrate()
        keys = ApiKeys(db=db, cache_seconds=0)
        return anyio.run(work, keys)
    finally:
        db.dispose()


def _as_json(info: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "principal": info.principal,
        "scopes": list(info.scopes),
        "create_time": info.create_time.isoformat(),
        "last_used_time": info.last_used_time.isoformat() if info.last_used_time else None,
        "revoke_time": info.revoke_time.isoformat() if info.revoke_time else None,
    }


COMMAND = Command(
    name="keys",
    help="create, list and revoke API keys",
    description="API keys, kept in the server's database as hashes. `create` prints the new key "
    "once, alone on stdout; servers see new and revoked keys without a restart, within "
    "ATELIER_API_KEY_CACHE_SECONDS.",
    run=_run,
    add_arguments=_add_arguments,
)
