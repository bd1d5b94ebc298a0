"""Shared fixtures for the statusbridge tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_statusbridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's STATUSBRIDGE_* variables out of every test."""
    for name in list(os.environ):
        if name.startswith("STATUSBRIDGE_"):
            monkeypatch.delenv(name)
