"""The program of a task is looked up on its PATH once, not by the child on each spawn."""

from __future__ import annotations

import os
from pathlib import Path

from provisioning.execution.process import _resolved


def _program(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_bare_name_resolves_to_the_first_match_on_the_tasks_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _program(second, "tool")
    wanted = _program(first, "tool")
    assert _resolved("tool", {"PATH": f"{first}{os.pathsep}{second}"}) == str(wanted)


def test_a_path_or_an_unknown_name_is_left_to_the_child(tmp_path: Path) -> None:
    assert _resolved("./tool", {"PATH": str(tmp_path)}) is None
    assert _resolved("no-such-tool-anywhere", {"PATH": str(tmp_path)}) is None
    assert _resolved("tool", {"PATH": "relative-dir"}) is None


def test_a_cached_program_that_went_away_is_looked_up_again(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    env = {"PATH": f"{first}{os.pathsep}{second}"}
    gone = _program(first, "moving")
    fallback = _program(second, "moving")
    assert _resolved("moving", env) == str(gone)
    gone.unlink()
    assert _resolved("moving", env) == str(fallback)
    fallback.unlink()
    assert _resolved("moving", env) is None
