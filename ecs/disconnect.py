"""Cancel a request's work when its client hangs up, so its container goes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` unless the client disconnects first; then cancel it and raise."""
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The server gave up on this request (shutdown grace over): so does the work.
        await _cancel_and_wait(job)
        raise
    finally:
        watcher.cancel()
    if job.done():
        return job.result()
    await _cancel_and_wait(job)
    raise ClientDisconnected


async def _cancel_and_wait(job: asyncio.Future[T]) -> None:
    """Cancel ``job`` and let its cleanup (its ``finally``) run before going on."""
    job.cancel()
    await asyncio.shield(asyncio.gather(job, return_exceptions=True))


async def _wait_for_disconnect(request: Request) -> None:
    # The body has been read already, so the next message can only be the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
