#!/usr/bin/env bash
# FastNet's benchmarks (issue #11): latency, throughput, handshake, AEAD,
# allocations, memory and instructions per round trip (callgrind) against raw
# UDP, ENet and quinn, on loopback.
#
#   ./ci/bench.sh                 # everything: writes BENCHMARKS.md and bench/charts/*.svg
#   ./ci/bench.sh rtt crypto      # some sections (report under target/fastnet-bench/)
#   ./ci/bench.sh all --quick     # CI smoke: few samples (report under target/fastnet-bench/)
#
# Arguments go to `cargo run --release -p fastnet-bench --`; see its --help.
set -euo pipefail
cd "$(dirname "$0")/.."

# ENet 1.3 for the ENet rows: Debian's libenet-dev. Without it those rows say
# "not available" and everything else still runs.
if [ ! -e /usr/include/enet/enet.h ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "==> installing libenet-dev (ENet 1.3) for the ENet rows"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libenet-dev >/dev/null
    else
        echo "warning: libenet-dev is not installed and cannot be installed here; ENet rows will be skipped" >&2
    fi
fi

# Whether ENet is there now: a change reruns the bench's build script, so a
# binary built before ENet was installed (by this script or another) gets it.
if [ -e /usr/include/enet/enet.h ]; then
    export FASTNET_BENCH_ENET_INSTALLED=yes
else
    export FASTNET_BENCH_ENET_INSTALLED=no
fi

# valgrind for the instructions table (callgrind); without it that table says
# "not available".
if ! command -v valgrind >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "==> installing valgrind for the instruction counts"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "warning: valgrind is not installed and cannot be installed here; instruction counts will be skipped" >&2
    fi
fi

[ $# -eq 0 ] && set -- all
exec cargo run --release -p fastnet-bench -- "$@"
