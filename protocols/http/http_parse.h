/*
 * http_parse.h - the server side of HTTP/1.1: an incremental request parser,
 * a response head writer and query-string decoding.
 *
 * Used by the admin endpoint (/metrics, /health, /ready, admin API) and by the
 * Presence Web Service (REST and SOAP with bodies). The grammar is nodejs
 * http-parser 2.9.4 (Debian's libhttp-parser, built non-strict); this module adds
 * what a server needs on top of it: bounded copying, limits, pipelining and the
 * RFC 7230 checks that the non-strict build leaves out (token header names, no
 * control bytes, one Host, no Content-Length with Transfer-Encoding).
 *
 * Ownership of bytes. Receive buffers (io_uring provided buffers) are recycled
 * as soon as the receive callback returns, so the parser copies what it keeps
 * (target, header names and values, de-chunked body) into a buffer of its own
 * and hands out str_t slices into it. Nothing else is kept: no request line
 * framing, no chunk framing, no trailers. The buffer is bounded by
 * head_max_bytes + body_max_bytes (and the stash, below, by that + 64 KiB).
 *
 * Memory per connection. http_req_parser_t is 24 bytes and allocates nothing
 * while idle. The first byte of a request allocates a 1 KiB state block
 * (http-parser's own state, header offsets and an inline buffer that holds a
 * typical admin request); bigger requests grow a heap buffer up to the bound.
 * Everything is freed once the request is released and no further bytes are
 * buffered, so an idle keep-alive connection costs 24 bytes here.
 *
 * Typical receive callback (synchronous handler):
 *
 *     while (len > 0) {
 *         ssize_t n = http_req_feed(&c->http, data, len, &req, &ready);
 *         if (n < 0)
 *             return answer_error_and_close(c, http_status_for_error((int)n));
 *         data += n, len -= (size_t)n;
 *         if (!ready)
 *             break;                          // need more bytes
 *         handle(c, &req);                    // may use req's slices
 *         http_req_release(&c->http);
 *     }
 *
 * An asynchronous handler that keeps req past the callback stashes the rest of
 * the receive buffer with http_req_stash (bytes that arrive later as well), and
 * after http_req_release calls http_req_feed(p, NULL, 0, ...) to parse them,
 * again after each request it yields, until one yields none.
 *
 * Threads: a parser belongs to the shard that owns the connection; every
 * function here is called on that shard only. Nothing blocks.
 */
#ifndef PRESENCED_HTTP_PARSE_H
#define PRESENCED_HTTP_PARSE_H

#include <sys/types.h>

#include "engine/common.h"

/* Request headers kept per request; more is answered 431 (-E2BIG). Enough for
 * browsers (~15), Prometheus (~6) and SOAP clients (~10) with room to spare. */
#define HTTP_HEADERS_MAX 32

/* Upper bounds on the configurable limits, so that every offset fits 32 bits
 * and a misconfiguration is caught at init rather than by an overflow. The head
 * bound is http-parser's own HTTP_MAX_HEADER_SIZE (80 KiB): it fails past that
 * anyway. 64 MiB of body is far past any PWS request. */
#define HTTP_HEAD_MAX_LIMIT_BYTES (80u * 1024)
#define HTTP_BODY_MAX_LIMIT_BYTES (64u * 1024 * 1024)

typedef struct {
    str_t name, value;          /* value without leading/trailing SP and HTAB */
} http_header_t;

typedef struct {
    unsigned method;            /* http_parser's enum http_method value */
    str_t method_name;          /* "GET" (static storage) */
    str_t target;               /* raw request-target "/metrics?x=1" */
    str_t path;                 /* "/metrics"; "/" for "http://host"; "*" for "*" */
    str_t query;                /* "x=1" (empty if none); no fragment */
    unsigned version_major, version_minor;
    http_header_t headers[HTTP_HEADERS_MAX];
    unsigned header_count;
    str_t body;                 /* de-chunked body; empty if none */
    bool keep_alive;            /* per HTTP/1.0 and 1.1 rules */
} http_request_t;

typedef struct {
    size_t head_max_bytes;      /* request line + headers, e.g. 8192 -> 431 when exceeded */
    size_t body_max_bytes;      /* e.g. 1 MiB -> 413 when exceeded */
} http_limits_t;

struct http_rx;                 /* private: allocated on the first byte of a request */

/* Embedded in the connection; fields are private. 24 bytes (asserted in the .c). */
typedef struct http_req_parser {
    struct http_rx *rx;         /* NULL while idle */
    uint32_t head_max_bytes;
    uint32_t body_max_bytes;
    int16_t err;                /* sticky -errno once feed failed; 0 otherwise */
    bool closed;                /* a request said close: what follows is discarded */
} http_req_parser_t;

/* ---- Request parser ---------------------------------------------------- */

