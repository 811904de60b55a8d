/*
 * route.h - where a user lives: its home node and shard.
 *
 * Every user (canonical key "local@domain", normalised once at the edge) has
 * exactly one home shard, chosen by a stable hash of the key, so that
 * everything that changes the user is a message to one place (DESIGN.md §2).
 * The hash must never change between releases or restarts: stored data and
 * other nodes depend on it. XXH3-64 with seed 0 is used; a route is
 * (node, shard) from the start so that clusters add nodes without changing
 * what a route is.
 *
 * Threads: pure functions, any thread.
 */
#ifndef PRESENCED_ROUTE_H
#define PRESENCED_ROUTE_H

#include "engine/common.h"

typedef struct {
    uint16_t node;
    uint16_t shard;
} route_t;

/* The stable 64-bit hash of a user key. */
uint64_t route_hash(const void *key, size_t len);

/* Home shard of a key on a single node with `shards` shards (node 0).
 * Jump consistent hashing (Lamping & Veach 2014): when the shard count
 * grows from n to n+1, only 1/(n+1) of the users move. */
route_t route_user(const void *key, size_t len, unsigned shards);

static inline bool route_eq(route_t a, route_t b)
{
    return a.node == b.node && a.shard == b.shard;
}

#endif
