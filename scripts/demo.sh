#!/usr/bin/env bash
# Runs the article's experiment (release build). Extra arguments go to the
# demo, e.g. `scripts/demo.sh --clients 10000`; `--help` lists them.
# `scripts/demo.sh --cluster` runs it against a private Redis Cluster of
# three masters and three replicas, started for the run and stopped after it
# (`--cluster --clients 10000` too).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh
exec cargo run --release --quiet -p demo -- "$@"
