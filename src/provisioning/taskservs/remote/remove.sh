#!/bin/sh
# remove.sh HOME -- runs ON THE SERVER. Undoes install.sh: stops the service, deletes
# every file it laid down, then its home.
set -eu
home=$1
[ -d "$home" ] || exit 0
. "$home/taskserv.env"
if [ -f "$home/service.argv" ]; then sh "$home/service.sh" stop "$home"; fi
if [ -f "$home/manifest" ]; then
  while IFS= read -r path; do
    case $path in
      /etc/*|/opt/*|/var/*|/srv/*|/usr/*) rm -f "$path" ;;
    esac
  done < "$home/manifest"
fi
rm -rf "$home" "/opt/provisioning/bundles/$NAME"
echo "removed $NAME"
