"""Entry point of a ``python`` task:
``python -m provisioning.execution.python_entry MODULE FUNCTION``.

Calls ``MODULE.FUNCTION(params)`` with the parameters from
``PROVISIONING_PARAMS``; a return value other than ``None`` becomes the task's
``RESULT:`` line.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _emit(line: str) -> None:
    # provisioning.tasks.emit, without importing the task contract's pydantic models
    # into every Python task (a fifth of a second each).
    fd = os.environ.get("PROVISIONING_CONTROL_FD", "")
    if fd.isdigit():
        try:
            os.write(int(fd), (line + "\n").encode())
            return
        except OSError:
            pass
    print(line, flush=True)


def main(argv: list[str]) -> int:
    module_name, function_name = argv
    params = json.loads(os.environ.get("PROVISIONING_PARAMS", "{}"))
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
        value = function(params)
    except Exception as exc:
        # The traceback is for the log (stdout); the task's error (the stderr tail)
        # gets one line a user can read.
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        where = f"{module_name}.{function_name}"
        print(f"{where} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    if value is not None:
        sys.stdout.flush()
        _emit("RESULT: " + json.dumps(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
