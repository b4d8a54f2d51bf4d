"""Layered, validated configuration (DESIGN.md section 5)."""

from __future__ import annotations

from .loader import ConfigError, LoadedConfig, load_config
from .models import ExecutionMode, Settings, StorageBackend

__all__ = [
    "ConfigError",
    "ExecutionMode",
    "LoadedConfig",
    "Settings",
    "StorageBackend",
    "load_config",
]
