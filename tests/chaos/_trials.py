"""Chaos trials: kill -9 the real server at random moments while a slow model runs jobs.

One `Chaos` per database. Each trial sends a random mix of Generate, Tweak, Iterate, UploadTree
and Merge calls, each with a request_id, to the running server; kills it (SIGKILL) at a random
moment, sometimes twice; restarts it; sends every call again with the same request_id; waits
for every job to end; then checks the invariants below. The restarted server serves the next
trial, so every trial is one kill and one restart (or two of each).

What the trials check, for every version a trial made:

- Nothing lost or duplicated: a call answered before the kill gets the same version when
  retried, and the generations the trial touched hold no version that no call asked for.
- Nothing stuck: every job ends. A trial expects COMPLETED, since nothing here is meant to fail
  or be cancelled; a FAILED version (with or without a reason) is a violation too.
- Every kept version's tree (ExportTree) is exactly its parent's tree plus its own change,
  computed here, independently of the server: the change a scripted or offline model was asked
  for (the scripted provider's JSON, or the offline provider's instruction language), the files
  uploaded, or the three-way merge of its two parents against their newest common ancestor.
- Every version's event log (Progress from seq 0) runs 1..N without a gap and ends with a
  terminal state.

The slow model is the scripted provider (server/providers/scripted.py): each stage sleeps the
`delay` its JSON prompt asks for, so kills land before, during and after jobs. The offline
provider, which answers at once, refines some versions in its instruction language.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from atelier.v1 import progress_pb2, tree_pb2

from tests._support import TERMINAL, Api, ServerProcess, file_message

Tree = dict[str, bytes]

TOKEN = "alice-token"
# Kills land this long (at most) after the trial's calls are sent: while calls are answered,
# while jobs are queued, run (a scripted job sleeps 0.1-0.8 s) and settle, and after.
_KILL_WINDOW_SECONDS = 1.2
# How long a restarted server may take to end every job of a trial.
_JOB_TIMEOUT_SECONDS = 90.0
_CALL_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Change:
    """A version's own change to its parent's tree: deletions, then renames, then upserts (the
    order in which the server applies a provider's change set)."""

    upserts: dict[str, bytes]
    deletions: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()

    def applied_to(self, tree: Tree) -> Tree:
        result = dict(tree)
        for path in self.deletions:
            del result[path]
        for old, new in self.renames:
            result[new] = result.pop(old)
        result.update(self.upserts)
        return result

    def script(self, *, stages: int, delay: float) -> str:
        """The scripted provider's prompt for this change, sleeping `delay` in each stage."""
        return json.dumps(
            {
                "stages": stages,
                "delay": delay,
                "files": {path: data.decode() for path, data in self.upserts.items()},
                "deletions": list(self.deletions),
                "renames": [list(pair) for pair in self.renames],
            }
        )

    def instructions(self) -> str:
        """The same change in the offline provider's instruction language (see
        server/providers/offline/_instructions.py). Contents end with a newline, as the offline
        provider's always do, and hold no quote or backslash."""
        clauses = [f'delete file "{path}"' for path in self.deletions]
        clauses += [f'rename file "{old}" to "{new}"' for old, new in self.renames]
        clauses += [
            f'add file "{path}" with content "{data.decode().replace(chr(10), chr(92) + "n")}"'
            for path, data in self.upserts.items()
        ]
        return "; ".join(clauses)


@dataclass
class Call:
    """One create call of a trial, sent again after each restart with the same request_id."""

    kind: str
    request_id: str
    send: Callable[[Api], str]
    # What the new version's tree must be, and the versions it was made from.
    expected: Tree
    parent: str | None = None
    merge_parent: str | None = None
    # The version the first answer named (None if the kill came first), and the latest answer.
    acknowledged: str | None = None
    name: str | None = None

    def attempt(self, api: Api) -> str | None:
        """Sends the call; the version's name, or None when the server is gone."""
        try:
            name = self.send(api)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                return None
            raise
        if self.acknowledged is None:
            self.acknowledged = name
        return name


@dataclass
class Figures:
    trials: int = 0
    kills: int = 0
    jobs: int = 0
    calls: int = 0
    versions_checked: int = 0
    # Calls the first kill left unanswered, and jobs a kill stopped (their log says "Requeued").
    unanswered: int = 0
    interrupted: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, backend: str) -> str:
        return (
            f"chaos on {backend}: {self.trials} trials, {self.kills} kills, {self.calls} calls, "
            f"{self.unanswered} unanswered when killed, {self.jobs} model jobs, "
            f"{self.interrupted} jobs interrupted, {self.versions_checked} versions checked, "
            f"{len(self.violations)} violations, {self.seconds:.0f} s"
        )


