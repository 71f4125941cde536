"""The HTTP transport under google-genai: room for every job in flight, spread over small pools.

A job holds one connection while it waits on the model, so the pool must hold `max_in_flight`
connections (httpx's default of 100 capped the calls in flight). One pool that large is slow:
httpcore scans every connection it holds when a request starts and when a response ends, which
costs milliseconds per request at a thousand connections, and seconds of CPU per thousand
requests. So the connections are spread over lanes of at most LANE_CONNECTIONS each.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx2

# Connections per lane: small enough that a lane's scans stay cheap, large enough that few lanes
# serve a modest load (measured: 50 and 100 cost the same, 1,000 four times as much per request).
LANE_CONNECTIONS = 64


class _Lane:
    def __init__(self, capacity: int, verify: ssl.SSLContext) -> None:
        self.capacity = capacity
        self.active = 0
        limits = httpx2.Limits(max_connections=capacity, max_keepalive_connections=capacity)
        self.transport = httpx2.AsyncHTTPTransport(verify=verify, limits=limits)


class LanedTransport(httpx2.AsyncBaseTransport):
    """Up to `max_connections` connections in all, in lanes opened as the load needs them.

    A request goes to the first lane with a free connection, so a light load reuses the same few
    connections; when every lane is full, to the least loaded one, whose pool queues it.
    """

    def __init__(self, max_connections: int, *, verify: ssl.SSLContext) -> None:
        total = max(1, max_connections)
        self._capacities = [LANE_CONNECTIONS] * (total // LANE_CONNECTIONS)
        if total % LANE_CONNECTIONS:
            self._capacities.append(total % LANE_CONNECTIONS)
        self._verify = verify
        self._lanes: list[_Lane] = []

    @property
    def lane_count(self) -> int:
        """How many lanes have been opened so far."""
        return len(self._lanes)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        lane = self._pick()
        lane.active += 1
        try:
            response = await lane.transport.handle_async_request(request)
        except BaseException:
            lane.active -= 1
            raise
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        response.stream = _CountedStream(stream, lane)
        return response

    def _pick(self) -> _Lane:
        for lane in self._lanes:
            if lane.active < lane.capacity:
                return lane
        if len(self._lanes) < len(self._capacities):
            lane = _Lane(self._capacities[len(self._lanes)], self._verify)
            self._lanes.append(lane)
            return lane
        return min(self._lanes, key=lambda lane: lane.active - lane.capacity)

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            await lane.transport.aclose()


class _CountedStream(httpx2.AsyncByteStream):
    """A response's body, which frees its place in the lane once, when it is closed."""

    def __init__(self, stream: httpx2.AsyncByteStream, lane: _Lane) -> None:
        self._stream = stream
        self._lane: _Lane | None = lane

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.active -= 1
        await self._stream.aclose()
