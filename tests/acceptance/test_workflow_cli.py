"""``provisioning workflow …`` and ``provisioning batch …``: the real console script in
subprocesses, talking to a real orchestrator found through ``PROVISIONING_CONFIG``
(the daemon's own configuration file: its ``[server] port`` gives the endpoint)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import BIN, Daemon
from tests.acceptance.workflow_helpers import (
    ANSI_ESCAPE,
    NO_RETRY,
    Cli,
    CliResult,
    count_run,
    line_containing,
    op,
    runs,
    steps,
    submit,
    totals,
    view,
    wait_workflow,
    workflow,
    write_workflow,
)
from tests.conftest import wait_for

# The same workflow in every format: a diamond with a fan-out, counting its runs.
LAYERS = [["prepare"], ["install", "network"], ["verify"]]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = Daemon(tmp_path_factory.mktemp("workflow-cli")).start()
    yield started
    started.stop()


@pytest.fixture
def cli(daemon: Daemon, tmp_path: Path) -> Cli:
    return Cli(daemon, tmp_path)


def diamond(counts: Path, name: str = "diamond") -> dict[str, Any]:
    def counted(label: str) -> list[str]:
        return ["sh", "-c", count_run(counts, label)]

    return workflow(
        name,
        op("prepare", counted("prepare")),
        op("install", counted("install"), "prepare", items=["n1", "n2"]),
        op("network", counted("network"), "prepare"),
        op("verify", counted("verify"), "install", "network"),
    )


def clean(result: CliResult) -> None:
    """No traceback, no colour codes: output meant for a pipe."""
    assert "Traceback" not in result.stdout + result.stderr, result
    assert ANSI_ESCAPE not in result.stdout + result.stderr, result


def submitted_id(result: CliResult) -> str:
    lines = [line for line in result.stdout.splitlines() if "Workflow submitted: " in line]
    assert lines, result
    return lines[0].split("Workflow submitted: ", 1)[1].split()[0]


# -- submit ---------------------------------------------------------------------------------------


def test_check_prints_the_layers_and_queues_nothing(
    cli: Cli, daemon: Daemon, tmp_path: Path
) -> None:
    path = write_workflow(tmp_path / "plan.ncl", diamond(tmp_path / "runs"))
    before = totals(daemon)

    text = cli("workflow", "submit", "--check", "--priority", "critical", str(path))
    as_json = cli("workflow", "submit", "--check", "--json", str(path))

    assert text.code == 0, text
    clean(text)
    lines = text.stdout.splitlines()
    assert "diamond" in lines[0] and "5 task(s)" in lines[0] and "priority critical" in lines[0]
    layers: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("layer "):
            assert line == f"layer {len(layers)}:", text
            layers.append([])
        else:
            layers[-1].append(line.split()[0])
    assert layers == LAYERS, text
    assert "  install x2 <- prepare" in text.stdout
    assert "  verify <- install, network" in text.stdout
    assert as_json.code == 0, as_json
    assert as_json.json() == {"name": "diamond", "tasks": 5, "layers": LAYERS}
    assert totals(daemon) == before
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("suffix", [".ncl", ".json", ".yaml", ".toml"])
def test_the_same_workflow_is_accepted_in_every_format(
    cli: Cli, daemon: Daemon, tmp_path: Path, suffix: str
) -> None:
    counts = tmp_path / "runs"
    path = write_workflow(tmp_path / f"cluster{suffix}", diamond(counts, f"diamond{suffix}"))

    done = cli("workflow", "submit", "--wait", str(path))

    assert done.code == 0, done
    clean(done)
    found = view(daemon, submitted_id(done))
    assert (found["name"], found["status"]) == (f"diamond{suffix}", "completed")
    assert steps(found)["install"]["total"] == 2
    assert runs(counts) == {"prepare": 1, "install": 2, "network": 1, "verify": 1}


def test_wait_exits_1_for_a_failing_workflow_then_retry_and_rollback(
    cli: Cli, daemon: Daemon, tmp_path: Path
) -> None:
    counts, flag = tmp_path / "runs", tmp_path / "failed-once"
    fails_once = f'{count_run(counts, "b")}; if [ ! -e "{flag}" ]; then touch "{flag}"; exit 1; fi'
    undo = {"command": ["sh", "-c", count_run(counts, "undo-a")]}
    path = write_workflow(
        tmp_path / "flaky.ncl",
        workflow(
            "flaky",
            op("a", ["sh", "-c", count_run(counts, "a")], undo=undo),
            op("b", ["sh", "-c", fails_once], "a"),
            retry=NO_RETRY,
        ),
    )

    failed = cli("workflow", "submit", "--wait", str(path))
    assert failed.code == 1, failed
    clean(failed)
    workflow_id = submitted_id(failed)
    assert view(daemon, workflow_id)["status"] == "failed"

    retried = cli("workflow", "retry", workflow_id, "--wait")
    assert retried.code == 0, retried
    assert runs(counts) == {"a": 1, "b": 2}

    rolled = cli("workflow", "rollback", workflow_id, "--wait", "--json")
    assert rolled.code == 0, rolled
    assert rolled.json()["status"] == "rolled_back"
    assert runs(counts) == {"a": 1, "b": 2, "undo-a": 1}

    refused = cli("workflow", "rollback", workflow_id)
    assert refused.code == 1, refused
    clean(refused)
    assert "rolled_back" in refused.stderr
    assert runs(counts)["undo-a"] == 1


# -- errors in the file ----------------------------------------------------------------------------

CONTRACT_FILE = """\
{{
  name = "bad",
  parallel_limit = {parallel_limit},
  operations = [
    {{
      id = "a",
      on_failure = {on_failure},
      run = {{ command = ["true"] }},
    }},
  ],
}}
"""


@pytest.mark.parametrize(
    ("field", "values", "line", "expected"),
    [
        ("on_failure", {"on_failure": '"explode"'}, 7, "expected one of: fail, continue, rollback"),
        ("parallel_limit", {"parallel_limit": "0"}, 3, "expected a whole number from 1 to 10000"),
    ],
    ids=["on_failure", "parallel_limit"],
)
def test_contract_violation_names_the_file_line_and_field(
    cli: Cli,
    daemon: Daemon,
    tmp_path: Path,
    field: str,
    values: dict[str, str],
    line: int,
    expected: str,
) -> None:
    path = tmp_path / "wf.ncl"
    path.write_text(
        CONTRACT_FILE.format(**{"parallel_limit": "2", "on_failure": '"fail"', **values})
    )
    before = totals(daemon)

    result = cli("workflow", "submit", str(path))

    assert result.code == 2, result
    clean(result)
    assert f"wf.ncl:{line}" in result.stderr, result
    assert f"`{field}`" in result.stderr, result
    assert expected in result.stderr, result
    assert result.stderr.startswith("error: "), result
    assert totals(daemon) == before


@pytest.mark.parametrize("suffix", [".ncl", ".json"])
def test_unknown_dependency_names_the_file_and_the_operation(
    cli: Cli, daemon: Daemon, tmp_path: Path, suffix: str
) -> None:
    path = write_workflow(
        tmp_path / f"deps{suffix}",
        workflow("deps", op("a", ["true"]), op("b", ["true"], "a", "nope")),
    )
    before = totals(daemon)

    result = cli("workflow", "submit", str(path))

    assert result.code == 2, result
    clean(result)
    line = line_containing(path, '"id" = "b"' if suffix == ".ncl" else '"id": "b"')
    where = f"{path}:{line}"
    assert f"{where}: operations[1].depends_on: unknown operation 'nope'" in result.stderr, result
    assert totals(daemon) == before


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("wf.ncl", '{\n  name = "w",\n  operations = [ {,\n}\n', "wf.ncl:3"),
        ("wf.json", '{\n  "name": "w",\n  "operations": [,]\n}\n', "wf.json:3:18: invalid JSON"),
        ("wf.yaml", "name: w\noperations:\n  - id: [a\n", "wf.yaml:4:1: invalid YAML"),
        ("wf.toml", 'name = "w"\nversion = = "1"\n', "wf.toml: invalid TOML"),
    ],
    ids=["ncl", "json", "yaml", "toml"],
)
def test_syntax_error_names_the_file_and_line(
    cli: Cli, tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    result = cli("workflow", "submit", "--check", str(path))

    assert result.code == 2, result
    clean(result)
    assert expected in result.stderr, result
    if name.endswith(".toml"):
        assert "line 2" in result.stderr, result  # tomllib's own wording


# -- reading --------------------------------------------------------------------------------------------


def test_status_and_list_as_json(cli: Cli, daemon: Daemon, tmp_path: Path) -> None:
    path = write_workflow(tmp_path / "ok.ncl", diamond(tmp_path / "runs", "listed"))
    queued = cli("workflow", "submit", "--json", str(path))
    assert queued.code == 0, queued
    answer = queued.json()
    assert (answer["status"], answer["tasks"]) == ("queued", 5)
    workflow_id = answer["workflow_id"]
    wait_workflow(daemon, workflow_id)

    status = cli("workflow", "status", workflow_id, "--json")
    listed = cli("workflow", "list", "--json")
    completed = cli("workflow", "list", "--status", "completed", "--json")

    assert status.code == 0, status
    assert status.json() == view(daemon, workflow_id)
    assert status.json()["checkpoint"]["completed_steps"] == [
        "prepare",
        "install",
        "network",
        "verify",
    ]
    for page in (listed, completed):
        assert page.code == 0, page
        assert workflow_id in {w["id"] for w in page.json()["workflows"]}
        assert page.json()["total"] >= len(page.json()["workflows"]) >= 1
    assert {w["status"] for w in completed.json()["workflows"]} == {"completed"}


def test_batch_commands(cli: Cli, daemon: Daemon, tmp_path: Path) -> None:
    counts = tmp_path / "runs"
    body = diamond(counts, "batched")
    body["operations"][0]["undo"] = {"command": ["sh", "-c", count_run(counts, "undo-prepare")]}
    path = write_workflow(tmp_path / "batch.ncl", body)

    submitted = cli("batch", "submit", str(path))
    assert submitted.code == 0, submitted
    workflow_id = submitted_id(submitted)
    assert wait_workflow(daemon, workflow_id)["status"] == "completed"

    status = cli("batch", "status", workflow_id)
    listed = cli("batch", "list", "--status", "completed")
    stats = cli("batch", "stats", "--json")
    workflows_total, tasks_total = totals(daemon)
    monitored = cli("batch", "monitor", workflow_id)
    rolled = cli("batch", "rollback", workflow_id, "--wait")

    assert status.code == 0, status
    assert "batched" in status.stdout and "completed" in status.stdout
    assert "checkpoint: prepare, install, network, verify" in status.stdout
    assert listed.code == 0, listed
    assert workflow_id in listed.stdout
    assert stats.code == 0, stats
    report = stats.json()
    assert report["workflows_total"] == workflows_total
    assert report["workflows"]["completed"] >= 1
    assert sum(report["tasks"].values()) == tasks_total
    assert monitored.code == 0, monitored
    assert rolled.code == 0, rolled
    assert view(daemon, workflow_id)["status"] == "rolled_back"
    assert runs(counts)["undo-prepare"] == 1
    for result in (submitted, status, listed, monitored, rolled):
        clean(result)


@pytest.mark.parametrize(("exit_code", "expected"), [(0, "completed"), (1, "failed")])
def test_monitor_follows_the_workflow_and_exits_with_its_outcome(
    cli: Cli, daemon: Daemon, tmp_path: Path, exit_code: int, expected: str
) -> None:
    gate = tmp_path / "gate"
    gated = f'while [ ! -e "{gate}" ]; do sleep 0.05; done; exit {exit_code}'
    workflow_id = submit(
        daemon,
        workflow(
            "watched",
            op("gated", ["sh", "-c", gated]),
            op("after", ["true"], "gated"),
            retry=NO_RETRY,
        ),
    )
    wait_for(lambda: view(daemon, workflow_id)["status"] == "running", message="running")
    monitor = subprocess.Popen(
        [str(BIN / "provisioning"), "workflow", "monitor", workflow_id],
        env=cli.env,
        cwd=cli.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        gate.touch()
        stdout, stderr = monitor.communicate(timeout=30)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.communicate()
    result = CliResult(("workflow", "monitor", workflow_id), monitor.returncode, stdout, stderr)

    assert result.code == exit_code, result
    clean(result)
    assert view(daemon, workflow_id)["status"] == expected
    assert f"watched {workflow_id}  {expected}" in result.stdout, result


# -- bugs ------------------------------------------------------------------------------------------------


def test_monitor_view_is_laid_out_in_whole_lines(cli: Cli, daemon: Daemon) -> None:
    workflow_id = submit(daemon, workflow("layout", op("a", ["true"])))
    wait_workflow(daemon, workflow_id)

    result = cli("workflow", "monitor", workflow_id)

    assert result.code == 0, result
    assert any(line.startswith("┏") for line in result.stdout.splitlines()), result
    assert result.stdout.endswith("\n"), result


MARKUP_NAME = "nightly [/ops] [bold]db[/bold]"
MARKUP_BUG = (
    "BUG: workflow names are printed as Rich markup: '[/ops]' crashes the command with a "
    "MarkupError traceback and '[bold]' vanishes (cli/workflow.py print_plan, status, "
    "list_ table cells; cli/monitor.py render header)"
)


def test_check_prints_the_workflow_name_verbatim(cli: Cli, tmp_path: Path) -> None:
    path = write_workflow(tmp_path / "named.ncl", workflow(MARKUP_NAME, op("a", ["true"])))

    result = cli("workflow", "submit", "--check", str(path))

    assert result.code == 0, result
    assert MARKUP_NAME in result.stdout, result


def test_status_list_and_monitor_print_the_workflow_name_verbatim(
    make_daemon: Any, tmp_path: Path
) -> None:
    # Its own orchestrator: once such a workflow exists, `workflow list` fails for everyone.
    own: Daemon = make_daemon().start()
    workflow_id = submit(own, workflow(MARKUP_NAME, op("a", ["true"])))
    wait_workflow(own, workflow_id)
    cli = Cli(own, tmp_path)

    results = [
        cli("workflow", "status", workflow_id),
        cli("workflow", "list"),
        cli("workflow", "monitor", workflow_id),
    ]

    for result in results:
        assert result.code == 0, result
        assert MARKUP_NAME in result.stdout, result


def test_runners_are_checked_where_they_run(cli: Cli, daemon: Daemon, tmp_path: Path) -> None:
    daemon.write_nu("remote_tools.nu", "export def hello [params: record] { print hi }\n")
    # This machine's configuration: the orchestrator's address and token, nothing else.
    own = tmp_path / "cli.toml"
    own.write_text(f'[server]\nport = {daemon.port}\n[storage]\ndata_dir = "{daemon.data_dir}"\n')
    cli.env["PROVISIONING_CONFIG"] = str(own)
    body = workflow(
        "remote",
        {"id": "a", "run": {"nushell": {"module": "remote_tools.nu", "function": "hello"}}},
    )
    # The orchestrator itself accepts and runs it.
    assert view(daemon, submit(daemon, body))["status"] in ("queued", "running", "completed")
    path = write_workflow(tmp_path / "remote.ncl", body)

    result = cli("workflow", "submit", "--wait", str(path))

    assert result.code == 0, result


def test_status_shows_a_nushell_error_verbatim(cli: Cli, daemon: Daemon) -> None:
    daemon.write_nu(
        "boom.nu", 'export def explode [params: record] {\n    error make {msg: "disk full"}\n}\n'
    )
    body = workflow(
        "nu-fails",
        {"id": "a", "run": {"nushell": {"module": "boom.nu", "function": "explode"}}},
        retry=NO_RETRY,
    )
    workflow_id = submit(daemon, body)
    found = wait_workflow(daemon, workflow_id)
    assert found["status"] == "failed"
    assert f"[{daemon.lib}/boom.nu:" in found["error"]

    result = cli("workflow", "status", workflow_id)

    assert result.code == 0, result
    clean(result)
    assert "disk full" in result.stdout, result


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))
    except OSError:
        return 0


def test_ctrl_c_in_monitor_detaches_and_says_how_to_follow_again(
    cli: Cli, daemon: Daemon, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gated = f'while [ ! -e "{gate}" ]; do sleep 0.05; done'
    workflow_id = submit(daemon, workflow("detachable", op("gated", ["sh", "-c", gated])))
    wait_for(lambda: view(daemon, workflow_id)["status"] == "running", message="running")
    monitor = subprocess.Popen(
        [str(BIN / "provisioning"), "workflow", "monitor", workflow_id[:8]],
        env=cli.env,
        cwd=cli.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Following: it holds two connections to the daemon, the event stream and reads.
        wait_for(lambda: _sockets(monitor.pid) >= 2, message="the monitor to follow")
        monitor.send_signal(signal.SIGINT)
        stdout, stderr = monitor.communicate(timeout=30)
    finally:
        gate.touch()
        if monitor.poll() is None:
            monitor.kill()
            monitor.communicate()
    assert monitor.returncode == 130, (stdout, stderr)
    assert f"detached; workflow {workflow_id} still running" in stderr
    assert f"provisioning workflow monitor {workflow_id}" in stderr
    assert "Traceback" not in stderr
    wait_for(lambda: view(daemon, workflow_id)["status"] == "completed", message="completed")


def test_cancel_says_cancelling_then_cancelled_never_100(
    cli: Cli, daemon: Daemon, tmp_path: Path
) -> None:
    gated = f'while [ ! -e "{tmp_path / "never"}" ]; do sleep 0.05; done'
    workflow_id = submit(
        daemon,
        workflow(
            "to-cancel",
            op("first", ["true"]),
            op("gated", ["sh", "-c", gated], "first"),
            op("last", ["true"], "gated"),
        ),
    )
    wait_for(
        lambda: (
            view(daemon, workflow_id)["status"] == "running"
            and view(daemon, workflow_id)["tasks"]["completed"] == 1
        ),
        message="running",
    )
    cancelled = cli("workflow", "cancel", workflow_id, "--wait")
    assert cancelled.code == 0, cancelled
    # "cancelling" while its running task is being stopped, then the outcome.
    assert cancelled.stdout.rstrip().endswith("cancelled"), cancelled
    final = view(daemon, workflow_id)
    assert final["status"] == "cancelled"
    assert final["progress"] < 100
    shown = cli("workflow", "status", workflow_id)
    assert "100%" not in shown.stdout.splitlines()[1], shown
