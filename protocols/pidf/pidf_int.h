/*
 * pidf_int.h - the XML plumbing pidf.c, winfo.c and dialoginfo.c share: a bounded, DTD-free
 * parse into a tree, an arena the decoded strings are copied into, tree queries, UTF-8 checks
 * and escaping writers. Internal to protocols/pidf/.
 *
 * Threads: any thread; nothing is shared, nothing blocks.
 */
#ifndef PRESENCED_PIDF_INT_H
#define PRESENCED_PIDF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

/* Failures of the XML layer, before either format looks at the tree. */
typedef enum {
    PIDF_XML_OK = 0,
    PIDF_XML_TOO_LARGE,
    PIDF_XML_ENCODING,
    PIDF_XML_NOT_WELL_FORMED,
    PIDF_XML_DOCTYPE,
    PIDF_XML_TOO_MANY_ELEMENTS,   /* also: more than PIDF_XML_ATTRS_MAX on one element */
    PIDF_XML_TOO_DEEP,
    PIDF_XML_NOMEM,
} pidf_xml_err_t;

typedef struct {
    pidf_xml_err_t err;
    const char *reason;         /* static: "undeclared namespace prefix" */
    uint32_t line;              /* 1-based line where it was found, 0 if not at a place */
} pidf_xml_status_t;

/* Attributes on one element, namespace declarations included. Every element of the three
 * formats has at most five; the bound keeps the duplicate check (quadratic in the count)
 * small for a document of nothing but attributes. */
#define PIDF_XML_ATTRS_MAX 256u

typedef struct pidf_xml_piece pidf_xml_piece_t;
typedef struct pidf_xml_attr pidf_xml_attr_t;
typedef struct pidf_xml_node pidf_xml_node_t;
typedef struct pidf_xml_doc pidf_xml_doc_t;

/* Character data, decoded (references replaced, line ends normalised to LF). */
struct pidf_xml_piece {
    const pidf_xml_piece_t *next;
    str_t text;
};

struct pidf_xml_attr {
    const pidf_xml_attr_t *next;    /* document order */
    str_t name;                     /* local name */
    const char *ns;                 /* namespace URI (NUL-terminated), NULL for none */
    str_t value;                    /* decoded and normalised (XML 1.0 §3.3.3) */
};

/* An element. Namespace declarations are not attributes; comments and processing
 * instructions are dropped. */
struct pidf_xml_node {
    pidf_xml_node_t *parent, *first, *last, *next;  /* elements only */
    const pidf_xml_attr_t *attrs;
    const pidf_xml_piece_t *text, *text_last;       /* its own character data, CDATA too */
    str_t name;                     /* local name */
    const char *ns;                 /* namespace URI (NUL-terminated), NULL for none */
    uint32_t line;                  /* of its start tag, 1-based */
};

/*
 * Parses len bytes as a namespace-well-formed XML 1.0 document (XML 1.0 fifth edition,
 * Namespaces in XML 1.0 third edition) into a tree (free with pidf_xml_free), under the
 * given bounds: more than bytes_max bytes, a byte sequence that is not UTF-8 or a NUL, a
 * DOCTYPE, more than elements_max elements, nesting deeper than depth_max or more than
 * PIDF_XML_ATTRS_MAX attributes on an element stop the parse at once. No DTD exists for
 * it, so the only entity references are the five predefined ones and character
 * references; nothing is loaded. The bytes must stay valid and unchanged until
 * pidf_xml_free: the tree points into them. Returns the tree (root element present), or
 * NULL with *st filled in.
 */
pidf_xml_doc_t *pidf_xml_parse(const char *data, size_t len, uint32_t bytes_max,
                               uint32_t elements_max, uint32_t depth_max,
                               pidf_xml_status_t *st);
void pidf_xml_free(pidf_xml_doc_t *doc);
const pidf_xml_node_t *pidf_xml_root(const pidf_xml_doc_t *doc);

/* ---- Tree queries (element nodes only) --------------------------------- */

/* The first child element of n / the next sibling element, or NULL. */
static inline const pidf_xml_node_t *pidf_xml_first(const pidf_xml_node_t *n)
{
    return n->first;
}

static inline const pidf_xml_node_t *pidf_xml_next(const pidf_xml_node_t *n)
{
    return n->next;
}

/* The namespace URI of n, or NULL. */
static inline const char *pidf_xml_ns(const pidf_xml_node_t *n)
{
    return n->ns;
}

/* The local name of n. */
static inline str_t pidf_xml_name(const pidf_xml_node_t *n)
{
    return n->name;
}

/* The line of n's start tag (1-based). */
static inline uint32_t pidf_xml_line(const pidf_xml_node_t *n)
{
    return n->line;
}

bool pidf_xml_name_is(const pidf_xml_node_t *n, const char *name);
/* Local name is name; ns NULL means "no namespace". */
bool pidf_xml_is(const pidf_xml_node_t *n, const char *name, const char *ns);
/* The number of n's child elements. */
uint32_t pidf_xml_count_children(const pidf_xml_node_t *n);

/* ---- Arena: decoded strings live here ---------------------------------- */

typedef struct {
    char *base;
    size_t used, cap;
} pidf_arena_t;

/*
 * Copies of what the tree holds. Every string kept is copied from a distinct piece of the
 * input, and XML decoding never lengthens text (a reference is longer than its character,
 * CRLF becomes LF), so an arena of the input's size holds them all; false means it did not
 * (a bug, reported as out of memory rather than overrun). A present value is never ptr NULL.
 */
bool pidf_xml_text(pidf_arena_t *a, const pidf_xml_node_t *n, str_t *out);
/* ns NULL: the unqualified attribute. *out gets ptr NULL when it is absent. */
bool pidf_xml_attr(pidf_arena_t *a, const pidf_xml_node_t *n, const char *name,
                   const char *ns, str_t *out);
bool pidf_arena_copy(pidf_arena_t *a, const char *s, size_t n, str_t *out);

#define PIDF_XML_NS_XML "http://www.w3.org/XML/1998/namespace"

/* ---- Strings ----------------------------------------------------------- */

/* XML 1.0 [3] white space removed at both ends (ptr NULL stays NULL). */
str_t pidf_xml_trim(str_t s);
/* At most max bytes, not splitting a UTF-8 sequence. */
str_t pidf_xml_cut(str_t s, size_t max);
/* Valid UTF-8 made only of XML 1.0 [2] characters. */
bool pidf_xml_valid(str_t s);
/* ASCII case-insensitive equality with a NUL-terminated literal. */
bool pidf_xml_eq_nocase(str_t s, const char *lit);
/* Equal, with ptr NULL (absent) equal only to absent. */
bool pidf_xml_opt_eq(str_t a, str_t b);
/* An unsigned decimal (digits only, no sign, no overflow). */
bool pidf_xml_parse_u64(str_t s, uint64_t *out);

/* ---- Writers ----------------------------------------------------------- */

/* Character data: & < > escaped, CR as &#13; (a raw CR would read back as LF); bytes that
 * are not UTF-8 or not XML characters become U+FFFD. */
void pidf_xml_write_text(buf_t *b, str_t s);
/* ' name="value"', with & < > " escaped and TAB LF CR as references (attribute-value
 * normalisation would turn them into spaces); U+FFFD as above. */
void pidf_xml_write_attr(buf_t *b, const char *name, str_t v);
/* "<name>text</name>" */
void pidf_xml_write_el(buf_t *b, const char *name, str_t text);

#endif
