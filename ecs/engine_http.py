"""HTTP to the engine: httpx requests handed straight to an httpx transport.

``httpx.AsyncClient`` merges base URL, parameters, headers and cookies into each request
and runs it through auth, redirect and event-hook handling; the engine's calls need none
of that (no cookies, no auth, no redirects to follow). That layer was a third of each
engine call's CPU (0.75 → 0.54 ms a call on the engine socket, docs/performance.md), and
a cold task makes six calls. Requests, answers, timeouts and errors stay httpx's, so the
transport can be anything httpx accepts (``httpx.MockTransport`` in tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self

import httpx


class EngineHttp:
    """Sends requests to one base URL through ``transport``; an async context manager
    that closes the transport."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport, *, base_url: str, timeout: httpx.Timeout
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One call; the answer with its body read."""
        response = await self.open(
            method,
            path,
            params=params,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
        )
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One call; the answer with its body unread: the caller reads and closes it."""
        request = httpx.Request(
            method,
            self._base_url + path,
            params=params,
            json=json,
            content=content,
            headers=headers,
            extensions={"timeout": (timeout or self.timeout).as_dict()},
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """One call whose answer the block reads as it arrives; closed when the block ends."""
        response = await self.open(method, path, params=params, headers=headers, timeout=timeout)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the transport and its connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
