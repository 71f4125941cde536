"""Blame through the real server, over a 20-version history with branches, a regenerate and merges."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2
from atelier.v1.blame_pb2 import FileBlame

from tests._support import Api, ServerProcess, check_error, fails, file_message

K = generation_pb2.VersionKind


class History:
    """Builds one generation through the API and keeps its versions by number."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.versions: dict[int, generation_pb2.Version] = {}

    def keep(self, version: generation_pb2.Version) -> None:
        done = self.api.wait(version.name)
        assert done.state == generation_pb2.VERSION_STATE_COMPLETED, done
        self.versions[done.number] = done

    def iterate(self, parent: int, prompt: str) -> None:
        request = pb.IterateRequest(parent=self.versions[parent].name, prompt=prompt, model="offline")
        self.keep(self.api.stub.Iterate(request, metadata=self.api.metadata, timeout=10))

    def tweak(self, parent: int, prompt: str) -> None:
        request = pb.TweakRequest(name=self.versions[parent].name, prompt=prompt, model="offline")
        self.keep(self.api.stub.Tweak(request, metadata=self.api.metadata, timeout=10))

    def regenerate(self, number: int) -> None:
        request = pb.RegenerateRequest(name=self.versions[number].name)
        self.keep(self.api.stub.Regenerate(request, metadata=self.api.metadata, timeout=10))

    def merge(self, ours: int, theirs: int) -> None:
        request = pb.MergeRequest(ours=self.versions[ours].name, theirs=self.versions[theirs].name)
        response = self.api.stub.Merge(request, metadata=self.api.metadata, timeout=10)
        assert not response.conflicts, response.conflicts
        self.keep(response.version)

    def blame(self, number: int, path: str = "", page_size: int = 0) -> list[FileBlame]:
        """Every page of Blame."""
        found: list[FileBlame] = []
        request = pb.BlameRequest(name=self.versions[number].name, path=path, page_size=page_size)
        while True:
            response = self.api.stub.Blame(request, metadata=self.api.metadata, timeout=10)
            found += response.files
            if not response.next_page_token:
                return found
            request.page_token = response.next_page_token

    def summary(self, blames: list[FileBlame]) -> dict[str, tuple[int, int]]:
        """path -> (number, kind) of the version blamed."""
        return {b.path: (int(b.version.rsplit("/", 1)[1]), b.kind) for b in blames}


@pytest.fixture(scope="module")
def history(server: ServerProcess) -> Iterator[History]:
    """v1 an upload; branches, a tweak, a regenerate, a re-added file and three merges, up to v20."""
    with server.channel() as channel:
        h = History(Api(channel, "alice-token"))
        files = {
            "a.txt": "alpha",
            "b.txt": "bravo",
            "c.txt": "charlie",
            "d/e.txt": "echo",
            "keep.txt": "keep",
        }
        h.keep(
            h.api.upload(
                pb.UploadTreeRequest(description="the start"),
                *(file_message(path, f"{text}\n".encode()) for path, text in files.items()),
            )
        )
        h.iterate(1, 'replace "alpha" with "alpha2" in a.txt')  # v2
        h.iterate(2, 'add f.txt with content "foxtrot"')  # v3
        h.tweak(3, 'replace "bravo" with "bravo4" in b.txt')  # v4
        h.iterate(2, 'replace "charlie" with "charlie5" in c.txt')  # v5, a branch from v2
        h.iterate(5, 'add g.txt with content "golf"')  # v6
        h.merge(4, 6)  # v7
        h.iterate(7, 'replace "echo" with "echo8" in d/e.txt')  # v8
        h.iterate(8, "delete f.txt")  # v9
        h.iterate(9, 'add f.txt with content "foxtrot"')  # v10: the same contents as v3's, added again
        h.iterate(10, 'replace "golf" with "golf11" in g.txt')  # v11
        h.regenerate(11)  # v12: a sibling of v11, the same change
        h.iterate(12, 'add h.txt with content "hotel"')  # v13
        h.iterate(10, 'replace "alpha2" with "alpha14" in a.txt')  # v14, a branch from v10
        h.iterate(14, 'add i.txt with content "india"')  # v15
        h.merge(13, 15)  # v16
        h.iterate(16, 'replace "bravo4" with "bravo17" in b.txt')  # v17
        h.merge(17, 11)  # v18: g.txt is the same on both sides
        h.iterate(18, 'replace "keep" with "kept19" in keep.txt')  # v19
        h.iterate(19, 'replace "hotel" with "hotel20" in h.txt')  # v20
        assert sorted(h.versions) == list(range(1, 21))
        yield h


