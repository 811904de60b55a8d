/*
 * mbox_bench - mailbox throughput and latency between two shards' threads.
 *
 * Two threads pinned to different CPUs, one mailbox hub, as two shards use
 * it. Modes:
 *   throughput  the sender posts as fast as it can, publishing every BATCH
 *               messages; the receiver drains. Messages/s.
 *   latency     the sender posts at a fixed rate (default 1 M/s, batches of
 *               one: publish each), stamping each with the monotonic clock;
 *               the receiver records now - stamp. p50/p99/p99.9 in ns.
 * Each mode runs RUNS times; the report gives median, MAD, min and max.
 * Built with Concurrency Kit (libck-dev) it also runs ck_ring's SPSC ring,
 * the ready-made alternative, on the same throughput workload (8-byte
 * values, so ck copies a quarter of what a mailbox message is), and prints
 * the ratio.
 *
 * usage: mbox_bench [--runs N] [--messages N] [--batch N] [--rate N]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench/micro/bench_stats.h"
#include "engine/clock.h"
#include "engine/mbox.h"

#ifdef HAVE_CK
#include <ck_ring.h>
#endif

static uint64_t now_ns(void)
{
    return clk_monotonic_ns();
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

typedef struct {
    mbox_hub_t *hub;
    uint64_t messages;
    unsigned batch;
    uint64_t rate;          /* 0: as fast as possible */
    _Atomic int go;
    uint64_t *lat;          /* receiver: latency samples */
    uint64_t n_lat;
    uint64_t t_start, t_end;
} run_t;

static void *sender(void *arg)
{
    run_t *r = arg;
    pin(0);
    mbox_ep_t *ep = mbox_hub_ep(r->hub, 0);
    while (!atomic_load(&r->go))
        ;
    uint64_t start = now_ns();
    double interval = r->rate ? 1e9 / (double)r->rate : 0;
    for (uint64_t i = 0; i < r->messages; i++) {
        if (interval > 0) {
            uint64_t due = start + (uint64_t)(interval * (double)i);
            while (now_ns() < due)
                ;
        }
        mbox_msg_t m = { .kind = MBOX_CALL, .u64 = r->rate ? now_ns() : i };
        while (mbox_send(ep, 1, &m) == -ENOBUFS)
            mbox_flush(ep, NULL, NULL);
        if ((i + 1) % r->batch == 0)
            mbox_flush(ep, NULL, NULL);
    }
    while (mbox_flush(ep, NULL, NULL) > 0)
        ;
    return NULL;
}

typedef struct {
    run_t *r;
    uint64_t got;
} recv_ctx_t;

static void on_msg(void *ctx, const mbox_msg_t *m)
{
    recv_ctx_t *c = ctx;
    if (c->r->rate)
        c->r->lat[c->r->n_lat++] = now_ns() - m->u64;
    c->got++;
}

static void *receiver(void *arg)
{
    run_t *r = arg;
    pin(1);
    mbox_ep_t *ep = mbox_hub_ep(r->hub, 1);
    recv_ctx_t c = { r, 0 };
    atomic_store(&r->go, 1);
    r->t_start = now_ns();
    while (c.got < r->messages)
        mbox_drain(ep, 4096, on_msg, &c);
    r->t_end = now_ns();
    return NULL;
}

static void run_once(run_t *r)
{
    pthread_t s, d;
    r->hub = mbox_hub_create(2, 4096);
    r->go = 0;
    r->n_lat = 0;
    pthread_create(&d, NULL, receiver, r);
    pthread_create(&s, NULL, sender, r);
    pthread_join(s, NULL);
    pthread_join(d, NULL);
    mbox_hub_destroy(r->hub);
}

#ifdef HAVE_CK
#define CK_SLOTS 4096
static ck_ring_t ck;
static ck_ring_buffer_t ck_buf[CK_SLOTS];
static _Atomic int ck_go;

static void *ck_sender(void *arg)
{
    uint64_t n = *(uint64_t *)arg;
    pin(0);
    while (!atomic_load(&ck_go))
        ;
    for (uint64_t i = 1; i <= n; i++)
        while (!ck_ring_enqueue_spsc(&ck, ck_buf, (void *)(uintptr_t)i))
            ;
    return NULL;
}

/* Messages/s through ck_ring between the same two CPUs, or -1 on a loss. */
static double ck_run(uint64_t n)
{
    pthread_t s;
    ck_ring_init(&ck, CK_SLOTS);
    atomic_store(&ck_go, 0);
    pthread_create(&s, NULL, ck_sender, &n);
    pin(1);
    atomic_store(&ck_go, 1);
    uint64_t start = now_ns(), next = 1;
    void *v;
    while (next <= n) {
        if (ck_ring_dequeue_spsc(&ck, ck_buf, &v)) {
            if ((uintptr_t)v != next)
                return -1;
            next++;
        }
    }
    uint64_t end = now_ns();
    pthread_join(s, NULL);
    return (double)n / ((double)(end - start) / 1e9) / 1e6;
}
#endif

/* median, MAD, min, max of v[0..n) (sorted in place) */
int main(int argc, char **argv)
{
    unsigned runs = 7, batch = 256;
    uint64_t messages = 50000000, rate = 1000000, lat_messages = 2000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs")) runs = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--messages")) messages = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--batch")) batch = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--latency-messages")) lat_messages = strtoull(argv[i + 1], NULL, 0);
    }
    if (runs > BENCH_RUNS_MAX) runs = BENCH_RUNS_MAX;
    double tput[64], p50[64], p99[64], p999[64];
    run_t r = { 0 };

    printf("mbox_bench: %u runs, %llu messages per throughput run, batch %u\n", runs,
           (unsigned long long)messages, batch);
    for (unsigned i = 0; i < runs; i++) {
        r.messages = messages;
        r.batch = batch;
        r.rate = 0;
        run_once(&r);
        tput[i] = (double)messages / ((double)(r.t_end - r.t_start) / 1e9) / 1e6;
    }
    bench_summary("throughput (batched)", tput, runs, "M msg/s");
#ifdef HAVE_CK
    double ck_tput[64];
    for (unsigned i = 0; i < runs; i++)
        ck_tput[i] = ck_run(messages);
    bench_summary("ck_ring spsc throughput (peer)", ck_tput, runs, "M msg/s");
    printf("%-34s %.2fx\n", "mailbox / ck_ring (medians)", tput[runs / 2] / ck_tput[runs / 2]);
#endif

    r.lat = malloc(sizeof(uint64_t) * lat_messages);
    for (unsigned i = 0; i < runs; i++) {
        r.messages = lat_messages;
        r.batch = 1;
        r.rate = rate;
        run_once(&r);
        qsort(r.lat, r.n_lat, sizeof(uint64_t), bench_cmp_u64);
        p50[i] = (double)r.lat[r.n_lat / 2];
        p99[i] = (double)r.lat[r.n_lat * 99 / 100];
        p999[i] = (double)r.lat[r.n_lat * 999 / 1000];
    }
    char label[64];
    snprintf(label, sizeof(label), "latency p50 at %.1f M msg/s", (double)rate / 1e6);
    bench_summary(label, p50, runs, "ns");
    snprintf(label, sizeof(label), "latency p99 at %.1f M msg/s", (double)rate / 1e6);
    bench_summary(label, p99, runs, "ns");
    snprintf(label, sizeof(label), "latency p99.9 at %.1f M msg/s", (double)rate / 1e6);
    bench_summary(label, p999, runs, "ns");
    free(r.lat);
    return 0;
}
