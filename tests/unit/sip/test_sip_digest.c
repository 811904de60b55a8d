/*
 * SIP Digest: the RFC 2617 §3.5 and RFC 7616 §3.9.1 examples byte for byte (parsing their
 * headers, recomputing their responses, and the client reproducing them from their
 * challenges with the examples' cnonces), vectors for the -sess variants, auth-int and our
 * nonce format computed independently (Python's hashlib and hmac), a REGISTER through
 * sip_msg_parse, then each clause of sip_digest.h: client -> server round trips for every
 * algorithm, stale, tampered and foreign nonces, wrong passwords and unknown users, the
 * MALFORMED and WRONG_REALM cases, malformed and oversized values, duplicate parameters, the
 * HA1 blob and the replay guard.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "protocols/sip/sip_digest.h"
#include "protocols/sip/sip_msg.h"
#include "tests/unit/t.h"

/* 2023-11-14T22:13:20Z. */
#define NOW 1700000000u

static const sip_digest_conf_t conf_all = {
    .nonce_key = "0123456789abcdef0123456789abcdef",
    .nonce_lifetime_s = 300,
    .algs = SIP_DIGEST_ALGS_ALL,
    .offer_auth_int = true,
};

static char scratch[SIP_DIGEST_VALUE_MAX_BYTES];

static int parse_creds(const char *value, sip_digest_creds_t *c)
{
    return sip_digest_creds_parse(str_from_cstr(value), c, scratch, sizeof(scratch));
}

static int parse_challenge(const char *value, sip_digest_challenge_t *ch)
{
    return sip_digest_challenge_parse(str_from_cstr(value), ch, scratch, sizeof(scratch));
}

static size_t ha1_of(sip_digest_alg_t alg, const char *user, const char *realm,
                     const char *password, uint8_t *out)
{
    size_t n = 0;
    REQUIRE(sip_digest_ha1(alg, str_from_cstr(user), str_from_cstr(realm),
                           str_from_cstr(password), out, &n) == 0);
    REQUIRE(n == sip_digest_alg_len(alg));
    return n;
}

/* ---- The RFC examples --------------------------------------------------------------- */

/* RFC 2617 §3.5, with its line folds as they arrive in a message. */
static const char rfc2617_challenge[] =
    "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n"
    " nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
    " opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
static const char rfc2617_authorization[] =
    "Digest username=\"Mufasa\",\r\n                 realm=\"testrealm@host.com\",\r\n"
    "                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
    "                 uri=\"/dir/index.html\",\r\n                 qop=auth,\r\n"
    "                 nc=00000001,\r\n                 cnonce=\"0a4f113b\",\r\n"
    "                 response=\"6629fae49393a05397450978507c4ef1\",\r\n"
    "                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

