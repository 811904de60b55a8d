/*
 * XMPP addresses: RFC 7622 §3.5's examples, then each rule of the three profiles, the
 * domainpart forms, lengths and the building and formatting functions. Every accepted JID is
 * also parsed again from its canonical text, which must give the same bytes (RFC 8264 §7).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/xmpp/xmpp_jid.h"
#include "tests/unit/t.h"

/*
 * Parses len bytes and returns the canonical full JID, or "!<part>:<reason>". Also checks
 * that the canonical text parses to itself and that the slices tile buf.
 */
static const char *PL(const char *in, size_t len)
{
    static char bufs[8][XMPP_JID_MAX_BYTES + 64];
    static unsigned next;
    char *b = bufs[next++ % 8];
    static xmpp_jid_t j, again;
    if (xmpp_jid_parse(in, len, &j) != 0) {
        xmpp_jid_part_t part;
        xmpp_jid_reason_t why = xmpp_jid_error(&j, &part);
        CHECK(why != XMPP_JID_OK);
        CHECK_EQ(xmpp_jid_full(&j).len, 0);
        snprintf(b, sizeof(bufs[0]), "!%s:%s", xmpp_jid_part_name(part),
                 xmpp_jid_reason_name(why));
        return b;
    }
    str_t full = xmpp_jid_full(&j);
    CHECK_EQ(strlen(j.buf), full.len);
    CHECK(xmpp_jid_domain(&j).len >= 1);
    CHECK(xmpp_jid_local(&j).len <= XMPP_JID_PART_MAX_BYTES);
    CHECK(xmpp_jid_domain(&j).len <= XMPP_JID_PART_MAX_BYTES);
    CHECK(xmpp_jid_resource(&j).len <= XMPP_JID_PART_MAX_BYTES);
    REQUIRE(xmpp_jid_parse(full.ptr, full.len, &again) == 0);
    CHECK(xmpp_jid_equal(&j, &again));
    CHECK(str_eq(xmpp_jid_full(&again), full));
    memcpy(b, full.ptr, full.len);
    b[full.len] = '\0';
    return b;
}

static const char *P(const char *in)
{
    return PL(in, strlen(in));
}

static bool same(const char *a, const char *b)
{
    static xmpp_jid_t ja, jb;
    REQUIRE(xmpp_jid_parse(a, strlen(a), &ja) == 0);
    REQUIRE(xmpp_jid_parse(b, strlen(b), &jb) == 0);
    return xmpp_jid_equal(&ja, &jb);
}

static void test_rfc7622_valid_examples(void)
{
    /* RFC 7622 §3.5, Examples 1-15, with the canonical form each gets. */
    CHECK_STR(P("juliet@example.com"), "juliet@example.com");
    CHECK_STR(P("juliet@example.com/foo"), "juliet@example.com/foo");
    CHECK_STR(P("juliet@example.com/foo bar"), "juliet@example.com/foo bar");
    CHECK_STR(P("juliet@example.com/foo@bar"), "juliet@example.com/foo@bar");
    CHECK_STR(P("foo\\20bar@example.com"), "foo\\20bar@example.com");
    CHECK_STR(P("fussball@example.com"), "fussball@example.com");
    CHECK_STR(P("fu\u00DFball@example.com"), "fu\u00DFball@example.com");
    CHECK_STR(P("\u03C0@example.com"), "\u03C0@example.com");
    CHECK_STR(P("\u03A3@example.com/foo"), "\u03C3@example.com/foo");
    CHECK_STR(P("\u03C3@example.com/foo"), "\u03C3@example.com/foo");
    CHECK_STR(P("\u03C2@example.com/foo"), "\u03C2@example.com/foo");
    CHECK_STR(P("king@example.com/\u265A"), "king@example.com/\u265A");
    CHECK_STR(P("example.com"), "example.com");
    CHECK_STR(P("example.com/foobar"), "example.com/foobar");
    CHECK_STR(P("a.example.com/b@example.net"), "a.example.com/b@example.net");

    /* The notes on them: ß is not "ss" (toLowerCase, not case folding), Σ is σ, ς is not. */
    CHECK(!same("fu\u00DFball@example.com", "fussball@example.com"));
    CHECK(same("\u03A3@example.com", "\u03C3@example.com"));
    CHECK(!same("\u03C2@example.com", "\u03C3@example.com"));
}

