"""The workflow engine against the real orchestrator, through its REST API.

Tasks are ``sh -c`` commands that write ``<op> start|end <time> <task-id>`` lines to a
file of the test (see ``workflow_helpers``): order and concurrency are checked from
timestamps the tasks wrote, not from what the orchestrator says about them. Count
files record how often each step really ran.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Daemon, pid_alive
from tests.acceptance.workflow_helpers import (
    NO_RETRY,
    Timeline,
    command,
    count_run,
    fail_once,
    item_layers,
    op,
    run_and_wait,
    runs,
    save_params,
    steps,
    submit,
    task_statuses,
    totals,
    traced,
    view,
    wait_until_logged,
    wait_workflow,
    workflow,
)
from tests.conftest import wait_for

OK = ["true"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One orchestrator for the tests that need no settings of their own. Each test
    waits for its workflows to end, so no two tests compete for slots."""
    daemon = Daemon(tmp_path_factory.mktemp("workflows"), max_concurrent_tasks=8).start()
    yield daemon
    daemon.stop()


# -- DAG shapes: order and concurrency ------------------------------------------------------------


def test_chain_runs_each_step_after_the_previous_one(shared: Daemon, tmp_path: Path) -> None:
    log = tmp_path / "trace"
    found = run_and_wait(
        shared,
        workflow(
            "chain",
            op("a", traced(log, "a")),
            op("b", traced(log, "b"), "a"),
            op("c", traced(log, "c"), "b"),
        ),
    )

    assert found["status"] == "completed", found
    timeline = Timeline(log)
    timeline.assert_dependencies({"b": ["a"], "c": ["b"]})
    assert timeline.peak() == 1
    assert [
        (s["id"], s["kind"], s["layer"], s["depends_on"], s["status"]) for s in found["steps"]
    ] == [
        ("a", "run", 0, [], "completed"),
        ("b", "run", 1, ["a"], "completed"),
        ("c", "run", 2, ["b"], "completed"),
    ]
    assert found["tasks"] == {"total": 3, "completed": 3, "failed": 0, "open": 0}
    assert found["progress"] == 100
    assert found["checkpoint"]["steps_completed"] == 3
    assert found["checkpoint"]["completed_steps"] == ["a", "b", "c"]
    assert found["checkpoint"]["updated_at"] is not None
    # The spans are the workflow's own tasks, each run once.
    task_ids = {t["id"] for s in found["steps"] for t in s["tasks"]}
    assert {s.task_id for s in timeline.spans} == task_ids
    assert all(t["attempt"] == 1 for s in found["steps"] for t in s["tasks"])


def test_fan_out_then_fan_in(shared: Daemon, tmp_path: Path) -> None:
    """1 -> 5 -> 1: ``items`` fan one operation out into five parallel tasks, each
    with its item in ``params.item``; the last step waits for all five."""
    log = tmp_path / "trace"
    nodes = [f"node-{i}" for i in range(5)]
    found = run_and_wait(
        shared,
        workflow(
            "fan",
            op("prepare", traced(log, "prepare")),
            op(
                "install",
                traced(log, "install", sleep=0.3, result=True),
                "prepare",
                items=nodes,
                params={"pkg": "containerd"},
            ),
            op("verify", traced(log, "verify"), "install"),
            parallel_limit=5,
        ),
    )

    assert found["status"] == "completed", found
    timeline = Timeline(log)
    assert len(timeline.of("install")) == 5
    timeline.assert_dependencies({"install": ["prepare"], "verify": ["install"]})
    assert timeline.peak(["install"]) == 5
    install = steps(found)["install"]
    assert (install["total"], install["completed"], install["layer"]) == (5, 5, 1)
    by_item = sorted(install["tasks"], key=lambda t: t["item"])
    assert [t["item"] for t in by_item] == [0, 1, 2, 3, 4]
    assert [t["result"]["params"] for t in by_item] == [
        {"pkg": "containerd", "item": node} for node in nodes
    ]
    assert {s.task_id for s in timeline.of("install")} == {t["id"] for t in by_item}
    assert found["tasks"]["total"] == 7


def test_diamond_runs_its_branches_in_parallel(shared: Daemon, tmp_path: Path) -> None:
    log = tmp_path / "trace"
    found = run_and_wait(
        shared,
        workflow(
            "diamond",
            op("a", traced(log, "a")),
            op("b", traced(log, "b", sleep=0.3), "a"),
            op("c", traced(log, "c", sleep=0.3), "a"),
            op("d", traced(log, "d"), "b", "c"),
        ),
    )

    assert found["status"] == "completed", found
    timeline = Timeline(log)
    timeline.assert_dependencies({"b": ["a"], "c": ["a"], "d": ["b", "c"]})
    assert timeline.peak(["b", "c"]) == 2
    assert {s["id"]: s["layer"] for s in found["steps"]} == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert steps(found)["d"]["depends_on"] == ["b", "c"]


