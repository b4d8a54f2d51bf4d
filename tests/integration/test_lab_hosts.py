"""Lab hosts (the ``local`` provider) and the SSH layer, for real: namespaces running
Debian's sshd, reached with the OpenSSH client. No SSH is mocked.

One pair of hosts serves the module; tests that break a host make their own and
delete it. Every test's hosts are gone afterwards: no process, mount, veth or
registry entry of theirs is left (and no bridge once none of ours remains).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.providers.base import ProviderContext, ServerSpec
from provisioning.providers.lab import hosts, network
from provisioning.providers.local import LocalProvider
from provisioning.ssh import Endpoint, Ssh, SshError, SshErrorKind, wait_for_ssh
from provisioning.ssh import known_hosts as host_keys
from provisioning.ssh.endpoint import workspace_key
from provisioning.ssh.keys import ensure_key_pair
from tests.conftest import wait_for
from tests.lab import lab_links, leftovers, needs_lab

pytestmark = needs_lab


class Lab:
    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.provider = LocalProvider(
            ProviderContext(workspace="acme", workspace_dir=workspace, infra="default")
        )
        self.known = workspace / "runtime" / "known_hosts"

    def create(self, hostname: str) -> Endpoint:
        record, _ = self.provider.create_server(ServerSpec(hostname=hostname))
        assert record.address is not None
        endpoint = Endpoint(
            server=hostname,
            infra="default",
            address=record.address,
            key=workspace_key(self.workspace),
        )
        host_keys.record(self.known, endpoint.host_key_alias, record.extra["host_key"])
        wait_for_ssh(endpoint, self.known, timeout=20)
        return endpoint

    def ssh(self, endpoint: Endpoint) -> Ssh:
        return Ssh(endpoint, self.known, connect_timeout=5)

    def folder(self, hostname: str) -> Path:
        return self.workspace / "runtime" / "servers" / "default" / hostname


def assert_nothing_left(workspace: Path) -> None:
    wait_for(lambda: not leftovers(workspace), timeout=10, message="no leftovers")
    if not any((network.REGISTRY / "hosts").glob("*.json")):
        assert lab_links() == [], "the bridge and every veth go with the last lab host"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workspace = tmp_path_factory.mktemp("lab") / "acme"
    (workspace / "runtime").mkdir(parents=True)
    made = Lab(workspace)
    try:
        yield made
    finally:
        for record in made.provider.list_servers():
            made.provider.delete_server(record.hostname)
        assert_nothing_left(workspace)


@pytest.fixture(scope="module")
def pair(lab: Lab) -> tuple[Endpoint, Endpoint]:
    return lab.create("web-1"), lab.create("web-2")


def test_a_host_is_its_own_machine(lab: Lab, pair: tuple[Endpoint, Endpoint]) -> None:
    web1, _ = pair
    ssh = lab.ssh(web1)

    assert ssh.run(["hostname"]).stdout.strip() == "web-1"
    assert web1.address.startswith("10.177.")
    # Its own network namespace, process tree (PID 1 is its init) and filesystem view.
    remote_net = ssh.run(["readlink", "/proc/self/ns/net"]).stdout.strip()
    assert remote_net != os.readlink("/proc/self/ns/net")
    assert "init.py" in ssh.run(["cat", "/proc/1/cmdline"]).stdout
    ssh.run(["sh", "-c", "echo on-the-host > /etc/provisioning-test-marker"])
    assert not Path("/etc/provisioning-test-marker").exists()
    assert (lab.folder("web-1") / "layers" / "etc" / "provisioning-test-marker").is_file()
    # The machine's homes and the workspace (its keys) are not visible in the host.
    assert ssh.run(["ls", "-A", "/root"]).stdout.strip() == ""
    listed = ssh.run(["sh", "-c", 'ls -A "$1" 2>/dev/null | wc -l', "ls", str(lab.workspace)])
    assert listed.stdout.strip() == "0"
    # No route out: only the lab subnet.
    routes = ssh.run(["ip", "-4", "route"]).stdout
    assert "default" not in routes
    assert "10.177.0.0/16" in routes


def test_hosts_reach_each_other(lab: Lab, pair: tuple[Endpoint, Endpoint]) -> None:
    web1, web2 = pair
    probe = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 22), 5); "
        "print(s.recv(7).decode())"
    )
    answer = lab.ssh(web1).run(["python3", "-c", probe, web2.address]).stdout
    assert answer.strip() == "SSH-2.0"


def test_arguments_stay_data(lab: Lab, pair: tuple[Endpoint, Endpoint], tmp_path: Path) -> None:
    hostile = ["a b", "$(touch /tmp/pwned)", "`id`", "'; rm -rf / #", '"quoted"', "*"]
    ssh = lab.ssh(pair[0])

    echoed = ssh.run(["printf", "%s\\n", *hostile]).stdout.splitlines()

    assert echoed == hostile
    assert ssh.run(["sh", "-c", "test -e /tmp/pwned || echo absent"]).stdout.strip() == "absent"
    assert ssh.run(["cat"], stdin=b"from stdin\n").stdout == "from stdin\n"
    local = tmp_path / "bundle"
    (local / "sub").mkdir(parents=True)
    (local / "sub" / "file.txt").write_text("uploaded\n")
    ssh.upload(local, "/opt/bundle")
    assert ssh.run(["cat", "/opt/bundle/sub/file.txt"]).stdout == "uploaded\n"


def test_the_exit_code_and_stderr_of_a_failing_command(
    lab: Lab, pair: tuple[Endpoint, Endpoint]
) -> None:
    ssh = lab.ssh(pair[0])
    assert ssh.run(["sh", "-c", "exit 7"], check=False).code == 7
    with pytest.raises(SshError) as caught:
        ssh.run(["sh", "-c", "echo broken >&2; exit 3"])
    assert caught.value.kind is SshErrorKind.FAILED
    assert str(caught.value) == "server web-1: sh exited 3: broken"


def test_a_changed_host_key_is_refused_naming_both_fingerprints(
    lab: Lab, pair: tuple[Endpoint, Endpoint], tmp_path: Path
) -> None:
    web1, _ = pair
    real = host_keys.lookup(lab.known, web1.host_key_alias)[0]
    other = ensure_key_pair(tmp_path / "other", "impostor")
    known = tmp_path / "known_hosts"
    host_keys.record(known, web1.host_key_alias, other)
    ssh = Ssh(web1, known, connect_timeout=5)

    with pytest.raises(SshError) as caught:
        ssh.run(["touch", "/etc/should-not-exist"])

    message = str(caught.value)
    assert caught.value.kind is SshErrorKind.HOST_KEY_CHANGED
    assert "\n" not in message
    assert message.startswith("server web-1 (root@")
    assert f"recorded {host_keys.fingerprint(other)}" in message
    assert f"offered {host_keys.fingerprint(real)}" in message
    assert "nothing was done" in message
    assert lab.ssh(web1).run(["sh", "-c", "test -e /etc/should-not-exist || echo no"]).stdout == (
        "no\n"
    )


def test_a_wrong_key_is_refused(lab: Lab, pair: tuple[Endpoint, Endpoint], tmp_path: Path) -> None:
    web1, _ = pair
    ensure_key_pair(tmp_path / "stranger", "stranger")
    stranger = Endpoint(
        server="web-1", infra="default", address=web1.address, key=tmp_path / "stranger"
    )
    with pytest.raises(SshError) as caught:
        Ssh(stranger, lab.known, connect_timeout=5).run(["true"])
    assert caught.value.kind is SshErrorKind.AUTH
    assert "server web-1" in str(caught.value)
    assert "authentication refused for root" in str(caught.value)


def test_a_host_whose_sshd_died_is_reported_and_cannot_be_reached(lab: Lab) -> None:
    endpoint = lab.create("broken-1")
    folder = lab.folder("broken-1")
    assert hosts.state(folder) is hosts.HostState.RUNNING

    assert hosts.stop_sshd(folder)

    wait_for(lambda: hosts.state(folder) is hosts.HostState.SSHD_DEAD, message="sshd-dead")
    assert lab.provider.find_server("broken-1").status == "sshd-dead"  # type: ignore[union-attr]
    with pytest.raises(SshError) as caught:
        Ssh(endpoint, lab.known, connect_timeout=3).run(["true"])
    assert caught.value.kind is SshErrorKind.UNREACHABLE
    assert "server broken-1" in str(caught.value)
    assert "cannot connect" in str(caught.value)
    assert lab.provider.delete_server("broken-1")
    assert not folder.exists()


def test_delete_kills_every_process_of_the_host(lab: Lab) -> None:
    endpoint = lab.create("doomed-1")
    folder = lab.folder("doomed-1")
    pid1 = int(hosts.read(folder)["pid"])  # type: ignore[index]
    ssh = lab.ssh(endpoint)
    # A daemon of the host's own, out of its session: it dies with PID 1.
    ssh.run(["sh", "-c", "setsid sleep 300 > /dev/null 2>&1 < /dev/null &"])
    ssh.close()
    inside = [
        p for p in (int(x) for x in os.listdir("/proc") if x.isdigit()) if _pid_ns_of(p, pid1)
    ]
    assert len(inside) >= 3  # init, sshd, sleep

    assert lab.provider.delete_server("doomed-1")

    assert not folder.exists()
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in inside), message="all gone")
    assert lab.provider.find_server("doomed-1") is None
    assert lab.provider.delete_server("doomed-1") is False


def _pid_ns_of(pid: int, pid1: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{pid1}/ns/pid")
    except OSError:
        return False


def test_create_is_idempotent(lab: Lab, pair: tuple[Endpoint, Endpoint]) -> None:
    record, created = lab.provider.create_server(ServerSpec(hostname="web-1"))
    assert created is False
    assert record.address == pair[0].address
    assert [r.hostname for r in lab.provider.list_servers()] == ["web-1", "web-2"]


UNPRIVILEGED_SCRIPT = """
import json, sys
from pathlib import Path
from provisioning.providers.base import ProviderContext, ServerSpec
from provisioning.providers.local import LocalProvider
from provisioning.ssh import Endpoint, Ssh
from provisioning.ssh import known_hosts as host_keys
from provisioning.ssh.endpoint import workspace_key
workspace = Path(sys.argv[1])
(workspace / "runtime").mkdir(parents=True, exist_ok=True)
provider = LocalProvider(ProviderContext(workspace="w", workspace_dir=workspace, infra="d"))
record, _ = provider.create_server(ServerSpec(hostname="web-1"))
endpoint = Endpoint(server="web-1", infra="d", address=record.address,
                    port=record.extra["ssh_port"], user=record.extra["login_user"],
                    key=workspace_key(workspace))
