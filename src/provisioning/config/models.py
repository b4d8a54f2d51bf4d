"""The configuration schema: one pydantic model per TOML section."""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

PACKAGED_NULIB = Path(__file__).resolve().parent.parent / "nulib"


class _Section(BaseModel):
    # Built on first use: Settings builds its sections once, inside its own schema,
    # instead of each class on import (most of the CLI's start-up otherwise).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ExecutionMode(StrEnum):
    DIRECT = "direct"
    ORCHESTRATED = "orchestrated"
    AUTO = "auto"


class StorageBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    SURREALDB = "surrealdb"


class OrchestratorSection(_Section):
    enabled: bool = True
    endpoint: str = "http://127.0.0.1:9090"
    timeout_seconds: Annotated[float, Field(gt=0)] = 60
    auto_start: bool = True
    fallback_to_direct: bool = True

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")


# The CLI's operation names (DESIGN.md §5), against which the two force lists are checked.
_VERBS = {
    "server": ("create", "list", "show", "delete", "ssh"),
    "taskserv": ("create", "list", "show", "delete"),
    "cluster": ("create", "list", "show", "delete"),
    "workflow": ("submit", "status", "monitor", "list", "cancel", "retry", "rollback"),
    "batch": ("submit", "monitor", "status", "list", "rollback", "stats"),
    "task": ("submit", "list", "status", "logs", "cancel"),
    "orchestrator": ("start", "stop", "status", "logs"),
    "provider": ("list", "plans", "zones", "pricing"),
}
OPERATIONS = (
    *(f"{group}.{verb}" for group, verbs in _VERBS.items() for verb in verbs),
    "help",
    "version",
    "env",
)


def _specificity(operation: str, pattern: str) -> tuple[bool, int]:
    return (pattern == operation, len(pattern.replace("*", "")))


class ExecutionSection(_Section):
    default_mode: ExecutionMode = ExecutionMode.AUTO
    force_orchestrated: list[str] = []
    force_direct: list[str] = []

    @field_validator("force_direct")
    @classmethod
    def _no_tie(cls, direct: list[str], info: ValidationInfo) -> list[str]:
        """An operation both lists match equally is refused here: neither may silently
        win. (A strictly more specific pattern decides, as ``provisioning -v`` shows:
        the seed's ``batch.*`` over ``*.list`` for ``batch.list``.)"""
        orchestrated: list[str] = info.data.get("force_orchestrated") or []
        literal = {p for p in (*orchestrated, *direct) if not any(c in p for c in "*?[")}
        for name in sorted(set(OPERATIONS) | literal):
            orch = [p for p in orchestrated if fnmatchcase(name, p)]
            here = [p for p in direct if fnmatchcase(name, p)]
            if not orch or not here:
                continue
            best_orch = max(orch, key=lambda p: _specificity(name, p))
            best_direct = max(here, key=lambda p: _specificity(name, p))
            if _specificity(name, best_orch) == _specificity(name, best_direct):
                raise ValueError(
                    f"{name} is matched by force_orchestrated {best_orch!r} and force_direct "
                    f"{best_direct!r} alike; remove one or make one more specific"
                )
        return direct


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9090
    token_file: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # A workflow's body (POST /workflows/...): 10,000 operations one per node, ~1M edges.
    max_workflow_bytes: Annotated[int, Field(ge=1024)] = 67_108_864
    # Open connections at once (the event stream's included); more are answered 503.
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    # A request's headers, then its body, must arrive within these.
    header_timeout_seconds: Annotated[float, Field(gt=0)] = 10
    body_timeout_seconds: Annotated[float, Field(gt=0)] = 30
    # TLS (served by uvicorn): required to listen on anything but loopback.
    tls_cert: str = ""
    tls_key: str = ""


class StorageSection(_Section):
    backend: StorageBackend = StorageBackend.SQLITE
    data_dir: str = "~/.local/share/provisioning/orchestrator"
    # postgres: a libpq connection string (also PROVISIONING_STORAGE_DSN);
    # surrealdb: a ws:// URL of a server (empty: embedded, a surrealkv:// file in data_dir).
    dsn: str = ""
    # Finished tasks (and their logs) and finished workflows older than this are
    # deleted; 0 keeps them forever.
    retention_days: Annotated[float, Field(ge=0)] = 30
    # A store call that has no answer after this long fails as "store unavailable" (the
    # API answers 503, /health says degraded) instead of hanging its caller.
    call_timeout_seconds: Annotated[float, Field(gt=0)] = 30
    # The original's SurrealDB server mode (--storage-type surrealdb-server): a server
    # URL and its credentials; "server" never falls back to the embedded engine.
    surrealdb_mode: Literal["", "embedded", "server"] = ""
    surrealdb_url: str = ""
    surrealdb_username: str = ""
    surrealdb_password: str = ""

    @model_validator(mode="before")
    @classmethod
    def _seed_names(cls, data: object) -> object:
        # The seed calls the embedded single-file store "filesystem"; the original
        # names SurrealDB's two modes in the backend itself.
        if not isinstance(data, dict):
            return data
        value = data.get("backend")
        if value == "filesystem":
            return {**data, "backend": StorageBackend.SQLITE.value}
        if value in ("surrealdb-embedded", "surrealdb-server"):
            mode = value.removeprefix("surrealdb-")
            if data.get("surrealdb_mode") not in (None, "", mode):
                raise ValueError(
                    f"backend {value} contradicts surrealdb_mode {data['surrealdb_mode']}"
                )
            return {**data, "backend": StorageBackend.SURREALDB.value, "surrealdb_mode": mode}
        return data


