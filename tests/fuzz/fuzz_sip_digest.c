/*
 * libFuzzer target for SIP Digest authentication (protocols/sip/sip_digest.c).
 *
 * Input: one control byte, then the bytes under test.
 *   (ctl & 3) selects what the bytes are:
 *     0  an Authorization value for sip_digest_creds_parse; what parses is written back,
 *        parsed again, verified and, if verified, run through the replay guard
 *     1  a WWW-Authenticate value for sip_digest_challenge_parse; a usable challenge is
 *        answered by the client and the answer parsed and recomputed
 *     2  an HA1 blob for sip_digest_ha1_decode
 *     3  "user NUL realm NUL password": a whole exchange, server challenge to client answer
 *        to server verification, with those strings
 *   bit 2  the server accepts responses without qop (accept_no_qop)
 *   bit 3  the client prefers auth-int
 * The scratch buffer is exactly as long as the value, the documented bound, and on the heap,
 * so that ASan sees any write past it.
 *
 * Besides crashes and sanitizer reports, these are findings (trap):
 *   - a return value outside the documented set (-ENOSPC with a large enough scratch);
 *   - a parsed slice outside the input and the scratch buffer, longer than the field bound,
 *     or holding a control character; a response that is not hex of the algorithm's length;
 *     qop without cnonce and nc;
 *   - parsed credentials that do not write back, or whose written form parses to other
 *     fields;
 *   - a client answer to a usable challenge that fails, does not parse, or whose response is
 *     not the one recomputed from it;
 *   - a decoded blob that does not encode to the same bytes;
 *   - a whole exchange with valid strings that does not verify, or whose replay the guard
 *     lets through.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/sip/sip_digest.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_sip_digest: " __VA_ARGS__);                           \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

/* Room for anything written from a parsed value: every byte escaped, plus names. */
#define OUT_BYTES (3 * SIP_DIGEST_VALUE_MAX_BYTES)

static char out1[OUT_BYTES], out2[OUT_BYTES], scratch2[OUT_BYTES];

static sip_digest_conf_t conf = {
    .nonce_key = "fuzz fuzz fuzz fuzz fuzz fuzz !!",
    .nonce_lifetime_s = 300,
    .algs = SIP_DIGEST_ALGS_ALL,
    .offer_auth_int = true,
};

#define NOW 1700000000u

static bool inside(str_t s, const char *base, size_t len)
{
    return s.len == 0 || (s.ptr >= base && s.ptr + s.len <= base + len);
}

/* A parsed string: inside the value or the scratch buffer, bounded, no control bytes. Reading
 * every byte lets ASan catch a bad slice. */
static void check_field(str_t s, const char *in, size_t in_len, const char *scr, size_t scr_len)
{
    if (!inside(s, in, in_len) && !inside(s, scr, scr_len))
        FAIL("slice outside input and scratch");
    if (s.len > SIP_DIGEST_FIELD_MAX_BYTES)
        FAIL("field of %zu bytes", s.len);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            FAIL("control byte in a field");
    }
}

static bool hex_str(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!strchr("0123456789abcdefABCDEF", s.ptr[i]) || s.ptr[i] == '\0')
            return false;
    return true;
}

static bool token_str(str_t s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr("-.!%*_+`'~", c))))
            return false;
    }
    return true;
}

static void check_creds(const sip_digest_creds_t *c, const char *in, size_t in_len,
                        const char *scr, size_t scr_len)
{
    const str_t *f[] = { &c->username, &c->realm, &c->nonce, &c->uri, &c->response,
                         &c->cnonce, &c->opaque, &c->algorithm, &c->qop_name, &c->nc_text };
    for (size_t i = 0; i < ARRAY_LEN(f); i++)
        check_field(*f[i], in, in_len, scr, scr_len);
    if (c->username.len == 0 || c->nonce.len == 0 || c->uri.len == 0 || !hex_str(c->response))
        FAIL("required field empty or response not hex");
    if (sip_digest_alg_supported(c->alg) &&
        c->response.len != 2 * sip_digest_alg_len(c->alg))
        FAIL("response length %zu for %s", c->response.len, sip_digest_alg_name(c->alg));
    if ((c->qop == SIP_DIGEST_QOP_NONE) != (c->nc_text.len == 0) ||
        (c->qop != SIP_DIGEST_QOP_NONE && c->nc_text.len != 8))
        FAIL("qop and nc disagree");
}

