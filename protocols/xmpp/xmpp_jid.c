/*
 * xmpp_jid.c - RFC 7622 addresses with the PRECIS profiles of RFC 8265 and IDNA2008 domains.
 *
 * Layout: the ASCII fast paths first (they decide almost every JID), then the PRECIS machinery
 * (derived property, contextual rules, Bidi Rule, the profile pipeline), then domains, then
 * the public functions. See xmpp_jid.h for the canonical form and the decisions behind it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <idn2.h>
#include <unictype.h>
#include <utf8proc.h>

#include "protocols/xmpp/xmpp_jid.h"

_Static_assert(XMPP_JID_MAX_BYTES < UINT16_MAX, "part lengths are stored in uint16_t");
_Static_assert(sizeof(((xmpp_jid_t *)0)->buf) == XMPP_JID_MAX_BYTES + 1, "room for the NUL");

/* RFC 8264 §7: apply the rules, then reapply up to three more times until stable. */
#define PRECIS_ROUNDS_MAX 4

/* DNS: 63 octets per label, 253 per name without the root dot (RFC 1035 §2.3.4, §3.1). */
#define DNS_LABEL_MAX_BYTES 63
#define DNS_NAME_MAX_BYTES 253

/*
 * Per-thread scratch for the non-ASCII paths. mapped holds a part after the mapping rules:
 * at most 1.5x its input (a 2-octet letter lowering to 3 octets, U+0130 to "i" U+0307), so
 * 1.5 * 3069 < 6144. cps holds it decomposed: at most 1.5 code points per octet (U+0390, two
 * octets, is three code points), so 1.5 * 4604 < 8192. Overflow is still checked, and reported
 * as too long. round[] alternates between the outputs of the stability rounds.
 */
#define SCRATCH_MAPPED_BYTES 6144
#define SCRATCH_CPS 8192

typedef struct {
    char mapped[SCRATCH_MAPPED_BYTES];
    utf8proc_int32_t cps[SCRATCH_CPS];
    char round[2][XMPP_JID_PART_BUF_BYTES];
} scratch_t;

static _Thread_local scratch_t scratch;

/*
 * Per-thread memo of IDN domainparts, raw bytes -> canonical bytes. A server hosting an IDN
 * domain sees it in nearly every stanza, and libidn2 makes about 40 allocations per call. Eight
 * slots: a shard talks to few IDN domains at a time; inputs and results must fit in 255 octets
 * (longer ones just miss). Only successes are kept; what it memoises is a pure function of the
 * input, so a hit returns exactly what a miss would compute.
 */
#define IDN_MEMO_SLOTS 8
#define IDN_MEMO_BYTES 256

typedef struct {
    uint16_t in_len;            /* 0: empty slot */
    uint16_t out_len;
    char in[IDN_MEMO_BYTES];
    char out[IDN_MEMO_BYTES];
} idn_memo_t;

static _Thread_local idn_memo_t idn_memo[IDN_MEMO_SLOTS];

/* ---- ASCII fast paths ------------------------------------------------------------------ */

static bool is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* RFC 7622 §3.3.1: allowed by IdentifierClass, but not in a localpart. */
static bool local_prohibited(unsigned char c)
{
    return c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' || c == '<' || c == '>' ||
           c == '@';
}

/*
 * ASCII localpart: ASCII7 (U+0021-U+007E) is PVALID in IdentifierClass (RFC 8264 §9.7), space
 * and controls are not; toLowerCase on ASCII is A-Z only; ASCII is NFC and has no RTL or
 * contextual code points. So this equals the full pipeline on ASCII input.
 */
static ssize_t local_ascii(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            *why = XMPP_JID_DISALLOWED;
            return -EINVAL;
        }
        if (local_prohibited(c)) {
            *why = XMPP_JID_PROHIBITED;
            return -EINVAL;
        }
    }
    if (len > XMPP_JID_PART_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++)
        dst[i] = ascii_lower(s[i]);
    return (ssize_t)len;
}

/*
 * ASCII resourcepart: OpaqueString keeps case, FreeformClass allows ASCII7 and U+0020
 * (Spaces, RFC 8264 §9.10), disallows controls.
 */
static ssize_t resource_ascii(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            *why = XMPP_JID_DISALLOWED;
            return -EINVAL;
        }
    }
    if (len > XMPP_JID_PART_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        return -EINVAL;
    }
    memcpy(dst, s, len);
    return (ssize_t)len;
}

/* ---- PRECIS derived property (RFC 8264 §8, categories of §9) ---------------------------- */

typedef enum {
    DP_PVALID,
    DP_CONTEXTJ,
    DP_CONTEXTO,
    DP_DISALLOWED,
} dp_t;

/*
 * Exceptions (RFC 8264 §9.2, category F, which is RFC 5892 §2.6's table). No library exports
 * it; it is fixed by the RFC, so it is written out here.
 */
static bool exception(utf8proc_int32_t cp, dp_t *dp)
{
    switch (cp) {
    case 0x00DF: case 0x03C2: case 0x06FD: case 0x06FE: case 0x0F0B: case 0x3007:
        *dp = DP_PVALID;
        return true;
    case 0x00B7: case 0x0375: case 0x05F3: case 0x05F4: case 0x30FB:
        *dp = DP_CONTEXTO;
        return true;
    case 0x0640: case 0x07FA: case 0x302E: case 0x302F: case 0x303B:
        *dp = DP_DISALLOWED;
        return true;
    default:
        break;
    }
    if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06F0 && cp <= 0x06F9)) {
        *dp = DP_CONTEXTO;
        return true;
    }
    if (cp >= 0x3031 && cp <= 0x3035) {
        *dp = DP_DISALLOWED;
        return true;
    }
    return false;
}

