/*
 * uring.c - see uring.h. The turn order is in shard_int.h; uring_shard_run
 * follows it.
 *
 * user_data layout: op (8 bits) | connection generation (24) | index (32).
 * For an arriving socket the sender chooses the value: op | record pointer
 * (user-space pointers fit in 56 bits on every 64-bit Linux).
 */
#include "engine/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/bufring.h"
#include "engine/log.h"
#include "engine/uring_wait.h"

enum {
    UD_ACCEPT = 1,      /* index = listener */
    UD_RECV,
    UD_SEND,
    UD_CLOSE,
    UD_MOVE,            /* our MSG_RING carrying a socket away */
    UD_ARRIVED,         /* a socket arrived; low 56 bits = record */
    UD_WAKE,            /* someone woke us */
    UD_IGNORE,          /* completions with nothing to do (cancel, shutdown) */
    UD_DGRAM,           /* index = datagram listener */
    UD_DGRAM_SEND,      /* low 56 bits = the uring_dgram_t */
};

#define UD_OP_SHIFT 56
#define UD_MAKE(op, gen, idx) \
    (((uint64_t)(op) << UD_OP_SHIFT) | ((uint64_t)((gen) & 0xffffff) << 32) | (uint32_t)(idx))
#define UD_OP(ud) ((unsigned)((ud) >> UD_OP_SHIFT))
#define UD_GEN(ud) ((uint32_t)(((ud) >> 32) & 0xffffff))
#define UD_IDX(ud) ((uint32_t)(ud))
#define UD_PTR(ud) ((void *)(uintptr_t)((ud) & ((1ull << UD_OP_SHIFT) - 1)))

/* Driver flags kept in the connection (conn_io_flags). */
enum {
    IOF_STARVED = 1u << 0,      /* receive ended for want of buffers; re-arm later */
};

/* Completions taken per batch and batches per turn: 256 x 16 bytes on the
 * stack; four batches bound a turn's I/O work so mailboxes and timers run. */
#define URING_CQE_BATCH 256
#define URING_CQE_BATCHES_PER_TURN 4
/* Mailbox messages delivered per turn, for the same reason. */
#define URING_MAILBOX_BUDGET 8192
/* Submission queue entries: a turn queues at most one send per connection
 * with output and a few control operations; SQEs are submitted whenever the
 * queue fills, so this bounds syscalls, not work. */
#define URING_SQ_ENTRIES 4096
/* A sleeping shard wakes for this many completions, or this long after the
 * first (uring_wait.h): once per batch under load. The window is what it adds
 * to a request's latency at most, per shard it passes through. */
#define URING_WAIT_BATCH 32
#define URING_WAIT_BATCH_USEC 100
/* Starved receives re-armed per turn, at most, and only while buffers remain. */
#define URING_REARM_PER_TURN 256
#define URING_ACCEPT_RETRY_MS 100
#define URING_BUFFER_GROUP 1
/* Datagrams queued to the kernel and not yet sent, per shard: past this a
 * send is refused (and counted) rather than memory growing. */
#define URING_DGRAM_INFLIGHT_MAX 16384

/* One datagram on its way out: the message header and the bytes it points
 * at live together until the completion. */
typedef struct uring_dgram {
    struct uring_dgram *prev, *next;
    struct msghdr msg;
    struct iovec iov;
    struct sockaddr_storage to;
    char data[];
} uring_dgram_t;

typedef struct {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
} uring_cqe_copy_t;

struct uring_shard {
    struct io_uring ring;
    bufring_t br;
    shard_t *sh;
    uring_shard_config_t cfg;
    int listen_fds[SHARD_LISTENERS_MAX];
    bool accept_armed[SHARD_LISTENERS_MAX];
    struct msghdr dgram_hdr[SHARD_LISTENERS_MAX];   /* what recvmsg fills in */
    uint32_t dgram_drops[SHARD_LISTENERS_MAX];      /* the socket's SO_RXQ_OVFL count */
    uring_dgram_t *dgram_sending;                   /* in flight, for destroy */
    uint32_t dgram_inflight;
    bool listeners_closed;
    timer_ent_t accept_retry;
    /* Connections waiting for receive buffers. */
    conn_t **starved;
    uint32_t starved_count, starved_cap;
    /* Completions the driver makes up itself (a cancel of a starved receive). */
    uring_cqe_copy_t *deferred;
    uint32_t deferred_count, deferred_cap;
    char features[128];
};

