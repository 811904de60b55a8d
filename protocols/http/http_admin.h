/*
 * http_admin.h - the admin endpoint: /metrics, /health, /ready over HTTP/1.1.
 *
 * A connection protocol (conn_proto_t) served by every shard on the admin
 * listener. /metrics renders every shard's counters at scrape time in the
 * Prometheus text format; /health answers 200 while the process serves
 * requests; /ready answers 200 only when the node's storage is open and every
 * shard runs its loop (503 otherwise).
 *
 * Per-connection memory is one pointer until a request arrives: the request
 * parser is allocated on the first byte and released when the connection is
 * between requests, so idle keep-alive connections cost nothing here.
 */
#ifndef PRESENCED_HTTP_ADMIN_H
#define PRESENCED_HTTP_ADMIN_H

#include "engine/shard.h"

extern const conn_proto_t http_admin_proto;

#endif
