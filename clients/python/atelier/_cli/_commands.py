"""The commands: each takes the run and returns its exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from atelier._cli._describe import cooldown, ledger_times, ledger_tokens, model_limits, queue_place
from atelier._cli._exit_codes import EXIT_JOB_FAILED, EXIT_OK, Usage
from atelier._cli._run import Cli, changes, generation_name
from atelier._types import Attachment, Draft, FileChange, MergeStrategy, VersionState


def _attachments(paths: Sequence[str]) -> list[Attachment]:
    return [Attachment.from_path(path) for path in paths]


def cmd_generate(cli: Cli) -> int:
    a = cli.args
    version = cli.client.generate(
        a.prompt or "",
        model=a.model,
        attachments=_attachments(a.attach),
        request_id=a.request_id,
        draft=_draft_name(a.draft) if a.draft else None,
    )
    return cli.follow(version)


def _draft_name(name: str) -> str:
    return name if name.startswith("drafts/") else f"drafts/{name}"


def _text(value: str) -> str:
    """A text argument: `-` reads it from stdin."""
    return sys.stdin.read() if value == "-" else value


def cmd_draft_new(cli: Cli) -> int:
    a = cli.args
    draft = cli.client.draft_prompt(_text(a.text), context=a.context, model=a.model)
    return _show_draft(cli, draft)


def cmd_draft_show(cli: Cli) -> int:
    return _show_draft(cli, cli.client.get_draft(_draft_name(cli.args.name)))


def cmd_draft_edit(cli: Cli) -> int:
    a = cli.args
    draft = cli.client.update_draft(_draft_name(a.name), _text(a.prompt), etag=a.etag)
    return _show_draft(cli, draft)


def cmd_draft_list(cli: Cli) -> int:
    drafts = list(cli.client.drafts(page_size=1000))
    if cli.json:
        cli.emit(drafts)
        return EXIT_OK
    table = Table("name", "model", "edited", "prompt")
    for draft in drafts:
        table.add_row(
            escape(draft.name),
            escape(draft.model),
            "yes" if draft.edited else "",
            escape(_short(draft.prompt)),
        )
    cli.out.print(table)
    return EXIT_OK


def _show_draft(cli: Cli, draft: Draft) -> int:
    if cli.json:
        cli.emit(draft)
        return EXIT_OK
    name = escape(draft.name)
    cli.say(f"[bold]{name}[/bold] for {escape(draft.model)} (drafted by {escape(draft.drafter_model)})")
    if draft.edited:
        cli.say("  edited; the model drafted:")
        cli.out.print(draft.drafted_prompt, markup=False)
        cli.say("  now:")
    cli.out.print(draft.prompt, markup=False)
    cli.say(f"[dim]Edit it: atelier draft edit {name} PROMPT; run it: atelier generate --draft {name}[/dim]")
    return EXIT_OK


def cmd_blame(cli: Cli) -> int:
    a = cli.args
    version = cli.version_name(a.version)
    blames = list(cli.client.blame(version, a.path, page_size=1000))
    if cli.json:
        cli.emit({"version": version, "files": blames})
        return EXIT_OK
    table = Table("path", "version", "kind", "made", "prompt")
    for blame in blames:
        made = blame.create_time.strftime("%Y-%m-%d %H:%M:%S") if blame.create_time else ""
        table.add_row(
            escape(blame.path),
            f"v{blame.version.rsplit('/', 1)[1]}",
            blame.kind.value,
            made,
            escape(_short(blame.prompt)),
        )
    cli.out.print(table)
    return EXIT_OK


def cmd_tweak(cli: Cli) -> int:
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


def cmd_iterate(cli: Cli) -> int:
    a = cli.args
    version = cli.client.iterate(
        cli.version_name(a.version), a.prompt, etag=a.etag, model=a.model, request_id=a.request_id
    )
    return cli.follow(version)


def cmd_regenerate(cli: Cli) -> int:
    a = cli.args
    return cli.follow(cli.client.regenerate(cli.version_name(a.version), request_id=a.request_id))


def cmd_watch(cli: Cli) -> int:
    version = cli.client.get(cli.version_name(cli.args.version))
    return cli.follow(version)


def cmd_status(cli: Cli) -> int:
    name: str = cli.args.name
    if "/versions/" not in name:
        generation = cli.client.get_generation(generation_name(name))
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
        ("files", f"{version.file_count} {changes(version)}"),
        ("model", version.model),
        ("queue", queue_place(version) if version.queue_position else "-"),
        # Filled in as attempts end: a queued version, a merge or an upload has none yet.
        ("ledger", ledger_times(version.ledger) if version.ledger.attempts else "-"),
        ("tokens", ledger_tokens(version.ledger) if version.ledger.attempts else "-"),
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


def cmd_log(cli: Cli) -> int:
    generation = generation_name(cli.args.name)
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


def cmd_diff(cli: Cli) -> int:
    a = cli.args
    if a.compare_to is None:
        target = cli.client.get(cli.version_name(a.base))
        if target.parent is None:
            raise Usage(f"{target.name} has no parent: name two versions to compare")
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


def cmd_export(cli: Cli) -> int:
    version = cli.version_name(cli.args.version)
    written = cli.client.export(version, cli.args.directory)
    if cli.json:
        cli.emit({"version": version, "directory": str(Path(cli.args.directory)), "files": written})
    else:
        for path in written:
            cli.say(escape(str(path)))
        cli.say(f"wrote {len(written)} files from {escape(version)}")
    return EXIT_OK


def cmd_cat(cli: Cli) -> int:
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


def cmd_models(cli: Cli) -> int:
    models = cli.client.models()
    if cli.json:
        cli.emit(models)
        return EXIT_OK
    table = Table(
        "name", "provider", "display name", "outputs", "default", "limits", "in flight", "queued", "cooldown"
    )
    for model in models:
        table.add_row(
            escape(model.name),
            escape(model.provider),
            escape(model.display_name),
            escape(", ".join(model.output_modalities)),
            "yes" if model.default else "",
            escape(model_limits(model)),
            str(model.status.jobs_in_flight),
            str(model.status.jobs_queued),
            escape(cooldown(model)),
        )
    cli.out.print(table)
    return EXIT_OK


def cmd_merge(cli: Cli) -> int:
    a = cli.args
    strategy = MergeStrategy(a.strategy.upper()) if a.strategy else None
    result = cli.client.merge(
        cli.version_name(a.ours), cli.version_name(a.theirs), strategy=strategy, request_id=a.request_id
    )
    if cli.json:
        cli.emit(result)
    elif result.version is not None:
        cli.summary(result.version)
    else:
        cli.say(f"[red]{len(result.conflicts)} conflicts[/red]; nothing was written:")
        for conflict in result.conflicts:
            cli.say(f"  {conflict.kind.value:<20} {escape(conflict.path)}")
        cli.say("Merge again with --strategy ours or --strategy theirs to take one side.")
    return EXIT_OK if result.merged else EXIT_JOB_FAILED


def cmd_cancel(cli: Cli) -> int:
    version = cli.client.cancel(cli.version_name(cli.args.version))
    if cli.json:
        cli.emit(version)
    else:
        cli.say(f"{escape(version.name)} {version.state.value}")
    return EXIT_OK


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