/*
 * OldHangulJamo (RFC 8264 §9.5): Hangul_Syllable_Type L, V or T, i.e. the conjoining jamo
 * blocks (Unicode HangulSyllableType.txt). After NFC only jamo that formed no syllable remain.
 */
static bool old_hangul_jamo(utf8proc_int32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xA960 && cp <= 0xA97C) ||
           (cp >= 0xD7B0 && cp <= 0xD7C6) || (cp >= 0xD7CB && cp <= 0xD7FB);
}

static bool noncharacter(utf8proc_int32_t cp)
{
    return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* HasCompat (RFC 8264 §9.13): toNFKC(cp) != cp. */
static bool has_compat(utf8proc_int32_t cp, const utf8proc_property_t *p)
{
    if (p->decomp_seqindex == UINT16_MAX)
        return false;           /* no decomposition: NFKC of one code point is itself */
    utf8proc_uint8_t u8[4];
    utf8proc_int32_t buf[32];
    utf8proc_ssize_t n = utf8proc_encode_char(cp, u8);
    n = utf8proc_decompose_custom(u8, n, buf, (utf8proc_ssize_t)ARRAY_LEN(buf),
                                  UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                                  NULL, NULL);
    ASSERT(n > 0);
    ASSERT(n <= (utf8proc_ssize_t)ARRAY_LEN(buf));   /* the longest NFKD is 18 (U+FDFA) */
    n = utf8proc_normalize_utf32(buf, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    return n != 1 || buf[0] != cp;
}

/*
 * The derivation of RFC 8264 §8, in its order. freeform selects FreeformClass (resourcepart),
 * else IdentifierClass (localpart, and domain U-labels: IDNA2008's PVALID set is contained in
 * IdentifierClass's, so this also rejects what UTS #46 lets through without STD3).
 */
static dp_t derived_property(utf8proc_int32_t cp, bool freeform)
{
    dp_t dp;
    if (exception(cp, &dp))
        return dp;
    /* BackwardCompatible (§9.3) is empty. */
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    utf8proc_propval_t cat = p->category;
    if (cat == UTF8PROC_CATEGORY_CN && !noncharacter(cp))
        return DP_DISALLOWED;   /* Unassigned (§9.6): UNASSIGNED is never allowed */
    if (cp >= 0x21 && cp <= 0x7E)
        return DP_PVALID;       /* ASCII7 (§9.7) */
    if (cp == 0x200C || cp == 0x200D)
        return DP_CONTEXTJ;     /* JoinControl (§9.4) */
    if (old_hangul_jamo(cp))
        return DP_DISALLOWED;
    if (p->ignorable || noncharacter(cp))
        return DP_DISALLOWED;   /* PrecisIgnorableProperties (§9.9) */
    if (cat == UTF8PROC_CATEGORY_CC)
        return DP_DISALLOWED;   /* Controls (§9.8) */
    dp_t free_or_not = freeform ? DP_PVALID : DP_DISALLOWED;
    if (has_compat(cp, p))
        return free_or_not;
    switch (cat) {
    case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
        return DP_PVALID;       /* LetterDigits (§9.1) */
    case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_ME:  /* OtherLetterDigits (§9.14) */
    case UTF8PROC_CATEGORY_ZS:  /* Spaces (§9.10) */
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:  /* Symbols (§9.11) */
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:  /* Punctuation (§9.12) */
        return free_or_not;
    default:
        return DP_DISALLOWED;
    }
}

/* ---- Contextual rules (RFC 5892 Appendix A; RFC 8264 §8 points to the same registry) ----- */

static bool script_is(utf8proc_int32_t cp, const char *name)
{
    const uc_script_t *s = uc_script((ucs4_t)cp);
    return s != NULL && strcmp(s->name, name) == 0;
}

/* Virama is Canonical_Combining_Class 9 (Unicode §3.11). */
static bool after_virama(const utf8proc_int32_t *cps, size_t i)
{
    return i > 0 && utf8proc_get_property(cps[i - 1])->combining_class == 9;
}

/* A.1: (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D}). */
static bool zwnj_joins(const utf8proc_int32_t *cps, size_t n, size_t i)
{
    int jt = UC_JOINING_TYPE_T;
    size_t k = i;
    while (k > 0 && (jt = uc_joining_type((ucs4_t)cps[k - 1])) == UC_JOINING_TYPE_T)
        k--;
    if (k == 0 || (jt != UC_JOINING_TYPE_L && jt != UC_JOINING_TYPE_D))
        return false;
    k = i + 1;
    while (k < n && (jt = uc_joining_type((ucs4_t)cps[k])) == UC_JOINING_TYPE_T)
        k++;
    return k < n && (jt == UC_JOINING_TYPE_R || jt == UC_JOINING_TYPE_D);
}

static bool label_has(const utf8proc_int32_t *cps, size_t n, utf8proc_int32_t lo,
                      utf8proc_int32_t hi)
{
    for (size_t k = 0; k < n; k++)
        if (cps[k] >= lo && cps[k] <= hi)
            return true;
    return false;
}

/* A.7: some code point of the label is Hiragana, Katakana or Han (U+30FB itself is Common). */
static bool label_has_kana_or_han(const utf8proc_int32_t *cps, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (script_is(cps[k], "Hiragana") || script_is(cps[k], "Katakana") ||
            script_is(cps[k], "Han"))
            return true;
    return false;
}

/* The rule for the CONTEXTJ or CONTEXTO code point cps[i] within the label cps[0..n). */
static bool context_ok(const utf8proc_int32_t *cps, size_t n, size_t i)
{
    utf8proc_int32_t cp = cps[i];
    switch (cp) {
    case 0x200C:                /* A.1 ZERO WIDTH NON-JOINER */
        return after_virama(cps, i) || zwnj_joins(cps, n, i);
    case 0x200D:                /* A.2 ZERO WIDTH JOINER */
        return after_virama(cps, i);
    case 0x00B7:                /* A.3 MIDDLE DOT: only in Catalan "l·l" */
        return i > 0 && i + 1 < n && cps[i - 1] == 0x006C && cps[i + 1] == 0x006C;
    case 0x0375:                /* A.4 GREEK LOWER NUMERAL SIGN: before Greek */
        return i + 1 < n && script_is(cps[i + 1], "Greek");
    case 0x05F3:                /* A.5 HEBREW PUNCTUATION GERESH */
    case 0x05F4:                /* A.6 HEBREW PUNCTUATION GERSHAYIM */
        return i > 0 && script_is(cps[i - 1], "Hebrew");
    case 0x30FB:                /* A.7 KATAKANA MIDDLE DOT */
        return label_has_kana_or_han(cps, n);
    default:
        break;
    }
    if (cp >= 0x0660 && cp <= 0x0669)   /* A.8: not mixed with extended digits */
        return !label_has(cps, n, 0x06F0, 0x06F9);
    if (cp >= 0x06F0 && cp <= 0x06F9)   /* A.9: not mixed with Arabic-Indic digits */
        return !label_has(cps, n, 0x0660, 0x0669);
    return false;               /* a contextual code point without a rule is invalid */
}

/* Checks every code point of one label against the class; 0 or the reason. */
static xmpp_jid_reason_t check_code_points(const utf8proc_int32_t *cps, size_t n, bool freeform)
{
    for (size_t i = 0; i < n; i++) {
        dp_t dp = derived_property(cps[i], freeform);
        if (dp == DP_DISALLOWED)
            return XMPP_JID_DISALLOWED;
        if ((dp == DP_CONTEXTJ || dp == DP_CONTEXTO) && !context_ok(cps, n, i))
            return XMPP_JID_CONTEXT;
    }
    return XMPP_JID_OK;
}

/* ---- The Bidi Rule (RFC 5893 §2) -------------------------------------------------------- */

static bool has_rtl(const utf8proc_int32_t *cps, size_t n)
{
    /* RFC 5893 §1.4: an RTL label contains at least one R, AL or AN character. */
    for (size_t i = 0; i < n; i++) {
        utf8proc_propval_t b = utf8proc_get_property(cps[i])->bidi_class;
        if (b == UTF8PROC_BIDI_CLASS_R || b == UTF8PROC_BIDI_CLASS_AL ||
            b == UTF8PROC_BIDI_CLASS_AN)
            return true;
    }
    return false;
}

static bool bidi_rule_ok(const utf8proc_int32_t *cps, size_t n)
{
    if (n == 0)
        return false;
    utf8proc_propval_t b = utf8proc_get_property(cps[0])->bidi_class;
    bool rtl;
    if (b == UTF8PROC_BIDI_CLASS_L)
        rtl = false;
    else if (b == UTF8PROC_BIDI_CLASS_R || b == UTF8PROC_BIDI_CLASS_AL)
        rtl = true;
    else
        return false;           /* condition 1 */
    bool en = false, an = false;
    utf8proc_propval_t last = b;
    for (size_t i = 0; i < n; i++) {
        b = utf8proc_get_property(cps[i])->bidi_class;
        switch (b) {
        case UTF8PROC_BIDI_CLASS_EN: case UTF8PROC_BIDI_CLASS_ES: case UTF8PROC_BIDI_CLASS_CS:
        case UTF8PROC_BIDI_CLASS_ET: case UTF8PROC_BIDI_CLASS_ON: case UTF8PROC_BIDI_CLASS_BN:
        case UTF8PROC_BIDI_CLASS_NSM:
            break;              /* allowed in both directions (conditions 2 and 5) */
        case UTF8PROC_BIDI_CLASS_L:
            if (rtl)
                return false;
            break;
        case UTF8PROC_BIDI_CLASS_R: case UTF8PROC_BIDI_CLASS_AL: case UTF8PROC_BIDI_CLASS_AN:
            if (!rtl)
                return false;
            break;
        default:
            return false;
        }
        en |= b == UTF8PROC_BIDI_CLASS_EN;
        an |= b == UTF8PROC_BIDI_CLASS_AN;
        if (b != UTF8PROC_BIDI_CLASS_NSM)
            last = b;
    }
    if (rtl) {
        if (en && an)
            return false;       /* condition 4 */
        return last == UTF8PROC_BIDI_CLASS_R || last == UTF8PROC_BIDI_CLASS_AL ||
               last == UTF8PROC_BIDI_CLASS_EN || last == UTF8PROC_BIDI_CLASS_AN;  /* 3 */
    }
    return last == UTF8PROC_BIDI_CLASS_L || last == UTF8PROC_BIDI_CLASS_EN;      /* 6 */
}

/* ---- PRECIS profiles (RFC 8265) --------------------------------------------------------- */

typedef struct {
    bool freeform;              /* FreeformClass, else IdentifierClass */
    bool width_map;             /* fullwidth/halfwidth to their decomposition */
    bool space_map;             /* non-ASCII Zs to U+0020 */
    bool lower;                 /* toLowerCase */
    bool bidi;                  /* the Bidi Rule */
} profile_t;

/* RFC 8265 §3.3.2 (UsernameCaseMapped enforcement), rules 1-6. */
static const profile_t username_case_mapped = {
    .freeform = false, .width_map = true, .space_map = false, .lower = true, .bidi = true,
};

/* RFC 8265 §4.2.2 (OpaqueString enforcement): no width or case mapping, no directionality. */
static const profile_t opaque_string = {
    .freeform = true, .width_map = false, .space_map = true, .lower = false, .bidi = false,
};

/* Appends cp as UTF-8 to mapped; false when it is full. */
static bool put_cp(char *mapped, size_t *m, utf8proc_int32_t cp)
{
    if (*m + 4 > SCRATCH_MAPPED_BYTES)
        return false;
    *m += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)mapped + *m);
    return true;
}

