"""Every RPC of AtelierService as one call on a version's name, for tests that go through them all."""

from __future__ import annotations

from collections.abc import Callable

from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, upload_pb2, webhook_pb2

from tests._support import Api

# The scope each RPC needs (server/api/_methods.py declares it on each method).
WRITE_RPCS = frozenset(
    {
        "Generate",
        "Tweak",
        "Iterate",
        "Regenerate",
        "UploadTree",
        "UploadFiles",
        "Merge",
        "CancelVersion",
        "DeleteGeneration",
        "UndeleteGeneration",
        "ReplayWebhookDelivery",
        "DraftPrompt",
        "UpdateDraft",
        "DeleteDraft",
    }
)
READ_RPCS = frozenset(
    {
        "GetVersion",
        "ListVersions",
        "GetGeneration",
        "ListGenerations",
        "Progress",
        "ListFiles",
        "ReadFile",
        "ListModels",
        "Diff",
        "ExportTree",
        "GetSession",
        "ListTurns",
        "ListWebhookDeliveries",
        "GetBatch",
        "EstimateCost",
        "GetUsage",
        "GetDraft",
        "ListDrafts",
        "Blame",
    }
)


def every_rpc(api: Api, version: str, draft: str = "drafts/0") -> dict[str, Callable[[], object]]:
    """Each RPC, called by `api` on `version` (`generations/{g}/versions/{n}`) or its generation,
    and on `draft` (`drafts/{d}`) for the drafts' RPCs."""
    s, md = api.stub, api.metadata
    generation = version.split("/versions/")[0]
    sibling = f"{generation}/versions/2"
    upload = [
        pb.UploadTreeRequest(description="mine", file=file_pb2.File(path="a.txt", mime_type="text/plain")),
        pb.UploadTreeRequest(data=b"a"),
    ]
    return {
        "Generate": lambda: s.Generate(pb.GenerateRequest(prompt="p", model="offline"), metadata=md),
        "Tweak": lambda: s.Tweak(pb.TweakRequest(name=version, prompt="p"), metadata=md),
        "Iterate": lambda: s.Iterate(pb.IterateRequest(parent=version, prompt="p"), metadata=md),
        "Regenerate": lambda: s.Regenerate(pb.RegenerateRequest(name=version), metadata=md),
        "UploadTree": lambda: s.UploadTree(iter(upload), metadata=md),
        "UploadFiles": lambda: s.UploadFiles(
            upload_pb2.UploadFilesRequest(
                description="mine", files=[upload_pb2.UploadedFile(path="a.txt", data=b"a")]
            ),
            metadata=md,
        ),
        "Merge": lambda: s.Merge(pb.MergeRequest(ours=version, theirs=sibling), metadata=md),
        "CancelVersion": lambda: s.CancelVersion(pb.CancelVersionRequest(name=version), metadata=md),
        "DeleteGeneration": lambda: s.DeleteGeneration(
            pb.DeleteGenerationRequest(name=generation), metadata=md
        ),
        "UndeleteGeneration": lambda: s.UndeleteGeneration(
            pb.UndeleteGenerationRequest(name=generation), metadata=md
        ),
        "GetVersion": lambda: s.GetVersion(pb.GetVersionRequest(name=version), metadata=md),
        "ListVersions": lambda: s.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=md),
        "GetGeneration": lambda: s.GetGeneration(pb.GetGenerationRequest(name=generation), metadata=md),
        "ListGenerations": lambda: s.ListGenerations(pb.ListGenerationsRequest(), metadata=md),
        "Progress": lambda: list(s.Progress(pb.ProgressRequest(name=version), metadata=md, timeout=30)),
        "ListFiles": lambda: s.ListFiles(pb.ListFilesRequest(parent=version), metadata=md),
        "ReadFile": lambda: list(
            s.ReadFile(pb.ReadFileRequest(name=version, path="answer.txt"), metadata=md)
        ),
        "ListModels": lambda: s.ListModels(pb.ListModelsRequest(), metadata=md),
        "Diff": lambda: s.Diff(pb.DiffRequest(base=version, target=version), metadata=md),
        "ExportTree": lambda: list(s.ExportTree(pb.ExportTreeRequest(name=version), metadata=md)),
        "GetSession": lambda: s.GetSession(pb.GetSessionRequest(name=f"{generation}/session"), metadata=md),
        "ListTurns": lambda: s.ListTurns(pb.ListTurnsRequest(parent=f"{generation}/session"), metadata=md),
        "ListWebhookDeliveries": lambda: s.ListWebhookDeliveries(
            webhook_pb2.ListWebhookDeliveriesRequest(parent=version), metadata=md
        ),
        "ReplayWebhookDelivery": lambda: s.ReplayWebhookDelivery(
            webhook_pb2.ReplayWebhookDeliveryRequest(
                name=f"{version}/webhookDeliveries/msg_0123456789abcdef"
            ),
            metadata=md,
        ),
        "GetBatch": lambda: s.GetBatch(pb.GetBatchRequest(name=f"{generation}/batches/1"), metadata=md),
        "EstimateCost": lambda: s.EstimateCost(
            pb.EstimateCostRequest(regenerate=pb.RegenerateRequest(name=version, count=2)), metadata=md
        ),
        "GetUsage": lambda: s.GetUsage(pb.GetUsageRequest(), metadata=md),
        "DraftPrompt": lambda: s.DraftPrompt(pb.DraftPromptRequest(text="p", model="offline"), metadata=md),
        "GetDraft": lambda: s.GetDraft(pb.GetDraftRequest(name=draft), metadata=md),
        "ListDrafts": lambda: s.ListDrafts(pb.ListDraftsRequest(), metadata=md),
        "UpdateDraft": lambda: s.UpdateDraft(pb.UpdateDraftRequest(name=draft, prompt="p"), metadata=md),
        "Blame": lambda: s.Blame(pb.BlameRequest(name=version), metadata=md),
        "DeleteDraft": lambda: s.DeleteDraft(pb.DeleteDraftRequest(name=draft), metadata=md),
    }
