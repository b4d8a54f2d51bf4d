#!/bin/sh
# service.sh start|stop|status HOME -- runs ON THE SERVER. A taskserv's service under
# supervise.sh, in a session of its own; its pid in /run/provisioning/NAME.pid.
set -eu
action=$1
home=$2
. "$home/taskserv.env"
pidfile=/run/provisioning/$NAME.pid
running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}
case $action in
  start)
    running && exit 0
    mkdir -p /run/provisioning /var/log/provisioning
    setsid sh "$home/supervise.sh" "$home" >> "/var/log/provisioning/$NAME.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    ;;
  stop)
    if running; then
      pid=$(cat "$pidfile")
      kill -TERM "$pid"
      i=0
      while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    ;;
  status)
    running
    ;;
esac
