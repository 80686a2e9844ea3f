#!/usr/bin/env bash
# A Docker engine and the test image, for the tests that heal containers.
# Sourced by scripts/deps.sh. Uses an engine that already answers (a
# developer's own); otherwise installs Debian's docker.io and starts a
# private dockerd that leaves the host network alone (vfs storage, no
# iptables, no bridge: test containers run with --network none).
# Exports DOCKER_HOST for the tests.

AEGIS_DOCKER_DIR=${AEGIS_DOCKER_DIR:-/tmp/aegis-dockerd}
AEGIS_TEST_IMAGE=aegis-test/busybox:latest

ensure_docker_engine() {
  if [ -z "${DOCKER_HOST:-}" ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    return 0
  fi
  local sock="unix://$AEGIS_DOCKER_DIR/docker.sock"
  if command -v docker >/dev/null && DOCKER_HOST=$sock docker info >/dev/null 2>&1; then
    export DOCKER_HOST=$sock
    return 0
  fi
  apt_install docker.io busybox-static
  mkdir -p "$AEGIS_DOCKER_DIR"
  # A pidfile left by an engine that is gone would stop dockerd from starting.
  if [ -f "$AEGIS_DOCKER_DIR/dockerd.pid" ] && ! kill -0 "$(cat "$AEGIS_DOCKER_DIR/dockerd.pid")" 2>/dev/null; then
    rm -f "$AEGIS_DOCKER_DIR/dockerd.pid"
  fi
  # Leftovers of an engine that was killed (a network namespace mount).
  if mountpoint -q "$AEGIS_DOCKER_DIR/exec/netns/default" 2>/dev/null; then
    umount "$AEGIS_DOCKER_DIR/exec/netns/default" || true
  fi
  echo "starting a private Docker engine at $sock" >&2
  dockerd --data-root "$AEGIS_DOCKER_DIR/data" --exec-root "$AEGIS_DOCKER_DIR/exec" \
    --pidfile "$AEGIS_DOCKER_DIR/dockerd.pid" --host "$sock" \
    --storage-driver=vfs --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    >"$AEGIS_DOCKER_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 120); do
    DOCKER_HOST=$sock docker info >/dev/null 2>&1 && break
    sleep 0.25
  done
  if ! DOCKER_HOST=$sock docker info >/dev/null 2>&1; then
    echo "the Docker engine did not start; its log:" >&2
    tail -20 "$AEGIS_DOCKER_DIR/dockerd.log" >&2
    return 1
  fi
  export DOCKER_HOST=$sock
}

# The test image: busybox (static) with sh, httpd and wget, built locally
# since no registry is reachable.
ensure_test_image() {
  docker image inspect "$AEGIS_TEST_IMAGE" >/dev/null 2>&1 && return 0
  local busybox
  busybox=$(command -v busybox || echo /bin/busybox)
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in sh httpd wget rm echo sleep cat true false kill; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import - "$AEGIS_TEST_IMAGE" >/dev/null
  rm -rf "$rootfs"
}
