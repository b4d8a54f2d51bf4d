"""The real ``provisioning`` console script, run in subprocesses on an isolated machine
(see ``cli_env.Cli``): execution modes, auto-start, fallback, version compatibility,
configuration precedence and errors, ``--json`` output, completion and help.

Every daemon a test causes to start is stopped by the fixture's finalizer.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioning import API_VERSION, __version__
from tests.acceptance.cli_env import PROVISIONING, Cli, Result
from tests.acceptance.conftest import pid_alive
from tests.conftest import wait_for

ECHO = ["sh", "-c", 'echo hi; echo "RESULT: {\\"a\\": 1}"']
KEY = "executor.max_concurrent_tasks"
ENV_KEY = "PROVISIONING_EXECUTOR_MAX_CONCURRENT_TASKS"
NO_AUTO_START = {"PROVISIONING_ORCHESTRATOR_AUTO_START": "false"}
NO_FALLBACK = {"PROVISIONING_ORCHESTRATOR_FALLBACK_TO_DIRECT": "false"}
NOTICE = "running task.submit directly"
START_HINT = "provisioning orchestrator start --daemon"
EXIT_CODES = (
    "Exit codes: 0 success; 1 the work failed, was refused or cancelled; 2 bad usage, an "
    "unknown id or name, or a bad configuration; 3 the orchestrator cannot be reached or "
    "does not answer in time; 130 interrupted."
)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    machine = Cli(tmp_path)
    yield machine
    machine.cleanup()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A machine whose orchestrator was started with ``orchestrator start --daemon``."""
    machine = Cli(tmp_path_factory.mktemp("running"))
    try:
        started = machine.run("orchestrator", "start", "--daemon")
        assert started.code == 0, started
        assert f"orchestrator started (pid {machine.daemon_pid()})" in started.stdout, started
        assert machine.healthy()
        yield machine
    finally:
        machine.cleanup()


def clean(result: Result) -> None:
    """No Python traceback leaked to the user."""
    assert "Traceback" not in result.stderr + result.stdout, result


def assert_no_daemon(cli: Cli) -> None:
    assert not cli.pid_file.exists()
    assert cli.daemon_pid() is None
    assert not cli.listening()


def printed_result(result: Result, after: str = "hi") -> Any:
    """The task's result, pretty-printed as JSON on stdout after its output line."""
    lines = result.stdout.splitlines()
    assert after in lines, result
    return json.loads("\n".join(lines[lines.index(after) + 1 :]))


