/*
 * shard.h - a shard, its connections, and how work moves between shards.
 *
 * A shard is one thread that owns a slice of the node: its connections, its
 * timers, its users (later), its outbound mailboxes. Nothing a shard owns is
 * touched by another thread; other threads reach it only through mailbox
 * messages (mbox.h). This header is the contract for the protocols that run
 * on shards and for the node that starts them; the I/O driver's side is in
 * shard_int.h.
 *
 * Connections. The kernel hands a new connection to whichever shard's
 * listener it picks; the listener's protocol (conn_proto_t) gets on_open and
 * then on_data for each chunk received. Bytes passed to on_data live in a
 * receive buffer that is recycled as soon as on_data returns: a protocol that
 * keeps bytes copies them. Output is queued with conn_write and flushed once
 * per loop turn; a connection whose queue passes the configured bound is
 * closed (a reader that does not drain never makes memory grow). Idle
 * connections are closed after the configured idle timeout, which counts from
 * the last byte received.
 *
 * A connection can move to another shard (conn_handoff): its socket, its
 * protocol state and any bytes the protocol has not consumed travel together,
 * and the target's protocol gets on_open (with conn_state already set) and
 * then on_data with those bytes. Messages the sender posts to the target after
 * the handoff arrive after it.
 *
 * Threads: every function here runs on the shard that owns the object passed,
 * except where it says otherwise. None blocks.
 */
#ifndef PRESENCED_SHARD_H
#define PRESENCED_SHARD_H

#include "engine/clock.h"
#include "engine/common.h"
#include "engine/mbox.h"
#include "engine/metrics.h"
#include "engine/route.h"
#include "engine/timer.h"
#include "engine/tls.h"
#include "storage/stor.h"

#include <sys/socket.h>

typedef struct shard shard_t;
typedef struct conn conn_t;
typedef struct node node_t;

typedef struct conn_proto {
    const char *name;
    /* Accepted, or arrived by handoff (then conn_state(c) is what the sender set). */
    void (*on_open)(conn_t *c);
    /* len > 0 bytes; return 0, or -errno to have the connection closed. */
    int (*on_data)(conn_t *c, const char *data, size_t len);
    /* The node is stopping: say goodbye (XMPP's system-shutdown) and
     * conn_close(c, true). NULL: the engine closes gracefully. */
    void (*on_shutdown)(conn_t *c);
    /* Nothing received for the idle timeout. Return true to keep the
     * connection for another timeout (after probing the peer), false to have
     * it closed; the protocol may also close it itself with its own goodbye.
     * NULL: closed. */
    bool (*on_idle)(conn_t *c);
    /* The connection is gone (peer closed, error, timeout, overflow, or
     * conn_close): release conn_state. Not called for a connection that
     * moved to another shard. */
    void (*on_close)(conn_t *c);
} conn_proto_t;

/*
 * Datagram listeners (UDP). Each shard has its own socket on the listener's
 * address (SO_REUSEPORT), so the kernel keeps one peer's datagrams on one
 * shard. The bytes passed to on_datagram are recycled when it returns.
 */
typedef struct dgram_proto {
    const char *name;
    void (*on_datagram)(shard_t *sh, unsigned listener, const struct sockaddr *from,
                        socklen_t from_len, const char *data, size_t len);
} dgram_proto_t;

/* Queues one datagram (copied) from the shard's socket of that listener.
 * 0, -EMSGSIZE (over 65507 bytes), -ENOBUFS (too many in flight: dropped and
 * counted), -ENOTSUP (no such datagram listener or the driver has none). */
int shard_send_datagram(shard_t *sh, unsigned listener, const struct sockaddr *to,
                        socklen_t to_len, const void *data, size_t len);
/* In on_datagram: how long the datagram waited in the socket's receive queue before the
 * shard read it, µs (0: not known). Past a few milliseconds the shard is behind what it is
 * sent, whatever the peers' round trips. */
uint32_t shard_datagram_wait_us(const shard_t *sh);

/* Why a connection closed; also the label of presenced_connections_closed_total. */
typedef enum {
    CONN_CLOSE_PEER,        /* end of stream from the peer */
    CONN_CLOSE_LOCAL,       /* conn_close by the protocol */
    CONN_CLOSE_ERROR,       /* socket error or a protocol error return */
    CONN_CLOSE_IDLE,        /* idle timeout */
    CONN_CLOSE_OVERFLOW,    /* output queue bound reached */
    CONN_CLOSE_SHUTDOWN,    /* node stopping */
    CONN_CLOSE_REASONS
} conn_close_reason_t;

