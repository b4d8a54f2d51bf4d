"""The orchestrator's operations, between the thin API layer and the store/scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from .. import API_VERSION, __version__
from ..config import Settings
from ..execution import RunnerError, check_runner
from ..tasks import NewTask, RetryPolicy, TaskStatus, WorkflowStatus
from . import observe, tracing
from .engine import WorkflowEngine
from .events import EventBus
from .liveness import Liveness
from .models import Attempt, LogLine, NodeInfo, Step, Task, TaskPage, Workflow
from .scheduler import Scheduler, task_summary
from .store import Store
from .storeclient import StoreClient

log = logging.getLogger("provisioning.orchestrator")


RETENTION_INTERVAL_SECONDS = 3600.0


def storage_size(path: object) -> int | None:
    """Bytes on disk of a file store (its WAL and shared memory too) or store folder."""
    if not isinstance(path, str) or path == ":memory:":
        return None
    base = Path(path)
    if base.is_dir():
        return sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
    sizes = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
    return sum(p.stat().st_size for p in sizes if p.is_file()) if base.is_file() else None


class InvalidTask(ValueError):
    """A submission that must not reach the queue; the message says why."""


class NotRunning(Exception):
    """Progress was reported for a task that is not running."""


class OrchestratorService:
    """One orchestrator node: submission, queries, cancel, progress, recovery."""

    def __init__(self, settings: Settings, store: Store, token: str) -> None:
        self.settings = settings
        self.node_id = f"node-{uuid.uuid4().hex[:12]}"
        self.started_at = time.time()
        self.bus = EventBus()
        self.db = StoreClient(store, deadline=settings.storage.call_timeout_seconds)
        sibling = store.sibling()
        self._beat = None if sibling is None else StoreClient(sibling)
        self._token = token.encode()
        scheme = "https" if settings.server.tls_cert else "http"
        endpoint = f"{scheme}://{settings.server.host}:{settings.server.port}"
        self.engine = WorkflowEngine(self.db, settings, self.bus)
        self.scheduler = Scheduler(
            self.db,
            settings,
            self.bus,
            node_id=self.node_id,
            endpoint=endpoint,
            task_token=self.task_token,
            on_finished=self.engine.after_task,
        )
        self.liveness = Liveness(self.db, self.scheduler, settings, self.node_id, beat=self._beat)
        self._retention: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        tracing.configure(self.settings)
        await self.liveness.start(socket.gethostname(), os.getpid())
        await self.engine.resume_pending_rollbacks()
        self.scheduler.start()
        self._retention = asyncio.create_task(self._retain(), name="retention")

    async def stop(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await self.scheduler.stop(self.settings.executor.shutdown_grace_seconds)
        await self.liveness.stop()
        await observe.drain()
        tracing.shutdown()
        self.bus.close()
        await asyncio.get_running_loop().run_in_executor(None, self.db.close)
        if self._beat is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._beat.close)

    async def _retain(self) -> None:
        """Delete finished work older than ``storage.retention_days``, now and then."""
        keep = self.settings.storage.retention_days * 86_400
        if not keep:
            return
        purge = self.db.store.purge_finished
        every = min(max(keep / 4, 1.0), RETENTION_INTERVAL_SECONDS)
        while True:
            try:
                removed: dict[str, int] = await self.db.run(purge, before=time.time() - keep)
            except Exception as exc:
                log.warning("retention: deleting old finished work failed (%s)", exc)
            else:
                if any(removed.values()):
                    log.info(
                        "retention: deleted %d task(s), %d log line(s), %d workflow(s) "
                        "finished over %g day(s) ago",
                        removed.get("tasks", 0),
                        removed.get("task_logs", 0),
                        removed.get("workflows", 0),
                        self.settings.storage.retention_days,
                    )
            await asyncio.sleep(every)

    # -- operations ---------------------------------------------------------------------

    def task_token(self, task_id: str) -> str:
        """A token that lets a handler report on its own task only."""
        return hmac.new(self._token, task_id.encode(), hashlib.sha256).hexdigest()

    def is_task_token(self, task_id: str, presented: str) -> bool:
        return hmac.compare_digest(self.task_token(task_id), presented)

    async def submit(self, new: NewTask, workflow_id: str | None = None) -> Task:
        try:
            check_runner(new.run, self.settings)
        except RunnerError as exc:
            raise InvalidTask(str(exc)) from None
        task: Task = await self.db.run(
            self.db.store.enqueue,
            new,
            default_timeout=self.settings.executor.task_timeout_seconds,
            default_retry=RetryPolicy(),
            now=time.time(),
            workflow_id=workflow_id,
        )
        self.bus.publish("task", "created", task_summary(task))
        self.scheduler.wake()
        return task

    async def get(self, task_id: str) -> Task | None:
        result: Task | None = await self.db.run(self.db.store.get, task_id)
        return result

    async def list_tasks(self, status: TaskStatus | None, limit: int, offset: int) -> TaskPage:
        page: TaskPage = await self.db.run(
            self.db.store.list_tasks, status=status, limit=limit, offset=offset
        )
        return page

    async def attempts(self, task_id: str) -> list[Attempt]:
        found: list[Attempt] = await self.db.run(self.db.store.attempts, task_id)
        return found

    async def logs(self, task_id: str, after: int, limit: int) -> list[LogLine]:
        lines: list[LogLine] = await self.db.run(
            self.db.store.logs, task_id, after=after, limit=limit
        )
        return lines

    async def cancel(self, task_id: str) -> Task | None:
        task: Task | None = await self.db.run(
            self.db.store.request_cancel, task_id, now=time.time()
        )
        if task is None:
            return None
        if task.status is TaskStatus.CANCELLED:
            self.bus.publish("task", "finished", task_summary(task))
            await self.engine.after_task(task)
        elif task.status is TaskStatus.RUNNING:
            self.scheduler.cancel_local(task_id)
            self.bus.publish("task", "cancel_requested", task_summary(task))
        return task

    async def submit_workflow(self, data: Any) -> Workflow:
        """Validate and queue a workflow; raises :class:`~..workflow.PlanError`."""
        return self._woken(await self.engine.submit(data))

    async def cancel_workflow(self, workflow_id: str) -> Workflow:
        workflow, running = await self.engine.cancel(workflow_id)
        for task_id in running:
            self.scheduler.cancel_local(task_id)
        return workflow

    async def retry_workflow(self, workflow_id: str) -> Workflow:
        return self._woken(await self.engine.retry(workflow_id))

    async def rollback_workflow(self, workflow_id: str) -> Workflow:
        return self._woken(await self.engine.rollback(workflow_id))

    def _woken(self, workflow: Workflow) -> Workflow:
        """The scheduler is told at once: the workflow has new tasks to claim."""
        self.scheduler.wake()
        return workflow

    async def workflow_record(self, workflow_id: str) -> Workflow | None:
        """The workflow's row alone: its status and counts (O(1))."""
        found: Workflow | None = await self.db.run(self.db.store.get_workflow, workflow_id)
        return found

    async def workflow(self, workflow_id: str) -> tuple[Workflow, list[Step], list[Task]] | None:
        found: Workflow | None = await self.db.run(self.db.store.get_workflow, workflow_id)
        if found is None:
            return None
        steps: list[Step] = await self.db.run(self.db.store.workflow_steps, workflow_id)
        tasks: list[Task] = await self.db.run(self.db.store.workflow_tasks, workflow_id)
        return found, steps, tasks

    async def workflows(
        self, status: WorkflowStatus | None, limit: int, offset: int
    ) -> tuple[list[Workflow], int]:
        page: tuple[list[Workflow], int] = await self.db.run(
            self.db.store.list_workflows, status=status, limit=limit, offset=offset
        )
        return page

    async def progress(self, task_id: str, progress: int, message: str | None) -> Task:
        task: Task | None = await self.db.run(
            self.db.store.record_progress, task_id, progress, message
        )
        if task is None:
            raise NotRunning(task_id)
        self.bus.publish("task", "progress", {**task_summary(task), "message": message})
        return task

    async def health(self) -> dict[str, Any]:
        store = {}
        if self.db.full:
            store["store"] = "full: writes fail for lack of space"
        elif self.db.unavailable:
            store["store"] = f"unavailable: {self.db.unavailable_why}"
        return {
            "status": "degraded" if store else "healthy",
            **store,
            "version": __version__,
            "api_version": API_VERSION,
            "node_id": self.node_id,
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }

    async def status(self) -> dict[str, Any]:
        counts: dict[str, int] = await self.db.run(self.db.store.counts)
        meta: dict[str, Any] = await self.db.run(self.db.store.meta)
        nodes: list[NodeInfo] = await self.db.run(self.db.store.nodes)
        size = await asyncio.to_thread(storage_size, meta.get("path"))
        return {
            **(await self.health()),
            "storage": {**meta, "size_bytes": size} if size is not None else meta,
            "tasks": counts,
            "running_here": self.scheduler.running_count,
            "max_concurrent_tasks": self.settings.executor.max_concurrent_tasks,
            "nodes": [
                {
                    "id": node.id,
                    "host": node.host,
                    "pid": node.pid,
                    "max_concurrent": node.max_concurrent,
                    "running": node.running,
                    "started_at": node.started_at,
                    "last_seen": node.last_seen,
                    "seconds_since_heartbeat": round(time.time() - node.last_seen, 1),
                    "this": node.id == self.node_id,
                }
                for node in nodes
            ],
        }
