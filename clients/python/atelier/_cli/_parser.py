"""The command line's grammar: the options every command accepts, and each command's arguments."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any, NoReturn

from atelier._cli._commands import (
    cmd_batch,
    cmd_blame,
    cmd_cancel,
    cmd_cat,
    cmd_delete,
    cmd_diff,
    cmd_draft_delete,
    cmd_draft_edit,
    cmd_draft_list,
    cmd_draft_new,
    cmd_draft_show,
    cmd_estimate,
    cmd_export,
    cmd_files,
    cmd_generate,
    cmd_iterate,
    cmd_list,
    cmd_log,
    cmd_merge,
    cmd_models,
    cmd_regenerate,
    cmd_status,
    cmd_turns,
    cmd_tweak,
    cmd_undelete,
    cmd_upload,
    cmd_usage,
    cmd_watch,
    cmd_webhooks_list,
    cmd_webhooks_replay,
)
from atelier._cli._completion import SHELLS
from atelier._cli._run import Cli
from atelier._types import WebhookEventType

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")

# What the top-level --help ends with, before the exit codes.
OVERVIEW = """\
examples:
  atelier generate "a python CLI that converts celsius to fahrenheit"
  atelier list                          your generations, newest first
  atelier iterate v1 "add a --verbose flag"
  atelier files v2 && atelier cat v2 README.md
  atelier generate - < prompt.txt       the prompt from standard input (or @prompt.txt)

names:
  A generation is named by its id or any unique start or end of it (`atelier list` shows them);
  `GEN/3` is its version 3, and `v3` is version 3 of the current generation: the one you last
  named or made against this server (kept in ~/.local/state/atelier/state.json), else your newest.
  A generation named where a version is expected stands for its latest version.

shell completion:
  eval "$(atelier completion bash)"     (or zsh; fish: atelier completion fish | source)
