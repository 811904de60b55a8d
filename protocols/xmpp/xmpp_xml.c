/*
 * xmpp_xml.c - see xmpp_xml.h.
 *
 * libxml2 parses; this file decides what libxml2 gets to see and when, so that
 * memory stays bounded and the events do not depend on how bytes were cut.
 *
 *          first byte             header opened                 '<'
 *   PROLOG -----------> (libxml2) ---------------> GAP ------------------> STANZA
 *     |                                             ^  whitespace: keepalive  |
 *     |                                             +--- element ends -------+
 *     |                                                                      |
 *     +---- <stream:stream/> ----> CLOSED <------- </stream:stream> ---------+
 *
 *   any state --stream error--> FAILED          reset() --> PROLOG
 *
 * Between first-level elements (GAP) the bytes are checked here, not by
 * libxml2: whitespace is a keepalive, '<' starts an element, anything else is
 * bad-format. Whitespace is not passed on, so libxml2 only ever holds the bytes
 * of the element under way, at most stanza_bytes_max of them counted from its
 * '<' (the feed is cut there; one more byte is policy-violation).
 *
 * libxml2 reads further than the element it reports, so when an element ends
 * inside a feed the bytes after it are already in its input buffer: the gap
 * check runs over them right there, in the end-of-element callback
 * (gap_after), and libxml2 goes on to parse the next element by itself. Stream
 * positions are therefore kept in one coordinate (p->pos counts every byte
 * taken) and libxml2's cursor is mapped onto it with xml_off, which changes
 * when gap whitespace is skipped and when a context is created.
 *
 * Idle connections hold no libxml2 context. When a feed ends in GAP, the
 * context and the arena are freed; the next element gets a fresh context that
 * is first fed the "prime", a copy of the stream header's namespace
 * declarations (p->prime), so that the element is parsed in the same
 * namespace scope as in one long document. Element names and prefixes do not
 * leak from one element to the next through libxml2 state that matters: the
 * header's declarations are the only context a first-level element inherits
 * (no DTD, so no defaults or entities). A fresh context also means libxml2's
 * name dictionary and input buffer never grow with the life of the stream.
 *
 * Trees are built in an arena of malloc'd blocks (newest first); after each
 * event the blocks beyond the first are freed and the first is reused, and all
 * of them go when the parser goes idle.
 */
#include "protocols/xmpp/xmpp_xml.h"

#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

/* The idle cost per connection; the fields are all needed while a stanza is
 * parsed, and 64-bit stream positions because s2s streams live for weeks. */
_Static_assert(sizeof(xmpp_xml_t) <= 168, "the idle cost per XMPP connection");
_Static_assert(XMPP_XML_DEPTH_LIMIT <= UINT8_MAX, "depth_max is a uint8_t");
_Static_assert(XMPP_XML_DEPTH_LIMIT + 2 <= UINT16_MAX, "depth is a uint16_t");
_Static_assert((uint64_t)XMPP_XML_STANZA_BYTES_LIMIT * 2 < INT_MAX,
               "one libxml2 chunk (prime + stanza) fits its int length");
_Static_assert(XMPP_XML_TREE_BYTES_LIMIT < UINT32_MAX / 2, "tree_bytes is a uint32_t");
_Static_assert(XMPP_XML_COND_COUNT == 26, "RFC 6120 §4.9.3 has 25 conditions, plus NONE");

/* First arena block, header included: a message with a body, a presence with
 * caps and a vCard-update hash, or an iq with a roster item fits in it. */
#define ARENA_FIRST_BYTES 2048u
/* Later blocks double up to this; bigger requests get a block of their own. */
#define ARENA_BLOCK_MAX_BYTES (64u * 1024)
/* Smallest text buffer: most texts are short, growth doubles it. */
#define TEXT_MIN_BYTES 32u

enum { ST_PROLOG, ST_GAP, ST_STANZA, ST_CLOSED, ST_FAILED };

struct xmpp_xml_block {
    struct xmpp_xml_block *prev;    /* older block */
    uint32_t used, cap;
    alignas(8) char data[];
};

/* The feed under way: where its bytes sit in the stream. */
struct xmpp_xml_frame {
    const char *data;
    size_t len;
    uint64_t base;                  /* stream position of data[0] */
};

const xmpp_xml_limits_t xmpp_xml_limits_default = {
    .stanza_bytes_max = XMPP_XML_STANZA_BYTES_DEFAULT,
    .depth_max = XMPP_XML_DEPTH_DEFAULT,
    .attrs_max = XMPP_XML_ATTRS_DEFAULT,
    .children_max = XMPP_XML_CHILDREN_DEFAULT,
    .tree_bytes_max = XMPP_XML_TREE_BYTES_DEFAULT,
};

