/*
 * pidf_xml.c - see pidf_int.h: the XML parser the SIP bodies go through, tree queries, the
 * string arena and the escaping writers that pidf.c, winfo.c and dialoginfo.c share.
 *
 * A parser of its own rather than libxml2's: every PUBLISH carries a PIDF document, and
 * libxml2 spent about 4 µs on one of a kilobyte (a parser context, a dictionary, a node,
 * a namespace and a string per element and attribute, each allocated and freed), a tenth of
 * what the node spends on a PUBLISH and its NOTIFYs. These documents are small and need
 * little of XML: no DTD (a DOCTYPE is refused, so no entity can be declared), UTF-8 only.
 * One pass checks the bytes (UTF-8, XML characters), a second builds the tree in an arena
 * of a few chunks, names and undecoded text pointing into the input.
 *
 * What the grammar is: XML 1.0 fifth edition §2-§4 without the DTD parts, and the
 * namespace constraints of Namespaces in XML 1.0 third edition §3-§6 (a QName has at most
 * one colon, prefixes are declared, xml and xmlns are reserved, an expanded attribute name
 * appears once per element). A document that breaks one of them is not well-formed here,
 * where libxml2 reported namespace errors as warnings and built the tree anyway.
 */
#include "protocols/pidf/pidf_int.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "protocols/pidf/pidf.h"

_Static_assert(PIDF_DOC_BYTES_LIMIT < UINT32_MAX / 2, "lines and offsets are uint32_t");

#define XMLNS_NS "http://www.w3.org/2000/xmlns/"

/* ---- Tree memory: chunks, the first allocated with the document ------- */

typedef struct tree_chunk {
    struct tree_chunk *next;
} tree_chunk_t;

struct pidf_xml_doc {
    const pidf_xml_node_t *root;
    tree_chunk_t *chunks;           /* further chunks, newest first */
    char *cur;                      /* the chunk being filled */
    size_t used, cap;
    alignas(max_align_t) char first[];
};

/* The first chunk: about three bytes of tree per byte of input for the documents phones send
 * (an element of 40 bytes makes a node of 88 and pieces of text around it). */
static size_t first_chunk_bytes(size_t len)
{
    return 512 + 3 * len;
}

static void *tree_alloc(pidf_xml_doc_t *d, size_t n)
{
    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    if (d->cap - d->used < n) {
        size_t cap = d->cap * 2 > n ? d->cap * 2 : n;
        tree_chunk_t *c = malloc(sizeof(max_align_t) + cap);
        if (!c)
            return NULL;
        c->next = d->chunks;
        d->chunks = c;
        d->cur = (char *)c + sizeof(max_align_t);
        d->used = 0;
        d->cap = cap;
    }
    void *p = d->cur + d->used;
    d->used += n;
    return p;
}

void pidf_xml_free(pidf_xml_doc_t *doc)
{
    if (!doc)
        return;
    for (tree_chunk_t *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(doc);
}

const pidf_xml_node_t *pidf_xml_root(const pidf_xml_doc_t *doc)
{
    return doc->root;
}

/* ---- Characters -------------------------------------------------------- */

static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

static inline bool is_xml_char(uint32_t c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);   /* XML 1.0 [2] */
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';                 /* XML 1.0 [3] */
}

/* XML 1.0 [4] NameStartChar without ':' (Namespaces [4] NCName). */
static bool is_name_start(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) ||
           (c >= 0x370 && c <= 0x37D) || (c >= 0x37F && c <= 0x1FFF) ||
           (c >= 0x200C && c <= 0x200D) || (c >= 0x2070 && c <= 0x218F) ||
           (c >= 0x2C00 && c <= 0x2FEF) || (c >= 0x3001 && c <= 0xD7FF) ||
           (c >= 0xF900 && c <= 0xFDCF) || (c >= 0xFDF0 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0xEFFFF);
}

/* XML 1.0 [4a] NameChar without ':'. */
static bool is_name_char(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    return is_name_start(c) || c == 0xB7 || (c >= 0x300 && c <= 0x36F) ||
           (c >= 0x203F && c <= 0x2040);
}

/* The bytes are checked before the parse proper: UTF-8 without NUL (else ENCODING: libxml2
 * would have guessed UTF-16, UCS-4 or EBCDIC from such bytes, none of which are allowed
 * here), and only XML characters (else NOT_WELL_FORMED). Everything after may then read a
 * multi-byte sequence without checking it. *bad gets the first offending byte. */
static pidf_xml_err_t check_bytes(const char *data, size_t len, const char **bad)
{
    const unsigned char *s = (const unsigned char *)data;
    const char *not_char = NULL;
    size_t i = 0;
    while (i < len) {
#ifdef __SSE2__
        /* Sixteen bytes of printable ASCII at a time: a signed compare with 0x20 catches
         * the controls and every byte of 0x80 and above. */
        if (len - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            if (_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20))) == 0) {
                i += 16;
                continue;
            }
        }
