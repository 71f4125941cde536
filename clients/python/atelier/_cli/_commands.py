"""The commands: each takes the run and returns its exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from atelier._cli._describe import (
    cooldown,
    ledger_times,
    ledger_tokens,
    model_limits,
    money,
    price,
    queue_place,
    request_limits,
)
from atelier._cli._exit_codes import EXIT_JOB_FAILED, EXIT_OK, Usage
from atelier._cli._run import Cli, changes
from atelier._types import (
    Attachment,
    Draft,
    FileChange,
    Generation,
    MergeStrategy,
    VersionState,
    Webhook,
    WebhookDelivery,
    WebhookEventType,
)

# Git's test for a binary file: a NUL byte among the first 8000.
_BINARY_SNIFF = 8000


def _attachments(paths: Sequence[str]) -> list[Attachment]:
    attachments = []
    for path in paths:
        try:
            attachments.append(Attachment.from_path(path))
        except FileNotFoundError:
            raise Usage(f"--attach {path}: no such file") from None
        except IsADirectoryError:
            raise Usage(
                f"--attach {path}: a directory; attach files one by one, or `atelier upload` it"
            ) from None
    return attachments


def _fan_out(args: argparse.Namespace) -> tuple[list[str], int | None]:
    """--variants front,side,back or --count N (the server checks the rest)."""
    variants = [name.strip() for name in (args.variants or "").split(",") if name.strip()]
    if args.variants is not None and not variants:
        raise Usage("--variants needs names, comma-separated: --variants front,side,back")
    return variants, args.count


def _webhook(args: argparse.Namespace) -> Webhook | None:
    """--webhook URL and its --webhook-event filters (the server checks the URL)."""
    if args.webhook is None:
        if args.webhook_event:
            raise Usage("--webhook-event needs --webhook URL")
        return None
    return Webhook(args.webhook, tuple(WebhookEventType(e.upper()) for e in args.webhook_event))


def cmd_webhooks_list(cli: Cli) -> int:
    text: str | None = getattr(cli.args, "name", None)
    if text is None:
        parent = cli.names.current()
    elif cli.names.names_a_version(text):
        parent = cli.version_name(text)
    else:
        parent = cli.generation_name(text)
    deliveries = list(cli.client.webhook_deliveries(parent, page_size=1000))
    if cli.json:
        cli.emit({"parent": parent, "deliveries": deliveries})
        return EXIT_OK
    table = Table("delivery", "event", "state", "attempts", "last status", "url")
    for delivery in deliveries:
        table.add_row(
            escape(delivery.name),
            delivery.event_type.value.lower(),
            delivery.state.value,
            str(len(delivery.attempts)),
            escape(_last_status(delivery)),
            escape(delivery.url),
        )
    cli.out.print(table)
    if deliveries:
        cli.say("[dim]Send one again: atelier webhooks replay DELIVERY[/dim]")
    else:
        cli.say(f"[dim]No webhook deliveries for {escape(parent)}.[/dim]")
    return EXIT_OK


def _last_status(delivery: WebhookDelivery) -> str:
    if not delivery.attempts:
        return ""
    last = delivery.attempts[-1]
    return str(last.status_code) if last.status_code else last.error or "no answer"


def cmd_webhooks_replay(cli: Cli) -> int:
    delivery = cli.client.replay_webhook_delivery(cli.args.delivery)
    if cli.json:
        cli.emit(delivery)
        return EXIT_OK
    cli.say(
        f"Replayed {escape(delivery.name)}: {delivery.state.value}, last status "
        f"{escape(_last_status(delivery) or '-')} ({len(delivery.attempts)} attempts)"
    )
    return EXIT_OK


def cmd_generate(cli: Cli) -> int:
    a = cli.args
    variants, count = _fan_out(a)
    attachments = _attachments(a.attach)
    version = cli.client.generate(
        cli.prompt(a.prompt) if a.prompt is not None else "",
        model=a.model,
        attachments=attachments,
        request_id=a.request_id,
        variants=variants,
        count=count,
        draft=_draft_name(a.draft) if a.draft else None,
        webhook=_webhook(a),
    )
    return cli.follow_batch(version) if version.batch else cli.follow(version)


def _draft_name(name: str) -> str:
    return name if name.startswith("drafts/") else f"drafts/{name}"


def cmd_draft_new(cli: Cli) -> int:
    a = cli.args
    draft = cli.client.draft_prompt(
        cli.prompt(a.text), context=a.context, model=a.model, request_id=a.request_id
    )
    return _show_draft(cli, draft)


def cmd_draft_show(cli: Cli) -> int:
    return _show_draft(cli, cli.client.get_draft(_draft_name(cli.args.name)))


def cmd_draft_edit(cli: Cli) -> int:
    a = cli.args
    draft = cli.client.update_draft(_draft_name(a.name), cli.prompt(a.prompt), etag=a.etag)
    return _show_draft(cli, draft)


def cmd_draft_delete(cli: Cli) -> int:
    name = _draft_name(cli.args.name)
    cli.client.delete_draft(name, etag=cli.args.etag)
    if cli.json:
        cli.emit({"name": name, "deleted": True})
    else:
        cli.say(f"Deleted {escape(name)}.")
    return EXIT_OK


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
    attachments = _attachments(a.attach)
    version = cli.client.tweak(
        cli.version_name(a.version),
        cli.prompt(a.prompt),
        attachments=attachments,
        etag=a.etag,
        model=a.model,
        request_id=a.request_id,
        webhook=_webhook(a),
    )
    return cli.follow(version)


def cmd_iterate(cli: Cli) -> int:
    a = cli.args
    version = cli.client.iterate(
        cli.version_name(a.version),
        cli.prompt(a.prompt),
        etag=a.etag,
        model=a.model,
        request_id=a.request_id,
        webhook=_webhook(a),
    )
    return cli.follow(version)


def cmd_regenerate(cli: Cli) -> int:
    a = cli.args
    variants, count = _fan_out(a)
    version = cli.client.regenerate(
        cli.version_name(a.version), request_id=a.request_id, variants=variants, count=count
    )
    return cli.follow_batch(version) if version.batch else cli.follow(version)


def cmd_watch(cli: Cli) -> int:
    name: str = cli.args.version
    if "/batches/" in name:
        first = cli.client.get_batch(name).versions[0]
        return cli.follow_batch(first)
    version = cli.client.get(cli.version_name(name))
    return cli.follow(version)


def cmd_batch(cli: Cli) -> int:
    name: str = cli.args.name
    if "/batches/" not in name:
        name = cli.client.get(cli.version_name(name)).batch or ""
        if not name:
            raise Usage(f"{cli.args.name} is not an output of a fan-out (it has no batch)")
    batch = cli.client.get_batch(name)
    if cli.json:
        cli.emit(batch)
    else:
        cli.batch_table(batch)
    return EXIT_OK


def cmd_estimate(cli: Cli) -> int:
    a = cli.args
    variants, count = _fan_out(a)
    if a.attach and (a.iterate or a.regenerate):
        raise Usage(
            "--attach prices files sent with a generate or a --tweak: an iterate takes none, "
            "and a regenerate sends its version's own again"
        )
    estimate = cli.client.estimate_cost(
        a.prompt or "",
        model=a.model,
        variants=variants,
        count=count,
        tweak=a.tweak and cli.version_name(a.tweak),
        iterate=a.iterate and cli.version_name(a.iterate),
        regenerate=a.regenerate and cli.version_name(a.regenerate),
        attachments=_attachments(a.attach),
    )
    if cli.json:
        cli.emit(estimate)
        return EXIT_OK
    counted = "counted by the model" if estimate.input_tokens_counted else "estimated"
    cli.say(f"[bold]{escape(money(estimate.cost, estimate.currency))}[/bold] on {escape(estimate.model)}")
    cli.say(
        f"  {estimate.outputs} outputs, {estimate.calls} calls: {estimate.input_tokens} input tokens "
        f"({counted}), {estimate.output_tokens} output tokens"
        + (f", {estimate.images} images" if estimate.images else "")
    )
    cli.say(f"  prices: {escape(price(estimate.price))}")
    for assumption in estimate.assumptions:
        cli.say(f"  - {escape(assumption)}")
    return EXIT_OK


def cmd_usage(cli: Cli) -> int:
    a = cli.args
    usage = cli.client.usage(
        principal=a.principal or "", start=_day(a.since, "--since"), end=_day(a.until, "--until")
    )
    if cli.json:
        cli.emit(usage)
        return EXIT_OK
    table = Table("day", "principal", "model", "versions", "input tokens", "output tokens", "images", "cost")
    for row in usage.rows:
        table.add_row(
            row.day,
            escape(row.principal),
            escape(row.model),
            str(row.versions),
            str(row.input_tokens),
            str(row.output_tokens),
            str(row.images),
            escape(money(row.cost, usage.currency)),
        )
    cli.out.print(table)
    cli.say(f"total {escape(money(usage.total_cost, usage.currency))}")
    return EXIT_OK


def _day(value: str | None, option: str) -> datetime | None:
    """A `YYYY-MM-DD` option as the start of that day, UTC."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise Usage(f"{option} takes a day as YYYY-MM-DD, not {value!r}") from None