static void same_str(str_t a, str_t b, const char *what)
{
    if (!str_eq(a, b))
        FAIL("%s changed in the round trip", what);
}

/* Mode 0. */
static void fuzz_creds(const char *d, size_t n, char *scratch, bool no_qop)
{
    sip_digest_creds_t c, c2;
    int r = sip_digest_creds_parse((str_t){ d, n }, &c, scratch, n);
    if (r != 1) {
        if (r != 0 && r != -EBADMSG && r != -EMSGSIZE)
            FAIL("creds_parse returned %d", r);
        return;
    }
    check_creds(&c, d, n, scratch, n);

    size_t len = 0;
    r = sip_digest_creds_write(&c, out1, sizeof(out1), &len);
    if (r != 0) {
        bool may_fail = (!sip_digest_alg_supported(c.alg) && !token_str(c.algorithm)) ||
                        (c.qop == SIP_DIGEST_QOP_OTHER && !token_str(c.qop_name));
        if (r != -EINVAL || !may_fail)
            FAIL("creds_write returned %d", r);
    } else {
        if (len != strlen(out1))
            FAIL("written length");
        r = sip_digest_creds_parse((str_t){ out1, len }, &c2, scratch2, sizeof(scratch2));
        if (r == -EMSGSIZE && len > SIP_DIGEST_VALUE_MAX_BYTES)
            goto verify;
        if (r != 1)
            FAIL("written credentials do not parse (%d): %s", r, out1);
        check_creds(&c2, out1, len, scratch2, sizeof(scratch2));
        same_str(c.username, c2.username, "username");
        same_str(c.realm, c2.realm, "realm");
        same_str(c.nonce, c2.nonce, "nonce");
        same_str(c.uri, c2.uri, "uri");
        same_str(c.response, c2.response, "response");
        same_str(c.cnonce, c2.cnonce, "cnonce");
        same_str(c.opaque, c2.opaque, "opaque");
        same_str(c.nc_text, c2.nc_text, "nc");
        if (c.alg != c2.alg || c.qop != c2.qop || c.nc != c2.nc || c.userhash != c2.userhash)
            FAIL("algorithm, qop, nc or userhash changed in the round trip");
    }

verify:;
    /* The nonce cannot be authentic, so nothing verifies; the point is to run every check
     * on hostile fields. Each HA1 family is tried, and a missing account. */
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    size_t hl = 0;
    conf.accept_no_qop = no_qop;
    sip_digest_request_t req = {
        .realm = c.realm, .method = STR_LIT("REGISTER"), .request_uri = c.uri,
        .body = STR_LIT("body"), .now_s = NOW,
    };
    for (int a = SIP_DIGEST_MD5; a <= SIP_DIGEST_SHA256; a += 2) {
        if (sip_digest_ha1((sip_digest_alg_t)a, STR_LIT("alice"), STR_LIT("example.com"),
                           STR_LIT("secret"), ha1, &hl) != 0)
            FAIL("ha1");
        sip_digest_result_t v = sip_digest_verify(&conf, &req, &c, ha1, hl,
                                                  (sip_digest_alg_t)a);
        if (v > SIP_DIGEST_WRONG_REALM)
            FAIL("verify returned %d", (int)v);
        if (v == SIP_DIGEST_OK) {
            sip_digest_nc_guard_t g;
            sip_digest_nc_guard_init(&g);
            if (sip_digest_nc_guard_check(&g, &conf, &c, NOW) != 0)
                FAIL("guard refused a first use");
        }
    }
    if (sip_digest_verify(&conf, &req, &c, NULL, 0, SIP_DIGEST_MD5) == SIP_DIGEST_OK)
        FAIL("verified without an account");
    /* Our realm and no uri check: the realm comparison decides before the nonce does. */
    req.realm = STR_LIT("example.com");
    req.request_uri = (str_t){ 0 };
    sip_digest_result_t v = sip_digest_verify(&conf, &req, &c, ha1, hl, SIP_DIGEST_SHA256);
    if (!str_eq(c.realm, req.realm) && v != SIP_DIGEST_WRONG_REALM && v != SIP_DIGEST_MALFORMED)
        FAIL("credentials for realm %.*s verified as %s", (int)c.realm.len, c.realm.ptr,
             sip_digest_result_name(v));
}