static void test_rfc7622_invalid_examples(void)
{
    /* RFC 7622 §3.5, Examples 16-23. */
    CHECK_STR(P("\"juliet\"@example.com"), "!localpart:prohibited");
    CHECK_STR(P("foo bar@example.com"), "!localpart:disallowed");
    CHECK_STR(P("@example.com/"), "!localpart:empty");
    CHECK_STR(P("henry\u2163@example.com"), "!localpart:disallowed");  /* ROMAN NUMERAL FOUR */
    CHECK_STR(P("\u265A@example.com"), "!localpart:disallowed");       /* BLACK CHESS KING */
    CHECK_STR(P("juliet@"), "!domainpart:empty");
    CHECK_STR(P("/foobar"), "!domainpart:empty");

    /*
     * Example 18, "juliet@example.com/ foo", is listed as invalid, but the OpaqueString
     * profile that §3.4 mandates allows U+0020 anywhere (RFC 8265 §4.2). We follow the
     * profile; this check pins that decision.
     */
    CHECK_STR(P("juliet@example.com/ foo"), "juliet@example.com/ foo");
}

static void test_case_mapping(void)
{
    CHECK_STR(P("Juliet@Example.COM/Balcony"), "juliet@example.com/Balcony");
    CHECK(same("juliet@example.com/Balcony", "JULIET@EXAMPLE.COM/Balcony"));
    CHECK(!same("juliet@example.com/Balcony", "juliet@example.com/balcony"));
    /* Non-ASCII upper case in the localpart, kept in the resourcepart. */
    CHECK_STR(P("\u00C9LODIE@example.com/\u00C9"), "\u00E9lodie@example.com/\u00C9");
    /* Full toLowerCase: U+0130 is "i" U+0307, not a bare "i" (SpecialCasing.txt). */
    CHECK_STR(P("\u0130@example.com"), "i\u0307@example.com");
    CHECK(!same("\u0130@example.com", "i@example.com"));
    /* KELVIN SIGN lowers to "k" and is the same user as "k". */
    CHECK_STR(P("\u212A@example.com"), "k@example.com");
    /* No Final_Sigma context: a word-final capital sigma is σ. */
    CHECK_STR(P("\u039F\u0394\u039F\u03A3@example.com"), "\u03BF\u03B4\u03BF\u03C3@example.com");
}

static void test_width_and_compat(void)
{
    /* UsernameCaseMapped maps fullwidth forms (RFC 8265 §3.3.2 rule 1), then lowers them. */
    CHECK_STR(P("\uFF2A\uFF35\uFF2C\uFF29\uFF25\uFF34@example.com"), "juliet@example.com");
    CHECK(same("\uFF41\uFF42\uFF43@example.com", "abc@example.com"));
    /* Halfwidth katakana and the voiced mark compose under NFC. */
    CHECK_STR(P("\uFF76\uFF9E@example.com"), "\u30AC@example.com");
    /* Width mapping must not smuggle in what §3.3.1 prohibits. */
    CHECK_STR(P("a\uFF20b@example.com"), "!localpart:prohibited");
    CHECK_STR(P("a\uFF0Fb@example.com"), "!localpart:prohibited");
    CHECK_STR(P("a\u3000b@example.com"), "!localpart:disallowed");     /* ideographic space */
    /* Halfwidth Hangul maps to compatibility jamo, which are HasCompat. */
    CHECK_STR(P("\uFFA1\uFFBF@example.com"), "!localpart:disallowed");
    /* Conjoining jamo themselves compose under NFC into a syllable, which is fine. */
    CHECK_STR(P("\u1100\u1161@example.com"), "\uAC00@example.com");
    CHECK_STR(P("\u1100@example.com"), "!localpart:disallowed");       /* OldHangulJamo */
    /* HasCompat is disallowed in IdentifierClass, allowed in FreeformClass. */
    CHECK_STR(P("\uFB01le@example.com"), "!localpart:disallowed");     /* LATIN SMALL LIGATURE FI */
    CHECK_STR(P("file@example.com"), "file@example.com");
    CHECK_STR(P("juliet@example.com/\uFB01"), "juliet@example.com/\uFB01");
    CHECK_STR(P("juliet@example.com/\u2163"), "juliet@example.com/\u2163");
    /* OpaqueString does no width mapping: a fullwidth resource stays fullwidth. */
    CHECK_STR(P("juliet@example.com/\uFF32"), "juliet@example.com/\uFF32");
    CHECK(!same("juliet@example.com/\uFF32", "juliet@example.com/R"));
    /* ...but maps every non-ASCII space to U+0020 (RFC 8265 §4.2.2 rule 2). */
    CHECK_STR(P("juliet@example.com/A\u00A0B"), "juliet@example.com/A B");
    CHECK_STR(P("juliet@example.com/\u2003x\u3000"), "juliet@example.com/ x ");
    CHECK_STR(P("juliet@example.com/ "), "juliet@example.com/ ");
    /* Symbols: resource yes (FreeformClass), localpart no. */
    CHECK_STR(P("juliet@example.com/\U0001F600"), "juliet@example.com/\U0001F600");
    CHECK_STR(P("\U0001F600@example.com"), "!localpart:disallowed");
}