static void test_rfc2617_example(void)
{
    sip_digest_creds_t c;
    sip_digest_challenge_t ch;
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    char hex[SIP_DIGEST_HEX_MAX_BYTES + 1], out[1024];
    size_t n = 0;

    REQUIRE(parse_creds(rfc2617_authorization, &c) == 1);
    CHECK_STR(t_str(c.username), "Mufasa");
    CHECK_STR(t_str(c.realm), "testrealm@host.com");
    CHECK_STR(t_str(c.nonce), "dcd98b7102dd2f0e8b11d0f600bfb0c093");
    CHECK_STR(t_str(c.uri), "/dir/index.html");
    CHECK_STR(t_str(c.cnonce), "0a4f113b");
    CHECK_STR(t_str(c.opaque), "5ccc069c403ebaf9f0171e9517f40e41");
    CHECK_EQ(c.alg, SIP_DIGEST_MD5);            /* absent: MD5 */
    CHECK_EQ(c.algorithm.len, 0);
    CHECK_EQ(c.qop, SIP_DIGEST_QOP_AUTH);
    CHECK_EQ(c.nc, 1);
    CHECK(!c.userhash);
    /* Zero copy: the unquoted fields are slices of the value. */
    CHECK(c.username.ptr > rfc2617_authorization &&
          c.username.ptr < rfc2617_authorization + sizeof(rfc2617_authorization));

    n = ha1_of(SIP_DIGEST_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", ha1);
    sip_digest_response_hex(&c, STR_LIT("GET"), STR_LIT(""), ha1, n, hex);
    CHECK_STR(hex, "6629fae49393a05397450978507c4ef1");
    CHECK_STR(t_str(c.response), hex);

    /* The client, given the example's challenge and cnonce, sends the example's response. */
    REQUIRE(parse_challenge(rfc2617_challenge, &ch) == 1);
    CHECK_STR(t_str(ch.realm), "testrealm@host.com");
    CHECK(ch.has_qop && ch.qop_auth && ch.qop_auth_int && !ch.stale);
    CHECK_EQ(ch.alg, SIP_DIGEST_MD5);
    CHECK(sip_digest_challenge_usable(&ch));
    sip_digest_client_req_t req = {
        .username = STR_LIT("Mufasa"), .password = STR_LIT("Circle Of Life"),
        .method = STR_LIT("GET"), .uri = STR_LIT("/dir/index.html"),
        .cnonce = STR_LIT("0a4f113b"),
    };
    REQUIRE(sip_digest_respond(&ch, &req, out, sizeof(out), &n) == 0);
    CHECK_EQ(n, strlen(out));
    CHECK_STR(out, "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
                   "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
                   "response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
                   "cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", "
                   "qop=auth, nc=00000001");

    /* RFC 2069 form (no qop) of the same request, computed independently. */
    c.qop = SIP_DIGEST_QOP_NONE;
    sip_digest_response_hex(&c, STR_LIT("GET"), STR_LIT(""), ha1, 16, hex);
    CHECK_STR(hex, "670fd8c2df070c60b045671b8b24ff02");
}

static const char rfc7616_nonce[] = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
static const char rfc7616_cnonce[] = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

/* RFC 7616 §3.9.1: both challenges, both answers. */
static void rfc7616_one(sip_digest_alg_t alg, const char *challenge, const char *authorization,
                        const char *response, const char *ha1_hex)
{
    sip_digest_creds_t c;
    sip_digest_challenge_t ch;
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    char hex[SIP_DIGEST_HEX_MAX_BYTES + 1], out[1024], again[1024];
    size_t n = ha1_of(alg, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);

    {
        char h[SIP_DIGEST_HEX_MAX_BYTES + 1];
        for (size_t i = 0; i < n; i++)
            snprintf(h + 2 * i, 3, "%02x", ha1[i]);
        CHECK_STR(h, ha1_hex);
    }

    REQUIRE(parse_creds(authorization, &c) == 1);
    CHECK_EQ(c.alg, alg);
    CHECK_STR(t_str(c.cnonce), rfc7616_cnonce);
    CHECK_STR(t_str(c.nonce), rfc7616_nonce);
    sip_digest_response_hex(&c, STR_LIT("GET"), STR_LIT(""), ha1, n, hex);
    CHECK_STR(hex, response);
    CHECK_STR(t_str(c.response), response);

    REQUIRE(parse_challenge(challenge, &ch) == 1);
    CHECK_EQ(ch.alg, alg);
    CHECK(ch.qop_auth && ch.qop_auth_int);
    CHECK_STR(t_str(ch.opaque), "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS");
    sip_digest_client_req_t req = {
        .username = STR_LIT("Mufasa"), .password = STR_LIT("Circle of Life"),
        .method = STR_LIT("GET"), .uri = STR_LIT("/dir/index.html"),
        .cnonce = str_from_cstr(rfc7616_cnonce),
    };
    REQUIRE(sip_digest_respond(&ch, &req, out, sizeof(out), &n) == 0);
    sip_digest_creds_t mine;
    REQUIRE(parse_creds(out, &mine) == 1);
    CHECK_STR(t_str(mine.response), response);

    /* The same from the stored HA1 instead of the password. */
    req.password = (str_t){ 0 };
    req.ha1 = ha1;
    req.ha1_len = sip_digest_alg_len(alg);
    REQUIRE(sip_digest_respond(&ch, &req, again, sizeof(again), &n) == 0);
    CHECK_STR(again, out);
}

static void test_rfc7616_examples(void)
{
    rfc7616_one(SIP_DIGEST_SHA256,
                "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n"
                "    algorithm=SHA-256,\r\n"
                "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
                "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
                "Digest username=\"Mufasa\",\r\n    realm=\"http-auth@example.org\",\r\n"
                "    uri=\"/dir/index.html\",\r\n    algorithm=SHA-256,\r\n"
                "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
                "    nc=00000001,\r\n"
                "    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n"
                "    qop=auth,\r\n"
                "    response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
                ",\r\n    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232");
    rfc7616_one(SIP_DIGEST_MD5,
                "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n"
                "    algorithm=MD5,\r\n"
                "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
                "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
                "Digest username=\"Mufasa\",\r\n    realm=\"http-auth@example.org\",\r\n"
                "    uri=\"/dir/index.html\",\r\n    algorithm=MD5,\r\n"
                "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
                "    nc=00000001,\r\n"
                "    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n"
                "    qop=auth,\r\n    response=\"8ca523f5e9506fed4657c9700eebdbec\",\r\n"
                "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
                "8ca523f5e9506fed4657c9700eebdbec", "3d78807defe7de2157e2b0b6573a855f");
}

/* -sess over the RFC 7616 inputs: HA1' = H(HA1 ":" nonce ":" cnonce), vectors from hashlib. */
static void test_sess_vectors(void)
{
    static const struct {
        sip_digest_alg_t alg;
        const char *want;
    } v[] = {
        { SIP_DIGEST_MD5_SESS, "e783283f46242139c486a698fec7211d" },
        { SIP_DIGEST_SHA256_SESS,
          "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7" },
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        uint8_t ha1[SIP_DIGEST_MAX_BYTES], base[SIP_DIGEST_MAX_BYTES];
        char hex[SIP_DIGEST_HEX_MAX_BYTES + 1];
        size_t n = ha1_of(v[i].alg, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);
        /* A -sess algorithm stores its base algorithm's HA1. */
        ha1_of(sip_digest_alg_base(v[i].alg), "Mufasa", "http-auth@example.org",
               "Circle of Life", base);
        CHECK(memcmp(ha1, base, n) == 0);
        sip_digest_creds_t c = {
            .username = STR_LIT("Mufasa"), .realm = STR_LIT("http-auth@example.org"),
            .nonce = str_from_cstr(rfc7616_nonce), .uri = STR_LIT("/dir/index.html"),
            .cnonce = str_from_cstr(rfc7616_cnonce), .nc_text = STR_LIT("00000001"), .nc = 1,
            .qop = SIP_DIGEST_QOP_AUTH, .qop_name = STR_LIT("auth"), .alg = v[i].alg,
        };
        sip_digest_response_hex(&c, STR_LIT("GET"), STR_LIT(""), ha1, n, hex);
        CHECK_STR(hex, v[i].want);
    }
}

/* ---- Our nonces and challenges ------------------------------------------------------ */

static void test_nonce_format(void)
{
    char nonce[SIP_DIGEST_NONCE_CHARS + 1];
    uint64_t issued = 0;

    /* base64url(be64(NOW) || HMAC-SHA-256(key, be64(NOW) || "example.com")[0..15]), computed
     * with Python's hmac module. */
    sip_digest_nonce_make(&conf_all, STR_LIT("example.com"), NOW, nonce);
    CHECK_STR(nonce, "AAAAAGVT8QBfDdSYx6T89ea8V24Hj1ot");
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), str_from_cstr(nonce),
                                    NOW, &issued), 0);
    CHECK_EQ(issued, NOW);

    str_t n = str_from_cstr(nonce);
    /* Lifetime boundaries, and the clock skew allowance. */
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), n, NOW + 300, NULL), 0);
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), n, NOW + 301, NULL),
             -ETIMEDOUT);
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), n,
                                    NOW - SIP_DIGEST_CLOCK_SKEW_S, NULL), 0);
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), n,
                                    NOW - SIP_DIGEST_CLOCK_SKEW_S - 1, NULL), -ETIMEDOUT);
    /* Another realm, another key, a flipped character, wrong lengths, padding. */
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.org"), n, NOW, NULL), -EBADMSG);
    sip_digest_conf_t other = conf_all;
    other.nonce_key[0] ^= 1;
    CHECK_EQ(sip_digest_nonce_check(&other, STR_LIT("example.com"), n, NOW, NULL), -EBADMSG);
    for (size_t i = 0; i < SIP_DIGEST_NONCE_CHARS; i++) {
        char t[SIP_DIGEST_NONCE_CHARS + 1];
        memcpy(t, nonce, sizeof(t));
        t[i] = t[i] == 'A' ? 'B' : 'A';
        CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), str_from_cstr(t),
                                        NOW, NULL), -EBADMSG);
    }
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"),
                                    (str_t){ nonce, SIP_DIGEST_NONCE_CHARS - 1 }, NOW, NULL),
             -EBADMSG);
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"),
                                    STR_LIT("AAAAAGVT8QBfDdSYx6T89ea8V24Hj1o="), NOW, NULL),
             -EBADMSG);
    CHECK_EQ(sip_digest_nonce_check(&conf_all, STR_LIT("example.com"), STR_LIT(""), NOW, NULL),
             -EBADMSG);
}

