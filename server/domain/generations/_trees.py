"""Whole trees: Diff, ExportTree, UploadTree and Merge (with the common ancestor it merges against).

Uploads and merges need no model: their versions are made and COMPLETED in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence

import storage
from server.domain import _transactions as transactions
from server.domain import change_sets, trees
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import FieldViolation, InvalidArgument
from server.domain.generations._base import (
    ServiceBase,
    fingerprint_of,
    generation_row,
    readable_version_row,
    tree_of,
)
from server.domain.generations._upload import Upload
from server.domain.principals import Principal
from server.domain.resources import TreeEntry, Version, VersionRef
from server.files import FileContent

# ExportTree reads file contents from the database in batches of about this many bytes.
_EXPORT_BATCH_BYTES = 8 * 1024 * 1024


class TreeVerbs(ServiceBase):
    async def diff(
        self, *, caller: Principal, base: VersionRef, target: VersionRef, include_text_diffs: bool
    ) -> list[tuple[trees.PathDiff, str]]:
        """The paths that differ from `base` to `target`, each with a unified diff if asked for."""

        def work(tx: storage.Transaction) -> list[tuple[trees.PathDiff, str]]:
            before, after = tree_of(tx, caller, base), tree_of(tx, caller, target)
            changes = trees.diff(before, after)
            if not include_text_diffs:
                return [(change, "") for change in changes]
            shas = [
                e.blob_sha256 for c in changes for e in (c.base, c.target) if e is not None and _is_text(e)
            ]
            contents = storage.read_blobs(tx, shas)

            def text(entry: TreeEntry | None) -> bytes | None:
                return contents.get(entry.blob_sha256) if entry is not None else None

            return [
                (
                    c,
                    trees.unified_diff(c.path, text(c.base), text(c.target))
                    if all(e is None or _is_text(e) for e in (c.base, c.target))
                    else "",
                )
                for c in changes
            ]

        return await transactions.read(self._db, work)

    async def export(self, *, caller: Principal, ref: VersionRef) -> AsyncIterator[tuple[TreeEntry, bytes]]:
        """Every file of the version with its contents, in path order, reading a batch at a time."""
        tree = await transactions.read(self._db, lambda tx: tree_of(tx, caller, ref))
        entries = sorted(tree.values(), key=lambda e: e.path.encode())
        start = 0
        while start < len(entries):
            end, size = start, 0
            while end < len(entries) and (end == start or size + entries[end].size <= _EXPORT_BATCH_BYTES):
                size += entries[end].size
                end += 1
            batch = entries[start:end]
            contents = await transactions.read(self._db, functools.partial(_contents_of, batch))
            for entry in batch:
                yield entry, contents[entry.blob_sha256]
            start = end

    def start_upload(self) -> Upload:
        """An upload to feed file by file as it streams in; `finish_upload` makes its version."""
        return Upload(self._db, change_sets.Limits.of(self._settings))

    def check_upload_description(self, description: str) -> None:
        """An upload's description (optional) fits in max_prompt_bytes: a streamed upload asks
        this as its first message arrives, so that a bad one is refused before any file is stored."""
        self.check_prompt(description, field="description", required=False)

    async def upload(
        self,
        *,
        caller: Principal,
        description: str,
        request_id: str,
        files: Sequence[FileContent],
        deadline: Deadline = NO_DEADLINE,
    ) -> Version:
        """`finish_upload` of files already in memory."""
        self.check_upload_description(description)
        upload = self.start_upload()
        for file in files:
            await upload.start_file(file.path, file.mime_type)
            await upload.write(file.data)
        return await self.finish_upload(
            upload, caller=caller, description=description, request_id=request_id, deadline=deadline
        )

    async def finish_upload(
        self,
        upload: Upload,
        *,
        caller: Principal,
        description: str,
        request_id: str,
        deadline: Deadline = NO_DEADLINE,
    ) -> Version:
        """Starts a generation from the caller's files: they become its COMPLETED version 1."""
        self.check_upload_description(description)
        entries, small, parted = await upload.finish()
        description = description.strip() or f"Uploaded {len(entries)} files"
        model = self._settings.resolved_default_model
        fingerprint = fingerprint_of("upload", description, sorted((e.path, e.blob_sha256) for e in entries))

        def create(tx: storage.Transaction) -> storage.Version:
            storage.put_blobs(tx, small)
            for blob in parted:
                storage.put_parted_blob(tx, sha256=blob.sha256, size=blob.size, parts=blob.parts)
            _, version = storage.create_generation(
                tx,
                owner=caller.name,
                prompt=description,
                model=model.name,
                provider=model.provider,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                kind=storage.VersionKind.UPLOAD,
                queue_job=False,
            )
            return _complete_now(tx, version, entries, None, f"Uploaded {len(entries)} files")

        return await self.create_once(caller, request_id, fingerprint, create, deadline)

    async def merge(
        self,
        *,
        caller: Principal,
        ours: VersionRef,
        theirs: VersionRef,
        strategy: trees.Strategy,
        request_id: str,
        deadline: Deadline = NO_DEADLINE,
    ) -> tuple[Version | None, list[trees.Conflict]]:
        """Three-way merges two versions against their common ancestor (see trees.three_way)."""
        if ours.generation_id != theirs.generation_id:
            raise InvalidArgument(
                "ours and theirs must be versions of one generation",
                reason="DIFFERENT_GENERATIONS",
                violations=[FieldViolation("theirs", f"must start with generations/{ours.generation_id}/")],
            )
        if ours.number == theirs.number:
            raise InvalidArgument(
                "a version cannot be merged with itself",
                reason="SAME_VERSION",
                violations=[FieldViolation("theirs", "must differ from ours")],
            )

        def plan(tx: storage.Transaction) -> tuple[dict[str, TreeEntry], list[trees.Conflict], int | None]:
            ours_tree, theirs_tree = tree_of(tx, caller, ours), tree_of(tx, caller, theirs)
            ancestor = _common_ancestor(tx, caller, ours, theirs)
            base_tree = (
                {} if ancestor is None else tree_of(tx, caller, VersionRef(ours.generation_id, ancestor))
            )
            merged, conflicts = trees.three_way(base_tree, ours_tree, theirs_tree, strategy)
            return merged, conflicts, ancestor

        merged, conflicts, ancestor = await transactions.read(self._db, plan)
        if conflicts and strategy is trees.Strategy.NONE:
            return None, conflicts
        fingerprint = fingerprint_of("merge", ours.generation_id, ours.number, theirs.number, strategy)

        def create(tx: storage.Transaction) -> storage.Version:
            ours_row = readable_version_row(tx, caller, ours)
            assert ours_row.id is not None
            version = storage.create_version(
                tx,
                generation=generation_row(tx, caller, ours.generation_id),
                kind=storage.VersionKind.MERGE,
                prompt=f"Merge v{theirs.number} into v{ours.number}"
                + (f" (base v{ancestor})" if ancestor else "")
                + (f", conflicts resolved as {strategy.lower()}" if conflicts else ""),
                model=ours_row.model,
                provider=ours_row.provider,
                parent_number=ours.number,
                merge_parent_number=theirs.number,
                # A merge asks no model: it stays on `ours`' branch of the conversation, so a
                # tweak of it continues that conversation.
                base_turn_id=ours_row.head_turn_id,
                head_turn_id=ours_row.head_turn_id,
                turn=ours_row.turn,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                queue_job=False,
            )
            parent = (ours_row, storage.read_tree(tx, version_id=ours_row.id))
            return _complete_now(tx, version, list(merged.values()), parent, version.prompt)

        version = await self.create_once(
            caller, request_id, fingerprint, create, deadline, generation_id=ours.generation_id
        )
        return version, conflicts


