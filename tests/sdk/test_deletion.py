"""Deleting and restoring a generation through the SDK (AIP-135/164), against the real server."""

from __future__ import annotations

import asyncio

import pytest
from atelier import AlreadyExists, AsyncAtelierClient, AtelierClient, NotFound, VersionState

from tests._client_support import TOKEN
from tests._support import ServerProcess


def test_delete_list_deleted_and_undelete(client: AtelierClient) -> None:
    kept = client.wait(client.generate("a library to keep").name)
    doomed = client.wait(client.generate("a library to delete").name)
    assert doomed.state == VersionState.COMPLETED

    deleted = client.delete_generation(doomed.generation)
    assert deleted.name == doomed.generation
    assert deleted.delete_time is not None and deleted.expire_time is not None
    assert deleted.expire_time > deleted.delete_time
    with pytest.raises(NotFound):
        client.get(doomed.name)
    listed = [g.name for g in client.list_generations()]
    assert doomed.generation not in listed and kept.generation in listed
    with_deleted = {g.name: g for g in client.list_generations(show_deleted=True)}
    assert with_deleted[doomed.generation].delete_time == deleted.delete_time
    assert with_deleted[kept.generation].delete_time is None
    with pytest.raises(NotFound):  # deleted already: a second delete finds nothing
        client.delete_generation(doomed.generation)

    restored = client.undelete_generation(doomed.generation)
    assert (restored.name, restored.delete_time, restored.expire_time) == (doomed.generation, None, None)
    assert client.get(doomed.name).state == VersionState.COMPLETED
    with pytest.raises(AlreadyExists) as not_deleted:
        client.undelete_generation(doomed.generation)
    assert not_deleted.value.reason == "GENERATION_NOT_DELETED"


def test_the_async_client_deletes_and_restores(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncAtelierClient(server.target, token=TOKEN) as client:
            version = await client.wait((await client.generate("an async library")).name)
            deleted = await client.delete_generation(version.generation)
            assert deleted.delete_time is not None
            names = [g.name async for g in client.list_generations(show_deleted=True)]
            assert version.generation in names
            assert (await client.undelete_generation(version.generation)).delete_time is None

    asyncio.run(scenario())
