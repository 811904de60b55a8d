/*
 * SASL: the RFC 5802 §5 and RFC 7677 §3 example exchanges byte for byte (both
 * sides, nonces injected), then each clause of sasl.h's contract: failures,
 * unknown users, tampering, malformed messages, PLAIN, the credential blob,
 * password preparation and full client <-> server exchanges with random salts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/base64.h>
#include <openssl/rand.h>

#include "protocols/xmpp/sasl.h"
#include "tests/unit/t.h"

static const sasl_scram_conf_t conf = {
    .fake_salt_key = "0123456789abcdef0123456789abcdef",
    .fake_iterations = SASL_ITERATIONS_DEFAULT,
};

static size_t b64dec(const char *in, uint8_t *out, size_t cap)
{
    size_t n = 0;
    REQUIRE(EVP_DecodeBase64(out, &n, cap, (const uint8_t *)in, strlen(in)) == 1);
    return n;
}

static sasl_scram_creds_t creds_for(sasl_hash_t h, const char *password, const char *salt_b64,
                                    uint32_t iterations)
{
    uint8_t salt[SASL_SALT_MAX_BYTES];
    size_t n = b64dec(salt_b64, salt, sizeof(salt));
    sasl_scram_creds_t c;
    REQUIRE(sasl_scram_derive(h, password, strlen(password), salt, n, iterations, &c) == 0);
    return c;
}

static int server_start(sasl_scram_server_t *ex, sasl_hash_t h, const char *msg)
{
    sasl_scram_server_init(ex, &conf);
    return sasl_scram_server_start(ex, h, msg, strlen(msg));
}

/* One whole RFC example: both sides, every message compared with the RFC's. */
static void rfc_example(sasl_hash_t h, const char *salt_b64, const char *c1, const char *s1,
                        const char *c2, const char *s2, const char *cnonce, const char *snonce)
{
    sasl_scram_creds_t creds = creds_for(h, "pencil", salt_b64, 4096);
    sasl_scram_server_t ex;
    sasl_scram_client_t cl;
    char out[SASL_CLIENT_FINAL_MAX_BYTES];
    size_t n = 0;

    sasl_scram_client_init(&cl, h, false);
    sasl_scram_client_set_nonce(&cl, cnonce, strlen(cnonce));
    CHECK_EQ(sasl_scram_client_first(&cl, STR_LIT("user"), STR_LIT(""), out, sizeof(out), &n),
             0);
    CHECK_STR(out, c1);
    CHECK_EQ(n, strlen(c1));

    CHECK_EQ(server_start(&ex, h, c1), 0);
    CHECK_STR(t_str(sasl_scram_server_username(&ex)), "user");
    CHECK_EQ(sasl_scram_server_authzid(&ex).len, 0);
    sasl_scram_server_set_nonce(&ex, snonce, strlen(snonce));
    CHECK_EQ(sasl_scram_server_first(&ex, &creds, STR_LIT("user@example.com"), out, sizeof(out),
                                     &n), 0);
    CHECK_STR(out, s1);

    CHECK_EQ(sasl_scram_client_final(&cl, "pencil", 6, s1, strlen(s1), out, sizeof(out), &n), 0);
    CHECK_STR(out, c2);

    CHECK_EQ(sasl_scram_server_final(&ex, c2, strlen(c2), out, sizeof(out), &n), 0);
    CHECK_STR(out, s2);
    CHECK_EQ(n, strlen(s2));
    CHECK_EQ(sasl_scram_client_verify(&cl, s2, strlen(s2)), 0);
    sasl_scram_server_fini(&ex);
    sasl_scram_client_fini(&cl);
}

static void test_rfc5802_sha1(void)
{
    rfc_example(SASL_HASH_SHA1, "QSXCR+Q6sek8bf92",
                "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
                "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j");
}