/* RFC 6120 §4.9.3.1 - §4.9.3.25, in the enum's order. */
static const char *const cond_names[XMPP_XML_COND_COUNT] = {
    [XMPP_XML_COND_NONE] = "",
    [XMPP_XML_COND_BAD_FORMAT] = "bad-format",
    [XMPP_XML_COND_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
    [XMPP_XML_COND_CONFLICT] = "conflict",
    [XMPP_XML_COND_CONNECTION_TIMEOUT] = "connection-timeout",
    [XMPP_XML_COND_HOST_GONE] = "host-gone",
    [XMPP_XML_COND_HOST_UNKNOWN] = "host-unknown",
    [XMPP_XML_COND_IMPROPER_ADDRESSING] = "improper-addressing",
    [XMPP_XML_COND_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [XMPP_XML_COND_INVALID_FROM] = "invalid-from",
    [XMPP_XML_COND_INVALID_NAMESPACE] = "invalid-namespace",
    [XMPP_XML_COND_INVALID_XML] = "invalid-xml",
    [XMPP_XML_COND_NOT_AUTHORIZED] = "not-authorized",
    [XMPP_XML_COND_NOT_WELL_FORMED] = "not-well-formed",
    [XMPP_XML_COND_POLICY_VIOLATION] = "policy-violation",
    [XMPP_XML_COND_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [XMPP_XML_COND_RESET] = "reset",
    [XMPP_XML_COND_RESOURCE_CONSTRAINT] = "resource-constraint",
    [XMPP_XML_COND_RESTRICTED_XML] = "restricted-xml",
    [XMPP_XML_COND_SEE_OTHER_HOST] = "see-other-host",
    [XMPP_XML_COND_SYSTEM_SHUTDOWN] = "system-shutdown",
    [XMPP_XML_COND_UNDEFINED_CONDITION] = "undefined-condition",
    [XMPP_XML_COND_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [XMPP_XML_COND_UNSUPPORTED_FEATURE] = "unsupported-feature",
    [XMPP_XML_COND_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [XMPP_XML_COND_UNSUPPORTED_VERSION] = "unsupported-version",
};

const char *xmpp_xml_cond_name(xmpp_xml_cond_t cond)
{
    ASSERT((unsigned)cond < XMPP_XML_COND_COUNT);
    return cond_names[cond];
}

int xmpp_xml_cond_parse(str_t name, xmpp_xml_cond_t *out)
{
    for (unsigned i = XMPP_XML_COND_NONE + 1; i < XMPP_XML_COND_COUNT; i++) {
        if (str_eq_cstr(name, cond_names[i])) {
            *out = (xmpp_xml_cond_t)i;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- Small helpers ----------------------------------------------------- */

static inline bool is_xml_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';   /* XML 1.0 [3] S */
}

static inline str_t xstr(const xmlChar *s)
{
    return str_from_cstr((const char *)s);
}

/* Namespaces almost every element carries: pointed to, never copied. */
static const str_t known_ns[] = {
    STR_LIT(XMPP_XML_NS_CLIENT),
    STR_LIT(XMPP_XML_NS_SERVER),
    STR_LIT(XMPP_XML_NS_STREAMS),
    STR_LIT(XMPP_XML_NS_XML),
};

static inline xmpp_xml_el_t *mut_el(const xmpp_xml_el_t *el)
{
    return (xmpp_xml_el_t *)el;     /* the builder owns every element it made */
}

/* ---- Arena ------------------------------------------------------------- */

static void *arena_alloc(xmpp_xml_t *p, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct xmpp_xml_block *b = p->arena;
    if (b && b->cap - b->used >= n) {
        void *r = b->data + b->used;
        b->used += (uint32_t)n;
        return r;
    }
    size_t cap = b ? (size_t)b->cap * 2 : ARENA_FIRST_BYTES - sizeof(*b);
    if (cap > ARENA_BLOCK_MAX_BYTES)
        cap = ARENA_BLOCK_MAX_BYTES;
    if (cap < n)
        cap = n;
    struct xmpp_xml_block *nb = malloc(sizeof(*nb) + cap);
    if (!nb)
        return NULL;
    nb->prev = b;
    nb->used = (uint32_t)n;
    nb->cap = (uint32_t)cap;
    p->arena = nb;
    return nb->data;
}

/* After an event: keep the first block (if it is the small one) for the next. */
static void arena_reset(xmpp_xml_t *p)
{
    struct xmpp_xml_block *b = p->arena;
    while (b && b->prev) {
        struct xmpp_xml_block *prev = b->prev;
        free(b);
        b = prev;
    }
    if (b && b->cap > ARENA_FIRST_BYTES - sizeof(*b)) {
        free(b);
        b = NULL;
    }
    if (b)
        b->used = 0;
    p->arena = b;
    p->cur = NULL;
    p->tree_bytes = 0;
}

static void arena_free(xmpp_xml_t *p)
{
    arena_reset(p);
    free(p->arena);
    p->arena = NULL;
}

static bool arena_copy(xmpp_xml_t *p, const char *s, size_t n, str_t *out)
{
    if (n == 0) {
        *out = (str_t){ "", 0 };
        return true;
    }
    char *d = arena_alloc(p, n);
    if (!d)
        return false;
    memcpy(d, s, n);
    *out = (str_t){ d, n };
    return true;
}

/* ---- Errors ------------------------------------------------------------ */

static uint64_t xml_pos(const xmpp_xml_t *p);

/* Halts libxml2 where it is: no callback runs after this one in this feed. */
static void halt(xmpp_xml_t *p)
{
    if (p->ctxt && p->in_feed && !p->halted)
        xmlStopParser(p->ctxt);
    p->halted = true;
}

/* The first error wins; the callback and the return code come at the end of
 * the feed, never from inside libxml2. */
static void fail(xmpp_xml_t *p, xmpp_xml_cond_t cond, const char *reason, int xml_code)
{
    ASSERT(cond != XMPP_XML_COND_NONE);
    if (p->state == ST_FAILED)
        return;
    p->err = (xmpp_xml_error_t){
        .cond = cond,
        .reason = reason,
        .xml_code = xml_code,
        .offset = (p->ctxt && p->in_feed) ? xml_pos(p) : p->pos,
    };
    p->state = ST_FAILED;
    halt(p);
}

static int fail_rc(const xmpp_xml_t *p)
{
    ASSERT(p->state == ST_FAILED);
    switch (p->err.cond) {
    case XMPP_XML_COND_POLICY_VIOLATION:
        return -E2BIG;
    case XMPP_XML_COND_RESOURCE_CONSTRAINT:
        return -ENOMEM;
    default:
        return -EBADMSG;
    }
}

static void fail_oom(xmpp_xml_t *p)
{
    fail(p, XMPP_XML_COND_RESOURCE_CONSTRAINT, "out of memory", 0);
}

/* libxml2's error codes, sorted into RFC 6120 conditions. */
static xmpp_xml_cond_t cond_for_xml_error(const xmlError *e, const char **reason)
{
    *reason = "malformed XML";
    switch (e->domain) {
    case XML_FROM_NAMESPACE:
        /* §4.9.3.13: not-well-formed covers the rules of [XML-NAMES] too. */
        *reason = "namespace error";
        return XMPP_XML_COND_NOT_WELL_FORMED;
    case XML_FROM_DTD:
    case XML_FROM_VALID:
    case XML_FROM_IO:
        *reason = "DTD or external entity";
        return XMPP_XML_COND_RESTRICTED_XML;
    case XML_FROM_MEMORY:
        *reason = "out of memory";
        return XMPP_XML_COND_RESOURCE_CONSTRAINT;
    case XML_FROM_I18N:
        /* A declared encoding's converter choking: how much it saw depends
         * on the cuts, the condition must not. */
        *reason = "encoding other than UTF-8";
        return XMPP_XML_COND_UNSUPPORTED_ENCODING;
    default:
        break;
    }
    switch (e->code) {
    case XML_ERR_NO_MEMORY:
        *reason = "out of memory";
        return XMPP_XML_COND_RESOURCE_CONSTRAINT;
    case XML_ERR_UNDECLARED_ENTITY:
    case XML_WAR_UNDECLARED_ENTITY:
    case XML_ERR_UNPARSED_ENTITY:
    case XML_ERR_ENTITY_IS_EXTERNAL:
    case XML_ERR_ENTITY_IS_PARAMETER:
    case XML_ERR_ENTITY_LOOP:
    case XML_ERR_ENTITY_PROCESSING:
        *reason = "entity reference";           /* §11.1 */
        return XMPP_XML_COND_RESTRICTED_XML;
    case XML_ERR_COMMENT_NOT_FINISHED:
    case XML_ERR_HYPHEN_IN_COMMENT:
        *reason = "comment";
        return XMPP_XML_COND_RESTRICTED_XML;
    case XML_ERR_PI_NOT_STARTED:
    case XML_ERR_PI_NOT_FINISHED:
    case XML_ERR_RESERVED_XML_NAME:             /* an XML declaration past the start */
        *reason = "processing instruction";
        return XMPP_XML_COND_RESTRICTED_XML;
    case XML_ERR_NOTATION_NOT_STARTED:
    case XML_ERR_NOTATION_NOT_FINISHED:
    case XML_ERR_ATTLIST_NOT_STARTED:
    case XML_ERR_ATTLIST_NOT_FINISHED:
    case XML_ERR_MIXED_NOT_STARTED:
    case XML_ERR_MIXED_NOT_FINISHED:
    case XML_ERR_ELEMCONTENT_NOT_STARTED:
    case XML_ERR_ELEMCONTENT_NOT_FINISHED:
    case XML_ERR_CONDSEC_NOT_STARTED:
    case XML_ERR_CONDSEC_NOT_FINISHED:
    case XML_ERR_EXT_SUBSET_NOT_FINISHED:
    case XML_ERR_DOCTYPE_NOT_FINISHED:
    case XML_ERR_CONDSEC_INVALID:
    case XML_ERR_CONDSEC_INVALID_KEYWORD:
    case XML_ERR_NOTATION_PROCESSING:
        *reason = "DTD";
        return XMPP_XML_COND_RESTRICTED_XML;
    case XML_ERR_UNKNOWN_ENCODING:
    case XML_ERR_UNSUPPORTED_ENCODING:
    case XML_ERR_INVALID_ENCODING:
        *reason = "encoding other than UTF-8";  /* §11.6 */
        return XMPP_XML_COND_UNSUPPORTED_ENCODING;
    case XML_ERR_NAME_TOO_LONG:
        *reason = "name too long";
        return XMPP_XML_COND_POLICY_VIOLATION;
    default:
        return XMPP_XML_COND_NOT_WELL_FORMED;
    }
}

/* ---- Positions --------------------------------------------------------- */

/* The stream position of libxml2's cursor (inside a callback: just after what
 * it reported, or at the '>' of a start tag). There is never an encoder (UTF-8
 * only), so input bytes and buffer bytes are the same. */
static uint64_t xml_pos(const xmpp_xml_t *p)
{
    const xmlParserInput *in = p->ctxt->input;
    int64_t at = (int64_t)in->consumed + (in->cur - in->base);
    return (uint64_t)(at + p->xml_off);
}

/* ---- Between first-level elements -------------------------------------- */

/*
 * Checks the bytes right after a first-level '<' (stanza_start) among s[0, n)
 * at stream positions [at, at + n). Markup that is not an element is refused
 * here rather than by libxml2, which hands a CDATA section over in pieces
 * whose size depends on the cuts: "<?" is a processing instruction, "<!-" a
 * comment, "<!D..." a DTD (restricted-xml, RFC 6120 §11.1), "<![" a CDATA
 * section, i.e. text between first-level elements (bad-format).
 */
enum { LT_DONE = 3 };

static void lt_scan(xmpp_xml_t *p, const char *s, size_t n, uint64_t at)
{
    while (p->lt_checked < LT_DONE && p->state == ST_STANZA) {
        uint64_t pos = p->stanza_start + p->lt_checked;
        if (pos < at || pos >= at + n)
            return;
        char c = s[pos - at];
        if (p->lt_checked == 0) {
            p->lt_checked = 1;                  /* the '<' itself */
            continue;
        }
        if (p->lt_checked == 1) {
            if (c == '?')
                fail(p, XMPP_XML_COND_RESTRICTED_XML, "processing instruction", 0);
            p->lt_checked = c == '!' ? 2 : LT_DONE;
            continue;
        }
        if (c == '[')
            fail(p, XMPP_XML_COND_BAD_FORMAT, "text between first-level elements", 0);
        else
            fail(p, XMPP_XML_COND_RESTRICTED_XML, c == '-' ? "comment" : "DTD", 0);
        p->lt_checked = LT_DONE;
    }
}

/*
 * Checks gap bytes s[0, n) at stream positions [at, at + n), skipping those
 * already checked. Whitespace: a keepalive at the start of each run. '<': the
 * next element starts (state STANZA). Anything else: bad-format. Returns how
 * many of the n bytes belong to the gap.
 */
static size_t gap_scan(xmpp_xml_t *p, const char *s, size_t n, uint64_t at)
{
    ASSERT(p->state == ST_GAP);
    ASSERT(p->scan_pos >= at && p->scan_pos <= at + n);
    size_t i = (size_t)(p->scan_pos - at);
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_xml_space(c)) {
            if (!p->ws_run) {
                p->ws_run = true;
                if (p->cbs->keepalive)
                    p->cbs->keepalive(p->cb_ctx);
            }
            continue;
        }
        p->scan_pos = at + i;
        if (c == '<') {
            p->state = ST_STANZA;
            p->stanza_start = at + i;
            p->tree_bytes = 0;
            p->lt_checked = 0;
            lt_scan(p, s, n, at);
        } else {
            fail(p, XMPP_XML_COND_BAD_FORMAT, "text between first-level elements", 0);
        }
        return i;
    }
    p->scan_pos = at + n;
    return n;
}

/* An element ended (or the header opened) inside libxml2 at stream position b:
 * either cut the stream there (STOP) or check the gap bytes libxml2 already
 * holds. */
static void gap_after(xmpp_xml_t *p, uint64_t b, const xmlChar *from, xmpp_xml_verdict_t v)
{
    p->state = ST_GAP;
    p->ws_run = false;
    p->scan_pos = b;
    if (v == XMPP_XML_STOP) {
        p->stop_pos = b;
        halt(p);
        return;
    }
    const xmlParserInput *in = p->ctxt->input;
    ASSERT(from >= in->cur && from <= in->end);
    gap_scan(p, (const char *)from, (size_t)(in->end - from), b);
}

/* ---- The stream header ------------------------------------------------- */

/* Static primes for the usual headers, so that most idle connections own no
 * copy. Order: the stream prefix, the default namespace, the rest as sent. */
#define PRIME_HEAD "<stream:stream xmlns:stream='" XMPP_XML_NS_STREAMS "'"
static const char *const static_primes[] = {
    PRIME_HEAD " xmlns='" XMPP_XML_NS_CLIENT "'>",
    PRIME_HEAD " xmlns='" XMPP_XML_NS_SERVER "'>",
    PRIME_HEAD " xmlns='" XMPP_XML_NS_SERVER "' xmlns:db='jabber:server:dialback'>",
};

static void escape(buf_t *b, const char *s, size_t n, bool attr);
static bool copy_decoded(xmpp_xml_t *p, const xmlChar *v, const xmlChar *end, str_t *out);
static inline const xmlChar *xend(const xmlChar *s);

static void prime_free(xmpp_xml_t *p)
{
    if (p->prime_owned)
        free((char *)p->prime);
    p->prime = NULL;
    p->prime_len = 0;
    p->prime_owned = false;
}

/* Builds the prime from the header's namespace declarations (pairs of prefix,
 * URI; the prefix NULL for the default namespace). */
static int prime_build(xmpp_xml_t *p, int nb_ns, const xmlChar **ns)
{
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, PRIME_HEAD);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < nb_ns; i++) {
            const xmlChar *pfx = ns[2 * i], *uri = ns[2 * i + 1];
            if (pfx && strcmp((const char *)pfx, "stream") == 0)
                continue;                       /* PRIME_HEAD has it */
            if ((pass == 0) != (pfx == NULL))
                continue;                       /* default namespace first */
            buf_append_str(&b, " xmlns");
            if (pfx) {
                buf_append(&b, ":", 1);
                buf_append_str(&b, (const char *)pfx);
            }
            buf_append(&b, "='", 2);
            str_t u;
            if (!copy_decoded(p, uri, xend(uri), &u)) {
                buf_fini(&b);
                return -ENOMEM;
            }
            escape(&b, u.ptr, u.len, true);
            buf_append(&b, "'", 1);
        }
    }
    buf_append(&b, ">", 1);
    prime_free(p);
    for (size_t i = 0; i < ARRAY_LEN(static_primes); i++) {
        if (b.len == strlen(static_primes[i]) && memcmp(b.data, static_primes[i], b.len) == 0) {
            p->prime = static_primes[i];
            p->prime_len = (uint32_t)b.len;
            buf_fini(&b);
            return 0;
        }
    }
    char *copy = malloc(b.len);                 /* exact: it lives as long as the stream */
    if (copy)
        memcpy(copy, b.data, b.len);
    p->prime = copy;
    p->prime_len = copy ? (uint32_t)b.len : 0;
    p->prime_owned = copy != NULL;
    buf_fini(&b);
    return copy ? 0 : -ENOMEM;
}

/* Copies an attribute value or a namespace name, decoded. With entity
 * substitution off, libxml2 hands a '&' that came from &amp; or &#38; over as
 * "&#38;" (so that a tree builder could re-parse it), in namespace names too;
 * every other reference arrives decoded. */
static bool copy_decoded(xmpp_xml_t *p, const xmlChar *v, const xmlChar *end, str_t *out)
{
    size_t n = (size_t)(end - v);
    if (n == 0) {
        *out = (str_t){ "", 0 };
        return true;
    }
    char *d = arena_alloc(p, n);
    if (!d)
        return false;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        d[j++] = (char)v[i];
        if (v[i] == '&' && n - i >= 5 && memcmp(v + i + 1, "#38;", 4) == 0)
            i += 4;
    }
    *out = (str_t){ d, j };
    return true;
}

static inline const xmlChar *xend(const xmlChar *s)
{
    return s + strlen((const char *)s);
}

static void on_header(xmpp_xml_t *p, const xmlChar *local, const xmlChar *prefix,
                      const xmlChar *uri, int nb_ns, const xmlChar **ns, int nb_attrs,
                      const xmlChar **attrs)
{
    /* §4.8.1, §4.9.3.10: the root must be the stream element. */
    if (!uri || strcmp((const char *)uri, XMPP_XML_NS_STREAMS) != 0 ||
        strcmp((const char *)local, "stream") != 0) {
        fail(p, XMPP_XML_COND_INVALID_NAMESPACE, "root is not {streams}stream", 0);
        return;
    }
    /* §4.8.5 lets an implementation accept only the prefix "stream"; §4.9.3.2's
     * example of bad-namespace-prefix is <foobar:stream/>. */
    if (!prefix || strcmp((const char *)prefix, "stream") != 0) {
        fail(p, XMPP_XML_COND_BAD_NAMESPACE_PREFIX, "stream prefix is not 'stream'", 0);
        return;
    }
    if ((uint32_t)nb_attrs + (uint32_t)nb_ns > p->attrs_max) {
        fail(p, XMPP_XML_COND_POLICY_VIOLATION, "too many attributes", 0);
        return;
    }
    xmpp_xml_header_t h = { 0 };
    for (int i = 0; i < nb_ns; i++) {
        if (ns[2 * i] != NULL)
            continue;
        /* §4.8.2, §4.9.3.10: the content namespace, if declared as the
         * default, is jabber:client or jabber:server. */
        str_t u = xstr(ns[2 * i + 1]);
        if (!str_eq_cstr(u, XMPP_XML_NS_CLIENT) && !str_eq_cstr(u, XMPP_XML_NS_SERVER)) {
            fail(p, XMPP_XML_COND_INVALID_NAMESPACE, "unsupported content namespace", 0);
            return;
        }
        h.content_ns = str_eq_cstr(u, XMPP_XML_NS_CLIENT) ? known_ns[0] : known_ns[1];
    }
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i;  /* localname, prefix, URI, value, end */
        str_t *dst = NULL;
        const char *name = (const char *)a[0];
        if (a[2] == NULL) {
            if (strcmp(name, "to") == 0)
                dst = &h.to;
            else if (strcmp(name, "from") == 0)
                dst = &h.from;
            else if (strcmp(name, "id") == 0)
                dst = &h.id;
            else if (strcmp(name, "version") == 0)
                dst = &h.version;
        } else if (strcmp((const char *)a[2], XMPP_XML_NS_XML) == 0 && strcmp(name, "lang") == 0) {
            dst = &h.lang;
        }
        if (dst && !copy_decoded(p, a[3], a[4], dst)) {
            fail_oom(p);
            return;
        }
    }
    if (prime_build(p, nb_ns, ns) < 0) {
        fail_oom(p);
        return;
    }
    p->depth = 1;
    p->state = ST_GAP;
    xmpp_xml_verdict_t v = p->cbs->header ? p->cbs->header(p->cb_ctx, &h) : XMPP_XML_CONTINUE;
    arena_reset(p);
    /* libxml2 calls back with its cursor on the start tag's '>' or "/>". */
    const xmlParserInput *in = p->ctxt->input;
    if (in->cur < in->end && *in->cur == '>')
        gap_after(p, xml_pos(p) + 1, in->cur + 1, v);
    /* else <stream:stream/>: the end callback follows at once and closes the
     * stream; a STOP there is ignored, or "closed" would be lost. */
}

