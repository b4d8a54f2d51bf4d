"""One exit code per kind of outcome, for every command (README, "Exit codes")."""

from __future__ import annotations

EXIT_OK = 0
# The work failed, was refused (a conflict, an incompatible orchestrator) or was
# cancelled.
EXIT_FAILED = 1
# What was typed is wrong: a bad option or file, an unknown or ambiguous id or name,
# a request the orchestrator rejects as invalid (HTTP 400/404/422), a bad configuration.
EXIT_USAGE = 2
# The orchestrator cannot be reached, or does not answer in time.
EXIT_UNREACHABLE = 3
# Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 the work failed, was refused or cancelled; 2 bad usage, "
    "an unknown id or name, or a bad configuration; 3 the orchestrator cannot be reached "
    "or does not answer in time; 130 interrupted."
)
