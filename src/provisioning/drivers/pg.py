"""PostgreSQL plumbing through psycopg 3: DSNs shown without their password, session
guards that bound what a frozen node can hold, and a LISTEN connection to wait on."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger("provisioning.drivers.pg")

# Listener.wait notices close() within this many seconds.
LISTEN_SLICE_SECONDS = 0.5


def mask_dsn(dsn: str) -> str:
    """The DSN with its password (URL userinfo, ``password=`` or ``?password=``) masked."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hosts = netloc.rsplit("@", 1)
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        query = "&".join(
            "password=***" if item.split("=", 1)[0].lower() == "password" else item
            for item in parts.query.split("&")
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if "password" not in params:
        return dsn
    params["password"] = "***"
    return make_conninfo("", **params)


def session_guards(lease_seconds: float) -> dict[str, str]:
    """Connection parameters that bound what a frozen or cut-off node can hold: a
    session idle inside a transaction (its node SIGSTOPped mid-verb) is ended by the
    server within half a lease, so its row locks go with it; no statement or lock wait
    runs longer than a lease; a dead peer is noticed by TCP keepalives and
    ``tcp_user_timeout`` instead of never (a black-holed link sends no reset)."""
    lease_ms = max(int(lease_seconds * 1000), 1000)
    options = " ".join(
        (
            f"-c statement_timeout={lease_ms}",
            f"-c lock_timeout={lease_ms}",
            f"-c idle_in_transaction_session_timeout={max(lease_ms // 2, 500)}",
        )
    )
    return {
        "options": options,
        "connect_timeout": str(max(int(lease_seconds / 2), 2)),
        "keepalives": "1",
        "keepalives_idle": str(max(int(lease_seconds / 6), 1)),
        "keepalives_interval": str(max(int(lease_seconds / 12), 1)),
        "keepalives_count": "3",
        "tcp_user_timeout": str(max(lease_ms // 2, 500)),
    }


def with_defaults(dsn: str, **extra: str) -> str:
    """The DSN with ``extra`` parameters, each unless the DSN sets it already (the
    user's word wins)."""
    try:
        given = conninfo_to_dict(dsn)
        return make_conninfo(dsn, **{k: v for k, v in extra.items() if k not in given})
    except psycopg.Error:
        return dsn  # connect() reports what is wrong with it


def lost(conn: psycopg.Connection[Any] | None) -> bool:
    """No connection, or one that can no longer serve (closed, or broken mid-query)."""
    return conn is None or conn.closed or conn.broken


class Listener:
    """A connection of its own that LISTENs on ``channel``: opened on first use, and
    again after it was lost. Meant for one waiting thread; :meth:`close` makes a
    :meth:`wait` return within ``LISTEN_SLICE_SECONDS``."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._gone = threading.Event()

    def start(self) -> bool:
        """Listen now if not yet (raises :class:`psycopg.Error`); ``True`` when the
        connection was (re)opened, so a notification may have been missed."""
        with self._lock:
            return self._start()

    def _start(self) -> bool:
        if not lost(self._conn):
            return False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            conn.execute(f"LISTEN {self._channel}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return True

    def wait(self, timeout: float) -> bool:
        """``True`` when a notification arrived (also one sent since the previous call)
        or listening just (re)started; ``False`` when ``timeout`` passed, or the server
        cannot be reached (the call then waits out the timeout, so polling goes on)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                if self._start():
                    return True
            except psycopg.Error as exc:
                log.warning("cannot LISTEN on PostgreSQL (%s); polling", exc)
                self._gone.wait(max(0.0, deadline - time.monotonic()))
                return False
            conn = self._conn
            assert conn is not None
            while not self._gone.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    received = conn.notifies(
                        timeout=min(remaining, LISTEN_SLICE_SECONDS), stop_after=1
                    )
                    with contextlib.closing(received):
                        for _ in received:
                            return True
                except psycopg.Error as exc:
                    log.warning("PostgreSQL LISTEN connection lost (%s)", exc)
                    conn.close()
                    self._conn = None
                    return True
            return False

    def close(self) -> None:
        self._gone.set()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
