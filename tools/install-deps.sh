#!/usr/bin/env bash
# install-deps.sh [build|test|bench] - installs the Debian 12 packages
# presenced needs to build and run ("build", the default), also to test
# ("test"), or also to run the side-by-side benchmarks against Prosody,
# ejabberd and Kamailio ("bench", see bench/README.md).
# Installs only what is missing; uses sudo when not root. Non-interactive.
# The peers' packages start their distro services where an init system runs
# them: "bench" stops those and disables them, so that bench/compare starts
# each peer itself on free loopback ports and nothing else holds 5222/5060.
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
    gnuplot-nox                 # bench/report's plots, checked by the test suite
)

bench_pkgs=(
    prosody lua-dbi-sqlite3     # XMPP peer; sqlite storage for its provisioning
    ejabberd                    # XMPP peer (its sql backend uses sqlite3)
    erlang-p1-sqlite3
    kamailio kamailio-presence-modules kamailio-sqlite-modules  # SIP peer
    sqlite3 gnuplot-nox curl python3 procps
)

mode=${1:-build}
want=("${build_pkgs[@]}")
case $mode in
    build) ;;
    test) want+=("${test_pkgs[@]}") ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

# Distro services of the peers: stopped and kept from starting again, by
# whichever init system is there (none in a bare container).
stop_peer_services() {
    local s
    for s in prosody ejabberd kamailio; do
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            "${sudo[@]}" systemctl disable --now "$s" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$s" ]; then
            "${sudo[@]}" "/etc/init.d/$s" stop >/dev/null 2>&1 || true
            command -v update-rc.d >/dev/null && "${sudo[@]}" update-rc.d "$s" disable \
                >/dev/null 2>&1 || true
        fi
    done
    # ejabberd's package starts epmd and the node as user ejabberd; a leftover
    # node would hold 5222 and 5280.
    if pgrep -u ejabberd beam.smp >/dev/null 2>&1; then
        "${sudo[@]}" su ejabberd -s /bin/sh -c 'ejabberdctl stop' >/dev/null 2>&1 || true
    fi
}

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
sudo=()
if [ ${#missing[@]} -ne 0 ] && [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo for apt-get" >&2; exit 1; }
    sudo=(sudo -n)
fi
if [ ${#missing[@]} -ne 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # policy-rc.d 101: packages do not start their services while installing
    # (they would take the XMPP and SIP ports); removed afterwards.
    prc=/usr/sbin/policy-rc.d
    own_prc=0
    if [ "$mode" = bench ] && [ ! -e $prc ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee $prc >/dev/null
        "${sudo[@]}" chmod 755 $prc
        own_prc=1
    fi
    rc=0
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >&2 || rc=$?
    [ $own_prc = 1 ] && "${sudo[@]}" rm -f $prc
    [ $rc = 0 ] || exit $rc
fi
if [ "$mode" = bench ]; then
    stop_peer_services
fi
