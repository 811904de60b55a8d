/*
 * XMPP stream parser: each clause of xmpp_xml.h's contract. Events are written
 * to a log (stanzas serialised), so that "the same events" is a string
 * comparison: a whole client session cut at every byte boundary, and fed one
 * byte at a time, must log exactly what the one-shot feed logs; every stanza is
 * also serialised, parsed again and compared with xmpp_xml_el_equal.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "protocols/xmpp/xmpp_xml.h"
#include "tests/unit/t.h"

#define HDR "<stream:stream xmlns='jabber:client' " \
            "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"

/* ---- Recording events -------------------------------------------------- */

typedef struct {
    buf_t log;
    char content_ns[64];
    unsigned stop_at_stanza;    /* STOP after this stanza (1-based); 0: never */
    bool stop_at_header;
    bool roundtrip;             /* serialise, reparse and compare each stanza */
    unsigned stanzas, keepalives, closes, errors, headers;
    unsigned roundtrip_failures;
    xmpp_xml_cond_t cond;
    size_t heap_in_stanza;      /* largest heap delta seen inside a stanza callback */
    size_t heap_base;
} rec_t;

/* Heap figures come from mallinfo2 with glibc's per-thread cache off (main()
 * re-executes the test with GLIBC_TUNABLES so), because chunks parked in the
 * cache count as in use. Sanitizer allocators do not report through it. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_MEASURABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_MEASURABLE 0
#endif
#endif
#ifndef HEAP_MEASURABLE
#define HEAP_MEASURABLE 1
#endif

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void log_str(rec_t *r, const char *tag, str_t s)
{
    buf_append_str(&r->log, tag);
    if (s.ptr) {
        buf_append(&r->log, "=", 1);
        buf_append(&r->log, s.ptr, s.len);
    } else {
        buf_append_str(&r->log, "=-");
    }
}

static xmpp_xml_verdict_t on_header(void *ctx, const xmpp_xml_header_t *h)
{
    rec_t *r = ctx;
    r->headers++;
    buf_append_str(&r->log, "H");
    log_str(r, " to", h->to);
    log_str(r, " from", h->from);
    log_str(r, " id", h->id);
    log_str(r, " version", h->version);
    log_str(r, " lang", h->lang);
    log_str(r, " ns", h->content_ns);
    buf_append_str(&r->log, "\n");
    REQUIRE(h->content_ns.len < sizeof(r->content_ns));
    memcpy(r->content_ns, h->content_ns.ptr ? h->content_ns.ptr : "", h->content_ns.len);
    r->content_ns[h->content_ns.len] = '\0';
    return r->stop_at_header ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
}

/* Reparse: the stanza written back, inside a header declaring the same
 * default namespace, must give an equal tree. */
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

static bool roundtrip(const xmpp_xml_el_t *el, const char *content_ns)
{
    static const xmpp_xml_cbs_t cbs = { .stanza = reparse_stanza };
    static const xmpp_xml_limits_t big = {
        .stanza_bytes_max = XMPP_XML_STANZA_BYTES_LIMIT,
        .depth_max = XMPP_XML_DEPTH_LIMIT,
        .attrs_max = XMPP_XML_ATTRS_LIMIT,
        .children_max = XMPP_XML_CHILDREN_LIMIT,
        .tree_bytes_max = XMPP_XML_TREE_BYTES_LIMIT,
    };
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
    if (content_ns[0])
        xmpp_xml_write_attr(&b, "xmlns", str_from_cstr(content_ns));
    buf_append_str(&b, ">");
    xmpp_xml_write_el(&b, el, str_from_cstr(content_ns));
    reparse_t rp = { .want = el };
    xmpp_xml_t p;
    xmpp_xml_init(&p, &big, &cbs, &rp);
    ssize_t n = xmpp_xml_feed(&p, b.data, b.len);
    xmpp_xml_fini(&p);
    bool ok = n == (ssize_t)b.len && rp.seen == 1 && rp.equal == 1;
    if (!ok)
        fprintf(stderr, "round trip failed: %.*s\n", (int)b.len, b.data);
    buf_fini(&b);
    return ok;
}

static xmpp_xml_verdict_t on_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    rec_t *r = ctx;
    size_t heap = heap_used();
    if (heap > r->heap_base && heap - r->heap_base > r->heap_in_stanza)
        r->heap_in_stanza = heap - r->heap_base;
    r->stanzas++;
    buf_append_str(&r->log, "S ");
    xmpp_xml_write_el(&r->log, el, str_from_cstr(r->content_ns));
    buf_append_str(&r->log, "\n");
    if (r->roundtrip && !roundtrip(el, r->content_ns))
        r->roundtrip_failures++;
    return r->stanzas == r->stop_at_stanza ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
}

static void on_keepalive(void *ctx)
{
    rec_t *r = ctx;
    r->keepalives++;
    buf_append_str(&r->log, "K\n");
}

static void on_closed(void *ctx)
{
    rec_t *r = ctx;
    r->closes++;
    buf_append_str(&r->log, "C\n");
}

static void on_error(void *ctx, const xmpp_xml_error_t *err)
{
    rec_t *r = ctx;
    r->errors++;
    r->cond = err->cond;
    buf_printf(&r->log, "E %s\n", xmpp_xml_cond_name(err->cond));
}

static const xmpp_xml_cbs_t rec_cbs = {
    .header = on_header,
    .stanza = on_stanza,
    .keepalive = on_keepalive,
    .closed = on_closed,
    .error = on_error,
};

static void rec_init(rec_t *r)
{
    *r = (rec_t){ .roundtrip = true };
    buf_init(&r->log);
    buf_append(&r->log, "", 0);
}

static const char *rec_log(rec_t *r)
{
    buf_append(&r->log, "", 1);         /* NUL for CHECK_STR; not counted */
    r->log.len--;
    return r->log.data ? r->log.data : "";
}

/* Feeds in[0, len) in pieces whose ends are at cuts[] (ascending, < len),
 * re-feeding what a STOP left unconsumed. Returns the last feed's result. */
static ssize_t feed_cut(xmpp_xml_t *p, const char *in, size_t len, const size_t *cuts,
                        size_t ncuts)
{
    size_t off = 0;
    ssize_t rc = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        while (off < end) {
            rc = xmpp_xml_feed(p, in + off, end - off);
            if (rc < 0)
                return rc;
            off += (size_t)rc;
        }
    }
    return rc;
}

