/*
 * metrics.c - see metrics.h.
 */
#include "engine/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Families (one HELP/TYPE block each): 128 is well above the engine's and the
 * protocols' needs; registration panics past it. */
#define METRICS_FAMILIES_MAX 128

typedef struct {
    char name[96];
    char help[160];
    metric_type_t type;
    metric_id_t base;
    unsigned n_values;              /* 1, or the number of label values */
    char label[32];
    const char *const *values;      /* static strings, owned by the registrant */
    metrics_sample_fn sample;
    void *sample_ctx;
    bool per_shard;
    double scale;                   /* 0: 1 */
} metrics_family_t;

struct metrics {
    unsigned shards;
    unsigned next_id;
    unsigned n_families;
    metrics_family_t families[METRICS_FAMILIES_MAX];
    metrics_shard_t *values;        /* [shards] */
};

metrics_t *metrics_create(unsigned shards)
{
    ASSERT(shards >= 1);
    metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->shards = shards;
    m->values = aligned_alloc(CACHE_LINE_BYTES, sizeof(metrics_shard_t) * shards);
    if (!m->values) {
        free(m);
        return NULL;
    }
    memset(m->values, 0, sizeof(metrics_shard_t) * shards);
    return m;
}

void metrics_destroy(metrics_t *m)
{
    if (!m)
        return;
    free(m->values);
    free(m);
}

metrics_shard_t *metrics_shard(metrics_t *m, unsigned shard)
{
    ASSERT(shard < m->shards);
    return &m->values[shard];
}

unsigned metrics_shard_count(const metrics_t *m)
{
    return m->shards;
}

static metrics_family_t *metrics_new_family(metrics_t *m, const char *name, const char *help,
                                            metric_type_t type)
{
    if (m->n_families >= METRICS_FAMILIES_MAX)
        PANIC("too many metric families registering %s", name);
    for (unsigned i = 0; i < m->n_families; i++)
        if (strcmp(m->families[i].name, name) == 0)
            PANIC("metric %s registered twice", name);
    metrics_family_t *f = &m->families[m->n_families++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    snprintf(f->help, sizeof(f->help), "%s", help);
    f->type = type;
    f->n_values = 1;
    return f;
}

metric_id_t metrics_register(metrics_t *m, const char *name, const char *help,
                             metric_type_t type)
{
    return metrics_register_labelled(m, name, help, type, NULL, NULL, 1);
}

metric_id_t metrics_register_labelled(metrics_t *m, const char *name, const char *help,
                                      metric_type_t type, const char *label,
                                      const char *const *values, unsigned n_values)
{
    ASSERT(n_values >= 1);
    if (m->next_id + n_values > METRICS_MAX)
        PANIC("metric values exhausted registering %s", name);
    metrics_family_t *f = metrics_new_family(m, name, help, type);
    f->base = (metric_id_t)m->next_id;
    f->n_values = n_values;
    f->per_shard = true;
    if (label) {
        snprintf(f->label, sizeof(f->label), "%s", label);
        f->values = values;
    }
    m->next_id += n_values;
    return f->base;
}

void metrics_set_scale(metrics_t *m, metric_id_t id, double scale)
{
    for (unsigned i = 0; i < m->n_families; i++) {
        if (!m->families[i].sample && m->families[i].base == id) {
            m->families[i].scale = scale;
            return;
        }
    }
    PANIC("no metric with id %u", id);
}

void metrics_register_sampled(metrics_t *m, const char *name, const char *help,
                              metric_type_t type, bool per_shard, metrics_sample_fn fn,
                              void *ctx)
{
    metrics_family_t *f = metrics_new_family(m, name, help, type);
    f->sample = fn;
    f->sample_ctx = ctx;
    f->per_shard = per_shard;
}

uint64_t metric_get(const metrics_shard_t *s, metric_id_t id)
{
    ASSERT(id < METRICS_MAX);
    return atomic_load_explicit(&s->v[id], memory_order_relaxed);
}

uint64_t metrics_sum(metrics_t *m, metric_id_t id)
{
    uint64_t sum = 0;
    for (unsigned s = 0; s < m->shards; s++)
        sum += metric_get(&m->values[s], id);
    return sum;
}

static void metrics_value(buf_t *out, double v)
{
    if (isnan(v))
        buf_append_str(out, "NaN\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_printf(out, "%.0f\n", v);
    else
        buf_printf(out, "%.17g\n", v);
}

void metrics_render(metrics_t *m, buf_t *out)
{
    for (unsigned i = 0; i < m->n_families; i++) {
        const metrics_family_t *f = &m->families[i];
        buf_printf(out, "# HELP " METRICS_PREFIX "%s %s\n", f->name, f->help);
        buf_printf(out, "# TYPE " METRICS_PREFIX "%s %s\n", f->name,
                   f->type == METRIC_COUNTER ? "counter" : "gauge");
        if (f->sample && !f->per_shard) {
            buf_printf(out, METRICS_PREFIX "%s ", f->name);
            metrics_value(out, f->sample(f->sample_ctx, UINT32_MAX));
            continue;
        }
        for (unsigned s = 0; s < m->shards; s++) {
            if (f->sample) {
                buf_printf(out, METRICS_PREFIX "%s{shard=\"%u\"} ", f->name, s);
                metrics_value(out, f->sample(f->sample_ctx, s));
                continue;
            }
            for (unsigned v = 0; v < f->n_values; v++) {
                if (f->values)
                    buf_printf(out, METRICS_PREFIX "%s{shard=\"%u\",%s=\"%s\"} ", f->name, s,
                               f->label, f->values[v]);
                else
                    buf_printf(out, METRICS_PREFIX "%s{shard=\"%u\"} ", f->name, s);
                /* Gauges are stored as uint64 but may be driven below zero
                 * transiently by paired add/sub on different turns. */
                uint64_t raw = metric_get(&m->values[s], (metric_id_t)(f->base + v));
                double val = f->type == METRIC_GAUGE ? (double)(int64_t)raw : (double)raw;
                if (f->scale != 0)
                    val *= f->scale;
                metrics_value(out, val);
            }
        }
    }
}
