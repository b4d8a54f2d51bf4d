"""The dashboard in headless Chromium against a real orchestrator: sign in, follow a
running workflow live, read a task's log as it grows, cancel from the page, and be
refused with a wrong token. Screenshots land in tests/browser/screenshots/."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

import httpx

from provisioning.infra.state import record_server, record_taskserv
from tests.acceptance.conftest import Daemon
from tests.acceptance.workflow_helpers import submit, wait_workflow
from tests.browser.conftest import screenshot
from tests.conftest import wait_for


def sign_in(page: Any, daemon: Daemon, token: str | None = None) -> None:
    page.goto(daemon.url + "/ui")
    page.wait_for_url(re.compile(r"/ui/login(#.*)?$"))
    page.fill("#token", token if token is not None else daemon.token)
    page.click("button[type=submit]")


def gated_workflow(gate: Path) -> dict[str, Any]:
    """``prepare`` -> ``wait`` (logs a tick every 50 ms until ``gate`` exists) and
    ``lint`` -> ``package``, both -> ``finish``."""
    wait = (
        "i=0; echo 'PROGRESS: 10 waiting for the gate'; "
        f"until [ -e {shlex.quote(str(gate))} ]; do i=$((i+1)); echo tick $i; sleep 0.05; done; "
        "echo 'PROGRESS: 100 gate open'; echo '<b>not html</b>'"
    )
    return {
        "name": "gated-build",
        "retry": {"max_attempts": 1},
        "operations": [
            {"id": "prepare", "run": {"command": ["true"]}},
            {"id": "wait", "depends_on": ["prepare"], "run": {"command": ["sh", "-c", wait]}},
            {"id": "lint", "depends_on": ["prepare"], "run": {"command": ["true"]}},
            {"id": "package", "depends_on": ["lint"], "run": {"command": ["true"]}},
            {"id": "finish", "depends_on": ["wait", "package"], "run": {"command": ["true"]}},
        ],
    }


def node(page: Any, step: str) -> Any:
    return page.locator(f'svg.dag g.node[data-step="{step}"]')


def test_a_wrong_token_is_refused(daemon: Daemon, page: Any) -> None:
    sign_in(page, daemon, token="not-the-token")
    page.wait_for_selector("#login-error:has-text('Wrong token')")
    assert page.url.endswith("/ui/login")
    cookies = page.context.cookies()
    assert not [c for c in cookies if c["name"] == "provisioning_session"]
    status = page.evaluate("fetch('/workflows').then(r => r.status)")
    assert status == 401
    # Without a session the dashboard itself sends the browser to the login page.
    page.goto(daemon.url + "/ui#/workflows")
    page.wait_for_url(re.compile(r"/ui/login(#.*)?$"))
    screenshot(page, "login")


def test_session_cookie_and_page_headers(daemon: Daemon, page: Any) -> None:
    sign_in(page, daemon)
    page.wait_for_selector("h1:has-text('Workflows')")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "provisioning_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert daemon.token not in cookie["value"]
    assert page.evaluate("document.cookie") == "", "not readable by scripts"
    response = httpx.get(daemon.url + "/ui", cookies={cookie["name"]: cookie["value"]})
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The cookie alone does not let another site change anything: no dashboard header.
    posted = httpx.post(daemon.url + "/tasks/x/cancel", cookies={cookie["name"]: cookie["value"]})
    assert posted.status_code == 401


def test_follow_a_workflow_live_and_cancel_another(
    daemon: Daemon, page: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    workspace = tmp_path / "acme"
    record_server(
        workspace,
        "wuji",
        {"hostname": "web-1", "provider": "local", "status": "running", "address": "10.99.0.2"},
    )
    record_taskserv(workspace, "wuji", "web-1", "containerd", {"version": "1.7.13"})
    running_id = submit(daemon, gated_workflow(gate))
    other_id = submit(
        daemon,
        {
            "name": "long-haul",
            "operations": [
                {
                    "id": "servers",
                    "infra": "wuji",
                    "params": {"workspace_dir": str(workspace)},
                    "run": {"command": ["sleep", "120"]},
                }
            ],
        },
    )

    sign_in(page, daemon)
    page.wait_for_selector(f'tr[data-workflow="{running_id}"]')
    page.wait_for_selector(f'tr[data-workflow="{other_id}"]')
    screenshot(page, "workflows")

    # Filter by workspace: only the workflow that acts on acme.
    page.select_option("#filter-workspace", "acme")
    page.wait_for_selector(f'tr[data-workflow="{other_id}"]')
    page.wait_for_selector(f'tr[data-workflow="{running_id}"]', state="detached")
    page.goto(daemon.url + "/ui#/workflows")

    page.click(f'tr[data-workflow="{running_id}"] a')
    page.wait_for_selector('svg.dag g.node[data-step="prepare"][data-status="completed"]')
    page.wait_for_selector('svg.dag g.node[data-step="wait"][data-status="running"]')
    assert node(page, "finish").get_attribute("data-status") in ("blocked", "pending")
    page.evaluate("window.__sameDocument = true")

    # The running step's task: its log grows on the page as the task writes it.
    node(page, "wait").click()
    page.wait_for_selector("#log .line:has-text('tick 1')")
    page.wait_for_selector("#log .line:has-text('tick 20')")
    assert "waiting for the gate" in page.inner_text(".task-head")
    screenshot(page, "task-log")
    page.click(".crumbs a:has-text('Workflow')")
    page.wait_for_selector('svg.dag g.node[data-step="wait"][data-status="running"]')
    page.wait_for_selector('svg.dag g.node[data-step="package"][data-status="completed"]')
    screenshot(page, "workflow-running")

    gate.touch()
    page.wait_for_selector('svg.dag g.node[data-step="wait"][data-status="completed"]')
    page.wait_for_selector('svg.dag g.node[data-step="finish"][data-status="completed"]')
    page.wait_for_selector(".wf-head .badge.st-completed")
    assert page.evaluate("window.__sameDocument") is True, "no reload happened"
    screenshot(page, "workflow-completed")

    # The log shows the task's output as text, never as markup.
    (wait_task,) = [
        t
        for s in wait_workflow(daemon, running_id)["steps"]
        if s["id"] == "wait"
        for t in s["tasks"]
    ]
    page.goto(daemon.url + f"/ui#/task/{wait_task['id']}")
    page.wait_for_selector("#log .line:has-text('<b>not html</b>')")
    assert page.locator("#log b").count() == 0

    # Cancel the other workflow from its page, confirming the dialog.
    page.goto(daemon.url + f"/ui#/workflow/{other_id}")
    page.wait_for_selector('svg.dag g.node[data-step="servers"][data-status="running"]')
    page.wait_for_selector("#view button[data-action=cancel]:not([disabled])")
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#view button[data-action=cancel]")
    page.wait_for_selector(".wf-head .badge.st-cancelled")
    assert dialogs and "long-haul" in dialogs[0]
    assert wait_workflow(daemon, other_id)["status"] == "cancelled"
    page.wait_for_selector("#view button[data-action=retry]:not([disabled])")

    # A dismissed confirmation changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#view button[data-action=retry]")
    time_limit = time.monotonic() + 1
    wait_for(lambda: time.monotonic() > time_limit, message="a second without a retry")
    assert daemon.http.get(f"/workflows/{other_id}").json()["status"] == "cancelled"

    page.goto(daemon.url + "/ui#/workspaces")
    page.wait_for_selector(
        '[data-workspace="acme"] tr[data-server="web-1"]:has-text("containerd 1.7.13")'
    )
    screenshot(page, "workspaces")
    page.goto(daemon.url + "/ui#/nodes")
    page.wait_for_selector("tr.this")
    screenshot(page, "nodes")


def test_the_queue_by_priority(make_daemon: Any, page: Any) -> None:
    daemon: Daemon = make_daemon(max_concurrent_tasks=1)
    daemon.start()
    blocker = daemon.submit({"command": ["sleep", "120"]}, name="blocker")
    daemon.wait_status(blocker, {"running"})
    queued = {
        priority: [
            daemon.submit({"command": ["true"]}, name=f"{priority}-{n}", priority=priority)
            for n in range(count)
        ]
        for priority, count in (("critical", 1), ("high", 2), ("low", 1))
    }
    sign_in(page, daemon)
    page.wait_for_selector("h1:has-text('Workflows')")
    page.goto(daemon.url + "/ui#/queue")
    page.wait_for_selector(f'tr[data-task="{blocker}"]')
    headings = page.locator("h2[data-priority]").all_inner_texts()
    assert headings == ["critical (1)", "high (2)", "normal (0)", "low (1)"]
    # FIFO within a priority: the older task first.
    high = page.locator("h2[data-priority=high] + .table-wrap tr[data-task]")
    assert [high.nth(i).get_attribute("data-task") for i in range(2)] == queued["high"]
    screenshot(page, "queue")

    # Cancelling the running task from its page lets the queue drain, live.
    page.click(f'tr[data-task="{blocker}"] a')
    page.wait_for_selector(".task-head .badge.st-running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#view button[data-action=cancel-task]")
    page.wait_for_selector(".task-head .badge.st-cancelled")
    page.goto(daemon.url + "/ui#/queue")
    page.wait_for_selector("h2[data-priority=high]:has-text('high (0)')")
    for ids in queued.values():
        for task_id in ids:
            assert daemon.wait_status(task_id)["status"] == "completed"


def test_hostile_names_and_output_stay_text(daemon: Daemon, page: Any) -> None:
    hostile = '<img src=x onerror="window.pwned=1">'
    workflow_id = submit(
        daemon,
        {
            "name": hostile,
            "operations": [
                {
                    "id": "say",
                    "run": {
                        "command": [
                            "sh",
                            "-c",
                            f"echo 'PROGRESS: 50 {hostile}'; echo '{hostile}' >&2",
                        ]
                    },
                }
            ],
        },
    )
    wait_workflow(daemon, workflow_id)
    sign_in(page, daemon)
    row = page.wait_for_selector(f'tr[data-workflow="{workflow_id}"]')
    assert hostile in row.inner_text()
    page.click(f'tr[data-workflow="{workflow_id}"] a')
    page.wait_for_selector('svg.dag g.node[data-step="say"][data-status="completed"]')
    assert hostile in page.inner_text(".wf-head h1")
    node(page, "say").click()
    page.wait_for_selector(f"#log .line.stderr:has-text('{hostile}')")
    assert page.locator("#view img").count() == 0
    assert page.evaluate("window.pwned") is None
