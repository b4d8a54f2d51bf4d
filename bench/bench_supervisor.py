"""What the task supervisor costs per attempt (issue 14, item 4), without a daemon.

    .venv/bin/python bench/bench_supervisor.py [--attempts 1000] [--strace]
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/bench_supervisor.py   # compare

One supervisor on a fresh data dir runs N attempts of ``true``, 10 at a time, each in a
cgroup of its own as the daemon makes them (where cgroups can be had). Reported: the
supervisor's CPU time per attempt (user + system, from /proc: robust on a shared
machine where wall time is not), the wall time per attempt, and with ``--strace`` its
system calls per attempt (``strace -c``; the time then means little).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from provisioning.execution.cgroups import Cgroups
from provisioning.execution.process import Confinement, ProcessHooks
from provisioning.execution.procfs import ProcessInfo
from provisioning.execution.supervised import Supervisors


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hooks() -> ProcessHooks:
    async def on_progress(progress: int, message: str | None) -> None:
        return None

    async def on_logs(lines: list[tuple[str, str, float]]) -> None:
        return None

    def on_spawn(info: ProcessInfo) -> None:
        return None

    return ProcessHooks(on_spawn=on_spawn, on_progress=on_progress, on_logs=on_logs)


async def measure(attempts: int, trace: bool) -> str:
    home = Path(tempfile.mkdtemp(prefix="bench-supervisor-"))
    data = home / "data"
    data.mkdir()
    groups = Cgroups.discover()
    sup = Supervisors(data)
    gate = asyncio.Semaphore(10)
    loop = asyncio.get_running_loop()
    hooks = _hooks()

    async def one(key: str) -> None:
        async with gate:
            confine = Confinement(cgroup=groups.create(key) if groups else None)
            request = sup.request(
                key,
                ["true"],
                env={"PATH": os.defpath},
                cwd=None,
                timeout=30,
                kill_grace=1,
                confine=confine,
                file_bytes=1 << 20,
            )
            stop = loop.create_future()
            outcome = await sup.run(request, hooks=hooks, stop=stop, log_keep_bytes=1 << 16)
            assert outcome.exit_code == 0, outcome
            sup.forget_soon(key)

    await one("warm.1")  # the supervisor is started and warm
    hub = sup._hub
    tracer = None
    if trace:
        argv = ["strace", "-c", "-o", str(home / "strace"), "-p", str(hub)]
        tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1.0)  # strace attaches
    cpu, start = cpu_seconds(hub), time.perf_counter()
    await asyncio.gather(*(one(f"t{i}.1") for i in range(attempts)))
    wall, cpu = time.perf_counter() - start, cpu_seconds(hub) - cpu
    line = (
        f"{attempts} attempts of true, cgroups {'on' if groups else 'off'}: supervisor CPU "
        f"{1000 * cpu / attempts:.3f} ms/attempt, wall {1000 * wall / attempts:.3f} ms/attempt"
    )
    if tracer is not None:
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        total = (home / "strace").read_text().strip().splitlines()[-1].split()
        line += f", {int(total[3]) / attempts:.0f} system calls/attempt"
    sup.close()
    os.kill(hub, signal.SIGUSR2)  # it would leave with this process anyway
    shutil.rmtree(home, ignore_errors=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--strace", action="store_true", help="count system calls too")
    args = parser.parse_args()
    print(asyncio.run(measure(args.attempts, args.strace)))


if __name__ == "__main__":
    main()
