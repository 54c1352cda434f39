#!/usr/bin/env bash
# Packs the C SDK of one platform: header, C++ wrapper, shared and static
# library (and import library on Windows), examples, and a README saying how
# to build against it. Then checks the archive as a user would get it.
#
#   bash ci/sdk-archive.sh [--target TRIPLE] [--no-check]
#
# Builds `cargo build --release -p fastnet-capi` for TRIPLE (default: this
# machine's) and writes, under the Cargo target directory:
#
#   sdk/fastnet-sdk-VERSION-PLATFORM.tar.gz   (.zip for Windows)
#   sdk/fastnet-sdk-VERSION-PLATFORM.*.sha256
#
# PLATFORM: linux-x86_64, linux-arm64, macos-arm64, macos-x86_64,
# windows-x86_64-msvc, windows-x86_64-mingw. Layout inside:
#
#   include/    fastnet.h, fastnet.hpp (C++17 wrapper)
#   lib/        libfastnet.so + libfastnet.a | libfastnet.dylib + libfastnet.a |
#               fastnet.dll.lib (import) + fastnet.lib (static) |
#               libfastnet.dll.a (import) + libfastnet.a (static)
#   lib/native-static-libs.txt   what to link besides the static library
#   bin/        fastnet.dll (+ fastnet.pdb) on Windows
#   examples/   c/, cpp/
#   README.txt
#
# The check (skip with --no-check) unpacks the archive into a temporary
# directory and, where a compiler for the target is at hand, compiles every C
# and C++ example against the unpacked SDK only, links a program against the
# static library with native-static-libs.txt, and, where the programs can run
# here (Linux, macOS), runs a version probe (shared and static) and the C
# echo client against the C echo server on loopback. Windows programs are run
# by ci/win64.sh (mingw, under Wine) and by `cargo test` on Windows.
#
# Wine's test-only bcryptprimitives.dll shim (ci/shim) never goes in an archive.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=
check=1
while [ $# -gt 0 ]; do
    case $1 in
        --target)
            target=${2:?--target needs a triple}
            shift 2
            ;;
        --no-check)
            check=0
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "sdk-archive: unknown argument '$1'" >&2
            exit 2
            ;;
    esac
done

fail() {
    echo "sdk-archive: FAILED: $*" >&2
    exit 1
}
started=$SECONDS

host=$(rustc -vV | sed -n 's/^host: //p')
triple=${target:-$host}
case $triple in
    x86_64-unknown-linux-gnu) platform=linux-x86_64 os=linux ;;
    aarch64-unknown-linux-gnu) platform=linux-arm64 os=linux ;;
    aarch64-apple-darwin) platform=macos-arm64 os=macos ;;
    x86_64-apple-darwin) platform=macos-x86_64 os=macos ;;
    x86_64-pc-windows-msvc) platform=windows-x86_64-msvc os=msvc ;;
    x86_64-pc-windows-gnu) platform=windows-x86_64-mingw os=mingw ;;
    *) fail "no SDK layout for target $triple" ;;
esac

