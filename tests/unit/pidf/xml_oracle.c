/*
 * xml_oracle.c - see xml_oracle.h: libxml2's verdict and tree next to pidf_xml_parse's.
 */
#include "tests/unit/pidf/xml_oracle.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <utf8proc.h>

/* ---- libxml2's parse --------------------------------------------------- */

typedef struct {
    xmlDocPtr doc;
    bool well_formed, ns_well_formed;
    bool doctype;               /* reached a DOCTYPE (the parse stopped there) */
    bool doctype_clean;         /* ... with nothing wrong before it */
    unsigned ns_uri_errors;     /* namespace errors that are only "not a valid URI" */
    unsigned ns_other_errors;   /* all other namespace errors */
    int first_error;            /* libxml2's first error code, for the report */
    char first_message[160];
} lx_result_t;

static bool ns_well_formed(const lx_result_t *r);

static void lx_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                               const xmlChar *sys_id)
{
    (void)name, (void)ext_id, (void)sys_id;
    xmlParserCtxtPtr c = ctx;
    lx_result_t *r = c->_private;
    r->doctype = true;
    r->ns_well_formed = c->nsWellFormed != 0;
    r->doctype_clean = c->wellFormed && ns_well_formed(r);
    /* Nothing after "<!DOCTYPE name ExternalID" is read: no entity is declared, none
     * expanded, no external subset fetched. */
    xmlStopParser(c);
}