def _complete_now(
    tx: storage.Transaction,
    version: storage.Version,
    entries: Sequence[TreeEntry],
    parent: tuple[storage.Version, Mapping[str, TreeEntry]] | None,
    message: str,
) -> storage.Version:
    storage.write_tree(tx, version=version, entries=entries, parent=parent)
    storage.append_event(
        tx,
        version=version,
        type=storage.EventType.STATE,
        state=storage.VersionState.COMPLETED,
        stage=1,
        total_stages=1,
        message=message,
    )
    assert version.id is not None
    return storage.get_version_by_id(tx, version.id)


def _common_ancestor(
    tx: storage.Transaction, caller: Principal, ours: VersionRef, theirs: VersionRef
) -> int | None:
    """The newest version that both are descended from (through parent and merge-parent links)."""
    versions = {
        v.number: v
        for v in storage.list_versions(
            tx, owner=caller.owner_filter, generation_id=ours.generation_id, after_number=0, limit=1_000_000
        )
    }

    def ancestors(number: int) -> set[int]:
        seen: set[int] = set()
        stack = [number]
        while stack:
            current = stack.pop()
            if current in seen or current not in versions:
                continue
            seen.add(current)
            version = versions[current]
            stack.extend(n for n in (version.parent_number, version.merge_parent_number) if n is not None)
        return seen

    common = ancestors(ours.number) & ancestors(theirs.number)
    return max(common) if common else None


def _contents_of(entries: Sequence[TreeEntry], tx: storage.Transaction) -> dict[str, bytes]:
    return storage.read_blobs(tx, (entry.blob_sha256 for entry in entries))


def _is_text(entry: TreeEntry) -> bool:
    kind = entry.mime_type
    return (
        kind.startswith("text/")
        or kind in ("application/json", "application/toml", "application/xml")
        or (kind.endswith(("+json", "+xml")))
    )
