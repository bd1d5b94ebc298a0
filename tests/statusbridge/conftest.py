"""Shared fixtures for the statusbridge tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from fake_cachet import FakeCachet
from fake_cachet3 import FakeCachet3
from fake_pingdom import FakePingdom

from statusbridge.config import CachetSettings, PingdomSettings


@pytest.fixture(autouse=True)
def _clean_statusbridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's STATUSBRIDGE_* variables out of every test."""
    for name in list(os.environ):
        if name.startswith("STATUSBRIDGE_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """Retries happen (up to 3 attempts) but never sleep."""
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
def pingdom_fake() -> Iterator[FakePingdom]:
    """A fake Pingdom 3.1 API on 127.0.0.1."""
    with FakePingdom() as fake:
        yield fake


@pytest.fixture
def cachet_fake() -> Iterator[FakeCachet]:
    """A fake Cachet 2.4 API (tag v2.4.1) on 127.0.0.1."""
    with FakeCachet() as fake:
        yield fake


@pytest.fixture
def cachet3_fake() -> Iterator[FakeCachet3]:
    """A fake Cachet 3 API (cachethq/core) on 127.0.0.1."""
    with FakeCachet3() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that talks to the fakes."""
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture
def pingdom_settings(pingdom_fake: FakePingdom) -> PingdomSettings:
    """Settings pointing at the Pingdom fake."""
    return PingdomSettings(base_url=pingdom_fake.base_url, token=pingdom_fake.token)


@pytest.fixture
def cachet_settings(cachet_fake: FakeCachet) -> CachetSettings:
    """Settings pointing at the Cachet fake."""
    return CachetSettings(base_url=cachet_fake.base_url, token=cachet_fake.token)


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    """A fresh state file location."""
    return tmp_path / "state.sqlite3"
