/*
 * xmpp_xml.h - the XMPP stream parser (RFC 6120 §4, §11) on libxml2's push
 * SAX2 parser, and stanza serialisation.
 *
 * One parser per connection and direction. Bytes go in with xmpp_xml_feed as
 * they arrive, cut anywhere; events come out through a callback table, in
 * stream order, and the same events come out however the bytes were cut (one
 * exception: libxml2 notices some syntax errors only once it has seen what
 * follows, e.g. a '>' after an unclosed quote, so a malformed stream may fail
 * a feed later, or as too large, when cut differently; what came out before
 * the failure is the same):
 *
 *     header     the stream header <stream:stream ...> was opened
 *     stanza     a complete first-level element (a stanza, or a nonza such as
 *                <starttls/>, <auth/>, <r/>) as a small namespace-resolved tree
 *     keepalive  whitespace between first-level elements (RFC 6120 §4.6.1)
 *     closed     </stream:stream>
 *     error      a stream error condition (RFC 6120 §4.9.3); the stream is dead
 *
 * Restricted XML (RFC 6120 §11.1). No DTD (so no entity declarations: billion
 * laughs and external entities cannot happen), no comments, no processing
 * instructions other than the XML declaration, no entity references other
 * than the five predefined ones and character references: each gives
 * restricted-xml. Only UTF-8 (§11.6): a declared or detected other encoding
 * gives unsupported-encoding. libxml2 never loads anything (XML_PARSE_NONET,
 * no DTD loading, no entity substitution).
 *
 * The stream header (§4.7, §4.8). The root must be {http://etherx.jabber.org/
 * streams}stream, else invalid-namespace; it must use the prefix "stream",
 * else bad-namespace-prefix (§4.8.5 lets an implementation insist on it; the
 * example of §4.9.3.2 is exactly this case). A default (content) namespace,
 * if declared, must be jabber:client or jabber:server, else invalid-namespace
 * (§4.8.2, §4.9.3.10); which of the two a listener accepts is the caller's
 * check. Text other than whitespace between first-level elements is
 * bad-format: the stream schema (RFC 6120 Appendix A.1) allows none.
 *
 * Trees. Each element has its local name, its resolved namespace URI (the
 * prefixes used on the wire do not matter), its attributes (local name,
 * namespace, decoded value, in document order; namespace declarations are not
 * attributes), its child elements, and its text: all of its own character data
 * concatenated (CDATA sections included, entities decoded). Mixed content keeps
 * its order: each child records how many bytes of the parent's text precede it
 * (text_off), which is what xmpp_xml_write_el needs to write it back.
 *
 * Ownership. Receive buffers are recycled as soon as feed returns, so every
 * string in an event is a copy in the parser's per-stanza arena. An event's
 * pointers are valid only during its callback: the arena is reset when the
 * callback returns. Copy (or serialise) what must outlive it.
 *
 * Limits (xmpp_xml_limits_t) bound everything the peer controls: the bytes of
 * one stanza, which is also the most libxml2 ever buffers, the stanza's depth,
 * attributes and children per element, and the size of the tree built for it.
 * Exceeding one is policy-violation (§4.9.3.14, XEP-0205) and never makes
 * memory grow past the bound.
 *
 * Memory. xmpp_xml_t is embedded in the connection (sizeof is asserted in the
 * .c file) and allocates nothing until bytes arrive. libxml2's push context
 * costs about 14 KiB when created and ~20 KiB after some use; the parser frees
 * it whenever a feed leaves it between stanzas, with the arena, and builds a
 * new one for the next stanza by replaying the stream header's namespace
 * declarations to it (a few hundred ns), so an idle connection costs
 * sizeof(xmpp_xml_t) plus, for unusual headers only, a copy of those
 * declarations. While a stanza is being received it costs the context, the
 * bytes of the stanza and its tree.
 *
 * Typical receive callback:
 *
 *     ssize_t n = xmpp_xml_feed(&c->xml, data, len);
 *     if (n < 0)
 *         return close_with_stream_error(c, xmpp_xml_error(&c->xml)->cond);
 *     if ((size_t)n < len)
 *         ...                  // a callback returned XMPP_XML_STOP (e.g. after
 *                              // <starttls/>): the rest is not for this stream
 *
 * Threads: a parser belongs to the shard that owns the connection; every
 * function is called on that shard only (xmpp_xml_global_init excepted).
 * Nothing blocks. Callbacks run inside xmpp_xml_feed and must not call
 * xmpp_xml_feed, _reset or _fini on the same parser (it crashes).
 */
