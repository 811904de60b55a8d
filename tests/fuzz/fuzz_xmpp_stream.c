/*
 * libFuzzer target for the XMPP stream parser (protocols/xmpp/xmpp_xml.c).
 *
 * Input: two control bytes, then the bytes a peer sends.
 *   byte 0  bits 0-4  chunk size - 1 (1..32 bytes per receive)
 *           bit 5     vary the chunk size from receive to receive
 *           bit 6     small limits (stanza 512 bytes, depth 6, 6 attributes,
 *                     8 children, tree 6 KiB) instead of the defaults
 *           bit 7     prepend a usual c2s stream header
 *   byte 1  bit 0     the cut run returns STOP at every header and stanza and
 *                     feeds the rest again, as the STARTTLS path does
 *           bit 1     the cut run resets the parser after each STOP, then
 *                     goes on with a usual header (restart after SASL)
 *
 * The bytes are parsed twice, in one receive and cut as byte 0 says. Both runs
 * must give the same events (header fields, stanzas, keepalives, close, error
 * condition): the contract's "cutting does not change the result", with its
 * one exception (an error libxml2 sees only with more lookahead). Each stanza
 * is serialised, parsed again in a fresh parser and must come back equal
 * (xmpp_xml_el_equal). Any difference, crash or leak is a finding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "protocols/xmpp/xmpp_xml.h"
#include "tests/fuzz/fuzz.h"

#define USUAL_HDR "<stream:stream xmlns='jabber:client' " \
                  "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

typedef struct {
    uint64_t hash;              /* FNV-1a over every event but an error */
    unsigned events;            /* events but an error */
    xmpp_xml_cond_t cond;       /* the error, if any */
    bool size_error;            /* the error is the byte bound (feed-level) */
    bool idle;                  /* the parser held nothing at the end */
    bool stop;                  /* return STOP from header and stanza callbacks */
    bool stopped;               /* a STOP was returned during this feed */
    char content_ns[64];        /* the stream's default namespace, for reparsing */
    bool ns_too_long;
    const xmpp_xml_limits_t *lim;
    buf_t out;                  /* scratch for serialising */
} trace_t;

static void mix(trace_t *t, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        t->hash = (t->hash ^ b[i]) * 0x100000001b3ull;
    t->hash = (t->hash ^ len) * 0x100000001b3ull;
}

static void mix_str(trace_t *t, str_t s)
{
    uint8_t present = s.ptr != NULL;
    mix(t, &present, 1);
    mix(t, s.ptr, s.len);
}

/* ---- Reparsing a written stanza ---------------------------------------- */

typedef struct {
    const xmpp_xml_el_t *want;
    unsigned seen, equal;
} reparse_t;

static xmpp_xml_verdict_t reparse_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    reparse_t *rp = ctx;
    rp->seen++;
    rp->equal += xmpp_xml_el_equal(el, rp->want);
    return XMPP_XML_CONTINUE;
}

