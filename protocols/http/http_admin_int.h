/*
 * http_admin_int.h - what the admin endpoint's pieces share: replying now,
 * and replying later (after a commit, or once other shards answered).
 *
 * A connection with a deferred reply reads no further request until that
 * reply is written (HTTP/1.1 answers in order); bytes that arrive meanwhile
 * are stashed by the parser.
 */
#ifndef PRESENCED_HTTP_ADMIN_INT_H
#define PRESENCED_HTTP_ADMIN_INT_H

#include "engine/shard.h"
#include "protocols/http/http_parse.h"

/* Writes a whole response now. 0 or conn_write's error. */
int http_admin_respond(conn_t *c, const http_request_t *req, unsigned status, const char *type,
                       const char *body, size_t body_len);
/* The request will be answered later with http_admin_respond_later; returns
 * the connection's id for it. */
uint64_t http_admin_defer(conn_t *c, const http_request_t *req);
/* Answers a deferred request if its connection is still open (on sh, the
 * shard that owns it), then goes on with the requests that waited. */
void http_admin_respond_later(shard_t *sh, uint64_t conn, unsigned status, const char *type,
                              const char *body, size_t body_len);

/* The admin API (/api/v1/...): 0 when answered now, 1 when deferred, or a
 * conn_write error. */
int http_admin_api(conn_t *c, const http_request_t *req);

#endif
