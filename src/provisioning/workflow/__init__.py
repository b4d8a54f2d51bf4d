"""Workflow definitions shared by the CLI and the orchestrator: the spec, its
validation, and the dependency plan (no I/O, no state)."""

from __future__ import annotations

from .plan import Plan, PlanError, PlannedStep, build_plan
from .spec import OperationSpec, WorkflowSpec

__all__ = ["OperationSpec", "Plan", "PlanError", "PlannedStep", "WorkflowSpec", "build_plan"]
