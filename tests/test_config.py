"""Configuration: numbers out of range are refused at start-up, naming the setting."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from server import config
from server.config import Settings, load_settings
from tests._support import ROOT


def test_every_number_setting_has_a_range() -> None:
    numbers = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", "float")}
    assert numbers == set(config._POSITIVE) | set(config._NOT_NEGATIVE)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ATELIER_GEMINI_ATTEMPT_SECONDS", "0", "must be above 0"),
        ("ATELIER_JOB_LEASE_SECONDS", "-1", "must be above 0"),
        ("ATELIER_PROVIDER_MAX_ATTEMPTS", "0", "must be above 0"),
        ("ATELIER_MAX_IN_FLIGHT", "-1", "must not be negative"),
        ("ATELIER_MAX_IN_FLIGHT_PER_PRINCIPAL", "-1", "must not be negative"),
        ("ATELIER_SHUTDOWN_GRACE_SECONDS", "-0.5", "must not be negative"),
        ("ATELIER_DELETED_RETENTION_SECONDS", "-1", "must not be negative"),
        ("ATELIER_RETENTION_SECONDS", "-1", "must not be negative"),
        ("ATELIER_GC_INTERVAL_SECONDS", "-1", "must not be negative"),
        ("ATELIER_GC_GRACE_SECONDS", "-1", "must not be negative"),
    ],
)
def test_a_number_out_of_range_is_refused(name: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"{name} {problem}"):
        load_settings({name: value})


def test_zero_where_zero_makes_sense_is_accepted() -> None:
    settings = load_settings(
        {"ATELIER_MAX_IN_FLIGHT_PER_PRINCIPAL": "0", "ATELIER_SHUTDOWN_GRACE_SECONDS": "0"}
    )
    assert (settings.max_in_flight_per_principal, settings.shutdown_grace_seconds) == (0, 0.0)


def test_switches_read_true_and_false_and_refuse_anything_else() -> None:
    assert load_settings({}).migrate_on_start is True
    assert load_settings({"ATELIER_MIGRATE_ON_START": "0"}).migrate_on_start is False
    assert load_settings({"ATELIER_MIGRATE_ON_START": "True"}).migrate_on_start is True
    with pytest.raises(ValueError, match="ATELIER_MIGRATE_ON_START must be true or false"):
        load_settings({"ATELIER_MIGRATE_ON_START": "maybe"})


def test_the_old_workers_setting_is_refused_with_what_replaced_it() -> None:
    with pytest.raises(ValueError, match="ATELIER_MAX_IN_FLIGHT"):
        load_settings({"ATELIER_WORKERS": "4"})


def test_the_server_does_not_start_with_a_setting_out_of_range() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env={"ATELIER_GEMINI_ATTEMPT_SECONDS": "-5", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "configuration error: ATELIER_GEMINI_ATTEMPT_SECONDS must be above 0" in result.stderr