@pytest.mark.parametrize("parallel_limit", [2, 5])
def test_layered_dag_respects_order_and_parallel_limit(
    shared: Daemon, tmp_path: Path, parallel_limit: int
) -> None:
    """3 layers x 4 tasks, each depending on the whole previous layer; the daemon has
    8 slots, so only the workflow's ``parallel_limit`` bounds the concurrency."""
    log = tmp_path / "trace"
    layers = [[f"l{k}-{i}" for i in range(4)] for k in range(3)]
    operations = [
        op(name, traced(log, name, sleep=0.2), *(layers[k - 1] if k else []))
        for k, layer in enumerate(layers)
        for name in layer
    ]
    found = run_and_wait(shared, workflow("layered", *operations, parallel_limit=parallel_limit))

    assert found["status"] == "completed", found
    timeline = Timeline(log)
    assert len(timeline.spans) == 12
    timeline.assert_dependencies({name: layers[k - 1] for k in (1, 2) for name in layers[k]})
    assert timeline.peak() == min(parallel_limit, 4), timeline
    assert [s["layer"] for s in found["steps"]] == [0] * 4 + [1] * 4 + [2] * 4


def test_daemon_concurrency_limit_holds_below_parallel_limit(
    make_daemon: Any, tmp_path: Path
) -> None:
    """Two workflows of five independent tasks each, parallel_limit 5, on a daemon
    with max_concurrent_tasks = 2: never more than two tasks at once, in total."""
    daemon: Daemon = make_daemon(max_concurrent_tasks=2).start()
    log = tmp_path / "trace"
    ids = [
        submit(
            daemon,
            workflow(
                f"wide-{w}",
                *[op(f"{w}{i}", traced(log, f"{w}{i}", sleep=0.2)) for i in range(5)],
                parallel_limit=5,
            ),
        )
        for w in ("x", "y")
    ]
    for workflow_id in ids:
        assert wait_workflow(daemon, workflow_id)["status"] == "completed"

    timeline = Timeline(log)
    assert len(timeline.spans) == 10
    assert timeline.peak() == 2, timeline


# -- failure policies -------------------------------------------------------------------------------


