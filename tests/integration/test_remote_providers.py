"""AWS and UpCloud servers reached over SSH, end to end: the provider (moto's server,
the UpCloud fake) creates the server with the workspace's key injected, and hands
back a private address that is a lab host made here -- the only address these tests
connect to. ``server create`` waits until SSH answers there; a taskserv installs
over SSH and its service answers at that address.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from provisioning.operations import handlers
from provisioning.providers.base import ProviderContext, ServerSpec
from provisioning.providers.local import LocalProvider
from provisioning.ssh import known_hosts as host_keys
from provisioning.ssh.endpoint import workspace_key
from provisioning.ssh.keys import ensure_key_pair
from provisioning.taskservs.tool import Job
from tests.integration.fake_upcloud import FakeUpCloud
from tests.integration.moto_server import MotoServer
from tests.integration.test_provider_aws import _point_boto3_at, ami, moto  # noqa: F401
from tests.lab import leftovers, needs_lab

pytestmark = needs_lab


class RemoteWorkspace:
    """A workspace whose infra ``wuji`` has one cloud server, ``web-1``, plus the lab
    host (infra ``lab``) that plays the cloud server's machine."""

    def __init__(self, root: Path, provider: str, settings: dict[str, object]) -> None:
        self.root = root
        self.public_key = ensure_key_pair(workspace_key(root), "provisioning@acme")
        (root / "config").mkdir(parents=True)
        (root / "config" / "provisioning.toml").write_text(
            '[workspace]\nname = "acme"\ndefault_infra = "wuji"\n\n'
            '[ssh]\naddress = "private"\nuser = "root"\nwait_seconds = 30\n\n'
            f"[providers]\n{provider} = {json.dumps(settings)}\n".replace('": ', '" = ')
        )
        (root / "infra" / "wuji").mkdir(parents=True)
        (root / "infra" / "wuji" / "infra.json").write_text(
            json.dumps({"servers": [{"hostname": "web-1", "provider": provider}]})
        )
        self.lab = LocalProvider(
            ProviderContext(
                workspace="acme",
                workspace_dir=root,
                infra="lab",
                settings={"addresses": {"web-1": LAB_ADDRESS[provider]}},
            )
        )

    def make_lab_host(self) -> str:
        record, _ = self.lab.create_server(ServerSpec(hostname="web-1"))
        assert record.address == LAB_ADDRESS[self.provider_of()]
        return record.address

    def provider_of(self) -> str:
        text = (self.root / "infra" / "wuji" / "infra.json").read_text()
        return str(json.loads(text)["servers"][0]["provider"])

    def params(self, **more: object) -> dict[str, object]:
        return {"workspace_dir": str(self.root), "infra": "wuji", "hostname": "web-1", **more}

    def cleanup(self) -> None:
        self.lab.delete_server("web-1")
        assert leftovers(self.root) == {}


LAB_ADDRESS = {"upcloud": "10.177.200.10", "aws": "10.177.200.11"}