#endif
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80) {
            i++;
            continue;
        }
        if (c == 0) {
            *bad = data + i;
            return PIDF_XML_ENCODING;
        }
        uint32_t cp = c;
        int k = 1;
        if (c >= 0x80 && (k = utf8_next(s + i, len - i, &cp)) == 0) {
            *bad = data + i;
            return PIDF_XML_ENCODING;
        }
        if (!not_char && !is_xml_char(cp))
            not_char = data + i;
        i += (size_t)k;
    }
    *bad = not_char;
    return not_char ? PIDF_XML_NOT_WELL_FORMED : PIDF_XML_OK;
}

/* ---- The parser -------------------------------------------------------- */

typedef struct {
    str_t prefix;               /* empty for the default namespace */
    const char *uri;            /* NULL: the default namespace undeclared (xmlns="") */
} ns_binding_t;

typedef struct {
    pidf_xml_node_t *node;
    str_t qname;                /* as written, for the end tag */
    uint32_t ns_mark;           /* bindings below this index are the parent's */
} open_el_t;

typedef struct {
    str_t prefix, local;        /* prefix empty when there is none */
    str_t value;
    bool is_decl;
} raw_attr_t;

/* Bindings in scope: the xml prefix, then a few declarations per level. Past this many the
 * stack is on the heap; a document of declarations alone grows it to len/10 entries. */
#define NS_INLINE 32u

typedef struct {
    const char *p, *end;
    pidf_xml_doc_t *doc;
    uint32_t elements, elements_max, depth, depth_max;
    const char *line_p;         /* line ends before line_p are counted in line */
    uint32_t line;
    bool has_cr;
    ns_binding_t *ns;
    uint32_t ns_count, ns_cap;
    pidf_xml_err_t err;
    const char *reason;
    uint32_t err_line;
    open_el_t open[PIDF_DEPTH_LIMIT + 1];
    raw_attr_t attrs[PIDF_XML_ATTRS_MAX];
    ns_binding_t ns_inline[NS_INLINE];
} parser_t;

/* The line of p, counting on from the last one asked for. Lines end at LF, CRLF or a CR
 * alone (§2.11); a document without CR is counted with memchr. */
static uint32_t line_at(parser_t *ps, const char *p)
{
    DEBUG_ASSERT(p >= ps->line_p);
    const char *q = ps->line_p;
    if (ps->has_cr) {
        for (; q < p; q++)
            if (*q == '\n' || (*q == '\r' && (q + 1 == ps->end || q[1] != '\n')))
                ps->line++;
    } else {
        while ((q = memchr(q, '\n', (size_t)(p - q))) != NULL) {
            ps->line++;
            q++;
        }
    }
    ps->line_p = p;
    return ps->line;
}

static bool fail_at(parser_t *ps, pidf_xml_err_t err, const char *reason, const char *at)
{
    if (ps->err == PIDF_XML_OK) {
        ps->err = err;
        ps->reason = reason;
        at = at > ps->end ? ps->end : at;
        ps->err_line = at >= ps->line_p ? line_at(ps, at) : ps->line;
    }
    return false;
}

static bool bad(parser_t *ps, const char *reason)
{
    return fail_at(ps, PIDF_XML_NOT_WELL_FORMED, reason, ps->p);
}

static bool nomem(parser_t *ps)
{
    return fail_at(ps, PIDF_XML_NOMEM, "out of memory", ps->p);
}

static inline size_t left(const parser_t *ps)
{
    return (size_t)(ps->end - ps->p);
}

static inline bool at_lit(const parser_t *ps, const char *lit, size_t n)
{
    return left(ps) >= n && memcmp(ps->p, lit, n) == 0;
}

static bool skip_space(parser_t *ps)
{
    const char *from = ps->p;
    while (ps->p < ps->end && is_space(*ps->p))
        ps->p++;
    return ps->p != from;
}

/* The character at p (the bytes were checked: a sequence is whole). */
static inline uint32_t char_at(const parser_t *ps, const char *p, int *k)
{
    unsigned char c = (unsigned char)*p;
    if (c < 0x80) {
        *k = 1;
        return c;
    }
    uint32_t cp = 0;
    *k = utf8_next((const unsigned char *)p, (size_t)(ps->end - p), &cp);
    DEBUG_ASSERT(*k > 0);
    return cp;
}

/* An NCName at p, or an empty one. */
static str_t scan_ncname(parser_t *ps)
{
    const char *from = ps->p;
    int k;
    if (ps->p < ps->end && is_name_start(char_at(ps, ps->p, &k))) {
        ps->p += k;
        while (ps->p < ps->end && is_name_char(char_at(ps, ps->p, &k)))
            ps->p += k;
    }
    return (str_t){ from, (size_t)(ps->p - from) };
}

/* A QName (Namespaces [7]): NCName, or NCName ':' NCName. */
static bool scan_qname(parser_t *ps, str_t *qname, str_t *prefix, str_t *local,
                       const char *what)
{
    const char *from = ps->p;
    str_t a = scan_ncname(ps);
    if (a.len == 0)
        return bad(ps, what);
    *prefix = (str_t){ "", 0 };
    *local = a;
    if (ps->p < ps->end && *ps->p == ':') {
        ps->p++;
        str_t b = scan_ncname(ps);
        if (b.len == 0)
            return bad(ps, what);
        *prefix = a;
        *local = b;
    }
    if (ps->p < ps->end && *ps->p == ':')
        return bad(ps, "a name with more than one colon");
    *qname = (str_t){ from, (size_t)(ps->p - from) };
    return true;
}

