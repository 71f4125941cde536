"""The API's own conversions that shortcut protobuf's helpers give what the helpers give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from server.api._convert import _timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 29, 9, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 29, 9, 0, 0, 123456),  # naive: UTC, as FromDatetime reads it
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_timestamps_are_what_from_datetime_makes(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    assert _timestamp(value) == expected


def test_no_time_is_no_timestamp() -> None:
    assert _timestamp(None) is None
