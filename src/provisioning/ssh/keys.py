"""The workspace's SSH key pair (ed25519, private half 0600)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ensure_key_pair(private: Path, comment: str) -> str:
    """Make ``private`` (and ``private.pub``) unless it exists; the public key line."""
    public = private.with_name(private.name + ".pub")
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private.parent.chmod(0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
            check=True,
            capture_output=True,
        )
    private.chmod(0o600)
    return public.read_text().strip()
