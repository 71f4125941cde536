"""Drafts and blame through both SDK clients, against the real server."""

from __future__ import annotations

import asyncio

import pytest
from atelier import Aborted, AsyncAtelierClient, AtelierClient, FailedPrecondition, NotFound, VersionKind

from tests._client_support import TOKEN
from tests._support import ServerProcess


def test_drafts_and_blame_with_the_client(client: AtelierClient) -> None:
    draft = client.draft_prompt("a  tiny app", context="python", model="offline")
    assert (draft.prompt, draft.model, draft.edited) == ("A tiny app. Style: Python.", "offline", False)
    assert draft.request_id  # made by the SDK, so that a retried DraftPrompt drafts nothing twice
    edited = client.update_draft(draft.name, "A tiny Python app.", etag=draft.etag)
    assert (edited.prompt, edited.drafted_prompt, edited.edited) == ("A tiny Python app.", draft.prompt, True)
    with pytest.raises(Aborted):
        client.update_draft(draft.name, "stale", etag=draft.etag)
    assert client.get_draft(draft.name) == edited
    assert draft.name in [d.name for d in client.drafts()]
    with pytest.raises(NotFound):
        client.get_draft("drafts/0123abcd")

    v1 = client.wait(client.generate("", draft=draft.name).name)
    assert (v1.prompt, v1.draft) == ("A tiny Python app.", draft.name)
    v2 = client.wait(client.iterate(v1.name, 'add notes.txt with content "hi"').name)
    blames = {b.path: b for b in client.blame(v2.name, page_size=2)}
    assert (blames["notes.txt"].version, blames["notes.txt"].kind) == (v2.name, VersionKind.ITERATE)
    assert {b.version for path, b in blames.items() if path != "notes.txt"} == {v1.name}
    assert [b.path for b in client.blame(v2.name, "notes.txt")] == ["notes.txt"]
    files = list(client.files(v2.name, blame=True))
    assert all(f.blame == blames[f.path] for f in files) and len(files) == len(blames)
    assert all(f.blame is None for f in client.files(v2.name))
    # A draft a version came from stays; an unused one is deleted.
    with pytest.raises(FailedPrecondition):
        client.delete_draft(draft.name)
    dropped = client.draft_prompt("never mind", model="offline", request_id="sdk-draft-1")
    # A repeat with the request id answers the same draft.
    assert client.draft_prompt("never mind", model="offline", request_id="sdk-draft-1") == dropped
    assert dropped.request_id == "sdk-draft-1"
    client.delete_draft(dropped.name, etag=dropped.etag)
    with pytest.raises(NotFound):
        client.get_draft(dropped.name)


def test_the_async_client_drafts_and_blames(server: ServerProcess) -> None:
    async def work() -> None:
        async with AsyncAtelierClient(server.target, token=TOKEN) as client:
            draft = await client.draft_prompt("hello", model="offline")
            draft = await client.update_draft(draft.name, "Hello, world.")
            assert (await client.get_draft(draft.name)).prompt == "Hello, world."
            assert draft.name in [d.name async for d in client.drafts()]
            v1 = await client.wait((await client.generate("", draft=draft.name)).name)
            assert v1.draft == draft.name
            blamed = [b async for b in client.blame(v1.name)]
            assert blamed and {b.kind for b in blamed} == {VersionKind.GENERATE}
            files = [f async for f in client.files(v1.name, blame=True)]
            assert [f.blame for f in files] == blamed
            dropped = await client.draft_prompt("never mind", model="offline", request_id="sdk-draft-2")
            again = await client.draft_prompt("never mind", model="offline", request_id="sdk-draft-2")
            assert again == dropped
            await client.delete_draft(dropped.name)
            assert dropped.name not in [d.name async for d in client.drafts()]

    asyncio.run(work())
