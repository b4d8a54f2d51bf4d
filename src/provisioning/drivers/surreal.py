"""A SurrealDB connection through the official ``surrealdb`` SDK: where a database lives
(an embedded folder, memory or a server), one engine per folder per process, and a
query call that fails loudly.

The embedded engine would let two processes open one folder and silently diverge, so
an exclusive lock file beside the folder refuses a second process, and every handle of
the owning process on that folder shares one engine.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from surrealdb import BlockingEmbeddedSurrealConnection, BlockingWsSurrealConnection, RecordID

NAMESPACE = "provisioning"
DATABASE = "orchestrator"
# What the engine answers for the statements after a failed one of a transaction.
_NOT_RUN = "The query was not executed due to a failed transaction"


class SurrealError(Exception):
    """The connection or a statement failed; the message says how."""


class StatementFailed(SurrealError):
    """A statement of a query call failed; ``cause`` is the engine's own message."""

    def __init__(self, display: str, cause: str) -> None:
        super().__init__(f"SurrealDB ({display}): {cause}")
        self.cause = cause


def clean(value: Any) -> Any:
    """A value the SDK can carry both ways: the engine stores a NUL character but cannot
    return it (the answer fails after the write), so NUL becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, RecordID):
        return RecordID(value.table_name, clean(value.id))
    return value


@dataclass(frozen=True)
class Target:
    """Where a database lives: an embedded folder, memory, or a server."""

    kind: str  # "surrealkv" | "mem" | "ws"
    url: str  # what the SDK is given
    display: str  # for messages: no password
    folder: Path | None = None
    username: str | None = None
    password: str | None = None
    namespace: str = NAMESPACE
    database: str = DATABASE

    @classmethod
    def parse(cls, location: str | Path) -> Target:
        text = str(location)
        if isinstance(location, Path) or "://" not in text:
            return cls._embedded(Path(text))
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme == "surrealkv":
            if not rest:
                raise SurrealError("surrealkv:// needs a folder path, e.g. surrealkv:///var/lib/x")
            return cls._embedded(Path(rest))
        if scheme in ("mem", "memory"):
            return cls("mem", "mem://", "mem://")
        if scheme in ("ws", "wss"):
            parts = urlsplit(text)
            if not parts.hostname:
                raise SurrealError(f"SurrealDB URL without a host: {text!r}")
            query = parse_qs(parts.query)
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            url = urlunsplit((scheme, netloc, parts.path.rstrip("/").removesuffix("/rpc"), "", ""))
            return cls(
                "ws",
                url,
                url,
                username=None if parts.username is None else unquote(parts.username),
                password=None if parts.password is None else unquote(parts.password),
                namespace=query.get("ns", [NAMESPACE])[0],
                database=query.get("db", [DATABASE])[0],
            )
        raise SurrealError(
            f"unsupported SurrealDB location {text!r}: use a folder (surrealkv://PATH), "
            "mem:// or a server's ws:// / wss:// URL"
        )

    @classmethod
    def _embedded(cls, folder: Path) -> Target:
        folder = folder.expanduser().resolve()
        url = f"surrealkv://{folder}"
        return cls("surrealkv", url, url, folder=folder)


class Engine:
    """One SurrealDB connection and the lock that serialises its users. ``cache`` is
    what every handle of the connection keeps in common (``None`` until one sets it)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.lock = threading.RLock()
        self.refs = 1
        self.cache: Any = None
        self._lock_fd: int | None = None
        if target.folder is not None:
            self._lock_fd = lock_folder(target.folder)
            # Sync every commit to disk (read once, when the first embedded folder opens).
            os.environ.setdefault("SURREAL_SYNC_DATA", "true")
        try:
            self.conn: BlockingWsSurrealConnection
            if target.kind == "ws":
                self.conn = BlockingWsSurrealConnection(target.url)
            else:
                self.conn = BlockingEmbeddedSurrealConnection(target.url)
                self.conn.connect()
            if target.username is not None:
                self.conn.signin({"username": target.username, "password": target.password or ""})
            self.conn.use(target.namespace, target.database)
        except Exception as exc:
            self._unlock()
            raise SurrealError(f"cannot open SurrealDB at {target.display}: {exc}") from None

    def run(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """One query call: the result of every statement; a failed statement raises
        :class:`StatementFailed` with the first real cause."""
        try:
            response = self.conn.query_raw(sql, clean(dict(params)))
        except Exception as exc:
            raise SurrealError(f"SurrealDB ({self.target.display}): {exc}") from None
        error = response.get("error")
        if error is not None:
            raise SurrealError(f"SurrealDB ({self.target.display}): {error}")
        results: list[dict[str, Any]] = response.get("result") or []
        failures = [str(r.get("result")) for r in results if r.get("status") == "ERR"]
        if failures:
            causes = [f for f in failures if f != _NOT_RUN] or failures
            raise StatementFailed(self.target.display, causes[0])
        return [r.get("result") for r in results]

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a broken connection: nothing left to do
            pass
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def lock_folder(folder: Path) -> int:
    """Hold ``<folder>.lock`` exclusively for this process, or refuse clearly."""
    lock_path = folder.with_name(folder.name + ".lock")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SurrealError(f"cannot open SurrealDB store {folder}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise SurrealError(
            f"the SurrealDB store {folder} is in use by {who}: one process owns it "
            f"(lock {lock_path}); stop that process first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# Embedded engines of this process by folder: every handle on a folder shares one.
_ENGINES: dict[Path, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def acquire(target: Target) -> Engine:
    """The engine of ``target``: a new one, or the folder's own, shared."""
    if target.folder is None:
        return Engine(target)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(target.folder)
        if engine is not None:
            engine.refs += 1
            return engine
        engine = Engine(target)
        _ENGINES[target.folder] = engine
        return engine


def release(engine: Engine) -> None:
    """One handle fewer on ``engine``; the last one closes it."""
    with _ENGINES_LOCK:
        engine.refs -= 1
        if engine.refs > 0:
            return
        folder = engine.target.folder
        if folder is not None and _ENGINES.get(folder) is engine:
            del _ENGINES[folder]
    with engine.lock:
        engine.close()
