"""Queue benchmark (issue 2): orchestrator throughput vs ``make -jN``, and submit latency.

Run from the repository root::

    .venv/bin/python bench/bench_queue.py [--tasks 1000] [--concurrency 10] [--quick] [--profile]

Every daemon runs on loopback, on a fresh temporary data dir, with an isolated
configuration (no user/system config files, no ``PROVISIONING_*`` variables).
Results are printed as Markdown and written to ``bench/results/queue.json``.
See ``bench/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ORCHESTRATOR = VENV_BIN / "provisioning-orchestrator"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TASK_BODY: dict[str, Any] = {"run": {"command": ["true"]}, "priority": "normal"}
TERMINAL_FAILURES = ("failed", "cancelled", "timed_out")


# -- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    tasks: int
    concurrency: int
    submit_clients: int
    latency_rate: float
    latency_seconds: float
    make_repeats: int
    deadline_seconds: float
    profile: bool
    quick: bool
    output: Path


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=None, help="tasks per run [1000]")
    parser.add_argument("--concurrency", type=int, default=10, help="slots / make -j [10]")
    parser.add_argument("--submit-clients", type=int, default=4, help="concurrent submitters")
    parser.add_argument("--rate", type=float, default=200.0, help="latency test req/s [200]")
    parser.add_argument("--latency-seconds", type=float, default=None, help="[10]")
    parser.add_argument("--quick", action="store_true", help="100 tasks, 2 s of latency")
    parser.add_argument("--profile", action="store_true", help="py-spy an extra run")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "queue.json")
    args = parser.parse_args(argv)
    tasks = args.tasks or (100 if args.quick else 1000)
    latency_seconds = args.latency_seconds or (2.0 if args.quick else 10.0)
    return BenchConfig(
        tasks=tasks,
        concurrency=args.concurrency,
        submit_clients=args.submit_clients,
        latency_rate=args.rate,
        latency_seconds=latency_seconds,
        make_repeats=3,
        deadline_seconds=15.0 if args.quick else 90.0,
        profile=args.profile,
        quick=args.quick,
        output=args.output,
    )


# -- machine and environment -----------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _make_version() -> str:
    out = subprocess.run(["make", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def report_head(title: str, res: dict[str, Any], tools: str = "") -> list[str]:
    """The first lines of every bench report: what ran, when, the command, the machine
    (``tools``: more of it, such as make's and Terraform's versions)."""
    m = res["machine"]
    machine = f"{m['nproc']} CPU ({m['cpu']}), Python {m['python']}"
    return [
        f"{title} ({res['when']})",
        "",
        f"Command: `{res['command']}`  ",
        f"Machine: {machine}{tools}",
        "",
    ]


def save_results(results: dict[str, Any], output: Path) -> None:
    """A bench's results, as JSON for later readings (the report goes to stdout)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


