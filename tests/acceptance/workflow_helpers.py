"""Helpers of the workflow acceptance tests.

Tasks are ``sh -c`` commands that append ``<label> start <time> <task-id>`` and
``<label> end <time> <task-id>`` lines (``date +%s.%N``) to a file in the test's tmp
dir, so order and concurrency are checked from timestamps written by the tasks
themselves. Also: building workflow bodies, submitting and polling them through the
API of a :class:`~tests.acceptance.conftest.Daemon`, writing the same workflow as
Nickel, JSON, YAML or TOML, and running the real ``provisioning`` console script.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import BIN, Daemon
from tests.conftest import wait_for

WORKFLOW_DONE = frozenset({"completed", "failed", "cancelled", "rolled_back", "rollback_failed"})
NO_RETRY = {"max_attempts": 1}
ANSI_ESCAPE = "\x1b["

# -- tasks that trace themselves ------------------------------------------------------------


def stamp(log: Path, label: str, what: str) -> str:
    """A shell line appending ``<label> <what> <now> <task-id>`` to ``log``."""
    return f'echo "{label} {what} $(date +%s.%N) $PROVISIONING_TASK_ID" >> {shlex.quote(str(log))}'


def traced(
    log: Path,
    label: str,
    *,
    sleep: float = 0.1,
    body: str = "",
    exit_code: int | str = 0,
    result: bool = False,
) -> list[str]:
    """argv of a task: stamp ``start``, sleep, run ``body`` (shell, must not ``exit``),
    optionally print ``RESULT: {"op": label, "params": <its params>}``, stamp ``end``,
    then exit with ``exit_code`` (a number, or a shell word such as ``$rc`` that
    ``body`` set; a failing task writes its end line first)."""
    lines = [stamp(log, label, "start"), f"sleep {sleep}"]
    if body:
        lines.append(body)
    if result:
        lines.append(
            f'printf \'RESULT: {{"op": "%s", "params": %s}}\\n\' {label} "$PROVISIONING_PARAMS"'
        )
    if exit_code and isinstance(exit_code, int):
        lines.append(f"echo '{label} failed on purpose' >&2")
    lines += [stamp(log, label, "end"), f"exit {exit_code}"]
    return ["sh", "-c", "\n".join(lines)]


def wait_until_logged(log: Path, label: str, what: str = "end") -> str:
    """A shell loop that waits until ``label`` wrote its ``what`` line to ``log`` (to
    make "still running when X failed" certain instead of likely)."""
    return (
        f'until grep -q "^{label} {what} " {shlex.quote(str(log))} 2>/dev/null; do sleep 0.02; done'
    )


def fail_once(flag: Path) -> str:
    """A shell line setting ``rc`` to 1 the first time (creating ``flag``), then 0."""
    quoted = shlex.quote(str(flag))
    return f"if [ -e {quoted} ]; then rc=0; else touch {quoted}; rc=1; fi"


def save_params(directory: Path) -> str:
    """A shell line saving the task's params as ``<directory>/<task-id>.json``."""
    return f'printf "%s" "$PROVISIONING_PARAMS" > {shlex.quote(str(directory))}/"$PROVISIONING_TASK_ID".json'


def count_run(counts: Path, label: str) -> str:
    """A shell line appending ``label`` to the ``counts`` file (one line per execution)."""
    return f"echo {label} >> {shlex.quote(str(counts))}"


def runs(counts: Path) -> dict[str, int]:
    """How many times each label was appended to ``counts``."""
    found: dict[str, int] = {}
    if counts.exists():
        for line in counts.read_text().split():
            found[line] = found.get(line, 0) + 1
    return found


@dataclass(frozen=True)
class Span:
    """One task execution as the task itself saw it."""

    label: str
    task_id: str
    start: float
    end: float | None  # None: it never wrote its end line (killed, cancelled)