"""

PROMPT_HELP = "the prompt; `-` reads it from standard input, `@FILE` from a file"


class _Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for a mistyped command or choice."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.search(message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.5)
            if close:
                message = f"{message}\n\n  did you mean {close[0]!r}?"
        super().error(message)


def client_version() -> str:
    try:
        return metadata.version("atelier-client")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


def _common_options() -> _Parser:
    # Accepted before or after the command. SUPPRESS keeps a subcommand's unset option from
    # hiding the same option given before the command.
    common = _Parser(add_help=False)
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


def _webhook_options(parser: argparse.ArgumentParser) -> None:
    events = [e.value.lower() for e in WebhookEventType if e is not WebhookEventType.UNSPECIFIED]
    parser.add_argument(
        "--webhook",
        metavar="URL",
        help="POST the version's events to URL, signed (the server must allow it; README, Webhooks)",
    )
    parser.add_argument(
        "--webhook-event",
        action="append",
        default=[],
        choices=events,
        type=str.lower,
        metavar="EVENT",
        help=f"an event to send to --webhook (repeatable): {', '.join(events)}; "
        "default: started and every terminal one",
    )


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser(*, epilog: str | None) -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(
        prog="atelier",
        description="Run and refine Atelier generation jobs.",
        epilog=OVERVIEW + ("\n" + epilog if epilog else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"atelier {client_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(
        name: str, handler: Callable[[Cli], int] | None, help: str, *examples: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=_examples(*examples) if examples else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    p = command(
        "generate",
        cmd_generate,
        "start a generation and follow it to the end",
        'atelier generate "a python CLI that converts celsius to fahrenheit"',
        "atelier generate @brief.md --model gemini-2.5-flash --attach sketch.png",
        "echo 'a tiny flask app' | atelier generate - --no-wait",
        'atelier generate "a character reference sheet" --variants front,side,back',
        "atelier generate --draft drafts/4f2a    # the draft's prompt, for the draft's model",
        'atelier generate "a tiny flask app" --webhook https://hooks.example.com/atelier '
        "--webhook-event completed --webhook-event failed",
    )
    p.add_argument("prompt", nargs="?", help=PROMPT_HELP + " (optional with --draft: the draft's prompt)")
    p.add_argument("--draft", metavar="NAME", help="the draft the prompt comes from (`atelier draft`)")
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    _fan_out_options(p)
    _webhook_options(p)
    _long_options(p)

    p = command(
        "tweak",
        cmd_tweak,
        "refine a version inside its conversation with the model",
        'atelier tweak v2 "rename the CLI to temp"',
        'atelier tweak 4f2a/1 "use argparse" --attach notes.txt',
        'atelier tweak v2 "use click" --webhook https://hooks.example.com/atelier',
    )
    p.add_argument("version", help="a version, or a generation (its latest version)")
    p.add_argument("prompt", help=PROMPT_HELP)
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    p.add_argument("--etag", help="refuse if the version changed since this etag")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    _webhook_options(p)
    _long_options(p)

    p = command(
        "iterate",
        cmd_iterate,
        "make the next version from a version and a modification prompt",
        'atelier iterate v1 "add a --verbose flag"',
        "atelier iterate 4f2a @change.md",
        'atelier iterate v1 "add tests" --webhook https://hooks.example.com/atelier --webhook-event output',
    )
    p.add_argument("version", help="the parent version, or a generation (its latest version)")
    p.add_argument("prompt", help=PROMPT_HELP)
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument("--etag", help="refuse if the version changed since this etag")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    _webhook_options(p)
    _long_options(p)

    p = command(
        "regenerate",
        cmd_regenerate,
        "run a version's prompt again as a new attempt",
        "atelier regenerate v1",
        "atelier regenerate v1 --count 3",
    )
    p.add_argument("version")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    _fan_out_options(p)
    _long_options(p)

    p = command(
        "watch",
        cmd_watch,
        "follow a version's (or a fan-out's) progress until it ends",
        "atelier watch v3",
        "atelier watch generations/4f2a/batches/1",
    )
    p.add_argument("version", help="a version, a generation (its latest version), or a batch")
    _long_options(p, starts_job=False)

    p = command(
        "status",
        cmd_status,
        "show a version (or a generation and its latest version)",
        "atelier status v2",
        "atelier --json status 4f2a",
    )
    p.add_argument("name")

    p = command(
        "list",
        cmd_list,
        "list your generations, newest first",
        "atelier list",
        "atelier list --deleted --limit 10",
    )
    p.add_argument("--limit", type=int, default=50, help="show at most this many (default 50; 0: all)")
    p.add_argument("--deleted", action="store_true", help="also show deleted generations not yet purged")

    p = command(
        "log",
        cmd_log,
        "show a generation's versions as a tree of parent links",
        "atelier log",
        "atelier log 4f2a",
    )
    p.add_argument("name", nargs="?", help="a generation, or one of its versions (default: the current one)")

    p = command("files", cmd_files, "list a version's files", "atelier files v3", "atelier files 4f2a/2")
    p.add_argument("version")

    p = command(
        "turns",
        cmd_turns,
        "show a generation's conversation with the model",
        "atelier turns",
        "atelier turns 4f2a --branch 4f2a/3",
    )
    p.add_argument("name", nargs="?", help="a generation (default: the current one)")
    p.add_argument("--branch", metavar="VERSION", help="only the turns that led to this version")

    p = command(
        "diff",
        cmd_diff,
        "compare two versions (or a version with its parent)",
        "atelier diff v3",
        "atelier diff v1 v3 --text",
    )
    # Not `target`: that is the server's address (--target).
    p.add_argument("base", metavar="BASE")
    p.add_argument("compare_to", nargs="?", metavar="TARGET")
    p.add_argument("--text", action="store_true", help="show unified diffs of text files")

    p = command("export", cmd_export, "write a version's files into a directory", "atelier export v3 out/")
    p.add_argument("version")
    p.add_argument("directory")

    p = command(
        "cat",
        cmd_cat,
        "print one file of a version (a binary file only with -o FILE, a pipe, or --force)",
        "atelier cat v3 README.md",
        "atelier cat v3 logo.png -o logo.png",
    )
    p.add_argument("version")
    p.add_argument("path")
    p.add_argument("-o", "--output", metavar="FILE", help="write the file's bytes to FILE")
    p.add_argument("--force", action="store_true", help="print a binary file to the terminal anyway")

    p = command(
        "upload",
        cmd_upload,
        "start a generation from a directory of your own files",
        "atelier upload ./my-project --description 'the code as of today'",
    )
    p.add_argument("directory")
    p.add_argument("--description", default="", help="what the files are (the version's prompt)")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")

    command(
        "models",
        cmd_models,
        "list the models the server offers, with their prices",
        "atelier models",
        "atelier --json models",
    )

    p = command(
        "batch",
        cmd_batch,
        "show a fan-out's outputs side by side",
        "atelier batch generations/4f2a/batches/1",
        "atelier batch v2",
    )
    p.add_argument("name", help="a batch (generations/G/batches/B), or one of its versions")

    p = command(
        "estimate",
        cmd_estimate,
        "what a request would cost, before it runs",
        'atelier estimate "a character sheet" --variants front,side,back',
        "atelier estimate --regenerate v2 --count 4",
        'atelier estimate "make it red" --tweak v2 --attach sketch.png',
    )
    p.add_argument("prompt", nargs="?", default="", help="the prompt (not for --regenerate)")
    p.add_argument("--model", help="a model from `atelier models`")
    p.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="price a file attached to a generate or a tweak (repeatable)",
    )
    _fan_out_options(p)
    base = p.add_mutually_exclusive_group()
    base.add_argument("--tweak", metavar="VERSION", help="price a tweak of VERSION with the prompt")
    base.add_argument("--iterate", metavar="VERSION", help="price an iteration of VERSION with the prompt")
    base.add_argument("--regenerate", metavar="VERSION", help="price asking VERSION's prompt again")

    p = command(
        "usage",
        cmd_usage,
        "what was spent, by day, principal and model",
        "atelier usage",
        "atelier usage --since 2026-11-01 --principal alice",
    )
    p.add_argument("--principal", help="only this principal's (admins; others only ever see their own)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only jobs that ended on or after this day (UTC)")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="only jobs that ended before this day (UTC)")

    p = command(
        "merge",
        cmd_merge,
        "three-way merge two versions of one generation",
        "atelier merge v2 v3",
        "atelier merge v2 v3 --strategy theirs",
    )
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("--strategy", choices=("ours", "theirs"), help="resolve every conflict with one side")
    p.add_argument("--request-id", help="an idempotency key (default: a new UUID)")

    p = command(
        "cancel",
        cmd_cancel,
        "stop a queued or running version's job",
        "atelier cancel v4",
        "atelier cancel v4 --wait",
    )
    p.add_argument("version")
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")

    p = command(
        "delete",
        cmd_delete,
        "delete a generation (it can be restored with `atelier undelete` until it expires)",
        "atelier delete 4f2a",
    )
    p.add_argument("name", help="a generation")

    p = command(
        "undelete",
        cmd_undelete,
        "restore a deleted generation before it expires",
        "atelier list --deleted",
        "atelier undelete 4f2a",
    )
    p.add_argument("name", help="a deleted generation")

    p = command(
        "completion",
        None,
        "print a shell completion script",
        'eval "$(atelier completion bash)"     # in ~/.bashrc',
        'eval "$(atelier completion zsh)"      # in ~/.zshrc',
        "atelier completion fish > ~/.config/fish/completions/atelier.fish",
    )
    p.add_argument("shell", choices=SHELLS)

    p = command(
        "draft",
        cmd_draft_list,
        "draft a prompt with a text model, then edit it (new, show, edit, list, delete)",
        'atelier draft new "a cat in a hat" --context "watercolour" --model gemini-2.5-flash-image',
        'atelier draft edit 4f2a "a grey cat in a red hat, watercolour"',
        "atelier generate --draft 4f2a",
    )
    drafts = p.add_subparsers(dest="draft_command", metavar="ACTION")

    def action(
        actions: argparse._SubParsersAction[Any], name: str, handler: Callable[[Cli], int], help: str
    ) -> argparse.ArgumentParser:
        """An action of a command that has some (`atelier draft new`, `atelier webhooks list`)."""
        sub: argparse.ArgumentParser = actions.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    d = action(drafts, "new", cmd_draft_new, "draft a prompt for a model from your text")
    d.add_argument("text", help="what you want; `-` reads it from standard input, `@FILE` from a file")
    d.add_argument("--context", help="a context or style instruction for the draft")
    d.add_argument("--model", help="the model the prompt is for (a model from `atelier models`)")
    d.add_argument("--request-id", help="an idempotency key (default: a new UUID)")
    d = action(drafts, "show", cmd_draft_show, "show a draft")
    d.add_argument("name", help="drafts/{id}, or the id")
    d = action(drafts, "edit", cmd_draft_edit, "replace a draft's prompt with your edit")
    d.add_argument("name", help="drafts/{id}, or the id")
    d.add_argument("prompt", help=PROMPT_HELP)
    d.add_argument("--etag", help="refuse if the draft changed since this etag")
    action(drafts, "list", cmd_draft_list, "list your drafts, newest first")
    d = action(
        drafts, "delete", cmd_draft_delete, "delete a draft for good (one a version was made from stays)"
    )
    d.add_argument("name", help="drafts/{id}, or the id")
    d.add_argument("--etag", help="refuse if the draft changed since this etag")

    p = command(
        "webhooks",
        cmd_webhooks_list,
        "list a version's (or a generation's) webhook deliveries, or replay one (list, replay)",
        "atelier webhooks list v3             # state, attempts and last status of each",
        "atelier webhooks list 4f2a           # every version of a generation",
        "atelier webhooks replay generations/4f2a/versions/3/webhookDeliveries/9c1e",
    )
    hooks = p.add_subparsers(dest="webhooks_command", metavar="ACTION")

    w = action(
        hooks, "list", cmd_webhooks_list, "list deliveries, oldest first (default: the current generation's)"
    )
    w.add_argument("name", nargs="?", help="a version, or a generation (all its versions)")
    w = action(hooks, "replay", cmd_webhooks_replay, "send a delivery again now, with the same id and body")
    w.add_argument("delivery", help="a delivery's name, as `atelier webhooks list` shows it")

    p = command(
        "blame",
        cmd_blame,
        "show which version last changed each file of a version, and why",
        "atelier blame v4",
        "atelier blame v4 src/",
    )
    p.add_argument("version", help="a version, or a generation (its latest version)")
    p.add_argument("path", nargs="?", help="only this file, or the files under this directory")
    return parser
