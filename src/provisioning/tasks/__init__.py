"""The task contract: what a task is, independent of who runs it.

Run forms (:class:`RunSpec`: an argv, a Nushell or a Python function), the
submission (:class:`NewTask`), the retry policy, the statuses, how an attempt ended
(:class:`Outcome`) and the handler's ``PROGRESS:``/``RESULT:`` line protocol. This
package imports nothing else of the project: the daemon, the direct mode and the
business logic all build on it.
"""

from __future__ import annotations

from .outcome import EXIT_PERMANENT, Outcome
from .protocol import CONTROL_FD_VAR, OutputLine, emit, parse_line
from .retry import Backoff, RetryPolicy
from .spec import MAX_PARAMS_BYTES, NewTask, NushellRun, PythonRun, RunSpec
from .status import AttemptStatus, Priority, TaskStatus, WorkflowStatus

__all__ = [
    "CONTROL_FD_VAR",
    "EXIT_PERMANENT",
    "MAX_PARAMS_BYTES",
    "AttemptStatus",
    "Backoff",
    "NewTask",
    "NushellRun",
    "Outcome",
    "OutputLine",
    "Priority",
    "PythonRun",
    "RetryPolicy",
    "RunSpec",
    "TaskStatus",
    "WorkflowStatus",
    "emit",
    "parse_line",
]