/* A reference at p ('&'): the five predefined entities (XML 1.0 §4.6) or a character
 * reference to an XML character (§4.1, WFC Legal Character). Writes its UTF-8 to out
 * (4 bytes room), returns how many, 0 on error. Never longer than the reference. */
static size_t scan_ref(parser_t *ps, char *out)
{
    DEBUG_ASSERT(*ps->p == '&');
    const char *q = ps->p + 1;
    if (q < ps->end && *q != '#') {
        static const struct {
            const char *name;
            char c;
        } predef[] = { { "lt", '<' }, { "gt", '>' }, { "amp", '&' }, { "apos", '\'' },
                       { "quot", '"' } };
        for (size_t i = 0; i < ARRAY_LEN(predef); i++) {
            size_t n = strlen(predef[i].name);
            if ((size_t)(ps->end - q) > n && memcmp(q, predef[i].name, n) == 0 && q[n] == ';') {
                ps->p = q + n + 1;
                out[0] = predef[i].c;
                return 1;
            }
        }
        bad(ps, "'&' that starts no reference to one of XML's five entities");
        return 0;
    }
    q++;
    bool hex = q < ps->end && *q == 'x';
    q += hex;
    const char *digits = q;
    uint32_t v = 0;
    for (; q < ps->end && *q != ';'; q++) {
        char c = *q;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else {
            bad(ps, "a character reference with a bad digit");
            return 0;
        }
        v = v * (hex ? 16 : 10) + d;
        if (v > 0x10FFFF) {
            bad(ps, "a character reference beyond Unicode");
            return 0;
        }
    }
    if (q >= ps->end || q == digits) {
        bad(ps, "a character reference without digits or ';'");
        return 0;
    }
    if (!is_xml_char(v)) {
        bad(ps, "a character reference to a character XML does not allow");
        return 0;
    }
    ps->p = q + 1;
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)v, (utf8proc_uint8_t *)out);
}

/* What decode_into does besides normalising line ends (§2.11). */
typedef enum {
    DECODE_TEXT,                /* references */
    DECODE_ATTR,                /* references, and white space becomes a space (§3.3.3) */
    DECODE_CDATA,               /* nothing: '&' is itself */
} decode_t;

/* Copies raw[0, n) into the tree, decoded. The bytes were scanned already: outside CDATA,
 * every '&' starts a reference. */
static bool decode_into(parser_t *ps, const char *raw, size_t n, decode_t how, str_t *out)
{
    bool attr = how == DECODE_ATTR;
    char *d = tree_alloc(ps->doc, n);
    if (!d)
        return nomem(ps);
    size_t k = 0;
    const char *save = ps->p;
    for (size_t i = 0; i < n;) {
        char c = raw[i];
        if (c == '&' && how != DECODE_CDATA) {
            ps->p = raw + i;
            size_t m = scan_ref(ps, d + k);
            DEBUG_ASSERT(m > 0);
            k += m;
            i = (size_t)(ps->p - raw);
            continue;
        }
        if (c == '\r') {
            d[k++] = attr ? ' ' : '\n';
            i += i + 1 < n && raw[i + 1] == '\n' ? 2 : 1;
            continue;
        }
        d[k++] = attr && (c == '\t' || c == '\n') ? ' ' : c;
        i++;
    }
    ps->p = save;
    DEBUG_ASSERT(k <= n);
    *out = (str_t){ d, k };
    return true;
}

/* A quoted attribute value at p (§3.1 [10]): no '<', references checked. */
static bool scan_att_value(parser_t *ps, str_t *out)
{
    if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\''))
        return bad(ps, "an attribute value without quotes");
    char q = *ps->p++;
    const char *from = ps->p;
    bool plain = true;
    char scratch[4];
    while (ps->p < ps->end && *ps->p != q) {
        char c = *ps->p;
        if (c == '<')
            return bad(ps, "'<' in an attribute value");
        if (c == '&') {
            if (scan_ref(ps, scratch) == 0)
                return false;
            plain = false;
            continue;
        }
        if (c == '\t' || c == '\n' || c == '\r')
            plain = false;
        ps->p++;
    }
    if (ps->p >= ps->end)
        return bad(ps, "an attribute value without its closing quote");
    size_t n = (size_t)(ps->p - from);
    ps->p++;
    if (plain) {
        *out = (str_t){ from, n };
        return true;
    }
    return decode_into(ps, from, n, DECODE_ATTR, out);
}

/* A copy with a NUL, for a namespace URI (compared with strcmp by the formats). */
static const char *tree_cstr(parser_t *ps, str_t s)
{
    char *d = tree_alloc(ps->doc, s.len + 1);
    if (!d) {
        nomem(ps);
        return NULL;
    }
    memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return d;
}

