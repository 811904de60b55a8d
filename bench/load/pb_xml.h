/*
 * pb_xml.h - presbench's reader for what an XMPP server sends: it cuts the
 * byte stream into first-level items (the XML declaration, the stream
 * header, </stream:stream>, and whole stanzas or nonzas) and finds a few
 * attributes and child texts by name.
 *
 * Hand-written rather than protocols/xmpp/xmpp_xml (libxml2) for speed: the
 * generator reads every presence the server delivers, up to a million a
 * second, on the same two cores as the server it measures. On the results
 * machine xmpp_xml takes 0.55-0.75 us per 120-byte presence stanza fed 4 KiB
 * at a time (2 us fed one at a time), as much as the server spends; this
 * takes 0.11-0.15 us (finding the stanza, its type and its <status>).
 *
 * What it relies on, which every conforming server's output gives: '<' only
 * starts markup (text and attribute values escape it, XML 1.0 §2.4, §3.1);
 * attribute values are quoted, and '>' inside them is skipped; no comments,
 * processing instructions or DTD inside the stream (RFC 6120 §11.1), and a
 * CDATA section or any of those is reported as malformed rather than
 * misread. It does not check well-formedness beyond element nesting, and
 * attribute lookup expects the attribute preceded by one space, as servers
 * write it. Entities are not decoded: the values read here are numbers and
 * base64.
 *
 * Threads: pure functions on caller-owned bytes.
 */
#ifndef PRESENCED_PB_XML_H
#define PRESENCED_PB_XML_H

#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "engine/common.h"

typedef enum {
    PB_XML_NONE = 0,        /* whitespace only (keepalives, RFC 6120 §4.6.1) */
    PB_XML_DECL,            /* <?xml ...?> */
    PB_XML_OPEN,            /* <stream:stream ...>, the stream header */
    PB_XML_CLOSE,           /* </stream:stream> */
    PB_XML_ELEMENT,         /* a whole first-level element */
} pb_xml_kind_t;

typedef struct {
    pb_xml_kind_t kind;
    str_t name;             /* qualified name as written: "presence", "stream:features" */
    str_t tag;              /* the opening tag, '<' to '>' */
    str_t whole;            /* the whole item, '<' to its last '>' */
} pb_xml_item_t;

static inline bool pb_xml_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

/* needle in hay: memchr on its first byte, then memcmp. glibc's memmem
 * sets up a two-way search per call, which costs more than the search
 * itself for the short needles and haystacks here. */
static inline const char *pb_xml_find(const char *hay, size_t len, const char *needle, size_t n)
{
    const char *end = hay + len;
    while ((size_t)(end - hay) >= n) {
        const char *c = memchr(hay, needle[0], (size_t)(end - hay) - n + 1);
        if (!c)
            return NULL;
        if (!memcmp(c + 1, needle + 1, n - 1))
            return c;
        hay = c + 1;
    }
    return NULL;
}

/* Length of the tag starting at p[0] == '<' up to and including its '>',
 * skipping quoted attribute values; 0 when the '>' is not in p[0..len).
 * memchr hops from quote to quote: a byte loop costs more than the rest of
 * the stanza's handling together. */
static inline size_t pb_xml_tag_len(const char *p, size_t len)
{
    size_t i = 1;
    for (;;) {
        const char *gt = i < len ? memchr(p + i, '>', len - i) : NULL;
        if (!gt)
            return 0;
        size_t end = (size_t)(gt - p);
        const char *q1 = memchr(p + i, '\'', end - i);
        const char *q2 = memchr(p + i, '"', q1 ? (size_t)(q1 - p) - i : end - i);
        const char *q = q2 ? q2 : q1;
        if (!q)
            return end + 1;
        size_t at = (size_t)(q - p) + 1;
        const char *close = at < len ? memchr(p + at, *q, len - at) : NULL;
        if (!close)
            return 0;
        i = (size_t)(close - p) + 1;
    }
}

/*
 * The next item in p[0..len). Returns the bytes it takes (leading whitespace
 * included) with *it filled, 0 when nothing complete is there yet (feed more
 * and call again with the same start), or -EBADMSG.
 */
