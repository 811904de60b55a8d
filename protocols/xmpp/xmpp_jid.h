/*
 * xmpp_jid.h - XMPP addresses (JIDs): parsing, canonical form, comparison.
 *
 * A JID is "[localpart@]domainpart[/resourcepart]" (RFC 7622). This module turns the bytes a
 * peer sent into the one canonical form presenced routes and stores by, so that two JIDs
 * RFC 7622 calls equal are equal byte for byte, and comparison is memcmp:
 *
 *   localpart     PRECIS UsernameCaseMapped (RFC 8265 §3.3): fullwidth/halfwidth forms
 *                 mapped to their decompositions, toLowerCase, NFC, the Bidi Rule, the
 *                 IdentifierClass (RFC 8264 §4.2), plus RFC 7622 §3.3.1's extra prohibited
 *                 characters  " & ' / : < > @
 *   domainpart    one trailing '.' stripped first (RFC 7622 §3.2). Then either an IP literal
 *                 or a host name: UTS #46 non-transitional mapping (lowercase, NFC, width),
 *                 IDNA2008 validation, STD3 (LDH) rules, the Bidi Rule over all labels
 *                 (RFC 5893 §2) and the CONTEXTO rules. The canonical form is the U-label
 *                 form: RFC 7622 §3.2.1 says a domainpart MUST NOT contain A-labels (each
 *                 is converted to a U-label during preparation) and §3.2.3 compares the
 *                 results octet for octet. So "例子.广告" and "xn--fsqu00a.xn--4rr70v" are
 *                 the same domainpart, stored as "例子.广告". We get it by converting to
 *                 A-labels with libidn2 and back, which also validates A-labels given as
 *                 input; xmpp_jid_domain_to_ascii() gives the A-label form for DNS.
 *                 IPv4 literals must be plain dotted-quad (no leading zeros) and are kept;
 *                 "[IPv6]" literals are rewritten to RFC 5952 text (lowercase, "::"
 *                 compressed) so one address has one spelling. A name made only of digits
 *                 and dots that is not a valid IPv4 address is rejected rather than routed
 *                 as a DNS name (RFC 1123 §2.1). IPvFuture literals are rejected.
 *   resourcepart  PRECIS OpaqueString (RFC 8265 §4.2): non-ASCII spaces mapped to U+0020,
 *                 NFC, FreeformClass; case and compatibility characters preserved.
 *
 * Each part is 1..1023 octets after preparation (RFC 7622 §3.1); a part whose separator is
 * present must not be empty. Preparation is repeated until stable (RFC 8264 §7: at most three
 * extra rounds, else rejected), so the output of xmpp_jid_parse() parses to itself.
 *
 * Decisions a reader should know:
 *   - Splitting follows RFC 7622 §3.2 exactly: the resourcepart starts after the FIRST '/';
 *     the localpart ends at the FIRST '@' before it. ("a@b/c@d/e" has resourcepart "c@d/e".)
 *     A second '@' before the '/' lands in the domainpart and is rejected there.
 *   - toLowerCase is applied per code point with the full unconditional mappings
 *     (U+0130 becomes "i" U+0307) and without the context-dependent Final_Sigma rule, as
 *     Go's x/text/secure/precis does: "Σ" and "σ" are the same localpart, "ς" is not.
 *   - RFC 7622 Example 18 ("juliet@example.com/ foo") is accepted: OpaqueString allows
 *     U+0020 anywhere, and the example contradicts the profile that section mandates.
 *   - UTS #46 maps more than RFC 7622 §3.2.2's width, case and normalization rules (it also
 *     applies NFKC-style mappings), so a few names that strict RFC 7622 would refuse are
 *     accepted in mapped form ("Ⅳ.example" is "iv.example"). Each still has one canonical
 *     form, so equal JIDs still compare equal.
 *   - libidn2's STD3 flag deletes disallowed ASCII instead of rejecting it ("a_b" would
 *     become "ab"), so we leave it off and enforce LDH on the A-label form ourselves; we
 *     also reject the few non-ASCII characters UTS #46 only allows without STD3 (≠ ≮ ≯).
 *
 * Fast path: a part that is pure ASCII never reaches utf8proc, libunistring or libidn2 and
 * never allocates: ASCII is already NFC, has no bidi or contextual characters and only needs
 * A-Z lowered. Non-ASCII local- and resourceparts use a per-thread scratch area (about 40 KiB
 * of thread-local storage, no malloc). Only a domainpart that is non-ASCII or contains an
 * "xn--" label calls libidn2, which allocates (freed before returning).
 *
 * Threads: every function is reentrant and may be called from any shard; none blocks.
 * Links with utf8proc, libidn2 and libunistring (Script and Joining_Type for the contextual
 * rules of RFC 5892 Appendix A, which neither of the other two exports).
 */
#ifndef PRESENCED_XMPP_JID_H
#define PRESENCED_XMPP_JID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/common.h"

