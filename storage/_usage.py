"""What was spent: the ledgers' totals summed by owner, model and day, in SQL (GROUP BY)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage._database import Transaction
from storage._models import VersionKind
from storage._tables import VERSION


@dataclass(frozen=True, slots=True)
class UsageRow:
    owner: str
    model: str
    # `YYYY-MM-DD`, the UTC day the jobs ended.
    day: str
    versions: int
    input_tokens: int
    output_tokens: int
    images: int
    cost: float


def usage_by_day(
    tx: Transaction, *, owner: str | None, start: datetime | None, end: datetime | None
) -> list[UsageRow]:
    """The versions whose jobs ended in [start, end), summed by day, owner and model, in that order;
    only `owner`'s with an owner (None: everyone's). Versions no model made (uploads, merges) and
    deleted generations' versions count too: what was spent stays spent."""
    day = _day(tx.get_bind().dialect.name)
    statement = (
        sa.select(
            day.label("day"),
            VERSION.c.owner,
            VERSION.c.model,
            sa.func.count().label("versions"),
            sa.func.coalesce(sa.func.sum(VERSION.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(VERSION.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(VERSION.c.images), 0),
            sa.func.coalesce(sa.func.sum(VERSION.c.cost), 0.0),
        )
        .where(
            VERSION.c.complete_time.is_not(None),
            VERSION.c.kind.not_in([VersionKind.UPLOAD, VersionKind.MERGE]),
        )
        .group_by(day, VERSION.c.owner, VERSION.c.model)
        .order_by(day, VERSION.c.owner, VERSION.c.model)
    )
    if owner is not None:
        statement = statement.where(VERSION.c.owner == owner)
    if start is not None:
        statement = statement.where(VERSION.c.complete_time >= start)
    if end is not None:
        statement = statement.where(VERSION.c.complete_time < end)
    return [
        UsageRow(
            owner=row[1],
            model=row[2],
            day=str(row[0])[:10],
            versions=int(row[3]),
            input_tokens=int(row[4]),
            output_tokens=int(row[5]),
            images=int(row[6]),
            cost=float(row[7]),
        )
        for row in tx.execute(statement)
    ]


def _day(dialect: str) -> sa.ColumnElement[Any]:
    """The UTC day of a version's complete_time, as `YYYY-MM-DD`."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", VERSION.c.complete_time), "YYYY-MM-DD")
    # SQLite keeps UTC times as ISO text: the day is its first ten characters.
    return sa.func.substr(VERSION.c.complete_time, 1, 10)