static void test_challenge_output(void)
{
    char out[SIP_DIGEST_CHALLENGE_MAX_BYTES];
    size_t n = 0;
    sip_digest_conf_t conf = conf_all;

    conf.offer_auth_int = false;
    conf.opaque = STR_LIT("shard-3");
    REQUIRE(sip_digest_challenge(&conf, STR_LIT("example.com"), NOW, SIP_DIGEST_SHA256, false,
                                 out, sizeof(out), &n) == 0);
    CHECK_STR(out, "Digest realm=\"example.com\", nonce=\"AAAAAGVT8QBfDdSYx6T89ea8V24Hj1ot\", "
                   "opaque=\"shard-3\", algorithm=SHA-256, qop=\"auth\"");
    CHECK_EQ(n, strlen(out));

    REQUIRE(sip_digest_challenge(&conf_all, STR_LIT("ex\"am\\ple"), NOW, SIP_DIGEST_MD5_SESS,
                                 true, out, sizeof(out), &n) == 0);
    CHECK(strstr(out, "realm=\"ex\\\"am\\\\ple\", ") != NULL);
    CHECK(strstr(out, ", algorithm=MD5-sess, qop=\"auth,auth-int\", stale=true") != NULL);
    /* What we write, our client reads back. */
    sip_digest_challenge_t ch;
    REQUIRE(parse_challenge(out, &ch) == 1);
    CHECK_STR(t_str(ch.realm), "ex\"am\\ple");
    CHECK(ch.stale && ch.qop_auth && ch.qop_auth_int);
    CHECK_EQ(ch.alg, SIP_DIGEST_MD5_SESS);

    /* Refusals: bad realms, an algorithm not offered, no room. */
    CHECK_EQ(sip_digest_challenge(&conf_all, STR_LIT(""), NOW, SIP_DIGEST_MD5, false, out,
                                  sizeof(out), &n), -EINVAL);
    CHECK_EQ(sip_digest_challenge(&conf_all, STR_LIT("a\r\nb"), NOW, SIP_DIGEST_MD5, false, out,
                                  sizeof(out), &n), -EINVAL);
    conf.algs = SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256);
    CHECK_EQ(sip_digest_challenge(&conf, STR_LIT("example.com"), NOW, SIP_DIGEST_MD5, false,
                                  out, sizeof(out), &n), -EINVAL);
    CHECK_EQ(sip_digest_challenge(&conf, STR_LIT("example.com"), NOW, SIP_DIGEST_SHA256, false,
                                  out, 40, &n), -ENOSPC);
    static char big[SIP_DIGEST_FIELD_MAX_BYTES + 1];
    memset(big, '"', sizeof(big));
    CHECK_EQ(sip_digest_challenge(&conf, (str_t){ big, sizeof(big) }, NOW, SIP_DIGEST_SHA256,
                                  false, out, sizeof(out), &n), -EINVAL);
    /* The worst case fits the documented bound. */
    conf.opaque = (str_t){ big, SIP_DIGEST_FIELD_MAX_BYTES };
    conf.algs = SIP_DIGEST_ALGS_ALL;
    conf.offer_auth_int = true;
    CHECK_EQ(sip_digest_challenge(&conf, (str_t){ big, SIP_DIGEST_FIELD_MAX_BYTES }, NOW,
                                  SIP_DIGEST_SHA256_SESS, true, out, sizeof(out), &n), 0);
}

static void test_challenge_headers(void)
{
    buf_t b;
    sip_digest_conf_t conf = conf_all;

    buf_init(&b);
    conf.algs = SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5) | SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256);
    conf.offer_auth_int = false;
    REQUIRE(sip_digest_challenge_headers(&conf, STR_LIT("example.com"), NOW, false, false,
                                         &b) == 0);
    buf_append(&b, "", 1);
    /* RFC 8760 §2.4: SHA-256 before MD5, one header each. */
    CHECK_STR(b.data,
              "WWW-Authenticate: Digest realm=\"example.com\", "
              "nonce=\"AAAAAGVT8QBfDdSYx6T89ea8V24Hj1ot\", algorithm=SHA-256, qop=\"auth\"\r\n"
              "WWW-Authenticate: Digest realm=\"example.com\", "
              "nonce=\"AAAAAGVT8QBfDdSYx6T89ea8V24Hj1ot\", algorithm=MD5, qop=\"auth\"\r\n");
    buf_fini(&b);

    buf_init(&b);
    REQUIRE(sip_digest_challenge_headers(&conf_all, STR_LIT("example.com"), NOW, true, true,
                                         &b) == 0);
    buf_append(&b, "", 1);
    const char *p = b.data;
    const char *order[] = { "SHA-256,", "SHA-256-sess,", "MD5,", "MD5-sess," };
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        CHECK(strncmp(p, "Proxy-Authenticate: Digest ", 27) == 0);
        const char *alg = strstr(p, "algorithm=");
        REQUIRE(alg);
        CHECK(strncmp(alg + 10, order[i], strlen(order[i])) == 0);
        const char *eol = strstr(p, "\r\n");
        REQUIRE(eol);
        CHECK(memmem(p, (size_t)(eol - p), "stale=true", 10) != NULL);
        p = eol + 2;
    }
    CHECK_EQ(*p, '\0');
    buf_fini(&b);

    buf_init(&b);
    CHECK_EQ(sip_digest_challenge_headers(&conf_all, STR_LIT("bad\x01realm"), NOW, false, false,
                                          &b), -EINVAL);
    CHECK_EQ(b.len, 0);
    buf_fini(&b);
}

/* ---- Round trips -------------------------------------------------------------------- */

typedef struct {
    sip_digest_result_t result;
    sip_digest_creds_t creds;
    char value[1024];
} exchange_t;

/*
 * One exchange: the server challenges with alg at t_challenge; the client answers (password
 * client_pw, request method/uri/body); the server verifies at t_verify with the HA1 of
 * server_pw (NULL for an unknown user).
 */
static void exchange(const sip_digest_conf_t *conf, sip_digest_alg_t alg,
                     const char *client_pw, const char *server_pw, uint64_t t_challenge,
                     uint64_t t_verify, bool auth_int, exchange_t *x)
{
    char chal[SIP_DIGEST_CHALLENGE_MAX_BYTES];
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    sip_digest_challenge_t ch;
    size_t n = 0;

    REQUIRE(sip_digest_challenge(conf, STR_LIT("example.com"), t_challenge, alg, false, chal,
                                 sizeof(chal), &n) == 0);
    REQUIRE(parse_challenge(chal, &ch) == 1);
    sip_digest_client_req_t req = {
        .username = STR_LIT("alice"), .password = str_from_cstr(client_pw),
        .method = STR_LIT("PUBLISH"), .uri = STR_LIT("sip:alice@example.com"),
        .body = STR_LIT("<presence/>"), .prefer_auth_int = auth_int,
    };
    REQUIRE(sip_digest_respond(&ch, &req, x->value, sizeof(x->value), &n) == 0);
    REQUIRE(sip_digest_creds_parse((str_t){ x->value, n }, &x->creds, scratch,
                                   sizeof(scratch)) == 1);
    CHECK_EQ(x->creds.alg, alg);
    CHECK_EQ(x->creds.qop, auth_int ? SIP_DIGEST_QOP_AUTH_INT : SIP_DIGEST_QOP_AUTH);
    CHECK_EQ(x->creds.cnonce.len, 24);

    if (server_pw)
        ha1_of(alg, "alice", "example.com", server_pw, ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = STR_LIT("PUBLISH"),
        .request_uri = STR_LIT("sip:alice@example.com"), .body = STR_LIT("<presence/>"),
        .now_s = t_verify,
    };
    x->result = sip_digest_verify(conf, &r, &x->creds, server_pw ? ha1 : NULL,
                                  sip_digest_alg_len(alg), sip_digest_alg_base(alg));
}

