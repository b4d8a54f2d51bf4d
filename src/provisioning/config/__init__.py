"""Layered, validated configuration (DESIGN.md section 5).

``Settings`` (the pydantic models) is imported on first use: the CLI's commands
mostly need only the values (``quick.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .loader import ConfigError, LoadedConfig, load_config
from .rules import ExecutionMode, StorageBackend

if TYPE_CHECKING:
    from .models import Settings

__all__ = [
    "ConfigError",
    "ExecutionMode",
    "LoadedConfig",
    "Settings",
    "StorageBackend",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from .models import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
