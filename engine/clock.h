/*
 * clock.h - the engine's only way to read time.
 *
 * Shards read "now" through a {ctx, vtable} pair so that the simulator in
 * tests/sim can run several shards on one thread against a tick clock
 * (STYLE.md, Determinism). The monotonic clock is the production one.
 * Threads: clk_monotonic is safe from any thread; a simulated clock belongs to
 * the simulator's single thread.
 */
#ifndef PRESENCED_CLOCK_H
#define PRESENCED_CLOCK_H

#include <time.h>

#include "engine/common.h"

typedef struct {
    uint64_t (*now_ns)(void *ctx);
} clk_ops_t;

typedef struct {
    const clk_ops_t *ops;
    void *ctx;
} clk_t;

static inline uint64_t clk_now_ns(const clk_t *c)
{
    return c->ops->now_ns(c->ctx);
}

static inline uint64_t clk_now_ms(const clk_t *c)
{
    return clk_now_ns(c) / 1000000u;
}

static inline uint64_t clk_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

extern const clk_t clk_monotonic;

#endif
