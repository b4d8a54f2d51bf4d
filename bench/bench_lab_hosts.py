"""How long a lab host takes to make (until its sshd answers), to reach over SSH and
to delete: ``.venv/bin/python bench/bench_lab_hosts.py [--hosts N] [--rounds R]``
(root, Debian's sshd). Results: ``bench/results/lab_hosts.json``."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench_queue import save_results
from provisioning.providers.base import ProviderContext, ServerSpec
from provisioning.providers.local import LocalProvider
from provisioning.ssh import Endpoint, Ssh
from provisioning.ssh import known_hosts as host_keys
from provisioning.ssh.endpoint import workspace_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("bench/results/lab_hosts.json"))
    args = parser.parse_args()
    create: list[float] = []
    first_command: list[float] = []
    delete: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as folder:
        workspace = Path(folder) / "ws"
        (workspace / "runtime").mkdir(parents=True)
        provider = LocalProvider(
            ProviderContext(workspace="bench", workspace_dir=workspace, infra="bench")
        )
        known = workspace / "runtime" / "known_hosts"
        for _ in range(args.rounds):
            names = [f"host-{i}" for i in range(args.hosts)]
            for name in names:
                started = time.perf_counter()
                record, _ = provider.create_server(ServerSpec(hostname=name))
                create.append(time.perf_counter() - started)
                assert record.address is not None
                endpoint = Endpoint(
                    server=name, infra="bench", address=record.address, key=workspace_key(workspace)
                )
                host_keys.record(known, endpoint.host_key_alias, record.extra["host_key"])
                ssh = Ssh(endpoint, known)
                started = time.perf_counter()
                assert ssh.run(["hostname"]).stdout.strip() == name
                first_command.append(time.perf_counter() - started)
                ssh.close()
            for name in names:
                started = time.perf_counter()
                provider.delete_server(name)
                delete.append(time.perf_counter() - started)
                host_keys.forget(known, host_keys.alias("bench", name))

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median_s": round(statistics.median(values), 4),
            "max_s": round(max(values), 4),
            "min_s": round(min(values), 4),
        }

    result = {
        "hosts": args.hosts,
        "rounds": args.rounds,
        "create_until_sshd_listens": summary(create),
        "first_ssh_command": summary(first_command),
        "delete_until_gone": summary(delete),
    }
    save_results(result, args.output)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
