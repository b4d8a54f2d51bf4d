"""The workflows of the SurrealDB backend: creation, and the persistence
:mod:`..flow.progress` works on.

Progression runs inside the transaction that ends a task, so a finished step
releases its dependents atomically with its own completion. A verb loads the
workflow it touches (its record, steps and edges; the status of each of its tasks
only when a rule moves tasks) into a :class:`Flow`, the progression changes it there,
and the transaction writes the changed fields back with the set-based task updates
the progression made.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, Unpack

from surrealdb import RecordID

from ...tasks import TaskStatus, WorkflowStatus
from .. import flow as rules
from ..flow import Failure, ResetStep, progress
from ..models import NewStep, Workflow
from .base import NewWorkflow, TaskDefaults, task_defaults
from .surreal_tx import AsRow, SurrealVerbs, Tx, new_task_row, rid, workflow_of
from .workflows import StoreWorkflow, WorkflowVerbs, new_steps, new_workflow_fields

T = TypeVar("T")

OPEN_TASK = rules.OPEN_TASK
Select = Callable[..., list[dict[str, Any]]]


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
        select: Select,
    ) -> None:
        self.tx = tx
        self.id: str = str(workflow["id"].id)
        self.wf = workflow
        self._wf_before = dict(workflow)
        self.steps: dict[str, dict[str, Any]] = {s["step_id"]: s for s in steps}
        self._steps_before = {k: dict(v) for k, v in self.steps.items()}
        self.edges: list[tuple[str, str]] = [(e["step_id"], e["dependent_id"]) for e in edges]
        self._select = select
        # Task key -> [step id, status], as this transaction leaves them.
        self._tasks: dict[str, list[str]] | None = None
        # Task changes decided before the tasks were loaded.
        self._moved: dict[str, list[str]] = {}

    # -- tasks --------------------------------------------------------------------------

    def tasks(self) -> dict[str, list[str]]:
        if self._tasks is None:
            rows = self._select("workflow_task_steps", w=self.id)
            found = {str(row["id"].id): [row["step_id"], row["status"]] for row in rows}
            found.update(self._moved)
            self._tasks = found
        return self._tasks

    def task_moved(self, task: RecordID, step_id: str, status: str) -> None:
        """One task (maybe new) of ``step_id`` now has ``status``; its write is queued."""
        target = self._moved if self._tasks is None else self._tasks
        target[str(task.id)] = [step_id, status]

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
        self.tx.set([rid("task", key) for key in moved], {"status": after, **sets})
        return len(moved)

    # -- the persistence of flow.progress ---------------------------------------------

    def row(self) -> AsRow:
        return AsRow(self.wf)

    def workflow(self) -> Workflow:
        return workflow_of(self.wf)

    def add_steps(self, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]) -> int:
        rows: dict[str, list[dict[str, Any]]] = {"wf_step": [], "wf_edge": [], "task": []}
        for step, (row, tasks) in zip(steps, new_steps(self.id, steps, **defaults), strict=True):
            row.update(id=rid("wf_step", [self.id, step.step_id]), completed=0, failed=0)
            rows["wf_step"].append(row)
            self.steps[step.step_id], self._steps_before[step.step_id] = row, dict(row)
            for dep in step.depends_on:
                self.edges.append((dep, step.step_id))
                key = rid("wf_edge", [self.id, dep, step.step_id])
                edge = {"id": key, "workflow_id": self.id, "step_id": dep}
                rows["wf_edge"].append({**edge, "dependent_id": step.step_id})
            for fields in tasks:
                task = new_task_row(self.tx, fields)
                rows["task"].append(task)
                self.task_moved(task["id"], step.step_id, task["status"])
        for table, found in rows.items():
            if found:
                self.tx.run(f"insert_{table}", rows=found)
        return len(rows["task"])

    def count_task(self, completed: int, failed: int) -> None:
        self.wf["tasks_open"] -= 1
        self.wf["tasks_completed"] += completed
        self.wf["tasks_failed"] += failed

    def count_item(self, step_id: str, *, failed: bool, now: float) -> dict[str, Any] | None:
        step = self.steps.get(step_id)
        if step is not None and failed:
            step.update(failed=step["failed"] + 1, status="failed", finished_at=now)
        elif step is not None:
            step["completed"] += 1
        return step

    def complete_step(self, step_id: str, now: float) -> list[dict[str, Any]]:
        self.steps[step_id].update(status="completed", finished_at=now)
        self.wf["steps_completed"] += 1
        self.wf["checkpoint_at"] = now
        dependents = [self.steps[d] for d in self.dependents(step_id) if d in self.steps]
        for dependent in dependents:
            dependent["waiting_on"] -= 1
        return dependents

    def start_step(self, step_id: str, now: float) -> None:
        self.steps[step_id]["status"] = "ready"
        self.move_tasks([step_id], ["blocked"], "pending", {"run_after": now})

    def dependents(self, step_id: str) -> list[str]:
        return [dependent for source, dependent in self.edges if source == step_id]

    def dependencies(self, step_id: str) -> list[str]:
        return [source for source, dependent in self.edges if dependent == step_id]

    def skip_step(self, step_id: str, reason: str) -> None:
        if step_id in self.steps:
            self.steps[step_id].update(status="skipped", finished_at=None)
        self.wf["tasks_open"] -= self.move_tasks([step_id], OPEN_TASK, "skipped", {"error": reason})

    def close_open(self, status: str, reason: str) -> None:
        sets = {"error": reason, "completed_at": None}
        self.wf["tasks_open"] -= self.move_tasks(None, OPEN_TASK, status, sets)
        for step in self.steps.values():
            if step["status"] in ("blocked", "ready") and step["completed"] == step["failed"] == 0:
                step["status"] = status

    def set_error(self, error: str, failure: Failure | None) -> None:
        if failure is None and self.wf.get("error") is None:
            self.wf["error"] = error
        elif failure is not None and self.wf.get("failure") is None:
            self.wf.update(failure=failure.value, error=error)

    def failed_steps(self, phase: str) -> int:
        failed = rules.FAILED_STEP
        return sum(1 for s in self.steps.values() if s["kind"] == phase and s["status"] in failed)

    def end_phase(self, status: WorkflowStatus, completed_at: float | None) -> None:
        self.wf.update(status=status.value, completed_at=completed_at)

    def mark_cancel(self) -> None:
        self.wf.update(failure=Failure.CANCEL.value, error="cancelled")

    def mark_rollback(self) -> None:
        self.wf["status"] = WorkflowStatus.ROLLBACK_PENDING.value

    def flag_running(self) -> list[str]:
        running = self._select("running_of_workflow", w=self.id)
        if running:
            self.tx.run("flag_cancel", ids=[row["id"] for row in running])
        return [str(row["id"].id) for row in running]

    def reopen(self, phase: str) -> int:
        reopen_from = sorted({st for _, st in self.tasks().values() if st != "completed"})
        return self.move_tasks(
            [step["step_id"] for step in self.phase_steps(phase)],
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

    def phase_steps(self, phase: str) -> list[dict[str, Any]]:
        return [step for step in self.steps.values() if step["kind"] == phase]

    def reset_step(self, step_id: str, reset: ResetStep) -> None:
        step = self.steps[step_id]
        step.update(status=reset.status.value, waiting_on=reset.waiting_on)
        step.update(failed=0, finished_at=None)

    def resume(self, status: WorkflowStatus, reopened: int) -> None:
        self.wf.update(status=status.value, failure=None, error=None, completed_at=None)
        self.wf.update(tasks_open=reopened, tasks_failed=0)

    def start_undo(self, count: int) -> None:
        rolling = WorkflowStatus.ROLLING_BACK.value
        self.wf.update(phase="undo", status=rolling, failure=None, tasks_open=count)
        self.wf.update(tasks_total=self.wf["tasks_total"] + count, completed_at=None)

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


class SurrealWorkflowVerbs(WorkflowVerbs, SurrealVerbs):
    """Mixed into :class:`~.surreal.SurrealStore`."""

    def _load(self, tx: Tx, workflow_id: str) -> Flow | None:
        found = self._named("load_workflow", id=rid("workflow", workflow_id), w=workflow_id)
        workflow, steps, edges = found
        if workflow is None:
            return None
        return Flow(tx, dict(workflow), [dict(s) for s in steps or []], edges or [], self._select)

    def create_workflow(self, **new: Unpack[NewWorkflow]) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""

        def build(tx: Tx) -> Workflow:
            row = new_workflow_fields(str(uuid.uuid4()), new)
            row.update(id=rid("workflow", row["id"]), seq=tx.next_seq("workflow_seq"))
            row.update(spec=json.dumps(new["spec"]), phase="run", tasks_completed=0)
            row.update(tasks_failed=0, steps_completed=0)
            count = Flow(tx, row, [], [], self._select).add_steps(
                new["steps"], **task_defaults(new)
            )
            row.update(tasks_total=count, tasks_open=count)
            tx.run("create", id=row["id"], row=row)
            return workflow_of(row)

        return self._transact(build)

    def _on_workflow(
        self, verb: str, workflow_id: str, act: Callable[[StoreWorkflow], T]
    ) -> tuple[Workflow, T] | None:
        def build(tx: Tx) -> tuple[Workflow, T] | None:
            w = self._load(tx, workflow_id)
            if w is None:
                return None
            value = act(w)
            w.flush()
            return w.workflow(), value

        return self._transact(build)

    def _advance(self, tx: Tx, task: Mapping[str, Any], now: float) -> WorkflowStatus | None:
        """A workflow task just became terminal (inside the transaction that ended it):
        its workflow advances."""
        w = self._load(tx, task["workflow_id"])
        if w is None:
            return None  # a task enqueued with a workflow id of no workflow
        step_id, status = task.get("step_id"), TaskStatus(task["status"])
        if step_id is not None:
            w.task_moved(task["id"], step_id, status.value)
        moved = progress.advance(w, step_id or "", status, task.get("error"), now)
        w.flush()
        return moved