static const sip_digest_alg_t every_alg[] = {
    SIP_DIGEST_MD5, SIP_DIGEST_MD5_SESS, SIP_DIGEST_SHA256, SIP_DIGEST_SHA256_SESS,
};

static void test_round_trips(void)
{
    exchange_t x;
    for (size_t i = 0; i < ARRAY_LEN(every_alg); i++) {
        for (int ai = 0; ai < 2; ai++) {
            exchange(&conf_all, every_alg[i], "secret", "secret", NOW, NOW + 10, ai, &x);
            CHECK_EQ(x.result, SIP_DIGEST_OK);
            /* What was parsed writes back to what the client sent. */
            char again[1024];
            size_t n = 0;
            REQUIRE(sip_digest_creds_write(&x.creds, again, sizeof(again), &n) == 0);
            CHECK_STR(again, x.value);
        }
    }
    /* Each answer uses a fresh random cnonce. */
    exchange_t y;
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, false, &x);
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, false, &y);
    CHECK(!str_eq(x.creds.cnonce, y.creds.cnonce));
    for (size_t i = 0; i < x.creds.cnonce.len; i++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                     x.creds.cnonce.ptr[i]) != NULL);
}

static void test_stale_and_wrong(void)
{
    exchange_t x;
    for (size_t i = 0; i < ARRAY_LEN(every_alg); i++) {
        sip_digest_alg_t a = every_alg[i];
        exchange(&conf_all, a, "secret", "secret", NOW, NOW + 300, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_OK);
        exchange(&conf_all, a, "secret", "secret", NOW, NOW + 301, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_STALE);
        /* Dated too far ahead: authentic but not fresh. */
        exchange(&conf_all, a, "secret", "secret", NOW + 3600, NOW, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_STALE);
        /* Stale is only for those who know the password (RFC 7616 §3.3). */
        exchange(&conf_all, a, "wrong", "secret", NOW, NOW + 301, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_BAD);
        exchange(&conf_all, a, "wrong", "secret", NOW, NOW, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_BAD);
        exchange(&conf_all, a, "Secret", "secret", NOW, NOW, true, &x);
        CHECK_EQ(x.result, SIP_DIGEST_BAD);
        /* Unknown user: the same answer as a wrong password. */
        exchange(&conf_all, a, "secret", NULL, NOW, NOW, false, &x);
        CHECK_EQ(x.result, SIP_DIGEST_BAD);
    }
    /* Another node with the same key accepts the nonce; one with another key does not. */
    sip_digest_conf_t other = conf_all;
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, false, &x);
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    size_t n = ha1_of(SIP_DIGEST_SHA256, "alice", "example.com", "secret", ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = STR_LIT("PUBLISH"),
        .body = STR_LIT("<presence/>"), .now_s = NOW,
    };
    CHECK_EQ(sip_digest_verify(&other, &r, &x.creds, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_OK);
    other.nonce_key[31] ^= 0x80;
    CHECK_EQ(sip_digest_verify(&other, &r, &x.creds, ha1, n, SIP_DIGEST_SHA256),
             SIP_DIGEST_BAD);
    /* An HA1 of the other hash family cannot match. */
    uint8_t md5[SIP_DIGEST_MAX_BYTES];
    ha1_of(SIP_DIGEST_MD5, "alice", "example.com", "secret", md5);
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &x.creds, md5, 16, SIP_DIGEST_MD5),
             SIP_DIGEST_BAD);
    /* The method and body are part of what is signed (auth-int for the body). */
    r.method = STR_LIT("SUBSCRIBE");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &x.creds, ha1, n, SIP_DIGEST_SHA256),
             SIP_DIGEST_BAD);
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, true, &x);
    r.method = STR_LIT("PUBLISH");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &x.creds, ha1, n, SIP_DIGEST_SHA256),
             SIP_DIGEST_OK);
    r.body = STR_LIT("<presence/ >");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &x.creds, ha1, n, SIP_DIGEST_SHA256),
             SIP_DIGEST_BAD);
}

/* Tampering with any signed field of a good answer makes it BAD (or WRONG_REALM). */
static void test_tampered(void)
{
    exchange_t x;
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    size_t n = ha1_of(SIP_DIGEST_SHA256, "alice", "example.com", "secret", ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = STR_LIT("PUBLISH"),
        .body = STR_LIT("<presence/>"), .now_s = NOW,
    };
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, false, &x);
    REQUIRE(x.result == SIP_DIGEST_OK);

    sip_digest_creds_t c = x.creds;
    char nonce[SIP_DIGEST_NONCE_CHARS];
    memcpy(nonce, c.nonce.ptr, sizeof(nonce));
    nonce[5] = nonce[5] == 'x' ? 'y' : 'x';
    c.nonce = (str_t){ nonce, sizeof(nonce) };
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);

    /* A nonce minted for another realm, under credentials that claim ours. */
    char foreign[SIP_DIGEST_NONCE_CHARS + 1];
    sip_digest_nonce_make(&conf_all, STR_LIT("example.org"), NOW, foreign);
    c = x.creds;
    c.nonce = str_from_cstr(foreign);
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);

    c = x.creds;
    c.cnonce = STR_LIT("other");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    c = x.creds;
    c.nc = 2;
    c.nc_text = STR_LIT("00000002");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    c = x.creds;
    c.uri = STR_LIT("sip:bob@example.com");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    /* The username is bound through the HA1 the server looks up by it: bob's, even with the
     * same password, does not verify alice's answer. */
    c = x.creds;
    c.username = STR_LIT("bob");
    uint8_t bob[SIP_DIGEST_MAX_BYTES];
    ha1_of(SIP_DIGEST_SHA256, "bob", "example.com", "secret", bob);
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, bob, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    char resp[SIP_DIGEST_HEX_MAX_BYTES];
    memcpy(resp, x.creds.response.ptr, sizeof(resp));
    resp[63] = resp[63] == '0' ? '1' : '0';
    c = x.creds;
    c.response = (str_t){ resp, sizeof(resp) };
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    /* Case of the hex digits does not matter. */
    for (size_t i = 0; i < sizeof(resp); i++)
        resp[i] = (char)(x.creds.response.ptr[i] >= 'a' ? x.creds.response.ptr[i] - 32
                                                        : x.creds.response.ptr[i]);
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_OK);
    /* The -sess algorithm cannot be swapped for its base one, nor the qop dropped. */
    c = x.creds;
    c.alg = SIP_DIGEST_SHA256_SESS;
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
    c = x.creds;
    c.qop_name = STR_LIT("AUTH");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_SHA256), SIP_DIGEST_BAD);
}