/* --- connections (owning shard only) --- */

/* Queues bytes for sending (copied). 0, or -ENOBUFS when this write would pass
 * the output bound: the connection is then closed and the bytes dropped.
 * -EPIPE if the connection is already closing. */
int conn_write(conn_t *c, const void *data, size_t len);
/* graceful: send what is queued first (bounded by the drain deadline), then
 * close; otherwise close now and drop queued output. Idempotent. */
void conn_close(conn_t *c, bool graceful);
/* Moves c to shard dst with the protocol state as it is and unconsumed bytes
 * (copied). After this call c belongs to the engine: the protocol must not
 * touch it again. 0, or -EINVAL (dst is this shard or out of range),
 * -EBUSY (already moving or closing). */
int conn_handoff(conn_t *c, unsigned dst, const void *unconsumed, size_t len);
void conn_set_idle_timeout(conn_t *c, uint32_t timeout_ms);   /* 0 = none */
/* From now on, bytes in and out go through TLS (server side): STARTTLS after
 * the protocol queued its plaintext "proceed". raw: bytes already received
 * after the command (the start of the ClientHello), copied. 0, -EPIPE
 * (closing), -EALREADY, -ENOMEM. */
int conn_start_tls(conn_t *c, tls_ctx_t *ctx, const void *raw, size_t len);
bool conn_is_tls(const conn_t *c);
tls_conn_t *conn_tls(const conn_t *c);     /* NULL for plain TCP */

void *conn_state(const conn_t *c);
void conn_set_state(conn_t *c, void *state);
shard_t *conn_shard(const conn_t *c);
uint64_t conn_id(const conn_t *c);              /* unique on its shard for the shard's life */
/* The connection with that id if it is still open on sh, else NULL: how a
 * reply that comes back later (after a commit, from another shard) finds its
 * connection without holding a pointer that may dangle. */
conn_t *conn_by_id(shard_t *sh, uint64_t id);
size_t conn_output_queued(const conn_t *c);
bool conn_closing(const conn_t *c);
const conn_proto_t *conn_proto(const conn_t *c);

/* --- shards --- */

unsigned shard_id(const shard_t *sh);
unsigned shard_count(const shard_t *sh);
node_t *shard_node(const shard_t *sh);
metrics_shard_t *shard_metrics(shard_t *sh);
timer_wheel_t *shard_timers(shard_t *sh);
/* The shard's time, read once at the start of each turn. */
uint64_t shard_now_ms(const shard_t *sh);
const clk_t *shard_clock(const shard_t *sh);

/* --- per-shard state of the protocols --- */

/* Each protocol keeps its per-shard tables (sessions, users) in a slot of
 * its own, created lazily on the shard that uses it. */
typedef enum {
    SHARD_SLOT_XMPP,
    SHARD_SLOT_SIP,
    SHARD_SLOTS
} shard_slot_t;

void *shard_slot(const shard_t *sh, shard_slot_t slot);
/* fini runs when the shard is destroyed, after its thread has ended. */
void shard_set_slot(shard_t *sh, shard_slot_t slot, void *state, void (*fini)(void *state));

/* Runs fn on every shard's thread as it starts, before its first turn (the
 * protocols' work that comes from no connection: outbound subscriptions).
 * Main thread, before the node starts. */
void shard_on_start(void (*fn)(shard_t *sh));

/* --- storage: one write batch per turn --- */

/* The turn's write batch (NULL when the shard has no storage). Writes made
 * here are committed together once per turn, after completions and timers
 * and before output is flushed (STYLE.md, the shard loop). */
stor_batch_t *shard_batch(shard_t *sh);
/* Called after the turn's batch was committed: rc 0 when the writes are
 * durable under the node's sync policy, -EIO when they were not written.
 * A reply that acknowledges a write is sent from here, never before. */
typedef void (*shard_durable_fn)(shard_t *sh, void *arg, uint64_t arg2, int rc);
void shard_on_durable(shard_t *sh, shard_durable_fn fn, void *arg, uint64_t arg2);
stor_t *shard_storage(const shard_t *sh);

/* Runs fn(dst_ctx, msg) on shard dst (may be this shard) in a later turn.
 * msg->kind is set to MBOX_CALL and msg->fn to fn. 0, or -ENOBUFS when the
 * mailbox and its backlog are full (counted; the caller decides). */
int shard_call(shard_t *sh, unsigned dst, mbox_fn fn, const mbox_msg_t *args);

#endif
