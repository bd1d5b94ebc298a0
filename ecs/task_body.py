"""The ``POST /tasks`` body: its JSON schema, and its checking into a ``TaskSpec``.

Checking runs in one pydantic pass with the server's maxima in the validation context,
so a 400 lists every problem at once — unknown fields, a missing tag and a timeout
above the maximum alike.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ecs.config import Settings
from ecs.exceptions import FieldProblem, InvalidRequest
from ecs.imageref import InvalidReference, parse_image_reference
from ecs.pipeline import TaskSpec
from ecs.registry_auth import Credentials
from ecs.task_input import (
    MAX_FILES,
    InputFile,
    TaskFileModel,
    check_absolute_path,
    conflicting_paths,
    decode_base64,
)


@dataclass(frozen=True)
class TaskLimits:
    """The server's maxima and defaults that a request is checked against."""

    default_timeout_s: float
    max_timeout_s: float
    default_memory_mb: int
    max_memory_mb: int
    default_cpus: float
    max_cpus: float
    default_pids: int
    max_pids: int
    max_input_bytes: int = 1024 * 1024
    writable_root: bool = True  # files are unpacked into the root file system before start

    @classmethod
    def from_settings(cls, settings: Settings) -> TaskLimits:
        """The limits a running server enforces."""
        limits = settings.limits
        return cls(
            default_timeout_s=settings.default_timeout_s,
            max_timeout_s=settings.max_timeout_s,
            default_memory_mb=limits.default_memory_mb,
            max_memory_mb=limits.max_memory_mb,
            default_cpus=limits.default_cpus,
            max_cpus=limits.max_cpus,
            default_pids=limits.default_pids,
            max_pids=limits.max_pids,
            max_input_bytes=settings.max_input_bytes,
            writable_root=not settings.read_only_rootfs,
        )


def _at_most(value: float, info: ValidationInfo, key: str) -> float:
    limits: TaskLimits | None = (info.context or {}).get("limits")
    maximum = getattr(limits, key, None) if limits else None
    if maximum is not None and value > maximum:
        raise PydanticCustomError(
            "above_maximum",
            "must be at most {maximum} on this server",
            {"maximum": maximum},
        )
    return value


