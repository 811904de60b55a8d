/*
 * libFuzzer target for the SASL parsers (protocols/xmpp/sasl*.c).
 *
 * Input: one control byte, then the bytes under test.
 *   (ctl & 7) % 5 selects what the bytes are:
 *     0  a client-first-message for sasl_scram_server_start, then, if it
 *        parses, sasl_scram_server_first
 *     1  a client-final-message, after the RFC 5802/7677 example's first two
 *        messages (so the examples' own final message succeeds)
 *     2  a stored-credentials blob for sasl_scram_creds_decode
 *     3  a PLAIN message for sasl_plain_parse (then sasl_plain_verify), and the
 *        same bytes as a password for sasl_password_prepare
 *     4  a server-final-message for the client's sasl_scram_client_verify,
 *        after the example's exchange
 *   bit 3  SCRAM-SHA-1 instead of SCRAM-SHA-256
 *   bit 4  modes 0 and 1: the user is unknown (server_first gets NULL creds)
 *
 * Besides crashes and sanitizer reports, these are findings (trap):
 *   - a parsed username or authzid that is not UTF-8 or contains NUL;
 *   - a server-first-message that does not start "r=<client nonce><server
 *     nonce>,s=" or does not fit its bound;
 *   - a successful final step for an unknown user, or a server signature the
 *     client does not accept;
 *   - a decoded blob that does not encode back to the same bytes;
 *   - PLAIN fields outside their bounds, with NUL, or not UTF-8;
 *   - password preparation that is not idempotent or yields invalid UTF-8.
 *
 * The client's parsing of a server-first-message is not fuzzed here: every
 * well-formed one costs a PBKDF2 of at least 4096 (and up to ten million)
 * iterations, which would starve the rest.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/base64.h>

#include "protocols/xmpp/sasl.h"
#include "tests/fuzz/fuzz.h"

static const sasl_scram_conf_t conf = {
    .fake_salt_key = "fuzz fuzz fuzz fuzz fuzz fuzz !!",
    .fake_iterations = SASL_ITERATIONS_DEFAULT,
};

/* One RFC example per hash, with the client's state after each step. */
typedef struct {
    sasl_hash_t hash;
    const char *salt, *cnonce, *snonce;
    sasl_scram_creds_t creds;       /* pencil, RFC salt, 4096 */
    sasl_scram_creds_t cheap;       /* pencil, 1 iteration: for PLAIN */
    char c1[SASL_CLIENT_FIRST_MAX_BYTES];
    size_t c1_len;
    sasl_scram_client_t after_final;
} example_t;

