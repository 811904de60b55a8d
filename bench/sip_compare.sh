#!/usr/bin/env bash
# sip_compare.sh - SIP presence load, presenced next to Kamailio's presence
# module on the same workload, in one run: N presentities with M watchers each
# (bench/load/sipbench.c), PUBLISH stages, NOTIFYs/s and publish-to-notify
# latency.
#
#   bench/sip_compare.sh [-b BUILD_DIR] [-n PRESENTITIES] [-m WATCHERS] [-r RUNS]
#                        [-s SWEEP] [-S KAMAILIO_SWEEP] [-d SECONDS] [-w WINDOW]
#                        [-k KAMAILIO_CHILDREN] [-t THREADS] [-o SOCKETS] [-i IDLE]
#                        [-W WAKE_BATCH] [-P] [-B] [-T]
#
# Installs what is missing (kamailio, kamailio-presence-modules; db_text ships
# with kamailio), builds presenced, presencectl and sipbench in BUILD_DIR
# (default build-bench, configured --buildtype=release when missing), then:
#   presenced  2 shards, a fresh data dir and a generated config in a mktemp
#              dir: SIP on a free loopback port with `auth = off`, the XMPP
#              listener on another (see below); the N presentity and N*M
#              watcher accounts imported once with `presencectl import`
#              (`sipbench provision`); restarted for every sipbench run
#   kamailio   bench/peers/kamailio/kamailio.cfg filled in for a free port,
#              KAMAILIO_CHILDREN workers (default 8, as Debian's
#              /etc/kamailio/kamailio.cfg has it), a db_text directory copied
#              from Debian's template, started afresh for every run
# pass 1: RUNS runs (default 3) of sipbench on each server, taking turns,
#         with a sweep of PUBLISH rates (SWEEP for presenced, KAMAILIO_SWEEP
#         for Kamailio, PUBLISH/s, SECONDS each): subscription set-up and
#         each server's peak NOTIFYs/s (median over the runs of the most
#         NOTIFYs/s a stage received within its window) and its sustained
#         rate (the best stage that delivered every NOTIFY it owed with a p99
#         latency under 100 ms: past the peak, a server that drops datagrams
#         retransmits NOTIFYs and its latency grows to seconds);
# pass 2: RUNS runs on each server at half its own peak: publish-to-notify
#         latency at that load.
# sipbench runs THREADS worker threads (-t, default one per core), each with
# SOCKETS sockets (-o, default 64; 16 connections with -T). One thread is
# not enough on a machine the server shares: when the server's threads are
# busy the scheduler gives each runnable thread an equal share of the cores,
# so one generator thread next to presenced's two shards gets a third of two
# cores, and at presenced's peak that third, not the server, set the rate
# measured (one thread: at most 139,000 NOTIFYs/s, p99 ~200 ms past 120,000;
# two: 180,000 at p99 7 ms). Kamailio gets the same generator.
# -W WAKE_BATCH has each generator thread sleep until that many completions
# are ready or 100 us after the first (sipbench --wake-batch) instead of
# waking for every datagram, a wake-up the server's send pays over loopback.
# Every run waits IDLE seconds (-i, default 35) between subscribing and the
# first stage: past the 32 s presenced keeps each SUBSCRIBE's server
# transaction, and past the 10-15 s Kamailio spends after a set-up of 20,000
# subscriptions releasing its transactions (its CPU at a steady 2,500 NOTIFYs/s
# falls from 0.56 to 0.21 cores over that time). The server's memory is sampled
# again then: what the subscriptions themselves hold.
# Prints every run's line, then the medians side by side with the ratios
# presenced/Kamailio. -P runs presenced alone (sizes Kamailio's memory
# would not hold).
#
# -T runs everything over TCP instead of UDP, the way a call-control SIP
# trunk carries phones' presence subscriptions: sipbench --transport tcp, its
# SOCKETS (default 16 with -T) each one TCP connection that carries the
# dialogs of many watchers and presentities; presenced unchanged (its `[sip]
# listen` serves TCP on the same port as UDP); Kamailio started with
# -A WITH_TCP, which adds a TCP listener on its port with KAMAILIO_CHILDREN
# TCP workers (see kamailio.cfg). Both servers get the same bound on what one
# connection may queue for a slow reader: presenced's `[net]
# output_queue_max_bytes` and Kamailio's `tcp_conn_wq_max`, 2 KiB per
# subscription (40 MiB at 2,000 x 10). A NOTIFY with one tuple is about
# 1 KiB, and a presentity has one PUBLISH under way at a time, so no more
# than one NOTIFY per subscription can wait for the generator: past a
# server's peak its NOTIFYs queue and their latency grows, where the
# defaults (256 KiB, and Kamailio's 32 KiB) would close a connection and end
# the run. Kamailio gets 4 GiB of shared memory instead of 1 GiB (its write
# queues live there too). The socket drop counts are UDP's and left out. The
# header says "over TCP".
#
# -B (diagnosis) adds a third server, presenced_rcvbuf: presenced with an
# LD_PRELOAD shim (compiled into the work dir) that gives each UDP socket it
# binds SO_RCVBUF = net.core.rmem_max, the receive buffer Kamailio's
# `maxbuffer` probing obtains. presenced leaves its UDP sockets at
# net.core.rmem_default (usually 208 KiB), which a shard that misses its
# core for a few milliseconds overflows; -B shows what that costs.
#
# Each server is stopped by its PID; runtime files stay in the work dir when
# KEEP=1. Bounded in time: every sipbench run is under `timeout`; all traffic
# stays on 127.0.0.0/8.
#
# The XMPP listener is on because presenced registers the watcher
# authorisation (the subscription record kept by the XMPP session manager)
# only when XMPP is served: without it every SIP watcher stays pending and
# gets no NOTIFY for a PUBLISH.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
pres=2000
watchers=10
runs=3
sweep=2000,3000,4000,5000,6000,8000
ksweep=500,1000,1500,2000,2500
duration=10
window=100
children=8
threads=$(nproc 2>/dev/null || echo 1)
sockets=64
presenced_only=0
rcvbuf=0
idle=35
tcp=0
sockets_set=0
wake_batch=1
while getopts b:n:m:r:s:S:d:w:k:t:o:i:W:PBT o; do
    case $o in
        b) build=$OPTARG ;;
        n) pres=$OPTARG ;;
        m) watchers=$OPTARG ;;
        r) runs=$OPTARG ;;
        s) sweep=$OPTARG ;;
        S) ksweep=$OPTARG ;;
        d) duration=$OPTARG ;;
        w) window=$OPTARG ;;
        k) children=$OPTARG ;;
        t) threads=$OPTARG ;;
        o) sockets=$OPTARG; sockets_set=1 ;;
        i) idle=$OPTARG ;;
        W) wake_batch=$OPTARG ;;
        P) presenced_only=1 ;;
        B) rcvbuf=1 ;;
        T) tcp=1 ;;
        *) sed -n '2,86p' "$0" >&2; exit 2 ;;
    esac