def line_of(path: Path, key: str) -> int:
    return next(
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.startswith(f"{key} =")
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def wait_task(machine: Cli, task_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        shown = machine.run("task", "status", task_id, "--json")
        assert shown.code == 0, shown
        task: dict[str, Any] = shown.json()
        return task if task["status"] not in ("pending", "running") else None

    return wait_for(finished, timeout=30, interval=0.1, message=f"task {task_id} to finish")


# -- direct mode -----------------------------------------------------------------------------


def test_direct_submit_runs_here_without_an_orchestrator(cli: Cli) -> None:
    result = cli.run("task", "submit", "--direct", "--wait", "--", *ECHO)
    assert result.code == 0, result
    assert printed_result(result) == {"a": 1}
    assert "Starting orchestrator" not in result.stderr
    assert "notice" not in result.stderr
    assert_no_daemon(cli)


def test_direct_json(cli: Cli) -> None:
    result = cli.run("task", "submit", "--direct", "--json", "--", *ECHO)
    assert result.code == 0, result
    assert result.json() == {
        "mode": "direct",
        "status": "completed",
        "exit_code": 0,
        "result": {"a": 1},
        "error": None,
    }
    assert_no_daemon(cli)


def test_direct_failure_exits_1(cli: Cli) -> None:
    failing = ["sh", "-c", "echo boom >&2; exit 4"]
    human = cli.run("task", "submit", "--direct", "--wait", "--", *failing)
    assert human.code == 1, human
    assert human.lines("error: task failed: exit code 4"), human
    assert "boom" in human.stderr
    clean(human)
    machine = cli.run("task", "submit", "--direct", "--json", "--", *failing)
    assert machine.code == 1, machine
    report = machine.json()
    assert (report["mode"], report["status"], report["exit_code"]) == ("direct", "failed", 4)
    assert "boom" in report["error"]
    assert_no_daemon(cli)


def test_direct_timeout_kills_the_task(cli: Cli) -> None:
    began = time.monotonic()
    result = cli.run("task", "submit", "--direct", "--timeout", "0.5", "--", "sleep", "30")
    assert time.monotonic() - began < 15
    assert result.code == 1, result
    assert "timed_out" in result.stderr


def test_direct_nushell_task(cli: Cli) -> None:
    human = cli.run(
        "task", "submit", "--direct", "--nu", "examples/hello.nu", "greet",
        "--params", '{"name": "nu"}',
    )  # fmt: skip
    assert human.code == 0, human
    assert printed_result(human, after="hello, nu") == {
        "greeting": "hello, nu",
        "params": {"name": "nu"},
    }
    assert "100% done" in human.stderr  # progress is shown
    params = write(cli.root / "params.json", '{"name": "file", "n": [1, 2]}')
    machine = cli.run(
        "task", "submit", "--direct", "--json", "--nu", "examples/hello.nu", "greet",
        "--params", f"@{params}",
    )  # fmt: skip
    assert machine.code == 0, machine
    report = machine.json()
    assert report["mode"] == "direct"
    assert report["result"] == {"greeting": "hello, file", "params": {"name": "file", "n": [1, 2]}}
    assert_no_daemon(cli)


# -- auto-start, stop, fallback ----------------------------------------------------------------


def test_auto_start_then_stop(cli: Cli) -> None:
    assert_no_daemon(cli)
    result = cli.run("task", "submit", "--wait", "--", "true")
    assert result.code == 0, result
    assert "Starting orchestrator" in result.stderr
    assert "Task submitted:" in result.stdout
    assert "completed 100%" in result.stdout
    pid = cli.daemon_pid()
    assert pid is not None and pid_alive(pid)
    assert cli.pid_file.read_text().strip() == str(pid)
    assert cli.healthy()

    stopped = cli.run("orchestrator", "stop")
    assert stopped.code == 0, stopped
    assert f"pid {pid}" in stopped.stdout
    wait_for(lambda: not pid_alive(pid), timeout=20, message=f"pid {pid} to exit")
    assert_no_daemon(cli)

    # Down (after a run, so its token exists): the read commands say so.
    status = cli.run("orchestrator", "status", "--json")
    assert status.code == 3, status
    assert status.json() == {"status": "down", "endpoint": cli.url, "pid": None}
    human = cli.run("orchestrator", "status")
    assert human.code == 3
    assert "down" in human.stdout
    version = cli.run("version", "--json")
    assert version.code == 0, version
    assert version.json() == {
        "version": __version__,
        "api_version": API_VERSION,
        "orchestrator": None,
    }
    again = cli.run("orchestrator", "stop")
    assert again.code == 0
    assert "no orchestrator is running" in again.stdout


def test_auto_start_passes_the_config_option_on(cli: Cli) -> None:
    """Only ``--config`` (relative to cwd) names the port and data dir: the daemon the
    CLI starts must use the same configuration."""
    no_env = {"PROVISIONING_CONFIG": None}
    given = cli.config.name
    result = cli.run("--config", given, "task", "submit", "--wait", "--", "true", env=no_env)
    assert result.code == 0, result
    assert f"Starting orchestrator at {cli.url}" in result.stderr
    assert cli.daemon_pid() is not None
    assert cli.healthy()
    stopped = cli.run("--config", given, "orchestrator", "stop", env=no_env)
    assert stopped.code == 0, stopped
    assert cli.daemon_pid() is None


def test_fallback_on_runs_directly_with_a_one_line_notice(cli: Cli) -> None:
    result = cli.run("task", "submit", "--wait", "--", *ECHO, env=NO_AUTO_START)
    assert result.code == 0, result
    notices = result.lines(NOTICE)
    assert len(notices) == 1, result
    assert cli.url in notices[0]
    assert "auto_start = false" in notices[0]
    assert len(result.lines("notice")) == 1
    assert "Starting orchestrator" not in result.stderr
    assert printed_result(result) == {"a": 1}
    assert_no_daemon(cli)


def test_fallback_off_fails_and_says_how_to_start(cli: Cli) -> None:
    result = cli.run("task", "submit", "--wait", "--", "true", env={**NO_AUTO_START, **NO_FALLBACK})
    assert result.code == 3, result
    assert START_HINT in result.stderr
    assert cli.url in result.stderr
    assert result.stdout == ""
    clean(result)
    assert_no_daemon(cli)


def test_orchestrated_flag_never_falls_back(cli: Cli) -> None:
    result = cli.run("task", "submit", "--orchestrated", "--", "true", env=NO_AUTO_START)
    assert result.code == 3, result
    assert START_HINT in result.stderr
    assert NOTICE not in result.stderr
    assert_no_daemon(cli)


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback-on", "fallback-off"])
def test_auto_start_that_fails(cli: Cli, fallback: bool) -> None:
    env = {} if fallback else NO_FALLBACK
    with socket.socket() as blocker:  # bound, not listening: connections are refused
        blocker.bind(("127.0.0.1", cli.port))
        result = cli.run("task", "submit", "--wait", "--", *ECHO, env=env)
    assert "Starting orchestrator" in result.stderr, result
    reason = f"cannot listen on 127.0.0.1:{cli.port}"
    if fallback:
        assert result.code == 0, result
        notices = result.lines(NOTICE)
        assert len(notices) == 1, result
        assert "could not be started" in notices[0]
        assert reason in notices[0]
        assert printed_result(result) == {"a": 1}
    else:
        assert result.code == 3, result
        assert reason in result.stderr
        assert START_HINT in result.stderr
        assert NOTICE not in result.stderr
    clean(result)
    assert cli.daemon_pid() is None


# -- modes chosen by configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"PROVISIONING_EXECUTION_DEFAULT_MODE": "direct"},
        {"PROVISIONING_EXECUTION_FORCE_DIRECT": '["task.*"]'},
        {"PROVISIONING_ORCHESTRATOR_ENABLED": "false"},
    ],
    ids=["default_mode-direct", "force_direct", "orchestrator-disabled"],
)
def test_configuration_can_choose_direct_mode(cli: Cli, env: dict[str, str]) -> None:
    result = cli.run("task", "submit", "--wait", "--", *ECHO, env=env)
    assert result.code == 0, result
    assert printed_result(result) == {"a": 1}
    assert result.stderr == ""  # no auto-start, no fallback notice
    assert_no_daemon(cli)


