"""Fixtures shared by every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ECS_* or STATUSBRIDGE_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("ECS_", "STATUSBRIDGE_")):
            monkeypatch.delenv(name)