static void test_rfc7677_sha256(void)
{
    rfc_example(SASL_HASH_SHA256, "W22ZaJ0SNY7soEsUEjb6gQ==",
                "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                "rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
}

/*
 * A whole exchange between our client and server. creds NULL plays an unknown
 * user. Returns what the server's final step returned; on success the client
 * must accept the server signature.
 */
static int exchange(sasl_hash_t h, const sasl_scram_creds_t *creds, str_t user, str_t authzid,
                    const char *password, bool cb)
{
    sasl_scram_server_t ex;
    sasl_scram_client_t cl;
    char c1[SASL_CLIENT_FIRST_MAX_BYTES], s1[SASL_SERVER_FIRST_MAX_BYTES];
    char c2[SASL_CLIENT_FINAL_MAX_BYTES], s2[SASL_SERVER_FINAL_MAX_BYTES];
    size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;

    sasl_scram_client_init(&cl, h, cb);
    REQUIRE(sasl_scram_client_first(&cl, user, authzid, c1, sizeof(c1), &n1) == 0);
    sasl_scram_server_init(&ex, &conf);
    REQUIRE(sasl_scram_server_start(&ex, h, c1, n1) == 0);
    CHECK(str_eq(sasl_scram_server_username(&ex), user));
    CHECK(str_eq(sasl_scram_server_authzid(&ex), authzid));
    REQUIRE(sasl_scram_server_first(&ex, creds, user, s1, sizeof(s1), &n2) == 0);
    REQUIRE(sasl_scram_client_final(&cl, password, strlen(password), s1, n2, c2, sizeof(c2),
                                    &n3) == 0);
    int rc = sasl_scram_server_final(&ex, c2, n3, s2, sizeof(s2), &n4);
    if (rc == 0)
        CHECK_EQ(sasl_scram_client_verify(&cl, s2, n4), 0);
    sasl_scram_server_fini(&ex);
    sasl_scram_client_fini(&cl);
    return rc;
}

static void test_full_exchanges(void)
{
    static const sasl_hash_t hashes[] = { SASL_HASH_SHA1, SASL_HASH_SHA256 };
    for (size_t i = 0; i < ARRAY_LEN(hashes); i++) {
        sasl_scram_creds_t creds, again;
        REQUIRE(sasl_scram_creds_new(hashes[i], "s3cret p\xc3\xa4ss", 12,
                                     SASL_ITERATIONS_DEFAULT, &creds) == 0);
        CHECK_EQ(creds.salt_len, SASL_SALT_NEW_BYTES);
        CHECK_EQ(creds.iterations, SASL_ITERATIONS_DEFAULT);
        REQUIRE(sasl_scram_creds_new(hashes[i], "s3cret p\xc3\xa4ss", 12,
                                     SASL_ITERATIONS_DEFAULT, &again) == 0);
        CHECK(memcmp(creds.salt, again.salt, SASL_SALT_NEW_BYTES) != 0);   /* random salts */
        CHECK(memcmp(creds.stored_key, again.stored_key, SASL_DIGEST_MAX_BYTES) != 0);

        CHECK_EQ(exchange(hashes[i], &creds, STR_LIT("juliet"), STR_LIT(""), "s3cret p\xc3\xa4ss",
                          false), 0);
        CHECK_EQ(exchange(hashes[i], &creds, STR_LIT("juliet"), STR_LIT(""), "s3cret p\xc3\xa4ss",
                          true), 0);                            /* gs2 flag 'y' */
        /* ',' and '=' travel escaped and come back decoded. */
        CHECK_EQ(exchange(hashes[i], &creds, STR_LIT("a,b=c"), STR_LIT("x=y,z@example.com"),
                          "s3cret p\xc3\xa4ss", false), 0);
        /* The password is NFC'd on both sides: "a" + U+0308 is U+00E4. */
        CHECK_EQ(exchange(hashes[i], &creds, STR_LIT("juliet"), STR_LIT(""),
                          "s3cret pa\xcc\x88ss", false), 0);
        CHECK_EQ(exchange(hashes[i], &creds, STR_LIT("juliet"), STR_LIT(""), "s3cret pass",
                          false), -EACCES);
    }
}

static void test_wrong_password(void)
{
    sasl_scram_creds_t creds = creds_for(SASL_HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==",
                                         4096);
    CHECK_EQ(exchange(SASL_HASH_SHA256, &creds, STR_LIT("user"), STR_LIT(""), "pencil", false),
             0);
    CHECK_EQ(exchange(SASL_HASH_SHA256, &creds, STR_LIT("user"), STR_LIT(""), "Pencil", false),
             -EACCES);
    CHECK_STR(sasl_failure_name(sasl_failure_for_error(-EACCES)), "not-authorized");

    /* Failure is sticky: a retry on the same exchange gets the same answer. */
    sasl_scram_server_t ex;
    char out[SASL_SERVER_FIRST_MAX_BYTES];
    size_t n = 0;
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), 0);
    sasl_scram_server_set_nonce(&ex, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", 30);
    CHECK_EQ(sasl_scram_server_first(&ex, &creds, STR_LIT("user"), out, sizeof(out), &n), 0);
    const char *bad = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVA=";
    CHECK_EQ(sasl_scram_server_final(&ex, bad, strlen(bad), out, sizeof(out), &n), -EACCES);
    CHECK_EQ(sasl_scram_server_final(&ex, bad, strlen(bad), out, sizeof(out), &n), -EACCES);
    sasl_scram_server_fini(&ex);
}

/* The challenge for user (looked up as account) under hash, with fixed nonces. */
static void challenge(sasl_hash_t h, const char *user, const char *account,
                      const sasl_scram_creds_t *creds, char *out, size_t cap)
{
    sasl_scram_server_t ex;
    char c1[256];
    size_t n = 0;
    snprintf(c1, sizeof(c1), "n,,n=%s,r=abcdefghijklmnopqrstuvwx", user);
    REQUIRE(server_start(&ex, h, c1) == 0);
    sasl_scram_server_set_nonce(&ex, "ABCDEFGHIJKLMNOPQRSTUVWX", 24);
    REQUIRE(sasl_scram_server_first(&ex, creds, str_from_cstr(account), out, cap, &n) == 0);
    CHECK_EQ(n, strlen(out));
    sasl_scram_server_fini(&ex);
}

