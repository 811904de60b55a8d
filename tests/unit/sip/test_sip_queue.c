/*
 * When a shard's UDP queue says it is behind: a standing backlog over a whole interval, or
 * one datagram that waited the limit; never a burst the queue drains between, nor a queue
 * that stopped receiving.
 */
#include "protocols/sip/sip_queue.h"
#include "tests/unit/t.h"

/* n datagrams spread over one interval from t, each having waited wait_us. */
static uint64_t feed(sip_queue_t *q, uint64_t t, unsigned n, uint32_t wait_us)
{
    for (unsigned i = 0; i < n; i++)
        sip_queue_observe(q, t + (uint64_t)i * SIP_QUEUE_INTERVAL_MS / n, wait_us);
    return t + SIP_QUEUE_INTERVAL_MS;
}

int main(void)
{
    sip_queue_t q;
    sip_queue_init(&q);
    uint64_t t = 1000000;

    /* An idle queue, and one that waits under the target. */
    CHECK(!sip_queue_behind(&q, t, 0));
    t = feed(&q, t, 50, 0);
    t = feed(&q, t, 50, SIP_QUEUE_TARGET_US - 1);
    sip_queue_observe(&q, t, 0);
    CHECK(!sip_queue_behind(&q, t, 0));
    CHECK(sip_queue_standing_until(&q) == 0);

    /* A single wait at the limit is behind at once, below it is not. */
    CHECK(sip_queue_behind(&q, t, SIP_QUEUE_LIMIT_US));
    CHECK(!sip_queue_behind(&q, t, SIP_QUEUE_LIMIT_US - 1));

    /* A burst: most datagrams waited long, but the queue emptied once in the interval. */
    sip_queue_init(&q);
    t = feed(&q, t, 50, 15000);
    sip_queue_observe(&q, t - 1, 0);
    t = feed(&q, t, 50, 15000);
    sip_queue_observe(&q, t - 1, 100);
    sip_queue_observe(&q, t, 15000);
    CHECK(!sip_queue_behind(&q, t, 15000));

    /* A standing backlog: every datagram of a whole interval waited the target. */
    t = feed(&q, t + 1, 50, SIP_QUEUE_TARGET_US);
    sip_queue_observe(&q, t + 1, SIP_QUEUE_TARGET_US);
    CHECK(sip_queue_behind(&q, t + 1, 0));
    CHECK(sip_queue_standing_until(&q) == t + 1 + SIP_QUEUE_INTERVAL_MS);
    /* It holds for the next interval and ends with the first interval that drained. */
    t = feed(&q, t + 1, 50, 8000);
    sip_queue_observe(&q, t + 1, 0);
    CHECK(sip_queue_behind(&q, t + 1, 0));
    t = feed(&q, t + 1, 50, 0);
    sip_queue_observe(&q, t + 1, 9000);
    CHECK(!sip_queue_behind(&q, t + 1, 9000));

    /* A standing interval followed by silence says nothing: the queue had drained. */
    sip_queue_init(&q);
    t = feed(&q, t + 5000, 50, 9000);
    sip_queue_observe(&q, t + 3 * SIP_QUEUE_INTERVAL_MS, 9000);
    CHECK(!sip_queue_behind(&q, t + 3 * SIP_QUEUE_INTERVAL_MS, 9000));

    /* One datagram alone in its interval is that interval's least wait. */
    sip_queue_init(&q);
    sip_queue_observe(&q, t, 7000);
    sip_queue_observe(&q, t + SIP_QUEUE_INTERVAL_MS, 7000);
    CHECK(sip_queue_behind(&q, t + SIP_QUEUE_INTERVAL_MS, 0));
    /* Nothing read after it: the verdict lapses with its interval, and the shard, no
     * longer receiving, is not behind. */
    CHECK(sip_queue_behind(&q, t + 2 * SIP_QUEUE_INTERVAL_MS - 1, 0));
    CHECK(!sip_queue_behind(&q, t + 2 * SIP_QUEUE_INTERVAL_MS, 0));
    T_DONE();
}
