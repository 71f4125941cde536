"""Reading what exists: versions, generations, and a version's files."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import storage
from server.cpu import off_the_loop
from server.domain import _transactions as transactions
from server.domain.errors import NotFound
from server.domain.generations._base import (
    ENDED_CACHE_SECONDS,
    ServiceBase,
    generation_row,
    readable_version_row,
    version_name,
    version_row,
)
from server.domain.principals import Principal
from server.domain.resources import (
    FileBlame,
    Generation,
    ModelView,
    TreeEntry,
    Version,
    VersionRef,
    blame_of,
    generation_of,
    version_of,
)
from server.files import has_pixel_size, image_size


class ReadVerbs(ServiceBase):
    # ReadFile sends files in chunks of this size, well under gRPC's 4 MiB message limit.
    read_chunk_bytes = 64 * 1024

    async def get_version(self, *, caller: Principal, ref: VersionRef) -> Version:
        return (await self.version_with_id(caller, ref))[1]

    async def version_with_id(self, caller: Principal, ref: VersionRef) -> tuple[int, Version]:
        """The version and its row id (which Progress follows)."""
        key = (caller.owner_filter, ref.generation_id, ref.number)
        cached = self._ended.get(key)
        if cached is not None and time.monotonic() - cached[2] < ENDED_CACHE_SECONDS:
            return cached[0], cached[1]
        row = await transactions.read(self._db, lambda tx: version_row(tx, caller, ref))
        assert row.id is not None
        found = (row.id, version_of(row, self._runner.estimate_of(row.id)))
        if found[1].state.is_terminal:
            self._ended.put(key, (*found, time.monotonic()))
        return found

    async def get_generation(self, *, caller: Principal, generation_id: str) -> Generation:
        row = await transactions.read(self._db, lambda tx: generation_row(tx, caller, generation_id))
        return generation_of(row)

    async def list_generations(
        self, *, caller: Principal, owner: str, before_id: str | None, limit: int, show_deleted: bool = False
    ) -> list[Generation]:
        """The generations the caller may see, newest first: its own, or an admin's pick of everyone's.
        `owner` (if not empty) narrows them to that principal's; `show_deleted` adds the deleted ones
        that have not expired."""
        only = caller.owner_filter
        if owner:
            if only is not None and owner != only:
                return []
            only = owner
        rows = await transactions.read(
            self._db,
            lambda tx: storage.list_generations(
                tx, owner=only, before_id=before_id, limit=limit, show_deleted=show_deleted
            ),
        )
        return [generation_of(row) for row in rows]

    async def list_versions(
        self, *, caller: Principal, generation_id: str, after_number: int, limit: int
    ) -> list[Version]:
        def work(tx: storage.Transaction) -> Sequence[storage.Version]:
            generation_row(tx, caller, generation_id)
            return storage.list_versions(
                tx,
                owner=caller.owner_filter,
                generation_id=generation_id,
                after_number=after_number,
                limit=limit,
            )

        rows = await transactions.read(self._db, work)
        return [version_of(row, self._runner.estimate_of(row.id) if row.id else None) for row in rows]

    async def list_models(self) -> list[ModelView]:
        """The configured models, the default first marked, each with its jobs and cooldown now."""
        activity = await transactions.read(self._db, storage.model_activity)
        default = self._settings.resolved_default_model.name
        views = []
        for model in self._settings.available_models:
            state = activity.get(model.name, storage.ModelActivity())
            cooling = self._runner.capacity(model.name).cooling_until
            stored = (
                state.cooldown_until
                if state.cooldown_until and state.cooldown_until > storage.utcnow()
                else None
            )
            views.append(
                ModelView(
                    config=model,
                    default=model.name == default,
                    jobs_in_flight=state.running,
                    jobs_queued=state.queued,
                    cooldown_until=max(filter(None, (cooling, stored)), default=None),
                )
            )
        return views

    async def list_files(
        self,
        *,
        caller: Principal,
        ref: VersionRef,
        after_path: str | None,
        limit: int,
        with_blame: bool = False,
    ) -> Sequence[tuple[TreeEntry, FileBlame | None]]:
        """A page of the version's files in path order, each with its blame if asked for."""

        def work(tx: storage.Transaction) -> Sequence[tuple[TreeEntry, FileBlame | None]]:
            row = readable_version_row(tx, caller, ref)
            assert row.id is not None
            entries = storage.list_manifest(tx, version_id=row.id, after_path=after_path, limit=limit)
            if not with_blame:
                return [(entry, None) for entry in entries]
            return list(zip(entries, _blamed(tx, row, entries), strict=True))

        return await transactions.read(self._db, work)

    async def blame(
        self, *, caller: Principal, ref: VersionRef, path: str, after_path: str | None, limit: int
    ) -> list[FileBlame]:
        """For a page of the version's files (all, or the file or directory `path`), in path order,
        the version that last changed each one."""

        def work(tx: storage.Transaction) -> list[FileBlame]:
            row = readable_version_row(tx, caller, ref)
            assert row.id is not None
            if not path:
                entries = storage.list_manifest(tx, version_id=row.id, after_path=after_path, limit=limit)
                return _blamed(tx, row, entries)
            entry = storage.get_manifest_entry(tx, version_id=row.id, path=path)
            if entry is not None:
                found = [entry]
            else:  # a directory: the files under it
                prefix = path.rstrip("/") + "/"
                tree = storage.read_tree(tx, version_id=row.id)
                found = sorted(
                    (e for p, e in tree.items() if p.startswith(prefix)), key=lambda e: e.path.encode()
                )
                if not found:
                    raise NotFound(
                        f"version {version_name(ref)} has no file or directory {path!r}",
                        reason="FILE_NOT_FOUND",
                        metadata={"path": path},
                    )
            after = after_path.encode() if after_path is not None else b""
            page = [e for e in found if e.path.encode() > after][:limit]
            return _blamed(tx, row, page)

        return await transactions.read(self._db, work)

    async def image_sizes(
        self, entries: Sequence[TreeEntry], *, contents: Mapping[str, bytes] | None = None
    ) -> dict[str, tuple[int, int]]:
        """Each image's width and height among `entries`, by SHA-256, read from its header (from
        `contents` when given, else from storage) and remembered."""
        wanted = {e.blob_sha256 for e in entries if has_pixel_size(e.mime_type)}
        sizes = {sha: self._image_sizes.get(sha) for sha in wanted}
        unknown = [sha for sha, size in sizes.items() if size is None]
        if unknown:
            found = dict(contents or {})
            missing = [sha for sha in unknown if sha not in found]
            if missing:
                found.update(await transactions.read(self._db, lambda tx: storage.read_blobs(tx, missing)))
            for sha in unknown:
                data = found.get(sha)
                size = await off_the_loop(len(data), image_size, data) if data is not None else None
                self._image_sizes.put(sha, size or (0, 0))
                sizes[sha] = size
        return {sha: size for sha, size in sizes.items() if size and size != (0, 0)}

    async def read_file(self, *, caller: Principal, ref: VersionRef, path: str) -> tuple[TreeEntry, bytes]:
        def work(tx: storage.Transaction) -> tuple[TreeEntry, bytes]:
            row = readable_version_row(tx, caller, ref)
            assert row.id is not None
            entry = storage.get_manifest_entry(tx, version_id=row.id, path=path)
            if entry is None:
                raise NotFound(
                    f"version {version_name(ref)} has no file {path!r}",
                    reason="FILE_NOT_FOUND",
                    metadata={"path": path},
                )
            data = storage.read_blob(tx, entry.blob_sha256)
            if data is None:
                raise RuntimeError(f"blob {entry.blob_sha256} of {path!r} is missing")
            return entry, data

        return await transactions.read(self._db, work)


def _blamed(tx: storage.Transaction, row: storage.Version, entries: Sequence[TreeEntry]) -> list[FileBlame]:
    found = storage.blame(tx, version=row, paths={entry.path: entry.blob_sha256 for entry in entries})
    return [blame_of(entry.path, found[entry.path]) for entry in entries]