static void test_unknown_user(void)
{
    char a[SASL_SERVER_FIRST_MAX_BYTES], b[SASL_SERVER_FIRST_MAX_BYTES];
    char c[SASL_SERVER_FIRST_MAX_BYTES], d[SASL_SERVER_FIRST_MAX_BYTES];
    sasl_scram_creds_t real;
    REQUIRE(sasl_scram_creds_new(SASL_HASH_SHA256, "pw", 2, 4096, &real) == 0);

    challenge(SASL_HASH_SHA256, "ghost", "ghost@example.com", NULL, a, sizeof(a));
    challenge(SASL_HASH_SHA256, "ghost", "ghost@example.com", NULL, b, sizeof(b));
    challenge(SASL_HASH_SHA256, "romeo", "romeo@example.com", &real, c, sizeof(c));
    CHECK_STR(a, b);                            /* stable: probing twice shows nothing */
    /* Another spelling the caller prepares to the same account gets the same
     * salt, as it would for a real account. */
    challenge(SASL_HASH_SHA256, "GHOST", "ghost@example.com", NULL, b, sizeof(b));
    CHECK_STR(a, b);
    /* Same shape as a real account's: 24 base64 characters of salt, same count. */
    CHECK_EQ(strlen(a), strlen(c));
    CHECK(strncmp(a, "r=abcdefghijklmnopqrstuvwxABCDEFGHIJKLMNOPQRSTUVWX,s=", 53) == 0);
    CHECK(strcmp(a + 53 + 24, ",i=4096") == 0);
    CHECK(strcmp(c + 53 + 24, ",i=4096") == 0);

    challenge(SASL_HASH_SHA256, "ghost", "ghost2@example.com", NULL, b, sizeof(b));
    CHECK(strcmp(a, b) != 0);                   /* per account */
    challenge(SASL_HASH_SHA256, "ghost", "ghost@example.net", NULL, b, sizeof(b));
    CHECK(strcmp(a, b) != 0);                   /* per domain, like real salts */
    challenge(SASL_HASH_SHA1, "ghost", "ghost@example.com", NULL, d, sizeof(d));
    CHECK(strcmp(a, d) != 0);                   /* per family, like real salts */
    /* Another server secret, another fake salt. */
    sasl_scram_conf_t other = conf;
    other.fake_salt_key[0] ^= 1;
    sasl_scram_server_t ex;
    size_t n = 0;
    sasl_scram_server_init(&ex, &other);
    REQUIRE(sasl_scram_server_start(&ex, SASL_HASH_SHA256,
                                    "n,,n=ghost,r=abcdefghijklmnopqrstuvwx", 37) == 0);
    sasl_scram_server_set_nonce(&ex, "ABCDEFGHIJKLMNOPQRSTUVWX", 24);
    REQUIRE(sasl_scram_server_first(&ex, NULL, STR_LIT("ghost@example.com"), b, sizeof(b),
                                    &n) == 0);
    CHECK(strcmp(a, b) != 0);

    /* The client sees a valid challenge; the failure comes at the end, as for a
     * wrong password. */
    CHECK_EQ(exchange(SASL_HASH_SHA256, NULL, STR_LIT("ghost"), STR_LIT(""), "pw", false),
             -EACCES);
    CHECK_EQ(exchange(SASL_HASH_SHA1, NULL, STR_LIT("ghost"), STR_LIT(""), "x", false), -EACCES);
}