static bool ns_push(parser_t *ps, str_t prefix, const char *uri)
{
    if (ps->ns_count == ps->ns_cap) {
        uint32_t cap = ps->ns_cap * 2;
        ns_binding_t *ns = malloc(cap * sizeof(*ns));
        if (!ns)
            return nomem(ps);
        memcpy(ns, ps->ns, ps->ns_count * sizeof(*ns));
        if (ps->ns != ps->ns_inline)
            free(ps->ns);
        ps->ns = ns;
        ps->ns_cap = cap;
    }
    ps->ns[ps->ns_count++] = (ns_binding_t){ prefix, uri };
    return true;
}

/* The URI bound to prefix (empty: the default namespace); *found false when unbound. */
static const char *ns_lookup(const parser_t *ps, str_t prefix, bool *found)
{
    for (uint32_t i = ps->ns_count; i-- > 0;) {
        if (str_eq(ps->ns[i].prefix, prefix)) {
            *found = true;
            return ps->ns[i].uri;
        }
    }
    *found = false;
    return NULL;
}

/* Namespaces in XML §3: the declarations among the attributes go in scope first. */
static bool declare_namespaces(parser_t *ps, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        raw_attr_t *a = &ps->attrs[i];
        bool is_default = a->prefix.len == 0 && str_eq_cstr(a->local, "xmlns");
        if (!is_default && !str_eq_cstr(a->prefix, "xmlns"))
            continue;
        a->is_decl = true;
        const char *uri = NULL;
        if (a->value.len > 0 && !(uri = tree_cstr(ps, a->value)))
            return false;
        bool uri_xml = uri && strcmp(uri, PIDF_XML_NS_XML) == 0;
        bool uri_xmlns = uri && strcmp(uri, XMLNS_NS) == 0;
        if (is_default) {
            if (uri_xml || uri_xmlns)
                return bad(ps, "the default namespace bound to a reserved name");
            if (!ns_push(ps, (str_t){ "", 0 }, uri))
                return false;
            continue;
        }
        if (str_eq_cstr(a->local, "xmlns"))
            return bad(ps, "the prefix xmlns declared");
        if (!uri)
            return bad(ps, "a prefix undeclared (xmlns:p=\"\")");
        if (str_eq_cstr(a->local, "xml") ? !uri_xml : (uri_xml || uri_xmlns))
            return bad(ps, "the xml prefix or a reserved namespace rebound");
        if (!ns_push(ps, a->local, uri))
            return false;
    }
    return true;
}

static bool resolve(parser_t *ps, str_t prefix, const char **uri)
{
    bool found;
    *uri = ns_lookup(ps, prefix, &found);
    if (prefix.len > 0 && (!found || str_eq_cstr(prefix, "xmlns")))
        return bad(ps, "an undeclared namespace prefix");
    return true;
}

/* The attributes of a start tag, up to '>' or '/>'. */
static bool scan_attributes(parser_t *ps, uint32_t *count, bool *empty)
{
    uint32_t n = 0;
    for (;;) {
        bool space = skip_space(ps);
        if (ps->p >= ps->end)
            return bad(ps, "a start tag without its end");
        if (*ps->p == '>') {
            ps->p++;
            *empty = false;
            break;
        }
        if (*ps->p == '/') {
            if (left(ps) < 2 || ps->p[1] != '>')
                return bad(ps, "'/' not followed by '>' in a start tag");
            ps->p += 2;
            *empty = true;
            break;
        }
        if (!space)
            return bad(ps, "no white space before an attribute");
        if (n == PIDF_XML_ATTRS_MAX)
            return fail_at(ps, PIDF_XML_TOO_MANY_ELEMENTS, "too many attributes", ps->p);
        raw_attr_t *a = &ps->attrs[n];
        str_t qname;
        if (!scan_qname(ps, &qname, &a->prefix, &a->local, "a bad attribute name"))
            return false;
        for (uint32_t i = 0; i < n; i++)
            if (str_eq(ps->attrs[i].prefix, a->prefix) && str_eq(ps->attrs[i].local, a->local))
                return bad(ps, "an attribute given twice");
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != '=')
            return bad(ps, "an attribute without a value");
        ps->p++;
        skip_space(ps);
        if (!scan_att_value(ps, &a->value))
            return false;
        a->is_decl = false;
        n++;
    }
    *count = n;
    return true;
}