#ifndef PRESENCED_XMPP_XML_H
#define PRESENCED_XMPP_XML_H

#include <sys/types.h>

#include "engine/buf.h"
#include "engine/common.h"

/* ---- Namespaces -------------------------------------------------------- */

#define XMPP_XML_NS_STREAMS "http://etherx.jabber.org/streams"
#define XMPP_XML_NS_CLIENT "jabber:client"
#define XMPP_XML_NS_SERVER "jabber:server"
#define XMPP_XML_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
/* Bound to the prefix "xml" by XML-NAMES: xml:lang is {this}lang. */
#define XMPP_XML_NS_XML "http://www.w3.org/XML/1998/namespace"

/* ---- Stream error conditions (RFC 6120 §4.9.3.1 - §4.9.3.25) ----------- */

typedef enum {
    XMPP_XML_COND_NONE = 0,                 /* no error */
    XMPP_XML_COND_BAD_FORMAT,
    XMPP_XML_COND_BAD_NAMESPACE_PREFIX,
    XMPP_XML_COND_CONFLICT,
    XMPP_XML_COND_CONNECTION_TIMEOUT,
    XMPP_XML_COND_HOST_GONE,
    XMPP_XML_COND_HOST_UNKNOWN,
    XMPP_XML_COND_IMPROPER_ADDRESSING,
    XMPP_XML_COND_INTERNAL_SERVER_ERROR,
    XMPP_XML_COND_INVALID_FROM,
    XMPP_XML_COND_INVALID_NAMESPACE,
    XMPP_XML_COND_INVALID_XML,
    XMPP_XML_COND_NOT_AUTHORIZED,
    XMPP_XML_COND_NOT_WELL_FORMED,
    XMPP_XML_COND_POLICY_VIOLATION,
    XMPP_XML_COND_REMOTE_CONNECTION_FAILED,
    XMPP_XML_COND_RESET,
    XMPP_XML_COND_RESOURCE_CONSTRAINT,
    XMPP_XML_COND_RESTRICTED_XML,
    XMPP_XML_COND_SEE_OTHER_HOST,
    XMPP_XML_COND_SYSTEM_SHUTDOWN,
    XMPP_XML_COND_UNDEFINED_CONDITION,
    XMPP_XML_COND_UNSUPPORTED_ENCODING,
    XMPP_XML_COND_UNSUPPORTED_FEATURE,
    XMPP_XML_COND_UNSUPPORTED_STANZA_TYPE,
    XMPP_XML_COND_UNSUPPORTED_VERSION,
    XMPP_XML_COND_COUNT
} xmpp_xml_cond_t;

/* "bad-format", ... (the element name, static storage); "" for NONE. Crashes on
 * a value outside the enum. */
const char *xmpp_xml_cond_name(xmpp_xml_cond_t cond);

/* The condition named name (e.g. from a peer's <stream:error/>): 0 and *out, or
 * -ENOENT. */
int xmpp_xml_cond_parse(str_t name, xmpp_xml_cond_t *out);

/* ---- Limits ------------------------------------------------------------ */

/* Input bytes of one first-level element, from its '<' to its last '>'
 * (RFC 6120 §13.12 asks servers to bound stanza size; XEP-0205 §3 names
 * policy-violation). Also bounds the stream header and what precedes it. */
#define XMPP_XML_STANZA_BYTES_DEFAULT (64u * 1024)
/* Nesting of a stanza, the stanza element being 1. XMPP payloads nest a few
 * levels (pubsub item > entry > content > XHTML ~ 8); 32 leaves room. */
#define XMPP_XML_DEPTH_DEFAULT 32u
/* Attributes plus namespace declarations on one element. The largest common
 * element (a Jingle ICE <candidate/>) has 13; a stream header 8. */
