#!/usr/bin/env bash
# The main job: set up, start the orchestrator on its embedded store, create a
# workspace whose infra holds a small cluster on the local provider, and create the
# cluster through the orchestrator -- three servers in parallel, then taskservs in
# dependency order, one of them a web service -- followed live, ending with the
# service answering on loopback. Everything lives in .demo/ (run again to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

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

step "What exists now"
provisioning server list
provisioning taskserv list

step "The web service answers on loopback"
url=$(provisioning taskserv list --json | python3 -c '
import json, sys
print(next(t["url"] for t in json.load(sys.stdin)["taskservs"] if t.get("url")))')
python3 - "$url" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as reply:
    print(f"GET {sys.argv[1]} -> {reply.status}")
    print(reply.read().decode())
PY

step "Next"
cat <<TEXT
The workspace is $demo/acme; the cluster and the orchestrator are still running.
  cd $demo/acme && export PROVISIONING_CONFIG=$demo/provisioning.toml
  provisioning workflow status $workflow     # steps, tasks, checkpoint
  provisioning workflow list | task list | orchestrator status | env
  provisioning server create --check         # nothing left to do: a no-op
  provisioning cluster delete web --wait --auto-approve && provisioning orchestrator stop   # clean up
TEXT
