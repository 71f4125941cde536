"""Which calls are retried, and how: with a fake transport that fails on demand (no server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from atelier import AsyncAtelierClient, AtelierClient, Internal, RetryPolicy, Unavailable
from atelier.v1 import draft_pb2, generation_pb2

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)


class _RpcError(grpc.RpcError):  # type: ignore[misc]  # grpc has no type stubs
    """What a failed call raises: a status code, details and no rich status."""

    def __init__(self, code: grpc.StatusCode, details: str = "connection reset") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


class _Method:
    """A unary method that fails with the given codes first, then answers."""

    def __init__(self, *failures: grpc.StatusCode) -> None:
        self.failures = list(failures)
        self.requests: list[Any] = []
        self.timeouts: list[float | None] = []

    def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if self.failures:
            raise _RpcError(self.failures.pop(0))
        return generation_pb2.Version(name="generations/g/versions/1", number=1)


def _client(**methods: Callable[..., Any]) -> AtelierClient:
    client = AtelierClient("127.0.0.1:1", retry=FAST, timeout=5)
    client._stub = type("FakeStub", (), {name: staticmethod(m) for name, m in methods.items()})()
    return client


def test_generate_is_retried_with_one_request_id_made_once() -> None:
    method = _Method(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    with _client(Generate=method) as client:
        assert client.generate("a prompt").number == 1
    ids = [r.request_id for r in method.requests]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]
    # A deadline on every attempt, and the attempts share the call's deadline.
    timeouts = [t for t in method.timeouts if t is not None]
    assert len(timeouts) == 3 and all(0 < t <= 5 for t in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)


def test_a_caller_request_id_is_kept_and_each_call_gets_its_own() -> None:
    method = _Method(grpc.StatusCode.UNAVAILABLE)
    with _client(Tweak=method, Iterate=_Method(), Regenerate=_Method()) as client:
        client.tweak("generations/g/versions/1", "more", request_id="mine")
        client.iterate("generations/g/versions/1", "more")
        client.iterate("generations/g/versions/1", "more")
    assert [r.request_id for r in method.requests] == ["mine", "mine"]


class _DraftMethod(_Method):
    """DraftPrompt: answers a draft."""

    def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any:
        super().__call__(request, timeout=timeout, metadata=metadata)
        return draft_pb2.Draft(name="drafts/d", text=request.text)


def test_draft_prompt_is_retried_with_one_request_id_made_once_or_the_callers() -> None:
    method = _DraftMethod(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    with _client(DraftPrompt=method) as client:
        assert client.draft_prompt("a cat").name == "drafts/d"
        client.draft_prompt("a cat", request_id="mine")
        client.draft_prompt("a cat")
    ids = [r.request_id for r in method.requests]
    assert len(ids) == 5 and len(set(ids[:3])) == 1 and ids[0]
    assert ids[3] == "mine" and ids[4] not in (ids[0], "mine")


def test_get_is_retried_and_gives_up_after_the_policy_s_attempts() -> None:
    method = _Method(*[grpc.StatusCode.UNAVAILABLE] * 10)
    with _client(GetVersion=method) as client, pytest.raises(Unavailable) as caught:
        client.get("generations/g/versions/1")
    assert len(method.requests) == FAST.max_attempts
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_cancel_and_permanent_errors_are_not_retried() -> None:
    cancel = _Method(grpc.StatusCode.UNAVAILABLE)
    get = _Method(grpc.StatusCode.INTERNAL)
    with _client(CancelVersion=cancel, GetVersion=get) as client:
        with pytest.raises(Unavailable):
            client.cancel("generations/g/versions/1")
        with pytest.raises(Internal):
            client.get("generations/g/versions/1")
    assert len(cancel.requests) == 1 and len(get.requests) == 1


def test_the_backoff_grows_and_is_capped() -> None:
    delays = RetryPolicy(initial_backoff=1, max_backoff=4, multiplier=2, jitter=0).delays()
    assert [next(delays) for _ in range(5)] == [1, 2, 4, 4, 4]


class _AsyncMethod(_Method):
    """The same method, as grpc.aio calls it (awaited)."""

    # grpc.aio passes the deadline as `timeout=`, like the sync stubs.
    async def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any:  # noqa: ASYNC109
        return super().__call__(request, timeout=timeout, metadata=metadata)


class _AsyncDraftMethod(_DraftMethod):
    async def __call__(self, request: Any, *, timeout: float | None, metadata: Any) -> Any:  # noqa: ASYNC109
        return super().__call__(request, timeout=timeout, metadata=metadata)


def test_the_async_client_makes_the_same_retry_decisions() -> None:
    generate = _AsyncMethod(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    cancel = _AsyncMethod(grpc.StatusCode.UNAVAILABLE)
    get = _AsyncMethod(grpc.StatusCode.INTERNAL)
    draft = _AsyncDraftMethod(grpc.StatusCode.UNAVAILABLE)

    async def work() -> None:
        async with AsyncAtelierClient("127.0.0.1:1", retry=FAST, timeout=5) as client:
            methods = {"Generate": generate, "CancelVersion": cancel, "GetVersion": get, "DraftPrompt": draft}
            client._stub = type("FakeStub", (), {name: staticmethod(m) for name, m in methods.items()})()
            assert (await client.generate("a prompt")).number == 1
            assert (await client.draft_prompt("a cat", request_id="mine")).name == "drafts/d"
            with pytest.raises(Unavailable):
                await client.cancel("generations/g/versions/1")
            with pytest.raises(Internal):
                await client.get("generations/g/versions/1")

    asyncio.run(work())
    ids = [r.request_id for r in generate.requests]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]
    assert len(cancel.requests) == 1 and len(get.requests) == 1
    assert [r.request_id for r in draft.requests] == ["mine", "mine"]


def test_a_refusal_with_retry_info_is_retried_after_the_delay_it_asks_and_one_without_is_not() -> None:
    from atelier import ResourceExhausted
    from atelier._retry import Deadline, RetryState

    state = RetryState(FAST, Deadline(5))
    limited = ResourceExhausted("slow down", reason="RATE_LIMITED", retry_after=0.25)
    assert state.next_delay(limited) == 0.25
    assert RetryState(FAST, Deadline(0.1)).next_delay(limited) is None  # not within the deadline
    assert state.next_delay(ResourceExhausted("too many jobs", reason="TOO_MANY_QUEUED_JOBS")) is None