/* A start tag at p ('<'); the element opens (or opens and closes, when empty). */
static bool start_element(parser_t *ps)
{
    const char *tag = ps->p++;
    if (++ps->elements > ps->elements_max)
        return fail_at(ps, PIDF_XML_TOO_MANY_ELEMENTS, "too many elements", tag);
    if (ps->depth + 1 > ps->depth_max)
        return fail_at(ps, PIDF_XML_TOO_DEEP, "elements nested too deep", tag);
    str_t qname, prefix, local;
    if (!scan_qname(ps, &qname, &prefix, &local, "a bad element name"))
        return false;
    uint32_t n = 0;
    bool empty = false;
    if (!scan_attributes(ps, &n, &empty))
        return false;

    uint32_t mark = ps->ns_count;
    if (!declare_namespaces(ps, n))
        return false;
    pidf_xml_node_t *el = tree_alloc(ps->doc, sizeof(*el));
    if (!el)
        return nomem(ps);
    *el = (pidf_xml_node_t){ .name = local, .line = line_at(ps, tag) };
    if (!resolve(ps, prefix, &el->ns))
        return false;
    pidf_xml_attr_t *last = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const raw_attr_t *r = &ps->attrs[i];
        if (r->is_decl)
            continue;
        pidf_xml_attr_t *a = tree_alloc(ps->doc, sizeof(*a));
        if (!a)
            return nomem(ps);
        *a = (pidf_xml_attr_t){ .name = r->local, .value = r->value };
        if (r->prefix.len > 0 && !resolve(ps, r->prefix, &a->ns))
            return false;
        for (const pidf_xml_attr_t *b = el->attrs; b; b = b->next)
            if (str_eq(b->name, a->name) && (a->ns == b->ns || (a->ns && b->ns &&
                                                               strcmp(a->ns, b->ns) == 0)))
                return bad(ps, "an attribute given twice in one namespace");
        if (last)
            last->next = a;
        else
            el->attrs = a;
        last = a;
    }

    if (ps->depth == 0) {
        ps->doc->root = el;
    } else {
        pidf_xml_node_t *parent = ps->open[ps->depth - 1].node;
        el->parent = parent;
        if (parent->last)
            parent->last->next = el;
        else
            parent->first = el;
        parent->last = el;
    }
    if (empty) {
        ps->ns_count = mark;
        return true;
    }
    ps->open[ps->depth++] = (open_el_t){ el, qname, mark };
    return true;
}

/* An end tag at p ("</"). */
static bool end_element(parser_t *ps)
{
    DEBUG_ASSERT(ps->depth > 0);
    const open_el_t *o = &ps->open[ps->depth - 1];
    ps->p += 2;
    if (left(ps) < o->qname.len || memcmp(ps->p, o->qname.ptr, o->qname.len) != 0)
        return bad(ps, "an end tag that does not match its start tag");
    ps->p += o->qname.len;
    skip_space(ps);
    if (ps->p >= ps->end || *ps->p != '>')
        return bad(ps, "an end tag that does not match its start tag");
    ps->p++;
    ps->ns_count = o->ns_mark;
    ps->depth--;
    return true;
}

static bool add_text(parser_t *ps, str_t text)
{
    pidf_xml_node_t *el = ps->open[ps->depth - 1].node;
    pidf_xml_piece_t *t = tree_alloc(ps->doc, sizeof(*t));
    if (!t)
        return nomem(ps);
    *t = (pidf_xml_piece_t){ .text = text };
    if (el->text_last)
        ((pidf_xml_piece_t *)el->text_last)->next = t;
    else
        el->text = t;
    el->text_last = t;
    return true;
}

/* Character data up to the next '<' (§2.4): references checked, no "]]>". */
static bool char_data(parser_t *ps)
{
    const char *from = ps->p;
    bool plain = true;
    char scratch[4];
    while (ps->p < ps->end && *ps->p != '<') {
        char c = *ps->p;
        if (c == '&') {
            if (scan_ref(ps, scratch) == 0)
                return false;
            plain = false;
            continue;
        }
        if (c == '\r')
            plain = false;
        else if (c == ']' && left(ps) >= 3 && ps->p[1] == ']' && ps->p[2] == '>')
            return bad(ps, "\"]]>\" in text");
        ps->p++;
    }
    str_t text = { from, (size_t)(ps->p - from) };
    if (!plain && !decode_into(ps, from, text.len, DECODE_TEXT, &text))
        return false;
    return add_text(ps, text);
}

/* A CDATA section at p ("<![CDATA["), §2.7: its bytes are text, line ends normalised. */
static bool cdata(parser_t *ps)
{
    ps->p += 9;
    const char *from = ps->p;
    const char *q = from;
    for (;;) {
        q = memchr(q, ']', (size_t)(ps->end - q));
        if (!q || ps->end - q < 3)
            return bad(ps, "a CDATA section without its end");
        if (q[1] == ']' && q[2] == '>')
            break;
        q++;
    }
    ps->p = q + 3;
    str_t text = { from, (size_t)(q - from) };
    if (memchr(from, '\r', text.len) && !decode_into(ps, from, text.len, DECODE_CDATA, &text))
        return false;
    return add_text(ps, text);
}

/* A comment at p ("<!--"), §2.5: no "--" inside, none before the end. */
static bool comment(parser_t *ps)
{
    const char *q = ps->p + 4;
    for (;;) {
        q = memchr(q, '-', (size_t)(ps->end - q));
        if (!q || ps->end - q < 3)
            return bad(ps, "a comment without its end");
        if (q[1] == '-') {
            if (q[2] != '>')
                return bad(ps, "\"--\" inside a comment");
            ps->p = q + 3;
            return true;
        }
        q++;
    }
}

