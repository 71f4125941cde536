"""The generation service: the domain operations behind the API, in plain Python.

It validates requests, runs storage verbs in transactions (on worker threads, so the
event loop never blocks), and wakes the job runner and Progress subscribers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import anyio
import sqlalchemy.exc
from sqlmodel import Session

import storage
from server.config import ModelConfig, Settings
from server.domain import _transactions as transactions
from server.domain import tree_ops, trees
from server.domain._lru import LRU
from server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from server.domain.events import EventHub
from server.domain.jobs import CANCELLED_BY_USER, JobRunner
from server.providers._base import ChangeSet, FileUpsert, ProviderError

_log = logging.getLogger("atelier.sessions")
_ENDED_CACHE_SIZE = 1024
# Progress reads stored events in pages of this many.
_EVENTS_PAGE = 500


_READABLE_STATES = frozenset({storage.VersionState.COMPLETED, storage.VersionState.NEEDS_REVIEW})


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    name: str
    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class VersionRef:
    generation_id: str
    number: int


@dataclass(frozen=True, slots=True)
class TurnView:
    turn: storage.Turn
    version_number: int | None
    parent_number: int | None


class GenerationService:
    # ReadFile sends files in chunks of this size, well under gRPC's 4 MiB message limit.
    read_chunk_bytes = 64 * 1024

    def __init__(self, *, db: storage.Database, hub: EventHub, runner: JobRunner, settings: Settings) -> None:
        self._db = db
        self._hub = hub
        self._runner = runner
        self._settings = settings
        # Versions in a terminal state never change again, in any process: GetVersion serves
        # them from this small, bounded cache, without a database read or a thread hop.
        self._ended: LRU[tuple[str, str, int], storage.Version] = LRU(max_entries=_ENDED_CACHE_SIZE)

    # Generate

    async def generate(
        self,
        *,
        owner: str,
        prompt: str,
        model: str,
        request_id: str,
        attachments: Sequence[AttachmentInput],
    ) -> storage.Version:
        self._check_prompt(prompt)
        model_config = self._resolve_model(model)
        self._check_attachments(attachments)
        fingerprint = _fingerprint("generate", prompt, model_config.name, _attachment_keys(attachments))

        def create(session: Session) -> storage.Version:
            generation, version = storage.create_generation(
                session,
                owner=owner,
                prompt=prompt,
                model=model_config.name,
                provider=model_config.provider,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                attachments=_new_files(attachments),
            )
            _log_event("session_created", generation=generation.id, owner=owner, model=model_config.name)
            return version

        return await self._create_once(owner, request_id, fingerprint, create)

    async def tweak(
        self,
        *,
        owner: str,
        ref: VersionRef,
        prompt: str,
        model: str,
        request_id: str,
        etag: str,
        attachments: Sequence[AttachmentInput],
    ) -> storage.Version:
        """Queues the next version of the generation: `ref` refined in its own conversation branch."""
        self._check_prompt(prompt)
        self._check_attachments(attachments)
        model_config = self._resolve_model(model) if model else None
        fingerprint = _fingerprint(
            "tweak", ref.generation_id, ref.number, prompt, model, etag, _attachment_keys(attachments)
        )

        def create(session: Session) -> storage.Version:
            base = self._refinable_version(session, owner, ref, etag)
            generation = self._generation(session, owner, ref.generation_id)
            conversation = storage.get_session(session, owner=owner, generation_id=ref.generation_id)
            latest = generation.version_count
            version = storage.create_version(
                session,
                generation=generation,
                kind=storage.VersionKind.TWEAK,
                prompt=prompt,
                model=model_config.name if model_config else base.model,
                provider=model_config.provider if model_config else base.provider,
                parent_number=base.number,
                base_turn_id=base.head_turn_id,
                turn=base.turn + 1,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                attachments=_new_files(attachments),
            )
            if conversation is not None:
                _log_event(
                    "session_reused",
                    session=conversation.id,
                    generation=generation.id,
                    age_seconds=round((storage.utcnow() - conversation.create_time).total_seconds(), 3),
                    turn_count=conversation.turn_count,
                    branch_turns=base.turn,
                    forked=base.number != latest,
                )
            return version

        return await self._create_once(owner, request_id, fingerprint, create)

    async def iterate(
        self, *, owner: str, ref: VersionRef, prompt: str, model: str, request_id: str, etag: str
    ) -> storage.Version:
        """Queues version N+1 of the generation: `ref`'s tree plus the model's changes for `prompt`.

        The model sees the parent's files (not the conversation), and its answer is merged onto
        the parent's tree in one transaction.
        """
        self._check_prompt(prompt)
        model_config = self._resolve_model(model) if model else None
        fingerprint = _fingerprint("iterate", ref.generation_id, ref.number, prompt, model, etag)

        def create(session: Session) -> storage.Version:
            parent = self._refinable_version(session, owner, ref, etag)
            return storage.create_version(
                session,
                generation=self._generation(session, owner, ref.generation_id),
                kind=storage.VersionKind.ITERATE,
                prompt=prompt,
                model=model_config.name if model_config else parent.model,
                provider=model_config.provider if model_config else parent.provider,
                parent_number=parent.number,
                base_turn_id=None,
                turn=1,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
            )

        return await self._create_once(owner, request_id, fingerprint, create)

    async def regenerate(self, *, owner: str, ref: VersionRef, request_id: str) -> storage.Version:
        """Queues the version's prompt again, as a sibling of the version on a new branch."""
        fingerprint = _fingerprint("regenerate", ref.generation_id, ref.number)

        def create(session: Session) -> storage.Version:
            original = self._version(session, owner, ref)
            assert original.id is not None
            if not storage.VersionState(original.state).is_terminal:
                raise FailedPrecondition(
                    f"version {_name(ref)} is {original.state}; it can be made again once it has ended",
                    reason="VERSION_NOT_ENDED",
                    metadata={"state": original.state},
                )
            attachments = storage.list_attachments(session, version_id=original.id)
            contents = storage.read_blobs(session, (a.blob_sha256 for a in attachments))
            return storage.create_version(
                session,
                generation=self._generation(session, owner, ref.generation_id),
                kind=storage.VersionKind.REGENERATE,
                prompt=original.prompt,
                model=original.model,
                provider=original.provider,
                parent_number=original.parent_number,
                base_turn_id=original.base_turn_id,
                turn=original.turn,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                attachments=[
                    storage.NewFile(a.name, a.mime_type, contents[a.blob_sha256]) for a in attachments
                ],
            )

        return await self._create_once(owner, request_id, fingerprint, create)

    def _refinable_version(self, session: Session, owner: str, ref: VersionRef, etag: str) -> storage.Version:
        version = self._version(session, owner, ref)
        if version.state not in _READABLE_STATES:
            raise FailedPrecondition(
                f"version {_name(ref)} is {version.state}; "
                "only a COMPLETED or NEEDS_REVIEW version can be refined",
                reason="VERSION_NOT_READY",
                metadata={"state": version.state},
            )
        if etag and etag != version_etag(version):
            raise Aborted(
                f"version {_name(ref)} changed since it was read (etag {etag} is stale; it is now "
                f"{version_etag(version)}): read it again and retry",
                reason="ETAG_MISMATCH",
                metadata={"etag": version_etag(version)},
            )
        return version

    async def _create_once(
        self, owner: str, request_id: str, fingerprint: str, create: Callable[[Session], storage.Version]
    ) -> storage.Version:
        """Runs `create` in a write transaction, unless the caller's `request_id` already made a version
        (AIP-155): then that version is the answer, and nothing new starts."""

        def work(session: Session) -> tuple[storage.Version, bool]:
            if request_id:
                existing = self._existing_request(session, owner, request_id, fingerprint)
                if existing is not None:
                    return existing, False
            return create(session), True

        try:
            version, created = await transactions.write(self._db, work)
        except sqlalchemy.exc.IntegrityError:
            # A concurrent call with the same request id won the race: answer as a retry would.
            existing = await transactions.read(
                self._db, lambda s: self._existing_request(s, owner, request_id, fingerprint)
            )
            if existing is None:
                raise
            version, created = existing, False
        if created:
            self._runner.wake()
        return version

    def _existing_request(
        self, session: Session, owner: str, request_id: str, fingerprint: str
    ) -> storage.Version | None:
        existing = storage.find_version_by_request_id(session, owner=owner, request_id=request_id)
        if existing is not None and existing.request_fingerprint != fingerprint:
            raise AlreadyExists(
                f"request_id {request_id!r} was already used for a different request",
                reason="REQUEST_ID_REUSED",
                metadata={"request_id": request_id},
            )
        return existing

    def _check_prompt(self, prompt: str) -> None:
        if not prompt.strip():
            raise InvalidArgument(
                "the prompt is empty",
                reason="EMPTY_PROMPT",
                violations=[FieldViolation("prompt", "must contain some non-blank text")],
            )
        size = len(prompt.encode())
        limit = self._settings.max_prompt_bytes
        if size > limit:
            raise InvalidArgument(
                f"the prompt is {size} bytes; the limit is {limit}",
                reason="PROMPT_TOO_LARGE",
                metadata={"size": str(size), "limit": str(limit)},
                violations=[FieldViolation("prompt", f"must be at most {limit} bytes (UTF-8)")],
            )

    def _resolve_model(self, name: str) -> ModelConfig:
        if not name:
            return self._settings.resolved_default_model
        model = self._settings.find_model(name)
        if model is None:
            known = ", ".join(m.name for m in self._settings.available_models)
            raise InvalidArgument(
                f"unknown model {name!r}; ListModels names the models this server offers ({known})",
                reason="UNKNOWN_MODEL",
                metadata={"model": name},
                violations=[FieldViolation("model", "must be a model name from ListModels")],
            )
        return model

    def _check_attachments(self, attachments: Sequence[AttachmentInput]) -> None:
        violations = [
            FieldViolation(f"attachments[{index}].mime_type", "must be a MIME type such as image/png")
            for index, attachment in enumerate(attachments)
            if "/" not in attachment.mime_type
        ]
        if violations:
            raise InvalidArgument(
                "an attachment has no valid MIME type", reason="INVALID_ATTACHMENT", violations=violations
            )
        total = sum(len(a.data) for a in attachments)
        if total > self._settings.max_attachment_bytes:
            raise InvalidArgument(
                f"the attachments total {total} bytes; the limit is {self._settings.max_attachment_bytes}",
                reason="ATTACHMENTS_TOO_LARGE",
                violations=[FieldViolation("attachments", "are too large in total")],
            )

    # Reading

    async def get_version(self, *, owner: str, ref: VersionRef) -> storage.Version:
        key = (owner, ref.generation_id, ref.number)
        cached = self._ended.get(key)
        if cached is not None:
            return cached
        version = await transactions.read(self._db, lambda s: self._version(s, owner, ref))
        if storage.VersionState(version.state).is_terminal:
            self._ended.put(key, version)
        return version

    @staticmethod
    def _version(session: Session, owner: str, ref: VersionRef) -> storage.Version:
        version = storage.get_version(
            session, owner=owner, generation_id=ref.generation_id, number=ref.number
        )
        if version is None:
            raise _not_found("version", _name(ref), "VERSION_NOT_FOUND")
        return version

    async def get_generation(self, *, owner: str, generation_id: str) -> storage.Generation:
        return await transactions.read(self._db, lambda s: self._generation(s, owner, generation_id))

    @staticmethod
    def _generation(session: Session, owner: str, generation_id: str) -> storage.Generation:
        generation = storage.get_generation(session, owner=owner, generation_id=generation_id)
        if generation is None:
            raise _not_found("generation", f"generations/{generation_id}", "GENERATION_NOT_FOUND")
        return generation

    async def list_generations(
        self, *, owner: str, before_id: str | None, limit: int
    ) -> Sequence[storage.Generation]:
        return await transactions.read(
            self._db, lambda s: storage.list_generations(s, owner=owner, before_id=before_id, limit=limit)
        )

    async def list_versions(
        self, *, owner: str, generation_id: str, after_number: int, limit: int
    ) -> Sequence[storage.Version]:
        def work(session: Session) -> Sequence[storage.Version]:
            self._generation(session, owner, generation_id)
            return storage.list_versions(
                session, owner=owner, generation_id=generation_id, after_number=after_number, limit=limit
            )

        return await transactions.read(self._db, work)

    async def list_files(
        self, *, owner: str, ref: VersionRef, after_path: str | None, limit: int
    ) -> Sequence[storage.TreeEntry]:
        def work(session: Session) -> Sequence[storage.TreeEntry]:
            version = self._readable_version(session, owner, ref)
            assert version.id is not None
            return storage.list_manifest(session, version_id=version.id, after_path=after_path, limit=limit)

        return await transactions.read(self._db, work)

    def _readable_version(self, session: Session, owner: str, ref: VersionRef) -> storage.Version:
        version = self._version(session, owner, ref)
        if version.state not in _READABLE_STATES:
            raise FailedPrecondition(
                f"version generations/{ref.generation_id}/versions/{ref.number} is {version.state}; "
                "its files can be read once it is COMPLETED",
                reason="VERSION_NOT_READY",
                metadata={"state": version.state},
            )
        return version

    async def read_file(self, *, owner: str, ref: VersionRef, path: str) -> tuple[storage.TreeEntry, bytes]:
        def work(session: Session) -> tuple[storage.TreeEntry, bytes]:
            version = self._readable_version(session, owner, ref)
            assert version.id is not None
            entry = storage.get_manifest_entry(session, version_id=version.id, path=path)
            if entry is None:
                raise NotFound(
                    f"version generations/{ref.generation_id}/versions/{ref.number} has no file {path!r}",
                    reason="FILE_NOT_FOUND",
                    metadata={"path": path},
                )
            data = storage.read_blob(session, entry.blob_sha256)
            if data is None:
                raise RuntimeError(f"blob {entry.blob_sha256} of {path!r} is missing")
            return entry, data

        return await transactions.read(self._db, work)

    # Trees: diff, export, upload, merge

    async def diff(
        self, *, owner: str, base: VersionRef, target: VersionRef, include_text_diffs: bool
    ) -> list[tuple[tree_ops.PathDiff, str]]:
        """The paths that differ from `base` to `target`, each with a unified diff if asked for."""

        def work(session: Session) -> list[tuple[tree_ops.PathDiff, str]]:
            trees = [self._tree(session, owner, ref) for ref in (base, target)]
            changes = tree_ops.diff(trees[0], trees[1])
            if not include_text_diffs:
                return [(change, "") for change in changes]
            shas = [
                e.blob_sha256 for c in changes for e in (c.base, c.target) if e is not None and _is_text(e)
            ]
            contents = storage.read_blobs(session, shas)

            def text(entry: storage.TreeEntry | None) -> bytes | None:
                return contents.get(entry.blob_sha256) if entry is not None else None

            return [
                (
                    c,
                    tree_ops.unified_diff(c.path, text(c.base), text(c.target))
                    if all(e is None or _is_text(e) for e in (c.base, c.target))
                    else "",
                )
                for c in changes
            ]

        return await transactions.read(self._db, work)

    def _tree(self, session: Session, owner: str, ref: VersionRef) -> dict[str, storage.TreeEntry]:
        version = self._readable_version(session, owner, ref)
        assert version.id is not None
        return storage.read_tree(session, version_id=version.id)

    async def export(self, *, owner: str, ref: VersionRef) -> AsyncIterator[tuple[storage.TreeEntry, bytes]]:
        """Every file of the version with its contents, in path order, reading a batch at a time."""
        tree = await transactions.read(self._db, lambda s: self._tree(s, owner, ref))
        entries = sorted(tree.values(), key=lambda e: e.path.encode())
        batch_bytes = 8 * 1024 * 1024
        start = 0
        while start < len(entries):
            end, size = start, 0
            while end < len(entries) and (end == start or size + entries[end].size <= batch_bytes):
                size += entries[end].size
                end += 1
            batch = entries[start:end]
            contents = await transactions.read(self._db, functools.partial(_contents_of, batch))
            for entry in batch:
                yield entry, contents[entry.blob_sha256]
            start = end

    async def upload(
        self, *, owner: str, description: str, request_id: str, files: Sequence[storage.NewFile]
    ) -> storage.Version:
        """Starts a generation from the caller's files: they become its COMPLETED version 1."""
        description = description.strip() or f"Uploaded {len(files)} files"
        self._check_prompt(description)
        changes = ChangeSet(upserts=[FileUpsert(f.path, f.mime_type, f.data) for f in files])
        try:
            merged = trees.merge({}, changes, trees.Limits.of(self._settings))
        except ProviderError as exc:
            raise InvalidArgument(
                exc.message, reason=exc.reason, violations=[FieldViolation("file", exc.message)]
            ) from exc
        if not merged.file_count:
            raise InvalidArgument(
                "the upload holds no files",
                reason="EMPTY_UPLOAD",
                violations=[FieldViolation("file", "send one")],
            )
        model = self._settings.resolved_default_model
        fingerprint = _fingerprint(
            "upload", description, sorted((f.path, storage.sha256_hex(f.data)) for f in files)
        )

        def create(session: Session) -> storage.Version:
            _, version = storage.create_generation(
                session,
                owner=owner,
                prompt=description,
                model=model.name,
                provider=model.provider,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                kind=storage.VersionKind.UPLOAD,
                queue_job=False,
            )
            return self._complete_now(
                session,
                version,
                storage.store_files(session, merged.written),
                None,
                f"Uploaded {merged.file_count} files",
            )

        return await self._create_once(owner, request_id, fingerprint, create)

    async def merge(
        self,
        *,
        owner: str,
        ours: VersionRef,
        theirs: VersionRef,
        strategy: tree_ops.Strategy,
        request_id: str,
    ) -> tuple[storage.Version | None, list[tree_ops.Conflict]]:
        """Three-way merges two versions against their common ancestor (see tree_ops)."""
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

        def plan(
            session: Session,
        ) -> tuple[dict[str, storage.TreeEntry], list[tree_ops.Conflict], int | None]:
            ours_tree, theirs_tree = self._tree(session, owner, ours), self._tree(session, owner, theirs)
            ancestor = self._common_ancestor(session, owner, ours, theirs)
            base_tree = (
                {}
                if ancestor is None
                else self._tree(session, owner, VersionRef(ours.generation_id, ancestor))
            )
            merged, conflicts = tree_ops.three_way(base_tree, ours_tree, theirs_tree, strategy)
            return merged, conflicts, ancestor

        merged, conflicts, ancestor = await transactions.read(self._db, plan)
        if conflicts and strategy is tree_ops.Strategy.NONE:
            return None, conflicts
        fingerprint = _fingerprint("merge", ours.generation_id, ours.number, theirs.number, strategy)

        def create(session: Session) -> storage.Version:
            ours_version = self._readable_version(session, owner, ours)
            assert ours_version.id is not None
            version = storage.create_version(
                session,
                generation=self._generation(session, owner, ours.generation_id),
                kind=storage.VersionKind.MERGE,
                prompt=f"Merge v{theirs.number} into v{ours.number}"
                + (f" (base v{ancestor})" if ancestor else "")
                + (f", conflicts resolved as {strategy.lower()}" if conflicts else ""),
                model=ours_version.model,
                provider=ours_version.provider,
                parent_number=ours.number,
                merge_parent_number=theirs.number,
                base_turn_id=ours_version.head_turn_id,
                turn=ours_version.turn,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                queue_job=False,
            )
            base = (ours_version, storage.read_tree(session, version_id=ours_version.id))
            return self._complete_now(session, version, list(merged.values()), base, version.prompt)

        return await self._create_once(owner, request_id, fingerprint, create), conflicts

    @staticmethod
    def _complete_now(
        session: Session,
        version: storage.Version,
        entries: Sequence[storage.TreeEntry],
        base: tuple[storage.Version, dict[str, storage.TreeEntry]] | None,
        message: str,
    ) -> storage.Version:
        storage.write_tree(session, version=version, entries=entries, base=base)
        storage.append_event(
            session,
            version=version,
            type=storage.EventType.STATE,
            state=storage.VersionState.COMPLETED,
            stage=1,
            total_stages=1,
            message=message,
        )
        assert version.id is not None
        return storage.get_version_by_id(session, version.id)

    def _common_ancestor(
        self, session: Session, owner: str, ours: VersionRef, theirs: VersionRef
    ) -> int | None:
        """The newest version that both are descended from (through parent and merge-parent links)."""
        versions = {
            v.number: v
            for v in storage.list_versions(
                session, owner=owner, generation_id=ours.generation_id, after_number=0, limit=1_000_000
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

    # Sessions

    async def get_session(self, *, owner: str, generation_id: str) -> storage.ConversationSession:
        return await transactions.read(self._db, lambda s: self._session(s, owner, generation_id))

    @staticmethod
    def _session(session: Session, owner: str, generation_id: str) -> storage.ConversationSession:
        conversation = storage.get_session(session, owner=owner, generation_id=generation_id)
        if conversation is None:
            raise _not_found("session", f"generations/{generation_id}/session", "SESSION_NOT_FOUND")
        return conversation

    async def list_turns(
        self, *, owner: str, generation_id: str, after_number: int, limit: int, branch_of: VersionRef | None
    ) -> list[TurnView]:
        """Turns in order, each with the number of the version that added it and of its parent turn."""

        def work(session: Session) -> list[TurnView]:
            conversation = self._session(session, owner, generation_id)
            if branch_of is None:
                turns = list(
                    storage.list_turns(
                        session, session_id=conversation.id, after_number=after_number, limit=limit
                    )
                )
            else:
                head = self._version(session, owner, branch_of).head_turn_id
                branch = storage.branch_turns(session, head_turn_id=head)
                turns = [turn for turn in branch if turn.number > after_number][:limit]
            numbers = storage.version_numbers(session, [t.version_id for t in turns if t.version_id])
            parents = storage.turn_numbers(session, [t.parent_turn_id for t in turns if t.parent_turn_id])
            return [
                TurnView(
                    turn=turn,
                    version_number=numbers.get(turn.version_id) if turn.version_id else None,
                    parent_number=parents.get(turn.parent_turn_id) if turn.parent_turn_id else None,
                )
                for turn in turns
            ]

        return await transactions.read(self._db, work)

    # Cancel

    async def cancel(self, *, owner: str, ref: VersionRef) -> storage.Version:
        def work(session: Session) -> storage.Version:
            version = self._version(session, owner, ref)
            assert version.id is not None
            if storage.VersionState(version.state).is_terminal:
                raise FailedPrecondition(
                    f"version generations/{ref.generation_id}/versions/{ref.number} "
                    f"already ended {version.state}",
                    reason="VERSION_ALREADY_ENDED",
                    metadata={"state": version.state},
                )
            job = storage.request_cancel(session, version_id=version.id)
            if job is not None and job.status == storage.JobStatus.QUEUED and job.id is not None:
                # No worker has it: it ends here and now.
                storage.end_job(
                    session,
                    job_id=job.id,
                    version=version,
                    state=storage.VersionState.CANCELLED,
                    message="Cancelled",
                    error=CANCELLED_BY_USER,
                )
            return storage.get_version_by_id(session, version.id)

        version = await transactions.write(self._db, work)
        assert version.id is not None
        self._runner.cancel_local(version.id)
        self._hub.notify(version.id)
        return version

    # Progress

    async def progress(self, *, owner: str, ref: VersionRef, after_seq: int) -> AsyncIterator[storage.Event]:
        """The version's events after `after_seq`, then live ones, until its terminal event."""
        version = await self.get_version(owner=owner, ref=ref)
        version_id = version.id
        assert version_id is not None
        if storage.VersionState(version.state).is_terminal and after_seq >= version.last_event_seq:
            return
        cursor = after_seq
        ticket = self._hub.ticket(version_id)
        # Whether everything stored had been read when the ticket was taken: then only a
        # notification (which sets the ticket) or the poll interval can bring more.
        caught_up = False
        while True:
            if ticket.is_set():
                ticket, caught_up = self._hub.ticket(version_id), False
            # What this process's writer just committed comes from memory, the rest from the
            # database. (Another process's writes arrive by notification or by polling.)
            events = self._hub.events_after(version_id, cursor)
            if events:
                caught_up = True
            elif caught_up:
                with anyio.move_on_after(self._settings.progress_poll_seconds):
                    await ticket.wait()
                ticket, caught_up = self._hub.ticket(version_id), False
                continue
            else:
                events = await transactions.read(
                    self._db, functools.partial(_events_after, version_id, cursor)
                )
                caught_up = len(events) < _EVENTS_PAGE
            for event in events:
                yield event
                cursor = event.seq
            # A version's terminal event is its last: nothing is recorded after it.
            if events and storage.VersionState(events[-1].state).is_terminal:
                return


def version_etag(version: storage.Version) -> str:
    return f'W/"{version.revision}"'


def _not_found(kind: str, name: str, reason: str) -> NotFound:
    # The same answer whether the resource does not exist or belongs to someone else.
    return NotFound(f"{kind} {name} not found", reason=reason, metadata={"name": name})


def _name(ref: VersionRef) -> str:
    return f"generations/{ref.generation_id}/versions/{ref.number}"


def _contents_of(entries: Sequence[storage.TreeEntry], session: Session) -> dict[str, bytes]:
    return storage.read_blobs(session, (entry.blob_sha256 for entry in entries))


def _is_text(entry: storage.TreeEntry) -> bool:
    kind = entry.mime_type
    return (
        kind.startswith("text/")
        or kind in ("application/json", "application/toml", "application/xml")
        or (kind.endswith(("+json", "+xml")))
    )


def _attachment_keys(attachments: Sequence[AttachmentInput]) -> list[tuple[str, str, str]]:
    return [(a.name, a.mime_type, storage.sha256_hex(a.data)) for a in attachments]


def _new_files(attachments: Sequence[AttachmentInput]) -> list[storage.NewFile]:
    return [storage.NewFile(path=a.name, mime_type=a.mime_type, data=a.data) for a in attachments]


def _log_event(event: str, **fields: object) -> None:
    """One structured (JSON) log line, for operators' tools."""
    _log.info(json.dumps({"event": event, **fields}, default=str))


def _events_after(version_id: int, after_seq: int, session: Session) -> list[storage.Event]:
    return storage.list_events(session, version_id=version_id, after_seq=after_seq, limit=_EVENTS_PAGE)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
