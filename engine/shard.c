/*
 * shard.c - a shard's logic; see shard.h (protocols) and shard_int.h (drivers).
 *
 * Connection states:
 *
 *        accepted / arrived
 *              |
 *              v            conn_close(graceful), output queued
 *           [OPEN] ----------------------------------> [DRAINING]
 *            |   |  conn_handoff                           | output sent
 *            |   +-------------> [MOVING] --moved--> (freed here, lives on dst)
 *            |  close (peer, error, idle, overflow)        |
 *            +------------------> [CLOSING] <--------------+
 *                                    | io closed, no recv or send in flight
 *                                    v
 *                                 (freed)
 */
#include "engine/shard_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine/log.h"
#include "engine/tls.h"

enum {
    CONN_OPEN = 1,
    CONN_DRAINING,
    CONN_MOVING,
    CONN_CLOSING,
};

enum {
    CONN_F_RECV = 1u << 0,      /* multishot receive armed */
    CONN_F_SEND = 1u << 1,      /* a send in flight */
    CONN_F_FLUSH = 1u << 2,     /* on the shard's flush list */
    CONN_F_IO_CLOSED = 1u << 3, /* driver released the socket */
    CONN_F_MOVE_SENT = 1u << 4, /* driver asked to move the socket */
    CONN_F_FAILED = 1u << 5,    /* a write failed: closes at the end of the turn */
};

/* Output is kept in chunks of this size (or one write's size if larger), so
 * that each turn sends a chunk with a single send and small writes coalesce. */
#define CONN_CHUNK_BYTES 16384u

typedef struct out_chunk {
    struct out_chunk *next;
    uint32_t off, len, cap;
    char data[];
} out_chunk_t;

/* Travels with a moving connection. Allocated by the source shard, returned to
 * it for release once the target has copied what it needs. */
typedef struct {
    const conn_proto_t *proto;
    void *state;
    tls_conn_t *tls;            /* moves with the socket; NULL for plain TCP */
    uint32_t idle_timeout_ms;
    uint16_t src;
    bool fd_arrived, msg_arrived;
    int32_t handle;             /* on the target, once arrived */
    char *in;                   /* plaintext the protocol had not consumed */
    size_t in_len;
    char *raw;                  /* bytes received after the handoff began */
    size_t raw_len;
    char *out;                  /* output queued but not yet sent */
    size_t out_len;
} conn_move_t;

struct conn {
    uint32_t index;
    uint32_t gen;
    int32_t handle;
    uint8_t state;
    uint8_t flags;
    uint8_t close_reason;
    uint8_t closed_reported;    /* proto->on_close already called */
    uint16_t move_dst;          /* while CONN_MOVING */
    uint8_t io_flags;           /* the driver's own */
    shard_t *shard;
    const conn_proto_t *proto;
    void *proto_state;
    tls_conn_t *tls;
    out_chunk_t *out_head, *out_tail;
    uint32_t out_bytes;
    uint32_t idle_timeout_ms;
    conn_t *flush_next;
    conn_move_t *move;
    uint64_t last_rx_ms;
    timer_ent_t idle_timer;
};

struct shard {
    shard_config_t cfg;
    uint64_t now_ms;
    timer_wheel_t timers;
    /* Connection table: index -> conn, with a free list of indices. */
    conn_t **conns;
    uint32_t conns_cap;
    uint32_t conns_used;        /* live entries (includes closing, moving) */
    uint32_t *free_idx;
    uint32_t free_count;
    uint32_t next_gen;
    uint32_t open;              /* OPEN or DRAINING */
    conn_t *flush_head, *flush_tail;
    _Atomic bool stop_requested;
    bool stopping;
    timer_ent_t drain_timer;
    void *slots[SHARD_SLOTS];
    void (*slot_fini[SHARD_SLOTS])(void *);
    /* The turn's writes and the acknowledgements waiting for them. */
    stor_batch_t *batch;
    struct shard_durable {
        shard_durable_fn fn;
        void *arg;
        uint64_t arg2;
    } *durable;
    uint32_t durable_count, durable_cap;
    uint32_t dgram_wait_us;     /* the datagram being handled: shard_datagram_wait_us */
};

shard_metric_ids_t shard_mid;

static const char *const close_reason_names[CONN_CLOSE_REASONS] = {
    "peer", "local", "error", "idle", "overflow", "shutdown",
};

