/*
 * bufring.h - a shard's registered ring of provided receive buffers.
 *
 * Multishot receives pick a buffer from this ring only when data arrives, so
 * an idle connection holds no receive memory at all: the shard's receive
 * memory is count x size, whatever the number of connections. A buffer handed
 * out in a completion is the shard's until bufring_recycle; recycled buffers
 * become visible to the kernel at the next bufring_publish (once per turn, one
 * release store).
 *
 * Threads: the owning shard only (the ring is registered with its io_uring).
 */
#ifndef PRESENCED_BUFRING_H
#define PRESENCED_BUFRING_H

#include <liburing.h>

#include "engine/common.h"

typedef struct {
    struct io_uring_buf_ring *ring;
    char *bufs;
    size_t ring_bytes;
    uint32_t count;         /* power of two, <= 32768 (kernel limit) */
    uint32_t size;          /* bytes per buffer */
    uint16_t bgid;
    uint32_t unpublished;   /* recycled since the last publish */
    uint32_t out;           /* handed out by the kernel, not yet recycled */
} bufring_t;

/* 0, -EINVAL (count/size), -ENOMEM, or the registration's -errno. */
int bufring_init(bufring_t *br, struct io_uring *ring, uint16_t bgid, uint32_t count,
                 uint32_t size);
void bufring_fini(bufring_t *br, struct io_uring *ring);

static inline char *bufring_buf(const bufring_t *br, uint16_t bid)
{
    DEBUG_ASSERT(bid < br->count);
    return br->bufs + (size_t)bid * br->size;
}

/* A completion handed out buffer bid. */
static inline void bufring_taken(bufring_t *br)
{
    br->out++;
}

void bufring_recycle(bufring_t *br, uint16_t bid);
void bufring_publish(bufring_t *br);

/* Buffers the kernel may still pick (approximate between publishes). */
static inline uint32_t bufring_available(const bufring_t *br)
{
    return br->count - br->out;
}

#endif