/* Makes room for n entries that must go in one submission: a link that
 * straddles two submissions is cut, and its first half fails. */
static void uring_reserve(uring_shard_t *u, unsigned n)
{
    if (io_uring_sq_space_left(&u->ring) < n)
        io_uring_submit(&u->ring);
}

static struct io_uring_sqe *uring_sqe(uring_shard_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (unlikely(!sqe)) {
        /* Full: hand what we have to the kernel and take a fresh entry. */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
        ASSERT(sqe != NULL);
    }
    return sqe;
}

/* --- setup --- */

int uring_shard_create(const uring_shard_config_t *cfg, uring_shard_t **out, char *err,
                       size_t err_len)
{
    uring_shard_t *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->cfg = *cfg;
    ASSERT(cfg->n_listeners <= SHARD_LISTENERS_MAX);

    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = URING_SQ_ENTRIES * 4;
    int rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &u->ring, &p);
    const char *mode = "single-issuer, deferred task work";
    if (rc == -EINVAL) {
        /* Kernels before 6.1: fall back to cooperative task work. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
        p.cq_entries = URING_SQ_ENTRIES * 4;
        rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &u->ring, &p);
        mode = "cooperative task work";
    }
    if (rc < 0) {
        snprintf(err, err_len, "io_uring_setup: %s", strerror(-rc));
        free(u);
        return rc;
    }
    snprintf(u->features, sizeof(u->features), "%s, %u direct descriptors%s", mode,
             cfg->max_files, uring_wait_batches(&u->ring) ? ", batched wakeups" : "");
    rc = io_uring_register_files_sparse(&u->ring, cfg->max_files);
    if (rc < 0) {
        snprintf(err, err_len, "registering %u direct descriptors: %s", cfg->max_files,
                 strerror(-rc));
        goto fail;
    }
    rc = bufring_init(&u->br, &u->ring, URING_BUFFER_GROUP, cfg->recv_buffers,
                      cfg->recv_buffer_bytes);
    if (rc < 0) {
        snprintf(err, err_len, "registering %u receive buffers of %u bytes: %s",
                 cfg->recv_buffers, cfg->recv_buffer_bytes, strerror(-rc));
        goto fail;
    }
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        u->listen_fds[i] = cfg->listen_fds[i];
    *out = u;
    return 0;
fail:
    io_uring_queue_exit(&u->ring);
    free(u);
    return rc;
}

const char *uring_shard_features(const uring_shard_t *u)
{
    return u->features;
}

int uring_shard_ring_fd(const uring_shard_t *u)
{
    return u->ring.ring_fd;
}

static bool uring_is_dgram(const uring_shard_t *u, unsigned i)
{
    return (u->cfg.dgram_mask >> i) & 1u;
}

/* What the node asked each datagram to carry (node.c): when the kernel queued it
 * (SO_TIMESTAMPNS), and how many its socket had dropped at a full queue before it got in
 * (SO_RXQ_OVFL, present when not zero). */
static void uring_dgram_cmsgs(uring_shard_t *u, unsigned li, struct io_uring_recvmsg_out *o,
                              struct msghdr *h)
{
    for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, h); c;
         c = io_uring_recvmsg_cmsg_nexthdr(o, h, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
            uint32_t n;
            memcpy(&n, CMSG_DATA(c), sizeof(n));
            if (n != u->dgram_drops[li])
                shard_datagram_queue_drops(u->sh, n - u->dgram_drops[li]);   /* wraps */
            u->dgram_drops[li] = n;
        } else if (c->cmsg_type == SCM_TIMESTAMPNS &&
                   c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec at, now;
            memcpy(&at, CMSG_DATA(c), sizeof(at));
            clock_gettime(CLOCK_REALTIME, &now);
            int64_t us = ((int64_t)now.tv_sec - at.tv_sec) * 1000000 +
                         (now.tv_nsec - at.tv_nsec) / 1000;
            shard_datagram_queue_wait(u->sh, us <= 0 ? 0 : us > UINT32_MAX ? UINT32_MAX
                                                                         : (uint32_t)us);
        }
    }
}

