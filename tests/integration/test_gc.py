"""The blob collector runs while writers write the very contents it collects, and loses nothing.

Here the collector (in the server, and as `atelier-server gc` from another process) races jobs
that store contents which keep falling out of use. The exact instant a careless collector would
lose (between a writer's insert that finds the blob and its reference) is short, so this load
rarely lands on it by chance; tests/storage/test_deletion.py forces that instant.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

import storage
from support.databases import fresh_database
from tests._support import ROOT, Api, ServerProcess, script
from tests.integration.conftest import SERVER_ENV

WRITERS = 6
ROUNDS = 10
# Contents the writers share: each is often unused for a moment (its versions purged) and
# then wanted again by another writer, which is when a careless collector would take it.
POOL = [bytes([i]) * 64 + os.urandom(1000) for i in range(30)]


def _gc(url: str) -> None:
    """One `atelier-server gc --grace 0`, from another process, as an operator's cron would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update(ATELIER_DATABASE_URL=url, ATELIER_LOG_LEVEL="WARNING")
    done = subprocess.run(
        [sys.executable, "-m", "server.commands", "gc", "--grace", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _collector_loop(url: str, stop: threading.Event, runs: list[int]) -> None:
    while not stop.is_set():
        _gc(url)
        runs.append(1)


def _writer(api: Api, seed: int) -> list[tuple[str, dict[str, bytes]]]:
    """Makes versions from shared contents (and one of its own) and deletes them, but for a few:
    so the shared contents keep falling out of use, to be collected, and being wanted again."""
    chance = random.Random(seed)
    kept = []
    for round_ in range(ROUNDS):
        files = {f"pool/{i}.bin": POOL[i] for i in chance.sample(range(len(POOL)), 20)}
        files[f"own/{seed}-{round_}.bin"] = os.urandom(1000)
        encoded = {path: base64.b64encode(data).decode() for path, data in files.items()}
        version = api.wait(api.generate(script(binary_files=encoded, stages=1)).name, timeout=60)
        assert version.state == gen.VERSION_STATE_COMPLETED, version.error.message
        if chance.random() < 0.8:
            api.stub.DeleteGeneration(
                pb.DeleteGenerationRequest(name=version.name.split("/versions/")[0]), metadata=api.metadata
            )
        else:
            kept.append((version.name, files))
    return kept


def test_collecting_while_writers_reuse_the_same_contents_loses_no_file(backend: str, tmp_path: Path) -> None:
    env = {
        **SERVER_ENV,
        "ATELIER_GC_INTERVAL_SECONDS": "0.05",
        "ATELIER_GC_GRACE_SECONDS": "0",
        # Deleted generations expire at once: the next pass purges them, and their blobs are unused.
        "ATELIER_DELETED_RETENTION_SECONDS": "0",
    }
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        stop = threading.Event()
        runs: list[int] = []
        collector = threading.Thread(target=_collector_loop, args=(url, stop, runs))
        try:
            collector.start()
            with server.channel() as channel, concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
                api = Api(channel, "alice-token")
                results = list(pool.map(lambda seed: _writer(api, seed), range(WRITERS)))
                stop.set()
                collector.join(120)
                kept = [item for result in results for item in result]
                assert kept, "some versions were kept"
                for name, files in kept:
                    version = api.get(name)
                    assert version.state == gen.VERSION_STATE_COMPLETED
                    assert version.ledger.attempts == 1, f"{name} was written more than once"
                    assert api.export(name) == files, f"{name} lost or changed a file"
            assert runs, "the collector process ran"
            log = server.log()
            assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
            # The collector did collect: once it has run again, the only blobs left are the kept
            # versions' contents.
            wanted = {storage.sha256_hex(data) for _, files in kept for data in files.values()}
            _gc(url)
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                stored = set(connection.execute(sa.text("SELECT sha256 FROM blob")).scalars())
            engine.dispose()
            assert stored == wanted
        finally:
            stop.set()
            server.kill()
            collector.join(120)
