"""The execution-mode decision (``provisioning.cli.modes.resolve``): flags, then
``[execution] default_mode``, then in ``auto`` the ``force_orchestrated`` /
``force_direct`` glob lists (the more specific pattern wins), then the operation
registry's preference."""

from __future__ import annotations

import itertools
import tomllib

import pytest

from provisioning.cli.modes import Decision, resolve
from provisioning.config.loader import DEFAULTS_FILE
from provisioning.config.models import ExecutionMode, ExecutionSection
from provisioning.operations import registry
from provisioning.operations.registry import Operation, Preference

DIRECT = ExecutionMode.DIRECT
ORCH = ExecutionMode.ORCHESTRATED

# Pattern sets for one operation, ``batch.submit``: none, an orchestrated match, a
# direct match, and both (``batch.*`` is more specific than ``*``).
PATTERNS: dict[str, tuple[list[str], list[str]]] = {
    "no patterns": ([], []),
    "force_orchestrated matches": (["batch.*"], []),
    "force_direct matches": ([], ["batch.*"]),
    "both match": (["*"], ["batch.*"]),
}
MODES = [ExecutionMode.DIRECT, ExecutionMode.ORCHESTRATED, ExecutionMode.AUTO]


def section(
    default_mode: ExecutionMode | str = ExecutionMode.AUTO,
    force_orchestrated: list[str] | None = None,
    force_direct: list[str] | None = None,
) -> ExecutionSection:
    return ExecutionSection(
        default_mode=default_mode,
        force_orchestrated=force_orchestrated or [],
        force_direct=force_direct or [],
    )


# -- flags win over everything -------------------------------------------------------------


@pytest.mark.parametrize(
    ("default_mode", "patterns"), list(itertools.product(MODES, PATTERNS)), ids=str
)
def test_orchestrated_flag_wins(default_mode: ExecutionMode, patterns: str) -> None:
    orch, direct = PATTERNS[patterns]
    decision = resolve("batch.submit", section(default_mode, orch, direct), orchestrated=True)
    assert decision == Decision(ORCH, "--orchestrated flag")


@pytest.mark.parametrize(
    ("default_mode", "patterns"), list(itertools.product(MODES, PATTERNS)), ids=str
)
def test_direct_flag_wins(default_mode: ExecutionMode, patterns: str) -> None:
    orch, direct = PATTERNS[patterns]
    decision = resolve("batch.submit", section(default_mode, orch, direct), direct=True)
    assert decision == Decision(DIRECT, "--direct flag")


@pytest.mark.parametrize(
    ("default_mode", "patterns"), list(itertools.product(MODES, PATTERNS)), ids=str
)
def test_both_flags_are_a_usage_error(default_mode: ExecutionMode, patterns: str) -> None:
    orch, direct = PATTERNS[patterns]
    with pytest.raises(ValueError, match="--orchestrated and --direct"):
        resolve("batch.submit", section(default_mode, orch, direct), orchestrated=True, direct=True)


# -- default_mode direct / orchestrated: patterns only decide in auto ----------------------


@pytest.mark.parametrize(
    ("default_mode", "patterns"),
    list(itertools.product([DIRECT, ORCH], PATTERNS)),
    ids=str,
)
@pytest.mark.parametrize("operation", ["batch.submit", "task.submit", "server.list"])
def test_fixed_default_mode_ignores_patterns_and_registry(
    default_mode: ExecutionMode, patterns: str, operation: str
) -> None:
    orch, direct = PATTERNS[patterns]
    decision = resolve(operation, section(default_mode, orch, direct))
    assert decision.mode is default_mode
    assert decision.reason == f"execution.default_mode = {default_mode.value}"


def test_default_mode_accepts_the_seed_strings() -> None:
    assert resolve("x.y", section("direct")).mode is DIRECT
    assert resolve("x.y", section("orchestrated")).mode is ORCH