/* Case mapping (one code point of the width-mapped text); see xmpp_jid.h on Final_Sigma. */
static bool put_mapped(const profile_t *pr, char *mapped, size_t *m, utf8proc_int32_t cp)
{
    if (pr->space_map && cp != 0x20 && utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS)
        cp = 0x20;
    if (pr->lower) {
        /*
         * SpecialCasing.txt's one unconditional, language-independent lowercase mapping that
         * differs from the simple mapping utf8proc_tolower() gives: U+0130 -> U+0069 U+0307.
         */
        if (cp == 0x0130)
            return put_cp(mapped, m, 0x69) && put_cp(mapped, m, 0x307);
        cp = utf8proc_tolower(cp);
    }
    return put_cp(mapped, m, cp);
}

/*
 * Width, additional and case mapping rules (RFC 8264 §7 steps 1-3) of s into scratch.mapped.
 * Returns its length, or -1 with *why set.
 */
static ssize_t map_rules(const profile_t *pr, const char *s, size_t len, xmpp_jid_reason_t *why)
{
    size_t m = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            *why = XMPP_JID_BAD_UTF8;
            return -1;
        }
        i += (size_t)k;
        utf8proc_int32_t seq[4] = { cp };
        utf8proc_ssize_t nseq = 1;
        utf8proc_propval_t dt = utf8proc_get_property(cp)->decomp_type;
        if (pr->width_map && (dt == UTF8PROC_DECOMP_TYPE_WIDE ||
                              dt == UTF8PROC_DECOMP_TYPE_NARROW)) {
            /*
             * Halfwidth Hangul (U+FFA0-U+FFDC) maps to Hangul Compatibility Jamo, which are
             * HasCompat and so disallowed here (RFC 8264 §9.13). utf8proc only gives the full
             * NFKD, which would reach conjoining jamo that NFC could compose into a valid
             * syllable, so decide here. For every other wide/narrow code point one step and
             * NFKD agree up to what NFC undoes or the class rejects anyway (U+FFE3).
             */
            if (cp >= 0xFFA0 && cp <= 0xFFDC) {
                *why = XMPP_JID_DISALLOWED;
                return -1;
            }
            int boundclass = 0;
            nseq = utf8proc_decompose_char(cp, seq, (utf8proc_ssize_t)ARRAY_LEN(seq),
                                           UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, &boundclass);
            ASSERT(nseq >= 1);
            ASSERT(nseq <= (utf8proc_ssize_t)ARRAY_LEN(seq));  /* U+FFE3 is the longest: 2 */
        }
        for (utf8proc_ssize_t j = 0; j < nseq; j++) {
            if (!put_mapped(pr, scratch.mapped, &m, seq[j])) {
                *why = XMPP_JID_TOO_LONG;
                return -1;
            }
        }
    }
    return (ssize_t)m;
}