static void uring_arm_accept(uring_shard_t *u, unsigned i)
{
    if (u->listeners_closed || u->accept_armed[i])
        return;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (uring_is_dgram(u, i)) {
        /* Each receive fills one provided buffer with a recvmsg header, the
         * peer's address, room for the datagram's queue time and its socket's drop
         * count, and the payload. */
        struct msghdr *h = &u->dgram_hdr[i];
        memset(h, 0, sizeof(*h));
        h->msg_namelen = sizeof(struct sockaddr_storage);
        h->msg_controllen = CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct timespec));
        io_uring_prep_recvmsg_multishot(sqe, u->listen_fds[i], h, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = URING_BUFFER_GROUP;
        io_uring_sqe_set_data64(sqe, UD_MAKE(UD_DGRAM, 0, i));
        u->accept_armed[i] = true;
        return;
    }
    io_uring_prep_multishot_accept_direct(sqe, u->listen_fds[i], NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_ACCEPT, 0, i));
    u->accept_armed[i] = true;
}

static void uring_accept_retry(timer_wheel_t *w, timer_ent_t *t)
{
    uring_shard_t *u = container_of(t, uring_shard_t, accept_retry);
    (void)w;
    for (unsigned i = 0; i < u->cfg.n_listeners; i++)
        uring_arm_accept(u, i);
}

void uring_shard_attach(uring_shard_t *u, shard_t *sh)
{
    u->sh = sh;
    timer_init(&u->accept_retry, uring_accept_retry);
    for (unsigned i = 0; i < u->cfg.n_listeners; i++)
        uring_arm_accept(u, i);
}

void uring_shard_destroy(uring_shard_t *u)
{
    if (!u)
        return;
    if (!u->listeners_closed) {
        for (unsigned i = 0; i < u->cfg.n_listeners; i++)
            close(u->listen_fds[i]);
    }
    bufring_fini(&u->br, &u->ring);
    io_uring_queue_exit(&u->ring);
    for (uring_dgram_t *d = u->dgram_sending, *n; d; d = n) {
        n = d->next;
        free(d);
    }
    free(u->starved);
    free(u->deferred);
    free(u);
}

/* --- shard_io_ops_t --- */

static void uring_recv_arm(void *io, conn_t *c)
{
    uring_shard_t *u = io;
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_recv_multishot(sqe, conn_handle(c), NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BUFFER_GROUP;
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_RECV, conn_gen(c), conn_index(c)));
}

static void uring_defer(uring_shard_t *u, uint64_t ud, int32_t res)
{
    if (u->deferred_count == u->deferred_cap) {
        uint32_t cap = u->deferred_cap ? u->deferred_cap * 2 : 64;
        uring_cqe_copy_t *d = realloc(u->deferred, sizeof(*d) * cap);
        if (!d)
            PANIC("out of memory deferring a completion");
        u->deferred = d;
        u->deferred_cap = cap;
    }
    u->deferred[u->deferred_count].ud = ud;
    u->deferred[u->deferred_count].res = res;
    u->deferred[u->deferred_count].flags = 0;
    u->deferred_count++;
}