# -- auto: patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "force_orchestrated", "force_direct", "mode", "pattern"),
    [
        # One list matches.
        ("server.create", ["server.create"], [], ORCH, "server.create"),
        ("batch.submit", ["batch.*"], [], ORCH, "batch.*"),
        ("server.list", [], ["*.list"], DIRECT, "*.list"),
        ("help", [], ["help"], DIRECT, "help"),
        ("task.submit", [], ["task.*"], DIRECT, "task.*"),  # beats the registry's preference
        # Both match: the more specific pattern wins, whichever list it is in.
        ("batch.list", ["batch.*"], ["*.list"], ORCH, "batch.*"),
        ("batch.list", ["*.list"], ["batch.*"], DIRECT, "batch.*"),
        ("server.list", ["*"], ["*.list"], DIRECT, "*.list"),
        ("server.list", ["server.*"], ["*"], ORCH, "server.*"),
        # An exact name beats any glob, even one as long as itself.
        ("batch.list", ["batch.*"], ["batch.list"], DIRECT, "batch.list"),
        ("batch.list", ["batch.list"], ["*.list"], ORCH, "batch.list"),
        ("task.submit", ["task.submit*"], ["task.submit"], DIRECT, "task.submit"),
        ("task.submit", ["task.submit"], ["task.submit*", "task.*"], ORCH, "task.submit"),
        # Several patterns of one list match: the reason names the most specific one.
        ("batch.submit", ["*", "batch.*", "*.sub*"], [], ORCH, "batch.*"),
        ("server.list", [], ["*", "server.list", "*.list"], DIRECT, "server.list"),
    ],
)
def test_auto_patterns(
    operation: str,
    force_orchestrated: list[str],
    force_direct: list[str],
    mode: ExecutionMode,
    pattern: str,
) -> None:
    decision = resolve(operation, section("auto", force_orchestrated, force_direct))
    assert decision.mode is mode
    winner = "force_orchestrated" if mode is ORCH else "force_direct"
    assert decision.reason == f"execution.{winner} '{pattern}'"


@pytest.mark.parametrize(
    ("operation", "patterns"),
    [
        ("batch.submit", ["batch.list", "*.list", "server.*"]),
        ("server.create", ["server.create.x", "server", "*.create.*"]),
        ("Server.Create", ["server.create", "server.*"]),  # names are case-sensitive
    ],
)
def test_auto_patterns_that_do_not_match_leave_it_to_the_registry(
    operation: str, patterns: list[str]
) -> None:
    decision = resolve(operation, section("auto", force_direct=patterns))
    assert decision.mode is ORCH  # unknown operations default to orchestrated
    assert decision.reason == f"auto: {operation} prefers orchestrated"


# -- auto: no pattern matches -> the operation registry ------------------------------------


def test_auto_registry_task_submit_prefers_orchestrated() -> None:
    assert registry.lookup("task.submit").prefers is Preference.ORCHESTRATED
    decision = resolve("task.submit", section("auto", ["server.*"], ["*.list"]))
    assert decision == Decision(ORCH, "auto: task.submit prefers orchestrated")


def test_auto_registry_direct_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        registry._REGISTRY,
        "server.show",
        Operation("server.show", Preference.DIRECT, "show one server"),
    )
    decision = resolve("server.show", section("auto"))
    assert decision == Decision(DIRECT, "auto: server.show prefers direct")
    # A pattern still beats the preference.
    forced = resolve("server.show", section("auto", force_orchestrated=["server.*"]))
    assert forced == Decision(ORCH, "execution.force_orchestrated 'server.*'")


# -- the packaged defaults -----------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged() -> ExecutionSection:
    with DEFAULTS_FILE.open("rb") as handle:
        return ExecutionSection.model_validate(tomllib.load(handle)["execution"])


@pytest.mark.parametrize(
    ("operation", "mode", "reason"),
    [
        ("server.create", ORCH, "execution.force_orchestrated 'server.create'"),
        ("cluster.create", ORCH, "execution.force_orchestrated 'cluster.create'"),
        ("batch.submit", ORCH, "execution.force_orchestrated 'batch.*'"),
        ("workflow.monitor", ORCH, "execution.force_orchestrated 'workflow.*'"),
        ("batch.list", ORCH, "execution.force_orchestrated 'batch.*'"),
        ("workflow.list", ORCH, "execution.force_orchestrated 'workflow.*'"),
        ("server.list", DIRECT, "execution.force_direct '*.list'"),
        ("taskserv.show", DIRECT, "execution.force_direct '*.show'"),
        ("help", DIRECT, "execution.force_direct 'help'"),
        ("version", DIRECT, "execution.force_direct 'version'"),
        ("task.submit", ORCH, "auto: task.submit prefers orchestrated"),
    ],
)
def test_packaged_defaults(
    packaged: ExecutionSection, operation: str, mode: ExecutionMode, reason: str
) -> None:
    assert packaged.default_mode is ExecutionMode.AUTO
    assert resolve(operation, packaged) == Decision(mode, reason)


def test_a_decision_is_never_auto(packaged: ExecutionSection) -> None:
    for operation in ("server.create", "server.list", "task.submit", "anything.else"):
        for flags in ({}, {"orchestrated": True}, {"direct": True}):
            assert resolve(operation, packaged, **flags).mode is not ExecutionMode.AUTO
