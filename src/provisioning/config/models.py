"""The configuration schema: one pydantic model per TOML section. What a type and a
range cannot say lives in ``rules.py`` (shared with the CLI's quick path, which reads
these models' JSON schema, ``settings.schema.json``, instead of importing pydantic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from . import rules
from .rules import OPERATIONS, PACKAGED_NULIB, ExecutionMode, StorageBackend

__all__ = ["OPERATIONS", "PACKAGED_NULIB", "ExecutionMode", "Settings", "StorageBackend"]


@dataclass(frozen=True)
class Rule:
    """A check of ``rules.FIELD_RULES`` on a field, named in the JSON schema ("x-rule")
    so the quick path applies the same function."""

    check: Callable[[Any], Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        found = dict(handler(schema))
        assert rules.FIELD_RULES[self.check.__name__] is self.check
        found["x-rule"] = self.check.__name__
        return found


class _Section(BaseModel):
    # Built on first use: Settings builds its sections once, inside its own schema,
    # instead of each class on import (most of the CLI's start-up otherwise).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class OrchestratorSection(_Section):
    enabled: bool = True
    endpoint: Annotated[str, Rule(rules.http_url)] = "http://127.0.0.1:9090"
    timeout_seconds: Annotated[float, Field(gt=0)] = 60
    auto_start: bool = True
    fallback_to_direct: bool = True


class ExecutionSection(_Section):
    model_config = ConfigDict(json_schema_extra={"x-after": rules.execution_no_tie.__name__})

    default_mode: ExecutionMode = ExecutionMode.AUTO
    force_orchestrated: list[str] = []
    force_direct: list[str] = []

    @field_validator("force_direct")
    @classmethod
    def _no_tie(cls, direct: list[str], info: ValidationInfo) -> list[str]:
        return rules.no_tie(info.data.get("force_orchestrated") or [], direct)


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
    model_config = ConfigDict(json_schema_extra={"x-before": rules.storage_seed_names.__name__})

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
        return rules.storage_seed_names(data)


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
    memory_max: Annotated[str, Rule(rules.memory_size)] = ""


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
    endpoint: Annotated[str, Rule(rules.http_url_or_empty)] = ""
    service_name: str = "provisioning-orchestrator"


class Settings(_Section, rules.DerivedPaths):
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
