"""Query parameters shared by the routes, each with a range (an unbounded integer
reaches the store and overflows there: a 500 instead of a 422)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# The largest integer every store and every JSON reader holds exactly.
MAX_QUERY_INT = 2**53 - 1

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_QUERY_INT)]
After = Annotated[int, Query(ge=0, le=MAX_QUERY_INT, description="return lines after this seq")]
LogLimit = Annotated[int, Query(ge=1, le=10_000)]
