"""The package cache: Debian packages fetched once on this machine (``apt-get
download``, as an air-gapped site would) and uploaded to the servers from there."""

from __future__ import annotations

import fcntl
import re
import subprocess
from pathlib import Path

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class PackageError(Exception):
    """A package could not be fetched; the message says what to do."""


def cached(cache_dir: Path, name: str) -> Path | None:
    found = sorted(cache_dir.glob(f"{name}_*.deb"))
    return found[-1] if found else None


def fetch(names: tuple[str, ...] | list[str], cache_dir: Path) -> list[Path]:
    """The ``.deb`` of each package, downloaded into ``cache_dir`` when missing."""
    for name in names:
        if not NAME_RE.match(name):
            raise PackageError(f"{name!r} is not a Debian package name")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [name for name in names if cached(cache_dir, name) is None]
        if missing:
            try:
                done = subprocess.run(
                    ["apt-get", "download", "-q", *missing],
                    cwd=cache_dir,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
            except FileNotFoundError:
                raise PackageError(
                    f"fetching {', '.join(missing)}: apt-get is not available on this machine"
                ) from None
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise PackageError(
                    f"apt-get download {' '.join(missing)} failed: {last} "
                    "(run `apt-get update` first?)"
                )
        found = []
        for name in names:
            path = cached(cache_dir, name)
            if path is None:
                raise PackageError(f"apt-get download {name} left no {name}_*.deb in {cache_dir}")
            found.append(path)
        return found
