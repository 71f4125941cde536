"""What a hostile caller sends gets INVALID_ARGUMENT (never INTERNAL), the same on SQLite and
PostgreSQL, and nothing is stored: NUL in any text, text over its bound, forged page tokens, and
inputs too large to echo whole."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable

import grpc
import pytest
from atelier import AtelierClient, InvalidArgument
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, webhook_pb2
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, ServerProcess, check_error, error_details, fails, file_message

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _requests_with(done: gen.Version, text: str) -> list[tuple[str, Callable[[Api], object], str]]:
    """One request per text field a caller fills, with `text` in that field: (label, call, field)."""

    def generate(**fields: object) -> Callable[[Api], object]:
        request = pb.GenerateRequest(**{"prompt": "hello", **fields})  # type: ignore[arg-type]
        return lambda api: api.stub.Generate(request, metadata=api.metadata, timeout=10)

    def attachment(name: str = "a.txt", mime_type: str = "text/plain") -> file_pb2.Attachment:
        return file_pb2.Attachment(name=name, mime_type=mime_type, data=b"x")

    def tweak(**fields: object) -> Callable[[Api], object]:
        request = pb.TweakRequest(**{"name": done.name, "prompt": "more", **fields})  # type: ignore[arg-type]
        return lambda api: api.stub.Tweak(request, metadata=api.metadata, timeout=10)

    def iterate(**fields: str) -> Callable[[Api], object]:
        request = pb.IterateRequest(**{"parent": done.name, "prompt": "more", **fields})  # type: ignore[arg-type]
        return lambda api: api.stub.Iterate(request, metadata=api.metadata, timeout=10)

    def upload(first: pb.UploadTreeRequest, file: pb.UploadTreeRequest) -> Callable[[Api], object]:
        return lambda api: api.upload(first, file)

    def call(method: str, request: object) -> Callable[[Api], object]:
        return lambda api: getattr(api.stub, method)(request, metadata=api.metadata, timeout=10)

    plain = file_message("a.txt", b"x")
    return [
        ("Generate prompt", generate(prompt=f"a{text}b"), "prompt"),
        ("Generate request_id", generate(request_id=text), "request_id"),
        ("Generate model", generate(model=text), "model"),
        ("Generate webhook", generate(webhook=webhook_pb2.WebhookSubscription(url=text)), "webhook.url"),
        ("attachment name", generate(attachments=[attachment(name=text)]), "attachments[0].name"),
        ("attachment type", generate(attachments=[attachment(mime_type=text)]), "attachments[0].mime_type"),
        ("Tweak prompt", tweak(prompt=f"a{text}b"), "prompt"),
        ("Tweak etag", tweak(etag=text), "etag"),
        ("Tweak name", tweak(name=text), "name"),
        ("Tweak request_id", tweak(request_id=text), "request_id"),
        ("Tweak model", tweak(model=text), "model"),
        ("Tweak attachment", tweak(attachments=[attachment(), attachment(name=text)]), "attachments[1].name"),
        ("Iterate prompt", iterate(prompt=f"a{text}b"), "prompt"),
        ("Iterate parent", iterate(parent=text), "parent"),
        ("Iterate etag", iterate(etag=text), "etag"),
        (
            "Regenerate",
            call("Regenerate", pb.RegenerateRequest(name=done.name, request_id=text)),
            "request_id",
        ),
        (
            "Merge",
            call("Merge", pb.MergeRequest(ours=done.name, theirs=done.name, request_id=text)),
            "request_id",
        ),
        (
            "DraftPrompt request_id",
            call("DraftPrompt", pb.DraftPromptRequest(text="hello", request_id=text)),
            "request_id",
        ),
        ("Upload description", upload(pb.UploadTreeRequest(description=f"a{text}b"), plain), "description"),
        ("Upload request_id", upload(pb.UploadTreeRequest(request_id=text), plain), "request_id"),
        ("Upload path", upload(pb.UploadTreeRequest(), file_message(text, b"x")), "file.path"),
        (
            "Upload type",
            upload(pb.UploadTreeRequest(), file_message("a.txt", b"x", text)),
            "file.mime_type",
        ),
        ("ReadFile path", call("ReadFile", pb.ReadFileRequest(name=done.name, path=text)), "path"),
        ("GetVersion", call("GetVersion", pb.GetVersionRequest(name=text)), "name"),
        ("CancelVersion", call("CancelVersion", pb.CancelVersionRequest(name=text)), "name"),
        (
            "ListFiles token",
            call("ListFiles", pb.ListFilesRequest(parent=done.name, page_token=text)),
            "page_token",
        ),
        (
            "ListTurns version",
            call(
                "ListTurns",
                pb.ListTurnsRequest(parent=done.name.split("/versions/")[0] + "/session", version=text),
            ),
            "version",
        ),
    ]


def test_nul_in_any_text_field_is_invalid_argument_and_stores_nothing(alice: Api, done: gen.Version) -> None:
    before = alice.generation_count()
    for label, call, field in _requests_with(done, "x\x00y"):
        error = fails(functools.partial(call, alice))
        assert error.code() == _INVALID, f"{label}: {error.code()} {error.details()}"
        check_error(error, _INVALID, "NUL_IN_TEXT", field)
    assert alice.generation_count() == before


def _list_files_with_token(done: gen.Version, token: str) -> Callable[[Api], object]:
    request = pb.ListFilesRequest(parent=done.name, page_token=token)
    return lambda api: api.stub.ListFiles(request, metadata=api.metadata, timeout=10)


def test_text_over_its_bound_is_invalid_argument_and_stores_nothing(alice: Api, done: gen.Version) -> None:
    before = alice.generation_count()
    too_long = "x" * 1025  # over every bound but those of prompts and page tokens
    for label, call, field in _requests_with(done, too_long):
        if field in ("prompt", "description"):
            continue  # prompts have their own limit, in bytes (PROMPT_TOO_LARGE)
        if field == "webhook.url":
            continue  # URLs may be longer (2,000 characters, as their column)
        if field == "page_token":
            # A token holds a path, escaped: its bound is longer, so this one only looks wrong.
            check_error(fails(functools.partial(call, alice)), _INVALID, "INVALID_PAGE_TOKEN", field)
            call = _list_files_with_token(done, "x" * 20_000)
        error = fails(functools.partial(call, alice))
        assert error.code() == _INVALID, f"{label}: {error.code()} {error.details()}"
        check_error(error, _INVALID, "TEXT_TOO_LONG", field)
    assert alice.generation_count() == before


@pytest.mark.parametrize(
    ("field", "bound"),
    [("request_id", 200), ("mime_type", 255), ("name", 1024), ("model", 200)],
)
def test_each_stored_text_has_the_bound_of_its_column(alice: Api, field: str, bound: int) -> None:
    """At the bound the value is stored (on PostgreSQL too); one more character is refused."""

    def request(length: int) -> pb.GenerateRequest:
        attachment = file_pb2.Attachment(name="a.txt", mime_type="text/plain", data=b"x")
        fields: dict[str, object] = {"prompt": f"bound {field} {length}", "attachments": [attachment]}
        if field == "request_id":
            fields["request_id"] = "r" * length
        elif field == "model":
            fields["model"] = "m" * length
        else:
            value = ("text/" + "x" * length)[:length] if field == "mime_type" else "n" * length
            attachment = file_pb2.Attachment(name="a.txt", mime_type="text/plain", data=b"x")
            setattr(attachment, field, value)
            fields["attachments"] = [attachment]
        return pb.GenerateRequest(**fields)  # type: ignore[arg-type]

    over = fails(lambda: alice.stub.Generate(request(bound + 1), metadata=alice.metadata, timeout=10))
    check_error(over, _INVALID, "TEXT_TOO_LONG")
    if field == "model":
        # No model has so long a name: the bound is checked, then the name is unknown.
        at = fails(lambda: alice.stub.Generate(request(bound), metadata=alice.metadata, timeout=10))
        check_error(at, _INVALID, "UNKNOWN_MODEL", "model")
        return
    version = alice.stub.Generate(request(bound), metadata=alice.metadata, timeout=10)
    assert alice.wait(version.name).state == gen.VERSION_STATE_COMPLETED


def _token(scope: str, key: object) -> str:
    raw = json.dumps({"s": scope, "k": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_forged_page_tokens_are_invalid_argument(alice: Api, done: gen.Version) -> None:
    generation_id = done.name.split("/")[1]
    parent = f"generations/{generation_id}"
    s, md = alice.stub, alice.metadata
    # 2**31 is over PostgreSQL's integer columns (it was INTERNAL there, "integer out of range").
    absurd: list[object] = [10**30, -1, 0, 1.5, True, None, "7", [1], {"k": 1}, 2**63, 2**31]
    cases: list[tuple[str, Callable[[], object]]] = []
    for key in absurd:
        token = _token(f"versions:{generation_id}", key)
        cases.append(
            (
                f"versions {key!r}",
                functools.partial(
                    s.ListVersions, pb.ListVersionsRequest(parent=parent, page_token=token), metadata=md
                ),
            )
        )
        token = _token(f"turns:{generation_id}:", key)
        cases.append(
            (
                f"turns {key!r}",
                functools.partial(
                    s.ListTurns,
                    pb.ListTurnsRequest(parent=f"{parent}/session", page_token=token),
                    metadata=md,
                ),
            )
        )
    for key in [10**30, 7, None, "", "a\x00b", "x" * 2000]:
        token = _token("generations", key)
        cases.append(
            (
                f"generations {key!r}",
                functools.partial(
                    s.ListGenerations, pb.ListGenerationsRequest(page_token=token), metadata=md
                ),
            )
        )
        token = _token(f"files:{generation_id}/{done.name.rsplit('/', 1)[1]}", key)
        cases.append(
            (
                f"files {key!r}",
                functools.partial(
                    s.ListFiles, pb.ListFilesRequest(parent=done.name, page_token=token), metadata=md
                ),
            )
        )
    for label, call in cases:
        error = fails(call)
        assert error.code() == _INVALID, f"{label}: {error.code()} {error.details()}"
        check_error(error, _INVALID, "INVALID_PAGE_TOKEN", "page_token")


def test_a_version_number_over_its_column_is_invalid_argument(alice: Api, done: gen.Version) -> None:
    """A version number past what the column holds (2**31 - 1 on PostgreSQL) was INTERNAL there."""
    generation = done.name.rsplit("/versions/", 1)[0]
    s, md = alice.stub, alice.metadata

    def calls(name: str) -> list[tuple[str, Callable[[], object]]]:
        return [
            ("GetVersion", lambda: s.GetVersion(pb.GetVersionRequest(name=name), metadata=md)),
            ("CancelVersion", lambda: s.CancelVersion(pb.CancelVersionRequest(name=name), metadata=md)),
            ("Tweak", lambda: s.Tweak(pb.TweakRequest(name=name, prompt="more"), metadata=md)),
            ("Iterate", lambda: s.Iterate(pb.IterateRequest(parent=name, prompt="more"), metadata=md)),
            ("Regenerate", lambda: s.Regenerate(pb.RegenerateRequest(name=name), metadata=md)),
            ("Progress", lambda: s.Progress(pb.ProgressRequest(name=name), metadata=md)),
            ("ListFiles", lambda: s.ListFiles(pb.ListFilesRequest(parent=name), metadata=md)),
            ("ReadFile", lambda: s.ReadFile(pb.ReadFileRequest(name=name, path="README.md"), metadata=md)),
            ("ExportTree", lambda: s.ExportTree(pb.ExportTreeRequest(name=name), metadata=md)),
            ("Diff", lambda: s.Diff(pb.DiffRequest(base=done.name, target=name), metadata=md)),
            ("Merge", lambda: s.Merge(pb.MergeRequest(ours=done.name, theirs=name), metadata=md)),
            (
                "ListTurns",
                lambda: s.ListTurns(
                    pb.ListTurnsRequest(parent=f"{generation}/session", version=name), metadata=md
                ),
            ),
        ]

    for label, call in calls(f"{generation}/versions/{2**31}"):
        error = fails(call)
        assert error.code() == _INVALID, f"{label}: {error.code()} {error.details()}"
        check_error(error, _INVALID, "INVALID_NAME")
    for label, call in calls(f"{generation}/versions/{2**31 - 1}"):
        error = fails(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, f"{label}: {error.code()} {error.details()}"


def _status_size(error: grpc.RpcError) -> int:
    """How many bytes of trailing metadata the error took."""
    return len(error.details() or "") + sum(
        len(value) for _, value in (error.trailing_metadata() or ()) if isinstance(value, (bytes, str))
    )


def test_errors_echo_a_short_prefix_of_what_was_sent(
    alice: Api, done: gen.Version, server: ServerProcess
) -> None:
    s, md = alice.stub, alice.metadata
    model = fails(lambda: s.Generate(pb.GenerateRequest(prompt="hi", model="m" * 10_000), metadata=md))
    check_error(model, _INVALID, "TEXT_TOO_LONG", "model")
    name = fails(lambda: s.GetVersion(pb.GetVersionRequest(name="g" * 20_000), metadata=md))
    check_error(name, _INVALID, "TEXT_TOO_LONG", "name")
    # Within every bound, and still too much to echo whole: 4 KB of UTF-8 is 12 KB percent-encoded.
    path = "\U0001f600" * 1024
    missing = fails(lambda: list(s.ReadFile(pb.ReadFileRequest(name=done.name, path=path), metadata=md)))
    check_error(missing, grpc.StatusCode.NOT_FOUND, "FILE_NOT_FOUND")
    info, _ = error_details(missing)
    assert path not in missing.details() and path not in info.metadata["path"]  # type: ignore[attr-defined]
    assert info.metadata["path"].startswith("\U0001f600" * 10)  # type: ignore[attr-defined]
    for error in (model, name, missing):
        assert _status_size(error) < 4096, _status_size(error)
    # The SDK sees the same, as its typed error.
    with AtelierClient(server.target, token="alice-token") as client:
        with pytest.raises(InvalidArgument) as caught:
            client.get("generations/" + "g" * 20_000 + "/versions/1")
        assert caught.value.reason == "TEXT_TOO_LONG"