void shard_metrics_register(metrics_t *m)
{
    shard_mid.accepted = metrics_register(m, "connections_accepted_total",
                                          "Connections accepted or handed in.", METRIC_COUNTER);
    shard_mid.closed = metrics_register_labelled(
        m, "connections_closed_total", "Connections closed, by reason.", METRIC_COUNTER,
        "reason", close_reason_names, CONN_CLOSE_REASONS);
    shard_mid.open = metrics_register(m, "connections_open", "Connections open now.",
                                      METRIC_GAUGE);
    shard_mid.bytes_in = metrics_register(m, "received_bytes_total", "Bytes received.",
                                          METRIC_COUNTER);
    shard_mid.bytes_out = metrics_register(m, "sent_bytes_total", "Bytes sent.",
                                           METRIC_COUNTER);
    shard_mid.turns = metrics_register(m, "loop_turns_total", "Shard loop turns.",
                                       METRIC_COUNTER);
    shard_mid.overflows = metrics_register(
        m, "output_queue_overflows_total",
        "Connections closed because their output queue passed its bound.", METRIC_COUNTER);
    shard_mid.handoffs_out = metrics_register(m, "connection_handoffs_out_total",
                                              "Connections moved to another shard.",
                                              METRIC_COUNTER);
    shard_mid.handoffs_in = metrics_register(m, "connection_handoffs_in_total",
                                             "Connections moved in from another shard.",
                                             METRIC_COUNTER);
    shard_mid.accept_errors = metrics_register(
        m, "accept_errors_total", "Accepts that failed (descriptor table full, memory).",
        METRIC_COUNTER);
    shard_mid.commits = metrics_register(m, "storage_commits_total",
                                         "Write batches committed (one per turn with writes).",
                                         METRIC_COUNTER);
    shard_mid.commit_errors = metrics_register(m, "storage_commit_errors_total",
                                               "Write batches that failed to commit.",
                                               METRIC_COUNTER);
    shard_mid.commit_writes = metrics_register(m, "storage_writes_total",
                                               "Writes (puts and deletes) committed.",
                                               METRIC_COUNTER);
    shard_mid.commit_us = metrics_register(m, "storage_commit_seconds_total",
                                           "Time spent committing write batches.",
                                           METRIC_COUNTER);
    metrics_set_scale(m, shard_mid.commit_us, 1e-6);    /* kept in microseconds */
    shard_mid.dgrams_in = metrics_register(m, "datagrams_received_total",
                                           "Datagrams received on datagram listeners.",
                                           METRIC_COUNTER);
    shard_mid.dgrams_out = metrics_register(m, "datagrams_sent_total",
                                            "Datagrams queued for sending.", METRIC_COUNTER);
    shard_mid.dgrams_dropped = metrics_register(
        m, "datagrams_dropped_total",
        "Datagrams lost: truncated on receive, refused for too many in flight, or failed.",
        METRIC_COUNTER);
    shard_mid.dgrams_queue_drops = metrics_register(
        m, "datagram_queue_drops_total",
        "Datagrams the kernel dropped at a shard's full socket receive queue.", METRIC_COUNTER);
    shard_mid.recv_starved = metrics_register(
        m, "receive_buffer_exhausted_total",
        "Times a receive stopped because the shard's receive buffers were all in use.",
        METRIC_COUNTER);
}

/* --- small accessors --- */

void *conn_state(const conn_t *c) { return c->proto_state; }
void conn_set_state(conn_t *c, void *state) { c->proto_state = state; }
shard_t *conn_shard(const conn_t *c) { return c->shard; }
uint64_t conn_id(const conn_t *c) { return ((uint64_t)c->gen << 32) | c->index; }
size_t conn_output_queued(const conn_t *c) { return c->out_bytes; }
bool conn_closing(const conn_t *c) { return c->state != CONN_OPEN; }
const conn_proto_t *conn_proto(const conn_t *c) { return c->proto; }
int32_t conn_handle(const conn_t *c) { return c->handle; }
uint32_t conn_index(const conn_t *c) { return c->index; }
uint32_t conn_gen(const conn_t *c) { return c->gen; }
uint8_t *conn_io_flags(conn_t *c) { return &c->io_flags; }

unsigned shard_id(const shard_t *sh) { return sh->cfg.id; }
unsigned shard_count(const shard_t *sh) { return sh->cfg.count; }
node_t *shard_node(const shard_t *sh) { return sh->cfg.node; }
metrics_shard_t *shard_metrics(shard_t *sh) { return sh->cfg.metrics; }
timer_wheel_t *shard_timers(shard_t *sh) { return &sh->timers; }
uint64_t shard_now_ms(const shard_t *sh) { return sh->now_ms; }
const clk_t *shard_clock(const shard_t *sh) { return &sh->cfg.clock; }
void *shard_io(const shard_t *sh) { return sh->cfg.io; }
mbox_ep_t *shard_mbox(const shard_t *sh) { return sh->cfg.mbox; }
unsigned shard_open_connections(const shard_t *sh) { return sh->open; }

/* --- creation --- */

static void shard_drain_deadline(timer_wheel_t *w, timer_ent_t *t);

shard_t *shard_create(const shard_config_t *cfg)
{
    ASSERT(cfg->io_ops && cfg->mbox && cfg->metrics && cfg->clock.ops);
    ASSERT(cfg->max_connections > 0);
    shard_t *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    sh->cfg = *cfg;
    sh->now_ms = clk_now_ms(&cfg->clock);
    timer_wheel_init(&sh->timers, sh->now_ms);
    timer_init(&sh->drain_timer, shard_drain_deadline);
    sh->next_gen = 1;
    return sh;
}

void shard_destroy(shard_t *sh)
{
    if (!sh)
        return;
    for (uint32_t i = 0; i < sh->conns_cap; i++) {
        conn_t *c = sh->conns[i];
        if (!c)
            continue;
        for (out_chunk_t *k = c->out_head, *n; k; k = n) {
            n = k->next;
            free(k);
        }
        if (c->move) {
            free(c->move->in);
            free(c->move->raw);
            free(c->move->out);
            free(c->move);
        }
        tls_conn_destroy(c->tls);
        free(c);
    }
    free(sh->conns);
    free(sh->free_idx);
    for (unsigned i = 0; i < SHARD_SLOTS; i++)
        if (sh->slots[i] && sh->slot_fini[i])
            sh->slot_fini[i](sh->slots[i]);
    ASSERT(sh->durable_count == 0);
    free(sh->durable);
    stor_batch_destroy(sh->batch);
    free(sh);
}

/* --- connection table --- */

static void conn_idle_fired(timer_wheel_t *w, timer_ent_t *t);

