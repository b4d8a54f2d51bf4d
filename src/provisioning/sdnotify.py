"""systemd's readiness protocol (sd_notify(3)): one datagram to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd counts the service started only when it says
``READY=1``; here that is once the API accepts requests. Outside systemd (no
``NOTIFY_SOCKET``) every call does nothing."""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send ``fields`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``); whether it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # An abstract socket.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8"))
        except OSError:
            return False
    return True
