"""The data dir is private: the folder 0700, everything in it 0600.

It holds every task's params, results and logs, and the API token. Wider modes
found at start (an older version, a copy, a umask) are narrowed, with a warning,
as the token file's are; the daemon's umask keeps what it creates later private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("provisioning.orchestrator")

PRIVATE_UMASK = 0o077


def secure_data_dir(data_dir: Path) -> list[Path]:
    """Create ``data_dir`` (0700) or narrow its modes; return the paths changed."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed: list[Path] = []
    for path, is_dir in _walk(data_dir):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode) or not (is_dir or stat.S_ISREG(info.st_mode)):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            os.chmod(path, (mode & 0o700) | (0o700 if is_dir else 0o600))
            changed.append(path)
    if changed:
        shown = ", ".join(f"{p.relative_to(data_dir.parent)}" for p in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        log.warning(
            "data dir %s: %d path(s) readable by other users (%s%s); made private (0700/0600)",
            data_dir,
            len(changed),
            shown,
            more,
        )
    return changed


def _walk(root: Path) -> list[tuple[Path, bool]]:
    found = [(root, True)]
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        found += [(base / name, True) for name in dirs]
        found += [(base / name, False) for name in files]
    return found