static void test_normalization(void)
{
    CHECK_STR(P("e\u0301@example.com/e\u0301"), "\u00E9@example.com/\u00E9");
    CHECK(same("e\u0301@example.com", "\u00E9@example.com"));
    /* Canonical reordering: two marks given in the wrong order. */
    CHECK(same("a\u0323\u0302@example.com", "a\u0302\u0323@example.com"));
    /* ANGSTROM SIGN is canonically Å. */
    CHECK_STR(P("\u212B@example.com"), "\u00E5@example.com");
    CHECK_STR(P("juliet@example.com/\u212B"), "juliet@example.com/\u00C5");
}

static void test_disallowed_code_points(void)
{
    static const char *const bad_local[] = {
        "a\tb", "a\x7f", "\u00AD", "\u034F", "\u200B", "\u202E", "\uE000", "\uFDD0",
        "\U0010FFFF", "\u0378", "\u0640", "\u00A0", "a\u00B4",
    };
    char in[64];
    for (size_t i = 0; i < ARRAY_LEN(bad_local); i++) {
        snprintf(in, sizeof(in), "%s@example.com", bad_local[i]);
        CHECK_STR(P(in), "!localpart:disallowed");
    }
    static const char *const bad_resource[] = {
        "\t", "\x7f", "\xC2\x85", "\u00AD", "\uE000", "\u0378", "\u200B", "\u0640",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad_resource); i++) {
        snprintf(in, sizeof(in), "example.com/%s", bad_resource[i]);
        CHECK_STR(P(in), "!resourcepart:disallowed");
    }
    CHECK_STR(PL("a\0b@example.com", 15), "!localpart:disallowed");
    CHECK_STR(PL("example.com/a\0", 14), "!resourcepart:disallowed");
    CHECK_STR(PL("exa\0mple.com", 12), "!domainpart:idna");
    CHECK_STR(PL("\xC3\xA9xa\0mple.com", 13), "!domainpart:idna");
}

static void test_bad_utf8(void)
{
    CHECK_STR(P("\xFF@example.com"), "!localpart:bad-utf8");
    CHECK_STR(P("\xC0\xAF@example.com"), "!localpart:bad-utf8");           /* overlong '/' */
    CHECK_STR(P("\xED\xA0\x80@example.com"), "!localpart:bad-utf8");       /* a surrogate */
    CHECK_STR(P("a@example.com/\xE2\x82"), "!resourcepart:bad-utf8");      /* truncated */
    CHECK_STR(P("a@ex\xF4\x90\x80\x80.com"), "!domainpart:bad-utf8");      /* > U+10FFFF */
}

static void test_contextual_rules(void)
{
    /* RFC 5892 Appendix A, applied by both PRECIS classes. */
    CHECK_STR(P("l\u00B7l@example.com"), "l\u00B7l@example.com");        /* A.3 */
    CHECK_STR(P("a\u00B7b@example.com"), "!localpart:context");
    CHECK_STR(P("example.com/a\u00B7b"), "!resourcepart:context");
    CHECK_STR(P("\u0375\u03B1@example.com"), "\u0375\u03B1@example.com");  /* A.4 */
    CHECK_STR(P("\u0375a@example.com"), "!localpart:context");
    CHECK_STR(P("\u05D0\u05F3@example.com"), "\u05D0\u05F3@example.com");  /* A.5 */
    CHECK_STR(P("\u05F3\u05D0@example.com"), "!localpart:context");
    CHECK_STR(P("\u30AB\u30FBa@example.com"), "\u30AB\u30FBa@example.com"); /* A.7 */
    CHECK_STR(P("a\u30FBb@example.com"), "!localpart:context");
    /* A.2: ZWJ only after a virama; A.1: ZWNJ after a virama or between joining letters. */
    CHECK_STR(P("\u0915\u094D\u200D\u0937@example.com"), "\u0915\u094D\u200D\u0937@example.com");
    CHECK_STR(P("a\u200Db@example.com"), "!localpart:context");
    CHECK_STR(P("example.com/a\u200Db"), "!resourcepart:context");
    CHECK_STR(P("\u0915\u094D\u200C\u0937@example.com"), "\u0915\u094D\u200C\u0937@example.com");
    CHECK_STR(P("\u0628\u200C\u0628@example.com"), "\u0628\u200C\u0628@example.com");
    /* Transparent marks (fatha) may sit on either side of the ZWNJ. */
    CHECK_STR(P("\u0628\u064E\u200C\u064E\u0628@example.com"),
              "\u0628\u064E\u200C\u064E\u0628@example.com");
    CHECK_STR(P("a\u200Cb@example.com"), "!localpart:context");
    /* A.8/A.9: Arabic-Indic and extended Arabic-Indic digits do not mix. */
    CHECK_STR(P("\u0628\u0661\u0662@example.com"), "\u0628\u0661\u0662@example.com");
    CHECK_STR(P("\u0628\u0661\u06F2@example.com"), "!localpart:context");
}

