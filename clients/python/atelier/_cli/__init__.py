"""The `atelier` command line, built only on the SDK (`pip install 'atelier-client[cli]'`).

Exit codes:
    0    success
    1    the job ended FAILED, CANCELLED or NEEDS_REVIEW, or a merge has conflicts
    2    usage error, or the server refused the request as invalid (INVALID_ARGUMENT)
    3    not found (NOT_FOUND)
    4    the server could not be reached, or did not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED)
    5    any other error (UNAUTHENTICATED, FAILED_PRECONDITION, ABORTED, INTERNAL, a local file error, ...)
    130  interrupted (Ctrl-C); a job keeps running unless --cancel-on-interrupt was given
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

try:
    from rich.markup import escape
except ModuleNotFoundError:  # the SDK alone was installed
    sys.stderr.write("atelier: the command line needs the cli extra: pip install 'atelier-client[cli]'\n")
    raise SystemExit(2) from None

from atelier._cli._completion import completion_script
from atelier._cli._exit_codes import (
    EXIT_BY_STATUS_CODE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Usage,
)
from atelier._cli._parser import build_parser
from atelier._cli._run import Cli
from atelier._errors import AtelierError, InvalidArgument


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (see the module's docstring)."""
    _restore_ctrl_c()
    # The exit codes are written once, above, and end `atelier --help`.
    parser = build_parser(epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    args = parser.parse_args(argv)
    if args.command == "completion":
        sys.stdout.write(completion_script(args.shell, parser))
        return 0
    if args.command == "generate" and args.prompt is None and args.draft is None:
        parser.error("generate needs a PROMPT, or --draft NAME (then the draft's prompt is used)")
    if hasattr(args, "cert_file") != hasattr(args, "key_file"):
        parser.error("--cert-file and --key-file go together: give both, or neither")
    try:
        cli = Cli(args)
    except OSError as exc:
        parser.error(f"cannot read {exc.filename}: {exc.strerror}")
    except ValueError as exc:  # from the environment: a client certificate without its key, or a key alone
        parser.error(str(exc))
    try:
        with cli.client:
            handler: Callable[[Cli], int] = args.handler
            return handler(cli)
    except KeyboardInterrupt:
        cli.err.print("\nInterrupted.")
        return EXIT_INTERRUPTED
    except Usage as exc:
        return _report(cli, EXIT_USAGE, {"code": "USAGE", "message": str(exc)})
    except AtelierError as exc:
        return _report(
            cli, EXIT_BY_STATUS_CODE.get(exc.code, EXIT_ERROR), _error_document(exc, cli.client.target)
        )
    except (OSError, ValueError) as exc:
        return _report(cli, EXIT_ERROR, {"code": "LOCAL", "message": str(exc)})


def _restore_ctrl_c() -> None:
    # A shell without job control starts a background command (`atelier ... &`) with SIGINT
    # ignored, and its children inherit that; Ctrl-C must still detach from (or cancel) a job.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _report(cli: Cli, code: int, error: Mapping[str, Any]) -> int:
    if cli.json:
        cli.emit({"error": error, "exit_code": code})
    reason = f" [{error['reason']}]" if error.get("reason") else ""
    message = _CLI_MESSAGES.get(error.get("reason", ""), "") or _in_cli_words(str(error["message"]))
    cli.err.print(f"[red]atelier: {error['code']}{escape(reason)}:[/red] {escape(message)}")
    for violation in error.get("field_violations", ()):
        cli.err.print(f"  {escape(violation['field'])}: {escape(_in_cli_words(violation['description']))}")
    if error.get("hint"):
        cli.err.print(f"[yellow]hint:[/yellow] {escape(error['hint'])}")
    return code


# Server messages that speak of the wire, said as the command line knows it.
_CLI_MESSAGES = {
    "MISSING_CREDENTIALS": "this server needs a token: give it with --token TOKEN, or set ATELIER_TOKEN"
}
# The server's messages name its methods; a person at the command line knows the commands.
_COMMAND_OF_METHOD = {
    "ListModels": "`atelier models`",
    "ListGenerations": "`atelier list`",
    "ListVersions": "`atelier log`",
    "ListFiles": "`atelier files`",
    "ListTurns": "`atelier turns`",
    "GetVersion": "`atelier status`",
    "GetGeneration": "`atelier status`",
    "CancelVersion": "`atelier cancel`",
    "DeleteGeneration": "`atelier delete`",
    "UndeleteGeneration": "`atelier undelete`",
    "UploadTree": "`atelier upload`",
    "ExportTree": "`atelier export`",
    "ReadFile": "`atelier cat`",
}
_METHOD = re.compile(r"\b(" + "|".join(_COMMAND_OF_METHOD) + r")\b")


def _in_cli_words(message: str) -> str:
    return _METHOD.sub(lambda match: _COMMAND_OF_METHOD[match.group(1)], message)


def _hint(exc: AtelierError, target: str) -> str:
    """What to do about an error, said in the command line's words."""
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        if exc.reason == "MISSING_CREDENTIALS":
            return "give a token with --token TOKEN, or set ATELIER_TOKEN"
        return "check the token given with --token or ATELIER_TOKEN"
    if exc.code == grpc.StatusCode.UNAVAILABLE and not exc.domain:  # the server never answered
        return (
            f"no Atelier server answered at {target}. Start one with `make run` (or `atelier-server serve`), "
            "or name yours with --target HOST:PORT (or ATELIER_TARGET); a server with TLS needs --tls"
        )
    if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED and not exc.domain:
        return f"the server at {target} did not answer in time: try a longer --timeout SECONDS"
    return ""


def _error_document(exc: AtelierError, target: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "code": exc.code.name,
        "reason": exc.reason,
        "domain": exc.domain,
        "message": exc.message,
        "metadata": exc.metadata,
        "hint": _hint(exc, target),
    }
    if isinstance(exc, InvalidArgument):
        document["field_violations"] = [
            {"field": v.field, "description": v.description} for v in exc.field_violations
        ]
    return document