def test_fail_policy_stops_new_work_and_lets_running_siblings_finish(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    found = run_and_wait(
        shared,
        workflow(
            "fail-policy",
            op("bad", traced(log, "bad", sleep=0.2, exit_code=1)),
            op("sibling", traced(log, "sibling", body=wait_until_logged(log, "bad"))),
            op("waiting", traced(log, "waiting")),  # a root left without a slot
            op("after_bad", traced(log, "after_bad"), "bad"),
            op("after_sibling", traced(log, "after_sibling"), "sibling"),
            parallel_limit=2,
            retry=NO_RETRY,
        ),
    )

    assert found["status"] == "failed", found
    assert "bad" in found["error"]
    timeline = Timeline(log)
    assert timeline.labels == {"bad", "sibling"}, timeline  # nothing new started
    assert timeline.one("sibling").end > timeline.one("bad").end  # it ran on, and finished
    assert task_statuses(found) == {
        "bad": ["failed"],
        "sibling": ["completed"],
        "waiting": ["skipped"],
        "after_bad": ["skipped"],
        "after_sibling": ["skipped"],
    }
    assert {s["id"]: s["status"] for s in found["steps"]} == {
        "bad": "failed",
        "sibling": "completed",
        "waiting": "skipped",
        "after_bad": "skipped",
        "after_sibling": "skipped",
    }
    bad = steps(found)["bad"]["tasks"][0]
    assert "failed on purpose" in bad["error"]
    assert bad["attempt"] == 1
    assert found["tasks"] == {"total": 5, "completed": 1, "failed": 1, "open": 0}
    assert found["checkpoint"]["completed_steps"] == ["sibling"]


def test_continue_policy_skips_dependents_and_lets_other_branches_finish(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    found = run_and_wait(
        shared,
        workflow(
            "continue-policy",
            op("flaky", traced(log, "flaky", sleep=0.05, exit_code=1), on_failure="continue"),
            op("dep1", traced(log, "dep1"), "flaky"),
            op("dep2", traced(log, "dep2"), "dep1"),
            op("branch1", traced(log, "branch1", body=wait_until_logged(log, "flaky"))),
            op("branch2", traced(log, "branch2"), "branch1"),
            op("join", traced(log, "join"), "dep2", "branch2"),
            op("hung", traced(log, "hung", sleep=30), timeout=0.3, on_failure="continue"),
            op("after_hung", traced(log, "after_hung"), "hung"),
            retry=NO_RETRY,
        ),
    )

    assert found["status"] == "failed", found
    timeline = Timeline(log)
    assert timeline.labels == {"flaky", "branch1", "branch2", "hung"}, timeline
    assert timeline.one("hung").end is None  # stopped by its timeout
    # The independent branch went on after the failure.
    assert timeline.one("branch2").start > timeline.one("flaky").end
    assert task_statuses(found) == {
        "flaky": ["failed"],
        "dep1": ["skipped"],
        "dep2": ["skipped"],
        "branch1": ["completed"],
        "branch2": ["completed"],
        "join": ["skipped"],
        "hung": ["timed_out"],
        "after_hung": ["skipped"],
    }
    assert "flaky" in steps(found)["dep1"]["tasks"][0]["error"]
    assert found["checkpoint"]["completed_steps"] == ["branch1", "branch2"]
    assert found["tasks"] == {"total": 8, "completed": 2, "failed": 2, "open": 0}


def _undo(log: Path, params_dir: Path, label: str) -> dict[str, Any]:
    """An undo that traces itself and saves the params it was given."""
    return {"command": traced(log, f"undo-{label}", body=save_params(params_dir))}


def _check_undo_params(found: dict[str, Any], params_dir: Path, expected: dict[str, int]) -> None:
    """Each undo got the params of the task it reverses plus ``undo = {task_id, result}``
    with that task's id and result; ``expected`` counts undo tasks per operation."""
    run_tasks = {
        t["id"]: (s["id"], t) for s in found["steps"] if s["kind"] == "run" for t in s["tasks"]
    }
    seen: dict[str, int] = {}
    for path in sorted(params_dir.glob("*.json")):
        params = json.loads(path.read_text())
        undo = params.pop("undo")
        step_id, task = run_tasks[undo["task_id"]]
        assert task["status"] == "completed"
        assert undo["result"] == task["result"]
        assert undo["result"]["op"] == step_id
        assert params == task["result"]["params"]
        seen[step_id] = seen.get(step_id, 0) + 1
    assert seen == expected


def test_rollback_policy_undoes_completed_operations_in_reverse_order(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    params_dir = tmp_path / "undo-params"
    params_dir.mkdir()

    def undo(label: str) -> dict[str, Any]:
        return _undo(log, params_dir, label)

    found = run_and_wait(
        shared,
        workflow(
            "rollback-policy",
            op(
                "net",
                traced(log, "net", result=True),
                undo=undo("net"),
                params={"cidr": "10.0.0.0/24"},
            ),
            op("dns", traced(log, "dns", result=True), undo=undo("dns")),
            op("plain", traced(log, "plain", result=True)),  # completed, but no undo
            op(
                "slow",
                traced(log, "slow", body=wait_until_logged(log, "vm"), result=True),
                undo=undo("slow"),
            ),
            op(
                "disk",
                traced(log, "disk", result=True),
                "net",
                items=["d1", "d2"],
                undo=undo("disk"),
            ),
            op(
                "vm", traced(log, "vm", exit_code=1), "disk", on_failure="rollback", undo=undo("vm")
            ),
            op("app", traced(log, "app", result=True), "vm", undo=undo("app")),
            retry=NO_RETRY,
        ),
    )

    assert found["status"] == "rolled_back", found
    assert found["phase"] == "undo"
    timeline = Timeline(log)
    # slow was still running when vm failed; the rollback waited for it.
    assert timeline.one("slow").end > timeline.one("vm").end
    assert timeline.labels == {
        "net", "dns", "plain", "slow", "disk", "vm",
        "undo-net", "undo-dns", "undo-slow", "undo-disk",
    }, timeline  # fmt: skip
    failure_settled = max(timeline.one("vm").end, timeline.one("slow").end)
    undos = [s for s in timeline.spans if s.label.startswith("undo-")]
    assert all(s.start > failure_settled for s in undos), timeline
    assert len(timeline.of("undo-disk")) == 2
    # Reverse dependency order: disk (which depends on net) is undone before net.
    timeline.assert_dependencies({"undo-net": ["undo-disk"]})

    by_id = steps(found)
    undo_steps = {s["id"]: s for s in found["steps"] if s["kind"] == "undo"}
    assert set(undo_steps) == {"undo:disk", "undo:net", "undo:dns", "undo:slow"}
    assert undo_steps["undo:net"]["depends_on"] == ["undo:disk"]
    assert all(s["status"] == "completed" for s in undo_steps.values())
    assert by_id["vm"]["status"] == "failed"
    assert task_statuses(found)["app"] == ["skipped"]
    _check_undo_params(found, params_dir, {"net": 1, "dns": 1, "slow": 1, "disk": 2})


def test_rollback_undoes_the_completed_items_of_a_partly_failed_fan_out(
    shared: Daemon, tmp_path: Path
) -> None:
    params_dir = tmp_path / "undo-params"
    params_dir.mkdir()
    create = 'case "$PROVISIONING_PARAMS" in *bad*) exit 1;; esac'
    found = run_and_wait(
        shared,
        workflow(
            "partial-fan-out",
            op(
                "servers",
                ["sh", "-c", create],
                items=["web-1", "bad-2"],
                on_failure="rollback",
                undo=["sh", "-c", save_params(params_dir)],
            ),
            retry=NO_RETRY,
        ),
    )

    assert task_statuses(found)["servers"] == ["completed", "failed"]
    assert found["status"] == "rolled_back", found
    undone = [json.loads(p.read_text())["item"] for p in params_dir.glob("*.json")]
    assert undone == ["web-1"]


def test_rollback_endpoint_reverses_a_completed_workflow_once(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    params_dir = tmp_path / "undo-params"
    params_dir.mkdir()
    workflow_id = submit(
        shared,
        workflow(
            "to-reverse",
            *[
                op(name, traced(log, name, result=True), *deps, undo=_undo(log, params_dir, name))
                for name, deps in (("a", ()), ("b", ("a",)), ("c", ("b",)))
            ],
        ),
    )
    assert wait_workflow(shared, workflow_id)["status"] == "completed"
    assert not list(params_dir.iterdir())  # nothing undone while it ran

    code, started = command(shared, workflow_id, "rollback")
    assert code == 200, started
    assert started["id"] == workflow_id
    assert started["status"] in ("rolling_back", "rolled_back")
    found = wait_workflow(shared, workflow_id)

    assert found["status"] == "rolled_back", found
    timeline = Timeline(log)
    timeline.assert_dependencies({"undo-b": ["undo-c", "c"], "undo-a": ["undo-b"], "undo-c": ["c"]})
    undo_steps = {s["id"]: s["depends_on"] for s in found["steps"] if s["kind"] == "undo"}
    assert undo_steps == {"undo:c": [], "undo:b": ["undo:c"], "undo:a": ["undo:b"]}
    _check_undo_params(found, params_dir, {"a": 1, "b": 1, "c": 1})

    again = shared.http.post(f"/workflows/{workflow_id}/rollback")
    assert again.status_code == 409, again.text
    assert "rolled_back" in again.json()["error"]
    assert shared.http.post(f"/workflows/{workflow_id}/retry").status_code == 409
    assert len(Timeline(log).of("undo-a")) == 1  # the refused rollback ran nothing


def test_unknown_workflow_is_404(shared: Daemon) -> None:
    assert shared.http.get("/workflows/nope").status_code == 404
    for verb in ("cancel", "retry", "rollback"):
        response = shared.http.post(f"/workflows/nope/{verb}")
        assert response.status_code == 404, (verb, response.text)
        assert "nope" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"name": "w", "operations": [,]}',
            "body: body is not valid JSON (Expecting value at character 29)",
        ),
        (b"[1, 2]", "body: Input should be a valid dictionary"),
    ],
)
def test_a_submitted_body_that_is_no_json_object_is_a_clear_422(
    shared: Daemon, body: bytes, said: str
) -> None:
    response = shared.http.post(
        "/workflows/batch/submit", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == said


def test_a_workflow_naming_its_dependencies_many_times_is_stored_as_sent(
    shared: Daemon,
) -> None:
    layer = [{"id": f"a{i}", "run": {"command": ["true"]}} for i in range(3)]
    last = {"id": "z", "run": {"command": ["true"]}, "depends_on": ["a0", "a1", "a2"]}
    submitted = shared.http.post(
        "/workflows/batch/submit", json={"name": "shared-names", "operations": [*layer, last]}
    )
    assert submitted.status_code == 201, submitted.text
    workflow_id = submitted.json()["workflow_id"]
    done = wait_workflow(shared, workflow_id)
    assert done["status"] == "completed"
    steps = {step["id"]: step for step in done["steps"]}
    assert steps["z"].get("depends_on", ["a0", "a1", "a2"]) == ["a0", "a1", "a2"]
    ends = [t["completed_at"] for s in ("a0", "a1", "a2") for t in steps[s]["tasks"]]
    assert all(end <= steps["z"]["tasks"][0]["started_at"] for end in ends)


# -- retry from the checkpoint ----------------------------------------------------------------------


def test_retry_resumes_from_the_checkpoint(shared: Daemon, tmp_path: Path) -> None:
    counts = tmp_path / "runs"
    flag = tmp_path / "s3-failed-once"
    fails_once = f'{count_run(counts, "s3")}; if [ ! -e "{flag}" ]; then touch "{flag}"; echo "s3: first try fails" >&2; exit 1; fi'
    workflow_id = submit(
        shared,
        workflow(
            "resumable",
            op("s1", ["sh", "-c", count_run(counts, "s1")]),
            op("s2", ["sh", "-c", count_run(counts, "s2")], "s1"),
            op("s3", ["sh", "-c", fails_once], "s2"),
            op("s4", ["sh", "-c", count_run(counts, "s4")], "s3"),
            retry=NO_RETRY,
        ),
    )
    failed = wait_workflow(shared, workflow_id)
    assert failed["status"] == "failed", failed
    assert task_statuses(failed) == {
        "s1": ["completed"],
        "s2": ["completed"],
        "s3": ["failed"],
        "s4": ["skipped"],
    }
    assert failed["checkpoint"]["completed_steps"] == ["s1", "s2"]
    assert runs(counts) == {"s1": 1, "s2": 1, "s3": 1}
    before = {t["id"]: t for s in failed["steps"] for t in s["tasks"]}

    code, retried = command(shared, workflow_id, "retry")
    assert code == 200, retried
    assert retried["status"] in ("running", "completed")
    done = wait_workflow(shared, workflow_id)

    assert done["status"] == "completed", done
    assert runs(counts) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1}
    after = {t["id"]: t for s in done["steps"] for t in s["tasks"]}
    assert after.keys() == before.keys()  # the same tasks, resumed
    s1, s2, s3 = (steps(done)[s]["tasks"][0] for s in ("s1", "s2", "s3"))
    assert (s1["attempt"], s2["attempt"], s3["attempt"]) == (1, 1, 2)
    assert s1["completed_at"] == before[s1["id"]]["completed_at"]
    assert done["checkpoint"]["steps_completed"] == 4
    assert done["checkpoint"]["completed_steps"] == ["s1", "s2", "s3", "s4"]
    assert done["tasks"] == {"total": 4, "completed": 4, "failed": 0, "open": 0}
    assert done["error"] is None

    again = shared.http.post(f"/workflows/{workflow_id}/retry")
    assert again.status_code == 409, again.text
    assert runs(counts)["s1"] == 1


