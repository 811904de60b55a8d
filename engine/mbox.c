/*
 * mbox.c - see mbox.h for the contract and the reasons behind the design.
 *
 * Index arithmetic: head and tail are free-running uint32 counters; the slot is
 * index & mask and the fill is tail - head, which stays correct across wrap
 * because slots is a power of two no larger than 2^31.
 */
#include "engine/mbox.h"

#include <errno.h>
#include <stdlib.h>

typedef struct {
    /* Written by the consumer (release), read by the producer (acquire). */
    _Alignas(CACHE_LINE_BYTES) _Atomic uint32_t head;
    /* Written by the producer (release), read by the consumer (acquire). */
    _Alignas(CACHE_LINE_BYTES) _Atomic uint32_t tail;
    /* Producer-private: next slot to fill, and its last look at head. */
    _Alignas(CACHE_LINE_BYTES) uint32_t p_tail;
    uint32_t p_head_cache;
    /* Consumer-private: next slot to read, and its last look at tail. */
    _Alignas(CACHE_LINE_BYTES) uint32_t c_head;
    uint32_t c_tail_cache;
    /* Read-only after creation. */
    _Alignas(CACHE_LINE_BYTES) mbox_msg_t *slots;
    uint32_t mask;
} mbox_ring_t;

/* Messages the sender holds while the ring is full; sender-private. */
typedef struct {
    mbox_msg_t *msgs;
    uint32_t cap;       /* power of two, grows up to MBOX_BACKLOG_MAX */
    uint32_t head;
    uint32_t tail;
} mbox_backlog_t;

struct mbox_ep {
    mbox_hub_t *hub;
    unsigned id;
    /* Set by the owner before it sleeps; cleared by whoever wakes it. */
    _Alignas(CACHE_LINE_BYTES) _Atomic int sleeping;
    /* Owner-written counters, read relaxed by the metrics scrape. */
    _Alignas(CACHE_LINE_BYTES) _Atomic uint64_t sent;
    _Atomic uint64_t received;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t backlogged;
    _Atomic uint64_t refused;
    _Atomic uint64_t backlog_total;
    /* Owner-private: destinations with unpublished messages. */
    uint16_t *dirty;
    unsigned dirty_count;
    bool *is_dirty;
    mbox_backlog_t *backlogs;   /* one per destination */
};

struct mbox_hub {
    unsigned n;
    unsigned slots;
    mbox_ring_t *rings;     /* rings[src * n + dst] */
    mbox_ep_t *eps;
};

/* Single-writer counter bump: a plain load and store, no locked instruction. */
static inline void mbox_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline mbox_ring_t *mbox_ring(mbox_hub_t *hub, unsigned src, unsigned dst)
{
    return &hub->rings[(size_t)src * hub->n + dst];
}

mbox_hub_t *mbox_hub_create(unsigned endpoints, unsigned slots)
{
    ASSERT(endpoints >= 1 && endpoints <= MBOX_ENDPOINTS_MAX);
    ASSERT(slots >= 64 && slots <= (1u << 31) && (slots & (slots - 1)) == 0);

    mbox_hub_t *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return NULL;
    hub->n = endpoints;
    hub->slots = slots;
    hub->rings = aligned_alloc(CACHE_LINE_BYTES, sizeof(mbox_ring_t) * endpoints * endpoints);
    hub->eps = aligned_alloc(CACHE_LINE_BYTES, sizeof(mbox_ep_t) * endpoints);
    if (!hub->rings || !hub->eps)
        goto fail;
    memset(hub->rings, 0, sizeof(mbox_ring_t) * endpoints * endpoints);
    memset(hub->eps, 0, sizeof(mbox_ep_t) * endpoints);
    for (unsigned i = 0; i < endpoints * endpoints; i++) {
        mbox_ring_t *r = &hub->rings[i];
        r->slots = aligned_alloc(CACHE_LINE_BYTES, sizeof(mbox_msg_t) * slots);
        if (!r->slots)
            goto fail;
        r->mask = slots - 1;
    }
    for (unsigned i = 0; i < endpoints; i++) {
        mbox_ep_t *ep = &hub->eps[i];
        ep->hub = hub;
        ep->id = i;
        ep->dirty = calloc(endpoints, sizeof(*ep->dirty));
        ep->is_dirty = calloc(endpoints, sizeof(*ep->is_dirty));
        ep->backlogs = calloc(endpoints, sizeof(*ep->backlogs));
        if (!ep->dirty || !ep->is_dirty || !ep->backlogs)
            goto fail;
    }
    return hub;
fail:
    mbox_hub_destroy(hub);
    return NULL;
}

