#!/usr/bin/env bash
# xmpp_load.sh - the XMPP load measurement: login storm, roster fetch,
# initial presence and presence fan-out against one presenced node.
#
#   bench/xmpp_load.sh [-b BUILD_DIR] [-n USERS] [-k CONTACTS] [-r RUNS]
#                      [-s SWEEP_RATES] [-R RATES] [-d SECONDS] [-t THREADS]
#
# Starts a release presenced from BUILD_DIR (default build-bench, configured
# --buildtype=release when missing) with 2 shards, a data dir in a mktemp dir,
# free loopback ports and require_tls = false (a generated config), imports N
# users with K contacts each (presbench xmpp provision | presencectl import,
# timed), then:
#   pass 1  RUNS runs of presbench with a sweep of change rates (SWEEP_RATES,
#           changes/s, comma-separated, each for SECONDS): logins, and the
#           peak: the most deliveries/s that arrived within a stage (median
#           over the runs);
#   pass 2  RUNS runs at RATES changes/s (comma-separated, each for twice
#           SECONDS; default: half the median peak): change-to-delivery
#           latency at that load. With -R, pass 1 is skipped.
# Every run restarts the node on the same data dir (stopped by PID), so each
# login storm starts cold. Prints every run's table and the medians; the JSON
# of each run and the node's final /metrics stay in the work dir when KEEP=1.
# Bounded in time: every presbench run is under `timeout`; load stays on
# 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
users=25000
contacts=50
runs=3
sweep=2000,4000,6000,8000,12000
rate=
duration=8
threads=2
while getopts b:n:k:r:s:R:d:t: o; do
    case $o in
        b) build=$OPTARG ;;
        n) users=$OPTARG ;;
        k) contacts=$OPTARG ;;
        r) runs=$OPTARG ;;
        s) sweep=$OPTARG ;;
        R) rate=$OPTARG ;;
        d) duration=$OPTARG ;;
        t) threads=$OPTARG ;;
        *) sed -n '2,23p' "$0" >&2; exit 2 ;;
    esac
done


