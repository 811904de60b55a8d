/*
 * libFuzzer target for the SIP message parser (protocols/sip/sip_msg.c).
 *
 * Input: the bytes a peer sends, read as one UDP datagram and as the buffered start of a
 * TCP stream, with the default limits and with small ones.
 *
 * Checked on every input:
 *   - every slice a parse or a helper returns lies inside the input (and is read whole, so
 *     that ASan sees a bad one);
 *   - a successful parse is consistent: lengths add up, every field's helper accepts the
 *     values the parser checked, sip_unfold leaves no line break;
 *   - framing agrees with parsing: a stream message that parses to n bytes frames to n,
 *     its prefixes need more bytes, and whatever framing delimits is never reported by the
 *     parser as short or without a length; a stream parse implies the same datagram parse;
 *   - framing a stream's bytes as they trickle in (sip_msg_frame_resume, buffers moving)
 *     gives the same messages, keep-alives and error as framing them all at once;
 *   - sip_msg_peek_response agrees with the parser: it reads every response the parser
 *     accepts, with the same status, top Via and CSeq; what it reads is one whose start line
 *     and header section the parser reads too; it leaves anything else to the parser;
 *   - a response written for any answerable request is a message the parser accepts again
 *     and that echoes the request's Call-ID, CSeq and Vias (for requests that parsed), or at
 *     least a status line (for requests answered with an error).
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/sip/sip_msg.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_sip_msg: " __VA_ARGS__);                              \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

/* Inputs longer than this skip the quadratic-ish checks (helpers on the raw input). */
#define FUZZ_HELPER_MAX_BYTES 2048

static sip_msg_t msg, reply;

typedef struct {
    const char *ptr;
    size_t len;
} span_t;

static void touch(str_t s)
{
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
}

static void inside(str_t s, span_t in, const char *what)
{
    if (s.len == 0)
        return;
    if (s.ptr < in.ptr || s.ptr + s.len > in.ptr + in.len)
        FAIL("%s points outside the input", what);
    touch(s);
}

static void check_uri(str_t s, span_t in)
{
    sip_uri_t u;
    if (sip_uri_parse(s, &u) < 0)
        return;
    str_t parts[] = { u.scheme_name, u.opaque, u.user, u.password, u.host, u.params,
                      u.headers, u.transport, u.user_param, u.maddr };
    for (size_t i = 0; i < ARRAY_LEN(parts); i++)
        inside(parts[i], in, "a URI part");
    if (u.scheme_name.len == 0 || (u.scheme != SIP_SCHEME_OTHER && u.scheme != SIP_SCHEME_TEL &&
                                   u.host.len == 0))
        FAIL("URI without scheme or host");
    char out[512];
    if (u.user.len < sizeof(out) && sip_unescape(u.user, out, sizeof(out)) < 0)
        FAIL("a parsed URI's user does not unescape");
}

static void check_params(str_t params, span_t in)
{
    str_t n, v;
    int r, count = 0;
    while ((r = sip_param_next(&params, &n, &v)) > 0) {
        inside(n, in, "a parameter name");
        inside(v, in, "a parameter value");
        if (n.len == 0 || ++count > 100000)
            FAIL("empty parameter name or no progress");
    }
}

static void check_addr(str_t s, span_t in, bool must)
{
    sip_addr_t a;
    if (sip_addr_parse(s, &a) < 0) {
        if (must)
            FAIL("a checked address does not parse");
        return;
    }
    str_t parts[] = { a.display, a.uri, a.params, a.tag };
    for (size_t i = 0; i < ARRAY_LEN(parts); i++)
        inside(parts[i], in, "an address part");
    if (!a.star)
        check_uri(a.uri, in);
    check_params(a.params, in);
    char out[1024];
    if (a.display.len > 0 && a.display.ptr[0] == '"' &&
        sip_unquote(a.display, out, sizeof(out)) == -EBADMSG)
        FAIL("a parsed display name does not unquote");
}

