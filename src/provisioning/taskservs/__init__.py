"""The taskserv catalog: components installable on servers, with dependencies.

Each taskserv is a folder: ``taskserv.toml`` (name, version, depends_on, settings,
optional [service]), ``templates/`` (Jinja2, laid out as in the server's tree)
and ``taskserv.nu`` (a Nushell module exporting ``install`` and ``remove``, run by
the orchestrator's Nushell runner). Definitions resolve in three layers: the
infra's override, then the workspace's ``extensions/taskservs``, then this catalog.
"""

from __future__ import annotations

from .catalog import CatalogError, TaskservDef, available, install_order, resolve

__all__ = ["CatalogError", "TaskservDef", "available", "install_order", "resolve"]
