#!/usr/bin/env bash
# Fuzzes the RESP parser and the URL parser for a bounded time each (default
# 60 s; FUZZ_SECONDS=N to change), with cargo-fuzz and libFuzzer. Prints the
# executions run; a crash is saved under fuzz/artifacts/ and fails the run.
# Needs cargo-fuzz (cargo install cargo-fuzz); on a stable toolchain
# RUSTC_BOOTSTRAP lets it pass the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-60}"
for target in resp url; do
    echo "fuzzing $target for ${seconds}s..."
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tee "/tmp/fuzz-$target.log" | grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|panicked" || true
    grep -qE "ERROR: libFuzzer|panicked" "/tmp/fuzz-$target.log" && { echo "$target: crash found, see fuzz/artifacts/$target"; exit 1; }
done
echo "no crash found"