def cmd_status(cli: Cli) -> int:
    name: str = cli.args.name
    if not cli.names.names_a_version(name):
        generation = cli.client.get_generation(cli.generation_name(name))
        latest = cli.client.get(generation.latest_version)
        if cli.json:
            cli.emit({"generation": generation, "latest_version": latest})
            return EXIT_OK
        cli.say(f"[bold]{escape(generation.name)}[/bold]  {escape(generation.prompt)}")
        cli.say(f"  model {escape(generation.model)}, {generation.version_count} versions")
        name = latest.name
    version = cli.client.get(cli.version_name(name))
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
        ("cost", money(version.ledger.cost) if version.ledger.attempts else "-"),
        ("batch", f"{version.batch} ({version.variant})" if version.batch else "-"),
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
    a = cli.args
    generation = cli.generation_name(a.name) if a.name else cli.names.current()
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
    a = cli.args
    version = cli.version_name(a.version)
    data = cli.client.read_file(version, a.path)
    if a.output:
        Path(a.output).write_bytes(data)
        if cli.json:
            cli.emit({"version": version, "path": a.path, "output": a.output, "size": len(data)})
        else:
            cli.err.print(f"wrote {len(data)} bytes to {escape(a.output)}")
        return EXIT_OK
    if cli.json:
        try:
            cli.emit({"version": version, "path": a.path, "text": data.decode("utf-8")})
        except UnicodeDecodeError:
            import base64

            cli.emit({"version": version, "path": a.path, "base64": base64.b64encode(data).decode()})
        return EXIT_OK
    if sys.stdout.isatty() and not a.force and _binary(data):
        raise Usage(
            f"{a.path} is binary ({len(data)} bytes): printing it would garble the terminal. "
            "Write it to a file with -o FILE, pipe it (atelier cat … > FILE), or print it anyway with --force"
        )
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return EXIT_OK