/* A processing instruction at p ("<?"), §2.6; the XML declaration is not one. */
static bool pi(parser_t *ps)
{
    ps->p += 2;
    str_t target = scan_ncname(ps);
    if (target.len == 0)
        return bad(ps, "a processing instruction without a target");
    if (ps->p < ps->end && *ps->p == ':')
        return bad(ps, "a processing instruction's target with a colon");
    if (target.len == 3 && (target.ptr[0] | 0x20) == 'x' && (target.ptr[1] | 0x20) == 'm' &&
        (target.ptr[2] | 0x20) == 'l')
        return bad(ps, "an XML declaration not at the start, or a target named xml");
    if (at_lit(ps, "?>", 2)) {
        ps->p += 2;
        return true;
    }
    if (!skip_space(ps))
        return bad(ps, "a processing instruction's target without white space after it");
    for (const char *q = ps->p;; q++) {
        q = memchr(q, '?', (size_t)(ps->end - q));
        if (!q || ps->end - q < 2)
            return bad(ps, "a processing instruction without its end");
        if (q[1] == '>') {
            ps->p = q + 2;
            return true;
        }
    }
}

/* name S? '=' S? quoted value, for the XML declaration's pseudo-attributes. */
static bool decl_attr(parser_t *ps, const char *name, str_t *value)
{
    size_t n = strlen(name);
    if (!at_lit(ps, name, n))
        return false;
    ps->p += n;
    skip_space(ps);
    if (ps->p >= ps->end || *ps->p != '=')
        return bad(ps, "a bad XML declaration");
    ps->p++;
    skip_space(ps);
    if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\''))
        return bad(ps, "a bad XML declaration");
    char q = *ps->p++;
    const char *from = ps->p;
    while (ps->p < ps->end && *ps->p != q)
        ps->p++;
    if (ps->p >= ps->end)
        return bad(ps, "a bad XML declaration");
    *value = (str_t){ from, (size_t)(ps->p - from) };
    ps->p++;
    return true;
}

/* Every byte of s from `from` on is in set (the input holds no NUL: check_bytes). */
static bool all_of(str_t s, size_t from, const char *set)
{
    for (size_t i = from; i < s.len; i++)
        if (!strchr(set, s.ptr[i]))
            return false;
    return true;
}

#define DIGITS "0123456789"
#define ENC_START "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define ENC_CHARS ENC_START "0123456789._-"

/* The XML declaration at p ("<?xml" and white space), §2.8 [23]: version 1.x (§2.8: a 1.0
 * processor reads 1.x documents as 1.0), then an encoding name and standalone, each optional.
 * The encoding is not used: the bytes were checked to be UTF-8. */
static bool xml_decl(parser_t *ps)
{
    ps->p += 5;
    str_t v;
    skip_space(ps);
    if (!decl_attr(ps, "version", &v)) {
        if (ps->err == PIDF_XML_OK)
            bad(ps, "an XML declaration without a version");
        return false;
    }
    if (v.len < 3 || v.ptr[0] != '1' || v.ptr[1] != '.' || !all_of(v, 2, DIGITS))
        return bad(ps, "an XML version other than 1.x");
    bool space = skip_space(ps);
    if (space && decl_attr(ps, "encoding", &v)) {
        if (v.len == 0 || !strchr(ENC_START, v.ptr[0]) || !all_of(v, 1, ENC_CHARS))
            return bad(ps, "a bad encoding name");
        space = skip_space(ps);
    }
    if (ps->err != PIDF_XML_OK)
        return false;
    if (space && decl_attr(ps, "standalone", &v)) {
        if (!str_eq_cstr(v, "yes") && !str_eq_cstr(v, "no"))
            return bad(ps, "standalone neither yes nor no");
        skip_space(ps);
    }
    if (ps->err != PIDF_XML_OK)
        return false;
    if (!at_lit(ps, "?>", 2))
        return bad(ps, "a bad XML declaration");
    ps->p += 2;
    return true;
}

/* Comments, processing instructions and white space (§2.8 [27] Misc), before or after the
 * root. Stops at anything else. */
static bool misc(parser_t *ps)
{
    for (;;) {
        skip_space(ps);
        if (at_lit(ps, "<!--", 4)) {
            if (!comment(ps))
                return false;
        } else if (at_lit(ps, "<?", 2)) {
            if (!pi(ps))
                return false;
        } else {
            return true;
        }
    }
}

/* The root element and everything inside it, iteratively: depth is bounded by depth_max,
 * the stack by PIDF_DEPTH_LIMIT. */
static bool content(parser_t *ps)
{
    if (!start_element(ps))
        return false;
    while (ps->depth > 0) {
        if (ps->p >= ps->end)
            return bad(ps, "an element without its end tag");
        if (*ps->p != '<') {
            if (!char_data(ps))
                return false;
            continue;
        }
        bool ok;
        if (left(ps) >= 2 && ps->p[1] == '/')
            ok = end_element(ps);
        else if (at_lit(ps, "<!--", 4))
            ok = comment(ps);
        else if (at_lit(ps, "<![CDATA[", 9))
            ok = cdata(ps);
        else if (left(ps) >= 2 && ps->p[1] == '!')
            ok = bad(ps, "markup declaration inside an element");
        else if (left(ps) >= 2 && ps->p[1] == '?')
            ok = pi(ps);
        else
            ok = start_element(ps);
        if (!ok)
            return false;
    }
    return true;
}

