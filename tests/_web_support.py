"""Calls to the web port as a browser or `curl` makes them: Connect JSON (unary and streaming)
and gRPC-Web, over plain HTTP (httpx)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
from google.rpc import error_details_pb2

SERVICE_PATH = "/atelier.v1.AtelierService"


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def unary(
    client: httpx.Client, method: str, body: dict[str, Any], token: str | None = None
) -> httpx.Response:
    """A Connect unary call with a JSON body, as `curl -H 'content-type: application/json'` makes it."""
    return client.post(
        f"{SERVICE_PATH}/{method}",
        content=json.dumps(body),
        headers={"content-type": "application/json", **bearer(token)},
    )


def ok(client: httpx.Client, method: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    response = unary(client, method, body, token)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def envelope(message: dict[str, Any], flags: int = 0) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", flags, len(data)) + data


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    """The (flags, payload) frames of a Connect streaming or gRPC-Web body."""
    frames, offset = [], 0
    while offset < len(body):
        flags, length = struct.unpack(">BI", body[offset : offset + 5])
        frames.append((flags, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    assert offset == len(body), "a truncated frame"
    return frames


def stream(
    client: httpx.Client, method: str, body: dict[str, Any], token: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A Connect server-streaming call: its messages, and its end-of-stream message."""
    response = client.post(
        f"{SERVICE_PATH}/{method}",
        content=envelope(body),
        headers={"content-type": "application/connect+json", **bearer(token)},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/connect+json"
    frames = envelopes(response.content)
    assert frames and frames[-1][0] == 2, "a stream ends with its end-of-stream message"
    return [json.loads(payload) for _, payload in frames[:-1]], json.loads(frames[-1][1])


def error_info(error: dict[str, Any]) -> error_details_pb2.ErrorInfo:
    """The google.rpc.ErrorInfo among a Connect error's details (decoded from its bytes)."""
    for detail in error.get("details", ()):
        if detail["type"] == "google.rpc.ErrorInfo":
            info = error_details_pb2.ErrorInfo()
            info.ParseFromString(base64.b64decode(detail["value"] + "=="))
            return info
    raise AssertionError(f"no ErrorInfo in {error}")


def check_connect_error(response: httpx.Response, status: int, code: str, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert error["code"] == code, error
    assert error["message"]
    info = error_info(error)
    assert (info.reason, info.domain) == (reason, "atelier.v1"), info
    return error