/*
 * One application of a profile (RFC 8264 §7): mapping, NFC, then the directionality and
 * behavioural rules on the result, which goes to out (XMPP_JID_PART_BUF_BYTES).
 */
static ssize_t precis_once(const profile_t *pr, const char *s, size_t len, char *out,
                           xmpp_jid_reason_t *why)
{
    ssize_t m = map_rules(pr, s, len, why);
    if (m < 0)
        return -1;
    utf8proc_option_t nfc = UTF8PROC_STABLE | UTF8PROC_COMPOSE;     /* as utf8proc_NFC() */
    utf8proc_ssize_t n = utf8proc_decompose_custom((const utf8proc_uint8_t *)scratch.mapped, m,
                                                   scratch.cps, SCRATCH_CPS, nfc, NULL, NULL);
    if (n < 0 || n > SCRATCH_CPS) {
        *why = n < 0 ? XMPP_JID_BAD_UTF8 : XMPP_JID_TOO_LONG;
        return -1;
    }
    utf8proc_ssize_t decomposed = n;
    n = utf8proc_normalize_utf32(scratch.cps, n, nfc);
    ASSERT(n >= 0);
    ASSERT(n <= decomposed);    /* composition only shortens */
    if (n == 0) {
        *why = XMPP_JID_EMPTY;
        return -1;
    }
    *why = check_code_points(scratch.cps, (size_t)n, pr->freeform);
    if (*why != XMPP_JID_OK)
        return -1;
    if (pr->bidi && has_rtl(scratch.cps, (size_t)n) && !bidi_rule_ok(scratch.cps, (size_t)n)) {
        *why = XMPP_JID_BIDI;
        return -1;
    }
    size_t o = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        utf8proc_uint8_t u8[4];
        utf8proc_ssize_t k = utf8proc_encode_char(scratch.cps[i], u8);
        if (o + (size_t)k > XMPP_JID_PART_MAX_BYTES) {
            *why = XMPP_JID_TOO_LONG;
            return -1;
        }
        memcpy(out + o, u8, (size_t)k);
        o += (size_t)k;
    }
    return (ssize_t)o;
}