#define XMPP_XML_ATTRS_DEFAULT 32u
/* Child elements of one element: a private-storage bookmark list or a roster
 * set of several hundred items fits. */
#define XMPP_XML_CHILDREN_DEFAULT 1024u
/* Cost of the tree built for one stanza: each element and attribute counts its
 * struct plus its strings, each element whose namespace differs from its
 * parent's counts the namespace again (what xmpp_xml_write_el will write).
 * Eight times the stanza default: a 64 KiB stanza of ~1500 small elements fits,
 * 64 KiB of "<a/>" (16 Ki elements, ~1.6 MiB of tree) does not. */
#define XMPP_XML_TREE_BYTES_DEFAULT (8u * XMPP_XML_STANZA_BYTES_DEFAULT)

/* Upper bounds the configurable limits are checked against at init (they keep
 * offsets and counters in 32 bits with room to spare). */
#define XMPP_XML_STANZA_BYTES_LIMIT (16u * 1024 * 1024)
#define XMPP_XML_DEPTH_LIMIT 250u
#define XMPP_XML_ATTRS_LIMIT 4096u
#define XMPP_XML_CHILDREN_LIMIT 65535u
#define XMPP_XML_TREE_BYTES_LIMIT (256u * 1024 * 1024)

typedef struct {
    uint32_t stanza_bytes_max;
    uint32_t depth_max;
    uint32_t attrs_max;
    uint32_t children_max;
    uint32_t tree_bytes_max;
} xmpp_xml_limits_t;

/* The defaults above. */
extern const xmpp_xml_limits_t xmpp_xml_limits_default;

/* ---- Events ------------------------------------------------------------ */

/* A str_t whose ptr is NULL is absent; present values may be empty. */
typedef struct {
    str_t to, from, id, version;
    str_t lang;                 /* xml:lang */
    str_t content_ns;           /* the default namespace: jabber:client or
                                 * jabber:server; absent if none was declared */
} xmpp_xml_header_t;

typedef struct xmpp_xml_attr {
    str_t name;                 /* local name */
    str_t ns;                   /* namespace URI; empty when unqualified */
    str_t value;                /* decoded and normalised (XML 1.0 §3.3.3) */
} xmpp_xml_attr_t;

/* Read-only for callers; fields marked private are the builder's. */
typedef struct xmpp_xml_el {
    str_t name;                 /* local name, e.g. "message" */
    str_t ns;                   /* namespace URI, e.g. "jabber:client"; may be empty */
    str_t text;                 /* own character data, concatenated; may be empty */
    const xmpp_xml_attr_t *attrs;
    const struct xmpp_xml_el *children;     /* first child element, or NULL */
    const struct xmpp_xml_el *next;         /* next sibling, or NULL */
    const struct xmpp_xml_el *parent;       /* NULL for the stanza */
    uint32_t attr_count;
    uint32_t child_count;
    uint32_t text_off;          /* bytes of parent->text before this element */
    uint32_t text_cap_;         /* private */
} xmpp_xml_el_t;

typedef struct {
    xmpp_xml_cond_t cond;
    const char *reason;         /* static, for logs: "stanza too large", ... */
    int xml_code;               /* libxml2's xmlParserErrors code, 0 if not libxml2's */
    uint64_t offset;            /* stream byte where it was detected (approximate) */
} xmpp_xml_error_t;

typedef enum {
    XMPP_XML_CONTINUE = 0,
    XMPP_XML_STOP = 1,          /* feed returns right after this element */
} xmpp_xml_verdict_t;

typedef xmpp_xml_verdict_t (*xmpp_xml_header_fn)(void *ctx, const xmpp_xml_header_t *hdr);
typedef xmpp_xml_verdict_t (*xmpp_xml_stanza_fn)(void *ctx, const xmpp_xml_el_t *stanza);
typedef void (*xmpp_xml_keepalive_fn)(void *ctx);
typedef void (*xmpp_xml_closed_fn)(void *ctx);
typedef void (*xmpp_xml_error_fn)(void *ctx, const xmpp_xml_error_t *err);

/* Any member may be NULL (the event is then dropped; header and stanza
 * continue). Usually one static const table per connection kind. */
