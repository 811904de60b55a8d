/*
 * mbox.h - lock-free mailboxes between shards.
 *
 * A hub holds one single-producer/single-consumer ring per ordered (source,
 * destination) pair of endpoints. Endpoints are the shards plus any control
 * threads that need to post to them (the node's main thread). A message is a
 * fixed 32-byte record copied by value into the ring: a closure (fn + two
 * words) or a handed-over connection; anything bigger travels as a pointer that
 * the receiver returns to the sender for release (STYLE.md, Memory).
 *
 * Why not ck_ring: ck_ring stores pointers (each message would be a separate
 * allocation) and publishes its tail on every enqueue, re-reading the
 * consumer's head each time. These rings copy records in place, cache the
 * peer's index so the shared cache line is touched only when the cached one
 * says the ring looks full or empty, and publish a whole turn's messages with
 * one release store. The ordering rules follow the kernel's
 * Documentation/core-api/circular-buffers.rst.
 *
 * Wake-ups: a consumer that is about to sleep announces it (mbox_prepare_sleep)
 * and re-checks its rings; a producer that publishes checks the flag after a
 * full fence and, if it wins the flag, asks its waker to wake the peer
 * (IORING_OP_MSG_RING in the io_uring driver). Either the consumer sees the
 * new tail or the producer sees the flag: never neither.
 *
 * Threads: mbox_send/mbox_flush only from the thread that owns the source
 * endpoint; mbox_drain/mbox_prepare_sleep/mbox_awake only from the owner of the
 * destination endpoint; mbox_depth and the counters from any thread.
 * Nothing blocks.
 */
#ifndef PRESENCED_MBOX_H
#define PRESENCED_MBOX_H

#include <stdatomic.h>

#include "engine/common.h"

typedef struct mbox_msg mbox_msg_t;
typedef struct mbox_hub mbox_hub_t;
typedef struct mbox_ep mbox_ep_t;

/* Runs on the destination's thread with the destination's context. */
typedef void (*mbox_fn)(void *dst_ctx, const mbox_msg_t *msg);

typedef enum {
    MBOX_CALL = 1,      /* run fn(dst_ctx, msg) on the destination */
    MBOX_CONN = 2,      /* a connection handed over; ptr is the sender's record */
} mbox_kind_t;

struct mbox_msg {
    mbox_fn fn;
    void *ptr;
    uint64_t u64;
    uint16_t kind;
    uint16_t src;       /* filled in by mbox_send */
    uint32_t u32;
};
_Static_assert(sizeof(struct mbox_msg) == 32, "two messages per cache line");

/* Slots per ring when the config does not say: 4096 x 32 B = 128 KiB per pair,
 * enough for a full turn of fan-out at 20 M msg/s with 200 us turns. */
#define MBOX_RING_SLOTS_DEFAULT 4096u
/* Messages a sender may hold back per destination when that ring is full:
 * 1 Mi x 32 B = 32 MiB, past which mbox_send refuses rather than grow. */
#define MBOX_BACKLOG_MAX (1u << 20)
#define MBOX_ENDPOINTS_MAX 257u     /* 256 shards + the main thread */

typedef struct {
    uint64_t sent;          /* messages published by this endpoint */
    uint64_t received;      /* messages drained by this endpoint */
    uint64_t wakeups;       /* peers this endpoint woke */
    uint64_t backlogged;    /* sends that found the ring full */
    uint64_t refused;       /* sends refused: backlog at MBOX_BACKLOG_MAX */
} mbox_counters_t;

/* Asks the owner of a sleeping endpoint's loop to wake it (called on the sender's thread). */
typedef void (*mbox_wake_fn)(void *ctx, unsigned dst);

/* Create/destroy: main thread, before any endpoint is used / after all stopped.
 * slots is a power of two >= 64. Returns NULL on allocation failure. */
mbox_hub_t *mbox_hub_create(unsigned endpoints, unsigned slots);
void mbox_hub_destroy(mbox_hub_t *hub);
unsigned mbox_hub_endpoints(const mbox_hub_t *hub);
mbox_ep_t *mbox_hub_ep(mbox_hub_t *hub, unsigned id);

/* Sender side. Copies *msg; it becomes visible to dst at the next mbox_flush.
 * 0, or -ENOBUFS when dst's ring is full and the backlog at its bound. */
int mbox_send(mbox_ep_t *src, unsigned dst, const mbox_msg_t *msg);
/* Publishes everything sent since the last flush, moving backlog into rings,
 * and calls wake(ctx, dst) for each destination that announced sleep.
 * Returns the number of messages still held in backlogs. */
unsigned mbox_flush(mbox_ep_t *src, mbox_wake_fn wake, void *ctx);

/* Receiver side. Calls deliver for up to max messages, oldest first per sender,
 * each sender's ring in turn, and releases the slots once per ring.
 * Returns the number delivered. */
typedef void (*mbox_deliver_fn)(void *ctx, const mbox_msg_t *msg);
unsigned mbox_drain(mbox_ep_t *dst, unsigned max, mbox_deliver_fn deliver, void *ctx);
/* True when nothing is waiting; then the endpoint is marked sleeping and the
 * caller may block until woken. False (and not sleeping) when messages wait. */
bool mbox_prepare_sleep(mbox_ep_t *dst);
/* After any wake-up, whatever its cause. */
void mbox_awake(mbox_ep_t *dst);

/* Any thread. */
uint64_t mbox_depth(const mbox_ep_t *dst);          /* published, not yet drained */
uint64_t mbox_backlog(const mbox_ep_t *src);        /* held back by this sender */
void mbox_counters(const mbox_ep_t *ep, mbox_counters_t *out);
unsigned mbox_ep_id(const mbox_ep_t *ep);

#endif