/* Applies the profile until the output is stable (RFC 8264 §7); result into dst. */
static ssize_t precis_enforce(const profile_t *pr, const char *s, size_t len, char *dst,
                              xmpp_jid_reason_t *why)
{
    ASSERT(len > 0);
    ASSERT(len <= XMPP_JID_PART_INPUT_MAX_BYTES);   /* bounds scratch.mapped */
    const char *cur = s;
    size_t cur_len = len;
    for (int r = 0; r < PRECIS_ROUNDS_MAX; r++) {
        char *out = scratch.round[r & 1];
        ssize_t n = precis_once(pr, cur, cur_len, out, why);
        if (n < 0)
            return -EINVAL;
        ASSERT(n > 0);
        ASSERT(n <= XMPP_JID_PART_MAX_BYTES);
        if ((size_t)n == cur_len && memcmp(out, cur, cur_len) == 0) {
            memcpy(dst, out, (size_t)n);
            return n;
        }
        cur = out;
        cur_len = (size_t)n;
    }
    *why = XMPP_JID_UNSTABLE;
    return -EINVAL;
}

static ssize_t prep_local(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    *why = XMPP_JID_OK;
    if (len == 0) {
        *why = XMPP_JID_EMPTY;
        return -EINVAL;
    }
    if (len > XMPP_JID_PART_INPUT_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        return -EINVAL;
    }
    if (likely(is_ascii(s, len)))
        return local_ascii(s, len, dst, why);
    ssize_t n = precis_enforce(&username_case_mapped, s, len, dst, why);
    if (n < 0)
        return n;
    /* RFC 7622 §3.3.1, on the prepared string: "＠" maps to "@" and is refused here. */
    for (ssize_t i = 0; i < n; i++) {
        if (local_prohibited((unsigned char)dst[i])) {
            *why = XMPP_JID_PROHIBITED;
            return -EINVAL;
        }
    }
    return n;
}

static ssize_t prep_resource(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    *why = XMPP_JID_OK;
    if (len == 0) {
        *why = XMPP_JID_EMPTY;
        return -EINVAL;
    }
    if (len > XMPP_JID_PART_INPUT_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        return -EINVAL;
    }
    if (likely(is_ascii(s, len)))
        return resource_ascii(s, len, dst, why);
    return precis_enforce(&opaque_string, s, len, dst, why);
}

/* ---- Domainparts (RFC 7622 §3.2) -------------------------------------------------------- */

static bool is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-';
}

typedef enum {
    LDH_OK,                     /* canonical once lowercased */
    LDH_ALABEL,                 /* has an "xn--" label: needs libidn2 */
    LDH_BAD,
} ldh_t;

/*
 * Syntax of an ASCII host name: LDH labels of 1..63 octets without a leading or trailing
 * hyphen (RFC 5890 §2.3.1, STD3), at most 253 octets. "--" in positions 3-4 marks a reserved
 * R-LDH label; only "xn--" (an A-label) may be used (RFC 5890 §2.3.1, RFC 5891 §4.2.3.1).
 */
static ldh_t ldh_check(const char *s, size_t len)
{
    if (len > DNS_NAME_MAX_BYTES)
        return LDH_BAD;
    ldh_t res = LDH_OK;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_ldh((unsigned char)s[i]))
                return LDH_BAD;
            continue;
        }
        size_t n = i - start;
        const char *l = s + start;
        if (n == 0 || n > DNS_LABEL_MAX_BYTES || l[0] == '-' || l[n - 1] == '-')
            return LDH_BAD;
        if (n >= 4 && l[2] == '-' && l[3] == '-') {
            if (ascii_lower(l[0]) != 'x' || ascii_lower(l[1]) != 'n')
                return LDH_BAD;
            res = LDH_ALABEL;
        }
        start = i + 1;
    }
    return res;
}

/* "[IPv6]" to "[RFC 5952 text]"; dst has XMPP_JID_PART_BUF_BYTES. */
static ssize_t domain_ipv6(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    char text[INET6_ADDRSTRLEN];
    struct in6_addr a;
    *why = XMPP_JID_IP_LITERAL;
    if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(text))
        return -EINVAL;
    memcpy(text, s + 1, len - 2);
    text[len - 2] = '\0';
    if (memchr(text, '\0', len - 2) || inet_pton(AF_INET6, text, &a) != 1)
        return -EINVAL;
    if (!inet_ntop(AF_INET6, &a, text, sizeof(text)))
        return -EINVAL;
    size_t n = strlen(text);
    ASSERT(n + 2 <= XMPP_JID_PART_MAX_BYTES);
    dst[0] = '[';
    memcpy(dst + 1, text, n);
    dst[n + 1] = ']';
    *why = XMPP_JID_OK;
    return (ssize_t)n + 2;
}