done
transport=udp
tcp_queue=
if [ "$tcp" = 1 ]; then
    transport=tcp
    [ "$sockets_set" = 1 ] || sockets=16
    tcp_queue=$((pres * watchers * 2048))
    [ "$tcp_queue" -ge 262144 ] || tcp_queue=262144
fi

need=()
if [ "$presenced_only" = 0 ]; then
    for p in kamailio kamailio-presence-modules; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi
kam_template=/usr/share/kamailio/dbtext/kamailio
kam_modules=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" presenced presencectl bench/sipbench >/dev/null
python=/usr/bin/python3
[ -x $python ] || python=python3

work=$(mktemp -d /tmp/sip-compare.XXXXXX)
pid=

. bench/node.sh
admin_port=$(free_port)
xmpp_port=$(free_port)
sip_port=$(free_port)
kam_port=$(free_port)

cat > "$work/presenced.conf" <<EOF
[admin]
listen = 127.0.0.1:$admin_port
[xmpp]
listen = 127.0.0.1:$xmpp_port
tls_listen =
require_tls = false
[sip]
listen = 127.0.0.1:$sip_port
tls_listen =
auth = off
[pws]
listen =
tls_listen =
EOF
if [ "$tcp" = 1 ]; then
    printf '[net]\noutput_queue_max_bytes = %s\n' "$tcp_queue" >> "$work/presenced.conf"
fi

# Waits until a SIP server answers anything to an OPTIONS on port $1.
sip_ready() {
    $python - "$1" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); s.settimeout(0.1)
