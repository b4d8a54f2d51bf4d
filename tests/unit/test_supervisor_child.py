"""Starting a handler from the supervisor, with its spawn helper and without: the same
session, directory, umask and start failure either way."""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

import pytest

from provisioning.execution.cgroups import Cgroups
from provisioning.execution.supervisor.child import Launch, Started, helper, spawn, spawn_error
from tests.conftest import wait_for

HELPER = helper()
WAYS = [
    pytest.param(HELPER, id="helper", marks=pytest.mark.skipif(HELPER is None, reason="no helper")),
    pytest.param(None, id="python"),
]
PROBE = "import os; print(os.getsid(0) == os.getpid(), os.getcwd(), oct(os.umask(0)))"


def _wait(started: Started) -> int:
    if started.proc is not None:
        return started.proc.wait(timeout=30)
    _, status = os.waitpid(started.pid, 0)
    return os.waitstatus_to_exitcode(status)


def _learnt(started: Started) -> int:
    found: list[int] = []

    def known() -> bool:
        got = spawn_error(started.pending)
        if got is not None:
            found.append(got)
        return got is not None

    wait_for(known, message="the helper said whether the handler runs")
    os.close(started.pending)
    return found[0]


@pytest.mark.parametrize("via", WAYS)
def test_the_handler_runs_in_its_own_session_where_and_as_told(
    via: str | None, tmp_path: Path
) -> None:
    out_r, out_w = os.pipe()
    launch = Launch(
        argv=["python3", "-c", PROBE],
        env={},
        executable=sys.executable,
        cwd=str(tmp_path),
        umask=0o027,
    )
    try:
        started = spawn(launch, out_w, out_w, None, via)
    finally:
        os.close(out_w)
    if started.pending >= 0:
        assert _learnt(started) == 0
    with os.fdopen(out_r) as out:
        printed = out.read().split()
    assert _wait(started) == 0
    assert printed == ["True", str(tmp_path), "0o27"]


@pytest.mark.parametrize("via", WAYS)
def test_a_program_that_cannot_start_says_why(via: str | None, tmp_path: Path) -> None:
    launch = Launch(argv=["no-such-program"], env={"PATH": str(tmp_path)})
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        if via is None:
            with pytest.raises(FileNotFoundError):
                spawn(launch, null, null, None, via)
            return
        started = spawn(launch, null, null, None, via)
    finally:
        os.close(null)
    assert _learnt(started) == errno.ENOENT
    assert _wait(started) == 127


@pytest.mark.parametrize("via", WAYS)
def test_a_nul_in_the_environment_is_refused_before_anything_runs(via: str | None) -> None:
    launch = Launch(argv=["true"], env={"BAD": "a\0b"})
    null = os.open(os.devnull, os.O_WRONLY)
    before = len(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(ValueError):
            spawn(launch, null, null, None, via)
    finally:
        os.close(null)
    assert len(os.listdir("/proc/self/fd")) == before - 1  # null: nothing else left open


@pytest.mark.parametrize("via", WAYS)
@pytest.mark.parametrize("ending", ["exit 3", "SIGTERM"])
def test_the_handler_runs_in_its_cgroup_and_its_end_is_the_supervisors_to_see(
    via: str | None, ending: str
) -> None:
    cgroups = Cgroups.discover()
    if cgroups is None:
        pytest.skip("no cgroup v2 to place tasks in here")
    group = cgroups.create(f"child-test-{os.getpid()}.1")
    end = "sys.exit(3)" if ending == "exit 3" else "os.kill(os.getpid(), signal.SIGTERM)"
    probe = (
        "import os, signal, sys; "
        "print(open('/proc/self/cgroup').read().split('::')[-1].strip(), os.getpgid(0)); "
        f"sys.stdout.flush(); {end}"
    )
    out_r, out_w = os.pipe()
    launch = Launch(
        argv=["python3", "-c", probe], env={}, executable=sys.executable, cgroup=group.path
    )
    try:
        started = spawn(launch, out_w, out_w, None, via)
    finally:
        os.close(out_w)
    try:
        if started.pending >= 0:
            assert _learnt(started) == 0
        with os.fdopen(out_r) as out:
            where, process_group = out.read().split()
        code = _wait(started)
    finally:
        group.path.rmdir()
    assert str(group.path).endswith(where)
    # The pid the supervisor knows leads the handler's process group: signalling that
    # group reaches the handler.
    assert int(process_group) == started.pid
    assert code == (3 if ending == "exit 3" else -signal.SIGTERM)