class RegistryCreds(BaseModel):
    """Registry credentials for this task's pull."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=512)
    password: SecretStr = Field(min_length=1, max_length=4096)
    email: str | None = Field(None, max_length=512)


MIN_MEMORY_MB = 6


class TaskResourceLimits(BaseModel):
    """Resource limits for this task's container; each at most the server's maximum."""

    model_config = ConfigDict(extra="forbid")

    # 6 MiB is the engine's own floor ("Minimum memory limit allowed is 6MB"): below it
    # the create fails, so the request is refused here with the field named.
    memory_mb: int | None = Field(
        None, ge=MIN_MEMORY_MB, description="memory limit in MiB (no swap), at least 6"
    )
    cpus: float | None = Field(None, gt=0, description="CPU share, e.g. 0.5")
    pids: int | None = Field(None, gt=0, description="maximum number of processes")

    @field_validator("memory_mb")
    @classmethod
    def _memory_within_max(cls, value: int | None, info: ValidationInfo) -> int | None:
        return None if value is None else int(_at_most(value, info, "max_memory_mb"))

    @field_validator("cpus")
    @classmethod
    def _cpus_within_max(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else _at_most(value, info, "max_cpus")

    @field_validator("pids")
    @classmethod
    def _pids_within_max(cls, value: int | None, info: ValidationInfo) -> int | None:
        return None if value is None else int(_at_most(value, info, "max_pids"))


class TaskRequest(BaseModel):
    """Run ``cmd`` in a container of ``docker_image`` and report what it did."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"docker_image": "owner/repo:tag", "cmd": ["sh", "-c", "echo hi; exit 3"]}]
        },
    )

    docker_image: str = Field(
        description="image reference with a tag or a digest: owner/repo:tag, "
        "registry.example.com:5000/team/repo:tag, repo@sha256:<64 hex>",
        max_length=512,
    )
    cmd: list[str] = Field(min_length=1, max_length=1024, description="the container's Cmd")
    creds: RegistryCreds | None = None
    env: dict[str, str] | None = Field(None, description="environment variables")
    timeout: float | None = Field(None, gt=0, description="seconds before the task is killed")
    limits: TaskResourceLimits | None = None
    stdin: str | None = Field(
        None, description="base64 bytes written to the task's stdin, which is then closed"
    )
    files: list[TaskFileModel] | None = Field(
        None, max_length=MAX_FILES, description="files written into the container before start"
    )
    workdir: str | None = Field(
        None, max_length=4096, description="absolute path: the task's working directory"
    )
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="async only: ECS POSTs the finished task's document here, signed",
    )

    @field_validator("stdin")
    @classmethod
    def _stdin_base64(cls, value: str | None) -> str | None:
        if value is not None:
            decode_base64(value)
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir_absolute(cls, value: str | None) -> str | None:
        return None if value is None else check_absolute_path(value, allow_root=True)

    @field_validator("docker_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        try:
            parse_image_reference(value)
        except InvalidReference as exc:
            raise PydanticCustomError("invalid_image", str(exc)) from exc
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, setting in (value or {}).items():
            if not name or "=" in name or "\0" in name or "\0" in setting:
                raise PydanticCustomError(
                    "invalid_env", "names must be non-empty without '=' or NUL; values without NUL"
                )
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_within_max(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else _at_most(value, info, "max_timeout_s")


def parse_task_request(body: Any, limits: TaskLimits) -> TaskSpec:
    """Check a decoded JSON body and build the task, or raise InvalidRequest with every problem."""
    try:
        request = TaskRequest.model_validate(body, context={"limits": limits})
    except ValidationError as exc:
        raise InvalidRequest([_problem(error) for error in exc.errors()]) from exc
    stdin = base64.b64decode(request.stdin) if request.stdin is not None else None
    files = [entry.to_input_file() for entry in request.files or []]
    problems = _input_problems(stdin, files, limits)
    if problems:
        raise InvalidRequest(problems)
    resources = request.limits or TaskResourceLimits()
    creds = request.creds
    return TaskSpec(
        image=parse_image_reference(request.docker_image),
        cmd=request.cmd,
        env=request.env or {},
        timeout_s=request.timeout or limits.default_timeout_s,
        memory_mb=resources.memory_mb or limits.default_memory_mb,
        cpus=resources.cpus or limits.default_cpus,
        pids=resources.pids or limits.default_pids,
        credentials=Credentials(creds.username, creds.password.get_secret_value(), creds.email)
        if creds
        else None,
        stdin=stdin,
        files=tuple(files),
        workdir=request.workdir,
    )


def _input_problems(
    stdin: bytes | None, files: list[InputFile], limits: TaskLimits
) -> list[FieldProblem]:
    """What pydantic cannot see field by field: clashing paths, the total size, a read-only root."""
    problems = [
        FieldProblem(
            "path_conflict",
            f"files[{index}].path: {files[index].path} is already a file or a directory of "
            "another entry",
            f"files[{index}].path",
        )
        for index in conflicting_paths([item.path for item in files])
    ]
    total = len(stdin or b"") + sum(len(item.content) for item in files)
    if total > limits.max_input_bytes:
        problems.append(
            FieldProblem(
                "input_too_large",
                f"stdin and files decode to {total} bytes; this server takes at most "
                f"{limits.max_input_bytes}",
                "files" if files else "stdin",
            )
        )
    if files and not limits.writable_root:
        problems.append(
            FieldProblem(
                "files_need_writable_root",
                "this server runs tasks with a read-only root file system, into which the "
                "engine cannot write files before the task starts; send the content on stdin",
                "files",
            )
        )
    return problems


_FRIENDLY_CODES = {"missing": "missing_field", "extra_forbidden": "unknown_field"}


def _problem(error: Any) -> FieldProblem:
    path = _json_path(error["loc"])
    code = _FRIENDLY_CODES.get(error["type"], error["type"])
    message = error["msg"]
    if code == "unknown_field":
        message = f"unknown field {path!r}; allowed: {', '.join(_allowed_fields(error['loc']))}"
    elif code == "missing_field":
        message = f"{path} is required"
    else:
        message = f"{path}: {message}" if path else message
    return FieldProblem(code=code, message=message, field=path or None)


def _json_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _allowed_fields(location: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = TaskRequest
    if len(location) > 1 and location[0] == "creds":
        model = RegistryCreds
    elif len(location) > 1 and location[0] == "limits":
        model = TaskResourceLimits
    elif len(location) > 2 and location[0] == "files":
        model = TaskFileModel
    return list(model.model_fields)