static conn_t *conn_alloc(shard_t *sh, int32_t handle, const conn_proto_t *proto)
{
    uint32_t idx;

    if (sh->free_count > 0) {
        idx = sh->free_idx[--sh->free_count];
    } else {
        if (sh->conns_used == sh->conns_cap) {
            uint32_t cap = sh->conns_cap ? sh->conns_cap * 2 : 1024;
            conn_t **conns = realloc(sh->conns, sizeof(*conns) * cap);
            uint32_t *free_idx = realloc(sh->free_idx, sizeof(*free_idx) * cap);
            if (conns)
                sh->conns = conns;
            if (free_idx)
                sh->free_idx = free_idx;
            if (!conns || !free_idx)
                return NULL;
            memset(conns + sh->conns_cap, 0, sizeof(*conns) * (cap - sh->conns_cap));
            sh->conns_cap = cap;
        }
        idx = sh->conns_used;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        if (idx != sh->conns_used)
            sh->free_idx[sh->free_count++] = idx;
        return NULL;
    }
    ASSERT(sh->conns[idx] == NULL);
    sh->conns[idx] = c;
    sh->conns_used++;
    c->index = idx;
    c->gen = sh->next_gen++ & 0xffffff;     /* 24 bits travel in user_data */
    if (c->gen == 0)
        c->gen = sh->next_gen++ & 0xffffff;
    c->handle = handle;
    c->shard = sh;
    c->proto = proto;
    c->state = CONN_OPEN;
    c->idle_timeout_ms = sh->cfg.idle_timeout_ms;
    c->last_rx_ms = sh->now_ms;
    timer_init(&c->idle_timer, conn_idle_fired);
    if (c->idle_timeout_ms)
        timer_arm(&sh->timers, &c->idle_timer, sh->now_ms + c->idle_timeout_ms);
    sh->open++;
    metric_inc(sh->cfg.metrics, shard_mid.open);
    return c;
}

