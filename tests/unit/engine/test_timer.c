/*
 * Timer wheel: against a brute-force model under random arm/cancel/advance,
 * plus the edges (now, past, far future, re-arm from the callback).
 */
#include <stdlib.h>

#include "engine/timer.h"
#include "tests/unit/t.h"

#define N_TIMERS 2000

typedef struct {
    timer_ent_t t;
    uint64_t due;           /* model: expiry when armed */
    bool armed;             /* model */
    uint64_t fired_at;
    unsigned fired;
} item_t;

static item_t items[N_TIMERS];
static int early, late;
static uint64_t seed = 88172645463325252ull;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static void on_fire(timer_wheel_t *w, timer_ent_t *t)
{
    item_t *it = container_of(t, item_t, t);
    it->fired++;
    it->fired_at = w->now_ms;
    if (!it->armed || w->now_ms < it->due)
        early++;
    it->armed = false;
}

static void test_random_against_model(void)
{
    timer_wheel_t w;
    uint64_t now = 1000;
    timer_wheel_init(&w, now);
    for (int i = 0; i < N_TIMERS; i++)
        timer_init(&items[i].t, on_fire);

    for (int round = 0; round < 20000; round++) {
        item_t *it = &items[rnd() % N_TIMERS];
        unsigned op = rnd() % 10;
        if (op < 6) {
            /* spans every level, with a bias to the near future */
            uint64_t span = 1ull << (rnd() % 30);
            uint64_t due = now + rnd() % span;
            timer_arm(&w, &it->t, due);
            it->due = due;
            it->armed = true;
        } else if (op < 8) {
            timer_cancel(&w, &it->t);
            it->armed = false;
        } else {
            uint64_t to = now + rnd() % (1ull << (rnd() % 22));
            timer_advance(&w, to);
            now = to;
            for (int i = 0; i < N_TIMERS; i++)
                if (items[i].armed && items[i].due <= now)
                    late++;
        }
    }
    /* Drain everything. */
    timer_advance(&w, now + (1ull << 40));
    for (int i = 0; i < N_TIMERS; i++)
        CHECK(!items[i].armed);
    CHECK_EQ(early, 0);
    CHECK_EQ(late, 0);
    CHECK_EQ(w.count, 0);
}

static unsigned rearm_count;

static void rearm(timer_wheel_t *w, timer_ent_t *t)
{
    if (++rearm_count < 5)
        timer_arm(w, t, w->now_ms + 10);
}

static void test_rearm_from_callback(void)
{
    timer_wheel_t w;
    timer_ent_t t;
    timer_wheel_init(&w, 0);
    timer_init(&t, rearm);
    timer_arm(&w, &t, 10);
    CHECK_EQ(timer_advance(&w, 9), 0);
    CHECK_EQ(timer_advance(&w, 10), 1);
    CHECK(timer_armed(&t));
    CHECK_EQ(timer_advance(&w, 100), 4);
    CHECK(!timer_armed(&t));
    CHECK_EQ(rearm_count, 5);
}

static unsigned order_log[3], order_n;

static void log_order(timer_wheel_t *w, timer_ent_t *t)
{
    (void)w;
    order_log[order_n++] = (unsigned)t->expires_ms;
}

static void test_edges(void)
{
    timer_wheel_t w;
    timer_ent_t a, b, c;
    timer_wheel_init(&w, 500);
    timer_init(&a, log_order);
    timer_init(&b, log_order);
    timer_init(&c, log_order);
    CHECK_EQ(timer_next_ms(&w), UINT64_MAX);
    timer_arm(&w, &a, 100);            /* in the past: fires at the next advance */
    CHECK_EQ(timer_next_ms(&w), 0);
    timer_arm(&w, &b, 501);
    timer_arm(&w, &c, 500 + (1ull << 36));  /* past the wheel's reach */
    CHECK_EQ(timer_advance(&w, 500), 1);   /* even without time passing */
    CHECK_EQ(timer_advance(&w, 501), 1);
    CHECK_EQ(order_n, 2);
    order_n = 0;
    CHECK_EQ(order_log[0], 100);
    CHECK_EQ(order_log[1], 501);
    CHECK_EQ(timer_advance(&w, 500 + (1ull << 36) - 1), 0);
    CHECK_EQ(timer_advance(&w, 500 + (1ull << 36)), 1);
    CHECK_EQ(w.count, 0);
    /* next_ms is a lower bound on the next firing */
    timer_arm(&w, &a, w.now_ms + 5000);
    uint64_t next = timer_next_ms(&w);
    CHECK(next >= 1 && next <= 5000);
}

int main(void)
{
    T_RUN(test_random_against_model);
    T_RUN(test_rearm_from_callback);
    T_RUN(test_edges);
    T_DONE();
}