static void test_bidi_rule(void)
{
    /* RFC 5893 §2 for localparts with an R, AL or AN character (RFC 8265 §3.3.2 rule 6). */
    CHECK_STR(P("\u05D0\u05D1@example.com"), "\u05D0\u05D1@example.com");
    CHECK_STR(P("\u05D0\u05D11@example.com"), "\u05D0\u05D11@example.com");   /* ends in EN */
    CHECK_STR(P("a\u05D0\u05D1@example.com"), "!localpart:bidi");     /* LTR label with R */
    CHECK_STR(P("\u05D0\u05D1a@example.com"), "!localpart:bidi");     /* RTL label with L */
    CHECK_STR(P("\u05D0\u05D11\u0661@example.com"), "!localpart:bidi");   /* EN and AN */
    CHECK_STR(P("\u05D0\u05D1-@example.com"), "!localpart:bidi");     /* ends in ES */
    CHECK_STR(P("1\u05D0@example.com"), "!localpart:bidi");           /* starts with EN */
    CHECK_STR(P("\u05D0\u05B0@example.com"), "\u05D0\u05B0@example.com");   /* trailing NSM */
    /* OpaqueString has no directionality rule. */
    CHECK_STR(P("example.com/a\u05D0\u05D1"), "example.com/a\u05D0\u05D1");
}

