"""kill -9 of one daemon, again and again, during one workflow (issue 15, point 3):
the task supervisors outlive every crash, so the workflow completes with every task
run exactly once and no try used up."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Daemon
from tests.acceptance.workflow_helpers import Timeline, op, submit, traced, wait_workflow, workflow
from tests.conftest import wait_for

LAYERS = 6
ITEMS = 20  # 120 tasks
KILLS = 20


def _ended(log: Path) -> int:
    return log.read_text().count(" end ") if log.exists() else 0


def test_twenty_kill9_during_a_120_task_workflow(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon().start()
    log = tmp_path / "markers"
    ops = [
        op(
            f"layer{i}",
            traced(log, f"layer{i}", sleep=0.3),
            *([f"layer{i - 1}"] if i else []),
            items=list(range(ITEMS)),
        )
        for i in range(LAYERS)
    ]
    # Two at a time: the 120 tasks then take longer than 20 crashes and restarts, so
    # every crash lands mid-workflow (with ten at a time it was over after about twelve).
    retry = {"max_attempts": 2, "initial_delay": 0}
    workflow_id = submit(daemon, workflow("crash-loop", *ops, retry=retry, parallel_limit=2))

    for _ in range(KILLS):
        # Some work finished since the last crash: each one lands mid-workflow.
        seen = _ended(log)
        wait_for(lambda seen=seen: _ended(log) >= seen + 2, timeout=60, message="progress")
        daemon.kill9()
        daemon.start()

    found = wait_workflow(daemon, workflow_id, timeout=120)
    assert found["status"] == "completed", found
    assert found["tasks"] == {"total": 120, "completed": 120, "failed": 0, "open": 0}

    timeline = Timeline(log)
    # Every task ran exactly once, to its end: none lost, none run again, so no two
    # runs of one task overlapped either.
    by_task: dict[str, int] = {}
    for span in timeline.spans:
        assert span.end is not None, f"a run of {span.task_id} never ended:\n{timeline!r}"
        by_task[span.task_id] = by_task.get(span.task_id, 0) + 1
    assert len(by_task) == 120
    assert set(by_task.values()) == {1}, {t: n for t, n in by_task.items() if n != 1}
    timeline.assert_dependencies({f"layer{i}": [f"layer{i - 1}"] for i in range(1, LAYERS)})
    # An attempt a crash caught before its handler started (claimed, not yet spawned)
    # is lost and retried; every other one went on under its supervisor.
    for step in found["steps"]:
        for task in step["tasks"]:
            statuses = [a["status"] for a in daemon.task(task["id"])["attempts"]]
            assert statuses[-1] == "completed", statuses
            assert set(statuses[:-1]) <= {"lost"}, statuses

    assert daemon.stop(signal.SIGTERM) == 0
    # No crash used up a try: each task counted only the attempt that completed.
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "orchestrator.db")) as db:
        tries = [row[0] for row in db.execute("SELECT tries FROM tasks")]
    assert len(tries) == 120
    assert set(tries) == {1}
    # Nothing is left behind: the supervisor left with its daemon, its tasks ended.
    wait_for(lambda: not daemon.supervisors(), timeout=20, message="no supervisor left")
