"""Turn a task's runner into an argv and an environment.

User data never becomes code: parameters travel only as JSON in
``PROVISIONING_PARAMS``. The Nushell script line holds nothing but a module
path and a command name, both validated against strict patterns and checked
to exist inside the library.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..tasks import RunSpec

PYTHON_ENTRY = "provisioning.execution.python_entry"
ATTEMPT_MARKER = "PROVISIONING_ATTEMPT"


class RunnerError(ValueError):
    """The runner names something that does not exist or cannot run."""


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


@functools.lru_cache(maxsize=64)
def _which(name: str, path: str) -> str | None:
    return shutil.which(name, path=path)


def resolve_binary(name: str) -> str | None:
    """A binary by path, on PATH, or next to this interpreter (the project's venv)."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    return _which(name, search)


def _nu_exports(source: str, function: str) -> bool:
    pattern = rf"^\s*export\s+def\s+(?:--\S+\s+)*[\"']?{re.escape(function)}[\"']?\s"
    return re.search(pattern, source, re.MULTILINE) is not None


def _python_module_file(module: str, search_path: list[str]) -> Path | None:
    parts = module.split(".")
    for entry in search_path:
        base = Path(entry or ".").joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _python_defines(path: Path, function: str) -> bool:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return True  # Let the real import report what is wrong, at run time.
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == function
        ):
            return True
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == function
        ):
            return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            (alias.asname or alias.name) == function for alias in node.names
        ):
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == function for t in node.targets
        ):
            return True
    return False


@functools.cache
def _base_env() -> dict[str, str]:
    # The daemon's environment does not change while it runs: copy it once.
    return dict(os.environ)


def check_runner(run: RunSpec, settings: Settings) -> None:
    """Reject a runner that cannot work, before it reaches the queue."""
    if run.nushell is not None:
        lib = Path(run.nushell.lib).resolve() if run.nushell.lib else settings.nushell_lib.resolve()
        path = (lib / run.nushell.module).resolve()
        if not path.is_relative_to(lib):
            raise RunnerError(f"run.nushell.module: {run.nushell.module!r} leaves the library")
        if not path.is_file():
            raise RunnerError(
                f"run.nushell.module: no module {run.nushell.module!r} in the library {lib}"
            )
        if not _nu_exports(
            path.read_text(encoding="utf-8", errors="replace"), run.nushell.function
        ):
            raise RunnerError(
                f"run.nushell.function: module {run.nushell.module!r} exports no "
                f"command {run.nushell.function!r}"
            )
    elif run.python is not None:
        if settings.python.binary:
            return  # Another interpreter: its path is its own business.
        module_file = _python_module_file(run.python.module, [*settings.python.path, *sys.path])
        if module_file is None:
            raise RunnerError(f"run.python.module: no module {run.python.module!r} on the path")
        if not _python_defines(module_file, run.python.function):
            raise RunnerError(
                f"run.python.function: module {run.python.module!r} defines no "
                f"{run.python.function!r}"
            )


def build_invocation(
    run: RunSpec,
    params: dict[str, object],
    settings: Settings,
    *,
    task_env: dict[str, str],
    base_env: Mapping[str, str] | None = None,
) -> Invocation:
    """The argv and environment of one attempt; raises :class:`RunnerError`.

    ``base_env`` is what the task starts from (the daemon gives an explicit one, see
    :func:`~.environment.task_environment`); without it, this process's environment
    (the direct mode: the user's own)."""
    env = {**(_base_env() if base_env is None else base_env), **settings.nushell.env_vars}
    libs = [str(lib) for lib in settings.nushell_libs]
    if run.nushell is not None and run.nushell.lib:
        libs.insert(0, run.nushell.lib)
    # nu separates the folders of -I / NU_LIB_DIRS with the record separator.
    env["NU_LIB_DIRS"] = "\x1e".join(libs)
    env["PROVISIONING_PYTHON"] = settings.python_binary
    env["PROVISIONING_PARAMS"] = json.dumps(params)
    env.update(task_env)
    if run.command is not None:
        return Invocation(list(run.command), env)
    if run.nushell is not None:
        binary = resolve_binary(settings.nushell.binary)
        if binary is None:
            raise RunnerError(f"Nushell binary {settings.nushell.binary!r} not found")
        fn = run.nushell.function
        script = f"use {run.nushell.module} [{fn}]; {fn} ($env.PROVISIONING_PARAMS | from json)"
        return Invocation([binary, "-n", "-I", env["NU_LIB_DIRS"], "-c", script], env)
    assert run.python is not None
    extra = [p for p in settings.python.path if p]
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([*extra, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    argv = [settings.python_binary, "-m", PYTHON_ENTRY, run.python.module, run.python.function]
    return Invocation(argv, env)