/* Parses in with the default limits; the log, and the last feed result. */
static ssize_t parse_log(const char *in, size_t len, const xmpp_xml_limits_t *lim, rec_t *r)
{
    xmpp_xml_t p;
    rec_init(r);
    xmpp_xml_init(&p, lim, &rec_cbs, r);
    ssize_t rc = feed_cut(&p, in, len, NULL, 0);
    xmpp_xml_fini(&p);
    return rc;
}

static xmpp_xml_cond_t parse_cond(const char *in)
{
    rec_t r;
    ssize_t rc = parse_log(in, strlen(in), NULL, &r);
    xmpp_xml_cond_t c = rc < 0 ? r.cond : XMPP_XML_COND_NONE;
    CHECK_EQ(r.errors, rc < 0 ? 1 : 0);
    buf_fini(&r.log);
    return c;
}

/* The log for in fed all at once must match the logs for in cut in two at
 * every boundary, and fed byte by byte. */
static void check_cuts(const char *in, size_t len, const xmpp_xml_limits_t *lim)
{
    rec_t whole;
    ssize_t rc = parse_log(in, len, lim, &whole);
    CHECK_EQ(whole.roundtrip_failures, 0);
    const char *want = rec_log(&whole);
    for (size_t cut = 1; cut < len; cut++) {
        rec_t r;
        xmpp_xml_t p;
        rec_init(&r);
        r.roundtrip = false;
        xmpp_xml_init(&p, lim, &rec_cbs, &r);
        ssize_t rc2 = feed_cut(&p, in, len, &cut, 1);
        xmpp_xml_fini(&p);
        if (strcmp(rec_log(&r), want) != 0 || (rc < 0) != (rc2 < 0)) {
            fprintf(stderr, "cut at %zu differs:\n--- whole\n%s--- cut\n%s", cut, want,
                    rec_log(&r));
            CHECK(false);
            buf_fini(&r.log);
            break;
        }
        buf_fini(&r.log);
    }
    size_t *cuts = malloc(len * sizeof(*cuts));
    REQUIRE(cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    rec_t r;
    xmpp_xml_t p;
    rec_init(&r);
    r.roundtrip = false;
    xmpp_xml_init(&p, lim, &rec_cbs, &r);
    feed_cut(&p, in, len, cuts, len ? len - 1 : 0);
    xmpp_xml_fini(&p);
    CHECK_STR(rec_log(&r), want);
    buf_fini(&r.log);
    free(cuts);
    buf_fini(&whole.log);
}

/* ---- A client session -------------------------------------------------- */

/* After TLS (RFC 6120 §9.1): SASL, then the restarted stream (as one document
 * here, so both headers would not parse; each is tested separately below). */
static const char session[] =
    "<?xml version='1.0' encoding='UTF-8'?>\r\n"
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'\r\n"
    "    to='example.com' from='juliet@example.com' version=\"1.0\" xml:lang='en'>\r\n"
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
    "biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>\n"
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<resource>balcony</resource></bind></iq>"
    "<presence><show>away</show><status xml:lang='fr'>d&#233;j&#xE0; vu &amp; &lt;&gt;</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' "
    "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence> "
    "<message to='romeo@example.net/orchard' type=\"chat\" id='m1' xml:lang='en'>\n"
    "  <body>Wherefore art thou, Romeo? 1 &lt; 2 &gt; 0 &quot;q&quot; &apos;a&apos;</body>\n"
    "  <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    "<p>Hello <em>fair</em> <strong>Romeo</strong>!</p></body></html>\n"
    "  <thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
    "<x:data xmlns:x='jabber:x:data' a='x>y' b=\"it's\" c='tab&#9;lf&#10;cr&#13;'>"
    "<![CDATA[<not a tag> & ]]]]><![CDATA[>]]></x:data>\r\n"
    "</message>\r\n  \t"
    "<r xmlns='urn:xmpp:sm:3'/>"
    "<a xmlns='urn:xmpp:sm:3' h='1'/>\n"
    "<iq type='get' id='v1' to='example.com'><query xmlns='jabber:iq:version'/></iq>"
    "<message><body>\xe2\x98\x83 \xf0\x9f\x98\x80 caf\xc3\xa9</body></message>\n"
    "</stream:stream>";

static void test_session_cuts(void)
{
    rec_t r;
    ssize_t rc = parse_log(session, strlen(session), NULL, &r);
    CHECK_EQ(rc, (ssize_t)strlen(session));
    CHECK_EQ(r.headers, 1);
    CHECK_EQ(r.stanzas, 8);
    CHECK_EQ(r.closes, 1);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.keepalives, 6);
    CHECK_EQ(r.roundtrip_failures, 0);
    const char *log = rec_log(&r);
    CHECK(strstr(log, "H to=example.com from=juliet@example.com id=- version=1.0 lang=en "
                      "ns=jabber:client\n") == log);
    CHECK(strstr(log, "<status xml:lang='fr'>d\xc3\xa9j\xc3\xa0 vu &amp; &lt;&gt;</status>"));
    CHECK(strstr(log, "<p>Hello <em>fair</em> <strong>Romeo</strong>!</p>"));
    CHECK(strstr(log, "<data xmlns='jabber:x:data' a='x&gt;y' b='it&apos;s' "
                      "c='tab&#9;lf&#10;cr&#13;'>&lt;not a tag&gt; &amp; ]]&gt;</data>"));
    CHECK(strstr(log, "S <r xmlns='urn:xmpp:sm:3'/>\nS <a xmlns='urn:xmpp:sm:3' h='1'/>\nK\n"));
    CHECK(strstr(log, "K\nC\n") != NULL);
    buf_fini(&r.log);
    check_cuts(session, strlen(session), NULL);
}

/* ---- Stream headers ---------------------------------------------------- */

