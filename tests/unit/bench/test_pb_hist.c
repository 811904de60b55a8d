/* presbench's latency histogram: percentiles of known distributions within
 * the error its header states (exact below 128 ns, 1/64 above). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/load/pb_hist.h"
#include "tests/unit/t.h"

static uint64_t rng = 12345;

/* splitmix64, for repeatable samples. */
static uint64_t next_u64(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;    /* [0, 1) */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool within(uint64_t got, uint64_t exact)
{
    if (exact < 2 * PB_HIST_SUB)
        return got == exact;
    double err = fabs((double)got - (double)exact) / (double)exact;
    return err <= 1.0 / PB_HIST_SUB;
}

/* Feeds v[0..n) and checks the usual percentiles against the sorted samples:
 * the ceil(q * n)-th smallest, as pb_hist_quantile defines its rank. */
static void check_quantiles(const char *name, uint64_t *v, size_t n)
{
    pb_hist_t *h = malloc(sizeof(*h));
    REQUIRE(h);
    pb_hist_init(h);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        pb_hist_add(h, v[i]);
        sum += v[i];
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    CHECK_EQ(h->count, n);
    CHECK(h->sum_ns == sum);
    CHECK(h->min_ns == v[0]);
    CHECK(h->max_ns == v[n - 1]);
    static const double qs[] = { 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0 };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        size_t rank = (size_t)ceil(qs[i] * (double)n);
        uint64_t exact = v[(rank ? rank : 1) - 1], got = pb_hist_quantile(h, qs[i]);
        if (!within(got, exact)) {
            fprintf(stderr, "%s: q %.4f: %llu, exact %llu\n", name, qs[i],
                    (unsigned long long)got, (unsigned long long)exact);
            t_failures++;
        }
        CHECK(got <= h->max_ns);
    }
    free(h);
}

static void test_exact_below_128(void)
{
    uint64_t v[128];
    for (unsigned i = 0; i < 128; i++)
        v[i] = 127 - i;
    check_quantiles("0..127", v, 128);
    for (uint64_t x = 0; x < 128; x++)
        CHECK_EQ(pb_hist_value(pb_hist_index(x)), x);
}

/* Every bucket's reported value stays within 1/64 of anything it holds, and
 * bucket order follows value order. */
static void test_bucket_error_bound(void)
{
    unsigned prev = 0;
    for (uint64_t x = 1; x < (1ull << PB_HIST_MAX_BITS); x += 1 + x / 997) {
        unsigned idx = pb_hist_index(x);
        CHECK(idx >= prev);
        prev = idx;
        if (!within(pb_hist_value(idx), x)) {
            fprintf(stderr, "value %llu reported as %llu\n", (unsigned long long)x,
                    (unsigned long long)pb_hist_value(idx));
            t_failures++;
            return;
        }
    }
    CHECK(pb_hist_index(1ull << PB_HIST_MAX_BITS) <= PB_HIST_BUCKETS - 1);
}

static void test_uniform(void)
{
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof(*v));
    REQUIRE(v);
    for (size_t i = 0; i < n; i++)
        v[i] = 1000 + next_u64() % 1000000;     /* 1 us .. 1 ms */
    check_quantiles("uniform", v, n);
    free(v);
}

/* Latencies look like this: a narrow body and a long tail over decades. */
static void test_lognormal(void)
{
    size_t n = 300000;
    uint64_t *v = malloc(n * sizeof(*v));
    REQUIRE(v);
    for (size_t i = 0; i < n; i++) {
        double u1 = next_unit() + 1e-12, u2 = next_unit();
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        v[i] = (uint64_t)exp(log(50000.0) + 1.5 * z);   /* median 50 us */
    }
    check_quantiles("lognormal", v, n);
    free(v);
}

static void test_bimodal_and_constant(void)
{
    size_t n = 10000;
    uint64_t *v = malloc(n * sizeof(*v));
    REQUIRE(v);
    for (size_t i = 0; i < n; i++)
        v[i] = i % 100 == 0 ? 250000000 : 20000 + i % 7;   /* 1 % at 250 ms */
    check_quantiles("bimodal", v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = 777777;
    check_quantiles("constant", v, n);
    free(v);
}

static void test_merge_and_overflow(void)
{
    pb_hist_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
    REQUIRE(a && b && all);
    pb_hist_init(a);
    pb_hist_init(b);
    pb_hist_init(all);
    CHECK_EQ(pb_hist_quantile(a, 0.5), 0);
    for (uint64_t i = 0; i < 50000; i++) {
        uint64_t x = next_u64() % 10000000;
        pb_hist_add(i % 3 ? a : b, x);
        pb_hist_add(all, x);
    }
    pb_hist_merge(a, b);
    CHECK(memcmp(a, all, sizeof(*a)) == 0);
    /* Beyond 2^42 ns: the last bucket, and the exact max is still reported. */
    pb_hist_t *h = b;
    pb_hist_init(h);
    uint64_t huge = (1ull << 50) + 3;
    pb_hist_add(h, huge);
    CHECK(pb_hist_quantile(h, 1.0) <= huge);
    CHECK(h->max_ns == huge);
    free(a);
    free(b);
    free(all);
}

int main(void)
{
    T_RUN(test_exact_below_128);
    T_RUN(test_bucket_error_bound);
    T_RUN(test_uniform);
    T_RUN(test_lognormal);
    T_RUN(test_bimodal_and_constant);
    T_RUN(test_merge_and_overflow);
    T_DONE();
}
