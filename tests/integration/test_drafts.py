"""Drafts through the real server: DraftPrompt, an edit, Generate naming the draft, and Regenerate."""

from __future__ import annotations

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import draft_pb2, generation_pb2

from tests._support import Api, check_error, fails, script


def _draft(api: Api, text: str, **fields: object) -> draft_pb2.Draft:
    request = pb.DraftPromptRequest(text=text, **fields)  # type: ignore[arg-type]
    draft: draft_pb2.Draft = api.stub.DraftPrompt(request, metadata=api.metadata, timeout=10)
    return draft


def test_a_draft_round_trips_into_a_version_and_through_regenerate(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    draft = _draft(alice, "  a tiny   python cli\nthat greets ", context="friendly, terse", model="offline")
    # The offline provider's draft, as documented in server/providers/offline/_prompt_draft.py.
    drafted = "A tiny python cli that greets. Style: Friendly, terse."
    assert draft.name.startswith("drafts/")
    assert (draft.text, draft.context, draft.model, draft.drafter_model) == (
        "  a tiny   python cli\nthat greets ",
        "friendly, terse",
        "offline",
        "offline",
    )
    assert (draft.prompt, draft.drafted_prompt, draft.edited, draft.owner) == (
        drafted,
        drafted,
        False,
        "alice",
    )
    assert s.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=md) == draft

    edited = "A tiny python CLI that greets the user by name."
    updated = s.UpdateDraft(
        pb.UpdateDraftRequest(name=draft.name, prompt=edited, etag=draft.etag), metadata=md
    )
    assert (updated.prompt, updated.drafted_prompt, updated.edited) == (edited, drafted, True)
    assert updated.etag != draft.etag
    # A stale etag is refused, and the edit stays.
    stale = fails(
        lambda: s.UpdateDraft(
            pb.UpdateDraftRequest(name=draft.name, prompt="x", etag=draft.etag), metadata=md
        )
    )
    check_error(stale, grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert s.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=md).prompt == edited
    listed = s.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=md).drafts
    assert draft.name in [d.name for d in listed]

    # Generate naming the draft: an empty prompt and model are the draft's; the version records it.
    v1 = alice.wait(alice.generate("", draft=draft.name).name)
    assert (v1.state, v1.prompt, v1.model, v1.draft) == (
        generation_pb2.VERSION_STATE_COMPLETED,
        edited,
        "offline",
        draft.name,
    )
    # Regenerate reuses the edited text and keeps the provenance.
    again = s.Regenerate(pb.RegenerateRequest(name=v1.name), metadata=md)
    again = alice.wait(again.name)
    assert (again.kind, again.prompt, again.draft) == (
        generation_pb2.VERSION_KIND_REGENERATE,
        edited,
        draft.name,
    )
    # An edit passed in Generate is the version's prompt; the draft itself is not changed by it.
    own = alice.generate("my own words", draft=draft.name, model="offline")
    assert (own.prompt, own.draft) == ("my own words", draft.name)
    assert s.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=md).prompt == edited
    # A version made without a draft names none; a tweak of a drafted version is not drafted.
    assert alice.generate(script(stages=1)).draft == ""
    tweak = s.Tweak(pb.TweakRequest(name=v1.name, prompt="add notes.txt", model="offline"), metadata=md)
    assert tweak.draft == ""


