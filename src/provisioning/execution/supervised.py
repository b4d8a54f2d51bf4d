"""The daemon's side of the task supervisor: start attempts under it, follow them
live, and re-adopt them after a restart.

A live attempt streams over its own unix connection (the same frames its folder
keeps). A re-adopted one is followed through its folder: the output file is read
from the start (lines the store already has are skipped), until its status file
says how it ended. A stop request is a word in the attempt's folder and a SIGUSR1 to
the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..tasks import AttemptStatus, Outcome
from . import procfs
from .follow import Fence, Found, _Feed, _Link, outcome_of, replay, request_for, skipping
from .process import ProcessHooks, StopReason, _Control, _first, _Watch
from .supervisor import frames

log = logging.getLogger("provisioning.execution.supervised")

POLL_SECONDS = 0.1
START_SECONDS = 15.0
STOP_FILE = "stop"


class Supervisors:
    """The supervisors of one data dir, as seen from its daemon."""

    def __init__(self, data_dir: Path, fence: Fence | None = None) -> None:
        self.data_dir = data_dir
        self.fence = fence
        self._hub = 0
        self._dir_fd = -1
        self._starting: asyncio.Lock | None = None
        self._forgotten: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._janitor: threading.Thread | None = None

    def folder(self, key: str) -> Path:
        return frames.attempt_dir(self.data_dir, key)

    def renewed(self, at: float) -> None:
        """The node's leases were renewed (asked at ``at``, monotonic clock)."""
        if self.fence is not None:
            frames.write_lease(self.fence.lease_file, at)

    def drop_other_leases(self) -> None:
        """Remove the lease files of this data dir's earlier nodes (an earlier life of
        this daemon): what still runs under them stops at once instead of at 0.75 x
        lease, and the files do not pile up."""
        if self.fence is None:
            return
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.fence.lease_file.parent):
                if entry.name != self.fence.lease_file.name:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def forget(self, key: str) -> None:
        frames.remove_attempt(self.folder(key))

    def forget_soon(self, key: str) -> None:
        """:meth:`forget` on a thread of its own, done by :meth:`close`: removing a few
        files costs tenths of a millisecond, on the path between one task's end and the
        next one's start. A crash before it is done leaves the folder to :meth:`sweep`."""
        if self._janitor is None:
            self._janitor = threading.Thread(target=self._remove, name="forget", daemon=True)
            self._janitor.start()
        self._forgotten.put(self.folder(key))

    def _remove(self) -> None:
        while (folder := self._forgotten.get()) is not None:
            frames.remove_attempt(folder)

    def found(self, key: str) -> Found:
        folder = self.folder(key)
        if (folder / frames.STATUS).exists():
            return Found.FINISHED
        return Found.ALIVE if self._supervisor_pid(folder) else Found.GONE

    def _supervisor_pid(self, folder: Path) -> int:
        saved = frames.read_json(folder / frames.SUPERVISOR) or {}
        pid = saved.get("pid")
        if not isinstance(pid, int) or procfs.is_zombie_or_gone(pid):
            return 0
        return pid if procfs.start_ticks(pid) == saved.get("start_ticks") else 0

    def sweep(self, keep: set[str]) -> None:
        """Forget the folders of attempts the store does not have running (their
        outcome was recorded just before a crash) that ended or whose supervisor is
        gone."""
        root = self.data_dir / frames.ATTEMPTS
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(root):
                folder = Path(entry.path)
                if entry.name in keep:
                    continue
                if (folder / frames.STATUS).exists() or not self._supervisor_pid(folder):
                    frames.remove_attempt(folder)

    # -- the data dir's supervisor ------------------------------------------------------

    async def _connect(
        self, protocol: Callable[[], _Link], given: socket.socket | None = None
    ) -> asyncio.BaseTransport:
        """A connection to the supervisor (``given``, when one is), starting it if need be."""
        loop = asyncio.get_running_loop()
        if given is not None:
            transport, _ = await loop.create_unix_connection(protocol, sock=given)
            return transport
        address = self._address()
        try:
            transport, _ = await loop.create_unix_connection(protocol, address)
            return transport
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._hub_exited():
                self._start_hub()
            deadline = time.monotonic() + START_SECONDS
            while True:
                try:
                    transport, _ = await loop.create_unix_connection(protocol, address)
                    return transport
                except (FileNotFoundError, ConnectionRefusedError):
                    if time.monotonic() > deadline or self._hub_exited():
                        raise
                    await asyncio.sleep(0.01)

    def start(self) -> None:
        """Start the data dir's supervisor ahead of the first task (it takes a moment),
        unless the one an earlier daemon started still runs (its attempts, re-adopted)."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self._address())
            return
        except OSError:
            self._start_hub()
        finally:
            probe.close()

    def _address(self) -> str:
        if self._dir_fd < 0:
            self._dir_fd = os.open(self.data_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # Through the folder's descriptor: the path of the data dir may be too long for
        # a unix socket address.
        return f"/proc/self/fd/{self._dir_fd}/{frames.SOCKET}"

    def _hub_exited(self) -> bool:
        if self._hub <= 0:
            return True
        try:
            done, _ = os.waitpid(self._hub, os.WNOHANG)
        except ChildProcessError:
            done = self._hub
        if done:
            self._hub = 0
        return bool(done)

    def _start_hub(self) -> None:
        # Its own session: a kill -9 of the daemon (or of its group) leaves it running.
        # Reaped by hand (_hub_exited): it lives as long as this process does.
        argv = [sys.executable, "-m", "provisioning.execution.supervisor", str(self.data_dir)]
        self._hub = os.posix_spawn(
            sys.executable,
            [*argv, str(os.getpid())],
            dict(os.environ),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            ],
        )

    def close(self) -> None:
        if self._janitor is not None:
            self._forgotten.put(None)
            self._janitor.join()
            self._janitor = None
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    # -- attempts -----------------------------------------------------------------------

    def request(self, key: str, argv: Sequence[str], **how: Any) -> dict[str, Any]:
        """What the supervisor is told to run for an attempt: see :func:`request_for`."""
        return request_for(self.folder(key), self.fence, argv, **how)

    def hand_over(self, request: dict[str, Any]) -> socket.socket | None:
        """Give ``request`` to the data dir's supervisor at once, without a turn of the
        event loop: it starts the handler while this daemon goes on (the next claims,
        the bookkeeping of the task that just ended). The connection, for :meth:`run`;
        ``None`` when no supervisor takes it whole right now (none listens, its backlog
        is full): :meth:`run` then connects, starting one if need be, and asks."""
        sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        data = frames.json_frame(frames.REQUEST, request)
        try:
            sock.connect(self._address())
            # A part of a frame and then the end of the connection: the supervisor
            # drops it unread, and run() asks again on a connection of its own.
            if sock.send(data) == len(data):
                return sock
        except OSError:
            pass
        sock.close()
        return None

    def _ask_stop(self, folder: Path, supervisor: int, reason: StopReason) -> None:
        """A stop request: an empty file in the attempt's folder naming the reason (it
        needs no room on a full disk), then a signal to look."""
        with contextlib.suppress(OSError):
            os.close(
                os.open(folder / f"{STOP_FILE}-{reason.value}", os.O_CREAT | os.O_WRONLY, 0o600)
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGUSR1)

    async def run(
        self,
        request: dict[str, Any],
        *,
        hooks: ProcessHooks,
        stop: asyncio.Future[StopReason],
        log_keep_bytes: int,
        handed: socket.socket | None = None,
    ) -> Outcome:
        """Run one attempt under the data dir's supervisor, to its end; never raises for
        the handler's own failures. ``handed``: the connection :meth:`hand_over` gave
        the request on."""
        loop = asyncio.get_running_loop()
        watch = _Watch(loop, hooks, log_keep_bytes)
        feed = _Feed(watch, _Control(watch) if request["control"] else None)
        folder = Path(request["dir"])
        # A supervisor that was just leaving (its daemon gone, nothing left to run) may
        # drop the connection unanswered: then a new one is started and asked again.
        for _ in range(3):
            link = _Link(feed)
            given, handed = handed, None
            try:
                transport = await self._connect(lambda link=link: link, given)  # type: ignore[misc]
            except OSError as exc:
                # Not the task's fault: handed back without using up a try.
                error = f"cannot reach the task supervisor: {exc.strerror or exc}"
                return Outcome(AttemptStatus.INTERRUPTED, error=error)
            assert isinstance(transport, asyncio.WriteTransport)
            try:
                if given is None:
                    transport.write(frames.json_frame(frames.REQUEST, request))
                await link.started
                if not feed.handler and feed.status is None:
                    continue
                if feed.handler:
                    pid = feed.handler
                    ticks = procfs.start_ticks(pid) or 0
                    hooks.on_spawn(procfs.ProcessInfo(pid, pid, ticks, procfs.boot_id()))
                asked = False
                while not link.closed.done():
                    await _first(loop, [link.closed, stop], 3600)
                    if stop.done() and not asked and feed.supervisor:
                        asked = True
                        self._ask_stop(folder, feed.supervisor, stop.result())
                        await link.closed
            finally:
                transport.close()
            break
        status = feed.status or frames.read_json(folder / frames.STATUS)
        return await self._ended(feed, status)

    async def _ended(self, feed: _Feed, status: dict[str, Any] | None) -> Outcome:
        feed.status = status
        feed.end()
        watch = feed.watch
        watch.finish_logs()
        await watch.settled()
        if status is None:
            return Outcome(AttemptStatus.LOST, error="the task's supervisor died")
        return outcome_of(status, watch)

    async def adopt(
        self,
        key: str,
        *,
        hooks: ProcessHooks,
        stop: asyncio.Future[StopReason],
        log_keep_bytes: int,
        stored_lines: int,
    ) -> Outcome | None:
        """Follow an attempt a previous daemon started, from its folder, to its end;
        ``None`` when neither its status nor its supervisor is left."""
        loop = asyncio.get_running_loop()
        folder = self.folder(key)
        watch = _Watch(loop, skipping(hooks, stored_lines), log_keep_bytes)
        feed = _Feed(watch, _Control(watch))
        offset = 0
        signalled = False
        while True:
            # The status first: once it is there the output file is complete.
            status = frames.read_json(folder / frames.STATUS)
            supervisor = self._supervisor_pid(folder) if status is None else 0
            offset += replay(feed, folder / frames.OUTPUT, offset)
            if status is not None:
                break
            if not supervisor:
                status = frames.read_json(folder / frames.STATUS)
                if status is None:
                    await self._ended(feed, None)
                    return None
                offset += replay(feed, folder / frames.OUTPUT, offset)
                break
            if stop.done() and not signalled:
                signalled = True
                with contextlib.suppress(ProcessLookupError):
                    self._ask_stop(folder, supervisor, stop.result())
            await _first(loop, [stop] if not signalled else [], POLL_SECONDS)
        return await self._ended(feed, status)