static void uring_unstarve(uring_shard_t *u, conn_t *c)
{
    uint8_t *f = conn_io_flags(c);
    if (!(*f & IOF_STARVED))
        return;
    *f &= (uint8_t)~IOF_STARVED;
    for (uint32_t i = 0; i < u->starved_count; i++) {
        if (u->starved[i] == c) {
            u->starved[i] = u->starved[--u->starved_count];
            break;
        }
    }
    /* No receive is armed, so no completion will come: make one up. */
    uring_defer(u, UD_MAKE(UD_RECV, conn_gen(c), conn_index(c)), -ECANCELED);
}

static void uring_recv_cancel(void *io, conn_t *c)
{
    uring_shard_t *u = io;
    if (*conn_io_flags(c) & IOF_STARVED) {
        uring_unstarve(u, c);
        return;
    }
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_cancel64(sqe, UD_MAKE(UD_RECV, conn_gen(c), conn_index(c)), 0);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void uring_send(void *io, conn_t *c, const void *buf, size_t len)
{
    uring_shard_t *u = io;
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_send(sqe, conn_handle(c), buf, len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_SEND, conn_gen(c), conn_index(c)));
}

static void uring_close(void *io, conn_t *c)
{
    uring_shard_t *u = io;
    uring_unstarve(u, c);
    /* Shutting down first ends a pending multishot receive and send; the
     * close then frees the table slot. Hard link: close even if shutdown
     * fails (peer already gone). */
    uring_reserve(u, 2);
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_shutdown(sqe, conn_handle(c), SHUT_RDWR);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0, 0));
    sqe = uring_sqe(u);
    io_uring_prep_close_direct(sqe, (unsigned)conn_handle(c));
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_CLOSE, conn_gen(c), conn_index(c)));
}

static void uring_prep_msg_ring(struct io_uring_sqe *sqe, int ring_fd, uint64_t target_ud)
{
    io_uring_prep_msg_ring(sqe, ring_fd, 0, target_ud, 0);
}

static void uring_move(void *io, conn_t *c, unsigned dst, void *record)
{
    uring_shard_t *u = io;
    uint64_t target_ud = ((uint64_t)UD_ARRIVED << UD_OP_SHIFT) | (uint64_t)(uintptr_t)record;
    ASSERT(((uintptr_t)record >> UD_OP_SHIFT) == 0);
    struct io_uring_sqe *sqe = uring_sqe(u);
    /* liburing 2.3 has no helper for sending a descriptor; the fields are
     * those of io_uring_prep_msg_ring_fd in later releases. */
    uring_prep_msg_ring(sqe, u->cfg.ring_fds[dst], target_ud);
    sqe->addr = IORING_MSG_SEND_FD;
    sqe->addr3 = (uint64_t)conn_handle(c);
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_MOVE, conn_gen(c), conn_index(c)));
}

static void uring_wake(void *io, unsigned dst)
{
    uring_shard_t *u = io;
    struct io_uring_sqe *sqe = uring_sqe(u);
    uring_prep_msg_ring(sqe, u->cfg.ring_fds[dst], UD_MAKE(UD_WAKE, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0, 0));
}

static void uring_listeners_stop(void *io)
{
    uring_shard_t *u = io;
    if (u->listeners_closed)
        return;
    u->listeners_closed = true;
    timer_cancel(shard_timers(u->sh), &u->accept_retry);
    for (unsigned i = 0; i < u->cfg.n_listeners; i++) {
        if (u->accept_armed[i]) {
            struct io_uring_sqe *sqe = uring_sqe(u);
            io_uring_prep_cancel64(sqe, UD_MAKE(uring_is_dgram(u, i) ? UD_DGRAM : UD_ACCEPT, 0, i),
                                   0);
            io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0, 0));
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        /* Connections still in the backlog get a reset; the other shards'
         * listeners on the same port are closing too. */
        shutdown(u->listen_fds[i], SHUT_RDWR);
        close(u->listen_fds[i]);
    }
}

