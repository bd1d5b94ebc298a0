"""schemathesis against ECS's own /openapi.json: no 5xx, every answer as documented.

schemathesis' pytest plugin does not run under this pytest, so each operation is driven
with its hypothesis strategy directly: a bounded number of examples per operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import engine, no_leaked_containers  # noqa: F401
from tests.integration.ecs_server import EcsServer

pytestmark = pytest.mark.engine

EXAMPLES_PER_OPERATION = 40
# Only this image may run, so generated task bodies are refused (403) instead of pulling
# random names; the valid ones still cross parsing, the allowlist and the error mapping.
ALLOWED = "docker.io/owner/repo:tag"
DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
    for method in item
)


@pytest.fixture(scope="module")
def fuzzed_ecs(engine: httpx.Client) -> Iterator[EcsServer]:  # noqa: F811
    """One ECS for the whole fuzz run."""
    server = EcsServer(image_allowlist=[ALLOWED]).start()
    yield server
    server.stop()


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_as_documented(fuzzed_ecs: EcsServer, label: str) -> None:
    """Generated requests to an operation of the served OpenAPI document never get a 5xx,
    and each answer has a documented status, content type and body schema."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_ecs.url}/openapi.json")
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is in docs/openapi.json but not served"
    checks = [
        schemathesis.checks.not_a_server_error,
        *(
            getattr(schemathesis.specs.openapi.checks, name)
            for name in (
                "status_code_conformance",
                "content_type_conformance",
                "response_schema_conformance",
            )
        ),
    ]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks, timeout=60)

    check()
