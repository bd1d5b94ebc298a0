"""Production behaviour on the real engine: keys, limits, no leaks, life cycle, registries, logs."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecs.keys import GeneratedKey, generate_keys
from tests.integration.conftest import (
    AUTH_REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    managed_containers,
    remove_image,
    wait_until,
)
from tests.integration.ecs_process import EcsProcess, run_ecs_command
from tests.integration.ecs_server import SESSION_INSTANCE_PREFIX, new_instance_id

pytestmark = pytest.mark.engine

TASK = {"docker_image": "owner/repo:tag", "cmd": ["echo", "ok"]}
PRIVATE = f"{AUTH_REGISTRY}/owner/private:tag"


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, list[GeneratedKey]]:
    """A credentials file with two keys (cheap bcrypt rounds: tests, not production)."""
    path = tmp_path / "keys.htpasswd"
    return path, generate_keys(2, path, rounds=4)


def basic(pair: GeneratedKey) -> tuple[str, str]:
    """httpx auth tuple for a key."""
    return (pair.key, pair.secret)


def post_in_background(url: str, body: dict[str, Any]) -> threading.Thread:
    """POST a task from a thread; the connection may die with the server (that is the point)."""

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/v1.1/tasks", json=body, timeout=60)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def assert_401(answer: httpx.Response) -> None:
    """A JSON 401 with the Basic challenge."""
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == 'Basic realm="ecs"'
    assert answer.json()["errors"][0]["code"] == "unauthorized"
    assert answer.json()["correlationId"]


def test_every_protected_route_needs_a_key(start_ecs: Any, keys_file: Any) -> None:
    """Without, or with a wrong, key every route but health answers a JSON 401."""
    path, pairs = keys_file
    # Many deliberate failures from one address: lift the failed-check limit for this test.
    server = start_ecs(credentials_file=path, failed_auth_burst=1000)
    good = basic(pairs[0])
    wrong_secret = (pairs[0].key, pairs[1].secret)
    unknown = ("nobody", "nothing")
    routes = [
        ("POST", "/v1.1/tasks"),
        ("GET", "/v1.1/_noop"),
        ("GET", "/v1.1/_version"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/v1.1/no-such-path"),
    ]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for method, route in routes:
            for auth in (None, wrong_secret, unknown):
                assert_401(client.request(method, route, json=TASK, auth=auth))
        assert_401(client.get("/v1.1/_noop", headers={"Authorization": "Basic !!notbase64"}))
        assert_401(client.get("/v1.1/_noop", headers={"Authorization": "Bearer abc"}))
        assert client.get("/v1.1/_health").status_code == 200  # open by default
        assert client.get("/v1.1/_noop", auth=good).status_code == 200
        answer = client.post("/v1.1/tasks", json=TASK, auth=good)
        assert answer.status_code == 201, answer.text


def test_repeated_failed_checks_from_a_client_get_429(start_ecs: Any, keys_file: Any) -> None:
    """Past its failure burst an address gets 429 with no bcrypt check; known pairs still pass."""
    path, pairs = keys_file
    server = start_ecs(credentials_file=path, failed_auth_per_s=0.01, failed_auth_burst=3)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1.1/_noop", auth=basic(pairs[0])).status_code == 200
        wrong = [client.get("/v1.1/_noop", auth=("guess", "x")).status_code for _ in range(3)]
        blocked = client.get("/v1.1/_noop", auth=("guess", "y"))
        known = client.get("/v1.1/_noop", auth=basic(pairs[0]))
        unverified = client.get("/v1.1/_noop", auth=basic(pairs[1]))
        missing = client.get("/v1.1/_noop")
    assert wrong == [401, 401, 401]
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.json()["errors"][0]["code"] == "rate_limited"
    assert known.status_code == 200  # verified before: answered from the cache
    assert unverified.status_code == 429  # would need a bcrypt check
    assert missing.status_code == 401  # no key at all costs nothing to refuse


def test_open_endpoints_are_configurable(start_ecs: Any, keys_file: Any) -> None:
    """Opening noop and version leaves tasks and health-less lists closed."""
    path, _ = keys_file
    server = start_ecs(credentials_file=path, open_endpoints=["noop", "version"])
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1.1/_noop").status_code == 200
        assert client.get("/v1.1/_version").status_code == 200
        assert_401(client.get("/v1.1/_health"))
        assert_401(client.post("/v1.1/tasks", json=TASK))


def test_rate_limit_answers_429_with_retry_after(start_ecs: Any, keys_file: Any) -> None:
    """Past its burst a key gets 429 with Retry-After; another key is unaffected."""
    path, pairs = keys_file
    server = start_ecs(credentials_file=path, rate_limit_per_s=0.01, rate_limit_burst=2)
    with httpx.Client(base_url=server.url) as client:
        first = [client.get("/v1.1/_noop", auth=basic(pairs[0])).status_code for _ in range(2)]
        limited = client.get("/v1.1/_noop", auth=basic(pairs[0]))
        other = client.get("/v1.1/_noop", auth=basic(pairs[1]))
    assert first == [200, 200]
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert other.status_code == 200


def test_concurrent_tasks_per_key(start_ecs: Any, keys_file: Any) -> None:
    """A key at its task maximum gets 429 for one more; its running task is unaffected."""
    path, pairs = keys_file
    server = start_ecs(credentials_file=path, max_tasks_per_key=1)
    results: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            body = {**TASK, "cmd": ["sleep", "3"]}
            results["slow"] = client.post("/v1.1/tasks", json=body, auth=basic(pairs[0]))

    thread = threading.Thread(target=slow)
    thread.start()
    assert wait_until(lambda: server.app.state.runtime.slots.running == 1)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        refused = client.post("/v1.1/tasks", json=TASK, auth=basic(pairs[0]))
        other_key = client.post("/v1.1/tasks", json=TASK, auth=basic(pairs[1]))
    thread.join()
    assert refused.status_code == 429
    assert other_key.status_code == 201
    assert results["slow"].status_code == 201


def test_keys_rotate_without_restart(start_ecs: Any, keys_file: Any) -> None:
    """A key appended to the file works without a restart; a removed key stops working."""
    path, pairs = keys_file
    server = start_ecs(credentials_file=path)
    new = generate_keys(1, path, rounds=4)[0]
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1.1/_noop", auth=basic(pairs[0])).status_code == 200
        assert wait_until(lambda: client.get("/v1.1/_noop", auth=basic(new)).status_code == 200, 10)
        kept = [line for line in path.read_text().splitlines() if not line.startswith(pairs[0].key)]
        path.write_text("\n".join(kept) + "\n")
        assert wait_until(
            lambda: client.get("/v1.1/_noop", auth=basic(pairs[0])).status_code == 401, 10
        )
        assert client.get("/v1.1/_noop", auth=basic(new)).status_code == 200


def test_allowlist_refuses_other_images(start_ecs: Any) -> None:
    """An image outside the allowlist is a 403; one inside runs."""
    server = start_ecs(image_allowlist=["docker.io/owner/repo:*"])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/v1.1/tasks", json=TASK).status_code == 201
        refused = client.post("/v1.1/tasks", json={**TASK, "docker_image": "owner/sleeper:tag"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "image_not_allowed"
    assert "docker.io/owner/sleeper:tag" in refused.json()["errors"][0]["message"]


def test_configured_registry_credentials_pull_the_private_image(
    start_ecs: Any, engine: httpx.Client
) -> None:
    """Per-registry credentials in config pull a private image when the request has none."""
    remove_image(engine, PRIVATE)
    registries = {AUTH_REGISTRY: {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}}
    server = start_ecs(registries=registries)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": PRIVATE, "cmd": ["true"]})
        assert answer.status_code == 201, answer.text
        # The request's own (wrong) credentials win over config.
        remove_image(engine, PRIVATE)
        wrong = {"username": REGISTRY_USER, "password": "nope"}
        refused = client.post(
            "/v1.1/tasks", json={"docker_image": PRIVATE, "cmd": ["true"], "creds": wrong}
        )
    assert refused.status_code == 403


def test_docker_config_json_credentials(
    start_ecs: Any, engine: httpx.Client, tmp_path: Path
) -> None:
    """A Docker config.json `auths` entry supplies the private registry's credentials."""
    remove_image(engine, PRIVATE)
    auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {AUTH_REGISTRY: {"auth": auth}}}))
    server = start_ecs(docker_config_file=config)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": PRIVATE, "cmd": ["true"]})
    assert answer.status_code == 201, answer.text


