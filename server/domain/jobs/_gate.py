"""A model's capacity as this process sees it: cooldowns after 429s, the probe that ends one, and
the model's budgets of requests and of input tokens per minute. Providers see it through
`ModelGate`, one per job.

A 429 is the model's problem, not the job's: the whole model cools down, honouring the delay
the answer asked for. While it cools, no request goes out; then one job probes. A refused probe
doubles the cooldown (with jitter, up to a cap); an answered one ends it for every job. Jobs wait
through all of this instead of spending their attempts, up to `provider_max_wait_seconds` each.
The cooldown is stored with the model (storage.cool_down), so other replicas stop starting jobs
of the model too; each replica probes for itself.

The budgets are token buckets stored with the model too, so they hold across replicas. A
request takes its estimated input tokens (the provider's estimate) before it goes out; the
model's own count, once it answers, corrects the bucket by the difference.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import anyio

import storage
from server.config import ModelConfig, Settings
from server.domain import _transactions as transactions
from server.providers import ProviderError

_log = logging.getLogger("atelier.jobs")

# The first cooldown of a model that did not say how long to wait.
_FIRST_STEP_SECONDS = 1.0
# Cooldowns are stretched by up to this share, so that replicas do not probe in lockstep.
_JITTER = 0.2
# A cooldown extended by less than this is not written to the database again.
_TELL_AFTER_SECONDS = 0.25
# A job waiting for input tokens looks again at least this often: another replica's correction
# may have given some back sooner than its wait foresaw (one made in this process wakes it).
_TOKENS_LOOK_AGAIN_SECONDS = 2.0


class ModelCapacity:
    """One model's cooldown, probe and budgets in this process."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        db: storage.Database,
        settings: Settings,
        spawn: Callable[..., None],
        on_refused: Callable[[str], None] = lambda model: None,
    ) -> None:
        self.model = model
        self._db = db
        self._settings = settings
        # Runs a coroutine function in the background (the runner's task group).
        self._spawn = spawn
        self._on_refused = on_refused
        self._random = random.Random()
        # Wall-clock end of the cooldown (0: none), and the backoff step (0: it answered last).
        self._until = 0.0
        self._step = 0.0
        self._probing = False
        self._changed = anyio.Event()
        # The cooldown (end, step) last written to the database.
        self._told = (0.0, 0.0)
        # Writes of this process's cooldowns not yet committed, and when the last one was
        # (time.monotonic()): until then the database does not know of them (see adopt).
        self._writing = 0
        self._written_at = 0.0

    @property
    def cooling_until(self) -> datetime | None:
        """When the cooldown ends, if the model is cooling down now."""
        return datetime.fromtimestamp(self._until, UTC) if self._until > time.time() else None

    def gate(self) -> JobGate:
        """The gate one job uses for the requests it makes."""
        return JobGate(self)

    def adopt(self, until: datetime | None, step: float, *, read_at: float) -> None:
        """What the database says of the model (another replica's cooldown, or its end), as a
        read that began at `read_at` (time.monotonic()) saw it."""
        stored = until.timestamp() if until is not None else 0.0
        if stored > self._until or step > self._step:
            self._until, self._step = max(self._until, stored), max(self._step, step)
            self._wake()
        elif (
            step == 0
            and stored == 0
            and self._step > 0
            and not self._probing
            # A read older than this process's own cooldown knows nothing of it: that is not
            # another replica's probe ending it. (Taken for one, it let every waiting job out
            # into the storm again.)
            and not self._writing
            and read_at > self._written_at
        ):
            self._recovered(persist=False)

    # The protocol each JobGate follows.

    async def before_request(self, gate: JobGate, input_tokens: int) -> None:
        while True:
            now = time.time()
            if self._until > now:
                await gate.wait(self._until - now)
                continue
            if self._step > 0:  # it refused the last request: one probe at a time
                if self._probing:
                    await gate.wait(None)
                    continue
                self._probing = gate.probe = True
            break
        per_minute = self.model.requests_per_minute
        if per_minute:
            await self._spend(gate, functools.partial(_take_request, self.model.name, per_minute))
        tokens_per_minute = self.model.tokens_per_minute
        if tokens_per_minute and input_tokens > 0:
            take = functools.partial(_take_input_tokens, self.model.name, tokens_per_minute, input_tokens)
            # A correction can give tokens back before the wait is over: one made in this process
            # wakes the waiting jobs; another replica's is seen at the next look.
            await self._spend(gate, take, look_again=_TOKENS_LOOK_AGAIN_SECONDS)

    async def _spend(
        self,
        gate: JobGate,
        take: Callable[[storage.Transaction], float],
        *,
        look_again: float = math.inf,
    ) -> None:
        """Takes from one of the model's budgets (a token bucket on its shared row) with `take`,
        which answers the seconds until it could, waiting for them: the bucket refills with
        time. The wait counts toward the job's bound on waiting (provider_max_wait_seconds), as
        a cooldown does; a change of the model's state cuts it short, and `look_again` bounds it."""
        while (wait := await transactions.write(self._db, take)) > 0:
            await gate.wait(min(wait, look_again))

    def tokens_counted(self, estimated: int, actual: int) -> None:
        per_minute = self.model.tokens_per_minute
        if not per_minute or estimated <= 0 or actual == estimated:
            return  # nothing was taken, or nothing to correct
        self._spawn(self._correct_tokens, per_minute, actual - estimated)

    def answered(self, gate: JobGate) -> None:
        if gate.probe or self._step > 0:
            self._recovered(persist=True)
        gate.probe = False

    def refused(self, gate: JobGate, retry_after: float | None) -> None:
        self._on_refused(self.model.name)
        now = time.time()
        asked = max(retry_after or 0.0, 0.0)
        cap = self._settings.model_cooldown_max_seconds
        if now < self._until and not gate.probe:
            # One storm, one step: the requests already out when it began are refused too.
            self._until = max(self._until, now + min(asked, cap))
        else:
            self._step = min(cap, self._step * 2) if self._step else (asked or _FIRST_STEP_SECONDS)
            delay = min(cap, max(asked, self._step))
            delay = min(cap * (1 + _JITTER), delay * (1 + self._random.uniform(0, _JITTER)))
            self._until = max(self._until, now + delay)
        if gate.probe:
            self._probing = gate.probe = False
        # A storm's refusals arrive together: tell the database (other replicas) when the
        # cooldown moved noticeably, not once per refusal.
        if self._step != self._told[1] or self._until > self._told[0] + _TELL_AFTER_SECONDS:
            self._told = (self._until, self._step)
            until, step, name = datetime.fromtimestamp(self._until, UTC), self._step, self.model.name
            _log.warning("%s refused a request (429): cooling down until %s", name, until.isoformat())
            self._writing += 1
            write = functools.partial(storage.cool_down, model=name, until=until, step=step)
            self._spawn(self._persist_cooldown, write)
        self._wake()

    def release(self, gate: JobGate) -> None:
        """The job ended: a probe it still held goes to another job."""
        if gate.probe:
            self._probing = gate.probe = False
            self._wake()

    def _recovered(self, *, persist: bool) -> None:
        self._until = self._step = 0.0
        self._probing = False
        self._told = (0.0, 0.0)
        if persist:
            name = self.model.name
            self._spawn(self._persist, lambda tx: storage.end_cooldown(tx, model=name))
        self._wake()

    async def _correct_tokens(self, per_minute: int, by: int) -> None:
        name = self.model.name
        await self._persist(
            lambda tx: storage.correct_input_tokens(tx, model=name, per_minute=per_minute, by=by)
        )
        if by < 0:
            self._wake()  # tokens given back: the jobs waiting for them look again

    async def _persist_cooldown(self, work: Callable[[storage.Transaction], object]) -> None:
        try:
            await self._persist(work)
        finally:
            self._writing -= 1
            self._written_at = time.monotonic()

    async def _persist(self, work: Callable[[storage.Transaction], object]) -> None:
        try:
            await transactions.write(self._db, work)
        except storage.StorageError:
            # The cooldown still holds in this process; other replicas learn of it from their own 429s.
            _log.warning("could not store the state of model %s", self.model.name, exc_info=True)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def _take_request(model: str, per_minute: int, tx: storage.Transaction) -> float:
    return storage.take_request(tx, model=model, per_minute=per_minute)