def _binary(data: bytes) -> bool:
    if b"\0" in data[:_BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def cmd_models(cli: Cli) -> int:
    models = cli.client.models()
    if cli.json:
        cli.emit(models)
        return EXIT_OK
    table = _table(
        "name",
        "provider",
        "display name",
        "outputs",
        "default",
        "limits",
        "in flight",
        "queued",
        "cooldown",
        "price",
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
            escape(price(model.price)),
        )
    cli.out.print(table)
    cli.say(escape(request_limits(cli.client.limits())))
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
    name = cli.version_name(cli.args.version)
    version = cli.client.cancel(name)
    if not version.done and cli.args.wait:
        version = cli.client.wait(name)
    if cli.json:
        cli.emit(version)
    elif version.done:
        cli.say(f"{escape(version.name)} {version.state.value}: {escape(version.message)}")
    else:
        cli.say(
            f"Cancellation of {escape(version.name)} was requested: it was {version.state.value}, "
            f"and its job stops at its next step."
        )
        cli.say(f"See it end with: atelier watch {escape(version.name)}")
    return EXIT_OK


def cmd_list(cli: Cli) -> int:
    a = cli.args
    generations: list[Generation] = []
    for generation in cli.client.list_generations(
        page_size=min(a.limit, 1000) if a.limit else 1000, show_deleted=a.deleted
    ):
        generations.append(generation)
        if a.limit and len(generations) >= a.limit:
            break
    if cli.json:
        cli.emit(generations)
        return EXIT_OK
    if not generations:
        cli.err.print("no generations yet: start one with `atelier generate PROMPT`")
        return EXIT_OK
    headers = ["id", "versions", "model", "created", "prompt"]
    if a.deleted:
        headers.append("deleted")
    table = _table(*headers)
    for generation in generations:
        row = [
            escape(generation.name.removeprefix("generations/")),
            str(generation.version_count),
            escape(generation.model),
            _when(generation.create_time),
            # A terminal gets the prompt's start; a pipe gets its whole first line.
            escape(_short(generation.prompt) if cli.out.is_terminal else _first_line(generation.prompt)),
        ]
        if a.deleted:
            row.append(f"purged {_when(generation.expire_time)}" if generation.delete_time else "")
        table.add_row(*row)
    cli.out.print(table)
    return EXIT_OK


def cmd_files(cli: Cli) -> int:
    version = cli.version_name(cli.args.version)
    files = list(cli.client.files(version, page_size=1000))
    if cli.json:
        cli.emit({"version": version, "files": files})
        return EXIT_OK
    table = _table("path", "size", "type", "sha256")
    for file in files:
        table.add_row(escape(file.path), str(file.size), escape(file.mime_type), file.sha256[:12])
    cli.out.print(table)
    cli.err.print(f"{len(files)} files in {escape(version)}")
    return EXIT_OK


def cmd_turns(cli: Cli) -> int:
    a = cli.args
    generation = cli.generation_name(a.name) if a.name else cli.names.current()
    branch = cli.version_name(a.branch) if a.branch else None
    turns = list(cli.client.turns(generation, version=branch, page_size=1000))
    if cli.json:
        cli.emit({"generation": generation, "version": branch, "turns": turns})
        return EXIT_OK
    cli.say(f"[bold]{escape(generation)}[/bold]" + (f" (the branch of {escape(branch)})" if branch else ""))
    for turn in turns:
        made = f" → v{turn.version.rsplit('/', 1)[1]}" if turn.version else ""
        data = [p for p in turn.parts if p.mime_type and not p.text]
        extra = f" [dim](+{len(data)} files)[/dim]" if data else ""
        cli.say(
            f"#{turn.number} [cyan]{turn.role.value}[/cyan]{made}: {escape(_short(turn.text, 100))}{extra}"
        )
    return EXIT_OK


def cmd_upload(cli: Cli) -> int:
    a = cli.args
    directory = Path(a.directory)
    if not directory.is_dir():
        raise Usage(f"{a.directory}: not a directory")
    version = cli.client.upload(directory, description=a.description, request_id=a.request_id)
    cli.names.remember(version.name)
    if cli.json:
        cli.emit(version)
    else:
        cli.summary(version)
    return EXIT_OK


def cmd_delete(cli: Cli) -> int:
    generation = cli.client.delete_generation(cli.generation_name(cli.args.name))
    if cli.json:
        cli.emit(generation)
    else:
        short = generation.name.removeprefix("generations/")
        cli.say(f"deleted {escape(generation.name)}; its running jobs were cancelled")
        cli.say(f"Restore it before {_when(generation.expire_time)} with: atelier undelete {escape(short)}")
    return EXIT_OK


def cmd_undelete(cli: Cli) -> int:
    generation = cli.client.undelete_generation(cli.generation_name(cli.args.name, deleted=True))
    if cli.json:
        cli.emit(generation)
    else:
        cli.say(f"restored {escape(generation.name)} ({generation.version_count} versions)")
    return EXIT_OK


def _table(*headers: str) -> Table:
    """A table whose cells wrap rather than end in `…`: a name is always shown whole."""
    table = Table()
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _short(text: str, limit: int = 48) -> str:
    line = _first_line(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _state_markup(state: VersionState) -> str:
    color = {
        VersionState.COMPLETED: "green",
        VersionState.FAILED: "red",
        VersionState.CANCELLED: "red",
        VersionState.NEEDS_REVIEW: "yellow",
    }.get(state, "blue")
    return f"[{color}]{state.value}[/{color}]"