def test_kill_9_mid_task_then_restart_reaps_the_orphan(
    tmp_path: Path, engine: httpx.Client
) -> None:
    """A crashed ECS leaves its container; the next start removes it before serving."""
    settings = {"ECS_INSTANCE_ID": new_instance_id()}
    first = EcsProcess(tmp_path / "first.log", **settings).start()
    try:
        post_in_background(first.url, {**TASK, "cmd": ["sleep", "300"]})
        assert wait_until(lambda: bool(managed_containers(engine)))
        first.signal(signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    assert len(managed_containers(engine)) == 1  # the crash left it behind
    second = EcsProcess(tmp_path / "second.log", **settings).start()
    try:
        assert not managed_containers(engine)  # gone before the first request is served
        assert "container_reaped" in second.log()
    finally:
        second.stop()


def ecs_running_tasks(engine: httpx.Client) -> int:
    """How many ECS containers are running now."""
    return sum(1 for c in managed_containers(engine) if c.get("State") == "running")


def test_sigterm_lets_in_flight_tasks_finish(tmp_path: Path, engine: httpx.Client) -> None:
    """On SIGTERM the running task completes and is answered, then ECS exits 0."""
    ecs = EcsProcess(tmp_path / "ecs.log").start()
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{ecs.url}/v1.1/tasks",
                json={**TASK, "cmd": ["sh", "-c", "sleep 2; echo finished"]},
                timeout=60,
            )
        )
    )
    try:
        request.start()
        assert wait_until(lambda: ecs_running_tasks(engine) == 1)
        ecs.signal(signal.SIGTERM)
        assert ecs.wait() == 0
    finally:
        ecs.stop()
    request.join()
    assert answers[0].status_code == 201
    assert base64.b64decode(answers[0].json()["stdout"]) == b"finished\n"


