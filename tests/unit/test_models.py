"""Domain models: RunSpec runners and name validation, NewTask rules, priorities, statuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioning.orchestrator.models import Task
from provisioning.tasks import NewTask, Priority, RetryPolicy, RunSpec, TaskStatus

NU_OK = {"module": "examples/hello.nu", "function": "greet"}
PY_OK = {"module": "provisioning.operations.server", "function": "create"}


def nushell(module: str = "examples/hello.nu", function: str = "greet") -> dict[str, Any]:
    return {"nushell": {"module": module, "function": function}}


def python(module: str = "pkg.mod", function: str = "run") -> dict[str, Any]:
    return {"python": {"module": module, "function": function}}


# -- RunSpec: exactly one runner ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"command": ["echo", "hi"]}, "command"),
        ({"nushell": NU_OK}, "nushell"),
        ({"python": PY_OK}, "python"),
    ],
)
def test_one_runner_is_accepted_and_named_by_kind(spec: dict[str, Any], kind: str) -> None:
    assert RunSpec.model_validate(spec).kind == kind


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"command": None, "nushell": None, "python": None},
        {"command": ["true"], "nushell": NU_OK},
        {"command": ["true"], "python": PY_OK},
        {"nushell": NU_OK, "python": PY_OK},
        {"command": ["true"], "nushell": NU_OK, "python": PY_OK},
    ],
)
def test_zero_or_several_runners_are_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one runner"):
        RunSpec.model_validate(spec)


@pytest.mark.parametrize(
    "command",
    [[], [""], ["echo", ""], ["echo", "a\0b"], "echo hi", [1, 2]],
)
def test_bad_command_argv_is_rejected(command: Any) -> None:
    with pytest.raises(ValidationError):
        RunSpec.model_validate({"command": command})


def test_command_arguments_are_kept_verbatim() -> None:
    argv = ["sh", "-c", "echo $HOME; rm -rf /", 'it\'s "quoted"', "line\nbreak"]
    assert RunSpec.model_validate({"command": argv}).command == argv


def test_unknown_runner_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RunSpec.model_validate({"shell": "echo hi"})
    with pytest.raises(ValidationError):
        RunSpec.model_validate({"nushell": {**NU_OK, "args": "x"}})


# -- Nushell module paths and function names --------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "examples/hello.nu",
        "hello.nu",
        "servers/create.nu",
        "taskservs/kubernetes/install.nu",
        "my_module",
        "a-b/c_d/e.f.nu",
        "0day/x.nu",
    ],
)
def test_nushell_module_paths_inside_the_library_are_accepted(module: str) -> None:
    assert RunSpec.model_validate(nushell(module=module)).nushell is not None


@pytest.mark.parametrize(
    "module",
    [
        "",
        "..",
        "../secrets.nu",
        "servers/../../etc/x.nu",
        "servers/..",
        "./hello.nu",
        "/etc/passwd",
        "/abs/module.nu",
        "~/module.nu",
        "servers//create.nu",
        "servers/",
        "-flag.nu",
        "my module.nu",
        "tab\tmodule.nu",
        "it's.nu",
        'say"hi".nu',
        "a;b.nu",
        "hello.nu; rm -rf ~",
        "$(touch pwned).nu",
        "`id`.nu",
        "a|b.nu",
        "a&b.nu",
        "a>b.nu",
        "a(b).nu",
        "a[b].nu",
        "a{b}.nu",
        "hello.nu\nrm -rf ~",
        "\nhello.nu",
        "héllo.nu",
        "a\\b.nu",
        "a\0b.nu",
    ],
)
def test_nushell_module_paths_outside_the_rules_are_rejected(module: str) -> None:
    with pytest.raises(ValidationError, match="relative path inside the Nushell library"):
        RunSpec.model_validate(nushell(module=module))


@pytest.mark.parametrize("function", ["greet", "create-server", "_private", "Install2", "a"])
def test_nushell_function_names_are_accepted(function: str) -> None:
    spec = RunSpec.model_validate(nushell(function=function))
    assert spec.nushell is not None
    assert spec.nushell.function == function


@pytest.mark.parametrize(
    "function",
    [
        "",
        "1greet",
        "-greet",
        "--env",
        "greet me",
        "greet;rm",
        "greet $(id)",
        "$(id)",
        "greet'",
        'greet"',
        "gr.eet",
        "gr/eet",
        "greet\nrm -rf ~",
        "\ngreet",
        "grëet",
    ],
)
def test_nushell_function_names_outside_the_rules_are_rejected(function: str) -> None:
    with pytest.raises(ValidationError, match="Nushell command name"):
        RunSpec.model_validate(nushell(function=function))


@pytest.mark.parametrize(
    "spec",
    [
        nushell(module="examples/hello.nu\n"),
        nushell(function="greet\n"),
        python(module="pkg.mod\n"),
        python(function="run\n"),
    ],
    ids=["nu-module", "nu-function", "py-module", "py-function"],
)
def test_a_trailing_newline_is_rejected(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RunSpec.model_validate(spec)


# -- Python module and function names ----------------------------------------------------


@pytest.mark.parametrize("module", ["os", "pkg.mod", "provisioning.operations.server", "_a.b_2"])
def test_python_module_names_are_accepted(module: str) -> None:
    assert RunSpec.model_validate(python(module=module)).python is not None


@pytest.mark.parametrize(
    "module",
    ["", ".mod", "mod.", "pkg..mod", "pkg/mod", "1pkg", "pkg.2mod", "pkg mod", "pkg;os", "pkg-mod"],
)
def test_python_module_names_outside_the_rules_are_rejected(module: str) -> None:
    with pytest.raises(ValidationError, match="dotted Python module name"):
        RunSpec.model_validate(python(module=module))


@pytest.mark.parametrize(
    "function", ["", "1run", "run-it", "pkg.run", "run()", "run it", "__import__('os')"]
)
def test_python_function_names_outside_the_rules_are_rejected(function: str) -> None:
    with pytest.raises(ValidationError, match="Python identifier"):
        RunSpec.model_validate(python(function=function))


# -- NewTask ------------------------------------------------------------------------------


def task(**fields: Any) -> NewTask:
    return NewTask.model_validate({"name": "t", "run": {"command": ["true"]}, **fields})


def test_new_task_defaults() -> None:
    new = task()
    assert new.params == {}
    assert new.priority == "normal"
    assert new.timeout_seconds is None
    assert new.retry is None


@pytest.mark.parametrize(
    "name",
    ["x", "Create server web-01", "Créer le serveur ✓", "n" * 200, "spaces & symbols: #1 (a/b)"],
)
def test_printable_task_names_are_accepted(name: str) -> None:
    assert task(name=name).name == name


@pytest.mark.parametrize(
    "name",
    ["", "n" * 201, "two\nlines", "carriage\rreturn", "tab\there", "esc\x1b[31m", "nul\0", "\x7f"],
)
def test_empty_long_or_control_character_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        task(name=name)


@pytest.mark.parametrize("priority", ["low", "normal", "high", "critical"])
def test_the_four_priorities_are_accepted(priority: str) -> None:
    assert task(priority=priority).priority == priority


@pytest.mark.parametrize("priority", ["urgent", "HIGH", "Normal", "", 2, None])
def test_other_priorities_are_rejected(priority: Any) -> None:
    with pytest.raises(ValidationError):
        task(priority=priority)


@pytest.mark.parametrize("timeout", [0, -1, 7 * 86_400 + 1])
def test_timeouts_out_of_range_are_rejected(timeout: float) -> None:
    with pytest.raises(ValidationError):
        task(timeout_seconds=timeout)


def test_timeout_limits_and_retry_policy_are_kept() -> None:
    new = task(timeout_seconds=7 * 86_400, retry={"max_attempts": 5, "backoff": "linear"})
    assert new.timeout_seconds == 7 * 86_400
    assert new.retry == RetryPolicy(max_attempts=5, backoff="linear")


def test_unknown_task_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        task(owner="me")


def test_a_bad_runner_makes_the_task_invalid() -> None:
    with pytest.raises(ValidationError):
        task(run=nushell(module="../escape.nu"))


# -- Priority and TaskStatus ---------------------------------------------------------------


def test_priority_values_order_and_labels() -> None:
    assert [(p.label, int(p)) for p in Priority] == [
        ("low", 0),
        ("normal", 1),
        ("high", 2),
        ("critical", 3),
    ]
    assert Priority.LOW < Priority.NORMAL < Priority.HIGH < Priority.CRITICAL


@pytest.mark.parametrize("name", ["low", "normal", "high", "critical", "HIGH", "Critical"])
def test_priority_parse_is_case_insensitive(name: str) -> None:
    assert Priority.parse(name).label == name.lower()


def test_priority_parse_of_an_unknown_name_fails() -> None:
    with pytest.raises(KeyError):
        Priority.parse("urgent")


def test_terminal_statuses() -> None:
    assert {s for s in TaskStatus if s.terminal} == {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.TIMED_OUT,
        TaskStatus.SKIPPED,
    }


def test_a_stored_task_gives_back_its_run_spec() -> None:
    stored = Task(
        id="t1",
        name="t",
        run=nushell(),
        params={},
        priority=Priority.NORMAL,
        status=TaskStatus.PENDING,
        retry=RetryPolicy(),
        timeout_seconds=60,
        created_at=0.0,
    )
    assert stored.run_spec == RunSpec.model_validate(nushell())
    assert stored.run_spec.kind == "nushell"
