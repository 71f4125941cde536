"""A caller never sees or touches another owner's data, and gets NOT_FOUND with no hint it exists.

The one exception is a principal with the admin scope, which reaches every owner's data.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, error_details, script
from tests.integration._calls import every_rpc


def test_bob_cannot_see_or_touch_alices_work(alice: Api, bob: Api) -> None:
    version = alice.wait(alice.generate("alice's secret project", model="offline").name)
    generation = version.name.split("/versions/")[0]
    missing = f"{generation}/versions/99"
    s, md = bob.stub, bob.metadata
    calls: dict[str, Callable[[str], object]] = {
        "GetVersion": lambda n: s.GetVersion(pb.GetVersionRequest(name=n), metadata=md),
        "CancelVersion": lambda n: s.CancelVersion(pb.CancelVersionRequest(name=n), metadata=md),
        "ListFiles": lambda n: s.ListFiles(pb.ListFilesRequest(parent=n), metadata=md),
        "ReadFile": lambda n: list(s.ReadFile(pb.ReadFileRequest(name=n, path="README.md"), metadata=md)),
        "Progress": lambda n: list(s.Progress(pb.ProgressRequest(name=n), metadata=md)),
        "Tweak": lambda n: s.Tweak(pb.TweakRequest(name=n, prompt="mine now"), metadata=md),
        "Iterate": lambda n: s.Iterate(pb.IterateRequest(parent=n, prompt="mine now"), metadata=md),
        "Regenerate": lambda n: s.Regenerate(pb.RegenerateRequest(name=n), metadata=md),
        "Diff": lambda n: s.Diff(pb.DiffRequest(base=n, target=n), metadata=md),
        "ExportTree": lambda n: list(s.ExportTree(pb.ExportTreeRequest(name=n), metadata=md)),
        "Merge": lambda n: s.Merge(pb.MergeRequest(ours=n, theirs=f"{generation}/versions/2"), metadata=md),
    }
    for method, call in calls.items():
        with pytest.raises(grpc.RpcError) as real:
            call(version.name)
        with pytest.raises(grpc.RpcError) as absent:
            call(missing)
        assert real.value.code() == grpc.StatusCode.NOT_FOUND, method
        # Exactly what a version that does not exist gets, but for the number in the name.
        assert real.value.details() == (absent.value.details() or "").replace(
            "/versions/99", "/versions/1"
        ), method
        assert error_details(real.value)[0].reason == "VERSION_NOT_FOUND"  # type: ignore[attr-defined]
    for generation_call in (
        lambda: s.GetGeneration(pb.GetGenerationRequest(name=generation), metadata=md),
        lambda: s.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=md),
        lambda: s.GetSession(pb.GetSessionRequest(name=f"{generation}/session"), metadata=md),
        lambda: s.ListTurns(pb.ListTurnsRequest(parent=f"{generation}/session"), metadata=md),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            generation_call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = s.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=md)
    assert generation not in [g.name for g in listed.generations]
    # Naming alice as the owner to list does not help: only an admin's list reaches her work.
    asked = s.ListGenerations(pb.ListGenerationsRequest(page_size=1000, owner="alice"), metadata=md)
    assert list(asked.generations) == []
    # Bob's request id does not collide with Alice's either.
    assert alice.get(version.name).state == gen.VERSION_STATE_COMPLETED
    a = alice.generate("same id", model="offline", request_id="shared-id")
    b = bob.generate("same id", model="offline", request_id="shared-id")
    assert a.name != b.name
    # Nothing bob tried changed alice's generation.
    assert [
        v.name
        for v in alice.stub.ListVersions(
            pb.ListVersionsRequest(parent=generation), metadata=alice.metadata
        ).versions
    ] == [version.name]


def test_an_admin_is_the_one_principal_that_reaches_anothers_work(alice: Api, bob: Api, root: Api) -> None:
    version = alice.wait(alice.generate(script(stages=1)).name)
    admin_calls = every_rpc(root, version.name)
    for method in ("GetVersion", "ListVersions", "GetGeneration", "ListFiles", "ReadFile", "GetSession"):
        admin_calls[method]()
    with pytest.raises(grpc.RpcError) as caught:
        every_rpc(bob, version.name)["GetVersion"]()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # The admin's own work is its own: alice does not see it.
    mine = root.wait(root.generate(script(stages=1)).name)
    with pytest.raises(grpc.RpcError) as caught:
        alice.get(mine.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