/* Encodes cp as UTF-8 (the test's own encoder, so it does not lean on the module's). */
static size_t utf8(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Every Unicode scalar value, alone and as "a<cp>b", as a localpart and as a resourcepart:
 * each is rejected for a reason other than instability, or prepares to a fixed point
 * (RFC 8264 §7). Domainparts go through libidn2 and are left to the fuzzer.
 */
static void test_every_code_point(void)
{
    typedef ssize_t (*prep_fn)(const char *, size_t, char *, size_t, xmpp_jid_reason_t *);
    static const prep_fn preps[] = { xmpp_jid_prep_localpart, xmpp_jid_prep_resourcepart };
    unsigned accepted[2] = { 0, 0 }, broken = 0;
    for (unsigned cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        for (int wrap = 0; wrap < 2; wrap++) {
            char in[8], out[XMPP_JID_PART_BUF_BYTES], again[XMPP_JID_PART_BUF_BYTES];
            size_t n = 0;
            if (wrap)
                in[n++] = 'a';
            n += utf8(cp, in + n);
            if (wrap)
                in[n++] = 'b';
            for (int p = 0; p < 2; p++) {
                xmpp_jid_reason_t why;
                ssize_t r = preps[p](in, n, out, sizeof(out), &why);
                if (r < 0) {
                    broken += why == XMPP_JID_UNSTABLE || why == XMPP_JID_OK;
                    continue;
                }
                accepted[p]++;
                ssize_t r2 = preps[p](out, (size_t)r, again, sizeof(again), &why);
                broken += r2 != r || memcmp(out, again, (size_t)r) != 0;
            }
        }
    }
    CHECK_EQ(broken, 0);
    /* Sanity: FreeformClass is the larger class, and both allow the letters of most scripts. */
    CHECK(accepted[0] > 100000);
    CHECK(accepted[1] > accepted[0]);
}

static void test_separators(void)
{
    CHECK_STR(P("a@b/c@d/e"), "a@b/c@d/e");
    CHECK_STR(P("juliet@example.com/foo/bar"), "juliet@example.com/foo/bar");
    CHECK_STR(P("server/resource@foo"), "server/resource@foo");
    /* RFC 7622 §3.2: the localpart ends at the first '@'; the rest is a bad domainpart. */
    CHECK_STR(P("a@b@example.com"), "!domainpart:idna");
    /* Empty parts whose separator is present. */
    CHECK_STR(P(""), "!domainpart:empty");
    CHECK_STR(P("@"), "!localpart:empty");
    CHECK_STR(P("/"), "!domainpart:empty");
    CHECK_STR(P("@/"), "!localpart:empty");
    CHECK_STR(P("@example.com"), "!localpart:empty");
    CHECK_STR(P("example.com/"), "!resourcepart:empty");
    CHECK_STR(P("juliet@example.com/"), "!resourcepart:empty");
    CHECK_STR(P("juliet@/r"), "!domainpart:empty");
    CHECK_STR(P("juliet@./r"), "!domainpart:empty");
    /* The parts and accessors of one JID. */
    xmpp_jid_t j;
    REQUIRE(xmpp_jid_parse("Romeo@Montague.LIT/orchard@x", 28, &j) == 0);
    CHECK(xmpp_jid_has_local(&j));
    CHECK(xmpp_jid_has_resource(&j));
    CHECK(str_eq_cstr(xmpp_jid_local(&j), "romeo"));
    CHECK(str_eq_cstr(xmpp_jid_domain(&j), "montague.lit"));
    CHECK(str_eq_cstr(xmpp_jid_resource(&j), "orchard@x"));
    CHECK(str_eq_cstr(xmpp_jid_bare(&j), "romeo@montague.lit"));
    CHECK(str_eq_cstr(xmpp_jid_full(&j), "romeo@montague.lit/orchard@x"));
    REQUIRE(xmpp_jid_parse("montague.lit", 12, &j) == 0);
    CHECK(!xmpp_jid_has_local(&j));
    CHECK(!xmpp_jid_has_resource(&j));
    CHECK(str_eq_cstr(xmpp_jid_bare(&j), "montague.lit"));
    CHECK_EQ(xmpp_jid_resource(&j).len, 0);
}

static char *repeat(const char *unit, size_t times, const char *suffix)
{
    size_t u = strlen(unit), s = strlen(suffix);
    char *b = malloc(u * times + s + 1);
    REQUIRE(b != NULL);
    for (size_t i = 0; i < times; i++)
        memcpy(b + i * u, unit, u);
    memcpy(b + u * times, suffix, s + 1);
    return b;
}

static void check_len(const char *unit, size_t times, const char *suffix, bool ok,
                      const char *want_err)
{
    char *in = repeat(unit, times, suffix);
    const char *got = P(in);
    if (ok)
        CHECK(got[0] != '!');
    else
        CHECK_STR(got, want_err);
    free(in);
}

static void test_lengths(void)
{
    /* RFC 7622: 1023 octets per part after preparation, counted in octets. */
    check_len("a", 1023, "@example.com", true, NULL);
    check_len("a", 1024, "@example.com", false, "!localpart:too-long");
    check_len("\u03C0", 511, "a@example.com", true, NULL);
    check_len("\u03C0", 512, "@example.com", false, "!localpart:too-long");
    /* Measured after preparation: 511 decomposed é (3 octets each) compose to 1022. */
    check_len("e\u0301", 511, "a@example.com", true, NULL);
    check_len("e\u0301", 512, "@example.com", false, "!localpart:too-long");
    /* 1023 fullwidth letters (3069 octets in) are 1023 ASCII octets out. */
    check_len("\uFF41", 1023, "@example.com", true, NULL);
    check_len("\uFF41", 1024, "@example.com", false, "!localpart:too-long");
    check_len("a", 64, "", false, "!domainpart:idna");        /* DNS: 63 octets a label */
    char *r = repeat("a", 1023, "");
    char in[1100];
    snprintf(in, sizeof(in), "example.com/%s", r);
    CHECK(P(in)[0] != '!');
    snprintf(in, sizeof(in), "example.com/%sb", r);
    CHECK_STR(P(in), "!resourcepart:too-long");
    free(r);
    char *res = repeat("\U0001F600", 255, "abc");
    char *jid = repeat("x/", 1, res);
    CHECK(P(jid)[0] != '!');
    free(jid);
    free(res);
    /* A long JID: two 1023-octet parts around the longest name DNS allows. */
    char *l = repeat("a", 1023, "@");
    char *d = repeat("abcdefghi.", 25, "abc");                 /* 253 octets */
    char *rr = repeat("R", 1023, "");
    size_t n = strlen(l) + strlen(d) + 1 + strlen(rr);
    char *full = malloc(n + 1);
    REQUIRE(full != NULL);
    snprintf(full, n + 1, "%s%s/%s", l, d, rr);
    CHECK_EQ(strlen(P(full)), n);
    free(full);
    free(rr);
    free(d);
    free(l);
}

static void test_domain_ascii(void)
{
    CHECK_STR(P("user@CaSe-InSeNsItIvE"), "user@case-insensitive");
    CHECK_STR(P("example.com."), "example.com");               /* RFC 7622 §3.2 */
    CHECK_STR(P("juliet@example.com./r"), "juliet@example.com/r");
    CHECK(same("juliet@example.com.", "juliet@EXAMPLE.com"));
    CHECK_STR(P("example.com.."), "!domainpart:idna");
    CHECK_STR(P("."), "!domainpart:empty");
    CHECK_STR(P("a..b"), "!domainpart:idna");
    CHECK_STR(P(".example"), "!domainpart:idna");
    CHECK_STR(P("-a.example"), "!domainpart:idna");
    CHECK_STR(P("a-.example"), "!domainpart:idna");
    CHECK_STR(P("ab--cd.example"), "!domainpart:idna");       /* reserved R-LDH label */
    CHECK_STR(P("a--b.example"), "a--b.example");
    CHECK_STR(P("_xmpp.example"), "!domainpart:idna");         /* STD3: not "xmpp.example" */
    CHECK_STR(P("a b.example"), "!domainpart:idna");
    CHECK_STR(P("example.com:5222"), "!domainpart:idna");
    CHECK_STR(P("localhost"), "localhost");
    char *l63 = repeat("a", 63, ".example"), *l64 = repeat("a", 64, ".example");
    CHECK_STR(P(l63), l63);
    CHECK_STR(P(l64), "!domainpart:idna");
    free(l64);
    free(l63);
    char *d253 = repeat("abcdefghi.", 25, "abc"), *d254 = repeat("abcdefghi.", 25, "abcd");
    CHECK_STR(P(d253), d253);
    CHECK_STR(P(d254), "!domainpart:idna");
    free(d254);
    free(d253);
}

static void test_domain_ip(void)
{
    CHECK_STR(P("user@192.168.1.1"), "user@192.168.1.1");
    CHECK_STR(P("user@192.168.1.1./r"), "user@192.168.1.1/r");
    CHECK_STR(P("user@01.2.3.4"), "!domainpart:ip-literal");
    CHECK_STR(P("user@1.2.3"), "!domainpart:ip-literal");
    CHECK_STR(P("user@256.1.1.1"), "!domainpart:ip-literal");
    CHECK_STR(P("user@1.2.3.4.5"), "!domainpart:ip-literal");
    CHECK_STR(P("1.2.3.example"), "1.2.3.example");
    /* IPv6 literals get their RFC 5952 text: one address, one spelling. */
    CHECK_STR(P("user@[2001:DB8::1]/r"), "user@[2001:db8::1]/r");
    CHECK(same("user@[2001:0db8:0:0:0:0:0:1]", "user@[2001:db8::1]"));
    CHECK_STR(P("[::1]"), "[::1]");
    CHECK_STR(P("[::ffff:192.0.2.1]"), "[::ffff:192.0.2.1]");
    CHECK_STR(P("[::1%25eth0]"), "!domainpart:ip-literal");
    CHECK_STR(P("[::gg]"), "!domainpart:ip-literal");
    CHECK_STR(P("[1.2.3.4]"), "!domainpart:ip-literal");
    CHECK_STR(P("[v1.example]"), "!domainpart:ip-literal");   /* IPvFuture */
    CHECK_STR(P("[::1"), "!domainpart:ip-literal");
    CHECK_STR(P("[]"), "!domainpart:ip-literal");
    CHECK_STR(P("::1"), "!domainpart:idna");
    CHECK_STR(P("[::1]:5222"), "!domainpart:ip-literal");
}

static void test_domain_idn(void)
{
    /* U-labels are canonical (RFC 7622 §3.2.1); the A-label form is the same domainpart. */
    CHECK_STR(P("\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A"), "\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A");
    CHECK_STR(P("\u7528\u6237@xn--fsqu00a.xn--4rr70v"), "\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A");
    CHECK(same("\u7528\u6237@\u4F8B\u5B50.\u5E7F\u544A", "\u7528\u6237@XN--FSQU00A.xn--4rr70v"));
    CHECK_STR(P("XN--BCHER-KVA.example"), "b\u00FCcher.example");
    CHECK_STR(P("BU\u0308CHER.example"), "b\u00FCcher.example");
    /* UTS #46 width mapping, and the ideographic full stop as a label separator. */
    CHECK_STR(P("\uFF25\uFF38\uFF21\uFF2D\uFF30\uFF2C\uFF25\u3002com"), "example.com");
    /* Non-transitional: ß stays ß. */
    CHECK_STR(P("fa\u00DF.de"), "fa\u00DF.de");
    CHECK_STR(P("xn--fa-hia.de"), "fa\u00DF.de");
    CHECK(!same("fa\u00DF.de", "fass.de"));
    CHECK_STR(P("l\u00B7l.cat"), "l\u00B7l.cat");
    CHECK_STR(P("a\u00B7b.example"), "!domainpart:context");
    CHECK_STR(P("\u30AB\u30FBa.example"), "\u30AB\u30FBa.example");
    CHECK_STR(P("a\u30FBb.example"), "!domainpart:context");
    CHECK_STR(P("a\u200Db.example"), "!domainpart:idna");      /* libidn2: CONTEXTJ */
    /* Mapping to something STD3 refuses, or to an empty or trailing label. */
    CHECK_STR(P("a\uFF3Fb.example"), "!domainpart:idna");      /* fullwidth low line */
    CHECK_STR(P("a\uFF20b.example"), "!domainpart:idna");
    CHECK_STR(P("a\u2260b.com"), "!domainpart:disallowed");    /* UTS #46 valid w/o STD3 */
    CHECK_STR(P("\u00AD.example"), "!domainpart:idna");
    CHECK_STR(P("example.com\u3002"), "!domainpart:idna");
    CHECK_STR(P("xn--.example"), "!domainpart:idna");
    CHECK_STR(P("xn--abc-.example"), "!domainpart:idna");
    CHECK_STR(P("\U0001F600.example"), "!domainpart:idna");
    CHECK_STR(P("\u0301a.example"), "!domainpart:idna");       /* leading combining mark */
    /* RFC 5893 §2 over every label of a domain name with an RTL label. */
    CHECK_STR(P("a123.\u05D0\u05D1.example"), "a123.\u05D0\u05D1.example");
    CHECK_STR(P("123.\u05D0\u05D1.example"), "!domainpart:bidi");
    CHECK_STR(P("\u05D0\u05D11\u0661.example"), "!domainpart:bidi");
    CHECK_STR(P("xn--4dbc.example"), "\u05D0\u05D1.example");
    /* The A-label form for DNS. */
    xmpp_jid_t j;
    char a[256];
    REQUIRE(xmpp_jid_parse("x@\u4F8B\u5B50.\u5E7F\u544A", 15, &j) == 0);
    CHECK_EQ(xmpp_jid_domain_to_ascii(xmpp_jid_domain(&j), a, sizeof(a)), 22);
    CHECK_STR(a, "xn--fsqu00a.xn--4rr70v");
    CHECK_EQ(xmpp_jid_domain_to_ascii(xmpp_jid_domain(&j), a, 22), -ENOSPC);
    CHECK_EQ(xmpp_jid_domain_to_ascii(STR_LIT("example.com"), a, sizeof(a)), 11);
    CHECK_STR(a, "example.com");
    CHECK_EQ(xmpp_jid_domain_to_ascii(STR_LIT("[::1]"), a, sizeof(a)), 5);
}

static void test_domain_idn_memo(void)
{
    /*
     * IDN results are memoised per thread; more distinct domains than slots, parsed twice
     * in a row and interleaved with failures, must always give the same answers.
     */
    char in[64], first[24][64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 24; i++) {
            snprintf(in, sizeof(in), "u@D%d\u00DC.example/r", i);
            const char *got = P(in);
            if (round == 0)
                snprintf(first[i], sizeof(first[i]), "%s", got);
            else
                CHECK_STR(got, first[i]);
            snprintf(in, sizeof(in), "u@d%d\u00FC.example/r", i);
            CHECK_STR(P(in), first[i]);
            CHECK_STR(P("u@a\u00B7b.example"), "!domainpart:context");
        }
    }
    CHECK_STR(first[7], "u@d7\u00FC.example/r");
}

