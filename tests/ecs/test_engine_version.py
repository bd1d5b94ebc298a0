"""Engine API version negotiation: every range case, pinned versions, a floor raised live."""

from __future__ import annotations

import pytest

from ecs.config import load_settings, pinned_api_version
from ecs.docker import DockerClient
from ecs.engine_probe import probe_engine
from ecs.engine_version import (
    ECS_API_RANGE,
    ApiRange,
    ApiVersion,
    choose_api_version,
    engine_api_range,
    is_version_refusal,
)
from ecs.exceptions import ConfigError, EngineIncompatible, RuntimeMissing
from ecs.health import check_health
from tests.ecs.fake_engine import FakeEngine

V = ApiVersion.parse


def test_parse_and_order() -> None:
    """Versions compare numerically (1.9 < 1.41), not as text."""
    assert V("1.9") < V("1.41") < V("1.52")
    assert str(V("1.44")) == "1.44"
    for bad in ("", "1", "1.x", "v1.41", "1.41.0"):
        with pytest.raises(ValueError, match="not an API version"):
            V(bad)


@pytest.mark.parametrize(
    ("engine_min", "engine_max", "chosen"),
    [
        ("1.12", "1.41", "1.41"),  # Engine 20.10: older than ECS's top
        ("1.24", "1.51", "1.51"),  # Engine 28.5
        ("1.44", "1.52", "1.52"),  # Engine 29: its floor is above 1.41
        ("1.44", "1.60", "1.52"),  # a newer engine than ECS knows: ECS's top
        ("1.52", "1.60", "1.52"),  # overlapping in one version only
        ("1.24", "1.41", "1.41"),  # Podman 4.3
    ],
)
def test_highest_common_version(engine_min: str, engine_max: str, chosen: str) -> None:
    """The highest version inside both ranges is chosen."""
    assert choose_api_version(ApiRange(V(engine_min), V(engine_max))) == V(chosen)


@pytest.mark.parametrize(("engine_min", "engine_max"), [("1.53", "1.60"), ("1.12", "1.24")])
def test_disjoint_ranges_name_both(engine_min: str, engine_max: str) -> None:
    """No common version: the error names the engine's range and ECS's."""
    with pytest.raises(EngineIncompatible) as caught:
        choose_api_version(ApiRange(V(engine_min), V(engine_max)))
    assert f"{engine_min}–{engine_max}" in caught.value.message
    assert str(ECS_API_RANGE) in caught.value.message
    assert caught.value.status == 503


def test_pinned_version_inside_both_ranges_is_used() -> None:
    """A pin is used as is, even below the highest common version."""
    assert choose_api_version(ApiRange(V("1.24"), V("1.51")), pinned=V("1.44")) == V("1.44")


@pytest.mark.parametrize(
    ("pinned", "fragment"),
    [("1.43", r"outside the engine's API versions \(1\.44–1\.52\)"), ("1.60", "ECS speaks")],
)
def test_pinned_version_out_of_range_is_refused(pinned: str, fragment: str) -> None:
    """A pin the engine or ECS cannot speak is an error naming the range it misses."""
    with pytest.raises(EngineIncompatible, match=fragment):
        choose_api_version(ApiRange(V("1.44"), V("1.52")), pinned=V(pinned))


def test_engine_range_from_version_answer() -> None:
    """MinAPIVersion is read; an engine too old to report it served every older version."""
    answer = {"ApiVersion": "1.51", "MinAPIVersion": "1.44"}
    assert engine_api_range(answer) == ApiRange(V("1.44"), V("1.51"))
    assert engine_api_range({"ApiVersion": "1.23"}).low == V("1.12")
    with pytest.raises(ValueError, match="not an API version"):
        engine_api_range({"ApiVersion": "banana"})


def test_refusal_is_recognised_only_as_a_400_about_the_version() -> None:
    """dockerd's "too old"/"too new" 400s are refusals; other 400s are not."""
    assert is_version_refusal(400, "client version 1.41 is too old. Minimum supported ...")
    assert is_version_refusal(400, "client version 1.45 is too new. Maximum supported ...")
    assert not is_version_refusal(400, "invalid reference format")
    assert not is_version_refusal(500, "client version 1.41 is too old.")


def test_docker_api_version_environment_pins(tmp_path: object) -> None:
    """DOCKER_API_VERSION pins like the docker CLI; ECS's own setting wins; junk is refused."""
    assert pinned_api_version(load_settings(), {}) is None
    assert pinned_api_version(load_settings(), {"DOCKER_API_VERSION": "1.44"}) == V("1.44")
    own = load_settings(docker_api_version="1.45")
    assert pinned_api_version(own, {"DOCKER_API_VERSION": "1.44"}) == V("1.45")
    with pytest.raises(ConfigError, match="DOCKER_API_VERSION"):
        pinned_api_version(load_settings(), {"DOCKER_API_VERSION": "latest"})