target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /* | [A-Za-z]:*) ;; *) target_dir=$root/$target_dir ;; esac
cargo_args=(--release -p fastnet-capi --lib)
if [ -n "$target" ]; then
    cargo_args+=(--target "$target")
    libdir=$target_dir/$target/release
else
    libdir=$target_dir/release
fi
if [ "$triple" = x86_64-pc-windows-gnu ] && [ "$host" != "$triple" ]; then
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER:-x86_64-w64-mingw32-gcc}
fi

# ---- build -----------------------------------------------------------------
# `cargo rustc` rather than `cargo build`, to ask rustc which native libraries
# the static library needs (they differ by platform and toolchain).
echo "==> sdk-archive: build fastnet-capi for $triple"
mkdir -p "$target_dir/sdk"
build_log=$target_dir/sdk/build-$platform.log
if ! cargo rustc "${cargo_args[@]}" -- --print native-static-libs 2>&1 | tee "$build_log"; then
    fail "cargo rustc failed (log: $build_log)"
fi
native_libs=$(sed -n 's/^note: native-static-libs: //p' "$build_log" | tail -n 1)
[ -n "$native_libs" ] || fail "rustc printed no native-static-libs"

version=$(cargo pkgid -p fastnet-capi | sed 's/.*[#@]//')
name=fastnet-sdk-$version-$platform
stage=$target_dir/sdk/stage/$name
rm -rf "$stage"
mkdir -p "$stage/include" "$stage/lib" "$stage/examples"

# ---- lay out -----------------------------------------------------------------
put() { # SOURCE DEST_DIR: copies a file that must exist
    [ -f "$1" ] || fail "missing $1"
    cp "$1" "$2/"
}
put include/fastnet.h "$stage/include"
if [ -f bindings/cpp/fastnet.hpp ]; then
    put bindings/cpp/fastnet.hpp "$stage/include"
else
    echo "sdk-archive: warning: no bindings/cpp/fastnet.hpp: the SDK has no C++ wrapper" >&2
fi
case $os in
    linux)
        put "$libdir/libfastnet.so" "$stage/lib"
        put "$libdir/libfastnet.a" "$stage/lib"
        ;;
    macos)
        put "$libdir/libfastnet.dylib" "$stage/lib"
        put "$libdir/libfastnet.a" "$stage/lib"
        # Programs record the install name of the library they link: it must
        # be @rpath/libfastnet.dylib, not the path where it was built.
        dylib=$stage/lib/libfastnet.dylib
        id=$(otool -D "$dylib" | sed -n 2p)
        if [ "$id" != "@rpath/libfastnet.dylib" ]; then
            echo "install name was $id: setting @rpath/libfastnet.dylib"
            install_name_tool -id @rpath/libfastnet.dylib "$dylib"
            codesign --force --sign - "$dylib"
        fi
        ;;
    msvc)
        mkdir -p "$stage/bin"
        put "$libdir/fastnet.dll" "$stage/bin"
        [ ! -f "$libdir/fastnet.pdb" ] || put "$libdir/fastnet.pdb" "$stage/bin"
        put "$libdir/fastnet.dll.lib" "$stage/lib"
        put "$libdir/fastnet.lib" "$stage/lib"
        ;;
    mingw)
        mkdir -p "$stage/bin"
        put "$libdir/fastnet.dll" "$stage/bin"
        put "$libdir/libfastnet.dll.a" "$stage/lib"
        put "$libdir/libfastnet.a" "$stage/lib"
        ;;
esac
echo "$native_libs" >"$stage/lib/native-static-libs.txt"
for lang in c cpp; do
    [ -d "examples/$lang" ] || continue
    mkdir -p "$stage/examples/$lang"
    find "examples/$lang" -maxdepth 1 -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.h' \
        -o -name '*.hpp' -o -name '*.md' -o -name '*.txt' -o -name Makefile \) \
        -exec cp {} "$stage/examples/$lang/" \;
done
for f in LICENSE* COPYING* SECURITY.md; do
    [ ! -f "$f" ] || cp "$f" "$stage/"
done

case $os in
    linux)
        # shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker
        build_c='cc -std=c99 -Iinclude examples/c/echo_client.c -Llib -lfastnet -Wl,-rpath,'"'"'$ORIGIN/lib'"'"' -o echo_client'
        build_cpp='c++ -std=c++17 -Iinclude examples/cpp/echo_client.cpp -Llib -lfastnet -o echo_client'
        build_static="cc -std=c99 -Iinclude examples/c/echo_client.c lib/libfastnet.a $native_libs -o echo_client"
        run_note='Run with the library on the loader path: LD_LIBRARY_PATH=lib ./echo_client ..., or an rpath as above. The SONAME is libfastnet.so.'
        ;;
    macos)
        build_c='cc -std=c99 -Iinclude examples/c/echo_client.c -Llib -lfastnet -Wl,-rpath,@executable_path/lib -o echo_client'
        build_cpp='c++ -std=c++17 -Iinclude examples/cpp/echo_client.cpp -Llib -lfastnet -Wl,-rpath,@executable_path/lib -o echo_client'
        build_static="cc -std=c99 -Iinclude examples/c/echo_client.c lib/libfastnet.a $native_libs -o echo_client"
        run_note='The install name of libfastnet.dylib is @rpath/libfastnet.dylib: give your program an rpath (as above) or ship the library beside it.'
        ;;
    msvc)
        build_c='cl /nologo /W4 /Iinclude examples\c\echo_client.c lib\fastnet.dll.lib'
        build_cpp='cl /nologo /EHsc /std:c++17 /W4 /Iinclude examples\cpp\echo_client.cpp lib\fastnet.dll.lib'
        build_static="cl /nologo /W4 /Iinclude examples\\c\\echo_client.c lib\\fastnet.lib $native_libs"
        run_note='Put bin\fastnet.dll beside your .exe. fastnet.dll.lib is the import library, fastnet.lib the static library.'
        ;;
    mingw)
        build_c='x86_64-w64-mingw32-gcc -std=c99 -Iinclude examples/c/echo_client.c -Llib -lfastnet -o echo_client.exe'
        build_cpp='x86_64-w64-mingw32-g++ -std=c++17 -Iinclude examples/cpp/echo_client.cpp -Llib -lfastnet -static-libgcc -static-libstdc++ -o echo_client.exe'
        build_static="x86_64-w64-mingw32-gcc -std=c99 -Iinclude examples/c/echo_client.c lib/libfastnet.a $native_libs -o echo_client.exe"
        run_note='Put bin/fastnet.dll beside your .exe (it needs no mingw runtime DLL). libfastnet.dll.a is the import library, libfastnet.a the static library.'
        ;;
esac
cat >"$stage/README.txt" <<EOF
FastNet C SDK $version for $platform (Rust target $triple)

Encrypted, low-latency UDP networking for real-time games: the C ABI
(include/fastnet.h, C99) and its C++17 wrapper (include/fastnet.hpp).
License: MIT OR Apache-2.0.

Build the C echo client against the shared library:
  $build_c
The C++ one:
  $build_cpp
Or link the static library, with the system libraries it needs
(lib/native-static-libs.txt):
  $build_static

$run_note

Try it: start examples/c/echo_server built the same way with --dev-cert; it
prints "listening udp=U tcp=T" and "fingerprint AB:CD:...", then run
  echo_client --port T --pin AB:CD:...
EOF

# ---- archive ---------------------------------------------------------------
# A Python that works (on Windows, python3 may be a stub that only opens the
# Store), for zip files.
py=
for candidate in python3 python; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import zipfile' >/dev/null 2>&1; then
        py=$candidate
        break
    fi
done
sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi
}
cd "$target_dir/sdk/stage"
case $os in
    msvc | mingw)
        archive=$target_dir/sdk/$name.zip
        rm -f "$archive"
        if [ -n "$py" ]; then
            "$py" - "$archive" "$name" <<'EOF'
import os, sys, zipfile
archive, top = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in sorted(os.walk(top)):
        for f in sorted(files):
            z.write(os.path.join(d, f))
EOF
        elif command -v 7z >/dev/null; then
            7z a -tzip -bd "$archive" "$name" >/dev/null
        else
            fail "no python or 7z to make a zip"
        fi
        ;;
    *)
        archive=$target_dir/sdk/$name.tar.gz
        tar -czf "$archive" "$name"
        ;;
esac
cd "$root"
(cd "$(dirname "$archive")" && sha256 "$(basename "$archive")") >"$archive.sha256"
echo "==> sdk-archive: $archive ($(du -h "$archive" | cut -f1))"
(cd "$target_dir/sdk/stage" && find "$name" -type f | sort | sed 's/^/  /')

[ "$check" = 1 ] || exit 0

# ---- check the archive as a user gets it ------------------------------------
echo "==> sdk-archive: check"
tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
case $archive in
    *.zip)
        if [ -n "$py" ]; then
            (cd "$tmp" && "$py" -m zipfile -e "$archive" .)
        else
            (cd "$tmp" && 7z x -bd "$archive" >/dev/null)
        fi
        ;;
    *) tar -xzf "$archive" -C "$tmp" ;;
esac
sdk=$tmp/$name
for f in include/fastnet.h README.txt lib/native-static-libs.txt; do
    [ -f "$sdk/$f" ] || fail "the archive lacks $f"
done
[ -z "$(find "$sdk" -iname 'bcryptprimitives*')" ] || fail "the Wine shim is in the archive"

cc='' cxx='' shared=()
case $os in
    linux | macos)
        cc=${CC:-cc} cxx=${CXX:-c++}
        # shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker
        if [ "$os" = linux ]; then rpath='$ORIGIN/lib'; else rpath=@executable_path/lib; fi
        shared=(-L"$sdk/lib" -lfastnet "-Wl,-rpath,$rpath")
        ;;
    mingw)
        cc=x86_64-w64-mingw32-gcc cxx=x86_64-w64-mingw32-g++
        shared=(-L"$sdk/lib" -lfastnet)
        ;;
    msvc)
        echo "check: compiling with MSVC is not scripted here (cargo test covers the DLL on Windows)"
        exit 0
        ;;
esac
command -v "$cc" >/dev/null || { echo "check: no $cc here: compile checks skipped"; exit 0; }
cflags=(-std=c99 -Wall -Wextra -Werror -O2 -I"$sdk/include")
cxxflags=(-std=c++17 -Wall -Wextra -Werror -O2 -I"$sdk/include")
# shellcheck disable=SC2206 # native_libs is a list of linker flags
static=("$sdk/lib/libfastnet.a" $native_libs)
exe=
[ "$os" = mingw ] && exe=.exe
# Programs go in the SDK's top directory, so that the rpath $ORIGIN/lib (or
# the Windows rule "DLLs beside the EXE", with bin/) is what finds the library.
out=$sdk

cat >"$tmp/version_probe.c" <<'EOF'
#include <stdio.h>
#include "fastnet.h"

int main(void)
{
    printf("fastnet %s, ABI %u\n", fastnet_version(), (unsigned)fastnet_abi_version());
    return fastnet_abi_version() == FASTNET_ABI_VERSION ? 0 : 1;
}
EOF
"$cc" "${cflags[@]}" "$tmp/version_probe.c" -o "$out/probe_shared$exe" "${shared[@]}"
"$cc" "${cflags[@]}" "$tmp/version_probe.c" -o "$out/probe_static$exe" "${static[@]}"
built=(probe_shared probe_static)
shopt -s nullglob
for src in "$sdk"/examples/c/*.c; do
    base=$(basename "$src" .c)
    extra=()
    case $base in
        quickstart) extra=(-Wno-format) ;; # keeps the brief's printf formats
        misuse) [ "$os" = mingw ] || extra=(-pthread) ;;
    esac
    "$cc" "${cflags[@]}" "${extra[@]}" "$src" -o "$out/c_$base$exe" "${shared[@]}"
    built+=("c_$base")
done
if command -v "$cxx" >/dev/null; then
    cxx_rt=()
    [ "$os" != mingw ] || cxx_rt=(-static-libgcc -static-libstdc++)
    for src in "$sdk"/examples/cpp/*.cpp; do
        base=$(basename "$src" .cpp)
        "$cxx" "${cxxflags[@]}" "$src" -o "$out/cpp_$base$exe" "${shared[@]}" "${cxx_rt[@]}"
        built+=("cpp_$base")
    done
else
    echo "check: no $cxx here: C++ examples not compiled"
fi
shopt -u nullglob
echo "check: compiled against the unpacked SDK: ${built[*]}"

if [ "$os" = mingw ]; then
    echo "check: passed in $((SECONDS - started)) s (Windows programs run in ci/win64.sh)"
    exit 0
fi

for probe in probe_shared probe_static; do
    line=$("$out/$probe")
    echo "check: $probe: $line"
    [ "$line" = "fastnet $version, ABI $(sed -n 's/^#define FASTNET_ABI_VERSION //p' "$sdk/include/fastnet.h")" ] ||
        fail "$probe printed '$line'"
done
if [ "$os" = linux ] && command -v readelf >/dev/null; then
    readelf -d "$out/c_echo_client" | grep -q 'NEEDED.*\[libfastnet\.so\]' ||
        fail "c_echo_client does not need libfastnet.so by its SONAME"
fi

if [ -x "$out/c_echo_server" ] && [ -x "$out/c_echo_client" ]; then
    "$out/c_echo_server" --dev-cert --bind 127.0.0.1 --udp-port 0 --tcp-port 0 --clients 1 \
        --timeout-s 60 >"$tmp/server.out" 2>&1 &
    server_pid=$!
    port='' pin=''
    for _ in $(seq 1 300); do
        port=$(sed -n 's/^listening udp=[0-9]* tcp=\([0-9]*\)$/\1/p' "$tmp/server.out")
        pin=$(sed -n 's/^fingerprint //p' "$tmp/server.out")
        [ -n "$port" ] && [ -n "$pin" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ] || [ -z "$pin" ]; then
        cat "$tmp/server.out" >&2
        fail "the SDK's echo server did not start"
    fi
    status=0
    "$out/c_echo_client" --host 127.0.0.1 --port "$port" --pin "$pin" >"$tmp/client.out" 2>&1 || status=$?
    [ "$status" = 0 ] || { cat "$tmp/client.out" "$tmp/server.out" >&2; fail "the SDK's echo client exited with $status"; }
    wait "$server_pid" || { cat "$tmp/server.out" >&2; fail "the SDK's echo server failed"; }
    server_pid=
    echo "check: C echo on loopback: $(grep '^echoed' "$tmp/client.out")"
fi
echo "check: passed in $((SECONDS - started)) s"
