"""API keys made by `atelier-server keys`, scopes on every RPC, and what an admin may do.

The server here has no ATELIER_TOKENS: its callers hold keys that the command made in its
database, before the server started or while it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import grpc
import pytest
import sqlalchemy as sa
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from sqlalchemy.engine import make_url

import storage
from server.domain import ApiKeys
from support.databases import fresh_database
from tests._support import ROOT, Api, ServerProcess, error_details, script
from tests.conftest import BACKENDS, check_backend
from tests.integration._calls import READ_RPCS, WRITE_RPCS, every_rpc
from tests.integration.conftest import SERVER_ENV

ATELIER_SERVER = Path(sys.executable).with_name("atelier-server")
CACHE_SECONDS = 0.5
KEY = re.compile(r"atk_([0-9a-f]{16})_([0-9a-f]{64})")
# name -> (principal, scopes) of the keys made before the server starts.
KEYS = {
    "alice": ("alice", "read,write"),
    "carol": ("carol", "read,write"),
    "root": ("root", "read,write,admin"),
    "reader": ("reader", "read"),
    "writer": ("writer", "write"),
}


@dataclass
class KeyedServer:
    process: ServerProcess
    database_url: str
    keys: dict[str, str]


def keys_command(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env["ATELIER_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(ATELIER_SERVER), "keys", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key(database_url: str, principal: str, scopes: str) -> str:
    made = keys_command(database_url, "create", "--principal", principal, "--scopes", scopes)
    assert made.returncode == 0, made.stderr
    assert KEY.fullmatch(made.stdout.strip()), made.stdout
    return made.stdout.strip()


def _make_keys(database_url: str) -> dict[str, str]:
    """The fixture's keys, made in this process as the command makes them (without its start-up)."""
    db = storage.Database(database_url)
    try:
        db.migrate()
        api_keys = ApiKeys(db=db, cache_seconds=0)

        async def make() -> dict[str, str]:
            return {
                name: (await api_keys.create(principal=principal, scopes=scopes.split(","))).key
                for name, (principal, scopes) in KEYS.items()
            }

        return anyio.run(make)
    finally:
        db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def keyed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    backend = check_backend(request.param)
    tmp = tmp_path_factory.mktemp(f"keys-{backend}")
    with fresh_database(backend, tmp) as url:
        keys = _make_keys(url)
        env = {key: value for key, value in SERVER_ENV.items() if key != "ATELIER_TOKENS"}
        env["ATELIER_API_KEY_CACHE_SECONDS"] = str(CACHE_SECONDS)
        process = ServerProcess(database_url=url, log_path=tmp / "server.log", env=env).start()
        try:
            yield KeyedServer(process, url, keys)
        finally:
            process.kill()


@pytest.fixture(scope="module")
def channel(keyed: KeyedServer) -> Iterator[grpc.Channel]:
    with keyed.process.channel() as channel:
        yield channel


def _refusal(call: object) -> grpc.RpcError:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def _reason(error: grpc.RpcError) -> str:
    return str(error_details(error)[0].reason)  # type: ignore[attr-defined]