/* A server exchange for SHA-256 at the RFC 7677 challenge; returns final's rc. */
static int final_7677(const char *c1, const char *c2)
{
    static sasl_scram_creds_t creds;
    static bool have;
    sasl_scram_server_t ex;
    char out[SASL_SERVER_FIRST_MAX_BYTES];
    size_t n = 0;
    if (!have) {
        creds = creds_for(SASL_HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096);
        have = true;
    }
    REQUIRE(server_start(&ex, SASL_HASH_SHA256, c1) == 0);
    sasl_scram_server_set_nonce(&ex, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", 30);
    REQUIRE(sasl_scram_server_first(&ex, &creds, STR_LIT("user"), out, sizeof(out), &n) == 0);
    int rc = sasl_scram_server_final(&ex, c2, strlen(c2), out, sizeof(out), &n);
    if (rc == 0)
        CHECK_STR(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    sasl_scram_server_fini(&ex);
    return rc;
}

#define C1 "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define R "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define P "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static void test_tampered_final(void)
{
    CHECK_EQ(final_7677(C1, "c=biws," R "," P), 0);
    /* c=: base64 of another header ("y,,"), of the right bytes spelt otherwise
     * is impossible for "n,,", so try the same header with an authzid. */
    CHECK_EQ(final_7677(C1, "c=eSws," R "," P), -EACCES);
    CHECK_EQ(final_7677(C1, "c=bixhPXVzZXIs," R "," P), -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws!," R "," P), -EBADMSG);   /* not base64 */
    CHECK_EQ(final_7677(C1, "c=biw," R "," P), -EBADMSG);     /* not padded */
    CHECK_EQ(final_7677(C1, "c=," R "," P), -EBADMSG);
    /* r=: another server part, only the client part, one byte more or less. */
    CHECK_EQ(final_7677(C1, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1," P),
             -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws,r=rOprNGfwEbeRWgbNEkqO," P), -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws," R "0," P), -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k," P),
             -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws,r=," P), -EBADMSG);
    /* p=: one bit off, too short, too long, not base64. */
    CHECK_EQ(final_7677(C1, "c=biws," R ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU="),
             -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws," R ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R "," P "AAAA"), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ"),
             -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R ",p="), -EBADMSG);
    /* An ignorable extension is syntax-checked, then hashed: this proof no
     * longer matches. "m=" must fail; defined letters are misplaced. */
    CHECK_EQ(final_7677(C1, "c=biws," R ",x=1," P), -EACCES);
    CHECK_EQ(final_7677(C1, "c=biws," R ",m=1," P), -ENOTSUP);
    CHECK_EQ(final_7677(C1, "c=biws," R ",r=1," P), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R ",x=," P), -EBADMSG);
    /* Missing, reordered, trailing. */
    CHECK_EQ(final_7677(C1, ""), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," P), -EBADMSG);
    CHECK_EQ(final_7677(C1, R ",c=biws," P), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R "," P ","), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R "," P ",x=1"), -EBADMSG);
    CHECK_EQ(final_7677(C1, "c=biws," R ",," P), -EBADMSG);
    CHECK_EQ(final_7677(C1, "m=x,c=biws," R "," P), -ENOTSUP);

    char big[SASL_CLIENT_FINAL_MAX_BYTES + 256];
    snprintf(big, sizeof(big), "%s,x=%0*d,%s", "c=biws," R, SASL_CLIENT_FINAL_MAX_BYTES, 0, P);
    CHECK_EQ(final_7677(C1, big), -EMSGSIZE);
}

static void test_malformed_first(void)
{
    static const struct {
        const char *msg;
        int err;
    } cases[] = {
        { "", -EBADMSG },
        { "n", -EBADMSG },
        { "n,", -EBADMSG },
        { "n,,", -EBADMSG },
        { "n,,n=user", -EBADMSG },                      /* no nonce */
        { "n,,r=abc", -EBADMSG },                       /* no username */
        { "n,,r=abc,n=user", -EBADMSG },                /* order */
        { "n,,n=user,r=", -EBADMSG },                   /* empty nonce */
        { "n,,n=,r=abc", -EBADMSG },                    /* empty username */
        { "n,,n=user,r=ab c", -EBADMSG },               /* space is not printable */
        { "n,,n=user,r=ab\x01", -EBADMSG },
        { "n,,n=user,r=\xc3\xa4", -EBADMSG },           /* nonce is ASCII */
        { "n,,n=user,r=abc,", -EBADMSG },               /* trailing comma */
        { "n,,n=user,r=abc,x", -EBADMSG },
        { "n,,n=user,r=abc,x=", -EBADMSG },
        { "n,,n=user,r=abc,r=def", -EBADMSG },
        { "n,,n=us=2Xer,r=abc", -EBADMSG },             /* bad escape */
        { "n,,n=us=2cer,r=abc", -EBADMSG },             /* lowercase escape */
        { "n,,n=user=,r=abc", -EBADMSG },
        { "n,,n=us=2,r=abc", -EBADMSG },
        { "n,,n=us\xff,r=abc", -EBADMSG },              /* invalid UTF-8 */
        { "n,,n=us\xc0\xaf,r=abc", -EBADMSG },          /* overlong */
        { "n,,n=us\xed\xa0\x80,r=abc", -EBADMSG },      /* surrogate */
        { "n,a=,n=user,r=abc", -EBADMSG },              /* empty authzid */
        { "n,a=x", -EBADMSG },
        { "n,b=x,n=user,r=abc", -EBADMSG },
        { "x,,n=user,r=abc", -EBADMSG },                /* bad gs2 flag */
        { "F,n,,n=user,r=abc", -EBADMSG },              /* GS2 non-standard flag */
        { "nn,,n=user,r=abc", -EBADMSG },
        { ",,n=user,r=abc", -EBADMSG },
        { "y", -EBADMSG },
        { "p=tls-unique,,n=user,r=abc", -EPROTONOSUPPORT },
        { "p=tls-exporter,a=x,n=user,r=abc", -EPROTONOSUPPORT },
        { "p=", -EPROTONOSUPPORT },
        { "n,,m=ext,n=user,r=abc", -ENOTSUP },          /* reserved-mext */
        { "n,,n=user,r=abc,m=ext", -ENOTSUP },
        { "n,,n=user,m=ext,r=abc", -ENOTSUP },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sasl_scram_server_t ex;
        int rc = server_start(&ex, SASL_HASH_SHA256, cases[i].msg);
        if (rc != cases[i].err)
            fprintf(stderr, "case %zu \"%s\": %d\n", i, cases[i].msg, rc);
        CHECK_EQ(rc, cases[i].err);
        CHECK_EQ(sasl_failure_for_error(rc), SASL_FAIL_MALFORMED_REQUEST);
        /* Sticky: the next step returns the same error. */
        char out[SASL_SERVER_FIRST_MAX_BYTES];
        size_t n = 0;
        CHECK_EQ(sasl_scram_server_first(&ex, NULL, STR_LIT("x"), out, sizeof(out), &n),
                 cases[i].err);
    }
    /* A NUL inside the username (not expressible as a C literal above). */
    sasl_scram_server_t ex;
    sasl_scram_server_init(&ex, &conf);
    CHECK_EQ(sasl_scram_server_start(&ex, SASL_HASH_SHA1, "n,,n=u\0r,r=abc", 14), -EBADMSG);

    /* Overlong: the whole message, then the nonce alone. */
    char big[SASL_CLIENT_FIRST_MAX_BYTES + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "n,,n=user,r=", 12);
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, big), -EMSGSIZE);
    big[12 + SASL_CNONCE_MAX_BYTES] = '\0';
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, big), 0);
    big[12 + SASL_CNONCE_MAX_BYTES] = 'a';
    big[12 + SASL_CNONCE_MAX_BYTES + 1] = '\0';
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, big), -EMSGSIZE);
    CHECK_STR(sasl_error_text(-EPROTONOSUPPORT), "channel binding is not supported");
}

