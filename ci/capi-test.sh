#!/usr/bin/env bash
# Tests the C ABI the way a C or C++ program uses it:
#
#  1. builds libfastnet (crate fastnet-capi, release): libfastnet.so with the
#     SONAME libfastnet.so, and libfastnet.a;
#  2. fails when include/fastnet.h differs from a freshly generated header;
#  3. compiles the C examples with gcc -std=c99 -Wall -Wextra -Werror and the C++
#     ones with g++ -std=c++17 -Wall -Wextra -Werror against include/ and the
#     built library (linked by path, found at run time through LD_LIBRARY_PATH);
#  4. runs C client <-> C server, C++ client <-> C++ server and the crossed
#     pairs, checking the echoed bytes; the brief's quick-start program; the
#     misuse program (shared and static library);
#  5. runs the C client and server, and the misuse program, under valgrind:
#     no definite leak, no invalid access (suppressions: capi/tests/valgrind.supp).
#
# Options (environment): CAPI_TEST_VALGRIND=0 skips step 5;
# CAPI_TEST_RUST_SERVER=1 also runs the C client against the core crate's Rust
# echo_server example (fixed ports 7777/7778; builds that example first).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/capi-test
LIB=$ROOT/target/release
mkdir -p "$OUT"
rm -rf "$OUT"/*.out "$OUT"/header.*

step() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
failures=()
ok() { passed=$((passed + 1)); echo "ok: $*"; }
ko() { failed=$((failed + 1)); failures+=("$*"); echo "FAILED: $*"; }

# Background processes started here, killed (by PID) on exit.
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

step "toolchain"
for tool in cargo gcc g++; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
if [ "${CAPI_TEST_VALGRIND:-1}" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "installing valgrind"
    (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null) || {
        echo "valgrind is missing and could not be installed" >&2
        exit 1
    }
fi
gcc --version | head -1
g++ --version | head -1

step "build libfastnet (release)"
cargo build --release -p fastnet-capi
for f in libfastnet.so libfastnet.a; do
    if [ -f "$LIB/$f" ]; then ok "$f built"; else ko "$f missing"; fi
done
if command -v readelf >/dev/null; then
    if readelf -d "$LIB/libfastnet.so" | grep -q 'SONAME.*\[libfastnet\.so\]'; then
        ok "SONAME libfastnet.so"
    else
        ko "libfastnet.so has no SONAME libfastnet.so"
    fi
fi

step "include/fastnet.h is up to date"
# The build script writes the freshly generated header to FASTNET_HEADER_OUT;
# `cargo check` runs it without building the library again. A new path each
# time makes cargo run the build script again.
GENERATED=$(mktemp -d "$OUT/header.XXXXXX")/fastnet.h
FASTNET_HEADER_OUT="$GENERATED" cargo check -q -p fastnet-capi --features generate-header
if diff -u include/fastnet.h "$GENERATED"; then
    ok "header matches cbindgen's output"
else
    ko "include/fastnet.h is stale: run FASTNET_REGENERATE_HEADER=1 cargo build -p fastnet-capi --features generate-header"
fi

step "compile"
CFLAGS=(-std=c99 -Wall -Wextra -Werror -I"$ROOT/include")
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -I"$ROOT/include" -I"$ROOT/bindings/cpp")
compile() { # name, command...
    local name=$1
    shift
    if "$@"; then ok "compile $name"; else ko "compile $name"; fi
}
# The header alone, in C (pedantic too) and in C++.
compile "fastnet.h as C99 -pedantic" \
    gcc "${CFLAGS[@]}" -pedantic -fsyntax-only -x c - <<<'#include "fastnet.h"'
compile "fastnet.h as C++17" \
    g++ "${CXXFLAGS[@]}" -pedantic -fsyntax-only -x c++ - <<<'#include "fastnet.h"'
compile "fastnet.hpp without exceptions" \
    g++ "${CXXFLAGS[@]}" -pedantic -fsyntax-only -x c++ - <<<'#include "fastnet.hpp"'
compile "fastnet.hpp with exceptions" \
    g++ "${CXXFLAGS[@]}" -pedantic -DFASTNET_CPP_EXCEPTIONS -fsyntax-only -x c++ - <<<'#include "fastnet.hpp"'
for p in echo_server echo_client; do
    compile "examples/c/$p.c" gcc "${CFLAGS[@]}" "examples/c/$p.c" "$LIB/libfastnet.so" -o "$OUT/c_$p"
    compile "examples/cpp/$p.cpp" \
        g++ "${CXXFLAGS[@]}" "examples/cpp/$p.cpp" "$LIB/libfastnet.so" -o "$OUT/cpp_$p"
done
compile "examples/c/misuse.c" \
    gcc "${CFLAGS[@]}" -pthread examples/c/misuse.c "$LIB/libfastnet.so" -o "$OUT/misuse"
# The static library, with the system libraries Rust's standard library needs
# on Linux (what `rustc --print native-static-libs` lists).
compile "examples/c/misuse.c (static)" \
    gcc "${CFLAGS[@]}" -pthread examples/c/misuse.c "$LIB/libfastnet.a" \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$OUT/misuse_static"
# Clang too, when it is there (syntax and warnings only).
if command -v clang >/dev/null && command -v clang++ >/dev/null; then
    for p in echo_server echo_client misuse; do
        compile "examples/c/$p.c with clang -pedantic" \
            clang "${CFLAGS[@]}" -pedantic -fsyntax-only "examples/c/$p.c"
    done
    for p in echo_server echo_client; do
        compile "examples/cpp/$p.cpp with clang++ -pedantic" \
            clang++ "${CXXFLAGS[@]}" -pedantic -fsyntax-only "examples/cpp/$p.cpp"
    done
fi
# The brief's program prints 64-bit and size_t values with %d: no -Wformat.
compile "examples/c/quickstart.c" \
    gcc "${CFLAGS[@]}" -Wno-format examples/c/quickstart.c "$LIB/libfastnet.so" -o "$OUT/quickstart"

export LD_LIBRARY_PATH="$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# start_server NAME WAIT_S CMD...: runs CMD in the background with its output
# in $OUT/NAME.out and waits for its "listening" (and "fingerprint") lines;
# sets SERVER_PID, SERVER_PORT and SERVER_PIN.
start_server() {
    local name=$1 wait_s=$2
    shift 2
    "$@" >"$OUT/$name.out" 2>&1 &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    local tries=$((wait_s * 10))
    while [ "$tries" -gt 0 ]; do
        if grep -q '^fingerprint ' "$OUT/$name.out" 2>/dev/null; then break; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
        tries=$((tries - 1))
    done
    SERVER_PORT=$(sed -n 's/^listening udp=[0-9]* tcp=\([0-9]*\)$/\1/p' "$OUT/$name.out")
    SERVER_PIN=$(sed -n 's/^fingerprint //p' "$OUT/$name.out")
    if [ -z "$SERVER_PORT" ] || [ -z "$SERVER_PIN" ]; then
        echo "--- $name output:"
        cat "$OUT/$name.out"
        return 1
    fi
}

# wait_server NAME: the server must exit 0 (it stops after its clients).
wait_server() {
    local name=$1 rc=0
    wait "$SERVER_PID" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "--- $name output (exit $rc):"
        cat "$OUT/$name.out"
        return 1
    fi
}

# pair NAME "SERVER CMD" "CLIENT CMD" CLIENTS WAIT_S [WRAPPER...]:
# starts the server (stopping after CLIENTS clients), runs the client(s) with
# --port and --pin, and checks that every client and the server exit 0.
pair() {
    local name=$1 server=$2 client=$3 clients=$4 wait_s=$5
    shift 5
    local wrap=("$@")
    # shellcheck disable=SC2086 # the commands are word lists
    if ! start_server "$name.server" "$wait_s" timeout $((wait_s * 3)) \
        ${wrap[@]+"${wrap[@]}"} $server --dev-cert --bind 127.0.0.1 --clients "$clients" \
        --timeout-s $((wait_s * 3)) --handshake-timeout-ms $((wait_s * 1000)); then
        ko "$name: the server did not start"
        return
    fi
    local rc=0 i
    for i in $(seq "$clients"); do
        # shellcheck disable=SC2086
        timeout $((wait_s * 3)) ${wrap[@]+"${wrap[@]}"} $client --port "$SERVER_PORT" \
            --pin "$SERVER_PIN" --timeout-ms $((wait_s * 1000)) >"$OUT/$name.client$i.out" 2>&1 || {
            rc=$?
            echo "--- $name client $i output (exit $rc):"
            cat "$OUT/$name.client$i.out"
        }
    done
    if ! wait_server "$name.server"; then rc=1; fi
    if [ "$rc" -eq 0 ]; then
        ok "$name ($(grep -h '^echoed' "$OUT/$name".client*.out | head -1))"
    else
        ko "$name"
    fi
}

step "C and C++ clients and servers on loopback"
pair "C client <-> C server" "$OUT/c_echo_server" "$OUT/c_echo_client --count 60" 2 20
pair "C client (non-blocking connect, service thread) <-> C server (service thread)" \
    "$OUT/c_echo_server --service-thread" "$OUT/c_echo_client --nonblocking --service-thread" 1 20
pair "C++ client <-> C++ server" "$OUT/cpp_echo_server" "$OUT/cpp_echo_client" 1 20
pair "C++ client (non-blocking) <-> C server" "$OUT/c_echo_server" "$OUT/cpp_echo_client --nonblocking" 1 20
pair "C client <-> C++ server" "$OUT/cpp_echo_server" "$OUT/c_echo_client" 1 20

step "the brief's program (examples/c/quickstart.c) against a server on TCP 7778"
if start_server quickstart.server 20 timeout 60 "$OUT/c_echo_server" --dev-cert --tcp-port 7778 \
    --clients 1 --timeout-s 60; then
    # Without trust it must refuse the development certificate...
    if "$OUT/quickstart" >"$OUT/quickstart.untrusted.out" 2>&1; then
        ko "quickstart connected without trusting the server"
    else
        if grep -q 'Failed to connect' "$OUT/quickstart.untrusted.out"; then
            ok "quickstart refuses an untrusted server"
        else
            ko "quickstart (untrusted) output"
        fi
    fi
    # ...and with the pin in the environment it connects as peer 1.
    if FASTNET_TRUST_PIN_SHA256="$SERVER_PIN" "$OUT/quickstart" >"$OUT/quickstart.out" 2>&1 &&
        grep -q '^Connected as peer 1$' "$OUT/quickstart.out"; then
        ok "quickstart: $(tr '\n' ' ' <"$OUT/quickstart.out")"
    else
        cat "$OUT/quickstart.out"
        ko "quickstart"
    fi
    wait_server quickstart.server || ko "quickstart server"
else
    echo "TCP port 7778 unavailable here: the quick-start run is skipped"
    kill "$SERVER_PID" 2>/dev/null || true
fi

step "misuse"
for m in misuse misuse_static; do
    if timeout 120 "$OUT/$m" >"$OUT/$m.out" 2>&1; then
        ok "$m: $(tail -1 "$OUT/$m.out")"
    else
        cat "$OUT/$m.out"
        ko "$m"
    fi
done

if [ "${CAPI_TEST_VALGRIND:-1}" = 1 ]; then
    step "valgrind"
    # --fair-sched=yes: valgrind runs one thread at a time, and its default
    # lock lets a thread that loops on non-blocking calls (misuse.c's poller)
    # take it back at once, starving the main thread's destroy for minutes.
    VALGRIND=(valgrind -q --fair-sched=yes --error-exitcode=1 --leak-check=full
        --errors-for-leak-kinds=definite --suppressions="$ROOT/capi/tests/valgrind.supp")
    pair "valgrind: C client <-> C server" "$OUT/c_echo_server" "$OUT/c_echo_client --count 20" \
        1 60 "${VALGRIND[@]}"
    if FASTNET_MISUSE_THREAD_MS=3000 timeout 300 "${VALGRIND[@]}" "$OUT/misuse" >"$OUT/misuse.valgrind.out" 2>&1; then
        ok "valgrind: misuse: $(grep '^misuse:' "$OUT/misuse.valgrind.out")"
    else
        cat "$OUT/misuse.valgrind.out"
        ko "valgrind: misuse"
    fi
fi

if [ "${CAPI_TEST_RUST_SERVER:-0}" = 1 ]; then
    step "C client <-> the core crate's Rust echo_server (ports 7777/7778)"
    cargo build -q --release -p fastnet --example echo_server
    (cd "$OUT" && exec timeout 60 "$ROOT/target/release/examples/echo_server") \
        >"$OUT/rust_server.out" 2>&1 &
    rust_pid=$!
    pids+=("$rust_pid")
    for _ in $(seq 100); do
        grep -q 'fingerprint' "$OUT/rust_server.out" 2>/dev/null && break
        sleep 0.1
    done
    pin=$(sed -n 's/^fingerprint (for echo_client --pin): //p' "$OUT/rust_server.out")
    if [ -n "$pin" ] && timeout 60 "$OUT/c_echo_client" --port 7778 --pin "$pin" \
        >"$OUT/rust_server.client.out" 2>&1; then
        ok "C client <-> Rust echo_server ($(grep '^echoed' "$OUT/rust_server.client.out"))"
    else
        cat "$OUT/rust_server.out" "$OUT/rust_server.client.out" 2>/dev/null || true
        ko "C client <-> Rust echo_server"
    fi
    kill "$rust_pid" 2>/dev/null || true
fi

echo
if [ "$failed" -ne 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "capi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
