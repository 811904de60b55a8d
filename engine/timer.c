/*
 * timer.c - see timer.h.
 *
 * A timer with delta = expires - now lives at the lowest level L whose span
 * (64^(L+1) ticks) covers delta, in slot (expires >> 6L) & 63. When the
 * level-0 index wraps to 0, the next level's current slot is emptied and its
 * timers re-inserted ("cascade"); likewise upward. A slot is emptied only when
 * time reaches the start of its block, so a timer never fires early.
 */
#include "engine/timer.h"

static inline unsigned timer_shift(unsigned level)
{
    return level * TIMER_SLOT_BITS;
}

void timer_wheel_init(timer_wheel_t *w, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->now_ms = now_ms;
}

void timer_init(timer_ent_t *t, timer_fn fn)
{
    memset(t, 0, sizeof(*t));
    t->fn = fn;
}

/* Level of the list of timers already due (fired first by timer_advance). */
#define TIMER_DUE_LEVEL 0xff

static void timer_list_append(timer_list_t *l, timer_ent_t *t)
{
    t->next = NULL;
    t->prev = l->last;
    if (l->last)
        l->last->next = t;
    else
        l->first = t;
    l->last = t;
}

static void timer_link(timer_wheel_t *w, timer_ent_t *t)
{
    uint64_t expires = t->expires_ms;
    uint64_t now = w->now_ms;
    unsigned level = 0;

    if (expires <= now) {
        t->level = TIMER_DUE_LEVEL;
        t->slot = 0;
        timer_list_append(&w->due, t);
        return;
    }
    uint64_t delta = expires - now;
    while (level < TIMER_LEVELS - 1 &&
           delta >= ((uint64_t)TIMER_SLOTS << timer_shift(level)))
        level++;
    if (level == TIMER_LEVELS - 1 &&
        delta >= ((uint64_t)TIMER_SLOTS << timer_shift(level))) {
        /* Beyond the wheel: park in the furthest slot; it re-inserts itself
         * on cascade until it comes within reach. */
        expires = now + ((uint64_t)(TIMER_SLOTS - 1) << timer_shift(level));
    }
    unsigned slot = (unsigned)(expires >> timer_shift(level)) & (TIMER_SLOTS - 1);
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    timer_list_append(&w->slots[level][slot], t);
    w->occupied[level] |= 1ull << slot;
}

static void timer_unlink(timer_wheel_t *w, timer_ent_t *t)
{
    bool due = t->level == TIMER_DUE_LEVEL;
    timer_list_t *l = due ? &w->due : &w->slots[t->level][t->slot];
    if (t->prev)
        t->prev->next = t->next;
    else
        l->first = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->last = t->prev;
    if (!l->first && !due)
        w->occupied[t->level] &= ~(1ull << t->slot);
    t->next = t->prev = NULL;
}

void timer_arm(timer_wheel_t *w, timer_ent_t *t, uint64_t expires_ms)
{
    ASSERT(t->fn != NULL);
    if (t->armed)
        timer_unlink(w, t);
    else
        w->count++;
    t->armed = true;
    t->expires_ms = expires_ms;
    timer_link(w, t);
}

void timer_cancel(timer_wheel_t *w, timer_ent_t *t)
{
    if (!t->armed)
        return;
    timer_unlink(w, t);
    t->armed = false;
    ASSERT(w->count > 0);
    w->count--;
}

/* Re-inserts every timer of one slot relative to the current time. */
static void timer_cascade(timer_wheel_t *w, unsigned level, unsigned slot)
{
    timer_list_t l = w->slots[level][slot];
    w->slots[level][slot] = (timer_list_t){ NULL, NULL };
    w->occupied[level] &= ~(1ull << slot);
    for (timer_ent_t *t = l.first, *next; t; t = next) {
        next = t->next;
        timer_link(w, t);
    }
}

static unsigned timer_fire_list(timer_wheel_t *w, timer_list_t l)
{
    unsigned fired = 0;
    while (l.first) {
        timer_ent_t *t = l.first;
        l.first = t->next;
        if (l.first)
            l.first->prev = NULL;
        t->next = t->prev = NULL;
        if (t->expires_ms > w->now_ms) {
            /* Parked beyond the wheel's reach and landed here early. */
            timer_link(w, t);
            continue;
        }
        t->armed = false;
        w->count--;
        fired++;
        t->fn(w, t);
    }
    return fired;
}

static unsigned timer_fire_slot(timer_wheel_t *w, unsigned slot)
{
    /* Detach the list first: callbacks may re-arm into this very slot. */
    timer_list_t l = w->slots[0][slot];
    w->slots[0][slot] = (timer_list_t){ NULL, NULL };
    w->occupied[0] &= ~(1ull << slot);
    return timer_fire_list(w, l);
}

/* Ticks until level 0 next has work or must cascade, counted from now. */
static uint64_t timer_ticks_to_work(const timer_wheel_t *w)
{
    unsigned cur = (unsigned)(w->now_ms & (TIMER_SLOTS - 1));
    uint64_t to_wrap = TIMER_SLOTS - cur;
    uint64_t occ = w->occupied[0];
    /* Slots after the current one, in this rotation. */
    uint64_t ahead = cur == TIMER_SLOTS - 1 ? 0 : occ & (~0ull << (cur + 1));
    if (ahead)
        return (uint64_t)__builtin_ctzll(ahead) - cur;
    return to_wrap;
}

unsigned timer_advance(timer_wheel_t *w, uint64_t now_ms)
{
    unsigned fired = 0;

    if (w->due.first) {
        /* Armed for "now or earlier" since the last advance. Timers these
         * callbacks arm for now land in the new due list: next advance. */
        timer_list_t l = w->due;
        w->due = (timer_list_t){ NULL, NULL };
        fired += timer_fire_list(w, l);
    }

    while (w->now_ms < now_ms) {
        if (w->count == 0) {
            w->now_ms = now_ms;
            break;
        }
        uint64_t step = timer_ticks_to_work(w);
        if (w->now_ms + step > now_ms) {
            w->now_ms = now_ms;
            break;
        }
        w->now_ms += step;
        unsigned idx0 = (unsigned)(w->now_ms & (TIMER_SLOTS - 1));
        if (idx0 == 0) {
            /* Find how many levels wrapped, then cascade from the top down so
             * that timers fall through to their final level in one pass. */
            unsigned top = 1;
            while (top < TIMER_LEVELS - 1 &&
                   ((w->now_ms >> timer_shift(top)) & (TIMER_SLOTS - 1)) == 0)
                top++;
            for (unsigned lv = top; lv >= 1; lv--) {
                unsigned s = (unsigned)(w->now_ms >> timer_shift(lv)) & (TIMER_SLOTS - 1);
                if (w->occupied[lv] & (1ull << s))
                    timer_cascade(w, lv, s);
            }
        }
        if (w->due.first) {
            /* Cascaded onto their own due time (a block's first tick). */
            timer_list_t l = w->due;
            w->due = (timer_list_t){ NULL, NULL };
            fired += timer_fire_list(w, l);
        }
        if (w->occupied[0] & (1ull << idx0))
            fired += timer_fire_slot(w, idx0);
    }
    return fired;
}

uint64_t timer_next_ms(const timer_wheel_t *w)
{
    if (w->count == 0)
        return UINT64_MAX;
    if (w->due.first)
        return 0;
    return timer_ticks_to_work(w);
}
