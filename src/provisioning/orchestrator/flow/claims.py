"""What a claim picks: ready tasks by priority then FIFO, within each workflow's
``parallel_limit``. Written once for every store; a store answers the questions the
rule asks (the next candidates, the limits of workflows seen first) and, where
claimers run at once, locks what the rule chose."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
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
    limits_of: Callable[[list[str]], Mapping[str, int | None]],
    lock: Callable[[list[K]], Collection[K]] | None = None,
) -> list[K]:
    """Up to ``limit`` task keys, in pick order.

    ``room`` holds the free slots of the workflows with running tasks (it is updated);
    ``candidates(full, tried, scan)`` gives the next ``scan`` ready tasks as ``(key,
    workflow id)``, by priority then FIFO, leaving out the workflows in ``full`` and the
    keys in ``tried``; ``limits_of(ids)`` the free slots of workflows not yet in
    ``room`` (one it does not name has no limit; ``None``: another claimer holds it,
    leave it out this time). ``lock(keys)``, when given, takes the chosen tasks and
    answers those it got: a task another claimer took gives its slot back.
    """
    picked: list[K] = []
    tried: list[K] = []
    busy: set[str] = set()
    scan = limit * _SCAN_FACTOR + _SCAN_EXTRA
    for _ in range(_ROUNDS):
        full = sorted(busy | {w for w, free in room.items() if free <= 0})
        found = candidates(full, tried, scan)
        unknown = sorted({w for _, w in found if w is not None and w not in room} - busy)
        if unknown:
            known = limits_of(unknown)
            for wf in unknown:
                free = known.get(wf, UNLIMITED)
                if free is None:
                    busy.add(wf)
                else:
                    room[wf] = free
        chosen: list[tuple[K, str | None]] = []
        for key, workflow_id in found:
            if len(picked) + len(chosen) == limit:
                break
            if workflow_id is not None:
                if workflow_id in busy or room[workflow_id] <= 0:
                    continue
                room[workflow_id] -= 1
            chosen.append((key, workflow_id))
        locked = None if lock is None or not chosen else set(lock([key for key, _ in chosen]))
        lost = 0
        for key, workflow_id in chosen:
            tried.append(key)
            if locked is None or key in locked:
                picked.append(key)
                continue
            lost += 1
            if workflow_id is not None:
                room[workflow_id] += 1
        if len(picked) == limit or (len(found) < scan and not lost):
            break
    return picked
