"""Runners: the argv and environment of an attempt (nothing is run), and the
existence checks made before a task reaches the queue."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioning.config import Settings
from provisioning.config.models import PACKAGED_NULIB
from provisioning.execution import runners
from provisioning.execution.runners import PYTHON_ENTRY, RunnerError, build_invocation, check_runner
from provisioning.tasks import RunSpec

HOSTILE: dict[str, Any] = {
    "name": "'; rm -rf ~ #",
    "$(touch /tmp/pwned)": "`id`",
    "quote": '"); exit 1; ("',
    "nested": {"lines": "x\nuse evil.nu; evil", "list": ["$env.HOME", "{ || ls }"]},
    "unicode": "ünïcode ✓",
}
HOSTILE_FRAGMENTS = ["rm -rf", "pwned", "`id`", "exit 1", "evil", "$env.HOME", "|| ls", "ünïcode"]
TASK_ENV = {"PROVISIONING_TASK_ID": "task-1", "PROVISIONING_WORKFLOW_ID": ""}
PY_MODULE = "prov_test_handlers_7f3a"
PY_PACKAGE = "prov_test_pkg_7f3a"


@pytest.fixture(autouse=True)
def _fresh_environment() -> Iterator[None]:
    """The runner copies the daemon's environment once; tests change it, so re-read it."""
    runners._base_env.cache_clear()
    yield
    runners._base_env.cache_clear()


def settings(**sections: dict[str, Any]) -> Settings:
    return Settings.model_validate(sections)


def nushell_run(module: str = "examples/hello.nu", function: str = "greet") -> RunSpec:
    return RunSpec.model_validate({"nushell": {"module": module, "function": function}})


def python_run(module: str = PY_MODULE, function: str = "handler") -> RunSpec:
    return RunSpec.model_validate({"python": {"module": module, "function": function}})


# -- build_invocation ---------------------------------------------------------------------


def test_nushell_invocation_is_a_fixed_script_with_params_as_json(tmp_path: Path) -> None:
    lib = tmp_path / "nulib"
    config = settings(nushell={"binary": sys.executable, "provisioning_lib": str(lib)})
    invocation = build_invocation(nushell_run(), HOSTILE, config, task_env=TASK_ENV)
    assert invocation.argv == [
        sys.executable,
        "-n",
        "-I",
        # The user's library adds to the platform's (issue 10, item 10).
        f"{lib}\x1e{PACKAGED_NULIB}",
        "-c",
        "use examples/hello.nu [greet]; greet ($env.PROVISIONING_PARAMS | from json)",
    ]
    assert json.loads(invocation.env["PROVISIONING_PARAMS"]) == HOSTILE
    assert invocation.env["NU_LIB_DIRS"] == f"{lib}\x1e{PACKAGED_NULIB}"


@pytest.mark.parametrize(
    "run",
    [
        RunSpec.model_validate({"nushell": {"module": "examples/hello.nu", "function": "greet"}}),
        RunSpec.model_validate({"python": {"module": "pkg.mod", "function": "run"}}),
        RunSpec.model_validate({"command": ["/bin/echo", "fixed"]}),
    ],
    ids=["nushell", "python", "command"],
)
def test_hostile_params_never_reach_the_argv(run: RunSpec, tmp_path: Path) -> None:
    config = settings(nushell={"binary": sys.executable, "provisioning_lib": str(tmp_path)})
    invocation = build_invocation(run, HOSTILE, config, task_env=TASK_ENV)
    joined = "\0".join(invocation.argv)
    for fragment in HOSTILE_FRAGMENTS:
        assert fragment not in joined
    assert json.loads(invocation.env["PROVISIONING_PARAMS"]) == HOSTILE


def test_command_invocation_is_the_argv_itself(tmp_path: Path) -> None:
    run = RunSpec.model_validate({"command": ["sh", "-c", "echo $1", "arg0", "a b"]})
    invocation = build_invocation(run, {"x": 1}, settings(), task_env=TASK_ENV)
    assert invocation.argv == ["sh", "-c", "echo $1", "arg0", "a b"]
    assert invocation.argv is not run.command
    assert json.loads(invocation.env["PROVISIONING_PARAMS"]) == {"x": 1}


