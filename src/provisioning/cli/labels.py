"""How a run's tasks are named and judged on screen (status, monitor, recap)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def task_label(task: Mapping[str, Any], step_id: str | None = None) -> str:
    """A task by what it acts on: ``web-1``, ``runc@web-2`` (its name ends with its
    item: ``<workflow>/<step>/<item>``)."""
    parts = str(task["name"]).split("/")
    if step_id and step_id.startswith("taskserv-") and len(parts) >= 3:
        return f"{step_id.removeprefix('taskserv-')}@{parts[-1]}"
    return parts[-1]


def target_of(task: Mapping[str, Any], step_id: str) -> str:
    """The server (or other item) a task acts on, else its step."""
    parts = str(task["name"]).split("/")
    return parts[-1] if len(parts) >= 3 else step_id


CHANGED_KEYS = ("changed", "created", "deleted")


def reports_no_change(task: Mapping[str, Any]) -> bool:
    """The task's result says, in so many words, that it changed nothing."""
    result = task.get("result")
    return (
        isinstance(result, dict)
        and any(k in result for k in CHANGED_KEYS)
        and not any(result.get(k) for k in CHANGED_KEYS)
    )


def outcome_of(task: Mapping[str, Any]) -> str:
    """Ansible's words: ``changed`` when the result says it changed something, else
    ``ok``; ``failed``; or the task's own status (pending, cancelled, ...)."""
    status = task["status"]
    if status == "completed":
        result = task.get("result")
        changed = isinstance(result, dict) and any(result.get(k) for k in CHANGED_KEYS)
        return "changed" if changed else "ok"
    return "failed" if status in ("failed", "timed_out") else status
