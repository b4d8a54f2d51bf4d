"""The evaluators' worker processes: a fresh interpreter per evaluation, asked in JSON
on stdin (an engine that crashes or hangs takes only its worker with it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import LoadError


def run_worker(
    module: str,
    request: dict[str, Any],
    *,
    path: Path,
    engine: str,
    timeout: float,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module`` on ``request``; one that outlives ``timeout`` is a
    :class:`LoadError` naming ``engine`` and the file being evaluated."""
    try:
        return subprocess.run(
            [sys.executable, "-m", module],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise LoadError(
            f"{path}: {engine} evaluation did not finish within {timeout:g} s"
        ) from None


def worker_failed(path: Path, engine: str, done: subprocess.CompletedProcess[str]) -> LoadError:
    """The error of a worker that ended badly: the last line it wrote to stderr."""
    tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
    return LoadError(f"{path}: the {engine} failed: {tail[0]}")
