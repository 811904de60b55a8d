/*
 * libFuzzer target for the HTTP request parser (protocols/http/http_parse.c).
 *
 * Input: one control byte, then the bytes a client sends.
 *   bits 0-4  chunk size - 1 (1..32 bytes per receive)
 *   bit 5     vary the chunk size from receive to receive
 *   bit 6     handle requests "asynchronously": stash what follows each one
 *   bit 7     small limits (head 256, body 64) instead of 8 KiB / 64 KiB
 *
 * The bytes are parsed twice, once in one receive and once cut as the control
 * byte says, handling every request (reading each slice, looking up headers
 * and a query parameter, writing a response head) and releasing it. Both runs
 * must give the same requests and the same outcome, which is the contract's
 * "cutting does not change the result"; any difference, crash or leak is a
 * finding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "protocols/http/http_parse.h"
#include "tests/fuzz/fuzz.h"

typedef struct {
    uint64_t hash;              /* FNV-1a over everything observed */
    unsigned requests;
    bool stash_full;            /* the stash bound was hit: only the cut run has one */
} trace_t;

static void mix(trace_t *t, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        t->hash = (t->hash ^ b[i]) * 0x100000001b3ull;
    t->hash = (t->hash ^ len) * 0x100000001b3ull;
}

static void mix_u64(trace_t *t, uint64_t v)
{
    mix(t, &v, sizeof(v));
}

static void check_slice(str_t s)
{
    /* Reading every byte lets ASan catch a slice that outlived its buffer. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
}

static void handle(const http_limits_t *lim, const http_request_t *req, trace_t *t)
{
    if (req->header_count > HTTP_HEADERS_MAX || req->body.len > lim->body_max_bytes ||
        req->target.len == 0 || req->target.len > lim->head_max_bytes ||
        req->version_major != 1)
        __builtin_trap();
    str_t all[] = { req->method_name, req->target, req->path, req->query, req->body };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        check_slice(all[i]);
        mix(t, all[i].ptr, all[i].len);
    }
    for (unsigned i = 0; i < req->header_count; i++) {
        check_slice(req->headers[i].name);
        check_slice(req->headers[i].value);
        if (req->headers[i].name.len == 0)
            __builtin_trap();
        mix(t, req->headers[i].name.ptr, req->headers[i].name.len);
        mix(t, req->headers[i].value.ptr, req->headers[i].value.len);
    }
    mix_u64(t, req->method);
    mix_u64(t, (uint64_t)req->version_minor << 1 | req->keep_alive);

    const str_t *host = http_header_get(req, "host");
    if (host)
        check_slice(*host);
    char value[64];
    size_t written = 0;
    int rc = http_query_param(req->query, "a", value, sizeof(value), &written);
    if (rc == 0 && (written >= sizeof(value) || value[written] != '\0'))
        __builtin_trap();
    mix_u64(t, (uint64_t)(rc + 1000) << 8 | (rc == 0 ? written : 0));

    char head[512];
    int n = http_response_head(head, sizeof(head), 200, "text/plain", req->body.len,
                               req->keep_alive, NULL);
    if (n <= 0 || (size_t)n >= sizeof(head))
        __builtin_trap();
    t->requests++;
}

/* Parses data cut into receives of the given sizes; 0 means all at once. */
static void run(const http_limits_t *lim, const uint8_t *data, size_t size, uint8_t ctl,
                bool one_shot, trace_t *t)
{
    http_req_parser_t p;
    http_request_t req;
    bool ready, failed = false;
    bool vary = ctl & 0x20, async = !one_shot && (ctl & 0x40);
    size_t chunk = (size_t)(ctl & 0x1f) + 1;

    *t = (trace_t){ .hash = 0xcbf29ce484222325ull };
    http_req_parser_init(&p, lim);
    for (size_t off = 0, i = 0; off < size && !failed; i++) {
        size_t n = one_shot ? size : chunk;
        if (vary)
            n = 1 + (chunk * (i + 1) * 7) % 31;
        if (n > size - off)
            n = size - off;
        const char *d = (const char *)data + off;
        off += n;
        bool drain = false;
        while ((n > 0 || drain) && !failed) {
            ssize_t r = http_req_feed(&p, d, n, &req, &ready);
            if (r < 0) {
                t->stash_full |= r == -ENOBUFS;
                mix_u64(t, (uint64_t)-r);
                if (http_status_for_error((int)r) < 400)
                    __builtin_trap();
                failed = true;
                break;
            }
            if ((size_t)r > n || (!ready && (size_t)r != n))
                __builtin_trap();
            d += r, n -= (size_t)r;
            drain = false;
            if (!ready)
                break;
            handle(lim, &req, t);
            if (async) {
                /* Keep req across the stash, as an asynchronous handler would. */
                int e = http_req_stash(&p, d, n);
                trace_t again = { 0, 0, false };
                if (e == 0)
                    handle(lim, &req, &again);
                n = 0;
                d = "";         /* feed(p, <empty>, 0): parse what was stashed */
                drain = true;
                http_req_release(&p);
                if (e < 0) {
                    t->stash_full |= e == -ENOBUFS;
                    failed = true;
                }
            } else {
                http_req_release(&p);
            }
        }
    }
    mix_u64(t, failed ? 2 : http_req_idle(&p));
    http_req_parser_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const http_limits_t big = { .head_max_bytes = 8192, .body_max_bytes = 65536 };
    static const http_limits_t small = { .head_max_bytes = 256, .body_max_bytes = 64 };
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const http_limits_t *lim = (ctl & 0x80) ? &small : &big;
    trace_t whole, cut;
    run(lim, data + 1, size - 1, ctl, true, &whole);
    run(lim, data + 1, size - 1, ctl, false, &cut);
    if (!cut.stash_full && (whole.hash != cut.hash || whole.requests != cut.requests)) {
        fprintf(stderr, "cut at %u (ctl 0x%02x) changed the result: %u vs %u requests\n",
                (ctl & 0x1f) + 1, ctl, whole.requests, cut.requests);
        __builtin_trap();
    }
    return 0;
}