/* Everything that verify answers MALFORMED or WRONG_REALM before looking at the response. */
static void test_verify_refusals(void)
{
    exchange_t x;
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    size_t n = ha1_of(SIP_DIGEST_MD5, "alice", "example.com", "secret", ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = STR_LIT("PUBLISH"),
        .request_uri = STR_LIT("sip:alice@example.com"), .body = STR_LIT("<presence/>"),
        .now_s = NOW,
    };
    exchange(&conf_all, SIP_DIGEST_MD5, "secret", "secret", NOW, NOW, false, &x);
    REQUIRE(x.result == SIP_DIGEST_OK);
    sip_digest_creds_t c;

    sip_digest_conf_t conf = conf_all;
    conf.algs = SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256);
    CHECK_EQ(sip_digest_verify(&conf, &r, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    c = x.creds;
    c.alg = SIP_DIGEST_ALG_OTHER;
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    c = x.creds;
    c.qop = SIP_DIGEST_QOP_OTHER;
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    exchange(&conf_all, SIP_DIGEST_MD5, "secret", "secret", NOW, NOW, true, &x);
    conf = conf_all;
    conf.offer_auth_int = false;
    CHECK_EQ(sip_digest_verify(&conf, &r, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    exchange(&conf_all, SIP_DIGEST_MD5, "secret", "secret", NOW, NOW, false, &x);
    c = x.creds;
    c.userhash = true;
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    c = x.creds;
    c.nc = 0;
    c.nc_text = STR_LIT("00000000");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    c = x.creds;
    c.response = STR_LIT("abc");
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);

    /* uri= against the Request-URI: only when the caller passes one, byte for byte. */
    sip_digest_request_t r2 = r;
    r2.request_uri = STR_LIT("sip:ALICE@example.com");
    CHECK_EQ(sip_digest_verify(&conf_all, &r2, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    r2.request_uri = (str_t){ 0 };
    CHECK_EQ(sip_digest_verify(&conf_all, &r2, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_OK);

    /* Realms compare exactly. */
    r2 = r;
    r2.realm = STR_LIT("Example.com");
    CHECK_EQ(sip_digest_verify(&conf_all, &r2, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_WRONG_REALM);

    /* opaque: required back unchanged when configured. */
    conf = conf_all;
    conf.opaque = STR_LIT("o-1");
    CHECK_EQ(sip_digest_verify(&conf, &r, &x.creds, ha1, n, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    exchange(&conf, SIP_DIGEST_MD5, "secret", "secret", NOW, NOW, false, &x);
    CHECK_EQ(x.result, SIP_DIGEST_OK);
    CHECK_STR(t_str(x.creds.opaque), "o-1");

    CHECK_STR(sip_digest_result_name(SIP_DIGEST_WRONG_REALM), "wrong-realm");
    CHECK_STR(sip_digest_result_name(SIP_DIGEST_OK), "ok");
}

/* RFC 2069 answers (no qop): refused unless accept_no_qop, never for -sess. */
static void test_no_qop(void)
{
    char chal[SIP_DIGEST_CHALLENGE_MAX_BYTES], out[1024];
    char nonce[SIP_DIGEST_NONCE_CHARS + 1];
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    sip_digest_challenge_t ch;
    sip_digest_creds_t c;
    size_t n = 0;

    sip_digest_nonce_make(&conf_all, STR_LIT("example.com"), NOW, nonce);
    snprintf(chal, sizeof(chal), "Digest realm=\"example.com\", nonce=\"%s\"", nonce);
    REQUIRE(parse_challenge(chal, &ch) == 1);
    CHECK(!ch.has_qop);
    CHECK(sip_digest_challenge_usable(&ch));
    sip_digest_client_req_t req = {
        .username = STR_LIT("alice"), .password = STR_LIT("secret"),
        .method = STR_LIT("REGISTER"), .uri = STR_LIT("sip:example.com"),
    };
    REQUIRE(sip_digest_respond(&ch, &req, out, sizeof(out), &n) == 0);
    CHECK(strstr(out, "qop") == NULL && strstr(out, "cnonce") == NULL &&
          strstr(out, "nc=") == NULL);
    REQUIRE(parse_creds(out, &c) == 1);
    CHECK_EQ(c.qop, SIP_DIGEST_QOP_NONE);
    size_t hl = ha1_of(SIP_DIGEST_MD5, "alice", "example.com", "secret", ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = STR_LIT("REGISTER"), .now_s = NOW,
    };
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, hl, SIP_DIGEST_MD5),
             SIP_DIGEST_MALFORMED);
    sip_digest_conf_t conf = conf_all;
    conf.accept_no_qop = true;
    CHECK_EQ(sip_digest_verify(&conf, &r, &c, ha1, hl, SIP_DIGEST_MD5), SIP_DIGEST_OK);
    /* Not tracked by the guard: no nonce-count. */
    sip_digest_nc_guard_t g;
    sip_digest_nc_guard_init(&g);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf, &c, NOW), 0);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf, &c, NOW), 0);

    /* -sess needs a cnonce, hence a qop. */
    snprintf(chal, sizeof(chal), "Digest realm=\"example.com\", nonce=\"%s\", "
             "algorithm=MD5-sess", nonce);
    REQUIRE(parse_challenge(chal, &ch) == 1);
    CHECK(!sip_digest_challenge_usable(&ch));
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -ENOTSUP);
    c.alg = SIP_DIGEST_MD5_SESS;
    CHECK_EQ(sip_digest_verify(&conf, &r, &c, ha1, hl, SIP_DIGEST_MD5), SIP_DIGEST_MALFORMED);
}

/* A whole REGISTER, as the transaction layer would hand it over. */
static void test_register_message(void)
{
    static sip_msg_t msg;
    char chal[SIP_DIGEST_CHALLENGE_MAX_BYTES], auth[1024], text[2048];
    uint8_t ha1[SIP_DIGEST_MAX_BYTES];
    sip_digest_challenge_t ch;
    sip_digest_creds_t c;
    size_t n = 0;

    REQUIRE(sip_digest_challenge(&conf_all, STR_LIT("example.com"), NOW, SIP_DIGEST_SHA256,
                                 false, chal, sizeof(chal), &n) == 0);
    REQUIRE(parse_challenge(chal, &ch) == 1);
    sip_digest_client_req_t req = {
        .username = STR_LIT("alice"), .password = STR_LIT("secret"),
        .method = STR_LIT("REGISTER"), .uri = STR_LIT("sip:example.com"),
        .cnonce = STR_LIT("abcdef12"),
    };
    REQUIRE(sip_digest_respond(&ch, &req, auth, sizeof(auth), &n) == 0);
    /* Independently computed (hashlib) for this nonce, cnonce and request. */
    CHECK(strstr(auth, "response=\"06b5a68e54111646038148eb9e7d53c5206be98f9c2516f2532bff97f3"
                       "08538f\"") != NULL);

    int len = snprintf(text, sizeof(text),
                       "REGISTER sip:example.com SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7\r\n"
                       "Max-Forwards: 70\r\n"
                       "To: Alice <sip:alice@example.com>\r\n"
                       "From: Alice <sip:alice@example.com>;tag=456248\r\n"
                       "Call-ID: 843817637684230@998sdasdh09\r\n"
                       "CSeq: 1827 REGISTER\r\n"
                       "Contact: <sip:alice@192.0.2.4>\r\n"
                       "Expires: 7200\r\n"
                       "Authorization: %s\r\n"
                       "Content-Length: 0\r\n\r\n", auth);
    REQUIRE(len > 0 && (size_t)len < sizeof(text));
    REQUIRE(sip_msg_parse(&msg, text, (size_t)len, SIP_MSG_DATAGRAM, NULL) == len);
    const sip_hdr_t *h = sip_msg_get(&msg, SIP_HDR_AUTHORIZATION);
    REQUIRE(h);
    REQUIRE(sip_digest_creds_parse(h->value, &c, scratch, sizeof(scratch)) == 1);
    size_t hl = ha1_of(SIP_DIGEST_SHA256, "alice", "example.com", "secret", ha1);
    sip_digest_request_t r = {
        .realm = STR_LIT("example.com"), .method = msg.method_name,
        .request_uri = msg.request_uri, .body = msg.body, .now_s = NOW + 5,
    };
    CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, hl, SIP_DIGEST_SHA256), SIP_DIGEST_OK);

    /* The MD5 and -sess vectors for the same request (hashlib). */
    static const struct {
        sip_digest_alg_t alg;
        const char *want;
    } v[] = {
        { SIP_DIGEST_MD5, "527622d77922d004c983e404617381b3" },
        { SIP_DIGEST_MD5_SESS, "fbc6f70dd756f2e98b8ecc63feefe93d" },
        { SIP_DIGEST_SHA256_SESS,
          "05f35c276e354c98b9f57ded32f676e0b9de0770ad02cff8b40648cec46fdc61" },
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        REQUIRE(sip_digest_challenge(&conf_all, STR_LIT("example.com"), NOW, v[i].alg, false,
                                     chal, sizeof(chal), &n) == 0);
        REQUIRE(parse_challenge(chal, &ch) == 1);
        REQUIRE(sip_digest_respond(&ch, &req, auth, sizeof(auth), &n) == 0);
        REQUIRE(parse_creds(auth, &c) == 1);
        CHECK_STR(t_str(c.response), v[i].want);
        hl = ha1_of(v[i].alg, "alice", "example.com", "secret", ha1);
        CHECK_EQ(sip_digest_verify(&conf_all, &r, &c, ha1, hl, sip_digest_alg_base(v[i].alg)),
                 SIP_DIGEST_OK);
    }

    /* auth-int over a PUBLISH body, nc=2 (hashlib). */
    REQUIRE(sip_digest_challenge(&conf_all, STR_LIT("example.com"), NOW, SIP_DIGEST_SHA256,
                                 false, chal, sizeof(chal), &n) == 0);
    REQUIRE(parse_challenge(chal, &ch) == 1);
    sip_digest_client_req_t pub = {
        .username = STR_LIT("alice"), .password = STR_LIT("secret"),
        .method = STR_LIT("PUBLISH"), .uri = STR_LIT("sip:alice@example.com"),
        .body = STR_LIT("<presence/>"), .prefer_auth_int = true, .nc = 2,
        .cnonce = STR_LIT("abcdef12"),
    };
    REQUIRE(sip_digest_respond(&ch, &pub, auth, sizeof(auth), &n) == 0);
    REQUIRE(parse_creds(auth, &c) == 1);
    CHECK_EQ(c.nc, 2);
    CHECK_STR(t_str(c.qop_name), "auth-int");
    CHECK_STR(t_str(c.response),
              "0806bda8cc34115e9076863cdfc6d35817bb42c162c28ea75ed1679e9733c6ad");
}

