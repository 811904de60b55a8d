# node.sh - sourced by the benchmark scripts: free loopback ports, and one
# presenced started from $build with $work/presenced.conf, waited for on its
# admin endpoint's /ready and stopped by its PID.
#
# The sourcing script sets build, work and admin_port; start_node sets pid
# (the node's) and stop_node clears it. PRELOAD, when set, is the node's
# LD_PRELOAD (a diagnosis shim). Sourcing it sets an EXIT trap that stops
# whatever server $pid names and removes $work (kept when KEEP=1).

# A port free for both TCP and UDP on 127.0.0.1, below the kernel's ephemeral
# range: a port the kernel hands out may later be the local port of a load
# generator's connection, or sit in TIME_WAIT, when a server restarted for the
# next run binds it (Kamailio then fails with "Address already in use").
free_port() {
    python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
while True:
    port = random.randrange(max(1024, lo - 12000), lo)
    t = socket.socket(); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t.bind(("127.0.0.1", port)); u.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass
    finally:
        t.close(); u.close()
PY
}

# start_node [DATA_DIR]: DATA_DIR defaults to $work/data.
start_node() {
    LD_PRELOAD=${PRELOAD:-} "$build/presenced" --config "$work/presenced.conf" \
        --data-dir "${1:-$work/data}" --shards 2 --log-level warn >>"$work/presenced.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$admin_port/ready" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "presenced did not become ready:" >&2
    tail -20 "$work/presenced.log" >&2
    exit 1
}

# stop_node: also stops a server started by the script itself into $pid.
stop_node() {
    [ -n "${pid:-}" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
}

cleanup() {
    stop_node
    if [ "${KEEP:-0}" = 1 ]; then
        echo "# work dir kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
