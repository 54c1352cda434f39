#!/usr/bin/env bash
# Windows x86_64 check of the C ABI, without Windows. Cross-builds fastnet.dll
# and its import library with mingw-w64 (Rust target x86_64-pc-windows-gnu),
# checks that the DLL exports every function of include/fastnet.h and needs no
# mingw runtime DLL, cross-compiles every C and C++ example against the import
# library (-Werror), and runs them under Wine with loopback sockets:
#
#   * the Windows C echo client against the Linux C echo server, and the
#     Linux client against the Windows server; the same with the C++ examples
#     on the Windows side. The client compares every echoed byte with what it
#     sent; the pair passes only if the client exits 0 reporting all reliable
#     messages back and none corrupted, and the server exits 0 having served it;
#   * examples/c/misuse.c (API misuse must give errors, never crash).
#
#   bash ci/win64.sh
#
# Installs what it needs when missing (ci/install-deps.sh win64). Linux x86_64
# only; elsewhere, or with FASTNET_SKIP_WIN64=1, it prints why and exits 0.
# Every program runs under `timeout`; any failure exits non-zero.
#
# Wine 8 (Debian 12) has no bcryptprimitives.dll, whose ProcessPrng Rust's
# standard library calls: ci/shim/ builds a stand-in that goes beside the test
# EXEs only. It is never part of an SDK archive (ci/sdk-archive.sh checks).
#
# Outputs, under the Cargo target directory: win64/bin (EXEs, fastnet.dll, the
# shim), win64/lib (import library), win64/linux (the Linux C examples),
# win64/logs (every program's output), wine-prefix (the Wine prefix, made on
# first use; FASTNET_WINEPREFIX puts it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${FASTNET_SKIP_WIN64:-0}" = 1 ]; then
    echo "win64: skipped (FASTNET_SKIP_WIN64=1)"
    exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "win64: skipped: needs Linux x86_64 for mingw-w64 and Wine (this is $(uname -sm))"
    exit 0
fi

started=$SECONDS
step_started=$SECONDS
step_name=
step() {
    [ -z "$step_name" ] || printf 'win64: %s: %d s\n' "$step_name" $((SECONDS - step_started))
    step_name=$1
    step_started=$SECONDS
    printf '\n==> win64: %s\n' "$1"
}
fail() {
    echo "win64: FAILED: $*" >&2
    exit 1
}

triple=x86_64-pc-windows-gnu
cc=x86_64-w64-mingw32-gcc
cxx=x86_64-w64-mingw32-g++
objdump=x86_64-w64-mingw32-objdump
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER:-$cc}
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
release=$target_dir/$triple/release
out=$target_dir/win64
cflags=(-std=c99 -Wall -Wextra -Werror -O2 -Iinclude)
cxxflags=(-std=c++17 -Wall -Wextra -Werror -O2 -Iinclude -Ibindings/cpp)

server_pid=
wine_used=0
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    # End what this run started in its Wine prefix (a timed-out EXE, the
    # wineserver), and nothing else.
    if [ "$wine_used" = 1 ]; then wineserver -k >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
step "dependencies (mingw-w64, Wine, Rust target $triple)"
bash ci/install-deps.sh win64

# ---------------------------------------------------------------------------
step "cross-build fastnet.dll"
cargo build --release -p fastnet-capi --target "$triple"
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/logs"
[ -f "$release/fastnet.dll" ] || fail "no $release/fastnet.dll"
cp "$release/fastnet.dll" "$out/bin/"
implib=
for name in libfastnet.dll.a fastnet.dll.lib; do
    if [ -f "$release/$name" ]; then
        implib=$name
        cp "$release/$name" "$out/lib/"
        break
    fi
done
[ -n "$implib" ] || fail "no import library (libfastnet.dll.a or fastnet.dll.lib) in $release"
stat -c "%s bytes %n" "$out/bin/fastnet.dll" "$out/lib/$implib"

