import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Providers run under grpc.aio, which is asyncio."""
    return "asyncio"
