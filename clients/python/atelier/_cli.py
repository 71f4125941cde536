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

import argparse
import dataclasses
import enum
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc

try:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.tree import Tree
except ModuleNotFoundError:  # the SDK alone was installed
    sys.stderr.write("atelier: the command line needs the cli extra: pip install 'atelier-client[cli]'\n")
    raise SystemExit(2) from None

from atelier._client import AtelierClient
from atelier._errors import AtelierError, InvalidArgument
from atelier._types import (
    Attachment,
    FileChange,
    MergeStrategy,
    ProgressEvent,
    ProgressEventType,
    Version,
    VersionState,
)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_ERROR = 5
EXIT_INTERRUPTED = 130

_EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
}


class _Usage(Exception):
    """A mistake in the command line that argparse cannot see (exit code 2)."""


class _Cli:
    """One run of the command: its arguments, its client and its two consoles."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = getattr(args, "json", False)
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        root_certificates = Path(args.ca_file).read_bytes() if getattr(args, "ca_file", None) else None
        self.client = AtelierClient(
            getattr(args, "target", None),
            token=getattr(args, "token", None),
            tls=True if getattr(args, "tls", False) else None,
            root_certificates=root_certificates,
            timeout=getattr(args, "timeout", 30.0),
        )

    # Output

    def emit(self, document: Any) -> None:
        """The one JSON document of a --json run."""
        sys.stdout.write(json.dumps(_jsonable(document), indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        self.out.print(text)

    # Names: a generation's name stands for its latest version where a version is expected.

    def version_name(self, name: str) -> str:
        if "/versions/" in name:
            return name
        return self.client.get_generation(_generation_name(name)).latest_version

    # Long operations

    def follow(self, version: Version) -> int:
        """Waits for the version's job (with a live progress bar unless --json); the exit code."""
        if getattr(self.args, "no_wait", False):
            if self.json:
                self.emit(version)
            else:
                self.say(f"{escape(version.name)} {version.state.value}")
                self.say(f"Follow it with: atelier watch {escape(version.name)}")
            return EXIT_OK
        try:
            if self.json:
                final = self.client.wait(version.name)
            else:
                self._show_progress(version.name)
                final = self.client.get(version.name)
        except KeyboardInterrupt:
            return self._interrupted(version.name)
        if self.json:
            self.emit(final)
        else:
            self._summary(final)
        return EXIT_OK if final.state == VersionState.COMPLETED else EXIT_JOB_FAILED

    def _show_progress(self, name: str) -> None:
        self.err.print(f"[bold]{escape(name)}[/bold]")
        columns = (
            SpinnerColumn(),
            TextColumn("stage {task.fields[stage]}", markup=False),
            BarColumn(),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err) as bar:
            task = bar.add_task("Queued", total=None, stage="0/?")
            for event in self.client.progress(name):
                self._update(bar, task, event)

    @staticmethod
    def _update(bar: Progress, task: TaskID, event: ProgressEvent) -> None:
        done = event.stage if event.type == ProgressEventType.STAGE_DONE else max(event.stage - 1, 0)
        if event.state == VersionState.COMPLETED:
            done = event.total_stages
        total = event.total_stages or None
        bar.update(
            task,
            total=total,
            completed=done,
            description=event.message or event.state.value,
            stage=f"{event.stage}/{event.total_stages or '?'}",
        )
        if event.type == ProgressEventType.STAGE_STARTED:
            bar.console.print(
                f"  [bold]stage {event.stage}/{event.total_stages}[/bold] {escape(event.message)}"
            )
        elif event.type in (ProgressEventType.MESSAGE, ProgressEventType.OUTPUT, ProgressEventType.STATE):
            bar.console.print(f"  [dim]#{event.seq}[/dim] {escape(event.message)}")

    def _interrupted(self, name: str) -> int:
        if getattr(self.args, "cancel_on_interrupt", False):
            version = self.client.cancel(name)
            self.err.print(f"Interrupted: cancelled {escape(name)} ({version.state.value}).")
        else:
            self.err.print(f"\nDetached: {escape(name)} keeps running on the server.")
            self.err.print(f"Watch it again with: atelier watch {escape(name)}")
        return EXIT_INTERRUPTED

    def _summary(self, version: Version) -> None:
        mark = "[green]✔[/green]" if version.state == VersionState.COMPLETED else "[red]✘[/red]"
        self.say(f"{mark} {escape(version.name)} {version.state.value}: {escape(version.message)}")
        if version.state == VersionState.COMPLETED:
            self.say(f"  {version.file_count} files {_changes(version)}, turn {version.turn}")
        if version.error is not None:
            self.say(
                f"  {version.error.code} [{escape(version.error.reason)}]: {escape(version.error.message)}"
            )


# Commands: each returns the exit code.


def _attachments(paths: Sequence[str]) -> list[Attachment]:
    return [Attachment.from_path(path) for path in paths]