# ---------------------------------------------------------------------------
step "DLL exports and imports"
"$objdump" -p "$out/bin/fastnet.dll" >"$out/logs/fastnet.dll.objdump"
# The export table: "[ordinal] name" lines after "[Ordinal/Name Pointer] Table".
awk '/\[Ordinal\/Name Pointer\] Table/ { on = 1; next } on && /^\t\[ *[0-9]+\]/ { print $NF; next } on { on = 0 }' \
    "$out/logs/fastnet.dll.objdump" | sort -u >"$out/logs/exports.txt"
# Every function the header declares: "type fastnet_name(" at a line start.
if [ -f include/fastnet.h ]; then
    grep -oE '^[A-Za-z_].*[ *](fastnet_[A-Za-z0-9_]+)\(' include/fastnet.h |
        grep -oE 'fastnet_[A-Za-z0-9_]+\($' | tr -d '(' | sort -u >"$out/logs/header-functions.txt"
    missing=$(comm -23 "$out/logs/header-functions.txt" "$out/logs/exports.txt")
    [ -z "$missing" ] || fail "declared in include/fastnet.h but not exported by fastnet.dll: $missing"
    echo "exports: all $(wc -l <"$out/logs/header-functions.txt") functions of include/fastnet.h" \
        "($(grep -c '^fastnet_' "$out/logs/exports.txt") fastnet_* exports)"
else
    grep -qx fastnet_version "$out/logs/exports.txt" || fail "fastnet.dll does not export fastnet_version"
    echo "exports: $(grep -c '^fastnet_' "$out/logs/exports.txt") fastnet_* (no include/fastnet.h to compare)"
fi
imports=$(sed -n 's/^\tDLL Name: //p' "$out/logs/fastnet.dll.objdump" | sort -uf | tr '\n' ' ')
echo "imports: $imports"
# A game must not need mingw's runtime DLLs beside fastnet.dll.
for dll in $imports; do
    case $dll in
        lib*.dll | LIB*.DLL) fail "fastnet.dll needs the mingw runtime DLL $dll" ;;
    esac
done

# ---------------------------------------------------------------------------
step "test-only bcryptprimitives.dll shim (ProcessPrng for Wine 8)"
"$cc" -std=c99 -Wall -Wextra -Werror -O2 -shared -o "$out/bin/bcryptprimitives.dll" \
    ci/shim/bcryptprimitives.c ci/shim/bcryptprimitives.def -ladvapi32
# (objdump's output is read whole first: grep -q would end it early, and a
# SIGPIPE fails the pipeline under pipefail.)
dump=$("$objdump" -p "$out/bin/bcryptprimitives.dll")
grep -q '\] ProcessPrng$' <<<"$dump" || fail "the shim does not export ProcessPrng"

# ---------------------------------------------------------------------------
step "cross-compile the C and C++ programs"
link=(-L"$out/lib" -lfastnet)
# The examples build with -Werror, except where a file says otherwise
# (quickstart.c keeps the brief's printf formats).
cflags_for() {
    case $(basename "$1") in
        quickstart.c) echo -Wno-format ;;
    esac
}
# A program of our own first: the DLL loads and agrees on version and ABI.
cat >"$out/logs/version_probe.c" <<'EOF'
#include <stdio.h>
#include "fastnet.h"

