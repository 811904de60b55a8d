/*
 * metrics.h - counters and gauges, written per shard, summed at scrape time.
 *
 * Each shard owns one array of values and is its only writer, so an increment
 * is a plain load and store (no locked instruction, no shared cache line);
 * the scrape, on any thread, reads the values relaxed. Metrics are registered
 * by modules on the main thread before the shards start; registration returns
 * an id that indexes the per-shard array.
 *
 * Three shapes:
 *  - per-shard series: name{shard="N"} value, one value per shard;
 *  - labelled per-shard series: name{shard="N",<label>="<value>"}, a fixed set
 *    of label values registered up front (ids base .. base+n-1);
 *  - sampled series: a function called at scrape time per shard (mailbox
 *    depth) or once for the node (shards, ready).
 *
 * The page is the Prometheus text exposition format 0.0.4.
 */
#ifndef PRESENCED_METRICS_H
#define PRESENCED_METRICS_H

#include <stdatomic.h>

#include "engine/buf.h"
#include "engine/common.h"

/* Values per shard: 256 x 8 B = 2 KiB per shard; registration panics past it. */
#define METRICS_MAX 256
#define METRICS_PREFIX "presenced_"

typedef enum { METRIC_COUNTER, METRIC_GAUGE } metric_type_t;
typedef uint16_t metric_id_t;
typedef struct metrics metrics_t;

typedef struct {
    _Atomic uint64_t v[METRICS_MAX];
} metrics_shard_t;

/* Returns the value of a sampled series; shard is UINT32_MAX for node-level. */
typedef double (*metrics_sample_fn)(void *ctx, unsigned shard);

/* Main thread. */
metrics_t *metrics_create(unsigned shards);
void metrics_destroy(metrics_t *m);
metrics_shard_t *metrics_shard(metrics_t *m, unsigned shard);
unsigned metrics_shard_count(const metrics_t *m);

/* Main thread, before shards start. name without the "presenced_" prefix. */
metric_id_t metrics_register(metrics_t *m, const char *name, const char *help,
                             metric_type_t type);
metric_id_t metrics_register_labelled(metrics_t *m, const char *name, const char *help,
                                      metric_type_t type, const char *label,
                                      const char *const *values, unsigned n_values);
/* Values kept in one unit and shown in another (microseconds shown as the
 * base unit seconds, as Prometheus wants): shown = stored * scale. */
void metrics_set_scale(metrics_t *m, metric_id_t id, double scale);
void metrics_register_sampled(metrics_t *m, const char *name, const char *help,
                              metric_type_t type, bool per_shard, metrics_sample_fn fn,
                              void *ctx);

/* Owning shard only. */
static inline void metric_add(metrics_shard_t *s, metric_id_t id, uint64_t n)
{
    atomic_store_explicit(&s->v[id], atomic_load_explicit(&s->v[id], memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void metric_inc(metrics_shard_t *s, metric_id_t id)
{
    metric_add(s, id, 1);
}

static inline void metric_sub(metrics_shard_t *s, metric_id_t id, uint64_t n)
{
    atomic_store_explicit(&s->v[id], atomic_load_explicit(&s->v[id], memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static inline void metric_set(metrics_shard_t *s, metric_id_t id, uint64_t v)
{
    atomic_store_explicit(&s->v[id], v, memory_order_relaxed);
}

/* Any thread. */
uint64_t metric_get(const metrics_shard_t *s, metric_id_t id);
uint64_t metrics_sum(metrics_t *m, metric_id_t id);
void metrics_render(metrics_t *m, buf_t *out);

#endif
