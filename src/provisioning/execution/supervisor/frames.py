"""What a task's supervisor keeps and says: framed records and the attempt's folder.

One format on the wire (supervisor to daemon) and on disk (the attempt's ``output``
file): a kind byte, a big-endian length, the payload. The daemon parses lines; the
supervisor only moves bytes, so a restarted daemon replaying the file sees exactly
what a connected one saw. Stdlib only: the supervisor imports little.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">cI")
STDOUT = b"1"
STDERR = b"2"
CONTROL = b"3"
SPAWNED = b"S"  # JSON: handler pid, supervisor pid
EXITED = b"X"  # JSON: the status (as in status.json)
REQUEST = b"R"  # JSON: daemon to supervisor, what to run
DATA_KINDS = {STDOUT: 1, STDERR: 2, CONTROL: 3}

ATTEMPTS = "attempts"
OUTPUT = "output"
STATUS = "status.json"
SUPERVISOR = "supervisor.json"
HUB_ID = "supervisor.id"  # in the data dir: what each attempt's SUPERVISOR links to
SOCKET = "supervisor.sock"
LEASES = "leases"


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, value: Any) -> bytes:
    return frame(kind, json.dumps(value, separators=(",", ":")).encode())


def split_frames(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Remove and return the whole frames at the start of ``buffer``; a partial frame
    stays for the next read."""
    frames: list[tuple[bytes, bytes]] = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        kind, size = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + size
        if end > len(buffer):
            break
        frames.append((kind, bytes(buffer[start + HEADER.size : end])))
        start = end
    del buffer[:start]
    return frames


def attempt_dir(data_dir: Path, key: str) -> Path:
    return data_dir / ATTEMPTS / key


def lease_file(data_dir: Path, node_id: str) -> Path:
    return data_dir / LEASES / node_id


def write_json(path: Path, value: Any) -> None:
    """Whole or not at all (rename), mode 0600. Not fsynced: it must outlive the
    daemon's process, not the machine (after a reboot no task of ours survives
    either, and the attempt is settled as lost)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(value, separators=(",", ":")).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def identify(folder: Path, pid: int, start_ticks: Any) -> None:
    """Name the attempt's supervisor in its folder (without it a restarted daemon
    settles the attempt as lost): a hard link to the file the supervisor wrote once
    (one system call in place of four), else a copy. Run in the data dir."""
    path = folder / SUPERVISOR
    with contextlib.suppress(OSError):
        try:
            os.link(HUB_ID, path)
        except OSError:
            write_json(path, {"pid": pid, "start_ticks": start_ticks})


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_lease(path: Path, renewed_at: float) -> None:
    """The node's last lease renewal, on the system-wide monotonic clock (the same for
    every process on this machine, immune to wall-clock jumps)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_json(path, {"renewed_at": renewed_at})


def read_lease(path: Path) -> float | None:
    value = read_json(path)
    renewed = value.get("renewed_at") if value else None
    return float(renewed) if isinstance(renewed, int | float) else None


def remove_attempt(path: Path) -> None:
    """Forget an attempt whose outcome the store has (a few files, no subfolders)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        with contextlib.suppress(OSError):
            os.rmdir(path)