/* ---- Parsing ------------------------------------------------------------------------ */

static const char good_prefix[] =
    "username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
    "response=\"0123456789abcdef0123456789abcdef\"";

static void test_parse_variants(void)
{
    sip_digest_creds_t c;
    char v[2048];

    /* Case-insensitive scheme, names and tokens; quoted tokens; bare values; LWS around '='
     * and ','; unknown parameters ignored; uppercase nc. */
    snprintf(v, sizeof(v),
             "  dIgEsT  USERNAME = alice ,Realm=\"example.com\",NONCE=\"n\",Uri=\"sip:x\","
             "Response=\"0123456789ABCDEF0123456789abcdef\", Algorithm=\"md5-SESS\","
             " QOP=\"Auth\", NC=0000000A, CNonce=c1, future-param=\"x, y\", other=tok ");
    REQUIRE(parse_creds(v, &c) == 1);
    CHECK_STR(t_str(c.username), "alice");
    CHECK_STR(t_str(c.cnonce), "c1");
    CHECK_EQ(c.alg, SIP_DIGEST_MD5_SESS);
    CHECK_STR(t_str(c.algorithm), "md5-SESS");
    CHECK_EQ(c.qop, SIP_DIGEST_QOP_AUTH);
    CHECK_STR(t_str(c.qop_name), "Auth");
    CHECK_EQ(c.nc, 10);
    CHECK_STR(t_str(c.nc_text), "0000000A");

    /* Quoted-pairs and folds are resolved into the scratch buffer. */
    snprintf(v, sizeof(v),
             "Digest username=\"al\\\"i\\\\ce\", realm=\"exa\r\n mple\", nonce=\"n\", "
             "uri=\"sip:x\", response=\"0123456789abcdef0123456789abcdef\"");
    REQUIRE(parse_creds(v, &c) == 1);
    CHECK_STR(t_str(c.username), "al\"i\\ce");
    CHECK_STR(t_str(c.realm), "exa mple");
    CHECK(c.username.ptr >= scratch && c.username.ptr < scratch + sizeof(scratch));
    CHECK(c.nonce.ptr > v && c.nonce.ptr < v + sizeof(v));
    /* Scratch holds just the resolved strings: 7 + 8 bytes here. */
    char small[16];
    CHECK_EQ(sip_digest_creds_parse(str_from_cstr(v), &c, small, 14), -ENOSPC);
    CHECK_EQ(sip_digest_creds_parse(str_from_cstr(v), &c, small, 15), 1);
    CHECK_STR(t_str(c.realm), "exa mple");

    /* SHA-256 needs 64 hex digits. */
    snprintf(v, sizeof(v), "Digest %s, algorithm=SHA-256", good_prefix);
    CHECK_EQ(parse_creds(v, &c), -EBADMSG);
    /* An unknown algorithm parses, as OTHER, for verify to refuse. */
    snprintf(v, sizeof(v), "Digest %s, algorithm=SHA-512-256", good_prefix);
    REQUIRE(parse_creds(v, &c) == 1);
    CHECK_EQ(c.alg, SIP_DIGEST_ALG_OTHER);
    snprintf(v, sizeof(v), "Digest %s, qop=auth-conf, nc=00000001, cnonce=x", good_prefix);
    REQUIRE(parse_creds(v, &c) == 1);
    CHECK_EQ(c.qop, SIP_DIGEST_QOP_OTHER);
    snprintf(v, sizeof(v), "Digest %s, userhash=TRUE", good_prefix);
    REQUIRE(parse_creds(v, &c) == 1);
    CHECK(c.userhash);

    /* Another scheme is declined, not an error. */
    CHECK_EQ(parse_creds("Bearer eyJhbGciOi", &c), 0);
    CHECK_EQ(parse_creds("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &c), 0);
    CHECK_EQ(parse_creds("DigestX username=\"a\"", &c), 0);
}

static void test_parse_malformed(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "Digest",
        "Digest ",
        "Digest,username=\"a\"",
        "=Digest",
        /* missing required parameters */
        "Digest realm=\"example.com\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\"",
        "Digest username=\"\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        /* syntax */
        "Digest username=\"alice, realm=\"r\"",
        "Digest username=\"alice\" realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\",, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\",",
        "Digest username, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"a\"x, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"a\"\"b\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=a b, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=sip:x, "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"a\\\x01\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"a\x7f\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"a\\\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=<sip:a>, realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\"",
        /* duplicates, whatever their case */
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", Realm=\"r\"",
        "Digest username=\"alice\", username=\"alice\", realm=\"r\", nonce=\"n\", "
        "uri=\"sip:x\", response=\"0123456789abcdef0123456789abcdef\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, ALGORITHM=MD5",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001, nc=00000002, "
        "cnonce=\"c\"",
        /* response, nc, qop consistency */
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdeg\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef0\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=1, cnonce=\"c\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=0000000g, cnonce=\"c\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, cnonce=\"c\"",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", cnonce=\"c\", nc=00000001",
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", userhash=maybe",
    };
    sip_digest_creds_t c;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int r = parse_creds(bad[i], &c);
        if (r != -EBADMSG)
            fprintf(stderr, "  case %zu: %d\n", i, r);
        CHECK_EQ(r, -EBADMSG);
    }
}

