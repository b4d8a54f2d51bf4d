"""SurrealDB backend (``backend = "surrealdb"``) through the official ``surrealdb`` SDK.

Embedded by default: the SDK's in-process engine on a ``surrealkv://`` folder in
``data_dir``, owned by one process (:mod:`provisioning.drivers.surreal` holds the
connection, the folder's lock and the engine shared by a process's handles).
``storage.dsn = "ws://..."`` talks to a SurrealDB server instead, still as a single
node (``shared = False``).

This module, :mod:`.surreal_workflow` and ``sql/surreal*`` (the schema, the reads) are
the only SurrealQL-speaking code. Every verb is one SurrealQL transaction (``BEGIN
TRANSACTION; ...; COMMIT TRANSACTION;`` sent in one query call: the SDK has no
client-side transactions for the embedded engine). A verb reads what it needs under
the handle's lock, decides with the rules every store shares (:mod:`..flow`: what a
claim picks, what ending an attempt does, how a workflow advances), and sends all its
writes in that one transaction, which first checks and bumps the revision in
``meta:state``: had anything else written in between (another client of a server),
the transaction throws, nothing is applied, and the verb runs again on fresh data.
``meta:state`` also holds the sequence counters (tasks, workflows, log lines) that
give FIFO order and newest-first paging; they move in the same transaction. Bound
variables carry every value: no data is formatted into SurrealQL. With the embedded
engine every commit is fsynced (``SURREAL_SYNC_DATA``), so a verb that returned is on
disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack
from urllib.parse import quote

from ...drivers.surreal import Engine, StatementFailed, SurrealError, Target, acquire, release
from ...execution import ProcessInfo
from ...tasks import AttemptStatus, NewTask, Outcome, TaskStatus
from .. import flow
from ..models import Claim, Task
from ..models.records import Row, new_task_fields
from .base import Ending, Enqueued, Heartbeat, OneNode, StoreError, ending_terms, run_each
from .reads import Reads
from .sql_queries import migrations
from .surreal_retention import SurrealRetention
from .surreal_tx import CONFLICT, AsRow, Tx, key_of, new_task_row, queries, rid, task_of
from .surreal_workflow import SurrealWorkflowVerbs

if TYPE_CHECKING:
    from ...config import Settings

T = TypeVar("T")

# The folder of the embedded engine inside data_dir.
EMBEDDED_FOLDER = "surreal"
# How often a verb is run again when the store changed under it before giving up.
_RETRIES = 50


def _run(engine: Engine, sql: str, params: dict[str, Any]) -> list[Any]:
    """The driver's query call, its failures as the store's."""
    try:
        return engine.run(sql, params)
    except StatementFailed as exc:
        if CONFLICT in exc.cause:
            raise _Conflict(exc.cause) from None
        raise StoreError(str(exc)) from None
    except SurrealError as exc:
        raise StoreError(str(exc)) from None


def _runs(
    record: Any, attempt: int | None, running: AttemptStatus | TaskStatus = TaskStatus.RUNNING
) -> bool:
    """Whether a task (or attempt) record is running, as ``attempt`` when not ``None``."""
    if record is None or record["status"] != running.value:
        return False
    return attempt is None or record.get("attempt") == attempt


class _Conflict(Exception):
    """The revision check failed: something else wrote since the verb read."""


# -- the store ------------------------------------------------------------------------


class SurrealStore(OneNode, SurrealWorkflowVerbs, SurrealRetention, Reads):
    """The :class:`~.base.Store` on SurrealDB: an embedded folder, memory or a server."""

    backend = "surrealdb"

    def __init__(self, location: str | Path) -> None:
        try:
            self._target = Target.parse(location)
            self._engine: Engine | None = acquire(self._target)
        except SurrealError as exc:
            raise StoreError(str(exc)) from None
        self._version = 0

    # -- plumbing -----------------------------------------------------------------------

    def _live(self) -> Engine:
        if self._engine is None:
            raise StoreError("this SurrealDB store handle is closed")
        return self._engine

    def _query(self, sql: str, **params: Any) -> list[Any]:
        """Run reads; the result of each statement."""
        engine = self._live()
        with engine.lock:
            return _run(engine, sql, params)

    def _named(self, name: str, **params: Any) -> list[Any]:
        """Run the named reads ``name`` (:func:`.surreal_tx.queries`); each one's result."""
        return self._query(queries()[name], **params)

    def _select(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of the last SELECT of the named query ``name``."""
        return list(self._named(name, **params)[-1] or [])

    def _read(self, name: str, *args: Any) -> list[Row]:
        params = {f"p{number}": value for number, value in enumerate(args, 1)}
        return [AsRow(record) for record in self._select(name, **params)]

    def _task(self, task_id: str) -> dict[str, Any] | None:
        row = self._named("record", id=rid("task", task_id))[-1]
        return None if row is None else dict(row)

    def _running(self, task_id: str, attempt: int | None) -> dict[str, Any] | None:
        """The task's record while it runs ``attempt`` (any, when ``None``): the fence
        of what an attempt reports."""
        row = self._task(task_id)
        return row if _runs(row, attempt) else None

    def _transact(self, build: Callable[[Tx], T]) -> T:
        """Run one verb: ``build`` reads and queues its writes on a :class:`Tx`, which
        is committed as one transaction; run again if the store changed meanwhile."""
        engine = self._live()
        with engine.lock:
            for _ in range(_RETRIES):
                if engine.cache is None:
                    engine.cache = self._load_state(engine)
                tx = Tx(engine.cache)
                value = build(tx)
                if tx.empty:
                    return value
                sql, params = tx.script()
                try:
                    _run(engine, sql, params)
                except _Conflict:
                    engine.cache = None
                    continue
                except BaseException:
                    engine.cache = None
                    raise
                engine.cache = tx.state
                return value
        raise StoreError(
            f"SurrealDB ({self._target.display}): the store kept changing under this "
            f"orchestrator ({_RETRIES} tries); is another one writing to it?"
        )

    @staticmethod
    def _load_state(engine: Engine) -> dict[str, int]:
        state = _run(engine, queries()["state"], {})[-1]
        if state is None:
            raise StoreError("the SurrealDB store has no schema yet: call migrate() first")
        return {name: int(value) for name, value in state.items()}

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        engine = self._live()
        with engine.lock:
            current = _run(engine, queries()["schema_version"], {})[-1] or 0
            for version, script in migrations("surreal", ".surql"):
                if version > current:
                    _run(
                        engine,
                        "BEGIN TRANSACTION;\n"
                        f"{script}\n"
                        "UPSERT meta:schema SET version = $version RETURN NONE;\n"
                        "COMMIT TRANSACTION;",
                        {"version": version},
                    )
                    current = version
            engine.cache = None
        self._version = int(current)
        return self._version

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            release(engine)

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Each verb is its own SurrealQL transaction (no group commit)."""
        return run_each(calls)

    def meta(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "backend": self.backend,
            "url": self._target.display,
            "schema_version": self._version,
        }
        if self._target.folder is not None:
            found["path"] = str(self._target.folder)
        return found

    # -- queue --------------------------------------------------------------------------

    def enqueue(self, task: NewTask, **options: Unpack[Enqueued]) -> Task:
        def build(tx: Tx) -> Task:
            fields = new_task_fields(task, status=TaskStatus.PENDING.value, **options)
            row = new_task_row(tx, fields)
            tx.run("create", id=row["id"], row=row)
            return task_of(row)

        return self._transact(build)

    def claim(self, node_id: str, limit: int, *, now: float, lease_seconds: float) -> list[Claim]:
        if limit <= 0:
            return []

        def build(tx: Tx) -> list[Claim]:
            picked = self._pick_ready(limit, now)
            if not picked:
                return []
            lease = now + lease_seconds
            ids = [row["id"] for row in picked]
            tx.run("claim_tasks", ids=ids, node=node_id, lease=lease, now=now)
            claims = []
            for row in picked:
                started = row.get("started_at")
                running = {
                    **row,
                    "status": TaskStatus.RUNNING.value,
                    "attempt": int(row.get("attempt", 0)) + 1,
                    "tries": int(row.get("tries", 0)) + 1,
                    "owner": node_id,
                    "lease_expires_at": lease,
                    "started_at": now if started is None else started,
                    "progress": 0,
                    "progress_message": None,
                }
                claims.append(Claim(task=task_of(running), attempt=running["attempt"]))
            claims.sort(key=lambda c: (-c.task.priority, c.task.seq))
            return claims

        return self._transact(build)

    def _pick_ready(self, limit: int, now: float) -> list[dict[str, Any]]:
        """The task records to claim (:func:`flow.pick_ready`)."""

        def limits_of(ids: list[str]) -> dict[str, int]:
            rows = self._select("parallel_limits", ids=[rid("workflow", w) for w in ids])
            return {str(key_of(row)): int(row["parallel_limit"]) for row in rows}

        running = self._select("running_per_workflow", unlimited=flow.UNLIMITED)
        room = {row["workflow_id"]: row["free"] for row in running}

        def candidates(
            full: list[str], picked: list[dict[str, Any]], scan: int
        ) -> list[tuple[dict[str, Any], str | None]]:
            ids = [row["id"] for row in picked]
            rows = self._select("ready_candidates", now=now, full=full, picked=ids, scan=scan)
            return [(row, row.get("workflow_id")) for row in rows]

        return flow.pick_ready(limit, room, candidates, limits_of)

    def _write(self, name: str, **params: Any) -> None:
        """A verb that is one named write and reads nothing."""
        self._transact(lambda tx: tx.run(name, **params))

    def record_process(self, task_id: str, attempt: int, process: ProcessInfo) -> None:
        self._transact(lambda tx: tx.set(rid("attempt", [task_id, attempt]), asdict(process)))

    def heartbeat(self, node_id: str, **beat: Unpack[Heartbeat]) -> set[str]:
        now, lease_seconds, held = beat["now"], beat["lease_seconds"], beat.get("held")

        def build(tx: Tx) -> set[str]:
            rows = self._select("running_of_node", node=node_id)
            if held is not None:
                rows = [row for row in rows if str(key_of(row)) in held]
            tx.set(rid("node", node_id), {"last_seen": now})
            if rows:
                tx.run("extend_leases", ids=[row["id"] for row in rows], lease=now + lease_seconds)
            return {str(key_of(row)) for row in rows if row.get("cancel_requested")}

        return self._transact(build)

    def register_node(
        self, node_id: str, *, host: str, pid: int, max_concurrent: int, now: float
    ) -> None:
        row = {"host": host, "pid": pid, "max_concurrent": max_concurrent}
        row.update(started_at=now, last_seen=now)
        self._write("create", id=rid("node", node_id), row=row)

    def deregister_node(self, node_id: str) -> None:
        self._write("delete", id=rid("node", node_id))

    def record_progress(
        self, task_id: str, progress: int, message: str | None, *, attempt: int | None = None
    ) -> Task | None:
        def build(tx: Tx) -> Task | None:
            row = self._running(task_id, attempt)
            if row is None:
                return None
            changes: dict[str, Any] = {"progress": progress}
            if message is not None:
                changes["progress_message"] = message
            tx.set(row["id"], changes)
            return task_of({**row, **changes})

        return self._transact(build)

    def append_logs(
        self, task_id: str, attempt: int, lines: Sequence[tuple[str, str, float]]
    ) -> None:
        if not lines:
            return

        def build(tx: Tx) -> None:
            # Fenced like finish: lines of an attempt that was settled are dropped.
            if self._running(task_id, attempt) is None:
                return
            rows = []
            for stream, line, ts in lines:
                seq = tx.next_seq("log_seq")
                rows.append(
                    {
                        "id": rid("task_log", seq),
                        "seq": seq,
                        "task_id": task_id,
                        "attempt": attempt,
                        "stream": stream,
                        "line": line,
                        "ts": ts,
                    }
                )
            tx.run("insert_task_log", rows=rows)

        self._transact(build)

    def finish(
        self, task_id: str, attempt: int, outcome: Outcome, **ending: Unpack[Ending]
    ) -> Task | None:
        now, retry_at, counts = ending_terms(ending)

        def build(tx: Tx) -> Task | None:
            attempt_id = rid("attempt", [task_id, attempt])
            found, current = self._named(
                "task_and_attempt", task=rid("task", task_id), attempt=attempt_id
            )
            if not _runs(found, attempt) or not _runs(current, None, AttemptStatus.RUNNING):
                return None
            row = dict(found)
            tx.set(
                attempt_id,
                {
                    "status": outcome.status.value,
                    "finished_at": now,
                    "exit_code": outcome.exit_code,
                    "error": outcome.error,
                },
            )
            end = flow.task_ending(outcome.status, now=now, retry_at=retry_at, counts=counts)
            changes: dict[str, Any] = {
                "owner": None,
                "lease_expires_at": None,
                "error": outcome.error,
                "status": end.status.value,
            }
            if end.run_after is not None:
                tries = int(row.get("tries", 0)) - end.tries_back
                changes.update(run_after=end.run_after, tries=tries)
                tx.set(row["id"], changes)
                return task_of({**row, **changes})
            changes["completed_at"] = end.completed_at
            if outcome.has_result:
                changes["result"] = json.dumps(outcome.result)
            if end.progress is not None:
                changes["progress"] = end.progress
            return self._ended(tx, row, changes, now)

        return self._transact(build)

    def _ended(self, tx: Tx, row: dict[str, Any], changes: dict[str, Any], now: float) -> Task:
        """A task became terminal with ``changes``: written, and its workflow advanced."""
        tx.set(row["id"], changes)
        done = {**row, **changes}
        if done.get("workflow_id") is None:
            return task_of(done)
        return replace(task_of(done), workflow_status=self._advance(tx, done, now))

    def request_cancel(self, task_id: str, *, now: float) -> Task | None:
        def build(tx: Tx) -> Task | None:
            row = self._task(task_id)
            if row is None:
                return None
            if row["status"] in (TaskStatus.PENDING.value, TaskStatus.BLOCKED.value):
                changes = {
                    "status": TaskStatus.CANCELLED.value,
                    "completed_at": now,
                    "error": "cancelled before it started",
                }
                return self._ended(tx, row, changes, now)
            if row["status"] == TaskStatus.RUNNING.value:
                tx.set(row["id"], {"cancel_requested": True})
                return task_of({**row, "cancel_requested": True})
            return task_of(row)

        return self._transact(build)


def server_dsn(settings: Settings) -> str:
    """The original's server mode (``surrealdb-server`` + ``surrealdb_url`` and
    credentials) as one ws:// DSN; empty in the other modes. A server mode without a
    URL is refused: it never falls back to the embedded engine."""
    storage = settings.storage
    url = storage.surrealdb_url.strip()
    if storage.surrealdb_mode != "server":
        if url and storage.surrealdb_mode == "embedded":
            raise StoreError(
                "storage.surrealdb_url is for surrealdb-server, not surrealdb-embedded"
            )
        if not url:
            return ""
    if not url:
        raise StoreError(
            "--storage-type surrealdb-server needs --surrealdb-url ws://HOST:PORT "
            "(storage.surrealdb_url); it never falls back to the embedded store"
        )
    if not url.lower().startswith(("ws://", "wss://")):
        raise StoreError(f"--surrealdb-url must be a ws:// or wss:// URL, not {url!r}")
    scheme, rest = url.split("://", 1)
    if storage.surrealdb_username:
        user = quote(storage.surrealdb_username, safe="")
        secret = quote(storage.surrealdb_password, safe="")
        rest = f"{user}:{secret}@{rest.rsplit('@', 1)[-1]}"
    elif storage.surrealdb_password:
        raise StoreError("--surrealdb-password needs --surrealdb-username")
    return f"{scheme}://{rest}"


def open_surreal(settings: Settings) -> SurrealStore:
    """Open (and migrate) the SurrealDB store the configuration names: a server when
    ``storage.dsn`` is a ws:// URL, else the embedded folder ``<data_dir>/surreal``."""
    dsn = server_dsn(settings) or settings.storage.dsn.strip()
    if dsn:
        if not dsn.lower().startswith(("ws://", "wss://")):
            raise StoreError(
                "storage.backend = surrealdb takes storage.dsn as a server URL "
                f"(ws://host:8000 or wss://...), not {dsn.split('://', 1)[0]!r}; "
                "leave it empty for the embedded store in data_dir"
            )
        store = SurrealStore(dsn)
    else:
        data_dir: Path = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        store = SurrealStore(data_dir / EMBEDDED_FOLDER)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