/* RFC 7622 §3.2-3.4: each part MUST NOT be more than 1023 octets once prepared. */
#define XMPP_JID_PART_MAX_BYTES 1023
/* One prepared part and its NUL: the size xmpp_jid_prep_*() want for dst. */
#define XMPP_JID_PART_BUF_BYTES (XMPP_JID_PART_MAX_BYTES + 1)
/* "local@domain/resource": three full parts and both separators. */
#define XMPP_JID_MAX_BYTES (3 * XMPP_JID_PART_MAX_BYTES + 2)
/*
 * Raw input accepted per part. Preparation shrinks text by at most 3x (three conjoining
 * Hangul jamo, 9 octets, compose to one 3-octet syllable; a 3-octet fullwidth form maps to
 * one ASCII octet), so a longer part cannot prepare to 1023 octets. Domainparts padded
 * with characters UTS #46 deletes (variation selectors) are the one exception; they are
 * rejected as too long, which is the safe side.
 */
#define XMPP_JID_PART_INPUT_MAX_BYTES (3 * XMPP_JID_PART_MAX_BYTES)

/* Which part a parse failed in. */
typedef enum {
    XMPP_JID_PART_NONE = 0,
    XMPP_JID_PART_LOCAL,
    XMPP_JID_PART_DOMAIN,
    XMPP_JID_PART_RESOURCE,
} xmpp_jid_part_t;

/*
 * Why a part was rejected. All of them are <jid-malformed/> (RFC 6120 §8.3.3.8) for a stanza
 * address, <bad-request/> for a resource in resource binding (RFC 6120 §7.7.2.1) and
 * <malformed-request/> for a SASL authorization identity; the detail is for logs.
 */
typedef enum {
    XMPP_JID_OK = 0,
    XMPP_JID_EMPTY,             /* zero octets although its separator is present, or no domain */
    XMPP_JID_TOO_LONG,          /* more than 1023 octets prepared (or a hopelessly long input) */
    XMPP_JID_BAD_UTF8,          /* not UTF-8 (RFC 7622 §3.1) */
    XMPP_JID_DISALLOWED,        /* a code point the PRECIS class or IDNA2008 disallows */
    XMPP_JID_PROHIBITED,        /* localpart: " & ' / : < > @ (RFC 7622 §3.3.1) */
    XMPP_JID_CONTEXT,           /* CONTEXTJ/CONTEXTO rule not met (RFC 5892 Appendix A) */
    XMPP_JID_BIDI,              /* the Bidi Rule (RFC 5893 §2) */
    XMPP_JID_UNSTABLE,          /* preparation did not reach a fixed point (RFC 8264 §7) */
    XMPP_JID_IDNA,              /* domainpart: label syntax, DNS lengths or IDNA2008 (libidn2) */
    XMPP_JID_IP_LITERAL,        /* domainpart: a bad IPv6 literal or digits-and-dots non-IPv4 */
} xmpp_jid_reason_t;

/*
 * A parsed JID in canonical form. Embed it (about 3 KiB); it owns its bytes and holds no
 * pointers, so it may be copied by value (for instance into a cross-shard message). The fields
 * are private: use the accessors below. buf holds "local@domain/resource" (separators only
 * when the part is present) followed by a NUL, so the full JID is also a C string.
 */
typedef struct {
    uint16_t local_len;         /* 0: no localpart */
    uint16_t domain_len;        /* >= 1 after a successful parse */
    uint16_t resource_len;      /* 0: bare JID */
    uint8_t err_part;           /* xmpp_jid_part_t of the last failure, else NONE */
    uint8_t err_reason;         /* xmpp_jid_reason_t of the last failure, else OK */
    char buf[XMPP_JID_MAX_BYTES + 1];
} xmpp_jid_t;

/* ---- Parsing and building ------------------------------------------------------------ */

/*
 * Parses len bytes at s (no NUL needed; s must not point into *out) into the canonical
 * *out. Returns 0, or -EINVAL with the failing part and reason in *out (read them with
 * xmpp_jid_error()) and every part empty.
 */
int xmpp_jid_parse(const char *s, size_t len, xmpp_jid_t *out);

/*
 * Builds *out from separate, not yet prepared parts, as when a SASL username, the stream's
 * domain and a bound resource are joined. local and resource may be NULL for "absent"; a
 * non-NULL pointer with length 0 is an empty part and fails. Returns as xmpp_jid_parse().
 */
int xmpp_jid_from_parts(const char *local, size_t local_len, const char *domain,
                        size_t domain_len, const char *resource, size_t resource_len,
                        xmpp_jid_t *out);

/*
 * Prepares resource (resource binding, RFC 6120 §7) and makes it *j's resourcepart. On
 * -EINVAL *j keeps its old resource and records the error.
 */
int xmpp_jid_set_resource(xmpp_jid_t *j, const char *resource, size_t len);

