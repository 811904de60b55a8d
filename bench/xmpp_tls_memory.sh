#!/usr/bin/env bash
# xmpp_tls_memory.sh - server memory per idle connected XMPP user, plain TCP
# against direct TLS, with the same client.
#
#   bench/xmpp_tls_memory.sh [-b BUILD_DIR] [-n USERS] [-k CONTACTS] [-r RUNS]
#
# Starts a release presenced from BUILD_DIR (default build-bench, configured
# --buildtype=release when missing) with 2 shards on free loopback ports
# (require_tls = false and plain_without_tls = true, so that one client can
# log in over both listeners), imports N users with K contacts each (presbench
# xmpp provision), then RUNS times, for plain TCP and for TLS in turn: starts
# the node afresh, logs every user in with bench/load/xmpp_hold.py (SASL
# PLAIN, bind, roster get, initial presence), holds the streams idle for 10 s
# and reads the node's RSS growth per user. Prints each run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
users=5000
contacts=50
runs=3
while getopts b:n:k:r: o; do
    case $o in
        b) build=$OPTARG ;;
        n) users=$OPTARG ;;
        k) contacts=$OPTARG ;;
        r) runs=$OPTARG ;;
        *) sed -n '2,14p' "$0" >&2; exit 2 ;;
    esac
done

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" presenced presencectl bench/presbench >/dev/null
python=/usr/bin/python3
[ -x $python ] || python=python3
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/xmpp-tls-memory.XXXXXX)
pid=

. bench/node.sh
admin_port=$(free_port)
xmpp_port=$(free_port)
tls_port=$(free_port)
cat > "$work/presenced.conf" <<EOF
[admin]
listen = 127.0.0.1:$admin_port
[xmpp]
listen = 127.0.0.1:$xmpp_port
tls_listen = 127.0.0.1:$tls_port
require_tls = false
plain_without_tls = true
[sip]
listen =
tls_listen =
[pws]
listen =
tls_listen =
EOF


echo "# $(date -u +%FT%TZ) commit ${COMMIT:-$(git rev-parse --short HEAD)}" \
     "kernel $(uname -r) cores $(nproc)"
echo "# $users users, $contacts contacts each, 2 shards; client: bench/load/xmpp_hold.py"
start_node
"$build/bench/presbench" xmpp provision --users "$users" --contacts "$contacts" \
    --out "$work/users.jsonl" 2>/dev/null
"$build/presencectl" --admin "127.0.0.1:$admin_port" import "$work/users.jsonl" --jobs 4 \
    >/dev/null 2>&1
rm -f "$work/users.jsonl"
stop_node

for i in $(seq "$runs"); do
    for mode in plain tls; do
        start_node
        sleep 1     # start-up allocations settle before the baseline
        if [ $mode = tls ]; then
            args=(--port "$tls_port" --tls)
        else
            args=(--port "$xmpp_port")
        fi
        timeout 600 $python bench/load/xmpp_hold.py "${args[@]}" --users "$users" \
            --pid "$pid" --hold 10 > "$work/$mode-$i.json"
        stop_node
        echo "run $i $mode: $(cat "$work/$mode-$i.json")"
    done
done

$python - "$work" <<'EOF'
import glob, json, os, statistics, sys
work = sys.argv[1]
med = {}
for mode in ("plain", "tls"):
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, mode + "-*.json")))]
    med[mode] = statistics.median(r["bytes_per_user"] for r in runs)
    print("%-5s RSS growth per connected user: median %.0f bytes (%s)" % (
        mode, med[mode], ", ".join(str(r["bytes_per_user"]) for r in runs)))
print("TLS costs %.0f bytes more per user" % (med["tls"] - med["plain"]))
EOF