static void test_prep_single_parts(void)
{
    char out[XMPP_JID_PART_BUF_BYTES];
    xmpp_jid_reason_t why;
    /* A SASL simple user name is a localpart. */
    CHECK_EQ(xmpp_jid_prep_localpart("Juliet", 6, out, sizeof(out), &why), 6);
    CHECK_STR(out, "juliet");
    CHECK_EQ(why, XMPP_JID_OK);
    CHECK_EQ(xmpp_jid_prep_localpart("\uFF2A", 3, out, sizeof(out), &why), 1);
    CHECK_STR(out, "j");
    CHECK_EQ(xmpp_jid_prep_localpart("a@b", 3, out, sizeof(out), &why), -EINVAL);
    CHECK_EQ(why, XMPP_JID_PROHIBITED);
    CHECK_STR(out, "");
    CHECK_EQ(xmpp_jid_prep_localpart("", 0, out, sizeof(out), &why), -EINVAL);
    CHECK_EQ(why, XMPP_JID_EMPTY);
    CHECK_EQ(xmpp_jid_prep_localpart(NULL, 0, out, sizeof(out), NULL), -EINVAL);
    /* A bound resource keeps its case and may hold separators. */
    CHECK_EQ(xmpp_jid_prep_resourcepart("Balcony/2@x", 11, out, sizeof(out), &why), 11);
    CHECK_STR(out, "Balcony/2@x");
    CHECK_EQ(xmpp_jid_prep_domainpart("Example.COM.", 12, out, sizeof(out), &why), 11);
    CHECK_STR(out, "example.com");
    CHECK_EQ(xmpp_jid_prep_domainpart("a@b", 3, out, sizeof(out), &why), -EINVAL);
    CHECK_EQ(why, XMPP_JID_IDNA);
}

