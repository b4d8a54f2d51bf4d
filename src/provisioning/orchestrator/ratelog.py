"""A warning that may fire thousands of times a second (accept errors, a full store)
logged at most once per interval, with how often it happened meanwhile."""

from __future__ import annotations

import logging
import time

INTERVAL_SECONDS = 10.0


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.count = 0
        self.logged_at = -INTERVAL_SECONDS

    def note(self, detail: object = "") -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= INTERVAL_SECONDS:
            suffix = f" (last: {detail})" if detail else ""
            self.logger.warning("%s: %d since the last report%s", self.what, self.count, suffix)
            self.count = 0
            self.logged_at = now
