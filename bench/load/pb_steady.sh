#!/bin/sh
# pb_steady.sh - presenced's steady state and logout storm with presbench: N users
# with K contacts each (presbench xmpp provision | presencectl import), then RUNS
# runs, each against a freshly started node: login storm, rosters, initial
# presence, one stage per rate of RATES presence changes/s with MSG chat
# messages/s on top for DURATION s each, and the logout storm. Prints the
# medians over the runs of each stage's deliveries/s, latency p50/p99,
# messages/s and message latency p50/p99, and of logouts/s and the time until
# the node closed every stream; writes every run's JSON and an HTML report
# (bench/report, when gnuplot is there) into OUT. Then, unless REG=0, times
# `presbench xmpp register` (XEP-0077 and every subscription handshake) for
# REG users against an empty node.
#
#   flock /tmp/presenced-bench.lock bench/load/pb_steady.sh
#
# Environment: BUILD (default build-pb-rel, a release build), USERS (5000),
# CONTACTS (20), RATES (5000,20000), MSG (2000), DURATION (10), RUNS (3),
# REG (2000), OUT (a new /tmp/pb-steady.* dir). Every presbench run is under
# `timeout`; the node is stopped by its PID, also on error.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$src/build-pb-rel}
users=${USERS:-5000}
contacts=${CONTACTS:-20}
rates=${RATES:-5000,20000}
msg=${MSG:-2000}
duration=${DURATION:-10}
runs=${RUNS:-3}
reg=${REG:-2000}
out=${OUT:-$(mktemp -d /tmp/pb-steady.XXXXXX)}
mkdir -p "$out"
ninja -C "$build" -j2 presenced presencectl bench/presbench >/dev/null

work=$out
pid=
. "$src/bench/node.sh"
trap stop_node EXIT INT TERM

admin_port=$(free_port)
xmpp_port=$(free_port)
cat > "$out/presenced.conf" <<EOF
[admin]
listen = 127.0.0.1:$admin_port
[xmpp]
listen = 127.0.0.1:$xmpp_port
tls_listen =
require_tls = false
registration = true
[sip]
listen =
tls_listen =
[pws]
listen =
tls_listen =
EOF

commit=$(git -C "$src" rev-parse --short HEAD)
echo "# $(date -u +%FT%TZ) commit $commit kernel $(uname -r) cores $(nproc)"
echo "# $users users x $contacts contacts, rates $rates changes/s, $msg messages/s," \
     "$duration s per stage, $runs runs, 2 shards; server and generator share the cores"

start_node "$out/data"
"$build/bench/presbench" xmpp provision --users "$users" --contacts "$contacts" \
    --out "$out/users.jsonl" 2>/dev/null
"$build/presencectl" --admin "127.0.0.1:$admin_port" import "$out/users.jsonl" --jobs 4 \
    >/dev/null
rm -f "$out/users.jsonl"
stop_node

i=1
while [ "$i" -le "$runs" ]; do
    start_node "$out/data"
    rc=0
    timeout 900 "$build/bench/presbench" xmpp run --port "$xmpp_port" --users "$users" \
        --contacts "$contacts" --rates "$rates" --msg-rate "$msg" --duration "$duration" \
        --server-pid "$pid" --label presenced --commit "$commit" \
        --json "$out/run-$i.json" >"$out/run-$i.out" 2>"$out/run-$i.err" || rc=$?
    stop_node
    if [ "$rc" -ne 0 ]; then
        echo "run $i: presbench exited $rc" >&2
        tail -5 "$out/run-$i.err" >&2
    fi
    i=$((i + 1))
done

python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rs = []
for i in range(1, runs + 1):
    try:
        rs.append(json.load(open("%s/run-%d.json" % (out, i))))
    except OSError:
        pass
def med(vals):
    return statistics.median(vals), min(vals), max(vals)
def row(name, vals, unit, fmt="%.0f"):
    m, lo, hi = med(vals)
    print("| %s | %s %s | %s | %s |" % (name, fmt % m, unit, fmt % lo, fmt % hi))
print("| figure (%d runs) | median | min | max |" % len(rs))
print("|---|---|---|---|")
for k, st in enumerate(rs[0]["stages"]):
    ss = [r["stages"][k] for r in rs]
    tag = "stage %.0f changes/s" % st["rate"]
    row(tag + ": deliveries", [s["deliveries_per_s"] for s in ss], "/s")
    row(tag + ": delivered of expected", [100.0 * s["delivered"] / max(1, s["expected"])
                                          for s in ss], "%", "%.2f")
    row(tag + ": change-to-delivery p50", [s["latency_us"]["p50"] for s in ss], "us")
    row(tag + ": change-to-delivery p99", [s["latency_us"]["p99"] for s in ss], "us")
    row(tag + ": messages delivered", [s["messages"]["delivered_per_s"] for s in ss], "/s")
    row(tag + ": message latency p50", [s["messages"]["latency_us"]["p50"] for s in ss], "us")
    row(tag + ": message latency p99", [s["messages"]["latency_us"]["p99"] for s in ss], "us")
    row(tag + ": server cores", [s["server_cores"] for s in ss], "", "%.2f")
row("logout storm: logouts", [r["logout"]["per_s"] for r in rs], "/s")
row("logout storm: every stream closed after", [r["logout"]["seconds"] * 1e3 for r in rs],
    "ms", "%.1f")
row("logout latency p99", [r["logout"]["latency_ms"]["p99"] for r in rs], "ms", "%.1f")
errs = [sum(r["errors"].values()) for r in rs]
print("errors per run: %s" % errs)
EOF

if command -v gnuplot >/dev/null 2>&1; then
    "$src/bench/report" -o "$out/report.html" --title "presenced steady state ($commit)" \
        "$out"/run-*.json 2>/dev/null && echo "report: $out/report.html"
fi

if [ "$reg" -gt 0 ]; then
    start_node "$out/data-register"
    rc=0
    timeout 900 "$build/bench/presbench" xmpp register --port "$xmpp_port" --users "$reg" \
        --contacts "$contacts" --concurrency 200 --label presenced \
        --json "$out/register.json" >"$out/register.out" 2>"$out/register.err" || rc=$?
    stop_node
    cat "$out/register.out"
    [ "$rc" -eq 0 ] || echo "register: presbench exited $rc" >&2
fi
echo "# output in $out"