def test_a_key_from_the_command_works_and_the_database_holds_only_its_hash(
    keyed: KeyedServer, channel: grpc.Channel
) -> None:
    made = keys_command(keyed.database_url, "create", "--principal", "dana", "--scopes", "read,write")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    match = KEY.fullmatch(key)
    assert match is not None, made.stdout
    key_id, secret = match.groups()
    assert "shown only this once" in made.stderr
    dana = Api(channel, key)
    version = dana.wait(dana.generate(script(stages=1)).name)
    assert version.state == gen.VERSION_STATE_COMPLETED

    engine = sa.create_engine(keyed.database_url)
    try:
        with engine.connect() as connection:
            rows = [row._asdict() for row in connection.execute(sa.text("SELECT * FROM api_key"))]
    finally:
        engine.dispose()
    stored = next(row for row in rows if row["id"] == key_id)
    assert stored["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert (stored["principal"], stored["scopes"]) == ("dana", "read write")
    assert stored["last_used_time"] is not None
    for row in rows:
        assert not any(secret in str(value) for value in row.values()), row
    database = make_url(keyed.database_url).database
    if keyed.database_url.startswith("sqlite") and database:
        for path in (Path(database), Path(f"{database}-wal")):
            if path.exists():
                assert secret.encode() not in path.read_bytes(), path

    listed = keys_command(keyed.database_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entry = next(item for item in json.loads(listed.stdout) if item["id"] == key_id)
    assert (entry["principal"], entry["scopes"], entry["revoke_time"]) == ("dana", ["read", "write"], None)
    assert entry["last_used_time"] is not None
    table = keys_command(keyed.database_url, "list")
    assert key_id in table.stdout and "dana" in table.stdout
    assert secret not in listed.stdout + table.stdout + listed.stderr + table.stderr


def test_a_revoked_key_stops_working_within_the_cache_time(keyed: KeyedServer, channel: grpc.Channel) -> None:
    key = create_key(keyed.database_url, "erin", "read,write")
    key_id = key.split("_")[1]
    erin, alice = Api(channel, key), Api(channel, keyed.keys["alice"])
    models = pb.ListModelsRequest()
    erin.stub.ListModels(models, metadata=erin.metadata)  # read once: the server now caches it

    revoked = keys_command(keyed.database_url, "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked API key {key_id}" in revoked.stdout
    since = time.monotonic()
    while True:
        try:
            erin.stub.ListModels(models, metadata=erin.metadata)
        except grpc.RpcError as error:
            refused = error
            break
        assert time.monotonic() - since < CACHE_SECONDS + 5, "the revoked key still works"
        time.sleep(0.05)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_details(refused)[0]
    assert (info.reason, dict(info.metadata)) == ("API_KEY_REVOKED", {"key_id": key_id})  # type: ignore[attr-defined]
    alice.stub.ListModels(models, metadata=alice.metadata)  # the other keys still work

    assert keys_command(keyed.database_url, "revoke", key).returncode == 0  # again, by the whole key
    missing = keys_command(keyed.database_url, "revoke", "0123456789abcdef")
    assert missing.returncode == 1 and "no API key" in missing.stderr
    listed = json.loads(keys_command(keyed.database_url, "list", "--json").stdout)
    assert next(item for item in listed if item["id"] == key_id)["revoke_time"] is not None


def test_bad_keys_and_missing_credentials_are_unauthenticated(
    keyed: KeyedServer, channel: grpc.Channel
) -> None:
    good = keyed.keys["alice"]
    key_id, secret = good.split("_")[1:]
    wrong_secret = f"atk_{key_id}_{'0' * 64 if secret != '0' * 64 else '1' * 64}"
    cases = [
        ([], "MISSING_CREDENTIALS"),
        ([("authorization", f"Bearer {wrong_secret}")], "INVALID_API_KEY"),
        ([("authorization", f"Bearer atk_{'f' * 16}_{secret}")], "INVALID_API_KEY"),
        ([("authorization", f"Bearer atk_{key_id}")], "INVALID_API_KEY"),
        ([("authorization", "Bearer nonsense")], "INVALID_TOKEN"),
        ([("authorization", f"Basic {good}")], "INVALID_TOKEN"),
    ]
    stub = Api(channel).stub
    for metadata, reason in cases:
        error = _refusal(lambda metadata=metadata: stub.ListModels(pb.ListModelsRequest(), metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, reason
        assert _reason(error) == reason
        assert secret not in (error.details() or "")


def test_each_rpc_needs_its_scope_and_says_which(keyed: KeyedServer, channel: grpc.Channel) -> None:
    service = pb.DESCRIPTOR.services_by_name["AtelierService"]
    assert {method.name for method in service.methods} == READ_RPCS | WRITE_RPCS
    alice = Api(channel, keyed.keys["alice"])
    version = alice.wait(alice.generate(script(stages=1)).name)
    for who, missing, refused in [("reader", "write", WRITE_RPCS), ("writer", "read", READ_RPCS)]:
        calls = every_rpc(Api(channel, keyed.keys[who]), version.name)
        for method in sorted(refused):
            error = _refusal(calls[method])
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (who, method)
            info = error_details(error)[0]
            assert info.reason == "SCOPE_REQUIRED", (who, method)  # type: ignore[attr-defined]
            assert dict(info.metadata) == {"scope": missing, "principal": who}  # type: ignore[attr-defined]
            assert f"needs the {missing!r} scope" in (error.details() or "")
        for method in sorted(set(calls) - refused):
            try:
                calls[method]()
            except grpc.RpcError as error:
                # Past the scope check: alice's version is another owner's, so NOT_FOUND.
                assert error.code() == grpc.StatusCode.NOT_FOUND, (who, method, error)


def test_an_admin_sees_and_manages_another_principals_work_and_a_third_gets_not_found(
    keyed: KeyedServer, channel: grpc.Channel
) -> None:
    alice, root, carol = (Api(channel, keyed.keys[name]) for name in ("alice", "root", "carol"))
    done = alice.wait(alice.generate(script(stages=1, files={"answer.txt": "alice's"})).name)
    generation = done.name.split("/versions/")[0]
    draft = alice.stub.DraftPrompt(pb.DraftPromptRequest(text="alice's idea"), metadata=alice.metadata)

    for method, call in every_rpc(root, done.name, draft.name).items():
        if method == "GetBatch":
            # Alice's version is no fan-out: found, and it has no batch.
            assert _refusal(call).code() == grpc.StatusCode.NOT_FOUND
        elif method in READ_RPCS:
            call()  # each answers, for a version that is not the admin's own
    assert root.get(done.name).name == done.name
    assert root.read_file(done.name, "answer.txt")[1] == b"alice's"
    found = root.stub.GetGeneration(pb.GetGenerationRequest(name=generation), metadata=root.metadata)
    assert found.owner == "alice"
    everyone = root.stub.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=root.metadata)
    assert generation in [g.name for g in everyone.generations]
    only_alice = root.stub.ListGenerations(
        pb.ListGenerationsRequest(page_size=1000, owner="alice"), metadata=root.metadata
    )
    assert generation in [g.name for g in only_alice.generations]
    assert {g.owner for g in only_alice.generations} == {"alice"}

    # The admin builds on alice's version: the new version is alice's, and a retry makes no other.
    request = pb.IterateRequest(parent=done.name, prompt=script(files={"more.txt": "x"}), request_id="root-1")
    iterated = root.stub.Iterate(request, metadata=root.metadata)
    assert root.stub.Iterate(request, metadata=root.metadata).name == iterated.name
    assert iterated.name.startswith(f"{generation}/versions/")
    assert alice.wait(iterated.name).state == gen.VERSION_STATE_COMPLETED
    assert "more.txt" in alice.list_files(iterated.name)

    # The admin cancels alice's job.
    slow = alice.generate(script(stages=1, delay=30))
    root.stub.CancelVersion(pb.CancelVersionRequest(name=slow.name), metadata=root.metadata)
    assert alice.wait(slow.name).state == gen.VERSION_STATE_CANCELLED

    # A third principal finds none of it: the answers of something that does not exist.
    missing = f"{generation}/versions/99"
    real = _refusal(lambda: carol.get(done.name))
    absent = _refusal(lambda: carol.get(missing))
    assert real.code() == absent.code() == grpc.StatusCode.NOT_FOUND
    assert real.details() == (absent.details() or "").replace("/versions/99", f"/versions/{done.number}")
    assert _reason(real) == _reason(absent) == "VERSION_NOT_FOUND"
    theirs = carol.stub.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=carol.metadata)
    assert generation not in [g.name for g in theirs.generations]
    asked = carol.stub.ListGenerations(
        pb.ListGenerationsRequest(page_size=1000, owner="alice"), metadata=carol.metadata
    )
    assert list(asked.generations) == []


def test_the_command_refuses_unknown_scopes_and_bad_principals(keyed: KeyedServer) -> None:
    for principal, scopes in [("frank", "read,superuser"), ("", "read"), ("x" * 201, "read")]:
        made = keys_command(keyed.database_url, "create", "--principal", principal, "--scopes", scopes)
        assert made.returncode == 2, (principal, scopes, made.stdout)
        assert made.stdout == ""
