/*
 * libFuzzer target for XMPP addresses (protocols/xmpp/xmpp_jid.c).
 *
 * Input: the bytes of a JID as a peer would put it in a stanza's "to" or "from".
 *
 * Checked on every input:
 *   - a parse either succeeds with 1..1023-octet parts laid out as "local@domain/resource"
 *     plus a NUL, or fails with a part and a reason and leaves every part empty;
 *   - idempotence: the canonical full JID parses to the same bytes, each canonical part
 *     prepares to itself, and building the JID from its parts gives it again;
 *   - each xmpp_jid_prep_*() on the whole input is stable in the same way;
 *   - the ASCII fast paths agree with the Unicode paths on equivalent input: an ASCII
 *     localpart and its fullwidth twin (UsernameCaseMapped maps one to the other), an ASCII
 *     resourcepart with and without a leading "é", an ASCII domainpart with and without a
 *     SOFT HYPHEN (which UTS #46 deletes) after its first character.
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/xmpp/xmpp_jid.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_jid: " __VA_ARGS__);                                  \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

typedef ssize_t (*prep_fn)(const char *s, size_t len, char *dst, size_t cap,
                           xmpp_jid_reason_t *why);

static void touch(str_t s)
{
    /* Reading every byte lets ASan catch a slice that points outside its buffer. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
}

/* prep(s) must be the identity on a canonical part. */
static void check_fixed(prep_fn prep, str_t part, const char *what)
{
    char out[XMPP_JID_PART_BUF_BYTES];
    xmpp_jid_reason_t why;
    ssize_t n = prep(part.ptr, part.len, out, sizeof(out), &why);
    if (n < 0)
        FAIL("canonical %s rejected (%s)", what, xmpp_jid_reason_name(why));
    if ((size_t)n != part.len || memcmp(out, part.ptr, part.len) != 0 || out[n] != '\0')
        FAIL("canonical %s changed by another preparation", what);
}

static void check_ok(const xmpp_jid_t *j)
{
    str_t local = xmpp_jid_local(j), domain = xmpp_jid_domain(j), res = xmpp_jid_resource(j);
    str_t full = xmpp_jid_full(j);
    touch(full);
    if (domain.len == 0 || domain.len > XMPP_JID_PART_MAX_BYTES ||
        local.len > XMPP_JID_PART_MAX_BYTES || res.len > XMPP_JID_PART_MAX_BYTES)
        FAIL("part length out of range");
    if (j->buf[full.len] != '\0' || strlen(j->buf) != full.len)
        FAIL("full JID is not NUL-terminated at its length");
    if ((local.len && j->buf[local.len] != '@') || (res.len && res.ptr[-1] != '/'))
        FAIL("separators misplaced");
    if (xmpp_jid_error(j, NULL) != XMPP_JID_OK)
        FAIL("success with an error recorded");

    xmpp_jid_t again;
    if (xmpp_jid_parse(full.ptr, full.len, &again) != 0)
        FAIL("canonical JID rejected: %s", xmpp_jid_reason_name(xmpp_jid_error(&again, NULL)));
    if (!xmpp_jid_equal(j, &again) || !xmpp_jid_bare_equal(j, &again))
        FAIL("canonical JID parsed to different bytes");

    if (local.len)
        check_fixed(xmpp_jid_prep_localpart, local, "localpart");
    check_fixed(xmpp_jid_prep_domainpart, domain, "domainpart");
    if (res.len)
        check_fixed(xmpp_jid_prep_resourcepart, res, "resourcepart");

    xmpp_jid_t built;
    if (xmpp_jid_from_parts(local.len ? local.ptr : NULL, local.len, domain.ptr, domain.len,
                            res.len ? res.ptr : NULL, res.len, &built) != 0 ||
        !xmpp_jid_equal(j, &built))
        FAIL("from_parts of the canonical parts differs");

    char text[XMPP_JID_MAX_BYTES + 1];
    if (xmpp_jid_format_full(j, text, sizeof(text)) != (ssize_t)full.len ||
        memcmp(text, full.ptr, full.len) != 0)
        FAIL("format_full differs");
    ssize_t nb = xmpp_jid_format_bare(j, text, sizeof(text));
    if (nb != (ssize_t)xmpp_jid_bare(j).len || xmpp_jid_format_bare(j, text, (size_t)nb) != -ENOSPC)
        FAIL("format_bare length");

    char ascii[XMPP_JID_PART_BUF_BYTES];
    if (xmpp_jid_domain_to_ascii(domain, ascii, sizeof(ascii)) <= 0)
        FAIL("canonical domain has no A-label form");
}

static void check_failed(const xmpp_jid_t *j)
{
    xmpp_jid_part_t part;
    xmpp_jid_reason_t why = xmpp_jid_error(j, &part);
    if (why == XMPP_JID_OK || part == XMPP_JID_PART_NONE)
        FAIL("failure without a reason");
    if (xmpp_jid_full(j).len != 0 || j->buf[0] != '\0')
        FAIL("failure left parts behind");
}

