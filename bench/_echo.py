"""The baseline: a bare grpc.aio server whose unary method returns its request bytes.

Its streaming method answers a request of N bytes with N copies of it: with a unary call,
that is the gRPC shape of one Atelier job (Generate, then a Progress stream of its events).

Run as `python -m bench._echo`; it prints `echo listening on HOST:PORT` and serves until
it is killed. No protobuf, no interceptors, no logging: whatever Atelier costs beyond
this is Atelier's own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
STREAM_METHOD = f"/{SERVICE}/Stream"
READY_PREFIX = "echo listening on "


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def _stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for _ in range(len(request)):
        yield request


async def serve(host: str = "127.0.0.1") -> None:
    server = grpc.aio.server()
    # No (de)serializers: the handler sees and returns raw bytes.
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f"{READY_PREFIX}{host}:{port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
