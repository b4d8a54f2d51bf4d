"""Direct mode: the same handler through the same task contract, in a subprocess of
the CLI, with no orchestrator involved."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from typing import Any

from rich.text import Text

from ..config import Settings
from ..execution import ProcessHooks, RunnerError, build_invocation, check_runner
from ..execution.process import StopReason, run_process
from ..execution.runners import ATTEMPT_MARKER
from ..tasks import AttemptStatus, Outcome, RunSpec
from ..workflow import Plan
from ..workflow.validate import op_params, resolve_run
from .common import err
from .output import is_terminal, strip_controls


async def _run(
    run: RunSpec, params: dict[str, Any], settings: Settings, *, timeout: float, echo: bool
) -> Outcome:
    task_id = f"direct-{uuid.uuid4()}"
    invocation = build_invocation(
        run,
        params,
        settings,
        task_env={
            "PROVISIONING_TASK_ID": task_id,
            "PROVISIONING_WORKFLOW_ID": "",
            "PROVISIONING_ORCHESTRATOR_URL": "",
            "PROVISIONING_TASK_TOKEN": "",
            ATTEMPT_MARKER: f"{task_id}/1",
        },
    )
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[StopReason] = loop.create_future()

    def interrupt() -> None:
        if not stop.done():
            stop.set_result(StopReason.CANCEL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)

    def on_spawn(_: object) -> None:
        return None

    async def on_progress(progress: int, message: str | None) -> None:
        if echo:
            err.print(Text.assemble((f"{progress:>3}%", "cyan"), " ", message or ""))

    async def on_logs(lines: list[tuple[str, str, float]]) -> None:
        if not echo:
            return
        for stream, line, _ in lines:
            if line.startswith(("PROGRESS:", "RESULT:")):
                continue
            target = sys.stderr if stream == "stderr" else sys.stdout
            target.write((strip_controls(line) if is_terminal(target) else line) + "\n")
            target.flush()

    try:
        return await run_process(
            invocation.argv,
            env=invocation.env,
            cwd=None,
            timeout=timeout,
            kill_grace=settings.executor.kill_grace_seconds,
            hooks=ProcessHooks(on_spawn=on_spawn, on_progress=on_progress, on_logs=on_logs),
            stop=stop,
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def run_workflow_direct(plan: Plan, settings: Settings, *, echo: bool = True) -> bool:
    """Run a workflow here, one task at a time in dependency order (no orchestrator):
    the same handlers through the same task contract. ``True`` when all completed."""
    for step in plan.steps:
        run, _ = resolve_run(step.op)
        for item in step.items:
            params = op_params(step.op)
            if step.op.items is not None:
                params["item"] = item
            label = step.id + (f" {item}" if step.op.items is not None else "")
            if echo:
                err.print(Text.assemble(("==> ", "bold"), label))
            outcome = run_direct(run, params, settings, timeout=step.op.timeout, echo=echo)
            if outcome.status is not AttemptStatus.COMPLETED:
                if echo:
                    err.print(Text(f"{label}: {outcome.status.value}: {outcome.error or ''}"))
                return False
    return True


def run_direct(
    run: RunSpec,
    params: dict[str, Any],
    settings: Settings,
    *,
    timeout: float | None = None,
    echo: bool = True,
) -> Outcome:
    """Run one handler here and now; never raises for the handler's own failure."""
    try:
        check_runner(run, settings)
    except RunnerError as exc:
        return Outcome(AttemptStatus.FAILED, error=str(exc))
    try:
        return asyncio.run(
            _run(
                run,
                params,
                settings,
                timeout=timeout or settings.executor.task_timeout_seconds,
                echo=echo,
            )
        )
    except RunnerError as exc:
        return Outcome(AttemptStatus.FAILED, error=str(exc))
