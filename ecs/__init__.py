"""ECS, the Ephemeral Container Service: one container per request, end to end.

Module map (flat, like httpx: one pipeline; docs/architecture.md draws it):

    entry       __main__, cli (serve | check | reap | creds), server (uvicorn, checks
                before binding), config (Settings: defaults → TOML → ECS_* env)
    web         app (create_app, lifespan), routes (_noop, _version, _health, /metrics),
                task_routes (/tasks: sync, async, read, cancel), middleware (correlation
                id, body cap), auth (API keys), error_responses (EcsError → JSON)
    use cases   runtime (the parts of one process; the sync run), task_service (stored
                tasks: async, idempotency, cancel, callbacks, restart), health
    a task      task_body (the POST body → TaskSpec), task_input (stdin, files,
                workdir), imageref (references), image_policy (allowlist), pulls,
                registry_auth, sandbox (the container's config), pipeline (pull →
                create → start → wait → output → inspect), demux (the output stream),
                removal (deleting containers after the answer), deferral (background
                engine work gives way to task starts), janitor (orphans), warm_pool /
                warm_run (warm pools; a task by exec in a pooled container), hijack
                (an upgraded two-way engine stream: stdin, exec)
    the engine  docker (the API client), engine_http (its requests, straight to an
                httpx transport), engine_network (that transport on asyncio streams),
                engine_version (negotiation), engine_probe
                (version and runtime at start-up and in health)
    state       task_records (records, the store interface), sqlite_store (one node),
                redis_store (the cluster), backends (which one), cluster (heartbeats,
                queue worker, lost nodes), limits / ratelimit / cluster_limits (per-key
                limits), slots (running and queued tasks), task_document (the task
                document, Prefer, Idempotency-Key), callbacks / callback_guard
    shared      exceptions (the one tree), responses (JSON shapes), metrics, logconfig,
                keys, disconnect (a client hanging up)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source for the version: pyproject.toml, through the installed distribution.
    __version__ = version("ecs-statusbridge")
except PackageNotFoundError:  # a source tree run without being installed
    __version__ = "0+unknown"

API_VERSION = "v1.1"

__all__ = ["API_VERSION", "__version__"]