me = s.getsockname()[1]
for i in range(300):
    s.sendto(("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch="
              "z9hG4bKready%d\r\nMax-Forwards: 70\r\nFrom: <sip:ready@localhost>;tag=r\r\n"
              "To: <sip:127.0.0.1>\r\nCall-ID: ready%d\r\nCSeq: 1 OPTIONS\r\n"
              "Content-Length: 0\r\n\r\n" % (port, me, i, i)).encode(), ("127.0.0.1", port))
    try:
        s.recv(4096); sys.exit(0)
    except socket.timeout:
        time.sleep(0.05)
sys.exit(1)
EOF
}

if [ "$rcvbuf" = 1 ]; then
    cat > "$work/rcvbuf.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/socket.h>
/* Before a UDP socket is bound: the largest receive buffer SO_RCVBUF may ask for. */
int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    int type = 0, max = 0;
    socklen_t tl = sizeof(type);
    FILE *f = fopen("/proc/sys/net/core/rmem_max", "r");
    if (f) {
        if (fscanf(f, "%d", &max) != 1)
            max = 0;
        fclose(f);
    }
    if (max > 0 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &max, sizeof(max));
    return real(fd, addr, len);
}
EOF
    cc -O2 -shared -fPIC -o "$work/rcvbuf.so" "$work/rcvbuf.c" -ldl
fi

# $1 = presenced or presenced_rcvbuf.
start_presenced() {
    PRELOAD=
    [ "${1:-presenced}" = presenced_rcvbuf ] && PRELOAD=$work/rcvbuf.so
    start_node
    for _ in $(seq 300); do
        sip_ready "$sip_port" && return 0
        sleep 0.1
    done
    echo "presenced's SIP listener did not answer" >&2
    exit 1
}

start_kamailio() {
    rm -rf "$work/kamdb"
    mkdir -p "$work/kamdb"
    for t in version presentity active_watchers watchers xcap; do
        cp "$kam_template/$t" "$work/kamdb/"
    done
    sed -e "s#@PORT@#$kam_port#g; s#@DBDIR@#$work/kamdb#g; s#@CHILDREN@#$children#g" \
        -e "s#@DOMAIN@#localhost#g; s#/usr/lib/x86_64-linux-gnu/kamailio/modules/#$kam_modules/#" \
        -e "s#@TCPQUEUE@#$tcp_queue#g" \
        bench/peers/kamailio/kamailio.cfg > "$work/kamailio.cfg"
    # -DD: the main process stays in the foreground (our child, stopped by its
    # PID) and forks its workers; 1 GiB of shared memory holds 20,000
    # subscriptions with room to spare. Over TCP 4 GiB: the connections' write
    # queues share it with the transactions, and past its peak 1 GiB ran out
    # (tm's new_t failed, PUBLISHes got 500, and the process crashed).
    local defs=(-m 1024)
    [ "$tcp" = 1 ] && defs=(-m 4096 -A WITH_TCP)
    kamailio -f "$work/kamailio.cfg" "${defs[@]}" -DD -E -M 32 \
        -P "$work/kamailio.pid" >>"$work/kamailio.log" 2>&1 &
    pid=$!
    if ! sip_ready "$kam_port"; then
        echo "kamailio did not start:" >&2
        tail -20 "$work/kamailio.log" >&2
        exit 1
    fi
}

# Datagrams the server's UDP sockets on port $1 dropped for want of receive buffer.
udp_drops() {
    ss -uanm "sport = :$1" | grep -o 'd[0-9]*)' | tr -dc '0-9\n' |
        awk '{s += $1} END {print s + 0}'
}

commit=${COMMIT:-$(git rev-parse --short HEAD)}
echo "# $(date -u +%FT%TZ) commit $commit kernel $(uname -r) cores $(nproc)"
echo "# $pres presentities x $watchers watchers = $((pres * watchers)) subscriptions over" \
     "${transport^^};" \
     "presenced 2 shards$([ "$presenced_only" = 0 ] &&
     echo ", kamailio $(dpkg-query -W -f '${Version}' kamailio) with $children workers");" \
     "sipbench $threads thread(s) x $sockets $([ "$tcp" = 1 ] && echo connections ||
     echo sockets), window $window;" \
     "server, peer and generator share the $(nproc) cores"

start_presenced
"$build/bench/sipbench" provision --presentities "$pres" --watchers "$watchers" \
    --out "$work/users.jsonl" 2>/dev/null
t0=$(date +%s.%N)
"$build/presencectl" --admin "127.0.0.1:$admin_port" import "$work/users.jsonl" --jobs 4 2>&1
t1=$(date +%s.%N)
echo "import: $((pres * (watchers + 1))) accounts in $($python -c "print(round($t1 - $t0, 1))") s"
rm -f "$work/users.jsonl"
stop_node

