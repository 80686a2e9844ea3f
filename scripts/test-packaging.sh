#!/usr/bin/env bash
# How the agent is installed, checked on this machine with the real tools:
#
# 1. `cargo install --path crates/aegis --root DIR`, then `DIR/bin/aegis version`.
# 2. The systemd unit passes `systemd-analyze verify` (with the binary at
#    the path the unit names, which the package puts there).
# 3. The Debian package (`cargo deb`, installed when missing): `dpkg -i`,
#    `aegis version`, `aegis check-config /etc/aegis/aegis.toml`, the unit
#    and the state directory in place; `dpkg -r` removes the binary and
#    keeps the configuration and the state; `dpkg --purge` removes both.
#
# Needs root (dpkg). Leaves the machine as it found it: a package of the
# same name installed before is refused rather than replaced.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test-packaging: needs root (dpkg -i)" >&2
  exit 1
fi
if dpkg -s aegis >/dev/null 2>&1; then
  echo "test-packaging: a package named aegis is installed already; remove it first" >&2
  exit 1
fi

fail() { echo "test-packaging: FAILED: $*" >&2; exit 1; }
step() { echo "test-packaging: $*" >&2; }

root=$(mktemp -d)
cleanup() {
  if dpkg -s aegis >/dev/null 2>&1; then dpkg --purge aegis >/dev/null 2>&1 || true; fi
  rm -rf "$root"
}
trap cleanup EXIT

# 0. The Kubernetes manifests, against the Kubernetes schemas, strictly;
#    and the configuration they carry, against the agent.
venv="${AEGIS_PACKAGING_VENV:-$HOME/.cache/aegis/packaging-venv}"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  step "installing kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate pyyaml >&2
fi
step "kubernetes-validate --strict packaging/kubernetes/aegis.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet packaging/kubernetes/aegis.yaml ||
  fail "the Kubernetes manifests do not validate"
"$venv/bin/python" - packaging/kubernetes/aegis.yaml "$root/k8s.toml" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap":
        open(sys.argv[2], "w").write(doc["data"]["aegis.toml"])
        break
else:
    sys.exit("no ConfigMap with aegis.toml")
PY
cargo build -q -p aegis
AEGIS_API_TOKEN=kubernetes-secret-token target/debug/aegis check-config "$root/k8s.toml" >/dev/null ||
  fail "the ConfigMap's aegis.toml does not pass check-config"

# 1. cargo install (the release build it makes is reused by the package).
step "cargo install --path crates/aegis --root $root"
cargo install --locked --quiet --path crates/aegis --root "$root"
version=$("$root/bin/aegis" version) || fail "$root/bin/aegis version"
[[ "$version" == aegis\ * ]] || fail "$root/bin/aegis version said: $version"
step "installed binary: $("$root/bin/aegis" version)"

# 2 and 3. The package.
if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb"
  cargo install --locked --quiet cargo-deb
fi
step "cargo deb"
deb=$(cargo deb -p aegis --no-build --quiet)
[ -f "$deb" ] || deb=$(ls -t target/debian/aegis_*.deb | head -1)
step "package: $deb"
# (Outputs are captured before matching: `grep -q` closing a pipe early
# would fail the pipeline under pipefail.)
[ "$(dpkg-deb --field "$deb" Package)" = aegis ] || fail "dpkg-deb --field Package"
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/aegis ./etc/aegis/aegis.toml ./lib/systemd/system/aegis.service; do
  grep -qF "$path" <<<"$contents" || fail "no $path in the package"
done

step "dpkg -i"
dpkg -i "$deb" >/dev/null
[ -x /usr/bin/aegis ] || fail "/usr/bin/aegis missing after dpkg -i"
version=$(aegis version) || fail "aegis version"
[[ "$version" == aegis\ * ]] || fail "aegis version said: $version"
aegis check-config /etc/aegis/aegis.toml >/dev/null || fail "aegis check-config /etc/aegis/aegis.toml"
[ -d /var/lib/aegis ] || fail "/var/lib/aegis missing after dpkg -i"
[ -f /lib/systemd/system/aegis.service ] || fail "the unit is missing"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' aegis)
grep -qF /etc/aegis/aegis.toml <<<"$conffiles" ||
  fail "/etc/aegis/aegis.toml is not a configuration file of the package"
step "systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/aegis.service
systemd-analyze verify packaging/systemd/aegis.service

# Root with the package's paths: the agent uses /etc/aegis/aegis.toml and
# /var/lib/aegis without being told.
step "aegis run as root on the package's paths"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
aegis run --listen "127.0.0.1:$port" --log-format json >"$root/run.log" 2>&1 &
pid=$!
up=0
for _ in $(seq 1 200); do
  if curl -fsS "127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] || { cat "$root/run.log" >&2; kill "$pid" 2>/dev/null || true; fail "the installed agent did not answer"; }
kill -TERM "$pid"
wait "$pid" || fail "the installed agent did not stop cleanly"
[ -f /var/lib/aegis/aegis.db ] || fail "the agent did not keep its state in /var/lib/aegis"
grep -qF /var/lib/aegis "$root/run.log" || fail "the log does not name /var/lib/aegis"

step "dpkg -r"
dpkg -r aegis >/dev/null
[ ! -e /usr/bin/aegis ] || fail "/usr/bin/aegis left after dpkg -r"
[ ! -e /lib/systemd/system/aegis.service ] || fail "the unit left after dpkg -r"
[ -f /etc/aegis/aegis.toml ] || fail "dpkg -r removed the configuration (it should keep it)"
[ -d /var/lib/aegis ] || fail "dpkg -r removed the state (it should keep it)"

step "dpkg --purge"
dpkg --purge aegis >/dev/null
[ ! -e /etc/aegis/aegis.toml ] || fail "the configuration left after --purge"
[ ! -e /var/lib/aegis ] || fail "the state left after --purge"
step "ok"
