"""The infra definition: what ``schemas/infra.ncl`` checks, as pydantic models (for
JSON/YAML/TOML files and for the server side)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..providers.base import HOSTNAME_RE, ServerSpec
from ..schemas import LoadError
from ..schemas.loader import evaluate_nickel, load_data_file

INFRA_FILES = ("infra.ncl", "infra.json", "infra.yaml", "infra.yml", "infra.toml", "infra.k")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class InfraError(Exception):
    """An infra definition is missing or wrong; the message says where."""


def _optional_label(value: str | None) -> str | None:
    return None if value is None else _label(value)


def _label(value: str) -> str:
    if not HOSTNAME_RE.fullmatch(value):
        raise ValueError(
            "expected an RFC 1123 label: lowercase letters, digits and '-', 1 to 63 "
            "characters, not starting or ending with '-'"
        )
    return value


Label = Annotated[str, Field(min_length=1, max_length=63)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SshOverride(_Closed):
    """A server's own ``ssh`` settings (over the workspace's ``[ssh]``)."""

    user: str | None = None
    key: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    jump: str | None = None
    use_sudo: bool | None = None
    address: str | None = None


class ServerDef(_Closed):
    hostname: Label
    provider: Literal["local", "aws", "upcloud"] = "local"
    plan: str | None = None
    cores: Annotated[int, Field(ge=1, le=512)] | None = None
    memory_mb: Annotated[int, Field(ge=128, le=4_194_304)] | None = None
    storage_gb: Annotated[int, Field(ge=1, le=65_536)] | None = None
    zone: str | None = None
    image: str | None = None
    login_user: Label | None = None
    ssh_keys: list[str] = []
    labels: dict[str, str] = {}
    taskservs: list[Label] = []
    ssh: SshOverride = SshOverride()

    _hostname = field_validator("hostname")(_label)
    _login_user = field_validator("login_user")(_optional_label)

    @field_validator("taskservs")
    @classmethod
    def _taskserv_names(cls, value: list[str]) -> list[str]:
        return [_label(name) for name in value]

    def spec(self) -> ServerSpec:
        return ServerSpec(
            hostname=self.hostname,
            provider=self.provider,
            plan=self.plan,
            cores=self.cores,
            memory_mb=self.memory_mb,
            storage_gb=self.storage_gb,
            zone=self.zone,
            image=self.image,
            login_user=self.login_user,
            ssh_keys=tuple(self.ssh_keys),
            labels=dict(self.labels),
            taskservs=tuple(self.taskservs),
        )


class TaskservOverride(_Closed):
    version: str | None = None
    depends_on: list[Label] | None = None
    settings: dict[str, Any] = {}


class Cluster(_Closed):
    name: Label
    servers: list[Label]
    taskservs: list[Label] = []

    _name = field_validator("name")(_label)


class Infra(_Closed):
    """One infra of a workspace (``--infra NAME``)."""

    name: str = "default"
    servers: list[ServerDef] = []
    taskservs: dict[str, TaskservOverride] = {}
    clusters: list[Cluster] = []

    @model_validator(mode="after")
    def _references(self) -> Infra:
        hostnames = [s.hostname for s in self.servers]
        duplicates = {h for h in hostnames if hostnames.count(h) > 1}
        if duplicates:
            raise ValueError(f"servers: duplicate hostname(s) {', '.join(sorted(duplicates))}")
        for cluster in self.clusters:
            twice = {h for h in cluster.servers if cluster.servers.count(h) > 1}
            if twice:
                raise ValueError(
                    f"clusters.{cluster.name}.servers: listed twice: {', '.join(sorted(twice))}"
                )
            unknown = [h for h in cluster.servers if h not in hostnames]
            if unknown:
                raise ValueError(
                    f"clusters.{cluster.name}.servers: unknown server(s) {', '.join(unknown)}"
                )
        return self

    def server(self, hostname: str) -> ServerDef:
        for server in self.servers:
            if server.hostname == hostname:
                return server
        known = ", ".join(s.hostname for s in self.servers) or "none"
        raise InfraError(f"infra {self.name}: no server {hostname!r} (known: {known})")

    def cluster(self, name: str) -> Cluster:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        known = ", ".join(c.name for c in self.clusters) or "none"
        raise InfraError(f"infra {self.name}: no cluster {name!r} (known: {known})")


def infra_file(workspace_dir: Path, name: str) -> Path:
    if not NAME_RE.fullmatch(name):
        raise InfraError(f"infra name {name!r} is not an RFC 1123 label")
    folder = workspace_dir / "infra" / name
    for candidate in INFRA_FILES:
        if (folder / candidate).is_file():
            return folder / candidate
    raise InfraError(
        f"no infra {name!r} in {workspace_dir}: expected {folder}/infra.ncl "
        f"(known: {', '.join(known_infras(workspace_dir)) or 'none'})"
    )


def known_infras(workspace_dir: Path) -> list[str]:
    folder = workspace_dir / "infra"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if any((p / f).is_file() for f in INFRA_FILES))


def load_infra(workspace_dir: Path, name: str) -> Infra:
    """Read, evaluate and validate ``infra/<name>/infra.*`` of a workspace."""
    path = infra_file(workspace_dir, name)
    try:
        if path.suffix == ".ncl":
            data = evaluate_nickel(path, "Infra", schema="infra.ncl", wrappers=("infra",))
        else:
            data = load_data_file(path, wrappers=("infra",))
    except LoadError as exc:
        raise InfraError(str(exc)) from None
    try:
        return Infra.model_validate({**(data or {}), "name": name})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'infra'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise InfraError(f"{path}: invalid infra:\n  " + "\n  ".join(problems)) from None