static void conn_free_output(conn_t *c)
{
    for (out_chunk_t *k = c->out_head, *n; k; k = n) {
        n = k->next;
        free(k);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

static void conn_release(conn_t *c)
{
    shard_t *sh = c->shard;
    ASSERT(sh->conns[c->index] == c);
    ASSERT(!(c->flags & (CONN_F_RECV | CONN_F_SEND | CONN_F_FLUSH)));
    timer_cancel(&sh->timers, &c->idle_timer);
    conn_free_output(c);
    tls_conn_destroy(c->tls);
    c->tls = NULL;
    sh->conns[c->index] = NULL;
    /* Indices are reused; a stale completion is told apart by its generation. */
    sh->free_idx[sh->free_count++] = c->index;
    sh->conns_used--;
    free(c);
}

conn_t *conn_by_id(shard_t *sh, uint64_t id)
{
    conn_t *c = shard_conn_lookup(sh, (uint32_t)id, (uint32_t)(id >> 32));
    return c && (c->state == CONN_OPEN || c->state == CONN_DRAINING) ? c : NULL;
}

conn_t *shard_conn_lookup(shard_t *sh, uint32_t index, uint32_t gen)
{
    if (index >= sh->conns_cap)
        return NULL;
    conn_t *c = sh->conns[index];
    return c && c->gen == gen ? c : NULL;
}

static void conn_maybe_release(conn_t *c)
{
    if (c->state == CONN_CLOSING && (c->flags & CONN_F_IO_CLOSED) &&
        !(c->flags & (CONN_F_RECV | CONN_F_SEND)))
        conn_release(c);
}

static void conn_leave_open(conn_t *c)
{
    shard_t *sh = c->shard;
    ASSERT(sh->open > 0);
    sh->open--;
    metric_sub(sh->cfg.metrics, shard_mid.open, 1);
}

/* Closes now: drops queued output, tells the protocol, releases the socket. */
static void conn_close_now(conn_t *c, conn_close_reason_t reason)
{
    shard_t *sh = c->shard;

    if (c->state == CONN_CLOSING || c->state == CONN_MOVING)
        return;
    conn_leave_open(c);
    c->state = CONN_CLOSING;
    c->close_reason = (uint8_t)reason;
    timer_cancel(&sh->timers, &c->idle_timer);
    metric_inc(sh->cfg.metrics, (metric_id_t)(shard_mid.closed + reason));
    if (!c->closed_reported && c->proto->on_close) {
        c->closed_reported = 1;
        c->proto->on_close(c);
    }
    c->proto_state = NULL;
    /* A chunk being sent is still read by the kernel: free the rest now and
     * that one when its send completes. */
    if (!(c->flags & CONN_F_SEND))
        conn_free_output(c);
    sh->cfg.io_ops->close(sh->cfg.io, c);
}

/* --- protocol-facing connection API --- */

static void conn_queue_flush(conn_t *c)
{
    shard_t *sh = c->shard;
    if (c->flags & CONN_F_FLUSH)
        return;
    c->flags |= CONN_F_FLUSH;
    c->flush_next = NULL;
    if (sh->flush_tail)
        sh->flush_tail->flush_next = c;
    else
        sh->flush_head = c;
    sh->flush_tail = c;
}

/* A write that cannot be queued fails the connection, but the close (and the
 * protocol's on_close, which frees its state) waits for the end of the turn:
 * the writer may be walking lists that on_close would free under it, such as
 * a fan-out over a user's sessions. Until then writes fail and input is
 * dropped. */
static void conn_fail(conn_t *c, conn_close_reason_t reason)
{
    if (c->flags & CONN_F_FAILED)
        return;
    c->flags |= CONN_F_FAILED;
    c->close_reason = (uint8_t)reason;
    conn_queue_flush(c);
}

/* Appends bytes as they go on the wire (ciphertext on a TLS connection). */
static int conn_queue(conn_t *c, const void *data, size_t len)
{
    shard_t *sh = c->shard;

    if (len == 0)
        return 0;
    if ((uint64_t)c->out_bytes + len > sh->cfg.output_max_bytes) {
        metric_inc(sh->cfg.metrics, shard_mid.overflows);
        LOG_RATELIMITED(LOG_LEVEL_WARN,
                        "connection %u: output queue over %u bytes, closing (slow reader)",
                        c->index, sh->cfg.output_max_bytes);
        conn_fail(c, CONN_CLOSE_OVERFLOW);
        return -ENOBUFS;
    }
    const char *p = data;
    out_chunk_t *t = c->out_tail;
    /* Only the unsent tail of the last chunk is appended to; a chunk in
     * flight is the head, and appending after its sent range is safe because
     * the send covers [off, len) as it was when submitted. */
    if (t) {
        size_t room = t->cap - t->len;
        size_t n = room < len ? room : len;
        memcpy(t->data + t->len, p, n);
        t->len += (uint32_t)n;
        p += n;
        len -= n;
        c->out_bytes += (uint32_t)n;
    }
    if (len > 0) {
        size_t cap = len > CONN_CHUNK_BYTES ? len : CONN_CHUNK_BYTES;
        out_chunk_t *k = malloc(sizeof(*k) + cap);
        if (!k) {
            conn_fail(c, CONN_CLOSE_ERROR);
            return -ENOBUFS;
        }
        k->next = NULL;
        k->off = 0;
        k->len = (uint32_t)len;
        k->cap = (uint32_t)cap;
        memcpy(k->data, p, len);
        if (c->out_tail)
            c->out_tail->next = k;
        else
            c->out_head = k;
        c->out_tail = k;
        c->out_bytes += (uint32_t)len;
    }
    conn_queue_flush(c);
    return 0;
}

/* Moves the records TLS has ready into the output queue. */
static int conn_tls_flush(conn_t *c)
{
    buf_t b;
    buf_init(&b);
    int rc = 0;
    if (tls_conn_take_out(c->tls, &b))
        rc = conn_queue(c, b.data, b.len);
    buf_fini(&b);
    return rc;
}

int conn_write(conn_t *c, const void *data, size_t len)
{
    if ((c->state != CONN_OPEN && c->state != CONN_DRAINING) || (c->flags & CONN_F_FAILED))
        return -EPIPE;
    if (!c->tls)
        return conn_queue(c, data, len);
    int rc = tls_conn_send(c->tls, data, len);
    if (rc < 0) {
        conn_fail(c, rc == -ENOBUFS ? CONN_CLOSE_OVERFLOW : CONN_CLOSE_ERROR);
        return rc;
    }
    return conn_tls_flush(c);
}

static void shard_deliver_raw(conn_t *c, const char *data, size_t len);

int conn_start_tls(conn_t *c, tls_ctx_t *ctx, const void *raw, size_t len)
{
    if (c->state != CONN_OPEN)
        return -EPIPE;
    if (c->tls)
        return -EALREADY;
    c->tls = tls_conn_create(ctx, true);
    if (!c->tls)
        return -ENOMEM;
    if (len)
        shard_deliver_raw(c, raw, len);
    return 0;
}

bool conn_is_tls(const conn_t *c)
{
    return c->tls != NULL;
}

tls_conn_t *conn_tls(const conn_t *c)
{
    return c->tls;
}

void conn_close(conn_t *c, bool graceful)
{
    if (c->state != CONN_OPEN)
        return;
    if (graceful && c->tls) {
        tls_conn_shutdown(c->tls);
        if (conn_tls_flush(c) < 0)
            return;
    }
    if (graceful && c->out_bytes > 0) {
        c->state = CONN_DRAINING;
        c->close_reason = CONN_CLOSE_LOCAL;
        return;
    }
    conn_close_now(c, CONN_CLOSE_LOCAL);
}

void conn_set_idle_timeout(conn_t *c, uint32_t timeout_ms)
{
    shard_t *sh = c->shard;
    c->idle_timeout_ms = timeout_ms;
    if (c->state != CONN_OPEN)
        return;
    if (timeout_ms)
        timer_arm(&sh->timers, &c->idle_timer, c->last_rx_ms + timeout_ms);
    else
        timer_cancel(&sh->timers, &c->idle_timer);
}

static void conn_idle_fired(timer_wheel_t *w, timer_ent_t *t)
{
    conn_t *c = container_of(t, conn_t, idle_timer);
    uint64_t due = c->last_rx_ms + c->idle_timeout_ms;

    /* Receives only stamp last_rx_ms; the timer catches up here, so a busy
     * connection costs no timer work per read. */
    if (due > w->now_ms) {
        timer_arm(w, t, due);
        return;
    }
    if (c->proto->on_idle && c->state == CONN_OPEN) {
        /* The protocol may probe the peer (XMPP ping) and wait once more;
         * the timer counts again from now. */
        c->last_rx_ms = w->now_ms;
        if (c->proto->on_idle(c)) {
            if (c->idle_timeout_ms && c->state == CONN_OPEN)
                timer_arm(w, t, w->now_ms + c->idle_timeout_ms);
            return;
        }
        if (c->state != CONN_OPEN)
            return;
    }
    conn_close_now(c, CONN_CLOSE_IDLE);
}

/* --- handoff --- */

static void shard_move_continue(conn_t *c);

int conn_handoff(conn_t *c, unsigned dst, const void *unconsumed, size_t len)
{
    shard_t *sh = c->shard;

    if (dst >= sh->cfg.count || dst == sh->cfg.id)
        return -EINVAL;
    if (c->state != CONN_OPEN || (c->flags & CONN_F_FAILED))
        return -EBUSY;
    conn_move_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    if (len) {
        m->in = malloc(len);
        if (!m->in) {
            free(m);
            return -ENOMEM;
        }
        memcpy(m->in, unconsumed, len);
        m->in_len = len;
    }
    m->proto = c->proto;
    m->state = c->proto_state;
    m->tls = c->tls;
    c->tls = NULL;
    m->idle_timeout_ms = c->idle_timeout_ms;
    m->src = (uint16_t)sh->cfg.id;
    m->handle = -1;
    c->move = m;
    c->move_dst = (uint16_t)dst;
    conn_leave_open(c);
    c->state = CONN_MOVING;
    timer_cancel(&sh->timers, &c->idle_timer);
    if (c->flags & CONN_F_RECV)
        sh->cfg.io_ops->recv_cancel(sh->cfg.io, c);
    shard_move_continue(c);
    return 0;
}

/* Moves once no receive or send is in flight: the socket must not be read by
 * two rings, and queued output travels as bytes. */
static void shard_move_continue(conn_t *c)
{
    shard_t *sh = c->shard;
    conn_move_t *m = c->move;

    if (c->flags & (CONN_F_RECV | CONN_F_SEND | CONN_F_MOVE_SENT))
        return;
    if (c->out_bytes) {
        m->out = malloc(c->out_bytes);
        if (!m->out)
            PANIC("out of memory moving %u output bytes", c->out_bytes);
        size_t at = 0;
        for (out_chunk_t *k = c->out_head; k; k = k->next) {
            memcpy(m->out + at, k->data + k->off, k->len - k->off);
            at += k->len - k->off;
        }
        m->out_len = at;
        conn_free_output(c);
    }
    c->flags |= CONN_F_MOVE_SENT;
    sh->cfg.io_ops->move(sh->cfg.io, c, c->move_dst, m);
}

static void shard_move_release(void *dst_ctx, const mbox_msg_t *msg)
{
    (void)dst_ctx;
    conn_move_t *m = msg->ptr;
    free(m->in);
    free(m->raw);
    free(m->out);
    free(m);
}

void shard_moved(conn_t *c, int res)
{
    shard_t *sh = c->shard;
    conn_move_t *m = c->move;
    unsigned dst = c->move_dst;

    ASSERT(c->state == CONN_MOVING);
    c->move = NULL;
    if (res < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "moving a connection to shard %u failed: %s", dst,
                        strerror(-res));
        /* The socket stays ours: close it like any failed connection. */
        sh->open++;
        metric_inc(sh->cfg.metrics, shard_mid.open);
        c->state = CONN_OPEN;
        c->proto_state = m->state;
        c->tls = m->tls;
        mbox_msg_t rel = { .ptr = m };
        shard_move_release(NULL, &rel);
        conn_close_now(c, CONN_CLOSE_ERROR);
        return;
    }
    mbox_msg_t msg = { .kind = MBOX_CONN, .ptr = m };
    if (mbox_send(sh->cfg.mbox, dst, &msg) < 0)
        PANIC("mailbox to shard %u refused a connection handoff", dst);
    metric_inc(sh->cfg.metrics, shard_mid.handoffs_out);
    /* The driver released our handle as part of the move. */
    c->flags |= CONN_F_IO_CLOSED;
    c->state = CONN_CLOSING;
    c->closed_reported = 1;
    conn_maybe_release(c);
}

/* Both halves of a handoff (the socket through the driver, the record through
 * the mailbox) must have arrived; either may come first. */
static void shard_move_join(shard_t *sh, conn_move_t *m)
{
    if (!m->fd_arrived || !m->msg_arrived)
        return;
    conn_t *c = conn_alloc(sh, m->handle, m->proto);
    if (!c)
        PANIC("out of memory adopting a connection");
    c->proto_state = m->state;
    c->tls = m->tls;
    c->idle_timeout_ms = m->idle_timeout_ms;
    if (!c->idle_timeout_ms)
        timer_cancel(&sh->timers, &c->idle_timer);
    else
        timer_arm(&sh->timers, &c->idle_timer, sh->now_ms + c->idle_timeout_ms);
    metric_inc(sh->cfg.metrics, shard_mid.handoffs_in);
    c->flags |= CONN_F_RECV;
    sh->cfg.io_ops->recv_arm(sh->cfg.io, c);
    if (m->out_len)
        conn_queue(c, m->out, m->out_len);     /* already on-the-wire bytes */
    if (c->proto->on_open)
        c->proto->on_open(c);
    if (m->in_len && c->state == CONN_OPEN) {
        int rc = c->proto->on_data(c, m->in, m->in_len);
        if (rc < 0)
            conn_close_now(c, CONN_CLOSE_ERROR);
    }
    /* With TLS, plaintext may wait decrypted inside the TLS state even when
     * no raw bytes came along: drain it too. */
    if ((m->raw_len || c->tls) && c->state == CONN_OPEN)
        shard_deliver_raw(c, m->raw, m->raw_len);
    mbox_msg_t rel = { .ptr = m };
    if (shard_call(sh, m->src, shard_move_release, &rel) < 0)
        PANIC("mailbox to shard %u refused a handoff release", m->src);
}

void shard_fd_arrived(shard_t *sh, void *record, int32_t handle)
{
    conn_move_t *m = record;
    m->handle = handle;
    m->fd_arrived = true;
    shard_move_join(sh, m);
}

/* --- datagrams --- */

int shard_send_datagram(shard_t *sh, unsigned listener, const struct sockaddr *to,
                        socklen_t to_len, const void *data, size_t len)
{
    if (listener >= sh->cfg.n_listeners || !sh->cfg.listeners[listener].dgram ||
        !sh->cfg.io_ops->dgram_send)
        return -ENOTSUP;
    if (len > 65507)
        return -EMSGSIZE;
    int rc = sh->cfg.io_ops->dgram_send(sh->cfg.io, listener, to, to_len, data, len);
    metric_inc(sh->cfg.metrics, rc == 0 ? shard_mid.dgrams_out : shard_mid.dgrams_dropped);
    return rc;
}

void shard_datagram(shard_t *sh, unsigned listener, const struct sockaddr *from,
                    socklen_t from_len, const char *data, size_t len)
{
    ASSERT(listener < sh->cfg.n_listeners && sh->cfg.listeners[listener].dgram);
    metric_inc(sh->cfg.metrics, shard_mid.dgrams_in);
    metric_add(sh->cfg.metrics, shard_mid.bytes_in, len);
    sh->cfg.listeners[listener].dgram->on_datagram(sh, listener, from, from_len, data, len);
    sh->dgram_wait_us = 0;
}

void shard_datagram_dropped(shard_t *sh)
{
    metric_inc(sh->cfg.metrics, shard_mid.dgrams_dropped);
}

void shard_datagram_queue_drops(shard_t *sh, uint32_t n)
{
    metric_add(sh->cfg.metrics, shard_mid.dgrams_queue_drops, n);
}

void shard_datagram_queue_wait(shard_t *sh, uint32_t us) { sh->dgram_wait_us = us; }

uint32_t shard_datagram_wait_us(const shard_t *sh) { return sh->dgram_wait_us; }

/* --- driver reports --- */

void shard_accepted(shard_t *sh, int32_t handle, unsigned listener)
{
    ASSERT(listener < sh->cfg.n_listeners);
    const conn_proto_t *proto = sh->cfg.listeners[listener].proto;
    conn_t *c = conn_alloc(sh, handle, proto);
    if (!c) {
        shard_accept_failed(sh, -ENOMEM);
        /* Nothing to attach the socket to: release it through a bare close. */
        conn_t tmp = { .handle = handle, .shard = sh, .state = CONN_CLOSING };
        sh->cfg.io_ops->close(sh->cfg.io, &tmp);
        return;
    }
    metric_inc(sh->cfg.metrics, shard_mid.accepted);
    c->flags |= CONN_F_RECV;
    sh->cfg.io_ops->recv_arm(sh->cfg.io, c);
    if (sh->cfg.listeners[listener].tls && conn_start_tls(c, sh->cfg.listeners[listener].tls,
                                                          NULL, 0) < 0) {
        conn_close_now(c, CONN_CLOSE_ERROR);
        return;
    }
    if (proto->on_open)
        proto->on_open(c);
    if (sh->stopping && c->state == CONN_OPEN)
        conn_close_now(c, CONN_CLOSE_SHUTDOWN);
}

void shard_accept_failed(shard_t *sh, int err)
{
    metric_inc(sh->cfg.metrics, shard_mid.accept_errors);
    LOG_RATELIMITED(LOG_LEVEL_WARN, "accept failed: %s", strerror(-err));
}

void shard_received(conn_t *c, const char *data, size_t len)
{
    shard_t *sh = c->shard;

    metric_add(sh->cfg.metrics, shard_mid.bytes_in, len);
    if (c->state == CONN_MOVING) {
        /* Arrived between conn_handoff and the cancel: it moves too, still
         * encrypted if the connection is TLS. */
        conn_move_t *m = c->move;
        char *raw = realloc(m->raw, m->raw_len + len);
        if (!raw)
            PANIC("out of memory buffering %zu bytes of a moving connection", len);
        memcpy(raw + m->raw_len, data, len);
        m->raw = raw;
        m->raw_len += len;
        return;
    }
    if (c->state != CONN_OPEN || (c->flags & CONN_F_FAILED))
        return;
    c->last_rx_ms = sh->now_ms;
    shard_deliver_raw(c, data, len);
}

static int conn_tls_plain(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->state != CONN_OPEN || (c->flags & CONN_F_FAILED))
        return -EPIPE;      /* closing, failed or moved: the rest stays in TLS */
    return c->proto->on_data(c, data, len);
}