/* ---- Building the tree ------------------------------------------------- */

static bool charge(xmpp_xml_t *p, size_t n)
{
    if (n > p->tree_bytes_max - p->tree_bytes) {
        fail(p, XMPP_XML_COND_POLICY_VIOLATION, "stanza tree too large", 0);
        return false;
    }
    p->tree_bytes += (uint32_t)n;
    return true;
}

/* The namespace string for an element: the parent's or a known one when equal
 * (no copy), else a copy. */
static bool el_ns(xmpp_xml_t *p, const xmpp_xml_el_t *parent, const xmlChar *uri, str_t *out)
{
    str_t u = uri ? xstr(uri) : (str_t){ "", 0 };
    bool copied = false;
    if (memchr(u.ptr, '&', u.len)) {
        /* Rare enough that the decoded copy may go to waste. */
        if (!copy_decoded(p, uri, xend(uri), &u)) {
            fail_oom(p);
            return false;
        }
        copied = true;
    }
    if (parent && str_eq(parent->ns, u)) {
        *out = parent->ns;
        return true;
    }
    /* Written again by xmpp_xml_write_el: part of the cost. */
    if (!charge(p, u.len))
        return false;
    for (size_t i = 0; i < ARRAY_LEN(known_ns); i++) {
        if (str_eq(known_ns[i], u)) {
            *out = known_ns[i];
            return true;
        }
    }
    if (copied) {
        *out = u;
        return true;
    }
    if (!arena_copy(p, u.ptr, u.len, out)) {
        fail_oom(p);
        return false;
    }
    return true;
}