/* Mode 1. */
static void fuzz_challenge(const char *d, size_t n, char *scratch, bool auth_int)
{
    sip_digest_challenge_t ch;
    sip_digest_creds_t c;
    int r = sip_digest_challenge_parse((str_t){ d, n }, &ch, scratch, n);
    if (r != 1) {
        if (r != 0 && r != -EBADMSG && r != -EMSGSIZE)
            FAIL("challenge_parse returned %d", r);
        return;
    }
    const str_t *f[] = { &ch.realm, &ch.nonce, &ch.opaque, &ch.algorithm, &ch.domain };
    for (size_t i = 0; i < ARRAY_LEN(f); i++)
        check_field(*f[i], d, n, scratch, n);
    if (ch.nonce.len == 0)
        FAIL("empty nonce");
    if (!sip_digest_challenge_usable(&ch))
        return;

    sip_digest_client_req_t req = {
        .username = STR_LIT("alice"), .password = STR_LIT("secret"),
        .method = STR_LIT("SUBSCRIBE"), .uri = STR_LIT("sip:bob@example.com"),
        .body = STR_LIT("<x/>"), .prefer_auth_int = auth_int, .nc = 7,
        .cnonce = STR_LIT("0a4f113b"),
    };
    size_t len = 0;
    r = sip_digest_respond(&ch, &req, out1, sizeof(out1), &len);
    if (r != 0)
        FAIL("respond returned %d", r);
    r = sip_digest_creds_parse((str_t){ out1, len }, &c, scratch2, sizeof(scratch2));
    if (r == -EMSGSIZE && len > SIP_DIGEST_VALUE_MAX_BYTES)
        return;
    if (r != 1)
        FAIL("our answer does not parse (%d): %s", r, out1);
    check_creds(&c, out1, len, scratch2, sizeof(scratch2));
    same_str(c.realm, ch.realm, "realm");
    same_str(c.nonce, ch.nonce, "nonce");
    same_str(c.opaque, ch.opaque, "opaque");
    if (c.alg != ch.alg || c.qop == SIP_DIGEST_QOP_OTHER || (c.qop != 0) != ch.has_qop ||
        (c.qop != 0 && c.nc != 7))
        FAIL("answer disagrees with the challenge");

    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    size_t hl = 0;
    char hex[SIP_DIGEST_HEX_MAX_BYTES + 1];
    if (sip_digest_ha1(ch.alg, req.username, ch.realm, req.password, ha1, &hl) != 0)
        FAIL("ha1 for a parsed realm");
    sip_digest_response_hex(&c, req.method, req.body, ha1, hl, hex);
    if (strlen(hex) != c.response.len || memcmp(hex, c.response.ptr, c.response.len) != 0)
        FAIL("response does not recompute");
}

/* Mode 2. */
static void fuzz_blob(const uint8_t *d, size_t n)
{
    uint8_t ha1[SIP_DIGEST_MAX_BYTES], again[SIP_DIGEST_HA1_BLOB_MAX_BYTES];
    sip_digest_alg_t alg;
    size_t len = 0, blen = 0;
    if (sip_digest_ha1_decode(d, n, &alg, ha1, &len) != 0)
        return;
    if (sip_digest_ha1_encode(alg, ha1, len, again, sizeof(again), &blen) != 0 || blen != n ||
        memcmp(again, d, n) != 0)
        FAIL("blob does not encode back");
}