static void test_good_first(void)
{
    sasl_scram_server_t ex;
    /* 'y' accepted (no -PLUS advertised), escapes decoded, extensions ignored. */
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256,
                          "y,a=ad=3Dmin=2C@x,n=jul=2Ciet=3D,r=a!~+.,x=ext,Y=\xc3\xa4"), 0);
    CHECK_STR(t_str(sasl_scram_server_username(&ex)), "jul,iet=");
    CHECK_STR(t_str(sasl_scram_server_authzid(&ex)), "ad=min,@x");
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA1, "n,,n=\xe2\x82\xac=3D,r=x"), 0);
    CHECK_STR(t_str(sasl_scram_server_username(&ex)), "\xe2\x82\xac=");

    /* The caller's buffer too small: temporary failure, sticky. */
    char out[16];
    size_t n = 0;
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, C1), 0);
    CHECK_EQ(sasl_scram_server_first(&ex, NULL, STR_LIT("u"), out, sizeof(out), &n), -ENOSPC);
    CHECK_EQ(sasl_failure_for_error(-ENOSPC), SASL_FAIL_TEMPORARY_AUTH_FAILURE);
    CHECK_EQ(sasl_scram_server_final(&ex, "x", 1, out, sizeof(out), &n), -ENOSPC);

    /* A random server nonce: 24 base64 characters, different every time. */
    char a[SASL_SERVER_FIRST_MAX_BYTES], b[SASL_SERVER_FIRST_MAX_BYTES];
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, C1), 0);
    CHECK_EQ(sasl_scram_server_first(&ex, NULL, STR_LIT("u"), a, sizeof(a), &n), 0);
    CHECK_EQ(server_start(&ex, SASL_HASH_SHA256, C1), 0);
    CHECK_EQ(sasl_scram_server_first(&ex, NULL, STR_LIT("u"), b, sizeof(b), &n), 0);
    CHECK(strncmp(a, b, 2 + 20 + 24) != 0);
    CHECK_EQ(strchr(a, ',') - a, 2 + 20 + 24);
    sasl_scram_server_fini(&ex);
}

static void test_client_checks(void)
{
    sasl_scram_client_t cl;
    char out[SASL_CLIENT_FINAL_MAX_BYTES];
    size_t n = 0;
    static const struct {
        const char *s1;
        int err;
    } cases[] = {
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4096", 0 },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4096,x=ext", 0 },
        { "r=abc,s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },          /* no server part */
        { "r=abXYZ,s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },        /* not our nonce */
        { "r=abcXYZ,s=QSXCR+Q6sek8bf9,i=4096", -EBADMSG },
        { "r=abcXYZ,s=,i=4096", -EBADMSG },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=04096", -EBADMSG },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4k", -EBADMSG },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=1", -EPROTO },           /* weak */
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4095", -EPROTO },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=99999999999", -EPROTO },
        { "r=abcXYZ,s=QSXCR+Q6sek8bf92", -EBADMSG },
        { "m=1,r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4096", -ENOTSUP },
        { "r=abcXYZ,i=4096,s=QSXCR+Q6sek8bf92", -EBADMSG },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sasl_scram_client_init(&cl, SASL_HASH_SHA1, false);
        sasl_scram_client_set_nonce(&cl, "abc", 3);
        REQUIRE(sasl_scram_client_first(&cl, STR_LIT("u"), STR_LIT(""), out, sizeof(out),
                                        &n) == 0);
        int rc = sasl_scram_client_final(&cl, "pencil", 6, cases[i].s1, strlen(cases[i].s1), out,
                                         sizeof(out), &n);
        if (rc != cases[i].err)
            fprintf(stderr, "client case %zu: %d\n", i, rc);
        CHECK_EQ(rc, cases[i].err);
    }
    /* Server-final: good, wrong, error, malformed. */
    static const struct {
        const char *s2;
        int err;
    } finals[] = {
        { "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 0 },
        { "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,x=1", 0 },
        { "v=rmF9pqV8S7suAoZWja4dJRkFsKA=", -EACCES },
        { "e=invalid-proof", -EACCES },
        { "e=", -EBADMSG },
        { "v=rmF9pqV8S7suAoZWja4dJRkF", -EBADMSG },
        { "v=", -EBADMSG },
        { "", -EBADMSG },
        { "m=x", -ENOTSUP },
        { "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,", -EBADMSG },
    };
    const char *s1 = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    for (size_t i = 0; i < ARRAY_LEN(finals); i++) {
        sasl_scram_client_init(&cl, SASL_HASH_SHA1, false);
        sasl_scram_client_set_nonce(&cl, "fyko+d2lbbFgONRv9qkxdawL", 24);
        REQUIRE(sasl_scram_client_first(&cl, STR_LIT("user"), STR_LIT(""), out, sizeof(out),
                                        &n) == 0);
        REQUIRE(sasl_scram_client_final(&cl, "pencil", 6, s1, strlen(s1), out, sizeof(out),
                                        &n) == 0);
        CHECK_EQ(sasl_scram_client_verify(&cl, finals[i].s2, strlen(finals[i].s2)),
                 finals[i].err);
    }
    /* Bad names. */
    sasl_scram_client_init(&cl, SASL_HASH_SHA1, false);
    CHECK_EQ(sasl_scram_client_first(&cl, STR_LIT(""), STR_LIT(""), out, sizeof(out), &n),
             -EINVAL);
    sasl_scram_client_init(&cl, SASL_HASH_SHA1, false);
    CHECK_EQ(sasl_scram_client_first(&cl, STR_LIT("a\xff"), STR_LIT(""), out, sizeof(out), &n),
             -EINVAL);
}

