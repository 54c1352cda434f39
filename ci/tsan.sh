#!/usr/bin/env bash
# The C ABI's tests under ThreadSanitizer: registry misuse, and several threads
# sending, polling and destroying one handle at once. Any data race report
# fails the run (TSan exits non-zero). Needs the nightly toolchain with
# rust-src (the standard library is rebuilt with the sanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list | grep -q nightly; then
    rustup toolchain install nightly --profile minimal
fi
rustup component add rust-src --toolchain nightly >/dev/null 2>&1

target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Zsanitizer=thread" \
    cargo +nightly test -Zbuild-std --target "$target" --target-dir target/tsan \
    -p fastnet-capi --test misuse --test end_to_end
echo "tsan: no data race reported"