typedef struct {
    xmpp_xml_header_fn header;
    xmpp_xml_stanza_fn stanza;
    xmpp_xml_keepalive_fn keepalive;
    xmpp_xml_closed_fn closed;
    xmpp_xml_error_fn error;
} xmpp_xml_cbs_t;

/* ---- The parser -------------------------------------------------------- */

struct _xmlParserCtxt;
struct xmpp_xml_block;
struct xmpp_xml_frame;

/* Embedded in the connection; every field is private. */
typedef struct xmpp_xml {
    struct _xmlParserCtxt *ctxt;    /* NULL while idle */
    const xmpp_xml_cbs_t *cbs;
    void *cb_ctx;
    struct xmpp_xml_block *arena;   /* newest block; NULL while idle */
    xmpp_xml_el_t *cur;             /* element being built */
    const char *prime;              /* header replay for a new context */
    struct xmpp_xml_frame *frame;   /* the feed under way */
    xmpp_xml_error_t err;           /* cond NONE until the stream fails */
    uint64_t pos;                   /* stream bytes taken so far */
    int64_t xml_off;                /* stream position minus libxml2 position */
    uint64_t stanza_start;          /* stream position of the stanza's '<' */
    uint64_t scan_pos;              /* between stanzas: bytes checked so far */
    uint64_t stop_pos;              /* where a STOP verdict cut the stream */
    uint32_t stanza_bytes_max, tree_bytes_max, attrs_max, children_max;
    uint32_t tree_bytes;
    uint32_t prime_len;
    uint16_t depth;                 /* open elements, the stream element included */
    uint8_t depth_max;
    uint8_t state;
    uint8_t lt_checked;             /* bytes after a first-level '<' checked so far */
    uint8_t prolog;                 /* what the bytes before the stream header were */
    bool prime_owned;               /* prime is malloc'd */
    bool priming;                   /* the context is replaying the header */
    bool ws_run;                    /* inside a run of whitespace between stanzas */
    bool halted;                    /* libxml2 was stopped during this feed */
    bool in_feed;
} xmpp_xml_t;

/*
 * Once per process, before any shard starts (xmlInitParser is not thread-safe
 * the first time). Checks that the libxml2 we run with is the one we built
 * against, and silences libxml2's generic error channel (stderr) for the
 * threads started afterwards, since peers' bytes would write to it through the
 * encoding converters. Safe to call again.
 */
void xmpp_xml_global_init(void);

/*
 * Sets up an embedded parser for a new stream; allocates nothing. lim (NULL
 * for the defaults) is copied; each value must be non-zero and within its
 * XMPP_XML_*_LIMIT (else it crashes: config validation belongs to the caller).
 * cbs must outlive the parser; ctx is passed to every callback.
 */
void xmpp_xml_init(xmpp_xml_t *p, const xmpp_xml_limits_t *lim, const xmpp_xml_cbs_t *cbs,
                   void *ctx);

/* Frees everything the parser holds; p may be initialised again. */
void xmpp_xml_fini(xmpp_xml_t *p);

/*
 * Consumes bytes of the stream (data is not referenced after the call) and
 * runs the callbacks for what they complete. Returns:
 *   len        all consumed (also after the stream was closed: what follows
 *              </stream:stream> is discarded)
 *   0..len-1   a header or stanza callback returned XMPP_XML_STOP: the bytes
 *              up to the end of that element were consumed, the rest were not
 *              (feed them again later, or drop them: after <starttls/> they
 *              must not be interpreted, RFC 6120 §5.4.3.3)
 *   -EBADMSG   the stream is malformed (not-well-formed, restricted-xml,
 *              invalid-namespace, bad-namespace-prefix, bad-format,
 *              unsupported-encoding)
 *   -E2BIG     a limit was exceeded (policy-violation)
 *   -ENOMEM    allocation failed (resource-constraint)
 * On an error the error callback has run once, xmpp_xml_error() tells the
 * condition, and every later feed returns the same value without looking at
 * the bytes. Callbacks run before feed returns; a stanza, a keepalive and an
 * error can come out of the same call, in stream order.
 */
ssize_t xmpp_xml_feed(xmpp_xml_t *p, const char *data, size_t len);

