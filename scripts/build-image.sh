#!/usr/bin/env bash
# Builds the agent's container image without any registry: a root
# filesystem holding the binary, the shared libraries it links (as `ldd`
# lists them), CA certificates for https receivers, and the directories the
# agent uses as root (/etc/aegis, /var/lib/aegis), imported with
# `docker import`. The result is the image the Dockerfile describes for
# those who have a registry.
#
# Usage: scripts/build-image.sh [BINARY] [TAG]
#   BINARY  default target/release/aegis (built when missing)
#   TAG     default aegis:latest
# Uses DOCKER_HOST like the docker client does.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/aegis}"
tag="${2:-aegis:latest}"
if [ ! -x "$bin" ] && [ "$bin" = target/release/aegis ]; then
  cargo build --release -q -p aegis
fi
[ -x "$bin" ] || { echo "build-image: no binary at $bin" >&2; exit 1; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/bin" "$rootfs/etc/aegis" "$rootfs/var/lib/aegis" "$rootfs/tmp" \
  "$rootfs/etc/ssl/certs" "$rootfs/proc" "$rootfs/host"
chmod 1777 "$rootfs/tmp"
cp "$bin" "$rootfs/usr/bin/aegis"
# Every library the binary links, and the dynamic loader, at their paths.
ldd "$bin" | awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(/ { print $1 }' | sort -u | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
# The loader is also looked up at its canonical path.
if [ -e /lib64/ld-linux-x86-64.so.2 ] && [ ! -e "$rootfs/lib64/ld-linux-x86-64.so.2" ]; then
  mkdir -p "$rootfs/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/root:/usr/bin/aegis\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/bin/aegis"]' \
  --change 'CMD ["run"]' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'EXPOSE 9477' \
  --change 'VOLUME /var/lib/aegis' \
  --change 'LABEL org.opencontainers.image.title=aegis' \
  - "$tag" >/dev/null
echo "$tag"