static bool el_attrs(xmpp_xml_t *p, xmpp_xml_el_t *el, int nb_attrs, const xmlChar **attrs)
{
    if (nb_attrs == 0)
        return true;
    if (!charge(p, (size_t)nb_attrs * sizeof(xmpp_xml_attr_t)))
        return false;
    xmpp_xml_attr_t *at = arena_alloc(p, (size_t)nb_attrs * sizeof(*at));
    if (!at) {
        fail_oom(p);
        return false;
    }
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i;  /* localname, prefix, URI, value, end */
        str_t name = xstr(a[0]);
        str_t ns = a[2] ? xstr(a[2]) : (str_t){ "", 0 };
        if (!charge(p, name.len + ns.len + (size_t)(a[4] - a[3])))
            return false;
        if (!arena_copy(p, name.ptr, name.len, &at[i].name) ||
            !copy_decoded(p, a[3], a[4], &at[i].value)) {
            fail_oom(p);
            return false;
        }
        if (str_eq(ns, known_ns[3])) {
            at[i].ns = known_ns[3];
        } else if (!copy_decoded(p, (const xmlChar *)ns.ptr, (const xmlChar *)ns.ptr + ns.len,
                                 &at[i].ns)) {
            fail_oom(p);
            return false;
        }
    }
    el->attrs = at;
    el->attr_count = (uint32_t)nb_attrs;
    return true;
}

static void el_start(xmpp_xml_t *p, const xmlChar *local, const xmlChar *uri, int nb_ns,
                     int nb_attrs, const xmlChar **attrs)
{
    xmpp_xml_el_t *parent = p->cur;
    ASSERT((parent == NULL) == (p->depth == 1));
    /* The stanza is depth 1; the stream element is not counted. */
    if (p->depth > p->depth_max) {
        fail(p, XMPP_XML_COND_POLICY_VIOLATION, "stanza nested too deep", 0);
        return;
    }
    if ((uint32_t)nb_attrs + (uint32_t)nb_ns > p->attrs_max) {
        fail(p, XMPP_XML_COND_POLICY_VIOLATION, "too many attributes", 0);
        return;
    }
    if (parent && parent->child_count >= p->children_max) {
        fail(p, XMPP_XML_COND_POLICY_VIOLATION, "too many children", 0);
        return;
    }
    str_t name = xstr(local);
    if (!charge(p, sizeof(xmpp_xml_el_t) + name.len))
        return;
    xmpp_xml_el_t *el = arena_alloc(p, sizeof(*el));
    str_t copy;
    if (!el || !arena_copy(p, name.ptr, name.len, &copy)) {
        fail_oom(p);
        return;
    }
    *el = (xmpp_xml_el_t){ .name = copy, .text = { "", 0 } };
    if (!el_ns(p, parent, uri, &el->ns) || !el_attrs(p, el, nb_attrs, attrs))
        return;
    if (parent) {
        el->parent = parent;
        el->text_off = (uint32_t)parent->text.len;
        el->next = parent->children;            /* reversed when the parent ends */
        parent->children = el;
        parent->child_count++;
    }
    p->cur = el;
}

/* Children were prepended; put them back in document order. */
static void el_finish(xmpp_xml_el_t *el)
{
    const xmpp_xml_el_t *prev = NULL, *c = el->children;
    while (c) {
        const xmpp_xml_el_t *next = c->next;
        mut_el(c)->next = prev;
        prev = c;
        c = next;
    }
    el->children = prev;
}

