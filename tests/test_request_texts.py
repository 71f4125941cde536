"""Every string a request can hold has a checked bound, no smaller than what valid values need and
no larger than the column that stores it; and no error status grows with what a caller sent."""

from __future__ import annotations

from collections.abc import Iterator

from atelier.v1 import atelier_service_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

import storage
from server.api._errors import to_status_proto
from server.api._texts import bound_of
from server.domain import FieldViolation, InvalidArgument, bounds
from server.files import MAX_PATH_BYTES


def _strings(message: Descriptor) -> Iterator[FieldDescriptor]:
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            yield field
        elif field.message_type is not None:
            yield from _strings(field.message_type)


def test_every_string_of_every_request_has_a_bound() -> None:
    service = atelier_service_pb2.DESCRIPTOR.services_by_name["AtelierService"]
    fields = {field.full_name: field for method in service.methods for field in _strings(method.input_type)}
    assert len(fields) > 30
    unbounded = [name for name, field in fields.items() if bound_of(field) is None]
    # Prompts (a variant's suffix is part of its prompt) and what a prompt is drafted from: the
    # domain bounds them in bytes (max_prompt_bytes).
    assert {name.rsplit(".", 1)[1] for name in unbounded} == {
        "prompt",
        "description",
        "prompt_suffix",
        "text",
        "context",
    }
    expected = {
        "atelier.v1.GenerateRequest.request_id": 200,
        "atelier.v1.UploadTreeRequest.request_id": 200,
        "atelier.v1.DraftPromptRequest.request_id": 200,
        "atelier.v1.TweakRequest.model": 200,
        "atelier.v1.Attachment.name": 1024,
        "atelier.v1.Attachment.mime_type": 255,
        "atelier.v1.File.mime_type": 255,
        "atelier.v1.File.path": 1024,
        "atelier.v1.ReadFileRequest.path": 1024,
    }
    assert {name: bound_of(fields[name]) for name in expected} == expected


def test_the_bounds_are_the_columns_that_store_the_texts() -> None:
    assert storage.max_length(storage.Version, "request_id") == bounds.REQUEST_ID
    assert storage.max_length(storage.Draft, "request_id") == bounds.REQUEST_ID
    assert storage.max_length(storage.VersionAttachment, "name") == bounds.ATTACHMENT_NAME
    assert storage.max_length(storage.ManifestEntry, "mime_type") >= bounds.MIME_TYPE
    assert storage.max_length(storage.ModelState, "model") >= bounds.MODEL
    # A path's bytes bound its characters: the path rule is as strict as its column, or more.
    assert MAX_PATH_BYTES <= bounds.PATH == storage.max_length(storage.ManifestEntry, "path")


def test_the_number_bounds_are_the_integer_columns() -> None:
    # PostgreSQL's INTEGER, which refuses 2**31 even in a comparison.
    assert bounds.VERSION_NUMBER == storage.max_integer(storage.Version, "number") == 2**31 - 1
    assert bounds.TURN_NUMBER == storage.max_integer(storage.Turn, "number") == 2**31 - 1


def test_no_error_status_grows_with_what_the_caller_sent() -> None:
    echoed = "\U0001f600" * 20_000
    error = InvalidArgument(
        f"model {echoed!r} is unknown",
        reason="UNKNOWN_MODEL",
        metadata={"model": echoed, "other": "short"},
        violations=[FieldViolation(f"attachments[{i}].{echoed}", echoed) for i in range(1000)],
    )
    status = to_status_proto(error.code, error.message, error.reason, error.metadata, error)
    assert len(status.message.encode()) <= 512 and status.message.startswith("model '\U0001f600")
    assert status.message.endswith("…")
    assert len(status.SerializeToString()) < 3000
    short = to_status_proto("NOT_FOUND", "version v not found", "VERSION_NOT_FOUND", {"name": "v"})
    assert short.message == "version v not found"