def table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    """A Markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def compile_package() -> None:
    """Bring the package's bytecode up to date, as an installed package has it: an
    editable install has none, and under PYTHONDONTWRITEBYTECODE every CLI run would
    compile its modules again (~20 ms) and be timed doing it."""
    src = str(ROOT / "src")
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", src], check=True)


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "make": _make_version(),
        "tmpdir": tempfile.gettempdir(),
    }


def isolated_env(home: Path) -> dict[str, str]:
    """This environment minus any PROVISIONING_* setting, with config files out of reach."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PROVISIONING_SYSTEM_CONFIG"] = str(home / "no-system-config.toml")
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the daemon ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Daemon:
    """One orchestrator we started (and only ever signal by its own pid)."""

    data_dir: Path
    env: dict[str, str]
    concurrency: int
    port: int = field(default_factory=free_port)
    pid: int = 0
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> None:
        argv = [
            str(ORCHESTRATOR),
            "--daemon",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--max-concurrent-tasks",
            str(self.concurrency),
        ]
        subprocess.run(
            argv, env=self.env, cwd=self.data_dir.parent, check=True, capture_output=True
        )
        self.pid = int((self.data_dir / "orchestrator.pid").read_text().strip())
        token_file = self.env.get("PROVISIONING_SERVER_TOKEN_FILE")
        path = Path(token_file) if token_file else self.data_dir / "api-token"
        self.token = path.read_text().strip()

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + sys) of the daemon itself and of its reaped children."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        own = (int(fields[11]) + int(fields[12])) / ticks
        children = (int(fields[13]) + int(fields[14])) / ticks
        return own, children

    def stop(self, wait: float = 20.0) -> None:
        if not self.pid or not _alive(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(self.pid):
            print(
                f"warning: orchestrator pid {self.pid} still alive after SIGTERM", file=sys.stderr
            )


@contextlib.contextmanager
def running_daemon(concurrency: int, preload: int = 0) -> Iterator[Daemon]:
    """A daemon on a fresh temp data dir; ``preload`` tasks are queued before it starts."""
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        home = Path(tmp)
        data_dir = home / "data"
        data_dir.mkdir()
        env = isolated_env(home)
        if preload:
            preload_queue(data_dir, env, preload)
        daemon = Daemon(data_dir=data_dir, env=env, concurrency=concurrency)
        try:
            daemon.start()
            yield daemon
        finally:
            daemon.stop()


def preload_queue(data_dir: Path, env: dict[str, str], count: int) -> None:
    """Queue ``count`` tasks straight through the store, as ``POST /tasks`` would."""
    from provisioning.config import load_config
    from provisioning.orchestrator.store import open_store
    from provisioning.tasks import NewTask, RetryPolicy

    flags = {"storage.data_dir": str(data_dir)}
    settings = load_config(flags=flags, environ=env, cwd=data_dir).settings
    store = open_store(settings)
    try:
        for i in range(count):
            new = NewTask.model_validate({"name": f"pre-{i}", **TASK_BODY})
            store.enqueue(
                new,
                default_timeout=settings.executor.task_timeout_seconds,
                default_retry=RetryPolicy(),
                now=time.time(),
            )
    finally:
        store.close()


# -- HTTP helpers ----------------------------------------------------------------------


def client_for(daemon: Daemon, connections: int = 16) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=daemon.url, headers=daemon.headers, limits=limits, timeout=30.0
    )


