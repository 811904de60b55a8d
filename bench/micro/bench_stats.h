/*
 * bench_stats.h - the micro-benchmarks' summary line: median, MAD (median
 * absolute deviation), min and max over runs (STYLE.md, Tests and benchmarks).
 */
#ifndef PRESENCED_BENCH_STATS_H
#define PRESENCED_BENCH_STATS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_RUNS_MAX 64

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline double bench_median_sorted(const double *v, unsigned n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Sorts v[0..n) in place and prints one summary line. Returns the median. */
static inline double bench_summary(const char *what, double *v, unsigned n, const char *unit)
{
    double dev[BENCH_RUNS_MAX];
    qsort(v, n, sizeof(*v), bench_cmp_double);
    double med = bench_median_sorted(v, n);
    for (unsigned i = 0; i < n; i++)
        dev[i] = v[i] > med ? v[i] - med : med - v[i];
    qsort(dev, n, sizeof(*dev), bench_cmp_double);
    printf("%-36s median %12.1f  MAD %10.1f  min %12.1f  max %12.1f  %s\n", what, med,
           bench_median_sorted(dev, n), v[0], v[n - 1], unit);
    return med;
}

#endif