/* The part and reason of the last failure on *j (NONE/OK after a success). */
static inline xmpp_jid_reason_t xmpp_jid_error(const xmpp_jid_t *j, xmpp_jid_part_t *part)
{
    if (part)
        *part = (xmpp_jid_part_t)j->err_part;
    return (xmpp_jid_reason_t)j->err_reason;
}

const char *xmpp_jid_reason_name(xmpp_jid_reason_t reason);
const char *xmpp_jid_part_name(xmpp_jid_part_t part);

/* ---- Single parts -------------------------------------------------------------------- */

/*
 * Canonical form of one part: the localpart for a SASL username (RFC 6120 §6.3.8 says the
 * simple user name is a localpart), the resourcepart for resource binding, the domainpart for
 * the stream's "to". s is len bytes; dst (cap bytes, cap >= XMPP_JID_PART_BUF_BYTES, a
 * smaller one is a programmer error) receives the canonical bytes and a NUL. Returns the
 * length (1..1023), or -EINVAL with *why set when why is not NULL. dst may not overlap s.
 */
ssize_t xmpp_jid_prep_localpart(const char *s, size_t len, char *dst, size_t cap,
                                xmpp_jid_reason_t *why);
ssize_t xmpp_jid_prep_domainpart(const char *s, size_t len, char *dst, size_t cap,
                                 xmpp_jid_reason_t *why);
ssize_t xmpp_jid_prep_resourcepart(const char *s, size_t len, char *dst, size_t cap,
                                   xmpp_jid_reason_t *why);

/*
 * The A-label (ASCII) form of a canonical domainpart, for DNS (RFC 6120 §3.2 SRV lookups);
 * IP literals and ASCII names are copied. dst gets the bytes and a NUL. Returns the length,
 * -ENOSPC if dst is too small, -EINVAL if domain is not canonical. Allocates inside libidn2
 * for a non-ASCII name.
 */
ssize_t xmpp_jid_domain_to_ascii(str_t domain, char *dst, size_t cap);

/* ---- Accessors: slices into j->buf, valid while *j is neither changed nor freed -------- */

static inline bool xmpp_jid_has_local(const xmpp_jid_t *j)
{
    return j->local_len != 0;
}

static inline bool xmpp_jid_has_resource(const xmpp_jid_t *j)
{
    return j->resource_len != 0;
}

static inline str_t xmpp_jid_local(const xmpp_jid_t *j)
{
    return (str_t){ j->buf, j->local_len };
}

static inline size_t xmpp_jid_domain_off_(const xmpp_jid_t *j)
{
    return j->local_len ? (size_t)j->local_len + 1 : 0;
}

static inline str_t xmpp_jid_domain(const xmpp_jid_t *j)
{
    return (str_t){ j->buf + xmpp_jid_domain_off_(j), j->domain_len };
}

/* "local@domain" or "domain"; routing and roster key. */
static inline str_t xmpp_jid_bare(const xmpp_jid_t *j)
{
    return (str_t){ j->buf, xmpp_jid_domain_off_(j) + j->domain_len };
}

static inline str_t xmpp_jid_resource(const xmpp_jid_t *j)
{
    size_t bare = xmpp_jid_domain_off_(j) + j->domain_len;
    return (str_t){ j->buf + bare + (j->resource_len ? 1 : 0), j->resource_len };
}

/* The whole JID; j->buf[len] is NUL. */
static inline str_t xmpp_jid_full(const xmpp_jid_t *j)
{
    size_t bare = xmpp_jid_domain_off_(j) + j->domain_len;
    return (str_t){ j->buf, bare + (j->resource_len ? 1u + j->resource_len : 0) };
}

/* Drops the resourcepart in place: *j becomes its bare JID. */
static inline void xmpp_jid_strip_resource(xmpp_jid_t *j)
{
    j->resource_len = 0;
    j->buf[xmpp_jid_bare(j).len] = '\0';
}

/* ---- Comparison (RFC 7622 §3.x.3: octet for octet after enforcement) ------------------ */

static inline bool xmpp_jid_equal(const xmpp_jid_t *a, const xmpp_jid_t *b)
{
    return a->local_len == b->local_len && a->resource_len == b->resource_len &&
           str_eq(xmpp_jid_full(a), xmpp_jid_full(b));
}

static inline bool xmpp_jid_bare_equal(const xmpp_jid_t *a, const xmpp_jid_t *b)
{
    return a->local_len == b->local_len && str_eq(xmpp_jid_bare(a), xmpp_jid_bare(b));
}

/* ---- Formatting for callers that need their own C string ----------------------------- */

/*
 * Copy the bare or full JID and a NUL into dst (cap bytes). Return the length, or -ENOSPC
 * when it does not fit (dst then holds "" if cap > 0).
 */
ssize_t xmpp_jid_format_bare(const xmpp_jid_t *j, char *dst, size_t cap);
ssize_t xmpp_jid_format_full(const xmpp_jid_t *j, char *dst, size_t cap);

#endif