static void check_via(str_t s, span_t in, bool must)
{
    sip_via_t v;
    if (sip_via_parse(s, &v) < 0) {
        if (must)
            FAIL("a checked Via does not parse");
        return;
    }
    str_t parts[] = { v.protocol, v.version, v.transport, v.host, v.params, v.branch,
                      v.received, v.rport, v.maddr };
    for (size_t i = 0; i < ARRAY_LEN(parts); i++)
        inside(parts[i], in, "a Via part");
    if (v.host.len == 0 || v.transport.len == 0)
        FAIL("Via without host or transport");
    check_params(v.params, in);
}

/* Runs every helper that fits a value of this field. */
static void check_value(sip_hdr_id_t id, str_t v, span_t in, bool checked)
{
    inside(v, in, "a value");
    sip_cseq_t c;
    sip_event_t e;
    sip_subscription_state_t ss;
    uint32_t secs;
    switch (id) {
    case SIP_HDR_VIA:
        check_via(v, in, checked);
        break;
    case SIP_HDR_FROM:
    case SIP_HDR_TO:
    case SIP_HDR_CONTACT:
    case SIP_HDR_ROUTE:
    case SIP_HDR_RECORD_ROUTE:
    case SIP_HDR_REFER_TO:
    case SIP_HDR_REFERRED_BY:
        check_addr(v, in, checked && !(id == SIP_HDR_CONTACT && v.len == 1));
        break;
    case SIP_HDR_CSEQ:
        if (sip_cseq_parse(v, &c) == 0)
            inside(c.method_name, in, "a CSeq method");
        else if (checked)
            FAIL("a checked CSeq does not parse");
        break;
    case SIP_HDR_EVENT:
        if (sip_event_parse(v, &e) == 0) {
            inside(e.type, in, "an event type");
            inside(e.id, in, "an event id");
            if (e.package.len == 0 || e.package.len > e.type.len)
                FAIL("event package not a prefix of its type");
        }
        break;
    case SIP_HDR_SUBSCRIPTION_STATE:
        if (sip_subscription_state_parse(v, &ss) == 0) {
            inside(ss.state_name, in, "a state");
            inside(ss.reason, in, "a reason");
        }
        break;
    case SIP_HDR_EXPIRES:
    case SIP_HDR_MIN_EXPIRES:
        (void)sip_delta_seconds_parse(v, &secs);
        break;
    default:
        break;
    }
    char out[256];
    ssize_t n = sip_unfold(v, out, sizeof(out));
    if (n == -ENOSPC)
        return;
    if (n < 0 || (size_t)n > v.len || memchr(out, '\r', (size_t)n) || memchr(out, '\n', (size_t)n))
        FAIL("sip_unfold left a line break or grew the value");
}