static void test_header_variants(void)
{
    rec_t r;
    const char *in = "<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" "
                     "xmlns=\"jabber:server\" xmlns:db='jabber:server:dialback' "
                     "from='a.example' to='b.example' id='x&amp;y' version='1.0'>"
                     "<db:result from='a.example' to='b.example'>key</db:result>";
    CHECK_EQ(parse_log(in, strlen(in), NULL, &r), (ssize_t)strlen(in));
    CHECK_STR(rec_log(&r), "H to=b.example from=a.example id=x&y version=1.0 lang=- "
                           "ns=jabber:server\n"
                           "S <result xmlns='jabber:server:dialback' from='a.example' "
                           "to='b.example'>key</result>\n");
    buf_fini(&r.log);

    /* No content namespace (§4.8.2 makes it optional): stanzas are prefixed. */
    in = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
         "xmlns:c='jabber:client'><c:message><c:body>hi</c:body></c:message>";
    CHECK_EQ(parse_log(in, strlen(in), NULL, &r), (ssize_t)strlen(in));
    CHECK_STR(rec_log(&r), "H to=- from=- id=- version=- lang=- ns=-\n"
                           "S <message xmlns='jabber:client'><body>hi</body></message>\n");
    CHECK_EQ(r.roundtrip_failures, 0);
    buf_fini(&r.log);

    /* <stream:stream/>: opened and closed at once. */
    in = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/>";
    CHECK_EQ(parse_log(in, strlen(in), NULL, &r), (ssize_t)strlen(in));
    CHECK_STR(rec_log(&r), "H to=- from=- id=- version=- lang=- ns=jabber:client\nC\n");
    buf_fini(&r.log);

    /* UTF-8 BOM and an explicit UTF-8 declaration are fine. */
    CHECK_EQ(parse_cond("\xef\xbb\xbf" HDR "<a/>"), XMPP_XML_COND_NONE);
    CHECK_EQ(parse_cond("<?xml version='1.0' encoding='utf-8'?>" HDR), XMPP_XML_COND_NONE);

    /* §4.8.1, §4.9.3.10 */
    CHECK_EQ(parse_cond("<stream:stream xmlns:stream='http://example.com/streams'>"),
             XMPP_XML_COND_INVALID_NAMESPACE);
    CHECK_EQ(parse_cond("<stream:feed xmlns:stream='http://etherx.jabber.org/streams'>"),
             XMPP_XML_COND_INVALID_NAMESPACE);
    CHECK_EQ(parse_cond("<html><body/></html>"), XMPP_XML_COND_INVALID_NAMESPACE);
    CHECK_EQ(parse_cond("<stream:stream xmlns='jabber:component:accept' "
                        "xmlns:stream='http://etherx.jabber.org/streams'>"),
             XMPP_XML_COND_INVALID_NAMESPACE);
    CHECK_EQ(parse_cond("<stream:stream xmlns='http://etherx.jabber.org/streams' "
                        "xmlns:stream='http://etherx.jabber.org/streams'>"),
             XMPP_XML_COND_INVALID_NAMESPACE);
    /* §4.9.3.2's example, and the stream namespace as the default. */
    CHECK_EQ(parse_cond("<foobar:stream xmlns='jabber:client' "
                        "xmlns:foobar='http://etherx.jabber.org/streams'>"),
             XMPP_XML_COND_BAD_NAMESPACE_PREFIX);
    CHECK_EQ(parse_cond("<stream xmlns='http://etherx.jabber.org/streams'>"),
             XMPP_XML_COND_BAD_NAMESPACE_PREFIX);
    /* §11.6 */
    CHECK_EQ(parse_cond("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR),
             XMPP_XML_COND_UNSUPPORTED_ENCODING);
    CHECK_EQ(parse_cond("<?xml version='1.0' encoding='UTF-16'?>" HDR),
             XMPP_XML_COND_UNSUPPORTED_ENCODING);
    static const char utf16[] = "\xff\xfe<\0s\0:\0s\0t\0r\0e\0a\0m\0 \0/\0>\0";
    CHECK_EQ(parse_log(utf16, sizeof(utf16) - 1, NULL, &r), -EBADMSG);
    CHECK_EQ(r.cond, XMPP_XML_COND_UNSUPPORTED_ENCODING);
    buf_fini(&r.log);

    /* The header's own bound is the stanza bound, counted from the first byte. */
    xmpp_xml_limits_t lim = xmpp_xml_limits_default;
    lim.stanza_bytes_max = 64;
    CHECK_EQ(parse_log(HDR, strlen(HDR), &lim, &r), -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    buf_fini(&r.log);
    lim.attrs_max = 3;
    lim.stanza_bytes_max = 4096;
    CHECK_EQ(parse_log(HDR, strlen(HDR), &lim, &r), -E2BIG);
    buf_fini(&r.log);
}

/* ---- Namespaces and prefixes ------------------------------------------- */

static xmpp_xml_verdict_t check_ns_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    unsigned *n = ctx;
    (*n)++;
    CHECK(xmpp_xml_is(el, "message", "jabber:client"));
    const xmpp_xml_el_t *body = xmpp_xml_child(el, "body", "jabber:client");
    REQUIRE(body);
    CHECK_EQ(body->text.len, 2);
    const xmpp_xml_el_t *x = xmpp_xml_child(el, "x", NULL);
    REQUIRE(x);
    CHECK(str_eq_cstr(x->ns, "urn:example:x"));
    CHECK(xmpp_xml_child(el, "x", "jabber:client") == NULL);
    const str_t *v = xmpp_xml_attr_ns(x, "urn:example:attr", "flag");
    REQUIRE(v);
    CHECK(str_eq_cstr(*v, "on"));
    CHECK(xmpp_xml_attr(x, "flag") == NULL);
    v = xmpp_xml_attr_ns(el, XMPP_XML_NS_XML, "lang");
    REQUIRE(v);
    CHECK(str_eq_cstr(*v, "de"));
    CHECK(xmpp_xml_child_text(el, "body", "jabber:client").len == 2);
    CHECK(xmpp_xml_child_text(el, "subject", NULL).ptr == NULL);
    return XMPP_XML_CONTINUE;
}

static void test_namespaces(void)
{
    /* The header declares prefixes that stanzas use. The stanza arrives in a
     * later feed, after the parser let go of its libxml2 context: the replayed
     * header must bring the declarations back. */
    static const xmpp_xml_cbs_t cbs = { .stanza = check_ns_stanza };
    const char *hdr = "<stream:stream xmlns='jabber:client' xmlns:ex='urn:example:x' "
                      "xmlns:at='urn:example:attr' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>";
    const char *st = "<message xml:lang='de'><body>hi</body>"
                     "<ex:x at:flag='on' flag2='1'/></message>"
                     "<cl:message xmlns:cl='jabber:client' xml:lang='de'><cl:body>ho</cl:body>"
                     "<x xmlns='urn:example:x' xmlns:b='urn:example:attr' b:flag='on'/>"
                     "</cl:message>";
    unsigned n = 0;
    xmpp_xml_t p;
    xmpp_xml_init(&p, NULL, &cbs, &n);
    CHECK_EQ(xmpp_xml_feed(&p, hdr, strlen(hdr)), (ssize_t)strlen(hdr));
    CHECK(xmpp_xml_idle(&p));
    CHECK_EQ(xmpp_xml_feed(&p, st, strlen(st)), (ssize_t)strlen(st));
    CHECK_EQ(n, 2);
    CHECK(xmpp_xml_idle(&p));
    /* An undeclared prefix is a namespace well-formedness error (§4.9.3.13). */
    CHECK_EQ(xmpp_xml_feed(&p, "<zz:x/>", 7), -EBADMSG);
    CHECK_EQ(xmpp_xml_error(&p)->cond, XMPP_XML_COND_NOT_WELL_FORMED);
    xmpp_xml_fini(&p);

    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s", hdr, st);
    check_cuts(buf, strlen(buf), NULL);
}

/* ---- Stream restarts --------------------------------------------------- */

static void test_restart(void)
{
    /* STARTTLS (§5.4.3.3): the callback stops the parser at <starttls/>; the
     * bytes after it are not consumed; after reset a new document starts. */
    rec_t r;
    rec_init(&r);
    r.stop_at_stanza = 1;
    xmpp_xml_t p;
    xmpp_xml_init(&p, NULL, &rec_cbs, &r);
    const char *in = "<?xml version='1.0'?>" HDR
                     "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>";
    ssize_t n = xmpp_xml_feed(&p, in, strlen(in));
    CHECK_EQ(n, (ssize_t)(strlen(in) - strlen("<injected/>")));
    CHECK_EQ(r.stanzas, 1);
    CHECK(xmpp_xml_idle(&p));
    xmpp_xml_reset(&p);
    r.stop_at_stanza = 0;
    in = "<?xml version='1.0'?>" HDR "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
         "mechanism='PLAIN'>AGp1bGlldABy</auth>";
    CHECK_EQ(xmpp_xml_feed(&p, in, strlen(in)), (ssize_t)strlen(in));
    /* SASL success (§6.4.6): reset again, and a third header. */
    xmpp_xml_reset(&p);
    in = HDR "<iq type='set' id='b'/>";
    CHECK_EQ(xmpp_xml_feed(&p, in, strlen(in)), (ssize_t)strlen(in));
    CHECK_EQ(r.headers, 3);
    CHECK_EQ(r.stanzas, 3);
    CHECK_EQ(r.errors, 0);
    /* Reset after a failure clears it. */
    CHECK_EQ(xmpp_xml_feed(&p, "<a><b></a>", 10), -EBADMSG);
    CHECK_EQ(xmpp_xml_feed(&p, "<a/>", 4), -EBADMSG);
    CHECK_EQ(r.errors, 1);
    xmpp_xml_reset(&p);
    CHECK(xmpp_xml_error(&p) == NULL);
    CHECK_EQ(xmpp_xml_feed(&p, HDR, strlen(HDR)), (ssize_t)strlen(HDR));
    CHECK_EQ(r.headers, 4);
    xmpp_xml_fini(&p);
    buf_fini(&r.log);

    /* STOP at the header, and at a stanza in the middle of a feed: feeding the
     * rest again gives what one feed without STOP gives. */
    const char *all = HDR " <a/><b/> <c/></stream:stream>";
    for (unsigned stop = 0; stop <= 3; stop++) {
        rec_t s;
        rec_init(&s);
        s.stop_at_header = stop == 0;
        s.stop_at_stanza = stop;
        xmpp_xml_init(&p, NULL, &rec_cbs, &s);
        size_t off = 0, len = strlen(all), feeds = 0;
        while (off < len) {
            n = xmpp_xml_feed(&p, all + off, len - off);
            REQUIRE(n >= 0);
            off += (size_t)n;
            feeds++;
        }
        CHECK_EQ(feeds, 2);
        CHECK_STR(rec_log(&s), "H to=example.com from=- id=- version=1.0 lang=- "
                               "ns=jabber:client\nK\nS <a/>\nS <b/>\nK\nS <c/>\nC\n");
        xmpp_xml_fini(&p);
        buf_fini(&s.log);
    }
}

/* ---- Restricted XML (§11.1) -------------------------------------------- */

static void test_restricted(void)
{
    static const char *const cases[] = {
        "<!DOCTYPE stream:stream>" HDR,
        "<!DOCTYPE x SYSTEM 'file:///etc/passwd'>" HDR,
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
        "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
        "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
        HDR "<message><body>&lol3;</body></message>",
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'http://example.com/e'>]>" HDR "<a>&e;</a>",
        "<!-- hello -->" HDR,
        HDR "<!-- hello -->",
        HDR "<message><!-- hello --></message>",
        "<?xml-stylesheet href='a'?>" HDR,
        HDR "<?php echo 1; ?>",
        HDR "<message><?pi?></message>",
        HDR "<message><?xml version='1.0'?></message>",
        HDR "<message>&foo;</message>",
        HDR "<message to='&foo;'/>",
        HDR "<message>&lol3;</message>",
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        xmpp_xml_cond_t c = parse_cond(cases[i]);
        if (c != XMPP_XML_COND_RESTRICTED_XML)
            fprintf(stderr, "case %zu: %s\n", i, xmpp_xml_cond_name(c));
        CHECK_EQ(c, XMPP_XML_COND_RESTRICTED_XML);
    }
    /* The billion-laughs document fails before any entity is declared, with
     * a few KiB of heap, at any cut. */
    check_cuts(cases[2], strlen(cases[2]), NULL);
}