def test_a_draft_is_its_owners_alone(alice: Api, bob: Api, root: Api) -> None:
    draft = _draft(alice, "alice's idea", model="offline")
    for call in (
        lambda: bob.stub.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=bob.metadata),
        lambda: bob.stub.UpdateDraft(
            pb.UpdateDraftRequest(name=draft.name, prompt="mine"), metadata=bob.metadata
        ),
        lambda: bob.generate("", draft=draft.name),
    ):
        check_error(fails(call), grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
    assert draft.name not in [
        d.name
        for d in bob.stub.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=bob.metadata).drafts
    ]
    # An admin reaches it.
    assert root.stub.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=root.metadata).owner == "alice"
    unknown = fails(
        lambda: alice.stub.GetDraft(pb.GetDraftRequest(name="drafts/0123abcd"), metadata=alice.metadata)
    )
    check_error(unknown, grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_bad_draft_requests_are_refused_and_store_nothing(alice: Api) -> None:
    s, md = alice.stub, alice.metadata
    before = len(s.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=md).drafts)
    cases = [
        (
            lambda: _draft(alice, "   ", model="offline"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "EMPTY_PROMPT",
            "text",
        ),
        (
            lambda: _draft(alice, "x", model="no-such-model"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_MODEL",
            "model",
        ),
        (
            lambda: _draft(alice, "x" * (1024 * 1024 + 1), model="offline"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PROMPT_TOO_LARGE",
            "text",
        ),
        (
            lambda: _draft(alice, "x", context="y" * (1024 * 1024 + 1), model="offline"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PROMPT_TOO_LARGE",
            "context",
        ),
        (lambda: _draft(alice, "a\x00b"), grpc.StatusCode.INVALID_ARGUMENT, "NUL_IN_TEXT", "text"),
        # The provider's failure is a clear status, not INTERNAL.
        (
            lambda: _draft(alice, script(fail={"code": "UNAVAILABLE", "reason": "MODEL_DOWN"})),
            grpc.StatusCode.UNAVAILABLE,
            "MODEL_DOWN",
            None,
        ),
        (
            lambda: s.GetDraft(pb.GetDraftRequest(name="generations/x"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
            "name",
        ),
        (
            lambda: s.ListDrafts(pb.ListDraftsRequest(page_token="nonsense"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            "page_token",
        ),
        (
            lambda: alice.generate("p", draft="drafts/"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
            "draft",
        ),
        (
            lambda: alice.generate("p", draft="drafts/0123abcd"),
            grpc.StatusCode.NOT_FOUND,
            "DRAFT_NOT_FOUND",
            None,
        ),
    ]
    for call, code, reason, field in cases:
        check_error(fails(call), code, reason, field)
    draft = _draft(alice, "x", model="offline")
    empty = fails(lambda: s.UpdateDraft(pb.UpdateDraftRequest(name=draft.name, prompt=" "), metadata=md))
    check_error(empty, grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_PROMPT", "prompt")
    assert s.GetDraft(pb.GetDraftRequest(name=draft.name), metadata=md).prompt == draft.prompt
    after = s.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=md).drafts
    assert len(after) == before + 1


def test_drafts_list_newest_first_in_pages(bob: Api) -> None:
    names = [_draft(bob, f"idea {n}", model="offline").name for n in range(3)]
    s, md = bob.stub, bob.metadata
    first = s.ListDrafts(pb.ListDraftsRequest(page_size=2), metadata=md)
    second = s.ListDrafts(pb.ListDraftsRequest(page_size=2, page_token=first.next_page_token), metadata=md)
    listed = [d.name for d in (*first.drafts, *second.drafts)]
    assert listed[:3] == names[::-1]


def test_delete_draft_deletes_an_unused_draft_of_its_owner_and_keeps_provenance(alice: Api, bob: Api) -> None:
    s, md = alice.stub, alice.metadata

    def delete(api: Api, name: str, etag: str = "") -> object:
        return api.stub.DeleteDraft(pb.DeleteDraftRequest(name=name, etag=etag), metadata=api.metadata)

    unused = _draft(alice, "an idea I drop", model="offline")
    # Another owner's draft is not found; a stale etag is refused; neither deletes it.
    check_error(fails(lambda: delete(bob, unused.name)), grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
    s.UpdateDraft(pb.UpdateDraftRequest(name=unused.name, prompt="an idea, edited"), metadata=md)
    stale = fails(lambda: delete(alice, unused.name, unused.etag))
    check_error(stale, grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert s.GetDraft(pb.GetDraftRequest(name=unused.name), metadata=md).prompt == "an idea, edited"
    delete(alice, unused.name)
    gone = fails(lambda: s.GetDraft(pb.GetDraftRequest(name=unused.name), metadata=md))
    check_error(gone, grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
    assert unused.name not in [d.name for d in s.ListDrafts(pb.ListDraftsRequest(), metadata=md).drafts]
    again = fails(lambda: delete(alice, unused.name))
    check_error(again, grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
    check_error(
        fails(lambda: delete(alice, "generations/x")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_NAME",
        "name",
    )

    # A draft a version was made from is that version's provenance: it stays.
    used = _draft(alice, "an idea I ran", model="offline")
    version = alice.generate("", draft=used.name)
    in_use = fails(lambda: delete(alice, used.name))
    check_error(in_use, grpc.StatusCode.FAILED_PRECONDITION, "DRAFT_IN_USE")
    assert version.name in (in_use.details() or "")
    assert s.GetDraft(pb.GetDraftRequest(name=used.name), metadata=md).name == used.name
    assert alice.get(version.name).draft == used.name


def test_a_repeated_draft_request_id_answers_the_first_draft(alice: Api, bob: Api) -> None:
    s, md = alice.stub, alice.metadata
    before = len(s.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=md).drafts)
    first = _draft(alice, "a cat in a hat", context="watercolour", model="offline", request_id="draft-1")
    assert first.request_id == "draft-1"
    assert (
        _draft(alice, "a cat in a hat", context="watercolour", model="offline", request_id="draft-1") == first
    )
    # The same request id with another text, context or model is refused, as Generate refuses it
    # (an empty model is this server's default, the scripted one).
    for text, context, model in (
        ("a dog in a hat", "watercolour", "offline"),
        ("a cat in a hat", "oils", "offline"),
        ("a cat in a hat", "watercolour", ""),
    ):
        reused = fails(
            lambda: _draft(alice, text, context=context, model=model, request_id="draft-1")  # noqa: B023
        )
        check_error(reused, grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
        assert "draft-1" in (reused.details() or "")
    drafts = s.ListDrafts(pb.ListDraftsRequest(page_size=1000), metadata=md).drafts
    assert len(drafts) == before + 1
    # Another owner's request id never collides; the longest request id is stored as it is.
    bobs = _draft(bob, "a cat in a hat", context="watercolour", model="offline", request_id="draft-1")
    assert bobs.name != first.name and bobs.owner == "bob"
    longest = "r" * 200
    assert _draft(alice, "long", model="offline", request_id=longest) == _draft(
        alice, "long", model="offline", request_id=longest
    )
