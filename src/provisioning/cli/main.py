"""``provisioning``: the command line of the Provisioning platform.

The commands a user waits on (``workflow submit``, ``task submit``) in their plain
forms run without Typer (``fastpath.py``); everything else is parsed by Typer
(``root.py``), each command group and each command's own dependencies imported when
that command runs."""

from __future__ import annotations

import os
import sys

from . import fastpath
from .exits import EXIT_USAGE


def _undecodable(args: list[str]) -> str | None:
    """The first argument that is not valid text in this locale (Python keeps such
    bytes as lone surrogates), shown with its bad bytes escaped."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            return raw.decode("utf-8", "backslashreplace")
    return None


def main() -> None:
    bad = _undecodable(sys.argv[1:])
    if bad is not None:
        sys.stderr.write(f"error: argument {bad!r} is not valid UTF-8 text\n")
        raise SystemExit(EXIT_USAGE)
    # Pydantic scans every installed distribution for plugins on its first model (tens
    # of ms per command); the CLI uses none. An explicit setting, even empty, wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if fastpath.main(sys.argv[1:]):
        return
    from .root import run

    run()
