#!/usr/bin/env bash
# Runs every fuzz target of core/fuzz for a bounded time (default 60 s each,
# one target per core at a time), starting from the committed seeds. A crash
# fails the script and leaves the reproducer in core/fuzz/artifacts/<target>/:
# turn it into a regression test.
#
#   ci/fuzz.sh [seconds-per-target] [target...]
set -euo pipefail
cd "$(dirname "$0")/../core/fuzz"

seconds=${1:-60}
shift || true

if ! rustup toolchain list | grep -q nightly; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O

run_one() {
    local t=$1 runs
    mkdir -p "corpus/$t"
    # -rss_limit_mb bounds memory; -max_len covers a full 64 KiB datagram.
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 \
        >"corpus/$t.log" 2>&1 || true
    runs=$(grep -E "^stat::number_of_executed_units" "corpus/$t.log" | awk '{print $2}' || true)
    echo "==> fuzz $t: ${runs:-?} runs in ${seconds}s"
}

jobs=$(nproc)
for t in "${targets[@]}"; do
    run_one "$t" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait

failed=0
for t in "${targets[@]}"; do
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz target $t found a failure (see core/fuzz/artifacts/$t):" >&2
        grep -E "panicked|ERROR|SUMMARY" "corpus/$t.log" >&2 || true
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
echo "fuzzing: ${#targets[@]} targets ran ${seconds}s each without a failure"
