"""Jobs: the durable work behind a QUEUED or RUNNING version, run by this process's `JobRunner`.

A job is claimed with a lease and heartbeats while it runs; its result (its tree, its turns
in the session, its last events and its terminal state) commits in one transaction.
"""

from server.domain.jobs._cancel import cancel_job
from server.domain.jobs._runner import JobRunner

__all__ = ["JobRunner", "cancel_job"]
