#!/usr/bin/env bash
# The main job: set up, start the orchestrator on its embedded store, create a
# workspace whose infra holds a small cluster on the local provider, and create the
# cluster through the orchestrator -- three lab hosts (namespaces running a real sshd)
# in parallel, then taskservs in dependency order, installed over SSH from Debian's
# packages (runc -> containerd, a 3-member etcd -> kubernetes, a web service) --
# followed live, ending with the service answering on its host's address. Lab hosts
# need root (and sshd: scripts/setup.sh installs it). Everything lives in .demo/
# (run again to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "$(id -u)" != 0 ]; then
  echo "demo: lab hosts (network and mount namespaces) need root: sudo $0" >&2
  exit 2
fi

demo="$PWD/.demo"
port="${DEMO_PORT:-9090}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A previous run's cluster and orchestrator go first (their processes are ours).
if [ -d "$demo/acme" ]; then
  (cd "$demo/acme" && PROVISIONING_CONFIG="$demo/provisioning.toml" \
    provisioning cluster delete web --direct --auto-approve >/dev/null 2>&1) || true
fi
PROVISIONING_CONFIG="$demo/provisioning.toml" provisioning orchestrator stop >/dev/null 2>&1 || true
rm -rf "$demo"
mkdir -p "$demo"
cat > "$demo/provisioning.toml" <<TOML
[server]
port = $port
[storage]
data_dir = "$demo/orchestrator"
[executor]
max_concurrent_tasks = 8
TOML
export PROVISIONING_CONFIG="$demo/provisioning.toml"

step "Start the orchestrator (SQLite store in $demo/orchestrator)"
provisioning orchestrator start --daemon
provisioning version

step "A Nushell task, with parameters that stay data"
provisioning task submit --wait --nu examples/hello.nu greet --params '{"name": "Ada; $(rm -rf /) (ls)"}'

step "Create a workspace"
provisioning workspace init acme --path "$demo/acme" --infra wuji
cd "$demo/acme"
cat infra/wuji/infra.ncl

step "Plan the cluster (--check changes nothing)"
provisioning cluster create web --check

step "Create it on the orchestrator, and follow it live"
submitted=$(provisioning cluster create web --orchestrated --json)
workflow=$(printf '%s' "$submitted" | python3 -c 'import json,sys;print(json.load(sys.stdin)["workflow_id"])')
echo "Workflow submitted: $workflow"
provisioning workflow monitor "$workflow"

step "What exists now: three lab hosts, reached over SSH"
provisioning server list
provisioning taskserv list

step "A server is its own machine: hostname, network namespace, files"
provisioning server ssh web-1 -- hostname
echo "network namespace there: $(provisioning server ssh web-1 -- readlink /proc/self/ns/net), here: $(readlink /proc/self/ns/net)"
provisioning server ssh node-1 -- ls /etc/etcd /etc/kubernetes
ls /etc/etcd 2>/dev/null || echo "(no /etc/etcd on this machine)"

step "Health checks, run on the servers (taskserv status)"
provisioning taskserv status

step "etcd: one cluster of three members"
node_address=$(provisioning server list --json | python3 -c '
import json, sys
print(next(s["address"] for s in json.load(sys.stdin)["servers"] if s["hostname"] == "node-1"))')
provisioning server ssh node-1 -- etcdctl --endpoints "http://$node_address:2379" endpoint health --cluster

step "The web service answers on its server's address (and not on this machine's loopback)"
url=$(provisioning taskserv list --json | python3 -c '
import json, sys
print(next(t["url"] for t in json.load(sys.stdin)["taskservs"] if t.get("url")))')
python3 - "$url" <<'PY'
import sys, urllib.error, urllib.request
url = sys.argv[1]
with urllib.request.urlopen(url, timeout=5) as reply:
    print(f"GET {url} -> {reply.status}")
    print(reply.read().decode())
loopback = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
try:
    urllib.request.urlopen(loopback, timeout=2)
    print(f"GET {loopback} -> answered (something else of this machine)")
except (urllib.error.URLError, OSError) as exc:
    print(f"GET {loopback} -> {exc.__class__.__name__}: nothing of ours here")
PY

step "Next"
cat <<TEXT
The workspace is $demo/acme; the cluster and the orchestrator are still running.
  cd $demo/acme && export PROVISIONING_CONFIG=$demo/provisioning.toml
  provisioning workflow status $workflow     # steps, tasks, checkpoint
  provisioning workflow list | task list | orchestrator status | env
  provisioning server create --check         # nothing left to do: a no-op
  provisioning server ssh web-1              # a shell on a server
  provisioning taskserv status               # health checks over SSH
  provisioning cluster delete web --wait --auto-approve && provisioning orchestrator stop   # clean up
TEXT
