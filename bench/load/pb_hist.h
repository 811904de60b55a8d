/*
 * pb_hist.h - presbench's latency histogram: log-linear buckets over
 * nanoseconds, exact below 128 ns and within 1/64 (1.6 %) above, from 0 to
 * 2^42 ns (73 minutes; larger values land in the last bucket, the exact max is
 * kept apart). Recording is an index computation and an increment, cheap
 * enough for every delivery of a million-per-second run; histograms of
 * several threads merge by adding counts.
 *
 * Threads: a histogram belongs to one thread until it is merged.
 */
#ifndef PRESENCED_PB_HIST_H
#define PRESENCED_PB_HIST_H

#include <stdint.h>
#include <string.h>

/* 64 sub-buckets per power of two: 6 bits of mantissa. */
#define PB_HIST_SUB_BITS 6
#define PB_HIST_SUB (1u << PB_HIST_SUB_BITS)
/* Exact buckets for 0..127, then (42 - 6) octaves of 64. */
#define PB_HIST_MAX_BITS 42
#define PB_HIST_BUCKETS (2 * PB_HIST_SUB + (PB_HIST_MAX_BITS - PB_HIST_SUB_BITS - 1) * PB_HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;
    uint64_t buckets[PB_HIST_BUCKETS];
} pb_hist_t;

static inline void pb_hist_init(pb_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

static inline unsigned pb_hist_index(uint64_t v)
{
    if (v < 2 * PB_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);            /* >= 7 */
    unsigned shift = e - PB_HIST_SUB_BITS;                       /* >= 1 */
    unsigned idx = 2 * PB_HIST_SUB + (shift - 1) * PB_HIST_SUB +
                   (unsigned)((v >> shift) - PB_HIST_SUB);
    return idx < PB_HIST_BUCKETS ? idx : PB_HIST_BUCKETS - 1;
}

/* The middle of bucket idx: what a percentile in it reports. */
static inline uint64_t pb_hist_value(unsigned idx)
{
    if (idx < 2 * PB_HIST_SUB)
        return idx;
    unsigned shift = (idx - 2 * PB_HIST_SUB) / PB_HIST_SUB + 1;
    uint64_t mant = (idx - 2 * PB_HIST_SUB) % PB_HIST_SUB + PB_HIST_SUB;
    return (mant << shift) + ((1ull << shift) >> 1);
}

static inline void pb_hist_add(pb_hist_t *h, uint64_t v)
{
    h->buckets[pb_hist_index(v)]++;
    h->count++;
    h->sum_ns += v;
    if (v > h->max_ns)
        h->max_ns = v;
    if (v < h->min_ns)
        h->min_ns = v;
}

static inline void pb_hist_merge(pb_hist_t *into, const pb_hist_t *h)
{
    for (unsigned i = 0; i < PB_HIST_BUCKETS; i++)
        into->buckets[i] += h->buckets[i];
    into->count += h->count;
    into->sum_ns += h->sum_ns;
    if (h->max_ns > into->max_ns)
        into->max_ns = h->max_ns;
    if (h->min_ns < into->min_ns)
        into->min_ns = h->min_ns;
}

/* The value at quantile q (0..1): the bucket holding the ceil(q * count)-th
 * smallest sample, never above the exact max. 0 for an empty histogram. */
static inline uint64_t pb_hist_quantile(const pb_hist_t *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = pb_hist_value(i);
            return v > h->max_ns ? h->max_ns : v;
        }
    }
    return h->max_ns;
}

#endif