/* Bytes from the socket: through TLS when it is on, then to the protocol. */
static void shard_deliver_raw(conn_t *c, const char *data, size_t len)
{
    if (!c->tls) {
        int rc = c->proto->on_data(c, data, len);
        if (rc < 0 && c->state == CONN_OPEN)
            conn_close_now(c, CONN_CLOSE_ERROR);
        return;
    }
    int rc = tls_conn_recv(c->tls, data, len, conn_tls_plain, c);
    if (c->state != CONN_OPEN && c->state != CONN_DRAINING)
        return;
    /* Handshake messages and alerts go out whatever happened. */
    conn_tls_flush(c);
    if (rc == -EPROTO) {
        LOG_RATELIMITED(LOG_LEVEL_INFO, "connection %u: TLS failed", c->index);
        conn_close(c, false);
    } else if (rc < 0 && rc != -EPIPE && c->state == CONN_OPEN) {
        conn_close_now(c, CONN_CLOSE_ERROR);
    }
}

void shard_recv_ended(conn_t *c, int res)
{
    c->flags &= (uint8_t)~CONN_F_RECV;
    switch (c->state) {
    case CONN_MOVING:
        shard_move_continue(c);
        return;
    case CONN_CLOSING:
        conn_maybe_release(c);
        return;
    case CONN_DRAINING:
        /* The peer may half-close after its last request: keep sending. */
        if (res < 0 && res != -ECANCELED)
            conn_close_now(c, CONN_CLOSE_ERROR);
        return;
    default:
        conn_close_now(c, res == 0 ? CONN_CLOSE_PEER : CONN_CLOSE_ERROR);
        return;
    }
}

