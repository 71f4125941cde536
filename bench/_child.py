"""Runs a load function in its own process, so the client never shares the server's core."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ChildFailed(RuntimeError):
    """The load process raised, died, or overran its time limit."""


def _child_main(
    conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    try:
        conn.send((True, fn(*args, **kwargs)))
    except BaseException:
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


def run_in_child(time_limit: float, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`fn(*args, **kwargs)` in a fresh process; its result must pickle.

    "spawn", not "fork": gRPC's core threads do not survive a fork, and a fresh interpreter
    makes every measurement start from the same state.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, fn, args, kwargs), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(time_limit):
            raise ChildFailed(f"{fn.__name__} did not finish in {time_limit:.0f} s")
        try:
            ok, value = receiver.recv()
        except EOFError as exc:
            raise ChildFailed(f"{fn.__name__} died (exit code {process.exitcode})") from exc
        if not ok:
            raise ChildFailed(f"{fn.__name__} failed:\n{value}")
        result: _T = value
        return result
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)
