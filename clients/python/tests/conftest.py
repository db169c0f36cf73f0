"""Fixtures: a real server per test (fresh SQLite file, free port) and clients for it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _helpers import FAST_RETRY, LIMITS_CONFIG  # noqa: E402
from _server import Server  # noqa: E402

from floodgate_client import AsyncClient, Client  # noqa: E402


@pytest.fixture(autouse=True)
def _no_floodgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients in tests are configured explicitly, never by the caller's environment."""
    for key in ("FLOODGATE_SERVER", "FLOODGATE_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A floodgate server on a free port with a fresh SQLite file."""
    srv = Server(str(tmp_path / "jobs.db"), tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    """A sync client of ``server``."""
    with Client(server.url, retry=FAST_RETRY) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(server: Server) -> AsyncIterator[AsyncClient]:
    """An async client of ``server``."""
    async with AsyncClient(server.url, retry=FAST_RETRY) as c:
        yield c


@pytest.fixture
def limits_server(tmp_path: Path) -> Iterator[Server]:
    """A floodgate server with the limiters, rate limits and breakers of ``LIMITS_CONFIG``."""
    srv = Server(str(tmp_path / "jobs.db"), tmp_path, config=LIMITS_CONFIG).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def lclient(limits_server: Server) -> Iterator[Client]:
    """A sync client of ``limits_server``."""
    with Client(limits_server.url, retry=FAST_RETRY) as c:
        yield c


@pytest_asyncio.fixture
async def alclient(limits_server: Server) -> AsyncIterator[AsyncClient]:
    """An async client of ``limits_server``."""
    async with AsyncClient(limits_server.url, retry=FAST_RETRY) as c:
        yield c
