"""What exists, per workspace and infra: ``runtime/state/<infra>.json``.

Handlers of parallel tasks update it at once, so every change takes an
exclusive lock and replaces the file atomically; readers never see half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def state_path(workspace_dir: Path, infra: str) -> Path:
    return workspace_dir / "runtime" / "state" / f"{infra}.json"


def read_state(workspace_dir: Path, infra: str) -> dict[str, Any]:
    path = state_path(workspace_dir, infra)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"servers": {}}
    data.setdefault("servers", {})
    return data


@contextlib.contextmanager
def updating_state(workspace_dir: Path, infra: str) -> Iterator[dict[str, Any]]:
    """The state to change in place; written back (atomically) when the block ends."""
    path = state_path(workspace_dir, infra)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state(workspace_dir, infra)
        yield state
        state["updated_at"] = time.time()
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{infra}.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)


def record_server(workspace_dir: Path, infra: str, record: dict[str, Any]) -> None:
    with updating_state(workspace_dir, infra) as state:
        previous = state["servers"].get(record["hostname"], {})
        state["servers"][record["hostname"]] = {
            **record,
            "taskservs": previous.get("taskservs", {}),
        }


def forget_server(workspace_dir: Path, infra: str, hostname: str) -> None:
    with updating_state(workspace_dir, infra) as state:
        state["servers"].pop(hostname, None)


def record_taskserv(
    workspace_dir: Path, infra: str, hostname: str, name: str, info: dict[str, Any] | None
) -> None:
    """Mark taskserv ``name`` installed on ``hostname`` (``info``) or removed (``None``)."""
    with updating_state(workspace_dir, infra) as state:
        server = state["servers"].setdefault(hostname, {"hostname": hostname})
        taskservs = server.setdefault("taskservs", {})
        if info is None:
            taskservs.pop(name, None)
        else:
            taskservs[name] = info
