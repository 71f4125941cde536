"""The command line's grammar: the options every command accepts, and each command's arguments."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from atelier._cli._commands import (
    cmd_batch,
    cmd_cancel,
    cmd_cat,
    cmd_diff,
    cmd_estimate,
    cmd_export,
    cmd_generate,
    cmd_iterate,
    cmd_log,
    cmd_merge,
    cmd_models,
    cmd_regenerate,
    cmd_status,
    cmd_tweak,
    cmd_usage,
    cmd_watch,
)
from atelier._cli._run import Cli


def _common_options() -> argparse.ArgumentParser:
    # Accepted before or after the command. SUPPRESS keeps a subcommand's unset option from
    # hiding the same option given before the command.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help="server address (env ATELIER_TARGET, default 127.0.0.1:50051)",
    )
    group.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env ATELIER_TOKEN)")
    group.add_argument(
        "--tls", action="store_true", default=argparse.SUPPRESS, help="use TLS (env ATELIER_TLS=1)"
    )
    group.add_argument(
        "--ca-file",
        default=argparse.SUPPRESS,
        help="root certificates that signed the server's certificate (PEM; implies --tls; "
        "env ATELIER_TLS_CA_FILE)",
    )
    group.add_argument(
        "--cert-file",
        default=argparse.SUPPRESS,
        help="client certificate, for a server that asks for one (mutual TLS; PEM; implies --tls; "
        "env ATELIER_TLS_CLIENT_CERT_FILE)",
    )
    group.add_argument(
        "--key-file",
        default=argparse.SUPPRESS,
        help="the client certificate's private key (PEM; env ATELIER_TLS_CLIENT_KEY_FILE)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="deadline of each call, in seconds (default 30)",
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document on stdout"
    )
    return common


def _long_options(parser: argparse.ArgumentParser, *, starts_job: bool = True) -> None:
    if starts_job:
        parser.add_argument("--no-wait", action="store_true", help="print the QUEUED version and return")
    parser.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="cancel the job on Ctrl-C (by default Ctrl-C only detaches: the job keeps running)",
    )


def _fan_out_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--variants",
        metavar="NAMES",
        help="fan out: one output per name, comma-separated (each name is added to the prompt), "
        "e.g. --variants front,side,back",
    )
    group.add_argument("--count", type=int, metavar="N", help="fan out: N outputs of the same prompt")


def build_parser(*, epilog: str | None) -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="atelier",
        description="Run and refine Atelier generation jobs.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[Cli], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    p = command("generate", cmd_generate, "start a generation and follow it to the end")
    p.add_argument("prompt")
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    _fan_out_options(p)
    _long_options(p)

    p = command("tweak", cmd_tweak, "refine a version inside its conversation with the model")
    p.add_argument("version", help="a version, or a generation (its latest version)")
    p.add_argument("prompt")
    p.add_argument("--model")
    p.add_argument("--attach", action="append", default=[], metavar="FILE")
    p.add_argument("--etag", help="refuse if the version changed since this etag")
    p.add_argument("--request-id")
    _long_options(p)

    p = command("iterate", cmd_iterate, "make the next version from a version and a modification prompt")
    p.add_argument("version", help="the parent version, or a generation (its latest version)")
    p.add_argument("prompt")
    p.add_argument("--model")
    p.add_argument("--etag")
    p.add_argument("--request-id")
    _long_options(p)

    p = command("regenerate", cmd_regenerate, "run a version's prompt again as a new attempt")
    p.add_argument("version")
    p.add_argument("--request-id")
    _fan_out_options(p)
    _long_options(p)

    p = command("watch", cmd_watch, "follow a version's (or a fan-out's) progress until it ends")
    p.add_argument("version", help="a version, a generation (its latest version), or a batch")
    _long_options(p, starts_job=False)

    p = command("status", cmd_status, "show a version (or a generation and its latest version)")
    p.add_argument("name")

    p = command("log", cmd_log, "show a generation's versions as a tree of parent links")
    p.add_argument("name", help="a generation, or one of its versions")

    p = command("diff", cmd_diff, "compare two versions (or a version with its parent)")
    # Not `target`: that is the server's address (--target).
    p.add_argument("base", metavar="BASE")
    p.add_argument("compare_to", nargs="?", metavar="TARGET")
    p.add_argument("--text", action="store_true", help="show unified diffs of text files")

    p = command("export", cmd_export, "write a version's files into a directory")
    p.add_argument("version")
    p.add_argument("directory")

    p = command("cat", cmd_cat, "print one file of a version")
    p.add_argument("version")
    p.add_argument("path")

    command("models", cmd_models, "list the models the server offers, with their prices")

    p = command("batch", cmd_batch, "show a fan-out's outputs side by side")
    p.add_argument("name", help="a batch (generations/G/batches/B), or one of its versions")

    p = command("estimate", cmd_estimate, "what a request would cost, before it runs")
    p.add_argument("prompt", nargs="?", default="", help="the prompt (not for --regenerate)")
    p.add_argument("--model")
    _fan_out_options(p)
    base = p.add_mutually_exclusive_group()
    base.add_argument("--tweak", metavar="VERSION", help="price a tweak of VERSION with the prompt")
    base.add_argument("--iterate", metavar="VERSION", help="price an iteration of VERSION with the prompt")
    base.add_argument("--regenerate", metavar="VERSION", help="price asking VERSION's prompt again")

    p = command("usage", cmd_usage, "what was spent, by day, principal and model")
    p.add_argument("--principal", help="only this principal's (admins; others only ever see their own)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only jobs that ended on or after this day (UTC)")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="only jobs that ended before this day (UTC)")

    p = command("merge", cmd_merge, "three-way merge two versions of one generation")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("--strategy", choices=("ours", "theirs"), help="resolve every conflict with one side")
    p.add_argument("--request-id")

    p = command("cancel", cmd_cancel, "stop a queued or running version's job")
    p.add_argument("version")
    return parser
