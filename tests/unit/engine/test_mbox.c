/*
 * Mailbox stress: several producer threads, one consumer that really sleeps.
 * Checks no loss, no duplicate, per-producer order, the backlog path (small
 * rings), and that no wake-up is lost (the consumer blocks without a timeout
 * bound other than a generous failure deadline).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "engine/mbox.h"
#include "tests/unit/t.h"

#define PRODUCERS 3
#define CONSUMER PRODUCERS

typedef struct {
    mbox_hub_t *hub;
    unsigned id;
    uint64_t count;
    unsigned batch;
} producer_t;

static sem_t wake_sem;
static _Atomic uint64_t wakes_posted;

static void wake_consumer(void *ctx, unsigned dst)
{
    (void)ctx;
    REQUIRE(dst == CONSUMER);
    atomic_fetch_add(&wakes_posted, 1);
    sem_post(&wake_sem);
}

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    mbox_ep_t *ep = mbox_hub_ep(p->hub, p->id);

    for (uint64_t seq = 0; seq < p->count; seq++) {
        mbox_msg_t m = { .kind = MBOX_CALL, .u64 = seq, .u32 = p->id };
        while (mbox_send(ep, CONSUMER, &m) == -ENOBUFS)
            mbox_flush(ep, wake_consumer, NULL);
        if ((seq + 1) % p->batch == 0)
            mbox_flush(ep, wake_consumer, NULL);
    }
    while (mbox_flush(ep, wake_consumer, NULL) > 0)
        sched_yield();
    return NULL;
}

typedef struct {
    uint64_t next[PRODUCERS];
    uint64_t total;
    int errors;
} consumer_t;

static void consume(void *ctx, const mbox_msg_t *m)
{
    consumer_t *c = ctx;
    if (m->u32 >= PRODUCERS || m->src != m->u32 || m->u64 != c->next[m->u32]) {
        if (c->errors++ < 5)
            fprintf(stderr, "bad message: src %u u32 %u seq %llu expected %llu\n", m->src, m->u32,
                    (unsigned long long)m->u64,
                    (unsigned long long)(m->u32 < PRODUCERS ? c->next[m->u32] : 0));
        return;
    }
    c->next[m->u32]++;
    c->total++;
}

static void run_stress(unsigned slots, uint64_t per_producer, unsigned batch)
{
    mbox_hub_t *hub = mbox_hub_create(PRODUCERS + 1, slots);
    REQUIRE(hub);
    sem_init(&wake_sem, 0, 0);
    producer_t prods[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        prods[i] = (producer_t){ hub, i, per_producer, batch };
        REQUIRE(pthread_create(&threads[i], NULL, producer_main, &prods[i]) == 0);
    }
    consumer_t c = { 0 };
    mbox_ep_t *ep = mbox_hub_ep(hub, CONSUMER);
    uint64_t want = per_producer * PRODUCERS;
    unsigned sleeps = 0;
    while (c.total + (uint64_t)c.errors < want) {
        if (mbox_drain(ep, 1024, consume, &c) > 0)
            continue;
        if (!mbox_prepare_sleep(ep))
            continue;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        sleeps++;
        if (sem_timedwait(&wake_sem, &deadline) != 0) {
            fprintf(stderr, "lost wake-up: %llu of %llu delivered\n",
                    (unsigned long long)c.total, (unsigned long long)want);
            break;
        }
        mbox_awake(ep);
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        pthread_join(threads[i], NULL);
    mbox_drain(ep, 1u << 30, consume, &c);
    CHECK_EQ(c.errors, 0);
    CHECK_EQ(c.total, want);
    for (unsigned i = 0; i < PRODUCERS; i++)
        CHECK_EQ(c.next[i], per_producer);
    mbox_counters_t mc;
    uint64_t sent = 0;
    for (unsigned i = 0; i < PRODUCERS; i++) {
        mbox_counters(mbox_hub_ep(hub, i), &mc);
        sent += mc.sent;
        CHECK_EQ(mc.refused, 0);
    }
    CHECK_EQ(sent, want);
    mbox_counters(ep, &mc);
    CHECK_EQ(mc.received, want);
    CHECK_EQ(mbox_depth(ep), 0);
    fprintf(stderr, "  slots %u batch %u: %llu msgs, consumer slept %u times, %llu wakes\n",
            slots, batch, (unsigned long long)want, sleeps,
            (unsigned long long)atomic_load(&wakes_posted));
    sem_destroy(&wake_sem);
    mbox_hub_destroy(hub);
}

static void test_stress_large_rings(void)
{
    run_stress(4096, 400000, 64);
}

static void test_stress_backlog(void)
{
    /* 64-slot rings with 1000-message batches force every sender into its backlog. */
    run_stress(64, 200000, 1000);
}

static void test_stress_unbatched(void)
{
    run_stress(256, 100000, 1);
}

static void test_sleep_flag(void)
{
    mbox_hub_t *hub = mbox_hub_create(2, 64);
    REQUIRE(hub);
    mbox_ep_t *a = mbox_hub_ep(hub, 0), *b = mbox_hub_ep(hub, 1);
    unsigned woken = 0;
    CHECK(mbox_prepare_sleep(b));
    mbox_msg_t m = { .kind = MBOX_CALL, .u64 = 7 };
    CHECK_EQ(mbox_send(a, 1, &m), 0);
    /* Not yet published: nothing to see, nobody woken. */
    CHECK_EQ(mbox_depth(b), 0);
    mbox_flush(a, (mbox_wake_fn)(void (*)(void))NULL, NULL);
    CHECK_EQ(mbox_depth(b), 1);
    mbox_counters_t mc;
    mbox_counters(a, &mc);
    CHECK_EQ(mc.wakeups, 1);
    /* A second publish finds the flag already taken: no second wake. */
    CHECK_EQ(mbox_send(a, 1, &m), 0);
    mbox_flush(a, NULL, NULL);
    mbox_counters(a, &mc);
    CHECK_EQ(mc.wakeups, 1);
    /* Pending messages keep the consumer awake. */
    CHECK(!mbox_prepare_sleep(b));
    (void)woken;
    mbox_hub_destroy(hub);
}

int main(void)
{
    T_RUN(test_sleep_flag);
    T_RUN(test_stress_large_rings);
    T_RUN(test_stress_backlog);
    T_RUN(test_stress_unbatched);
    T_DONE();
}
