"""Fixtures shared by every test."""

from __future__ import annotations

import os

import pytest

from tests.engine_target import EngineTarget, add_engine_options, target_of


def pytest_addoption(parser: pytest.Parser) -> None:
    """The engine options of the engine tests."""
    add_engine_options(parser)


@pytest.fixture(scope="session")
def engine_target(pytestconfig: pytest.Config) -> EngineTarget:
    """The engine (and runtime) this run's engine tests use."""
    return target_of(pytestconfig)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ECS_*, STATUSBRIDGE_* or DOCKER_API_VERSION from the developer's shell leaks in."""
    for name in list(os.environ):
        if name.startswith(("ECS_", "STATUSBRIDGE_")) or name == "DOCKER_API_VERSION":
            monkeypatch.delenv(name)
