"""Loading a workspace's infra: the ``workspace init`` template evaluates under the
platform's Nickel contracts, and contract violations (or hostile names) are
``InfraError``s naming the file, the line (for Nickel contract errors) and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from provisioning.cli.workspace import init
from provisioning.infra import InfraError, load_infra
from provisioning.infra.models import known_infras

HOSTILE = ["a;rm -rf /", "$(x)", "`x`", "web-1 && x", "../etc", "Web_1", "-web", "a" * 64, ""]


def make_workspace(root: Path, infra: str = "default") -> Path:
    """``provisioning workspace init acme --path ROOT/acme --infra INFRA``."""
    init("acme", path=root / "acme", infra=infra)
    return root / "acme"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


def infra_file(workspace: Path, infra: str = "default") -> Path:
    return workspace / "infra" / infra / "infra.ncl"


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old`` with ``new``; the 1-based line of the change."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def load_error(workspace: Path, infra: str = "default") -> str:
    with pytest.raises(InfraError) as caught:
        load_infra(workspace, infra)
    return str(caught.value)


# -- the template ---------------------------------------------------------------------------------


def test_the_workspace_template_loads(workspace: Path) -> None:
    for folder in ("config", "extensions/taskservs", "runtime/state", "runtime/servers"):
        assert (workspace / folder).is_dir(), folder
    config = (workspace / "config" / "provisioning.toml").read_text()
    assert 'name = "acme"' in config
    assert 'default_infra = "default"' in config

    infra = load_infra(workspace, "default")

    assert infra.name == "default"
    assert [(s.hostname, s.provider, s.plan, s.taskservs) for s in infra.servers] == [
        ("web-1", "local", "small", ["webserver"]),
        ("web-2", "local", "small", ["webserver"]),
        ("node-1", "local", "medium", ["kubernetes"]),
    ]
    assert infra.server("node-1").labels == {"role": "node"}
    cluster = infra.cluster("web")
    assert (cluster.servers, cluster.taskservs) == (
        ["web-1", "web-2", "node-1"],
        ["containerd", "etcd"],
    )
    assert infra.taskservs["webserver"].settings == {"title": "Hello from acme/default"}
    spec = infra.server("web-1").spec()
    assert (spec.hostname, spec.plan, spec.taskservs) == ("web-1", "small", ("webserver",))


def test_a_named_infra(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, infra="wuji")
    assert known_infras(workspace) == ["wuji"]
    assert load_infra(workspace, "wuji").name == "wuji"
    assert "Hello from acme/wuji" in infra_file(workspace, "wuji").read_text()
    message = load_error(workspace, "default")
    assert "no infra 'default'" in message
    assert "known: wuji" in message


def test_unknown_server_and_cluster_name_the_known_ones(workspace: Path) -> None:
    infra = load_infra(workspace, "default")
    with pytest.raises(InfraError, match=r"no server 'web-9' \(known: web-1, web-2, node-1\)"):
        infra.server("web-9")
    with pytest.raises(InfraError, match=r"no cluster 'db' \(known: web\)"):
        infra.cluster("db")


@pytest.mark.parametrize("name", ["../default", "Default", "a/b", "$(x)"])
def test_a_hostile_infra_name_is_refused(workspace: Path, name: str) -> None:
    assert "is not an RFC 1123 label" in load_error(workspace, name)


# -- contract violations in infra.ncl -------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ('hostname = "web-1"', 'hostname = "Web_1"', "hostname", "RFC 1123 label"),
        (
            'provider = "local"',
            'provider = "gcp"',
            "provider",
            "expected one of: local, aws, upcloud",
        ),
        ('plan = "medium",', "cores = 0,", "cores", "expected a whole number from 1 to 512"),
        ('taskservs = ["kubernetes"]', 'taskservs = ["Kube"]', "taskservs", "RFC 1123 label"),
        ('name = "web"', 'name = "web cluster"', "name", "RFC 1123 label"),
        ('plan = "medium",', 'plan = "medium", colour = "red",', "servers", "extra field `colour`"),
    ],
    ids=["hostname", "provider", "cores", "taskserv-name", "cluster-name", "unknown-field"],
)
def test_a_nickel_contract_violation_names_file_line_and_field(
    workspace: Path, old: str, new: str, field: str, expected: str
) -> None:
    path = infra_file(workspace)
    line = edit(path, old, new)

    message = load_error(workspace)

    assert f"contract broken by the value of `{field}`" in message
    assert expected in message
    assert f"{path}:{line}:" in message


def test_a_nickel_syntax_error_names_file_and_line(workspace: Path) -> None:
    path = infra_file(workspace)
    edit(path, "clusters = [", "clusters = [[")
    message = load_error(workspace)
    assert "unexpected token" in message
    assert f"{path}:" in message


def test_a_cluster_naming_an_unknown_server(workspace: Path) -> None:
    path = infra_file(workspace)
    edit(path, 'servers = ["web-1", "web-2", "node-1"]', 'servers = ["web-1", "web-9"]')

    message = load_error(workspace)

    assert message.startswith(f"{path}: invalid infra:")
    assert "clusters.web.servers: unknown server(s) web-9" in message


def test_duplicate_hostnames(workspace: Path) -> None:
    path = infra_file(workspace)
    edit(path, 'hostname = "web-2"', 'hostname = "web-1"')

    message = load_error(workspace)

    assert message.startswith(f"{path}: invalid infra:")
    assert "servers: duplicate hostname(s) web-1" in message


def test_a_cluster_listing_a_server_twice(workspace: Path) -> None:
    path = infra_file(workspace)
    edit(path, 'servers = ["web-1", "web-2", "node-1"]', 'servers = ["web-1", "web-1"]')

    message = load_error(workspace)

    assert "clusters.web.servers" in message
    assert "web-1" in message


# -- hostile names never get through --------------------------------------------------------------


@pytest.mark.parametrize("hostname", HOSTILE)
def test_a_hostile_hostname_in_nickel_is_refused(workspace: Path, hostname: str) -> None:
    path = infra_file(workspace)
    line = edit(path, 'hostname = "web-2"', f"hostname = {json.dumps(hostname)}")

    message = load_error(workspace)

    assert "contract broken by the value of `hostname`" in message
    assert "RFC 1123 label" in message
    assert f"{path}:{line}:" in message


@pytest.mark.parametrize("hostname", HOSTILE)
def test_a_hostile_hostname_in_json_is_refused(workspace: Path, hostname: str) -> None:
    infra_file(workspace).unlink()
    path = workspace / "infra" / "default" / "infra.json"
    path.write_text(json.dumps({"servers": [{"hostname": "ok"}, {"hostname": hostname}]}))

    message = load_error(workspace)

    assert message.startswith(f"{path}: invalid infra:")
    assert "servers.1.hostname" in message


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"servers": [{"hostname": "ok", "taskservs": ["x;y"]}]}, "servers.0.taskservs"),
        ({"servers": [{"hostname": "ok", "login_user": "$(id)"}]}, "servers.0.login_user"),
        ({"clusters": [{"name": "a b", "servers": []}]}, "clusters.0.name"),
        ({"servers": [{"hostname": "ok", "provider": "sh"}]}, "servers.0.provider"),
    ],
)
def test_other_hostile_names_in_yaml_are_refused(
    workspace: Path, data: dict[str, object], where: str
) -> None:
    infra_file(workspace).unlink()
    path = workspace / "infra" / "default" / "infra.yaml"
    path.write_text(yaml.safe_dump({"infra": data}))

    message = load_error(workspace)

    assert message.startswith(f"{path}: invalid infra:")
    assert where in message


def test_the_same_infra_as_json_loads_the_same(workspace: Path) -> None:
    from_nickel = load_infra(workspace, "default")
    infra_file(workspace).unlink()
    data = from_nickel.model_dump(exclude={"name"}, exclude_none=True)
    (workspace / "infra" / "default" / "infra.json").write_text(json.dumps({"infra": data}))

    assert load_infra(workspace, "default") == from_nickel


def test_a_null_login_user_in_yaml_is_no_login_user(workspace: Path) -> None:
    infra_file(workspace).unlink()
    (workspace / "infra" / "default" / "infra.yaml").write_text(
        "servers:\n  - hostname: web-1\n    login_user: null\n"
    )

    assert load_infra(workspace, "default").server("web-1").login_user is None
