#!/usr/bin/env bash
# Installs what the test suite needs on a Debian or Ubuntu machine, and nothing
# that is already there: running it again is a no-op that prints nothing.
#
#   bash ci/install-deps.sh [-v] [GROUP...]
#
# Groups (all of them when none is named):
#   base   gcc, g++, valgrind; rustup components rustfmt and clippy
#   win64  the mingw-w64 cross compilers (C, C++), Wine, rustup target
#          x86_64-pc-windows-gnu
#          (ci/win64.sh)
#   lint   python3 venv support and shellcheck (ci/actionlint.sh)
#   fuzz   the nightly toolchain (minimal profile) and cargo-fuzz (ci/fuzz.sh)
#   bench  libenet-dev, so that the bench compares with ENet (optional there)
#
# FASTNET_SKIP_WIN64=1 (which ci/win64.sh also honours) leaves out win64 when
# no group is named.
#
# Quiet on success: a step that had nothing to do prints nothing, a step that
# installed something prints one line with its duration. -v (or
# FASTNET_CI_VERBOSE=1) prints every step with its duration. On failure the
# installer's output is shown.
#
# Runs as root, or through sudo when not root (GitHub's Ubuntu runners). On a
# machine without apt-get (macOS, Windows) the apt step is skipped with a note;
# the rustup steps still run.
set -euo pipefail

verbose=${FASTNET_CI_VERBOSE:-0}
groups=()
for arg in "$@"; do
    case $arg in
        -v | --verbose) verbose=1 ;;
        base | win64 | lint | fuzz | bench) groups+=("$arg") ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "install-deps: unknown argument '$arg' (groups: base win64 lint fuzz bench)" >&2
            exit 2
            ;;
    esac
done
if [ ${#groups[@]} -eq 0 ]; then
    groups=(base lint fuzz bench)
    [ "${FASTNET_SKIP_WIN64:-0}" = 1 ] || groups+=(win64)
fi
want() { [[ " ${groups[*]} " == *" $1 "* ]]; }

now() { date +%s.%N; }
# report START WHAT CHANGED: one line when something changed or when verbose.
report() {
    local secs
    secs=$(awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$3" = 1 ] || [ "$verbose" = 1 ]; then
        echo "install-deps: $2 (${secs} s)"
    fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# run CMD...: runs quietly, shows the output and fails if CMD fails.
run() {
    if ! "$@" >"$log" 2>&1; then
        echo "install-deps: failed: $*" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

# ---- Debian packages -------------------------------------------------------
# PACKAGE:COMMAND, the command proving the package is there (the tool may also
# come from elsewhere, as on GitHub's runners), or PACKAGE:- for a package
# without a command, checked with dpkg.
apt_wanted=()
if want base; then apt_wanted+=(gcc:gcc g++:g++ valgrind:valgrind); fi
if want win64; then
    apt_wanted+=(gcc-mingw-w64-x86-64:x86_64-w64-mingw32-gcc g++-mingw-w64-x86-64:x86_64-w64-mingw32-g++)
    # 64-bit-only Wine: Debian 12 and Ubuntu 24.04 call it wine64; the package
    # wine has the wine, wineboot and wineserver commands.
    apt_wanted+=(wine64:- wine:wine)
fi
if want lint; then apt_wanted+=(shellcheck:shellcheck); fi
if want bench; then apt_wanted+=(libenet-dev:-); fi
have() {
    if [ "$2" = - ]; then
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
    else
        command -v "$2" >/dev/null 2>&1
    fi
}

start=$(now)
missing=()
for entry in "${apt_wanted[@]}"; do
    pkg=${entry%%:*} cmd=${entry#*:}
    have "$pkg" "$cmd" || missing+=("$pkg")
done
# python3 -m venv needs Debian's python3-venv when python3 is Debian's own.
if want lint && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: no apt-get here; install by hand: ${missing[*]}" >&2
    else
        sudo=()
        if [ "$(id -u)" != 0 ]; then sudo=(sudo -n); fi
        export DEBIAN_FRONTEND=noninteractive
        apt_opts=(-q -o DPkg::Lock::Timeout=300)
        # Update the package lists once, only because something is missing.
        run "${sudo[@]}" apt-get "${apt_opts[@]}" update
        report "$start" "apt-get update" 1
        start=$(now)
        # No recommended packages: Wine alone recommends ~150 (sound, video,
        # fonts) that halve the install's speed and that no test needs.
        run "${sudo[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
        report "$start" "apt-get install ${missing[*]}" 1
    fi
else
    report "$start" "Debian packages present" 0
fi

# ---- Rust toolchain --------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
    echo "install-deps: rustup not found: install Rust with rustup" >&2
    exit 1
fi
if want base; then
    start=$(now)
    installed=$(rustup component list --installed 2>/dev/null || true)
    components=()
    for c in rustfmt clippy; do
        grep -q "^$c" <<<"$installed" || components+=("$c")
    done
    if [ ${#components[@]} -gt 0 ]; then
        run rustup component add "${components[@]}"
        report "$start" "rustup component add ${components[*]}" 1
    else
        report "$start" "rustup components present" 0
    fi
fi
if want win64; then
    start=$(now)
    if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
        run rustup target add x86_64-pc-windows-gnu
        report "$start" "rustup target add x86_64-pc-windows-gnu" 1
    else
        report "$start" "rustup target present" 0
    fi
fi
if want fuzz; then
    start=$(now)
    if ! rustup toolchain list | grep -q '^nightly'; then
        run rustup toolchain install nightly --profile minimal
        report "$start" "rustup toolchain install nightly" 1
    else
        report "$start" "nightly toolchain present" 0
    fi
    start=$(now)
    if ! cargo fuzz --version >/dev/null 2>&1; then
        run cargo install cargo-fuzz --locked
        report "$start" "cargo install cargo-fuzz" 1
    else
        report "$start" "cargo-fuzz present" 0
    fi
fi