def test_configuration_can_force_orchestrated_mode(cli: Cli) -> None:
    cli.write_config('\n[execution]\nforce_direct = ["task.*"]\ndefault_mode = "orchestrated"\n')
    result = cli.run("task", "submit", "--", "true", env={**NO_AUTO_START, **NO_FALLBACK})
    assert result.code == 3, result  # orchestrated, and nothing answers
    assert START_HINT in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--direct", "--orchestrated", "--", "true"], {}, "exclude each other"),
        ([], {}, "give exactly one of"),
        (["--nu", "m.nu", "f", "--", "true"], {}, "give exactly one of"),
        (["--direct", "--params", "{oops", "--", "true"], {}, "--params: not valid JSON"),
        (["--direct", "--params", "[1]", "--", "true"], {}, "expected a JSON object"),
        (
            ["--orchestrated", "--", "true"],
            {"PROVISIONING_ORCHESTRATOR_ENABLED": "false"},
            "orchestrator.enabled = false",
        ),
    ],
    ids=["both-flags", "no-runner", "two-runners", "bad-params", "params-not-object", "disabled"],
)
def test_submit_usage_errors_exit_2(
    cli: Cli, args: list[str], env: dict[str, str], message: str
) -> None:
    result = cli.run("task", "submit", *args, env=env)
    assert result.code == 2, result
    assert message in result.stderr
    assert result.stdout == ""
    clean(result)
    assert_no_daemon(cli)


# -- with a running orchestrator ---------------------------------------------------------------


def test_orchestrated_submit_reaches_the_running_orchestrator(running: Cli) -> None:
    result = running.run("task", "submit", "--orchestrated", "--", "true")
    assert result.code == 0, result
    found = re.search(r"Task submitted: (\S+)", result.stdout)
    assert found, result
    task_id = found.group(1)
    assert "Starting orchestrator" not in result.stderr
    assert NOTICE not in result.stderr
    listed = running.run("task", "list", "--json")
    assert listed.code == 0, listed
    assert task_id in [task["id"] for task in listed.json()["tasks"]]
    assert wait_task(running, task_id)["status"] == "completed"


