/*
 * sip_queue.h - is a shard behind on its UDP socket?
 *
 * Read from how long each datagram waited in the socket's queue before the shard took it
 * (the kernel's receive timestamp). A standing backlog is one where even the datagram that
 * waited least in an interval waited the target: the way CoDel (RFC 8289) tells a standing
 * queue from a burst, which leaves the queue empty now and then. A single datagram that
 * waited the limit finds the shard behind at once: past it the queue is close to
 * overflowing. Counts of unanswered requests would say the same only for peers at a known
 * round trip; the queue's wait does not depend on the peers.
 */
#ifndef PRESENCED_SIP_QUEUE_H
#define PRESENCED_SIP_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

/* The shard's 4 MiB queue holds some 3,500 datagrams, 40 ms at a shard's 90,000/s. Measured
 * past the peak, a single bound of 20 or 15 ms let the queue overflow into a storm of
 * retransmissions; one of 10 ms held the node, but bursts made it refuse PUBLISHes at two
 * thirds of the peak too. */
#define SIP_QUEUE_TARGET_US 5000
#define SIP_QUEUE_INTERVAL_MS 100
#define SIP_QUEUE_LIMIT_US 20000

typedef struct {
    uint64_t interval_end_ms;   /* 0: no interval yet */
    uint32_t min_wait_us;       /* least wait seen in the current interval */
    bool standing;              /* the last whole interval's least wait reached the target */
} sip_queue_t;

void sip_queue_init(sip_queue_t *q);

/* A datagram taken at now_ms that had waited wait_us in the queue. */
void sip_queue_observe(sip_queue_t *q, uint64_t now_ms, uint32_t wait_us);

/* Whether a request taken at now_ms that waited wait_us should find the shard behind. A
 * standing verdict holds for the interval after the one it was read from: a shard that
 * stops receiving is not behind for ever. */
bool sip_queue_behind(const sip_queue_t *q, uint64_t now_ms, uint32_t wait_us);

/* Until when (ms) the queue's standing verdict holds; 0 when it is not standing. */
uint64_t sip_queue_standing_until(const sip_queue_t *q);

#endif
