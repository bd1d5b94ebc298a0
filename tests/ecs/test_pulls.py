"""Pull policy decisions and the classification of registry failures."""

from __future__ import annotations

import pytest

from ecs.config import PullPolicy
from ecs.exceptions import (
    EngineApiError,
    EngineNotFound,
    EngineUnreachable,
    ImageNotFound,
    InvalidRequest,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from ecs.imageref import parse_image_reference
from ecs.pulls import classify_pull_error, needs_pull

IMAGE = parse_image_reference("127.0.0.1:5001/owner/private:tag")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            EngineNotFound("manifest for x not found: manifest unknown", engine_status=404),
            ImageNotFound,
        ),
        (
            EngineApiError(
                'Head "http://127.0.0.1:5001/v2/owner/private/manifests/tag": '
                "no basic auth credentials",
                engine_status=500,
            ),
            RegistryUnauthorized,
        ),
        (
            EngineApiError("unauthorized: authentication required", engine_status=500),
            RegistryUnauthorized,
        ),
        (
            EngineApiError(
                'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: '
                "connection refused",
                engine_status=500,
            ),
            RegistryUnreachable,
        ),
        (
            EngineApiError(
                'Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
                "registry-1.docker.io: no such host",
                engine_status=500,
            ),
            RegistryUnreachable,
        ),
        (EngineApiError("invalid reference format", engine_status=400), InvalidRequest),
        (
            EngineUnreachable("engine unreachable: [Errno 111] Connection refused"),
            EngineUnreachable,
        ),
        (EngineApiError("something odd", engine_status=500), EngineApiError),
    ],
)
def test_engine_messages_map_to_client_errors(error: EngineApiError, expected: type) -> None:
    """The engine's pull failures (all 500s but one) become 404/403/503/400 as they mean."""
    classified = classify_pull_error(IMAGE, error)
    assert type(classified) is expected
    if expected in (ImageNotFound, RegistryUnauthorized, RegistryUnreachable):
        assert error.message in str(classified)  # the engine's own words reach the client


@pytest.mark.parametrize(
    ("policy", "reference", "present", "pull"),
    [
        (PullPolicy.DEFAULT, "r:latest", True, True),
        (PullPolicy.DEFAULT, "r:1", True, False),
        (PullPolicy.DEFAULT, "r:1", False, True),
        (PullPolicy.DEFAULT, "r@sha256:" + "1" * 64, True, False),
        (PullPolicy.ALWAYS, "r:1", True, True),
        (PullPolicy.IF_NOT_PRESENT, "r:latest", True, False),
        (PullPolicy.IF_NOT_PRESENT, "r:latest", False, True),
        (PullPolicy.NEVER, "r:latest", False, False),
    ],
)
def test_pull_policy(policy: PullPolicy, reference: str, present: bool, pull: bool) -> None:
    """Kubernetes semantics by default; always, if-not-present and never when configured."""
    assert needs_pull(policy, parse_image_reference(reference), present) is pull
