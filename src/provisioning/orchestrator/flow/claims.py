"""What a claim picks: ready tasks by priority then FIFO, within each workflow's
``parallel_limit``. Written once for every store; a store answers the two questions
the rule asks (the next candidates, the limits of workflows seen first)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

K = TypeVar("K")

# A workflow with no record (a task enqueued with a made-up workflow id) has no limit.
UNLIMITED = 1 << 62
# Candidates read per round (beyond ``limit``: room for tasks of full workflows), and
# how many rounds a claim reads before it settles for what it has.
_SCAN_FACTOR, _SCAN_EXTRA, _ROUNDS = 4, 16, 8


def pick_ready(
    limit: int,
    room: dict[str, int],
    candidates: Callable[[list[str], list[K], int], Sequence[tuple[K, str | None]]],
    limits_of: Callable[[list[str]], dict[str, int]],
) -> list[K]:
    """Up to ``limit`` task keys, in pick order.

    ``room`` holds the free slots of the workflows with running tasks (it is updated);
    ``candidates(full, picked, scan)`` gives the next ``scan`` ready tasks as ``(key,
    workflow id)``, by priority then FIFO, leaving out the workflows in ``full`` and the
    keys in ``picked``; ``limits_of(ids)`` the ``parallel_limit`` of workflows not yet
    in ``room`` (one it does not name has no limit).
    """
    picked: list[K] = []
    scan = limit * _SCAN_FACTOR + _SCAN_EXTRA
    for _ in range(_ROUNDS):
        found = candidates([w for w, free in room.items() if free <= 0], picked, scan)
        unknown = sorted({w for _, w in found if w is not None and w not in room})
        if unknown:
            known = limits_of(unknown)
            room.update({w: known.get(w, UNLIMITED) for w in unknown})
        for key, workflow_id in found:
            if workflow_id is not None:
                if room[workflow_id] <= 0:
                    continue
                room[workflow_id] -= 1
            picked.append(key)
            if len(picked) == limit:
                return picked
        if len(found) < scan:
            break
    return picked
