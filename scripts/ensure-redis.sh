#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are on PATH, installing them from the
# distribution's packages when one is missing (as root, or through sudo).
# Sourced by demo.sh and test.sh so that both work on a bare machine. The
# cluster tests need redis-cli (`--cluster create|reshard`): Debian's
# redis-server package pulls it in with redis-tools.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0 2>/dev/null || exit 0
fi

echo "redis-server or redis-cli is not installed; installing them from the distribution's packages..." >&2
if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
if command -v apt-get >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq redis-server >/dev/null
elif command -v dnf >/dev/null 2>&1; then
    "${as_root[@]}" dnf install -y -q redis
elif command -v apk >/dev/null 2>&1; then
    "${as_root[@]}" apk add --quiet redis
else
    echo "cannot install redis-server here: install it with your package manager and retry" >&2
    exit 1
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still missing after the install" >&2; exit 1; }
command -v redis-cli >/dev/null 2>&1 || { echo "redis-cli is still missing after the install (Debian: redis-tools)" >&2; exit 1; }