static int uring_dgram_send(void *io, unsigned listener, const struct sockaddr *to,
                            socklen_t to_len, const void *data, size_t len)
{
    uring_shard_t *u = io;
    if (u->listeners_closed || u->dgram_inflight >= URING_DGRAM_INFLIGHT_MAX ||
        to_len > sizeof(struct sockaddr_storage))
        return -ENOBUFS;
    uring_dgram_t *d = malloc(sizeof(*d) + len);
    if (!d)
        return -ENOBUFS;
    memset(d, 0, sizeof(*d));
    memcpy(&d->to, to, to_len);
    memcpy(d->data, data, len);
    d->iov = (struct iovec){ .iov_base = d->data, .iov_len = len };
    d->msg.msg_name = &d->to;
    d->msg.msg_namelen = to_len;
    d->msg.msg_iov = &d->iov;
    d->msg.msg_iovlen = 1;
    d->next = u->dgram_sending;
    if (d->next)
        d->next->prev = d;
    u->dgram_sending = d;
    u->dgram_inflight++;
    ASSERT(((uintptr_t)d >> UD_OP_SHIFT) == 0);
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_sendmsg(sqe, u->listen_fds[listener], &d->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ((uint64_t)UD_DGRAM_SEND << UD_OP_SHIFT) | (uintptr_t)d);
    return 0;
}

static void uring_on_dgram_sent(uring_shard_t *u, uring_dgram_t *d, int res)
{
    if (res < 0)
        shard_datagram_dropped(u->sh);
    if (d->prev)
        d->prev->next = d->next;
    else
        u->dgram_sending = d->next;
    if (d->next)
        d->next->prev = d->prev;
    u->dgram_inflight--;
    free(d);
}

static void uring_on_dgram(uring_shard_t *u, uint64_t ud, int res, uint32_t flags)
{
    unsigned li = UD_IDX(ud);
    ASSERT(li < u->cfg.n_listeners);
    if (!(flags & IORING_CQE_F_MORE))
        u->accept_armed[li] = false;
    if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        char *buf = bufring_buf(&u->br, bid);
        bufring_taken(&u->br);
        struct msghdr *h = &u->dgram_hdr[li];
        struct io_uring_recvmsg_out *o =
            res > 0 ? io_uring_recvmsg_validate(buf, res, h) : NULL;
        if (o && !(o->flags & MSG_TRUNC) && o->namelen <= h->msg_namelen) {
            uring_dgram_cmsgs(u, li, o, h);
            shard_datagram(u->sh, li, io_uring_recvmsg_name(o), (socklen_t)o->namelen,
                           io_uring_recvmsg_payload(o, h),
                           io_uring_recvmsg_payload_length(o, res, h));
        } else if (res > 0) {
            shard_datagram_dropped(u->sh);      /* larger than a receive buffer */
        }
        bufring_recycle(&u->br, bid);
    }
    if (!u->accept_armed[li] && !u->listeners_closed) {
        if (res == -ENOBUFS || res < 0)
            timer_arm(shard_timers(u->sh), &u->accept_retry,
                      shard_now_ms(u->sh) + (res == -ENOBUFS ? 1 : URING_ACCEPT_RETRY_MS));
        else
            uring_arm_accept(u, li);
    }
}

const shard_io_ops_t uring_io_ops = {
    .recv_arm = uring_recv_arm,
    .recv_cancel = uring_recv_cancel,
    .send = uring_send,
    .close = uring_close,
    .move = uring_move,
    .wake = uring_wake,
    .listeners_stop = uring_listeners_stop,
    .dgram_send = uring_dgram_send,
};

/* --- completions --- */