# -- cancel ------------------------------------------------------------------------------------------


def test_cancel_ends_running_tasks_with_their_grandchildren_and_cancels_the_rest(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    leader_file, grandchild_file = tmp_path / "leader", tmp_path / "grandchild"
    long_step = (
        f'echo $$ > "{leader_file}"; sleep 300 & echo $! > "{grandchild_file}.tmp"; '
        f'mv "{grandchild_file}.tmp" "{grandchild_file}"; wait'
    )
    params_dir = tmp_path / "undo-params"
    params_dir.mkdir()
    workflow_id = submit(
        shared,
        workflow(
            "to-cancel",
            op("first", traced(log, "first", result=True), undo=_undo(log, params_dir, "first")),
            op("long", traced(log, "long", sleep=0, body=long_step), "first"),
            op("other", traced(log, "other"), "first"),  # pending: parallel_limit is 1
            op("next", traced(log, "next"), "long"),  # blocked
            parallel_limit=1,
        ),
    )
    wait_for(grandchild_file.exists, message="the long step's grandchild")
    leader = int(leader_file.read_text())
    grandchild = int(grandchild_file.read_text())
    assert pid_alive(leader) and pid_alive(grandchild)
    assert view(shared, workflow_id)["status"] == "running"

    code, answer = command(shared, workflow_id, "cancel")
    assert code == 200, answer
    found = wait_workflow(shared, workflow_id)

    assert found["status"] == "cancelled", found
    assert task_statuses(found) == {
        "first": ["completed"],
        "long": ["cancelled"],
        "other": ["cancelled"],
        "next": ["cancelled"],
    }
    wait_for(lambda: not pid_alive(grandchild), timeout=10, message="grandchild gone")
    wait_for(lambda: not pid_alive(leader), timeout=10, message="leader gone")
    assert Timeline(log).labels == {"first", "long"}  # nothing else ever started
    assert found["tasks"]["open"] == 0
    # Cancelling a finished workflow changes nothing.
    code, again = command(shared, workflow_id, "cancel")
    assert (code, again["status"]) == (200, "cancelled")
    # A cancelled workflow can be rolled back: its completed step is undone.
    code, _ = command(shared, workflow_id, "rollback")
    assert code == 200
    assert wait_workflow(shared, workflow_id)["status"] == "rolled_back"
    assert Timeline(log).labels == {"first", "long", "undo-first"}


def test_failed_undo_ends_rollback_failed_and_retry_finishes_the_rollback(
    shared: Daemon, tmp_path: Path
) -> None:
    counts, flag = tmp_path / "runs", tmp_path / "undo-b-failed-once"
    undo_b = f'{count_run(counts, "undo-b")}; if [ ! -e "{flag}" ]; then touch "{flag}"; exit 1; fi'

    def counted(label: str) -> list[str]:
        return ["sh", "-c", count_run(counts, label)]

    workflow_id = submit(
        shared,
        workflow(
            "undo-fails",
            op("a", counted("a"), undo=counted("undo-a")),
            op("b", counted("b"), "a", undo=["sh", "-c", undo_b]),
            op("c", ["false"], "b", on_failure="rollback"),
            retry=NO_RETRY,
        ),
    )
    broken = wait_workflow(shared, workflow_id)
    assert broken["status"] == "rollback_failed", broken
    assert runs(counts) == {"a": 1, "b": 1, "undo-b": 1}  # undo:a waits for undo:b
    assert task_statuses(broken)["undo:b"] == ["failed"]
    assert task_statuses(broken)["undo:a"] == ["skipped"]

    code, answer = command(shared, workflow_id, "retry")
    assert code == 200, answer
    assert answer["status"] in ("rolling_back", "rolled_back")
    found = wait_workflow(shared, workflow_id)

    assert found["status"] == "rolled_back", found
    assert runs(counts) == {"a": 1, "b": 1, "undo-b": 2, "undo-a": 1}
    assert command(shared, workflow_id, "retry")[0] == 409


def test_a_task_retried_by_its_policy_holds_back_its_dependents(
    shared: Daemon, tmp_path: Path
) -> None:
    log = tmp_path / "trace"
    found = run_and_wait(
        shared,
        workflow(
            "task-retry",
            op(
                "flaky",
                traced(log, "flaky", body=fail_once(tmp_path / "flag"), exit_code="$rc"),
                retry={"max_attempts": 2, "initial_delay": 0},
            ),
            op("after", traced(log, "after"), "flaky"),
        ),
    )

    assert found["status"] == "completed", found
    timeline = Timeline(log)
    assert len(timeline.of("flaky")) == 2
    timeline.assert_dependencies({"after": ["flaky"]})  # after the second attempt
    assert steps(found)["flaky"]["tasks"][0]["attempt"] == 2
    assert found["tasks"] == {"total": 2, "completed": 2, "failed": 0, "open": 0}


def test_ready_tasks_are_queued_with_their_workflow_priority(
    make_daemon: Any, tmp_path: Path
) -> None:
    """One slot, held by a gated task; then a low and a high priority workflow become
    ready together: every high task starts before any low one."""
    daemon: Daemon = make_daemon(max_concurrent_tasks=1).start()
    log, gate = tmp_path / "trace", tmp_path / "gate"
    blocker = submit(
        daemon,
        workflow(
            "blocker", op("hold", ["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.02; done'])
        ),
    )
    wait_for(lambda: view(daemon, blocker)["status"] == "running", message="the slot taken")
    ids = [
        submit(
            daemon,
            workflow(
                level,
                *[op(f"{level}{i}", traced(log, f"{level}{i}", sleep=0)) for i in range(3)],
                priority=level,
            ),
        )
        for level in ("low", "high")
    ]
    gate.touch()
    for workflow_id in ids:
        assert wait_workflow(daemon, workflow_id)["status"] == "completed"

    order = [s.label for s in sorted(Timeline(log).spans, key=lambda s: s.start)]
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]
    assert view(daemon, ids[1])["priority"] == "high"


def test_listing_filters_and_pages_newest_first(shared: Daemon) -> None:
    ids = [run_and_wait(shared, workflow(f"listed-{i}", op("a", OK)))["id"] for i in range(2)]

    newest = shared.http.get("/workflows", params={"limit": 1}).json()
    older = shared.http.get("/workflows", params={"limit": 1, "offset": 1}).json()
    completed = shared.http.get("/workflows", params={"status": "completed", "limit": 1000}).json()
    failed = shared.http.get("/workflows", params={"status": "failed"}).json()

    assert [w["id"] for w in newest["workflows"]] == [ids[1]]
    assert [w["id"] for w in older["workflows"]] == [ids[0]]
    assert newest["total"] == older["total"] >= 2
    assert (newest["limit"], older["offset"]) == (1, 1)
    assert set(ids) <= {w["id"] for w in completed["workflows"]}
    assert {w["status"] for w in completed["workflows"]} == {"completed"}
    assert completed["total"] == len(completed["workflows"])
    assert {w["status"] for w in failed["workflows"]} <= {"failed"}
    assert not set(ids) & {w["id"] for w in failed["workflows"]}
    assert "steps" not in newest["workflows"][0] or newest["workflows"][0]["steps"] is None
    assert shared.http.get("/workflows", params={"status": "bogus"}).status_code == 422


def _stream_workflow_events(daemon: Daemon, into: queue.Queue[dict[str, Any] | None]) -> None:
    """Read ``/events?events=workflow`` into ``into`` until the workflow named
    ``events-last`` finished; ``None`` marks the end of the stream."""
    try:
        with httpx.stream(
            "GET",
            daemon.url + "/events",
            params={"events": "workflow"},
            headers={"Authorization": f"Bearer {daemon.token}"},
            timeout=httpx.Timeout(5, read=30),
        ) as response:
            into.put({"event": "subscribed"})
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line.removeprefix("data: "))
                into.put(event)
                if event.get("event") == "finished" and event.get("name") == "events-last":
                    break
    except httpx.HTTPError as exc:  # the test sees the stream end early
        into.put({"event": "stream-error", "error": str(exc)})
    into.put(None)


def test_workflow_events_reach_the_event_stream(shared: Daemon, tmp_path: Path) -> None:
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=_stream_workflow_events, args=(shared, events), daemon=True)
    reader.start()
    seen: list[dict[str, Any]] = []

    def until(predicate: Any) -> None:
        while True:
            event = events.get(timeout=20)
            assert event is not None, seen
            seen.append(event)
            if predicate(event):
                return

    until(lambda e: e["event"] == "subscribed")
    # A first workflow proves the subscription is live before the one under test.
    probe = submit(shared, workflow("events-probe", op("a", OK)))
    until(lambda e: e.get("workflow_id") == probe and e["event"] == "created")
    wait_workflow(shared, probe)
    workflow_id = submit(
        shared,
        workflow(
            "events-last",
            op("a", OK, undo=OK),
            op("b", ["false"], "a", on_failure="rollback"),
            retry=NO_RETRY,
        ),
    )
    until(lambda e: e.get("workflow_id") == workflow_id and e["event"] == "finished")
    reader.join(timeout=10)

    mine = [e for e in seen if e.get("workflow_id") == workflow_id]
    assert all(e["type"] == "workflow" for e in mine)
    assert (mine[0]["event"], mine[0]["status"]) == ("created", "queued"), mine
    assert "rollback_started" in [e["event"] for e in mine], mine
    assert (mine[-1]["event"], mine[-1]["status"]) == ("finished", "rolled_back"), mine
    assert mine[-1]["tasks_total"] == 3