/*
 * Sets up an embedded parser; allocates nothing. The limits are copied; each
 * must be non-zero and within HTTP_*_MAX_LIMIT_BYTES (else it crashes: config
 * validation belongs to the caller).
 */
void http_req_parser_init(http_req_parser_t *p, const http_limits_t *lim);

/* Frees whatever the parser holds; p may be re-initialised afterwards. */
void http_req_parser_fini(http_req_parser_t *p);

/*
 * Consumes up to len bytes of data (copied as needed; data is not referenced
 * after the call). Returns the bytes consumed (>= 0). When a request is
 * complete it fills *req, sets *ready and stops right after that request, so
 * pipelined bytes are left unconsumed for the next call. req's slices point
 * into the parser and stay valid until the next http_req_feed (which releases
 * the previous request itself) or http_req_release. *req is written only when
 * *ready is set. However the bytes are cut into calls, the same requests and
 * the same error come out.
 *
 * If bytes were stashed (http_req_stash), data is appended to the stash, the
 * stash is parsed first, and the return value is len.
 *
 * After a request that does not keep the connection alive (RFC 7230 6.6: a
 * server must not process further requests), later bytes are consumed and
 * discarded.
 *
 * Errors (the parser then stays in error and returns the same value):
 *   -EBADMSG          malformed, or smuggling-shaped (CL with TE, two Hosts,
 *                     no Host in HTTP/1.1, non-token header name,
 *                     control bytes in the target or a value)       -> 400
 *   -E2BIG            head over head_max_bytes (from the method to the blank
 *                     line; blank lines before a request are skipped, RFC
 *                     7230 3.5), chunked trailers over head_max_bytes, or
 *                     more than HTTP_HEADERS_MAX headers             -> 431
 *   -EFBIG            body over body_max_bytes                      -> 413
 *   -ENOTSUP          Upgrade, CONNECT, a transfer coding other than chunked -> 501
 *   -EPROTONOSUPPORT  HTTP major version other than 1               -> 505
 *   -ENOBUFS          stash beyond head_max + body_max + 64 KiB     -> 503
 *   -ENOMEM           allocation failed                             -> 503
 */
ssize_t http_req_feed(http_req_parser_t *p, const char *data, size_t len, http_request_t *req,
                      bool *ready);

/*
 * Done with the last request: drops its bytes (its slices become invalid),
 * keeps stashed bytes, and frees all memory when nothing else is buffered.
 * A no-op when no request is held.
 */
void http_req_release(http_req_parser_t *p);

/*
 * Copies bytes that the caller cannot feed now (it still holds a request) to
 * be parsed by later feeds, in order. Does not touch the held request's
 * slices. Returns 0, or an error as http_req_feed (-ENOBUFS past the bound,
 * -ENOMEM) after which the parser stays in error.
 */
int http_req_stash(http_req_parser_t *p, const char *data, size_t len);

/* No partial request, held request or stashed bytes: the parser owns no memory. */
static inline bool http_req_idle(const http_req_parser_t *p)
{
    return p->rx == NULL;
}

/* ---- Request accessors ------------------------------------------------- */

/* Case-insensitive name match; the first such header's value, or NULL. The
 * result points into req. */
const str_t *http_header_get(const http_request_t *req, const char *name);

/*
 * Finds name in query ("a=1&b=2"; keys compare after percent-decoding), and
 * decodes its value ('+' is a space, %XX a byte) into out with a terminating
 * NUL; *out_written (may be NULL) gets the length without the NUL. A key
 * without '=' has an empty value. Returns 0, -ENOENT (absent), -EBADMSG (bad
 * escape in the value, or %00, which would cut the C string short), -ENOSPC
 * (value plus NUL longer than out_len).
 */
int http_query_param(str_t query, const char *name, char *out, size_t out_len,
                     size_t *out_written);

/* ---- Errors and responses ---------------------------------------------- */

/* The status to answer a feed/stash error with (see http_req_feed); 500 for
 * anything else. */
int http_status_for_error(int err);

/* "OK", "Not Found", ...; "Unknown" for a code without a registered phrase.
 * Static storage. */
const char *http_status_reason(unsigned status);

/*
 * Writes "HTTP/1.1 <status> <reason>\r\n", "Content-Type: <content_type>\r\n"
 * (left out when content_type is NULL), "Content-Length: N\r\n" (left out for
 * 1xx and 204, RFC 7230 3.3.2), "Connection: keep-alive|close\r\n", then
 * extra_headers (may be NULL; each line ending in \r\n) and the empty line,
 * NUL-terminated. Returns the bytes written without the NUL, or -ENOSPC when
 * that and the NUL do not fit in len (buf is then unspecified).
 */
int http_response_head(char *buf, size_t len, unsigned status, const char *content_type,
                       size_t content_length, bool keep_alive, const char *extra_headers);

#endif