void mbox_hub_destroy(mbox_hub_t *hub)
{
    if (!hub)
        return;
    if (hub->rings) {
        for (unsigned i = 0; i < hub->n * hub->n; i++)
            free(hub->rings[i].slots);
    }
    if (hub->eps) {
        for (unsigned i = 0; i < hub->n; i++) {
            mbox_ep_t *ep = &hub->eps[i];
            if (ep->backlogs) {
                for (unsigned d = 0; d < hub->n; d++)
                    free(ep->backlogs[d].msgs);
            }
            free(ep->dirty);
            free(ep->is_dirty);
            free(ep->backlogs);
        }
    }
    free(hub->rings);
    free(hub->eps);
    free(hub);
}

unsigned mbox_hub_endpoints(const mbox_hub_t *hub)
{
    return hub->n;
}

mbox_ep_t *mbox_hub_ep(mbox_hub_t *hub, unsigned id)
{
    ASSERT(id < hub->n);
    return &hub->eps[id];
}

unsigned mbox_ep_id(const mbox_ep_t *ep)
{
    return ep->id;
}

static inline uint32_t mbox_backlog_len(const mbox_backlog_t *b)
{
    return b->tail - b->head;
}

static int mbox_backlog_push(mbox_backlog_t *b, const mbox_msg_t *msg)
{
    if (mbox_backlog_len(b) == b->cap) {
        if (b->cap >= MBOX_BACKLOG_MAX)
            return -ENOBUFS;
        uint32_t cap = b->cap ? b->cap * 2 : 256;
        mbox_msg_t *msgs = malloc(sizeof(*msgs) * cap);
        if (!msgs)
            return -ENOBUFS;
        for (uint32_t i = 0; i < mbox_backlog_len(b); i++)
            msgs[i] = b->msgs[(b->head + i) & (b->cap - 1)];
        b->tail = mbox_backlog_len(b);
        b->head = 0;
        free(b->msgs);
        b->msgs = msgs;
        b->cap = cap;
    }
    b->msgs[b->tail++ & (b->cap - 1)] = *msg;
    return 0;
}

static inline void mbox_mark_dirty(mbox_ep_t *src, unsigned dst)
{
    if (!src->is_dirty[dst]) {
        src->is_dirty[dst] = true;
        src->dirty[src->dirty_count++] = (uint16_t)dst;
    }
}

/* Room in the ring as the producer sees it, refreshing its view of head only
 * when the cached one says the ring is full. */
static inline uint32_t mbox_room(mbox_ring_t *r)
{
    uint32_t size = r->mask + 1;
    if (r->p_tail - r->p_head_cache == size) {
        /* Pairs with the consumer's release of head in mbox_drain: the slots
         * before head are no longer read, so they may be overwritten. */
        r->p_head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
    }
    return size - (r->p_tail - r->p_head_cache);
}

int mbox_send(mbox_ep_t *src, unsigned dst, const mbox_msg_t *msg)
{
    mbox_hub_t *hub = src->hub;
    ASSERT(dst < hub->n);
    DEBUG_ASSERT(msg->kind == MBOX_CALL || msg->kind == MBOX_CONN);

    mbox_ring_t *r = mbox_ring(hub, src->id, dst);
    mbox_backlog_t *b = &src->backlogs[dst];
    mbox_mark_dirty(src, dst);
    /* Once anything waits in the backlog, later messages queue behind it so
     * that one sender's messages keep their order. */
    if (mbox_backlog_len(b) == 0 && mbox_room(r) > 0) {
        mbox_msg_t *slot = &r->slots[r->p_tail & r->mask];
        *slot = *msg;
        slot->src = (uint16_t)src->id;
        r->p_tail++;
        mbox_count(&src->sent, 1);
        return 0;
    }
    mbox_msg_t copy = *msg;
    copy.src = (uint16_t)src->id;
    if (mbox_backlog_push(b, &copy) < 0) {
        mbox_count(&src->refused, 1);
        return -ENOBUFS;
    }
    mbox_count(&src->backlogged, 1);
    mbox_count(&src->sent, 1);
    return 0;
}