def test_python_invocation_runs_the_entry_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    run = python_run("pkg.mod", "run")
    invocation = build_invocation(run, {"a": [1]}, settings(), task_env=TASK_ENV)
    assert invocation.argv == [sys.executable, "-m", PYTHON_ENTRY, "pkg.mod", "run"]
    assert json.loads(invocation.env["PROVISIONING_PARAMS"]) == {"a": [1]}
    assert "PYTHONPATH" not in invocation.env


def test_python_invocation_uses_the_configured_interpreter_and_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/inherited")
    config = settings(python={"binary": "/opt/py/bin/python3", "path": ["/extra/one", "", "/two"]})
    invocation = build_invocation(python_run("pkg.mod", "run"), {}, config, task_env=TASK_ENV)
    assert invocation.argv[0] == "/opt/py/bin/python3"
    assert invocation.env["PYTHONPATH"] == os.pathsep.join(["/extra/one", "/two", "/inherited"])


def test_python_path_without_an_inherited_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    config = settings(python={"path": ["/extra/one"]})
    invocation = build_invocation(python_run("pkg.mod", "run"), {}, config, task_env=TASK_ENV)
    assert invocation.env["PYTHONPATH"] == "/extra/one"


def test_task_env_and_configured_env_vars_reach_the_handler(tmp_path: Path) -> None:
    config = settings(
        nushell={
            "env_vars": {
                "MY_SETTING": "on",
                "PROVISIONING_PARAMS": "overridden?",
                "NU_LIB_DIRS": "/elsewhere",
            },
            "provisioning_lib": str(tmp_path),
        }
    )
    run = RunSpec.model_validate({"command": ["true"]})
    invocation = build_invocation(run, {"k": "v"}, config, task_env=TASK_ENV)
    assert invocation.env["MY_SETTING"] == "on"
    assert invocation.env["PROVISIONING_TASK_ID"] == "task-1"
    assert invocation.env["PROVISIONING_WORKFLOW_ID"] == ""
    # The parameters and the library are the orchestrator's to set, not the config's.
    assert json.loads(invocation.env["PROVISIONING_PARAMS"]) == {"k": "v"}
    assert invocation.env["NU_LIB_DIRS"] == f"{tmp_path}\x1e{PACKAGED_NULIB}"


def test_a_missing_nushell_binary_is_a_runner_error(tmp_path: Path) -> None:
    config = settings(nushell={"binary": str(tmp_path / "no-such-nu")})
    with pytest.raises(RunnerError, match="Nushell binary"):
        build_invocation(nushell_run(), {}, config, task_env=TASK_ENV)


# -- check_runner: Nushell ------------------------------------------------------------------

NU_MODULE = textwrap.dedent(
    """\
    # Example handlers.
    # export def ghost [params: record] { }
    export def greet [params: record] {
        print "hello"
    }
    export def --env with-flag [params: record] { }
      export def indented [params: record] { }
    export def "quoted" [params: record] { }
    export def create-all [params: record] { }
    def helper [] { }
    """
)


@pytest.fixture
def nu_lib(tmp_path: Path) -> Path:
    lib = tmp_path / "nulib"
    (lib / "examples").mkdir(parents=True)
    (lib / "examples" / "hello.nu").write_text(NU_MODULE, encoding="utf-8")
    return lib


def lib_settings(lib: Path) -> Settings:
    return settings(nushell={"provisioning_lib": str(lib)})


@pytest.mark.parametrize("function", ["greet", "with-flag", "indented", "quoted", "create-all"])
def test_an_exported_nushell_command_passes(nu_lib: Path, function: str) -> None:
    assert check_runner(nushell_run("examples/hello.nu", function), lib_settings(nu_lib)) is None


