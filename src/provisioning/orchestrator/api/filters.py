"""Query filters shared by the list endpoints: statuses in any case (the original's
clients send ``Completed``), refused by name when unknown."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from fastapi import HTTPException, status

E = TypeVar("E", bound=StrEnum)


def parse_status(kind: type[E], given: str | None) -> E | None:
    if given is None or given == "":
        return None
    try:
        return kind(given.strip().lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"status: unknown status {given!r} (known, in any case: {known})",
        ) from None