/* ---- Not well-formed --------------------------------------------------- */

static void test_not_well_formed(void)
{
    static const char *const cases[] = {
        HDR "<message><body></message>",
        HDR "<message></body>",
        HDR "</message>",
        HDR "<message><body>\xff</body></message>",
        HDR "<message><body>\xc3\x28</body></message>",
        HDR "<message><body>\xed\xa0\x80</body></message>",   /* a surrogate */
        HDR "<message><body>\x01</body></message>",
        HDR "<message to='a<b'/><presence/>",
        HDR "<message to='a'b'/>",
        HDR "<message to='1' to='2'/>",
        HDR "<message>]]></message>",
        HDR "<message>a & b;</message>",    /* without a ';' libxml2 waits for one */
        HDR "<message to=a/>",
        HDR "<message><x:y/></message>",
        HDR "<x:message/>",
        HDR "<message xmlns:p='urn:a' xmlns:q='urn:a' p:a='1' q:a='2'/>",
        HDR "<message xmlns:p=''/>",
        HDR "<1message/>",
        HDR "<message>&#0;</message>",
        HDR "<message>&#xD800;</message>",
        /* libxml2 checks a CDATA section's UTF-8 less than other text: overlong forms
         * (of 'X' and of '<'), a surrogate, a C1 lead byte. */
        HDR "<message><body><![CDATA[a\xc1\x98" "b]]></body></message>",
        HDR "<message><body><![CDATA[\xc0\xbc]]></body></message>",
        HDR "<message><body><![CDATA[\xe0\x81\xa1]]></body></message>",
        HDR "<message><body><![CDATA[\xed\xa0\x80]]></body></message>",
        HDR "<message><body><![CDATA[\xff]]></body></message>",
        "<stream:stream",
        "garbage",
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        xmpp_xml_t p;
        rec_t r;
        rec_init(&r);
        xmpp_xml_init(&p, NULL, &rec_cbs, &r);
        ssize_t rc = xmpp_xml_feed(&p, cases[i], strlen(cases[i]));
        /* Some errors show only once libxml2 sees what follows. */
        if (rc >= 0)
            rc = xmpp_xml_feed(&p, "<more/>", 7);
        if (rc >= 0)
            rc = xmpp_xml_feed(&p, "</stream:stream>", 16);
        CHECK_EQ(rc, -EBADMSG);
        if (r.cond != XMPP_XML_COND_NOT_WELL_FORMED)
            fprintf(stderr, "case %zu: %s\n", i, xmpp_xml_cond_name(r.cond));
        CHECK_EQ(r.cond, XMPP_XML_COND_NOT_WELL_FORMED);
        CHECK_EQ(r.stanzas, 0);
        CHECK(xmpp_xml_idle(&p));
        xmpp_xml_fini(&p);
        buf_fini(&r.log);
    }
    /* Text between first-level elements: the schema has none (bad-format). */
    CHECK_EQ(parse_cond(HDR "hello"), XMPP_XML_COND_BAD_FORMAT);
    CHECK_EQ(parse_cond(HDR "<a/> x <b/>"), XMPP_XML_COND_BAD_FORMAT);
    CHECK_EQ(parse_cond(HDR "&amp;"), XMPP_XML_COND_BAD_FORMAT);
    CHECK_EQ(parse_cond(HDR "<a/><![CDATA[ ]]>"), XMPP_XML_COND_BAD_FORMAT);
    CHECK_EQ(parse_cond(HDR "<!DOCTYPE x>"), XMPP_XML_COND_RESTRICTED_XML);
    /* ... in the same order whatever the cuts. */
    const char *in = HDR "<a/> <b>t</b> x <c/>";
    check_cuts(in, strlen(in), NULL);
    in = HDR "<a/><b>\xc3</b>";
    check_cuts(in, strlen(in), NULL);
    in = HDR "<a/> <![CDATA[ long enough for libxml2 to hand it over in pieces ...........\xff"
             "..........................................................................."
             "..........................................................................."
             "..........................................................................."
             "...........................................................................";
    check_cuts(in, strlen(in), NULL);
}