static void text_append(xmpp_xml_t *p, xmpp_xml_el_t *el, const char *s, size_t n)
{
    if (!charge(p, n))
        return;
    size_t len = el->text.len;
    char *t = (char *)el->text.ptr;             /* our arena, or "" while empty */
    if (len + n > el->text_cap_) {
        struct xmpp_xml_block *b = p->arena;
        size_t want = (len + n + 7) & ~(size_t)7;
        if (el->text_cap_ > 0 && t + el->text_cap_ == b->data + b->used &&
            want - el->text_cap_ <= b->cap - b->used) {
            /* Still the newest allocation: grow in place. */
            b->used += (uint32_t)(want - el->text_cap_);
            el->text_cap_ = (uint32_t)want;
        } else {
            size_t cap = 2 * (len + n);
            if (cap < TEXT_MIN_BYTES)
                cap = TEXT_MIN_BYTES;
            char *nt = arena_alloc(p, cap);
            if (!nt) {
                fail_oom(p);
                return;
            }
            memcpy(nt, t, len);
            t = nt;
            el->text_cap_ = (uint32_t)((cap + 7) & ~(size_t)7);
        }
    }
    memcpy(t + len, s, n);
    el->text = (str_t){ t, len + n };
}

/* ---- SAX callbacks ----------------------------------------------------- */

/* The encoding named by the XML declaration, read from the raw bytes (libxml2
 * is told to ignore it, see ctxt_create); ptr NULL if there is none. The
 * declaration starts the document, so it is still at the start of the buffer. */
static str_t declared_encoding(const xmlParserInput *in)
{
    const char *s = (const char *)in->base, *end = (const char *)in->cur;
    if (in->consumed != 0)
        return (str_t){ NULL, 0 };
    if (end - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    if (end - s < 5 || memcmp(s, "<?xml", 5) != 0)
        return (str_t){ NULL, 0 };
    /* libxml2 has checked the syntax: the first "encoding" followed by '='
     * and a quote is the EncodingDecl (XML 1.0 [80]). */
    for (const char *q = s + 5; end - q >= 8; q++) {
        if (memcmp(q, "encoding", 8) != 0)
            continue;
        const char *r = q + 8;
        while (r < end && is_xml_space((unsigned char)*r))
            r++;
        if (r == end || *r++ != '=')
            continue;
        while (r < end && is_xml_space((unsigned char)*r))
            r++;
        if (r == end || (*r != '\'' && *r != '"'))
            continue;
        char quote = *r++;
        const char *v = r;
        while (r < end && *r != quote)
            r++;
        return (str_t){ v, (size_t)(r - v) };
    }
    return (str_t){ NULL, 0 };
}

static void on_start_document(void *ctx)
{
    xmpp_xml_t *p = ctx;
    if (p->halted || p->priming)
        return;
    /* §11.6: UTF-8 only. Called once the XML declaration, if any, is parsed. */
    const xmlParserInput *in = p->ctxt->input;
    str_t enc = declared_encoding(in);
    if ((in->buf && in->buf->encoder) ||
        (enc.ptr && !(enc.len == 5 && strncasecmp(enc.ptr, "UTF-8", 5) == 0) &&
         !(enc.len == 4 && strncasecmp(enc.ptr, "UTF8", 4) == 0)))
        fail(p, XMPP_XML_COND_UNSUPPORTED_ENCODING, "encoding other than UTF-8", 0);
}

/* libxml2 reports a start tag before it checks that the tag ends ("<a b='1'\x06"
 * gives startElementNs, then "Couldn't find end of Start Tag"). Its cursor is
 * on the '>' or "/>" of a good one, so a bad one fails here, before anything
 * is delivered for it. */
static bool start_tag_ends(const xmpp_xml_t *p)
{
    const xmlParserInput *in = p->ctxt->input;
    size_t avail = (size_t)(in->end - in->cur);
    return (avail >= 1 && in->cur[0] == '>') ||
           (avail >= 2 && in->cur[0] == '/' && in->cur[1] == '>');
}

static void on_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
                     int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted,
                     const xmlChar **attrs)
{
    xmpp_xml_t *p = ctx;
    (void)nb_defaulted;                         /* 0: there is no DTD */
    if (p->halted)
        return;
    if (!start_tag_ends(p)) {
        fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "malformed start tag", XML_ERR_GT_REQUIRED);
        return;
    }
    if (p->depth == 0) {
        if (p->priming) {
            p->priming = false;                 /* our replayed header */
            p->depth = 1;
        } else {
            on_header(p, local, prefix, uri, nb_ns, ns, nb_attrs, attrs);
        }
        return;
    }
    ASSERT(p->state == ST_STANZA);
    el_start(p, local, uri, nb_ns, nb_attrs, attrs);
    if (!p->halted)
        p->depth++;
}

static void on_end(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
    xmpp_xml_t *p = ctx;
    (void)local, (void)prefix, (void)uri;
    if (p->halted)
        return;
    ASSERT(p->depth > 0);
    p->depth--;
    if (p->depth == 0) {
        /* </stream:stream> (§4.4): what follows is not parsed. */
        p->state = ST_CLOSED;
        halt(p);
        if (p->cbs->closed)
            p->cbs->closed(p->cb_ctx);
        return;
    }
    xmpp_xml_el_t *el = p->cur;
    ASSERT(el != NULL);
    el_finish(el);
    if (p->depth > 1) {
        p->cur = mut_el(el->parent);
        return;
    }
    ASSERT(el->parent == NULL);
    xmpp_xml_verdict_t v = p->cbs->stanza ? p->cbs->stanza(p->cb_ctx, el) : XMPP_XML_CONTINUE;
    arena_reset(p);
    gap_after(p, xml_pos(p), p->ctxt->input->cur, v);
}

static size_t utf8_char_len(const unsigned char *s, size_t n);
static void on_characters(void *ctx, const xmlChar *s, int n);

/* A CDATA section's text: libxml2's push parser lets overlong UTF-8 forms through there
 * (an overlong '<' among them), which other text never carries; refused (RFC 6120 §11.6).
 * It hands the section over in whole characters, so a piece never ends inside one. */
static void on_cdata(void *ctx, const xmlChar *s, int n)
{
    xmpp_xml_t *p = ctx;
    if (p->halted || n <= 0)
        return;
    for (size_t i = 0; i < (size_t)n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t step = utf8_char_len(s + i, (size_t)n - i);
        if (step == 0) {
            fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "invalid UTF-8", 0);
            return;
        }
        i += step;
    }
    on_characters(ctx, s, n);
}

static void on_characters(void *ctx, const xmlChar *s, int n)
{
    xmpp_xml_t *p = ctx;
    if (p->halted || n <= 0)
        return;
    if (p->depth <= 1) {
        /* Between first-level elements gap_scan has vetted every byte: only
         * whitespace (or a CDATA section of it) reaches here. */
        for (int i = 0; i < n; i++) {
            if (!is_xml_space(s[i])) {
                fail(p, XMPP_XML_COND_BAD_FORMAT, "text between first-level elements", 0);
                return;
            }
        }
        return;
    }
    text_append(p, p->cur, (const char *)s, (size_t)n);
}

/* §11.1: none of these may appear in an XMPP stream. */
static void on_comment(void *ctx, const xmlChar *value)
{
    (void)value;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "comment", 0);
}

static void on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
    (void)target, (void)data;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "processing instruction", 0);
}

/* Called at <!DOCTYPE name ...> before any of the internal subset is parsed,
 * so no entity is ever declared. */
static void on_dtd(void *ctx, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
    (void)name, (void)ext_id, (void)sys_id;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "DTD", 0);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
    (void)name, (void)type, (void)public_id, (void)system_id, (void)content;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "entity declaration", 0);
}

/* Asked for every reference other than the five predefined entities, which
 * libxml2 resolves itself first. */
static xmlEntityPtr on_get_entity(void *ctx, const xmlChar *name)
{
    (void)name;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "entity reference", 0);
    return NULL;
}

