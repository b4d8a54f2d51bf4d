"""Layered configuration: precedence, sources, and errors that say where and why.

Every test passes an explicit ``environ`` whose HOME, XDG_CONFIG_HOME,
PROVISIONING_SYSTEM_CONFIG and cwd point into ``tmp_path``, so the machine's own
configuration never leaks in.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioning.config import ConfigError, ExecutionMode, StorageBackend, load_config
from provisioning.config.loader import DEFAULTS_FILE, LoadedConfig
from provisioning.config.models import Settings
from provisioning.config.quick import SCHEMA_FILE, sections


@dataclass
class Machine:
    """A fake machine inside tmp_path: where each configuration file lives."""

    root: Path
    environ: dict[str, str]
    # The CLI's way (quick.py, pydantic only when in doubt) or the daemon's (pydantic).
    lazy: bool = False

    @property
    def cwd(self) -> Path:
        return self.root / "work" / "infra" / "deep"

    @property
    def system(self) -> Path:
        return self.root / "etc" / "provisioning" / "config.toml"

    @property
    def user(self) -> Path:
        return self.root / "xdg" / "provisioning" / "config.toml"

    @property
    def workspace(self) -> Path:
        return self.root / "work" / "config" / "provisioning.toml"

    @property
    def named(self) -> Path:
        return self.root / "named.toml"

    @property
    def extra(self) -> Path:
        return self.root / "extra.toml"

    def path_of(self, layer: str) -> Path:
        return {
            "system": self.system,
            "user": self.user,
            "workspace": self.workspace,
            "PROVISIONING_CONFIG": self.named,
            "--config": self.extra,
        }[layer]

    def write(self, layer: str, text: str) -> Path:
        path = self.path_of(layer)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        if layer == "PROVISIONING_CONFIG":
            self.environ["PROVISIONING_CONFIG"] = str(path)
        return path

    def load(self, flags: dict[str, Any] | None = None) -> LoadedConfig:
        extra = self.extra if self.extra.is_file() else None
        loaded = load_config(
            flags=flags, environ=self.environ, cwd=self.cwd, extra_file=extra, lazy_model=self.lazy
        )
        if self.lazy:
            same_values(loaded.settings, loaded.settings.model_copy())
        return loaded

    def error(self, flags: dict[str, Any] | None = None) -> str:
        with pytest.raises(ConfigError) as caught:
            self.load(flags)
        return str(caught.value)


def same_values(settings: Any, model: Settings) -> None:
    """Every value of ``settings`` (the quick view, or a model) is the model's, of the
    same type."""
    for section, keys in sections().items():
        for key in keys:
            got, want = (
                getattr(getattr(settings, section), key),
                getattr(getattr(model, section), key),
            )
            assert (got, type(got)) == (want, type(want)), f"{section}.{key}"
    assert settings.token_path == model.token_path
    assert settings.nushell_libs == model.nushell_libs


@pytest.fixture(params=[False, True], ids=["model", "quick"])
def machine(tmp_path: Path, request: pytest.FixtureRequest) -> Machine:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "work" / "infra" / "deep").mkdir(parents=True)
    environ = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PROVISIONING_SYSTEM_CONFIG": str(tmp_path / "etc" / "provisioning" / "config.toml"),
    }
    return Machine(tmp_path, environ, lazy=request.param)


FILE_LAYERS = ["system", "user", "workspace", "PROVISIONING_CONFIG", "--config"]
ALL_LAYERS = [*FILE_LAYERS, "env", "flag"]


def set_port(machine: Machine, layer: str, port: int) -> dict[str, Any]:
    """Give ``server.port`` a value in ``layer``; return the flags to pass."""
    if layer == "env":
        machine.environ["PROVISIONING_SERVER_PORT"] = str(port)
    elif layer == "flag":
        return {"server.port": port}
    else:
        machine.write(layer, f"[server]\nport = {port}\n")
    return {}


def source_of(machine: Machine, layer: str) -> str:
    if layer == "env":
        return "environment variable PROVISIONING_SERVER_PORT"
    if layer == "flag":
        return "flag"
    return f"{machine.path_of(layer)}:2"


# -- defaults and precedence ------------------------------------------------------------


def test_defaults_alone(machine: Machine) -> None:
    loaded = machine.load()
    settings = loaded.settings
    assert settings.orchestrator.endpoint == "http://127.0.0.1:9090"
    assert settings.orchestrator.timeout_seconds == 60
    assert settings.server.port == 9090
    assert settings.storage.backend is StorageBackend.SQLITE
    assert settings.execution.default_mode is ExecutionMode.AUTO
    assert settings.executor.max_concurrent_tasks == 10
    assert settings.nushell.binary == "nu"
    assert loaded.files == [DEFAULTS_FILE]
    assert set(loaded.sources.values()) == {"default"}
    assert {"server.port", "storage.backend", "nushell.env_vars"} <= set(loaded.sources)


@pytest.mark.parametrize("top", range(len(ALL_LAYERS)), ids=ALL_LAYERS)
def test_each_layer_overrides_the_ones_below(machine: Machine, top: int) -> None:
    flags: dict[str, Any] = {}
    for index, layer in enumerate(ALL_LAYERS[: top + 1]):
        flags |= set_port(machine, layer, 2000 + index)
    loaded = machine.load(flags)
    assert loaded.settings.server.port == 2000 + top
    assert loaded.sources["server.port"] == source_of(machine, ALL_LAYERS[top])


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_a_layer_alone_overrides_the_defaults(machine: Machine, layer: str) -> None:
    flags = set_port(machine, layer, 4321)
    loaded = machine.load(flags)
    assert loaded.settings.server.port == 4321
    assert loaded.sources["server.port"] == source_of(machine, layer)


def test_layers_merge_key_by_key(machine: Machine) -> None:
    system = machine.write("system", "[server]\nhost = '10.0.0.1'\nport = 1111\n")
    user = machine.write("user", "[server]\nport = 2222\n[executor]\nlease_seconds = 12\n")
    workspace = machine.write("workspace", "[executor]\nmax_concurrent_tasks = 3\n")
    machine.environ["PROVISIONING_EXECUTOR_LEASE_SECONDS"] = "15"
    loaded = machine.load({"executor.kill_grace_seconds": 2, "server.host": None})
    s = loaded.settings
    assert (s.server.host, s.server.port) == ("10.0.0.1", 2222)
    assert (s.executor.lease_seconds, s.executor.max_concurrent_tasks) == (15, 3)
    assert s.executor.kill_grace_seconds == 2
    assert loaded.sources["server.host"] == f"{system}:2"
    assert loaded.sources["server.port"] == f"{user}:2"
    assert loaded.sources["executor.max_concurrent_tasks"] == f"{workspace}:2"
    assert loaded.sources["executor.lease_seconds"] == (
        "environment variable PROVISIONING_EXECUTOR_LEASE_SECONDS"
    )
    assert loaded.sources["executor.kill_grace_seconds"] == "flag"
    assert loaded.sources["storage.backend"] == "default"
    assert loaded.files == [DEFAULTS_FILE, system, user, workspace]


def test_a_flag_given_as_none_is_not_given(machine: Machine) -> None:
    machine.write("user", "[server]\nport = 2222\n")
    loaded = machine.load({"server.port": None})
    assert loaded.settings.server.port == 2222
    assert loaded.sources["server.port"] == f"{machine.user}:2"


# -- where the files are found ------------------------------------------------------------


def test_user_file_falls_back_to_home_dot_config(machine: Machine) -> None:
    del machine.environ["XDG_CONFIG_HOME"]
    path = Path(machine.environ["HOME"]) / ".config" / "provisioning" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[server]\nport = 3333\n", encoding="utf-8")
    loaded = machine.load()
    assert loaded.settings.server.port == 3333
    assert loaded.sources["server.port"] == f"{path}:2"


def test_system_file_path_comes_from_the_environment(machine: Machine) -> None:
    other = machine.root / "other-system.toml"
    other.write_text("[server]\nport = 4444\n", encoding="utf-8")
    machine.write("system", "[server]\nport = 1\n")
    machine.environ["PROVISIONING_SYSTEM_CONFIG"] = str(other)
    loaded = machine.load()
    assert loaded.settings.server.port == 4444
    assert machine.system not in loaded.files


def test_workspace_is_the_nearest_ancestor_with_a_config(machine: Machine) -> None:
    machine.write("workspace", "[server]\nport = 5555\n")
    nearer = machine.cwd.parent / "config" / "provisioning.toml"
    nearer.parent.mkdir(parents=True)
    nearer.write_text("[server]\nport = 6666\n", encoding="utf-8")
    loaded = machine.load()
    assert loaded.settings.server.port == 6666
    assert loaded.files == [DEFAULTS_FILE, nearer]


def test_workspace_named_by_the_environment_wins_over_the_cwd(machine: Machine) -> None:
    machine.write("workspace", "[server]\nport = 5555\n")
    named = machine.root / "elsewhere"
    (named / "config").mkdir(parents=True)
    (named / "config" / "provisioning.toml").write_text("[server]\nport = 7777\n")
    machine.environ["PROVISIONING_WORKSPACE"] = str(named)
    assert machine.load().settings.server.port == 7777


def test_a_missing_provisioning_config_file_is_an_error(machine: Machine) -> None:
    missing = machine.root / "nope.toml"
    machine.environ["PROVISIONING_CONFIG"] = str(missing)
    message = machine.error()
    assert "PROVISIONING_CONFIG" in message
    assert str(missing) in message


def test_a_missing_extra_file_is_an_error(machine: Machine) -> None:
    missing = machine.root / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"--config names {missing}")):
        load_config(environ=machine.environ, cwd=machine.cwd, extra_file=missing)


# -- environment variables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "raw", "expected"),
    [
        ("orchestrator.enabled", "false", False),
        ("orchestrator.timeout_seconds", "2.5", 2.5),
        ("execution.default_mode", "direct", ExecutionMode.DIRECT),
        ("execution.force_direct", '["a.*", "b"]', ["a.*", "b"]),
        ("storage.data_dir", "/var/lib/prov data", "/var/lib/prov data"),
        ("server.host", "0.0.0.0", "0.0.0.0"),
        ("orchestrator.endpoint", "https://orch:8443/", "https://orch:8443"),
        ("nushell.env_vars", '{ A = "1" }', {"A": "1"}),
    ],
)
def test_environment_values_are_parsed_as_toml_or_taken_as_text(
    machine: Machine, dotted: str, raw: str, expected: Any
) -> None:
    section, key = dotted.split(".")
    name = f"PROVISIONING_{section.upper()}_{key.upper()}"
    machine.environ[name] = raw
    loaded = machine.load()
    assert getattr(getattr(loaded.settings, section), key) == expected
    assert loaded.sources[dotted] == f"environment variable {name}"


def test_a_bad_environment_value_names_the_variable(machine: Machine) -> None:
    machine.environ["PROVISIONING_SERVER_PORT"] = "not-a-port"
    message = machine.error()
    assert "environment variable PROVISIONING_SERVER_PORT" in message
    assert "server.port" in message
    assert "valid integer" in message
    assert "'not-a-port'" in message


def test_unrelated_provisioning_variables_are_ignored(machine: Machine) -> None:
    machine.environ["PROVISIONING_TASK_ID"] = "t-1"
    machine.environ["PROVISIONING_PARAMS"] = "{"
    assert machine.load().settings.server.port == 9090


# -- bad values in files --------------------------------------------------------------------

BAD_VALUES = [
    ("server", "port", '"not-a-port"', "valid integer"),
    ("server", "port", "70000", "less than or equal to 65535"),
    ("orchestrator", "endpoint", '"ftp://x"', "http:// or https://"),
    ("orchestrator", "enabled", '"maybe"', "valid boolean"),
    ("executor", "max_concurrent_tasks", "0", "greater than or equal to 1"),
    ("executor", "task_timeout_seconds", "-5", "greater than 0"),
    ("execution", "default_mode", '"sometimes"', "'direct', 'orchestrated' or 'auto'"),
    ("execution", "force_direct", '"help"', "valid list"),
    ("storage", "backend", '"mysql"', "'sqlite', 'postgres' or 'surrealdb'"),
]


@pytest.mark.parametrize("layer", FILE_LAYERS)
@pytest.mark.parametrize(("section", "key", "value", "expected"), BAD_VALUES)
def test_a_bad_value_in_a_file_names_the_file_line_key_and_expectation(
    machine: Machine, layer: str, section: str, key: str, value: str, expected: str
) -> None:
    path = machine.write(layer, f"# a comment\n\n[{section}]\n# another\n{key} = {value}\n")
    message = machine.error()
    assert f"{path}:5" in message
    assert f"{section}.{key}" in message
    assert expected in message


def test_a_bad_dotted_key_names_its_line(machine: Machine) -> None:
    path = machine.write("user", "[server]\nhost = 'x'\n\nexecutor.lease_seconds = 0\n")
    # A dotted key inside [server] is server.executor.lease_seconds: unknown.
    message = machine.error()
    assert str(path) in message
    assert "server.executor" in message


def test_a_top_level_dotted_key_names_its_line(machine: Machine) -> None:
    path = machine.write("user", "# top\nexecutor.lease_seconds = 0\n")
    message = machine.error()
    assert f"{path}:2" in message
    assert "executor.lease_seconds" in message
    assert "greater than 0" in message


def test_several_bad_values_are_all_reported(machine: Machine) -> None:
    path = machine.write("user", "[server]\nport = 0\nhost = 5\n")
    machine.environ["PROVISIONING_EXECUTOR_LEASE_SECONDS"] = "-1"
    message = machine.error()
    assert f"{path}:2: key server.port" in message
    assert f"{path}:3: key server.host" in message
    assert "environment variable PROVISIONING_EXECUTOR_LEASE_SECONDS" in message


def test_a_bad_flag_value_names_the_flag(machine: Machine) -> None:
    message = machine.error({"server.port": "abc"})
    assert "flag: key server.port" in message
    assert "valid integer" in message


def test_invalid_toml_names_the_file_and_line(machine: Machine) -> None:
    path = machine.write("workspace", "[server]\nport = = 1\n")
    message = machine.error()
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 2" in message


def test_a_value_where_a_section_belongs_names_the_file_and_key(machine: Machine) -> None:
    path = machine.write("user", "[server]\n")
    path.write_text('port = 9090\n[server]\nhost = "h"\n', encoding="utf-8")
    message = machine.error()
    assert str(path) in message
    assert "'port'" in message
    assert "[section] table" in message


def test_a_value_where_a_section_belongs_names_the_line(machine: Machine) -> None:
    path = machine.write("user", '# forgot the header\nport = 9090\n[server]\nhost = "h"\n')
    assert f"{path}:2" in machine.error()


def test_a_section_header_with_a_comment_still_gives_the_line(machine: Machine) -> None:
    path = machine.write("user", "[server]  # the REST API\nport = 'x'\n")
    assert f"{path}:2" in machine.error()


def test_a_bad_value_in_a_sub_table_names_the_line(machine: Machine) -> None:
    path = machine.write("user", "[nushell]\nbinary = 'nu'\n\n[nushell.env_vars]\nA = 1\n")
    message = machine.error()
    assert "nushell.env_vars.A" in message
    assert re.search(rf"{re.escape(str(path))}:[45]\b", message)


# -- unknown sections and keys ---------------------------------------------------------------


@pytest.mark.parametrize("layer", FILE_LAYERS)
def test_an_unknown_section_names_the_file_and_line(machine: Machine, layer: str) -> None:
    path = machine.write(layer, "[server]\nport = 1\n\n[serverz]\nport = 2\n")
    message = machine.error()
    assert f"{path}:4" in message
    assert "unknown section [serverz]" in message
    assert "server" in message.split("known:", 1)[1]


@pytest.mark.parametrize("layer", FILE_LAYERS)
def test_an_unknown_key_names_the_file_line_and_key(machine: Machine, layer: str) -> None:
    path = machine.write(layer, "[server]\nport = 1\nprot = 2\n")
    message = machine.error()
    assert f"{path}:3" in message
    assert "unknown key server.prot" in message


def test_an_unknown_flag_is_an_error(machine: Machine) -> None:
    assert "flag: unknown key server.prot" in machine.error({"server.prot": 1})
    assert "flag: unknown section [serverz]" in machine.error({"serverz.port": 1})


# -- schema details ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "backend"),
    [
        ("sqlite", StorageBackend.SQLITE),
        ("filesystem", StorageBackend.SQLITE),
        ("postgres", StorageBackend.POSTGRES),
        ("surrealdb-embedded", StorageBackend.SURREALDB),
        ("surrealdb-server", StorageBackend.SURREALDB),
    ],
)
def test_storage_backend_names_and_seed_aliases(
    machine: Machine, value: str, backend: StorageBackend
) -> None:
    machine.write("workspace", f'[storage]\nbackend = "{value}"\n')
    assert machine.load().settings.storage.backend is backend


def test_filesystem_alias_works_from_the_environment(machine: Machine) -> None:
    machine.environ["PROVISIONING_STORAGE_BACKEND"] = "filesystem"
    assert machine.load().settings.storage.backend is StorageBackend.SQLITE


@pytest.mark.parametrize(
    ("host", "port", "endpoint"),
    [
        ("10.0.0.5", 9191, "http://10.0.0.5:9191"),
        ("0.0.0.0", 9191, "http://127.0.0.1:9191"),
        ("::", 9090, "http://127.0.0.1:9090"),
        ("::1", 8080, "http://[::1]:8080"),
    ],
)
def test_the_endpoint_follows_the_server_when_only_the_server_is_configured(
    machine: Machine, host: str, port: int, endpoint: str
) -> None:
    path = machine.write("user", f'[server]\nhost = "{host}"\nport = {port}\n')
    loaded = machine.load()
    assert loaded.settings.orchestrator.endpoint == endpoint
    assert loaded.sources["orchestrator.endpoint"] == f"derived from server.port ({path}:3)"


def test_an_explicit_endpoint_is_not_derived(machine: Machine) -> None:
    machine.write("system", '[orchestrator]\nendpoint = "https://orch.example:443"\n')
    machine.write("user", "[server]\nport = 9191\n")
    loaded = machine.load()
    assert loaded.settings.orchestrator.endpoint == "https://orch.example:443"
    assert loaded.sources["orchestrator.endpoint"] == f"{machine.system}:2"


def test_a_derived_endpoint_names_the_variable_it_came_from(machine: Machine) -> None:
    machine.environ["PROVISIONING_SERVER_PORT"] = "9999"
    loaded = machine.load()
    assert loaded.settings.orchestrator.endpoint == "http://127.0.0.1:9999"
    source = loaded.sources["orchestrator.endpoint"]
    assert "PROVISIONING_SERVER_PORT" in source
    assert "PROVISIONING_ORCHESTRATOR_ENDPOINT" not in source


def test_endpoint_loses_its_trailing_slash(machine: Machine) -> None:
    loaded = machine.load({"orchestrator.endpoint": "http://10.1.2.3:9999/"})
    assert loaded.settings.orchestrator.endpoint == "http://10.1.2.3:9999"


def test_derived_paths(machine: Machine) -> None:
    data = machine.root / "data"
    lib = machine.root / "lib"
    s = machine.load({"storage.data_dir": str(data), "nushell.provisioning_lib": str(lib)}).settings
    assert s.data_dir == data
    assert s.token_path == data / "api-token"
    assert s.nushell_lib == lib
    assert s.python_binary == sys.executable
    token = machine.root / "token"
    python = "/opt/py/bin/python3"
    s = machine.load({"server.token_file": str(token), "python.binary": python}).settings
    assert (s.token_path, s.python_binary) == (token, python)


def test_the_packaged_library_is_the_default(machine: Machine) -> None:
    lib = machine.load().settings.nushell_lib
    assert lib.name == "nulib"
    assert lib.parent.name == "provisioning"


def test_an_operation_both_force_lists_match_alike_is_refused(tmp_path: Path) -> None:
    from provisioning.config.models import ExecutionSection

    with pytest.raises(
        ValueError,
        match=r"server\.create is matched by force_orchestrated 'server\.\*' and force_direct '\*\.create' alike",
    ):
        ExecutionSection(force_orchestrated=["server.*"], force_direct=["*.create"])
    with pytest.raises(ValueError, match=r"deploy\.now is matched"):
        ExecutionSection(force_orchestrated=["deploy.now"], force_direct=["deploy.now"])
    # The seed's own lists: batch.* is more specific than *.list for batch.list.
    ExecutionSection(
        force_orchestrated=["server.create", "cluster.create", "batch.*", "workflow.*"],
        force_direct=["*.list", "*.show", "help", "version"],
    )


# -- the quick path (quick.py): the models' JSON schema and the shared rules -----------------


def test_the_shipped_schema_is_the_models() -> None:
    """Remake it with: python -c 'from provisioning.config.quick import write_schema; write_schema()'"""
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(
        json.dumps(Settings.model_json_schema())
    )


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"server.port": "9091"},  # a conversion: pydantic's to make
        {"orchestrator.timeout_seconds": 5},
        {"storage.backend": "filesystem"},
        {"storage.backend": "surrealdb-server"},
        {"execution.default_mode": "direct"},
        {"executor.env": {"A": "b"}, "executor.memory_max": "512M"},
        {"orchestrator.endpoint": "https://example.org/api/"},
    ],
    ids=repr,
)
def test_the_quick_view_has_the_models_values(tmp_path: Path, flags: dict[str, Any]) -> None:
    environ = {"HOME": str(tmp_path), "PROVISIONING_SYSTEM_CONFIG": str(tmp_path / "none")}
    quick = load_config(flags=flags, environ=environ, cwd=tmp_path, lazy_model=True)
    model = load_config(flags=flags, environ=environ, cwd=tmp_path)
    assert isinstance(model.settings, Settings)
    same_values(quick.settings, model.settings)
    assert quick.settings.model_dump() == model.settings.model_dump()
    assert quick.settings.storage.model_dump() == model.settings.storage.model_dump()
    assert quick.sources == model.sources


def test_the_quick_view_leaves_doubts_to_the_models(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "PROVISIONING_SYSTEM_CONFIG": str(tmp_path / "none")}
    plain = load_config(environ=environ, cwd=tmp_path, lazy_model=True)
    assert not isinstance(plain.settings, Settings)
    converted = load_config(
        flags={"server.port": "9091"}, environ=environ, cwd=tmp_path, lazy_model=True
    )
    assert isinstance(converted.settings, Settings)
    assert converted.settings.server.port == 9091
