/*
 * shard_bench - mailbox messages between two running shards: each shard on
 * its own thread and io_uring, sleeping when idle and woken by MSG_RING, as
 * in presenced. Complements mbox_bench (the rings alone, spinning threads).
 *
 *   stream     shard 0 posts BATCH closures to shard 1 per loop turn until
 *              MESSAGES are sent; shard 1 counts. Messages/s.
 *   ping-pong  shard 0 posts one stamped closure, shard 1 answers, shard 0
 *              records the round trip and sends the next: both sleep between,
 *              so every hop pays a wake-up. One-way latency = RTT / 2.
 *
 * usage: shard_bench [--runs N] [--messages N] [--batch N] [--pings N]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench/micro/bench_stats.h"
#include "engine/log.h"
#include "engine/node.h"

static node_t *node;
static uint64_t messages = 20000000, pings = 20000;
static unsigned batch = 256;
static _Atomic int done;
static uint64_t sent, received, t_start, t_end;
static uint64_t *rtt;
static uint64_t n_rtt;

static void on_stream(void *ctx, const mbox_msg_t *m)
{
    (void)ctx;
    (void)m;
    if (++received == messages) {
        t_end = clk_monotonic_ns();
        atomic_store(&done, 1);
    }
}

/* Runs on shard 0 each turn: posts a batch, then re-posts itself. */
static void stream_step(void *ctx, const mbox_msg_t *m)
{
    shard_t *sh = ctx;
    (void)m;
    for (unsigned i = 0; i < batch && sent < messages; i++) {
        if (shard_call(sh, 1, on_stream, NULL) < 0)
            break;      /* ring and backlog full: continue next turn */
        sent++;
    }
    if (sent < messages)
        shard_call(sh, 0, stream_step, NULL);
}

static void on_pong(void *ctx, const mbox_msg_t *m);

static void on_ping(void *ctx, const mbox_msg_t *m)
{
    mbox_msg_t reply = { .u64 = m->u64 };
    shard_call(ctx, 0, on_pong, &reply);
}

static void on_pong(void *ctx, const mbox_msg_t *m)
{
    rtt[n_rtt++] = clk_monotonic_ns() - m->u64;
    if (n_rtt == pings) {
        atomic_store(&done, 1);
        return;
    }
    mbox_msg_t ping = { .u64 = clk_monotonic_ns() };
    shard_call(ctx, 1, on_ping, &ping);
}

static void ping_start(void *ctx, const mbox_msg_t *m)
{
    (void)m;
    mbox_msg_t ping = { .u64 = clk_monotonic_ns() };
    shard_call(ctx, 1, on_ping, &ping);
}

static void wait_done(void)
{
    while (!atomic_load(&done))
        usleep(1000);
    atomic_store(&done, 0);
}

int main(int argc, char **argv)
{
    unsigned runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs")) runs = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--messages")) messages = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--batch")) batch = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pings")) pings = strtoull(argv[i + 1], NULL, 0);
    }
    if (runs > BENCH_RUNS_MAX) runs = BENCH_RUNS_MAX;
    log_set_level(LOG_LEVEL_WARN);
    char dir[] = "/tmp/presenced-shard-bench-XXXXXX", err[512];
    if (!mkdtemp(dir))
        return 1;
    cfg_t *cfg = malloc(sizeof(*cfg));
    cfg_defaults(cfg);
    cfg->shards = 2;
    cfg->storage_sync[0] = 0;
    snprintf(cfg->storage_sync, sizeof(cfg->storage_sync), "none");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", dir);
    if (node_create(cfg, &node, err, sizeof(err)) < 0 || node_start(node, err, sizeof(err)) < 0) {
        fprintf(stderr, "shard_bench: %s\n", err);
        return 1;
    }
    double tput[64], p50[64], p99[64], p999[64];
    rtt = malloc(sizeof(uint64_t) * pings);
    printf("shard_bench: 2 shards, %u runs, %llu messages per stream run, batch %u, %llu pings\n",
           runs, (unsigned long long)messages, batch, (unsigned long long)pings);
    for (unsigned r = 0; r < runs; r++) {
        sent = received = 0;
        t_start = clk_monotonic_ns();
        node_call(node, 0, stream_step, NULL);
        wait_done();
        tput[r] = (double)messages / ((double)(t_end - t_start) / 1e9) / 1e6;

        n_rtt = 0;
        node_call(node, 0, ping_start, NULL);
        wait_done();
        qsort(rtt, n_rtt, sizeof(*rtt), bench_cmp_u64);
        p50[r] = (double)rtt[n_rtt / 2] / 2;
        p99[r] = (double)rtt[n_rtt * 99 / 100] / 2;
        p999[r] = (double)rtt[n_rtt * 999 / 1000] / 2;
    }
    bench_summary("stream throughput, 2 shards", tput, runs, "M msg/s");
    bench_summary("one-way latency p50 (idle, woken)", p50, runs, "ns");
    bench_summary("one-way latency p99 (idle, woken)", p99, runs, "ns");
    bench_summary("one-way latency p99.9 (idle, woken)", p999, runs, "ns");
    node_stop(node);
    node_destroy(node);
    free(rtt);
    free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
