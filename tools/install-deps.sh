#!/usr/bin/env bash
# install-deps.sh [build|test] - installs the Debian 12 packages presenced
# needs to build and run ("build", the default) or also to test ("test").
# Installs only what is missing; uses sudo when not root. Non-interactive.
set -euo pipefail

build_pkgs=(
    meson ninja-build pkg-config gcc
    liburing-dev libjemalloc-dev libxml2-dev android-libboringssl-dev
    librocksdb-dev libldap-dev libinih-dev libhttp-parser-dev libxxhash-dev
    libjansson-dev libidn2-dev libutf8proc-dev libunistring-dev
)
test_pkgs=(
    clang libclang-rt-14-dev    # libFuzzer targets
    prometheus                  # promtool checks the /metrics exposition
    curl python3
    python3-slixmpp             # a real XMPP client for the integration tests
    sip-tester                  # SIPp: a real SIP user agent for the integration tests
    libck-dev                   # Concurrency Kit: the mailbox benchmark's peer
)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo for apt-get" >&2; exit 1; }
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