def test_blame_names_the_version_that_last_changed_each_file(history: History) -> None:
    assert history.summary(history.blame(20)) == {
        "a.txt": (14, K.VERSION_KIND_ITERATE),  # through v16's `theirs` side
        "b.txt": (17, K.VERSION_KIND_ITERATE),
        "c.txt": (5, K.VERSION_KIND_ITERATE),  # through v7's `theirs` side
        "d/e.txt": (8, K.VERSION_KIND_ITERATE),
        "f.txt": (10, K.VERSION_KIND_ITERATE),  # added again after v9 deleted it
        "g.txt": (12, K.VERSION_KIND_REGENERATE),  # equal on both sides of v18: `ours`
        "h.txt": (20, K.VERSION_KIND_ITERATE),
        "i.txt": (15, K.VERSION_KIND_ITERATE),
        "keep.txt": (19, K.VERSION_KIND_ITERATE),
    }
    assert history.summary(history.blame(7)) == {
        "a.txt": (2, K.VERSION_KIND_ITERATE),
        "b.txt": (4, K.VERSION_KIND_TWEAK),
        "c.txt": (5, K.VERSION_KIND_ITERATE),
        "d/e.txt": (1, K.VERSION_KIND_UPLOAD),
        "f.txt": (3, K.VERSION_KIND_ITERATE),
        "g.txt": (6, K.VERSION_KIND_ITERATE),
        "keep.txt": (1, K.VERSION_KIND_UPLOAD),
    }
    # Each answer carries the blamed version's prompt and time.
    (g,) = history.blame(20, path="g.txt")
    v12 = history.versions[12]
    assert (g.version, g.prompt, g.create_time) == (v12.name, v12.prompt, v12.create_time)
    assert history.blame(1)[0].prompt == "the start"


def test_blame_pages_and_narrows_to_a_file_or_a_directory(history: History) -> None:
    whole = history.blame(20)
    assert [b.path for b in whole] == sorted(b.path for b in whole)
    assert history.blame(20, page_size=2) == whole
    assert history.summary(history.blame(20, path="d")) == {"d/e.txt": (8, K.VERSION_KIND_ITERATE)}
    assert history.summary(history.blame(20, path="d/")) == {"d/e.txt": (8, K.VERSION_KIND_ITERATE)}
    assert history.blame(20, path="d", page_size=1) == history.blame(20, path="d")


def test_list_files_includes_blame_when_asked(history: History) -> None:
    api, name = history.api, history.versions[20].name
    plain = api.stub.ListFiles(pb.ListFilesRequest(parent=name), metadata=api.metadata).files
    assert not any(file.HasField("blame") for file in plain)
    blamed = api.stub.ListFiles(
        pb.ListFilesRequest(parent=name, include_blame=True, page_size=3), metadata=api.metadata
    )
    assert len(blamed.files) == 3 and blamed.next_page_token
    expected = {b.path: b for b in history.blame(20)}
    for file in blamed.files:
        assert file.blame == expected[file.path]


def test_bad_blame_requests_are_refused(history: History, bob: Api, alice: Api) -> None:
    name = history.versions[20].name
    s, md = alice.stub, alice.metadata
    cases = [
        (
            lambda: s.Blame(pb.BlameRequest(name="nonsense"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
        ),
        (
            lambda: s.Blame(pb.BlameRequest(name=name, path="nowhere"), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "FILE_NOT_FOUND",
        ),
        (
            lambda: s.Blame(pb.BlameRequest(name=name, page_size=-1), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_SIZE",
        ),
        (
            lambda: s.Blame(pb.BlameRequest(name=name, page_token="forged"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        ),
        (
            lambda: s.Blame(pb.BlameRequest(name=name.replace("/20", "/99")), metadata=md),
            grpc.StatusCode.NOT_FOUND,
            "VERSION_NOT_FOUND",
        ),
        # Another owner's version is not found, as a missing one.
        (
            lambda: bob.stub.Blame(pb.BlameRequest(name=name), metadata=bob.metadata),
            grpc.StatusCode.NOT_FOUND,
            "VERSION_NOT_FOUND",
        ),
    ]
    for call, code, reason in cases:
        check_error(fails(call), code, reason)
    # A page token of one version's blame is no good for another's.
    token = s.Blame(pb.BlameRequest(name=name, page_size=1), metadata=md).next_page_token
    other = history.versions[19].name
    check_error(
        fails(lambda: s.Blame(pb.BlameRequest(name=other, page_token=token), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )


def test_a_version_not_completed_has_no_blame(alice: Api) -> None:
    from tests._support import script

    failed = alice.wait(alice.generate(script(stages=1, fail={"code": "UNAVAILABLE"})).name)
    assert failed.state == generation_pb2.VERSION_STATE_FAILED
    error = fails(lambda: alice.stub.Blame(pb.BlameRequest(name=failed.name), metadata=alice.metadata))
    check_error(error, grpc.StatusCode.FAILED_PRECONDITION, "VERSION_NOT_READY")
