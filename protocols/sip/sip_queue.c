/*
 * sip_queue.c - see sip_queue.h.
 */
#include "protocols/sip/sip_queue.h"

void sip_queue_init(sip_queue_t *q)
{
    *q = (sip_queue_t){ .interval_end_ms = 0, .min_wait_us = UINT32_MAX, .standing = false };
}

void sip_queue_observe(sip_queue_t *q, uint64_t now_ms, uint32_t wait_us)
{
    if (now_ms >= q->interval_end_ms) {
        /* An interval without datagrams, or a gap after it, says nothing of a backlog. */
        q->standing = q->interval_end_ms && now_ms < q->interval_end_ms + SIP_QUEUE_INTERVAL_MS &&
                      q->min_wait_us != UINT32_MAX && q->min_wait_us >= SIP_QUEUE_TARGET_US;
        q->interval_end_ms = now_ms + SIP_QUEUE_INTERVAL_MS;
        q->min_wait_us = UINT32_MAX;
    }
    if (wait_us < q->min_wait_us)
        q->min_wait_us = wait_us;
}

bool sip_queue_behind(const sip_queue_t *q, uint64_t now_ms, uint32_t wait_us)
{
    return now_ms < sip_queue_standing_until(q) || wait_us >= SIP_QUEUE_LIMIT_US;
}

uint64_t sip_queue_standing_until(const sip_queue_t *q)
{
    return q->standing ? q->interval_end_ms : 0;
}
