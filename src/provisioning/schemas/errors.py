"""What every loader of definition files shares: its error and its time bound."""

from __future__ import annotations

EVAL_TIMEOUT_SECONDS = 30.0


class LoadError(Exception):
    """The file cannot be read or evaluated; the message says where and why."""
