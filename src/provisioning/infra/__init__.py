"""Infra definitions (servers, taskservs, clusters) of a workspace, and its state."""

from __future__ import annotations

from .models import Cluster, Infra, InfraError, ServerDef, TaskservOverride, load_infra

__all__ = ["Cluster", "Infra", "InfraError", "ServerDef", "TaskservOverride", "load_infra"]