static bool document(parser_t *ps)
{
    if (at_lit(ps, "\xEF\xBB\xBF", 3))
        ps->p += 3;                         /* the byte order mark (§4.3.3, Appendix F) */
    if (at_lit(ps, "<?xml", 5) && left(ps) > 5 && (is_space(ps->p[5]) || ps->p[5] == '?')) {
        if (!xml_decl(ps))
            return false;
    }
    if (!misc(ps))
        return false;
    if (at_lit(ps, "<!DOCTYPE", 9))
        return fail_at(ps, PIDF_XML_DOCTYPE, "document type declaration", ps->p);
    if (ps->p >= ps->end)
        return bad(ps, "no root element");
    if (*ps->p != '<' || left(ps) < 2 || ps->p[1] == '!' || ps->p[1] == '/')
        return bad(ps, "text or markup before the root element");
    if (!content(ps) || !misc(ps))
        return false;
    if (ps->p < ps->end)
        return bad(ps, "more after the root element");
    return true;
}

static void set_status(pidf_xml_status_t *st, pidf_xml_err_t err, const char *reason,
                       uint32_t line)
{
    st->err = err;
    st->reason = reason;
    st->line = line;
}

pidf_xml_doc_t *pidf_xml_parse(const char *data, size_t len, uint32_t bytes_max,
                               uint32_t elements_max, uint32_t depth_max,
                               pidf_xml_status_t *st)
{
    ASSERT(bytes_max > 0 && bytes_max <= PIDF_DOC_BYTES_LIMIT);
    ASSERT(elements_max > 0 && depth_max > 0 && depth_max <= PIDF_DEPTH_LIMIT);
    set_status(st, PIDF_XML_OK, "", 0);
    if (len > bytes_max) {
        set_status(st, PIDF_XML_TOO_LARGE, "document too large", 0);
        return NULL;
    }
    if (len == 0) {
        set_status(st, PIDF_XML_NOT_WELL_FORMED, "empty document", 0);
        return NULL;
    }
    parser_t *ps = malloc(sizeof(*ps));
    size_t cap = first_chunk_bytes(len);
    pidf_xml_doc_t *doc = malloc(sizeof(*doc) + cap);
    if (!ps || !doc) {
        free(ps);
        free(doc);
        set_status(st, PIDF_XML_NOMEM, "out of memory", 0);
        return NULL;
    }
    *doc = (pidf_xml_doc_t){ .cur = doc->first, .cap = cap };
    ps->p = ps->line_p = data;
    ps->end = data + len;
    ps->doc = doc;
    ps->elements = ps->depth = 0;
    ps->elements_max = elements_max;
    ps->depth_max = depth_max;
    ps->line = 1;
    ps->has_cr = memchr(data, '\r', len) != NULL;
    ps->ns = ps->ns_inline;
    ps->ns_cap = NS_INLINE;
    ps->ns_inline[0] = (ns_binding_t){ STR_LIT("xml"), PIDF_XML_NS_XML };
    ps->ns_count = 1;
    ps->err = PIDF_XML_OK;
    ps->reason = "";
    ps->err_line = 0;

    const char *at;
    pidf_xml_err_t e = check_bytes(data, len, &at);
    if (e == PIDF_XML_ENCODING)
        set_status(st, e, "not UTF-8", 0);
    else if (e != PIDF_XML_OK)
        set_status(st, e, "a character XML does not allow", line_at(ps, at));
    else if (!document(ps))
        set_status(st, ps->err, ps->reason, ps->err_line);
    if (ps->ns != ps->ns_inline)
        free(ps->ns);
    free(ps);
    if (st->err != PIDF_XML_OK) {
        pidf_xml_free(doc);
        return NULL;
    }
    DEBUG_ASSERT(doc->root != NULL);
    return doc;
}

/* ---- Tree queries ------------------------------------------------------ */

bool pidf_xml_name_is(const pidf_xml_node_t *n, const char *name)
{
    return str_eq_cstr(n->name, name);
}

bool pidf_xml_is(const pidf_xml_node_t *n, const char *name, const char *ns)
{
    if (!pidf_xml_name_is(n, name))
        return false;
    return ns ? n->ns && strcmp(n->ns, ns) == 0 : n->ns == NULL;
}

uint32_t pidf_xml_count_children(const pidf_xml_node_t *n)
{
    uint32_t k = 0;
    for (const pidf_xml_node_t *c = n->first; c; c = c->next)
        k++;
    return k;
}

/* ---- Arena ------------------------------------------------------------- */

