#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, and every test, with both AEAD
# backends. README.md names this command; .ci/run calls exactly it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
bash ci/install-deps.sh
cargo --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --features fastnet/rustcrypto -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "tests (ring AEAD)"
cargo test --workspace

step "tests (ring and RustCrypto AEAD side by side)"
cargo test -p fastnet --features rustcrypto --lib crypto

step "C ABI: header, C and C++ examples, misuse, valgrind"
bash ci/capi-test.sh

step "C ABI under ThreadSanitizer (threads sharing and destroying handles)"
bash ci/tsan.sh

step "Windows x86_64: mingw cross-build, C/C++ echo under Wine against Linux"
bash ci/win64.sh

step "C SDK archives: Linux and Windows (mingw)"
bash ci/sdk-archive.sh
[ "${FASTNET_SKIP_WIN64:-0}" = 1 ] || bash ci/sdk-archive.sh --target x86_64-pc-windows-gnu

step "GitHub Actions workflows (actionlint)"
bash ci/actionlint.sh

step "soak: 64 clients for 60 s through 10% loss, reordering and duplication"
cargo run --release --quiet -p fastnet --example soak -- --clients 64 --seconds "${FASTNET_SOAK_SECONDS:-60}"

step "fuzzing (every network-facing decoder, 60 s each)"
bash ci/fuzz.sh "${FASTNET_FUZZ_SECONDS:-60}"

echo
echo "all checks passed"
