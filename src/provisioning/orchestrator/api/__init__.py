"""The REST API: thin routes over :class:`~..service.OrchestratorService`."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
