"""The janitor's decisions and the background removal's retries, over a fake engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import stamina

from ecs.docker import DockerClient
from ecs.engine_http import EngineHttp
from ecs.janitor import Janitor, ReapMode
from ecs.removal import ContainerRemover
from tests.ecs.lifecycle_engine import LifecycleEngine

NOW = 10_000.0


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """stamina retries at once in these tests."""
    stamina.set_testing(True, attempts=4)
    yield
    stamina.set_testing(False)


def container(
    engine: LifecycleEngine, name: str, instance: str, deadline: float, created: float
) -> None:
    """A labelled ECS container in the fake engine."""
    engine.containers[name] = {
        "Id": name,
        "Labels": {
            "io.ecs.managed": "true",
            "io.ecs.instance": instance,
            "io.ecs.deadline": str(deadline),
        },
        "Created": created,
    }


def janitor(engine: LifecycleEngine, http: EngineHttp, owned: set[str]) -> Janitor:
    """A janitor of instance "me" with a 30 s margin and a 60 s creation grace."""
    return Janitor(
        DockerClient(http),
        instance_id="me",
        margin_s=30,
        creation_grace_s=60,
        is_owned=owned.__contains__,
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    ("mode", "reaped"),
    [
        (ReapMode.OVERDUE, {"overdue-mine", "overdue-other"}),
        (ReapMode.ORPHANS, {"overdue-mine", "overdue-other", "old-orphan"}),
        (ReapMode.STARTUP, {"overdue-mine", "overdue-other", "old-orphan", "young-mine"}),
    ],
)
async def test_each_mode_reaps_what_it_may(mode: ReapMode, reaped: set[str]) -> None:
    """Overdue containers of any instance go in every mode; this instance's orphans past
    the creation grace in periodic passes; at start-up every container of this instance;
    never one a request owns, nor another instance's that is not overdue."""
    engine = LifecycleEngine()
    container(engine, "overdue-mine", "me", deadline=NOW - 31, created=0)
    container(engine, "overdue-other", "them", deadline=NOW - 31, created=0)
    container(engine, "old-orphan", "me", deadline=NOW + 100, created=NOW - 61)
    container(engine, "young-mine", "me", deadline=NOW + 100, created=NOW - 5)
    container(engine, "owned", "me", deadline=NOW - 100, created=0)
    container(engine, "theirs", "them", deadline=NOW + 100, created=0)
    async with engine.client() as http:
        count = await janitor(engine, http, owned={"owned"}).reap_once(mode)
    assert count == len(reaped)
    assert set(engine.containers) == {"overdue-mine", "overdue-other", "old-orphan",
                                      "young-mine", "owned", "theirs"} - reaped  # fmt: skip


async def test_the_final_sweep_takes_owned_containers_too() -> None:
    """At the very end of a shutdown nothing can still own a container: all of ours go."""
    engine = LifecycleEngine()
    container(engine, "owned", "me", deadline=NOW + 100, created=NOW)
    async with engine.client() as http:
        count = await janitor(engine, http, owned={"owned"}).reap_once(
            ReapMode.STARTUP, include_owned=True
        )
    assert (count, engine.containers) == (1, {})


async def test_removal_retries_an_engine_that_stops_answering_for_a_while() -> None:
    """A delete that meets an unreachable engine is retried until it goes through."""
    engine = LifecycleEngine()
    container(engine, "c1", "me", deadline=NOW, created=NOW)
    failures = iter([True, True, False])
    real = engine.handle

    def flaky(request: httpx.Request) -> httpx.Response:
        engine.unreachable = request.method == "DELETE" and next(failures)
        return real(request)

    async with engine.client(flaky) as http:
        remover = ContainerRemover(DockerClient(http))
        remover.track("c1")
        remover.remove_later("c1")
        await remover.drain()
    assert engine.containers == {}
    assert not remover.owns("c1")
    assert [c for c in engine.calls if c.startswith("DELETE")] == ["DELETE /containers/c1"]


async def test_removal_that_keeps_failing_gives_up_and_leaves_it_to_the_janitor() -> None:
    """After its attempts the removal logs and lets go; the container stays for the janitor."""
    engine = LifecycleEngine()
    container(engine, "c1", "me", deadline=NOW, created=NOW)
    real = engine.handle

    def down(request: httpx.Request) -> httpx.Response:
        engine.unreachable = request.method == "DELETE"
        return real(request)

    async with engine.client(down) as http:
        remover = ContainerRemover(DockerClient(http))
        remover.track("c1")
        remover.remove_later("c1")
        await remover.drain()
    assert set(engine.containers) == {"c1"}
    assert not remover.owns("c1")


async def test_removals_under_steady_starts_are_late_by_the_bound_once_not_each() -> None:
    """With a task always starting, a backlog of removals waits ``max_defer_s`` in all,
    counted from when each was asked for; per removal, the backlog would grow under load."""
    engine = LifecycleEngine()
    names = [f"c{i}" for i in range(20)]
    for name in names:
        container(engine, name, "me", deadline=NOW, created=NOW)
    waits: list[float] = []

    async def always_starting(timeout_s: float) -> None:
        waits.append(timeout_s)
        await asyncio.sleep(timeout_s)

    async with engine.client() as http:
        remover = ContainerRemover(DockerClient(http), quiet=always_starting, max_defer_s=0.2)
        for name in names:
            remover.track(name)
            remover.remove_later(name)
        await remover.drain()
    assert engine.containers == {}
    assert waits, "the first removal waits for the starting task"
    assert sum(waits) <= 0.2


async def test_a_removal_waits_while_a_task_is_starting() -> None:
    """The delete goes to the engine only once no task is between create and start."""
    engine = LifecycleEngine()
    container(engine, "c1", "me", deadline=NOW, created=NOW)
    started = asyncio.Event()

    async def quiet(timeout_s: float) -> None:
        await started.wait()

    async with engine.client() as http:
        remover = ContainerRemover(DockerClient(http), quiet=quiet, max_defer_s=60)
        remover.remove_later("c1")
        await asyncio.sleep(0.05)
        assert set(engine.containers) == {"c1"}
        started.set()
        await remover.drain()
    assert engine.containers == {}


async def test_a_backlog_of_removals_goes_in_batches_in_order() -> None:
    """Ten removals waiting for a quiet node go to the engine at most four at a time,
    oldest first, and all of them end up done."""
    engine = LifecycleEngine()
    names = [f"c{i}" for i in range(10)]
    for name in names:
        container(engine, name, "me", deadline=NOW, created=NOW)
    in_flight = 0
    most_in_flight = 0
    deleted: list[str] = []

    async def slow_deletes(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most_in_flight
        if request.method != "DELETE":
            return engine.handle(request)
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        deleted.append(request.url.path.rsplit("/", 1)[1])
        return engine.handle(request)

    async with engine.client(slow_deletes) as http:
        remover = ContainerRemover(DockerClient(http), batch_size=4)
        for name in names:
            remover.track(name)
            remover.remove_later(name)
        await remover.drain()
    assert engine.containers == {}
    assert most_in_flight == 4
    # Batch by batch in the order asked for (within a batch, whichever finishes first).
    assert [set(deleted[i : i + 4]) for i in (0, 4, 8)] == [
        set(names[0:4]),
        set(names[4:8]),
        set(names[8:10]),
    ]
    assert not any(remover.owns(name) for name in names)
