"""Nickel contracts shipped with the platform, and the loader that applies them."""

from __future__ import annotations

from .loader import LoadError, load_workflow_file

__all__ = ["LoadError", "load_workflow_file"]