static void test_plain(void)
{
    str_t z, c, p;
    CHECK_EQ(sasl_plain_parse("\0juliet\0pencil", 14, &z, &c, &p), 0);
    CHECK_EQ(z.len, 0);
    CHECK_STR(t_str(c), "juliet");
    CHECK_STR(t_str(p), "pencil");
    CHECK_EQ(sasl_plain_parse("admin@x\0juliet\0p\xc3\xa4ss word", 25, &z, &c, &p), 0);
    CHECK_STR(t_str(z), "admin@x");
    CHECK_STR(t_str(p), "p\xc3\xa4ss word");

    static const struct {
        const char *msg;
        size_t len;
        int err;
    } bad[] = {
        { "", 0, -EBADMSG },
        { "juliet", 6, -EBADMSG },
        { "\0juliet", 7, -EBADMSG },
        { "\0juliet\0", 8, -EBADMSG },                  /* empty password */
        { "\0\0pencil", 8, -EBADMSG },                  /* empty authcid */
        { "\0juliet\0pen\0cil", 15, -EBADMSG },         /* three NULs */
        { "\0juliet\0pencil\0", 15, -EBADMSG },
        { "\0jul\xffiet\0pencil", 15, -EILSEQ },
        { "\xc3\0juliet\0pencil", 15, -EILSEQ },
        { "\0juliet\0pen\xed\xa0\x80", 14, -EILSEQ },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        CHECK_EQ(sasl_plain_parse(bad[i].msg, bad[i].len, &z, &c, &p), bad[i].err);

    static char big[SASL_AUTHZID_MAX_BYTES + SASL_USERNAME_MAX_BYTES +
                    SASL_PASSWORD_MAX_BYTES + 8];
    memset(big, 'a', sizeof(big));
    big[0] = '\0';
    big[SASL_USERNAME_MAX_BYTES + 2] = '\0';       /* authcid of 1024 bytes */
    CHECK_EQ(sasl_plain_parse(big, SASL_USERNAME_MAX_BYTES + 8, &z, &c, &p), -EMSGSIZE);
    big[SASL_USERNAME_MAX_BYTES + 2] = 'a';
    big[SASL_USERNAME_MAX_BYTES + 1] = '\0';       /* 1023: fits */
    CHECK_EQ(sasl_plain_parse(big, SASL_USERNAME_MAX_BYTES + 8, &z, &c, &p), 0);
    CHECK_EQ(sasl_plain_parse(big, SASL_USERNAME_MAX_BYTES + 3 + SASL_PASSWORD_MAX_BYTES, &z,
                              &c, &p), -EMSGSIZE);
    CHECK_EQ(sasl_plain_parse(big, sizeof(big), &z, &c, &p), -EMSGSIZE);

    sasl_scram_creds_t creds;
    REQUIRE(sasl_scram_creds_new(SASL_HASH_SHA256, "p\xc3\xa4ss word", 10, 4096, &creds) == 0);
    CHECK_EQ(sasl_plain_verify(&creds, STR_LIT("p\xc3\xa4ss word")), 0);
    CHECK_EQ(sasl_plain_verify(&creds, STR_LIT("pa\xcc\x88ss word")), 0);  /* NFC */
    CHECK_EQ(sasl_plain_verify(&creds, STR_LIT("p\xc3\xa4ss\xc2\xa0word")), 0); /* NBSP */
    CHECK_EQ(sasl_plain_verify(&creds, STR_LIT("p\xc3\xa4ss Word")), -EACCES);
    CHECK_EQ(sasl_plain_verify(&creds, STR_LIT("p\xc3\xa4ss\tword")), -EACCES);
    sasl_scram_creds_t sha1 = creds_for(SASL_HASH_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096);
    CHECK_EQ(sasl_plain_verify(&sha1, STR_LIT("pencil")), 0);
    CHECK_EQ(sasl_plain_verify(&sha1, STR_LIT("pencil ")), -EACCES);
}

static void test_creds_blob(void)
{
    sasl_scram_creds_t creds, back;
    uint8_t blob[SASL_CREDS_BLOB_MAX_BYTES + 8];
    size_t n = 0;
    static const sasl_hash_t hashes[] = { SASL_HASH_SHA1, SASL_HASH_SHA256 };

    for (size_t h = 0; h < ARRAY_LEN(hashes); h++) {
        REQUIRE(sasl_scram_creds_new(hashes[h], "pencil", 6, 4096, &creds) == 0);
        CHECK_EQ(sasl_scram_creds_encode(&creds, blob, sizeof(blob), &n), 0);
        CHECK_EQ(n, 7 + 16 + 2 * sasl_hash_len(hashes[h]));
        CHECK_EQ(blob[0], 1);
        CHECK_EQ(blob[1], hashes[h]);
        CHECK_EQ(blob[4], 0x10);                    /* 4096 big-endian */
        CHECK_EQ(sasl_scram_creds_decode(blob, n, &back), 0);
        CHECK(memcmp(&creds, &back, sizeof(creds)) == 0);
        CHECK_EQ(sasl_plain_verify(&back, STR_LIT("pencil")), 0);
        /* Truncated anywhere, or with a trailing byte. */
        for (size_t len = 0; len < n; len++)
            CHECK_EQ(sasl_scram_creds_decode(blob, len, &back), -EBADMSG);
        CHECK_EQ(sasl_scram_creds_decode(blob, n + 1, &back), -EBADMSG);
        CHECK_EQ(sasl_scram_creds_encode(&creds, blob, n - 1, &n), -ENOSPC);
    }

    REQUIRE(sasl_scram_creds_encode(&creds, blob, sizeof(blob), &n) == 0);
    uint8_t mut[sizeof(blob)];
    static const struct {
        size_t off;
        uint8_t val;
    } edits[] = {
        { 0, 0 }, { 0, 2 }, { 1, 0 }, { 1, 3 },     /* version, hash */
        { 2, 0x01 },                                /* 16M+4096 iterations */
        { 4, 0x0f },                                /* 4095 */
        { 4, 0 },                                   /* 0 */
        { 6, 15 }, { 6, 17 }, { 6, 0 }, { 6, 255 },   /* salt_len */
    };
    for (size_t i = 0; i < ARRAY_LEN(edits); i++) {
        memcpy(mut, blob, n);
        mut[edits[i].off] = edits[i].val;
        int rc = sasl_scram_creds_decode(mut, n, &back);
        if (rc != -EBADMSG)
            fprintf(stderr, "edit %zu decoded\n", i);
        CHECK_EQ(rc, -EBADMSG);
    }
    /* SHA-1 hash byte on a SHA-256 blob: the length no longer adds up. */
    memcpy(mut, blob, n);
    mut[1] = SASL_HASH_SHA1;
    CHECK_EQ(sasl_scram_creds_decode(mut, n, &back), -EBADMSG);

    /* Garbage never decodes into something encode would not write back. */
    for (int i = 0; i < 20000; i++) {
        uint8_t junk[SASL_CREDS_BLOB_MAX_BYTES];
        uint8_t len8;
        REQUIRE(RAND_bytes(&len8, 1) == 1 && RAND_bytes(junk, sizeof(junk)) == 1);
        size_t len = len8 % sizeof(junk);
        if (i % 2) {                                /* plausible header */
            junk[0] = 1;
            junk[1] = (uint8_t)(1 + i % 4 / 2);
            junk[2] = 0;
        }
        if (sasl_scram_creds_decode(junk, len, &back) == 0) {
            uint8_t re[SASL_CREDS_BLOB_MAX_BYTES];
            size_t rn = 0;
            CHECK_EQ(sasl_scram_creds_encode(&back, re, sizeof(re), &rn), 0);
            CHECK(rn == len && memcmp(re, junk, len) == 0);
        }
    }

    /* The stored policy: the RFC example's 12-byte salt may be derived and
     * used, but not stored; nor may a count under 4096. */
    creds = creds_for(SASL_HASH_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096);
    CHECK_EQ(sasl_scram_creds_encode(&creds, blob, sizeof(blob), &n), -EINVAL);
    uint8_t salt[16] = { 1 };
    REQUIRE(sasl_scram_derive(SASL_HASH_SHA256, "pencil", 6, salt, 16, 1000, &creds) == 0);
    CHECK_EQ(sasl_scram_creds_encode(&creds, blob, sizeof(blob), &n), -EINVAL);
    CHECK_EQ(sasl_scram_creds_new(SASL_HASH_SHA256, "pencil", 6, 4095, &creds), -EINVAL);
    CHECK_EQ(sasl_scram_derive(SASL_HASH_SHA256, "pencil", 6, salt, 0, 4096, &creds), -EINVAL);
    CHECK_EQ(sasl_scram_derive(SASL_HASH_SHA256, "pencil", 6, salt, 16, 0, &creds), -EINVAL);
    CHECK_EQ(sasl_scram_derive(SASL_HASH_SHA256, "", 0, salt, 16, 4096, &creds), -EINVAL);
    CHECK_EQ(sasl_scram_derive(SASL_HASH_SHA256, "a\x01", 2, salt, 16, 4096, &creds), -EILSEQ);
}

static int prep(const char *in, size_t len, char *out)
{
    size_t n = 0;
    int rc = sasl_password_prepare(in, len, out, SASL_PASSWORD_MAX_BYTES, &n);
    if (rc == 0)
        out[n] = '\0';
    return rc;
}

static void test_password_prepare(void)
{
    static char out[SASL_PASSWORD_MAX_BYTES + 1];
    CHECK_EQ(prep("pencil", 6, out), 0);
    CHECK_STR(out, "pencil");
    CHECK_EQ(prep("A\xcc\x8a", 3, out), 0);               /* A + ring -> U+00C5 */
    CHECK_STR(out, "\xc3\x85");
    CHECK_EQ(prep("\xe2\x84\xab", 3, out), 0);            /* ANGSTROM SIGN -> U+00C5 */
    CHECK_STR(out, "\xc3\x85");
    CHECK_EQ(prep("\xef\xac\x81", 3, out), 0);            /* "fi" ligature: NFC keeps it */
    CHECK_STR(out, "\xef\xac\x81");
    CHECK_EQ(prep("Caf\xc3\xa9", 5, out), 0);             /* no case mapping */
    CHECK_STR(out, "Caf\xc3\xa9");
    CHECK_EQ(prep("a\xc2\xa0" "b\xe3\x80\x80" "c", 8, out), 0);   /* NBSP, ideographic */
    CHECK_STR(out, "a b c");
    CHECK_EQ(prep("a\xe2\x80\x80" "b", 5, out), 0);       /* EN QUAD -> EN SPACE -> ' ' */
    CHECK_STR(out, "a b");
    CHECK_EQ(prep("\xf0\x9f\x94\x91", 4, out), 0);        /* astral symbol */
    CHECK_STR(out, "\xf0\x9f\x94\x91");

    CHECK_EQ(prep("", 0, out), -EINVAL);
    CHECK_EQ(prep("a\tb", 3, out), -EILSEQ);              /* Cc */
    CHECK_EQ(prep("a\0b", 3, out), -EILSEQ);
    CHECK_EQ(prep("a\x7f", 2, out), -EILSEQ);
    CHECK_EQ(prep("a\xc2\x85", 3, out), -EILSEQ);         /* NEL is Cc */
    CHECK_EQ(prep("\xff", 1, out), -EILSEQ);
    CHECK_EQ(prep("\xc3", 1, out), -EILSEQ);
    CHECK_EQ(prep("\xc0\x80", 2, out), -EILSEQ);          /* overlong NUL */
    CHECK_EQ(prep("\xed\xa0\x80", 3, out), -EILSEQ);      /* surrogate */
    CHECK_EQ(prep("\xf4\x90\x80\x80", 4, out), -EILSEQ);  /* past U+10FFFF */
    CHECK_EQ(prep("\xef\xbf\xbe", 3, out), -EILSEQ);      /* U+FFFE noncharacter */
    CHECK_EQ(prep("\xf3\xa0\x80\x80", 4, out), -EILSEQ);  /* U+E0000 unassigned */

    static char big[SASL_PASSWORD_MAX_BYTES + 1];
    memset(big, 'x', sizeof(big));
    CHECK_EQ(prep(big, SASL_PASSWORD_MAX_BYTES, out), 0);
    CHECK_EQ(prep(big, SASL_PASSWORD_MAX_BYTES + 1, out), -EMSGSIZE);
    /* U+1F82 (3 bytes) decomposes into 4 code points: 300 of them (900 bytes)
     * exceed the code-point bound, refused rather than cut. */
    for (int i = 0; i < 300; i++)
        memcpy(big + 3 * i, "\xe1\xbe\x82", 3);
    CHECK_EQ(prep(big, 900, out), -EMSGSIZE);
    CHECK_EQ(prep(big, 600, out), 0);                     /* 800 code points: fine */
    CHECK_EQ(strlen(out), 600);                           /* and composed back */
    /* The result must fit the caller's buffer. */
    size_t n = 0;
    CHECK_EQ(sasl_password_prepare("pencil", 6, out, 5, &n), -EMSGSIZE);
}

static void test_names(void)
{
    static const char *const expect[SASL_FAIL_COUNT] = {
        "aborted", "account-disabled", "credentials-expired", "encryption-required",
        "incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
        "mechanism-too-weak", "not-authorized", "temporary-auth-failure",
    };
    for (unsigned i = 0; i < SASL_FAIL_COUNT; i++)
        CHECK_STR(sasl_failure_name((sasl_failure_t)i), expect[i]);
    CHECK_EQ(sasl_failure_for_error(-EBADMSG), SASL_FAIL_MALFORMED_REQUEST);
    CHECK_EQ(sasl_failure_for_error(-EMSGSIZE), SASL_FAIL_MALFORMED_REQUEST);
    CHECK_EQ(sasl_failure_for_error(-ENOTSUP), SASL_FAIL_MALFORMED_REQUEST);
    CHECK_EQ(sasl_failure_for_error(-EPROTONOSUPPORT), SASL_FAIL_MALFORMED_REQUEST);
    CHECK_EQ(sasl_failure_for_error(-EIO), SASL_FAIL_TEMPORARY_AUTH_FAILURE);
    /* Wrong password and unknown user read the same. */
    CHECK_STR(sasl_error_text(-EACCES), "authentication failed");

    sasl_mech_t m;
    CHECK_EQ(sasl_mech_from_name(STR_LIT("SCRAM-SHA-256"), &m), 0);
    CHECK_EQ(m, SASL_MECH_SCRAM_SHA_256);
    CHECK_EQ(sasl_mech_from_name(STR_LIT("PLAIN"), &m), 0);
    CHECK_EQ(m, SASL_MECH_PLAIN);
    CHECK_EQ(sasl_mech_from_name(STR_LIT("SCRAM-SHA-1"), &m), 0);
    CHECK_EQ(m, SASL_MECH_SCRAM_SHA_1);
    CHECK_EQ(sasl_mech_from_name(STR_LIT("SCRAM-SHA-256-PLUS"), &m), -ENOENT);
    CHECK_EQ(sasl_mech_from_name(STR_LIT("plain"), &m), -ENOENT);
    CHECK_STR(sasl_mech_name(SASL_MECH_SCRAM_SHA_1), "SCRAM-SHA-1");
    CHECK_EQ(sasl_hash_len(SASL_HASH_SHA1), 20);
    CHECK_EQ(sasl_hash_len(SASL_HASH_SHA256), 32);
}

int main(void)
{
    T_RUN(test_rfc5802_sha1);
    T_RUN(test_rfc7677_sha256);
    T_RUN(test_full_exchanges);
    T_RUN(test_wrong_password);
    T_RUN(test_unknown_user);
    T_RUN(test_tampered_final);
    T_RUN(test_malformed_first);
    T_RUN(test_good_first);
    T_RUN(test_client_checks);
    T_RUN(test_plain);
    T_RUN(test_creds_blob);
    T_RUN(test_password_prepare);
    T_RUN(test_names);
    T_DONE();
}