def test_json_read_commands_print_only_json(running: Cli) -> None:
    script = 'echo hi; echo "RESULT: {\\"n\\": 2}"'
    submitted = running.run("task", "submit", "--wait", "--json", "--", "sh", "-c", script)
    assert submitted.code == 0, submitted
    task = submitted.json()
    assert (task["status"], task["result"]) == ("completed", {"n": 2})
    task_id = task["id"]

    version = running.run("version", "--json").json()
    assert (version["version"], version["api_version"]) == (__version__, API_VERSION)
    assert version["orchestrator"]["compatible"] is True
    assert version["orchestrator"]["api_version"] == API_VERSION

    env = running.run("env", "--json").json()
    assert all(set(entry) == {"value", "source"} for entry in env.values())
    assert env["orchestrator.endpoint"]["value"] == running.url
    assert env["orchestrator.endpoint"]["source"].startswith("derived from server.port")
    assert env["server.port"] == {
        "value": running.port,
        "source": f"{running.config}:{line_of(running.config, 'port')}",
    }
    assert env["storage.data_dir"]["value"] == str(running.data_dir)
    assert env[KEY] == {"value": 10, "source": "default"}

    listed = running.run("task", "list", "--json").json()
    assert task_id in [t["id"] for t in listed["tasks"]]
    assert listed["total"] >= 1
    completed = running.run("task", "list", "--status", "completed", "--json").json()
    assert {t["status"] for t in completed["tasks"]} == {"completed"}

    status = running.run("task", "status", task_id, "--json").json()
    assert (status["id"], status["status"], status["result"]) == (task_id, "completed", {"n": 2})
    assert [a["status"] for a in status["attempts"]] == ["completed"]

    logs = running.run("task", "logs", task_id, "--json")
    assert logs.code == 0, logs
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    assert "hi" in [line["line"] for line in lines]

    daemon_log = running.run("orchestrator", "logs", "--json", "-n", "1000")
    assert daemon_log.code == 0, daemon_log
    entries = [json.loads(line) for line in daemon_log.stdout.splitlines()]
    assert entries and any("listening on" in entry["line"] for entry in entries)
    # Task events are recorded too, without parameters or output.
    finished = [e["line"] for e in entries if f"task_id={task_id}" in e["line"]]
    assert any("task started" in line for line in finished), finished
    assert any("status=completed" in line for line in finished), finished
    assert not any('"n": 2' in line or "hi" in line.split() for line in finished)

    orch = running.run("orchestrator", "status", "--json")
    assert orch.code == 0, orch
    report = orch.json()
    assert report["status"] == "healthy"
    assert report["pid"] == running.daemon_pid()
    assert report["endpoint"] == running.url
    assert report["api_version"] == API_VERSION


def test_unknown_task_is_an_error_not_a_traceback(running: Cli) -> None:
    result = running.run("task", "status", "no-such-task", "--json")
    assert result.code == 2, result
    assert result.stdout == ""
    assert "'no-such-task' is not a task id" in result.stderr
    clean(result)
    unknown = running.run("task", "status", "00000000-0000-4000-8000-000000000000")
    assert unknown.code == 2, unknown  # not found: what was typed is wrong, as above
    assert "404" in unknown.stderr
    clean(unknown)


def test_short_ids_are_unique_prefixes_and_ids_are_quoted(running: Cli) -> None:
    first = running.run("task", "submit", "--json", "--", "true").json()["task_id"]
    listed = running.run("task", "list")
    assert first in listed.stdout, listed  # whole on a pipe; a terminal shows its first 8
    shown = running.run("task", "status", first[:8], "--json")
    assert shown.code == 0, shown
    assert shown.json()["id"] == first
    as_yaml = running.run("task", "status", first[:8], "-o", "yaml")
    assert f"id: {first}" in as_yaml.stdout, as_yaml
    ids = [t["id"] for t in running.run("task", "list", "--json").json()["tasks"]]
    # A one-character prefix is refused; an ambiguous longer one names two matches.
    shared = next((a[:4] for a in ids for b in ids if a != b and a[:4] == b[:4]), None)
    if shared is not None:
        ambiguous = running.run("task", "status", shared)
        assert ambiguous.code == 2 and "ambiguous" in ambiguous.stderr, ambiguous
    escaping = running.run("workflow", "cancel", f"../tasks/{first}")
    assert escaping.code == 2, escaping
    assert "is not a workflow id" in escaping.stderr
    assert running.run("task", "status", first, "--json").json()["status"] != "cancelled"