static void check_roundtrip(trace_t *t, const xmpp_xml_el_t *el)
{
    static const xmpp_xml_cbs_t cbs = { .stanza = reparse_stanza };
    static const xmpp_xml_limits_t big = {
        .stanza_bytes_max = XMPP_XML_STANZA_BYTES_LIMIT,
        .depth_max = XMPP_XML_DEPTH_LIMIT,
        .attrs_max = XMPP_XML_ATTRS_LIMIT,
        .children_max = XMPP_XML_CHILDREN_LIMIT,
        .tree_bytes_max = XMPP_XML_TREE_BYTES_LIMIT,
    };
    buf_t *b = &t->out;
    b->len = 0;
    buf_append_str(b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
    if (t->content_ns[0])
        xmpp_xml_write_attr(b, "xmlns", str_from_cstr(t->content_ns));
    buf_append_str(b, ">");
    size_t start = b->len;
    xmpp_xml_write_el(b, el, str_from_cstr(t->content_ns));
    /* What the stanza costs out is bounded by what it cost in. */
    if (b->len - start > 8 * (size_t)t->lim->tree_bytes_max)
        __builtin_trap();
    reparse_t rp = { .want = el };
    xmpp_xml_t p;
    xmpp_xml_init(&p, &big, &cbs, &rp);
    ssize_t n = xmpp_xml_feed(&p, b->data, b->len);
    xmpp_xml_fini(&p);
    if (n != (ssize_t)b->len || rp.seen != 1 || rp.equal != 1) {
        fprintf(stderr, "round trip failed (%zd, %u, %u): %.*s\n", n, rp.seen, rp.equal,
                (int)b->len, b->data);
        __builtin_trap();
    }
}

/* ---- Events ------------------------------------------------------------ */

static void check_tree(const trace_t *t, const xmpp_xml_el_t *el, unsigned depth)
{
    if (depth > t->lim->depth_max || el->attr_count > t->lim->attrs_max ||
        el->child_count > t->lim->children_max || el->name.len == 0)
        __builtin_trap();
    unsigned n = 0;
    for (const xmpp_xml_el_t *c = el->children; c; c = c->next, n++) {
        if (c->parent != el || c->text_off > el->text.len)
            __builtin_trap();
        check_tree(t, c, depth + 1);
    }
    if (n != el->child_count)
        __builtin_trap();
}

static xmpp_xml_verdict_t on_header(void *ctx, const xmpp_xml_header_t *h)
{
    trace_t *t = ctx;
    t->events++;
    mix(t, "H", 1);
    mix_str(t, h->to);
    mix_str(t, h->from);
    mix_str(t, h->id);
    mix_str(t, h->version);
    mix_str(t, h->lang);
    mix_str(t, h->content_ns);
    t->ns_too_long = h->content_ns.len >= sizeof(t->content_ns);
    if (!t->ns_too_long) {
        memcpy(t->content_ns, h->content_ns.ptr ? h->content_ns.ptr : "", h->content_ns.len);
        t->content_ns[h->content_ns.len] = '\0';
    }
    t->stopped |= t->stop;
    return t->stop ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
}

static xmpp_xml_verdict_t on_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    trace_t *t = ctx;
    t->events++;
    check_tree(t, el, 1);
    if (el->parent != NULL || t->ns_too_long)
        __builtin_trap();
    check_roundtrip(t, el);
    mix(t, "S", 1);
    mix(t, t->out.data, t->out.len);
    t->stopped |= t->stop;
    return t->stop ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
}

static void on_keepalive(void *ctx)
{
    trace_t *t = ctx;
    t->events++;
    mix(t, "K", 1);
}

static void on_closed(void *ctx)
{
    trace_t *t = ctx;
    t->events++;
    mix(t, "C", 1);
}

static void on_error(void *ctx, const xmpp_xml_error_t *err)
{
    trace_t *t = ctx;
    if (err->cond == XMPP_XML_COND_NONE || err->reason == NULL || t->cond != XMPP_XML_COND_NONE)
        __builtin_trap();
    t->cond = err->cond;
    t->size_error = strcmp(err->reason, "stanza too large") == 0 ||
                    strcmp(err->reason, "stream header too large") == 0;
}

static const xmpp_xml_cbs_t cbs = {
    .header = on_header,
    .stanza = on_stanza,
    .keepalive = on_keepalive,
    .closed = on_closed,
    .error = on_error,
};

/* ---- Runs -------------------------------------------------------------- */

