/*
 * pb_graph.h - presbench's seeded contact graph: N users, each with exactly K
 * distinct contacts, symmetric (a in b's contacts iff b in a's), no user its
 * own contact, and the same graph from the same (N, K, seed) on every build
 * and machine, so the provisioner, the registration path and every worker of
 * a run agree on who is whose contact without exchanging a list.
 *
 * Users sit on a ring in a seeded random order; each is linked to the users
 * +s and -s places away for K/2 distinct seeded strides s in 1..(N-1)/2, and
 * for odd K with N even to the one N/2 away. Links are symmetric by
 * construction; random order and random strides keep neighbourhoods from
 * clustering. Odd K with odd N has no such graph (the degree sum would be
 * odd): the graph then has K-1 contacts each, which pb_graph_t.degree says.
 *
 * Ownership: pb_graph_init allocates two arrays of N, pb_graph_fini frees
 * them. Threads: built once, then read-only; any thread may read it.
 */
#ifndef PRESENCED_PB_GRAPH_H
#define PRESENCED_PB_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

/* Contacts per user: far beyond the 50 the targets name; a roster of 4096
 * items is ~330 KiB, which presbench still reads as one element. */
#define PB_GRAPH_DEGREE_MAX 4096u

typedef struct {
    uint32_t n;
    uint32_t *perm;             /* ring position -> user */
    uint32_t *pos;              /* user -> ring position */
    uint32_t strides[PB_GRAPH_DEGREE_MAX / 2];
    unsigned n_strides;
    bool antipode;
    unsigned degree;            /* contacts per user */
} pb_graph_t;

/* splitmix64: a seeded, portable sequence. Advances *state. */
static inline uint64_t pb_graph_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Builds the graph of n users with k contacts each. Returns 0, -E2BIG when
 * k > PB_GRAPH_DEGREE_MAX, -EINVAL when n is too small for k distinct
 * contacts (n < 3 or k/2 > (n-1)/2), -ENOMEM. */
int pb_graph_init(pb_graph_t *g, uint32_t n, unsigned k, uint64_t seed);
void pb_graph_fini(pb_graph_t *g);

/* Writes user u's g->degree contacts into out, in a fixed order. */
void pb_graph_contacts(const pb_graph_t *g, uint32_t u, uint32_t *out);

#endif