static void on_reference(void *ctx, const xmlChar *name)
{
    (void)name;
    fail(ctx, XMPP_XML_COND_RESTRICTED_XML, "entity reference", 0);
}

static void on_serror(void *ctx, xmlErrorPtr e)
{
    xmpp_xml_t *p = ctx;
    if (!p || !e || e->level < XML_ERR_ERROR)
        return;                                 /* warnings: relative namespace URIs, ... */
    if (p->halted)
        return;
    const char *reason;
    xmpp_xml_cond_t cond = cond_for_xml_error(e, &reason);
    fail(p, cond, reason, e->code);
}

/* Never written to: xmlCreatePushParserCtxt copies it. */
static xmlSAXHandler sax_handler = {
    .internalSubset = on_dtd,
    .externalSubset = on_dtd,
    .getEntity = on_get_entity,
    .getParameterEntity = on_get_entity,
    .entityDecl = on_entity_decl,
    .reference = on_reference,
    .startDocument = on_start_document,
    .characters = on_characters,
    .cdataBlock = on_cdata,
    .ignorableWhitespace = on_characters,
    .processingInstruction = on_pi,
    .comment = on_comment,
    .initialized = XML_SAX2_MAGIC,
    .startElementNs = on_start,
    .endElementNs = on_end,
    .serror = on_serror,
};

/* ---- Contexts ---------------------------------------------------------- */

/* A new libxml2 context for the bytes at p->pos: the document's first byte
 * (PROLOG), or a first-level element's '<', after the replayed header. */
static int ctxt_create(xmpp_xml_t *p)
{
    ASSERT(p->ctxt == NULL);
    const char *chunk = NULL;
    int size = 0;
    if (p->state == ST_STANZA) {
        ASSERT(p->pos == p->stanza_start);
        ASSERT(p->prime != NULL);
        chunk = p->prime;
        size = (int)p->prime_len;
    }
    xmlParserCtxtPtr c = xmlCreatePushParserCtxt(&sax_handler, p, chunk, size, NULL);
    if (!c)
        return -ENOMEM;
    /* No network, no DTD loading, no entity substitution, no defaulted
     * attributes (off by default). The encoding declaration is ignored, so
     * that libxml2 never switches to a converter whose failures depend on how
     * much input it has: on_start_document refuses anything but UTF-8, and
     * encoding_check what would be detected from the first bytes. */
    xmlCtxtUseOptions(c, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
    p->ctxt = c;
    p->priming = chunk != NULL;
    p->depth = 0;
    p->xml_off = (int64_t)p->pos - size;
    return 0;
}

static void ctxt_free(xmpp_xml_t *p)
{
    if (p->ctxt) {
        xmlFreeParserCtxt(p->ctxt);
        p->ctxt = NULL;
    }
    p->priming = false;
}

/* ---- Lifecycle --------------------------------------------------------- */

/* libxml2's generic error channel (encoding converters, I/O) prints to stderr
 * whatever a peer's bytes provoke; parsers here report through their
 * structured handler instead. */
static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx, (void)msg;
}

void xmpp_xml_global_init(void)
{
    LIBXML_TEST_VERSION
    xmlInitParser();
    xmlThrDefSetGenericErrorFunc(NULL, quiet);  /* threads started from now on */
    xmlSetGenericErrorFunc(NULL, quiet);        /* this thread */
}

void xmpp_xml_init(xmpp_xml_t *p, const xmpp_xml_limits_t *lim, const xmpp_xml_cbs_t *cbs,
                   void *ctx)
{
    if (!lim)
        lim = &xmpp_xml_limits_default;
    ASSERT(cbs != NULL);
    ASSERT(lim->stanza_bytes_max > 0 && lim->stanza_bytes_max <= XMPP_XML_STANZA_BYTES_LIMIT);
    ASSERT(lim->depth_max > 0 && lim->depth_max <= XMPP_XML_DEPTH_LIMIT);
    ASSERT(lim->attrs_max > 0 && lim->attrs_max <= XMPP_XML_ATTRS_LIMIT);
    ASSERT(lim->children_max > 0 && lim->children_max <= XMPP_XML_CHILDREN_LIMIT);
    ASSERT(lim->tree_bytes_max > 0 && lim->tree_bytes_max <= XMPP_XML_TREE_BYTES_LIMIT);
    *p = (xmpp_xml_t){
        .cbs = cbs,
        .cb_ctx = ctx,
        .stanza_bytes_max = lim->stanza_bytes_max,
        .tree_bytes_max = lim->tree_bytes_max,
        .attrs_max = lim->attrs_max,
        .children_max = lim->children_max,
        .depth_max = (uint8_t)lim->depth_max,
        .state = ST_PROLOG,
    };
}

void xmpp_xml_fini(xmpp_xml_t *p)
{
    ASSERT(!p->in_feed);
    ctxt_free(p);
    arena_free(p);
    prime_free(p);
}

void xmpp_xml_reset(xmpp_xml_t *p)
{
    ASSERT(!p->in_feed);
    xmpp_xml_limits_t lim = {
        .stanza_bytes_max = p->stanza_bytes_max,
        .depth_max = p->depth_max,
        .attrs_max = p->attrs_max,
        .children_max = p->children_max,
        .tree_bytes_max = p->tree_bytes_max,
    };
    const xmpp_xml_cbs_t *cbs = p->cbs;
    void *ctx = p->cb_ctx;
    xmpp_xml_fini(p);
    xmpp_xml_init(p, &lim, cbs, ctx);
}

const xmpp_xml_error_t *xmpp_xml_error(const xmpp_xml_t *p)
{
    return p->state == ST_FAILED ? &p->err : NULL;
}

bool xmpp_xml_idle(const xmpp_xml_t *p)
{
    return p->ctxt == NULL && p->arena == NULL;
}

/* ---- Feeding ----------------------------------------------------------- */

/*
 * Each of the first four bytes of a document, checked before libxml2 sees
 * it: it picks UTF-16, UCS-4 or EBCDIC from them (XML 1.0 Appendix F) and
 * converts, and whether the garbage that follows then fails in the converter
 * or at our encoding check depends on the cuts. UTF-8 only (RFC 6120 §11.6):
 * a NUL or a UTF-16 byte order mark is unsupported-encoding; a document
 * starts with '<', a UTF-8 byte order mark or whitespace, anything else is
 * not-well-formed.
 */
static bool encoding_check(xmpp_xml_t *p, uint64_t at, unsigned char c)
{
    if (c == 0 || (at == 0 && (c == 0xFE || c == 0xFF))) {
        fail(p, XMPP_XML_COND_UNSUPPORTED_ENCODING, "UTF-16 or UCS-4", 0);
        return false;
    }
    if (at == 0 && c != '<' && c != 0xEF && !is_xml_space(c)) {
        fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "not an XML document", 0);
        return false;
    }
    return true;
}

/*
 * The markup before the stream header, checked before libxml2 sees it. In
 * push mode libxml2 waits for a comment's or PI's end before parsing it, looks
 * for that end from where it stands, and fails differently on the same bad
 * bytes depending on where the cuts fell. XMPP allows only a byte order mark,
 * an XML declaration at the very start, and whitespace before the header
 * (RFC 6120 §11.1): "<?" past the start is a processing instruction, "<!-" a
 * comment, "<!" otherwise a DTD (restricted-xml), "<![" a CDATA section and
 * any other byte text (not-well-formed), decided where they start whatever
 * follows. The declaration itself is left to libxml2, and nothing past it is
 * looked at until libxml2 has had all of it, so an error inside it is found
 * first on every cut. Returns how many of the n bytes at data may be fed now.
 */
