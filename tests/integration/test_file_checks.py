"""Files are checked as git and their declared types would: paths git refuses are refused, and an
attachment or uploaded file declared as an image, audio or PDF must start as one does."""

from __future__ import annotations

import functools

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, check_error, error_details, fails, file_message

_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
_INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".GIT/config",
        "src/.git/hooks/pre-commit",
        ".git",
        "a/.Git",
        ".git./x",
        ".git ",
        "GIT~1/config",
        "a/.g\u200cit/x",
    ],
)
def test_paths_git_refuses_are_refused(alice: Api, path: str) -> None:
    before = alice.generation_count()
    error = fails(lambda: alice.upload(pb.UploadTreeRequest(), file_message(path, b"x")))
    check_error(error, _INVALID, "INVALID_CHANGES", "file")
    assert ".git" in error.details() or "git~1" in error.details().lower()
    assert alice.generation_count() == before


def test_paths_git_accepts_are_accepted(alice: Api) -> None:
    paths = [".gitignore", ".github/workflows/ci.yml", "git/x", "a.git/x", ".gitkeep", "x/.git2"]
    version = alice.upload(pb.UploadTreeRequest(), *(file_message(p, b"x") for p in paths))
    assert sorted(alice.list_files(version.name)) == sorted(paths)


_FAKES = [
    ("fake.png", "image/png", b"not a png"),
    ("fake.jpg", "image/jpeg", b"\x89PNG\r\n\x1a\n0000"),
    ("fake.gif", "image/gif", b"GIF00a"),
    ("fake.webp", "image/webp", b"RIFF\x00\x00\x00\x00WAVEfmt "),
    ("fake.pdf", "application/pdf", b"%!PS-Adobe"),
    ("fake.wav", "audio/wav", b"RIFF\x00\x00\x00\x00WEBPVP8 "),
    ("fake.mp3", "audio/mpeg", b"hello there"),
    ("fake.ogg", "audio/ogg", b""),
]
_REAL = [
    ("real.png", "image/png", _PNG),
    ("real.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("real.gif", "image/gif", b"GIF89a\x01\x00\x01\x00"),
    ("real.webp", "image/webp", b"RIFF\x24\x00\x00\x00WEBPVP8 "),
    ("real.pdf", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("real.wav", "audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ("real.mp3", "audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00"),
    ("real.ogg", "audio/ogg", b"OggS\x00\x02"),
    ("notes.txt", "text/plain", b"anything at all"),
]


@pytest.mark.parametrize(("name", "mime_type", "data"), _FAKES, ids=[f[0] for f in _FAKES])
def test_an_attachment_that_is_not_its_declared_type_is_refused(
    alice: Api, done: gen.Version, name: str, mime_type: str, data: bytes
) -> None:
    before = alice.generation_count()
    attachments = [
        file_pb2.Attachment(name="ok.png", mime_type="image/png", data=_PNG),
        file_pb2.Attachment(name=name, mime_type=mime_type, data=data),
    ]
    generate = pb.GenerateRequest(prompt="look", model="offline", attachments=attachments)
    tweak = pb.TweakRequest(name=done.name, prompt="look", model="offline", attachments=attachments)
    for call in (
        functools.partial(alice.stub.Generate, generate, metadata=alice.metadata),
        functools.partial(alice.stub.Tweak, tweak, metadata=alice.metadata),
    ):
        error = fails(call)
        check_error(error, _INVALID, "CONTENT_TYPE_MISMATCH", "attachments[1].data")
        _, bad_request = error_details(error)
        assert bad_request is not None and name in bad_request.field_violations[0].description  # type: ignore[attr-defined]
    uploaded = fails(lambda: alice.upload(pb.UploadTreeRequest(), file_message(name, data, mime_type)))
    check_error(uploaded, _INVALID, "CONTENT_TYPE_MISMATCH", "file")
    assert name in uploaded.details()
    assert alice.generation_count() == before


def test_files_that_are_their_declared_type_are_accepted(alice: Api) -> None:
    attachments = [file_pb2.Attachment(name=n, mime_type=m, data=d) for n, m, d in _REAL]
    version = alice.generate("look at these", model="offline", attachments=attachments)
    assert alice.wait(version.name).state == gen.VERSION_STATE_COMPLETED
    uploaded = alice.upload(pb.UploadTreeRequest(), *(file_message(n, d, m) for n, m, d in _REAL))
    assert len(alice.list_files(uploaded.name)) == len(_REAL)
    # A type guessed from the name is not a claim: the bytes are stored as sent.
    guessed = alice.upload(pb.UploadTreeRequest(), file_message("guess.png", b"not a png"))
    assert alice.list_files(guessed.name) == ["guess.png"]
