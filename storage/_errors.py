"""What storage raises. Callers never see a SQLAlchemy or driver exception: `Database` turns
every one of them into one of these (`_database._translate_error`)."""

from __future__ import annotations


class StorageError(Exception):
    """The database refused a statement. Retrying the same statement will fail the same way,
    unless the error is one of the subclasses that say otherwise."""


class StorageUnavailable(StorageError):
    """The database could not be reached, or dropped the connection: trying again later may work."""


class DatabaseMissing(StorageUnavailable):
    """The PostgreSQL server answers, but has no database of that name (it must be created first)."""

    def __init__(self, message: str, database: str) -> None:
        super().__init__(message)
        self.database = database


class WriteConflict(StorageError):
    """A write collided with another transaction's (a unique key taken first)."""


class RequestIdTaken(WriteConflict):
    """Another transaction created a version (or a draft) with the same owner and request id first."""


class StateConflict(StorageError):
    """A version's progress was written by someone else first: it already ended, or another
    writer recorded its next events."""

    def __init__(self, version_id: int, state: str, last_event_seq: int) -> None:
        super().__init__(f"version id {version_id} is {state}, at event {last_event_seq}")
        self.version_id = version_id
        self.state = state
        self.last_event_seq = last_event_seq


class GenerationDeleted(StorageError):
    """The generation was deleted (or purged) while a version was being added to it."""

    def __init__(self, generation_id: str) -> None:
        super().__init__(f"generation {generation_id} was deleted")
        self.generation_id = generation_id


class TooManyQueuedJobs(StorageError):
    """The owner already has its limit of queued and running jobs: no version was added."""

    def __init__(self, owner: str, count: int, limit: int) -> None:
        super().__init__(f"{owner!r} has {count} jobs queued or running; the limit is {limit}")
        self.owner = owner
        self.count = count
        self.limit = limit


class SchemaOutOfDate(StorageError):
    """The database's schema is not the one this code was written for: it needs migrating, or
    it was migrated by newer code."""
