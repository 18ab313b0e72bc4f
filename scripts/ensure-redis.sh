#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are on PATH, installing them from the
# distribution's packages when missing (as root, or through sudo). Sourced by
# demo.sh and test.sh so that both work on a bare machine; the differential
# tests (tests/differential.rs) compare the client's replies with redis-cli's,
# and the cluster tests create and reshard clusters with `redis-cli --cluster`.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0 2>/dev/null || exit 0
fi

echo "redis-server or redis-cli is not installed; installing them from the distribution's packages..." >&2
if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
if command -v apt-get >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq redis-server redis-tools >/dev/null
elif command -v dnf >/dev/null 2>&1; then
    "${as_root[@]}" dnf install -y -q redis
elif command -v apk >/dev/null 2>&1; then
    "${as_root[@]}" apk add --quiet redis
else
    echo "cannot install redis-server here: install it with your package manager and retry" >&2
    exit 1
fi
for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is still missing after the install" >&2; exit 1; }
done
