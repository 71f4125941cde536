"""Telling other server processes that something changed (PostgreSQL NOTIFY).

Sent inside the transaction, a notification is delivered only once the transaction commits,
so a listener never hears of a change it cannot read yet. `Database.listen` receives them.
"""

from __future__ import annotations

import os
import secrets
import socket

import sqlalchemy as sa

from storage._database import Transaction

# A version's events changed (the payload is its id), a job was queued, a model's shared
# state (its cooldown) changed (the payload is the model's name), or a generation was deleted
# or purged (the payload is its id).
EVENTS_CHANNEL = "atelier_events"
JOBS_CHANNEL = "atelier_jobs"
MODELS_CHANNEL = "atelier_models"
GENERATIONS_CHANNEL = "atelier_generations"

# Names this process in its notifications, so that it can ignore its own.
PROCESS_TAG = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def notify(tx: Transaction, channel: str, payload: str = "") -> None:
    """Tells other server processes once this transaction commits (SQLite has none to tell).

    The payload arrives as "<payload> <PROCESS_TAG of the sender>".
    """
    if tx.get_bind().dialect.name == "postgresql":
        tx.execute(sa.select(sa.func.pg_notify(channel, f"{payload} {PROCESS_TAG}")))
