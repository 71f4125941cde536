"""Configuration: numbers out of range are refused at start-up, naming the setting."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

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
        ("ATELIER_API_KEY_CACHE_SECONDS", "-1", "must not be negative"),
        ("ATELIER_DELETED_RETENTION_SECONDS", "-1", "must not be negative"),
        ("ATELIER_RETENTION_SECONDS", "-1", "must not be negative"),
        ("ATELIER_GC_INTERVAL_SECONDS", "-1", "must not be negative"),
        ("ATELIER_GC_GRACE_SECONDS", "-1", "must not be negative"),
        ("ATELIER_MAX_BATCH_SIZE", "0", "must be above 0"),
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


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        (
            {"ATELIER_TLS_CERT_FILE": "server.pem"},
            "ATELIER_TLS_CERT_FILE and ATELIER_TLS_KEY_FILE go together",
        ),
        (
            {"ATELIER_TLS_KEY_FILE": "server.key"},
            "ATELIER_TLS_CERT_FILE and ATELIER_TLS_KEY_FILE go together",
        ),
        ({"ATELIER_TLS_CLIENT_CA_FILE": "ca.pem"}, "ATELIER_TLS_CLIENT_CA_FILE .* needs the server's own"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_settings(environ)


def test_tls_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "ATELIER_TLS_CERT_FILE": "server.pem",
            "ATELIER_TLS_KEY_FILE": "server.key",
            "ATELIER_TLS_CLIENT_CA_FILE": "ca.pem",
        }
    )
    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file) == (
        "server.pem",
        "server.key",
        "ca.pem",
    )


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


def test_development_tokens_may_name_their_scopes() -> None:
    settings = load_settings(
        {"ATELIER_TOKENS": "a-token:alice, r-token:root:admin,v-token:viewer:read+write"}
    )
    assert settings.dev_tokens == {
        "a-token": ("alice", ("read", "write")),
        "r-token": ("root", ("admin",)),
        "v-token": ("viewer", ("read", "write")),
    }


@pytest.mark.parametrize(
    "tokens", ["secret-token", "secret-token:", ":alice", "secret-token:alice:root", "secret-token:a:read:x"]
)
def test_a_malformed_token_entry_is_refused_without_echoing_the_token(tokens: str) -> None:
    with pytest.raises(ValueError, match="ATELIER_TOKENS entries are token:principal") as caught:
        load_settings({"ATELIER_TOKENS": f"ok-token:bob,{tokens}"})
    assert "entry 2" in str(caught.value)
    assert "secret-token" not in str(caught.value)


def test_jwt_settings_come_together_and_name_a_file_or_an_http_url(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    full = {"ATELIER_JWT_ISSUER": "https://id.example/", "ATELIER_JWT_AUDIENCE": "atelier"}
    assert load_settings({**full, "ATELIER_JWT_JWKS": str(jwks)}).jwt_jwks == str(jwks)
    assert load_settings({**full, "ATELIER_JWT_JWKS": "https://id.example/jwks"}).jwt_audience == "atelier"
    with pytest.raises(ValueError, match="set ATELIER_JWT_AUDIENCE"):
        load_settings({"ATELIER_JWT_JWKS": str(jwks), "ATELIER_JWT_ISSUER": "https://id.example/"})
    with pytest.raises(ValueError, match="is a file path or an http"):
        load_settings({**full, "ATELIER_JWT_JWKS": "ftp://id.example/jwks"})
    with pytest.raises(ValueError, match="names no file"):
        load_settings({**full, "ATELIER_JWT_JWKS": str(tmp_path / "missing.json")})


def test_the_price_table_comes_from_the_config_file_with_built_in_prices_for_known_models(
    tmp_path: Path,
) -> None:
    path = tmp_path / "atelier.toml"
    path.write_text(
        """
[[models]]
name = "offline"
provider = "offline"
input_price_per_million = 1.5
output_price_per_million = 3
estimated_output_tokens = 200

[[models]]
name = "gemini-2.5-flash"
provider = "gemini"
"""
    )
    settings = load_settings({"ATELIER_CONFIG": str(path), "GEMINI_API_KEY": "k"})
    offline, gemini = settings.available_models
    assert (offline.input_price_per_million, offline.output_price_per_million, offline.image_price) == (
        1.5,
        3,
        0,
    )
    assert offline.estimated_output_tokens == 200
    # A model Atelier knows by name, listed without prices, keeps its built-in ones.
    assert (gemini.input_price_per_million, gemini.output_price_per_million) == (0.30, 2.50)
    built_in = {
        m.name: m
        for m in load_settings({"ATELIER_PROVIDER": "gemini", "GEMINI_API_KEY": "k"}).available_models
    }
    assert built_in["gemini-2.5-flash-image"].image_price == 0.039
    assert built_in["offline"].input_price_per_million == 0


@pytest.mark.parametrize(
    "entry", ["input_price_per_million = -1", 'image_price = "cheap"', "estimated_images = 0.5"]
)
def test_a_price_that_is_not_a_number_of_zero_or_more_is_refused(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "atelier.toml"
    path.write_text(f'[[models]]\nname = "offline"\nprovider = "offline"\n{entry}\n')
    with pytest.raises(ValueError, match="model 'offline': "):
        load_settings({"ATELIER_CONFIG": str(path)})


def test_a_models_limits_come_from_its_config_file_entry(tmp_path: Path) -> None:
    path = tmp_path / "atelier.toml"
    path.write_text(
        """
[[models]]
name = "offline"
provider = "offline"
max_concurrent = 2
requests_per_minute = 60
tokens_per_minute = 250000

