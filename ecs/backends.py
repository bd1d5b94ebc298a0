"""One node or a cluster: where task records, the queue and the per-key limits live.

Without ``cluster.redis_url`` everything is this process's (SQLite file, local limits).
With it, Redis holds the records, the queue and the limits of every node, and the node
falls back to local limits while Redis is away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ecs.cluster import ClusterLink
from ecs.cluster_limits import ClusterLimits
from ecs.config import Settings
from ecs.limits import KeyLimits, LocalLimits
from ecs.metrics import EcsMetrics
from ecs.ratelimit import KeyLimiter
from ecs.redis_store import RedisTaskStore
from ecs.sqlite_store import SqliteTaskStore
from ecs.task_records import TaskStore


@dataclass
class Backends:
    """What the runtime wires in: a store, the limits, and in cluster mode Redis itself."""

    store: TaskStore
    limiter: KeyLimits
    failed_auth: KeyLimits
    redis: aioredis.Redis | None = None
    redis_store: RedisTaskStore | None = None
    cluster_limits: tuple[ClusterLimits, ...] = ()
    link: ClusterLink | None = None


def build_backends(settings: Settings, metrics: EcsMetrics) -> Backends:
    """The one-node backends, or the cluster's on the configured Redis."""
    local = LocalLimits(
        KeyLimiter(settings.rate_limit_per_s, settings.rate_limit_burst, settings.max_tasks_per_key)
    )
    # Per client address; the task maximum does not apply to failures.
    local_failures = LocalLimits(
        KeyLimiter(settings.failed_auth_per_s, settings.failed_auth_burst, max_tasks=1)
    )
    cluster = settings.cluster
    if cluster.redis_url is None:
        return Backends(
            store=SqliteTaskStore(settings.state_path, time.time),
            limiter=local,
            failed_auth=local_failures,
        )
    password = cluster.redis_password.get_secret_value() if cluster.redis_password else None
    client = aioredis.Redis.from_url(
        cluster.redis_url,
        password=password,
        decode_responses=True,
        socket_timeout=cluster.redis_timeout_s,
        socket_connect_timeout=cluster.redis_timeout_s,
        health_check_interval=max(1, int(cluster.heartbeat_s)),
        # A pooled connection that died with a Redis restart is retried once on a new one;
        # a slow Redis (a timeout) is not retried: it counts as away.
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[RedisConnectionError],
    )
    link = ClusterLink(metrics)

    def shared_limits(
        fallback: LocalLimits, rate_per_s: float, burst: int, max_tasks: int, name: str
    ) -> ClusterLimits:
        return ClusterLimits(
            client,
            fallback,
            rate_per_s=rate_per_s,
            burst=burst,
            max_tasks=max_tasks,
            lease_ttl_s=cluster.node_timeout_s,
            name=name,
            prefix=cluster.key_prefix,
            available=lambda: link.available,
            on_error=link.failed,
        )

    limiter = shared_limits(
        local,
        settings.rate_limit_per_s,
        settings.rate_limit_burst,
        settings.max_tasks_per_key,
        "key",
    )
    # Per client address; the task maximum does not apply to failures.
    failed_auth = shared_limits(
        local_failures, settings.failed_auth_per_s, settings.failed_auth_burst, 1, "authfail"
    )
    store = RedisTaskStore(
        client,
        node_id=settings.instance_id,
        max_queued=settings.max_queued_tasks,
        prefix=cluster.key_prefix,
        on_error=link.failed,
    )
    return Backends(
        store=store,
        limiter=limiter,
        failed_auth=failed_auth,
        redis=client,
        redis_store=store,
        cluster_limits=(limiter,),
        link=link,
    )
