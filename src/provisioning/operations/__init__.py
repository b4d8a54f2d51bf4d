"""The operation registry: operation names (``server.create``) and how each runs."""

from __future__ import annotations

from .registry import Operation, Preference, lookup

__all__ = ["Operation", "Preference", "lookup"]