bool pidf_arena_copy(pidf_arena_t *a, const char *s, size_t n, str_t *out)
{
    if (n == 0) {
        *out = (str_t){ "", 0 };
        return true;
    }
    if (a->cap - a->used < n) {
        DEBUG_ASSERT(!"decoded strings outgrew the input");
        return false;
    }
    char *d = a->base + a->used;
    memcpy(d, s, n);
    a->used += n;
    *out = (str_t){ d, n };
    return true;
}

static bool copy_pieces(pidf_arena_t *a, const pidf_xml_piece_t *first, str_t *out)
{
    size_t start = a->used;
    for (const pidf_xml_piece_t *t = first; t; t = t->next) {
        str_t piece;
        if (!pidf_arena_copy(a, t->text.ptr, t->text.len, &piece))
            return false;
    }
    size_t n = a->used - start;
    *out = n ? (str_t){ a->base + start, n } : (str_t){ "", 0 };
    return true;
}

bool pidf_xml_text(pidf_arena_t *a, const pidf_xml_node_t *n, str_t *out)
{
    return copy_pieces(a, n->text, out);
}

bool pidf_xml_attr(pidf_arena_t *a, const pidf_xml_node_t *n, const char *name, const char *ns,
                   str_t *out)
{
    for (const pidf_xml_attr_t *at = n->attrs; at; at = at->next) {
        if (!str_eq_cstr(at->name, name))
            continue;
        if (ns ? !at->ns || strcmp(at->ns, ns) != 0 : at->ns != NULL)
            continue;
        return pidf_arena_copy(a, at->value.ptr, at->value.len, out);
    }
    *out = (str_t){ NULL, 0 };
    return true;
}

/* ---- Strings ----------------------------------------------------------- */

static inline bool is_xml_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';     /* XML 1.0 [3] */
}

str_t pidf_xml_trim(str_t s)
{
    if (!s.ptr)
        return s;
    while (s.len && is_xml_space((unsigned char)s.ptr[0]))
        s.ptr++, s.len--;
    while (s.len && is_xml_space((unsigned char)s.ptr[s.len - 1]))
        s.len--;
    return s;
}

str_t pidf_xml_cut(str_t s, size_t max)
{
    if (s.len <= max)
        return s;
    size_t n = max;
    while (n > 0 && ((unsigned char)s.ptr[n] & 0xC0) == 0x80)
        n--;                                /* s.ptr[n] continues the character before it */
    return (str_t){ s.ptr, n };
}

/* The length of the UTF-8 sequence at s (1-4) and its code point, or 0 if it is not one
 * (overlong forms, surrogates and values above U+10FFFF are not, RFC 3629 §4). ASCII, most
 * of any document, without a call. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)n, &c);
    if (k <= 0)
        return 0;
    *cp = (uint32_t)c;
    return (int)k;
}

bool pidf_xml_valid(str_t s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    while (i < s.len) {
        uint32_t cp;
        int k = utf8_next(p + i, s.len - i, &cp);
        if (k == 0 || !is_xml_char(cp))
            return false;
        i += (size_t)k;
    }
    return true;
}

bool pidf_xml_eq_nocase(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

bool pidf_xml_opt_eq(str_t a, str_t b)
{
    if (!a.ptr || !b.ptr)
        return !a.ptr && !b.ptr;
    return str_eq(a, b);
}

bool pidf_xml_parse_u64(str_t s, uint64_t *out)
{
    if (s.len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned)((unsigned char)s.ptr[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ---- Writers ----------------------------------------------------------- */

static void write_escaped(buf_t *b, str_t s, bool attr)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, run = 0;                  /* bytes p[run, i) need no escaping */
    buf_reserve(b, s.len + 16);
    while (i < s.len) {
        uint32_t cp;
        int k = utf8_next(p + i, s.len - i, &cp);
        const char *rep = NULL;
        if (k == 0 || !is_xml_char(cp)) {
            rep = fffd;
            k = k ? k : 1;
        } else if (cp == '&') {
            rep = "&amp;";
        } else if (cp == '<') {
            rep = "&lt;";
        } else if (cp == '>') {
            rep = "&gt;";
        } else if (cp == '\r') {
            rep = "&#13;";
        } else if (attr && cp == '"') {
            rep = "&quot;";
        } else if (attr && cp == '\t') {
            rep = "&#9;";
        } else if (attr && cp == '\n') {
            rep = "&#10;";
        }
        if (rep) {
            buf_append(b, p + run, i - run);
            buf_append_str(b, rep);
            run = i + (size_t)k;
        }
        i += (size_t)k;
    }
    buf_append(b, p + run, s.len - run);
}

void pidf_xml_write_text(buf_t *b, str_t s)
{
    write_escaped(b, s, false);
}

void pidf_xml_write_attr(buf_t *b, const char *name, str_t v)
{
    buf_append_str(b, " ");
    buf_append_str(b, name);
    buf_append_str(b, "=\"");
    write_escaped(b, v, true);
    buf_append_str(b, "\"");
}

void pidf_xml_write_el(buf_t *b, const char *name, str_t text)
{
    buf_append_strs(b, "<", name, ">", NULL);
    write_escaped(b, text, false);
    buf_append_strs(b, "</", name, ">", NULL);
}
