"""Tasks that outlive a request: async submission, idempotent retries, cancel, callbacks.

A stored task goes ``queued → running → succeeded | failed | cancelled``. The service
reserves a queue place when it accepts a task (a full queue is a 503 before anything is
stored), runs it on the same slots and pipeline as a sync request, records its end, and
delivers its callback from the store, so a restart loses none of them:

- at start-up, tasks that were running end ``failed`` with ``interrupted`` (their
  container went with the process; the janitor removes it), queued ones run, pending
  callbacks are delivered;
- at shutdown, running tasks get the grace period, then end ``interrupted``; queued ones
  stay queued in the store for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ecs.callback_guard import CallbackPolicy
from ecs.callbacks import CallbackSender, Verdict, retry_delay_s
from ecs.exceptions import (
    EcsError,
    FieldProblem,
    IdempotencyKeyReused,
    InvalidRequest,
    TaskNotFound,
)
from ecs.limits import KeyLimits
from ecs.metrics import EcsMetrics
from ecs.pipeline import TaskRunner, TaskSpec, new_task_id
from ecs.responses import TaskResult
from ecs.slots import SlotReservation, TaskSlots
from ecs.task_document import body_hash, document_bytes
from ecs.task_records import (
    Callback,
    CallbackStatus,
    SharedQueue,
    TaskRecord,
    TaskStatus,
    TaskStore,
)

log = structlog.get_logger(__name__)

Prepare = Callable[[Any], TaskSpec]  # body → checked spec (400/403 raise), as for sync
_CALLBACK_BATCH = 16
_CALLBACK_POLL_S = 1.0
_PURGE_EVERY_S = 60.0
_REMOTE_CANCEL_WAIT_S = 5.0
NODE_LOST = FieldProblem(
    "node_lost", "the ECS node running the task stopped answering; submit it again"
)
INTERRUPTED = FieldProblem(
    "interrupted", "ECS stopped while the task ran, so it was not run to its end; submit it again"
)


@dataclass(frozen=True)
class Submission:
    """The task a submission refers to; ``created`` is False for an idempotent repeat."""

    record: TaskRecord
    created: bool


class TaskService:
    """The use cases behind ``/v1.1/tasks`` for stored tasks."""

    def __init__(
        self,
        store: TaskStore,
        runner: TaskRunner,
        slots: TaskSlots,
        limiter: KeyLimits,
        metrics: EcsMetrics,
        prepare: Prepare,
        *,
        retention_s: float,
        callback_policy: CallbackPolicy,
        callbacks: CallbackSender | None,
        callback_retry_s: float,
        shared_queue: SharedQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runner = runner
        self._slots = slots
        self._limiter = limiter
        self._metrics = metrics
        self._prepare = prepare
        self._retention_s = retention_s
        self._callback_policy = callback_policy
        self._callbacks = callbacks
        self._callback_retry_s = callback_retry_s
        self._shared = shared_queue  # cluster mode: the store queues, nodes claim
        self._clock = clock
        self._executions: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._callbacks_due = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def callbacks_enabled(self) -> bool:
        """A callback secret is configured: callbacks can be signed, so they are allowed."""
        return self._callbacks is not None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, settle what a previous process left, start the background loops."""
        await self._store.open()
        await self._recover()
        self._loops = [
            asyncio.create_task(self._deliver_callbacks_forever()),
            asyncio.create_task(self._purge_forever()),
        ]

    async def stop(self, grace_s: float) -> None:
        """Give running tasks ``grace_s``, cut the rest off, deliver nothing more, close."""
        running = [job for job in self._executions.values() if not job.done()]
        if running:
            await asyncio.wait(running, timeout=grace_s)
        for job in list(self._executions.values()):
            job.cancel()
        await asyncio.gather(*self._executions.values(), return_exceptions=True)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._store.close()

    # -- use cases ----------------------------------------------------------------------

    async def submit(
        self,
        body: Any,
        *,
        owner: str,
        base_url: str,
        idempotency_key: str | None,
        respond_async: bool,
    ) -> Submission:
        """Accept a task into the store and the queue, or find its idempotent original."""
        if owner:
            await self._limiter.take(owner)  # the request rate, before any other work
        spec = self._prepare(body)
        callback_url = body.get("callback_url") if isinstance(body, dict) else None
        if callback_url is not None and not respond_async:
            raise _callback_problem("callback_url needs an async request (Prefer: respond-async)")
        if callback_url is not None and not self.callbacks_enabled:
            raise _callback_problem(
                "this server has no callback_secret, and never sends unsigned callbacks"
            )
        if callback_url is not None:
            problem = self._callback_policy.url_problem(callback_url)
            if problem is not None:
                raise _callback_problem(problem)
        # A full queue is a 503 before anything is stored (the cluster's store checks its own).
        reservation = self._slots.reserve() if self._shared is None else None
        record = TaskRecord(
            id=new_task_id(),
            owner=owner,
            status=TaskStatus.QUEUED,
            created_at=self._clock(),
            base_url=base_url,
            request=body,
            idempotency_key=idempotency_key,
            body_hash=body_hash(body) if idempotency_key is not None else None,
            callback=Callback(url=callback_url) if callback_url else None,
        )
        try:
            stored, created = await self._store.create(record)
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        if not created:
            if reservation is not None:
                reservation.release()
            if stored.body_hash != record.body_hash:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {idempotency_key!r} was used for task {stored.id} with a "
                    "different body; use a new key for a new task"
                )
            return Submission(stored, created=False)
        if reservation is not None:
            self._dispatch(stored, spec, reservation)
        return Submission(stored, created=True)

    async def run_claimed(self, record: TaskRecord) -> None:
        """Run a task this node claimed from the cluster's queue."""
        try:
            spec = self._prepare(record.request)
        except EcsError as exc:  # the rules changed since it was accepted
            await self._finish(record, TaskStatus.FAILED, error=exc)
            return
        self._dispatch(record, spec, self._slots.reserve(force=True))

    async def fail_lost(self, record: TaskRecord) -> None:
        """The node running ``record`` died: the task failed (its callback still fires)."""
        await self._finish(record, TaskStatus.FAILED, problem=NODE_LOST, http_status=503)

    def cancel_here(self, task_id: str) -> None:
        """Cancel ``task_id`` if it runs in this process (asked by another node)."""
        job = self._executions.get(task_id)
        if job is not None and not job.done():
            self._cancel_requested.add(task_id)
            job.cancel()

    async def get(self, owner: str, task_id: str, *, wait_s: float = 0.0) -> TaskRecord:
        """The task's record, after waiting up to ``wait_s`` for it to be terminal."""
        record = await self._visible(owner, task_id)
        if wait_s > 0 and not record.status.terminal:
            await self._store.wait_terminal(task_id, wait_s)
            record = await self._visible(owner, task_id)
        return record

    async def until_terminal(self, record: TaskRecord) -> TaskRecord:
        """Wait, however long, for the task to end (a sync request with an idempotency key)."""
        while not record.status.terminal:
            await self._store.wait_terminal(record.id, 60.0)
            record = await self._visible(record.owner, record.id)
        return record

    async def cancel(self, owner: str, task_id: str) -> tuple[TaskRecord, bool]:
        """Drop a queued task, kill a running one; True when it was not terminal yet."""
        record = await self._visible(owner, task_id)
        if record.status.terminal:
            return record, False
        self._cancel_requested.add(task_id)
        job = self._executions.get(task_id)
        try:
            if job is not None:
                job.cancel()
                # Its handler records the end; the container is removed on its way out.
                await asyncio.gather(job, return_exceptions=True)
            elif self._shared is None:
                await self._finish(record, TaskStatus.CANCELLED)
            else:
                await self._cancel_in_cluster(record)
        finally:
            self._cancel_requested.discard(task_id)
        return await self._visible(owner, task_id), True

    async def _cancel_in_cluster(self, record: TaskRecord) -> None:
        """Cancel a task queued in the cluster, or one running on another node."""
        assert self._shared is not None
        queued = await self._shared.cancel_queued(record.id)
        if queued is not None:
            await self._finish(queued, TaskStatus.CANCELLED)
            return
        await self._shared.request_cancel(record.id)
        await self._store.wait_terminal(record.id, _REMOTE_CANCEL_WAIT_S)

    # -- running ------------------------------------------------------------------------

    def _dispatch(self, record: TaskRecord, spec: TaskSpec, reservation: SlotReservation) -> None:
        job = asyncio.create_task(self._execute(record, spec, reservation))
        self._executions[record.id] = job
        job.add_done_callback(lambda _job: self._executions.pop(record.id, None))

    async def _execute(
        self, record: TaskRecord, spec: TaskSpec, reservation: SlotReservation
    ) -> None:
        try:
            async with self._per_key(record.owner), reservation.hold():
                record.status, record.started_at = TaskStatus.RUNNING, self._clock()
                record.request = None  # not needed any more, and it may hold credentials
                # Written while the pipeline pulls and creates: the end is written after.
                marked = asyncio.ensure_future(self._store.save(_copy(record)))
                try:
                    outcome = await self._runner.run(spec, record.id)
                finally:
                    await asyncio.shield(marked)
        except asyncio.CancelledError:
            reservation.release()
            await self._cancelled(record)
            return
        except EcsError as exc:
            self._metrics.task_failed(exc)
            await self._finish(record, TaskStatus.FAILED, error=exc)
            return
        except Exception as exc:
            log.exception("task_crashed", task=record.id)
            self._metrics.task_failed(exc)
            await self._finish(record, TaskStatus.FAILED, error=EcsError(f"internal error: {exc}"))
            return
        self._metrics.task_finished(timed_out=outcome.timed_out, oom_killed=outcome.oom_killed)
        result = TaskResult.from_outcome(outcome).model_dump()
        await self._finish(record, TaskStatus.SUCCEEDED, result=result)

    async def _cancelled(self, record: TaskRecord) -> None:
        """Cancelled by DELETE → cancelled; cut off by shutdown → interrupted, or still queued."""
        if record.id in self._cancel_requested:
            await self._finish(record, TaskStatus.CANCELLED)
        elif record.status is TaskStatus.RUNNING:
            await self._finish(record, TaskStatus.FAILED, problem=INTERRUPTED, http_status=503)
        # A queued task cut off by shutdown stays queued in the store: it runs after restart.

    def _per_key(self, owner: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self._limiter.waiting_task(owner) if owner else contextlib.nullcontext()

    async def _finish(
        self,
        record: TaskRecord,
        status: TaskStatus,
        *,
        result: dict[str, Any] | None = None,
        error: EcsError | None = None,
        problem: FieldProblem | None = None,
        http_status: int | None = None,
    ) -> None:
        now = self._clock()
        record.status, record.finished_at = status, now
        record.expires_at = now + self._retention_s
        record.request = None
        record.result = result
        if error is not None:
            record.errors = [_problem_json(p) for p in error.problems()]
            record.http_status = error.status
        elif problem is not None:
            record.errors, record.http_status = [_problem_json(problem)], http_status
        if record.callback is not None and record.callback.status is CallbackStatus.PENDING:
            record.callback.next_attempt_at = now
            record.callback.give_up_at = now + self._callback_retry_s
            self._callbacks_due.set()
        await self._store.save(record)
        log.info("task_ended", task=record.id, status=str(status), code=_first_code(record))

    async def _recover(self) -> None:
        """Settle the previous process's tasks: running ones were interrupted, queued run."""
        unfinished = await self._store.unfinished()
        for record in [r for r in unfinished if r.status is TaskStatus.RUNNING]:
            await self._finish(record, TaskStatus.FAILED, problem=INTERRUPTED, http_status=503)
        for record in [r for r in unfinished if r.status is TaskStatus.QUEUED]:
            try:
                spec = self._prepare(record.request)
            except EcsError as exc:  # the server's rules changed since it was accepted
                await self._finish(record, TaskStatus.FAILED, error=exc)
                continue
            self._dispatch(record, spec, self._slots.reserve(force=True))
        if await self._store.callbacks_due(self._clock(), limit=1):
            self._callbacks_due.set()

    # -- callbacks and retention --------------------------------------------------------

    async def _deliver_callbacks_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CALLBACK_POLL_S):
                    await self._callbacks_due.wait()
            self._callbacks_due.clear()
            try:
                due = await self._store.callbacks_due(self._clock(), _CALLBACK_BATCH)
                await asyncio.gather(*(self._deliver(record) for record in due))
            except Exception:  # a broken pass is logged; the next one tries again
                log.exception("callback_pass_failed")

    async def _deliver(self, record: TaskRecord) -> None:
        callback = record.callback
        assert callback is not None  # only records with a pending callback are due
        callback.attempts += 1
        if self._callbacks is None:  # the secret was removed since: never send unsigned
            verdict, detail = Verdict.GIVE_UP, "no callback_secret configured"
        else:
            attempt = await self._callbacks.attempt(callback.url, record.id, document_bytes(record))
            verdict, detail = attempt.verdict, attempt.detail
        now = self._clock()
        delay = retry_delay_s(callback.attempts)
        if verdict is Verdict.DELIVERED:
            callback.status, callback.next_attempt_at = CallbackStatus.DELIVERED, None
        elif verdict is Verdict.RETRY and now + delay < (callback.give_up_at or now):
            callback.next_attempt_at = now + delay
        else:
            callback.status, callback.next_attempt_at = CallbackStatus.FAILED, None
        callback.last_error = None if verdict is Verdict.DELIVERED else detail
        await self._store.save(record)
        self._metrics.callback_attempted(str(callback.status))
        log.info(
            "callback_attempt",
            task=record.id,
            attempt=callback.attempts,
            status=str(callback.status),
            detail=detail,
        )

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(min(_PURGE_EVERY_S, self._retention_s / 4))
            try:
                await self._store.purge_expired(self._clock())
            except Exception:
                log.exception("purge_failed")

    async def _visible(self, owner: str, task_id: str) -> TaskRecord:
        record = await self._store.get(task_id)
        if record is None or record.owner != owner:
            raise TaskNotFound(f"no task {task_id} for this API key (or it has expired)")
        return record


def _copy(record: TaskRecord) -> TaskRecord:
    """A snapshot, so a write in flight is not changed under it."""
    return TaskRecord.from_json(record.to_json())


def _callback_problem(message: str) -> InvalidRequest:
    code = "callback_not_allowed"
    return InvalidRequest([FieldProblem(code, message, "callback_url")])


def _problem_json(problem: FieldProblem) -> dict[str, Any]:
    item: dict[str, Any] = {"code": problem.code, "message": problem.message}
    if problem.field:
        item["field"] = problem.field
    return item


def _first_code(record: TaskRecord) -> str | None:
    return str(record.errors[0]["code"]) if record.errors else None