def cmd_generate(cli: _Cli) -> int:
    a = cli.args
    version = cli.client.generate(
        a.prompt, model=a.model, attachments=_attachments(a.attach), request_id=a.request_id
    )
    return cli.follow(version)


def cmd_tweak(cli: _Cli) -> int:
    a = cli.args
    version = cli.client.tweak(
        cli.version_name(a.version),
        a.prompt,
        attachments=_attachments(a.attach),
        etag=a.etag,
        model=a.model,
        request_id=a.request_id,
    )
    return cli.follow(version)


def cmd_iterate(cli: _Cli) -> int:
    a = cli.args
    version = cli.client.iterate(
        cli.version_name(a.version), a.prompt, etag=a.etag, model=a.model, request_id=a.request_id
    )
    return cli.follow(version)


def cmd_regenerate(cli: _Cli) -> int:
    a = cli.args
    return cli.follow(cli.client.regenerate(cli.version_name(a.version), request_id=a.request_id))


def cmd_watch(cli: _Cli) -> int:
    version = cli.client.get(cli.version_name(cli.args.version))
    return cli.follow(version)


def cmd_status(cli: _Cli) -> int:
    name: str = cli.args.name
    if "/versions/" not in name:
        generation = cli.client.get_generation(_generation_name(name))
        latest = cli.client.get(generation.latest_version)
        if cli.json:
            cli.emit({"generation": generation, "latest_version": latest})
            return EXIT_OK
        cli.say(f"[bold]{escape(generation.name)}[/bold]  {escape(generation.prompt)}")
        cli.say(f"  model {escape(generation.model)}, {generation.version_count} versions")
        name = latest.name
    version = cli.client.get(name)
    if cli.json:
        cli.emit(version)
        return EXIT_OK
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in (
        ("name", version.name),
        ("state", version.state.value),
        ("kind", version.kind.value),
        ("stage", f"{version.stage}/{version.total_stages}"),
        ("message", version.message),
        ("prompt", version.prompt),
        ("parent", version.parent or "-"),
        ("merge parent", version.merge_parent or "-"),
        ("files", f"{version.file_count} {_changes(version)}"),
        ("model", version.model),
        ("turn", str(version.turn)),
        ("etag", version.etag),
        (
            "error",
            f"{version.error.code} [{version.error.reason}] {version.error.message}"
            if version.error
            else "-",
        ),
    ):
        table.add_row(f"[bold]{key}[/bold]", escape(value))
    cli.out.print(table)
    return EXIT_OK


def cmd_log(cli: _Cli) -> int:
    generation = _generation_name(cli.args.name)
    versions = list(cli.client.versions(generation, page_size=1000))
    if cli.json:
        cli.emit({"generation": generation, "versions": versions})
        return EXIT_OK
    tree = Tree(f"[bold]{escape(generation)}[/bold]")
    nodes: dict[str, Tree] = {}
    for version in versions:  # oldest first: a parent is always placed before its children
        label = (
            f"v{version.number} [cyan]{version.kind.value}[/cyan] {_state_markup(version.state)} "
            f"{escape(_short(version.prompt))} [dim]({version.file_count} files)[/dim]"
        )
        if version.merge_parent:
            label += f" [dim]← merges v{version.merge_parent.rsplit('/', 1)[1]}[/dim]"
        parent = nodes.get(version.parent or "", tree)
        nodes[version.name] = parent.add(label)
    cli.out.print(tree)
    return EXIT_OK


def cmd_diff(cli: _Cli) -> int:
    a = cli.args
    if a.compare_to is None:
        target = cli.client.get(cli.version_name(a.base))
        if target.parent is None:
            raise _Usage(f"{target.name} has no parent: name two versions to compare")
        base_name, target_name = target.parent, target.name
    else:
        base_name, target_name = cli.version_name(a.base), cli.version_name(a.compare_to)
    files = cli.client.diff(base_name, target_name, text=a.text)
    if cli.json:
        cli.emit({"base": base_name, "target": target_name, "files": files})
        return EXIT_OK
    marks = {FileChange.ADDED: "[green]A[/green]", FileChange.REMOVED: "[red]D[/red]"}
    for change in files:
        cli.say(f"{marks.get(change.change, '[yellow]M[/yellow]')} {escape(change.path)}")
        if change.unified_diff:
            cli.out.print(
                change.unified_diff, markup=False, end="" if change.unified_diff.endswith("\n") else "\n"
            )
    if not files:
        cli.say("no differences")
    return EXIT_OK


def cmd_export(cli: _Cli) -> int:
    version = cli.version_name(cli.args.version)
    written = cli.client.export(version, cli.args.directory)
    if cli.json:
        cli.emit({"version": version, "directory": str(Path(cli.args.directory)), "files": written})
    else:
        for path in written:
            cli.say(escape(str(path)))
        cli.say(f"wrote {len(written)} files from {escape(version)}")
    return EXIT_OK


