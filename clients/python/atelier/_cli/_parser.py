"""The command line's grammar: the options every command accepts, and each command's arguments."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from atelier._cli._commands import (
    cmd_blame,
    cmd_cancel,
    cmd_cat,
    cmd_diff,
    cmd_draft_edit,
    cmd_draft_list,
    cmd_draft_new,
    cmd_draft_show,
    cmd_export,
    cmd_generate,
    cmd_iterate,
    cmd_log,
    cmd_merge,
    cmd_models,
    cmd_regenerate,
    cmd_status,
    cmd_tweak,
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
    p.add_argument("prompt", nargs="?", help="what to make (optional with --draft: the draft's prompt)")
    p.add_argument("--draft", metavar="NAME", help="the draft the prompt comes from (`atelier draft`)")
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
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
    _long_options(p)

    p = command("watch", cmd_watch, "follow a version's progress until it ends")
    p.add_argument("version")
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

    command("models", cmd_models, "list the models the server offers")

    p = command("merge", cmd_merge, "three-way merge two versions of one generation")
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("--strategy", choices=("ours", "theirs"), help="resolve every conflict with one side")
    p.add_argument("--request-id")

    p = command("cancel", cmd_cancel, "stop a queued or running version's job")
    p.add_argument("version")

    p = command(
        "draft", cmd_draft_list, "draft a prompt with a text model, then edit it (new, show, edit, list)"
    )
    drafts = p.add_subparsers(dest="draft_command", metavar="ACTION")

    def action(name: str, handler: Callable[[Cli], int], help: str) -> argparse.ArgumentParser:
        sub = drafts.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    d = action("new", cmd_draft_new, "draft a prompt for a model from your text (- reads stdin)")
    d.add_argument("text")
    d.add_argument("--context", help="a context or style instruction for the draft")
    d.add_argument("--model", help="the model the prompt is for (a model from `atelier models`)")
    d = action("show", cmd_draft_show, "show a draft")
    d.add_argument("name", help="drafts/{id}, or the id")
    d = action("edit", cmd_draft_edit, "replace a draft's prompt with your edit (- reads stdin)")
    d.add_argument("name", help="drafts/{id}, or the id")
    d.add_argument("prompt")
    d.add_argument("--etag", help="refuse if the draft changed since this etag")
    action("list", cmd_draft_list, "list your drafts, newest first")

    p = command("blame", cmd_blame, "show which version last changed each file of a version, and why")
    p.add_argument("version", help="a version, or a generation (its latest version)")
    p.add_argument("path", nargs="?", help="only this file, or the files under this directory")
    return parser
