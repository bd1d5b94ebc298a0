"""The cluster's task store on Redis: one task space, one queue, for every ECS node.

Layout (prefix ``ecs`` by default; a standalone Redis or a Sentinel primary, not Redis
Cluster, since the scripts touch several keys):

    ecs:task:{id}            the record (JSON); expires with its retention once terminal
    ecs:idem:{owner}:{key}   the id holding an Idempotency-Key, same expiry
    ecs:queue                a stream of queued task ids, consumer group ``workers``
    ecs:running:{node}       ids of the tasks a node runs
    ecs:nodes                every node that ever joined; ecs:node:{node} its heartbeat
    ecs:callbacks            pending callbacks, scored by their next attempt (epoch s)
    ecs:ended, ecs:cancel    pub/sub channels: a task ended; cancel a task where it runs

Every change that must be atomic is one Lua script, so one round trip: accepting a task
(idempotency key, queue bound, record, stream entry), claiming it (queued → running on
this node, or skip a cancelled one), cancelling a queued one, settling a lost node.
Connection errors become ``StoreUnavailable`` here, and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from ecs.exceptions import Overloaded, StoreUnavailable
from ecs.task_records import CallbackStatus, TaskRecord, TaskStatus

log = structlog.get_logger(__name__)
GROUP = "workers"
_LISTEN_WAIT_S = 0.25

_CREATE = """
local idem, prefix = KEYS[2], ARGV[4]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then
    local doc = redis.call('GET', prefix .. 'task:' .. existing)
    if doc then return {0, doc} end
  end
end
if ARGV[3] ~= '' and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[3]) then
  return {2, ''}