def cmd_cat(cli: _Cli) -> int:
    version = cli.version_name(cli.args.version)
    data = cli.client.read_file(version, cli.args.path)
    if cli.json:
        try:
            cli.emit({"version": version, "path": cli.args.path, "text": data.decode("utf-8")})
        except UnicodeDecodeError:
            import base64

            cli.emit({"version": version, "path": cli.args.path, "base64": base64.b64encode(data).decode()})
        return EXIT_OK
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return EXIT_OK


def cmd_models(cli: _Cli) -> int:
    models = cli.client.models()
    if cli.json:
        cli.emit(models)
        return EXIT_OK
    table = Table("name", "provider", "display name", "outputs", "default")
    for model in models:
        table.add_row(
            escape(model.name),
            escape(model.provider),
            escape(model.display_name),
            escape(", ".join(model.output_modalities)),
            "yes" if model.default else "",
        )
    cli.out.print(table)
    return EXIT_OK


def cmd_merge(cli: _Cli) -> int:
    a = cli.args
    strategy = MergeStrategy(a.strategy.upper()) if a.strategy else None
    result = cli.client.merge(
        cli.version_name(a.ours), cli.version_name(a.theirs), strategy=strategy, request_id=a.request_id
    )
    if cli.json:
        cli.emit(result)
    elif result.version is not None:
        cli._summary(result.version)
    else:
        cli.say(f"[red]{len(result.conflicts)} conflicts[/red]; nothing was written:")
        for conflict in result.conflicts:
            cli.say(f"  {conflict.kind.value:<20} {escape(conflict.path)}")
        cli.say("Merge again with --strategy ours or --strategy theirs to take one side.")
    return EXIT_OK if result.merged else EXIT_JOB_FAILED


def cmd_cancel(cli: _Cli) -> int:
    version = cli.client.cancel(cli.version_name(cli.args.version))
    if cli.json:
        cli.emit(version)
    else:
        cli.say(f"{escape(version.name)} {version.state.value}")
    return EXIT_OK


# The parser


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
    group.add_argument("--ca-file", default=argparse.SUPPRESS, help="root certificates for TLS (PEM)")
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


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="atelier",
        description="Run and refine Atelier generation jobs.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[_Cli], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    p = command("generate", cmd_generate, "start a generation and follow it to the end")
    p.add_argument("prompt")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (see the module's docstring)."""
    _restore_ctrl_c()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cli = _Cli(args)
    except OSError as exc:
        _fail(parser, f"cannot read {exc.filename}: {exc.strerror}")
    try:
        with cli.client:
            handler: Callable[[_Cli], int] = args.handler
            return handler(cli)
    except KeyboardInterrupt:
        cli.err.print("\nInterrupted.")
        return EXIT_INTERRUPTED
    except _Usage as exc:
        return _report(cli, EXIT_USAGE, {"code": "USAGE", "message": str(exc)})
    except AtelierError as exc:
        return _report(cli, _EXIT_BY_CODE.get(exc.code, EXIT_ERROR), _error_document(exc))
    except (OSError, ValueError) as exc:
        return _report(cli, EXIT_ERROR, {"code": "LOCAL", "message": str(exc)})


def _restore_ctrl_c() -> None:
    # A shell without job control starts a background command (`atelier ... &`) with SIGINT
    # ignored, and its children inherit that; Ctrl-C must still detach from (or cancel) a job.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


def _report(cli: _Cli, code: int, error: Mapping[str, Any]) -> int:
    if cli.json:
        cli.emit({"error": error, "exit_code": code})
    reason = f" [{error['reason']}]" if error.get("reason") else ""
    cli.err.print(f"[red]atelier: {error['code']}{escape(reason)}:[/red] {escape(str(error['message']))}")
    for violation in error.get("field_violations", ()):
        cli.err.print(f"  {escape(violation['field'])}: {escape(violation['description'])}")
    return code


def _error_document(exc: AtelierError) -> dict[str, Any]:
    document: dict[str, Any] = {
        "code": exc.code.name,
        "reason": exc.reason,
        "domain": exc.domain,
        "message": exc.message,
        "metadata": exc.metadata,
    }
    if isinstance(exc, InvalidArgument):
        document["field_violations"] = [
            {"field": v.field, "description": v.description} for v in exc.field_violations
        ]
    return document


def _generation_name(name: str) -> str:
    return name.split("/versions/", 1)[0].removesuffix("/session")


def _changes(version: Version) -> str:
    """What the version changed against its parent: added, modified, deleted."""
    return f"(+{version.added_count} ~{version.modified_count} -{version.deleted_count})"


def _short(text: str, limit: int = 48) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _state_markup(state: VersionState) -> str:
    color = {
        VersionState.COMPLETED: "green",
        VersionState.FAILED: "red",
        VersionState.CANCELLED: "red",
        VersionState.NEEDS_REVIEW: "yellow",
    }.get(state, "blue")
    return f"[{color}]{state.value}[/{color}]"


def _jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes and paths as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Iterable) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