def install_webserver(ws: RemoteWorkspace, address: str) -> None:
    """A taskserv over SSH on the cloud server (the lab host behind its address)."""
    job = Job(ws.params(taskserv="webserver"))
    try:
        prepared = job.prepare()
        assert prepared["installed"] is False
        assert prepared["address"] == address
        applied = job.apply()
    finally:
        job.close()
    assert applied["url"] == f"http://{address}:8080/"
    page = httpx.get(applied["url"], timeout=5)
    assert page.status_code == 200
    assert "<h1>web-1</h1>" in page.text


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("PROVISIONING_SYSTEM_CONFIG", str(tmp_path / "no-system-config"))
    monkeypatch.delenv("PROVISIONING_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def upcloud(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RemoteWorkspace, FakeUpCloud]]:
    fake = FakeUpCloud(utility_addresses={"web-1": LAB_ADDRESS["upcloud"]})
    with fake.running():
        # Credentials from the environment only, never from the configuration.
        monkeypatch.setenv("UPCLOUD_USERNAME", fake.username)
        monkeypatch.setenv("UPCLOUD_PASSWORD", fake.password)
        ws = RemoteWorkspace(
            home / "acme",
            "upcloud",
            {
                "api_root": fake.url,
                "poll_interval": 0.01,
                "create_timeout": 10,
                "delete_timeout": 10,
                "timeout": 5,
            },
        )
        try:
            yield ws, fake
        finally:
            ws.cleanup()


def test_an_upcloud_server_gets_the_workspace_key_and_is_reached_over_ssh(
    upcloud: tuple[RemoteWorkspace, FakeUpCloud], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, fake = upcloud
    address = ws.make_lab_host()

    created = handlers.server_create(ws.params())

    assert created["created"] is True
    [(_, _, body)] = fake.calls("POST", "/1.3/server")
    assert body is not None
    login = body["server"]["login_user"]
    assert ws.public_key in login["ssh_keys"]["ssh_key"]
    assert created["server"]["extra"]["private_address"] == address
    assert f"SSH answers on {address}:22" in capsys.readouterr().out
    alias = host_keys.alias("wuji", "web-1")
    [recorded] = host_keys.lookup(ws.root / "runtime" / "known_hosts", alias)
    host_pub = ws.root / "runtime/servers/lab/web-1/layers/etc/ssh/ssh_host_ed25519_key.pub"
    assert recorded == " ".join(host_pub.read_text().split()[:2])
    install_webserver(ws, address)

    deleted = handlers.server_delete(ws.params())

    assert deleted["deleted"] is True
    assert host_keys.lookup(ws.root / "runtime" / "known_hosts", alias) == []


@pytest.fixture
def aws(
    home: Path,
    moto: MotoServer,  # noqa: F811 - the fixture of test_provider_aws
    ami: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[RemoteWorkspace, object]]:
    _point_boto3_at(monkeypatch, home, moto.url)
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.177.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.177.200.0/24")["Subnet"]["SubnetId"]
    ws = RemoteWorkspace(
        home / "acme",
        "aws",
        {
            "image": ami,
            "subnet_id": subnet,
            "private_addresses": {"web-1": LAB_ADDRESS["aws"]},
            "wait_delay": 1,
            "wait_timeout": 20,
        },
    )
    try:
        yield ws, ec2
    finally:
        ws.cleanup()


def test_an_aws_instance_gets_the_workspace_key_and_is_reached_over_ssh(
    aws: tuple[RemoteWorkspace, object],
) -> None:
    ws, _ = aws
    ec2 = boto3.client("ec2")
    address = ws.make_lab_host()

    created = handlers.server_create(ws.params())

    assert created["created"] is True
    instance_id = created["server"]["provider_id"]
    assert created["server"]["extra"]["private_ip"] == address
    pairs = ec2.describe_key_pairs(KeyNames=["provisioning-acme"])["KeyPairs"]
    assert len(pairs) == 1
    [instance] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    assert instance["KeyName"] == "provisioning-acme"
    user_data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert ws.public_key in base64.b64decode(user_data["UserData"]["Value"]).decode()
    install_webserver(ws, address)

    deleted = handlers.server_delete(ws.params())

    assert deleted["deleted"] is True


def test_a_credential_in_a_readable_config_file_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = RemoteWorkspace(
        home / "acme", "upcloud", {"api_root": "http://127.0.0.1:9/1.3", "password": "s3cret"}
    )
    config = ws.root / "config" / "provisioning.toml"
    config.chmod(0o644)

    with pytest.raises(SystemExit) as exited:
        handlers.server_create(ws.params())

    assert exited.value.code == 2
    said = capsys.readouterr()
    assert f"{config}: providers.upcloud.password is a credential in a file others can read" in (
        said.err
    )
    assert f"chmod 600 {config}" in said.err
    assert "s3cret" not in said.out + said.err
    ws.cleanup()