async def test_client_negotiates_with_a_29_style_engine() -> None:
    """Against an engine refusing clients below 1.44 the client speaks 1.52, never 1.41."""
    engine = FakeEngine(min_api="1.44", max_api="1.52")
    async with engine.client() as http:
        docker = DockerClient(http)
        assert await docker.create_container("x", {"Image": "a:b"}) == "c0ffee"
    assert engine.calls == ["GET /version", "POST /v1.52/containers/create"]


async def test_client_renegotiates_when_the_engine_raises_its_floor() -> None:
    """An engine upgraded under a running ECS: the refused call is repeated once, newer."""
    engine = FakeEngine(min_api="1.12", max_api="1.41")
    async with engine.client() as http:
        docker = DockerClient(http)
        assert str(await docker.negotiate()) == "1.41"
        engine.min_api, engine.max_api = "1.44", "1.51"
        assert await docker.create_container("x", {"Image": "a:b"}) == "c0ffee"
        assert str(docker.api_version) == "1.51"
    assert engine.calls[-3:] == [
        "POST /v1.41/containers/create",
        "GET /version",
        "POST /v1.51/containers/create",
    ]


async def test_no_common_version_after_the_engine_changed_is_a_clear_error() -> None:
    """The engine moved beyond ECS's range: the call fails with both ranges, not a 500."""
    engine = FakeEngine(min_api="1.12", max_api="1.41")
    async with engine.client() as http:
        docker = DockerClient(http)
        await docker.negotiate()
        engine.min_api, engine.max_api = "1.60", "1.61"
        with pytest.raises(EngineIncompatible, match=r"1\.60–1\.61 and ECS speaks 1\.25–1\.52"):
            await docker.create_container("x", {"Image": "a:b"})


async def test_pinned_client_never_negotiates_upwards() -> None:
    """A pinned client uses the pin in every path."""
    engine = FakeEngine(min_api="1.24", max_api="1.51")
    async with engine.client() as http:
        docker = DockerClient(http, pinned_api_version=V("1.44"))
        await docker.create_container("x", {"Image": "a:b"})
    assert engine.calls[-1] == "POST /v1.44/containers/create"


async def test_comprehensive_health_is_red_for_an_incompatible_engine() -> None:
    """Health calls a versioned endpoint: an engine ECS cannot speak to is red, with why."""
    engine = FakeEngine(min_api="1.12", max_api="1.41")
    async with engine.client() as http:
        docker = DockerClient(http)
        green = await check_health(docker, quick=False)
        assert green.green
        engine.min_api, engine.max_api = "1.60", "1.61"
        red = await check_health(docker, quick=False)
        quick = await check_health(docker, quick=True)
    assert not red.green
    assert red.details is not None
    details = red.details["engine"]
    assert isinstance(details, dict)
    assert details["details"] == {"connectivity": "green", "apiVersion": "red", "runtime": "red"}
    assert "no version in common" in str(details["error"])
    assert details["engineApiVersions"] == "1.60–1.61"
    assert quick.green  # quick checks nothing external


async def test_probe_finds_the_runtime_or_names_what_exists() -> None:
    """A configured runtime must be in /info; gVisor is recognised by its binary."""
    engine = FakeEngine(
        min_api="1.24",
        max_api="1.51",
        runtimes={"runc": {"path": "runc"}, "sandboxed": {"path": "/usr/bin/runsc"}},
    )
    async with engine.client() as http:
        docker = DockerClient(http)
        default = await probe_engine(docker, None)
        sandboxed = await probe_engine(docker, "sandboxed")
        with pytest.raises(RuntimeMissing, match=r"no runtime 'crun' \(it has: runc, sandboxed\)"):
            await probe_engine(docker, "crun")
        health = await check_health(docker, quick=False, runtime="crun")
    assert (default.runtime, default.gvisor) == ("runc", False)
    assert (sandboxed.runtime, sandboxed.gvisor) == ("sandboxed", True)
    assert health.details is not None
    assert health.details["engine"]["details"]["runtime"] == "red"  # type: ignore[index]


async def test_podman_refuses_a_runtime_it_would_ignore() -> None:
    """Podman runs every container on its own runtime: asking for one is a start-up error."""
    engine = FakeEngine(
        min_api="1.24", max_api="1.41", podman=True, runtimes={"runc": {}, "runsc": {}}
    )
    async with engine.client() as http:
        docker = DockerClient(http)
        report = await probe_engine(docker, None)
        with pytest.raises(RuntimeMissing, match="Podman ignores the runtime"):
            await probe_engine(docker, "runsc")
    assert report.podman


async def test_podman_state_conflict_is_a_conflict() -> None:
    """Podman's 500 for killing a stopped container counts as already stopped."""
    engine = FakeEngine(min_api="1.24", max_api="1.41", podman=True)
    async with engine.client() as http:
        await DockerClient(http).kill("x")  # no error: the container is not running
    assert engine.calls[-1] == "POST /v1.41/containers/x/kill"
