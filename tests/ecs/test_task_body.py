"""Checking POST /tasks bodies: every problem listed, defaults and maxima applied."""

from __future__ import annotations

from typing import Any

import pytest

from ecs.exceptions import InvalidRequest
from ecs.task_body import TaskLimits, parse_task_request

LIMITS = TaskLimits(
    default_timeout_s=60,
    max_timeout_s=600,
    default_memory_mb=256,
    max_memory_mb=2048,
    default_cpus=1.0,
    max_cpus=2.0,
    default_pids=256,
    max_pids=4096,
)


def problems(body: Any) -> list[tuple[str, str | None]]:
    """The (code, field) pairs a body is refused with."""
    with pytest.raises(InvalidRequest) as caught:
        parse_task_request(body, LIMITS)
    return [(p.code, p.field) for p in caught.value.problems()]


def test_minimal_body_gets_the_defaults() -> None:
    """Only image and command given: timeout and limits come from the server."""
    spec = parse_task_request({"docker_image": "a/b:c", "cmd": ["true"]}, LIMITS)
    assert (spec.timeout_s, spec.memory_mb, spec.cpus, spec.pids) == (60, 256, 1.0, 256)
    assert spec.credentials is None
    assert spec.env == {}


def test_full_body_is_honoured() -> None:
    """Every optional field given is carried into the task."""
    spec = parse_task_request(
        {
            "docker_image": "h:5000/a/b@sha256:" + "0" * 64,
            "cmd": ["sh", "-c", "env"],
            "creds": {"username": "u", "password": "s3cr3t-pw"},
            "env": {"A": "1"},
            "timeout": 2.5,
            "limits": {"memory_mb": 64, "cpus": 0.5, "pids": 10},
        },
        LIMITS,
    )
    assert spec.image.domain == "h:5000"
    assert spec.credentials is not None
    assert spec.credentials.password == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(spec.credentials)
    assert (spec.timeout_s, spec.memory_mb, spec.cpus, spec.pids) == (2.5, 64, 0.5, 10)


def test_empty_body_lists_both_missing_fields() -> None:
    """`{}` names both required fields, not just the first."""
    assert problems({}) == [("missing_field", "docker_image"), ("missing_field", "cmd")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"cmd": ["x"]}, [("missing_field", "docker_image")]),
        ({"docker_image": "a:b"}, [("missing_field", "cmd")]),
        ({"docker_image": "a:b", "cmd": []}, [("too_short", "cmd")]),
        (
            {"docker_image": "IMAGE_NAME_IS_INVALID", "cmd": ["x"]},
            [("invalid_image", "docker_image")],
        ),
        ({"docker_image": "a:b", "cmd": [1]}, [("string_type", "cmd[0]")]),
        ({"docker_image": "a:b", "cmd": ["x"], "tag": "t"}, [("unknown_field", "tag")]),
        (
            {"docker_image": "a:b", "cmd": ["x"], "privileged": True},
            [("unknown_field", "privileged")],
        ),
        (
            {"docker_image": "a:b", "cmd": ["x"], "network_mode": "host"},
            [("unknown_field", "network_mode")],
        ),
        ({"docker_image": "a:b", "cmd": ["x"], "timeout": 0}, [("greater_than", "timeout")]),
        ({"docker_image": "a:b", "cmd": ["x"], "timeout": 601}, [("above_maximum", "timeout")]),
        (
            {"docker_image": "a:b", "cmd": ["x"], "limits": {"memory_mb": 4096, "pids": -1}},
            [("above_maximum", "limits.memory_mb"), ("greater_than", "limits.pids")],
        ),
        (
            {"docker_image": "a:b", "cmd": ["x"], "limits": {"mounts": ["/:/host"]}},
            [("unknown_field", "limits.mounts")],
        ),
        (
            {"docker_image": "a:b", "cmd": ["x"], "creds": {"username": "u"}},
            [("missing_field", "creds.password")],
        ),
        ({"docker_image": "a:b", "cmd": ["x"], "env": {"A=B": "1"}}, [("invalid_env", "env")]),
        ([1, 2], [("model_type", None)]),
    ],
)
def test_bad_bodies_are_refused_with_every_problem(
    body: Any, expected: list[tuple[str, str | None]]
) -> None:
    """Each bad body is refused with exactly the problems it has."""
    assert problems(body) == expected


def test_many_problems_at_once() -> None:
    """A body wrong in four ways gets four problems."""
    found = problems({"docker_image": "nope", "cmd": [], "timeout": 9999, "extra": 1})
    assert {code for code, _ in found} == {
        "invalid_image",
        "too_short",
        "above_maximum",
        "unknown_field",
    }


def test_unknown_field_message_lists_allowed_fields() -> None:
    """The message for an unknown field tells the client what is allowed."""
    with pytest.raises(InvalidRequest) as caught:
        parse_task_request({"docker_image": "a:b", "cmd": ["x"], "mounts": []}, LIMITS)
    assert "allowed: docker_image, cmd, creds, env, timeout, limits" in caught.value.message
