"""One run of a command: its arguments, its client, and all it prints (text, JSON, the live progress bar)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from atelier._cli._describe import ledger_times, ledger_tokens, queue_place
from atelier._cli._exit_codes import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, Usage
from atelier._cli._names import Names
from atelier._client import AtelierClient
from atelier._errors import AtelierError
from atelier._types import ProgressEvent, ProgressEventType, Version, VersionState

# Wide enough for any line: what goes to a pipe or a file is never cut or wrapped at 80 columns.
_UNBOUNDED_WIDTH = 1_000_000
# How long an interrupted command waits to see its cancelled job end.
_CANCEL_WAIT_SECONDS = 5.0


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = _UNBOUNDED_WIDTH
    return console


def _read_option(args: argparse.Namespace, option: str) -> bytes | None:
    """The bytes of the file an option names; None when it was not given."""
    path = getattr(args, option, None)
    return Path(path).read_bytes() if path else None


class Cli:
    """One run of the command: its arguments, its client and its two consoles."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = getattr(args, "json", False)
        self.out = _console(stderr=False)
        self.err = _console(stderr=True)
        root_certificates = _read_option(args, "ca_file")
        certificate_chain = _read_option(args, "cert_file")
        private_key = _read_option(args, "key_file")

        def new_client() -> AtelierClient:
            return AtelierClient(
                getattr(args, "target", None),
                token=getattr(args, "token", None),
                tls=True if getattr(args, "tls", False) else None,
                root_certificates=root_certificates,
                certificate_chain=certificate_chain,
                private_key=private_key,
                timeout=getattr(args, "timeout", 30.0),
            )

        self._new_client = new_client
        self.client = new_client()
        self.names = Names(self.client)

    # Output

    def emit(self, document: Any) -> None:
        """The one JSON document of a --json run."""
        sys.stdout.write(json.dumps(_jsonable(document), indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        self.out.print(text)

    # Names, short or full (see `_names`): a generation stands for its latest version where a
    # version is expected.

    def version_name(self, name: str) -> str:
        return self.names.version(name)

    def generation_name(self, name: str, *, deleted: bool = False) -> str:
        return self.names.generation(name, deleted=deleted)

    # Input

    def prompt(self, value: str) -> str:
        """A prompt argument: `-` reads standard input, `@FILE` reads a file (`@@…` is a prompt
        that starts with `@`), anything else is the prompt itself."""
        if value == "-":
            if sys.stdin.isatty():
                self.err.print("[dim]Reading the prompt from standard input; end it with Ctrl-D.[/dim]")
            return sys.stdin.read().rstrip("\r\n")
        if value.startswith("@@"):
            return value[1:]
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                return path.read_text(encoding="utf-8").rstrip("\r\n")
            except FileNotFoundError:
                raise Usage(f"{value}: no such file (a prompt that starts with @ is written @@…)") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise Usage(f"{value}: cannot read the prompt: {exc}") from None
        return value

    # Long operations

    def follow(self, version: Version) -> int:
        """Waits for the version's job (with a live progress bar unless --json); the exit code."""
        self.names.remember(version.name)
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
                self._show_progress(version)
                final = self.client.get(version.name)
        except KeyboardInterrupt:
            return self._interrupted(version.name)
        if self.json:
            self.emit(final)
        else:
            self.summary(final)
        return EXIT_OK if final.state == VersionState.COMPLETED else EXIT_JOB_FAILED

    def _show_progress(self, version: Version) -> None:
        name = version.name
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
            replaced_up_to = 0
            if version.state == VersionState.QUEUED and version.queue_position:
                # Where it stands now. QUEUED events come only as marks are crossed, so those
                # already recorded are older news: the replay leaves them out.
                self._show_queued(bar, task, queue_place(version))
                replaced_up_to = version.last_event_seq
            for event in self.client.progress(name):
                if event.type != ProgressEventType.QUEUED or event.seq > replaced_up_to:
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
        if event.type == ProgressEventType.QUEUED and event.queue_position:
            Cli._show_queued(bar, task, queue_place(event), mark=f"[dim]#{event.seq}[/dim] ")
        elif event.type == ProgressEventType.STAGE_STARTED:
            bar.console.print(
                f"  [bold]stage {event.stage}/{event.total_stages}[/bold] {escape(event.message)}"
            )
        elif event.type in (ProgressEventType.MESSAGE, ProgressEventType.OUTPUT, ProgressEventType.STATE):
            bar.console.print(f"  [dim]#{event.seq}[/dim] {escape(event.message)}")

    @staticmethod
    def _show_queued(bar: Progress, task: TaskID, place: str, *, mark: str = "") -> None:
        bar.update(task, description=f"queued: {place}")
        bar.console.print(f"  {mark}queued: {escape(place)}")

    def _interrupted(self, name: str) -> int:
        if getattr(self.args, "cancel_on_interrupt", False):
            self.err.print(f"\nInterrupted: cancelling {escape(name)}…")
            # A new channel: Ctrl-C can land while gRPC's stream holds a lock of the old one, whose
            # streams then never move again.
            with self._new_client() as client:
                version = client.cancel(name)
                if not version.state.terminal:
                    # A running job stops at its next step: wait a moment to say how it ended.
                    with contextlib.suppress(AtelierError, KeyboardInterrupt):
                        version = client.wait(name, timeout=_CANCEL_WAIT_SECONDS)
            if version.state.terminal:
                self.err.print(f"{escape(name)} {version.state.value}: {escape(version.message)}")
            else:
                self.err.print(
                    f"Cancellation of {escape(name)} was requested; its job stops at its next step."
                )
        else:
            self.err.print(f"\nDetached: {escape(name)} keeps running on the server.")
            self.err.print(f"Watch it again with: atelier watch {escape(name)}")
        return EXIT_INTERRUPTED

    def summary(self, version: Version) -> None:
        mark = "[green]✔[/green]" if version.state == VersionState.COMPLETED else "[red]✘[/red]"
        self.say(f"{mark} {escape(version.name)} {version.state.value}: {escape(version.message)}")
        if version.state == VersionState.COMPLETED:
            self.say(f"  {version.file_count} files {changes(version)}, turn {version.turn}")
        if version.error is not None:
            self.say(
                f"  {version.error.code} [{escape(version.error.reason)}]: {escape(version.error.message)}"
            )
        if version.ledger.attempts:  # a merge or an upload runs no job
            self.say(f"  ledger: {escape(ledger_times(version.ledger))}")
            self.say(f"  tokens: {escape(ledger_tokens(version.ledger))}")


def changes(version: Version) -> str:
    """What the version changed against its parent: added, modified, deleted."""
    return f"(+{version.added_count} ~{version.modified_count} -{version.deleted_count})"


def _jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes, durations (in seconds) and paths as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Iterable) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    return value
