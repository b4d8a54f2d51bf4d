#!/bin/sh
# supervise.sh HOME -- runs ON THE SERVER. Keeps a taskserv's service running: starts
# the argv of HOME/service.argv (quoted by the platform), restarts it when it exits,
# stops it on TERM.
home=$1
. "$home/taskserv.env"
eval "set -- $(cat "$home/service.argv")"
child=
trap 'trap - TERM INT; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM INT
while :; do
  "$@" &
  child=$!
  wait "$child"
  echo "$(date '+%F %T') $NAME exited ($?); restarting in 1s"
  sleep 1
done