def test_sigterm_past_the_grace_removes_what_remains(tmp_path: Path, engine: httpx.Client) -> None:
    """Tasks still running when the grace ends are cut off and their containers removed."""
    ecs = EcsProcess(tmp_path / "ecs.log", ECS_SHUTDOWN_GRACE_S="1").start()
    try:
        post_in_background(ecs.url, {**TASK, "cmd": ["sleep", "300"]})
        assert wait_until(lambda: bool(managed_containers(engine)))
        ecs.signal(signal.SIGTERM)
        assert ecs.wait() == 0
    finally:
        ecs.stop()
    assert not managed_containers(engine)


def test_secrets_never_reach_the_logs(tmp_path: Path, keys_file: Any, engine: httpx.Client) -> None:
    """API secrets, registry passwords and auth headers stay out of the logs, at debug level."""
    path, pairs = keys_file
    remove_image(engine, PRIVATE)
    ecs = EcsProcess(
        tmp_path / "ecs.log", ECS_CREDENTIALS_FILE=str(path), ECS_LOG_LEVEL="debug"
    ).start()
    try:
        creds = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
        for password in (REGISTRY_PASSWORD, "wrong-password-xyz"):
            httpx.post(
                f"{ecs.url}/v1.1/tasks",
                json={
                    "docker_image": PRIVATE,
                    "cmd": ["true"],
                    "creds": {**creds, "password": password},
                },
                auth=basic(pairs[0]),
                timeout=60,
            )
        httpx.get(f"{ecs.url}/v1.1/_noop", auth=(pairs[1].key, "guess-secret-abc"), timeout=10)
    finally:
        ecs.stop()
    log = ecs.log()
    assert f'"key": "{pairs[0].key}"' in log  # the key id is logged ...
    for secret in (pairs[0].secret, REGISTRY_PASSWORD, "wrong-password-xyz", "guess-secret-abc"):
        assert secret not in log  # ... never a secret
    encoded = base64.b64encode(f"{pairs[0].key}:{pairs[0].secret}".encode()).decode()
    assert encoded not in log