def _take_input_tokens(model: str, per_minute: int, tokens: int, tx: storage.Transaction) -> float:
    return storage.take_input_tokens(tx, model=model, per_minute=per_minute, tokens=tokens)


class JobGate:
    """One job's view of its model's capacity (the providers' ModelGate)."""

    def __init__(self, capacity: ModelCapacity) -> None:
        self._capacity = capacity
        # Whether this job's next (or current) request is the model's probe.
        self.probe = False
        # Seconds this job waited on cooldowns and budgets, for its ledger and its bound.
        self.waited = 0.0

    async def before_request(self, input_tokens: int = 0) -> None:
        await self._capacity.before_request(self, input_tokens)

    def answered(self) -> None:
        self._capacity.answered(self)

    def refused(self, *, retry_after: float | None) -> None:
        self._capacity.refused(self, retry_after)

    def tokens_counted(self, *, estimated: int, actual: int) -> None:
        self._capacity.tokens_counted(estimated, actual)

    def release(self) -> None:
        self._capacity.release(self)

    async def wait(self, seconds: float | None) -> None:
        """Waits for the model's state to change, or `seconds`, within the job's bound on waiting."""
        limit = self._capacity._settings.provider_max_wait_seconds
        left = limit - self.waited
        if left <= 0:
            model = self._capacity.model.name
            raise ProviderError(
                f"{model} stayed over its quota: this job waited {self.waited:.0f} s for it in all, "
                f"and the server allows {limit:.0f} s (ATELIER_PROVIDER_MAX_WAIT_SECONDS)",
                reason="MODEL_QUOTA_EXHAUSTED",
                code="RESOURCE_EXHAUSTED",
            )
        started = time.monotonic()
        with anyio.move_on_after(left if seconds is None else min(seconds, left)):
            await self._capacity._changed.wait()
        self.waited += time.monotonic() - started