static void test_build_and_format(void)
{
    xmpp_jid_t j, k;
    REQUIRE(xmpp_jid_from_parts("Juliet", 6, "Capulet.LIT", 11, NULL, 0, &j) == 0);
    CHECK_STR(j.buf, "juliet@capulet.lit");
    CHECK(!xmpp_jid_has_resource(&j));
    REQUIRE(xmpp_jid_set_resource(&j, "Balcony", 7) == 0);
    CHECK_STR(j.buf, "juliet@capulet.lit/Balcony");
    /* A failed set keeps the old resource and says why. */
    CHECK_EQ(xmpp_jid_set_resource(&j, "a\tb", 3), -EINVAL);
    xmpp_jid_part_t part;
    CHECK_EQ(xmpp_jid_error(&j, &part), XMPP_JID_DISALLOWED);
    CHECK_EQ(part, XMPP_JID_PART_RESOURCE);
    CHECK_STR(j.buf, "juliet@capulet.lit/Balcony");
    REQUIRE(xmpp_jid_set_resource(&j, "\u00C9t\u00E9", 5) == 0);
    CHECK_STR(j.buf, "juliet@capulet.lit/\u00C9t\u00E9");
    CHECK_EQ(xmpp_jid_error(&j, NULL), XMPP_JID_OK);

    REQUIRE(xmpp_jid_parse("JULIET@capulet.lit/other", 24, &k) == 0);
    CHECK(xmpp_jid_bare_equal(&j, &k));
    CHECK(!xmpp_jid_equal(&j, &k));
    xmpp_jid_strip_resource(&k);
    CHECK_STR(k.buf, "juliet@capulet.lit");
    CHECK(xmpp_jid_bare_equal(&j, &k));
    /* A copy by value stays valid: the struct holds no pointers. */
    xmpp_jid_t copy = j;
    memset(&j, 0xAA, sizeof(j));
    CHECK(str_eq_cstr(xmpp_jid_resource(&copy), "\u00C9t\u00E9"));
    CHECK(str_eq_cstr(xmpp_jid_bare(&copy), "juliet@capulet.lit"));

    char small[8], big[64];
    CHECK_EQ(xmpp_jid_format_bare(&copy, big, sizeof(big)), 18);
    CHECK_STR(big, "juliet@capulet.lit");
    CHECK_EQ(xmpp_jid_format_full(&copy, big, sizeof(big)), 24);
    CHECK_STR(big, "juliet@capulet.lit/\u00C9t\u00E9");
    CHECK_EQ(xmpp_jid_format_full(&copy, small, sizeof(small)), -ENOSPC);
    CHECK_STR(small, "");
    CHECK_EQ(xmpp_jid_format_bare(&copy, big, 18), -ENOSPC);

    CHECK_EQ(xmpp_jid_from_parts("", 0, "example.com", 11, NULL, 0, &j), -EINVAL);
    CHECK_EQ(xmpp_jid_error(&j, &part), XMPP_JID_EMPTY);
    CHECK_EQ(part, XMPP_JID_PART_LOCAL);
    CHECK_EQ(xmpp_jid_from_parts(NULL, 0, NULL, 0, "r", 1, &j), -EINVAL);
    CHECK_EQ(xmpp_jid_error(&j, &part), XMPP_JID_EMPTY);
    CHECK_EQ(part, XMPP_JID_PART_DOMAIN);
    REQUIRE(xmpp_jid_from_parts(NULL, 0, "example.com", 11, "a@b/c", 5, &j) == 0);
    CHECK_STR(j.buf, "example.com/a@b/c");
    CHECK_STR(xmpp_jid_reason_name(XMPP_JID_BIDI), "bidi");
    CHECK_STR(xmpp_jid_reason_name((xmpp_jid_reason_t)99), "?");
}

int main(void)
{
    T_RUN(test_rfc7622_valid_examples);
    T_RUN(test_rfc7622_invalid_examples);
    T_RUN(test_case_mapping);
    T_RUN(test_width_and_compat);
    T_RUN(test_normalization);
    T_RUN(test_disallowed_code_points);
    T_RUN(test_bad_utf8);
    T_RUN(test_contextual_rules);
    T_RUN(test_bidi_rule);
    T_RUN(test_every_code_point);
    T_RUN(test_separators);
    T_RUN(test_lengths);
    T_RUN(test_domain_ascii);
    T_RUN(test_domain_ip);
    T_RUN(test_domain_idn);
    T_RUN(test_domain_idn_memo);
    T_RUN(test_prep_single_parts);
    T_RUN(test_build_and_format);
    T_DONE();
}
