"""The generation service: the domain operations behind the API, in plain Python.

It validates requests, runs storage verbs in transactions (on worker threads, so the event
loop never blocks), and wakes the job runner and Progress subscribers. Each module holds one
group of verbs; `GenerationService` is all of them.
"""

from __future__ import annotations

from server.domain.generations._base import log_event
from server.domain.generations._batches import BatchVerbs
from server.domain.generations._conversation import ConversationVerbs
from server.domain.generations._costs import CostQuestion, CostVerbs
from server.domain.generations._create import CreateVerbs
from server.domain.generations._delete import DeleteVerbs
from server.domain.generations._drafts import DraftVerbs, drafting_seconds
from server.domain.generations._fanout import Variant
from server.domain.generations._progress import ProgressVerbs
from server.domain.generations._read import ReadVerbs
from server.domain.generations._trees import TreeVerbs
from server.domain.generations._webhooks import WebhookVerbs


class GenerationService(
    CostVerbs,
    CreateVerbs,
    BatchVerbs,
    ProgressVerbs,
    ReadVerbs,
    TreeVerbs,
    ConversationVerbs,
    DeleteVerbs,
    WebhookVerbs,
    DraftVerbs,
):
    """Every verb the API offers, for one database, event hub, job runner and settings."""


__all__ = ["CostQuestion", "GenerationService", "Variant", "drafting_seconds", "log_event"]
