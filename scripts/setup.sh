#!/usr/bin/env bash
# Set up a fresh machine for this project: a virtual environment with the package
# and its development tools, and the pinned Nushell binary. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

NU_VERSION=0.115.1
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  # Exactly the locked versions, each checked against its hash (scripts/lock.sh
  # writes requirements.lock); then the package itself, adding nothing.
  # The log keeps pip's chatter out of the way; it is shown when something fails.
  if ! { .venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock &&
         .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .; } \
       >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "setup: installing the Python dependencies failed (log above)" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The task supervisor's spawn helper (src/provisioning/execution/supervisor/spawn.c),
# next to the interpreter where the supervisor looks for it. Without a C compiler the
# supervisor spawns the pure-Python way: the same guarantees, more of its time per task.
helper_src=src/provisioning/execution/supervisor/spawn.c
helper=.venv/bin/provisioning-spawn
if [ ! -x "$helper" ] || [ "$helper_src" -nt "$helper" ]; then
  # Static where libc.a is at hand: the supervisor waits for the helper's exec, and a
  # dynamic one's loader made that wait twice as long.
  if command -v cc >/dev/null && { cc -O2 -Wall -static -o "$helper.tmp" "$helper_src" 2>/dev/null ||
                                   cc -O2 -Wall -o "$helper.tmp" "$helper_src"; }; then
    mv "$helper.tmp" "$helper"
  else
    echo "setup: no C compiler: the task supervisor spawns without its helper" >&2
  fi
fi

# Lab hosts (the local provider's servers) run Debian's OpenSSH server, reached with
# the OpenSSH client; taskserv packages are fetched with `apt-get download`.
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ip >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing openssh-server, openssh-client, iproute2 (apt)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      openssh-server openssh-client iproute2 >/dev/null
  else
    echo "setup: lab hosts need sshd: apt-get install openssh-server (as root)" >&2
  fi
fi

# Nushell from the npm package, pinned. We link the binary itself: the npm
# wrapper script leaves its child running when it is stopped.
nu_bin=.tools/nushell/node_modules/@nushell/linux-x64/bin/nu
if [ ! -x "$nu_bin" ] || [ "$("$nu_bin" --version)" != "$NU_VERSION" ]; then
  command -v npm >/dev/null || { echo "setup: npm is needed to install Nushell" >&2; exit 1; }
  mkdir -p .tools/nushell
  npm install --silent --no-save --no-audit --no-fund --prefix .tools/nushell \
    "@nushell/linux-x64@$NU_VERSION" >/dev/null
fi
ln -sf "$PWD/$nu_bin" .venv/bin/nu
# An editable install leaves the package without bytecode, and where
# PYTHONDONTWRITEBYTECODE is set (CI images, some shells) every start of the CLI,
# the daemon and each Python task compiles it again: ~20 ms of the CLI's ~80.
.venv/bin/python -m compileall -q -j0 src >/dev/null
echo "setup: ready (python $(.venv/bin/python -c 'import platform;print(platform.python_version())'), nu $(.venv/bin/nu --version))" >&2