void shard_sent(conn_t *c, int res)
{
    shard_t *sh = c->shard;

    ASSERT(c->flags & CONN_F_SEND);
    c->flags &= (uint8_t)~CONN_F_SEND;
    if (c->state == CONN_CLOSING) {
        conn_free_output(c);
        conn_maybe_release(c);
        return;
    }
    if (res < 0) {
        if (c->state == CONN_MOVING) {
            /* The bytes stay queued and move with the connection. */
            shard_move_continue(c);
            return;
        }
        conn_close_now(c, CONN_CLOSE_ERROR);
        return;
    }
    metric_add(sh->cfg.metrics, shard_mid.bytes_out, (uint64_t)res);
    out_chunk_t *k = c->out_head;
    ASSERT(k && (uint32_t)res <= k->len - k->off);
    k->off += (uint32_t)res;
    c->out_bytes -= (uint32_t)res;
    if (k->off == k->len) {
        /* Sent: freed, not kept for the next write. An idle connection then
         * holds no output memory at all (the allocator's thread cache makes
         * the next chunk cheap for a busy one). */
        c->out_head = k->next;
        if (!c->out_head)
            c->out_tail = NULL;
        free(k);
    }
    if (c->state == CONN_MOVING) {
        shard_move_continue(c);
        return;
    }
    if (c->out_bytes > 0)
        conn_queue_flush(c);
    else if (c->state == CONN_DRAINING)
        conn_close_now(c, (conn_close_reason_t)c->close_reason);
}