static void run(const xmpp_xml_limits_t *lim, const uint8_t *data, size_t size, uint8_t ctl,
                uint8_t ctl2, bool one_shot, trace_t *t)
{
    *t = (trace_t){ .hash = 0xcbf29ce484222325ull, .lim = lim, .stop = !one_shot && (ctl2 & 1) };
    buf_init(&t->out);
    bool vary = ctl & 0x20, reset = t->stop && (ctl2 & 2);
    size_t chunk = (size_t)(ctl & 0x1f) + 1;
    xmpp_xml_t p;
    xmpp_xml_init(&p, lim, &cbs, t);
    if (ctl & 0x80) {
        if (xmpp_xml_feed(&p, USUAL_HDR, strlen(USUAL_HDR)) < 0)
            __builtin_trap();
    }
    bool failed = false;
    for (size_t off = 0, i = 0; off < size && !failed; i++) {
        size_t n = one_shot ? size : chunk;
        if (vary)
            n = 1 + (chunk * (i + 1) * 7) % 31;
        if (n > size - off)
            n = size - off;
        const char *d = (const char *)data + off;
        while (n > 0) {
            t->stopped = false;
            ssize_t r = xmpp_xml_feed(&p, d, n);
            if (r < 0) {
                const xmpp_xml_error_t *e = xmpp_xml_error(&p);
                if (!e || (r == -E2BIG) != (e->cond == XMPP_XML_COND_POLICY_VIOLATION))
                    __builtin_trap();
                failed = true;
                break;
            }
            if ((size_t)r > n || ((size_t)r < n && !t->stopped))
                __builtin_trap();
            d += r, n -= (size_t)r, off += (size_t)r;
            if (t->stopped && reset) {
                /* The stream restarts: whatever followed belongs to the new
                 * one, as after SASL success. The traces no longer compare. */
                xmpp_xml_reset(&p);
                if (xmpp_xml_feed(&p, USUAL_HDR, strlen(USUAL_HDR)) < 0)
                    __builtin_trap();
            }
        }
    }
    if (!failed && xmpp_xml_error(&p) != NULL)
        __builtin_trap();
    t->idle = xmpp_xml_idle(&p);
    xmpp_xml_fini(&p);
    if (!xmpp_xml_idle(&p))
        __builtin_trap();
    buf_fini(&t->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    static const xmpp_xml_limits_t small = {
        .stanza_bytes_max = 512,
        .depth_max = 6,
        .attrs_max = 6,
        .children_max = 8,
        .tree_bytes_max = 6144,
    };
    if (!inited) {
        xmpp_xml_global_init();
        inited = true;
    }
    if (size < 2)
        return 0;
    uint8_t ctl = data[0], ctl2 = data[1];
    const xmpp_xml_limits_t *lim = (ctl & 0x40) ? &small : &xmpp_xml_limits_default;
    trace_t whole, cut;
    run(lim, data + 2, size - 2, ctl, ctl2, true, &whole);
    run(lim, data + 2, size - 2, ctl, ctl2, false, &cut);
    if (cut.stop && (ctl2 & 2))
        return 0;                       /* restarted streams: nothing to compare */
    bool same = whole.hash == cut.hash && whole.events == cut.events;
    if (same && whole.cond != cut.cond) {
        /* libxml2 reports some syntax errors only once it has seen enough of
         * what follows (a '>' past an open quote, a ';' after '&'), so a cut
         * run may still be waiting for it, or hit the byte bound first. What
         * came out before the failure must be the same. */
        const trace_t *f = whole.cond != XMPP_XML_COND_NONE ? &whole : &cut;
        const trace_t *o = f == &whole ? &cut : &whole;
        if (o->cond == XMPP_XML_COND_NONE)
            same = !o->idle;            /* still inside the bad construct */
        else
            same = f->size_error || o->size_error;
    }
    if (!same) {
        fprintf(stderr, "cut at %u (ctl 0x%02x 0x%02x) changed the result: %u vs %u events, "
                "%s vs %s\n", (ctl & 0x1f) + 1, ctl, ctl2, whole.events, cut.events,
                xmpp_xml_cond_name(whole.cond), xmpp_xml_cond_name(cut.cond));
        __builtin_trap();
    }
    return 0;
}