/* Each single-part preparation of the whole input must be stable. */
static void check_prep_stable(prep_fn prep, const char *s, size_t len, const char *what)
{
    char out[XMPP_JID_PART_BUF_BYTES];
    xmpp_jid_reason_t why;
    ssize_t n = prep(s, len, out, sizeof(out), &why);
    if (n < 0) {
        if (n != -EINVAL || why == XMPP_JID_OK)
            FAIL("%s failed without a reason", what);
        return;
    }
    if (n == 0 || n > XMPP_JID_PART_MAX_BYTES || why != XMPP_JID_OK)
        FAIL("%s gave length %zd", what, n);
    check_fixed(prep, (str_t){ out, (size_t)n }, what);
}

/* Two preparations must agree: both fail, or both give the same bytes. */
static void check_same(ssize_t n1, const char *o1, ssize_t n2, const char *o2, const char *what)
{
    if ((n1 < 0) != (n2 < 0))
        FAIL("%s: ASCII fast path %s, Unicode path %s", what, n1 < 0 ? "failed" : "passed",
             n2 < 0 ? "failed" : "passed");
    if (n1 >= 0 && (n1 != n2 || memcmp(o1, o2, (size_t)n1) != 0))
        FAIL("%s: fast and Unicode paths give different bytes", what);
}

static bool ascii_only(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] >= 0x80)
            return false;
    return true;
}

static void differential(const char *s, size_t len)
{
    static char wide[3 * XMPP_JID_PART_MAX_BYTES + 8];
    char o1[XMPP_JID_PART_BUF_BYTES], o2[XMPP_JID_PART_BUF_BYTES];
    ssize_t n1, n2;
    if (len > XMPP_JID_PART_MAX_BYTES)
        return;

    /* Localpart: U+FF01..U+FF5E are the fullwidth forms of '!'..'~', U+3000 of ' '. */
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp = c >= 0x21 && c <= 0x7e ? 0xFF00u + (c - 0x20u) : c == ' ' ? 0x3000u : c;
        if (cp < 0x80) {
            wide[w++] = (char)cp;
        } else {
            wide[w++] = (char)(0xE0 | cp >> 12);
            wide[w++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            wide[w++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    n1 = xmpp_jid_prep_localpart(s, len, o1, sizeof(o1), NULL);
    n2 = xmpp_jid_prep_localpart(wide, w, o2, sizeof(o2), NULL);
    check_same(n1, o1, n2, o2, "localpart vs fullwidth");

    if (len == 0)
        return;
    /* Resourcepart: "é" + X is "é" followed by X's canonical form, within 1023 octets. */
    memcpy(wide, "\xC3\xA9", 2);
    memcpy(wide + 2, s, len);
    n1 = xmpp_jid_prep_resourcepart(s, len, o1, sizeof(o1), NULL);
    n2 = xmpp_jid_prep_resourcepart(wide, len + 2, o2, sizeof(o2), NULL);
    if (n1 >= 0 && n1 + 2 <= XMPP_JID_PART_MAX_BYTES) {
        if (n2 != n1 + 2 || memcmp(o2, "\xC3\xA9", 2) != 0 || memcmp(o2 + 2, o1, (size_t)n1))
            FAIL("resourcepart: \"\\u00e9\" prefix changed the rest");
    } else if (n2 >= 0) {
        FAIL("resourcepart: accepted only with a \"\\u00e9\" prefix");
    }

    /* Domainpart: U+00AD after the first character is deleted by UTS #46 mapping. */
    unsigned char c0 = (unsigned char)s[0];
    bool ldh = (c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') ||
               (c0 >= '0' && c0 <= '9') || c0 == '-';
    if (!ldh)
        return;
    wide[0] = s[0];
    memcpy(wide + 1, "\xC2\xAD", 2);
    memcpy(wide + 3, s + 1, len - 1);
    n1 = xmpp_jid_prep_domainpart(s, len, o1, sizeof(o1), NULL);
    n2 = xmpp_jid_prep_domainpart(wide, len + 2, o2, sizeof(o2), NULL);
    check_same(n1, o1, n2, o2, "domainpart vs soft hyphen");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    xmpp_jid_t j;
    if (xmpp_jid_parse(s, size, &j) == 0)
        check_ok(&j);
    else
        check_failed(&j);

    check_prep_stable(xmpp_jid_prep_localpart, s, size, "localpart");
    check_prep_stable(xmpp_jid_prep_domainpart, s, size, "domainpart");
    check_prep_stable(xmpp_jid_prep_resourcepart, s, size, "resourcepart");

    if (ascii_only(data, size))
        differential(s, size);
    return 0;
}