void shard_io_closed(conn_t *c)
{
    c->flags |= CONN_F_IO_CLOSED;
    conn_maybe_release(c);
}

/* --- the turn --- */

#define SHARD_START_HOOKS_MAX 8
static void (*shard_start_hooks[SHARD_START_HOOKS_MAX])(shard_t *sh);

void shard_on_start(void (*fn)(shard_t *sh))
{
    for (unsigned i = 0; i < SHARD_START_HOOKS_MAX; i++) {
        if (shard_start_hooks[i] == fn)
            return;
        if (!shard_start_hooks[i]) {
            shard_start_hooks[i] = fn;
            return;
        }
    }
    PANIC("too many shard start hooks");
}

void shard_run_start_hooks(shard_t *sh)
{
    shard_turn_start(sh);       /* the hooks read the shard's clock */
    for (unsigned i = 0; i < SHARD_START_HOOKS_MAX && shard_start_hooks[i]; i++)
        shard_start_hooks[i](sh);
}

void shard_turn_start(shard_t *sh)
{
    sh->now_ms = clk_now_ms(&sh->cfg.clock);
    metric_inc(sh->cfg.metrics, shard_mid.turns);
    if (!sh->stopping && atomic_load_explicit(&sh->stop_requested, memory_order_acquire))
        shard_begin_stop(sh);
}

static void shard_deliver(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    switch (msg->kind) {
    case MBOX_CALL:
        msg->fn(sh, msg);
        break;
    case MBOX_CONN: {
        conn_move_t *m = msg->ptr;
        m->msg_arrived = true;
        shard_move_join(sh, m);
        break;
    }
    default:
        PANIC("mailbox message of unknown kind %u from shard %u", msg->kind, msg->src);
    }
}

unsigned shard_drain_mailbox(shard_t *sh, unsigned max)
{
    return mbox_drain(sh->cfg.mbox, max, shard_deliver, sh);
}

void shard_run_timers(shard_t *sh)
{
    timer_advance(&sh->timers, sh->now_ms);
}

void *shard_slot(const shard_t *sh, shard_slot_t slot)
{
    ASSERT(slot < SHARD_SLOTS);
    return sh->slots[slot];
}

void shard_set_slot(shard_t *sh, shard_slot_t slot, void *state, void (*fini)(void *state))
{
    ASSERT(slot < SHARD_SLOTS);
    sh->slots[slot] = state;
    sh->slot_fini[slot] = fini;
}

stor_t *shard_storage(const shard_t *sh)
{
    return sh->cfg.stor;
}

stor_batch_t *shard_batch(shard_t *sh)
{
    if (!sh->cfg.stor)
        return NULL;
    if (!sh->batch) {
        sh->batch = stor_batch_create(sh->cfg.stor);
        if (!sh->batch)
            PANIC("out of memory creating a write batch");
    }
    return sh->batch;
}

void shard_on_durable(shard_t *sh, shard_durable_fn fn, void *arg, uint64_t arg2)
{
    if (sh->durable_count == sh->durable_cap) {
        uint32_t cap = sh->durable_cap ? sh->durable_cap * 2 : 64;
        struct shard_durable *d = realloc(sh->durable, sizeof(*d) * cap);
        if (!d)
            PANIC("out of memory queueing an acknowledgement");
        sh->durable = d;
        sh->durable_cap = cap;
    }
    sh->durable[sh->durable_count++] = (struct shard_durable){ fn, arg, arg2 };
}