static void lx_serror(void *ctx, xmlErrorPtr e)
{
    xmlParserCtxtPtr c = ctx;
    lx_result_t *r = c->_private;
    if (!e || e->level < XML_ERR_ERROR)
        return;
    if (e->domain == XML_FROM_NAMESPACE && e->code == XML_WAR_NS_URI)
        r->ns_uri_errors++;
    else if (e->domain == XML_FROM_NAMESPACE)
        r->ns_other_errors++;
    if (r->first_error)
        return;
    r->first_error = e->code;
    snprintf(r->first_message, sizeof(r->first_message), "%s", e->message ? e->message : "");
    size_t n = strlen(r->first_message);
    if (n && r->first_message[n - 1] == '\n')
        r->first_message[n - 1] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void lx_generic_error(void *ctx, const char *fmt, ...)
{
    (void)ctx, (void)fmt;
}

static void lx_parse(const char *data, size_t len, lx_result_t *r)
{
    static bool initialised;
    if (!initialised) {
        xmlInitParser();
        /* Errors without a parser context (encoding conversions libxml2 starts by itself
         * from the first bytes, whatever XML_PARSE_IGNORE_ENC says) go to the generic
         * handler, which prints; the verdict is in the context. */
        xmlSetGenericErrorFunc(NULL, lx_generic_error);
        initialised = true;
    }
    memset(r, 0, sizeof(*r));
    /* libxml2 refuses an empty buffer outright; an empty document is not well-formed. */
    if (len == 0 || len > INT_MAX)
        return;
    xmlParserCtxtPtr c = xmlCreateMemoryParserCtxt(data, (int)len);
    if (!c)
        return;
    xmlCtxtUseOptions(c, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                             XML_PARSE_NOCDATA | XML_PARSE_IGNORE_ENC);
    c->_private = r;
    c->sax->internalSubset = lx_internal_subset;
    c->sax->serror = lx_serror;
    xmlParseDocument(c);
    r->doc = c->myDoc;
    c->myDoc = NULL;
    r->well_formed = c->wellFormed != 0;
    r->ns_well_formed = c->nsWellFormed != 0;
    xmlFreeParserCtxt(c);
}

/* ---- Named exceptions -------------------------------------------------- */

/*
 * Where libxml2 2.9 and XML 1.0 fifth edition / Namespaces in XML 1.0 third edition part, and
 * ours follows the specification. Each one is as narrow as the input that shows it.
 */

/* "version-1-dot": XML 1.0 [26] VersionNum ::= '1.' [0-9]+, but libxml2's xmlParseVersionNum
 * reads [0-9] '.' [0-9]* and only warns about a version other than 1.0, so it accepts
 * <?xml version="1."?>. True when the declaration's version is exactly "1.". */
/* XML 1.0 [3] */
static bool is_s(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool exc_version_1_dot(const char *data, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    if (len - i < 6 || memcmp(data + i, "<?xml", 5) != 0)
        return false;
    i += 5;
    while (i < len && is_s(data[i]))
        i++;
    if (len - i < 7 || memcmp(data + i, "version", 7) != 0)
        return false;
    i += 7;
    while (i < len && is_s(data[i]))
        i++;
    if (i >= len || data[i] != '=')
        return false;
    i++;
    while (i < len && is_s(data[i]))
        i++;
    if (len - i < 4 || (data[i] != '"' && data[i] != '\''))
        return false;
    return data[i + 1] == '1' && data[i + 2] == '.' && data[i + 3] == data[i];
}

/* "sddecl-after-encoding-without-space": XML 1.0 [32] SDDecl ::= S 'standalone' Eq ..., but
 * under XML_PARSE_IGNORE_ENC libxml2's xmlParseXMLDecl checks for the blank after the
 * encoding declaration only when it switched to that encoding, so it accepts
 * <?xml version="1.0" encoding="UTF-8"standalone="no"?>. True when, inside the declaration,
 * "standalone" directly follows the quote that closes the encoding's value. */
static bool exc_sddecl_no_space(const char *data, size_t len)
{
    size_t i = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    if (len - i < 5 || memcmp(data + i, "<?xml", 5) != 0)
        return false;
    const char *decl = data + i;
    size_t n = len - i;
    for (size_t k = 5; k + 1 < n; k++)
        if (decl[k] == '?' && decl[k + 1] == '>') {
            n = k;
            break;
        }
    /* EncodingDecl ::= S 'encoding' Eq ('"' EncName '"' | "'" EncName "'") */
    size_t k = 5;
    while (k + 8 <= n && memcmp(decl + k, "encoding", 8) != 0)
        k++;
    if (k + 8 > n)
        return false;
    k += 8;
    while (k < n && is_s(decl[k]))
        k++;
    if (k >= n || decl[k++] != '=')
        return false;
    while (k < n && is_s(decl[k]))
        k++;
    if (k >= n || (decl[k] != '"' && decl[k] != '\''))
        return false;
    const char *close = memchr(decl + k + 1, decl[k], n - k - 1);
    if (!close)
        return false;
    k = (size_t)(close - decl) + 1;
    return n - k >= 10 && memcmp(decl + k, "standalone", 10) == 0;
}

/* "ns-uri-amp": a namespace declaration's value reaches libxml2's tree with every '&' (written
 * &amp; or &#38;) left as the five characters "&#38;" (xmlParseAttValueInternal keeps it so
 * for a later re-parse that namespace declarations never get). The URI is the normalised
 * value (Namespaces in XML §3), so libxml2's is compared with "&#38;" read back as '&'. */
static bool ns_equal(const char *ours, const char *lx)
{
    if (!ours || !lx)
        return ours == lx;
    size_t i = 0, j = 0;
    for (;;) {
        if (lx[j] == '&' && strncmp(lx + j, "&#38;", 5) == 0) {
            if (ours[i] != '&')
                return false;
            i++, j += 5;
            continue;
        }
        if (ours[i] != lx[j])
            return false;
        if (!ours[i])
            return true;
        i++, j++;
    }
}

/* "ns-uri-syntax": libxml2 runs every namespace name through its URI parser and reports one it
 * cannot parse (a space, '<', '>', '"', '{', '[' out of place, a TAB from &#9;, ...) with
 * xmlNsErr as XML_WAR_NS_URI, which clears nsWellFormed. Namespaces in XML 1.0 has no such
 * constraint: the name is compared as a string and need not be retrievable (§2.2, §2.3), and
 * the three formats only ever compare it with their own URIs. True when the namespace errors
 * libxml2 reported were all of that kind. */
static bool ns_well_formed(const lx_result_t *r)
{
    return r->ns_well_formed || (r->ns_other_errors == 0 && r->ns_uri_errors > 0);
}

typedef struct {
    const char *name;
    bool (*applies)(const char *data, size_t len);
} lx_lenience_t;

/* Documents libxml2 accepts and the specification (so ours) refuses. */
static const lx_lenience_t lx_lenient[] = {
    { "version-1-dot", exc_version_1_dot },
    { "sddecl-after-encoding-without-space", exc_sddecl_no_space },
};

static const char *lenience(const char *data, size_t len)
{
    for (size_t i = 0; i < sizeof(lx_lenient) / sizeof(lx_lenient[0]); i++)
        if (lx_lenient[i].applies(data, len))
            return lx_lenient[i].name;
    return NULL;
}

/* ---- Reporting --------------------------------------------------------- */

void xml_oracle_print_escaped(const char *data, size_t len, size_t max)
{
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7F)
            fprintf(stderr, "\\x%02X\"\"", c);    /* "" so a following hex digit stays apart */
        else
            fputc(c, stderr);
    }
    fputc('"', stderr);
    if (len > max)
        fprintf(stderr, " ... (%zu bytes)", len);
}