class Timeline:
    """The spans of every task that wrote to one marker file."""

    def __init__(self, log: Path) -> None:
        opened: list[list[Any]] = []  # [label, task_id, start, end]
        text = log.read_text() if log.exists() else ""
        for line in text.splitlines():
            label, what, when, task_id = line.split()
            if what == "start":
                opened.append([label, task_id, float(when), None])
                continue
            for record in reversed(opened):  # the latest open run of that task
                if record[0] == label and record[1] == task_id and record[3] is None:
                    record[3] = float(when)
                    break
            else:
                raise AssertionError(f"end without start in {log}: {line}")
        self.spans = [Span(*record) for record in opened]

    def __repr__(self) -> str:
        return "\n".join(
            f"{s.label:<14} {s.start:.3f} -> {'-' if s.end is None else f'{s.end:.3f}'}"
            for s in sorted(self.spans, key=lambda s: s.start)
        )

    def of(self, label: str) -> list[Span]:
        return [s for s in self.spans if s.label == label]

    def one(self, label: str) -> Span:
        found = self.of(label)
        assert len(found) == 1, f"{label} ran {len(found)} time(s):\n{self!r}"
        return found[0]

    @property
    def labels(self) -> set[str]:
        return {s.label for s in self.spans}

    def first_start(self, label: str) -> float:
        return min(s.start for s in self.of(label))

    def last_end(self, label: str) -> float:
        ends = [s.end for s in self.of(label)]
        assert ends and all(e is not None for e in ends), f"{label} did not end:\n{self!r}"
        return max(e for e in ends if e is not None)

    def peak(self, labels: Iterable[str] | None = None) -> int:
        """The most spans open at one instant (an end at the same instant as a start
        does not overlap it)."""
        wanted = None if labels is None else set(labels)
        events: list[tuple[float, int]] = []
        for span in self.spans:
            if wanted is not None and span.label not in wanted:
                continue
            events.append((span.start, 1))
            events.append((float("inf") if span.end is None else span.end, -1))
        events.sort()
        current = best = 0
        for _, delta in events:
            current += delta
            best = max(best, current)
        return best

    def assert_dependencies(self, depends_on: Mapping[str, Iterable[str]]) -> None:
        """Every span of an operation started after every span of each of its
        dependencies had ended."""
        for label, deps in depends_on.items():
            mine = self.of(label)
            assert mine, f"{label} never ran:\n{self!r}"
            for dep in deps:
                dep_end = self.last_end(dep)
                for span in mine:
                    assert span.start > dep_end, (
                        f"{label} started at {span.start:.3f} before {dep} ended at "
                        f"{dep_end:.3f}:\n{self!r}"
                    )


# -- workflow bodies --------------------------------------------------------------------------


def op(op_id: str, argv: Sequence[str], *deps: str, **fields: Any) -> dict[str, Any]:
    """An operation running ``argv``, depending on ``deps``."""
    body: dict[str, Any] = {"id": op_id, "run": {"command": list(argv)}}
    if deps:
        body["depends_on"] = list(deps)
    if "undo" in fields and isinstance(fields["undo"], list):
        fields["undo"] = {"command": fields["undo"]}
    body.update(fields)
    return body


def item_layers(count: int, items: int, argv: Sequence[str]) -> list[dict[str, Any]]:
    """``count`` operations ``layer0``.. of ``items`` items each, every layer depending on
    the one before."""
    return [
        op(f"layer{i}", argv, *([f"layer{i - 1}"] if i else []), items=list(range(items)))
        for i in range(count)
    ]


def workflow(name: str, *ops: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields, "operations": list(ops)}


# -- the API ------------------------------------------------------------------------------------


def submit(daemon: Daemon, body: Mapping[str, Any]) -> str:
    response = daemon.http.post("/workflows/batch/submit", json=dict(body))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "queued", answer
    return str(answer["workflow_id"])


