/*
 * libFuzzer target for the XML layer under PIDF, watcherinfo and dialog-info
 * (protocols/pidf/pidf_int.h: pidf_xml_parse and the tree it builds).
 *
 * Input: any bytes, taken as one whole document.
 *
 * Checked on every input:
 *   - a parse gives a tree with a root, or no tree and an error with a reason and a line no
 *     further than the input has;
 *   - the tree keeps its bounds and its shape: at most elements_max elements, none deeper
 *     than depth_max, at most PIDF_XML_ATTRS_MAX attributes on one, every parent, first, last
 *     and next link consistent, lines never going back in document order;
 *   - every element and attribute name is a non-empty local name (no colon) in valid UTF-8
 *     (that its characters make an NCName is libxml2's to say, below), every namespace
 *     URI non-empty, valid and never the xmlns one, no two attributes of an element with the
 *     same local name and namespace, every text piece and value valid UTF-8 XML text
 *     (pidf_xml_valid), every string readable (ASan sees a slice outside its block);
 *   - pidf_xml_text and pidf_xml_attr give the pieces' concatenation and the values, and
 *     all of them together fit an arena of the input's size, as pidf_int.h promises;
 *   - bounds only ever make the parse fail: under small bounds (4 KiB, 48 elements, depth 5)
 *     it fails at one of them, or gives the same error as under the defaults, or the same
 *     tree;
 *   - libxml2 agrees (tests/unit/pidf/xml_oracle.h): on well-formedness, on DOCTYPE and
 *     encoding errors, and on the tree.
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"
#include "tests/fuzz/fuzz.h"
#include "tests/unit/pidf/xml_oracle.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_pidf_xml: " __VA_ARGS__);                             \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

#define NS_XMLNS "http://www.w3.org/2000/xmlns/"

typedef struct {
    uint32_t bytes_max, elements_max, depth_max;
} bounds_t;

static const bounds_t defaults = { PIDF_DOC_BYTES_DEFAULT, PIDF_ELEMENTS_DEFAULT,
                                   PIDF_DEPTH_DEFAULT };
static const bounds_t small = { 4096, 48, 5 };

/* ---- Names and strings ------------------------------------------------- */

/* Whether its characters make an NCName, libxml2 says (the oracle, below): a name ours
 * accepts that libxml2 does not is a disagreement on well-formedness. */
static void check_name(str_t s, const char *what)
{
    if (!s.ptr || s.len == 0)
        FAIL("%s: empty name", what);
    if (!pidf_xml_valid(s) || memchr(s.ptr, ':', s.len))
        FAIL("%s: \"%.*s\" is not a UTF-8 local name", what, (int)s.len, s.ptr);
}

static void check_ns(const char *ns, const char *what)
{
    if (!ns)
        return;
    if (!ns[0])
        FAIL("%s: empty namespace URI (no namespace is NULL)", what);
    if (!pidf_xml_valid(str_from_cstr(ns)))
        FAIL("%s: namespace URI is not UTF-8 XML text", what);
    if (strcmp(ns, NS_XMLNS) == 0)
        FAIL("%s: in the xmlns namespace", what);
}

static void check_text(str_t s, const char *what)
{
    if (!s.ptr && s.len)
        FAIL("%s: bytes without a pointer", what);
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
    if (!pidf_xml_valid(s))
        FAIL("%s: not UTF-8 XML text", what);
}