static void check_msg(const sip_msg_t *m, ssize_t r, span_t in)
{
    if (r > 0) {
        if ((size_t)r > in.len || m->len != (size_t)r || m->err != SIP_MSG_OK ||
            (size_t)m->head_len + m->body.len != m->len || !m->head_complete)
            FAIL("inconsistent lengths after a parse");
        if (m->has_content_length && m->content_length != m->body.len)
            FAIL("body is not Content-Length long");
        if (m->is_request ? m->method_name.len == 0 : (m->status < 100 || m->status > 699))
            FAIL("no method or a status out of range");
    } else if (m->err != r || r == 0) {
        FAIL("parse returned %zd, err %d", r, (int)m->err);
    }
    if (sip_msg_err_status(m->err) < 400 && r < 0)
        FAIL("an error with a status under 400");
    str_t all[] = { m->start_line, m->version, m->method_name, m->request_uri, m->reason,
                    m->body, m->call_id, m->cseq.method_name, m->from.uri, m->to.uri,
                    m->from.tag, m->to.tag, m->via.host, m->via.branch, m->uri.host };
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        inside(all[i], in, "a message field");
    if (m->header_count > SIP_MSG_HEADERS_CAP)
        FAIL("too many headers");
    for (unsigned i = 0; i < m->header_count; i++) {
        const sip_hdr_t *h = &m->headers[i];
        inside(h->name, in, "a header name");
        if (h->name.len == 0 || sip_hdr_lookup(h->name) != h->id)
            FAIL("header id does not match its name");
        if (h->next != SIP_MSG_NO_HDR && (h->next <= i || m->headers[h->next].id != h->id))
            FAIL("broken chain");
        bool checked = r > 0;
        if (sip_hdr_is_list((sip_hdr_id_t)h->id)) {
            str_t rest = h->value, item;
            int k;
            while ((k = sip_list_next(&rest, &item)) > 0)
                check_value((sip_hdr_id_t)h->id, item, in, checked);
            if (k < 0 && checked && (h->id == SIP_HDR_VIA || h->id == SIP_HDR_CONTACT ||
                                     h->id == SIP_HDR_ROUTE || h->id == SIP_HDR_RECORD_ROUTE))
                FAIL("a checked list does not split");
        } else {
            check_value((sip_hdr_id_t)h->id, h->value, in,
                        checked && h->id != SIP_HDR_REFER_TO && h->id != SIP_HDR_REFERRED_BY);
        }
    }
    for (unsigned id = SIP_HDR_OTHER + 1; id < SIP_HDR_COUNT && r > 0; id++) {
        sip_hdr_iter_t it;
        str_t v;
        int k, count = 0;
        for (sip_hdr_iter_init(&it, m, (sip_hdr_id_t)id); (k = sip_hdr_iter_next(&it, &v)) > 0;)
            if (++count > 100000)
                FAIL("iterator makes no progress");
    }
    if (r > 0 && m->is_request)
        check_uri(m->request_uri, in);
}

/* A response to the request in msg (as far as it goes) must parse, and echo it. */
static void check_reply(const sip_msg_t *req, span_t in)
{
    (void)in;
    if (!sip_msg_can_reply(req))
        return;
    buf_t out;
    buf_init(&out);
    sip_response_t rsp = {
        .status = req->err == SIP_MSG_OK ? 200 : sip_msg_err_status(req->err),
        .reason = req->err == SIP_MSG_OK ? NULL : sip_msg_err_reason(req->err),
        .to_tag = STR_LIT("fz1"),
        .headers = STR_LIT("Server: fuzz\r\n"),
        .body = STR_LIT("x"),
        .record_route = true,
    };
    if (sip_msg_write_response(req, &rsp, &out) != 0)
        FAIL("writing a response failed");
    if (out.len < 12 || memcmp(out.data, "SIP/2.0 ", 8) != 0)
        FAIL("a response without a status line");
    ssize_t n = sip_msg_parse(&reply, out.data, out.len, SIP_MSG_STREAM, NULL);
    if (req->err == SIP_MSG_OK) {
        if (n != (ssize_t)out.len)
            FAIL("a response to a valid request does not parse: %d", (int)n);
        if (!str_eq(reply.call_id, req->call_id) || reply.cseq.seq != req->cseq.seq ||
            !str_eq(reply.cseq.method_name, req->cseq.method_name) ||
            !str_eq(reply.body, STR_LIT("x")) || reply.to.tag.len == 0 ||
            !str_eq(reply.from.tag, req->from.tag))
            FAIL("a response does not echo its request");
        if (req->to.tag.len > 0 && !str_eq(reply.to.tag, req->to.tag))
            FAIL("a response changed the To tag");
        sip_hdr_iter_t a, b;
        str_t va, vb;
        sip_hdr_iter_init(&a, req, SIP_HDR_VIA);
        sip_hdr_iter_init(&b, &reply, SIP_HDR_VIA);
        for (;;) {
            int ra = sip_hdr_iter_next(&a, &va), rb = sip_hdr_iter_next(&b, &vb);
            if (ra != rb || (ra > 0 && !str_eq(va, vb)))
                FAIL("a response's Vias differ from the request's");
            if (ra <= 0)
                break;
        }
    }
    buf_fini(&out);
}