static void test_parse_limits(void)
{
    static char v[3 * SIP_DIGEST_VALUE_MAX_BYTES];
    sip_digest_creds_t c;
    int n;

    /* A field at the limit parses; one byte more is too long. */
    for (int extra = 0; extra < 2; extra++) {
        n = snprintf(v, sizeof(v), "Digest %s, opaque=\"", good_prefix);
        memset(v + n, 'o', SIP_DIGEST_FIELD_MAX_BYTES + extra);
        n += SIP_DIGEST_FIELD_MAX_BYTES + extra;
        snprintf(v + n, sizeof(v) - (size_t)n, "\"");
        CHECK_EQ(parse_creds(v, &c), extra ? -EMSGSIZE : 1);
    }
    /* The whole value. */
    n = snprintf(v, sizeof(v), "Digest %s", good_prefix);
    while (n < SIP_DIGEST_VALUE_MAX_BYTES + 10)
        n += snprintf(v + n, sizeof(v) - (size_t)n, ", x=\"%0200d\"", 0);
    CHECK_EQ(parse_creds(v, &c), -EMSGSIZE);
    /* Too many parameters, even short ones. */
    n = snprintf(v, sizeof(v), "Digest %s", good_prefix);
    for (int i = 0; i < SIP_DIGEST_PARAMS_MAX; i++)
        n += snprintf(v + n, sizeof(v) - (size_t)n, ", p%d=1", i);
    CHECK_EQ(parse_creds(v, &c), -EMSGSIZE);
    /* Exactly at the count. */
    n = snprintf(v, sizeof(v), "Digest %s", good_prefix);
    for (int i = 0; i < SIP_DIGEST_PARAMS_MAX - 5; i++)
        n += snprintf(v + n, sizeof(v) - (size_t)n, ", p%d=1", i);
    CHECK_EQ(parse_creds(v, &c), 1);
}

static void test_challenge_parse(void)
{
    sip_digest_challenge_t ch;

    REQUIRE(parse_challenge("DIGEST REALM=\"r\", Nonce=\"abc\", QOP=\"auth-int , foo,AUTH\", "
                            "stale=TRUE, domain=\"sip:example.com\", charset=UTF-8, "
                            "algorithm=sha-256", &ch) == 1);
    CHECK(ch.has_qop && ch.qop_auth && ch.qop_auth_int && ch.stale);
    CHECK_EQ(ch.alg, SIP_DIGEST_SHA256);
    CHECK_STR(t_str(ch.domain), "sip:example.com");
    CHECK(sip_digest_challenge_usable(&ch));

    REQUIRE(parse_challenge("Digest realm=\"r\", nonce=\"abc\", qop=\"auth-conf\", "
                            "stale=false", &ch) == 1);
    CHECK(ch.has_qop && !ch.qop_auth && !ch.qop_auth_int && !ch.stale);
    CHECK(!sip_digest_challenge_usable(&ch));
    REQUIRE(parse_challenge("Digest realm=\"r\", nonce=\"abc\", qop=auth, "
                            "algorithm=SHA-512-256", &ch) == 1);
    CHECK(!sip_digest_challenge_usable(&ch));
    char out[512];
    size_t n = 0;
    sip_digest_client_req_t req = {
        .username = STR_LIT("a"), .password = STR_LIT("p"), .method = STR_LIT("SUBSCRIBE"),
        .uri = STR_LIT("sip:b@example.com"),
    };
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -ENOTSUP);

    CHECK_EQ(parse_challenge("Digest realm=\"r\"", &ch), -EBADMSG);
    CHECK_EQ(parse_challenge("Digest nonce=\"abc\"", &ch), -EBADMSG);
    CHECK_EQ(parse_challenge("Digest realm=\"r\", nonce=\"\"", &ch), -EBADMSG);
    CHECK_EQ(parse_challenge("Digest realm=\"r\", nonce=\"a\", realm=\"s\"", &ch), -EBADMSG);
    CHECK_EQ(parse_challenge("Digest realm=\"r\", nonce=\"a\", stale=true, Stale=false", &ch),
             -EBADMSG);
    CHECK_EQ(parse_challenge("Digest realm=\"r\" nonce=\"a\"", &ch), -EBADMSG);
    CHECK_EQ(parse_challenge("Negotiate abc", &ch), 0);
}

/* ---- Client refusals ---------------------------------------------------------------- */

static void test_client_refusals(void)
{
    sip_digest_challenge_t ch;
    char out[1024];
    size_t n = 0;
    uint8_t ha1[SIP_DIGEST_MAX_BYTES] = { 0 };

    REQUIRE(parse_challenge("Digest realm=\"r\", nonce=\"abc\", qop=\"auth\", "
                            "algorithm=SHA-256", &ch) == 1);
    sip_digest_client_req_t ok = {
        .username = STR_LIT("a"), .password = STR_LIT("p"), .method = STR_LIT("SUBSCRIBE"),
        .uri = STR_LIT("sip:b@example.com"),
    };
    CHECK_EQ(sip_digest_respond(&ch, &ok, out, sizeof(out), &n), 0);
    sip_digest_client_req_t req = ok;
    req.username = STR_LIT("a\r\nb");
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -EINVAL);
    req = ok;
    req.username = STR_LIT("");
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -EINVAL);
    req = ok;
    req.method = STR_LIT("SUB SCRIBE");
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -EINVAL);
    req = ok;
    req.password = STR_LIT("");
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -EINVAL);
    req = ok;
    req.ha1 = ha1;
    req.ha1_len = 16;               /* an MD5 HA1 for a SHA-256 challenge */
    CHECK_EQ(sip_digest_respond(&ch, &req, out, sizeof(out), &n), -EINVAL);
    CHECK_EQ(sip_digest_respond(&ch, &ok, out, 100, &n), -ENOSPC);
}

