#!/usr/bin/env bash
# Runs every test of the workspace. Tests that talk to Redis start their own
# redis-server (on a free port and a Unix socket in a temp dir) and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
exec cargo test --workspace "$@"