# -- kill -9 and resume ------------------------------------------------------------------------------


def test_kill9_mid_workflow_resumes_from_the_checkpoint(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon().start()
    counts, gate = tmp_path / "runs", tmp_path / "gate"
    gated = f'{count_run(counts, "s2")}; while [ ! -e "{gate}" ]; do sleep 0.05; done'
    workflow_id = submit(
        daemon,
        workflow(
            "survivor",
            op("s1", ["sh", "-c", count_run(counts, "s1")]),
            op("s2", ["sh", "-c", gated], "s1"),
            op("s3", ["sh", "-c", count_run(counts, "s3")], "s2"),
            op("s4", ["sh", "-c", count_run(counts, "s4")], "s3"),
            retry={"max_attempts": 3, "initial_delay": 0},
        ),
    )
    wait_for(lambda: runs(counts).get("s2") == 1, message="step 2 running")

    daemon.kill9()
    daemon.start()
    gate.touch()
    found = wait_workflow(daemon, workflow_id)

    assert found["status"] == "completed", found
    # Step 2 was re-adopted: it went on, in its first attempt, and ran once.
    assert runs(counts) == {"s1": 1, "s2": 1, "s3": 1, "s4": 1}
    tasks = {s["id"]: s["tasks"][0] for s in found["steps"]}
    assert [tasks[s]["attempt"] for s in ("s1", "s2", "s3", "s4")] == [1, 1, 1, 1]
    s2_attempts = daemon.task(tasks["s2"]["id"])["attempts"]
    assert [a["status"] for a in s2_attempts] == ["completed"]
    assert [a["status"] for a in daemon.task(tasks["s1"]["id"])["attempts"]] == ["completed"]
    assert found["checkpoint"]["steps_completed"] == 4
    assert found["tasks"] == {"total": 4, "completed": 4, "failed": 0, "open": 0}


# -- validation before anything is queued ------------------------------------------------------------


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """An orchestrator that only ever sees invalid workflows."""
    daemon = Daemon(tmp_path_factory.mktemp("validation"))
    daemon.write_nu("tools.nu", "export def present [params: record] { }\n")
    daemon.write_py("tools_py", "def present(params):\n    return None\n")
    daemon.start()
    yield daemon
    daemon.stop()


def _nu(module: str, function: str) -> dict[str, Any]:
    return {"nushell": {"module": module, "function": function}}


def _py(module: str, function: str) -> dict[str, Any]:
    return {"python": {"module": module, "function": function}}


# (where, operation, message fragment) that some problem must match.
Expected = list[tuple[str, str | None, str]]

INVALID: list[Any] = [
    pytest.param(
        workflow("w", op("a", OK), op("b", OK, "a", "nope")),
        [("operations[1].depends_on", "b", "unknown operation 'nope'")],
        id="unknown-depends-on",
    ),
    pytest.param(
        workflow("w", op("a", OK), op("a", OK)),
        [("operations[1].id", "a", "duplicate id 'a'")],
        id="duplicate-id",
    ),
    pytest.param(
        workflow("w", op("a", OK, "x"), op("a", OK), op("b", OK, "y")),
        [
            ("operations[1].id", "a", "duplicate id 'a'"),
            ("operations[0].depends_on", "a", "unknown operation 'x'"),
            ("operations[2].depends_on", "b", "unknown operation 'y'"),
        ],
        id="every-problem-at-once",
    ),
    pytest.param(
        workflow("w", op("a", OK, "a")),
        [("operations[0].depends_on", "a", "cannot depend on itself")],
        id="self-dependency",
    ),
    pytest.param(
        workflow("w", {"id": "a", "run": _nu("missing.nu", "go")}),
        [("operations[0].run", "a", "no module 'missing.nu'")],
        id="unknown-nushell-module",
    ),
    pytest.param(
        workflow("w", {"id": "a", "run": _nu("tools.nu", "absent")}),
        [("operations[0].run", "a", "exports no command 'absent'")],
        id="unknown-nushell-function",
    ),
    pytest.param(
        workflow("w", {"id": "a", "run": _py("no_such_module", "go")}),
        [("operations[0].run", "a", "no module 'no_such_module'")],
        id="unknown-python-module",
    ),
    pytest.param(
        workflow("w", {"id": "a", "run": _py("tools_py", "absent")}),
        [("operations[0].run", "a", "defines no 'absent'")],
        id="unknown-python-function",
    ),
    pytest.param(
        workflow("w", {"id": "a", "run": _py("tools_py", "present"), "undo": _nu("gone.nu", "x")}),
        [("operations[0].undo", "a", "no module 'gone.nu'")],
        id="unknown-undo-module",
    ),
    pytest.param(
        workflow("w", op("a", OK, on_failure="explode")),
        [("operations[0].on_failure", "a", "'fail', 'continue' or 'rollback'")],
        id="bad-on-failure",
    ),
    pytest.param(
        workflow("w", op("a", OK), parallel_limit=0),
        [("parallel_limit", None, "greater than or equal to 1")],
        id="parallel-limit-0",
    ),
    pytest.param(
        workflow("w", op("a", OK, target="server", type="create")),
        [("operations[0]", "a", "not both")],
        id="run-and-target",
    ),
    pytest.param(
        workflow("w", op("a", OK, on_failure="rollback"), rollback_enabled=False),
        [("workflow", None, "on_failure = rollback needs rollback_enabled = true")],
        id="rollback-disabled",
    ),
]


@pytest.mark.parametrize(("body", "expected"), INVALID)
def test_invalid_workflow_is_rejected_before_anything_is_queued(
    validator: Daemon, body: dict[str, Any], expected: Expected
) -> None:
    response = validator.http.post("/workflows/batch/submit", json=body)

    assert response.status_code == 422, response.text
    answer = response.json()
    problems = answer["problems"]
    assert isinstance(answer["error"], str) and answer["error"]
    for where, operation, fragment in expected:
        assert any(
            p["where"] == where and p["operation"] == operation and fragment in p["message"]
            for p in problems
        ), (where, operation, fragment, problems)
    assert len(problems) == len(expected), problems
    assert totals(validator) == (0, 0)


def test_cycle_is_rejected_and_named(validator: Daemon) -> None:
    depends_on = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["a"]}
    body = workflow("w", *[op(name, OK, *deps) for name, deps in depends_on.items()])

    response = validator.http.post("/workflows/batch/submit", json=body)

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["where"].endswith(".depends_on")
    assert problem["message"].startswith("dependency cycle: "), problem
    chain = problem["message"].removeprefix("dependency cycle: ").split(" -> ")
    assert chain[0] == chain[-1] and sorted(chain[:-1]) == ["a", "b", "c"], chain  # not d
    pairs = list(itertools.pairwise(chain))
    # One consistent direction: "u -> v" reads "u depends on v" (or, all along, the reverse).
    assert all(v in depends_on[u] for u, v in pairs) or all(u in depends_on[v] for u, v in pairs)
    assert totals(validator) == (0, 0)


