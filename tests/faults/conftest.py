"""Fault fixtures: the main engine's fixtures and leak check, a throwaway engine, the fakes.

Engine faults (stop, SIGSTOP, restart) only ever hit the throwaway engine; process
faults use the main engine but only touch containers of their own ECS instance ids.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.throwaway_engine import ThrowawayEngine
from tests.integration.conftest import (  # noqa: F401 - fixtures used by this package
    engine,
    no_leaked_containers,
    start_ecs,
)

# The statusbridge fakes import their plumbing as a top-level module.
_FAKES = str(Path(__file__).parents[1] / "statusbridge")
if _FAKES not in sys.path:
    sys.path.insert(0, _FAKES)


@pytest.fixture(scope="module")
def throwaway_engine(engine: httpx.Client) -> Iterator[ThrowawayEngine]:  # noqa: F811
    """A second dockerd holding the test image, for faults the main engine must never see."""
    # A short path: the socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="ecs-faults-", dir="/tmp"))
    spare = ThrowawayEngine(root)
    try:
        spare.start()
        spare.load_image_from(engine)
        yield spare
    finally:
        spare.destroy()
    assert not root.exists()
