/*
 * shard_int.h - the shard as its I/O driver and the node see it.
 *
 * The shard's logic (connections, output queues, idle timeouts, handoffs,
 * mailbox delivery, timers, stopping) lives in shard.c and never calls the
 * kernel. It reaches sockets through shard_io_ops_t and time through clk_t, so
 * two drivers exist: engine/uring.c (io_uring, production) and the simulator
 * in tests/sim (one thread, tick clock, in-memory sockets).
 *
 * Every driver runs the same turn, in this order:
 *   1. shard_turn_start          read the clock once
 *   2. shard_drain_mailbox       deliver inbound messages
 *   3. reap I/O completions in a batch, then report each one
 *      (shard_accepted, shard_received, shard_recv_ended, shard_sent,
 *       shard_io_closed, shard_moved, shard_fd_arrived)
 *   4. shard_run_timers
 *   5. shard_commit              commit the turn's writes, then run the
 *                                callbacks that acknowledge them
 *   6. shard_flush_output        one send per connection with queued bytes
 *   7. shard_flush_mailboxes     publish the turn's messages, wake sleepers
 *   8. submit; if shard_may_sleep, wait up to shard_sleep_ms
 */
#ifndef PRESENCED_SHARD_INT_H
#define PRESENCED_SHARD_INT_H

#include "engine/shard.h"

/* What the shard asks of its driver. Each call is asynchronous; its completion
 * comes back through the matching shard_* report below. */
typedef struct {
    /* Start receiving (multishot); data -> shard_received, end -> shard_recv_ended. */
    void (*recv_arm)(void *io, conn_t *c);
    /* Stop receiving; the driver later reports shard_recv_ended(c, -ECANCELED). */
    void (*recv_cancel)(void *io, conn_t *c);
    /* Send len bytes at buf (stable until shard_sent). One in flight per connection. */
    void (*send)(void *io, conn_t *c, const void *buf, size_t len);
    /* Shut the socket down and release it; -> shard_io_closed. */
    void (*close)(void *io, conn_t *c);
    /* Give the socket to shard dst, tagged with record; -> shard_moved here and
     * shard_fd_arrived(record) on dst. The local handle is released. */
    void (*move)(void *io, conn_t *c, unsigned dst, void *record);
    /* Wake shard dst, which announced it sleeps. Called from this shard's thread. */
    void (*wake)(void *io, unsigned dst);
    /* Stop accepting and close the listening sockets. */
    void (*listeners_stop)(void *io);
    /* Send a datagram on listener's socket (bytes copied); 0 or -ENOBUFS.
     * NULL: the driver has no datagram sockets. */
    int (*dgram_send)(void *io, unsigned listener, const struct sockaddr *to, socklen_t to_len,
                      const void *data, size_t len);
} shard_io_ops_t;

typedef struct {
    const conn_proto_t *proto;
    tls_ctx_t *tls;             /* direct TLS on accept; NULL for plain TCP */
    const dgram_proto_t *dgram; /* set for a datagram listener (proto is NULL) */
} shard_listener_t;

#define SHARD_LISTENERS_MAX 16

typedef struct {
    unsigned id;
    unsigned count;                 /* shards in the node */
    node_t *node;                   /* may be NULL in tests */
    mbox_ep_t *mbox;
    metrics_shard_t *metrics;
    clk_t clock;
    const shard_io_ops_t *io_ops;
    void *io;
    uint32_t idle_timeout_ms;
    uint32_t output_max_bytes;
    uint32_t drain_timeout_ms;
    uint32_t max_connections;
    stor_t *stor;                   /* NULL: no storage (shard_batch gives NULL) */
    shard_listener_t listeners[SHARD_LISTENERS_MAX];
    unsigned n_listeners;
} shard_config_t;

/* Engine metric ids, registered once per metrics_t by shard_metrics_register. */
typedef struct {
    metric_id_t accepted, closed, open, bytes_in, bytes_out, turns, overflows,
        handoffs_out, handoffs_in, accept_errors, recv_starved, commits, commit_errors,
        commit_writes, commit_us, dgrams_in, dgrams_out, dgrams_dropped, dgrams_queue_drops;
} shard_metric_ids_t;

extern shard_metric_ids_t shard_mid;
void shard_metrics_register(metrics_t *m);

/* Node, main thread: create before the shard's thread starts; destroy after it ended. */
shard_t *shard_create(const shard_config_t *cfg);
void shard_destroy(shard_t *sh);

/* Shard thread. */
void shard_run_start_hooks(shard_t *sh);   /* once, before the first turn */
void shard_turn_start(shard_t *sh);
unsigned shard_drain_mailbox(shard_t *sh, unsigned max);
void shard_run_timers(shard_t *sh);
void shard_commit(shard_t *sh);
void shard_flush_output(shard_t *sh);
void shard_flush_mailboxes(shard_t *sh);
bool shard_may_sleep(shard_t *sh);      /* announces sleep to the mailboxes when true */
void shard_woke(shard_t *sh);
uint64_t shard_sleep_ms(const shard_t *sh);
/* Stop: close listeners, say goodbye on every connection, close them within
 * the drain deadline. Any thread may ask through shard_request_stop. */
void shard_begin_stop(shard_t *sh);
void shard_request_stop(shard_t *sh);   /* any thread; takes effect next turn */
bool shard_stop_requested(const shard_t *sh);
bool shard_finished(const shard_t *sh); /* stopping and every connection gone */
unsigned shard_open_connections(const shard_t *sh);

/* Driver reports (shard thread). */
conn_t *shard_conn_lookup(shard_t *sh, uint32_t index, uint32_t gen);
void shard_accepted(shard_t *sh, int32_t handle, unsigned listener);
void shard_received(conn_t *c, const char *data, size_t len);
void shard_recv_ended(conn_t *c, int res);
void shard_sent(conn_t *c, int res);
void shard_io_closed(conn_t *c);
void shard_moved(conn_t *c, int res);
void shard_fd_arrived(shard_t *sh, void *record, int32_t handle);
/* A datagram arrived on a datagram listener's socket. */
void shard_datagram(shard_t *sh, unsigned listener, const struct sockaddr *from,
                    socklen_t from_len, const char *data, size_t len);
/* A datagram was lost (truncated on receive, or failed on send): counted. */
void shard_datagram_dropped(shard_t *sh);
/* The kernel dropped n more datagrams at a full queue of the shard's socket (SO_RXQ_OVFL,
 * learnt from the next datagram that got in): counted, and when noted. */
void shard_datagram_queue_drops(shard_t *sh, uint32_t n);
/* The next datagram passed to shard_datagram waited us µs in the socket's queue. */
void shard_datagram_queue_wait(shard_t *sh, uint32_t us);
/* Accept failed for want of descriptors or memory: counted. */
void shard_accept_failed(shard_t *sh, int err);

/* Driver's per-connection handle (fixed-file slot), identity for user_data, and
 * a byte of flags that belongs to the driver alone. */
int32_t conn_handle(const conn_t *c);
uint32_t conn_index(const conn_t *c);
uint32_t conn_gen(const conn_t *c);
uint8_t *conn_io_flags(conn_t *c);
void *shard_io(const shard_t *sh);
mbox_ep_t *shard_mbox(const shard_t *sh);

#endif
