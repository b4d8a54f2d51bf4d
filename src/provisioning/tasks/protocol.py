"""The handler output protocol: ``PROGRESS: <0-100> [message]``, ``RESULT: <json>``."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

_PROGRESS = re.compile(r"^PROGRESS:[ \t]*(\d{1,3})(?:[ \t]+(.*))?$")
_RESULT = re.compile(r"^RESULT:\s*(.*)$")


@dataclass(frozen=True)
class OutputLine:
    """One parsed stdout line: progress, a result, or plain log text."""

    kind: str  # "progress" | "result" | "log"
    text: str
    progress: int | None = None
    message: str | None = None
    result: Any = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(line: str) -> OutputLine:
    """Classify a line of handler stdout. Malformed protocol lines stay log text."""
    stripped = line.rstrip("\r\n")
    match = _PROGRESS.fullmatch(stripped)
    if match:
        value = int(match.group(1))
        if 0 <= value <= 100:
            message = (match.group(2) or "").strip() or None
            return OutputLine("progress", stripped, progress=value, message=message)
    match = _RESULT.fullmatch(stripped)
    if match:
        try:
            value = json.loads(match.group(1), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            # Not JSON (or NaN, a 5000-digit number, absurd nesting): plain log text.
            pass
        else:
            return OutputLine("result", stripped, result=value)
    return OutputLine("log", stripped)


CONTROL_FD_VAR = "PROVISIONING_CONTROL_FD"


def emit(line: str) -> None:
    """Send one protocol line from inside a handler: on the control pipe when the
    orchestrator gave one (so data the handler echoes on stdout cannot forge it),
    else on stdout (older orchestrators, the direct mode)."""
    fd = os.environ.get(CONTROL_FD_VAR, "")
    if fd.isdigit():
        try:
            os.write(int(fd), (line.replace("\n", " ") + "\n").encode())
            return
        except OSError:
            pass
    print(line, flush=True)