static void uring_on_recv(uring_shard_t *u, uint64_t ud, int res, uint32_t flags)
{
    conn_t *c = shard_conn_lookup(u->sh, UD_IDX(ud), UD_GEN(ud));
    char *data = NULL;
    uint16_t bid = 0;

    if (flags & IORING_CQE_F_BUFFER) {
        bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        data = bufring_buf(&u->br, bid);
        bufring_taken(&u->br);
    }
    if (c && res > 0 && data)
        shard_received(c, data, (size_t)res);
    if (data)
        bufring_recycle(&u->br, bid);
    if (!c || (flags & IORING_CQE_F_MORE))
        return;
    if (res == -ENOBUFS) {
        /* Every buffer is in use: park the receive (the bytes wait in the
         * socket) and re-arm once buffers come back. */
        metric_inc(shard_metrics(u->sh), shard_mid.recv_starved);
        if (u->starved_count == u->starved_cap) {
            uint32_t cap = u->starved_cap ? u->starved_cap * 2 : 64;
            conn_t **s = realloc(u->starved, sizeof(*s) * cap);
            if (!s)
                PANIC("out of memory parking a receive");
            u->starved = s;
            u->starved_cap = cap;
        }
        *conn_io_flags(c) |= IOF_STARVED;
        u->starved[u->starved_count++] = c;
        return;
    }
    if (res > 0) {
        /* The kernel ended a multishot receive that still works (e.g. its
         * completion queue overflowed): keep receiving. */
        uring_recv_arm(u, c);
        return;
    }
    shard_recv_ended(c, res);
}

static void uring_on_accept(uring_shard_t *u, uint64_t ud, int res, uint32_t flags)
{
    unsigned li = UD_IDX(ud);
    ASSERT(li < u->cfg.n_listeners);
    if (!(flags & IORING_CQE_F_MORE))
        u->accept_armed[li] = false;
    if (res >= 0) {
        shard_accepted(u->sh, res, li);
    } else if (res != -ECANCELED && !u->listeners_closed) {
        shard_accept_failed(u->sh, res);
    }
    if (!u->accept_armed[li] && !u->listeners_closed) {
        /* Most likely the descriptor table is full: try again shortly rather
         * than spin; pending connections wait in the listen backlog. */
        if (res >= 0)
            uring_arm_accept(u, li);
        else
            timer_arm(shard_timers(u->sh), &u->accept_retry,
                      shard_now_ms(u->sh) + URING_ACCEPT_RETRY_MS);
    }
}

static void uring_dispatch(uring_shard_t *u, uint64_t ud, int res, uint32_t flags)
{
    conn_t *c;

    switch (UD_OP(ud)) {
    case UD_RECV:
        uring_on_recv(u, ud, res, flags);
        break;
    case UD_ACCEPT:
        uring_on_accept(u, ud, res, flags);
        break;
    case UD_SEND:
        if ((c = shard_conn_lookup(u->sh, UD_IDX(ud), UD_GEN(ud))))
            shard_sent(c, res);
        break;
    case UD_CLOSE:
        if ((c = shard_conn_lookup(u->sh, UD_IDX(ud), UD_GEN(ud))))
            shard_io_closed(c);
        break;
    case UD_MOVE:
        if ((c = shard_conn_lookup(u->sh, UD_IDX(ud), UD_GEN(ud)))) {
            if (res >= 0) {
                /* The target holds its own reference now; drop ours. */
                struct io_uring_sqe *sqe = uring_sqe(u);
                io_uring_prep_close_direct(sqe, (unsigned)conn_handle(c));
                io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0, 0));
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            }
            shard_moved(c, res);
        }
        break;
    case UD_ARRIVED:
        if (res < 0)
            PANIC("a connection arrived with error %d", res);
        shard_fd_arrived(u->sh, UD_PTR(ud), res);
        break;
    case UD_DGRAM:
        uring_on_dgram(u, ud, res, flags);
        break;
    case UD_DGRAM_SEND:
        uring_on_dgram_sent(u, UD_PTR(ud), res);
        break;
    case UD_WAKE:
    case UD_IGNORE:
        break;
    default:
        PANIC("completion with unknown op %u", UD_OP(ud));
    }
}

/* Reaps in batches: copy a batch out, advance the queue once, then run the
 * callbacks (never from inside the reap loop, STYLE.md). */
