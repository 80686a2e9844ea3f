#!/usr/bin/env bash
# What the test suite needs from the machine, installed only when missing.
# Sourced by scripts/test.sh and .ci/run.

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_test_dependencies() {
  # SQLite is compiled in (bundled); the C compiler builds it.
  command -v cc >/dev/null || apt_install gcc libc6-dev
  # Real servers the healing tests flush (they start them on free ports
  # themselves; the packages' own services are not used).
  apt_install pkg-config redis-server memcached
  # A real headless browser for the dashboard test, and the monitoring
  # stack the agent must work with (started by the tests on free ports).
  apt_install chromium prometheus prometheus-alertmanager
  # The fleet test's network namespaces, the HTTP client of the scripts,
  # and the unit checker of the packaging test.
  apt_install iproute2 curl systemd
  # A real SMTP server for the email receiver's test, and a FUSE file
  # system whose server the hung-mount test stops.
  apt_install python3-aiosmtpd bindfs
  # Podman for the container tests on it (runc comes with docker.io;
  # catatonit is its --init).
  apt_install podman catatonit
  # A Docker engine (reused if one answers) and the locally built test image.
  # shellcheck source=scripts/docker-engine.sh
  source "$(dirname "${BASH_SOURCE[0]}")/docker-engine.sh"
  ensure_docker_engine
  ensure_test_image
}