enum {
    PROLOG_START,           /* at 0, or at 3 after a BOM: '<' may open the declaration */
    PROLOG_BOM,             /* after 0xEF at 0: the rest of a UTF-8 BOM */
    PROLOG_MISC,            /* whitespace, or a '<' */
    PROLOG_LT_START,        /* after a '<' at the start */
    PROLOG_LT,              /* after a '<' elsewhere */
    PROLOG_LT_BANG,         /* after "<!" */
    PROLOG_DECL_X,          /* after "<?" at the start: "xml" and a space, a state each, */
    PROLOG_DECL_M,
    PROLOG_DECL_L,
    PROLOG_DECL_S,          /* ... in this order, followed by: */
    PROLOG_DECL,            /* inside the declaration, up to "?>" */
    PROLOG_DECL_Q,          /* ... just after a '?' */
    PROLOG_HEADER,          /* the stream header has begun: libxml2's alone */
};

static size_t prolog_scan(xmpp_xml_t *p, const char *data, size_t n)
{
    static const unsigned char utf8_bom[3] = { 0xEF, 0xBB, 0xBF };
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        uint64_t at = p->pos + i;
        if (at < 4 && !encoding_check(p, at, c))
            return 0;
        switch (p->prolog) {
        case PROLOG_START:
        case PROLOG_MISC:
            if (p->prolog == PROLOG_START && at == 0 && c == utf8_bom[0]) {
                p->prolog = PROLOG_BOM;
            } else if (c == '<') {
                p->prolog = p->prolog == PROLOG_START ? PROLOG_LT_START : PROLOG_LT;
            } else if (is_xml_space(c)) {
                p->prolog = PROLOG_MISC;
            } else {
                fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "text before the stream header", 0);
                return 0;
            }
            break;
        case PROLOG_BOM:
            if (c != utf8_bom[at]) {
                fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "not an XML document", 0);
                return 0;
            }
            if (at == 2)
                p->prolog = PROLOG_START;
            break;
        case PROLOG_LT_START:
        case PROLOG_LT:
            if (c == '?' && p->prolog == PROLOG_LT_START) {
                p->prolog = PROLOG_DECL_X;
            } else if (c == '?') {
                fail(p, XMPP_XML_COND_RESTRICTED_XML, "processing instruction", 0);
                return 0;
            } else if (c == '!') {
                p->prolog = PROLOG_LT_BANG;
            } else {
                p->prolog = PROLOG_HEADER;
            }
            break;
        case PROLOG_LT_BANG:
            if (c == '[')
                fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "CDATA section before the stream header", 0);
            else
                fail(p, XMPP_XML_COND_RESTRICTED_XML, c == '-' ? "comment" : "DTD", 0);
            return 0;
        case PROLOG_DECL_X:
        case PROLOG_DECL_M:
        case PROLOG_DECL_L:
        case PROLOG_DECL_S:
            if (p->prolog == PROLOG_DECL_S ? !is_xml_space(c)
                                           : c != "xml"[p->prolog - PROLOG_DECL_X]) {
                fail(p, XMPP_XML_COND_RESTRICTED_XML, "processing instruction", 0);
                return 0;
            }
            p->prolog++;
            break;
        case PROLOG_DECL:
        case PROLOG_DECL_Q:
            if (p->prolog == PROLOG_DECL_Q && c == '>') {
                p->prolog = PROLOG_MISC;
                return i + 1;
            }
            p->prolog = c == '?' ? PROLOG_DECL_Q : PROLOG_DECL;
            break;
        default:
            if (at >= 4)
                return n;
            break;
        }
    }
    return n;
}

/* Hands n bytes at data to libxml2 (state PROLOG or STANZA). */
static void feed_xml(xmpp_xml_t *p, const char *data, size_t n)
{
    if (!p->ctxt && ctxt_create(p) < 0) {
        fail_oom(p);
        return;
    }
    p->pos += n;
    int rc = xmlParseChunk(p->ctxt, data, (int)n, 0);
    if (rc != 0 && !p->halted)
        fail(p, XMPP_XML_COND_NOT_WELL_FORMED, "malformed XML", rc);
    if (p->state != ST_GAP || p->halted || p->scan_pos >= p->pos)
        return;
    /* libxml2 holds back a chunk's trailing CR until the next chunk, so the
     * gap check in gap_after did not see it: check it here. It is fed. */
    const struct xmpp_xml_frame *fr = p->frame;
    ASSERT(p->scan_pos >= fr->base && p->pos <= fr->base + fr->len);
    gap_scan(p, fr->data + (p->scan_pos - fr->base), (size_t)(p->pos - p->scan_pos), p->scan_pos);
}

ssize_t xmpp_xml_feed(xmpp_xml_t *p, const char *data, size_t len)
{
    ASSERT(!p->in_feed);
    if (p->state == ST_FAILED)
        return fail_rc(p);
    if (p->state == ST_CLOSED)
        return (ssize_t)len;
    struct xmpp_xml_frame fr = { data, len, p->pos };
    p->frame = &fr;
    p->in_feed = true;
    p->halted = false;
    p->stop_pos = UINT64_MAX;

    size_t off = 0;
    while (off < len && !p->halted) {
        if (p->state == ST_GAP) {
            /* Everything taken so far is checked; skipped bytes never reach
             * libxml2, so its positions fall behind the stream's. */
            ASSERT(p->scan_pos == p->pos);
            size_t n = gap_scan(p, data + off, len - off, p->pos);
            p->pos += n;
            p->xml_off += (int64_t)n;
            off += n;
            continue;
        }
        ASSERT(p->state == ST_PROLOG || p->state == ST_STANZA);
        uint64_t limit = (p->state == ST_PROLOG ? 0 : p->stanza_start) + p->stanza_bytes_max;
        if (p->pos >= limit) {
            fail(p, XMPP_XML_COND_POLICY_VIOLATION,
                 p->state == ST_PROLOG ? "stream header too large" : "stanza too large", 0);
            break;
        }
        size_t n = len - off;
        if (n > limit - p->pos)
            n = (size_t)(limit - p->pos);
        if (p->state == ST_PROLOG && (p->prolog != PROLOG_HEADER || p->pos < 4)) {
            n = prolog_scan(p, data + off, n);
            if (p->state == ST_FAILED)
                break;
        }
        if (p->state == ST_STANZA && p->lt_checked < LT_DONE) {
            lt_scan(p, data + off, n, p->pos);
            if (p->state == ST_FAILED)
                break;
        }
        feed_xml(p, data + off, n);
        off += n;
    }

    ssize_t ret = (ssize_t)len;
    if (p->state == ST_FAILED) {
        ret = fail_rc(p);
    } else if (p->stop_pos != UINT64_MAX) {
        /* A STOP cut the stream inside this feed: what libxml2 took past the
         * cut is handed back and the context is dropped with it. */
        ASSERT(p->stop_pos >= fr.base && p->stop_pos <= fr.base + len);
        ret = (ssize_t)(p->stop_pos - fr.base);
        p->pos = p->scan_pos = p->stop_pos;
    }
    p->in_feed = false;
    p->frame = NULL;
    if (p->halted || p->state == ST_GAP) {
        /* Idle, closed, failed or cut: nothing in the context is needed. */
        ctxt_free(p);
        arena_free(p);
    }
    if (p->state == ST_FAILED && p->cbs->error)
        p->cbs->error(p->cb_ctx, &p->err);
    return ret;
}

/* ---- Tree queries ------------------------------------------------------ */

bool xmpp_xml_is(const xmpp_xml_el_t *el, const char *name, const char *ns)
{
    return str_eq_cstr(el->name, name) && (ns == NULL || str_eq_cstr(el->ns, ns));
}

const xmpp_xml_el_t *xmpp_xml_child(const xmpp_xml_el_t *el, const char *name, const char *ns)
{
    for (const xmpp_xml_el_t *c = el->children; c; c = c->next) {
        if (xmpp_xml_is(c, name, ns))
            return c;
    }
    return NULL;
}

const str_t *xmpp_xml_attr_ns(const xmpp_xml_el_t *el, const char *ns, const char *name)
{
    for (uint32_t i = 0; i < el->attr_count; i++) {
        const xmpp_xml_attr_t *a = &el->attrs[i];
        if (str_eq_cstr(a->name, name) && str_eq_cstr(a->ns, ns))
            return &a->value;
    }
    return NULL;
}