void shard_commit(shard_t *sh)
{
    int rc = 0;
    if (sh->batch && stor_batch_count(sh->batch) > 0) {
        size_t writes = stor_batch_count(sh->batch);
        uint64_t start = clk_now_ns(&sh->cfg.clock);
        rc = stor_batch_commit(sh->cfg.stor, sh->batch);
        metric_add(sh->cfg.metrics, shard_mid.commit_us,
                   (clk_now_ns(&sh->cfg.clock) - start) / 1000);
        if (rc < 0) {
            metric_inc(sh->cfg.metrics, shard_mid.commit_errors);
            LOG_RATELIMITED(LOG_LEVEL_ERROR, "committing %zu writes failed: %s", writes,
                            strerror(-rc));
            /* Not durable and not retried: the callbacks below say so. */
            stor_batch_clear(sh->batch);
        } else {
            metric_inc(sh->cfg.metrics, shard_mid.commits);
            metric_add(sh->cfg.metrics, shard_mid.commit_writes, writes);
        }
    }
    /* Callbacks may queue writes and acknowledgements for the next turn. */
    uint32_t n = sh->durable_count;
    if (n == 0)
        return;
    for (uint32_t i = 0; i < n; i++)
        sh->durable[i].fn(sh, sh->durable[i].arg, sh->durable[i].arg2, rc);
    memmove(sh->durable, sh->durable + n, sizeof(*sh->durable) * (sh->durable_count - n));
    sh->durable_count -= n;
}

void shard_flush_output(shard_t *sh)
{
    conn_t *c = sh->flush_head;
    sh->flush_head = sh->flush_tail = NULL;
    while (c) {
        conn_t *next = c->flush_next;
        c->flags &= (uint8_t)~CONN_F_FLUSH;
        c->flush_next = NULL;
        if ((c->flags & CONN_F_FAILED) && (c->state == CONN_OPEN || c->state == CONN_DRAINING))
            conn_close_now(c, (conn_close_reason_t)c->close_reason);
        else if ((c->state == CONN_OPEN || c->state == CONN_DRAINING) &&
            !(c->flags & CONN_F_SEND) && c->out_bytes > 0) {
            out_chunk_t *k = c->out_head;
            c->flags |= CONN_F_SEND;
            sh->cfg.io_ops->send(sh->cfg.io, c, k->data + k->off, k->len - k->off);
        }
        c = next;
    }
}

static void shard_wake(void *ctx, unsigned dst)
{
    shard_t *sh = ctx;
    sh->cfg.io_ops->wake(sh->cfg.io, dst);
}

void shard_flush_mailboxes(shard_t *sh)
{
    mbox_flush(sh->cfg.mbox, shard_wake, sh);
}

bool shard_may_sleep(shard_t *sh)
{
    if (sh->flush_head || sh->durable_count ||
        (sh->batch && stor_batch_count(sh->batch) > 0))
        return false;
    if (!sh->stopping && atomic_load_explicit(&sh->stop_requested, memory_order_acquire))
        return false;
    if (mbox_backlog(sh->cfg.mbox) > 0)
        return false;
    return mbox_prepare_sleep(sh->cfg.mbox);
}

void shard_woke(shard_t *sh)
{
    mbox_awake(sh->cfg.mbox);
}

uint64_t shard_sleep_ms(const shard_t *sh)
{
    return timer_next_ms(&sh->timers);
}

int shard_call(shard_t *sh, unsigned dst, mbox_fn fn, const mbox_msg_t *args)
{
    mbox_msg_t m = args ? *args : (mbox_msg_t){ 0 };
    m.kind = MBOX_CALL;
    m.fn = fn;
    return mbox_send(sh->cfg.mbox, dst, &m);
}

/* --- stopping --- */

static void shard_drain_deadline(timer_wheel_t *w, timer_ent_t *t)
{
    shard_t *sh = container_of(t, shard_t, drain_timer);
    (void)w;
    unsigned forced = 0;
    for (uint32_t i = 0; i < sh->conns_cap; i++) {
        conn_t *c = sh->conns[i];
        if (c && (c->state == CONN_OPEN || c->state == CONN_DRAINING)) {
            conn_close_now(c, CONN_CLOSE_SHUTDOWN);
            forced++;
        }
    }
    if (forced)
        LOG_WARN("drain deadline passed: closed %u connections with output still queued",
                 forced);
}

void shard_request_stop(shard_t *sh)
{
    atomic_store_explicit(&sh->stop_requested, true, memory_order_release);
}

bool shard_stop_requested(const shard_t *sh)
{
    return sh->stopping;
}

void shard_begin_stop(shard_t *sh)
{
    if (sh->stopping)
        return;
    sh->stopping = true;
    sh->cfg.io_ops->listeners_stop(sh->cfg.io);
    timer_arm(&sh->timers, &sh->drain_timer, sh->now_ms + sh->cfg.drain_timeout_ms);
    for (uint32_t i = 0; i < sh->conns_cap; i++) {
        conn_t *c = sh->conns[i];
        if (!c || c->state != CONN_OPEN)
            continue;
        if (c->proto->on_shutdown) {
            c->proto->on_shutdown(c);
        } else if (c->out_bytes > 0) {
            c->state = CONN_DRAINING;
            c->close_reason = CONN_CLOSE_SHUTDOWN;
        } else {
            conn_close_now(c, CONN_CLOSE_SHUTDOWN);
        }
    }
}

bool shard_finished(const shard_t *sh)
{
    return sh->stopping && sh->conns_used == 0 && mbox_backlog(sh->cfg.mbox) == 0;
}
