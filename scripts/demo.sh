#!/usr/bin/env bash
# The main job: set up, start the orchestrator on the embedded store, submit a
# handful of tasks (Nushell, Python, plain commands; priorities; a retry) and
# show them finish. Everything lives in .demo/ (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

demo="$PWD/.demo"
port="${DEMO_PORT:-9090}"
mkdir -p "$demo"
cat > "$demo/provisioning.toml" <<TOML
[server]
port = $port
[storage]
data_dir = "$demo/data"
[executor]
max_concurrent_tasks = 4
TOML
export PROVISIONING_CONFIG="$demo/provisioning.toml"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { provisioning orchestrator stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "Start the orchestrator (SQLite store in $demo/data)"
provisioning orchestrator start --daemon
provisioning version

step "Submit tasks"
ids=()
ids+=("$(provisioning task submit --json --name greet --nu examples/hello.nu greet \
        --params '{"name": "Ada; $(rm -rf /) (ls)"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["task_id"])')")
ids+=("$(provisioning task submit --json --name inventory --priority high \
        --python provisioning.examples inventory --params '{"label": "demo"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["task_id"])')")
ids+=("$(provisioning task submit --json --name countdown --python provisioning.examples countdown \
        --params '{"from": 5}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["task_id"])')")
flaky="$demo/flaky-counter"; rm -f "$flaky"
ids+=("$(provisioning task submit --json --name flaky --max-attempts 3 -- sh -c \
        "n=\$(cat '$flaky' 2>/dev/null || echo 0); echo \$((n+1)) > '$flaky'; [ \$n -ge 1 ] || { echo 'first try fails' >&2; exit 1; }" \
        | python3 -c 'import json,sys;print(json.load(sys.stdin)["task_id"])')")
for i in 1 2 3; do
  ids+=("$(provisioning task submit --json --name "shell-$i" --priority low -- sh -c "echo PROGRESS: 50 working; echo task $i on \$(hostname)" \
          | python3 -c 'import json,sys;print(json.load(sys.stdin)["task_id"])')")
done
printf 'submitted %d tasks\n' "${#ids[@]}"

step "Follow the Nushell task until it ends"
provisioning task submit --wait --name hello-again --nu examples/hello.nu greet --params '{"name": "Grace"}'

step "Wait for the rest"
python3 - "${ids[@]}" <<'PY'
import json, subprocess, sys, time
deadline = time.monotonic() + 60
pending = set(sys.argv[1:])
while pending and time.monotonic() < deadline:
    for task_id in list(pending):
        out = subprocess.run(["provisioning", "task", "status", "--json", task_id], capture_output=True, text=True, check=True)
        if json.loads(out.stdout)["status"] not in ("pending", "running"):
            pending.discard(task_id)
    time.sleep(0.2)
sys.exit(1 if pending else 0)
PY
provisioning task list
step "The flaky task took two attempts"
provisioning task status "${ids[3]}"
step "The greeting's parameters came back as plain data"
provisioning task status "${ids[0]}"
provisioning orchestrator status

step "Next"
cat <<TEXT
Look around while it runs:   PROVISIONING_CONFIG=$demo/provisioning.toml provisioning orchestrator start --daemon
  provisioning task list | task status ID | task logs ID -f | orchestrator status | env
The API (token in $demo/data/api-token):  curl -H "Authorization: Bearer \$(cat $demo/data/api-token)" http://127.0.0.1:$port/tasks
TEXT
