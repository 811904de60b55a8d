/* presbench's contact graph: deterministic from its seed, exactly K distinct
 * contacts each, symmetric, nobody their own contact. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/load/pb_graph.h"
#include "tests/unit/t.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks every property on one (n, k, seed); returns the graph's contacts,
 * sorted per user, n * degree entries, for the caller to compare. */
static uint32_t *check_shape(uint32_t n, unsigned k, uint64_t seed)
{
    pb_graph_t g;
    REQUIRE(pb_graph_init(&g, n, k, seed) == 0);
    unsigned want = (k % 2 && n % 2) ? k - 1 : k;
    CHECK_EQ(g.degree, want);
    uint32_t *all = calloc((size_t)n * (g.degree + 1), sizeof(uint32_t));
    REQUIRE(all);
    for (uint32_t u = 0; u < n; u++) {
        uint32_t *c = all + (size_t)u * g.degree;
        pb_graph_contacts(&g, u, c);
        qsort(c, g.degree, sizeof(*c), cmp_u32);
        for (unsigned i = 0; i < g.degree; i++) {
            CHECK(c[i] < n);
            CHECK(c[i] != u);
            if (i)
                CHECK(c[i] != c[i - 1]);
        }
    }
    /* Symmetric: v in contacts(u) implies u in contacts(v). */
    unsigned asym = 0;
    for (uint32_t u = 0; u < n; u++)
        for (unsigned i = 0; i < g.degree; i++) {
            uint32_t v = all[(size_t)u * g.degree + i];
            if (!bsearch(&u, all + (size_t)v * g.degree, g.degree, sizeof(uint32_t), cmp_u32))
                asym++;
        }
    CHECK_EQ(asym, 0);
    pb_graph_fini(&g);
    return all;
}

static void test_shapes(void)
{
    static const struct { uint32_t n; unsigned k; } cases[] = {
        { 3, 2 }, { 4, 3 }, { 5, 4 }, { 10, 9 }, { 11, 9 }, { 101, 7 }, { 1000, 50 },
        { 1001, 50 }, { 2000, 1 }, { 5000, 0 }, { 2049, 2048 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        free(check_shape(cases[i].n, cases[i].k, 1 + i));
}

static void test_same_seed_same_graph(void)
{
    uint32_t *a = check_shape(1000, 50, 42), *b = check_shape(1000, 50, 42);
    uint32_t *c = check_shape(1000, 50, 43);
    CHECK(memcmp(a, b, 1000 * 50 * sizeof(uint32_t)) == 0);
    CHECK(memcmp(a, c, 1000 * 50 * sizeof(uint32_t)) != 0);
    free(a);
    free(b);
    free(c);
}

/* The graph presbench provisioned before this module existed, and that the
 * recorded figures were measured with: it may never change silently. */
static void test_stable_across_builds(void)
{
    static const uint32_t want[] = { 26, 2, 4, 17, 25, 50 };
    pb_graph_t g;
    REQUIRE(pb_graph_init(&g, 101, 7, 5) == 0);
    REQUIRE(g.degree == 6);
    uint32_t c[6];
    pb_graph_contacts(&g, 0, c);
    for (unsigned i = 0; i < 6; i++)
        CHECK_EQ(c[i], want[i]);
    pb_graph_fini(&g);
}

static void test_limits(void)
{
    pb_graph_t g;
    CHECK_EQ(pb_graph_init(&g, 2, 0, 1), -EINVAL);
    CHECK_EQ(pb_graph_init(&g, 10, 10, 1), -EINVAL);
    CHECK_EQ(pb_graph_init(&g, 100000, PB_GRAPH_DEGREE_MAX + 1, 1), -E2BIG);
}

int main(void)
{
    T_RUN(test_shapes);
    T_RUN(test_same_seed_same_graph);
    T_RUN(test_stable_across_builds);
    T_RUN(test_limits);
    T_DONE();
}
