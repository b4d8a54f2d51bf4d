"""Per-attempt log limit: the first and the last N bytes of a task's output are kept."""

from __future__ import annotations

import time
from collections import deque

MIB = 1024 * 1024
# What a stored line costs besides its text (its row and index entry, roughly): the
# budget is of the store's bytes, so a flood of tiny lines is bounded as well.
LINE_OVERHEAD_BYTES = 128


class LogBudget:
    """The first ``keep`` bytes of an attempt's output go to the store as they come;
    after that only the last ``keep`` bytes are held (in memory), written at the end
    behind a line saying how much was dropped between them."""

    def __init__(self, keep: int) -> None:
        self.head_left = keep
        self.keep = keep
        self.tail: deque[tuple[tuple[str, str, float], int]] = deque()
        self.tail_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def admit(self, entry: tuple[str, str, float], size: int) -> bool:
        """``True`` when the line goes to the store now; otherwise it is in the tail."""
        size += LINE_OVERHEAD_BYTES
        if self.head_left and size <= self.head_left:
            self.head_left -= size
            return True
        self.head_left = 0
        self.tail.append((entry, size))
        self.tail_bytes += size
        while self.tail and self.tail_bytes > self.keep:
            _, dropped = self.tail.popleft()
            self.tail_bytes -= dropped
            self.dropped_lines += 1
            self.dropped_bytes += dropped
        return False

    def drain(self) -> list[tuple[str, str, float]]:
        lines = []
        if self.dropped_lines:
            note = (
                f"[provisioning] {self.dropped_lines} line(s), "
                f"{self.dropped_bytes - self.dropped_lines * LINE_OVERHEAD_BYTES} bytes of "
                f"output dropped here: over the log limit (executor.log_keep_mib: the first "
                f"and last {self.keep / MIB:g} MiB are kept)"
            )
            lines.append(("stderr", note, time.time()))
        lines += [entry for entry, _ in self.tail]
        self.tail.clear()
        return lines
