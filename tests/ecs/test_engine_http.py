"""EngineHttp: requests built here reach the transport whole, with their timeouts."""

from __future__ import annotations

import json

import httpx

from ecs.engine_http import EngineHttp


def recording(seen: list[httpx.Request]) -> EngineHttp:
    """An EngineHttp whose transport records each request and answers with its body."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(request.content or b"{}"))

    return EngineHttp(
        httpx.MockTransport(answer), base_url="http://docker/", timeout=httpx.Timeout(7.0)
    )


async def test_a_call_carries_its_path_query_body_and_headers() -> None:
    """Base URL and path join once, parameters are encoded, the body is JSON."""
    seen: list[httpx.Request] = []
    async with recording(seen) as http:
        answer = await http.send(
            "POST",
            "/v1.41/containers/create",
            params={"name": "ecs-a b"},
            json={"Image": "x"},
            headers={"X-Registry-Auth": "e30="},
        )
    assert answer.json() == {"Image": "x"}
    (request,) = seen
    assert str(request.url) == "http://docker/v1.41/containers/create?name=ecs-a+b"
    assert json.loads(request.content) == {"Image": "x"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-registry-auth"] == "e30="


async def test_the_default_timeout_applies_unless_a_call_gives_its_own() -> None:
    """The transport reads timeouts from the request's extensions, as httpx's client sets."""
    seen: list[httpx.Request] = []
    async with recording(seen) as http:
        await http.send("GET", "/version")
        await http.send("GET", "/wait", timeout=httpx.Timeout(None, connect=2.0))
    default, own = (request.extensions["timeout"] for request in seen)
    assert default == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    assert own == {"connect": 2.0, "read": None, "write": None, "pool": None}


async def test_a_stream_is_closed_when_its_block_ends() -> None:
    """A streamed answer is read as it comes, and closed on leaving the block."""
    seen: list[httpx.Request] = []
    async with recording(seen) as http:
        async with http.stream("POST", "/attach", params={"stream": "1"}) as response:
            assert [chunk async for chunk in response.aiter_raw()] == [b"{}"]
        assert response.is_closed
    assert seen[0].url.params["stream"] == "1"