static inline ssize_t pb_xml_next(const char *p, size_t len, pb_xml_item_t *it)
{
    size_t i = 0;
    while (i < len && pb_xml_space(p[i]))
        i++;
    it->kind = PB_XML_NONE;
    if (i + 2 > len)
        return (ssize_t)i;      /* whitespace taken; the rest needs more bytes */
    if (p[i] != '<')
        return -EBADMSG;        /* text between stanzas: RFC 6120 Appendix A.1 */
    const char *s = p + i;
    size_t avail = len - i;
    if (s[1] == '?') {
        const char *end = pb_xml_find(s, avail, "?>", 2);
        if (!end)
            return (ssize_t)i;
        it->kind = PB_XML_DECL;
        it->whole = it->tag = (str_t){ s, (size_t)(end + 2 - s) };
        it->name = (str_t){ s + 2, 3 };
        return (ssize_t)(i + it->whole.len);
    }
    if (s[1] == '!')
        return -EBADMSG;
    if (s[1] == '/') {
        const char *end = memchr(s, '>', avail);
        if (!end)
            return (ssize_t)i;
        it->kind = PB_XML_CLOSE;    /* the only end tag at the top level */
        it->whole = it->tag = (str_t){ s, (size_t)(end + 1 - s) };
        it->name = (str_t){ s + 2, (size_t)(end - s - 2) };
        return (ssize_t)(i + it->whole.len);
    }
    size_t tl = pb_xml_tag_len(s, avail);
    if (!tl)
        return (ssize_t)i;
    size_t nl = 1;
    while (nl < tl - 1 && !pb_xml_space(s[nl]) && s[nl] != '/' && s[nl] != '>')
        nl++;
    it->name = (str_t){ s + 1, nl - 1 };
    it->tag = (str_t){ s, tl };
    if (str_eq_cstr(it->name, "stream:stream")) {
        it->kind = PB_XML_OPEN;
        it->whole = it->tag;
        return (ssize_t)(i + tl);
    }
    size_t pos = tl;
    unsigned depth = s[tl - 2] == '/' ? 0 : 1;
    while (depth) {
        const char *lt = pos < avail ? memchr(s + pos, '<', avail - pos) : NULL;
        if (!lt || (size_t)(lt - s) + 2 > avail)
            return (ssize_t)i;
        size_t at = (size_t)(lt - s);
        if (lt[1] == '/') {
            const char *gt = memchr(lt, '>', avail - at);
            if (!gt)
                return (ssize_t)i;
            depth--;
            pos = (size_t)(gt + 1 - s);
        } else if (lt[1] == '!' || lt[1] == '?') {
            return -EBADMSG;
        } else {
            size_t l = pb_xml_tag_len(lt, avail - at);
            if (!l)
                return (ssize_t)i;
            if (lt[l - 2] != '/')
                depth++;
            pos = at + l;
        }
    }
    it->kind = PB_XML_ELEMENT;
    it->whole = (str_t){ s, pos };
    return (ssize_t)(i + pos);
}

/* The value of attribute name in an opening tag, ptr NULL when absent. */
static inline str_t pb_xml_attr(str_t tag, const char *name)
{
    char pat[32];
    size_t n = strlen(name);
    ASSERT(n + 2 < sizeof(pat));
    pat[0] = ' ';
    memcpy(pat + 1, name, n);
    pat[n + 1] = '=';
    const char *end = tag.ptr + tag.len;
    const char *a = pb_xml_find(tag.ptr, tag.len, pat, n + 2);
    if (!a || a + n + 3 >= end)
        return (str_t){ NULL, 0 };
    const char *v = a + n + 2;
    char quote = *v++;
    const char *close = memchr(v, quote, (size_t)(end - v));
    if (!close)
        return (str_t){ NULL, 0 };
    return (str_t){ v, (size_t)(close - v) };
}

/* The text between the first `open` (e.g. "<status>") and the `close` that
 * follows it, ptr NULL when absent. */
static inline str_t pb_xml_between(str_t in, const char *open, const char *close)
{
    size_t ol = strlen(open);
    const char *a = pb_xml_find(in.ptr, in.len, open, ol);
    if (!a)
        return (str_t){ NULL, 0 };
    a += ol;
    const char *end = in.ptr + in.len;
    const char *b = pb_xml_find(a, (size_t)(end - a), close, strlen(close));
    if (!b)
        return (str_t){ NULL, 0 };
    return (str_t){ a, (size_t)(b - a) };
}

/* The character data of a simple element <name ...>text</name>. */
static inline str_t pb_xml_text(const pb_xml_item_t *it)
{
    if (it->tag.len == it->whole.len)
        return (str_t){ it->whole.ptr + it->whole.len, 0 };
    const char *a = it->tag.ptr + it->tag.len;
    const char *end = it->whole.ptr + it->whole.len;
    const char *b = memchr(a, '<', (size_t)(end - a));
    return (str_t){ a, b ? (size_t)(b - a) : 0 };
}

#endif