def _number(name: str) -> int:
    return int(name.rsplit("/", 1)[1])


def _generation(name: str) -> str:
    return name.rsplit("/versions/", 1)[0]


def three_way(base: Tree, ours: Tree, theirs: Tree, *, take_theirs: bool) -> Tree:
    """A path-by-path three-way merge: a side that changed a path wins; when both did, the
    strategy's side."""
    merged: Tree = {}
    for path in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if o == t or b == t:
            chosen = o
        elif b == o:
            chosen = t
        else:
            chosen = t if take_theirs else o
        if chosen is not None:
            merged[path] = chosen
    return merged


class Chaos:
    """The trials on one database, and what they learnt: every kept version's tree and parents."""

    def __init__(self, server: ServerProcess, *, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.figures = Figures()
        # Versions checked COMPLETED, by name: their trees, and their parents (for merges).
        self.trees: dict[str, Tree] = {}
        self.parents: dict[str, tuple[str | None, str | None]] = {}
        self.kept: dict[str, list[str]] = {}
        # Every version some call made: anything else in a generation is a duplicate.
        self.made: set[str] = set()

    def run(self, trials: int) -> Figures:
        started = time.monotonic()
        for _ in range(trials):
            self.trial()
        self.check_nothing_stuck()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    # -- one trial ---------------------------------------------------------------------------

    def trial(self) -> None:
        number = self.figures.trials + 1
        calls = self.plan(number)
        self.figures.trials += 1
        self.figures.calls += len(calls)
        self.figures.jobs += sum(call.kind in ("generate", "tweak", "iterate") for call in calls)
        self.send_then_kill(calls, window=_KILL_WINDOW_SECONDS)
        self.figures.unanswered += sum(call.acknowledged is None for call in calls)
        if self.rng.random() < 0.25:
            # A second crash, while the retries are answered and the requeued jobs run again.
            self.send_then_kill(calls, window=0.6)
        with self.server.channel() as channel:
            api = Api(channel, TOKEN)
            for call in calls:
                self.retry(api, call, number)
            checks = [self._checker(api, call, number) for call in calls if call.name is not None]
            _in_threads(checks)
            self.check_no_duplicates(api, calls, number)

    def send_then_kill(self, calls: list[Call], *, window: float) -> None:
        """Sends every call at once, kills the server at a random moment, and restarts it."""
        delay = self.rng.uniform(0, window)
        with self.server.channel() as channel:
            api = Api(channel, TOKEN)
            threads = [threading.Thread(target=call.attempt, args=(api,), daemon=True) for call in calls]
            for thread in threads:
                thread.start()
            time.sleep(delay)
            self.server.kill()
            self.figures.kills += 1
            for thread in threads:
                thread.join(_CALL_TIMEOUT_SECONDS)
        self.server.start()

    def retry(self, api: Api, call: Call, trial: int) -> None:
        try:
            call.name = call.attempt(api)
        except grpc.RpcError as error:
            self.violation(
                trial, f"{call.kind} {call.request_id}: the retry failed: {error.code()} {error.details()}"
            )
            return
        if call.name is None:
            self.violation(trial, f"{call.kind} {call.request_id}: the restarted server did not answer")
        elif call.name != call.acknowledged:
            self.violation(
                trial, f"{call.kind} {call.request_id}: acknowledged {call.acknowledged}, retried {call.name}"
            )
        else:
            self.made.add(call.name)

    def _checker(self, api: Api, call: Call, trial: int) -> Callable[[], None]:
        return lambda: self.check_version(api, call, trial)

    def check_version(self, api: Api, call: Call, trial: int) -> None:
        """Waits for the version's job to end, then checks its events and its tree."""
        try:
            self._check_version(api, call, trial)
        except Exception as error:  # a thread's error would vanish: it is a violation
            self.violation(trial, f"{call.name} ({call.kind}): {error!r}")

    def _check_version(self, api: Api, call: Call, trial: int) -> None:
        assert call.name is not None
        try:
            events = api.progress(call.name, timeout=_JOB_TIMEOUT_SECONDS)
            version = api.get(call.name)
        except grpc.RpcError as error:
            self.violation(trial, f"{call.name} ({call.kind}): {error.code()} {error.details()}")
            return
        self.check_events(call.name, events, trial)
        if any(event.message.startswith("Requeued") for event in events):
            with _lock:
                self.figures.interrupted += 1
        if version.state != gen.VERSION_STATE_COMPLETED:
            state = gen.VersionState.Name(version.state)
            self.violation(trial, f"{call.name} ({call.kind}) ended {state}: {version.error.message!r}")
            return
        tree = api.export(call.name)
        if tree != call.expected:
            self.violation(trial, f"{call.name} ({call.kind}): {_tree_difference(call.expected, tree)}")
            return
        with _lock:
            self.figures.versions_checked += 1
            self.trees[call.name] = tree
            self.parents[call.name] = (call.parent, call.merge_parent)
            self.kept.setdefault(_generation(call.name), []).append(call.name)

    def check_events(self, name: str, events: list[progress_pb2.ProgressEvent], trial: int) -> None:
        seqs = [event.seq for event in events]
        if seqs != list(range(1, len(seqs) + 1)):
            self.violation(trial, f"{name}: events run {seqs}, not 1..{len(seqs)}")
        last = events[-1] if events else None
        if last is None or last.type != progress_pb2.PROGRESS_EVENT_TYPE_STATE or last.state not in TERMINAL:
            self.violation(trial, f"{name}: the event log does not end with a terminal state")

    def check_no_duplicates(self, api: Api, calls: list[Call], trial: int) -> None:
        """The generations this trial touched hold only versions some call made."""
        for generation in sorted({_generation(call.name) for call in calls if call.name}):
            response = api.stub.ListVersions(
                pb.ListVersionsRequest(parent=generation, page_size=1000), metadata=api.metadata, timeout=10
            )
            extra = sorted({version.name for version in response.versions} - self.made)
            if extra:
                self.violation(trial, f"versions no call asked for: {extra}")

    def check_nothing_stuck(self) -> None:
        """After the last trial, every version of the database has ended."""
        with self.server.channel() as channel:
            api = Api(channel, TOKEN)
            token = ""
            while True:
                page = api.stub.ListGenerations(
                    pb.ListGenerationsRequest(page_size=1000, page_token=token),
                    metadata=api.metadata,
                    timeout=30,
                )
                for generation in page.generations:
                    versions = api.stub.ListVersions(
                        pb.ListVersionsRequest(parent=generation.name, page_size=1000),
                        metadata=api.metadata,
                        timeout=30,
                    )
                    for version in versions.versions:
                        if version.state not in TERMINAL:
                            self.violation(
                                0, f"{version.name} is still {gen.VersionState.Name(version.state)}"
                            )
                token = page.next_page_token
                if not token:
                    return

    def violation(self, trial: int, text: str) -> None:
        with _lock:
            self.figures.violations.append(f"trial {trial}: {text}")

    # -- what a trial sends ------------------------------------------------------------------

    def plan(self, trial: int) -> list[Call]:
        """A random mix of calls; refinements and merges build on versions already checked."""
        kinds = ["generate", "upload"]
        if self.trees:
            kinds += ["tweak", "iterate", "tweak", "iterate"]
        if any(len(names) >= 2 for names in self.kept.values()):
            kinds.append("merge")
        makers = {
            "generate": self.generate,
            "upload": self.upload,
            "tweak": self.refine,
            "iterate": self.refine,
            "merge": self.merge,
        }
        calls = []
        for index in range(self.rng.randint(4, 9)):
            kind = self.rng.choice(kinds)
            calls.append(makers[kind](kind, f"chaos-{trial}-{index}-{self.rng.getrandbits(32):08x}"))
        return calls

    def generate(self, kind: str, request_id: str) -> Call:
        change = Change(self.new_files(request_id))
        request = pb.GenerateRequest(
            prompt=change.script(stages=self.rng.randint(1, 3), delay=self.rng.uniform(0.05, 0.3)),
            request_id=request_id,
            model="scripted",
        )

        def send(api: Api) -> str:
            version: gen.Version = api.stub.Generate(
                request, metadata=api.metadata, timeout=_CALL_TIMEOUT_SECONDS
            )
            return version.name

        return Call(kind, request_id, send, change.applied_to({}))

    def upload(self, kind: str, request_id: str) -> Call:
        files = self.new_files(request_id)
        # Bytes split over several messages, with pauses a kill may fall into.
        pauses = [self.rng.uniform(0, 0.05) for _ in files]

        def messages() -> Iterator[pb.UploadTreeRequest]:
            yield pb.UploadTreeRequest(request_id=request_id, description=f"chaos upload {request_id}")
            for (path, data), pause in zip(files.items(), pauses, strict=True):
                half = len(data) // 2
                yield file_message(path, data[:half])
                time.sleep(pause)
                yield pb.UploadTreeRequest(data=data[half:])

        def send(api: Api) -> str:
            version: gen.Version = api.stub.UploadTree(
                messages(), metadata=api.metadata, timeout=_CALL_TIMEOUT_SECONDS
            )
            return version.name

        return Call(kind, request_id, send, dict(files))

    def refine(self, kind: str, request_id: str) -> Call:
        parent = self.rng.choice(sorted(self.trees))
        change = self.change_of(self.trees[parent], request_id)
        offline = self.rng.random() < 0.3
        prompt = (
            change.instructions()
            if offline
            else change.script(stages=self.rng.randint(1, 3), delay=self.rng.uniform(0.05, 0.3))
        )
        model = "offline" if offline else "scripted"

        def send(api: Api) -> str:
            version: gen.Version
            if kind == "tweak":
                tweak = pb.TweakRequest(name=parent, prompt=prompt, request_id=request_id, model=model)
                version = api.stub.Tweak(tweak, metadata=api.metadata, timeout=_CALL_TIMEOUT_SECONDS)
            else:
                iterate = pb.IterateRequest(parent=parent, prompt=prompt, request_id=request_id, model=model)
                version = api.stub.Iterate(iterate, metadata=api.metadata, timeout=_CALL_TIMEOUT_SECONDS)
            return version.name

        return Call(kind, request_id, send, change.applied_to(self.trees[parent]), parent=parent)

    def merge(self, kind: str, request_id: str) -> Call:
        generation = self.rng.choice(sorted(g for g, names in self.kept.items() if len(names) >= 2))
        ours, theirs = self.rng.sample(sorted(self.kept[generation]), 2)
        take_theirs = self.rng.random() < 0.5
        base = self.common_ancestor(ours, theirs)
        expected = three_way(
            self.trees[base] if base else {}, self.trees[ours], self.trees[theirs], take_theirs=take_theirs
        )
        request = pb.MergeRequest(
            ours=ours,
            theirs=theirs,
            strategy=tree_pb2.MERGE_STRATEGY_THEIRS if take_theirs else tree_pb2.MERGE_STRATEGY_OURS,
            request_id=request_id,
        )

        def send(api: Api) -> str:
            response: pb.MergeResponse = api.stub.Merge(
                request, metadata=api.metadata, timeout=_CALL_TIMEOUT_SECONDS
            )
            return response.version.name

        return Call(kind, request_id, send, expected, parent=ours, merge_parent=theirs)

    def common_ancestor(self, ours: str, theirs: str) -> str | None:
        """The newest version both descend from, through parent and merge-parent links."""

        def ancestors(name: str) -> set[str]:
            seen: set[str] = set()
            stack = [name]
            while stack:
                current = stack.pop()
                if current not in seen:
                    seen.add(current)
                    stack.extend(p for p in self.parents.get(current, (None, None)) if p is not None)
            return seen

        common = ancestors(ours) & ancestors(theirs)
        return max(common, key=_number) if common else None

    def new_files(self, request_id: str) -> dict[str, bytes]:
        return {
            f"{request_id}/file-{index}.txt": self.content(request_id, index)
            for index in range(self.rng.randint(1, 3))
        }

    def content(self, request_id: str, index: int) -> bytes:
        words = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 12)))
        return f"{request_id} {index}: {words}\n".encode()

    def change_of(self, tree: Tree, request_id: str) -> Change:
        """Adds a file or two, and may change, delete and rename others: never over half the tree."""
        paths = sorted(tree)
        self.rng.shuffle(paths)
        upserts = {f"{request_id}/added-{index}.txt": self.content(request_id, index) for index in range(2)}
        upserts = dict(list(upserts.items())[: self.rng.randint(1, 2)])
        deletions: tuple[str, ...] = ()
        renames: tuple[tuple[str, str], ...] = ()
        if paths and self.rng.random() < 0.5:
            upserts[paths.pop()] = self.content(request_id, 9)
        # A change that removes over half the tree (a rename removes a path) is held for review.
        removable = len(tree) // 2
        if removable and self.rng.random() < 0.3:
            deletions = (paths.pop(),)
            removable -= 1
        if removable and self.rng.random() < 0.3:
            renames = ((paths.pop(), f"{request_id}/renamed.txt"),)
        return Change(upserts, deletions, renames)


_lock = threading.Lock()
_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
    "mike",
]


def _in_threads(tasks: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=task, daemon=True) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_JOB_TIMEOUT_SECONDS + 30)


def _tree_difference(expected: Tree, actual: Tree) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(path for path in set(expected) & set(actual) if expected[path] != actual[path])
    return f"the tree differs: missing {missing}, unexpected {extra}, other contents {changed}"
