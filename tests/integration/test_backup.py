"""`atelier-server backup` while the server runs, then `restore` into a fresh database: a server on
the restored database answers exactly what the first one did."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2
from atelier.v1 import generation_pb2 as gen

from support.databases import fresh_database
from tests._support import TERMINAL, Api, ServerProcess, script
from tests.integration.conftest import SERVER_ENV
from tests.test_server_command import atelier_server

Snapshot = dict[str, object]


def _upload(api: Api, files: dict[str, bytes]) -> gen.Version:
    def messages() -> Iterator[pb.UploadTreeRequest]:
        yield pb.UploadTreeRequest(description="my files")
        for path, data in files.items():
            yield pb.UploadTreeRequest(file=file_pb2.File(path=path, mime_type="application/octet-stream"))
            yield pb.UploadTreeRequest(data=data)

    version: gen.Version = api.stub.UploadTree(messages(), metadata=api.metadata, timeout=30)
    return version


def _make_history(api: Api) -> str:
    """Generations of every kind of version, binary files, attachments, turns, a cancelled job and
    a deleted generation; returns the deleted generation's name."""
    binary = {"img/noise.bin": base64.b64encode(os.urandom(70_000)).decode()}
    v1 = api.wait(
        api.generate(
            script(files={"README.md": "hello"}, binary_files=binary),
            attachments=[file_pb2.Attachment(name="notes.txt", mime_type="text/plain", data=b"see me")],
        ).name
    )
    tweak = pb.TweakRequest(name=v1.name, prompt=script(files={"docs/a.md": "tweaked"}))
    v2 = api.wait(api.stub.Tweak(tweak, metadata=api.metadata).name)
    iterate = pb.IterateRequest(parent=v2.name, prompt=script(deletions=["README.md"]))
    api.wait(api.stub.Iterate(iterate, metadata=api.metadata).name)
    slow = api.stub.Tweak(pb.TweakRequest(name=v2.name, prompt=script(delay=30)), metadata=api.metadata)
    api.stub.CancelVersion(pb.CancelVersionRequest(name=slow.name), metadata=api.metadata)
    api.wait(slow.name)
    _upload(api, {"bin/zeros": bytes(100_000), "bin/random": os.urandom(5000)})
    doomed = api.wait(api.generate(script(files={"gone.txt": "deleted"})).name).name.split("/versions/")[0]
    api.stub.DeleteGeneration(pb.DeleteGenerationRequest(name=doomed), metadata=api.metadata)
    return doomed


def _snapshot(api: Api) -> Snapshot:
    """Everything a caller can read: generations, versions, every file's bytes, events, turns."""
    md = api.metadata
    listed = api.stub.ListGenerations(
        pb.ListGenerationsRequest(page_size=1000, show_deleted=True), metadata=md
    )
    found: Snapshot = {}
    for generation in listed.generations:
        found[generation.name] = generation
        if generation.HasField("delete_time"):
            continue
        versions = api.stub.ListVersions(
            pb.ListVersionsRequest(parent=generation.name, page_size=1000), metadata=md
        )
        for version in versions.versions:
            assert version.state in TERMINAL
            found[version.name] = version
            found[f"{version.name} events"] = api.progress(version.name)
            if version.state in (gen.VERSION_STATE_COMPLETED, gen.VERSION_STATE_NEEDS_REVIEW):
                found[f"{version.name} files"] = api.export(version.name)
        turns = api.stub.ListTurns(
            pb.ListTurnsRequest(parent=f"{generation.name}/session", page_size=1000), metadata=md
        )
        found[f"{generation.name} turns"] = list(turns.turns)
    return found


def test_a_backup_taken_while_serving_restores_into_a_fresh_database_byte_for_byte(
    backend: str, tmp_path: Path
) -> None:
    backup = tmp_path / "atelier.backup"
    with fresh_database(backend, tmp_path / "first") as first_url:
        first = ServerProcess(database_url=first_url, log_path=tmp_path / "first.log", env=SERVER_ENV).start()
        try:
            with first.channel() as channel:
                alice, bob = Api(channel, "alice-token"), Api(channel, "bob-token")
                doomed = _make_history(alice)
                bob.wait(bob.generate(script(files={"bob.txt": "bob's"})).name)
                before = {"alice": _snapshot(alice), "bob": _snapshot(bob)}
                # A job runs while the backup is taken.
                running = alice.generate(script(stages=1, delay=2, files={"late.txt": "late"}))
                done = atelier_server("backup", str(backup), env={"ATELIER_DATABASE_URL": first_url})
                assert done.returncode == 0, done.stderr
                assert done.stdout.startswith("backed up ") and str(backup) in done.stdout
                assert alice.wait(running.name).state == gen.VERSION_STATE_COMPLETED
        finally:
            first.kill()
    with fresh_database(backend, tmp_path / "second") as second_url:
        done = atelier_server("restore", str(backup), env={"ATELIER_DATABASE_URL": second_url})
        assert done.returncode == 0, done.stderr
        second = ServerProcess(
            database_url=second_url, log_path=tmp_path / "second.log", env=SERVER_ENV
        ).start()
        try:
            with second.channel() as channel:
                alice, bob = Api(channel, "alice-token"), Api(channel, "bob-token")
                # The job that ran during the backup was RUNNING in it: its lease expires, and
                # this server runs it again.
                deadline = time.monotonic() + 30
                while alice.get(running.name).state not in TERMINAL:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                assert alice.get(running.name).state == gen.VERSION_STATE_COMPLETED
                assert alice.export(running.name) == {"late.txt": b"late"}
                late = running.name.split("/versions/")[0]
                after = {"alice": _snapshot(alice), "bob": _snapshot(bob)}
                after["alice"] = {k: v for k, v in after["alice"].items() if not k.startswith(late)}
                assert after == before
                restored = alice.stub.UndeleteGeneration(
                    pb.UndeleteGenerationRequest(name=doomed), metadata=alice.metadata
                )
                assert alice.export(restored.latest_version) == {"gone.txt": b"deleted"}
                # The restored database takes new work.
                assert alice.wait(alice.generate(script()).name).state == gen.VERSION_STATE_COMPLETED
        except grpc.RpcError as error:
            raise AssertionError(second.log()[-3000:]) from error
        finally:
            second.kill()
