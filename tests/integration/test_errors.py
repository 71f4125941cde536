"""Every bad input gets its own status code, a clear message and ErrorInfo; nothing stored is harmed."""

from __future__ import annotations

import functools

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, webhook_pb2
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, script
from tests._support import check_error as _check
from tests._support import fails as _fails


def test_bad_generate_requests_are_invalid_argument_with_field_violations(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    cases = [
        (pb.GenerateRequest(prompt=""), "EMPTY_PROMPT", "prompt"),
        (pb.GenerateRequest(prompt="   \n"), "EMPTY_PROMPT", "prompt"),
        (pb.GenerateRequest(prompt="x" * (1024 * 1024 + 1)), "PROMPT_TOO_LARGE", "prompt"),
        (pb.GenerateRequest(prompt="hi", model="gpt-nonexistent"), "UNKNOWN_MODEL", "model"),
        (
            pb.GenerateRequest(prompt="hi", attachments=[file_pb2.Attachment(data=b"x", mime_type="png")]),
            "INVALID_ATTACHMENT",
            "attachments[0].mime_type",
        ),
    ]
    before = s.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=md)
    for request, reason, field in cases:
        _check(
            _fails(functools.partial(s.Generate, request, metadata=md)),
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            field,
        )
    after = s.ListGenerations(pb.ListGenerationsRequest(page_size=1000), metadata=md)
    assert len(after.generations) == len(before.generations), "nothing is stored for a bad request"


def test_malformed_names_page_sizes_tokens_and_cursors(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    bad_names = [
        "",
        "generations/x/versions/0",
        "generations/UPPER/versions/1",
        "versions/1",
        "generations//versions/1",
    ]
    for name in bad_names:
        error = _fails(functools.partial(s.GetVersion, pb.GetVersionRequest(name=name), metadata=md))
        _check(error, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME", "name")
    _check(
        _fails(lambda: s.ListVersions(pb.ListVersionsRequest(parent="nope"), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_NAME",
        "parent",
    )
    _check(
        _fails(lambda: s.ListGenerations(pb.ListGenerationsRequest(page_size=-1), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_SIZE",
        "page_size",
    )
    _check(
        _fails(lambda: s.ListGenerations(pb.ListGenerationsRequest(page_token="garbage!"), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
        "page_token",
    )
    alice.wait(alice.generate("tokens 1", model="offline").name)
    version = alice.wait(alice.generate("tokens 2", model="offline").name)
    parent = version.name.split("/versions/")[0]
    # A token from one listing is refused by another.
    page = s.ListGenerations(pb.ListGenerationsRequest(page_size=1), metadata=md)
    assert page.next_page_token
    _check(
        _fails(
            lambda: s.ListVersions(
                pb.ListVersionsRequest(parent=parent, page_token=page.next_page_token), metadata=md
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    _check(
        _fails(lambda: s.Progress(pb.ProgressRequest(name=version.name, after_seq=-1), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CURSOR",
        "after_seq",
    )
    _check(
        _fails(lambda: s.ReadFile(pb.ReadFileRequest(name=version.name, path=""), metadata=md)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PATH",
        "path",
    )


def test_a_webhook_on_a_server_without_a_signing_secret_is_failed_precondition(alice: Api) -> None:
    before = alice.generation_count()
    hook = webhook_pb2.WebhookSubscription(url="https://hooks.example.com/atelier")
    error = _fails(
        functools.partial(
            alice.stub.Generate, pb.GenerateRequest(prompt="hi", webhook=hook), metadata=alice.metadata
        )
    )
    _check(error, grpc.StatusCode.FAILED_PRECONDITION, "WEBHOOKS_DISABLED")
    assert "ATELIER_WEBHOOK_SECRET" in (error.details() or "")
    assert alice.generation_count() == before


def test_missing_resources_are_not_found(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    version = alice.wait(alice.generate("exists", model="offline").name)
    parent = version.name.split("/versions/")[0]
    _check(
        _fails(lambda: s.GetVersion(pb.GetVersionRequest(name=f"{parent}/versions/99"), metadata=md)),
        grpc.StatusCode.NOT_FOUND,
        "VERSION_NOT_FOUND",
    )
    _check(
        _fails(
            lambda: s.GetGeneration(pb.GetGenerationRequest(name="generations/doesnotexist"), metadata=md)
        ),
        grpc.StatusCode.NOT_FOUND,
        "GENERATION_NOT_FOUND",
    )
    _check(
        _fails(lambda: s.ReadFile(pb.ReadFileRequest(name=version.name, path="no/such.txt"), metadata=md)),
        grpc.StatusCode.NOT_FOUND,
        "FILE_NOT_FOUND",
    )
    _check(
        _fails(lambda: s.Progress(pb.ProgressRequest(name=f"{parent}/versions/2"), metadata=md)),
        grpc.StatusCode.NOT_FOUND,
        "VERSION_NOT_FOUND",
    )


def test_wrong_state_is_failed_precondition_and_changes_nothing(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    running = alice.generate(script(stages=1, delay=3)).name
    _check(
        _fails(lambda: s.ListFiles(pb.ListFilesRequest(parent=running), metadata=md)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERSION_NOT_READY",
    )
    _check(
        _fails(lambda: s.ReadFile(pb.ReadFileRequest(name=running, path="answer.txt"), metadata=md)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERSION_NOT_READY",
    )
    s.CancelVersion(pb.CancelVersionRequest(name=running), metadata=md)
    assert alice.wait(running).state == gen.VERSION_STATE_CANCELLED

    done = alice.wait(alice.generate("finished", model="offline").name)
    error = _fails(lambda: s.CancelVersion(pb.CancelVersionRequest(name=done.name), metadata=md))
    _check(error, grpc.StatusCode.FAILED_PRECONDITION, "VERSION_ALREADY_ENDED")
    assert alice.get(done.name).state == gen.VERSION_STATE_COMPLETED


def test_a_reused_request_id_with_a_different_request_is_already_exists(alice: Api) -> None:
    first = alice.generate("one thing", model="offline", request_id="reuse-1")
    error = _fails(lambda: alice.generate("another thing", model="offline", request_id="reuse-1"))
    _check(error, grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert alice.get(first.name).prompt == "one thing"


def test_missing_or_unknown_tokens_are_unauthenticated(server_channel_factory: object) -> None:
    assert callable(server_channel_factory)
    with server_channel_factory() as channel:
        for token, reason in [(None, "MISSING_CREDENTIALS"), ("wrong", "INVALID_TOKEN")]:
            api = Api(channel, token)
            error = _fails(
                functools.partial(api.stub.ListModels, pb.ListModelsRequest(), metadata=api.metadata)
            )
            _check(error, grpc.StatusCode.UNAUTHENTICATED, reason)
