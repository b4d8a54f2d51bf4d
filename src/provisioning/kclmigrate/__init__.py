"""Migration of the original platform's KCL files to Nickel, with proof of equality."""

from __future__ import annotations

from .migrate import Action, FilePlan, migrate

__all__ = ["Action", "FilePlan", "migrate"]