static const char *err_name(pidf_xml_err_t e)
{
    switch (e) {
    case PIDF_XML_OK: return "OK";
    case PIDF_XML_TOO_LARGE: return "TOO_LARGE";
    case PIDF_XML_ENCODING: return "ENCODING";
    case PIDF_XML_NOT_WELL_FORMED: return "NOT_WELL_FORMED";
    case PIDF_XML_DOCTYPE: return "DOCTYPE";
    case PIDF_XML_TOO_MANY_ELEMENTS: return "TOO_MANY_ELEMENTS";
    case PIDF_XML_TOO_DEEP: return "TOO_DEEP";
    case PIDF_XML_NOMEM: return "NOMEM";
    }
    return "?";
}

static bool quiet;

void xml_oracle_quiet(bool on)
{
    quiet = on;
}

__attribute__((format(printf, 5, 6)))
static int disagree(const char *data, size_t len, const pidf_xml_status_t *st,
                    const lx_result_t *lx, const char *fmt, ...)
{
    if (quiet)
        return -1;
    va_list ap;
    fputs("xml_oracle: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n  ours: ", stderr);
    if (!st || st->err == PIDF_XML_OK)
        fputs("tree", stderr);
    else
        fprintf(stderr, "%s \"%s\" line %u", err_name(st->err), st->reason ? st->reason : "",
                st->line);
    if (lx)
        fprintf(stderr, "\n  libxml2: wellFormed %d nsWellFormed %d doctype %d root %d, "
                        "first error %d \"%s\"",
                lx->well_formed, lx->ns_well_formed, lx->doctype,
                lx->doc && xmlDocGetRootElement(lx->doc) != NULL, lx->first_error,
                lx->first_message);
    fputs("\n  input: ", stderr);
    xml_oracle_print_escaped(data, len, 2000);
    fputc('\n', stderr);
    return -1;
}

/* ---- Tree comparison --------------------------------------------------- */

typedef struct {
    const char *data;
    size_t len;
    const lx_result_t *lx;
    char path[512];
} cmp_t;

static void path_push(cmp_t *c, size_t *mark, str_t name, unsigned index)
{
    *mark = strlen(c->path);
    snprintf(c->path + *mark, sizeof(c->path) - *mark, "/%.*s[%u]",
             (int)(name.len < 40 ? name.len : 40), name.ptr, index);
}

static bool bytes_eq(str_t s, const char *z, size_t zlen)
{
    return s.len == zlen && (zlen == 0 || memcmp(s.ptr, z, zlen) == 0);
}

/* libxml2's character data of a child list: text nodes (CDATA arrives as text under
 * XML_PARSE_NOCDATA); false if another kind of node holds data (an entity reference). */
