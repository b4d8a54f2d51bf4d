"""The taskserv catalog: three layers (infra override -> workspace ``extensions/taskservs``
-> the platform's catalog) and the install order of what a taskserv depends on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provisioning.infra import Infra, load_infra
from provisioning.taskservs.catalog import (
    PLATFORM_CATALOG,
    CatalogError,
    TaskservDef,
    available,
    install_order,
    resolve,
)

PLATFORM = {
    "containerd": ("1.6.20", ("runc",)),
    "etcd": ("3.4.23", ()),
    "kubernetes": ("1.29.2", ("containerd", "etcd")),
    "runc": ("1.1.5", ()),
    "webserver": ("1.0.0", ()),
}
NU_MODULE = "export def install [params: record] { }\nexport def remove [params: record] { }\n"


def names(defs: list[TaskservDef]) -> list[str]:
    return [d.name for d in defs]


def assert_dependencies_first(order: list[TaskservDef]) -> None:
    position = {d.name: i for i, d in enumerate(order)}
    assert len(position) == len(order), f"installed more than once: {names(order)}"
    for definition in order:
        for dependency in definition.depends_on:
            assert position[dependency] < position[definition.name], names(order)


def extension(
    workspace: Path,
    name: str,
    *,
    version: str = "0.1.0",
    depends_on: tuple[str, ...] = (),
    settings: str = "",
    nu: bool = True,
    declared_name: str | None = None,
) -> Path:
    """A taskserv of the workspace's own in ``extensions/taskservs/<name>/``."""
    folder = workspace / "extensions" / "taskservs" / name
    folder.mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in depends_on)
    (folder / "taskserv.toml").write_text(
        f'name = "{declared_name or name}"\nversion = "{version}"\n'
        f'description = "the workspace\'s {name}"\ndepends_on = [{deps}]\n'
        + (f"\n[settings]\n{settings}\n" if settings else "")
    )
    if nu:
        (folder / "taskserv.nu").write_text(NU_MODULE)
    return folder


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "acme"
    (root / "extensions" / "taskservs").mkdir(parents=True)
    return root


# -- the platform catalog -------------------------------------------------------------------------


def test_the_platform_catalog(workspace: Path) -> None:
    for where in (None, workspace):
        found = {d.name: d for d in available(where)}
        assert set(found) == set(PLATFORM)
        for name, (version, depends_on) in PLATFORM.items():
            definition = found[name]
            assert (definition.version, definition.depends_on) == (version, depends_on)
            assert definition.source == "platform"
            assert definition.folder == PLATFORM_CATALOG / name
            assert (definition.library / definition.module).is_file()
    assert found["webserver"].service
    assert not found["kubernetes"].service


def test_install_order_of_kubernetes() -> None:
    order = install_order(["kubernetes"], None)

    assert sorted(names(order)) == ["containerd", "etcd", "kubernetes", "runc"]
    assert_dependencies_first(order)
    assert names(order)[-1] == "kubernetes"
    assert names(order).index("runc") < names(order).index("containerd")


def test_install_order_installs_each_once() -> None:
    order = install_order(["kubernetes", "containerd", "webserver", "kubernetes", "runc"], None)

    assert sorted(names(order)) == ["containerd", "etcd", "kubernetes", "runc", "webserver"]
    assert_dependencies_first(order)


def test_a_taskserv_without_dependencies_installs_alone() -> None:
    assert names(install_order(["webserver"], None)) == ["webserver"]


def test_unknown_taskserv_lists_the_known_ones(workspace: Path) -> None:
    extension(workspace, "hello")
    with pytest.raises(CatalogError) as caught:
        resolve("nope", workspace)
    assert str(caught.value) == (
        "unknown taskserv 'nope' (known: containerd, etcd, hello, kubernetes, runc, webserver)"
    )
    with pytest.raises(CatalogError, match="unknown taskserv 'nope'"):
        install_order(["kubernetes", "nope"], workspace)


def test_an_unknown_dependency_is_named(workspace: Path) -> None:
    extension(workspace, "app", depends_on=("ghost",))
    with pytest.raises(CatalogError, match="unknown taskserv 'ghost'"):
        install_order(["app"], workspace)


# -- infra overrides ------------------------------------------------------------------------------


def test_an_infra_override_changes_version_and_settings() -> None:
    infra = Infra.model_validate(
        {"taskservs": {"etcd": {"version": "3.6.0", "settings": {"client_port": 12379}}}}
    )

    etcd = resolve("etcd", None, infra)

    assert etcd.version == "3.6.0"
    assert etcd.settings == {"client_port": 12379, "peer_port": 2380}
    assert etcd.override == {"version": "3.6.0", "settings": {"client_port": 12379}}
    assert etcd.depends_on == ()
    assert etcd.folder == PLATFORM_CATALOG / "etcd"
    plain = resolve("etcd", None)
    assert (plain.version, plain.settings["client_port"]) == ("3.4.23", 2379)
    # Taskservs the infra says nothing about are the catalog's.
    assert resolve("runc", None, infra) == resolve("runc", None)


