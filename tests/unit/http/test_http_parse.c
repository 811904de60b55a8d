/*
 * HTTP request parser: each clause of http_parse.h's contract, then the same
 * inputs cut at every byte boundary (and parsed through the stash) must give
 * exactly the one-shot result.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <http_parser.h>

#include "protocols/http/http_parse.h"
#include "tests/unit/t.h"

static const http_limits_t limits = { .head_max_bytes = 8192, .body_max_bytes = 1 << 20 };

/* Feeds all of in at once; expects exactly one request using every byte. */
static void parse_one(http_req_parser_t *p, const char *in, http_request_t *req)
{
    bool ready = false;
    ssize_t n = http_req_feed(p, in, strlen(in), req, &ready);
    CHECK_EQ(n, (ssize_t)strlen(in));
    REQUIRE(ready);
}

/* Feeds in at once and returns the feed result (error or bytes). */
static ssize_t feed_str(http_req_parser_t *p, const char *in, bool *ready)
{
    static http_request_t req;
    return http_req_feed(p, in, strlen(in), &req, ready);
}

static ssize_t parse_err(const char *in)
{
    http_req_parser_t p;
    bool ready = false;
    http_req_parser_init(&p, &limits);
    ssize_t n = feed_str(&p, in, &ready);
    CHECK(!ready);
    http_req_parser_fini(&p);
    return n;
}

static void test_simple_get(void)
{
    http_req_parser_t p;
    http_request_t req;
    http_req_parser_init(&p, &limits);
    CHECK_EQ(sizeof(p), 24);
    CHECK(http_req_idle(&p));

    parse_one(&p, "GET /metrics?x=1&y=%41 HTTP/1.1\r\nHost: localhost:9100\r\n"
                  "User-Agent:  curl/8.0 \t\r\nAccept: */*\r\n\r\n", &req);
    CHECK_EQ(req.method, HTTP_GET);
    CHECK_STR(t_str(req.method_name), "GET");
    CHECK_STR(t_str(req.target), "/metrics?x=1&y=%41");
    CHECK_STR(t_str(req.path), "/metrics");
    CHECK_STR(t_str(req.query), "x=1&y=%41");
    CHECK_EQ(req.version_major, 1);
    CHECK_EQ(req.version_minor, 1);
    CHECK_EQ(req.header_count, 3);
    CHECK_STR(t_str(req.headers[0].name), "Host");
    CHECK_STR(t_str(req.headers[0].value), "localhost:9100");
    CHECK_STR(t_str(req.headers[1].value), "curl/8.0");      /* OWS trimmed both sides */
    CHECK_STR(t_str(req.headers[2].name), "Accept");
    CHECK_EQ(req.body.len, 0);
    CHECK(req.keep_alive);
    CHECK(!http_req_idle(&p));                          /* the request is held */

    http_req_release(&p);
    CHECK(http_req_idle(&p));                           /* memory given back */
    http_req_release(&p);                               /* nothing held: no-op */
    http_req_parser_fini(&p);
}