static void check_framing(span_t in, const sip_msg_limits_t *lim)
{
    sip_frame_t f;
    ssize_t framed = sip_msg_frame(in.ptr, in.len, lim, &f);
    if (f.skip_bytes > in.len || (framed > 0 && f.skip_bytes + (size_t)framed > in.len))
        FAIL("framing past the input");
    if (f.pings * 4 > f.skip_bytes)
        FAIL("more pings than bytes skipped");
    if (framed > 0) {
        ssize_t r = sip_msg_parse(&msg, in.ptr + f.skip_bytes, (size_t)framed, SIP_MSG_STREAM,
                                  lim);
        if (r == SIP_MSG_E_TRUNCATED || r == SIP_MSG_E_NO_CONTENT_LENGTH ||
            r == SIP_MSG_E_CONTENT_LENGTH || r == SIP_MSG_E_BODY_TOO_LARGE ||
            r == SIP_MSG_E_TOO_LARGE || r == SIP_MSG_E_TOO_MANY_HEADERS ||
            r == SIP_MSG_E_LINE_TOO_LONG || r == SIP_MSG_E_HEADER_SYNTAX)
            FAIL("framed %zd bytes the parser calls %d", framed, (int)r);
        if (r > 0 && r != framed)
            FAIL("framed %zd bytes, parsed %zd", framed, r);
    }

    ssize_t parsed = sip_msg_parse(&msg, in.ptr, in.len, SIP_MSG_STREAM, lim);
    check_msg(&msg, parsed, in);
    if (parsed <= 0)
        return;
    if (framed != parsed || f.skip_bytes != 0)
        FAIL("parsed %zd bytes of a stream, framed %zd", parsed, framed);
    size_t cuts[] = { (size_t)parsed - 1, (size_t)parsed / 2, 1 };
    for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
        if (cuts[i] >= (size_t)parsed)
            continue;
        char *cut = malloc(cuts[i] ? cuts[i] : 1);
        if (!cut)
            return;
        memcpy(cut, in.ptr, cuts[i]);
        ssize_t r = sip_msg_frame(cut, cuts[i], lim, &f);
        free(cut);
        if (r != 0 || f.skip_bytes != 0)
            FAIL("a prefix of %zu bytes frames to %zd", cuts[i], r);
    }
    ssize_t dgram = sip_msg_parse(&msg, in.ptr, in.len, SIP_MSG_DATAGRAM, lim);
    if (dgram != parsed)
        FAIL("stream parse %zd, datagram parse %zd", parsed, dgram);
}

/*
 * What a connection sees: messages and errors, framed one after another. step 0 offers all
 * bytes at once to the stateless sip_msg_frame(); step > 0 offers them step bytes at a time
 * to sip_msg_frame_resume() through one state, each time in a buffer of its own (as after a
 * realloc).
 */
typedef struct {
    uint64_t hash;              /* FNV-1a over the lengths and the final result */
    size_t consumed;
    size_t pings;
} stream_trace_t;

static void trace_mix(stream_trace_t *t, int64_t v)
{
    for (int i = 0; i < 8; i++)
        t->hash = (t->hash ^ (uint8_t)(v >> (8 * i))) * 0x100000001b3ull;
}

static void frame_stream(span_t in, const sip_msg_limits_t *lim, size_t step,
                         stream_trace_t *t)
{
    *t = (stream_trace_t){ .hash = 0xcbf29ce484222325ull };
    sip_frame_state_t st;
    sip_frame_t f;
    sip_frame_state_init(&st);
    size_t fed = step ? 0 : in.len;
    for (;;) {
        size_t have = fed - t->consumed;
        char *copy = malloc(have ? have : 1);
        if (!copy)
            return;
        memcpy(copy, in.ptr + t->consumed, have);
        ssize_t r = step ? sip_msg_frame_resume(&st, copy, have, lim, &f)
                         : sip_msg_frame(copy, have, lim, &f);
        free(copy);
        t->consumed += f.skip_bytes;
        t->pings += f.pings;
        if (r < 0) {
            trace_mix(t, r);
            return;
        }
        if (r > 0) {
            trace_mix(t, r);
            t->consumed += (size_t)r;
            continue;                   /* another message may be complete already */
        }
        if (fed == in.len) {
            trace_mix(t, 0);
            return;
        }
        fed = fed + step < in.len ? fed + step : in.len;
    }
}