def view(daemon: Daemon, workflow_id: str) -> dict[str, Any]:
    response = daemon.http.get(f"/workflows/{workflow_id}", params={"steps": "true"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_workflow(
    daemon: Daemon,
    workflow_id: str,
    statuses: Iterable[str] = WORKFLOW_DONE,
    timeout: float = 30,
) -> dict[str, Any]:
    wanted = set(statuses)

    def reached() -> dict[str, Any] | None:
        found = view(daemon, workflow_id)
        return found if found["status"] in wanted else None

    try:
        return wait_for(reached, timeout=timeout, interval=0.05, message=f"workflow in {wanted}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{json.dumps(view(daemon, workflow_id), indent=1)}\n{daemon.log()[-3000:]}"
        ) from None


def run_and_wait(daemon: Daemon, body: Mapping[str, Any], timeout: float = 30) -> dict[str, Any]:
    return wait_workflow(daemon, submit(daemon, body), timeout=timeout)


def command(daemon: Daemon, workflow_id: str, verb: str) -> tuple[int, dict[str, Any]]:
    response = daemon.http.post(f"/workflows/{workflow_id}/{verb}")
    return response.status_code, dict(response.json())


def steps(found: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The steps of a workflow view by id."""
    return {s["id"]: s for s in found["steps"]}


def task_statuses(found: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per step, the statuses of its tasks (by item)."""
    return {
        s["id"]: [t["status"] for t in sorted(s["tasks"], key=lambda t: t["item"] or 0)]
        for s in found["steps"]
    }


def totals(daemon: Daemon) -> tuple[int, int]:
    """(workflows, tasks) the orchestrator knows."""
    workflows = daemon.http.get("/workflows").json()["total"]
    tasks = daemon.http.get("/tasks").json()["total"]
    return int(workflows), int(tasks)


# -- workflow files -----------------------------------------------------------------------------


def to_nickel(value: Any, indent: int = 0) -> str:
    """``value`` as Nickel source, one record field or array element per line (so a
    test can predict line numbers); field names are quoted (``type``, ``priority``)."""
    pad = "  " * (indent + 1)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value).replace("%", "\\%")
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = ",\n".join(pad + to_nickel(v, indent + 1) for v in value)
        return "[\n" + inner + ",\n" + "  " * indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(
            f"{pad}{json.dumps(k)} = {to_nickel(v, indent + 1)}" for k, v in value.items()
        )
        return "{\n" + inner + ",\n" + "  " * indent + "}"
    raise TypeError(f"no Nickel form for {value!r}")


def to_toml(body: Mapping[str, Any]) -> str:
    """A workflow as TOML: top-level keys, then one ``[[operations]]`` table per operation."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, dict):
            return (
                "{ " + ", ".join(f"{json.dumps(k)} = {scalar(v)}" for k, v in value.items()) + " }"
            )
        raise TypeError(f"no TOML form for {value!r}")

    lines = [f"{k} = {scalar(v)}" for k, v in body.items() if k != "operations"]
    for operation in body["operations"]:
        lines += ["", "[[operations]]"]
        lines += [f"{k} = {scalar(v)}" for k, v in operation.items()]
    return "\n".join(lines) + "\n"


def write_workflow(path: Path, body: Mapping[str, Any]) -> Path:
    """Write ``body`` in the format the suffix of ``path`` names."""
    import yaml

    suffix = path.suffix
    if suffix == ".ncl":
        text = to_nickel(dict(body)) + "\n"
    elif suffix == ".json":
        text = json.dumps(body, indent=2) + "\n"
    elif suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(dict(body), sort_keys=False)
    elif suffix == ".toml":
        text = to_toml(body)
    else:
        raise ValueError(suffix)
    path.write_text(text)
    return path


def line_containing(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# -- the console script -------------------------------------------------------------------------

# Variables of the outer environment that would change what the CLI does or prints.
_SCRUB = ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not only JSON ({exc}):\n{self}") from None

    def __str__(self) -> str:
        return (
            f"$ provisioning {' '.join(self.args)}\n[exit {self.code}]\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Cli:
    """``provisioning`` talking to ``daemon`` through ``PROVISIONING_CONFIG`` = its
    configuration file (its ``[server] port`` gives the endpoint); HOME, XDG config and
    the system file point into ``root``; no auto-start, no fallback to direct mode."""

    def __init__(self, daemon: Daemon, root: Path) -> None:
        self.root = root
        home = root / "home"
        (home / ".config").mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PROVISIONING_") and k not in _SCRUB
        }
        env.update(
            {
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "PROVISIONING_SYSTEM_CONFIG": str(root / "no-system.toml"),
                "PROVISIONING_CONFIG": str(daemon.config),
                "PROVISIONING_ORCHESTRATOR_AUTO_START": "false",
                "PROVISIONING_ORCHESTRATOR_FALLBACK_TO_DIRECT": "false",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "COLUMNS": "200",
                "TERM": "xterm-256color",
            }
        )
        self.env = env

    def __call__(self, *args: str, timeout: float = 60) -> CliResult:
        done = subprocess.run(
            [str(BIN / "provisioning"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(tuple(args), done.returncode, done.stdout, done.stderr)