/* A name of digits and dots must be a dotted-quad IPv4 address (RFC 1123 §2.1). */
static bool numeric_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9')))
            return true;        /* a host name */
    char text[INET_ADDRSTRLEN];
    struct in_addr a;
    if (len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    /* glibc's inet_pton accepts exactly four decimal octets without leading zeros. */
    return inet_pton(AF_INET, text, &a) == 1;
}

/* Decodes one label of a U-label domain into scratch.cps; its length, or -1. */
static ssize_t decode_label(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || n >= SCRATCH_CPS)
            return -1;
        scratch.cps[n] = cp;
        i += (size_t)k;
    }
    return (ssize_t)n;
}

/*
 * What libidn2 leaves to us on the U-label form u: the class of every code point (STD3's
 * non-ASCII part and IDNA2008's DISALLOWED), CONTEXTO, and the Bidi Rule across labels: in
 * a domain name with an RTL label every label must satisfy it (RFC 5893 §2).
 */
static xmpp_jid_reason_t ulabels_check(const char *u, size_t len)
{
    bool bidi_domain = false;
    for (int pass = 0; pass < 2; pass++) {
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i < len && u[i] != '.')
                continue;
            ssize_t n = decode_label(u + start, i - start);
            if (n <= 0)
                return XMPP_JID_IDNA;
            if (pass == 0) {
                xmpp_jid_reason_t r = check_code_points(scratch.cps, (size_t)n, false);
                if (r != XMPP_JID_OK)
                    return r;
                bidi_domain |= has_rtl(scratch.cps, (size_t)n);
            } else if (!bidi_rule_ok(scratch.cps, (size_t)n)) {
                return XMPP_JID_BIDI;
            }
            start = i + 1;
        }
        if (!bidi_domain)
            break;
    }
    return XMPP_JID_OK;
}

/*
 * UTS #46 non-transitional processing and IDNA2008 lookup checks by libidn2, then our LDH
 * check of the result. *alabel is malloc'ed by libidn2 (idn2_free) on success.
 */
static xmpp_jid_reason_t to_alabels(const char *z, char **alabel)
{
    uint8_t *a = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)z, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        idn2_free(a);
        return rc == IDN2_ENCODING_ERROR ? XMPP_JID_BAD_UTF8 : XMPP_JID_IDNA;
    }
    /* Mapping can make empty labels ("a\u3002\u3002b", a lone U+00AD) or a trailing dot. */
    if (ldh_check((const char *)a, strlen((const char *)a)) == LDH_BAD) {
        idn2_free(a);
        return XMPP_JID_IDNA;
    }
    *alabel = (char *)a;
    return XMPP_JID_OK;
}

static idn_memo_t *idn_memo_slot(const char *s, size_t len)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return &idn_memo[h % IDN_MEMO_SLOTS];
}

/* The slow path: anything non-ASCII, or ASCII with an A-label. z is NUL-terminated. */
static ssize_t domain_idna(const char *z, char *dst, xmpp_jid_reason_t *why)
{
    char *a = NULL, *u = NULL, *again = NULL;
    ssize_t res = -EINVAL;
    *why = to_alabels(z, &a);
    if (*why != XMPP_JID_OK)
        return -EINVAL;
    if (idn2_to_unicode_8z8z(a, &u, 0) != IDN2_OK) {
        *why = XMPP_JID_IDNA;
        goto out;
    }
    size_t n = strlen(u);
    if (n > XMPP_JID_PART_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        goto out;
    }
    *why = ulabels_check(u, n);
    if (*why != XMPP_JID_OK)
        goto out;
    /* The U-label form must map to the same A-labels, or it is not canonical. */
    *why = to_alabels(u, &again);
    if (*why == XMPP_JID_OK && strcmp(a, again) != 0)
        *why = XMPP_JID_UNSTABLE;
    if (*why != XMPP_JID_OK)
        goto out;
    memcpy(dst, u, n);
    res = (ssize_t)n;
out:
    idn2_free(again);
    idn2_free(u);
    idn2_free(a);
    return res;
}