# One run: $1 = server (presenced|presenced_rcvbuf|kamailio), $2 = tag, rest =
# sipbench options.
run_one() {
    local server=$1 tag=$2 port
    shift 2
    if [ "$server" != kamailio ]; then
        start_presenced "$server"
        port=$sip_port
    else
        start_kamailio
        port=$kam_port
    fi
    sleep 1     # let start-up allocations settle before the memory baseline
    local drops0 rc=0
    drops0=$(udp_drops "$port")
    timeout 1800 "$build/bench/sipbench" run --port "$port" --presentities "$pres" \
        --watchers "$watchers" --transport "$transport" --threads "$threads" \
        --sockets "$sockets" --window "$window" --wake-batch "$wake_batch" \
        --server-pid "$pid" --label "$server" --commit "$commit" \
        --json "$work/$server-$tag.json" "$@" >"$work/$server-$tag.out" \
        2>"$work/$server-$tag.err" || rc=$?
    if [ "$tcp" = 1 ]; then
        echo - > "$work/$server-$tag.drops"     # nothing to drop on a stream
    else
        echo $(( $(udp_drops "$port") - drops0 )) > "$work/$server-$tag.drops"
    fi
    if [ "$server" != kamailio ]; then
        curl -s "http://127.0.0.1:$admin_port/metrics" > "$work/$server-$tag.metrics" || true
    fi
    stop_node
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        echo "sipbench against $server failed ($rc):" >&2
        cat "$work/$server-$tag.err" >&2
        exit 1
    fi
    grep 'first error' "$work/$server-$tag.err" >&2 || true
    $python - "$work/$server-$tag.json" "$(cat "$work/$server-$tag.drops")" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["subscribe"]
print("%s %s: %d active, %.0f SUBSCRIBE/s; " % (r["label"], sys.argv[1].split("-")[-1][:-5],
      s["active"], s["per_s"]) + "; ".join(
      "%.0f PUBLISH/s -> %.0f NOTIFY/s (%.1f%%, p99 %.1f ms)" % (
          st["publishes_per_s"], st["notifies_per_s"], st["delivered_pct"],
          st["latency_us"]["p99"] / 1e3) for st in r["stages"]) +
      "; errors %s; NOTIFY retransmissions %d%s" % (
      ",".join("%s=%d" % kv for kv in sorted(r["errors"].items())) or "none",
      r["notify"]["retransmissions_seen"],
      "" if sys.argv[2] == "-" else "; server socket drops " + sys.argv[2]))
EOF
}

servers=(presenced)
[ "$rcvbuf" = 1 ] && servers+=(presenced_rcvbuf)
[ "$presenced_only" = 1 ] || servers+=(kamailio)

echo "## pass 1: sweep, $duration s per stage (presenced $sweep PUBLISH/s$(
    [ "$presenced_only" = 1 ] || echo "; kamailio $ksweep"))"
for i in $(seq "$runs"); do
    for s in "${servers[@]}"; do
        rates=$sweep
        [ "$s" = kamailio ] && rates=$ksweep
        run_one "$s" "sweep$i" --rates "$rates" --duration "$duration" --idle "$idle"
    done
done

# The most NOTIFYs/s a stage received within its window, median over the runs.
peak_of() {
    $python - "$work" "$1" <<'EOF'
import glob, json, os, statistics, sys
peaks = []
for p in glob.glob(os.path.join(sys.argv[1], sys.argv[2] + "-sweep*.json")):
    st = json.load(open(p))["stages"]
    peaks.append(max(s["notifies_per_s"] for s in st) if st else 0)
print(int(statistics.median(peaks)) if peaks else 0)
EOF
}

echo "## pass 2: half of each server's peak, $((duration * 2)) s"
for s in "${servers[@]}"; do
    peak=$(peak_of "$s")
    echo "$s half load: $((peak / 2 / watchers)) PUBLISH/s (peak $peak NOTIFY/s)"
    echo $((peak / 2 / watchers)) > "$work/$s.half"
done
for i in $(seq "$runs"); do
    for s in "${servers[@]}"; do
        half=$(cat "$work/$s.half")
        [ "$half" -gt 0 ] || { echo "no peak for $s" >&2; exit 1; }
        run_one "$s" "half$i" --rates "$half" --duration "$((duration * 2))" --idle "$idle"
    done