/* ---- Before the stream header ------------------------------------------ */

static void test_prolog(void)
{
    static const struct {
        const char *in;
        size_t len;
        xmpp_xml_cond_t cond;
    } cases[] = {
#define LIT(s) s, sizeof(s) - 1
        { LIT("\xef\xbb\xbf<?xml version='1.0'?>\n" HDR), XMPP_XML_COND_NONE },
        { LIT("<?xml version='1.0'?> \r\n\t" HDR), XMPP_XML_COND_NONE },
        { LIT(" <?xml version='1.0'?>" HDR), XMPP_XML_COND_RESTRICTED_XML },
        { LIT("<?xml version='1.0'?><?xml version='1.0'?>" HDR), XMPP_XML_COND_RESTRICTED_XML },
        { LIT("<?xml-stylesheet href='a'?>" HDR), XMPP_XML_COND_RESTRICTED_XML },
        { LIT("<?\xb2?>" HDR), XMPP_XML_COND_RESTRICTED_XML },
        { LIT("<!-->" HDR "<!-- \xed -->"), XMPP_XML_COND_RESTRICTED_XML },
        { LIT("<![CDATA[x]]>" HDR), XMPP_XML_COND_NOT_WELL_FORMED },
        { LIT("x" HDR), XMPP_XML_COND_NOT_WELL_FORMED },
        { LIT("\n x" HDR), XMPP_XML_COND_NOT_WELL_FORMED },
        { LIT("\xef\xbb<" HDR), XMPP_XML_COND_NOT_WELL_FORMED },
        { LIT("\xef\xff\t\x00"), XMPP_XML_COND_NOT_WELL_FORMED },
        { LIT("<\x00"), XMPP_XML_COND_UNSUPPORTED_ENCODING },
        { LIT("<?xml version='1.0' encoding='\xff'?><!--" HDR), XMPP_XML_COND_NOT_WELL_FORMED },
#undef LIT
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rec_t r;
        ssize_t rc = parse_log(cases[i].in, cases[i].len, NULL, &r);
        xmpp_xml_cond_t c = rc < 0 ? r.cond : XMPP_XML_COND_NONE;
        buf_fini(&r.log);
        if (c != cases[i].cond)
            fprintf(stderr, "case %zu: %s\n", i, xmpp_xml_cond_name(c));
        CHECK_EQ(c, cases[i].cond);
        /* Each fault is the one where it starts, whatever follows it and
         * wherever the cuts fall. */
        check_cuts(cases[i].in, cases[i].len, NULL);
    }
}

