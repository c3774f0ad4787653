#!/usr/bin/env bash
# Prepares a checkout for `npm run demo`, `npm test` and `npm run bench` on
# Debian 12: npm dependencies (with Node 24 from the `node` devDependency),
# `npx dwcp`, the system packages the tests drive (PostgreSQL 15, etcd,
# iproute2, iptables, rsync, iperf3, openssl, nginx, a C toolchain), the
# unprivileged test user, and the native bindings.
#
# Idempotent: each step checks first and prints one line only when it acts,
# so a second run is quiet and fast. Tools' own output is shown only when
# they fail.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# User PostgreSQL and other tests run as (PostgreSQL refuses to run as root).
readonly TEST_USER=dwcp-test
# Node major the project runs on (package.json engines).
readonly NODE_MAJOR=24
# Marks the last successful native build; inside node_modules so that a
# fresh `npm ci` (maybe a new Node) forces a rebuild.
readonly NATIVE_STAMP=node_modules/.cache/dwcp/native-build.stamp

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output captured; shows the output only on failure
# and returns the command's status.
quietly() {
  local log status=0
  log="$(mktemp "${TMPDIR:-/tmp}/dwcp-setup.XXXXXX")"
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    printf 'setup: error: failed (exit %s): %s\n' "$status" "$*" >&2
  fi
  rm -f "$log"
  return "$status"
}

# Stops a system service if it runs; systemctl or service may be absent.
stop_service() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl is-active --quiet "$1" 2>/dev/null || return 0
    say "stopping system service $1 (tests start their own)"
    systemctl stop "$1" >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1 && [ -e "/etc/init.d/$1" ]; then
    service "$1" status >/dev/null 2>&1 || return 0
    say "stopping system service $1 (tests start their own)"
    service "$1" stop >/dev/null 2>&1 || true
  fi
}

# --- npm dependencies (Node 24 arrives with them) ---------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm install, from package-lock.json)"
  command -v npm >/dev/null || die "npm not found; install Node.js and npm (Debian: apt-get install nodejs npm)"
  # Not `npm ci`: @currentspace/http3 0.9.0 lists optional per-platform
  # packages that were never published (404), which `npm ci` reports as an
  # out-of-sync lock. Its binaries ship inside the main package, so `npm
  # install` (which skips missing optional packages and keeps the lock as it
  # is) installs the same tree.
  npm install --no-audit --no-fund
  touch node_modules/.package-lock.json
fi
[ -x node_modules/.bin/node ] || die "node_modules/.bin/node is missing: the node@${NODE_MAJOR} devDependency did not install (run: npm install --no-audit --no-fund)"
node_version="$(node_modules/.bin/node --version)" || die "node_modules/.bin/node does not run"
case "$node_version" in
  "v${NODE_MAJOR}."*) ;;
  *) die "node_modules/.bin/node is ${node_version}, DWCP needs v${NODE_MAJOR}.x (the node@${NODE_MAJOR} devDependency; run: npm ci --no-audit --no-fund)" ;;
esac

# --- npx dwcp ---------------------------------------------------------------
# npm links dependencies' bins, never the root package's own.
if [ ! -e node_modules/.bin/dwcp ]; then
  say "linking node_modules/.bin/dwcp -> bin/dwcp"
  rm -f node_modules/.bin/dwcp   # a dangling link
  ln -s ../../bin/dwcp node_modules/.bin/dwcp
fi

# --- system packages --------------------------------------------------------
# True when a command exists, also in sbin directories a non-root PATH lacks.
have() {
  case "$1" in
    /*) [ -x "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

# binary:package pairs; checked by binary so machines that have them skip apt.
readonly REQUIRED=(
  /usr/lib/postgresql/15/bin/postgres:postgresql-15
  /usr/bin/etcd:etcd-server
  /usr/bin/etcdctl:etcd-client
  ip:iproute2
  iptables:iptables
  rsync:rsync
  iperf3:iperf3
  openssl:openssl
  nginx:nginx-light
  gcc:build-essential
  g++:build-essential
  make:build-essential
)
missing=()
for pair in "${REQUIRED[@]}"; do
  binary="${pair%%:*}" package="${pair#*:}"
  if ! have "$binary" && [[ " ${missing[*]-} " != *" $package "* ]]; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  apt_install=(apt-get install -y --no-install-recommends "${missing[@]}")
  if [ "$(id -u)" -ne 0 ]; then
    printf 'setup: missing system packages: %s\n' "${missing[*]}" >&2
    printf 'setup: install them as root with:\n  apt-get update && DEBIAN_FRONTEND=noninteractive %s\n' "${apt_install[*]}" >&2
    exit 1
  fi
  say "installing system packages: ${missing[*]}"
  quietly apt-get update

  # Keep package scripts from starting services (tests start their own); a
  # policy-rc.d that is already there (container images) is left alone.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# Written by dwcp scripts/setup.sh during apt-get install.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive quietly "${apt_install[@]}"

  # Stop the services in case the packages started them anyway.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then stop_service postgresql; fi
  if [[ " ${missing[*]} " == *" etcd-server "* ]]; then stop_service etcd; fi
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then stop_service nginx; fi
fi

# --- unprivileged test user -------------------------------------------------
if ! id -u "$TEST_USER" >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    say "creating system user $TEST_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /bin/sh "$TEST_USER"
  else
    say "warning: user $TEST_USER is missing; tests that run PostgreSQL need it (create as root: useradd --system --user-group --no-create-home $TEST_USER)"
  fi
fi

# --- native bindings --------------------------------------------------------
# Rebuilt when never built here, or when a source changed since the last build.
if [ -f native-bindings/build.sh ]; then
  if [ ! -e "$NATIVE_STAMP" ] || [ ! -d native-bindings/build ] \
     || [ -n "$(find native-bindings -path native-bindings/build -prune -o -type f -newer "$NATIVE_STAMP" -print -quit)" ]; then
    say "building native-bindings"
    # build.sh runs with the project's Node 24 first on PATH.
    PATH="$PWD/node_modules/.bin:$PATH" quietly bash native-bindings/build.sh
    mkdir -p "$(dirname "$NATIVE_STAMP")"
    touch "$NATIVE_STAMP"
  fi
fi
