#!/bin/sh
# install.sh BUNDLE -- runs ON THE SERVER (POSIX sh). Lays down a taskserv uploaded
# as BUNDLE: its packages (Debian .debs, unpacked), its rendered files, its service
# (started, supervised); writes VERSION and DIGEST last: their presence means installed.
set -eu
bundle=$1
. "$bundle/taskserv.env"
home=/opt/provisioning/taskservs/$NAME
mkdir -p "$home"
manifest=$home/manifest.new
: > "$manifest"
[ -f "$home/service.argv" ] && [ -f "$home/service.sh" ] && sh "$home/service.sh" stop "$home"
stage=$(mktemp -d)
for deb in "$bundle"/packages/*.deb; do
  [ -e "$deb" ] || continue
  dpkg-deb -x "$deb" "$stage"
done
if [ -d "$bundle/files" ]; then
  cp -a "$bundle/files/." "$stage/"
fi
# Merged /usr: top-level bin, sbin and lib of a package live under /usr. Only the
# folders a host overlays are written (never this machine's own root).
for top in bin sbin lib lib64; do
  if [ -d "$stage/$top" ]; then
    mkdir -p "$stage/usr/$top"
    cp -a "$stage/$top/." "$stage/usr/$top/"
    rm -rf "${stage:?}/$top"
  fi
done
for top in "$stage"/*; do
  case ${top##*/} in
    etc|opt|var|srv|usr) ;;
    *) echo "install: $NAME: refusing to write /${top##*/} (not an overlaid folder)" >&2; exit 2 ;;
  esac
done
(cd "$stage" && find . ! -type d) | sed 's|^\.||' | sort -u > "$manifest"
cp -a "$stage/." /
rm -rf "$stage"
mv "$manifest" "$home/manifest"
for helper in check.sh service.sh supervise.sh remove.sh; do
  cp "$bundle/$helper" "$home/$helper"
done
cp "$bundle/taskserv.env" "$home/taskserv.env"
rm -f "$home/service.argv"
if [ -f "$bundle/service.argv" ]; then
  cp "$bundle/service.argv" "$home/service.argv"
  sh "$home/service.sh" start "$home"
fi
printf '%s\n' "$VERSION" > "$home/VERSION"
printf '%s\n' "$DIGEST" > "$home/DIGEST"
echo "installed $NAME $VERSION ($(wc -l < "$home/manifest") files)"