unsigned mbox_flush(mbox_ep_t *src, mbox_wake_fn wake, void *ctx)
{
    mbox_hub_t *hub = src->hub;
    unsigned held = 0;
    unsigned count = src->dirty_count;

    if (count == 0)
        return 0;
    for (unsigned i = 0; i < count; i++) {
        unsigned dst = src->dirty[i];
        mbox_ring_t *r = mbox_ring(hub, src->id, dst);
        mbox_backlog_t *b = &src->backlogs[dst];
        while (mbox_backlog_len(b) > 0 && mbox_room(r) > 0) {
            r->slots[r->p_tail & r->mask] = b->msgs[b->head & (b->cap - 1)];
            r->p_tail++;
            b->head++;
        }
        /* Pairs with the consumer's acquire of tail: the slot writes above
         * are visible before the new tail is. */
        atomic_store_explicit(&r->tail, r->p_tail, memory_order_release);
        held += mbox_backlog_len(b);
    }
    atomic_store_explicit(&src->backlog_total, held, memory_order_relaxed);
    /* Pairs with the fence in mbox_prepare_sleep: either the sleeper sees the
     * tails stored above, or we see its sleeping flag below. */
    atomic_thread_fence(memory_order_seq_cst);
    unsigned still = 0;
    for (unsigned i = 0; i < count; i++) {
        unsigned dst = src->dirty[i];
        mbox_ep_t *peer = &hub->eps[dst];
        if (atomic_load_explicit(&peer->sleeping, memory_order_relaxed) &&
            atomic_exchange_explicit(&peer->sleeping, 0, memory_order_relaxed)) {
            mbox_count(&src->wakeups, 1);
            if (wake)
                wake(ctx, dst);
        }
        if (mbox_backlog_len(&src->backlogs[dst]) > 0)
            src->dirty[still++] = (uint16_t)dst;
        else
            src->is_dirty[dst] = false;
    }
    src->dirty_count = still;
    return held;
}

unsigned mbox_drain(mbox_ep_t *dst, unsigned max, mbox_deliver_fn deliver, void *ctx)
{
    mbox_hub_t *hub = dst->hub;
    unsigned done = 0;

    for (unsigned s = 0; s < hub->n && done < max; s++) {
        mbox_ring_t *r = mbox_ring(hub, s, dst->id);
        if (r->c_head == r->c_tail_cache) {
            /* Pairs with the producer's release of tail in mbox_flush. */
            r->c_tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (r->c_head == r->c_tail_cache)
                continue;
        }
        uint32_t head = r->c_head;
        while (head != r->c_tail_cache && done < max) {
            deliver(ctx, &r->slots[head & r->mask]);
            head++;
            done++;
        }
        r->c_head = head;
        /* Pairs with the producer's acquire in mbox_room: we are done reading
         * these slots. One store per ring per drain, not per message. */
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    if (done)
        mbox_count(&dst->received, done);
    return done;
}

bool mbox_prepare_sleep(mbox_ep_t *dst)
{
    mbox_hub_t *hub = dst->hub;

    atomic_store_explicit(&dst->sleeping, 1, memory_order_relaxed);
    /* Pairs with the fence in mbox_flush (see there). */
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned s = 0; s < hub->n; s++) {
        mbox_ring_t *r = mbox_ring(hub, s, dst->id);
        if (atomic_load_explicit(&r->tail, memory_order_relaxed) != r->c_head) {
            atomic_store_explicit(&dst->sleeping, 0, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

void mbox_awake(mbox_ep_t *dst)
{
    atomic_store_explicit(&dst->sleeping, 0, memory_order_relaxed);
}

uint64_t mbox_depth(const mbox_ep_t *dst)
{
    mbox_hub_t *hub = dst->hub;
    uint64_t depth = 0;

    for (unsigned s = 0; s < hub->n; s++) {
        mbox_ring_t *r = mbox_ring(hub, s, dst->id);
        uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        depth += (uint32_t)(tail - head);
    }
    return depth;
}

uint64_t mbox_backlog(const mbox_ep_t *src)
{
    return atomic_load_explicit(&src->backlog_total, memory_order_relaxed);
}

void mbox_counters(const mbox_ep_t *ep, mbox_counters_t *out)
{
    out->sent = atomic_load_explicit(&ep->sent, memory_order_relaxed);
    out->received = atomic_load_explicit(&ep->received, memory_order_relaxed);
    out->wakeups = atomic_load_explicit(&ep->wakeups, memory_order_relaxed);
    out->backlogged = atomic_load_explicit(&ep->backlogged, memory_order_relaxed);
    out->refused = atomic_load_explicit(&ep->refused, memory_order_relaxed);
}