/* ---- Limits ------------------------------------------------------------ */

static void test_stanza_size(void)
{
    xmpp_xml_limits_t lim = xmpp_xml_limits_default;
    lim.stanza_bytes_max = 200;
    /* Exactly 200 bytes from '<' to '>' passes, 201 do not; whitespace
     * before it does not count. */
    char st[512];
    int pad = 200 - (int)strlen("<message></message>");
    snprintf(st, sizeof(st), HDR "   \n<message>%*s</message>", pad, "");
    rec_t r;
    CHECK_EQ(parse_log(st, strlen(st), &lim, &r), (ssize_t)strlen(st));
    CHECK_EQ(r.stanzas, 1);
    buf_fini(&r.log);
    snprintf(st, sizeof(st), HDR "<message>%*s</message>", pad + 1, "");
    CHECK_EQ(parse_log(st, strlen(st), &lim, &r), -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    CHECK_EQ(r.stanzas, 0);
    buf_fini(&r.log);
    check_cuts(st, strlen(st), &lim);

    /* A peer that never closes its stanza: memory stays near the bound
     * (libxml2's buffer and context) and returns to nothing after. */
    xmpp_xml_t p;
    rec_init(&r);
    xmpp_xml_init(&p, NULL, &rec_cbs, &r);
    CHECK_EQ(xmpp_xml_feed(&p, HDR "<message><body>", strlen(HDR) + 15),
             (ssize_t)strlen(HDR) + 15);
    char chunk[4096];
    memset(chunk, 'a', sizeof(chunk));
    size_t base = heap_used(), peak = 0;
    ssize_t rc = 0;
    for (int i = 0; i < 1024 && rc >= 0; i++) {
        rc = xmpp_xml_feed(&p, chunk, sizeof(chunk));
        size_t h = heap_used();
        if (h > base && h - base > peak)
            peak = h - base;
    }
    CHECK_EQ(rc, -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    fprintf(stderr, "     64 KiB stanza limit, endless stanza: peak heap %zu bytes\n", peak);
    CHECK(!HEAP_MEASURABLE || peak < 4 * XMPP_XML_STANZA_BYTES_DEFAULT);
    CHECK(xmpp_xml_idle(&p));
    xmpp_xml_fini(&p);
    buf_fini(&r.log);
}

static void test_structure_limits(void)
{
    xmpp_xml_limits_t lim = xmpp_xml_limits_default;
    lim.depth_max = 3;
    CHECK_EQ(parse_cond(HDR "<a><b><c/></b></a>"), XMPP_XML_COND_NONE);
    rec_t r;
    const char *in = HDR "<a><b><c/></b></a>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), (ssize_t)strlen(in));
    buf_fini(&r.log);
    in = HDR "<a><b><c><d/></c></b></a>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    buf_fini(&r.log);

    /* Deep nesting with the default limit (32): 10000 levels fail at 33. */
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, HDR);
    for (int i = 0; i < 10000; i++)
        buf_append_str(&b, "<a>");
    CHECK_EQ(parse_log(b.data, b.len, NULL, &r), -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    buf_fini(&r.log);
    buf_fini(&b);

    lim = xmpp_xml_limits_default;
    lim.attrs_max = 2;
    in = HDR "<a x='1' y='2'/>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), -E2BIG);    /* the header has 4 */
    buf_fini(&r.log);
    lim.attrs_max = 4;
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), (ssize_t)strlen(in));
    buf_fini(&r.log);
    in = HDR "<a x='1' y='2' xmlns:p='u' p:z='3' w='4'/>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), -E2BIG);
    buf_fini(&r.log);

    lim = xmpp_xml_limits_default;
    lim.children_max = 3;
    in = HDR "<a><b/><b/><b><c/><c/><c/></b></a>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), (ssize_t)strlen(in));
    buf_fini(&r.log);
    in = HDR "<a><b/><b/><b/><b/></a>";
    CHECK_EQ(parse_log(in, strlen(in), &lim, &r), -E2BIG);
    buf_fini(&r.log);

    /* 64 KiB of "<a/>" would be ~1.6 MiB of tree: the tree bound stops it. */
    buf_init(&b);
    buf_append_str(&b, HDR "<x>");
    while (b.len < 60000)
        buf_append_str(&b, "<a/>");
    buf_append_str(&b, "</x>");
    lim = xmpp_xml_limits_default;
    lim.children_max = XMPP_XML_CHILDREN_LIMIT;
    CHECK_EQ(parse_log(b.data, b.len, &lim, &r), -E2BIG);
    CHECK_EQ(r.cond, XMPP_XML_COND_POLICY_VIOLATION);
    buf_fini(&r.log);
    buf_fini(&b);
}

/* ---- Keepalives and the end of the stream ------------------------------ */

static void test_keepalive_and_close(void)
{
    rec_t r;
    rec_init(&r);
    xmpp_xml_t p;
    xmpp_xml_init(&p, NULL, &rec_cbs, &r);
    CHECK_EQ(xmpp_xml_feed(&p, HDR, strlen(HDR)), (ssize_t)strlen(HDR));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(xmpp_xml_feed(&p, "<r xmlns='urn:xmpp:sm:3'/>", 26), 26);
        CHECK_EQ(xmpp_xml_feed(&p, " ", 1), 1);             /* one keepalive */
        CHECK(xmpp_xml_idle(&p));
    }
    CHECK_EQ(xmpp_xml_feed(&p, "\n", 1), 1);                /* same run: none */
    CHECK_EQ(r.keepalives, 3);
    /* Long runs of whitespace never reach libxml2 and cost nothing. */
    char ws[8192];
    memset(ws, ' ', sizeof(ws));
    for (int i = 0; i < 64; i++)
        CHECK_EQ(xmpp_xml_feed(&p, ws, sizeof(ws)), (ssize_t)sizeof(ws));
    CHECK(xmpp_xml_idle(&p));
    CHECK_EQ(r.keepalives, 3);
    CHECK_EQ(xmpp_xml_feed(&p, "</stream:stream>  <x/>junk", 26), 26);
    CHECK_EQ(r.closes, 1);
    CHECK_EQ(xmpp_xml_feed(&p, "more", 4), 4);              /* discarded */
    CHECK_EQ(r.errors, 0);
    CHECK(xmpp_xml_idle(&p));
    xmpp_xml_fini(&p);
    buf_fini(&r.log);

    const char *in = HDR " \t\r\n<a/>\r\n<b/>\r</stream:stream>";
    check_cuts(in, strlen(in), NULL);
}

