"""Workflow verbs of the SurrealDB backend: creation, progression, cancel, retry, undo.

The rules are :mod:`..flow`'s, exactly as the SQL stores apply them.
Progression runs inside the transaction that ends a task, so a finished step
releases its dependents atomically with its own completion. A verb loads the
workflow it touches (its record, steps and edges; the status of each of its tasks
only when a step completes or fails) into a :class:`Flow`, applies the rules there,
and the transaction writes the changed fields back with the set-based task
updates the rules made.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, Unpack

from surrealdb import RecordID

from ...tasks import Priority, TaskStatus, WorkflowStatus
from .. import flow as rules
from ..models import NewStep, Workflow
from .base import NewWorkflow, TaskDefaults, task_defaults
from .surreal_rows import new_task_row, rid, workflow_of
from .surreal_tx import Tx

T = TypeVar("T")

OPEN_TASK = rules.OPEN_TASK


class Flow:
    """One workflow as a verb changes it: the record, its steps and edges, and (loaded
    only when a rule needs them) the step and status of each of its tasks. Task
    updates are queued on the transaction as they are decided, by record id;
    :meth:`flush` writes the changed fields of the workflow and its steps.

    Tasks are always updated by id, never with ``UPDATE task ... WHERE status IN``:
    inside a transaction, SurrealDB 2.3's index scan misses records whose indexed
    field an earlier statement of the same transaction changed.
    """

    def __init__(
        self,
        tx: Tx,
        workflow: dict[str, Any],
        steps: Iterable[dict[str, Any]],
        edges: Iterable[Mapping[str, Any]],
        load_tasks: Callable[[], Iterable[Mapping[str, Any]]],
    ) -> None:
        self.tx = tx
        self.id: str = str(workflow["id"].id)
        self.wf = workflow
        self._wf_before = dict(workflow)
        self.steps: dict[str, dict[str, Any]] = {s["step_id"]: s for s in steps}
        self._steps_before = {k: dict(v) for k, v in self.steps.items()}
        self.edges: list[tuple[str, str]] = [(e["step_id"], e["dependent_id"]) for e in edges]
        self._load_tasks = load_tasks
        # Task key -> [step id, status], as this transaction leaves them.
        self._tasks: dict[str, list[str]] | None = None
        # Task changes decided before the tasks were loaded.
        self._moved: dict[str, list[str]] = {}

    # -- tasks --------------------------------------------------------------------------

    def tasks(self) -> dict[str, list[str]]:
        if self._tasks is None:
            found = {
                str(row["id"].id): [row["step_id"], row["status"]] for row in self._load_tasks()
            }
            found.update(self._moved)
            self._tasks = found
        return self._tasks

    def task_moved(self, task: RecordID, step_id: str, status: str) -> None:
        """One task (maybe new) of ``step_id`` now has ``status``; its write is queued."""
        target = self._moved if self._tasks is None else self._tasks
        target[str(task.id)] = [step_id, status]

    def add_step(self, row: dict[str, Any]) -> None:
        """A step created in this transaction (its insert is already queued)."""
        self.steps[row["step_id"]] = dict(row)
        self._steps_before[row["step_id"]] = dict(row)

    def move_tasks(
        self,
        steps: Iterable[str] | None,
        before: Sequence[str],
        after: str,
        sets: Mapping[str, Any],
    ) -> int:
        """Move the tasks of ``steps`` (every step when ``None``) whose status is in
        ``before`` to ``after``, setting ``sets`` too; how many moved."""
        chosen = None if steps is None else set(steps)
        moved = sorted(
            key
            for key, (step_id, status) in self.tasks().items()
            if status in before and (chosen is None or step_id in chosen)
        )
        if not moved:
            return 0
        for key in moved:
            self.tasks()[key][1] = after
        assignments = ", ".join(["status = $after", *(f"{name} = $f_{name}" for name in sets)])
        self.tx.add(
            f"UPDATE $ids SET {assignments} RETURN NONE",
            ids=[rid("task", key) for key in moved],
            after=after,
            **{f"f_{name}": value for name, value in sets.items()},
        )
        return len(moved)

    # -- writing back -------------------------------------------------------------------

    def flush(self) -> None:
        """Queue the changed fields of the workflow and of each step."""
        self.tx.set(self.wf["id"], _changed(self._wf_before, self.wf))
        for step_id, step in self.steps.items():
            self.tx.set(step["id"], _changed(self._steps_before[step_id], step))


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in after.items()
        if name != "id" and (name not in before or before[name] != value)
    }


class SurrealWorkflowVerbs(ABC):
    """Mixed into :class:`~.surreal.SurrealStore`."""

    @abstractmethod
    def _transact(self, build: Callable[[Tx], T]) -> T: ...

    @abstractmethod
    def _query(self, sql: str, **params: Any) -> list[Any]: ...

    @abstractmethod
    def _select(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    # -- loading ------------------------------------------------------------------------

    def _flow(self, tx: Tx, workflow_id: str) -> Flow | None:
        workflow, steps, edges = self._query(
            "SELECT * OMIT spec FROM ONLY $id;"
            " SELECT * FROM wf_step WHERE workflow_id = $w;"
            " SELECT * FROM wf_edge WHERE workflow_id = $w;",
            id=rid("workflow", workflow_id),
            w=workflow_id,
        )
        if workflow is None:
            return None

        def load_tasks() -> list[dict[str, Any]]:
            return self._select(
                "SELECT id, step_id, status FROM task WHERE workflow_id = $w", w=workflow_id
            )

        return Flow(
            tx,
            dict(workflow),
            [dict(s) for s in steps or []],
            edges or [],
            load_tasks,
        )

    # -- creation -----------------------------------------------------------------------

    def _insert_steps(
        self,
        tx: Tx,
        flow: Flow | None,
        workflow_id: str,
        steps: Sequence[NewStep],
        **defaults: Unpack[TaskDefaults],
    ) -> int:
        step_rows: list[dict[str, Any]] = []
        edge_rows: list[dict[str, Any]] = []
        task_rows: list[dict[str, Any]] = []
        for step in steps:
            waiting = len(step.depends_on)
            step_status, task_status = rules.initial_status(waiting)
            row: dict[str, Any] = {
                "id": rid("wf_step", [workflow_id, step.step_id]),
                "workflow_id": workflow_id,
                "step_id": step.step_id,
                "kind": step.kind,
                "position": step.position,
                "layer": step.layer,
                "on_failure": step.on_failure,
                "status": step_status.value,
                "waiting_on": waiting,
                "total": len(step.tasks),
                "completed": 0,
                "failed": 0,
            }
            step_rows.append(row)
            edge_rows.extend(
                {
                    "id": rid("wf_edge", [workflow_id, dep, step.step_id]),
                    "workflow_id": workflow_id,
                    "step_id": dep,
                    "dependent_id": step.step_id,
                }
                for dep in step.depends_on
            )
            for item, task in enumerate(step.tasks):
                task_rows.append(
                    new_task_row(
                        tx,
                        task,
                        status=task_status.value,
                        workflow_id=workflow_id,
                        step_id=step.step_id,
                        item=item,
                        **defaults,
                    )
                )
        for table, rows in (("wf_step", step_rows), ("wf_edge", edge_rows), ("task", task_rows)):
            if rows:
                tx.add(f"INSERT INTO {table} $rows RETURN NONE", rows=rows)
        if flow is not None:
            for row in step_rows:
                flow.add_step(row)
            flow.edges.extend((e["step_id"], e["dependent_id"]) for e in edge_rows)
            for row in task_rows:
                flow.task_moved(row["id"], row["step_id"], row["status"])
        return len(task_rows)

    def create_workflow(self, **new: Unpack[NewWorkflow]) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""

        def build(tx: Tx) -> Workflow:
            workflow_id = str(uuid.uuid4())
            count = self._insert_steps(tx, None, workflow_id, new["steps"], **task_defaults(new))
            row: dict[str, Any] = {
                "id": rid("workflow", workflow_id),
                "seq": tx.next_seq("workflow_seq"),
                "name": new["name"],
                "version": new["version"],
                "spec": json.dumps(new["spec"]),
                "status": WorkflowStatus.QUEUED.value,
                "phase": "run",
                "priority": int(Priority.parse(new["priority"])),
                "parallel_limit": new["parallel_limit"],
                "rollback_enabled": new["rollback_enabled"],
                "tasks_total": count,
                "tasks_open": count,
                "tasks_completed": 0,
                "tasks_failed": 0,
                "steps_completed": 0,
                "created_at": float(new["now"]),
            }
            tx.add("CREATE $id CONTENT $row RETURN NONE", id=row["id"], row=row)
            return workflow_of(row)

        return self._transact(build)

    # -- progression (inside the finishing transaction) ---------------------------------

    def _advance(self, tx: Tx, task: Mapping[str, Any], now: float) -> WorkflowStatus | None:
        """A workflow task just became terminal: count it, release or
        skip dependents, apply the failure policy, and end the phase when nothing is
        left open."""
        flow = self._flow(tx, task["workflow_id"])
        if flow is None:
            return None  # a task enqueued with a workflow id of no workflow
        step_id, status = task.get("step_id"), task["status"]
        if step_id is not None:
            flow.task_moved(task["id"], step_id, status)
        wf = flow.wf
        failure_before = wf.get("failure")
        completed, failed = rules.counted(TaskStatus(status))
        wf["tasks_open"] -= 1
        wf["tasks_completed"] += completed
        wf["tasks_failed"] += failed
        step = flow.steps.get(step_id) if step_id is not None else None
        if step is not None:
            if status == TaskStatus.COMPLETED:
                step["completed"] += 1
                if rules.step_completes(step["completed"], step["total"], step["failed"]):
                    self._step_completed(flow, step["step_id"], failure_before, now)
            elif status != TaskStatus.SKIPPED:
                step["failed"] += 1
                step["status"] = "failed"
                step["finished_at"] = now
                if failure_before is None:
                    self._step_failed(flow, step, task)
        moved = self._maybe_end_phase(flow, now)
        flow.flush()
        return moved

    def _step_completed(self, flow: Flow, step_id: str, failure: str | None, now: float) -> None:
        step = flow.steps[step_id]
        step["status"] = "completed"
        step["finished_at"] = now
        flow.wf["steps_completed"] += 1
        flow.wf["checkpoint_at"] = now
        dependents = [d for s, d in flow.edges if s == step_id and d in flow.steps]
        for dependent in dependents:
            flow.steps[dependent]["waiting_on"] -= 1
        for dependent in dependents:
            dep = flow.steps[dependent]
            if rules.ready_after_release(dep["waiting_on"], dep["status"], failure):
                dep["status"] = "ready"
                flow.move_tasks([dependent], ["blocked"], "pending", {"run_after": now})

    def _step_failed(self, flow: Flow, step: dict[str, Any], task: Mapping[str, Any]) -> None:
        step_id = step["step_id"]
        wf = flow.wf
        change = rules.on_step_failed(
            step_id=step_id,
            on_failure=step["on_failure"],
            phase=wf["phase"],
            task_status=task["status"],
            task_error=task.get("error"),
        )
        if change.failure is None:
            if wf.get("error") is None:
                wf["error"] = change.error
            assert change.skip_reason is not None
            self._skip_dependents(flow, step_id, change.skip_reason)
            return
        if wf.get("failure") is None:
            wf["failure"] = change.failure.value
            wf["error"] = change.error
        assert change.close_reason is not None
        self._close_open(flow, "skipped", change.close_reason)

    def _skip_dependents(self, flow: Flow, step_id: str, reason: str) -> None:
        def dependents_of(current: str) -> list[str]:
            return [dependent for source, dependent in flow.edges if source == current]

        for dependent in rules.dependents_to_skip(step_id, dependents_of):
            step = flow.steps.get(dependent)
            if step is not None:
                step["status"] = "skipped"
                step["finished_at"] = None
            skipped = flow.move_tasks([dependent], OPEN_TASK, "skipped", {"error": reason})
            flow.wf["tasks_open"] -= skipped

    def _close_open(self, flow: Flow, status: str, reason: str) -> int:
        """End every task of the workflow that has not started; running ones go on."""
        closed = flow.move_tasks(None, OPEN_TASK, status, {"error": reason, "completed_at": None})
        for step in flow.steps.values():
            if step["status"] in ("blocked", "ready") and step["completed"] == step["failed"] == 0:
                step["status"] = status
        flow.wf["tasks_open"] -= closed
        return closed

    def _maybe_end_phase(self, flow: Flow, now: float) -> WorkflowStatus | None:
        """End the current phase when no task of it is open; the new status, if any."""
        wf = flow.wf
        if wf["tasks_open"] > 0:
            return None
        failed = sum(
            1
            for step in flow.steps.values()
            if step["kind"] == wf["phase"] and step["status"] in rules.FAILED_STEP
        )
        status = rules.phase_end(wf["phase"], wf.get("failure"), failed)
        wf["status"] = status.value
        wf["completed_at"] = rules.completed_at(status, now)
        return status

    # -- commands -----------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started; flag running tasks. Returns them for a local stop."""

        def build(tx: Tx) -> tuple[Workflow, list[str]] | None:
            flow = self._flow(tx, workflow_id)
            if flow is None:
                return None
            wf = flow.wf
            if WorkflowStatus(wf["status"]).finished:
                return workflow_of(wf), []
            status_before = WorkflowStatus(wf["status"])
            wf["failure"] = rules.Failure.CANCEL.value
            wf["error"] = "cancelled"
            self._close_open(flow, "cancelled", "cancelled with its workflow")
            running = self._select(
                "SELECT id, seq FROM task WHERE workflow_id = $w AND status = 'running'"
                " ORDER BY seq",
                w=workflow_id,
            )
            if running:
                tx.add(
                    "UPDATE $ids SET cancel_requested = true RETURN NONE",
                    ids=[row["id"] for row in running],
                )
            if rules.cancel_ends_at_once(status_before):
                wf["status"] = WorkflowStatus.CANCELLED.value
                wf["completed_at"] = now
            else:
                self._maybe_end_phase(flow, now)
            flow.flush()
            return workflow_of(wf), [str(row["id"].id) for row in running]

        return self._transact(build)

    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume a finished, unsuccessful workflow from its checkpoint: tasks of the
        current phase that did not complete start again; completed ones are kept."""

        def build(tx: Tx) -> Workflow | None:
            flow = self._flow(tx, workflow_id)
            if flow is None:
                return None
            wf = flow.wf
            phase = wf["phase"]
            steps = [s for s in flow.steps.values() if s["kind"] == phase]
            reopen_from = sorted({st for _, st in flow.tasks().values() if st != "completed"})
            reopened = flow.move_tasks(
                [s["step_id"] for s in steps],
                reopen_from,
                "blocked",
                {
                    "error": None,
                    "tries": 0,
                    "progress": 0,
                    "cancel_requested": False,
                    "completed_at": None,
                    "run_after": 0.0,
                },
            )
            done = {s["step_id"] for s in steps if s["status"] == "completed"}
            for step in steps:
                if step["step_id"] in done:
                    continue
                deps = [s for s, d in flow.edges if d == step["step_id"]]
                reset = rules.reset_step(deps, done)
                step["status"] = reset.status.value
                step["waiting_on"] = reset.waiting_on
                step["failed"] = 0
                step["finished_at"] = None
                if reset.waiting_on == 0:
                    flow.move_tasks([step["step_id"]], ["blocked"], "pending", {"run_after": now})
            wf["status"] = rules.running_status(phase).value
            wf["failure"] = None
            wf["error"] = None
            wf["completed_at"] = None
            wf["tasks_open"] = reopened
            wf["tasks_failed"] = 0
            if not reopened:
                self._maybe_end_phase(flow, now)
            flow.flush()
            return workflow_of(wf)

        return self._transact(build)

    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow for rollback (the engine then plans the undo steps)."""

        def build(tx: Tx) -> Workflow | None:
            found = self._query("SELECT * OMIT spec FROM ONLY $id", id=rid("workflow", workflow_id))
            row = found[-1]
            if row is None:
                return None
            wf = dict(row)
            if rules.can_request_rollback(WorkflowStatus(wf["status"]), wf["phase"]):
                wf["status"] = WorkflowStatus.ROLLBACK_PENDING.value
                tx.set(wf["id"], {"status": wf["status"]})
            return workflow_of(wf)

        return self._transact(build)

    def begin_undo(
        self, workflow_id: str, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]
    ) -> Workflow | None:
        """Add the undo steps of a rollback and start it; ``None`` unless the workflow
        was waiting for exactly that (so a repeated call changes nothing)."""

        def build(tx: Tx) -> Workflow | None:
            flow = self._flow(tx, workflow_id)
            if flow is None or flow.wf["status"] != WorkflowStatus.ROLLBACK_PENDING.value:
                return None
            count = self._insert_steps(tx, flow, workflow_id, steps, **defaults)
            wf = flow.wf
            wf["phase"] = "undo"
            wf["status"] = WorkflowStatus.ROLLING_BACK.value
            wf["failure"] = None
            wf["tasks_open"] = count
            wf["tasks_total"] += count
            wf["completed_at"] = None
            if count == 0:
                self._maybe_end_phase(flow, defaults["now"])
            flow.flush()
            return workflow_of(wf)

        return self._transact(build)