def test_request_log_line_has_the_fields(tmp_path: Path) -> None:
    """One JSON line per request: method, route, status, duration, image, exit code, id."""
    ecs = EcsProcess(tmp_path / "ecs.log").start()
    try:
        answer = httpx.post(
            f"{ecs.url}/v1.1/tasks",
            json={**TASK, "cmd": ["sh", "-c", "exit 4"]},
            headers={"X-ECS-Correlation-ID": "trace-77"},
            timeout=60,
        )
    finally:
        ecs.stop()
    assert answer.status_code == 201
    lines = [json.loads(line) for line in ecs.log().splitlines() if line.startswith("{")]
    request = next(
        line for line in lines if line.get("event") == "request" and line["method"] == "POST"
    )
    assert request["method"] == "POST"
    assert request["route"] == "/v1.1/tasks"
    assert request["status"] == 201
    assert request["image"] == "owner/repo:tag"
    assert request["exit_code"] == 4
    assert request["correlation_id"] == "trace-77"
    assert isinstance(request["duration_ms"], float)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ECS_HOST": "0.0.0.0"}, "not loopback and no credentials_file"),
        ({"ECS_DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "is not usable"),
        ({"ECS_PORT": "x"}, "port (env ECS_PORT)"),
        ({"ECS_CREDENTIALS_FILE": "/nonexistent/keys"}, "credentials_file"),
    ],
)
def test_serve_refuses_to_start(env: dict[str, str], message: str) -> None:
    """Bad settings, a missing engine or an open bind without keys stop start-up clearly."""
    result = run_ecs_command("serve", **env)
    assert result.returncode == 2
    assert message in result.stderr


def test_check_command(tmp_path: Path) -> None:
    """`ecs check` validates the settings and reaches the engine."""
    result = run_ecs_command("check")
    assert result.returncode == 0, result.stderr
    # Debian 12's Engine 20.10 serves 1.12–1.41: ECS speaks its newest.
    assert "engine at unix:///var/run/docker.sock: ok (API 1.41 of 1.12–1.41, runtime runc)" in (
        result.stdout
    )


def test_creds_command_prints_pairs_once(tmp_path: Path) -> None:
    """`ecs creds 3 --file F` prints three pairs and appends three bcrypt hashes (0600)."""
    path = tmp_path / "keys"
    result = run_ecs_command("creds", "3", "--file", str(path))
    assert result.returncode == 0, result.stderr
    pairs = [line.split(":", 1) for line in result.stdout.splitlines()]
    assert len(pairs) == 3
    stored = path.read_text()
    assert all(key in stored and secret not in stored for key, secret in pairs)
    assert path.stat().st_mode & 0o777 == 0o600
    assert run_ecs_command("creds", "0", "--file", str(path)).returncode == 2


def test_reap_command_removes_overdue_containers(engine: httpx.Client) -> None:
    """`ecs reap` removes labelled containers past their deadline, and leaves others."""
    # Overdue for `ecs reap` with no margin, not yet for the 30 s margin of the other
    # ECS servers of this test session, whose janitors would otherwise race it.
    config = {
        "Image": "local/busybox:1",
        "Cmd": ["true"],
        "Labels": {
            "io.ecs.managed": "true",
            "io.ecs.instance": f"{SESSION_INSTANCE_PREFIX}elsewhere",
            "io.ecs.deadline": str(int(time.time()) - 5),
        },
    }
    overdue = engine.post("/containers/create", json=config).json()["Id"]
    future = dict(config, Labels={**config["Labels"], "io.ecs.deadline": str(2**40)})
    current = engine.post("/containers/create", json=future).json()["Id"]
    result = run_ecs_command("reap", ECS_JANITOR_MARGIN_S="0")
    assert result.returncode == 0, result.stderr
    assert "reaped 1 container(s)" in result.stdout
    remaining = [c["Id"] for c in managed_containers(engine)]
    assert overdue not in remaining
    assert current in remaining
    engine.delete(f"/containers/{current}", params={"force": "1"})