async def submit_one(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/tasks", json={"name": name, **TASK_BODY})
    if response.status_code != 201:
        raise RuntimeError(f"POST /tasks: {response.status_code} {response.text[:200]}")


async def submit_all(client: httpx.AsyncClient, count: int, workers: int) -> None:
    """Submit ``count`` tasks as fast as ``workers`` keep-alive submitters can."""
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            await submit_one(client, f"t{i}")

    await asyncio.gather(*(worker() for _ in range(workers)))


async def task_counts(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/status")
    response.raise_for_status()
    counts: dict[str, int] = response.json()["tasks"]
    return counts


async def wait_all_done(client: httpx.AsyncClient, count: int, deadline: float) -> float:
    """Poll ``/status`` until ``count`` tasks completed; the ``perf_counter`` it saw that."""
    while True:
        counts = await task_counts(client)
        failed = sum(counts.get(s, 0) for s in TERMINAL_FAILURES)
        if failed:
            raise RuntimeError(f"{failed} task(s) did not complete: {counts}")
        if counts.get("completed", 0) >= count:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"deadline passed with {counts}")
        await asyncio.sleep(0.02)


def _epoch(value: str | None) -> float:
    if value is None:
        raise RuntimeError("a completed task without a timestamp")
    return datetime.fromisoformat(value).timestamp()


async def task_times(client: httpx.AsyncClient) -> list[tuple[float, float, float]]:
    """``(created, started, completed)`` of every completed task, from the server."""
    times: list[tuple[float, float, float]] = []
    offset = 0
    while True:
        params = {"status": "completed", "limit": 1000, "offset": offset}
        response = await client.get("/tasks", params=params)
        response.raise_for_status()
        page = response.json()["tasks"]
        for t in page:
            times.append(
                (_epoch(t["created_at"]), _epoch(t["started_at"]), _epoch(t["completed_at"]))
            )
        if len(page) < 1000:
            return times
        offset += 1000


# -- statistics ------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarize_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def span_stats(times: list[tuple[float, float, float]]) -> dict[str, float]:
    """Execution span and per-task queue/run durations from server timestamps."""
    first_start = min(s for _, s, _ in times)
    last_done = max(c for _, _, c in times)
    run = [c - s for _, s, c in times]
    return {
        "exec_span_s": round(last_done - first_start, 3),
        "run_p50_ms": round(percentile(run, 50) * 1000, 2),
        "run_p99_ms": round(percentile(run, 99) * 1000, 2),
        "first_start": first_start,
        "last_done": last_done,
    }


# -- benchmark 0: make -jN -------------------------------------------------------------


def write_makefile(directory: Path, count: int) -> Path:
    names = [f"t{i}" for i in range(count)]
    lines = [f".PHONY: all {' '.join(names)}", f"all: {' '.join(names)}"]
    lines += [f"{name}:\n\t@true" for name in names]
    path = directory / "Makefile"
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_make(count: int, concurrency: int, repeats: int) -> dict[str, Any]:
    """Wall time of ``make -jN`` running ``count`` phony ``true`` targets (best of N)."""
    with tempfile.TemporaryDirectory(prefix="bench-make-") as tmp:
        makefile = write_makefile(Path(tmp), count)
        argv = ["make", f"-j{concurrency}", "-s", "-f", str(makefile), "all"]
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            runs.append(time.perf_counter() - t0)
    return {
        "command": shlex.join([*argv[:2], "-s", "-f", "Makefile", "all"]),
        "runs_s": [round(r, 3) for r in runs],
        "best_s": round(min(runs), 3),
        "median_s": round(statistics.median(runs), 3),
    }


# -- benchmark 1: throughput, submit + run ---------------------------------------------


async def _throughput_run(daemon: Daemon, cfg: BenchConfig) -> dict[str, Any]:
    async with client_for(daemon, cfg.submit_clients + 2) as client:
        await task_counts(client)  # Warm the connection and the app.
        cpu0, client_cpu0 = daemon.cpu_seconds(), time.process_time()
        t0_wall, t0 = time.time(), time.perf_counter()
        await submit_all(client, cfg.tasks, cfg.submit_clients)
        t_submitted = time.perf_counter()
        t_seen = await wait_all_done(client, cfg.tasks, t0 + cfg.deadline_seconds)
        cpu1, client_cpu1 = daemon.cpu_seconds(), time.process_time()
        times = await task_times(client)
    spans = span_stats(times)
    per_task_ms = 1000 / cfg.tasks
    return {
        "daemon_cpu_ms_per_task": round((cpu1[0] - cpu0[0]) * per_task_ms, 3),
        "children_cpu_ms_per_task": round((cpu1[1] - cpu0[1]) * per_task_ms, 3),
        "client_cpu_ms_per_task": round((client_cpu1 - client_cpu0) * per_task_ms, 3),
        "submit_s": round(t_submitted - t0, 3),
        "submit_rate_per_s": round(cfg.tasks / (t_submitted - t0), 1),
        # End = the last completed_at the server recorded (no polling granularity).
        "total_s": round(spans["last_done"] - t0_wall, 3),
        "total_polled_s": round(t_seen - t0, 3),
        "exec_span_s": spans["exec_span_s"],
        "run_p50_ms": spans["run_p50_ms"],
        "run_p99_ms": spans["run_p99_ms"],
        "completed": len(times),
    }


def bench_throughput(cfg: BenchConfig) -> dict[str, Any]:
    with running_daemon(cfg.concurrency) as daemon:
        return asyncio.run(_throughput_run(daemon, cfg))


# -- benchmark 2: drain of a preloaded queue (pure execution) --------------------------


async def _drain_run(daemon: Daemon, cfg: BenchConfig) -> dict[str, Any]:
    async with client_for(daemon, 2) as client:
        await wait_all_done(client, cfg.tasks, time.perf_counter() + cfg.deadline_seconds)
        times = await task_times(client)
    spans = span_stats(times)
    return {
        "exec_span_s": spans["exec_span_s"],
        "run_p50_ms": spans["run_p50_ms"],
        "run_p99_ms": spans["run_p99_ms"],
        "completed": len(times),
    }


def bench_drain(cfg: BenchConfig, repeats: int = 3) -> dict[str, Any]:
    """Best of ``repeats`` drains (as make's time is its best of 3), each on a fresh daemon."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with running_daemon(cfg.concurrency, preload=cfg.tasks) as daemon:
            preload_s = time.perf_counter() - t0
            result = asyncio.run(_drain_run(daemon, cfg))
        runs.append({**result, "preload_s_untimed": round(preload_s, 3)})
    best = min(runs, key=lambda r: float(r["exec_span_s"]))
    return {**best, "runs": len(runs)}


# -- benchmark 3: paced submit latency -------------------------------------------------


@dataclass
class LatencySamples:
    service: list[float] = field(default_factory=list)  # from the actual send
    intended: list[float] = field(default_factory=list)  # from the scheduled send
    errors: collections.Counter[str] = field(default_factory=collections.Counter)


async def _timed_submit(
    client: httpx.AsyncClient, i: int, scheduled: float, samples: LatencySamples
) -> None:
    sent = time.perf_counter()
    try:
        await submit_one(client, f"lat{i}")
    except (httpx.HTTPError, RuntimeError) as exc:
        samples.errors[type(exc).__name__] += 1
        return
    done = time.perf_counter()
    samples.service.append(done - sent)
    samples.intended.append(done - scheduled)


async def paced_submits(client: httpx.AsyncClient, rate: float, seconds: float) -> LatencySamples:
    """Open loop: request ``i`` is sent at ``start + i / rate`` whatever the replies do."""
    samples = LatencySamples()
    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    inflight: list[asyncio.Task[None]] = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        inflight.append(asyncio.create_task(_timed_submit(client, i, scheduled, samples)))
    await asyncio.gather(*inflight)
    return samples


async def _hold_every_slot(client: httpx.AsyncClient, slots: int, deadline: float) -> None:
    """``slots`` long tasks running: what is submitted next waits in the queue."""
    for i in range(slots):
        body = {"name": f"hold{i}", "run": {"command": ["sleep", "600"]}}
        response = await client.post("/tasks", json=body)
        response.raise_for_status()
    while (await task_counts(client)).get("running", 0) < slots:
        if time.perf_counter() > deadline:
            raise TimeoutError("the long tasks did not all start")
        await asyncio.sleep(0.02)


async def _latency_run(daemon: Daemon, cfg: BenchConfig, *, slots_held: bool) -> dict[str, Any]:
    async with client_for(daemon, 64) as client:
        if slots_held:
            await _hold_every_slot(client, cfg.concurrency, time.perf_counter() + 30)
        for i in range(20):  # Warm-up, not measured.
            await submit_one(client, f"warm{i}")
        t0 = time.perf_counter()
        samples = await paced_submits(client, cfg.latency_rate, cfg.latency_seconds)
        elapsed = time.perf_counter() - t0
        counts = await task_counts(client)
    sent = len(samples.service) + sum(samples.errors.values())
    return {
        "rate_target_per_s": cfg.latency_rate,
        "requests": sent,
        "ok": len(samples.service),
        "errors": dict(samples.errors),
        "reply_rate_per_s": round(len(samples.service) / elapsed, 1),
        "service": summarize_ms(samples.service) if samples.service else {},
        "intended": summarize_ms(samples.intended) if samples.intended else {},
        "completed_by_end": counts.get("completed", 0),
        "backlog_at_end": counts.get("pending", 0) + counts.get("running", 0),
    }


def bench_latency(cfg: BenchConfig, *, slots_held: bool = False) -> dict[str, Any]:
    """Paced submits of ``true`` tasks that run as they come, or (``slots_held``) that
    queue behind as many long tasks as there are slots: submission alone, while tasks
    run."""
    with running_daemon(cfg.concurrency) as daemon:
        return asyncio.run(_latency_run(daemon, cfg, slots_held=slots_held))


# -- optional: py-spy profile of one more throughput run -------------------------------


# Frames on every stack (thread and loop plumbing): left out of the inclusive table.
GENERIC_FRAMES = (
    "threading.py",
    "runpy",
    "typer/",
    "asyncio/runners.py",
    "run_until_complete",
    "run_forever",
    "daemon.py",
    "concurrent/futures/thread.py",
    "_run_once",
    "Handle._run",
)


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Top frames by self samples, and by inclusive samples without the frames every
    stack shares, from py-spy's collapsed-stack output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(generic in frame for generic in GENERIC_FRAMES):
                incl[frame] += count

    def table(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": f, "samples": n, "pct": round(100 * n / max(total, 1), 1)}
            for f, n in counter.most_common(top)
        ]

    return {"samples": total, "self": table(own), "inclusive": table(incl)}


def bench_profile(cfg: BenchConfig) -> dict[str, Any]:
    pyspy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if pyspy is None:
        return {"skipped": "py-spy not installed (.venv/bin/pip install py-spy)"}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / "queue-profile.txt"
    with running_daemon(cfg.concurrency) as daemon:
        argv = [pyspy, "record", "--pid", str(daemon.pid), "--rate", "250", "--format", "raw"]
        argv += ["--output", str(raw), "--nonblocking", "--threads"]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # Let py-spy attach.
        result = asyncio.run(_throughput_run(daemon, cfg))
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=30)
    if not raw.exists():
        return {"skipped": f"py-spy failed: {err.decode(errors='replace')[-300:]}"}
    return {"run": result, "raw": str(raw.relative_to(ROOT)), **summarize_profile(raw)}


# -- report ----------------------------------------------------------------------------


def derive(
    cfg: BenchConfig, make: dict[str, Any], thr: dict[str, Any], drain: dict[str, Any]
) -> dict[str, Any]:
    """Ratios to make and per-task overheads (definitions in bench/README.md)."""
    n, m = cfg.tasks, make["best_s"]

    def per_task(seconds: float) -> dict[str, float]:
        return {
            "ratio_vs_make": round(seconds / m, 2),
            "overhead_ms_per_task": round((seconds - m) / n * 1000, 3),
            "slot_ms_per_task": round(seconds / n * cfg.concurrency * 1000, 2),
        }

    return {
        "make_slot_ms_per_task": round(m / n * cfg.concurrency * 1000, 2),
        "end_to_end": per_task(thr["total_s"]),
        "drain": per_task(drain["exec_span_s"]),
        "target_ratio": 3.0,
    }


def _row(label: str, value: Any, note: str = "") -> str:
    return f"| {label} | {value} | {note} |"


def render_markdown(res: dict[str, Any]) -> str:
    cfg, m, thr, drn, lat, d = (
        res["config"],
        res["make"],
        res["throughput"],
        res["drain"],
        res["latency"],
        res["derived"],
    )
    n, c = cfg["tasks"], cfg["concurrency"]
    e2e, dr = d["end_to_end"], d["drain"]
    svc, itd = lat["service"], lat["intended"]
    rows = [
        "| metric | value | notes |",
        "|---|---|---|",
        _row(f"make -j{c}, {n} x true", f"{m['best_s']} s", f"best of {m['runs_s']}"),
        _row("orchestrator end-to-end", f"{thr['total_s']} s", "first POST → last completed_at"),
        _row("  submit phase", f"{thr['submit_s']} s", f"{thr['submit_rate_per_s']} POST/s"),
        _row(
            "  CPU per task: daemon / children / client",
            f"{thr['daemon_cpu_ms_per_task']} / {thr['children_cpu_ms_per_task']} / "
            f"{thr['client_cpu_ms_per_task']} ms",
            "user+sys; client = this benchmark",
        ),
        _row("  ratio vs make", f"{e2e['ratio_vs_make']}x", "target ≤ 3x"),
        _row("  overhead per task", f"{e2e['overhead_ms_per_task']} ms", "(orch - make) / N"),
        _row("  slot time per task", f"{e2e['slot_ms_per_task']} ms", f"orch / N x {c}"),
        _row(
            "orchestrator drain (preloaded)",
            f"{drn['exec_span_s']} s",
            "first started_at → last completed_at",
        ),
        _row("  ratio vs make", f"{dr['ratio_vs_make']}x", "pure execution, no HTTP"),
        _row("  overhead per task", f"{dr['overhead_ms_per_task']} ms", "(drain - make) / N"),
        _row(
            "  slot time per task",
            f"{dr['slot_ms_per_task']} ms",
            f"make: {d['make_slot_ms_per_task']} ms",
        ),
        _row(
            "  started→completed p50/p99",
            f"{drn['run_p50_ms']} / {drn['run_p99_ms']} ms",
            "one attempt, server side",
        ),
        _row(
            f"POST /tasks @ {lat['rate_target_per_s']:g}/s p50",
            f"{svc.get('p50_ms')} ms",
            f"{lat['ok']} ok, {sum(lat['errors'].values())} errors",
        ),
        _row("  p99", f"{svc.get('p99_ms')} ms", f"max {svc.get('max_ms')} ms"),
        _row(
            "  p50/p99 from scheduled send",
            f"{itd.get('p50_ms')} / {itd.get('p99_ms')} ms",
            "includes client-side queueing",
        ),
        _row(
            "  replies per second",
            f"{lat['reply_rate_per_s']}/s",
            f"backlog at end: {lat['backlog_at_end']}",
        ),
    ]
    held = res.get("latency_slots_held")
    if held:
        hsvc = held["service"]
        rows += [
            _row(
                f"POST /tasks @ {held['rate_target_per_s']:g}/s, all {c} slots running, p50",
                f"{hsvc.get('p50_ms')} ms",
                f"{held['ok']} ok, {sum(held['errors'].values())} errors; they queue",
            ),
            _row("  p99", f"{hsvc.get('p99_ms')} ms", f"max {hsvc.get('max_ms')} ms"),
        ]
    mi = res["machine"]
    head = [
        f"## Queue benchmark ({res['timestamp']})",
        "",
        f"Command: `{res['command']}`  ",
        f"Machine: {mi['nproc']} CPU ({mi['cpu']}), Python {mi['python']}, {mi['platform']}, "
        f"{mi['make']}",
        "",
    ]
    return "\n".join(head + rows + _profile_lines(res.get("profile")))


def _profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if "skipped" in profile:
        return ["", f"Profile skipped: {profile['skipped']}"]
    lines = ["", f"### py-spy, daemon during one throughput run ({profile['samples']} samples)"]
    for kind in ("self", "inclusive"):
        lines += ["", f"| {kind} % | frame |", "|---|---|"]
        lines += [f"| {row['pct']} | `{row['frame']}` |" for row in profile[kind]]
    return lines


def run_all(cfg: BenchConfig) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"make -j{cfg.concurrency} x {cfg.tasks} ...", file=sys.stderr)
    make = bench_make(cfg.tasks, cfg.concurrency, cfg.make_repeats)
    print("orchestrator throughput (submit + run) ...", file=sys.stderr)
    thr = bench_throughput(cfg)
    print("orchestrator drain (preloaded queue) ...", file=sys.stderr)
    drain = bench_drain(cfg)
    print(
        f"submit latency @ {cfg.latency_rate:g}/s for {cfg.latency_seconds:g} s ...",
        file=sys.stderr,
    )
    latency = bench_latency(cfg)
    print(f"submit latency with all {cfg.concurrency} slots running ...", file=sys.stderr)
    latency_held = bench_latency(cfg, slots_held=True)
    profile = None
    if cfg.profile:
        print("py-spy profile of one more throughput run ...", file=sys.stderr)
        profile = bench_profile(cfg)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    return {
        "timestamp": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/bench_queue.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "config": config,
        "make": make,
        "throughput": thr,
        "drain": drain,
        "latency": latency,
        "latency_slots_held": latency_held,
        "derived": derive(cfg, make, thr, drain),
        "profile": profile,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if not ORCHESTRATOR.exists():
        print(f"{ORCHESTRATOR} missing: run ./scripts/setup.sh", file=sys.stderr)
        return 2
    results = run_all(cfg)
    save_results(results, cfg.output)
    print(render_markdown(results))
    print(f"\n(whole benchmark: {results['bench_seconds']} s; JSON: {cfg.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