def test_an_infra_override_from_a_nickel_file_changes_dependencies(workspace: Path) -> None:
    folder = workspace / "infra" / "default"
    folder.mkdir(parents=True)
    (folder / "infra.ncl").write_text(
        textwrap.dedent(
            """\
            {
              servers = [{ hostname = "node-1", taskservs = ["kubernetes"] }],
              taskservs = {
                kubernetes = { version = "1.30.0", depends_on = ["containerd"],
                               settings = { pod_cidr = "10.99.0.0/16" } },
              },
            }
            """
        )
    )
    infra = load_infra(workspace, "default")

    order = install_order(["kubernetes"], workspace, infra)

    assert names(order) == ["runc", "containerd", "kubernetes"]
    kubernetes = order[-1]
    assert kubernetes.version == "1.30.0"
    assert kubernetes.settings == {"cluster_domain": "cluster.local", "pod_cidr": "10.99.0.0/16"}
    assert names(install_order(["kubernetes"], workspace)) != names(order)


# -- workspace extensions -------------------------------------------------------------------------


def test_a_workspace_taskserv_shadows_the_platform_one(workspace: Path) -> None:
    folder = extension(workspace, "etcd", version="3.6.0-ws", settings="client_port = 3379")

    etcd = resolve("etcd", workspace)
    assert (etcd.source, etcd.version, etcd.folder) == ("workspace", "3.6.0-ws", folder)
    assert etcd.settings == {"client_port": 3379}
    assert etcd.library == workspace / "extensions" / "taskservs"
    listed = {d.name: d for d in available(workspace)}
    assert (listed["etcd"].source, listed["etcd"].version) == ("workspace", "3.6.0-ws")
    assert listed["runc"].source == "platform"
    assert [d for d in available(workspace) if d.name == "etcd"] == [etcd]
    # kubernetes (platform) now installs the workspace's etcd.
    order = {d.name: d for d in install_order(["kubernetes"], workspace)}
    assert order["etcd"].source == "workspace"
    # Without the workspace, the platform one.
    assert resolve("etcd", None).source == "platform"


def test_a_new_workspace_taskserv_is_available(workspace: Path) -> None:
    extension(workspace, "hello", version="2.0.0", depends_on=("webserver",))

    listed = {d.name: d for d in available(workspace)}
    assert set(listed) == {*PLATFORM, "hello"}
    hello = listed["hello"]
    assert (hello.source, hello.version, hello.depends_on) == ("workspace", "2.0.0", ("webserver",))
    assert hello.description == "the workspace's hello"
    assert names(install_order(["hello"], workspace)) == ["webserver", "hello"]
    assert "hello" not in {d.name for d in available(None)}


def test_an_infra_override_applies_to_a_workspace_taskserv(workspace: Path) -> None:
    extension(workspace, "hello", version="2.0.0", settings='greeting = "hi"\nport = 1')
    infra = Infra.model_validate({"taskservs": {"hello": {"settings": {"port": 2}}}})

    hello = resolve("hello", workspace, infra)

    assert (hello.source, hello.version) == ("workspace", "2.0.0")
    assert hello.settings == {"greeting": "hi", "port": 2}


def test_a_dependency_cycle_is_named(workspace: Path) -> None:
    extension(workspace, "alpha", depends_on=("beta",))
    extension(workspace, "beta", depends_on=("alpha",))

    with pytest.raises(CatalogError) as caught:
        install_order(["alpha"], workspace)

    message = str(caught.value)
    assert message.startswith("taskserv dependency cycle: ")
    cycle = message.removeprefix("taskserv dependency cycle: ").split(" -> ")
    assert set(cycle) == {"alpha", "beta"}
    assert cycle[0] == cycle[-1]


def test_a_cycle_made_by_an_infra_override_is_named(workspace: Path) -> None:
    infra = Infra.model_validate({"taskservs": {"runc": {"depends_on": ["kubernetes"]}}})

    with pytest.raises(CatalogError, match="cycle") as caught:
        install_order(["kubernetes"], None, infra)

    assert {"runc", "kubernetes"} <= set(str(caught.value).split(": ", 1)[1].split(" -> "))


def test_a_taskserv_depending_on_itself_is_a_cycle(workspace: Path) -> None:
    extension(workspace, "loop", depends_on=("loop",))
    with pytest.raises(CatalogError, match="cycle: loop -> loop"):
        install_order(["loop"], workspace)


def test_a_taskserv_without_its_nushell_module_is_refused(workspace: Path) -> None:
    extension(workspace, "broken", nu=False)
    with pytest.raises(CatalogError, match=r"broken: no taskserv\.nu"):
        resolve("broken", workspace)


def test_a_taskserv_whose_name_does_not_match_its_folder_is_refused(workspace: Path) -> None:
    extension(workspace, "alias", declared_name="kubernetes")
    with pytest.raises(CatalogError, match="does not match its folder 'alias'"):
        resolve("alias", workspace)


def test_a_broken_taskserv_toml_names_the_file(workspace: Path) -> None:
    folder = extension(workspace, "bad")
    (folder / "taskserv.toml").write_text("version = \n")
    with pytest.raises(CatalogError, match=str(folder / "taskserv.toml")):
        resolve("bad", workspace)


def test_a_name_that_leaves_the_catalog_folders_is_unknown(workspace: Path) -> None:
    outside = workspace / "extensions" / "evil"
    outside.mkdir()
    (outside / "taskserv.toml").write_text('version = "6.6.6"\n')
    (outside / "taskserv.nu").write_text(NU_MODULE)

    with pytest.raises(CatalogError):
        resolve("../evil", workspace)
