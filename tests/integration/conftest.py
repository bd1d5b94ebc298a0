"""Integration fixtures: the real engine, the local registries, a real ECS.

The engine is the one ``pytest --engine`` names (``tests/engine_target.py``; Debian's
Docker Engine by default). A test here fails loudly when it is missing: run its setup
script (the test command does). After every test the engine must hold no container
labelled as ECS's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.engine_target import EngineTarget
from tests.integration.ecs_server import SESSION_INSTANCE_PREFIX, EcsServer

OPEN_REGISTRY = "127.0.0.1:5000"
AUTH_REGISTRY = "127.0.0.1:5001"
REGISTRY_USER, REGISTRY_PASSWORD = "ecsuser", "ecspass"
MANAGED_LABEL = "io.ecs.managed"


@pytest.fixture(scope="session")
def engine(engine_target: EngineTarget) -> Iterator[httpx.Client]:
    """A plain client on the engine's socket, for arranging and checking; fails if absent.

    It speaks the engine's own newest API version, whatever ECS negotiates.
    """
    socket = engine_target.socket
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket), timeout=10) as probe:
            version = probe.get("http://docker/version").raise_for_status().json()["ApiVersion"]
    except httpx.HTTPError as exc:
        pytest.fail(
            f"{engine_target.name} engine not reachable on {socket} ({exc}); "
            f"run {engine_target.setup}"
        )
    client = httpx.Client(
        transport=httpx.HTTPTransport(uds=socket),
        base_url=f"http://docker/v{version}",
        timeout=60,
    )
    for registry in (OPEN_REGISTRY, AUTH_REGISTRY):
        try:
            httpx.get(f"http://{registry}/v2/", timeout=5)
        except httpx.HTTPError as exc:
            pytest.fail(f"registry {registry} not reachable ({exc}); run scripts/engine")
    yield client
    client.close()


def managed_containers(engine: httpx.Client, *, idle_pool: bool = False) -> list[dict[str, Any]]:
    """Every container, running or not, made by an ECS of this test session — but a warm
    pool's idle ones (named ``ecs-pool-…`` until a task takes them) unless asked."""
    answer = engine.get(
        "/containers/json", params={"all": "1", "filters": f'{{"label": ["{MANAGED_LABEL}"]}}'}
    )
    answer.raise_for_status()
    return [
        container
        for container in answer.json()
        if (container.get("Labels") or {})
        .get("io.ecs.instance", "")
        .startswith(SESSION_INSTANCE_PREFIX)
        and (idle_pool or not any(n.startswith("/ecs-pool-") for n in container["Names"]))
    ]


def task_container(engine: httpx.Client, task_id: str) -> dict[str, Any] | None:
    """The container of one task, or None while there is none: a cold one carries the task in
    its ``io.ecs.task`` label; a warm pool's container keeps its pool label (labels cannot
    change) and is renamed ``ecs-{task_id}`` when the task takes it."""
    for container in managed_containers(engine, idle_pool=True):
        if (container.get("Labels") or {}).get("io.ecs.task") == task_id or (
            f"/ecs-{task_id}" in container["Names"]
        ):
            return container
    return None


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 30.0, *, every_s: float = 0.05
) -> bool:
    """Poll ``condition`` every ``every_s`` until it holds or the time is up; return
    whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()


@pytest.fixture(autouse=True)
def no_leaked_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each engine test no ECS container is left; leftovers fail the test and are
    removed. Tests without the engine marker need no engine for it."""
    if request.node.get_closest_marker("engine") is None:
        yield
        return
    engine: httpx.Client = request.getfixturevalue("engine")
    yield
    if wait_until(lambda: not managed_containers(engine)):
        return
    leftovers = managed_containers(engine)
    for container in leftovers:
        engine.delete(f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
    names = [container["Names"] for container in leftovers]
    pytest.fail(f"test left {len(leftovers)} ECS container(s) behind: {names}")


@pytest.fixture(scope="module")
def ecs_server(engine: httpx.Client, engine_target: EngineTarget) -> Iterator[EcsServer]:
    """One ECS with default settings on the target engine, shared by a test module."""
    server = EcsServer(**engine_target.ecs_settings()).start()
    yield server
    server.stop()


@pytest.fixture
def ecs(ecs_server: EcsServer) -> Iterator[httpx.Client]:
    """A client of the shared ECS."""
    with httpx.Client(base_url=ecs_server.url, timeout=120) as client:
        yield client


@pytest.fixture
def start_ecs(
    engine: httpx.Client, engine_target: EngineTarget
) -> Iterator[Callable[..., EcsServer]]:
    """Start an ECS with particular settings on the target engine; stopped after the test."""
    started: list[EcsServer] = []

    def start(**overrides: Any) -> EcsServer:
        server = EcsServer(**{**engine_target.ecs_settings(), **overrides}).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def remove_image(engine: httpx.Client, reference: str) -> None:
    """Untag an image from the engine so that the next task must pull it."""
    engine.delete(f"/images/{reference}", params={"force": "1"})


def image_exists(engine: httpx.Client, reference: str) -> bool:
    """True if the engine has ``reference`` locally."""
    return engine.get(f"/images/{reference}/json").status_code == 200