class ExecutorSection(_Section):
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=10_000)] = 10
    task_timeout_seconds: Annotated[float, Field(gt=0)] = 3600
    checkpoint_interval_seconds: Annotated[float, Field(gt=0)] = 30
    kill_grace_seconds: Annotated[float, Field(ge=0)] = 5
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 10
    lease_seconds: Annotated[float, Field(gt=0)] = 30
    # Per attempt, the first and the last this many MiB of output are kept; what is
    # between is dropped (and the log says how much).
    log_keep_mib: Annotated[float, Field(gt=0)] = 8
    # When the daemon runs as root, tasks run as this user (empty: as root, warned).
    run_as: str = ""
    # Variables every task gets (besides the task contract's own); the daemon's own
    # environment is not passed on.
    env: dict[str, str] = {}
    # A cap on each task's memory (cgroup v2 memory.max: bytes, or with K/M/G); empty: none.
    memory_max: str = ""

    @field_validator("memory_max")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9]+[KMGT]?", value):
            raise ValueError("expected a size: bytes, or a number with K, M, G or T")
        return value


class NushellSection(_Section):
    binary: str = "nu"
    provisioning_lib: str = ""
    env_vars: dict[str, str] = {}


class PythonSection(_Section):
    binary: str = ""
    path: list[str] = []


class WorkspaceSection(_Section):
    name: str = ""
    default_infra: str = "default"


class ProvidersSection(_Section):
    """Per-provider settings (credentials stay in the providers' own environment
    variables; these are zones, plans, images, endpoints)."""

    local: dict[str, Any] = {}
    aws: dict[str, Any] = {}
    upcloud: dict[str, Any] = {}


class SshSection(_Section):
    """How servers are reached (each key overridable per server in the infra's
    ``ssh`` block). Empty: the provider's default user, the workspace's key pair."""

    user: str = ""
    key: str = ""
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    jump: str = ""
    use_sudo: bool = False
    # "public", "private" (the provider's private address) or an explicit address.
    address: str = "public"
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 10
    # How long `server create` waits for SSH to answer; 0: it does not wait.
    wait_seconds: Annotated[float, Field(ge=0)] = 300


class PackagesSection(_Section):
    """Packages fetched once on this machine and uploaded to servers."""

    # Empty: <workspace>/runtime/packages.
    cache_dir: str = ""


class MetricsSection(_Section):
    # True: /metrics answers without the token (a scraper on a trusted network).
    public: bool = False


class TracingSection(_Section):
    # An OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces; empty: no traces.
    endpoint: str = ""
    service_name: str = "provisioning-orchestrator"

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, or empty (no traces)")
        return value


class Settings(_Section):
    """The whole effective configuration."""

    orchestrator: OrchestratorSection = OrchestratorSection()
    execution: ExecutionSection = ExecutionSection()
    server: ServerSection = ServerSection()
    storage: StorageSection = StorageSection()
    executor: ExecutorSection = ExecutorSection()
    nushell: NushellSection = NushellSection()
    python: PythonSection = PythonSection()
    workspace: WorkspaceSection = WorkspaceSection()
    providers: ProvidersSection = ProvidersSection()
    ssh: SshSection = SshSection()
    packages: PackagesSection = PackagesSection()
    metrics: MetricsSection = MetricsSection()
    tracing: TracingSection = TracingSection()

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir).expanduser()

    @property
    def token_path(self) -> Path:
        if self.server.token_file:
            return Path(self.server.token_file).expanduser()
        return self.data_dir / "api-token"

    @property
    def nushell_lib(self) -> Path:
        if self.nushell.provisioning_lib:
            return Path(self.nushell.provisioning_lib).expanduser()
        return PACKAGED_NULIB

    @property
    def nushell_libs(self) -> list[Path]:
        """The user's library (when set) before the platform's: it adds, never replaces."""
        libs = [self.nushell_lib]
        if self.nushell_lib.resolve() != PACKAGED_NULIB.resolve():
            libs.append(PACKAGED_NULIB)
        return libs

    @property
    def python_binary(self) -> str:
        return self.python.binary or sys.executable