static bool lx_text(const xmlNode *first, char *out, size_t cap, size_t *n, bool attr)
{
    *n = 0;
    for (const xmlNode *k = first; k; k = k->next) {
        if (k->type == XML_ELEMENT_NODE || k->type == XML_COMMENT_NODE ||
            k->type == XML_PI_NODE) {
            if (attr)
                return false;
            continue;
        }
        if (k->type != XML_TEXT_NODE && k->type != XML_CDATA_SECTION_NODE)
            return false;
        size_t m = k->content ? strlen((const char *)k->content) : 0;
        if (*n + m > cap)
            return false;
        memcpy(out + *n, k->content, m);
        *n += m;
    }
    return true;
}

static int cmp_attrs(cmp_t *c, const pidf_xml_node_t *o, const xmlNode *x, char *buf,
                     size_t cap)
{
    const pidf_xml_attr_t *a = o->attrs;
    const xmlAttr *p = x->properties;
    for (unsigned i = 1; a || p; i++, a = a->next, p = p->next) {
        if (!a || !p)
            return disagree(c->data, c->len, NULL, c->lx, "%s: attribute %u only in %s",
                            c->path, i, a ? "ours" : "libxml2");
        const char *pns = p->ns ? (const char *)p->ns->href : NULL;
        if (!bytes_eq(a->name, (const char *)p->name, strlen((const char *)p->name)) ||
            !ns_equal(a->ns, pns))
            return disagree(c->data, c->len, NULL, c->lx,
                            "%s: attribute %u is {%s}%.*s, libxml2 {%s}%s", c->path, i,
                            a->ns ? a->ns : "", (int)a->name.len, a->name.ptr, pns ? pns : "",
                            p->name);
        size_t n;
        if (!lx_text(p->children, buf, cap, &n, true))
            return disagree(c->data, c->len, NULL, c->lx,
                            "%s: libxml2's attribute %s is not plain text", c->path, p->name);
        if (!a->value.ptr || !bytes_eq(a->value, buf, n))
            return disagree(c->data, c->len, NULL, c->lx,
                            "%s: attribute %s is \"%.*s\", libxml2 \"%.*s\"", c->path, p->name,
                            (int)a->value.len, a->value.ptr ? a->value.ptr : "", (int)n, buf);
    }
    return 0;
}

static int cmp_text(cmp_t *c, const pidf_xml_node_t *o, const xmlNode *x, char *buf,
                    size_t cap)
{
    size_t n;
    if (!lx_text(x->children, buf, cap, &n, false))
        return disagree(c->data, c->len, NULL, c->lx, "%s: libxml2 has a node that is not "
                        "text, element, comment or PI", c->path);
    size_t at = 0;
    for (const pidf_xml_piece_t *t = o->text; t; t = t->next) {
        if (!t->text.ptr && t->text.len)
            return disagree(c->data, c->len, NULL, c->lx, "%s: a text piece without bytes",
                            c->path);
        if (t->text.len > n - at || memcmp(buf + at, t->text.ptr, t->text.len) != 0)
            return disagree(c->data, c->len, NULL, c->lx,
                            "%s: text differs at byte %zu (libxml2 \"%.*s\")", c->path, at,
                            (int)n, buf);
        at += t->text.len;
    }
    if (at != n)
        return disagree(c->data, c->len, NULL, c->lx,
                        "%s: text is %zu bytes, libxml2 %zu (\"%.*s\")", c->path, at, n,
                        (int)n, buf);
    return 0;
}

static const xmlNode *lx_element(const xmlNode *n)
{
    while (n && n->type != XML_ELEMENT_NODE)
        n = n->next;
    return n;
}