static unsigned uring_reap(uring_shard_t *u)
{
    uring_cqe_copy_t batch[URING_CQE_BATCH];
    struct io_uring_cqe *cqes[URING_CQE_BATCH];
    unsigned total = 0;

    /* Made-up completions first; dispatching them may defer more, which
     * wait for the next turn. */
    unsigned nd = u->deferred_count;
    for (unsigned at = 0; at < nd; at += URING_CQE_BATCH) {
        unsigned n = nd - at < URING_CQE_BATCH ? nd - at : URING_CQE_BATCH;
        memcpy(batch, u->deferred + at, sizeof(batch[0]) * n);
        for (unsigned i = 0; i < n; i++)
            uring_dispatch(u, batch[i].ud, batch[i].res, batch[i].flags);
    }
    if (nd) {
        memmove(u->deferred, u->deferred + nd, sizeof(u->deferred[0]) * (u->deferred_count - nd));
        u->deferred_count -= nd;
    }
    for (unsigned round = 0; round < URING_CQE_BATCHES_PER_TURN; round++) {
        unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_CQE_BATCH);
        for (unsigned i = 0; i < n; i++) {
            batch[i].ud = cqes[i]->user_data;
            batch[i].res = cqes[i]->res;
            batch[i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&u->ring, n);
        for (unsigned i = 0; i < n; i++)
            uring_dispatch(u, batch[i].ud, batch[i].res, batch[i].flags);
        total += n;
        if (n < URING_CQE_BATCH)
            break;
    }
    return total;
}

static void uring_rearm_starved(uring_shard_t *u)
{
    unsigned budget = URING_REARM_PER_TURN;
    while (u->starved_count && budget-- && bufring_available(&u->br) > u->br.count / 4) {
        conn_t *c = u->starved[--u->starved_count];
        *conn_io_flags(c) &= (uint8_t)~IOF_STARVED;
        uring_recv_arm(u, c);
    }
}

void uring_shard_run(uring_shard_t *u)
{
    shard_t *sh = u->sh;

    for (;;) {
        shard_turn_start(sh);
        shard_drain_mailbox(sh, URING_MAILBOX_BUDGET);
        uring_reap(u);
        bufring_publish(&u->br);
        uring_rearm_starved(u);
        shard_run_timers(sh);
        shard_commit(sh);
        shard_flush_output(sh);
        shard_flush_mailboxes(sh);
        if (shard_finished(sh))
            break;
        if (u->deferred_count == 0 && shard_may_sleep(sh)) {
            uint64_t ms = shard_sleep_ms(sh);
            if (ms > 1000)
                ms = 1000;      /* bounded sleep: stop requests are also polled */
            struct __kernel_timespec ts = {
                .tv_sec = (long long)(ms / 1000),
                .tv_nsec = (long long)(ms % 1000) * 1000000,
            };
            uring_wait_batch(&u->ring, URING_WAIT_BATCH, URING_WAIT_BATCH_USEC, &ts);
            shard_woke(sh);
        } else if (io_uring_sq_ready(&u->ring) > 0) {
            io_uring_submit_and_get_events(&u->ring);
        } else {
            /* Deferred task work runs only when we enter the kernel. */
            io_uring_get_events(&u->ring);
        }
    }
    /* Let the last closes reach the kernel before the ring goes away. */
    io_uring_submit(&u->ring);
}

/* --- waker for non-shard threads --- */

struct uring_waker {
    struct io_uring ring;
};

int uring_waker_create(uring_waker_t **out)
{
    uring_waker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = io_uring_queue_init(8, &w->ring, 0);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void uring_waker_wake(uring_waker_t *w, int ring_fd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
    }
    uring_prep_msg_ring(sqe, ring_fd, UD_MAKE(UD_WAKE, 0, 0));
    io_uring_sqe_set_data64(sqe, 0);
    io_uring_submit(&w->ring);
    /* Reap our own completion so the small ring never fills. */
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&w->ring, &cqe) == 0)
        io_uring_cqe_seen(&w->ring, cqe);
}

void uring_waker_destroy(uring_waker_t *w)
{
    if (!w)
        return;
    io_uring_queue_exit(&w->ring);
    free(w);
}
