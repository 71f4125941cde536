"""A call whose caller has gone (its deadline passed, or it cancelled) before its write writes nothing."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import psycopg
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, tree_pb2
from atelier.v1 import generation_pb2 as gen
from sqlalchemy.engine import make_url

from tests._support import Api, ServerProcess, script

_DEADLINE = 0.5


@contextmanager
def _writes_held(database_url: str) -> Iterator[None]:
    """While open, the server's writes wait: another connection holds what they need."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        connection = sqlite3.connect(url.database, isolation_level=None, timeout=30)
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as held:
        held.execute("LOCK TABLE generation, version, job IN SHARE MODE")
        yield
        held.rollback()


def _version_count(api: Api, generation: str) -> int:
    response = api.stub.ListVersions(
        pb.ListVersionsRequest(parent=generation, page_size=1000), metadata=api.metadata
    )
    return len(response.versions)


def _uploads(i: int) -> Iterator[pb.UploadTreeRequest]:
    yield pb.UploadTreeRequest(description=f"late upload {i}")
    yield pb.UploadTreeRequest(file=file_pb2.File(path="a.txt"), data=b"late")


def test_calls_whose_caller_is_gone_before_their_write_write_nothing(
    alice: Api, server: ServerProcess
) -> None:
    s, md = alice.stub, alice.metadata
    done = alice.wait(alice.generate("the base", model="offline").name)
    sibling = alice.wait(
        s.Tweak(pb.TweakRequest(name=done.name, prompt="a sibling", model="offline"), metadata=md).name
    )
    running = alice.generate(script(stages=1, delay=4)).name
    generation = done.name.split("/versions/")[0]
    generations, versions = alice.generation_count(), _version_count(alice, generation)

    calls: list[Callable[[], grpc.Future]] = [
        *(
            lambda i=i: s.Generate.future(
                pb.GenerateRequest(prompt=f"late {i}", model="offline"), metadata=md, timeout=_DEADLINE
            )
            for i in range(20)
        ),
        lambda: s.Tweak.future(
            pb.TweakRequest(name=done.name, prompt="late", model="offline"), metadata=md, timeout=_DEADLINE
        ),
        lambda: s.Iterate.future(
            pb.IterateRequest(parent=done.name, prompt="late"), metadata=md, timeout=_DEADLINE
        ),
        lambda: s.Regenerate.future(pb.RegenerateRequest(name=done.name), metadata=md, timeout=_DEADLINE),
        lambda: s.Merge.future(
            pb.MergeRequest(ours=done.name, theirs=sibling.name, strategy=tree_pb2.MERGE_STRATEGY_OURS),
            metadata=md,
            timeout=_DEADLINE,
        ),
        *(lambda i=i: s.UploadTree.future(_uploads(i), metadata=md, timeout=_DEADLINE) for i in range(3)),
        lambda: s.CancelVersion.future(pb.CancelVersionRequest(name=running), metadata=md, timeout=_DEADLINE),
    ]
    with _writes_held(server.database_url):
        late = [call() for call in calls]
        # And callers who cancel, with no deadline at all.
        cancelled = [
            s.Generate.future(pb.GenerateRequest(prompt=f"cancelled {i}", model="offline"), metadata=md)
            for i in range(5)
        ]
        time.sleep(_DEADLINE / 2)
        for future in cancelled:
            future.cancel()
        for future in late:
            with pytest.raises(grpc.RpcError) as caught:
                future.result()
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(_DEADLINE)
    # The writes that waited go ahead now, unless they check that their caller is still there.
    time.sleep(2)
    assert alice.generation_count() == generations
    assert _version_count(alice, generation) == versions
    assert alice.wait(running).state == gen.VERSION_STATE_COMPLETED