def test_contract_problems_use_the_same_where_notation_and_name_the_operation(
    validator: Daemon,
) -> None:
    body = workflow("w", op("a", OK), op("b", OK, "a", on_failure="explode"))

    response = validator.http.post("/workflows/batch/submit", json=body)

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert (problem["where"], problem["operation"]) == ("operations[1].on_failure", "b")


def test_the_steps_view_pages(shared: Daemon) -> None:
    workflow_id = submit(shared, workflow("paged", *item_layers(5, 2, ["true"])))
    done = wait_workflow(shared, workflow_id)
    assert done["status"] == "completed"
    assert done["steps_total"] == 5
    response = shared.http.get(
        f"/workflows/{workflow_id}",
        params={"steps": "true", "step_offset": 1, "step_limit": 2},
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert [s["id"] for s in page["steps"]] == ["layer1", "layer2"]
    assert [len(s["tasks"]) for s in page["steps"]] == [2, 2]
    assert page["steps_total"] == 5
    # The checkpoint still names every completed step, not only the page's.
    assert page["checkpoint"]["completed_steps"] == [f"layer{i}" for i in range(5)]
    counts_only = shared.http.get(f"/workflows/{workflow_id}").json()
    assert (counts_only["steps"], counts_only["steps_total"]) == (None, None)
    refused = shared.http.get(f"/workflows/{workflow_id}", params={"step_limit": 0})
    assert refused.status_code == 422