const str_t *xmpp_xml_attr(const xmpp_xml_el_t *el, const char *name)
{
    return xmpp_xml_attr_ns(el, "", name);
}

str_t xmpp_xml_child_text(const xmpp_xml_el_t *el, const char *name, const char *ns)
{
    const xmpp_xml_el_t *c = xmpp_xml_child(el, name, ns);
    return c ? c->text : (str_t){ NULL, 0 };
}

bool xmpp_xml_el_equal(const xmpp_xml_el_t *a, const xmpp_xml_el_t *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->ns, b->ns) || !str_eq(a->text, b->text) ||
        a->attr_count != b->attr_count || a->child_count != b->child_count)
        return false;
    for (uint32_t i = 0; i < a->attr_count; i++) {
        const xmpp_xml_attr_t *x = &a->attrs[i], *y = &b->attrs[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->ns, y->ns) || !str_eq(x->value, y->value))
            return false;
    }
    const xmpp_xml_el_t *x = a->children, *y = b->children;
    for (; x && y; x = x->next, y = y->next) {
        if (x->text_off != y->text_off || !xmpp_xml_el_equal(x, y))
            return false;
    }
    return x == NULL && y == NULL;
}

/* ---- Writing ----------------------------------------------------------- */

#define REPLACEMENT "\xEF\xBF\xBD"     /* U+FFFD */

/* Length of the valid UTF-8 sequence at s that encodes an XML 1.0 Char
 * (XML 1.0 [2]), or 0. s[0] >= 0x80. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2, cp = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3, cp = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4, cp = s[0] & 0x07u;
    } else {
        return 0;                               /* continuation byte, C0/C1, F5.. */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return len;
}

/* Appends s escaped for character data or for a quoted attribute value. */
static void escape(buf_t *b, const char *s, size_t n, bool attr)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while (i < n) {
        const char *rep = NULL;
        size_t step = 1;
        unsigned char c = u[i];
        if (c >= 0x80) {
            step = utf8_char_len(u + i, n - i);
            if (step == 0) {
                rep = REPLACEMENT;
                step = 1;
            }
        } else if (c == '&') {
            rep = "&amp;";
        } else if (c == '<') {
            rep = "&lt;";
        } else if (c == '>') {
            rep = "&gt;";                       /* also keeps "]]>" out of text */
        } else if (c == '\r') {
            rep = "&#13;";                      /* XML 1.0 §2.11 would turn it into LF */
        } else if (attr && c == '\'') {
            rep = "&apos;";
        } else if (attr && c == '"') {
            rep = "&quot;";
        } else if (attr && c == '\t') {
            rep = "&#9;";                       /* §3.3.3 would turn these into spaces */
        } else if (attr && c == '\n') {
            rep = "&#10;";
        } else if (c < 0x20 && c != '\t' && c != '\n') {
            rep = REPLACEMENT;                  /* not an XML 1.0 Char */
        }
        if (rep) {
            buf_append(b, s + run, i - run);
            buf_append_str(b, rep);
            run = i + step;
        }
        i += step;
    }
    buf_append(b, s + run, n - run);
}

void xmpp_xml_write_text(buf_t *b, str_t text)
{
    escape(b, text.ptr, text.len, false);
}

static void write_attr_qname(buf_t *b, const char *pfx, str_t name, str_t value)
{
    buf_append(b, " ", 1);
    if (pfx) {
        buf_append_str(b, pfx);
        buf_append(b, ":", 1);
    }
    buf_append(b, name.ptr, name.len);
    buf_append(b, "='", 2);
    escape(b, value.ptr, value.len, true);
    buf_append(b, "'", 1);
}

void xmpp_xml_write_attr(buf_t *b, const char *name, str_t value)
{
    write_attr_qname(b, NULL, str_from_cstr(name), value);
}

static void write_el(buf_t *b, const xmpp_xml_el_t *el, str_t dflt)
{
    /* The xml prefix is bound by XML-NAMES and must not be declared as a
     * default namespace, so elements in it keep their prefix. */
    bool xml_pfx = str_eq(el->ns, known_ns[3]);
    buf_append(b, "<", 1);
    if (xml_pfx)
        buf_append(b, "xml:", 4);
    buf_append(b, el->name.ptr, el->name.len);
    str_t inner = dflt;
    if (!xml_pfx && !str_eq(el->ns, dflt)) {
        write_attr_qname(b, NULL, STR_LIT("xmlns"), el->ns);
        inner = el->ns;
    }
    for (uint32_t i = 0; i < el->attr_count; i++) {
        const xmpp_xml_attr_t *a = &el->attrs[i];
        if (a->ns.len == 0) {
            write_attr_qname(b, NULL, a->name, a->value);
        } else if (str_eq(a->ns, known_ns[3])) {
            write_attr_qname(b, "xml", a->name, a->value);
        } else {
            /* One generated prefix per attribute: o(n), and two attributes
             * with the same {ns}name cannot both be in a parsed tree. */
            char pfx[16];
            snprintf(pfx, sizeof(pfx), "a%u", i);
            buf_append(b, " xmlns:", 7);
            buf_append_str(b, pfx);
            buf_append(b, "='", 2);
            escape(b, a->ns.ptr, a->ns.len, true);
            buf_append(b, "'", 1);
            write_attr_qname(b, pfx, a->name, a->value);
        }
    }
    if (el->child_count == 0 && el->text.len == 0) {
        buf_append(b, "/>", 2);
        return;
    }
    buf_append(b, ">", 1);
    size_t off = 0;
    for (const xmpp_xml_el_t *c = el->children; c; c = c->next) {
        ASSERT(c->text_off >= off && c->text_off <= el->text.len);
        escape(b, el->text.ptr + off, c->text_off - off, false);
        write_el(b, c, inner);
        off = c->text_off;
    }
    escape(b, el->text.ptr + off, el->text.len - off, false);
    buf_append(b, "</", 2);
    if (xml_pfx)
        buf_append(b, "xml:", 4);
    buf_append(b, el->name.ptr, el->name.len);
    buf_append(b, ">", 1);
}

void xmpp_xml_write_el(buf_t *b, const xmpp_xml_el_t *el, str_t default_ns)
{
    write_el(b, el, default_ns);
}

void xmpp_xml_write_stream_open(buf_t *b, const xmpp_xml_header_t *h)
{
    buf_append_str(b, "<?xml version='1.0'?><stream:stream");
    if (h->content_ns.ptr)
        xmpp_xml_write_attr(b, "xmlns", h->content_ns);
    xmpp_xml_write_attr(b, "xmlns:stream", STR_LIT(XMPP_XML_NS_STREAMS));
    const struct {
        const char *name;
        str_t value;
    } attrs[] = {
        { "to", h->to }, { "from", h->from }, { "id", h->id },
        { "version", h->version }, { "xml:lang", h->lang },
    };
    for (size_t i = 0; i < ARRAY_LEN(attrs); i++) {
        if (attrs[i].value.ptr)
            xmpp_xml_write_attr(b, attrs[i].name, attrs[i].value);
    }
    buf_append(b, ">", 1);
}

void xmpp_xml_write_stream_error(buf_t *b, xmpp_xml_cond_t cond, const char *text)
{
    ASSERT(cond != XMPP_XML_COND_NONE);
    buf_append_str(b, "<stream:error><");
    buf_append_str(b, xmpp_xml_cond_name(cond));
    buf_append_str(b, " xmlns='" XMPP_XML_NS_STREAM_ERRORS "'/>");
    if (text) {
        buf_append_str(b, "<text xmlns='" XMPP_XML_NS_STREAM_ERRORS "'>");
        xmpp_xml_write_text(b, str_from_cstr(text));
        buf_append_str(b, "</text>");
    }
    buf_append_str(b, "</stream:error>");
}

void xmpp_xml_write_stream_close(buf_t *b)
{
    buf_append_str(b, "</stream:stream>");
}