int main(void)
{
    const char *version = fastnet_version();
    unsigned abi = (unsigned)fastnet_abi_version();
    printf("fastnet %s, ABI %u (header ABI %u)\n", version ? version : "(null)", abi,
           (unsigned)FASTNET_ABI_VERSION);
    return version != NULL && abi == FASTNET_ABI_VERSION ? 0 : 1;
}
EOF
"$cc" "${cflags[@]}" "$out/logs/version_probe.c" -o "$out/bin/version_probe.exe" "${link[@]}"
shopt -s nullglob
for src in examples/c/*.c; do
    # shellcheck disable=SC2046 # cflags_for prints zero or more flags
    "$cc" "${cflags[@]}" $(cflags_for "$src") "$src" -o "$out/bin/c_$(basename "$src" .c).exe" "${link[@]}"
done
# C++: the wrapper and its examples, with libstdc++ and libgcc linked
# statically so that the EXEs need no mingw DLL.
for src in examples/cpp/*.cpp; do
    "$cxx" "${cxxflags[@]}" "$src" -o "$out/bin/cpp_$(basename "$src" .cpp).exe" "${link[@]}" \
        -static-libgcc -static-libstdc++
done
shopt -u nullglob
echo "built: $(cd "$out/bin" && echo ./*.exe | sed 's#\./##g')"
# The EXEs link fastnet.dll through the import library, and need no mingw DLL.
for exe in "$out"/bin/*.exe; do
    dump=$("$objdump" -p "$exe")
    grep -qi 'DLL Name: fastnet.dll' <<<"$dump" || fail "$(basename "$exe") does not import fastnet.dll"
    if grep -qiE 'DLL Name: lib.*\.dll' <<<"$dump"; then
        fail "$(basename "$exe") needs a mingw runtime DLL: $(grep -iE 'DLL Name: lib' <<<"$dump")"
    fi
done

# ---------------------------------------------------------------------------
step "Wine prefix"
export WINEDEBUG=-all
export WINEPREFIX=${FASTNET_WINEPREFIX:-$target_dir/wine-prefix}
case $WINEPREFIX in /*) ;; *) WINEPREFIX=$root/$WINEPREFIX ;; esac
wine=$(command -v wine || command -v wine64 || true)
[ -n "$wine" ] || fail "no wine or wine64 command"
"$wine" --version
wine_used=1
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    # First use: make the prefix (10-30 s); no Mono or Gecko installers.
    mkdir -p "$WINEPREFIX"
    WINEDLLOVERRIDES="mscoree,mshtml=" timeout 300 "$wine" wineboot --init >"$out/logs/wineboot.log" 2>&1 ||
        { cat "$out/logs/wineboot.log" >&2; fail "wineboot --init"; }
    timeout 120 wineserver -w || true
    echo "made $WINEPREFIX"
else
    echo "reusing $WINEPREFIX"
fi
# One wineserver for every Wine program of this script, until `cleanup` stops
# it. Otherwise each program starts one that shuts down after the program
# exits, and a program started during that shutdown loses its connection
# ("wine client error:0: recvmsg: Connection reset by peer") and exits 1
# before running (seen once, on the misuse checks).
wineserver -p

# ---------------------------------------------------------------------------
step "version probe under Wine"
# (Wine looks for DLLs beside the EXE first: fastnet.dll and the shim.)
timeout 120 "$wine" "$out/bin/version_probe.exe" >"$out/logs/version_probe.out" 2>&1 ||
    { cat "$out/logs/version_probe.out" >&2; fail "version_probe.exe failed under Wine"; }
sed -i 's/\r$//' "$out/logs/version_probe.out"
cat "$out/logs/version_probe.out"
version=$(cargo pkgid -p fastnet-capi | sed 's/.*[#@]//')
grep -q "^fastnet $version, ABI " "$out/logs/version_probe.out" ||
    fail "the probe did not print version $version"

if [ ! -f examples/c/echo_client.c ] || [ ! -f examples/c/echo_server.c ]; then
    step "done"
    echo "win64: WARNING: examples/c/echo_client.c or echo_server.c missing: no echo test run"
    echo "win64: probe passed in $((SECONDS - started)) s"
    exit 0
fi

# ---------------------------------------------------------------------------
step "Linux C echo server and client (native libfastnet.so)"
cargo build --release -p fastnet-capi
mkdir -p "$out/linux"
for name in echo_server echo_client; do
    gcc "${cflags[@]}" "examples/c/$name.c" -o "$out/linux/$name" \
        -L"$target_dir/release" -lfastnet -Wl,-rpath,"$target_dir/release"
done

# program KIND NAME: sets cmd to the command of an example program of one
# kind: linux-c (native), win-c or win-cpp (Windows EXEs run by Wine, which
# finds fastnet.dll and the shim beside them).
program() {
    case $1 in
        linux-c) cmd=("$out/linux/$2") ;;
        win-c) cmd=("$wine" "$out/bin/c_$2.exe") ;;
        win-cpp) cmd=("$wine" "$out/bin/cpp_$2.exe") ;;
    esac
}

# echo_pair SERVER_KIND CLIENT_KIND: starts the echo server of one kind on
# free loopback ports with a development certificate, runs the echo client of
# the other kind against it, pinned to that certificate, and checks both. The
# client compares every echoed byte with what it sent and exits 0 only if
# every reliable message came back intact and nothing arrived corrupted; the
# server must then have served that one client and exit 0.
echo_pair() {
    local server_kind=$1 client_kind=$2
    local label="$client_kind-client-$server_kind-server"
    local log=$out/logs/$label
    local cmd server client
    program "$server_kind" echo_server
    server=("${cmd[@]}")
    program "$client_kind" echo_client
    client=("${cmd[@]}")
    printf '\n==> win64: %s echo client against the %s echo server\n' "$client_kind" "$server_kind"
    timeout 180 "${server[@]}" --dev-cert --bind 127.0.0.1 --udp-port 0 --tcp-port 0 --clients 1 \
        --timeout-s 150 >"$log.server.out" 2>&1 &
    server_pid=$!
    local tcp='' pin=''
    for _ in $(seq 1 600); do
        tcp=$(sed -n 's/^listening udp=[0-9]* tcp=\([0-9]*\).*/\1/p' "$log.server.out")
        pin=$(sed -n 's/^fingerprint \([0-9A-Fa-f:]*\).*/\1/p' "$log.server.out")
        [ -n "$tcp" ] && [ -n "$pin" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$tcp" ] || [ -z "$pin" ]; then
        cat "$log.server.out" >&2
        fail "$label: the echo server did not start (no port or fingerprint)"
    fi
    local status=0
    timeout 120 "${client[@]}" --host 127.0.0.1 --port "$tcp" --pin "$pin" >"$log.client.out" 2>&1 || status=$?
    sed -i 's/\r$//' "$log.client.out" # Windows programs end lines with CR LF
    sed "s/^/  $client_kind client: /" "$log.client.out"
    [ "$status" = 0 ] || fail "$label: the echo client exited with $status"
    if ! grep -q '^echoed .* 0 bad' "$log.client.out" || ! grep -qx OK "$log.client.out"; then
        fail "$label: the client did not report every echo intact"
    fi
    status=0
    wait "$server_pid" || status=$?
    server_pid=
    sed -i 's/\r$//' "$log.server.out"
    sed "s/^/  $server_kind server: /" "$log.server.out"
    [ "$status" = 0 ] || fail "$label: the echo server exited with $status"
    grep -q '^served 1 clients' "$log.server.out" || fail "$label: the server did not serve the client"
    echo "$label: PASSED"
    passed+=("$label")
}

step "echo tests on loopback"
passed=()
echo_pair linux-c win-c
echo_pair win-c linux-c
if [ -f "$out/bin/cpp_echo_client.exe" ]; then echo_pair linux-c win-cpp; fi
if [ -f "$out/bin/cpp_echo_server.exe" ]; then echo_pair win-cpp linux-c; fi

if [ -f "$out/bin/c_misuse.exe" ]; then
    step "API misuse checks under Wine (examples/c/misuse.c)"
    status=0
    timeout 120 "$wine" "$out/bin/c_misuse.exe" >"$out/logs/misuse.out" 2>&1 || status=$?
    sed -i 's/\r$//' "$out/logs/misuse.out"
    tail -n 3 "$out/logs/misuse.out"
    [ "$status" = 0 ] || { cat "$out/logs/misuse.out" >&2; fail "c_misuse.exe exited with $status"; }
    passed+=(misuse)
fi

step "done"
echo "win64: passed in $((SECONDS - started)) s: ${passed[*]}"
