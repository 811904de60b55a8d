/*
 * node.h - one presenced process: its configuration, storage, metrics,
 * mailboxes and shard threads, from start to a clean stop.
 *
 * Lifecycle (main thread):
 *   node_create       open storage (refusing a data dir another node holds),
 *                     create metrics and mailboxes
 *   node_add_listener register a listening address and its protocol
 *   node_start        bind every listener once per shard (SO_REUSEPORT), start
 *                     one pinned thread per shard, return once all run
 *   node_stop         ask every shard to stop accepting, say goodbye, drain
 *                     output within the configured deadline; join them
 *   node_destroy      close storage
 *
 * Readiness: node_ready is true only while storage is open and every shard
 * runs its loop; the admin endpoint's /ready reports it.
 */
#ifndef PRESENCED_NODE_H
#define PRESENCED_NODE_H

#include "engine/config.h"
#include "engine/metrics.h"
#include "engine/shard.h"
#include "storage/stor.h"

#define NODE_VERSION "0.1.0"

/* 0 or -errno with a message in err (-EBUSY: the data dir is in use). */
int node_create(const cfg_t *cfg, node_t **out, char *err, size_t err_len);
/* tls: direct TLS on every accepted connection (NULL for plain TCP); owned by
 * the caller and kept alive until node_destroy. */
int node_add_listener(node_t *n, const cfg_addr_t *addr, const conn_proto_t *proto,
                      tls_ctx_t *tls, char *err, size_t err_len);
/* A UDP socket per shard on addr (SO_REUSEPORT). port_from >= 0: when addr's
 * port is 0, use the port that listener (added before) was given, so that a
 * protocol serves TCP and UDP on one port (SIP). */
int node_add_dgram_listener(node_t *n, const cfg_addr_t *addr, const dgram_proto_t *proto,
                            int port_from, char *err, size_t err_len);
int node_start(node_t *n, char *err, size_t err_len);
/* Returns true when every shard finished within the drain deadline. */
bool node_stop(node_t *n);
void node_destroy(node_t *n);

/* Any thread. */
bool node_ready(const node_t *n);
bool node_storage_open(const node_t *n);
unsigned node_shards(const node_t *n);
unsigned node_listener_count(const node_t *n);     /* listeners added so far */
metrics_t *node_metrics(node_t *n);
const cfg_t *node_config(const node_t *n);
stor_t *node_storage(node_t *n);
/* The port a listener is bound to (useful when configured with port 0). */
unsigned node_listener_port(const node_t *n, unsigned listener);

/* Main thread only: run fn on shard dst (posted through the main thread's own
 * mailbox endpoint). 0 or -ENOBUFS. */
int node_call(node_t *n, unsigned dst, mbox_fn fn, const mbox_msg_t *args);

#endif