/*
 * Starts a new stream (RFC 6120 §5.4.3.3 after TLS, §6.4.6 after SASL): the
 * next byte is the first of a new XML document (XML declaration, stream
 * header). Frees the libxml2 context; keeps the limits and callbacks.
 */
void xmpp_xml_reset(xmpp_xml_t *p);

/* The error the stream failed with, or NULL. Points into p: valid until reset
 * or fini. */
const xmpp_xml_error_t *xmpp_xml_error(const xmpp_xml_t *p);

/* Between first-level elements (or before the first byte): nothing of a
 * stanza is buffered, and the parser holds no libxml2 context. */
bool xmpp_xml_idle(const xmpp_xml_t *p);

/* ---- Tree queries ------------------------------------------------------ */

/* name is a local name; ns NULL matches any namespace, "" no namespace. */
bool xmpp_xml_is(const xmpp_xml_el_t *el, const char *name, const char *ns);

/* The first child element with that name and namespace, or NULL. */
const xmpp_xml_el_t *xmpp_xml_child(const xmpp_xml_el_t *el, const char *name, const char *ns);

/* The value of the unqualified attribute name, or NULL. */
const str_t *xmpp_xml_attr(const xmpp_xml_el_t *el, const char *name);

/* The value of the attribute {ns}name, or NULL (xml:lang is
 * xmpp_xml_attr_ns(el, XMPP_XML_NS_XML, "lang")). */
const str_t *xmpp_xml_attr_ns(const xmpp_xml_el_t *el, const char *ns, const char *name);

static inline str_t xmpp_xml_text(const xmpp_xml_el_t *el)
{
    return el->text;
}

/* The text of the first matching child; ptr NULL when there is no such child. */
str_t xmpp_xml_child_text(const xmpp_xml_el_t *el, const char *name, const char *ns);

/* Same names, namespaces, attributes (in order), text, children and text
 * offsets: what a round trip through xmpp_xml_write_el must preserve. */
bool xmpp_xml_el_equal(const xmpp_xml_el_t *a, const xmpp_xml_el_t *b);

/* ---- Writing ----------------------------------------------------------- */

/*
 * All writers append to b (buf_t aborts on allocation failure) and produce
 * well-formed UTF-8 XML whatever they are given: bytes that are not UTF-8 or
 * not XML 1.0 characters (C0 controls other than TAB, LF, CR; U+FFFE, U+FFFF)
 * become U+FFFD, so text that came from elsewhere (SIP, the web service)
 * cannot break a stream. Trees from the parser never contain such bytes.
 */

/* Character data: & < > escaped, CR as &#13; (else it would read back as LF). */
void xmpp_xml_write_text(buf_t *b, str_t text);

/* " name='value'": & < > " ' escaped, and TAB LF CR as character references
 * (else attribute-value normalisation would read them back as spaces). name
 * must be a valid XML name; it is written as is. */
void xmpp_xml_write_attr(buf_t *b, const char *name, str_t value);

/*
 * Writes el and its subtree. default_ns is the default namespace in scope
 * where it is written (the stream's content namespace for a stanza); an
 * element whose namespace differs declares its own with xmlns='...', namespaced
 * attributes get generated prefixes, xml:lang stays xml:lang. Parsing the
 * output in a context with the same default namespace gives a tree for which
 * xmpp_xml_el_equal holds. Prefixes and the quoting of the input are not kept.
 */
void xmpp_xml_write_el(buf_t *b, const xmpp_xml_el_t *el, str_t default_ns);

/* "<?xml version='1.0'?><stream:stream xmlns='...' xmlns:stream='...' ...>" with
 * the present fields of h (content_ns absent: no default namespace). */
void xmpp_xml_write_stream_open(buf_t *b, const xmpp_xml_header_t *h);

/* "<stream:error><cond xmlns='urn:...:xmpp-streams'/>[<text>...</text>]
 * </stream:error>" (RFC 6120 §4.9.2); text may be NULL. cond must not be NONE. */
void xmpp_xml_write_stream_error(buf_t *b, xmpp_xml_cond_t cond, const char *text);

/* "</stream:stream>" */
void xmpp_xml_write_stream_close(buf_t *b);

#endif
