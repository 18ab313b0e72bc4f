#!/usr/bin/env bash
# Runs the whole test suite (`cargo test --workspace`) N times in a row while
# busy loops keep every core of the machine occupied, to catch tests whose
# assertions depend on how fast the machine is (a deadline passing before the
# test's next step, a sleep standing in for "the other side is ready"). See
# docs/testing.md, "Timing".
#
#   scripts/stress-tests.sh [N]     N runs (default: $STRESS_RUNS, else 5)
#
# The tests are built once first; the busy loops (one per core, `nproc`) start
# after the build and are killed when the script exits, however it exits. It
# stops at the first failing run, names the run and the failing tests, and
# keeps that run's log; otherwise it prints one line per run and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-${STRESS_RUNS:-5}}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [N]   (N: how many loaded runs, at least 1; default 5)" >&2
    exit 2
fi

source scripts/ensure-redis.sh

echo "building the tests once..."
cargo test --workspace --no-run --quiet

busy=()
stop_busy() {
    for pid in "${busy[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${busy[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_busy EXIT
trap 'exit 130' INT TERM

cores="$(nproc)"
for _ in $(seq "$cores"); do
    (while :; do :; done) &
    busy+=("$!")
done
echo "$cores busy loops started (one per core); $runs loaded runs follow"

logs="$(mktemp -d -t greenhub-stress.XXXXXX)"
times=()
for run in $(seq "$runs"); do
    log="$logs/run-$run.log"
    start="$EPOCHREALTIME"
    status=0
    cargo test --workspace --no-fail-fast >"$log" 2>&1 || status=$?
    took="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
    if [ "$status" -ne 0 ]; then
        echo "run $run/$runs FAILED after ${took}s (cargo test exited with $status); failing tests:"
        # libtest's "test NAME ... FAILED" lines, then cargo's rerun hints
        # (which also name a test binary that crashed instead of failing).
        grep -E '^test .* \.\.\. FAILED$' "$log" | sed -e 's/^test /  /' -e 's/ \.\.\. FAILED$//' | sort -u || true
        grep -E '^error: (test failed|[0-9]+ targets? failed)|^    `-p ' "$log" | sed 's/^/  /' || true
        echo "full log: $log"
        exit 1
    fi
    times+=("$took")
    echo "run $run/$runs passed in ${took}s"
    rm -f "$log"
done
rmdir "$logs" 2>/dev/null || true
echo "summary: $runs of $runs loaded runs passed, with $cores busy loops on $cores cores; wall times (s): ${times[*]}"