/* Mode 3: user NUL realm NUL password. */
static void fuzz_exchange(const char *d, size_t n, bool auth_int)
{
    const char *end = d + n, *z1 = memchr(d, '\0', n);
    if (!z1)
        return;
    const char *z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1));
    if (!z2)
        return;
    str_t user = { d, (size_t)(z1 - d) }, realm = { z1 + 1, (size_t)(z2 - z1 - 1) };
    str_t password = { z2 + 1, (size_t)(end - z2 - 1) };

    conf.accept_no_qop = false;
    for (size_t i = 0; i < 4; i++) {
        sip_digest_alg_t alg = (sip_digest_alg_t)(SIP_DIGEST_MD5 + i);
        uint8_t ha1[SIP_DIGEST_MAX_BYTES];
        size_t hl = 0, len = 0;
        if (sip_digest_ha1(alg, user, realm, password, ha1, &hl) != 0)
            return;
        int r = sip_digest_challenge(&conf, realm, NOW, alg, false, out1, sizeof(out1), &len);
        if (r == -EINVAL)
            return;
        if (r != 0)
            FAIL("challenge returned %d", r);
        sip_digest_challenge_t ch;
        r = sip_digest_challenge_parse((str_t){ out1, len }, &ch, scratch2, sizeof(scratch2));
        if (r == -EMSGSIZE && len > SIP_DIGEST_VALUE_MAX_BYTES)
            return;
        if (r != 1 || !str_eq(ch.realm, realm) || ch.alg != alg)
            FAIL("our challenge does not parse back (%d): %s", r, out1);

        sip_digest_client_req_t req = {
            .username = user, .password = password, .method = STR_LIT("PUBLISH"),
            .uri = STR_LIT("sip:alice@example.com"), .body = password,
            .prefer_auth_int = auth_int,
        };
        r = sip_digest_respond(&ch, &req, out2, sizeof(out2), &len);
        if (r == -EINVAL)
            return;                 /* a control character in the username */
        if (r != 0)
            FAIL("respond returned %d", r);
        sip_digest_creds_t c;
        static char scratch3[OUT_BYTES];
        r = sip_digest_creds_parse((str_t){ out2, len }, &c, scratch3, sizeof(scratch3));
        if (r == -EMSGSIZE && len > SIP_DIGEST_VALUE_MAX_BYTES)
            return;
        if (r != 1 || !str_eq(c.username, user))
            FAIL("our answer does not parse back (%d): %s", r, out2);
        sip_digest_request_t vr = {
            .realm = realm, .method = STR_LIT("PUBLISH"),
            .request_uri = STR_LIT("sip:alice@example.com"), .body = password, .now_s = NOW,
        };
        sip_digest_result_t v = sip_digest_verify(&conf, &vr, &c, ha1, hl,
                                                  sip_digest_alg_base(alg));
        if (v != SIP_DIGEST_OK)
            FAIL("exchange did not verify: %s", sip_digest_result_name(v));
        sip_digest_nc_guard_t g;
        sip_digest_nc_guard_init(&g);
        if (sip_digest_nc_guard_check(&g, &conf, &c, NOW) != 0 ||
            sip_digest_nc_guard_check(&g, &conf, &c, NOW) != -EALREADY)
            FAIL("guard");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    char *scratch = malloc(n ? n : 1);
    if (!scratch)
        return 0;

    switch (ctl & 3) {
    case 0:
        fuzz_creds(d, n, scratch, ctl & 4);
        break;
    case 1:
        fuzz_challenge(d, n, scratch, ctl & 8);
        break;
    case 2:
        fuzz_blob(data + 1, n);
        break;
    default:
        fuzz_exchange(d, n, ctl & 8);
        break;
    }
    free(scratch);
    return 0;
}
