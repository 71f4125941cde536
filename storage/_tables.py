"""The tables as SQL Core objects, and rows made into model objects, for the hot paths.

The job path runs its statements as SQL Core, built once at import: an ORM statement costs
100 to 300 µs of Python per call, a prebuilt Core statement about 35 µs (docs/PERFORMANCE.md).
Rows become model objects with `model_construct`, which skips validation (the database
holds only valid rows); such objects are transient, never added to a transaction.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import ClassManager, instrumentation
from sqlmodel import SQLModel

from storage._database import Transaction
from storage._models import (
    ApiKey,
    Blob,
    BlobPart,
    ConversationSession,
    Draft,
    Event,
    Generation,
    Job,
    ManifestEntry,
    ModelState,
    Turn,
    TurnBlob,
    Version,
    VersionAttachment,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

_M = TypeVar("_M", bound=SQLModel)


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


API_KEY = _table(ApiKey)
BLOB = _table(Blob)
BLOB_PART = _table(BlobPart)
DRAFT = _table(Draft)
EVENT = _table(Event)
GENERATION = _table(Generation)
JOB = _table(Job)
MANIFEST = _table(ManifestEntry)
MODEL_STATE = _table(ModelState)
SESSION = _table(ConversationSession)
TURN = _table(Turn)
TURN_BLOB = _table(TurnBlob)
VERSION = _table(Version)
ATTACHMENT = _table(VersionAttachment)
WEBHOOK_SUBSCRIPTION = _table(WebhookSubscription)
WEBHOOK_DELIVERY = _table(WebhookDelivery)
WEBHOOK_ATTEMPT = _table(WebhookAttempt)


def from_row(model: type[_M], row: sa.Row[Any] | dict[str, Any]) -> _M:
    """A model object holding a row: transient (in no transaction), built without validation."""
    values = row if isinstance(row, dict) else row._mapping
    instance = model.model_construct(**values)
    # The ORM's instance state, as `__init__` would create it, so that attributes can be set.
    _manager(model)._new_state_if_none(instance)
    return instance


def one_or_none(tx: Transaction, model: type[_M], statement: sa.Select[Any], **params: object) -> _M | None:
    """The one row `statement` finds, as a `model` object (see from_row), or None."""
    row = tx.execute(statement, params).one_or_none()
    return None if row is None else from_row(model, row)


@functools.cache
def _manager(model: type[SQLModel]) -> ClassManager[Any]:
    sa.orm.configure_mappers()  # attributes can only be set once the mappers are configured
    manager = instrumentation.manager_of_class(model)
    assert manager is not None
    return manager


def full_row(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values`, plus every column it leaves out: its default as the ORM would fill it, else None."""
    row = dict(values)
    for column in table.columns:
        if column.name not in row:
            default = column.default
            arg = default.arg if default is not None else None  # type: ignore[attr-defined]
            row[column.name] = arg(None) if callable(arg) else arg
    return row


def insert_params(row: dict[str, Any]) -> dict[str, Any]:
    """A full row's values for an INSERT: an id still None is left to the database."""
    return {key: value for key, value in row.items() if not (key == "id" and value is None)}