static bool ns_eq(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Lines the input has: 1 + its line ends (CRLF, CR, LF each one). */
static uint32_t input_lines(const uint8_t *d, size_t n)
{
    uint32_t lines = 1;
    for (size_t i = 0; i < n; i++)
        if (d[i] == '\n' || (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n')))
            lines++;
    return lines;
}

/* ---- One element ------------------------------------------------------- */

typedef struct {
    pidf_arena_t arena;
    char *name;                 /* NUL-terminated copy of an attribute name */
    size_t len;
    uint32_t lines;
} walk_t;

static void check_attrs(walk_t *w, const pidf_xml_node_t *n)
{
    unsigned count = 0;
    for (const pidf_xml_attr_t *a = n->attrs; a; a = a->next) {
        if (++count > PIDF_XML_ATTRS_MAX)
            FAIL("more than PIDF_XML_ATTRS_MAX attributes");
        check_name(a->name, "attribute");
        check_ns(a->ns, "attribute");
        if (!a->value.ptr)
            FAIL("attribute without a value");
        check_text(a->value, "attribute value");
        for (const pidf_xml_attr_t *b = n->attrs; b != a; b = b->next)
            if (str_eq(a->name, b->name) && ns_eq(a->ns, b->ns))
                FAIL("two attributes {%s}%.*s", a->ns ? a->ns : "", (int)a->name.len,
                     a->name.ptr);
        if (a->name.len > w->len)
            FAIL("attribute name longer than the input");
        memcpy(w->name, a->name.ptr, a->name.len);
        w->name[a->name.len] = '\0';
        str_t v = { NULL, 0 };
        if (!pidf_xml_attr(&w->arena, n, w->name, a->ns, &v))
            FAIL("attribute values outgrew an arena of the input's size");
        if (!v.ptr || !str_eq(v, a->value))
            FAIL("pidf_xml_attr does not give the attribute's value");
    }
}

static void check_pieces(walk_t *w, const pidf_xml_node_t *n)
{
    const pidf_xml_piece_t *last = NULL;
    size_t total = 0;
    for (const pidf_xml_piece_t *p = n->text; p; p = p->next) {
        check_text(p->text, "text");
        total += p->text.len;
        last = p;
    }
    if (n->text_last != last)
        FAIL("text_last is not the last piece");
    str_t t = { NULL, 0 };
    if (!pidf_xml_text(&w->arena, n, &t))
        FAIL("texts outgrew an arena of the input's size");
    if (!t.ptr || t.len != total)
        FAIL("pidf_xml_text: %zu bytes, the pieces %zu", t.len, total);
    size_t at = 0;
    for (const pidf_xml_piece_t *p = n->text; p; p = p->next) {
        if (p->text.len && memcmp(t.ptr + at, p->text.ptr, p->text.len) != 0)
            FAIL("pidf_xml_text is not the pieces' concatenation");
        at += p->text.len;
    }
}

static void check_element(walk_t *w, const pidf_xml_node_t *n, uint32_t *last_line)
{
    check_name(pidf_xml_name(n), "element");
    check_ns(pidf_xml_ns(n), "element");
    if (n->line < *last_line || n->line == 0 || n->line > w->lines)
        FAIL("element line %u (previous %u, input has %u)", n->line, *last_line, w->lines);
    *last_line = n->line;
    if (!n->first != !n->last)
        FAIL("first and last disagree");
    if (n->last && (n->last->next || n->last->parent != n))
        FAIL("last is not the last child");
    check_attrs(w, n);
    check_pieces(w, n);
}

/* Preorder through the links themselves, so that each is checked where it is followed. */
static void walk(const uint8_t *data, size_t len, const pidf_xml_doc_t *doc, const bounds_t *b)
{
    const pidf_xml_node_t *root = pidf_xml_root(doc);
    if (!root)
        FAIL("a tree without a root");
    if (root->parent || root->next)
        FAIL("the root has a parent or a sibling");
    walk_t w = { .len = len, .lines = input_lines(data, len) };
    w.arena = (pidf_arena_t){ malloc(len ? len : 1), 0, len };
    w.name = malloc(len + 1);
    uint32_t count = 0, depth = 1, last_line = 0;
    const pidf_xml_node_t *n = root;
    while (n) {
        if (++count > b->elements_max)
            FAIL("more than elements_max elements");
        if (depth > b->depth_max)
            FAIL("deeper than depth_max");
        check_element(&w, n, &last_line);
        if (n->first) {
            if (n->first->parent != n)
                FAIL("first child's parent is not its parent");
            n = n->first, depth++;
            continue;
        }
        while (n && !n->next) {
            if (n->parent && n->parent->last != n)
                FAIL("the last child is not its parent's last");
            n = n->parent, depth--;
        }
        if (n) {
            if (n->next->parent != n->parent)
                FAIL("siblings with different parents");
            n = n->next;
        }
    }
    if (depth != 0)
        FAIL("walk ended at depth %u", depth);
    if (w.arena.used > len)
        FAIL("arena overrun");
    free(w.arena.base);
    free(w.name);
}

/* ---- The input --------------------------------------------------------- */

static pidf_xml_doc_t *parse(const uint8_t *data, size_t size, const bounds_t *b,
                             pidf_xml_status_t *st)
{
    *st = (pidf_xml_status_t){ PIDF_XML_OK, NULL, 0 };
    pidf_xml_doc_t *d = pidf_xml_parse((const char *)data, size, b->bytes_max,
                                       b->elements_max, b->depth_max, st);
    if (d) {
        walk(data, size, d, b);
        return d;
    }
    if (st->err == PIDF_XML_OK || st->err > PIDF_XML_NOMEM || !st->reason || !st->reason[0])
        FAIL("no tree, and no error with a reason");
    if (st->line > input_lines(data, size))
        FAIL("error at line %u of %u", st->line, input_lines(data, size));
    return NULL;
}

static bool is_limit(pidf_xml_err_t e)
{
    return e == PIDF_XML_TOO_LARGE || e == PIDF_XML_TOO_MANY_ELEMENTS || e == PIDF_XML_TOO_DEEP;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pidf_xml_status_t st, st_small;
    pidf_xml_doc_t *ds = parse(data, size, &small, &st_small);
    pidf_xml_doc_t *d = parse(data, size, &defaults, &st);
    if (ds && (!d || xml_oracle_same_tree(ds, d) != 0))
        FAIL("small bounds changed the tree instead of failing");
    if (!ds && !is_limit(st_small.err) &&
        (d || st.err != st_small.err || st.line != st_small.line ||
         strcmp(st.reason, st_small.reason) != 0))
        FAIL("small bounds gave %d \"%s\" line %u, the defaults %d \"%s\" line %u",
             st_small.err, st_small.reason, st_small.line, st.err, d ? "" : st.reason,
             st.line);
    if (xml_oracle_compare((const char *)data, size, d, d ? NULL : &st) != 0)
        FAIL("libxml2 disagrees");
    if (ds)
        pidf_xml_free(ds);
    if (d)
        pidf_xml_free(d);
    return 0;
}