def test_undecodable_argument_is_one_line(running: Cli) -> None:
    completed = subprocess.run(
        [str(PROVISIONING).encode(), b"task", b"status", b"\xff\xfe"],
        env=running.env,
        capture_output=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.decode().count("\n") == 1, completed.stderr
    assert b"not valid UTF-8" in completed.stderr


def test_bad_token_names_the_file_and_status_still_reports_health(running: Cli) -> None:
    wrong = running.root / "wrong-token"
    wrong.write_text("not-the-token\n")
    env = {"PROVISIONING_SERVER_TOKEN_FILE": str(wrong)}
    listed = running.run("task", "list", env=env)
    assert listed.code == 2, listed
    assert str(wrong) in listed.stderr and "api-token" in listed.stderr
    status = running.run("orchestrator", "status", env=env)
    assert status.code == 2, status
    assert "healthy" in status.stdout and str(wrong) in status.stderr
    clean(status)


@pytest.fixture
def matrix(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """A ``versions.toml`` whose row for this core has ``rules``; returns the env to use it."""

    def make(**rules: str) -> dict[str, str]:
        body = "".join(f'{key.replace("_", "-")} = "{value}"\n' for key, value in rules.items())
        path = write(tmp_path / "versions.toml", f'[compatibility.core."{__version__}"]\n{body}')
        return {"PROVISIONING_VERSIONS_FILE": str(path)}

    return make


def test_incompatible_platform_is_refused(running: Cli, matrix: Callable[..., Any]) -> None:
    env = matrix(platform="^2.5", orchestrator_api=API_VERSION)
    before = running.run("task", "list", "--json").json()["total"]
    result = running.run("task", "submit", "--", "true", env=env)
    assert result.code == 1, result
    assert "refusing" in result.stderr
    assert f"orchestrator platform {__version__}" in result.stderr
    assert f"provisioning {__version__}" in result.stderr
    assert "^2.5" in result.stderr
    assert NOTICE not in result.stderr  # refused, not silently run elsewhere
    clean(result)
    assert running.run("task", "list", "--json").json()["total"] == before

    version = running.run("version", "--json", env=env)
    assert version.code == 0, version
    orch = version.json()["orchestrator"]
    assert orch["compatible"] is False
    assert "^2.5" in orch["problem"]
    human = running.run("version", env=env)
    assert "incompatible" in human.stdout


def test_incompatible_api_is_refused(running: Cli, matrix: Callable[..., Any]) -> None:
    env = matrix(platform=f"^{__version__}", orchestrator_api="v9")
    result = running.run("task", "submit", "--orchestrated", "--", "true", env=env)
    assert result.code == 1, result
    assert f"orchestrator API {API_VERSION}" in result.stderr
    assert "speaks API v9" in result.stderr
    clean(result)


def test_incompatible_orchestrator_is_refused_by_every_command(
    running: Cli, matrix: Callable[..., Any]
) -> None:
    env = matrix(platform="^2.5")
    result = running.run("task", "list", "--json", env=env)
    assert result.code == 1, result
    assert "^2.5" in result.stderr


# -- orchestrator never started ---------------------------------------------------------------


def test_orchestrator_status_when_never_started(cli: Cli) -> None:
    result = cli.run("orchestrator", "status", "--json")
    assert result.code == 3, result
    assert result.json()["status"] == "down"


def test_task_list_when_never_started_is_unreachable(cli: Cli) -> None:
    result = cli.run("task", "list", "--json")
    assert result.code == 3, result
    assert START_HINT in result.stderr


# -- configuration through the real CLI --------------------------------------------------------


def test_configuration_precedence(cli: Cli) -> None:
    workspace = cli.root / "ws"
    cwd = workspace / "infra" / "deep"
    cwd.mkdir(parents=True)

    def effective(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        result = cli.run(*args, "env", "--json", env=env, cwd=cwd)
        assert result.code == 0, result
        shown: dict[str, Any] = result.json()
        return shown

    assert effective()[KEY] == {"value": 10, "source": "default"}

    layers: list[tuple[int, Path]] = []
    system = write(
        cli.system_config, "[executor]\nmax_concurrent_tasks = 11\ntask_timeout_seconds = 111\n"
    )
    layers.append((11, system))
    assert effective()[KEY] == {"value": 11, "source": f"{system}:2"}

    user = write(cli.user_config, "[executor]\nmax_concurrent_tasks = 12\n")
    assert effective()[KEY] == {"value": 12, "source": f"{user}:2"}

    ws = write(
        workspace / "config" / "provisioning.toml", "[executor]\nmax_concurrent_tasks = 13\n"
    )
    assert effective()[KEY] == {"value": 13, "source": f"{ws}:2"}

    named = cli.write_config("\n[executor]\nmax_concurrent_tasks = 14\n")
    line = line_of(named, "max_concurrent_tasks")
    assert effective()[KEY] == {"value": 14, "source": f"{named}:{line}"}

    extra = write(cli.root / "extra.toml", "# extra\n[executor]\nmax_concurrent_tasks = 15\n")
    assert effective("--config", str(extra))[KEY] == {"value": 15, "source": f"{extra}:3"}

    final = effective("--config", str(extra), env={ENV_KEY: "16"})
    assert final[KEY] == {"value": 16, "source": f"environment variable {ENV_KEY}"}
    # A key set only by a low layer keeps that layer's value and source.
    assert final["executor.task_timeout_seconds"] == {"value": 111, "source": f"{system}:3"}
    assert final["server.port"]["source"] == f"{named}:2"
    assert final["orchestrator.endpoint"]["value"] == cli.url


BAD = '[executor]\nmax_concurrent_tasks = "many"\n'


def bad_layer(cli: Cli, layer: str) -> tuple[list[str], dict[str, str], str]:
    """Put ``max_concurrent_tasks = "many"`` in ``layer``: (args, env, where it is)."""
    if layer == "system":
        return [], {}, f"{write(cli.system_config, BAD)}:2"
    if layer == "user":
        return [], {}, f"{write(cli.user_config, BAD)}:2"
    if layer == "workspace":
        return [], {}, f"{write(cli.root / 'config' / 'provisioning.toml', BAD)}:2"
    if layer == "PROVISIONING_CONFIG":
        named = cli.write_config("\n" + BAD)
        return [], {}, f"{named}:{line_of(named, 'max_concurrent_tasks')}"
    if layer == "--config":
        extra = write(cli.root / "extra.toml", "\n\n" + BAD)
        return ["--config", str(extra)], {}, f"{extra}:4"
    assert layer == "environment"
    return [], {ENV_KEY: "many"}, f"environment variable {ENV_KEY}"


@pytest.mark.parametrize(
    "layer", ["system", "user", "workspace", "PROVISIONING_CONFIG", "--config", "environment"]
)
def test_a_bad_value_in_each_layer(cli: Cli, layer: str) -> None:
    args, env, where = bad_layer(cli, layer)
    result = cli.run(*args, "env", "--json", env=env)
    assert result.code == 2, result
    assert result.stdout == ""
    assert f"{where}: key {KEY}" in result.stderr, result
    assert "'many'" in result.stderr
    assert "integer" in result.stderr  # what was expected
    clean(result)


@pytest.mark.parametrize(
    "command",
    [
        ["task", "submit", "--direct", "--", "true"],
        ["task", "submit", "--", "true"],
        ["orchestrator", "start", "--daemon"],
        ["orchestrator", "status", "--json"],
        ["task", "list", "--json"],
        ["version", "--json"],
    ],
    ids=" ".join,
)
def test_a_bad_configuration_stops_every_command(cli: Cli, command: list[str]) -> None:
    args, env, where = bad_layer(cli, "PROVISIONING_CONFIG")
    result = cli.run(*args, *command, env=env)
    assert result.code == 2, result
    assert result.stdout == ""
    assert where in result.stderr
    clean(result)
    assert_no_daemon(cli)


def test_invalid_toml_names_the_file(cli: Cli) -> None:
    broken = write(cli.root / "broken.toml", "[executor\nmax_concurrent_tasks = 3\n")
    result = cli.run("--config", str(broken), "env", "--json")
    assert result.code == 2, result
    assert f"{broken}: invalid TOML" in result.stderr
    clean(result)
    missing = cli.run("--config", str(cli.root / "nope.toml"), "env")
    assert missing.code == 2, missing
    assert "nope.toml, which is not a file" in missing.stderr


def test_error_messages_keep_square_brackets(cli: Cli) -> None:
    extra = write(cli.root / "extra.toml", "[nosuch]\nx = 1\n")
    result = cli.run("--config", str(extra), "env", "--json")
    assert result.code == 2, result
    assert "unknown section [nosuch]" in result.stderr


def test_task_error_output_is_shown_verbatim(cli: Cli) -> None:
    result = cli.run(
        "task", "submit", "--direct", "--", "sh", "-c", "echo 'bad [red]x' >&2; exit 1"
    )
    assert result.code == 1, result
    assert result.lines("error: task failed: exit code 1: bad [red]x"), result


# -- completion, help, usage errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("provisioning orch", 1, {"orchestrator"}),
        ("provisioning ", 1, {"orchestrator", "task", "version", "env", "help"}),
        ("provisioning task s", 2, {"submit", "status"}),
        ("provisioning orchestrator st", 2, {"start", "stop", "status"}),
        ("provisioning orchestrator start --d", 3, {"--daemon"}),
        ("provisioning task submit --dir", 3, {"--direct"}),
    ],
)
def test_bash_completion(cli: Cli, words: str, cword: int, expected: set[str]) -> None:
    env = {"_PROVISIONING_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = cli.run(env=env)
    assert result.code == 0, result
    offered = set(result.stdout.split())
    assert expected <= offered, result
    last = words.split(" ")[-1]
    assert all(word.startswith(last) for word in offered), result


def test_zsh_completion(cli: Cli) -> None:
    env = {"_PROVISIONING_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "provisioning orch"}
    result = cli.run(env=env)
    assert result.code == 0, result
    assert '"orchestrator"' in result.stdout


def test_bash_completion_script_in_a_real_bash(cli: Cli) -> None:
    script = (
        'eval "$(_PROVISIONING_COMPLETE=source_bash provisioning)"\n'
        "COMP_WORDS=(provisioning task s); COMP_CWORD=2\n"
        "_provisioning_completion provisioning\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    completed = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert set(completed.stdout.split()) == {"submit", "status"}, completed


@pytest.mark.parametrize("args", [["--help"], ["help"]], ids=" ".join)
def test_help_documents_the_exit_codes(cli: Cli, args: list[str]) -> None:
    result = cli.run(*args)
    assert result.code == 0, result
    text = " ".join(result.stdout.split())
    assert EXIT_CODES in text, result
    for command in ("orchestrator", "task", "version", "env", "help"):
        assert re.search(rf"\b{command}\b", text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command"),
        (["task", "nosuch"], "No such command"),
        (["orchestrator", "nosuch"], "No such command"),
        (["task", "submit", "--bogus"], "No such option"),
        (["task", "list", "--limit", "zero"], "Invalid value"),
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2_without_a_traceback(cli: Cli, args: list[str], message: str) -> None:
    result = cli.run(*args)
    assert result.code == 2, result
    assert message in result.stderr
    assert result.stdout == ""
    clean(result)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["/nonexistent/program"], "cannot start '/nonexistent/program'"),
        (["sh", "-c", "echo 'unknown plan' >&2; exit 78"], "unknown plan"),
    ],
    ids=["missing-program", "exit-78"],
)
def test_permanent_errors_fail_at_once(running: Cli, argv: list[str], error: str) -> None:
    result = running.run("task", "submit", "--wait", "--json", "--max-attempts", "3", "--", *argv)
    assert result.code == 1, result
    task = result.json()
    assert task["status"] == "failed"
    assert error in task["error"]
    assert [a["status"] for a in task["attempts"]] == ["failed"]  # no retry was spent