/* ---- HA1 and its blob ---------------------------------------------------------------- */

static void test_ha1_blob(void)
{
    uint8_t ha1[SIP_DIGEST_MAX_BYTES], blob[SIP_DIGEST_HA1_BLOB_MAX_BYTES];
    uint8_t back[SIP_DIGEST_MAX_BYTES];
    sip_digest_alg_t alg;
    size_t n = 0, bn = 0, back_len = 0;

    for (size_t i = 0; i < ARRAY_LEN(every_alg); i++) {
        sip_digest_alg_t a = every_alg[i];
        n = ha1_of(a, "alice", "example.com", "secret", ha1);
        REQUIRE(sip_digest_ha1_encode(a, ha1, n, blob, sizeof(blob), &bn) == 0);
        CHECK_EQ(bn, 1 + n);
        CHECK_EQ(blob[0], sip_digest_alg_base(a));
        REQUIRE(sip_digest_ha1_decode(blob, bn, &alg, back, &back_len) == 0);
        CHECK_EQ(alg, sip_digest_alg_base(a));
        CHECK_EQ(back_len, n);
        CHECK(memcmp(back, ha1, n) == 0);
        CHECK_EQ(sip_digest_ha1_decode(blob, bn - 1, &alg, back, &back_len), -EBADMSG);
        CHECK_EQ(sip_digest_ha1_encode(a, ha1, n, blob, n, &bn), -ENOSPC);
        CHECK_EQ(sip_digest_ha1_encode(a, ha1, n - 1, blob, sizeof(blob), &bn), -EINVAL);
    }
    /* Stored bytes of the MD5 HA1 of the RFC 2617 user: 1 then the digest. */
    n = ha1_of(SIP_DIGEST_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", ha1);
    REQUIRE(sip_digest_ha1_encode(SIP_DIGEST_MD5, ha1, n, blob, sizeof(blob), &bn) == 0);
    CHECK_EQ(blob[0], 1);
    CHECK_EQ(blob[1], 0x93);            /* 939e7578ed9e3c518a452acee763bce9 */
    CHECK_EQ(blob[16], 0xe9);

    static const uint8_t bad_alg[17] = { 2 };
    CHECK_EQ(sip_digest_ha1_decode(bad_alg, sizeof(bad_alg), &alg, back, &back_len), -EBADMSG);
    static const uint8_t md5_long[33] = { 1 };
    CHECK_EQ(sip_digest_ha1_decode(md5_long, sizeof(md5_long), &alg, back, &back_len),
             -EBADMSG);
    CHECK_EQ(sip_digest_ha1_decode(md5_long, 0, &alg, back, &back_len), -EBADMSG);

    CHECK_EQ(sip_digest_ha1(SIP_DIGEST_ALG_OTHER, STR_LIT("a"), STR_LIT("r"), STR_LIT("p"), ha1,
                            &n), -EINVAL);
    CHECK_EQ(sip_digest_ha1(SIP_DIGEST_MD5, STR_LIT(""), STR_LIT("r"), STR_LIT("p"), ha1, &n),
             -EINVAL);
    CHECK_EQ(sip_digest_alg_lookup(STR_LIT("sha-256-SESS")), SIP_DIGEST_SHA256_SESS);
    CHECK_EQ(sip_digest_alg_lookup(STR_LIT("SHA256")), SIP_DIGEST_ALG_OTHER);
    CHECK_STR(sip_digest_alg_name(SIP_DIGEST_SHA256_SESS), "SHA-256-sess");
}

/* ---- Replay guard -------------------------------------------------------------------- */

static void test_replay_guard(void)
{
    sip_digest_nc_guard_t g;
    char nonces[SIP_DIGEST_GUARD_SLOTS + 1][SIP_DIGEST_NONCE_CHARS + 1];
    sip_digest_creds_t c = { .qop = SIP_DIGEST_QOP_AUTH };

    sip_digest_nc_guard_init(&g);
    for (size_t i = 0; i < ARRAY_LEN(nonces); i++)
        sip_digest_nonce_make(&conf_all, STR_LIT("example.com"), NOW + i, nonces[i]);

    c.nonce = str_from_cstr(nonces[0]);
    c.nc = 1;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), -EALREADY);
    c.nc = 3;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    c.nc = 2;                           /* reordered, not replayed */
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), -EALREADY);
    c.nc = 100;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    c.nc = 37;                          /* 63 below the highest: still in the window */
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    c.nc = 36;                          /* 64 below: too old to tell */
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), -EALREADY);
    c.nc = 200;                         /* a jump past the window forgets it */
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    c.nc = 100;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), -EALREADY);
    c.nc = 199;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);

    /* Nonces are tracked apart; a fifth live one pushes the oldest out. */
    for (size_t i = 1; i < ARRAY_LEN(nonces); i++) {
        c.nonce = str_from_cstr(nonces[i]);
        c.nc = 1;
        CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 5), 0);
        CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 5), -EALREADY);
    }
    c.nonce = str_from_cstr(nonces[0]);
    c.nc = 200;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 5), 0);   /* forgotten */
    c.nonce = str_from_cstr(nonces[4]);
    c.nc = 1;
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 5), -EALREADY);

    /* The slot of an expired nonce is taken before that of a live one. */
    sip_digest_nc_guard_init(&g);
    c.nc = 1;
    for (size_t i = 0; i < SIP_DIGEST_GUARD_SLOTS; i++) {
        c.nonce = str_from_cstr(nonces[i]);
        CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW), 0);
    }
    char newest[SIP_DIGEST_NONCE_CHARS + 1];
    sip_digest_nonce_make(&conf_all, STR_LIT("example.com"), NOW + 1000, newest);
    c.nonce = str_from_cstr(newest);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 1000), 0);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &c, NOW + 1000), -EALREADY);

    /* A real exchange: verify OK, then the guard catches the replay of the same request. */
    exchange_t x;
    exchange(&conf_all, SIP_DIGEST_SHA256, "secret", "secret", NOW, NOW, false, &x);
    REQUIRE(x.result == SIP_DIGEST_OK);
    sip_digest_nc_guard_init(&g);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &x.creds, NOW), 0);
    CHECK_EQ(sip_digest_nc_guard_check(&g, &conf_all, &x.creds, NOW + 1), -EALREADY);
}

int main(void)
{
    T_RUN(test_rfc2617_example);
    T_RUN(test_rfc7616_examples);
    T_RUN(test_sess_vectors);
    T_RUN(test_nonce_format);
    T_RUN(test_challenge_output);
    T_RUN(test_challenge_headers);
    T_RUN(test_round_trips);
    T_RUN(test_stale_and_wrong);
    T_RUN(test_tampered);
    T_RUN(test_verify_refusals);
    T_RUN(test_no_qop);
    T_RUN(test_register_message);
    T_RUN(test_parse_variants);
    T_RUN(test_parse_malformed);
    T_RUN(test_parse_limits);
    T_RUN(test_challenge_parse);
    T_RUN(test_client_refusals);
    T_RUN(test_ha1_blob);
    T_RUN(test_replay_guard);
    T_DONE();
}
