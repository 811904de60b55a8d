/*
 * http_admin.c - see http_admin.h.
 */
#include "protocols/http/http_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/buf.h"
#include "engine/log.h"
#include "engine/node.h"
#include "protocols/http/http_admin_int.h"
#include "protocols/http/http_parse.h"

/* An admin request is a request line and a few headers; the admin API's
 * bulk import sends bodies of up to a few thousand accounts at a time. */
static const http_limits_t http_admin_limits = {
    .head_max_bytes = 8192,
    .body_max_bytes = 16u << 20,
};

typedef struct {
    http_req_parser_t parser;
    bool waiting;           /* a deferred reply is outstanding */
    bool keep_alive;        /* of the request being answered later */
    bool head_only;
} http_admin_conn_t;

static int http_admin_reply(conn_t *c, unsigned status, const char *type, const char *body,
                            size_t body_len, bool keep_alive, bool head_only,
                            const char *extra)
{
    char head[512];
    if (status == 204 || status == 304)
        body_len = 0;       /* RFC 7230 §3.3.3: these carry no body */
    int n = http_response_head(head, sizeof(head), status, type, body_len, keep_alive, extra);
    ASSERT(n > 0);
    int rc = conn_write(c, head, (size_t)n);
    if (rc == 0 && !head_only)
        rc = conn_write(c, body, body_len);
    if (rc == 0 && !keep_alive)
        conn_close(c, true);
    return rc;
}

int http_admin_respond(conn_t *c, const http_request_t *req, unsigned status, const char *type,
                       const char *body, size_t body_len)
{
    return http_admin_reply(c, status, type, body, body_len, req->keep_alive,
                            str_eq_cstr(req->method_name, "HEAD"), NULL);
}

static int http_admin_handle(conn_t *c, const http_request_t *req)
{
    node_t *node = shard_node(conn_shard(c));
    bool head_only = str_eq_cstr(req->method_name, "HEAD");
    bool keep = req->keep_alive;

    if (req->path.len >= 5 && memcmp(req->path.ptr, "/api/", 5) == 0)
        return http_admin_api(c, req);
    if (!str_eq_cstr(req->method_name, "GET") && !head_only)
        return http_admin_reply(c, 405, "text/plain", "method not allowed\n", 19, keep, false,
                                "Allow: GET, HEAD\r\n");
    if (str_eq_cstr(req->path, "/metrics")) {
        buf_t b;
        buf_init(&b);
        metrics_render(node_metrics(node), &b);
        int rc = http_admin_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data,
                                  b.len, keep, head_only, NULL);
        buf_fini(&b);
        return rc;
    }
    if (str_eq_cstr(req->path, "/health"))
        return http_admin_reply(c, 200, "text/plain", "ok\n", 3, keep, head_only, NULL);
    if (str_eq_cstr(req->path, "/ready")) {
        if (node_ready(node))
            return http_admin_reply(c, 200, "text/plain", "ready\n", 6, keep, head_only, NULL);
        return http_admin_reply(c, 503, "text/plain", "not ready\n", 10, keep, head_only,
                                NULL);
    }
    return http_admin_reply(c, 404, "text/plain", "not found\n", 10, keep, head_only, NULL);
}

static void http_admin_release(conn_t *c)
{
    http_admin_conn_t *st = conn_state(c);
    if (!st)
        return;
    http_req_parser_fini(&st->parser);
    free(st);
    conn_set_state(c, NULL);
}

/* Parses and answers requests until the input runs out or a reply is
 * deferred (then the rest is stashed). data may be NULL to go on with the
 * stash after a deferred reply. */
static int http_admin_data(conn_t *c, const char *data, size_t len)
{
    http_admin_conn_t *st = conn_state(c);
    if (!st) {
        st = calloc(1, sizeof(*st));
        if (!st)
            return -ENOMEM;
        http_req_parser_init(&st->parser, &http_admin_limits);
        conn_set_state(c, st);
    }
    if (st->waiting) {
        if (len && http_req_stash(&st->parser, data, len) < 0)
            return -ENOMEM;
        return 0;
    }
    bool first = true;
    while ((len > 0 || first) && !conn_closing(c) && !st->waiting) {
        http_request_t req;
        bool ready = false;
        ssize_t used = http_req_feed(&st->parser, data, len, &req, &ready);
        first = false;
        if (used < 0) {
            unsigned status = (unsigned)http_status_for_error((int)used);
            char body[64];
            int blen = snprintf(body, sizeof(body), "%s\n", http_status_reason(status));
            http_admin_reply(c, status, "text/plain", body, (size_t)blen, false, false, NULL);
            return 0;
        }
        data += used;
        len -= (size_t)used;
        if (!ready)
            break;
        int rc = http_admin_handle(c, &req);
        if (rc == 1) {
            /* Deferred: keep what follows for after the reply. */
            if (len && http_req_stash(&st->parser, data, len) < 0)
                return -ENOMEM;
            return 0;
        }
        http_req_release(&st->parser);
        if (rc < 0)
            return 0;   /* the connection closed itself (output bound) */
        first = true;   /* the stash may hold another request */
    }
    if (!conn_closing(c) && !st->waiting && http_req_idle(&st->parser))
        http_admin_release(c);
    return 0;
}

uint64_t http_admin_defer(conn_t *c, const http_request_t *req)
{
    http_admin_conn_t *st = conn_state(c);
    ASSERT(st && !st->waiting);
    st->waiting = true;
    st->keep_alive = req->keep_alive;
    st->head_only = str_eq_cstr(req->method_name, "HEAD");
    return conn_id(c);
}

void http_admin_respond_later(shard_t *sh, uint64_t id, unsigned status, const char *type,
                              const char *body, size_t body_len)
{
    conn_t *c = conn_by_id(sh, id);
    if (!c)
        return;     /* the client went away meanwhile */
    http_admin_conn_t *st = conn_state(c);
    ASSERT(st && st->waiting);
    st->waiting = false;
    http_req_release(&st->parser);
    if (http_admin_reply(c, status, type, body, body_len, st->keep_alive, st->head_only,
                         NULL) < 0)
        return;
    if (http_admin_data(c, NULL, 0) < 0)
        conn_close(c, false);
}

static void http_admin_close(conn_t *c)
{
    http_admin_release(c);
}

const conn_proto_t http_admin_proto = {
    .name = "admin-http",
    .on_open = NULL,
    .on_data = http_admin_data,
    .on_shutdown = NULL,
    .on_close = http_admin_close,
};
