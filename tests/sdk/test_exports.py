"""The SDK's public API is exactly this list: adding or removing a name is a decision, made here."""

from __future__ import annotations

import subprocess
import sys

import atelier

PUBLIC = [
    "DEFAULT",
    "Aborted",
    "AlreadyExists",
    "AsyncAtelierClient",
    "AtelierClient",
    "AtelierError",
    "Attachment",
    "Batch",
    "BatchCounts",
    "Cancelled",
    "ConflictKind",
    "CostEstimate",
    "DeadlineExceeded",
    "Draft",
    "ErrorStatus",
    "FailedPrecondition",
    "FieldViolation",
    "File",
    "FileBlame",
    "FileChange",
    "FileDiff",
    "Generation",
    "Internal",
    "InvalidArgument",
    "Ledger",
    "MergeConflict",
    "MergeResult",
    "MergeStrategy",
    "Model",
    "ModelStatus",
    "ModelUsage",
    "NotFound",
    "PermissionDenied",
    "Price",
    "ProgressEvent",
    "ProgressEventType",
    "RequestLimits",
    "ResourceExhausted",
    "RetryPolicy",
    "Session",
    "Turn",
    "TurnPart",
    "TurnRole",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Usage",
    "UsageRow",
    "Variant",
    "Version",
    "VersionKind",
    "VersionState",
    "WaitTimeout",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryState",
    "WebhookEventType",
]
CLIENT_METHODS = [
    "blame",
    "cancel",
    "delete_draft",
    "delete_generation",
    "diff",
    "estimate_cost",
    "draft_prompt",
    "drafts",
    "export",
    "files",
    "generate",
    "get",
    "get_batch",
    "get_draft",
    "get_generation",
    "iterate",
    "limits",
    "list_generations",
    "merge",
    "models",
    "progress",
    "read_file",
    "regenerate",
    "replay_webhook_delivery",
    "session",
    "turns",
    "tweak",
    "undelete_generation",
    "update_draft",
    "upload",
    "usage",
    "versions",
    "wait",
    "wait_batch",
    "webhook_deliveries",
]


def test_the_public_names_are_pinned() -> None:
    assert atelier.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(atelier, name).__module__.startswith("atelier")
    # Everything else is private (the implementation modules start with an underscore), or generated.
    assert {name for name in dir(atelier) if not name.startswith("_")} - set(PUBLIC) <= {"v1"}


def test_both_clients_have_the_same_documented_methods() -> None:
    for cls in (atelier.AtelierClient, atelier.AsyncAtelierClient):
        public = sorted(n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n)))
        assert public == sorted([*CLIENT_METHODS, "close"])
        for name in public:
            assert getattr(cls, name).__doc__, f"{cls.__name__}.{name} has no docstring"


def test_every_error_is_an_atelier_error() -> None:
    errors = [getattr(atelier, n) for n in PUBLIC if isinstance(getattr(atelier, n), type)]
    errors = [e for e in errors if issubclass(e, BaseException)]
    assert all(issubclass(e, atelier.AtelierError) for e in errors)
    assert issubclass(atelier.WaitTimeout, atelier.DeadlineExceeded)


def test_importing_the_sdk_loads_no_command_line_library() -> None:
    code = "import sys, atelier; print(sorted(m for m in ('rich', 'atelier._cli') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
