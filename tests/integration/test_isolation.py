"""A caller never sees or touches another owner's data, and gets NOT_FOUND with no hint it exists."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, error_details


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
    ):
        with pytest.raises(grpc.RpcError) as caught:
            generation_call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = s.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=md)
    assert generation not in [g.name for g in listed.generations]
    # Bob's request id does not collide with Alice's either.
    assert alice.get(version.name).state == gen.VERSION_STATE_COMPLETED
    a = alice.generate("same id", model="offline", request_id="shared-id")
    b = bob.generate("same id", model="offline", request_id="shared-id")
    assert a.name != b.name
