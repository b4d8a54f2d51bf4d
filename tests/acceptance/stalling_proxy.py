"""A TCP proxy on loopback that can stop forwarding without closing anything: a link
that goes silent (a black-holed route, a frozen middlebox), as opposed to one that
resets. Bytes sent meanwhile wait in the proxy and flow again on :meth:`resume`."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator


class StallingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                pump.start()
                self._threads.append(pump)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(source, selectors.EVENT_READ)
            while not self._closed.is_set():
                # Stalled: nothing is read, so nothing is passed on.
                if not self._flowing.wait(0.1) or not selector.select(0.1):
                    continue
                try:
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)
                except OSError:
                    break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    @contextlib.contextmanager
    def running(self) -> Iterator[StallingProxy]:
        acceptor = threading.Thread(target=self._accept, daemon=True)
        acceptor.start()
        try:
            yield self
        finally:
            self._closed.set()
            self._flowing.set()
            self._listener.close()
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            for thread in [acceptor, *self._threads]:
                thread.join(5)
