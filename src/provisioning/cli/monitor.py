"""``workflow monitor``: a live view fed by the event stream.

A thread reads the stream; the view refetches the workflow when an event
concerns it (at most a few times a second) and keeps the last log lines of
running tasks from the stream's log events.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..client import ClientError, OrchestratorClient, WorkflowView
from .common import out, styled_status
from .labels import task_label
from .output import strip_controls

DONE = {"completed", "failed", "cancelled", "rolled_back", "rollback_failed"}
REFRESH_SECONDS = 0.25
FALLBACK_POLL_SECONDS = 2.0
LOG_TAIL = 6
# From this terminal width on, the view has room for progress bars and attempts.
WIDE_COLUMNS = 100


def _elapsed(task: Mapping[str, Any]) -> str:
    start = task.get("started_at")
    if not start:
        return ""
    end = task.get("completed_at")
    began = datetime.fromisoformat(start)
    finished = datetime.fromisoformat(end) if end else datetime.now(began.tzinfo)
    return f"{(finished - began).total_seconds():.1f}s"


def render(workflow: Mapping[str, Any], logs: dict[str, deque[str]]) -> Group:
    """The view of one workflow: an overall bar, a row per task, running tasks' logs."""
    tasks = workflow["tasks"]
    # Completed work only: a cancelled workflow's closed tasks do not fill the bar.
    done = tasks["completed"]
    header = Text.assemble(
        (workflow["name"], "bold"),
        f" {workflow['id']}  ",
        styled_status(workflow["status"]),
        f"  {done}/{tasks['total']} tasks done, {tasks['failed']} failed",
    )
    overall = ProgressBar(total=max(tasks["total"], 1), completed=done, width=40)
    table = Table(expand=False)
    # At 80 columns the bars and the attempt column give way, so that no step or task
    # name has to fold (an attempt past the first shows beside the status instead).
    wide = out.width >= WIDE_COLUMNS
    names = ("step", "task", "status", "progress", "attempt", "elapsed")
    for name in names if wide else ("step", "task", "status", "done", "elapsed"):
        # Never an ellipsis: what does not fit folds onto the next line.
        table.add_column(name, overflow="fold")
    running: list[Mapping[str, Any]] = []
    for step in workflow["steps"] or []:
        for task in step["tasks"]:
            if task["status"] == "running":
                running.append(task)
            percent = f"{task['progress']:>3}%"
            status = styled_status(task["status"])
            if wide:
                bar = Table.grid(padding=(0, 1))
                bar.add_row(ProgressBar(total=100, completed=task["progress"], width=12), percent)
                cells: list[Any] = [status, bar, str(task["attempt"])]
            else:
                if task["attempt"] > 1:
                    status = Text.assemble(status, f" #{task['attempt']}")
                cells = [status, percent]
            table.add_row(step["id"], task_label(task, step["id"]), *cells, _elapsed(task))
    top = Table.grid(padding=(0, 1))
    top.add_row(header)
    top.add_row(overall)
    parts: list[Any] = [top, table]
    for task in running[:4]:
        message = task.get("progress_message")
        parts.append(
            Text(
                f"── {task['name']}  {task['progress']}%" + (f" {message}" if message else ""),
                style="dim",
            )
        )
        parts.extend(Text(line) for line in logs.get(task["id"], ()))
    return Group(*parts)


def log_lines(lines: list[str]) -> list[str]:
    """What the log pane shows of a task's output: not the protocol's ``PROGRESS:`` and
    ``RESULT:`` lines (progress is drawn as progress), and no control characters."""
    return [strip_controls(line) for line in lines if not line.startswith(("PROGRESS:", "RESULT:"))]


def _listen(client: OrchestratorClient, events: queue.Queue[dict[str, Any] | None]) -> None:
    try:
        for event in client.events():
            events.put(event)
    except ClientError:
        pass
    finally:
        events.put(None)


def monitor_workflow(client: OrchestratorClient, workflow_id: str) -> WorkflowView:
    """Show ``workflow_id`` live until it finishes; return its final state."""
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    listener = threading.Thread(target=_listen, args=(client, events), daemon=True)
    listener.start()
    logs: dict[str, deque[str]] = {}
    # Subscribe first, then read: nothing that happens in between is missed.
    with contextlib.suppress(queue.Empty):
        events.get(timeout=5)
    workflow = client.workflow(workflow_id)
    task_ids = {t["id"] for s in workflow["steps"] or [] for t in s["tasks"]}
    stream_alive = True
    with Live(
        render(workflow, logs), console=out.real(), refresh_per_second=8, transient=False
    ) as live:
        last_fetch = time.monotonic()
        dirty = False
        while workflow["status"] not in DONE:
            try:
                event = events.get(
                    timeout=REFRESH_SECONDS if stream_alive else FALLBACK_POLL_SECONDS
                )
            except queue.Empty:
                event = {}
            if event is None:
                stream_alive = False
                event = {}
            if event.get("event") == "log" and event.get("task_id") in task_ids:
                tail = logs.setdefault(event["task_id"], deque(maxlen=LOG_TAIL))
                tail.extend(log_lines(event.get("lines", [])))
                dirty = True
            elif event.get("workflow_id") == workflow_id or event.get("task_id") in task_ids:
                dirty = True
            # Its end is shown (and returned) at once, not on the next refresh.
            ended = event.get("workflow_id") == workflow_id and event.get("status") in DONE
            now = time.monotonic()
            stale = ended or now - last_fetch >= (
                REFRESH_SECONDS if dirty else FALLBACK_POLL_SECONDS
            )
            if stale:
                workflow = client.workflow(workflow_id)
                task_ids = {t["id"] for s in workflow["steps"] or [] for t in s["tasks"]}
                last_fetch, dirty = now, False
            live.update(render(workflow, logs))
    if not out.is_terminal:
        out.print()
    client.close()
    return workflow