/* buf: scratch of the input's size, enough for any text libxml2 decodes from it. */
static int cmp_element(cmp_t *c, const pidf_xml_node_t *o, const xmlNode *x, char *buf,
                       size_t cap)
{
    const char *xns = x->ns ? (const char *)x->ns->href : NULL;
    if (!bytes_eq(o->name, (const char *)x->name, strlen((const char *)x->name)) ||
        !ns_equal(o->ns, xns))
        return disagree(c->data, c->len, NULL, c->lx, "%s: element is {%s}%.*s, libxml2 {%s}%s",
                        c->path, o->ns ? o->ns : "", (int)o->name.len, o->name.ptr,
                        xns ? xns : "", x->name);
    if (cmp_attrs(c, o, x, buf, cap) < 0 || cmp_text(c, o, x, buf, cap) < 0)
        return -1;
    const pidf_xml_node_t *ok = pidf_xml_first(o);
    const xmlNode *xk = lx_element(x->children);
    for (unsigned i = 1; ok || xk; i++, ok = pidf_xml_next(ok), xk = lx_element(xk->next)) {
        if (!ok || !xk)
            return disagree(c->data, c->len, NULL, c->lx, "%s: child element %u only in %s",
                            c->path, i, ok ? "ours" : "libxml2");
        size_t mark;
        path_push(c, &mark, ok->name, i);
        if (cmp_element(c, ok, xk, buf, cap) < 0)
            return -1;
        c->path[mark] = '\0';
    }
    return 0;
}

/* ---- The verdicts ------------------------------------------------------ */

/* XML 1.0 [2] Char */
static bool is_xml_char(uint32_t c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

/* Valid UTF-8 without NUL; *xml_chars says whether every character is an XML Char. */
static bool utf8_scan(const char *data, size_t len, bool *xml_chars)
{
    const unsigned char *s = (const unsigned char *)data;
    *xml_chars = true;
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        if (b == 0)
            return false;
        if (b < 0x80) {
            if (!is_xml_char(b))
                *xml_chars = false;
            i++;
            continue;
        }
        utf8proc_int32_t v;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &v);
        if (k <= 0)
            return false;
        if (!is_xml_char((uint32_t)v))
            *xml_chars = false;
        i += (size_t)k;
    }
    return true;
}

bool xml_oracle_utf8_no_nul(const char *data, size_t len)
{
    bool xml_chars;
    return utf8_scan(data, len, &xml_chars);
}

static bool is_limit(pidf_xml_err_t e)
{
    return e == PIDF_XML_TOO_LARGE || e == PIDF_XML_TOO_MANY_ELEMENTS || e == PIDF_XML_TOO_DEEP;
}

static bool contains(const char *data, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, lit, n) == 0)
            return true;
    return false;
}

static int verdicts(const char *data, size_t len, const pidf_xml_doc_t *doc,
                    const pidf_xml_status_t *st, const lx_result_t *lx)
{
    bool xml_chars;
    bool utf8 = utf8_scan(data, len, &xml_chars);
    const xmlNode *lx_root = lx->doc ? xmlDocGetRootElement(lx->doc) : NULL;
    bool lx_ok = lx->well_formed && ns_well_formed(lx) && !lx->doctype && lx_root;
    if (doc && !utf8)
        return disagree(data, len, st, lx, "accepted bytes that are not UTF-8 or hold a NUL");
    if (!doc && st->err == PIDF_XML_ENCODING && utf8)
        return disagree(data, len, st, lx, "ENCODING for UTF-8 without NUL");
    if (!doc && st->err == PIDF_XML_DOCTYPE && !contains(data, len, "<!DOCTYPE"))
        return disagree(data, len, st, lx, "DOCTYPE without \"<!DOCTYPE\"");
    if (doc && !lx_ok)
        return disagree(data, len, st, lx, "ours accepts, libxml2 does not");
    if (!doc && lx_ok && utf8 && !is_limit(st->err) && !lenience(data, len))
        return disagree(data, len, st, lx, "libxml2 accepts, ours does not");
    /* Ours checks every character before it parses, so a character XML does not allow
     * anywhere is reported ahead of a DOCTYPE before it: both are faults of the document. */
    if (!doc && lx->doctype && lx->doctype_clean && utf8 && xml_chars &&
        st->err != PIDF_XML_DOCTYPE &&
        st->err != PIDF_XML_TOO_LARGE && !lenience(data, len))
        return disagree(data, len, st, lx, "a DOCTYPE libxml2 reached cleanly, not DOCTYPE");
    return 0;
}

