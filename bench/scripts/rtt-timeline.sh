#!/usr/bin/env bash
# Where a busy-poll round trip's time goes, raw UDP beside FastNet: perf
# tracepoints record the UDP system calls of the bench's client and server
# processes (the bench and its children only; root and `perf` needed), and
# rtt_timeline.py splits each round trip into the client's and the server's own
# work and the two loopback sends. The tracepoints slow every stage a little:
# compare the rows with each other, not with BENCHMARKS.md.
#
#   bench/scripts/rtt-timeline.sh [ROW ...]     default: udp-spin fastnet-unrel-spin
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 0 ] && set -- udp-spin fastnet-unrel-spin
cargo build --release -q -p fastnet-bench
out=$(mktemp -d)
args=()
for row in "$@"; do
    perf record -q -o "$out/$row.data" \
        -e syscalls:sys_enter_sendto -e syscalls:sys_enter_sendmmsg \
        -e syscalls:sys_exit_recvmmsg --filter 'ret > 0' \
        -e syscalls:sys_exit_recvfrom --filter 'ret > 0' \
        -- target/release/fastnet-bench rtt --rows "$row" --runs 1 --rounds 20000 \
        --out "$out/$row.md" --charts "$out/charts" >/dev/null 2>&1
    perf script --ns -i "$out/$row.data" -F comm,pid,time,event >"$out/$row.txt" 2>/dev/null
    args+=("$row" "$out/$row.txt")
done
python3 bench/scripts/rtt_timeline.py "${args[@]}"
rm -rf "$out"