@pytest.mark.parametrize("module", ["examples/missing.nu", "hello.nu", "examples"])
def test_a_missing_nushell_module_is_rejected(nu_lib: Path, module: str) -> None:
    with pytest.raises(RunnerError, match=r"run\.nushell\.module: no module"):
        check_runner(nushell_run(module, "greet"), lib_settings(nu_lib))


@pytest.mark.parametrize("function", ["helper", "ghost", "create", "gree", "missing"])
def test_a_command_the_module_does_not_export_is_rejected(nu_lib: Path, function: str) -> None:
    with pytest.raises(RunnerError, match=re.escape(f"exports no command '{function}'")):
        check_runner(nushell_run("examples/hello.nu", function), lib_settings(nu_lib))


def test_a_module_that_links_out_of_the_library_is_rejected(nu_lib: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.nu"
    outside.write_text("export def greet [params: record] { }\n", encoding="utf-8")
    (nu_lib / "escape.nu").symlink_to(outside)
    with pytest.raises(RunnerError, match="leaves the library"):
        check_runner(nushell_run("escape.nu", "greet"), lib_settings(nu_lib))


# -- check_runner: Python -------------------------------------------------------------------

PY_SOURCE = textwrap.dedent(
    """\
    from os import getcwd as imported
    import json


    def handler(params):
        return params


    async def async_handler(params):
        return None


    assigned = handler


    def _outer():
        def nested(params):
            return None
    """
)


@pytest.fixture
def py_path(tmp_path: Path) -> Path:
    root = tmp_path / "pylib"
    (root / PY_PACKAGE).mkdir(parents=True)
    (root / f"{PY_MODULE}.py").write_text(PY_SOURCE, encoding="utf-8")
    (root / PY_PACKAGE / "__init__.py").write_text("def init_handler(p):\n    pass\n")
    (root / PY_PACKAGE / "sub.py").write_text("def sub_handler(p):\n    pass\n")
    (root / "prov_test_broken_7f3a.py").write_text("def broken(:\n")
    return root


def path_settings(root: Path) -> Settings:
    return settings(python={"path": [str(root)]})


@pytest.mark.parametrize(
    ("module", "function"),
    [
        (PY_MODULE, "handler"),
        (PY_MODULE, "async_handler"),
        (PY_MODULE, "imported"),
        (PY_MODULE, "json"),
        (PY_MODULE, "assigned"),
        (PY_PACKAGE, "init_handler"),
        (f"{PY_PACKAGE}.sub", "sub_handler"),
    ],
)
def test_a_python_function_that_exists_passes(py_path: Path, module: str, function: str) -> None:
    assert check_runner(python_run(module, function), path_settings(py_path)) is None


@pytest.mark.parametrize("function", ["missing", "nested", "getcwd", "Handler"])
def test_a_function_the_module_does_not_define_is_rejected(py_path: Path, function: str) -> None:
    with pytest.raises(RunnerError, match=rf"run\.python\.function: .* defines no '{function}'"):
        check_runner(python_run(PY_MODULE, function), path_settings(py_path))


@pytest.mark.parametrize(
    "module", ["prov_test_missing_7f3a", f"{PY_PACKAGE}.missing", f"{PY_MODULE}.sub"]
)
def test_a_python_module_not_on_the_path_is_rejected(py_path: Path, module: str) -> None:
    with pytest.raises(RunnerError, match=re.escape(f"run.python.module: no module '{module}'")):
        check_runner(python_run(module, "handler"), path_settings(py_path))


def test_a_module_that_does_not_parse_is_left_to_the_real_import(py_path: Path) -> None:
    assert (
        check_runner(python_run("prov_test_broken_7f3a", "broken"), path_settings(py_path)) is None
    )


def test_another_interpreter_is_not_checked(py_path: Path) -> None:
    config = settings(python={"binary": "/opt/other/python3", "path": [str(py_path)]})
    assert check_runner(python_run("prov_test_missing_7f3a", "handler"), config) is None


def test_a_command_runner_needs_no_check() -> None:
    assert (
        check_runner(RunSpec.model_validate({"command": ["/no/such/binary"]}), settings()) is None
    )
