/*
 * pidf_int.h - the XML plumbing pidf.c and winfo.c share: a bounded, DTD-free parse into a
 * libxml2 tree, an arena the decoded strings are copied into, tree queries, UTF-8 checks and
 * escaping writers. Internal to protocols/pidf/.
 *
 * Threads: as pidf.h (any thread, after pidf_global_init(), which pidf_xml_parse runs).
 */
#ifndef PRESENCED_PIDF_INT_H
#define PRESENCED_PIDF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

struct _xmlDoc;
struct _xmlNode;

/* Failures of the XML layer, before either format looks at the tree. */
typedef enum {
    PIDF_XML_OK = 0,
    PIDF_XML_TOO_LARGE,
    PIDF_XML_ENCODING,
    PIDF_XML_NOT_WELL_FORMED,
    PIDF_XML_DOCTYPE,
    PIDF_XML_TOO_MANY_ELEMENTS,
    PIDF_XML_TOO_DEEP,
    PIDF_XML_NOMEM,
} pidf_xml_err_t;

typedef struct {
    pidf_xml_err_t err;
    const char *reason;         /* static */
    int xml_code;
    uint32_t line;
} pidf_xml_status_t;

/*
 * Parses len bytes into a tree (free with pidf_xml_free) under the given bounds: more than
 * bytes_max bytes, a byte sequence that is not UTF-8 or a NUL, a DOCTYPE, more than
 * elements_max elements or nesting deeper than depth_max stop the parse at once. No DTD is
 * loaded, no entity substituted, no network touched. Returns the tree (root element
 * present), or NULL with *st filled in.
 */
struct _xmlDoc *pidf_xml_parse(const char *data, size_t len, uint32_t bytes_max,
                               uint32_t elements_max, uint32_t depth_max,
                               pidf_xml_status_t *st);
void pidf_xml_free(struct _xmlDoc *doc);
struct _xmlNode *pidf_xml_root(struct _xmlDoc *doc);

/* ---- Tree queries (element nodes only) --------------------------------- */

/* The first child element of n / the next sibling element, or NULL. */
struct _xmlNode *pidf_xml_first(const struct _xmlNode *n);
struct _xmlNode *pidf_xml_next(const struct _xmlNode *n);
/* Local name is name; ns NULL means "no namespace". */
bool pidf_xml_is(const struct _xmlNode *n, const char *name, const char *ns);
bool pidf_xml_name_is(const struct _xmlNode *n, const char *name);
/* The namespace URI of n, or NULL. */
const char *pidf_xml_ns(const struct _xmlNode *n);
/* The local name of n. */
str_t pidf_xml_name(const struct _xmlNode *n);
/* The number of element nodes at or below n's children (n excluded). */
uint32_t pidf_xml_count_children(const struct _xmlNode *n);

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
bool pidf_xml_text(pidf_arena_t *a, const struct _xmlNode *n, str_t *out);
/* ns NULL: the unqualified attribute. *out gets ptr NULL when it is absent. */
bool pidf_xml_attr(pidf_arena_t *a, const struct _xmlNode *n, const char *name,
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