static ssize_t prep_domain(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why)
{
    *why = XMPP_JID_OK;
    /* RFC 7622 §3.2: strip one final RFC 1034 dot before any other canonicalization. */
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0) {
        *why = XMPP_JID_EMPTY;
        return -EINVAL;
    }
    if (len > XMPP_JID_PART_INPUT_MAX_BYTES) {
        *why = XMPP_JID_TOO_LONG;
        return -EINVAL;
    }
    if (s[0] == '[')
        return domain_ipv6(s, len, dst, why);
    ssize_t n;
    if (likely(is_ascii(s, len))) {
        ldh_t l = ldh_check(s, len);
        if (l == LDH_BAD) {
            *why = XMPP_JID_IDNA;
            return -EINVAL;
        }
        if (l == LDH_OK) {
            for (size_t i = 0; i < len; i++)
                dst[i] = ascii_lower(s[i]);
            n = (ssize_t)len;
            goto numeric;
        }
    }
    /*
     * ASCII outside LDH and '.' can only end up in the result (UTS #46 maps ASCII to itself
     * or its lowercase), where STD3 refuses it: refuse it now. This also keeps NULs away from
     * libidn2's C strings, and bad UTF-8 is reported as such rather than as an IDNA error.
     */
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            *why = XMPP_JID_BAD_UTF8;
            return -EINVAL;
        }
        if (cp < 0x80 && cp != '.' && !is_ldh((unsigned char)cp)) {
            *why = XMPP_JID_IDNA;
            return -EINVAL;
        }
        i += (size_t)k;
    }
    idn_memo_t *memo = len < IDN_MEMO_BYTES ? idn_memo_slot(s, len) : NULL;
    if (memo && memo->in_len == len && memcmp(memo->in, s, len) == 0) {
        memcpy(dst, memo->out, memo->out_len);
        n = memo->out_len;
        goto numeric;
    }
    memcpy(scratch.mapped, s, len);
    scratch.mapped[len] = '\0';
    n = domain_idna(scratch.mapped, dst, why);
    if (n < 0)
        return n;
    if (memo && n < IDN_MEMO_BYTES) {
        memcpy(memo->in, s, len);
        memcpy(memo->out, dst, (size_t)n);
        memo->in_len = (uint16_t)len;
        memo->out_len = (uint16_t)n;
    }
numeric:
    ASSERT(n > 0);
    ASSERT(n <= XMPP_JID_PART_MAX_BYTES);
    if (!numeric_ok(dst, (size_t)n)) {
        *why = XMPP_JID_IP_LITERAL;
        return -EINVAL;
    }
    return n;
}

/* ---- Public functions -------------------------------------------------------------------- */

static int fail(xmpp_jid_t *out, xmpp_jid_part_t part, xmpp_jid_reason_t why)
{
    ASSERT(why != XMPP_JID_OK);
    out->local_len = out->domain_len = out->resource_len = 0;
    out->buf[0] = '\0';
    out->err_part = (uint8_t)part;
    out->err_reason = (uint8_t)why;
    return -EINVAL;
}

/* Input may not live in the buffer it is prepared into (the parts are written in place). */
static bool outside(const xmpp_jid_t *j, const char *p, size_t len)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)j->buf, hi = lo + sizeof(j->buf);
    return p == NULL || a + len <= lo || a >= hi;
}

/* Prepares the parts into out->buf in order; the caller has split them already. */
static int assemble(const char *local, size_t local_len, const char *domain, size_t domain_len,
                    const char *resource, size_t resource_len, xmpp_jid_t *out)
{
    ASSERT(outside(out, local, local_len));
    ASSERT(outside(out, domain, domain_len));
    ASSERT(outside(out, resource, resource_len));
    xmpp_jid_reason_t why;
    size_t o = 0;
    ssize_t n;
    if (local) {
        n = prep_local(local, local_len, out->buf, &why);
        if (n < 0)
            return fail(out, XMPP_JID_PART_LOCAL, why);
        out->local_len = (uint16_t)n;
        o = (size_t)n;
        out->buf[o++] = '@';
    }
    n = prep_domain(domain, domain_len, out->buf + o, &why);
    if (n < 0)
        return fail(out, XMPP_JID_PART_DOMAIN, why);
    out->domain_len = (uint16_t)n;
    o += (size_t)n;
    if (resource) {
        out->buf[o++] = '/';
        n = prep_resource(resource, resource_len, out->buf + o, &why);
        if (n < 0)
            return fail(out, XMPP_JID_PART_RESOURCE, why);
        out->resource_len = (uint16_t)n;
        o += (size_t)n;
    }
    ASSERT(o <= XMPP_JID_MAX_BYTES);
    out->buf[o] = '\0';
    out->err_part = XMPP_JID_PART_NONE;
    out->err_reason = XMPP_JID_OK;
    return 0;
}

int xmpp_jid_parse(const char *s, size_t len, xmpp_jid_t *out)
{
    ASSERT(s != NULL || len == 0);
    out->local_len = out->domain_len = out->resource_len = 0;
    if (len == 0)
        return fail(out, XMPP_JID_PART_DOMAIN, XMPP_JID_EMPTY);
    /*
     * RFC 7622 §3.1-3.2: split on the separators before any transformation (a mapping could
     * produce '@' or '/'): the resourcepart follows the first '/', the localpart precedes the
     * first '@' before that.
     */
    const char *slash = memchr(s, '/', len);
    size_t bare_len = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', bare_len);
    const char *local = NULL, *domain = s, *resource = NULL;
    size_t local_len = 0, domain_len = bare_len, resource_len = 0;
    if (at) {
        local = s;
        local_len = (size_t)(at - s);
        domain = at + 1;
        domain_len = bare_len - local_len - 1;
    }
    if (slash) {
        resource = slash + 1;
        resource_len = len - bare_len - 1;
    }
    return assemble(local, local_len, domain, domain_len, resource, resource_len, out);
}

int xmpp_jid_from_parts(const char *local, size_t local_len, const char *domain,
                        size_t domain_len, const char *resource, size_t resource_len,
                        xmpp_jid_t *out)
{
    ASSERT(domain != NULL || domain_len == 0);
    out->local_len = out->domain_len = out->resource_len = 0;
    if (domain == NULL)
        domain = "";
    return assemble(local, local_len, domain, domain_len, resource, resource_len, out);
}

