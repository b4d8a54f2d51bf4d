"""Small handlers that show the task contract (used by the demo and the docs)."""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def inventory(params: dict[str, Any]) -> dict[str, Any]:
    """Describe the machine the task ran on; the return value becomes the task's result."""
    print("PROGRESS: 50 looking around", flush=True)
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "label": params.get("label", "inventory"),
    }


def countdown(params: dict[str, Any]) -> dict[str, int]:
    """Count down ``params["from"]`` steps, reporting progress on each."""
    start = int(params.get("from", 5))
    for step in range(start, 0, -1):
        print(f"PROGRESS: {100 * (start - step) // start} {step} to go", flush=True)
        time.sleep(float(params.get("interval", 0.1)))
    return {"counted": start}