static void test_targets(void)
{
    static const struct {
        const char *line, *target, *path, *query;
    } cases[] = {
        { "GET / HTTP/1.1", "/", "/", "" },
        { "GET /a?b=1#frag HTTP/1.1", "/a?b=1#frag", "/a", "b=1" },
        { "GET /a#f?x HTTP/1.1", "/a#f?x", "/a", "" },
        { "GET /a? HTTP/1.1", "/a?", "/a", "" },
        { "GET http://h:80/p/q?z=9 HTTP/1.1", "http://h:80/p/q?z=9", "/p/q", "z=9" },
        { "GET http://h HTTP/1.1", "http://h", "/", "" },
        { "OPTIONS * HTTP/1.1", "*", "*", "" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char in[256];
        http_req_parser_t p;
        http_request_t req;
        snprintf(in, sizeof(in), "%s\r\nHost: h\r\n\r\n", cases[i].line);
        http_req_parser_init(&p, &limits);
        parse_one(&p, in, &req);
        CHECK_STR(t_str(req.target), cases[i].target);
        CHECK_STR(t_str(req.path), cases[i].path);
        CHECK_STR(t_str(req.query), cases[i].query);
        http_req_parser_fini(&p);
    }
}

static void test_pipelined(void)
{
    const char *first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *both = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    http_req_parser_t p;
    http_request_t req;
    bool ready;
    http_req_parser_init(&p, &limits);

    ssize_t n = http_req_feed(&p, both, strlen(both), &req, &ready);
    CHECK_EQ(n, (ssize_t)strlen(first));                /* stops right after the first */
    REQUIRE(ready);
    CHECK_STR(t_str(req.path), "/a");
    http_req_release(&p);
    CHECK(http_req_idle(&p));

    ssize_t m = http_req_feed(&p, both + n, strlen(both) - (size_t)n, &req, &ready);
    CHECK_EQ(m, (ssize_t)(strlen(both) - (size_t)n));
    REQUIRE(ready);
    CHECK_STR(t_str(req.path), "/b");

    /* A feed while a request is held releases it first (its slices die). */
    n = http_req_feed(&p, first, strlen(first), &req, &ready);
    CHECK_EQ(n, (ssize_t)strlen(first));
    CHECK(ready);
    CHECK_STR(t_str(req.path), "/a");
    http_req_parser_fini(&p);
    CHECK(http_req_idle(&p));
}

static void test_post_content_length(void)
{
    http_req_parser_t p;
    http_request_t req;
    http_req_parser_init(&p, &limits);
    parse_one(&p, "POST /soap HTTP/1.1\r\nHost: h\r\nContent-Type: text/xml\r\n"
                  "Content-Length: 11\r\n\r\n<a>hi</a>\r\n", &req);
    CHECK_EQ(req.method, HTTP_POST);
    CHECK_STR(t_str(req.body), "<a>hi</a>\r\n");
    http_req_parser_fini(&p);

    /* Bodies with NUL bytes and partial arrival. */
    static const char in[] = "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\na\0b\0c";
    bool ready;
    http_req_parser_init(&p, &limits);
    ssize_t n = http_req_feed(&p, in, sizeof(in) - 3, &req, &ready);
    CHECK_EQ(n, (ssize_t)sizeof(in) - 3);
    CHECK(!ready);
    CHECK(!http_req_idle(&p));
    n = http_req_feed(&p, in + sizeof(in) - 3, 2, &req, &ready);
    CHECK_EQ(n, 2);
    REQUIRE(ready);
    CHECK_EQ(req.body.len, 5);
    CHECK(memcmp(req.body.ptr, "a\0b\0c", 5) == 0);
    const str_t *cl = http_header_get(&req, "content-length");
    REQUIRE(cl != NULL);
    CHECK_STR(t_str(*cl), "5");
    http_req_parser_fini(&p);
}

static void test_chunked(void)
{
    http_req_parser_t p;
    http_request_t req;
    http_req_parser_init(&p, &limits);
    parse_one(&p, "POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n"
                  "X-Trailer: dropped\r\n\r\n", &req);
    CHECK_STR(t_str(req.body), "hello 0123456789");
    CHECK_EQ(req.header_count, 2);                      /* the trailer is not a header */
    CHECK(http_header_get(&req, "X-Trailer") == NULL);
    http_req_parser_fini(&p);

    http_req_parser_init(&p, &limits);
    parse_one(&p, "POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
              &req);
    CHECK_EQ(req.body.len, 0);
    http_req_parser_fini(&p);
}

static void test_keep_alive_rules(void)
{
    static const struct {
        const char *in;
        bool keep_alive;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: h\r\n\r\n", true },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n", true },
        { "GET / HTTP/1.0\r\n\r\n", false },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
        { "GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        http_req_parser_t p;
        http_request_t req;
        http_req_parser_init(&p, &limits);
        parse_one(&p, cases[i].in, &req);
        CHECK_EQ(req.keep_alive, cases[i].keep_alive);
        http_req_parser_fini(&p);
    }
}

static void test_close_discards_rest(void)
{
    const char *in = "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    const char *more = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    http_req_parser_t p;
    http_request_t req;
    bool ready;
    http_req_parser_init(&p, &limits);
    parse_one(&p, in, &req);
    CHECK(!req.keep_alive);
    http_req_release(&p);
    CHECK(http_req_idle(&p));
    CHECK_EQ(http_req_feed(&p, more, strlen(more), &req, &ready), (ssize_t)strlen(more));
    CHECK(!ready);
    CHECK_EQ(http_req_stash(&p, more, strlen(more)), 0);
    CHECK(http_req_idle(&p));
    http_req_parser_fini(&p);
}

static void test_header_folding_and_values(void)
{
    http_req_parser_t p;
    http_request_t req;
    http_req_parser_init(&p, &limits);
    parse_one(&p, "GET / HTTP/1.1\r\nHost: h\r\nX-Long: one\r\n  two\r\n\tthree\r\n"
                  "X-Empty:\r\nX-Sp:   \r\nx-long: second\r\n\r\n", &req);
    CHECK_EQ(req.header_count, 5);
    const str_t *v = http_header_get(&req, "X-LONG");
    REQUIRE(v != NULL);
    CHECK_STR(t_str(*v), "one two three");                  /* each obs-fold is one SP */
    CHECK_STR(t_str(req.headers[2].value), "");
    CHECK_STR(t_str(req.headers[3].value), "");
    CHECK_STR(t_str(req.headers[4].value), "second");
    CHECK(http_header_get(&req, "X-Missing") == NULL);
    CHECK(http_header_get(&req, "X-Lon") == NULL);
    http_req_parser_fini(&p);
}

/* A request whose head (request line to the blank line) is exactly n bytes. */
static void head_of_size(char *out, size_t n)
{
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t fixed = strlen(pre) + strlen("\r\n\r\n");
    REQUIRE(n > fixed);
    strcpy(out, pre);
    memset(out + strlen(pre), 'a', n - fixed);
    strcpy(out + strlen(pre) + (n - fixed), "\r\n\r\n");
    REQUIRE(strlen(out) == n);
}

static void test_head_limit(void)
{
    static char in[9000];
    http_limits_t lim = { .head_max_bytes = 1000, .body_max_bytes = 100 };
    for (int step = 1; step <= 2; step++) {
        for (size_t size = 999; size <= 1001; size++) {
            http_req_parser_t p;
            http_request_t req;
            bool ready = false;
            ssize_t n = 0;
            head_of_size(in, size);
            http_req_parser_init(&p, &lim);
            /* step 1: one shot; step 2: a byte at a time (the count spans chunks) */
            for (size_t off = 0; off < size && n >= 0 && !ready; off += (size_t)n) {
                size_t len = step == 1 ? size - off : 1;
                n = http_req_feed(&p, in + off, len, &req, &ready);
            }
            if (size <= 1000) {
                CHECK(ready);
            } else {
                CHECK_EQ(n, -E2BIG);
                CHECK_EQ(http_status_for_error((int)n), 431);
            }
            http_req_parser_fini(&p);
        }
    }
    /* Blank lines before a request are skipped, not counted (RFC 7230 3.5). */
    memset(in, '\n', 2000);
    head_of_size(in + 2000, 1000);
    http_req_parser_t p;
    http_request_t req;
    bool ready;
    http_req_parser_init(&p, &lim);
    parse_one(&p, in, &req);
    http_req_parser_fini(&p);

    /* Blank lines alone keep no memory. */
    http_req_parser_init(&p, &lim);
    CHECK_EQ(feed_str(&p, "\r\n\r\n", &ready), 4);
    CHECK(http_req_idle(&p));
    http_req_parser_fini(&p);
}

static void test_header_count_limit(void)
{
    static char in[4096];
    for (int count = HTTP_HEADERS_MAX; count <= HTTP_HEADERS_MAX + 1; count++) {
        size_t off = (size_t)snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\n");
        for (int i = 1; i < count; i++)
            off += (size_t)snprintf(in + off, sizeof(in) - off, "X-%d: v\r\n", i);
        snprintf(in + off, sizeof(in) - off, "\r\n");
        http_req_parser_t p;
        http_request_t req;
        http_req_parser_init(&p, &limits);
        if (count == HTTP_HEADERS_MAX) {
            parse_one(&p, in, &req);
            CHECK_EQ(req.header_count, HTTP_HEADERS_MAX);
            CHECK_STR(t_str(req.headers[HTTP_HEADERS_MAX - 1].name), "X-31");
        } else {
            bool ready;
            CHECK_EQ(feed_str(&p, in, &ready), -E2BIG);
        }
        http_req_parser_fini(&p);
    }
}

static void test_body_limit(void)
{
    http_limits_t lim = { .head_max_bytes = 8192, .body_max_bytes = 10 };
    http_req_parser_t p;
    http_request_t req;
    bool ready;

    http_req_parser_init(&p, &lim);
    parse_one(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", &req);
    CHECK_EQ(req.body.len, 10);
    http_req_parser_fini(&p);

    /* Refused from the header alone, before any body byte arrives. */
    http_req_parser_init(&p, &lim);
    CHECK_EQ(feed_str(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", &ready),
             -EFBIG);
    CHECK_EQ(http_status_for_error(-EFBIG), 413);
    http_req_parser_fini(&p);

    http_req_parser_init(&p, &lim);
    CHECK_EQ(feed_str(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n", &ready), -EFBIG);
    http_req_parser_fini(&p);

    lim.body_max_bytes = 0;
    http_req_parser_init(&p, &lim);
    parse_one(&p, "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req);
    http_req_parser_fini(&p);
}

static void test_malformed(void)
{
    static const struct {
        const char *in;
        int err;
    } cases[] = {
        /* request smuggling shapes */
        { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
          -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
          -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
          -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc", -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
          -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -ENOTSUP },
        { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
          -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", -EBADMSG },
        { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
          "fffffffffffffffffff\r\n", -EBADMSG },
        /* Host (RFC 7230 5.4) */
        { "GET / HTTP/1.1\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EBADMSG },
        /* request line */
        { "FOO / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG },
        { "get / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG },
        { "GET / HTTX/1.1\r\nHost: h\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.10\r\nHost: h\r\n\r\n", -EBADMSG },
        { "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG },
        { "GET / HTTP/2.0\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT },
        { "GET / HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT },
        { "GET /\r\n\r\n", -EBADMSG },
        { "GET / ICE/1.0\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", -EBADMSG },
        { "GET / HTTP/11.1\r\nHost: h\r\n\r\n", -EBADMSG },
        /* header bytes */
        { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f" "b\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: h\r\nX Y: a\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: h\r\nX(: a\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", -EBADMSG },
        { "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", -EBADMSG },
        /* upgrades */
        { "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", -ENOTSUP },
        { "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", -ENOTSUP },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ssize_t n = parse_err(cases[i].in);
        if (n != cases[i].err)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].in);
        CHECK_EQ(n, cases[i].err);
    }

    /* NUL bytes in the request line and in a header. */
    static const char nul1[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char nul2[] = "GET / HTTP/1.1\r\nHost: h\0x\r\n\r\n";
    static const char nul3[] = "\0GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *nuls[] = { nul1, nul2, nul3 };
    size_t nul_lens[] = { sizeof(nul1) - 1, sizeof(nul2) - 1, sizeof(nul3) - 1 };
    for (size_t i = 0; i < ARRAY_LEN(nuls); i++) {
        http_req_parser_t p;
        http_request_t req;
        bool ready;
        http_req_parser_init(&p, &limits);
        CHECK_EQ(http_req_feed(&p, nuls[i], nul_lens[i], &req, &ready), -EBADMSG);
        http_req_parser_fini(&p);
    }

    /* An upgrade is allowed to be ignored: without "Connection: upgrade" it is informational. */
    http_req_parser_t p;
    http_request_t req;
    http_req_parser_init(&p, &limits);
    parse_one(&p, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n", &req);
    http_req_parser_fini(&p);

    /* HTTP/1.0 needs no Host. */
    http_req_parser_init(&p, &limits);
    parse_one(&p, "GET / HTTP/1.0\r\n\r\n", &req);
    CHECK_EQ(req.version_minor, 0);
    http_req_parser_fini(&p);
}

static void test_sticky_error(void)
{
    http_req_parser_t p;
    http_request_t req;
    bool ready;
    const char *good = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    http_req_parser_init(&p, &limits);
    CHECK_EQ(feed_str(&p, "BAD / HTTP/1.1\r\n", &ready), -EBADMSG);
    CHECK(http_req_idle(&p));                           /* nothing kept after an error */
    CHECK_EQ(http_req_feed(&p, good, strlen(good), &req, &ready), -EBADMSG);
    CHECK(!ready);
    CHECK_EQ(http_req_feed(&p, NULL, 0, &req, &ready), -EBADMSG);
    CHECK_EQ(http_req_stash(&p, good, 3), -EBADMSG);
    http_req_parser_fini(&p);
}

static void test_status_mapping(void)
{
    CHECK_EQ(http_status_for_error(-EBADMSG), 400);
    CHECK_EQ(http_status_for_error(-E2BIG), 431);
    CHECK_EQ(http_status_for_error(-EFBIG), 413);
    CHECK_EQ(http_status_for_error(-ENOTSUP), 501);
    CHECK_EQ(http_status_for_error(-EPROTONOSUPPORT), 505);
    CHECK_EQ(http_status_for_error(-ENOBUFS), 503);
    CHECK_EQ(http_status_for_error(-ENOMEM), 503);
    CHECK_EQ(http_status_for_error(-EIO), 500);
    CHECK_STR(http_status_reason(200), "OK");
    CHECK_STR(http_status_reason(404), "Not Found");
    CHECK_STR(http_status_reason(431), "Request Header Fields Too Large");
    CHECK_STR(http_status_reason(503), "Service Unavailable");
    CHECK_STR(http_status_reason(299), "Unknown");
}

static void test_response_head(void)
{
    char buf[256];
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                       "Content-Length: 1234\r\nConnection: keep-alive\r\n\r\n";
    int n = http_response_head(buf, sizeof(buf), 200, "text/plain; version=0.0.4", 1234, true,
                               NULL);
    CHECK_EQ(n, (int)strlen(want));
    CHECK_STR(buf, want);

    want = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
           "Content-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\nX-A: b\r\n\r\n";
    n = http_response_head(buf, sizeof(buf), 503, "text/plain", 0, false,
                           "Retry-After: 5\r\nX-A: b\r\n");
    CHECK_EQ(n, (int)strlen(want));
    CHECK_STR(buf, want);

    want = "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";
    n = http_response_head(buf, sizeof(buf), 204, NULL, 0, true, "");
    CHECK_STR(buf, want);

    /* Exactly fits (with the NUL) and one byte short. */
    size_t need = strlen(want) + 1;
    CHECK_EQ(http_response_head(buf, need, 204, NULL, 0, true, NULL), (int)need - 1);
    CHECK_EQ(http_response_head(buf, need - 1, 204, NULL, 0, true, NULL), -ENOSPC);
    CHECK_EQ(http_response_head(NULL, 0, 204, NULL, 0, true, NULL), -ENOSPC);
}

static void test_query_param(void)
{
    char out[16];
    size_t w = 99;
    str_t q = STR_LIT("a=1&name=John+Q%2e%41%2bx&empty=&flag&%6Bey=v&bad=%4&nul=%00&a=2");
    CHECK_EQ(http_query_param(q, "a", out, sizeof(out), &w), 0);
    CHECK_STR(out, "1");                                /* first match */
    CHECK_EQ(w, 1);
    CHECK_EQ(http_query_param(q, "name", out, sizeof(out), &w), 0);
    CHECK_STR(out, "John Q.A+x");
    CHECK_EQ(w, 10);
    CHECK_EQ(http_query_param(q, "empty", out, sizeof(out), &w), 0);
    CHECK_STR(out, "");
    CHECK_EQ(w, 0);
    CHECK_EQ(http_query_param(q, "flag", out, sizeof(out), NULL), 0);
    CHECK_STR(out, "");
    CHECK_EQ(http_query_param(q, "key", out, sizeof(out), NULL), 0);   /* decoded key */
    CHECK_STR(out, "v");
    CHECK_EQ(http_query_param(q, "bad", out, sizeof(out), NULL), -EBADMSG);
    CHECK_EQ(http_query_param(q, "nul", out, sizeof(out), NULL), -EBADMSG);
    CHECK_EQ(http_query_param(q, "missing", out, sizeof(out), NULL), -ENOENT);
    CHECK_EQ(http_query_param(q, "nam", out, sizeof(out), NULL), -ENOENT);
    CHECK_EQ(http_query_param(STR_LIT(""), "a", out, sizeof(out), NULL), -ENOENT);
    /* "John Q.A+x" is 10 bytes: needs 11 with the NUL. */
    CHECK_EQ(http_query_param(q, "name", out, 11, &w), 0);
    CHECK_EQ(http_query_param(q, "name", out, 10, &w), -ENOSPC);
    CHECK_EQ(http_query_param(q, "empty", out, 0, &w), -ENOSPC);
    CHECK_EQ(http_query_param(STR_LIT("x=%zz"), "x", out, sizeof(out), NULL), -EBADMSG);
    CHECK_EQ(http_query_param(STR_LIT("x=%"), "x", out, sizeof(out), NULL), -EBADMSG);
    CHECK_EQ(http_query_param(STR_LIT("%zz=1&x=2"), "x", out, sizeof(out), NULL), 0);
    CHECK_STR(out, "2");
}

/* ---- Every cut gives the one-shot result -------------------------------- */

typedef struct {
    char text[16384];
    size_t len;
} log_t;

static void logf_(log_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(log_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
    va_end(ap);
    REQUIRE(n >= 0 && (size_t)n < sizeof(l->text) - l->len);
    l->len += (size_t)n;
}

static void log_slice(log_t *l, const char *tag, str_t s)
{
    logf_(l, "%s[%zu]=", tag, s.len);
    for (size_t i = 0; i < s.len; i++)
        logf_(l, "%02x", (unsigned char)s.ptr[i]);
    logf_(l, " ");
}

static void log_request(log_t *l, const http_request_t *r)
{
    logf_(l, "{m=%u v=%u.%u ka=%d ", r->method, r->version_major, r->version_minor,
          r->keep_alive);
    log_slice(l, "mn", r->method_name);
    log_slice(l, "t", r->target);
    log_slice(l, "p", r->path);
    log_slice(l, "q", r->query);
    for (unsigned i = 0; i < r->header_count; i++) {
        log_slice(l, "hn", r->headers[i].name);
        log_slice(l, "hv", r->headers[i].value);
    }
    log_slice(l, "b", r->body);
    logf_(l, "}\n");
}

/*
 * Feeds in, cut at the given offsets, the way a receive callback would, and
 * logs every request and the final outcome. stash: handle each request
 * "asynchronously", i.e. stash what follows it and feed(NULL, 0) after release.
 */
static void run_cuts(const http_limits_t *lim, const char *in, size_t len, const size_t *cuts,
                     size_t ncuts, bool stash, log_t *l)
{
    http_req_parser_t p;
    http_request_t req;
    bool ready, failed = false;
    http_req_parser_init(&p, lim);
    l->len = 0;
    for (size_t c = 0; c <= ncuts && !failed; c++) {
        size_t start = c == 0 ? 0 : cuts[c - 1];
        size_t end = c == ncuts ? len : cuts[c];
        const char *d = in + start;
        size_t n = end - start;
        bool first = true;
        while ((n > 0 || first) && !failed) {
            first = false;
            ssize_t r = http_req_feed(&p, d, n, &req, &ready);
            if (r < 0) {
                logf_(l, "error %zd\n", r);
                failed = true;
                break;
            }
            REQUIRE((size_t)r <= n);
            if (r)
                d += r, n -= (size_t)r;     /* d may be NULL (feed(NULL, 0)) */
            if (!ready) {
                REQUIRE(n == 0);
                break;
            }
            log_request(l, &req);
            if (stash) {
                int e = http_req_stash(&p, d, n);
                REQUIRE(e == 0);
                n = 0;
                http_req_release(&p);
                /* Drain what the stash holds now; loop with first = true. */
                first = true;
                d = NULL;
            } else {
                http_req_release(&p);
            }
        }
    }
    if (!failed)
        logf_(l, "end idle=%d\n", http_req_idle(&p));
    http_req_parser_fini(&p);
}

#define PAD10 "0123456789"
#define PAD90 PAD10 PAD10 PAD10 PAD10 PAD10 PAD10 PAD10 PAD10 PAD10
#define NL10 "\r\n\n\n\n\r\n\n\n\n"
#define NL50 NL10 NL10 NL10 NL10 NL10

static const char *const split_inputs[] = {
    "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    "GET /b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    "\r\nPOST /soap HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n<x>body</x>\n"
    "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /d HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n"
    "5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET /e HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /f HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\tc\r\nX-E:\r\nY: z \r\n\r\n"
    "GET /g HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /h HTTP/1.1\r\n\r\n",
    "GET /i HTTP/1.1\r\nHost: h\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
    "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "GET /j HTTP/1.1\r\nHost: h\r\n\r\nGET /k HTTP/1.1\r\nHost: h\r\nX-Pad: " PAD90 "01\r\n\r\n",
    "GET /l HTTP/1.1\r\nHost: h\r\n\r\nGET /m HTTP/1.1\r\nHost: h\r\nX-Pad: " PAD90 "0\r\n\r\n",
    "GET /n HTTP/1.1\r\nHost: h\r\n\r\nGET /o HTTP/1.1\r\nHo",
    /* More blank lines than the head limit, before and between requests. */
    NL50 NL50 NL50 "GET /p HTTP/1.1\r\nHost: h\r\n\r\n" NL50 NL50 NL50 "GET /q HTTP/1.0\r\n\r\n",
};

/* Parses in cut a byte at a time, at every offset and at pairs of offsets,
 * directly and through the stash; each must log what one shot logs. */
static int check_every_cut(const http_limits_t *lim, const char *in, size_t len, log_t *one)
{
    static log_t got;
    static size_t cuts[2048];
    int mismatches = 0;

    run_cuts(lim, in, len, NULL, 0, false, one);
    REQUIRE(one->len > 0);
    REQUIRE(len <= ARRAY_LEN(cuts));
    for (size_t k = 1; k < len; k++)
        cuts[k - 1] = k;
    for (int stash = 0; stash <= 1; stash++) {
        run_cuts(lim, in, len, cuts, len - 1, stash, &got);
        if (got.len != one->len || memcmp(got.text, one->text, one->len) != 0) {
            mismatches++;
            fprintf(stderr, "bytewise stash=%d:\n%s---\n%s", stash, one->text, got.text);
        }
    }
    for (size_t a = 0; a <= len; a++) {
        for (int stash = 0; stash <= 1; stash++) {
            run_cuts(lim, in, len, &a, 1, stash, &got);
            if (got.len != one->len || memcmp(got.text, one->text, one->len) != 0)
                mismatches++, fprintf(stderr, "cut %zu stash=%d\n", a, stash);
        }
        for (size_t b = a; b <= len; b += 3) {
            size_t two[2] = { a, b };
            run_cuts(lim, in, len, two, 2, (a + b) & 1, &got);
            if (got.len != one->len || memcmp(got.text, one->text, one->len) != 0)
                mismatches++, fprintf(stderr, "cuts %zu,%zu\n", a, b);
        }
    }
    return mismatches;
}

static void test_every_cut(void)
{
    /* The X-Pad heads are 128 and 129 bytes: one passes at exactly the limit. */
    static const http_limits_t lim = { .head_max_bytes = 128, .body_max_bytes = 16 };
    static log_t one;
    int mismatches = 0;

    for (size_t i = 0; i < ARRAY_LEN(split_inputs); i++) {
        int m = check_every_cut(&lim, split_inputs[i], strlen(split_inputs[i]), &one);
        if (m)
            fprintf(stderr, "input %zu: %d mismatches\n", i, m);
        mismatches += m;
    }
    CHECK_EQ(mismatches, 0);

    /* The one-shot results themselves, spot-checked. */
    run_cuts(&lim, split_inputs[3], strlen(split_inputs[3]), NULL, 0, false, &one);
    CHECK(strstr(one.text, "end idle=1") != NULL);      /* /h after close: discarded */
    CHECK(strstr(one.text, "hv[5]=6120622063") != NULL);        /* "a b c" */
    run_cuts(&lim, split_inputs[4], strlen(split_inputs[4]), NULL, 0, false, &one);
    CHECK(strstr(one.text, "error -74") != NULL);       /* EBADMSG after /i */
    run_cuts(&lim, split_inputs[5], strlen(split_inputs[5]), NULL, 0, false, &one);
    CHECK(strstr(one.text, "error -7\n") != NULL);      /* E2BIG: a head of 129 bytes */
    run_cuts(&lim, split_inputs[6], strlen(split_inputs[6]), NULL, 0, false, &one);
    CHECK(strstr(one.text, "end idle=1") != NULL);      /* a head of exactly 128 bytes */
    run_cuts(&lim, split_inputs[7], strlen(split_inputs[7]), NULL, 0, false, &one);
    CHECK(strstr(one.text, "end idle=0") != NULL);      /* a partial second request */
}

/* Found by fuzz_http: two faults in one request, where which one a callback
 * piece reveals first used to depend on the cuts. */
static void test_every_cut_two_faults(void)
{
    static const http_limits_t lim = { .head_max_bytes = 512, .body_max_bytes = 16 };
    static char in[2048];
    static log_t one;
    size_t off;

    /* A 33rd header whose name then turns out malformed: 400, not 431. */
    off = (size_t)snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < HTTP_HEADERS_MAX; i++)
        off += (size_t)snprintf(in + off, sizeof(in) - off, "X-%02d: v\r\n", i);
    snprintf(in + off, sizeof(in) - off, "X-32\x01: v\r\n\r\n");
    CHECK_EQ(check_every_cut(&lim, in, strlen(in), &one), 0);
    CHECK(strstr(one.text, "error -74\n") != NULL);

    /* Trailers are bounded like the head, by raw bytes: exactly head_max pass,
     * one more is 431 wherever the cuts fall. */
    for (size_t extra = 0; extra <= 1; extra++) {
        const char *pre = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "1\r\nx\r\n0\r\nX-T: ";
        size_t pad = 512 - strlen("X-T: \r\n\r\n") + extra;
        off = (size_t)snprintf(in, sizeof(in), "%s", pre);
        memset(in + off, 'a', pad);
        snprintf(in + off + pad, sizeof(in) - off - pad, "\r\n\r\n%s",
                 extra ? "\x01\r\n" : "GET / HTTP/1.0\r\n\r\n");
        CHECK_EQ(check_every_cut(&lim, in, strlen(in), &one), 0);
        CHECK(strstr(one.text, extra ? "error -7\n" : "end idle=1") != NULL);
    }
}

static void test_stash(void)
{
    const char *in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c";
    const char *rest = " HTTP/1.1\r\nHost: h\r\n\r\n";
    http_req_parser_t p;
    http_request_t req;
    bool ready;
    http_req_parser_init(&p, &limits);
    ssize_t n = http_req_feed(&p, in, strlen(in), &req, &ready);
    REQUIRE(ready && n > 0);
    const char *held = req.path.ptr;
    /* The handler goes asynchronous: the receive buffer must be kept. */
    CHECK_EQ(http_req_stash(&p, in + n, strlen(in) - (size_t)n), 0);
    CHECK_EQ(http_req_stash(&p, rest, 4), 0);           /* more bytes arrive meanwhile */
    CHECK(held == req.path.ptr && memcmp(held, "/a", 2) == 0);     /* slices untouched */
    http_req_release(&p);
    CHECK(!http_req_idle(&p));

    CHECK_EQ(http_req_feed(&p, NULL, 0, &req, &ready), 0);
    REQUIRE(ready);
    CHECK_STR(t_str(req.path), "/b");
    CHECK_EQ(http_req_feed(&p, NULL, 0, &req, &ready), 0);        /* releases /b */
    CHECK(!ready);
    CHECK(!http_req_idle(&p));                          /* "GET /c HTT" is partial */
    CHECK_EQ(http_req_feed(&p, rest + 4, strlen(rest) - 4, &req, &ready),
             (ssize_t)strlen(rest) - 4);
    REQUIRE(ready);
    CHECK_STR(t_str(req.path), "/c");
    http_req_release(&p);
    CHECK(http_req_idle(&p));

    /* The stash is bounded by one maximal request plus 64 KiB. */
    http_limits_t small = { .head_max_bytes = 64, .body_max_bytes = 16 };
    static char junk[80 + 65536];
    memset(junk, 'G', sizeof(junk));
    http_req_parser_fini(&p);
    http_req_parser_init(&p, &small);
    CHECK_EQ(http_req_stash(&p, junk, sizeof(junk) - 10), 0);
    CHECK_EQ(http_req_stash(&p, junk, 10), 0);
    CHECK_EQ(http_req_stash(&p, junk, 1), -ENOBUFS);
    CHECK_EQ(http_req_feed(&p, NULL, 0, &req, &ready), -ENOBUFS);
    http_req_parser_fini(&p);
}

static void test_large_body_grows(void)
{
    static char in[300000];
    size_t body = 200000;
    size_t off = (size_t)snprintf(in, sizeof(in), "POST / HTTP/1.1\r\nHost: h\r\n"
                                  "Content-Length: %zu\r\n\r\n", body);
    for (size_t i = 0; i < body; i++)
        in[off + i] = (char)('a' + i % 26);
    http_req_parser_t p;
    http_request_t req;
    bool ready = false;
    http_req_parser_init(&p, &limits);
    size_t pos = 0;
    while (pos < off + body && !ready) {
        size_t n = off + body - pos < 4096 ? off + body - pos : 4096;
        ssize_t r = http_req_feed(&p, in + pos, n, &req, &ready);
        REQUIRE(r == (ssize_t)n);
        pos += n;
    }
    REQUIRE(ready);
    CHECK_EQ(req.body.len, body);
    CHECK(memcmp(req.body.ptr, in + off, body) == 0);
    CHECK_STR(t_str(req.headers[0].value), "h");
    http_req_parser_fini(&p);
}

int main(void)
{
    T_RUN(test_simple_get);
    T_RUN(test_targets);
    T_RUN(test_pipelined);
    T_RUN(test_post_content_length);
    T_RUN(test_chunked);
    T_RUN(test_keep_alive_rules);
    T_RUN(test_close_discards_rest);
    T_RUN(test_header_folding_and_values);
    T_RUN(test_head_limit);
    T_RUN(test_header_count_limit);
    T_RUN(test_body_limit);
    T_RUN(test_malformed);
    T_RUN(test_sticky_error);
    T_RUN(test_status_mapping);
    T_RUN(test_response_head);
    T_RUN(test_query_param);
    T_RUN(test_every_cut);
    T_RUN(test_every_cut_two_faults);
    T_RUN(test_stash);
    T_RUN(test_large_body_grows);
    T_DONE();
}
