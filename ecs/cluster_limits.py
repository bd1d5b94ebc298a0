"""Per-key limits held in Redis, so N nodes together allow what one node would.

One Lua script takes a key's request token (a token bucket on Redis's clock) and, for a
task, a place among its running tasks (a sorted set of leases scored by expiry), in one
round trip. A lease outlives a node that dies by ``lease_ttl_s`` at most; the node
refreshes the leases of its running tasks with every heartbeat. While Redis is away the
limits fall back to this node's own (``LocalLimits``): sync tasks keep running.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ecs.exceptions import RateLimited
from ecs.limits import LocalLimits

# ARGV: rate/s, burst, take a token (1/0), max tasks (-1: no task), lease id, lease ttl ms.
# Returns {verdict, detail}: 0 over the rate (detail: seconds to wait), 1 over the task
# limit (detail: tasks running), 2 admitted.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = burst
if ARGV[3] == '1' then
  local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
    redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
    return {0, math.max(1, math.ceil((1 - tokens) / rate))}
  end
end
if ARGV[4] ~= '-1' then
  local ttl = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now * 1000)
  local running = redis.call('ZCARD', KEYS[2])
  if running >= tonumber(ARGV[4]) then return {1, running} end
  redis.call('ZADD', KEYS[2], now * 1000 + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
return {2, 0}
"""
# ARGV: rate/s, burst. Returns seconds to wait (0: a token is there). Spends nothing.
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local elapsed = math.max(0, now - (tonumber(b[2]) or now))
local tokens = math.min(burst, (tonumber(b[1]) or burst) + elapsed * rate)
if tokens >= 1 then return 0 end
return math.max(1, math.ceil((1 - tokens) / rate))
"""
_WAIT_FOR_PLACE_S = 0.25


class ClusterLimits:
    """``KeyLimits`` across the cluster, on Redis; ``name`` separates buckets (keys, auth)."""

    def __init__(
        self,
        client: aioredis.Redis,
        fallback: LocalLimits,
        *,
        rate_per_s: float,
        burst: int,
        max_tasks: int,
        lease_ttl_s: float,
        name: str = "key",
        prefix: str = "ecs",
        available: Callable[[], bool] = lambda: True,
        on_error: Callable[[Exception], None] = lambda _exc: None,
    ) -> None:
        self._redis = client
        self._fallback = fallback
        self._rate, self._burst, self._max_tasks = rate_per_s, burst, max_tasks
        self._lease_ms = int(lease_ttl_s * 1000)
        self._p = f"{prefix}:{name}:"
        self._available = available
        self._on_error = on_error
        self._admit = client.register_script(_ADMIT)
        self._peek = client.register_script(_PEEK)
        self._leases: dict[str, str] = {}  # lease id → its key's lease set, while held

    async def take(self, key: str) -> None:
        """Spend a token of ``key`` in the cluster's bucket."""
        verdict = await self._call(key, take=True, task=False)
        if verdict is None:
            await self._fallback.take(key)

    async def retry_after(self, key: str) -> int | None:
        """The cluster bucket's wait for ``key``."""
        if not self._available():
            return await self._fallback.retry_after(key)
        try:
            wait = int(
                await self._peek(keys=[self._p + f"bucket:{key}"], args=[self._rate, self._burst])
            )
        except (RedisError, OSError) as exc:
            self._on_error(exc)
            return await self._fallback.retry_after(key)
        return wait or None

    @asynccontextmanager
    async def admit_task(self, key: str) -> AsyncIterator[None]:
        """A token and a task place, cluster-wide, in one round trip."""
        lease = await self._call(key, take=True, task=True)
        if lease is None:  # Redis is away: this node's limits
            async with self._fallback.admit_task(key):
                yield
            return
        try:
            yield
        finally:
            await self._release(lease)

    @asynccontextmanager
    async def waiting_task(self, key: str) -> AsyncIterator[None]:
        """A task place cluster-wide, polling for one while the key is at its maximum."""
        while True:
            try:
                lease = await self._call(key, take=False, task=True)
            except RateLimited:
                await asyncio.sleep(_WAIT_FOR_PLACE_S)
                continue
            break
        if lease is None:
            async with self._fallback.waiting_task(key):
                yield
            return
        try:
            yield
        finally:
            await self._release(lease)

    async def refresh_leases(self) -> None:
        """Extend the leases of this node's running tasks (every heartbeat)."""
        if not self._leases or not self._available():
            return
        expiry = await self._redis_time_ms() + self._lease_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for lease, lease_set in self._leases.items():
                pipe.zadd(lease_set, {lease: expiry}, xx=True)
                pipe.pexpire(lease_set, self._lease_ms)
            await pipe.execute()

    async def _call(self, key: str, *, take: bool, task: bool) -> str | None:
        """Run the script; the lease id when admitted, None when Redis is away."""
        if not self._available():
            return None
        lease = uuid.uuid4().hex
        lease_set = self._p + f"tasks:{key}"
        try:
            answer: Any = await self._admit(
                keys=[self._p + f"bucket:{key}", lease_set],
                args=[
                    self._rate,
                    self._burst,
                    "1" if take else "0",
                    str(self._max_tasks) if task else "-1",
                    lease,
                    self._lease_ms,
                ],
            )
        except (RedisError, OSError) as exc:
            self._on_error(exc)
            return None
        verdict, detail = int(answer[0]), int(answer[1])
        if verdict == 0:
            raise RateLimited(
                f"key {key} is over its rate of {self._rate:g} requests per second",
                retry_after_s=detail,
            )
        if verdict == 1:
            raise RateLimited(
                f"key {key} already runs {detail} tasks across the cluster, its maximum",
                retry_after_s=1,
            )
        if task:
            self._leases[lease] = lease_set
        return lease

    async def _release(self, lease: str) -> None:
        lease_set = self._leases.pop(lease, None)
        if lease_set is None:
            return
        try:
            await self._redis.zrem(lease_set, lease)
        except (RedisError, OSError) as exc:  # it expires by itself
            self._on_error(exc)

    async def _redis_time_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000