known = workspace / "runtime" / "known_hosts"
host_keys.record(known, endpoint.host_key_alias, record.extra["host_key"])
ssh = Ssh(endpoint, known)
said = ssh.run(["sh", "-c", "hostname; cat /proc/1/cmdline; echo; echo x > /etc/lab-marker; id -u"])
ssh.close()
print(json.dumps({"record": record.as_dict(), "said": said.stdout.splitlines(),
                  "deleted": provider.delete_server("web-1")}))
"""


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs Debian's python3")
def test_without_root_lab_hosts_degrade_to_user_namespaces_on_loopback(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lab-unprivileged-"))
    folder.chmod(0o777)
    workspace = folder / "ws"
    # Debian's interpreter (this venv's may live under root's home), with the venv's
    # packages and our sources on its path, as the unprivileged user "nobody".
    path = [str(Path(__file__).resolve().parents[2] / "src"), *site.getsitepackages()]
    try:
        done = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                UNPRIVILEGED_SCRIPT,
                str(workspace),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ["PATH"], "HOME": str(folder), "PYTHONPATH": ":".join(path)},
            cwd=folder,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        record = result["record"]
        assert record["address"].startswith("127.177.")
        assert record["extra"]["ssh_port"] == 2222
        assert record["extra"]["login_user"] == "lab"
        assert "user namespaces" in record["extra"]["note"]
        hostname, init, uid = result["said"]
        assert hostname == "web-1"
        assert "init.py" in init  # PID 1 of its own PID namespace
        assert uid == "65534"
        assert not Path("/etc/lab-marker").exists()
        assert result["deleted"] is True
        assert leftovers(workspace) == {}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not Path("/usr/bin/sudo").exists(), reason="sudo is not installed here")
def test_sudo_that_needs_a_password_is_said_so(lab: Lab, pair: tuple[Endpoint, Endpoint]) -> None:
    web1, _ = pair
    root = lab.ssh(web1)
    # '*': no password, but not a locked account (sshd refuses those).
    root.run(["sh", "-c", "id deploy >/dev/null 2>&1 || useradd -m -p '*' -s /bin/sh deploy"])
    deploy = Endpoint(
        server="web-1",
        infra="default",
        address=web1.address,
        user="deploy",
        key=web1.key,
        use_sudo=True,
    )
    ssh = lab.ssh(deploy)
    assert ssh.run(["id", "-un"], sudo=False).stdout.strip() == "deploy"

    with pytest.raises(SshError) as caught:
        ssh.run(["touch", "/etc/by-sudo"])

    assert caught.value.kind is SshErrorKind.SUDO_PASSWORD
    assert str(caught.value) == (
        "server web-1: sudo needs a password for deploy; allow it NOPASSWD or connect as "
        "root (ssh.user)"
    )
    ssh.close()
