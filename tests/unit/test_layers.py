"""The import contract (DESIGN.md §2): imports only run downward, and no cycle appears.

Every ``import`` of ``src/provisioning`` is read from the source (module level,
inside functions and under ``TYPE_CHECKING`` alike) and mapped to the layer of the
module it names. A module may import its own layer and the layers below it; the
layers of one row are independent of each other (the CLI and the daemon never
import one another). A top-level package not named here counts as business logic.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "provisioning"

# Top to bottom. Each row holds independent layers: one may not import another of its row.
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"cli": ("cli",), "daemon": ("orchestrator",)},
    {"stores": ("orchestrator.store",)},
    {"rules": ("orchestrator.flow", "orchestrator.models")},
    {"business": ()},  # workflow, schemas, infra, providers, taskservs, operations, client ...
    {"execution": ("execution",)},
    {"config": ("config",), "base": ("", "compat", "pidfile"), "drivers": ("drivers",)},
    {"contract": ("tasks",)},
]
DEFAULT_LAYER = "business"
# The pure rules may import nothing that does I/O or spawns (DESIGN.md §2: "no I/O").
RULES_MAY_IMPORT = (
    "provisioning.tasks",
    "provisioning.orchestrator.models",
    "provisioning.orchestrator.flow",
)
IMPURE = (
    "sqlite3",
    "psycopg",
    "surrealdb",
    "subprocess",
    "socket",
    "asyncio",
    "threading",
    "os",
    "httpx",
)


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(name: str) -> str:
    """The most specific module of ours that ``name`` denotes."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """Modules of ours (and outside names, unchanged) that ``module`` imports."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}")
    ours = {_resolve(name) for name in found if name.split(".")[0] == PACKAGE}
    outside = {name for name in found if name.split(".")[0] != PACKAGE}
    return (ours - {module}) | outside


def layer_of(module: str) -> tuple[int, str]:
    """(row, layer name) of one of our modules: the longest matching prefix wins."""
    relative = module.removeprefix(PACKAGE).removeprefix(".")
    best: tuple[int, int, str] | None = None
    for row, layers in enumerate(LAYERS):
        for name, prefixes in layers.items():
            for prefix in prefixes:
                matches = (
                    relative == prefix
                    if prefix in ("", "compat", "pidfile")
                    else relative == prefix or relative.startswith(prefix + ".")
                )
                if matches and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), row, name)
    if best is None:
        row = next(i for i, layers in enumerate(LAYERS) if DEFAULT_LAYER in layers)
        return row, DEFAULT_LAYER
    return best[1], best[2]


def violations() -> list[str]:
    found = []
    for module in modules():
        row, layer = layer_of(module)
        for target in sorted(imports_of(module)):
            if target.split(".")[0] != PACKAGE:
                continue
            target_row, target_layer = layer_of(target)
            if target_row > row or target_layer == layer:
                continue
            how = "upward" if target_row < row else "across its row"
            found.append(f"{module} ({layer}) imports {target} ({target_layer}): {how}")
    return found


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {m: sorted(t for t in imports_of(m) if t in modules()) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return groups


def test_imports_only_run_downward() -> None:
    assert violations() == []


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_the_workflow_rules_do_no_io() -> None:
    rules = [m for m in modules() if within(m, f"{PACKAGE}.orchestrator.flow")]
    bad = [
        f"{module} imports {target}"
        for module in rules
        for target in sorted(imports_of(module))
        if (target.split(".")[0] == PACKAGE and not within(target, *RULES_MAY_IMPORT))
        or target.split(".")[0] in IMPURE
    ]
    assert bad == []


def test_the_contract_imports_nothing_of_ours() -> None:
    contract = [m for m in modules() if within(m, f"{PACKAGE}.tasks")]
    assert contract, "the task contract package is missing"
    outside = {
        f"{m} imports {t}"
        for m in contract
        for t in imports_of(m)
        if t.startswith(PACKAGE + ".") and not within(t, f"{PACKAGE}.tasks")
    }
    assert outside == set()


# The checker itself must see what it is meant to catch.
@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("provisioning.workflow.spec", "provisioning.orchestrator.models", False),
        ("provisioning.cli.task", "provisioning.orchestrator.service", False),
        ("provisioning.orchestrator.service", "provisioning.cli.main", False),
        ("provisioning.tasks.spec", "provisioning.execution.runners", False),
        ("provisioning.execution.process", "provisioning.orchestrator.models", False),
        ("provisioning.orchestrator.store.base", "provisioning.orchestrator.engine", False),
        ("provisioning.orchestrator.engine", "provisioning.orchestrator.store.base", True),
        ("provisioning.cli.direct", "provisioning.execution.process", True),
        ("provisioning.ssh.client", "provisioning.execution.procfs", True),
        ("provisioning.execution.runners", "provisioning.tasks.spec", True),
    ],
)
def test_the_layer_order(module: str, target: str, allowed: bool) -> None:
    row, layer = layer_of(module)
    target_row, target_layer = layer_of(target)
    assert (target_row > row or target_layer == layer) is allowed


def test_a_cycle_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"provisioning.a": {"provisioning.b"}, "provisioning.b": {"provisioning.a"}}
    monkeypatch.setattr(f"{__name__}.modules", lambda: {name: Path(name) for name in fake})
    monkeypatch.setattr(f"{__name__}.imports_of", lambda module: fake[module])
    assert cycles() == [["provisioning.a", "provisioning.b"]]
