"""Small pure parts: the sandbox config, admission control, health parsing, settings, times."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from ecs.config import load_settings
from ecs.exceptions import ConfigError, Overloaded
from ecs.health import parse_quick
from ecs.imageref import parse_image_reference
from ecs.pipeline import _run_time_ms, parse_engine_time
from ecs.registry_auth import Credentials, credentials_for, registry_auth_header
from ecs.sandbox import (
    GVISOR_BASE_PIDS,
    GVISOR_MEMORY_OVERHEAD_MB,
    GVISOR_PIDS_PER_PROCESS,
    ContainerPolicy,
    ContainerRequest,
    container_config,
    container_labels,
)
from ecs.server import is_loopback
from ecs.slots import TaskSlots


def test_container_config_has_the_security_defaults() -> None:
    """No network, no capabilities, no new privileges, hard limits, an init, no mounts."""
    request = ContainerRequest("a:b", ["true"], {"K": "v"}, memory_mb=64, cpus=0.5, pids=32)
    config = container_config(request, ContainerPolicy(), container_labels("i", "t", 9))
    host = config["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert config["NetworkDisabled"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Binds"] == []
    assert host["Mounts"] == []
    assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 32
    assert host["Init"] is True
    assert config["Env"] == ["K=v"]
    assert config["Labels"]["io.ecs.instance"] == "i"
    assert config["Labels"]["io.ecs.deadline"] == "9"


def test_read_only_root_keeps_a_writable_tmp() -> None:
    """With the read-only root on, /tmp is a small tmpfs."""
    request = ContainerRequest("a:b", ["true"], {}, memory_mb=64, cpus=1, pids=32)
    host = container_config(request, ContainerPolicy(read_only_rootfs=True), {})["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]


async def test_slots_queue_then_refuse() -> None:
    """One slot and one queue place: the third concurrent task is refused with Retry-After."""
    slots = TaskSlots(running=1, queued=1, retry_after_s=7)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot():
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    second = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert (slots.running, slots.queued) == (1, 1)
    with pytest.raises(Overloaded) as caught:
        async with slots.slot():
            pass
    assert caught.value.retry_after_s == 7
    release.set()
    await asyncio.gather(first, second)
    assert (slots.running, slots.queued) == (0, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        ("true", True),
        ("YES", True),
        ("1", True),
        ("f", False),
        ("No", False),
        ("0", False),
        ("dave", None),
        ("", None),
    ],
)
def test_parse_quick(value: str | None, expected: bool | None) -> None:
    """The original service's boolean spellings; anything else is not a boolean."""
    assert parse_quick(value) is expected


def test_settings_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML file sets values; an ECS_ variable overrides the file."""
    config = tmp_path / "ecs.toml"
    config.write_text(
        'port = 9000\npull_policy = "never"\n[limits]\nmax_pids = 10\ndefault_pids = 5\n'
    )
    monkeypatch.setenv("ECS_PORT", "9100")
    monkeypatch.setenv("ECS_LIMITS__MAX_MEMORY_MB", "512")
    settings = load_settings(config)
    assert settings.port == 9100
    assert settings.pull_policy.value == "never"
    assert (settings.limits.max_pids, settings.limits.max_memory_mb) == (10, 512)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("port = 'x'\n", "port (env ECS_PORT)"),
        ("bogus = 1\n", "bogus (env ECS_BOGUS): Extra inputs"),
        ("pull_policy = 'sometimes'\n", "pull_policy"),
        ("default_timeout_s = 900\n", "default_timeout_s must not exceed max_timeout_s"),
        ("[limits]\ndefault_cpus = 8\n", "default_cpus must not exceed max_cpus"),
        ("port = [\n", "invalid configuration"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    """A bad setting stops start-up with a message naming the key and the file."""
    config = tmp_path / "ecs.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert fragment in caught.value.message
    assert f"({config})" in caught.value.message


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    """A config path that does not exist is refused, not ignored."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_registry_auth_header_is_base64url_json() -> None:
    """Quotes and unicode in passwords survive; the header decodes to the auth config."""
    header = registry_auth_header(Credentials("u", 'p"\\ä/+', None), "127.0.0.1:5001")
    decoded = json.loads(base64.urlsafe_b64decode(header))
    assert decoded == {"username": "u", "password": 'p"\\ä/+', "serveraddress": "127.0.0.1:5001"}


def test_request_credentials_win_over_configured() -> None:
    """Request creds first, then the image host's configured creds, Hub aliases included."""
    configured = {"docker.io": Credentials("hub", "x"), "h:1": Credentials("h", "y")}
    mine = Credentials("me", "z")
    assert credentials_for(parse_image_reference("a/b:c"), mine, configured) is mine
    assert (
        credentials_for(parse_image_reference("a/b:c"), None, configured) == configured["docker.io"]
    )
    assert credentials_for(parse_image_reference("h:1/b:c"), None, configured) == configured["h:1"]
    assert credentials_for(parse_image_reference("other.io/b:c"), None, configured) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses count as loopback."""
    assert is_loopback(host) is loopback


def test_run_time_from_engine_timestamps() -> None:
    """Nanosecond RFC 3339 times give milliseconds; a never-started container gives 0."""
    state = {"StartedAt": "2026-11-29T10:00:00.123456789Z", "FinishedAt": "2026-11-29T10:00:01.5Z"}
    assert _run_time_ms(state) == 1376
    assert _run_time_ms({"StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": ""}) == 0


def test_gvisor_sandbox_leaves_room_for_its_own_processes_and_memory() -> None:
    """Under runsc the host limits cover the sandbox; the guest's own limit is nproc."""
    request = ContainerRequest("a:b", ["true"], {}, memory_mb=64, cpus=1, pids=16)
    plain = container_config(request, ContainerPolicy(runtime="crun"), {})["HostConfig"]
    gvisor = container_config(request, ContainerPolicy(runtime="runsc", gvisor=True), {})
    host = gvisor["HostConfig"]
    assert (plain["PidsLimit"], plain["Runtime"], "Ulimits" in plain) == (16, "crun", False)
    assert host["PidsLimit"] == GVISOR_BASE_PIDS + GVISOR_PIDS_PER_PROCESS * 16
    assert host["Ulimits"] == [{"Name": "nproc", "Soft": 16, "Hard": 16}]
    assert host["Memory"] == host["MemorySwap"] == (64 + GVISOR_MEMORY_OVERHEAD_MB) * 1024 * 1024
    assert host["Runtime"] == "runsc"


def test_no_runtime_setting_leaves_the_engine_default() -> None:
    """Without `runtime` the create body names none, so the engine's default applies."""
    request = ContainerRequest("a:b", ["true"], {}, memory_mb=64, cpus=1, pids=16)
    assert "Runtime" not in container_config(request, ContainerPolicy(), {})["HostConfig"]


def test_engine_times_keep_microseconds_and_refuse_the_zero_time() -> None:
    """Nanosecond RFC 3339 times parse to the microsecond; the engine's unset time is None."""
    parsed = parse_engine_time("2026-12-02T01:06:00.262877136Z")
    assert parsed is not None
    assert (parsed.second, parsed.microsecond, parsed.utcoffset()) == (0, 262877, timedelta(0))
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("") is None
