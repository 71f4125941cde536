"""A real server for the SDK tests (SQLite), and clients of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from atelier import AtelierClient

from tests._client_support import TOKEN, client_server
from tests._support import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with client_server(tmp_path_factory.mktemp("sdk-server")) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[AtelierClient]:
    with AtelierClient(server.target, token=TOKEN) as client:
        yield client
