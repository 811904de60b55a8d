#!/usr/bin/env bash
# idle_memory.sh [RUNS] - server memory per idle connection at 10K and 100K.
#
# Starts a release presenced per run, holds N idle connections to its admin
# listener with bench/load/idle_conns (several client processes, several
# source addresses in 127.0.0.0/8), and reports VmRSS growth / connections.
# 100K needs more shards than cores on machines whose RLIMIT_NOFILE hard limit
# is low: each shard's io_uring holds at most RLIMIT_NOFILE direct descriptors.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
build=build-bench
[ -f $build/build.ninja ] || meson setup $build --buildtype=release >/dev/null
ninja -C $build presenced bench/idle_conns >/dev/null
nofile=$(ulimit -Hn)
echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) nofile(hard)=$nofile cores=$(nproc)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for conns in 10000 100000; do
    # Enough shards that each stays under its descriptor table, with headroom
    # for the uneven SO_REUSEPORT spread.
    shards=$(( (conns * 13 / 10) / (nofile - 500) + 1 ))
    [ "$shards" -lt 2 ] && shards=2
    for run in $(seq "$runs"); do
        dir=$(mktemp -d)
        port=$(free_port)
        printf '[admin]\nlisten = 127.0.0.1:%s\n[net]\nidle_timeout_s = 0\n[node]\npin_shards = false\n' \
            "$port" > "$dir/presenced.conf"
        $build/presenced --config "$dir/presenced.conf" --data-dir "$dir/data" \
            --shards "$shards" --log-level warn 2>"$dir/log" &
        pid=$!
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
            sleep 0.1
        done
        sleep 1     # let start-up allocations settle before the baseline
        out=$($build/bench/idle_conns --pid "$pid" --port "$port" --admin-port "$port" \
            --conns "$conns" --hold 3 || true)
        echo "shards $shards run $run $out"
        kill -TERM "$pid"
        wait "$pid" || true
        rm -rf "$dir"
    done
done
