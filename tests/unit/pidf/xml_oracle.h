/*
 * xml_oracle.h - libxml2 as a second opinion on pidf_xml_parse (protocols/pidf/pidf_int.h),
 * shared by tests/unit/pidf/test_pidf_xml.c and tests/fuzz/fuzz_pidf_xml.c.
 *
 * libxml2 parses the same bytes with its own context (no network, no DTD loading, no entity
 * substitution, the declared encoding ignored, stopped at a DOCTYPE) and the two must agree:
 *   - a document ours accepts is well-formed and namespace-well-formed for libxml2, without a
 *     DOCTYPE, and is UTF-8 without NUL;
 *   - a document libxml2 accepts that way (a root element present) and that is UTF-8 without
 *     NUL, ours accepts too, unless it stopped at one of its bounds (TOO_LARGE,
 *     TOO_MANY_ELEMENTS, TOO_DEEP);
 *   - a DOCTYPE libxml2 reached with nothing wrong before it is reported as PIDF_XML_DOCTYPE,
 *     and ENCODING is only reported for bytes that are not UTF-8 or hold a NUL;
 *   - when both accept, the trees are equal: every element's local name and namespace URI,
 *     its attributes in order (local name, namespace URI, value) and its own character data
 *     (text and CDATA children concatenated), and its child elements in order.
 * Where libxml2 departs from XML 1.0 / Namespaces in XML, xml_oracle.c names the exception.
 *
 * Threads: one thread at a time (libxml2 is initialised on first use, without a lock).
 */
#ifndef PRESENCED_XML_ORACLE_H
#define PRESENCED_XML_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "protocols/pidf/pidf_int.h"

/* Compares ours (doc, or NULL with *st) for data/len with libxml2's parse of the same bytes.
 * Returns 0 if they agree; otherwise prints what differs and the input (escaped) to stderr
 * and returns -1. Borrows everything. */
int xml_oracle_compare(const char *data, size_t len, const pidf_xml_doc_t *doc,
                       const pidf_xml_status_t *st);

/* Runs pidf_xml_parse under the given bounds, then xml_oracle_compare. */
int xml_oracle_check(const char *data, size_t len, uint32_t bytes_max, uint32_t elements_max,
                     uint32_t depth_max);

/* Two of our trees are equal (names, namespaces, attributes, text, shape; lines too). Returns
 * 0, or prints the first difference and returns -1. */
int xml_oracle_same_tree(const pidf_xml_doc_t *a, const pidf_xml_doc_t *b);

/* Stops (true) or resumes the reports of disagreements; the verdicts are unchanged. */
void xml_oracle_quiet(bool quiet);

/* Prints len bytes to stderr, C-escaped, at most max of them. */
void xml_oracle_print_escaped(const char *data, size_t len, size_t max);

/* Valid UTF-8 (RFC 3629, as utf8proc reads it) with no NUL byte. */
bool xml_oracle_utf8_no_nul(const char *data, size_t len);

#endif