done

echo "## medians over $runs runs"
$python - "$work" "${servers[@]}" <<'EOF'
import glob, json, os, statistics, sys
work, servers = sys.argv[1], sys.argv[2:]
def runs(server, kind):
    return [json.load(open(p)) for p in sorted(glob.glob(
        os.path.join(work, "%s-%s*.json" % (server, kind))))]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
def drops(server, kind):
    return [open(p).read().strip() for p in sorted(glob.glob(
        os.path.join(work, "%s-%s*.drops" % (server, kind))))]
rows = []
def row(name, fn, kind, fmt="%.0f", better="high"):
    vals = []
    for s in servers:
        rs = runs(s, kind)
        vals.append((med([fn(r) for r in rs]), [fn(r) for r in rs]))
    rows.append((name, vals, fmt, better))
peak = lambda r: max(s["notifies_per_s"] for s in r["stages"])
row("active subscriptions", lambda r: r["subscribe"]["active"], "sweep")
row("SUBSCRIBE/s (set-up)", lambda r: r["subscribe"]["per_s"], "sweep")
row("SUBSCRIBE to 2xx p99, ms", lambda r: r["subscribe"]["latency_us"]["p99"] / 1e3, "sweep",
    "%.1f", "low")
row("server memory per subscription, bytes",
    lambda r: r["server"]["bytes_per_subscription"], "sweep", "%.0f", "low")
if any(r["server"].get("idle_s", 0) > 0 for s in servers for r in runs(s, "sweep")):
    row("... after %.0f s idle" % runs(servers[0], "sweep")[0]["server"]["idle_s"],
        lambda r: r["server"]["bytes_per_subscription_idle"], "sweep", "%.0f", "low")
row("peak NOTIFYs/s (sweep)", peak, "sweep")
row("sustained NOTIFYs/s (p99 < 100 ms, sweep)", lambda r: max(
    [s["notifies_per_s"] for s in r["stages"]
     if s["delivered_pct"] >= 99.9 and s["latency_us"]["p99"] < 100e3] or [0]), "sweep")
row("PUBLISH/s at half load", lambda r: r["stages"][0]["publishes_per_s"], "half")
row("NOTIFYs/s at half load", lambda r: r["stages"][0]["notifies_per_s"], "half")
row("delivered at half load, %", lambda r: r["stages"][0]["delivered_pct"], "half", "%.2f")
for q in ("p50", "p90", "p99", "p999", "max"):
    row("publish-to-notify %s at half load, ms" % q,
        lambda r, q=q: r["stages"][0]["latency_us"][q] / 1e3, "half", "%.2f", "low")
row("server cores at half load", lambda r: r["stages"][0]["server_cores"], "half", "%.2f", "low")
row("generator cores at half load", lambda r: r["stages"][0]["generator_cores"], "half", "%.2f",
    "low")
row("other load on the machine, cores", lambda r: r["stages"][0]["other_cores"], "half", "%.2f",
    "low")
row("NOTIFY retransmissions by the server (half)",
    lambda r: r["notify"]["retransmissions_seen"], "half", "%.0f", "low")
w = 44
peer = servers.index("kamailio") if "kamailio" in servers else None
ours = [i for i, s in enumerate(servers) if s != "kamailio"]
print("%-*s %s" % (w, "figure", "  ".join("%-26s" % s for s in servers)) +
      ("".join("  %s/kamailio" % servers[i] for i in ours) if peer is not None else ""))
for name, vals, fmt, better in rows:
    cells = ["%-26s" % ((fmt % m) + " (" + ", ".join(fmt % x for x in xs) + ")")
             for m, xs in vals]
    ratios = ""
    if peer is not None and vals[peer][0] not in (0, 0.0):
        ratios = "".join("  %.2fx" % (vals[i][0] / vals[peer][0]) for i in ours)
    print("%-*s %s%s" % (w, name, "  ".join(cells), ratios))
for s in servers:
    d = drops(s, "sweep") + drops(s, "half")
    errs = {}
    for r in runs(s, "sweep") + runs(s, "half"):
        for k, v in r["errors"].items():
            errs[k] = errs.get(k, 0) + v
    print("%s: %serrors over all runs: %s" % (
        s, "" if "-" in d else "server UDP socket drops per run [%s]; " % ", ".join(d),
        ", ".join("%s=%d" % kv for kv in sorted(errs.items())) or "none"))
EOF