int xml_oracle_compare(const char *data, size_t len, const pidf_xml_doc_t *doc,
                       const pidf_xml_status_t *st)
{
    if (!doc && (!st || st->err == PIDF_XML_OK || !st->reason || !st->reason[0]))
        return disagree(data, len, st, NULL, "no tree, and no error with a reason");
    lx_result_t lx;
    lx_parse(data, len, &lx);
    int rc = verdicts(data, len, doc, st, &lx);
    if (rc == 0 && doc && lx.doc) {
        cmp_t c = { .data = data, .len = len, .lx = &lx };
        const pidf_xml_node_t *root = pidf_xml_root(doc);
        size_t mark;
        path_push(&c, &mark, root->name, 1);
        char *buf = malloc(len + 1);
        rc = cmp_element(&c, root, xmlDocGetRootElement(lx.doc), buf, len);
        free(buf);
    }
    if (lx.doc)
        xmlFreeDoc(lx.doc);
    return rc;
}

int xml_oracle_check(const char *data, size_t len, uint32_t bytes_max, uint32_t elements_max,
                     uint32_t depth_max)
{
    pidf_xml_status_t st = { PIDF_XML_OK, NULL, 0 };
    pidf_xml_doc_t *doc = pidf_xml_parse(data, len, bytes_max, elements_max, depth_max, &st);
    int rc = xml_oracle_compare(data, len, doc, doc ? NULL : &st);
    if (doc)
        pidf_xml_free(doc);
    return rc;
}

/* ---- Ours against ours ------------------------------------------------- */

static int same_fail(const char *path, const char *what)
{
    fprintf(stderr, "xml_oracle: trees differ at %s: %s\n", path, what);
    return -1;
}

static bool ns_same(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool text_same(const pidf_xml_node_t *a, const pidf_xml_node_t *b)
{
    /* Pieces may be cut differently; compare the concatenations byte by byte. */
    const pidf_xml_piece_t *pa = a->text, *pb = b->text;
    size_t ia = 0, ib = 0;
    for (;;) {
        while (pa && ia == pa->text.len)
            pa = pa->next, ia = 0;
        while (pb && ib == pb->text.len)
            pb = pb->next, ib = 0;
        if (!pa || !pb)
            return !pa && !pb;
        if (pa->text.ptr[ia++] != pb->text.ptr[ib++])
            return false;
    }
}

static int same_element(const pidf_xml_node_t *a, const pidf_xml_node_t *b, char *path,
                        size_t cap)
{
    if (!str_eq(a->name, b->name) || !ns_same(a->ns, b->ns))
        return same_fail(path, "name or namespace");
    if (a->line != b->line)
        return same_fail(path, "line");
    const pidf_xml_attr_t *x = a->attrs, *y = b->attrs;
    for (; x || y; x = x->next, y = y->next)
        if (!x || !y || !str_eq(x->name, y->name) || !ns_same(x->ns, y->ns) ||
            !str_eq(x->value, y->value))
            return same_fail(path, "attributes");
    if (!text_same(a, b))
        return same_fail(path, "text");
    const pidf_xml_node_t *ka = a->first, *kb = b->first;
    size_t mark = strlen(path);
    for (unsigned i = 1; ka || kb; i++, ka = ka->next, kb = kb->next) {
        if (!ka || !kb)
            return same_fail(path, "number of children");
        snprintf(path + mark, cap - mark, "/%.*s[%u]",
                 (int)(ka->name.len < 40 ? ka->name.len : 40), ka->name.ptr, i);
        if (same_element(ka, kb, path, cap) < 0)
            return -1;
        path[mark] = '\0';
    }
    return 0;
}

int xml_oracle_same_tree(const pidf_xml_doc_t *a, const pidf_xml_doc_t *b)
{
    char path[512] = "";
    return same_element(pidf_xml_root(a), pidf_xml_root(b), path, sizeof(path));
}
