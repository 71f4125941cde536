"""The audit log: one JSON line on `atelier.audit` per mutating call, whatever its outcome, and
none for reads."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, tree_pb2

from tests._support import Api, ServerProcess, fails, script

_MARK = " atelier.audit: "


def _audit_lines(server: ServerProcess, offset: int) -> list[dict[str, object]]:
    text = server.log()[offset:]
    return [json.loads(line.split(_MARK, 1)[1]) for line in text.splitlines() if _MARK in line]


def _logged(server: ServerProcess, call: Callable[[], object]) -> list[dict[str, object]]:
    """The audit lines written while `call` ran (it may fail)."""
    offset = len(server.log())
    with contextlib.suppress(grpc.RpcError):
        call()
    time.sleep(0.05)
    return _audit_lines(server, offset)


def _uploads() -> Iterator[pb.UploadTreeRequest]:
    yield pb.UploadTreeRequest(description="audited upload")
    yield pb.UploadTreeRequest(file=file_pb2.File(path="a.txt"), data=b"a")


def test_each_mutating_call_logs_one_line_with_principal_method_resource_and_outcome(
    alice: Api, server: ServerProcess
) -> None:
    s, md = alice.stub, alice.metadata
    [generated] = _logged(server, lambda: alice.generate("audited", model="offline"))
    name = str(generated["resource"])
    assert generated == {"principal": "alice", "method": "Generate", "resource": name, "outcome": "OK"}
    assert name.startswith("generations/") and "/versions/1" in name
    alice.wait(name)
    generation = name.split("/versions/")[0]

    def tweak() -> object:
        return s.Tweak(pb.TweakRequest(name=name, prompt="add file b.md", model="offline"), metadata=md)

    [tweaked] = _logged(server, tweak)
    assert tweaked["method"] == "Tweak" and tweaked["resource"] == f"{generation}/versions/2"
    alice.wait(f"{generation}/versions/2")
    expected: list[tuple[str, Callable[[], object], str]] = [
        (
            "Iterate",
            lambda: s.Iterate(
                pb.IterateRequest(parent=name, prompt="add file c.md", model="offline"), metadata=md
            ),
            f"{generation}/versions/3",
        ),
        (
            "Regenerate",
            lambda: s.Regenerate(pb.RegenerateRequest(name=name), metadata=md),
            f"{generation}/versions/4",
        ),
        (
            "Merge",
            lambda: s.Merge(
                pb.MergeRequest(
                    ours=f"{generation}/versions/2",
                    theirs=f"{generation}/versions/3",
                    strategy=tree_pb2.MERGE_STRATEGY_OURS,
                ),
                metadata=md,
            ),
            f"{generation}/versions/5",
        ),
    ]
    for method, call, resource in expected:
        assert _logged(server, call) == [
            {"principal": "alice", "method": method, "resource": resource, "outcome": "OK"}
        ]
        alice.wait(resource)
    [uploaded] = _logged(server, lambda: s.UploadTree(_uploads(), metadata=md))
    assert uploaded["method"] == "UploadTree" and str(uploaded["resource"]).endswith("/versions/1")
    running = alice.generate(script(stages=1, delay=5)).name
    assert _logged(server, lambda: s.CancelVersion(pb.CancelVersionRequest(name=running), metadata=md)) == [
        {"principal": "alice", "method": "CancelVersion", "resource": running, "outcome": "OK"}
    ]
    [drafted] = _logged(
        server, lambda: s.DraftPrompt(pb.DraftPromptRequest(text="an idea", model="offline"), metadata=md)
    )
    draft = str(drafted["resource"])
    assert drafted == {"principal": "alice", "method": "DraftPrompt", "resource": draft, "outcome": "OK"}
    assert draft.startswith("drafts/")
    assert _logged(
        server, lambda: s.UpdateDraft(pb.UpdateDraftRequest(name=draft, prompt="An idea."), metadata=md)
    ) == [{"principal": "alice", "method": "UpdateDraft", "resource": draft, "outcome": "OK"}]


def test_a_refused_mutating_call_logs_its_status_and_reason(alice: Api, server: ServerProcess) -> None:
    s, md = alice.stub, alice.metadata
    assert _logged(server, lambda: alice.generate("")) == [
        {
            "principal": "alice",
            "method": "Generate",
            "resource": "",
            "outcome": "INVALID_ARGUMENT",
            "reason": "EMPTY_PROMPT",
        }
    ]
    missing = "generations/nope/versions/1"
    assert _logged(server, lambda: s.CancelVersion(pb.CancelVersionRequest(name=missing), metadata=md)) == [
        {
            "principal": "alice",
            "method": "CancelVersion",
            "resource": missing,
            "outcome": "NOT_FOUND",
            "reason": "VERSION_NOT_FOUND",
        }
    ]
    with server.channel() as channel:
        stranger = Api(channel, "wrong-token")
        assert _logged(server, lambda: stranger.generate("hello")) == [
            {
                "principal": None,
                "method": "Generate",
                "resource": "",
                "outcome": "UNAUTHENTICATED",
                "reason": "INVALID_TOKEN",
            }
        ]


def test_reads_log_nothing(alice: Api, server: ServerProcess) -> None:
    s, md = alice.stub, alice.metadata
    version = alice.wait(alice.generate("read me", model="offline").name)
    generation = version.name.split("/versions/")[0]
    offset = len(server.log())
    s.GetVersion(pb.GetVersionRequest(name=version.name), metadata=md)
    s.GetGeneration(pb.GetGenerationRequest(name=generation), metadata=md)
    s.ListGenerations(pb.ListGenerationsRequest(), metadata=md)
    s.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=md)
    s.ListFiles(pb.ListFilesRequest(parent=version.name), metadata=md)
    list(s.ReadFile(pb.ReadFileRequest(name=version.name, path="README.md"), metadata=md))
    list(s.ExportTree(pb.ExportTreeRequest(name=version.name), metadata=md))
    list(s.Progress(pb.ProgressRequest(name=version.name), metadata=md))
    s.ListModels(pb.ListModelsRequest(), metadata=md)
    s.GetSession(pb.GetSessionRequest(name=f"{generation}/session"), metadata=md)
    s.ListTurns(pb.ListTurnsRequest(parent=f"{generation}/session"), metadata=md)
    s.Diff(pb.DiffRequest(base=version.name, target=version.name), metadata=md)
    fails(lambda: s.GetVersion(pb.GetVersionRequest(name="nope"), metadata=md))
    time.sleep(0.05)
    assert _audit_lines(server, offset) == []
