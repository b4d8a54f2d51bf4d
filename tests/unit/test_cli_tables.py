"""Every CLI table stays whole at 80 columns (issue 13, item 5): long cells wrap,
lesser columns are left out and named, and no status, step, id or word is cut. On a
pipe (no width) every cell is on its row's one line, whole."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from provisioning.cli import (
    about,
    cluster,
    orchestrator,
    server,
    task,
    taskserv,
    workflow,
    workspace,
)
from provisioning.cli.output import Column, Format, Table, choose_format, strip_controls

ID = "3f2a9c1e-5b7d-4e0f-9a21-6c8d0b4e7f13"
WHEN = "2026-12-02T17:20:50.123456+00:00"


def a_task(n: int, status: str = "completed") -> dict[str, object]:
    return {
        "id": f"{n:08x}" + ID[8:],
        "name": f"cluster-create-web/taskserv-kubernetes-control-plane/worker-node-{n}",
        "status": status,
        "priority": "critical",
        "progress": 100,
        "progress_message": "installed",
        "attempt": 3,
        "created_at": WHEN,
        "started_at": WHEN,
        "completed_at": WHEN,
        "workflow_id": ID,
        "error": "exit 1: containerd: a very long error message that goes on " * 2,
        "attempts": [
            {
                "number": 1,
                "status": "timed_out",
                "exit_code": 137,
                "started_at": WHEN,
                "finished_at": WHEN,
                "error": "killed after 30 s\nsecond line",
            },
        ],
    }


def a_workflow() -> dict[str, object]:
    return {
        "id": ID,
        "name": "cluster-create-web-with-a-long-descriptive-name",
        "status": "rollback_failed",
        "progress": 40,
        "tasks": {"total": 10, "completed": 4, "failed": 1, "open": 5},
        "created_at": WHEN,
        "started_at": WHEN,
        "completed_at": WHEN,
        "steps": [
            {
                "id": "taskserv-kubernetes-control-plane",
                "layer": 3,
                "status": "cancelled",
                "tasks": [a_task(1, "timed_out"), a_task(2, "cancelled")],
            },
            {"id": "servers", "layer": 0, "status": "completed", "tasks": []},
        ],
    }


def servers() -> list[dict[str, object]]:
    return [
        {
            "hostname": f"kubernetes-worker-node-{n}",
            "provider": "upcloud",
            "state": "running",
            "address": "2001:db8:1234:5678:9abc:def0:1234:5678",
            "plan": "DEV-2xCPU-4GB",
            "taskservs": ["containerd", "etcd", "kubernetes", "runc", "webserver"],
        }
        for n in range(3)
    ]


TABLES: dict[str, Callable[[], Table]] = {
    "task list": lambda: task.tasks_table([a_task(1), a_task(2, "running")]),
    "task status attempts": lambda: task.attempts_table(a_task(1)),
    "workflow status": lambda: workflow.steps_table(a_workflow()),
    "workflow list": lambda: workflow.workflows_table([a_workflow()]),
    "workflow recap": lambda: workflow.recap_table(a_workflow()),
    "batch stats": lambda: workflow.counts_table({"rollback_failed": 3, "completed": 12}),
    "server list": lambda: server.servers_table(servers()),
    "taskserv list --available": lambda: taskserv.catalog_table(
        [
            {
                "name": "kubernetes",
                "version": "1.31.4",
                "depends_on": ["containerd", "etcd", "runc"],
                "source": "platform",
                "description": "A Kubernetes control plane and kubelet " * 3,
            }
        ]
    ),
    "taskserv list": lambda: taskserv.installed_table(
        [
            {
                "server": "kubernetes-worker-node-1",
                "taskserv": "containerd",
                "version": "1.7.24",
                "url": "http://127.0.0.1:49152/some/long/path/of/the/service",
            }
        ]
    ),
    "cluster list": lambda: cluster.clusters_table(
        [
            {
                "name": "web",
                "servers": [s["hostname"] for s in servers()],
                "taskservs": ["containerd", "webserver"],
                "existing": 2,
            }
        ]
    ),
    "orchestrator status": lambda: orchestrator.counts_table({"pending": 1, "timed_out": 2}),
    "orchestrator status nodes": lambda: orchestrator.nodes_table(
        [
            {
                "id": "node-0123456789ab",
                "this": True,
                "host": "a-rather-long-host-name.example",
                "pid": 123456,
                "running": 10,
                "max_concurrent": 10,
                "seconds_since_heartbeat": 1.5,
            }
        ]
    ),
    "env": lambda: about.env_table(
        [
            (
                "nushell.provisioning_lib",
                "/home/someone/workspaces/acme/extensions/nulib:" * 2,
                "PROVISIONING_NUSHELL_PROVISIONING_LIB",
            )
        ]
    ),
    "workspace list": lambda: workspace.workspaces_table(
        [
            {
                "name": "acme",
                "current": True,
                "default_infra": "wuji",
                "infras": [{"name": "wuji"}, {"name": "staging"}],
                "path": "/home/someone/" + "deep/" * 12,
            }
        ]
    ),
}


def cells(table: Table, shown: set[str]) -> list[tuple[Column, str]]:
    return [
        (column, (cell if isinstance(cell, str) else cell[0]).replace("\n", " ").strip())
        for row in table.rows
        for column, cell in zip(table.columns, row, strict=True)
        if column.header in shown
    ]


@pytest.mark.parametrize("name", TABLES)
def test_table_is_whole_at_80_columns(name: str) -> None:
    table = TABLES[name]()
    lines = table.render(80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    hidden: set[str] = set()
    if lines[-1].startswith("("):
        hidden = {h.strip() for h in lines[-1][1:].split(" left out")[0].split(",")}
    shown = {c.header for c in table.columns if not c.wide} - hidden
    assert {c.header for c in table.columns if c.drop == 0 and not c.wide} <= shown
    text = "\n".join(lines)
    for column, value in cells(table, shown):
        if not value:
            continue
        if column.wrap:
            # Wrapped at spaces or after a separator: every piece between them is whole.
            pieces = [p for p in re.split(r"[\s/:@,=-]+", value) if p]
            assert all(any(p in line for line in lines) for p in pieces), (column.header, text)
        else:
            assert any(value in line for line in lines), (column.header, value, text)


@pytest.mark.parametrize("name", TABLES)
def test_table_on_a_pipe_keeps_each_row_on_one_line(name: str) -> None:
    table = TABLES[name]()
    lines = table.render(None)
    assert len(lines) == len(table.rows) + 1
    shown = {c.header for c in table.columns if not c.wide}
    for column, value in cells(table, shown):
        assert any(value in line for line in lines), (column.header, value)


def test_wide_shows_every_column() -> None:
    table = task.tasks_table([a_task(1)], Format.WIDE)
    header = table.render(None, wide=True)[0].split()
    assert header == [c.header for c in table.columns]
    assert ID in table.render(None, wide=True)[1]


def test_lesser_columns_go_first_and_are_named() -> None:
    lines = task.tasks_table([a_task(1)]).render(60)
    assert lines[-1].startswith("(") and "-o wide" in lines[-1]
    assert "attempt" in lines[-1] and "id" not in lines[-1].split(" left out")[0].split(", ")


def test_control_characters_never_reach_a_cell() -> None:
    table = Table([Column("name")])
    table.add_row("web\x1b[2J\x1b]0;pwned\x07-1\r\x08")
    assert table.render(None)[1] == "web-1"
    assert strip_controls("ok\x9bJ\ttab\n") == "okJ\ttab\n"


@pytest.mark.parametrize(
    ("given", "json_out", "expected"),
    [
        (None, False, Format.TABLE),
        ("YAML", False, Format.YAML),
        (None, True, Format.JSON),
        ("wide", False, Format.WIDE),
    ],
)
def test_output_formats(given: str | None, json_out: bool, expected: Format) -> None:
    assert choose_format(given, json_out) is expected


@pytest.mark.parametrize(("given", "json_out"), [("xml", False), ("yaml", True)])
def test_bad_output_formats(given: str, json_out: bool) -> None:
    with pytest.raises(ValueError, match="--"):
        choose_format(given, json_out)


class FakeTerminal:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.written = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.written += text
        return len(text)

    def flush(self) -> None:
        return None


def test_colours_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from provisioning.cli import output

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for tty, expected in ((True, True), (False, False)):
        stream = FakeTerminal(tty)
        output.line(output.status_part("failed"), stream=stream)  # type: ignore[arg-type]
        assert ("\x1b[31m" in stream.written) is expected
    monkeypatch.setenv("NO_COLOR", "1")
    stream = FakeTerminal(True)
    output.line(output.status_part("failed"), " \x1b]0;title\x07x", stream=stream)  # type: ignore[arg-type]
    assert stream.written == "failed x\n"  # no colour, and the data's escapes stripped


def test_the_monitor_view_keeps_step_and_task_names_whole_at_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from provisioning.cli import monitor

    def step(name: str, hosts: list[str]) -> dict[str, object]:
        made = []
        for n, host in enumerate(hosts):
            one = a_task(n, "running" if host == "node-1" else "completed")
            made.append({**one, "name": f"cluster-create-web/{name}/{host}", "progress": 40})
        return {"id": name, "layer": 1, "status": "running", "tasks": made}

    view = {
        **a_workflow(),
        "name": "cluster-create-web",
        "status": "running",
        "steps": [
            step("taskserv-containerd", ["web-1", "node-1"]),
            step("taskserv-webserver", ["web-2"]),
        ],
    }
    narrow = Console(width=80, record=True, color_system=None)
    monkeypatch.setattr(monitor, "out", narrow)
    narrow.print(monitor.render(view, {}))
    text = narrow.export_text()
    for whole in ("taskserv-containerd", "containerd@node-1", "webserver@web-2", "running #3"):
        assert whole in text, text
    assert " 40%" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    wide = Console(width=140, record=True, color_system=None)
    monkeypatch.setattr(monitor, "out", wide)
    wide.print(monitor.render(view, {}))
    shown = wide.export_text()
    assert "attempt" in shown and "progress" in shown