static void check_stream(span_t in, const sip_msg_limits_t *lim)
{
    stream_trace_t whole, cut;
    frame_stream(in, lim, 0, &whole);
    size_t step = 1 + in.len % 7;
    frame_stream(in, lim, step, &cut);
    if (whole.hash != cut.hash || whole.consumed != cut.consumed || whole.pings != cut.pings)
        FAIL("framing %zu bytes at a time differs from all at once", step);
}

static void check_helpers_raw(span_t in)
{
    str_t s = { in.ptr, in.len };
    check_uri(s, in);
    check_addr(s, in, false);
    check_via(s, in, false);
    check_params(s, in);
    sip_cseq_t c;
    sip_event_t e;
    sip_subscription_state_t ss;
    uint32_t secs;
    (void)sip_cseq_parse(s, &c);
    (void)sip_event_parse(s, &e);
    (void)sip_subscription_state_parse(s, &ss);
    (void)sip_delta_seconds_parse(s, &secs);
    str_t rest = s, item;
    int k, count = 0;
    while ((k = sip_list_next(&rest, &item)) > 0) {
        inside(item, in, "a list element");
        if (item.len == 0 || ++count > 100000)
            FAIL("an empty list element or no progress");
    }
    char out[4096];
    (void)sip_unquote(s, out, sizeof(out));
    (void)sip_unescape(s, out, sizeof(out));
}

/* m: the datagram parse of in with the default limits, r what it returned. */
static void check_peek(const sip_msg_t *m, ssize_t r, span_t in)
{
    sip_response_peek_t pk;
    int k = sip_msg_peek_response(in.ptr, in.len, &pk);
    /* 1: the parser reads a request, or fails at its request line (no status then). */
    if (k > 1 || (k == 1 && !m->is_request && m->status != 0))
        FAIL("peek returned %d, the parser read a status line", k);
    if (k == 1)
        return;
    if (k < 0) {
        if (r > 0 && !m->is_request && m->via.branch.len > 0)
            FAIL("peek refused (%d) a response the parser read", k);
        return;
    }
    inside(pk.via.branch, in, "the peeked branch");
    inside(pk.cseq.method_name, in, "the peeked CSeq method");
    touch(pk.via.branch);
    if (m->is_request || !m->head_complete)
        FAIL("peek read a response the parser did not read to its empty line");
    if (r < 0)
        return;
    if (pk.status != m->status || !str_eq(pk.via.branch, m->via.branch) ||
        !str_eq(pk.via.host, m->via.host) || pk.cseq.seq != m->cseq.seq ||
        !str_eq(pk.cseq.method_name, m->cseq.method_name))
        FAIL("peek and parse disagree");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sip_msg_limits_t small = { .msg_max_bytes = 512, .line_max_bytes = 64,
                                            .headers_max = 8 };
    span_t in = { (const char *)data, size };

    ssize_t r = sip_msg_parse(&msg, in.ptr, in.len, SIP_MSG_DATAGRAM, NULL);
    check_msg(&msg, r, in);
    check_peek(&msg, r, in);
    check_reply(&msg, in);
    r = sip_msg_parse(&msg, in.ptr, in.len, SIP_MSG_DATAGRAM, &small);
    check_msg(&msg, r, in);

    check_framing(in, NULL);
    check_reply(&msg, in);
    check_framing(in, &small);
    check_stream(in, NULL);
    check_stream(in, &small);

    if (size <= FUZZ_HELPER_MAX_BYTES)
        check_helpers_raw(in);
    return 0;
}
