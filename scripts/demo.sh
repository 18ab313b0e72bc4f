#!/usr/bin/env bash
# Runs the demo (release build). Until the article's experiment lands in
# demo/, this runs the runtime's echo example: 1,000 clients in one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
exec cargo run --release --quiet -p greenhub --example echo -- "$@"
