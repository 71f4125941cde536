"""The baseline: a bare grpc.aio server whose one unary method returns its request bytes.

Run as `python -m bench._echo`; it prints `echo listening on HOST:PORT` and serves until
it is killed. No protobuf, no interceptors, no logging: whatever Atelier costs beyond
this is Atelier's own.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
READY_PREFIX = "echo listening on "


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve(host: str = "127.0.0.1") -> None:
    server = grpc.aio.server()
    # No (de)serializers: the handler sees and returns raw bytes.
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
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
