#include "bench/load/pb_graph.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pb_graph_init(pb_graph_t *g, uint32_t n, unsigned k, uint64_t seed)
{
    unsigned half = k / 2;
    memset(g, 0, sizeof(*g));
    if (k > PB_GRAPH_DEGREE_MAX)
        return -E2BIG;
    if (n < 3 || half > (n - 1) / 2)
        return -EINVAL;
    g->n = n;
    g->perm = malloc(sizeof(uint32_t) * n);
    g->pos = malloc(sizeof(uint32_t) * n);
    if (!g->perm || !g->pos) {
        pb_graph_fini(g);
        return -ENOMEM;
    }
    uint64_t s = seed;
    for (uint32_t i = 0; i < n; i++)
        g->perm[i] = i;
    /* Fisher-Yates; the modulo bias (< n / 2^64) does not matter here. */
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(pb_graph_rand(&s) % (i + 1));
        uint32_t t = g->perm[i];
        g->perm[i] = g->perm[j];
        g->perm[j] = t;
    }
    for (uint32_t i = 0; i < n; i++)
        g->pos[g->perm[i]] = i;
    uint32_t range = (n - 1) / 2;
    /* Strides up to (n-1)/2 keep +s and -s apart (s != n - s) and distinct
     * strides reach distinct users, so the K contacts are distinct. */
    while (g->n_strides < half) {
        uint32_t st = (uint32_t)(pb_graph_rand(&s) % range) + 1;
        bool dup = false;
        for (unsigned i = 0; i < g->n_strides; i++)
            dup = dup || g->strides[i] == st;
        if (!dup)
            g->strides[g->n_strides++] = st;
    }
    g->antipode = (k % 2) && n % 2 == 0;
    g->degree = 2 * half + (g->antipode ? 1 : 0);
    return 0;
}

void pb_graph_fini(pb_graph_t *g)
{
    free(g->perm);
    free(g->pos);
    g->perm = g->pos = NULL;
}

void pb_graph_contacts(const pb_graph_t *g, uint32_t u, uint32_t *out)
{
    uint32_t p = g->pos[u];
    unsigned n = 0;
    for (unsigned i = 0; i < g->n_strides; i++) {
        out[n++] = g->perm[(p + g->strides[i]) % g->n];
        out[n++] = g->perm[(p + g->n - g->strides[i]) % g->n];
    }
    if (g->antipode)
        out[n++] = g->perm[(p + g->n / 2) % g->n];
}
