"""Reaching a server: the only code that talks to one (the OpenSSH client)."""

from __future__ import annotations

from .client import Completed, Ssh, SshError, SshErrorKind, scan_host_key, wait_for_ssh
from .endpoint import Endpoint, EndpointError, resolve, workspace_key

__all__ = [
    "Completed",
    "Endpoint",
    "EndpointError",
    "Ssh",
    "SshError",
    "SshErrorKind",
    "resolve",
    "scan_host_key",
    "wait_for_ssh",
    "workspace_key",
]
