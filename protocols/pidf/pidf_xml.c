/*
 * pidf_xml.c - see pidf_int.h: the bounded libxml2 parse, tree queries, the string arena and
 * the escaping writers that pidf.c and winfo.c share.
 *
 * libxml2 builds the tree under a SAX wrapper that counts elements and depth and stops at a
 * DOCTYPE, so nothing unbounded happens inside libxml2; the formats then walk the tree and
 * copy what they keep, and the tree is freed before they return.
 */
#include "protocols/pidf/pidf_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "protocols/pidf/pidf.h"

_Static_assert(PIDF_DOC_BYTES_LIMIT < INT32_MAX, "libxml2 takes the length as an int");
_Static_assert(PIDF_DEPTH_LIMIT < 256, "libxml2 stops at 256 levels by itself");

/* ---- libxml2 set-up ---------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init_once(void)
{
    LIBXML_TEST_VERSION
    xmlInitParser();
}

void pidf_global_init(void)
{
    pthread_once(&global_once, global_init_once);
}

/* ---- Bounded parse ----------------------------------------------------- */

typedef struct {
    uint32_t elements, depth, elements_max, depth_max;
    pidf_xml_err_t stop;        /* why we stopped libxml2, OK if we did not */
    const char *reason;
    int xml_code;               /* first fatal error libxml2 reported */
    uint32_t line;
} parse_state_t;

static void halt(xmlParserCtxtPtr c, pidf_xml_err_t why, const char *reason)
{
    parse_state_t *s = c->_private;
    if (s->stop == PIDF_XML_OK) {
        s->stop = why;
        s->reason = reason;
        s->line = (uint32_t)xmlSAX2GetLineNumber(c);
    }
    xmlStopParser(c);
}

static void on_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
                     int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted,
                     const xmlChar **attrs)
{
    xmlParserCtxtPtr c = ctx;
    parse_state_t *s = c->_private;
    /* Counted before libxml2 allocates the node: the bound holds for the tree too. */
    if (++s->elements > s->elements_max) {
        halt(c, PIDF_XML_TOO_MANY_ELEMENTS, "too many elements");
        return;
    }
    if (++s->depth > s->depth_max) {
        halt(c, PIDF_XML_TOO_DEEP, "elements nested too deep");
        return;
    }
    xmlSAX2StartElementNs(ctx, local, prefix, uri, nb_ns, ns, nb_attrs, nb_defaulted, attrs);
}

static void on_end(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
    xmlParserCtxtPtr c = ctx;
    parse_state_t *s = c->_private;
    s->depth--;
    xmlSAX2EndElementNs(ctx, local, prefix, uri);
}

/* Called at "<!DOCTYPE name ExternalID", before any '[' internal subset is read: stopping
 * here means no entity is ever declared, so none can be expanded (billion laughs) and no
 * external subset is fetched. */
static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                               const xmlChar *sys_id)
{
    (void)name, (void)ext_id, (void)sys_id;
    halt(ctx, PIDF_XML_DOCTYPE, "document type declaration");
}

/* Errors are kept, never printed: the bytes come from peers. */
static void on_serror(void *ctx, xmlErrorPtr e)
{
    xmlParserCtxtPtr c = ctx;
    parse_state_t *s = c->_private;
    if (e && e->level == XML_ERR_FATAL && s->xml_code == 0) {
        s->xml_code = e->code;
        s->line = e->line > 0 ? (uint32_t)e->line : 0;
    }
}

