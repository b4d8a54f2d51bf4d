#!/bin/sh
# check.sh HOME [DIGEST] -- runs ON THE SERVER. Exit 0: installed and healthy; 3: not
# installed (or, DIGEST given, other files/settings installed); 1: installed but
# unhealthy (the reason on stdout).
home=$1
wanted=${2:-}
[ -f "$home/VERSION" ] || { echo "not installed"; exit 3; }
. "$home/taskserv.env"
[ "$(cat "$home/VERSION")" = "$VERSION" ] || { echo "version $(cat "$home/VERSION") installed"; exit 3; }
if [ -n "$wanted" ] && [ "$(cat "$home/DIGEST" 2>/dev/null)" != "$wanted" ]; then
  echo "other files or settings installed"; exit 3
fi
if [ -n "${CHECK_VERSION_ARGV:-}" ]; then
  eval "set -- $CHECK_VERSION_ARGV"
  out=$("$@" 2>&1) || { echo "$1 does not run: $out"; exit 1; }
  case $out in
    *"$CHECK_VERSION"*) ;;
    *) echo "version mismatch: wanted $CHECK_VERSION, $1 says: $out"; exit 1 ;;
  esac
fi
if [ -f "$home/service.argv" ]; then
  sh "$home/service.sh" status "$home" || { echo "service $NAME is not running"; exit 1; }
fi
if [ -n "${CHECK_PORT:-}" ]; then
  i=0
  until ss -Hltn "sport = :$CHECK_PORT" | grep -q .; do
    i=$((i + 1))
    [ $i -ge "${CHECK_WAIT_TENTHS:-150}" ] && { echo "nothing listens on port $CHECK_PORT"; exit 1; }
    sleep 0.1
  done
fi
if [ -n "${CHECK_ARGV:-}" ]; then
  eval "set -- $CHECK_ARGV"
  out=$("$@" 2>&1) || { echo "check $1 failed: $out"; exit 1; }
fi
echo "healthy"
