/*
 * timer.h - a hierarchical timer wheel, one per shard.
 *
 * Five levels of 64 slots; level L has a granularity of 64^L ticks, so one
 * tick of 1 ms reaches 64^5 ms (about 12 days) with insert and cancel in O(1)
 * and no allocation: the timer is embedded in its owner (a connection, a SIP
 * transaction, a subscription). Timers further out than that are clamped to
 * the last slot and re-inserted when they cascade.
 *
 * The wheel never reads a clock: the shard passes "now" in, so the simulator
 * drives it with a tick clock (STYLE.md, Determinism). A timer fires at the
 * first timer_advance whose now is >= its expiry; timers due in the same tick
 * fire in the order they were armed.
 *
 * Threads: a wheel and its timers belong to one shard; no locking.
 */
#ifndef PRESENCED_TIMER_H
#define PRESENCED_TIMER_H

#include "engine/common.h"

#define TIMER_LEVELS 5
#define TIMER_SLOTS 64          /* one uint64_t occupancy bitmap per level */
#define TIMER_SLOT_BITS 6

typedef struct timer_wheel timer_wheel_t;
typedef struct timer timer_ent_t;
typedef void (*timer_fn)(timer_wheel_t *w, timer_ent_t *t);

/* Embedded in its owner; zero-initialised or timer_init'ed before first use. */
struct timer {
    struct timer *next, *prev;  /* slot list; NULL when not armed */
    uint64_t expires_ms;
    timer_fn fn;
    uint8_t level, slot;
    bool armed;
};

typedef struct {
    timer_ent_t *first, *last;
} timer_list_t;

struct timer_wheel {
    uint64_t now_ms;                /* every tick up to now_ms has been processed */
    uint64_t count;                 /* armed timers */
    uint64_t occupied[TIMER_LEVELS];
    timer_list_t slots[TIMER_LEVELS][TIMER_SLOTS];
    timer_list_t due;               /* armed for a time not after now_ms */
};

void timer_wheel_init(timer_wheel_t *w, uint64_t now_ms);
void timer_init(timer_ent_t *t, timer_fn fn);

/* Arms (or re-arms) t to fire at expires_ms; a time not after now fires at the next advance. */
void timer_arm(timer_wheel_t *w, timer_ent_t *t, uint64_t expires_ms);
void timer_cancel(timer_wheel_t *w, timer_ent_t *t);   /* no-op if not armed */
static inline bool timer_armed(const timer_ent_t *t) { return t->armed; }

/* Fires every timer due at or before now_ms; callbacks may arm and cancel any
 * timer, including the one firing. Returns the number fired. */
unsigned timer_advance(timer_wheel_t *w, uint64_t now_ms);

/* Milliseconds until the next tick that has work (a timer due or a cascade),
 * UINT64_MAX when nothing is armed. Used to bound the shard's sleep. */
uint64_t timer_next_ms(const timer_wheel_t *w);

#endif