[[models]]
name = "scripted"
provider = "scripted"
"""
    )
    limited, unlimited = load_settings({"ATELIER_CONFIG": str(path)}).available_models
    assert (limited.max_concurrent, limited.requests_per_minute, limited.tokens_per_minute) == (2, 60, 250000)
    assert (unlimited.max_concurrent, unlimited.requests_per_minute, unlimited.tokens_per_minute) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "entry",
    [
        "tokens_per_minute = 0",
        "tokens_per_minute = -5",
        "tokens_per_minute = 1.5",
        'tokens_per_minute = "lots"',
        "tokens_per_minute = true",
        "requests_per_minute = 0",
        "max_concurrent = 0",
    ],
)
def test_a_limit_that_is_not_a_whole_number_above_0_is_refused(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "atelier.toml"
    path.write_text(f'[[models]]\nname = "offline"\nprovider = "offline"\n{entry}\n')
    key = entry.split(" ")[0]
    with pytest.raises(ValueError, match=f"model 'offline': {key} must be a whole number above 0"):
        load_settings({"ATELIER_CONFIG": str(path)})


def test_webhook_settings_are_parsed_and_checked() -> None:
    secret = "whsec_" + "A" * 32  # 24 bytes of base64
    settings = load_settings(
        {
            "ATELIER_WEBHOOK_SECRET": f"{secret}, whsec_{'B' * 44}",
            "ATELIER_WEBHOOK_ALLOWED_URLS": "https://hooks.example.com/atelier, http://*.internal:8080",
            "ATELIER_WEBHOOK_RETRY_SCHEDULE": "1, 2.5,60",
            "ATELIER_OFFLINE_PACE_SECONDS": "0.5",
        }
    )
    assert [len(key) for key in settings.webhook_secrets] == [24, 33]
    assert settings.webhook_retry_delays == (1.0, 2.5, 60.0)
    assert settings.webhook_url_patterns == (
        config.UrlPattern("https", "hooks.example.com", 443, "/atelier"),
        config.UrlPattern("http", "*.internal", 8080, "/"),
    )
    assert settings.offline_pace_seconds == 0.5
    assert secret not in repr(settings)
    assert load_settings({}).webhook_secrets == ()  # webhooks off


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ATELIER_WEBHOOK_SECRET", "not-a-secret", "entry 1 is not"),
        ("ATELIER_WEBHOOK_SECRET", "whsec_c2hvcnQ=", "24 to 64 random bytes"),  # 5 bytes
        ("ATELIER_WEBHOOK_SECRET", "whsec_%%%%", "entry 1 is not"),
        ("ATELIER_WEBHOOK_RETRY_SCHEDULE", "5,soon", "seconds between attempts"),
        ("ATELIER_WEBHOOK_RETRY_SCHEDULE", "5,-1", "seconds between attempts"),
        ("ATELIER_WEBHOOK_ALLOWED_URLS", "hooks.example.com", "URL prefixes"),
        ("ATELIER_WEBHOOK_ALLOWED_URLS", "ftp://hooks.example.com/", "URL prefixes"),
        ("ATELIER_WEBHOOK_ALLOWED_URLS", "https://user@hooks.example.com/", "URL prefixes"),
        ("ATELIER_WEBHOOK_MAX_IN_FLIGHT", "0", "must be above 0"),
        ("ATELIER_OFFLINE_PACE_SECONDS", "-1", "must not be negative"),
    ],
)
def test_bad_webhook_and_pace_settings_are_refused(name: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        load_settings({name: value})
    assert name in str(caught.value)
    assert "whsec_c2hvcnQ" not in str(caught.value)  # a secret is never echoed


def test_the_web_settings_are_checked() -> None:
    settings = load_settings({"ATELIER_CORS_ORIGINS": "http://localhost:5173, https://app.example.com/"})
    assert settings.cors_origin_list == ("http://localhost:5173", "https://app.example.com")
    assert load_settings({"ATELIER_WEB_LISTEN": ""}).web_listen == ""
    with pytest.raises(ValueError, match="ATELIER_CORS_ORIGINS lists origins"):
        load_settings({"ATELIER_CORS_ORIGINS": "localhost:5173"})
    with pytest.raises(ValueError, match="ATELIER_PUBLIC_URL is an http"):
        load_settings({"ATELIER_PUBLIC_URL": "atelier.example.com"})
    with pytest.raises(ValueError, match="ATELIER_FILE_URL_SECONDS must be above 0"):
        load_settings({"ATELIER_FILE_URL_SECONDS": "0"})


def test_each_settings_object_finds_its_own_models() -> None:
    # The model list is built once per Settings object: a Settings made by replace() (as tests
    # and the reload of a config do) must see its own models, never the first one's.
    gemini = load_settings({"ATELIER_PROVIDER": "gemini", "GEMINI_API_KEY": "k"})
    assert gemini.find_model("gemini-2.5-flash") is not None
    renamed = dataclasses.replace(gemini, gemini_model="gemini-9-pro")
    assert renamed.find_model("gemini-2.5-flash") is None
    assert renamed.find_model("gemini-9-pro") is not None
    assert gemini.find_model("gemini-9-pro") is None
    assert gemini.available_models is gemini.available_models
    assert [m.name for m in renamed.available_models] == ["gemini-9-pro", "gemini-2.5-flash-image", "offline"]
    for _ in range(100):  # many short-lived Settings neither grow the cache nor confuse it
        assert dataclasses.replace(gemini, gemini_model="x").find_model("x") is not None
