"""``--wait`` follows the event stream (issue 14, item 3): the state is read once after
subscribing and again only for an event that concerns it, never on a poll's tick."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from provisioning.cli import waiting
from provisioning.cli.waiting import wait_for_end


class Run:
    """A workflow that ends when the stream's last event is published; ``reads`` counts
    every read of its state."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.reads = 0
        self.published = threading.Event()
        self.release = threading.Event()

    def stream(self) -> Iterator[dict[str, Any]]:
        yield {"type": "system", "event": "connected"}
        self.release.wait(5)
        yield from self.events[:-1]
        # Published (the state says so) before its event reaches the stream, as the daemon does.
        self.published.set()
        yield from self.events[-1:]
        threading.Event().wait(30)  # a live stream stays open after the end

    def fetch(self) -> dict[str, Any]:
        self.reads += 1
        if self.reads == 1:
            self.release.set()  # the run goes on once the first read is made
            return {"status": "running"}
        return {"status": "completed" if self.published.is_set() else "running"}


def concerns_ours(event: dict[str, Any]) -> bool:
    return event.get("workflow_id") == "ours"


def test_only_events_that_concern_the_run_cause_a_read() -> None:
    noise = [{"type": "workflow", "workflow_id": "other", "status": "running"}] * 50
    end = {"type": "workflow", "workflow_id": "ours", "status": "completed"}
    run = Run([*noise, end])
    seen: list[str] = []

    final = wait_for_end(
        run.stream,
        run.fetch,
        lambda s: s["status"] == "completed",
        concerns_ours,
        lambda s: seen.append(s["status"]),
    )

    assert final == {"status": "completed"}
    # One read after subscribing, one for the end: the 50 other events cost nothing.
    assert run.reads == 2
    assert seen == ["running", "completed"]


def test_an_already_finished_run_is_read_once() -> None:
    run = Run([])
    run.published.set()
    final = wait_for_end(
        run.stream,
        lambda: {"status": "completed"},
        lambda s: s["status"] == "completed",
        concerns_ours,
    )
    assert final == {"status": "completed"}


def test_a_stream_that_ends_falls_back_to_reading(monkeypatch: Any) -> None:
    monkeypatch.setattr(waiting, "POLL_SECONDS", 0.01)
    reads: list[int] = []

    def fetch() -> dict[str, Any]:
        reads.append(1)
        return {"status": "completed" if len(reads) >= 4 else "running"}

    def gone() -> Iterator[dict[str, Any]]:
        return iter([])

    final = wait_for_end(gone, fetch, lambda s: s["status"] == "completed", concerns_ours)
    assert final == {"status": "completed"} and len(reads) == 4
