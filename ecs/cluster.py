"""One node of an ECS cluster: heartbeats, taking queued work, settling lost nodes.

```
 every node ──heartbeat (ecs:node:NODE, TTL node_timeout_s)──▶ Redis
     │  worker: a slot free? ──XREADGROUP 1──▶ claim (queued → running here) ──▶ run
     │  sweep:  a node without heartbeat? ──lock──▶ its running tasks → failed node_lost
     │          entries it read but never claimed ──XAUTOCLAIM──▶ claimed here
     └  while Redis is away: degraded (gauge 1, logged once), sync tasks on local
        limits, async endpoints 503; a probe rejoins by itself when Redis answers
```
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ecs.cluster_limits import ClusterLimits
from ecs.exceptions import StoreUnavailable
from ecs.metrics import EcsMetrics
from ecs.redis_store import RedisTaskStore
from ecs.slots import TaskSlots
from ecs.task_service import TaskService

log = structlog.get_logger(__name__)

_CLAIM_BLOCK_MS = 1000
_IDLE_POLL_S = 0.1


class ClusterLink:
    """Whether Redis answers, as the node last saw it; each change is logged once."""

    def __init__(self, metrics: EcsMetrics) -> None:
        self._metrics = metrics
        self.available = True
        metrics.cluster_degraded(False)

    def failed(self, error: object) -> None:
        """A Redis call failed."""
        self._metrics.redis_error()
        if self.available:
            self.available = False
            self._metrics.cluster_degraded(True)
            log.warning("cluster_degraded", error=str(error))

    def answered(self) -> None:
        """A Redis call succeeded."""
        if not self.available:
            self.available = True
            self._metrics.cluster_degraded(False)
            log.info("cluster_rejoined")


class ClusterNode:
    """The background work of a node in cluster mode."""

    def __init__(
        self,
        store: RedisTaskStore,
        service: TaskService,
        slots: TaskSlots,
        limits: list[ClusterLimits],
        link: ClusterLink,
        metrics: EcsMetrics,
        *,
        heartbeat_s: float,
        node_timeout_s: float,
        redis_timeout_s: float,
    ) -> None:
        self._store = store
        self._service = service
        self._slots = slots
        self._limits = limits
        self._link = link
        self._metrics = metrics
        self._heartbeat_s = heartbeat_s
        self._node_timeout_s = node_timeout_s
        # A blocking read must answer inside the client's socket timeout.
        self._claim_block_ms = max(10, min(_CLAIM_BLOCK_MS, int(redis_timeout_s * 500)))
        self._loops: list[asyncio.Task[None]] = []
        store.on_cancel = service.cancel_here

    @property
    def store(self) -> RedisTaskStore:
        """The cluster's store (health pings it)."""
        return self._store

    async def start(self) -> None:
        """Join (if Redis answers now) and start the loops; a Redis away is no error."""
        with contextlib.suppress(StoreUnavailable):
            await self._beat()
        self._loops = [
            asyncio.create_task(self._heartbeat_forever()),
            asyncio.create_task(self._work_forever()),
        ]

    async def stop(self) -> None:
        """Stop taking work and beating; running tasks are the service's to finish."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._beat()
                await self._sweep()
            except StoreUnavailable as exc:
                self._link.failed(exc)
            except Exception:  # a broken pass is logged; the next one tries again
                log.exception("cluster_pass_failed")

    async def _beat(self) -> None:
        latency = await self._store.ping()
        self._metrics.redis_round_trip(latency)
        was_away = not self._link.available
        self._link.answered()
        if was_away:
            await self._store.ensure_group()  # Redis may have restarted empty
        await self._store.heartbeat(self._node_timeout_s)
        for limits in self._limits:
            await limits.refresh_leases()
        self._metrics.cluster_seen(queue_depth=await self._store.queue_depth())

    async def _sweep(self) -> None:
        """Settle the running tasks of nodes whose heartbeat stopped."""
        nodes = await self._store.nodes()
        self._metrics.cluster_seen(nodes_alive=sum(nodes.values()))
        for node, alive in nodes.items():
            if alive or node == self._store.node_id:
                continue
            if not await self._store.lock(f"sweep:{node}", self._heartbeat_s * 2):
                continue  # another node sweeps it now
            for record in await self._store.running_on(node):
                if record.status.terminal:
                    continue
                log.warning("task_lost_with_its_node", task=record.id, node=node)
                self._metrics.task_lost()
                await self._service.fail_lost(record)
        idle_ms = int(self._node_timeout_s * 1000)
        for record in await self._store.reclaim_abandoned(idle_ms):
            self._metrics.task_claimed()
            await self._service.run_claimed(record)

    async def _work_forever(self) -> None:
        """Take one queued task whenever this node has a free slot."""
        while True:
            if not self._link.available or self._slots.free <= 0:
                await asyncio.sleep(_IDLE_POLL_S)
                continue
            started = time.monotonic()
            try:
                record = await self._store.claim_next(self._claim_block_ms)
            except StoreUnavailable as exc:
                self._link.failed(exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("cluster_claim_failed")
                await asyncio.sleep(1.0)
                continue
            if record is None:
                if time.monotonic() - started < self._claim_block_ms / 2000:
                    await asyncio.sleep(_IDLE_POLL_S)  # answered at once: do not spin
                continue
            self._metrics.task_claimed()
            await self._service.run_claimed(record)
