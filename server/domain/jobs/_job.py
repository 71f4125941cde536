"""A claimed job and what every step of running it shares."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import anyio

import storage
from server.config import Settings
from server.domain._recent import LoadedTree, Recent
from server.domain.events import EventHub
from server.providers import ModelUsage, Provider, ProviderRegistry, ProviderRequest

MERGE_STAGE = "Merge"
SAVE_STAGE = "Save"
# What a version stopped by CancelVersion says: a person (or their script) asked for it.
CANCELLED_BY_USER = storage.ErrorDetail(code="CANCELLED", reason="CANCELLED", message="cancelled by the user")
CANCELLED_BY_USER_MESSAGE = "Cancelled by the user"


class StopReason(enum.StrEnum):
    """Why a running job was stopped before its natural end."""

    SHUTDOWN = "shutdown"
    CANCEL = "cancel"
    LOST_LEASE = "lost-lease"


@dataclass(frozen=True, slots=True)
class JobContext:
    """The collaborators of one process's job runner, shared by claiming, running and settling."""

    db: storage.Database
    hub: EventHub
    providers: ProviderRegistry
    settings: Settings
    # What the latest jobs of this process made, for the jobs that continue from it.
    recent: Recent
    # Names this process's leases.
    worker: str
    lease: timedelta


@dataclass(slots=True)
class RunningJob:
    """A claimed job and everything its run needs, gathered in the claiming transaction."""

    claimed: storage.ClaimedJob
    # The version as the claim read it (what the job needs of it never changes while it runs).
    version: storage.Version
    session_id: str | None
    request: ProviderRequest
    provider: Provider
    # The version the job builds on, and its tree with the files' contents; None when the
    # version starts from nothing.
    parent: storage.Version | None
    parent_tree: LoadedTree | None
    titles: list[str]
    # The RUNNING event the claim recorded.
    running: storage.Event
    # The seq of the version's last stored event.
    stored_seq: int
    scope: anyio.CancelScope | None = None
    stop_reason: StopReason | None = None
    # Set when the job ends while another job of its session waits in the queue.
    successor_waiting: bool = False
    # Set when the result must be held back as NEEDS_REVIEW instead of COMPLETED.
    review_reason: str | None = None
    pending: list[storage.EventDraft] = field(default_factory=list)
    # The ledger: what each request to the model used, and how long the job waited on cooldowns.
    usage: list[ModelUsage] = field(default_factory=list)
    cooldown_seconds: float = 0.0

    @property
    def version_id(self) -> int:
        return self.claimed.version_id

    @property
    def parent_entries(self) -> Mapping[str, storage.TreeEntry] | None:
        return self.parent_tree.entries if self.parent_tree is not None else None

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.scope is not None:
            self.scope.cancel()