/* ---- Serialisation ----------------------------------------------------- */

static xmpp_xml_verdict_t keep_written(void *ctx, const xmpp_xml_el_t *el)
{
    buf_t *b = ctx;
    xmpp_xml_write_el(b, el, STR_LIT("jabber:client"));
    buf_append_str(b, "|");
    return XMPP_XML_CONTINUE;
}

static void test_roundtrip(void)
{
    static const xmpp_xml_cbs_t cbs = { .stanza = keep_written };
    const char *in = HDR
        "<message a='&amp;&lt;&gt;&quot;&apos;' b=\"'\" c='\t\n\r x' d='&#9;&#10;&#13;'>"
        "a&amp;b&lt;c&gt;d\"e'f\r\ng\rh&#13;i<![CDATA[]]>j<![CDATA[<&>]]>"
        "<x:y xmlns:x='urn:y' xmlns:z='urn:z' z:q='1' xml:lang='en'/>"
        "<e xmlns=''><f/></e><xml:t xmlns:xml='http://www.w3.org/XML/1998/namespace'>t</xml:t>"
        "</message>";
    buf_t out;
    buf_init(&out);
    xmpp_xml_t p;
    xmpp_xml_init(&p, NULL, &cbs, &out);
    CHECK_EQ(xmpp_xml_feed(&p, in, strlen(in)), (ssize_t)strlen(in));
    xmpp_xml_fini(&p);
    buf_append(&out, "", 1);
    /* Attribute-value normalisation turned the raw TAB LF CR into spaces;
     * the references stay characters. Raw CR LF and CR in text are LF. */
    CHECK_STR(out.data,
              "<message a='&amp;&lt;&gt;&quot;&apos;' b='&apos;' c='    x' "
              "d='&#9;&#10;&#13;'>a&amp;b&lt;c&gt;d\"e'f\ng\nh&#13;ij&lt;&amp;&gt;"
              "<y xmlns='urn:y' xmlns:a0='urn:z' a0:q='1' xml:lang='en'/>"
              "<e xmlns=''><f/></e><xml:t>t</xml:t></message>|");
    buf_fini(&out);

    rec_t r;
    CHECK_EQ(parse_log(in, strlen(in), NULL, &r), (ssize_t)strlen(in));
    CHECK_EQ(r.roundtrip_failures, 0);
    buf_fini(&r.log);
}

