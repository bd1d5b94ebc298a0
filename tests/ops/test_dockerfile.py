"""The Dockerfile's structure, its healthcheck command and its entry-point script.

These tests parse the Dockerfile and run its scripts on this machine, with no engine;
tests/ops/test_image.py builds the image for real (scripts/image) and runs it.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


@dataclass
class Stage:
    """One build stage: its base, its name and its instructions."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        """The arguments of every instruction named ``keyword``."""
        return [args for name, args in self.instructions if name == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The parsed Dockerfile."""
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def _resolve(base: str, global_args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), base)


def _runtime(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def test_two_stages_builder_then_slim_runtime(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """The image is built in a builder stage and shipped from a python 3.11 slim runtime stage."""
    global_args, stages = dockerfile
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    for stage in stages:
        base = _resolve(stage.base, global_args)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?", base), base


def test_base_image_is_pinned(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Every base image names a patch release or a digest, never a floating tag."""
    global_args, stages = dockerfile
    for stage in stages:
        base = _resolve(stage.base, global_args)
        assert "$" not in base, f"unresolved ARG in FROM {stage.base}"
        assert re.search(r":\d+\.\d+\.\d+|@sha256:[0-9a-f]{64}", base), f"{base} is not pinned"
        assert not base.endswith(":latest")


def test_builder_installs_the_wheels_from_the_context_only(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """The builder installs the project's wheel and its dependencies' from the build context
    into the venv the runtime copies, never asking an index; no source is built in the image."""
    builder, runtime = dockerfile[1]
    assert builder.args_of("COPY") == ["dist/wheels /wheels"]
    (run,) = builder.args_of("RUN")
    assert run.startswith("python3 -m venv /opt/venv ")
    install = re.search(r"/opt/venv/bin/pip install ([^&]*)", run)
    assert install, run
    assert install.group(1).split() == [
        "--no-index",
        "--find-links",
        "/wheels",
        "/wheels/ecs_statusbridge-*.whl",
    ]
    assert "/opt/venv/bin/pip uninstall --yes pip setuptools" in run
    assert "--from=builder /opt/venv /opt/venv" in " ".join(runtime.args_of("COPY"))
    assert any("PATH=/opt/venv/bin:" in env for env in runtime.args_of("ENV"))


def test_every_command_works_on_a_debian_base(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """Debian's python3 has no `python` command and no pip: RUN steps use `python3` or the
    venv's programs, and `python` (the HEALTHCHECK's) only once the venv is on PATH."""
    for stage in dockerfile[1]:
        for run in stage.args_of("RUN"):
            assert not re.search(r"(^|[;&|]\s*)(python|pip|pip3)\s", run), run
            assert "python -m pip" not in run
    runtime = _runtime(dockerfile)
    keywords = [keyword for keyword, _ in runtime.instructions]
    path_set = next(
        i
        for i, (keyword, args) in enumerate(runtime.instructions)
        if keyword == "ENV" and "PATH=/opt/venv/bin:" in args
    )
    assert path_set < keywords.index("HEALTHCHECK")


def test_base_is_a_build_argument_of_both_stages(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """Both stages are FROM the PYTHON_IMAGE build argument (scripts/image passes its Debian
    base), and the runtime records it in the OCI base-name label."""
    global_args, stages = dockerfile
    assert "PYTHON_IMAGE" in global_args
    assert [stage.base for stage in stages] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    runtime = _runtime(dockerfile)
    assert "PYTHON_IMAGE" in runtime.args_of("ARG")
    assert 'org.opencontainers.image.base.name="${PYTHON_IMAGE}"' in " ".join(
        runtime.args_of("LABEL")
    )


def test_no_buildkit_frontend_to_pull() -> None:
    """No `# syntax=` line: BuildKit would pull that frontend image, which no hub serves here."""
    assert not re.search(r"(?im)^#\s*syntax\s*=", DOCKERFILE.read_text(encoding="utf-8"))


def test_both_entry_points_are_console_scripts() -> None:
    """Installing the wheel puts both `ecs` and `statusbridge` on the image's PATH."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {
        "ecs": "ecs.__main__:main",
        "statusbridge": "statusbridge.__main__:main",
    }


def test_runtime_runs_as_a_numeric_non_root_user(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    """The runtime stage ends as a numeric non-root user, which runAsNonRoot can verify."""
    users = _runtime(dockerfile).args_of("USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {users[-1]} is not numeric"
    assert int(user) != 0


def test_healthcheck_and_default_command(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """The runtime has a python (no curl) HEALTHCHECK and runs `ecs serve` via the entry point."""
    runtime = _runtime(dockerfile)
    (healthcheck,) = runtime.args_of("HEALTHCHECK")
    assert 'CMD ["python", "-c"' in healthcheck
    assert "curl" not in healthcheck
    assert json.loads(runtime.args_of("ENTRYPOINT")[-1]) == ["entrypoint"]
    assert json.loads(runtime.args_of("CMD")[-1]) == ["ecs", "serve"]
    assert "docker/entrypoint.sh /usr/local/bin/entrypoint" in " ".join(runtime.args_of("COPY"))


def test_oci_labels(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """The runtime image carries the OCI title, description, version and licence labels."""
    labels = " ".join(_runtime(dockerfile).args_of("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_no_add_and_no_downloads(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Nothing is fetched by URL: no ADD at all, no curl or wget in RUN."""
    for stage in dockerfile[1]:
        assert not stage.args_of("ADD"), "use COPY; ADD may fetch URLs"
        for run in stage.args_of("RUN"):
            assert not re.search(r"\b(curl|wget)\b|https?://", run), run


def test_copied_files_pass_dockerignore(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Every file COPY takes from the build context exists and is not excluded by .dockerignore."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    sources = []
    for stage in dockerfile[1]:
        for copy in stage.args_of("COPY"):
            words = [w for w in shlex.split(copy) if not w.startswith("--")]
            if copy.startswith("--from"):
                continue
            sources.extend(words[:-1])
    assert sources
    # The wheels are made before the build (scripts/image; `pip wheel --wheel-dir dist/wheels .`).
    generated = {"dist/wheels"}
    for source in sources:
        assert source in generated or (ROOT / source).exists(), f"COPY {source}: no such file"
        assert included(source), f"COPY {source} is excluded by .dockerignore"
    for kept_out in (".venv", "tests", "ecs", "statusbridge", "dist/other.whl", ".git"):
        assert not included(kept_out), f"{kept_out} would go into the build context"


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/v1.1/_health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def fake_ecs() -> Iterator[http.server.HTTPServer]:
    """A stand-in for ECS's health endpoint on 127.0.0.1."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_follows_the_health_status(
    dockerfile: tuple[dict[str, str], list[Stage]],
    fake_ecs: http.server.HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    healthy: bool,
) -> None:
    """The HEALTHCHECK command exits 0 on a green 200 and non-zero on a red 503 from ECS_PORT."""
    (healthcheck,) = _runtime(dockerfile).args_of("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    monkeypatch.setattr(_HealthHandler, "status", status)
    env = {**os.environ, "ECS_PORT": str(fake_ecs.server_address[1])}
    env.pop("HEALTHCHECK_URL", None)
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, check=False
    )
    assert (result.returncode == 0) is healthy, result.stderr


def _run_entrypoint(tmp_path: Path, *args: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in ("ecs", "statusbridge"):
        stub = bin_dir / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*"\n', encoding="utf-8")
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        ((), "ecs serve"),
        (("--config", "/etc/ecs.toml"), "ecs serve --config /etc/ecs.toml"),
        (("ecs", "creds", "3", "--file", "/out/keys"), "ecs creds 3 --file /out/keys"),
        (("statusbridge", "run", "--config", "/c.toml"), "statusbridge run --config /c.toml"),
        (("echo", "hello"), "hello"),
    ],
)
def test_entrypoint_dispatch(tmp_path: Path, args: tuple[str, ...], runs: str) -> None:
    """No arguments or bare options mean `ecs serve`; any other command runs as given."""
    assert _run_entrypoint(tmp_path, *args) == runs


def test_entrypoint_is_executable_posix_sh() -> None:
    """The entry point is executable and written for /bin/sh (slim has no bash guarantees)."""
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