static example_t examples[2] = {
    { .hash = SASL_HASH_SHA256, .salt = "W22ZaJ0SNY7soEsUEjb6gQ==",
      .cnonce = "rOprNGfwEbeRWgbNEkqO", .snonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" },
    { .hash = SASL_HASH_SHA1, .salt = "QSXCR+Q6sek8bf92",
      .cnonce = "fyko+d2lbbFgONRv9qkxdawL", .snonce = "3rfcNHYJY1ZVvWVs7j" },
};

static void check_slice(str_t s)
{
    /* Reading every byte lets ASan catch a slice outside its buffer. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
}

static void check_name(str_t s)
{
    check_slice(s);
    if (memchr(s.ptr, '\0', s.len) || !sasl_utf8_valid(s.ptr, s.len))
        __builtin_trap();
}

static void setup_example(example_t *e)
{
    static const uint8_t cheap_salt[16] = "cheap salt 16 b";
    char s1[SASL_SERVER_FIRST_MAX_BYTES], c2[SASL_CLIENT_FINAL_MAX_BYTES];
    uint8_t salt[SASL_SALT_MAX_BYTES];
    size_t salt_len = 0, n = 0;
    sasl_scram_client_t cl;

    if (EVP_DecodeBase64(salt, &salt_len, sizeof(salt), (const uint8_t *)e->salt,
                         strlen(e->salt)) != 1 ||
        sasl_scram_derive(e->hash, "pencil", 6, salt, salt_len, 4096, &e->creds) != 0 ||
        sasl_scram_derive(e->hash, "pencil", 6, cheap_salt, 16, 1, &e->cheap) != 0)
        __builtin_trap();
    sasl_scram_client_init(&cl, e->hash, false);
    sasl_scram_client_set_nonce(&cl, e->cnonce, strlen(e->cnonce));
    if (sasl_scram_client_first(&cl, STR_LIT("user"), STR_LIT(""), e->c1, sizeof(e->c1),
                                &e->c1_len) != 0)
        __builtin_trap();
    n = (size_t)snprintf(s1, sizeof(s1), "r=%s%s,s=%s,i=4096", e->cnonce, e->snonce, e->salt);
    if (sasl_scram_client_final(&cl, "pencil", 6, s1, n, c2, sizeof(c2), &n) != 0)
        __builtin_trap();
    e->after_final = cl;
}

static void setup(void)
{
    static bool done;
    if (done)
        return;
    for (size_t i = 0; i < ARRAY_LEN(examples); i++)
        setup_example(&examples[i]);
    done = true;
}

/* Starts a server exchange on msg; on success runs server_first and checks it. */
static int start_and_challenge(sasl_scram_server_t *ex, const example_t *e, bool unknown,
                               const char *msg, size_t len)
{
    char s1[SASL_SERVER_FIRST_MAX_BYTES];
    size_t n = 0;

    sasl_scram_server_init(ex, &conf);
    int rc = sasl_scram_server_start(ex, e->hash, msg, len);
    if (rc < 0) {
        if (sasl_failure_for_error(rc) != SASL_FAIL_MALFORMED_REQUEST)
            __builtin_trap();
        return rc;
    }
    check_name(sasl_scram_server_username(ex));
    check_name(sasl_scram_server_authzid(ex));
    if (sasl_scram_server_username(ex).len == 0)
        __builtin_trap();
    sasl_scram_server_set_nonce(ex, e->snonce, strlen(e->snonce));
    /* The account key as a caller would build it: prepared name and domain. */
    char account[SASL_CLIENT_FIRST_MAX_BYTES + 16];
    str_t user = sasl_scram_server_username(ex);
    memcpy(account, user.ptr, user.len);
    memcpy(account + user.len, "@example.com", 12);
    rc = sasl_scram_server_first(ex, unknown ? NULL : &e->creds,
                                 (str_t){ account, user.len + 12 }, s1, sizeof(s1), &n);
    if (rc < 0)
        return rc;
    /* "r=" <client nonce as sent> <server nonce> ",s=": the nonce runs to the
     * first ',' and the client part must appear in the input as ",r=<it>". */
    size_t sn = strlen(e->snonce);
    const char *comma = memchr(s1, ',', n);
    if (n >= sizeof(s1) || s1[n] != '\0' || !comma || memcmp(s1, "r=", 2) != 0 ||
        strncmp(comma, ",s=", 3) != 0)
        __builtin_trap();
    size_t cn = (size_t)(comma - s1) - 2 - sn;
    char needle[SASL_SERVER_FIRST_MAX_BYTES + 3];
    if ((size_t)(comma - s1) <= 2 + sn || memcmp(comma - sn, e->snonce, sn) != 0)
        __builtin_trap();
    memcpy(needle, ",r=", 3);
    memcpy(needle + 3, s1 + 2, cn);
    const char *at = memmem(msg, len, needle, cn + 3);
    if (!at || (at + 3 + cn != msg + len && at[3 + cn] != ','))
        __builtin_trap();
    return 0;
}

static void fuzz_first(const example_t *e, bool unknown, const char *d, size_t n)
{
    sasl_scram_server_t ex;
    start_and_challenge(&ex, e, unknown, d, n);
    sasl_scram_server_fini(&ex);
}

static void fuzz_final(const example_t *e, bool unknown, const char *d, size_t n)
{
    sasl_scram_server_t ex;
    char s2[SASL_SERVER_FINAL_MAX_BYTES];
    size_t len = 0;

    if (start_and_challenge(&ex, e, unknown, e->c1, e->c1_len) != 0)
        __builtin_trap();
    int rc = sasl_scram_server_final(&ex, d, n, s2, sizeof(s2), &len);
    if (rc == 0) {
        sasl_scram_client_t cl = e->after_final;
        if (unknown || len >= sizeof(s2) || sasl_scram_client_verify(&cl, s2, len) != 0)
            __builtin_trap();
    } else if (sasl_failure_for_error(rc) == SASL_FAIL_TEMPORARY_AUTH_FAILURE) {
        __builtin_trap();           /* buffers are big enough; only the client is at fault */
    }
    /* Sticky: a retry answers the same. */
    if (rc < 0 && sasl_scram_server_final(&ex, d, n, s2, sizeof(s2), &len) != rc)
        __builtin_trap();
    sasl_scram_server_fini(&ex);
}

static void fuzz_blob(const uint8_t *d, size_t n)
{
    sasl_scram_creds_t creds;
    uint8_t again[SASL_CREDS_BLOB_MAX_BYTES];
    size_t len = 0;

    if (sasl_scram_creds_decode(d, n, &creds) != 0)
        return;
    if (sasl_scram_creds_encode(&creds, again, sizeof(again), &len) != 0 || len != n ||
        memcmp(again, d, n) != 0)
        __builtin_trap();
}

static void fuzz_plain(const example_t *e, const char *d, size_t n)
{
    str_t z, c, p;
    if (sasl_plain_parse(d, n, &z, &c, &p) == 0) {
        check_name(z);
        check_name(c);
        check_name(p);
        if (c.len == 0 || p.len == 0 || z.len > SASL_AUTHZID_MAX_BYTES ||
            c.len > SASL_USERNAME_MAX_BYTES || p.len > SASL_PASSWORD_MAX_BYTES)
            __builtin_trap();
        int rc = sasl_plain_verify(&e->cheap, p);
        if (rc != 0 && rc != -EACCES)
            __builtin_trap();
    }

    /* Preparation is a projection: preparing its output changes nothing. */
    static char once[SASL_PASSWORD_MAX_BYTES], twice[SASL_PASSWORD_MAX_BYTES];
    size_t n1 = 0, n2 = 0;
    if (sasl_password_prepare(d, n, once, sizeof(once), &n1) != 0)
        return;
    if (n1 == 0 || !sasl_utf8_valid(once, n1) || memchr(once, '\0', n1) ||
        sasl_password_prepare(once, n1, twice, sizeof(twice), &n2) != 0 || n1 != n2 ||
        memcmp(once, twice, n1) != 0)
        __builtin_trap();
}

static void fuzz_verify(const example_t *e, const char *d, size_t n)
{
    sasl_scram_client_t cl = e->after_final;
    int rc = sasl_scram_client_verify(&cl, d, n);
    if (rc != 0 && rc != -EACCES && rc != -EBADMSG && rc != -ENOTSUP && rc != -EMSGSIZE)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    uint8_t ctl = data[0];
    const example_t *e = &examples[(ctl & 0x08) ? 1 : 0];
    bool unknown = ctl & 0x10;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;

    switch ((ctl & 7) % 5) {
    case 0:
        fuzz_first(e, unknown, d, n);
        break;
    case 1:
        fuzz_final(e, unknown, d, n);
        break;
    case 2:
        fuzz_blob(data + 1, n);
        break;
    case 3:
        fuzz_plain(e, d, n);
        break;
    default:
        fuzz_verify(e, d, n);
        break;
    }
    return 0;
}