static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* libxml2 guesses UTF-16, UCS-4 or EBCDIC from the first bytes (XML 1.0 Appendix F) and
 * would convert; none of them is valid UTF-8 without NULs (a byte order mark, "<?xm" in
 * EBCDIC and UTF-16's zero bytes are not), so checking UTF-8 here refuses them all before
 * libxml2 looks, and the strings decoded are UTF-8 whatever libxml2's fallbacks would do. */
static bool utf8_input(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            if (s[i] == 0)
                return false;
            i++;
            continue;
        }
        uint32_t cp;
        int k = utf8_next(s + i, len - i, &cp);
        if (k == 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

static void set_status(pidf_xml_status_t *st, pidf_xml_err_t err, const char *reason,
                       int xml_code, uint32_t line)
{
    st->err = err;
    st->reason = reason;
    st->xml_code = xml_code;
    st->line = line;
}

xmlDocPtr pidf_xml_parse(const char *data, size_t len, uint32_t bytes_max, uint32_t elements_max,
                         uint32_t depth_max, pidf_xml_status_t *st)
{
    ASSERT(bytes_max > 0 && bytes_max <= PIDF_DOC_BYTES_LIMIT);
    ASSERT(elements_max > 0 && depth_max > 0 && depth_max <= PIDF_DEPTH_LIMIT);
    set_status(st, PIDF_XML_OK, "", 0, 0);
    if (len > bytes_max) {
        set_status(st, PIDF_XML_TOO_LARGE, "document too large", 0, 0);
        return NULL;
    }
    if (len == 0) {
        set_status(st, PIDF_XML_NOT_WELL_FORMED, "empty document", 0, 0);
        return NULL;
    }
    if (!utf8_input(data, len)) {
        set_status(st, PIDF_XML_ENCODING, "not UTF-8", 0, 0);
        return NULL;
    }
    pidf_global_init();
    /* A context of our own rather than xmlReadMemory: the SAX hooks below are what stop the
     * parse at a DOCTYPE or at the element bounds, before libxml2 builds anything more. */
    xmlParserCtxtPtr c = xmlCreateMemoryParserCtxt(data, (int)len);
    if (!c) {
        set_status(st, PIDF_XML_NOMEM, "out of memory", 0, 0);
        return NULL;
    }
    /* NOENT, DTDLOAD, DTDATTR and HUGE stay off; IGNORE_ENC because the bytes were checked to
     * be UTF-8 above and a declaration must not switch libxml2 to a converter. */
    xmlCtxtUseOptions(c, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                             XML_PARSE_NOCDATA | XML_PARSE_IGNORE_ENC);
    parse_state_t s = { .elements_max = elements_max, .depth_max = depth_max };
    c->_private = &s;
    c->sax->startElementNs = on_start;
    c->sax->endElementNs = on_end;
    c->sax->internalSubset = on_internal_subset;
    c->sax->serror = on_serror;

    xmlParseDocument(c);
    xmlDocPtr doc = c->myDoc;
    c->myDoc = NULL;
    bool well_formed = c->wellFormed != 0;
    int last = c->lastError.code;
    xmlFreeParserCtxt(c);

    if (s.stop != PIDF_XML_OK) {
        set_status(st, s.stop, s.reason, 0, s.line);
    } else if (!well_formed || !doc || !xmlDocGetRootElement(doc)) {
        set_status(st, PIDF_XML_NOT_WELL_FORMED, "not well-formed XML",
                   s.xml_code ? s.xml_code : last, s.line);
    } else if (doc->intSubset || doc->extSubset) {
        set_status(st, PIDF_XML_DOCTYPE, "document type declaration", 0, 0);
    } else {
        return doc;
    }
    if (doc)
        xmlFreeDoc(doc);
    return NULL;
}

void pidf_xml_free(xmlDocPtr doc)
{
    if (doc)
        xmlFreeDoc(doc);
}

xmlNodePtr pidf_xml_root(xmlDocPtr doc)
{
    return xmlDocGetRootElement(doc);
}

/* ---- Tree queries ------------------------------------------------------ */

static xmlNodePtr element_from(xmlNodePtr n)
{
    while (n && n->type != XML_ELEMENT_NODE)
        n = n->next;
    return n;
}

xmlNodePtr pidf_xml_first(const xmlNode *n)
{
    return element_from(n->children);
}

xmlNodePtr pidf_xml_next(const xmlNode *n)
{
    return element_from(n->next);
}

const char *pidf_xml_ns(const xmlNode *n)
{
    return n->ns && n->ns->href ? (const char *)n->ns->href : NULL;
}

str_t pidf_xml_name(const xmlNode *n)
{
    return str_from_cstr((const char *)n->name);
}

bool pidf_xml_name_is(const xmlNode *n, const char *name)
{
    return strcmp((const char *)n->name, name) == 0;
}

bool pidf_xml_is(const xmlNode *n, const char *name, const char *ns)
{
    const char *nns = pidf_xml_ns(n);
    if (!pidf_xml_name_is(n, name))
        return false;
    return ns ? nns && strcmp(nns, ns) == 0 : nns == NULL;
}

uint32_t pidf_xml_count_children(const xmlNode *n)
{
    uint32_t k = 0;
    for (xmlNodePtr c = pidf_xml_first(n); c; c = pidf_xml_next(c))
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

/* Concatenates the text nodes of a child list (comments and elements between them skipped). */
static bool copy_text_list(pidf_arena_t *a, const xmlNode *first, str_t *out)
{
    size_t start = a->used;
    for (const xmlNode *c = first; c; c = c->next) {
        if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) || !c->content)
            continue;
        str_t piece;
        if (!pidf_arena_copy(a, (const char *)c->content, strlen((const char *)c->content),
                             &piece))
            return false;
    }
    size_t n = a->used - start;
    *out = n ? (str_t){ a->base + start, n } : (str_t){ "", 0 };
    return true;
}

bool pidf_xml_text(pidf_arena_t *a, const xmlNode *n, str_t *out)
{
    return copy_text_list(a, n->children, out);
}

bool pidf_xml_attr(pidf_arena_t *a, const xmlNode *n, const char *name, const char *ns,
                   str_t *out)
{
    for (const xmlAttr *at = n->properties; at; at = at->next) {
        if (strcmp((const char *)at->name, name) != 0)
            continue;
        const char *ans = at->ns && at->ns->href ? (const char *)at->ns->href : NULL;
        if (ns ? !ans || strcmp(ans, ns) != 0 : ans != NULL)
            continue;
        return copy_text_list(a, at->children, out);
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
 * (overlong forms, surrogates and values above U+10FFFF are not, RFC 3629 §4). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int k;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < (size_t)k)
        return 0;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return k;
}

static inline bool is_xml_char(uint32_t c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);   /* XML 1.0 [2] */
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
    buf_printf(b, "<%s>", name);
    write_escaped(b, text, false);
    buf_printf(b, "</%s>", name);
}