int xmpp_jid_set_resource(xmpp_jid_t *j, const char *resource, size_t len)
{
    ASSERT(j->domain_len > 0);
    ASSERT(outside(j, resource, len));
    size_t bare = xmpp_jid_bare(j).len;
    xmpp_jid_reason_t why;
    /*
     * Prepared straight into place after the '/': the prep functions write dst only on
     * success, so a failure leaves the old resource as it was.
     */
    ssize_t n = prep_resource(resource ? resource : "", resource ? len : 0, j->buf + bare + 1,
                              &why);
    if (n < 0) {
        j->err_part = XMPP_JID_PART_RESOURCE;
        j->err_reason = (uint8_t)why;
        return -EINVAL;
    }
    j->buf[bare] = '/';
    j->buf[bare + 1 + (size_t)n] = '\0';
    j->resource_len = (uint16_t)n;
    j->err_part = XMPP_JID_PART_NONE;
    j->err_reason = XMPP_JID_OK;
    return 0;
}

typedef ssize_t (*prep_fn)(const char *s, size_t len, char *dst, xmpp_jid_reason_t *why);

static ssize_t prep_public(prep_fn fn, const char *s, size_t len, char *dst, size_t cap,
                           xmpp_jid_reason_t *why)
{
    ASSERT(cap >= XMPP_JID_PART_BUF_BYTES);
    ASSERT(s != NULL || len == 0);
    xmpp_jid_reason_t r;
    ssize_t n = fn(s ? s : "", len, dst, &r);
    ASSERT(n <= XMPP_JID_PART_MAX_BYTES);
    ASSERT(n != 0);
    if (why)
        *why = n < 0 ? r : XMPP_JID_OK;
    dst[n < 0 ? 0 : n] = '\0';
    return n;
}

ssize_t xmpp_jid_prep_localpart(const char *s, size_t len, char *dst, size_t cap,
                                xmpp_jid_reason_t *why)
{
    return prep_public(prep_local, s, len, dst, cap, why);
}

ssize_t xmpp_jid_prep_domainpart(const char *s, size_t len, char *dst, size_t cap,
                                 xmpp_jid_reason_t *why)
{
    return prep_public(prep_domain, s, len, dst, cap, why);
}

ssize_t xmpp_jid_prep_resourcepart(const char *s, size_t len, char *dst, size_t cap,
                                   xmpp_jid_reason_t *why)
{
    return prep_public(prep_resource, s, len, dst, cap, why);
}

ssize_t xmpp_jid_domain_to_ascii(str_t domain, char *dst, size_t cap)
{
    ASSERT(dst != NULL && cap > 0);
    dst[0] = '\0';
    if (domain.len == 0 || domain.len > XMPP_JID_PART_MAX_BYTES)
        return -EINVAL;
    if (domain.ptr[0] == '[' || is_ascii(domain.ptr, domain.len)) {
        if (domain.len >= cap)
            return -ENOSPC;
        memcpy(dst, domain.ptr, domain.len);
        dst[domain.len] = '\0';
        return (ssize_t)domain.len;
    }
    if (memchr(domain.ptr, '\0', domain.len))
        return -EINVAL;
    memcpy(scratch.mapped, domain.ptr, domain.len);
    scratch.mapped[domain.len] = '\0';
    char *a = NULL;
    if (to_alabels(scratch.mapped, &a) != XMPP_JID_OK)
        return -EINVAL;
    size_t n = strlen(a);
    ssize_t res = -ENOSPC;
    if (n < cap) {
        memcpy(dst, a, n + 1);
        res = (ssize_t)n;
    }
    idn2_free(a);
    return res;
}

static ssize_t format(str_t s, char *dst, size_t cap)
{
    if (s.len >= cap) {
        if (cap > 0)
            dst[0] = '\0';
        return -ENOSPC;
    }
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return (ssize_t)s.len;
}

ssize_t xmpp_jid_format_bare(const xmpp_jid_t *j, char *dst, size_t cap)
{
    return format(xmpp_jid_bare(j), dst, cap);
}

ssize_t xmpp_jid_format_full(const xmpp_jid_t *j, char *dst, size_t cap)
{
    return format(xmpp_jid_full(j), dst, cap);
}

const char *xmpp_jid_reason_name(xmpp_jid_reason_t reason)
{
    static const char *const names[] = {
        [XMPP_JID_OK] = "ok",
        [XMPP_JID_EMPTY] = "empty",
        [XMPP_JID_TOO_LONG] = "too-long",
        [XMPP_JID_BAD_UTF8] = "bad-utf8",
        [XMPP_JID_DISALLOWED] = "disallowed",
        [XMPP_JID_PROHIBITED] = "prohibited",
        [XMPP_JID_CONTEXT] = "context",
        [XMPP_JID_BIDI] = "bidi",
        [XMPP_JID_UNSTABLE] = "unstable",
        [XMPP_JID_IDNA] = "idna",
        [XMPP_JID_IP_LITERAL] = "ip-literal",
    };
    if ((size_t)reason >= ARRAY_LEN(names) || names[reason] == NULL)
        return "?";
    return names[reason];
}

const char *xmpp_jid_part_name(xmpp_jid_part_t part)
{
    switch (part) {
    case XMPP_JID_PART_NONE: return "none";
    case XMPP_JID_PART_LOCAL: return "localpart";
    case XMPP_JID_PART_DOMAIN: return "domainpart";
    case XMPP_JID_PART_RESOURCE: return "resourcepart";
    }
    return "?";
}
