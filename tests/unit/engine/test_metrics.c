/*
 * Metrics: per-shard writes summed at scrape, labelled families, sampled
 * series, and the exposition text itself.
 */
#include <pthread.h>

#include "engine/metrics.h"
#include "tests/unit/t.h"

static double sample_depth(void *ctx, unsigned shard)
{
    return (double)(*(int *)ctx) + shard;
}

static const char *const reasons[] = { "peer", "idle" };

static void test_render(void)
{
    metrics_t *m = metrics_create(2);
    REQUIRE(m);
    int base = 10;
    metric_id_t acc = metrics_register(m, "connections_accepted_total", "Accepted.",
                                       METRIC_COUNTER);
    metric_id_t closed = metrics_register_labelled(m, "connections_closed_total", "Closed.",
                                                   METRIC_COUNTER, "reason", reasons, 2);
    metric_id_t open = metrics_register(m, "connections_open", "Open.", METRIC_GAUGE);
    metrics_register_sampled(m, "mailbox_depth", "Depth.", METRIC_GAUGE, true, sample_depth,
                             &base);
    metrics_register_sampled(m, "shards", "Shards.", METRIC_GAUGE, false, sample_depth, &base);

    metric_add(metrics_shard(m, 0), acc, 5);
    metric_inc(metrics_shard(m, 1), acc);
    metric_inc(metrics_shard(m, 1), (metric_id_t)(closed + 1));
    metric_inc(metrics_shard(m, 0), open);
    metric_sub(metrics_shard(m, 0), open, 2);       /* transiently negative gauge */
    CHECK_EQ(metrics_sum(m, acc), 6);

    buf_t b;
    buf_init(&b);
    metrics_render(m, &b);
    buf_append(&b, "", 1);
    const char *want[] = {
        "# HELP presenced_connections_accepted_total Accepted.\n"
        "# TYPE presenced_connections_accepted_total counter\n"
        "presenced_connections_accepted_total{shard=\"0\"} 5\n"
        "presenced_connections_accepted_total{shard=\"1\"} 1\n",
        "presenced_connections_closed_total{shard=\"1\",reason=\"idle\"} 1\n",
        "presenced_connections_closed_total{shard=\"0\",reason=\"peer\"} 0\n",
        "# TYPE presenced_connections_open gauge\n",
        "presenced_connections_open{shard=\"0\"} -1\n",
        "presenced_mailbox_depth{shard=\"1\"} 11\n",
        "presenced_shards 4294967305\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        if (!strstr(b.data, want[i])) {
            fprintf(stderr, "missing:\n%s\nin:\n%s\n", want[i], b.data);
            CHECK(0);
        }
    }
    buf_fini(&b);
    metrics_destroy(m);
}

typedef struct {
    metrics_t *m;
    metric_id_t id;
    unsigned shard;
} writer_t;

static void *writer(void *arg)
{
    writer_t *w = arg;
    for (int i = 0; i < 1000000; i++)
        metric_inc(metrics_shard(w->m, w->shard), w->id);
    return NULL;
}

static void test_concurrent_scrape(void)
{
    metrics_t *m = metrics_create(2);
    metric_id_t id = metrics_register(m, "x_total", "X.", METRIC_COUNTER);
    writer_t w[2] = { { m, id, 0 }, { m, id, 1 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, writer, &w[i]);
    uint64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t now = metrics_sum(m, id);
        CHECK(now >= last);     /* single writers: values never go back */
        last = now;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(metrics_sum(m, id), 2000000);
    metrics_destroy(m);
}

int main(void)
{
    T_RUN(test_render);
    T_RUN(test_concurrent_scrape);
    T_DONE();
}
