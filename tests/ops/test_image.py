"""The image, built for real by scripts/image and run on the real engine.

The ``image`` fixture runs ``scripts/image``, which builds the image (base from Debian's
packages, wheels from the host, ``docker build`` with no network) or finds it up to date
in a few seconds (CI's ``scripts/test`` has just built it). Every container started here
has ``--rm`` and is removed in a ``finally`` as well; the task containers ECS starts from
inside the image are siblings on the host's engine, labelled with an instance id of this
test session, so the leak check of the engine tests judges them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine_target import EngineTarget
from tests.integration.conftest import (  # noqa: F401 - fixtures used by this module
    engine,
    managed_containers,
    no_leaked_containers,
)
from tests.integration.ecs_server import SESSION_INSTANCE_PREFIX
from tests.statusbridge.fake_cachet import FakeCachet
from tests.statusbridge.fake_pingdom import FakePingdom

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PROJECT["version"]
IMAGE = f"ecs-statusbridge:{VERSION}"
SOCKET = "/var/run/docker.sock"
CHECK = 7
# What the compose files run both programs with: a read-only root with a tmpfs on /tmp, no
# capabilities, no privilege escalation.
LOCKED_DOWN = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; never raises on a non-zero exit."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def socket_gid() -> int:
    """The group of the engine's socket, which the image's user needs to reach it."""
    return os.stat(SOCKET).st_gid


def free_port() -> int:
    """A loopback port nothing listens on (containers here use the host's network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_once(
    image: str, *args: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm`` of one command in the image, removed afterwards even on a timeout."""
    name = f"ecs-image-test-{uuid.uuid4().hex[:12]}"
    try:
        return docker("run", "--rm", "--name", name, *options, image, *args)
    finally:
        docker("rm", "--force", "--volumes", name)


@dataclass
class Daemon:
    """A long-running container of the image, its output in a file."""

    name: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """What the container wrote so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def health(self) -> str:
        """The engine's HEALTHCHECK verdict: starting, healthy or unhealthy."""
        return docker("inspect", "--format", "{{.State.Health.Status}}", self.name).stdout.strip()


@contextlib.contextmanager
def daemon(image: str, log: Path, *args: str, options: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """Run the image attached (so its output survives ``--rm``); removed on the way out."""
    name = f"ecs-image-test-{uuid.uuid4().hex[:12]}"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["docker", "run", "--rm", "--name", name, *options, image, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Daemon(name, log, process)
    finally:
        docker("rm", "--force", "--volumes", name)
        process.wait(timeout=60)


def wait_for(url: str, container: Daemon, timeout_s: float = 60) -> None:
    """Until ``url`` answers 200; fail with the container's output if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            pytest.fail(
                f"the container exited ({container.process.returncode}):\n{container.output()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 in {timeout_s} s:\n{container.output()}")


def wait_healthy(container: Daemon, timeout_s: float = 30) -> None:
    """Until the engine's HEALTHCHECK says healthy."""
    deadline = time.monotonic() + timeout_s
    while container.health() != "healthy":
        if time.monotonic() > deadline:
            state = docker("inspect", "--format", "{{json .State.Health}}", container.name).stdout
            pytest.fail(f"never healthy: {state}\n{container.output()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def image(engine: httpx.Client, engine_target: EngineTarget) -> str:  # noqa: F811
    """The image scripts/image builds, built now unless it is up to date."""
    if engine_target.name != "docker" or engine_target.runtime is not None:
        pytest.skip("the image is built and run on the default engine only")
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI; run scripts/engine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECS_", "STATUSBRIDGE_"))}
    env["PYTHON"] = sys.executable  # the wheels get this venv's versions
    result = subprocess.run(
        [str(ROOT / "scripts" / "image")],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/image failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return IMAGE


def inspect_image(image: str) -> dict[str, Any]:
    """``docker image inspect`` of one image."""
    (found,) = json.loads(docker("image", "inspect", image).stdout)
    result: dict[str, Any] = found
    return result


# --- what the image is ------------------------------------------------------------------


def test_both_programs_report_their_version(image: str) -> None:
    """`ecs --version` and `statusbridge --version` run in the image (no network at all)."""
    for program in ("ecs", "statusbridge"):
        result = run_once(image, program, "--version", options=("--network", "none"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{program} {VERSION}"


def test_image_config_is_the_documented_one(image: str) -> None:
    """Non-root numeric user, entry point, default command, HEALTHCHECK, ports, labels."""
    config = inspect_image(image)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["entrypoint"]
    assert config["Cmd"] == ["ecs", "serve"]
    assert config["WorkingDir"] == "/var/lib/statusbridge"
    assert set(config["ExposedPorts"]) == {"8448/tcp", "9108/tcp"}
    health = config["Healthcheck"]
    assert health["Test"][:3] == ["CMD", "python", "-c"]
    assert "HEALTHCHECK_URL" in health["Test"][3]
    assert (health["Interval"], health["Timeout"], health["StartPeriod"], health["Retries"]) == (
        15_000_000_000,
        3_000_000_000,
        20_000_000_000,
        3,
    )
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["ECS_LOG_FORMAT"] == env["STATUSBRIDGE_LOG_FORMAT"] == "json"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.base.name"] == "local/debian-python:bookworm"
    assert re.fullmatch(r"[0-9a-f]{64}", labels["io.ecs.source-digest"])


def test_runs_as_uid_10001_with_no_pip(image: str) -> None:
    """The user is 10001:10001 with no other group; the venv has no pip to change it with."""
    result = run_once(
        image, "sh", "-c", "id -u; id -g; id -G; id -un", options=("--network", "none")
    )
    assert result.stdout.split() == ["10001", "10001", "10001", "ecs"]
    result = run_once(image, "python", "-m", "pip", "--version", options=("--network", "none"))
    assert result.returncode != 0
    assert "No module named pip" in result.stderr


def test_options_alone_mean_ecs_serve(image: str) -> None:
    """The entry point: `docker run IMAGE --help` is `ecs serve --help`; a command runs as given."""
    result = run_once(image, "--help", options=("--network", "none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ecs serve")
    assert run_once(image, "echo", "as given", options=("--network", "none")).stdout == "as given\n"


def test_image_size_is_the_documented_one(image: str) -> None:
    """docs/operations.md states the image's size; the built image is within 10 % of it."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text[text.index("## The image") :]
    section = section[: section.index("\n## ", 1)]
    match = re.search(r"image is (\d+) MB", section)
    assert match, "docs/operations.md, 'The image', states no size ('image is N MB')"
    documented = int(match.group(1)) * 1_000_000
    size = inspect_image(image)["Size"]
    assert abs(size - documented) <= documented / 10, f"{size / 1e6:.0f} MB, documented {match[0]}"


# --- the engine socket --------------------------------------------------------------------


def test_the_socket_needs_its_group(image: str) -> None:
    """Uid 10001 reaches the engine socket only with --group-add of the socket's group."""
    mount = ("--network", "none", "--volume", f"{SOCKET}:{SOCKET}")
    refused = run_once(image, "ecs", "check", options=mount)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
    allowed = run_once(image, "ecs", "check", options=(*mount, "--group-add", str(socket_gid())))
    assert allowed.returncode == 0, allowed.stderr
    assert f"engine at unix://{SOCKET}: ok" in allowed.stdout


# --- ECS in the image ---------------------------------------------------------------------


@dataclass
class EcsContainer:
    """ECS serving from the image on a loopback port of the host."""

    url: str
    instance_id: str
    container: Daemon


@pytest.fixture(scope="module")
def ecs_container(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcsContainer]:
    """ECS in the image, locked down as in the compose file, on the host's engine socket.

    The local engine has no bridge network, so the container shares the host's: ECS
    listens on 127.0.0.1 only, which needs no credentials file. Its state file is on a
    volume (the root is read-only), its instance id one of this test session's.
    """
    port = free_port()
    instance_id = f"{SESSION_INSTANCE_PREFIX}image"
    options = (
        "--network",
        "host",
        *LOCKED_DOWN,
        "--volume",
        f"{SOCKET}:{SOCKET}",
        "--group-add",
        str(socket_gid()),
        "--volume",
        "/var/lib/ecs",
        "--env",
        "ECS_HOST=127.0.0.1",
        "--env",
        f"ECS_PORT={port}",
        "--env",
        f"ECS_INSTANCE_ID={instance_id}",
        "--env",
        "ECS_STATE_PATH=/var/lib/ecs/ecs-state.sqlite3",
        # The image's HEALTHCHECK command, probed every second instead of every 15 s.
        "--health-interval",
        "1s",
    )
    log = tmp_path_factory.mktemp("ecs-image") / "ecs.log"
    with daemon(image, log, options=options) as container:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/v1.1/_health", container)
        yield EcsContainer(url, instance_id, container)


def test_ecs_in_the_image_answers_a_task(ecs_container: EcsContainer) -> None:
    """A task through ECS in the image: 201, its exit code, stdout and stderr."""
    answer = httpx.post(
        f"{ecs_container.url}/v1.1/tasks",
        json={
            "docker_image": "owner/repo:tag",
            "cmd": ["sh", "-c", "echo hi; echo oops >&2; exit 3"],
        },
        timeout=120,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["exitCode"] == 3
    assert base64.b64decode(body["stdout"]) == b"hi\n"
    assert base64.b64decode(body["stderr"]) == b"oops\n"


def test_ecs_in_the_image_is_healthy(ecs_container: EcsContainer) -> None:
    """Comprehensive health (the engine through the socket) is green; so is the HEALTHCHECK."""
    answer = httpx.get(f"{ecs_container.url}/v1.1/_health", params={"quick": "false"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "green"
    assert answer.json()["details"]["engine"]["status"] == "green"
    wait_healthy(ecs_container.container)


def test_task_containers_are_labelled_siblings_on_the_host(
    ecs_container: EcsContainer,
    engine: httpx.Client,  # noqa: F811
) -> None:
    """A running task is a container of the host's engine with this session's instance label."""
    seen: list[list[dict[str, Any]]] = []
    answers: list[httpx.Response] = []
    task = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{ecs_container.url}/v1.1/tasks",
                json={"docker_image": "local/busybox:1", "cmd": ["sleep", "2"]},
                timeout=120,
            )
        )
    )
    task.start()
    deadline = time.monotonic() + 30
    while task.is_alive() and time.monotonic() < deadline:
        running = managed_containers(engine)
        if running:
            seen.append(running)
            break
        time.sleep(0.05)
    task.join(timeout=120)
    (answer,) = answers
    assert answer.status_code == 201, answer.text
    assert seen, "the task's container never showed on the host's engine"
    (container,) = seen[0]
    assert container["Labels"]["io.ecs.instance"] == ecs_container.instance_id


# --- statusbridge in the image ------------------------------------------------------------


@pytest.fixture
def bridge_config(
    tmp_path: Path, ecs_container: EcsContainer
) -> Iterator[tuple[Path, FakePingdom]]:
    """A statusbridge config on fake Pingdom and Cachet APIs and ECS-in-the-image's metrics."""
    with FakePingdom() as pingdom, FakeCachet() as cachet:
        pingdom.add_check(CHECK)
        now = int(time.time())
        pingdom.add_results(
            CHECK,
            [
                {"probeid": 1, "time": now - 60 * i, "status": "up", "responsetime": 200}
                for i in range(1, 30)
            ],
        )
        cachet.now = now
        cachet.add_component(1)
        cachet.add_metric(1)
        cachet.add_metric(2)
        path = tmp_path / "statusbridge.toml"
        path.write_text(
            f"""
state_path = "/var/lib/statusbridge/statusbridge.sqlite3"
[http]
host = "127.0.0.1"
port = {free_port()}
[pingdom]
base_url = "{pingdom.base_url}"
token = "{pingdom.token}"
[cachet]
base_url = "{cachet.base_url}"
token = "{cachet.token}"
[[checks]]
pingdom_check_id = {CHECK}
cachet_component_id = 1
response_time_metric_id = 1
uptime_metric_id = 2
backfill_hours = 1
[[ecs_targets]]
url = "{ecs_container.url}/metrics"
name = "ecs-in-the-image"
""",
            encoding="utf-8",
        )
        path.chmod(0o644)
        yield path, pingdom


def bridge_options(config: Path) -> tuple[str, ...]:
    """statusbridge as the compose file runs it: read-only root, its state on a volume."""
    return (
        "--network",
        "host",
        *LOCKED_DOWN,
        "--volume",
        f"{config}:/etc/statusbridge/statusbridge.toml:ro",
        "--volume",
        "/var/lib/statusbridge",
    )


def test_statusbridge_check_in_the_image(
    bridge_config: tuple[Path, FakePingdom], ecs_container: EcsContainer
) -> None:
    """`statusbridge check` in the image reaches Pingdom, Cachet, its state file and ECS."""
    config, pingdom = bridge_config
    result = run_once(
        IMAGE,
        "statusbridge",
        "check",
        "--config",
        "/etc/statusbridge/statusbridge.toml",
        options=bridge_options(config),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "config: ok (1 checks, 1 ECS targets)" in lines
    assert "pingdom: ok (1 checks visible)" in lines
    assert any(line.startswith("cachet: ok (version 2.4") for line in lines), lines
    assert "state: ok (/var/lib/statusbridge/statusbridge.sqlite3)" in lines
    assert any(line.startswith(f"ecs {ecs_container.url}/metrics: ok (HTTP 200") for line in lines)
    assert any(r.path.endswith("/checks") for r in pingdom.requests), pingdom.requests


def test_statusbridge_check_in_the_image_fails_on_a_refused_token(
    bridge_config: tuple[Path, FakePingdom],
) -> None:
    """The check is real: a token Pingdom refuses makes it exit 1 naming Pingdom."""
    config, pingdom = bridge_config
    pingdom.token = "another-token"
    result = run_once(
        IMAGE,
        "statusbridge",
        "check",
        "--config",
        "/etc/statusbridge/statusbridge.toml",
        options=bridge_options(config),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.startswith("pingdom: FAILED") for line in result.stdout.splitlines())


def test_statusbridge_daemon_in_the_image_is_healthy(
    bridge_config: tuple[Path, FakePingdom], tmp_path: Path
) -> None:
    """`statusbridge run` with HEALTHCHECK_URL on its endpoint, as the compose file sets it."""
    config, _ = bridge_config
    port = tomllib.loads(config.read_text(encoding="utf-8"))["http"]["port"]
    options = (
        *bridge_options(config),
        "--env",
        f"HEALTHCHECK_URL=http://127.0.0.1:{port}/health",
        "--health-interval",
        "1s",
    )
    args = ("statusbridge", "run", "--dry-run", "--config", "/etc/statusbridge/statusbridge.toml")
    with daemon(IMAGE, tmp_path / "statusbridge.log", *args, options=options) as container:
        wait_for(f"http://127.0.0.1:{port}/health", container)
        wait_healthy(container)


# --- the compose files, checked by docker compose -----------------------------------------


def compose_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker compose config`` of one file with these variables (and nothing else set)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ECS_", "STATUSBRIDGE_"))}
    return subprocess.run(
        ["docker", "compose", "--file", str(path), "config", "--format", "json"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> None:
    """`docker compose` (v2) is there: scripts/image installs it."""
    if docker("compose", "version").returncode != 0:
        pytest.fail(
            "no `docker compose`; run scripts/image (it installs Debian's docker-compose v2)"
        )


@pytest.mark.tools
@pytest.mark.usefixtures("compose")
def test_compose_file_is_valid_and_runs_the_image_with_the_socket_group() -> None:
    """deploy/docker-compose.yml passes `docker compose config`; both services run the image
    scripts/image builds, ECS in the socket's group; statusbridge probes its own endpoint."""
    gid = str(socket_gid())
    placeholders = {"PINGDOM_TOKEN": "x", "CACHET_TOKEN": "x", "SIGNALFX_TOKEN": "x"}
    compose_file = ROOT / "deploy" / "docker-compose.yml"
    result = compose_config(compose_file, {"DOCKER_GID": gid, **placeholders})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {services[name]["image"] for name in ("ecs", "statusbridge")} == {IMAGE}
    assert services["ecs"]["group_add"] == [gid]
    binds = {(v["source"], v["target"]) for v in services["ecs"]["volumes"] if v["type"] == "bind"}
    assert (SOCKET, SOCKET) in binds
    bridge_toml = ROOT / "deploy" / "compose" / "statusbridge.toml"
    bridge = tomllib.loads(bridge_toml.read_text(encoding="utf-8"))
    assert services["statusbridge"]["environment"]["HEALTHCHECK_URL"] == (
        f"http://127.0.0.1:{bridge['http']['port']}/health"
    )
    missing = compose_config(compose_file, placeholders)
    assert missing.returncode != 0
    assert "DOCKER_GID" in missing.stderr


@pytest.mark.tools
@pytest.mark.usefixtures("compose")
def test_cluster_compose_file_is_valid_and_puts_every_node_in_the_socket_group() -> None:
    """deploy/docker-compose.cluster.yml passes `docker compose config`; each ECS node runs
    the image in the socket's group."""
    gid = str(socket_gid())
    result = compose_config(
        ROOT / "deploy" / "docker-compose.cluster.yml", {"DOCKER_GID": gid, "REDIS_PASSWORD": "x"}
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for node in ("ecs-1", "ecs-2"):
        assert services[node]["image"] == IMAGE
        assert services[node]["group_add"] == [gid]