[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" presenced presencectl bench/presbench >/dev/null
python=/usr/bin/python3
[ -x $python ] || python=python3

work=$(mktemp -d /tmp/xmpp-load.XXXXXX)
pid=

. bench/node.sh
admin_port=$(free_port)
xmpp_port=$(free_port)
cat > "$work/presenced.conf" <<EOF
[admin]
listen = 127.0.0.1:$admin_port
[xmpp]
listen = 127.0.0.1:$xmpp_port
tls_listen =
require_tls = false
[sip]
listen =
tls_listen =
[pws]
listen =
tls_listen =
EOF


commit=${COMMIT:-$(git rev-parse --short HEAD)}
echo "# $(date -u +%FT%TZ) commit $commit" \
     "kernel $(uname -r) cores $(nproc) nofile(hard) $(ulimit -Hn)"
echo "# $users users, $contacts contacts each, 2 shards, presbench $threads threads;" \
     "server and generator share the $(nproc) cores"

start_node
"$build/bench/presbench" xmpp provision --users "$users" --contacts "$contacts" \
    --out "$work/users.jsonl" 2>/dev/null
t0=$(date +%s.%N)
"$build/presencectl" --admin "127.0.0.1:$admin_port" import "$work/users.jsonl" --jobs 4 2>&1
t1=$(date +%s.%N)
import_s=$($python -c "print(round($t1 - $t0, 1))")
echo "import: $users accounts with $contacts contacts each in $import_s s"
rm -f "$work/users.jsonl"
stop_node

# One run: presbench against a freshly started node. $1 = tag, rest = presbench options.
run_one() {
    local tag=$1
    shift
    start_node
    sleep 1     # let start-up allocations settle before the RSS baseline
    local rc=0
    # --idle 3: the node's RSS per user is read again after 3 s without
    # traffic, once the allocator has had time to return freed pages.
    timeout 900 "$build/bench/presbench" xmpp run --port "$xmpp_port" --users "$users" \
        --contacts "$contacts" --threads "$threads" --server-pid "$pid" --commit "$commit" \
        --idle 3 --json "$work/$tag.json" "$@" 2>"$work/$tag.err" || rc=$?
    curl -s "http://127.0.0.1:$admin_port/metrics" > "$work/$tag.metrics" || true
    stop_node
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        echo "presbench failed ($rc):" >&2
        cat "$work/$tag.err" >&2
        exit 1
    fi
    grep -v '^presbench: \(login\|[0-9]\|stage\|logout\)' "$work/$tag.err" >&2 || true
}

summarise() {   # $1 = glob of JSON files; prints medians
    $python - "$work" "$1" "$import_s" <<'EOF'
import glob, json, os, re, statistics, sys
work, pattern, import_s = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, pattern)))]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
def metric(tag, name):
    try:
        text = open(os.path.join(work, tag + ".metrics")).read()
    except OSError:
        return 0
    return sum(float(m.group(1)) for m in re.finditer(
        r"^presenced_%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))
print("runs: %d" % len(runs))
print("  logins/s (first connect to last bind)  median %.0f   (%s)" % (
    med([r["login"]["per_s"] for r in runs]),
    ", ".join("%.0f" % r["login"]["per_s"] for r in runs)))
print("  login storm, first connect to last bind median %.3f s (%s)" % (
    med([r["login"]["seconds"] for r in runs]),
    ", ".join("%.3f" % r["login"]["seconds"] for r in runs)))
for q in ("p50", "p90", "p99", "max"):
    print("  login latency %-4s                     median %.1f ms" % (
        q, med([r["login"]["latency_ms"][q] for r in runs])))
print("  roster fetch, all users                median %.3f s, p99 %.1f ms" % (
    med([r["roster"]["seconds"] for r in runs]),
    med([r["roster"]["latency_ms"]["p99"] for r in runs])))
print("  initial presence until quiet           median %.3f s, %d deliveries" % (
    med([r["initial"]["quiet_after_s"] for r in runs]),
    med([r["initial"]["delivered"] for r in runs])))
print("  server RSS per connected user          median %.0f bytes (%s)" % (
    med([r["server"]["bytes_per_connected_user"] for r in runs]),
    ", ".join("%.0f" % r["server"]["bytes_per_connected_user"] for r in runs)))
print("  ... after %.0f s idle                     median %.0f bytes (%s)" % (
    runs[0]["server"]["idle_s"] if runs else 0,
    med([r["server"]["bytes_per_idle_user"] for r in runs]),
    ", ".join("%.0f" % r["server"]["bytes_per_idle_user"] for r in runs)))
print("  cores during login                      server %.2f, generator %.2f, others %.2f" % (
    med([r["login"]["server_cores"] for r in runs]),
    med([r["login"]["generator_cores"] for r in runs]),
    med([r["login"]["other_cores"] for r in runs])))
nstages = min(len(r["stages"]) for r in runs) if runs else 0
for k in range(nstages):
    st = [r["stages"][k] for r in runs]
    offered = med([s["expected"] / r["params"]["duration_s"] for s, r in zip(st, runs)])
    print("  stage %.0f changes/s (%.0f deliveries/s offered): deliveries/s median %.0f (%s),"
          " delivered %.2f %%" % (
        st[0]["rate"], offered, med([s["deliveries_per_s"] for s in st]),
        ", ".join("%.0f" % s["deliveries_per_s"] for s in st),
        med([100.0 * s["delivered"] / s["expected"] if s["expected"] else 0 for s in st])))
    print("      latency us p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f;"
          " cores: server %.2f, generator %.2f, others %.2f" % tuple(
        [med([s["latency_us"][q] for s in st]) for q in ("p50", "p90", "p99", "p999", "max")] +
        [med([s[k] for s in st]) for k in ("server_cores", "generator_cores", "other_cores")]))
errors = {}
for r in runs:
    for k, v in r["errors"].items():
        errors[k] = errors.get(k, 0) + v
print("  errors over all runs: %s" % (", ".join("%s=%d" % kv for kv in sorted(errors.items()))
                                      or "none"))
tags = [os.path.basename(p)[:-5] for p in sorted(glob.glob(os.path.join(work, pattern)))]
for name in ("output_queue_overflows_total", "mailbox_refused_total",
             "receive_buffer_exhausted_total", "xmpp_login_failures_total"):
    vals = [metric(t, name) for t in tags]
    if any(vals):
        print("  server %s: %s" % (name, ", ".join("%.0f" % v for v in vals)))
EOF
}

# The most deliveries/s that arrived within a stage's window, median over the
# runs. A stage that got less than 95 % of what it offered was saturated and
# its figure is the node's capacity; if none was, the peak is only a lower
# bound (the sweep did not reach it) and says so on stderr.
peak_of() {
    $python - "$work" <<'EOF'
import glob, json, os, statistics, sys
peaks, saturated = [], 0
for p in glob.glob(os.path.join(sys.argv[1], "sweep-*.json")):
    r = json.load(open(p))
    st = r["stages"]
    peaks.append(max(s["deliveries_per_s"] for s in st) if st else 0)
    saturated += any(s["deliveries_per_s"] < 0.95 * s["expected"] / r["params"]["duration_s"]
                     for s in st)
if not saturated:
    print("no sweep stage saturated the node: the peak is a lower bound", file=sys.stderr)
print(int(statistics.median(peaks)) if peaks else 0)
EOF
}

if [ -z "$rate" ]; then
    echo "## pass 1: sweep $sweep changes/s, $duration s each"
    for i in $(seq "$runs"); do
        run_one "sweep-$i" --rates "$sweep" --duration "$duration"
        $python -c "
import json; r = json.load(open('$work/sweep-$i.json'))
print('run $i: %.0f logins/s; ' % r['login']['per_s'] + ', '.join(
    '%.0f/s -> %.0f deliveries/s (p99 %.0f us)' % (s['rate'], s['deliveries_per_s'],
    s['latency_us']['p99']) for s in r['stages']))"
    done
    summarise "sweep-*.json"
    peak=$(peak_of)
    rate=$(( peak / 2 / contacts ))
    echo "peak deliveries/s (median of runs): $peak; half load: $rate changes/s"
    [ "$rate" -gt 0 ] || exit 1
fi

echo "## pass 2: $rate changes/s for $(( duration * 2 )) s"
for i in $(seq "$runs"); do
    run_one "latency-$i" --rates "$rate" --duration "$(( duration * 2 ))"
done
summarise "latency-*.json"