end
redis.call('SET', KEYS[1], ARGV[1])
if idem ~= '' then redis.call('SET', idem, ARGV[2]) end
redis.call('XADD', KEYS[3], '*', 'id', ARGV[2])
return {1, ''}
"""
# Claim a queued task for this node; a cancelled (or vanished) one is only acknowledged.
_CLAIM = """
redis.call('XACK', KEYS[2], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
local doc = redis.call('GET', KEYS[1])
if not doc then return '' end
local record = cjson.decode(doc)
if record['status'] ~= 'queued' then return '' end
record['status'] = 'running'
record['started_at'] = tonumber(ARGV[2])
record['extra']['node'] = ARGV[1]
local encoded = cjson.encode(record)
redis.call('SET', KEYS[1], encoded)
redis.call('SADD', KEYS[3], record['id'])
return doc
"""
# Mark a queued task cancelled, atomically against a claim; the service then writes the
# whole record. ARGV: now.
_CANCEL_QUEUED = """
local doc = redis.call('GET', KEYS[1])
if not doc then return '' end
local record = cjson.decode(doc)
if record['status'] ~= 'queued' then return '' end
record['status'] = 'cancelled'
record['finished_at'] = tonumber(ARGV[1])
redis.call('SET', KEYS[1], cjson.encode(record))
return doc
"""
_LOCK = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0"
_CLAIM_CALLBACK = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


class RedisTaskStore:
    """``TaskStore`` on Redis, plus the queue and node bookkeeping of cluster mode."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        node_id: str,
        max_queued: int,
        prefix: str = "ecs",
        clock: Callable[[], float] = time.time,
        on_error: Callable[[Exception], None] = lambda _exc: None,
    ) -> None:
        self._redis = client
        self._node = node_id
        self._max_queued = max_queued
        self._p = f"{prefix}:"
        self._clock = clock
        self._on_error = on_error
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._cancel_queued = client.register_script(_CANCEL_QUEUED)
        self._claim_callback = client.register_script(_CLAIM_CALLBACK)
        self._lock = client.register_script(_LOCK)
        self._waiters: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self.on_cancel: Callable[[str], None] = lambda _task_id: None

    @property
    def node_id(self) -> str:
        """This node's name in the cluster (its ECS instance id)."""
        return self._node

    # -- TaskStore ------------------------------------------------------------------------

    async def open(self) -> None:
        """Make the consumer group, start listening to the cluster's channels."""
        await self.ensure_group()
        self._listener = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        """Stop listening; the client is closed by its owner."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        """Accept: idempotency, the queue bound and the stream entry in one script."""
        idem = self._idem_key(record) or ""
        async with self._translated():
            code, doc = await self._create(
                keys=[self._task_key(record.id), idem, self._p + "queue"],
                args=[
                    _dump(record),
                    record.id,
                    str(self._max_queued),
                    self._p,
                ],
            )
        if int(code) == 2:
            raise Overloaded(
                f"the cluster's queue holds {self._max_queued} tasks; retry later",
                retry_after_s=2,
            )
        if int(code) == 0:
            return _load(doc), False
        return record, True

    async def save(self, record: TaskRecord) -> None:
        """Write the record; at its end, expire it after retention and tell every node."""
        key = self._task_key(record.id)
        async with self._translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, _dump(record))
            node = record.extra.get("node")
            if record.status.terminal:
                if node:
                    pipe.srem(self._p + f"running:{node}", record.id)
                callback = record.callback
                if callback is not None and callback.status is CallbackStatus.PENDING:
                    pipe.zadd(self._p + "callbacks", {record.id: callback.next_attempt_at or 0})
                else:
                    pipe.zrem(self._p + "callbacks", record.id)
                    if record.expires_at is not None:
                        at = max(int(record.expires_at * 1000), int(self._clock() * 1000) + 1)
                        pipe.pexpireat(key, at)
                        idem = self._idem_key(record)
                        if idem:
                            pipe.pexpireat(idem, at)
                pipe.publish(self._p + "ended", record.id)
            await pipe.execute()
        if record.status.terminal:
            self._wake(record.id)

    async def get(self, task_id: str) -> TaskRecord | None:
        """The record, or None (unknown, or expired: Redis dropped it)."""
        async with self._translated():
            doc = await self._redis.get(self._task_key(task_id))
        if doc is None:
            return None
        record = _load(doc)
        if record.expires_at is not None and record.expires_at <= self._clock():
            return None
        return record

    async def unfinished(self) -> list[TaskRecord]:
        """This node's running tasks from before its restart (the queue lives on)."""
        return await self.running_on(self._node)

    async def callbacks_due(self, now: float, limit: int) -> list[TaskRecord]:
        """Due callbacks, each leased to this node for a minute so no other sends it too."""
        async with self._translated():
            due: list[Any] = await self._redis.zrangebyscore(
                self._p + "callbacks", "-inf", now, start=0, num=limit
            )
            claimed: list[str] = []
            for task_id in map(str, due):
                if await self._claim_callback(
                    keys=[self._p + "callbacks"], args=[task_id, now, now + 60]
                ):
                    claimed.append(task_id)
        records = [await self.get(task_id) for task_id in claimed]
        return [record for record in records if record is not None]

    async def purge_expired(self, now: float) -> int:
        """Nothing to do: Redis expires what is past its retention."""
        return 0

    async def wait_terminal(self, task_id: str, timeout_s: float) -> None:
        """Wait for the ``ended`` message (or re-read every 2 s, pub/sub being lossy)."""
        deadline = time.monotonic() + timeout_s
        event = self._waiters.setdefault(task_id, asyncio.Event())
        try:
            while True:
                record = await self.get(task_id)
                if record is None or record.status.terminal:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 2.0)):
                        await event.wait()
                event.clear()
        finally:
            if not event.is_set():
                self._waiters.pop(task_id, None)

    # -- the queue --------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """The queue's consumer group exists (made with the stream if need be)."""
        async with self._translated():
            try:
                await self._redis.xgroup_create(self._p + "queue", GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def claim_next(self, block_ms: int) -> TaskRecord | None:
        """Read one queued task (waiting up to ``block_ms``) and claim it for this node."""
        async with self._translated():
            answer: Any = await self._redis.xreadgroup(
                GROUP, self._node, {self._p + "queue": ">"}, count=1, block=block_ms
            )
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                return await self._claim_entry(entry_id, fields.get("id", ""))
        return None

    async def reclaim_abandoned(self, idle_ms: int) -> list[TaskRecord]:
        """Entries a dead node read but never claimed: take them over and claim them."""
        async with self._translated():
            answer: Any = await self._redis.xautoclaim(
                self._p + "queue", GROUP, self._node, idle_ms, start_id="0-0", count=10
            )
        claimed = []
        for entry_id, fields in answer[1] if len(answer) > 1 else []:
            if fields is None:
                continue
            record = await self._claim_entry(entry_id, fields.get("id", ""))
            if record is not None:
                claimed.append(record)
        return claimed

    async def queue_depth(self) -> int:
        """Tasks waiting in the cluster's queue."""
        async with self._translated():
            depth: int = await self._redis.xlen(self._p + "queue")
        return depth

    async def cancel_queued(self, task_id: str) -> TaskRecord | None:
        """Cancel the task if it is still queued (no node claims it after) and return it."""
        async with self._translated():
            doc = await self._cancel_queued(keys=[self._task_key(task_id)], args=[self._clock()])
        return _load(doc) if doc else None

    async def lock(self, name: str, ttl_s: float) -> bool:
        """True for the one node that takes ``name`` first, for ``ttl_s``."""
        async with self._translated():
            taken = await self._lock(
                keys=[f"{self._p}lock:{name}"], args=[self._node, int(ttl_s * 1000)]
            )
        return bool(taken)

    async def request_cancel(self, task_id: str) -> None:
        """Ask the node running ``task_id`` to cancel it."""
        async with self._translated():
            await self._redis.publish(self._p + "cancel", task_id)

    # -- nodes ------------------------------------------------------------------------------

    async def heartbeat(self, ttl_s: float) -> None:
        """This node is alive for ``ttl_s`` more seconds."""
        async with self._translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self._p + "nodes", self._node)
            pipe.set(self._p + f"node:{self._node}", str(self._clock()), px=int(ttl_s * 1000))
            await pipe.execute()

    async def nodes(self) -> dict[str, bool]:
        """Every node that joined, and whether its heartbeat is current."""
        async with self._translated():
            members = sorted(str(node) for node in await self._redis.smembers(self._p + "nodes"))
            if not members:
                return {}
            beats: list[Any] = await self._redis.mget(
                [self._p + f"node:{node}" for node in members]
            )
        return {node: beat is not None for node, beat in zip(members, beats, strict=True)}

    async def running_on(self, node: str) -> list[TaskRecord]:
        """The tasks ``node`` runs, as the store has them."""
        async with self._translated():
            ids = sorted(str(i) for i in await self._redis.smembers(self._p + f"running:{node}"))
        records = [await self.get(task_id) for task_id in ids]
        alive = [record for record in records if record is not None]
        if len(alive) < len(ids):  # expired or vanished ids: drop them from the set
            gone = set(ids) - {record.id for record in alive}
            async with self._translated():
                await self._redis.srem(self._p + f"running:{node}", *gone)
        return alive

    async def ping(self) -> float:
        """Seconds one round trip to Redis takes."""
        started = time.perf_counter()
        async with self._translated():
            await self._redis.ping()
        return time.perf_counter() - started

    # -- plumbing ---------------------------------------------------------------------------

    async def _claim_entry(self, entry_id: str, task_id: str) -> TaskRecord | None:
        async with self._translated():
            doc = await self._claim(
                keys=[
                    self._task_key(task_id),
                    self._p + "queue",
                    self._p + f"running:{self._node}",
                ],
                args=[self._node, self._clock(), entry_id, GROUP],
            )
        if not doc:
            return None
        record = _load(doc)  # as it was queued: with its request
        record.status, record.started_at = TaskStatus.RUNNING, self._clock()
        record.extra["node"] = self._node
        return record

    async def _listen_forever(self) -> None:
        """Relay ``ended`` to local long polls and ``cancel`` to the running node."""
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                async with pubsub:
                    await pubsub.subscribe(self._p + "ended", self._p + "cancel")
                    while True:
                        # A short wait, well inside the client's socket timeout.
                        message = await pubsub.get_message(timeout=_LISTEN_WAIT_S)
                        if message is not None:
                            self._dispatch(message)
            except (RedisError, OSError) as exc:
                log.debug("cluster_listener_reconnecting", error=str(exc))
                await asyncio.sleep(1.0)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel, task_id = message.get("channel"), str(message.get("data"))
        if channel == self._p + "ended":
            self._wake(task_id)
        elif channel == self._p + "cancel":
            self.on_cancel(task_id)

    def _wake(self, task_id: str) -> None:
        event = self._waiters.get(task_id)
        if event is not None:
            event.set()

    def _task_key(self, task_id: str) -> str:
        return f"{self._p}task:{task_id}"

    def _idem_key(self, record: TaskRecord) -> str | None:
        if record.idempotency_key is None:
            return None
        return f"{self._p}idem:{record.owner}:{record.idempotency_key}"

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        """The one seam where Redis's errors become ECS's."""
        try:
            yield
        except (RedisError, OSError) as exc:
            if isinstance(exc, ResponseError) and "BUSYGROUP" in str(exc):
                raise
            self._on_error(exc)
            raise StoreUnavailable(f"the cluster's Redis is unavailable: {exc}") from exc


def _dump(record: TaskRecord) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


def _load(doc: str | bytes) -> TaskRecord:
    data: dict[str, Any] = json.loads(doc)
    return TaskRecord.from_json(data)
