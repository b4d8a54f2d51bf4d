"""Provisioning: infrastructure provisioning CLI and durable workflow orchestrator."""

from __future__ import annotations

__version__ = "0.1.0"
API_VERSION = "v1"
