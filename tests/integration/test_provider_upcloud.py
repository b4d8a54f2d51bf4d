"""The UpCloud provider, through the real ``upcloud-api`` SDK, against a local fake API.

The fake (``fake_upcloud.py``) answers on loopback as the UpCloud API 1.3
documents; the provider's ``api_root`` setting points the SDK at it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from provisioning.providers import (
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerSpec,
    get_provider,
)
from provisioning.providers.upcloud import UpCloudProvider, classify

from .fake_upcloud import PLANS, TEMPLATES, ZONES, FakeUpCloud

ProviderFactory = Callable[..., UpCloudProvider]


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UPCLOUD_USERNAME", "UPCLOUD_PASSWORD", "UPCLOUD_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeUpCloud]:
    with FakeUpCloud().running() as api:
        yield api


@pytest.fixture
def make_provider(fake: FakeUpCloud, tmp_path: Path) -> ProviderFactory:
    def make(
        workspace: str = "acme", infra: str = "wuji", credentials: bool = True, **settings: Any
    ) -> UpCloudProvider:
        base: dict[str, Any] = {
            "api_root": fake.url,
            "poll_interval": 0.01,
            "create_timeout": 10,
            "delete_timeout": 10,
            "timeout": 5,
        }
        if credentials:
            base.update(username=fake.username, password=fake.password)
        base.update(settings)
        context = ProviderContext(
            workspace=workspace, workspace_dir=tmp_path / workspace, infra=infra, settings=base
        )
        provider = get_provider("upcloud", context)
        assert isinstance(provider, UpCloudProvider)
        return provider

    return make


@pytest.fixture
def provider(make_provider: ProviderFactory) -> UpCloudProvider:
    return make_provider()


def web(hostname: str = "web-1", **fields: Any) -> ServerSpec:
    fields.setdefault("plan", "1xCPU-2GB")
    return ServerSpec(hostname=hostname, provider="upcloud", **fields)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- create, find, list ---------------------------------------------------------------


def test_create_waits_until_started_and_sends_the_documented_body(
    fake: FakeUpCloud, provider: UpCloudProvider
) -> None:
    spec = web(
        zone="fi-hel1",
        storage_gb=30,
        login_user="ops",
        ssh_keys=("ssh-ed25519 AAAAC3Nza ops@example",),
        labels={"role": "web"},
    )
    record, created = provider.create_server(spec)

    assert created is True
    assert record.status == "started"
    stored = fake.server_by_hostname("web-1")
    assert stored is not None and stored.state == "started"
    assert record.provider_id == stored.uuid
    assert record.address == stored.public_ipv4  # the public IPv4, not utility or IPv6
    assert (record.hostname, record.provider, record.zone, record.plan) == (
        "web-1",
        "upcloud",
        "fi-hel1",
        "1xCPU-2GB",
    )
    assert record.labels == {
        "role": "web",
        "provisioning_workspace": "acme",
        "provisioning_infra": "wuji",
        "provisioning_hostname": "web-1",
    }
    assert record.extra["storages"] == stored.storages

    [(_, _, body)] = fake.calls("POST", "/1.3/server")
    assert body is not None
    server = body["server"]
    assert server["hostname"] == "web-1"
    assert server["zone"] == "fi-hel1"
    assert server["plan"] == "1xCPU-2GB"
    assert server["title"] == "web-1 (acme/wuji)"
    [disk] = server["storage_devices"]["storage_device"]
    assert disk["action"] == "clone"
    assert disk["storage"] in TEMPLATES  # the default Ubuntu template
    assert disk["size"] == 30
    assert server["login_user"] == {
        "username": "ops",
        "create_password": "no",
        "ssh_keys": {"ssh_key": ["ssh-ed25519 AAAAC3Nza ops@example"]},
    }
    assert {"key": "provisioning_hostname", "value": "web-1"} in server["labels"]["label"]
    assert {"key": "role", "value": "web"} in server["labels"]["label"]

    found = provider.find_server("web-1")
    assert found == record
    assert provider.list_servers() == [record]
    # The API is asked for our labels only.
    listing = [path for _, path, _ in fake.calls("GET", "/1.3/server?")]
    assert listing
    assert "provisioning_workspace=acme" in parse_qs(urlsplit(listing[-1]).query)["label"]


def test_create_with_cores_and_memory_uses_a_custom_plan(
    fake: FakeUpCloud, provider: UpCloudProvider
) -> None:
    record, created = provider.create_server(
        ServerSpec(hostname="db-1", cores=2, memory_mb=4096, image="Debian GNU/Linux 12 (Bookworm)")
    )
    assert created and record.status == "started" and record.plan == "custom"
    [(_, _, body)] = fake.calls("POST", "/1.3/server")
    assert body is not None
    server = body["server"]
    assert (server["plan"], server["core_number"], server["memory_amount"]) == (
        "custom",
        "2",
        "4096",
    )
    assert server["zone"] == "de-fra1"  # the default zone
    assert server["storage_devices"]["storage_device"][0]["storage"] == (
        "Debian GNU/Linux 12 (Bookworm)"
    )


def test_creating_what_exists_is_a_no_op(fake: FakeUpCloud, provider: UpCloudProvider) -> None:
    first, created = provider.create_server(web())
    again, created_again = provider.create_server(web())
    assert (created, created_again) == (True, False)
    assert again.provider_id == first.provider_id
    assert len(fake.calls("POST", "/1.3/server")) == 1
    assert len(fake.servers) == 1


def test_list_and_find_see_only_this_workspace_and_infra(
    fake: FakeUpCloud, make_provider: ProviderFactory
) -> None:
    mine = make_provider()
    mine.create_server(web("web-1"))
    mine.create_server(web("web-2"))
    make_provider(infra="other").create_server(web("web-1"))
    fake.add_foreign_server(
        "web-3",
        {
            "provisioning_workspace": "someone-else",
            "provisioning_infra": "wuji",
            "provisioning_hostname": "web-3",
        },
    )
    fake.add_foreign_server("web-4", {})  # not ours at all: no labels

    assert [r.hostname for r in mine.list_servers()] == ["web-1", "web-2"]
    assert mine.find_server("web-3") is None
    assert mine.find_server("web-4") is None
    assert [r.hostname for r in make_provider(infra="other").list_servers()] == ["web-1"]
    assert make_provider(workspace="empty").list_servers() == []


# -- delete -----------------------------------------------------------------------------


def test_delete_stops_then_deletes_with_storages(
    fake: FakeUpCloud, provider: UpCloudProvider
) -> None:
    record, _ = provider.create_server(web())
    assert fake.storages

    assert provider.delete_server("web-1") is True

    [(_, _, stop_body)] = fake.calls("POST", f"/1.3/server/{record.provider_id}/stop")
    assert stop_body == {"stop_server": {"stop_type": "hard", "timeout": "60"}}
    [(_, delete_path, _)] = fake.calls("DELETE", f"/1.3/server/{record.provider_id}")
    assert parse_qs(urlsplit(delete_path).query)["storages"] == ["1"]
    assert fake.servers == {} and fake.storages == {}
    assert provider.find_server("web-1") is None
    assert provider.list_servers() == []

    assert provider.delete_server("web-1") is False


def test_delete_leaves_other_workspaces_servers_alone(
    fake: FakeUpCloud, make_provider: ProviderFactory
) -> None:
    make_provider(workspace="other").create_server(web())
    assert make_provider().delete_server("web-1") is False
    assert len(fake.servers) == 1


# -- credentials ------------------------------------------------------------------------


def test_token_from_settings_is_sent_as_bearer(
    fake: FakeUpCloud, make_provider: ProviderFactory
) -> None:
    provider = make_provider(credentials=False, token="ucat_test_token")
    assert provider.create_server(web())[0].status == "started"


def test_credentials_from_the_environment(
    fake: FakeUpCloud, make_provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPCLOUD_USERNAME", fake.username)
    monkeypatch.setenv("UPCLOUD_PASSWORD", fake.password)
    assert make_provider(credentials=False).list_servers() == []
    monkeypatch.delenv("UPCLOUD_PASSWORD")
    monkeypatch.setenv("UPCLOUD_TOKEN", "ucat_test_token")
    assert make_provider(credentials=False).list_servers() == []


def test_bad_credentials_are_an_auth_error(make_provider: ProviderFactory) -> None:
    provider = make_provider(password="wrong")
    with pytest.raises(ProviderError) as caught:
        provider.create_server(web())
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "finding server web-1" in str(caught.value)
    assert "AUTHENTICATION_FAILED: Authentication failed" in str(caught.value)

    with pytest.raises(ProviderError) as caught:
        make_provider(credentials=False, token="not-a-token").list_servers()
    assert caught.value.kind is ProviderErrorKind.AUTH


def test_missing_credentials_are_an_auth_error(make_provider: ProviderFactory) -> None:
    with pytest.raises(ProviderError) as caught:
        make_provider(credentials=False).list_servers()
    assert caught.value.kind is ProviderErrorKind.AUTH
    assert "UPCLOUD_USERNAME" in str(caught.value) and "UPCLOUD_TOKEN" in str(caught.value)


# -- invalid requests, quota, outages ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            web(zone="xx-nowhere1"),
            "creating server web-1 (1xCPU-2GB in xx-nowhere1): ZONE_INVALID: "
            "The zone xx-nowhere1 is not valid.",
        ),
        (
            web(plan="99xCPU-1TB"),
            "creating server web-1 (99xCPU-1TB in de-fra1): PLAN_INVALID: "
            "The plan 99xCPU-1TB is not valid.",
        ),
        (
            web(image="TempleOS 5"),
            "creating server web-1 (1xCPU-2GB in de-fra1): STORAGE_INVALID: "
            "The storage TempleOS 5 is not valid.",
        ),
    ],
    ids=["zone", "plan", "template"],
)
def test_unknown_zone_plan_or_template_is_invalid(
    fake: FakeUpCloud, provider: UpCloudProvider, spec: ServerSpec, expected: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.create_server(spec)
    assert caught.value.kind is ProviderErrorKind.INVALID
    assert str(caught.value) == f"invalid: {expected}"
    assert fake.servers == {} and fake.storages == {}


@pytest.mark.parametrize(
    ("mode", "code"), [("quota", "INSUFFICIENT_CREDITS"), ("limit", "SERVER_LIMIT_REACHED")]
)
def test_quota_errors(fake: FakeUpCloud, provider: UpCloudProvider, mode: str, code: str) -> None:
    fake.mode = mode
    with pytest.raises(ProviderError) as caught:
        provider.create_server(web())
    assert caught.value.kind is ProviderErrorKind.QUOTA
    assert f"creating server web-1 (1xCPU-2GB in de-fra1): {code}: " in str(caught.value)
    assert fake.servers == {}


def test_api_down_is_unavailable(make_provider: ProviderFactory) -> None:
    provider = make_provider(api_root=f"http://127.0.0.1:{closed_port()}/1.3")
    with pytest.raises(ProviderError) as caught:
        provider.create_server(web())
    assert caught.value.kind is ProviderErrorKind.UNAVAILABLE
    assert "finding server web-1: cannot reach the UpCloud API" in str(caught.value)


@pytest.mark.parametrize("mode", ["500", "502"])
def test_server_errors_are_unavailable(
    fake: FakeUpCloud, provider: UpCloudProvider, mode: str
) -> None:
    fake.mode = mode
    with pytest.raises(ProviderError) as caught:
        provider.list_servers()
    assert caught.value.kind is ProviderErrorKind.UNAVAILABLE
    assert "listing servers of workspace acme, infra wuji" in str(caught.value)
    with pytest.raises(ProviderError) as caught:
        provider.plans()
    assert caught.value.kind is ProviderErrorKind.UNAVAILABLE


def test_a_failed_wait_names_the_created_server(
    fake: FakeUpCloud, make_provider: ProviderFactory
) -> None:
    fake.boot = "error"
    with pytest.raises(ProviderError) as caught:
        make_provider().create_server(web("web-1"))
    stored = fake.server_by_hostname("web-1")
    assert stored is not None
    assert stored.uuid in str(caught.value) and "'error'" in str(caught.value)

    fake.boot = "stuck"
    with pytest.raises(ProviderError) as caught:
        make_provider(create_timeout=0.2).create_server(web("web-2"))
    stuck = fake.server_by_hostname("web-2")
    assert stuck is not None
    message = str(caught.value)
    assert message.startswith("other: creating server web-2 (1xCPU-2GB in de-fra1): ")
    assert stuck.uuid in message and "'maintenance'" in message


def test_api_url_without_version_is_completed(
    fake: FakeUpCloud, make_provider: ProviderFactory
) -> None:
    provider = make_provider(api_root=None, api_url=fake.url.removesuffix("/1.3") + "/")
    assert provider.api_root == fake.url
    assert [zone["id"] for zone in provider.zones()] == [zone["id"] for zone in ZONES]


# -- catalogue ------------------------------------------------------------------------


def test_plans_zones_and_prices_come_from_the_api(provider: UpCloudProvider) -> None:
    assert [plan["name"] for plan in provider.plans()] == [plan["name"] for plan in PLANS]
    assert {zone["id"] for zone in provider.zones()} == {"de-fra1", "fi-hel1", "uk-lon1"}
    prices = provider.pricing()
    assert {zone["name"] for zone in prices} == {"de-fra1", "fi-hel1", "uk-lon1"}
    assert all("server_plan_1xCPU-2GB" in zone for zone in prices)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AUTHENTICATION_FAILED", 401, ProviderErrorKind.AUTH),
        (None, 401, ProviderErrorKind.AUTH),
        ("INSUFFICIENT_CREDITS", 402, ProviderErrorKind.QUOTA),
        ("STORAGE_DEVICE_LIMIT_REACHED", 409, ProviderErrorKind.QUOTA),
        ("ZONE_INVALID", 400, ProviderErrorKind.INVALID),
        ("ZONE_NOT_FOUND", 404, ProviderErrorKind.INVALID),
        ("SERVER_NOT_FOUND", 404, ProviderErrorKind.NOT_FOUND),
        ("SERVER_STATE_ILLEGAL", 409, ProviderErrorKind.OTHER),
        ("SERVER_RESOURCES_UNAVAILABLE", 409, ProviderErrorKind.UNAVAILABLE),
        (None, 503, ProviderErrorKind.UNAVAILABLE),
    ],
)
def test_error_classification(code: str | None, status: int, kind: ProviderErrorKind) -> None:
    assert classify(code, status) is kind


def test_check_spec_names_a_plan_or_zone_upcloud_does_not_have(
    fake: FakeUpCloud, provider: UpCloudProvider
) -> None:
    assert provider.check_spec(web(zone="de-fra1")) == []
    found = provider.check_spec(web(plan="huge", zone="mars-1"))
    assert len(found) == 2
    assert found[0].startswith("plan 'huge' is unknown to UpCloud (known plans: ")
    assert "1xCPU-2GB" in found[0]
    assert found[1].startswith("zone 'mars-1' is unknown to UpCloud (known zones: ")
    assert "de-fra1" in found[1]
    # Asked live, nothing created.
    assert {path for _, path, _ in fake.calls("GET")} == {"/1.3/plan", "/1.3/zone"}
    assert fake.calls("POST") == []