static void test_writers(void)
{
    buf_t b;
    buf_init(&b);
    xmpp_xml_write_text(&b, STR_LIT("<a & 'b' \"c\" ]]> \t\n\r>"));
    buf_append(&b, "", 1);
    CHECK_STR(b.data, "&lt;a &amp; 'b' \"c\" ]]&gt; \t\n&#13;&gt;");
    b.len = 0;
    xmpp_xml_write_attr(&b, "v", STR_LIT("'\"&<>\t\n\r"));
    buf_append(&b, "", 1);
    CHECK_STR(b.data, " v='&apos;&quot;&amp;&lt;&gt;&#9;&#10;&#13;'");
    /* Not UTF-8, not XML characters: U+FFFD, one per bad byte. */
    static const char bad[] = "a\x00" "b\x01\x1f\x7f\xff\xc3\x28\xed\xa0\x80"
                              "\xef\xbf\xbe\xf4\x90\x80\x80\xc0\xaf\xc3\xa9\xf0\x9f\x98";
    b.len = 0;
    xmpp_xml_write_text(&b, (str_t){ bad, sizeof(bad) - 1 });
    buf_append(&b, "", 1);
    CHECK_STR(b.data, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\x7f\xef\xbf\xbd\xef\xbf\xbd("
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                      "\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9"
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    b.len = 0;
    xmpp_xml_header_t h = { .to = STR_LIT("juliet@example.com"), .from = STR_LIT("example.com"),
                            .id = STR_LIT("a'b"), .version = STR_LIT("1.0"),
                            .lang = STR_LIT("en"), .content_ns = STR_LIT("jabber:client") };
    xmpp_xml_write_stream_open(&b, &h);
    xmpp_xml_write_stream_error(&b, XMPP_XML_COND_RESTRICTED_XML, "no <DTD>");
    xmpp_xml_write_stream_error(&b, XMPP_XML_COND_NOT_WELL_FORMED, NULL);
    xmpp_xml_write_stream_close(&b);
    buf_append(&b, "", 1);
    CHECK_STR(b.data,
              "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='juliet@example.com' "
              "from='example.com' id='a&apos;b' version='1.0' xml:lang='en'>"
              "<stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
              "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no &lt;DTD&gt;</text>"
              "</stream:error><stream:error><not-well-formed "
              "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
    /* What we write, we parse: the header comes back field for field. */
    rec_t r;
    b.len--;
    ssize_t rc = parse_log(b.data, b.len, NULL, &r);
    CHECK_EQ(rc, (ssize_t)b.len);
    CHECK(strncmp(rec_log(&r), "H to=juliet@example.com from=example.com id=a'b version=1.0 "
                               "lang=en ns=jabber:client\nS <error xmlns='http://etherx",
                  100) == 0);
    buf_fini(&r.log);
    buf_fini(&b);
}

static void test_cond_names(void)
{
    static const char *const names[] = {
        "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
        "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
        "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
        "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
        "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
        "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
        "unsupported-version",
    };
    CHECK_EQ(ARRAY_LEN(names), XMPP_XML_COND_COUNT - 1);
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        xmpp_xml_cond_t c;
        CHECK_STR(xmpp_xml_cond_name((xmpp_xml_cond_t)(i + 1)), names[i]);
        CHECK_EQ(xmpp_xml_cond_parse(str_from_cstr(names[i]), &c), 0);
        CHECK_EQ(c, i + 1);
    }
    xmpp_xml_cond_t c;
    CHECK_EQ(xmpp_xml_cond_parse(STR_LIT("bad"), &c), -ENOENT);
    CHECK_EQ(xmpp_xml_cond_parse(STR_LIT(""), &c), -ENOENT);
}

/* ---- Memory ------------------------------------------------------------ */

static void test_memory(void)
{
    if (!HEAP_MEASURABLE) {
        fprintf(stderr, "     heap not measurable under a sanitizer: skipped\n");
        return;
    }
    rec_t r;
    rec_init(&r);
    r.roundtrip = false;
    xmpp_xml_t p;
    size_t h0 = heap_used();
    xmpp_xml_init(&p, NULL, &rec_cbs, &r);
    CHECK_EQ(heap_used() - h0, 0);
    const char *hdr = "<?xml version='1.0'?>" HDR;
    CHECK_EQ(xmpp_xml_feed(&p, hdr, strlen(hdr)), (ssize_t)strlen(hdr));
    buf_reserve(&r.log, 65536);         /* the recorder's own growth out of the way */
    size_t h1 = heap_used();
    const char *msg = "<message to='romeo@example.net' type='chat' id='x1'>"
                      "<body>Wherefore art thou, Romeo?</body>"
                      "<active xmlns='http://jabber.org/protocol/chatstates'/></message>";
    r.heap_base = h1;
    CHECK_EQ(xmpp_xml_feed(&p, msg, strlen(msg)), (ssize_t)strlen(msg));
    size_t during = r.heap_in_stanza;
    size_t idle = heap_used() - h1;
    fprintf(stderr, "     sizeof(xmpp_xml_t) %zu; idle heap after a stanza %zu; "
                    "in a stanza callback %zu\n", sizeof(xmpp_xml_t), idle, during);
    CHECK_EQ(idle, 0);
    CHECK(xmpp_xml_idle(&p));
    CHECK(during > 10000);              /* the libxml2 context, mostly */

    /* A bigger stanza: the arena grows, and all of it goes afterwards. */
    buf_t big;
    buf_init(&big);
    buf_append_str(&big, "<iq type='set' id='r'><query xmlns='jabber:iq:roster'>");
    for (int i = 0; i < 300; i++)
        buf_printf(&big, "<item jid='user%d@example.com' name='User %d'><group>G</group></item>",
                   i, i);
    buf_append_str(&big, "</query></iq>");
    r.heap_in_stanza = 0;
    r.heap_base = h1 = heap_used();
    CHECK_EQ(xmpp_xml_feed(&p, big.data, big.len), (ssize_t)big.len);
    idle = heap_used() - h1;
    fprintf(stderr, "     a %zu-byte roster set: %zu in its callback, idle after %zu\n",
            big.len, r.heap_in_stanza, idle);
    CHECK_EQ(idle, 0);
    buf_fini(&big);
    xmpp_xml_fini(&p);
    buf_fini(&r.log);

    /* An unusual header keeps its own copy of the declarations. */
    h0 = heap_used();
    rec_init(&r);
    xmpp_xml_init(&p, NULL, &rec_cbs, &r);
    buf_reserve(&r.log, 4096);
    h1 = heap_used();
    const char *odd = "<stream:stream xmlns='jabber:client' xmlns:x='urn:example:extra' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>";
    CHECK_EQ(xmpp_xml_feed(&p, odd, strlen(odd)), (ssize_t)strlen(odd));
    fprintf(stderr, "     idle with an unusual header: %zu\n", heap_used() - h1);
    CHECK(heap_used() - h1 < 256);
    xmpp_xml_fini(&p);
    CHECK_EQ(heap_used(), h1);
    buf_fini(&r.log);
}

/* Keeping a context across stanzas versus rebuilding it: the cost per stanza
 * of being idle-cheap, printed for the record (not a benchmark). */
static xmpp_xml_verdict_t count_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    (void)el;
    (*(unsigned *)ctx)++;
    return XMPP_XML_CONTINUE;
}

static void test_rebuild_cost(void)
{
    static const xmpp_xml_cbs_t cbs = { .stanza = count_stanza };
    const char *msg = "<message to='romeo@example.net' type='chat'><body>hi</body></message>";
    enum { N = 20000 };
    buf_t all;
    buf_init(&all);
    for (int i = 0; i < N; i++)
        buf_append_str(&all, msg);
    unsigned n = 0;
    xmpp_xml_t p;
    struct timespec t0, t1, t2;
    xmpp_xml_init(&p, NULL, &cbs, &n);
    CHECK_EQ(xmpp_xml_feed(&p, HDR, strlen(HDR)), (ssize_t)strlen(HDR));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++)
        xmpp_xml_feed(&p, msg, strlen(msg));       /* idle after each: rebuilt */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    xmpp_xml_feed(&p, all.data, all.len);          /* one context for all */
    clock_gettime(CLOCK_MONOTONIC, &t2);
    CHECK_EQ(n, 2 * N);
    double a = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
    double b = ((double)(t2.tv_sec - t1.tv_sec) * 1e9 + (double)(t2.tv_nsec - t1.tv_nsec)) / N;
    fprintf(stderr, "     per stanza: %.0f ns with a new context, %.0f ns sharing one\n", a, b);
    xmpp_xml_fini(&p);
    buf_fini(&all);
}

#define TUNABLES "glibc.malloc.tcache_count=0"

int main(int argc, char **argv)
{
    (void)argc;
    if (HEAP_MEASURABLE) {
        const char *t = getenv("GLIBC_TUNABLES");
        if (!t || strcmp(t, TUNABLES) != 0) {
            setenv("GLIBC_TUNABLES", TUNABLES, 1);
            execv("/proc/self/exe", argv);
            perror("re-exec with GLIBC_TUNABLES");     /* measure anyway */
        }
    }
    xmpp_xml_global_init();
    T_RUN(test_session_cuts);
    T_RUN(test_header_variants);
    T_RUN(test_namespaces);
    T_RUN(test_restart);
    T_RUN(test_restricted);
    T_RUN(test_prolog);
    T_RUN(test_not_well_formed);
    T_RUN(test_stanza_size);
    T_RUN(test_structure_limits);
    T_RUN(test_keepalive_and_close);
    T_RUN(test_roundtrip);
    T_RUN(test_writers);
    T_RUN(test_cond_names);
    T_RUN(test_memory);
    T_RUN(test_rebuild_cost);
    T_DONE();
}
