/*
 * sasl_scram.c - see sasl.h. SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677):
 * stored credentials, the server exchange and a client.
 *
 * RFC 5802 §3, which everything below computes:
 *   SaltedPassword  = Hi(Normalize(password), salt, i)      (PBKDF2-HMAC)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key")
 *   StoredKey       = H(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage     = client-first-message-bare + "," + server-first-message + ","
 *                     + client-final-message-without-proof
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientProof     = ClientKey XOR ClientSignature
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 * The server recovers ClientKey = ClientProof XOR ClientSignature and checks
 * H(ClientKey) == StoredKey. It keeps the messages verbatim (not re-encoded
 * from what it parsed), so AuthMessage is byte for byte what the client hashed.
 */
#include "protocols/xmpp/sasl.h"

#include <errno.h>
#include <stdio.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

/* Characters of base64 for n bytes, with padding, without a NUL. */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

#define CREDS_VERSION 1
#define CREDS_HEADER_BYTES 7        /* version, hash, u32 iterations, salt_len */

/* Decimal digits of SASL_ITERATIONS_MAX. */
#define ITERATIONS_MAX_DIGITS 8

/* Domain separation for the fake salt of unknown users (HMAC input prefix). */
#define FAKE_SALT_LABEL "presenced SCRAM fake salt v1"

_Static_assert(SASL_ITERATIONS_MAX < 100000000u, "ITERATIONS_MAX_DIGITS");
_Static_assert(SASL_SALT_NEW_BYTES >= SASL_SALT_MIN_BYTES, "new salts meet the stored policy");
_Static_assert(SASL_SALT_MAX_BYTES <= UINT8_MAX, "salt_len is one byte in the blob");
_Static_assert(SASL_CREDS_BLOB_MAX_BYTES ==
               CREDS_HEADER_BYTES + SASL_SALT_MAX_BYTES + 2 * SASL_DIGEST_MAX_BYTES, "blob");
_Static_assert(B64_LEN(SASL_SNONCE_RANDOM_BYTES) <= SASL_SNONCE_MAX_BYTES, "snonce");
_Static_assert(SASL_SNONCE_RANDOM_BYTES % 3 == 0, "random nonces have no '=' padding");
_Static_assert(SASL_SERVER_FIRST_MAX_BYTES >= 2 + SASL_CNONCE_MAX_BYTES + SASL_SNONCE_MAX_BYTES +
               3 + B64_LEN(SASL_SALT_MAX_BYTES) + 3 + ITERATIONS_MAX_DIGITS + 1,
               "largest server-first-message we send");
/* Our client's largest client-final: c= over a whole first message, r= as long
 * as a server-first we accept, p=, and the NUL. */
_Static_assert(SASL_CLIENT_FINAL_MAX_BYTES >= 2 + B64_LEN(SASL_CLIENT_FIRST_MAX_BYTES) + 3 +
               SASL_SERVER_FIRST_MAX_BYTES + 3 + B64_LEN(SASL_DIGEST_MAX_BYTES) + 1,
               "largest client-final-message");
_Static_assert(SASL_SERVER_FINAL_MAX_BYTES >= 2 + B64_LEN(SASL_DIGEST_MAX_BYTES) + 1, "v=");
_Static_assert(SASL_CLIENT_FIRST_MAX_BYTES <= UINT16_MAX, "offsets are 16 bits");
_Static_assert(sizeof(sasl_scram_server_t) <= 3072, "the exchange stays small");

enum {
    ST_INIT = 0,
    ST_STARTED,             /* server: client-first parsed */
    ST_CHALLENGED,          /* server: server-first sent */
    ST_SENT_FIRST,          /* client */
    ST_SENT_FINAL,          /* client */
    ST_DONE,
    ST_FAILED,
};

/* ---- Primitives ---------------------------------------------------------- */

static bool hash_valid(int hash)
{
    return hash == SASL_HASH_SHA1 || hash == SASL_HASH_SHA256;
}

static const EVP_MD *scram_md(sasl_hash_t hash)
{
    ASSERT(hash_valid(hash));
    return hash == SASL_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 5802 §7: printable = %x21-2B / %x2D-7E (visible ASCII but ','). */
static bool nonce_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return false;
    }
    return len > 0;
}

/* Base64 of src into dst (room for B64_LEN(n) + 1); returns the length. */
static size_t b64_encode(char *dst, const uint8_t *src, size_t n)
{
    size_t w = EVP_EncodeBlock((uint8_t *)dst, src, n);
    ASSERT(w == B64_LEN(n));
    return w;
}

/* Strict base64 (RFC 4648 §4, padded, no whitespace) of a non-empty value;
 * false when malformed or when it could decode to more than cap bytes. */
static bool b64_decode(str_t in, uint8_t *out, size_t cap, size_t *out_len)
{
    if (in.len == 0)
        return false;
    return EVP_DecodeBase64(out, out_len, cap, (const uint8_t *)in.ptr, in.len) == 1;
}

/* HMAC over the concatenation of parts, without copying them together. */
static int hmac_parts(sasl_hash_t hash, const uint8_t *key, size_t key_len, const str_t *parts,
                      size_t nparts, uint8_t *out)
{
    HMAC_CTX ctx;
    unsigned out_len = 0;
    int ok;

    HMAC_CTX_init(&ctx);
    ok = HMAC_Init_ex(&ctx, key, key_len, scram_md(hash), NULL);
    for (size_t i = 0; ok && i < nparts; i++)
        ok = HMAC_Update(&ctx, (const uint8_t *)parts[i].ptr, parts[i].len);
    ok = ok && HMAC_Final(&ctx, out, &out_len);
    HMAC_CTX_cleanup(&ctx);
    if (!ok)
        return -EIO;
    ASSERT(out_len == sasl_hash_len(hash));
    return 0;
}

/* RFC 5802 §3 from an already prepared password: ClientKey (if wanted),
 * StoredKey and ServerKey. */
static int scram_keys(sasl_hash_t hash, const char *password, size_t password_len,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations,
                      uint8_t *client_key, uint8_t *stored_key, uint8_t *server_key)
{
    const EVP_MD *md = scram_md(hash);
    size_t dlen = sasl_hash_len(hash);
    uint8_t salted[SASL_DIGEST_MAX_BYTES], ckey[SASL_DIGEST_MAX_BYTES];
    unsigned n = 0, m = 0;
    int rc = -EIO;

    if (!PKCS5_PBKDF2_HMAC(password, password_len, salt, salt_len, iterations, md, dlen, salted))
        goto out;
    if (!HMAC(md, salted, dlen, (const uint8_t *)"Client Key", 10, ckey, &n) ||
        !HMAC(md, salted, dlen, (const uint8_t *)"Server Key", 10, server_key, &m) ||
        !EVP_Digest(ckey, dlen, stored_key, NULL, md, NULL))
        goto out;
    ASSERT(n == dlen && m == dlen);
    if (client_key)
        memcpy(client_key, ckey, dlen);
    rc = 0;
out:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    return rc;
}

/* sasl_password_prepare, then scram_keys. */
static int derive_keys(sasl_hash_t hash, const char *password, size_t password_len,
                       const uint8_t *salt, size_t salt_len, uint32_t iterations,
                       uint8_t *client_key, uint8_t *stored_key, uint8_t *server_key)
{
    char prepared[SASL_PASSWORD_MAX_BYTES];
    size_t plen = 0;

    if (salt_len == 0 || salt_len > SASL_SALT_MAX_BYTES || iterations == 0 ||
        iterations > SASL_ITERATIONS_MAX)
        return -EINVAL;
    int rc = sasl_password_prepare(password, password_len, prepared, sizeof(prepared), &plen);
    if (rc == 0)
        rc = scram_keys(hash, prepared, plen, salt, salt_len, iterations, client_key,
                        stored_key, server_key);
    OPENSSL_cleanse(prepared, sizeof(prepared));
    return rc;
}

/* ---- Attribute scanning (RFC 5802 §7: attr-val *("," attr-val)) ------------- */

typedef struct {
    const char *p, *end;
    bool comma;             /* a ',' was consumed: another attribute must follow */
} scan_t;

static bool scan_more(const scan_t *s)
{
    return s->p < s->end || s->comma;
}

/* Reads "<ALPHA>=<value>" up to the next ',' or the end. The value may be
 * empty here; each caller decides. */
static int scan_attr(scan_t *s, char *name, str_t *value)
{
    if (s->end - s->p < 2 || !is_alpha(s->p[0]) || s->p[1] != '=')
        return -EBADMSG;
    *name = s->p[0];
    const char *v = s->p + 2;
    const char *comma = memchr(v, ',', (size_t)(s->end - v));
    const char *vend = comma ? comma : s->end;
    *value = (str_t){ v, (size_t)(vend - v) };
    s->p = comma ? comma + 1 : s->end;
    s->comma = comma != NULL;
    return 0;
}

/* An attribute where an extension may stand: "m" must fail the exchange (RFC 5802
 * §5.1), letters this RFC defines are misplaced, others are ignored (§7) once
 * their value is a valid value (1*value-char: UTF-8 without NUL or ','). */
static int check_extension(char name, str_t value)
{
    if (name == 'm')
        return -ENOTSUP;
    if (strchr("acinprsve", name))
        return -EBADMSG;
    if (value.len == 0 || memchr(value.ptr, '\0', value.len) ||
        !sasl_utf8_valid(value.ptr, value.len))
        return -EBADMSG;
    return 0;
}

/* Reads the attribute that must come next; "m" fails as -ENOTSUP wherever it is. */
static int expect_attr(scan_t *s, char want, str_t *value)
{
    char name;
    if (!scan_more(s) || scan_attr(s, &name, value) < 0)
        return -EBADMSG;
    if (name == want)
        return 0;
    return name == 'm' ? -ENOTSUP : -EBADMSG;
}

/*
 * saslname (RFC 5802 §5.1, §7): non-empty; "=2C" is ',' and "=3D" is '=', any
 * other '=' is an error; no NUL; UTF-8. Writes the decoded name to out (at most
 * in.len bytes).
 */
static int decode_saslname(str_t in, char *out, size_t *out_len)
{
    size_t o = 0;
    if (in.len == 0)
        return -EBADMSG;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.ptr[i];
        if (c == '\0')
            return -EBADMSG;
        if (c == '=') {
            if (in.len - i < 3)
                return -EBADMSG;
            if (in.ptr[i + 1] == '2' && in.ptr[i + 2] == 'C')
                c = ',';
            else if (in.ptr[i + 1] == '3' && in.ptr[i + 2] == 'D')
                c = '=';
            else
                return -EBADMSG;
            i += 2;
        }
        out[o++] = c;
    }
    if (!sasl_utf8_valid(out, o))
        return -EBADMSG;
    *out_len = o;
    return 0;
}

/* ---- Message building ------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap, len;
    bool overflow;
} sb_t;

static void sb_put(sb_t *b, const char *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void sb_str(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_b64(sb_t *b, const uint8_t *src, size_t n)
{
    char tmp[B64_LEN(SASL_CLIENT_FIRST_MAX_BYTES) + 1];
    ASSERT(n <= SASL_CLIENT_FIRST_MAX_BYTES);
    sb_put(b, tmp, b64_encode(tmp, src, n));
}

/* A saslname: ',' and '=' escaped (RFC 5802 §5.1). */
static void sb_saslname(sb_t *b, str_t name)
{
    for (size_t i = 0; i < name.len; i++) {
        if (name.ptr[i] == ',')
            sb_put(b, "=2C", 3);
        else if (name.ptr[i] == '=')
            sb_put(b, "=3D", 3);
        else
            sb_put(b, &name.ptr[i], 1);
    }
}

/* Copies a built message to the caller's buffer with a NUL. */
static int emit(const char *msg, size_t len, char *out, size_t cap, size_t *out_len)
{
    if (len >= cap)
        return -ENOSPC;
    memcpy(out, msg, len);
    out[len] = '\0';
    *out_len = len;
    return 0;
}

/* Random printable nonce: base64 of SASL_SNONCE_RANDOM_BYTES bytes (no padding,
 * so no '='; base64 never yields ','). Returns its length or -EIO. */
static int random_nonce(char *dst)
{
    uint8_t raw[SASL_SNONCE_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    return (int)b64_encode(dst, raw, sizeof(raw));
}

/* ---- Credentials ------------------------------------------------------------- */

int sasl_scram_derive(sasl_hash_t hash, const char *password, size_t password_len,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations,
                      sasl_scram_creds_t *out)
{
    ASSERT(hash_valid(hash));
    sasl_scram_creds_t c;
    memset(&c, 0, sizeof(c));       /* unused key bytes are zero: encode is canonical */
    int rc = derive_keys(hash, password, password_len, salt, salt_len, iterations, NULL,
                         c.stored_key, c.server_key);
    if (rc == 0) {
        c.hash = hash;
        c.iterations = iterations;
        c.salt_len = (uint8_t)salt_len;
        memcpy(c.salt, salt, salt_len);
        *out = c;
    }
    OPENSSL_cleanse(&c, sizeof(c));
    return rc;
}

int sasl_scram_creds_new(sasl_hash_t hash, const char *password, size_t password_len,
                         uint32_t iterations, sasl_scram_creds_t *out)
{
    uint8_t salt[SASL_SALT_NEW_BYTES];
    if (iterations < SASL_ITERATIONS_MIN || iterations > SASL_ITERATIONS_MAX)
        return -EINVAL;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -EIO;
    return sasl_scram_derive(hash, password, password_len, salt, sizeof(salt), iterations, out);
}

int sasl_scram_creds_encode(const sasl_scram_creds_t *creds, uint8_t *out, size_t cap,
                            size_t *out_len)
{
    ASSERT(hash_valid(creds->hash));
    ASSERT(creds->salt_len <= SASL_SALT_MAX_BYTES);
    if (creds->salt_len < SASL_SALT_MIN_BYTES || creds->iterations < SASL_ITERATIONS_MIN ||
        creds->iterations > SASL_ITERATIONS_MAX)
        return -EINVAL;
    size_t dlen = sasl_hash_len(creds->hash);
    size_t need = CREDS_HEADER_BYTES + creds->salt_len + 2 * dlen;
    if (need > cap)
        return -ENOSPC;
    uint32_t it = creds->iterations;
    uint8_t *p = out;
    *p++ = CREDS_VERSION;
    *p++ = (uint8_t)creds->hash;
    *p++ = (uint8_t)(it >> 24);
    *p++ = (uint8_t)(it >> 16);
    *p++ = (uint8_t)(it >> 8);
    *p++ = (uint8_t)it;
    *p++ = creds->salt_len;
    memcpy(p, creds->salt, creds->salt_len);
    p += creds->salt_len;
    memcpy(p, creds->stored_key, dlen);
    p += dlen;
    memcpy(p, creds->server_key, dlen);
    p += dlen;
    ASSERT((size_t)(p - out) == need);
    *out_len = need;
    return 0;
}

int sasl_scram_creds_decode(const uint8_t *blob, size_t len, sasl_scram_creds_t *out)
{
    if (len < CREDS_HEADER_BYTES || blob[0] != CREDS_VERSION || !hash_valid(blob[1]))
        return -EBADMSG;
    sasl_hash_t hash = (sasl_hash_t)blob[1];
    uint32_t it = (uint32_t)blob[2] << 24 | (uint32_t)blob[3] << 16 | (uint32_t)blob[4] << 8 |
                  blob[5];
    size_t salt_len = blob[6], dlen = sasl_hash_len(hash);
    if (it < SASL_ITERATIONS_MIN || it > SASL_ITERATIONS_MAX ||
        salt_len < SASL_SALT_MIN_BYTES || salt_len > SASL_SALT_MAX_BYTES ||
        len != CREDS_HEADER_BYTES + salt_len + 2 * dlen)
        return -EBADMSG;
    const uint8_t *p = blob + CREDS_HEADER_BYTES;
    memset(out, 0, sizeof(*out));
    out->hash = hash;
    out->iterations = it;
    out->salt_len = (uint8_t)salt_len;
    memcpy(out->salt, p, salt_len);
    memcpy(out->stored_key, p + salt_len, dlen);
    memcpy(out->server_key, p + salt_len + dlen, dlen);
    return 0;
}

/* ---- Server ------------------------------------------------------------------ */

static void assert_server_state(const sasl_scram_server_t *ex)
{
    ASSERT(ex->state <= ST_FAILED && ex->state != ST_SENT_FIRST && ex->state != ST_SENT_FINAL);
    ASSERT(ex->first_len <= SASL_CLIENT_FIRST_MAX_BYTES &&
           ex->user_off + ex->user_len <= SASL_CLIENT_FIRST_MAX_BYTES);
}

static int server_fail(sasl_scram_server_t *ex, int err)
{
    ASSERT(err < 0);
    ex->state = ST_FAILED;
    ex->err = err;
    OPENSSL_cleanse(ex->stored_key, sizeof(ex->stored_key));
    OPENSSL_cleanse(ex->server_key, sizeof(ex->server_key));
    return err;
}

void sasl_scram_server_init(sasl_scram_server_t *ex, const sasl_scram_conf_t *conf)
{
    ASSERT(conf->fake_iterations >= SASL_ITERATIONS_MIN);
    ASSERT(conf->fake_iterations <= SASL_ITERATIONS_MAX);
    OPENSSL_cleanse(ex, sizeof(*ex));
    ex->conf = conf;
    ex->state = ST_INIT;
}

void sasl_scram_server_fini(sasl_scram_server_t *ex)
{
    OPENSSL_cleanse(ex, sizeof(*ex));
}

/* gs2-header = gs2-cbind-flag "," [ authzid ] ","  (RFC 5802 §7) */
static int parse_gs2_header(sasl_scram_server_t *ex, size_t *names_used)
{
    const char *m = ex->first, *end = m + ex->first_len, *p;

    /* We advertise no SCRAM-*-PLUS: a client that insists on binding must fail
     * (RFC 5802 §6), and says which flag ("p=<cb-name>"). */
    if (ex->first_len >= 2 && m[0] == 'p' && m[1] == '=')
        return -EPROTONOSUPPORT;
    /* 'y': the client could bind but saw no -PLUS offered; true, so accept.
     * Should -PLUS ever be offered, 'y' must then fail (downgrade, §6). */
    if (ex->first_len < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',')
        return -EBADMSG;
    p = m + 2;
    if (*p != ',') {
        if (end - p < 2 || p[0] != 'a' || p[1] != '=')
            return -EBADMSG;
        const char *v = p + 2;
        const char *comma = memchr(v, ',', (size_t)(end - v));
        if (!comma)
            return -EBADMSG;
        size_t dlen = 0;
        int rc = decode_saslname((str_t){ v, (size_t)(comma - v) }, ex->names, &dlen);
        if (rc < 0)
            return rc;
        ex->authzid_off = 0;
        ex->authzid_len = (uint16_t)dlen;
        *names_used = dlen;
        p = comma;
    }
    ASSERT(p < end && *p == ',');
    ex->gs2_len = (uint16_t)(p + 1 - m);
    return 0;
}

/* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
static int parse_client_first(sasl_scram_server_t *ex, const char *msg, size_t len)
{
    size_t names_used = 0, dlen = 0;
    str_t user, nonce, value;
    char name;
    int rc;

    if (len > SASL_CLIENT_FIRST_MAX_BYTES)
        return -EMSGSIZE;
    memcpy(ex->first, msg, len);
    ex->first_len = (uint16_t)len;
    if ((rc = parse_gs2_header(ex, &names_used)) < 0)
        return rc;

    scan_t s = { ex->first + ex->gs2_len, ex->first + len, false };
    if ((rc = expect_attr(&s, 'n', &user)) < 0)
        return rc;
    rc = decode_saslname(user, ex->names + names_used, &dlen);
    if (rc < 0)
        return rc;
    ASSERT(names_used + dlen <= sizeof(ex->names));    /* decoding only shrinks */
    ex->user_off = (uint16_t)names_used;
    ex->user_len = (uint16_t)dlen;

    if ((rc = expect_attr(&s, 'r', &nonce)) < 0)
        return rc;
    if (nonce.len > SASL_CNONCE_MAX_BYTES)
        return -EMSGSIZE;
    if (!nonce_ok(nonce.ptr, nonce.len))
        return -EBADMSG;
    ex->cnonce_off = (uint16_t)(nonce.ptr - ex->first);
    ex->cnonce_len = (uint16_t)nonce.len;

    while (scan_more(&s)) {
        if (scan_attr(&s, &name, &value) < 0)
            return -EBADMSG;
        if ((rc = check_extension(name, value)) < 0)
            return rc;
    }
    return 0;
}

int sasl_scram_server_start(sasl_scram_server_t *ex, sasl_hash_t hash, const char *msg,
                            size_t len)
{
    ASSERT(ex->state == ST_INIT && ex->conf);
    ASSERT(hash_valid(hash));
    ex->hash = (uint8_t)hash;
    int rc = parse_client_first(ex, msg, len);
    if (rc < 0)
        return server_fail(ex, rc);
    ex->state = ST_STARTED;
    assert_server_state(ex);
    return 0;
}

void sasl_scram_server_set_nonce(sasl_scram_server_t *ex, const char *nonce, size_t len)
{
    ASSERT(ex->state == ST_STARTED);
    ASSERT(len <= SASL_SNONCE_MAX_BYTES && nonce_ok(nonce, len));
    memcpy(ex->snonce, nonce, len);
    ex->snonce_len = (uint16_t)len;
}

/*
 * The salt an unknown user is shown: the same for the same account key and
 * family on every attempt and node, unpredictable without the key, and as long
 * as a real new salt, so nothing on the wire tells it apart. The account key is
 * last in the HMAC input, so label and family cannot run into it.
 */
static int fake_salt(const sasl_scram_server_t *ex, str_t account, uint8_t *salt)
{
    uint8_t mac[SASL_DIGEST_MAX_BYTES];
    char fam = (char)ex->hash;
    const str_t parts[] = { STR_LIT(FAKE_SALT_LABEL), { &fam, 1 }, account };
    int rc = hmac_parts(SASL_HASH_SHA256, ex->conf->fake_salt_key,
                        sizeof(ex->conf->fake_salt_key), parts, ARRAY_LEN(parts), mac);
    if (rc == 0)
        memcpy(salt, mac, SASL_SALT_NEW_BYTES);
    return rc;
}

static int build_server_first(sasl_scram_server_t *ex, const sasl_scram_creds_t *creds,
                              str_t account)
{
    uint8_t salt_buf[SASL_SALT_NEW_BYTES];
    const uint8_t *salt = salt_buf;
    size_t salt_len = sizeof(salt_buf);
    uint32_t iterations = ex->conf->fake_iterations;
    char num[16];
    int rc;

    if (creds) {
        ASSERT(creds->hash == (sasl_hash_t)ex->hash);   /* the caller picks the family */
        ASSERT(creds->salt_len > 0 && creds->salt_len <= SASL_SALT_MAX_BYTES);
        ASSERT(creds->iterations > 0 && creds->iterations <= SASL_ITERATIONS_MAX);
        salt = creds->salt;
        salt_len = creds->salt_len;
        iterations = creds->iterations;
        memcpy(ex->stored_key, creds->stored_key, sizeof(ex->stored_key));
        memcpy(ex->server_key, creds->server_key, sizeof(ex->server_key));
    } else {
        /* Keys stay zero; the final step runs the same computation on them and
         * then fails, so its timing does not single out unknown users. */
        ex->unknown_user = true;
        if ((rc = fake_salt(ex, account, salt_buf)) < 0)
            return rc;
    }
    if (ex->snonce_len == 0) {
        if ((rc = random_nonce(ex->snonce)) < 0)
            return rc;
        ex->snonce_len = (uint16_t)rc;
    }

    sb_t b = { ex->server_first, sizeof(ex->server_first), 0, false };
    sb_str(&b, "r=");
    sb_put(&b, ex->first + ex->cnonce_off, ex->cnonce_len);
    sb_put(&b, ex->snonce, ex->snonce_len);
    sb_str(&b, ",s=");
    sb_b64(&b, salt, salt_len);
    snprintf(num, sizeof(num), ",i=%u", (unsigned)iterations);
    sb_str(&b, num);
    ASSERT(!b.overflow);            /* sized by _Static_assert above */
    ex->server_first_len = (uint16_t)b.len;
    return 0;
}

int sasl_scram_server_first(sasl_scram_server_t *ex, const sasl_scram_creds_t *creds,
                            str_t account, char *out, size_t cap, size_t *out_len)
{
    if (ex->state == ST_FAILED)
        return ex->err;
    ASSERT(ex->state == ST_STARTED);
    ASSERT(creds || account.len > 0);
    int rc = build_server_first(ex, creds, account);
    if (rc == 0)
        rc = emit(ex->server_first, ex->server_first_len, out, cap, out_len);
    if (rc < 0)
        return server_fail(ex, rc);
    ex->state = ST_CHALLENGED;
    assert_server_state(ex);
    return 0;
}

/* The parts of a client-final-message, checked for syntax only. */
typedef struct {
    str_t binding, nonce, without_proof;
    uint8_t proof[SASL_DIGEST_MAX_BYTES];
} client_final_t;

/* client-final-message = channel-binding "," nonce ["," extensions] "," proof */
static int parse_client_final(sasl_hash_t hash, const char *msg, size_t len, client_final_t *f)
{
    uint8_t tmp[SASL_CLIENT_FINAL_MAX_BYTES / 4 * 3];
    size_t n = 0;
    str_t value;
    char name;
    int rc;

    if (len > SASL_CLIENT_FINAL_MAX_BYTES)
        return -EMSGSIZE;
    scan_t s = { msg, msg + len, false };
    if ((rc = expect_attr(&s, 'c', &f->binding)) < 0)
        return rc;
    if (!b64_decode(f->binding, tmp, sizeof(tmp), &n))
        return -EBADMSG;
    if ((rc = expect_attr(&s, 'r', &f->nonce)) < 0)
        return rc;
    if (f->nonce.len == 0)
        return -EBADMSG;
    for (;;) {
        const char *attr = s.p;
        if (!scan_more(&s) || scan_attr(&s, &name, &value) < 0)
            return -EBADMSG;
        if (name == 'p') {
            /* proof is last; what precedes its ',' is the without-proof part. */
            if (scan_more(&s))
                return -EBADMSG;
            f->without_proof = (str_t){ msg, (size_t)(attr - 1 - msg) };
            break;
        }
        if ((rc = check_extension(name, value)) < 0)
            return rc;
    }
    if (!b64_decode(value, tmp, sizeof(tmp), &n) || n != sasl_hash_len(hash))
        return -EBADMSG;
    memcpy(f->proof, tmp, n);
    return 0;
}

/* Checks the proof; fills the server signature whatever the outcome. */
static int verify_proof(sasl_scram_server_t *ex, const client_final_t *f, uint8_t *server_sig)
{
    sasl_hash_t hash = (sasl_hash_t)ex->hash;
    size_t dlen = sasl_hash_len(hash);
    uint8_t sig[SASL_DIGEST_MAX_BYTES], key[SASL_DIGEST_MAX_BYTES], stored[SASL_DIGEST_MAX_BYTES];
    const str_t auth_message[] = {
        { ex->first + ex->gs2_len, (size_t)(ex->first_len - ex->gs2_len) }, STR_LIT(","),
        { ex->server_first, ex->server_first_len }, STR_LIT(","), f->without_proof,
    };
    int rc;

    rc = hmac_parts(hash, ex->stored_key, dlen, auth_message, ARRAY_LEN(auth_message), sig);
    if (rc == 0)
        rc = hmac_parts(hash, ex->server_key, dlen, auth_message, ARRAY_LEN(auth_message),
                        server_sig);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < dlen; i++)
        key[i] = f->proof[i] ^ sig[i];
    if (!EVP_Digest(key, dlen, stored, NULL, scram_md(hash), NULL))
        return -EIO;
    bool ok = CRYPTO_memcmp(stored, ex->stored_key, dlen) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return ok && !ex->unknown_user ? 0 : -EACCES;
}

static int server_final(sasl_scram_server_t *ex, const char *msg, size_t len, char *out,
                        size_t cap, size_t *out_len)
{
    char expect_c[B64_LEN(SASL_CLIENT_FIRST_MAX_BYTES) + 1];
    uint8_t server_sig[SASL_DIGEST_MAX_BYTES];
    char v[SASL_SERVER_FINAL_MAX_BYTES];
    client_final_t f;
    int rc;

    /* Syntax first, so that a malformed message is malformed whatever it says. */
    if ((rc = parse_client_final((sasl_hash_t)ex->hash, msg, len, &f)) < 0)
        return rc;
    /* c= is base64 of the gs2 header exactly as the client sent it (RFC 5802
     * §5.1): compare the text, so no other encoding of those bytes passes. */
    size_t clen = b64_encode(expect_c, (const uint8_t *)ex->first, ex->gs2_len);
    bool binding_ok = str_eq(f.binding, (str_t){ expect_c, clen });
    bool nonce_match = f.nonce.len == (size_t)ex->cnonce_len + ex->snonce_len &&
                     memcmp(f.nonce.ptr, ex->first + ex->cnonce_off, ex->cnonce_len) == 0 &&
                     memcmp(f.nonce.ptr + ex->cnonce_len, ex->snonce, ex->snonce_len) == 0;
    if ((rc = verify_proof(ex, &f, server_sig)) < 0 && rc != -EACCES)
        return rc;
    if (rc < 0 || !binding_ok || !nonce_match)
        return -EACCES;

    sb_t b = { v, sizeof(v), 0, false };
    sb_str(&b, "v=");
    sb_b64(&b, server_sig, sasl_hash_len((sasl_hash_t)ex->hash));
    ASSERT(!b.overflow);
    return emit(v, b.len, out, cap, out_len);
}

int sasl_scram_server_final(sasl_scram_server_t *ex, const char *msg, size_t len, char *out,
                            size_t cap, size_t *out_len)
{
    if (ex->state == ST_FAILED)
        return ex->err;
    ASSERT(ex->state == ST_CHALLENGED);
    int rc = server_final(ex, msg, len, out, cap, out_len);
    if (rc < 0)
        return server_fail(ex, rc);
    ex->state = ST_DONE;
    OPENSSL_cleanse(ex->stored_key, sizeof(ex->stored_key));
    OPENSSL_cleanse(ex->server_key, sizeof(ex->server_key));
    return 0;
}

/* ---- Client ------------------------------------------------------------------ */

static int client_fail(sasl_scram_client_t *c, int err)
{
    ASSERT(err < 0);
    c->state = ST_FAILED;
    c->err = err;
    OPENSSL_cleanse(c->server_signature, sizeof(c->server_signature));
    return err;
}

void sasl_scram_client_init(sasl_scram_client_t *c, sasl_hash_t hash, bool cb_capable)
{
    ASSERT(hash_valid(hash));
    OPENSSL_cleanse(c, sizeof(*c));
    c->state = ST_INIT;
    c->hash = (uint8_t)hash;
    c->cb_capable = cb_capable;
}

void sasl_scram_client_fini(sasl_scram_client_t *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

void sasl_scram_client_set_nonce(sasl_scram_client_t *c, const char *nonce, size_t len)
{
    ASSERT(c->state == ST_INIT);
    ASSERT(len <= SASL_CNONCE_MAX_BYTES && nonce_ok(nonce, len));
    memcpy(c->cnonce_set, nonce, len);
    c->cnonce_set_len = (uint16_t)len;
}

static bool name_ok(str_t name)
{
    return !memchr(name.ptr, '\0', name.len) && sasl_utf8_valid(name.ptr, name.len);
}

static int client_first(sasl_scram_client_t *c, str_t username, str_t authzid)
{
    char nonce[SASL_CNONCE_MAX_BYTES];
    size_t nonce_len = c->cnonce_set_len;

    if (username.len == 0 || !name_ok(username) || !name_ok(authzid))
        return -EINVAL;
    if (nonce_len) {
        memcpy(nonce, c->cnonce_set, nonce_len);
    } else {
        int rc = random_nonce(nonce);
        if (rc < 0)
            return rc;
        nonce_len = (size_t)rc;
    }
    sb_t b = { c->first, sizeof(c->first), 0, false };
    sb_str(&b, c->cb_capable ? "y," : "n,");
    if (authzid.len) {
        sb_str(&b, "a=");
        sb_saslname(&b, authzid);
    }
    sb_str(&b, ",");
    c->gs2_len = (uint16_t)b.len;
    sb_str(&b, "n=");
    sb_saslname(&b, username);
    sb_str(&b, ",r=");
    c->cnonce_off = (uint16_t)b.len;
    c->cnonce_len = (uint16_t)nonce_len;
    sb_put(&b, nonce, nonce_len);
    if (b.overflow)
        return -EMSGSIZE;
    c->first_len = (uint16_t)b.len;
    return 0;
}

int sasl_scram_client_first(sasl_scram_client_t *c, str_t username, str_t authzid, char *out,
                            size_t cap, size_t *out_len)
{
    if (c->state == ST_FAILED)
        return c->err;
    ASSERT(c->state == ST_INIT);
    int rc = client_first(c, username, authzid);
    if (rc == 0)
        rc = emit(c->first, c->first_len, out, cap, out_len);
    if (rc < 0)
        return client_fail(c, rc);
    c->state = ST_SENT_FIRST;
    return 0;
}

/* posit-number = %x31-39 *DIGIT (RFC 5802 §7); false past ITERATIONS_MAX_DIGITS. */
static bool parse_count(str_t v, uint32_t *out)
{
    uint32_t n = 0;
    if (v.len == 0 || v.len > ITERATIONS_MAX_DIGITS || v.ptr[0] == '0')
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
        n = n * 10 + (uint32_t)(v.ptr[i] - '0');
    }
    *out = n;
    return true;
}

typedef struct {
    str_t nonce;
    uint8_t salt[SASL_SALT_MAX_BYTES];
    size_t salt_len;
    uint32_t iterations;
} server_first_t;

/* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
 *                        ["," extensions] */
static int parse_server_first(const sasl_scram_client_t *c, const char *msg, size_t len,
                              server_first_t *sf)
{
    uint8_t tmp[B64_LEN(SASL_SALT_MAX_BYTES) / 4 * 3];
    str_t salt, count, value;
    char name;
    int rc;

    if (len >= SASL_SERVER_FIRST_MAX_BYTES)
        return -EMSGSIZE;
    scan_t s = { msg, msg + len, false };
    if ((rc = expect_attr(&s, 'r', &sf->nonce)) < 0)
        return rc;
    /* Our nonce, then at least one character of the server's (RFC 5802 §5.1). */
    if (sf->nonce.len <= c->cnonce_len || !nonce_ok(sf->nonce.ptr, sf->nonce.len) ||
        memcmp(sf->nonce.ptr, c->first + c->cnonce_off, c->cnonce_len) != 0)
        return -EBADMSG;
    if ((rc = expect_attr(&s, 's', &salt)) < 0)
        return rc;
    if (!b64_decode(salt, tmp, sizeof(tmp), &sf->salt_len) || sf->salt_len == 0 ||
        sf->salt_len > SASL_SALT_MAX_BYTES)
        return -EBADMSG;
    memcpy(sf->salt, tmp, sf->salt_len);
    if ((rc = expect_attr(&s, 'i', &count)) < 0)
        return rc;
    if (!parse_count(count, &sf->iterations)) {
        /* A well-formed count beyond what we would ever derive is a refusal,
         * not a syntax error. */
        bool digits = count.len > 0 && count.ptr[0] != '0';
        for (size_t i = 0; i < count.len; i++)
            digits = digits && count.ptr[i] >= '0' && count.ptr[i] <= '9';
        return digits ? -EPROTO : -EBADMSG;
    }
    if (sf->iterations < SASL_ITERATIONS_MIN || sf->iterations > SASL_ITERATIONS_MAX)
        return -EPROTO;
    while (scan_more(&s)) {
        if (scan_attr(&s, &name, &value) < 0)
            return -EBADMSG;
        if ((rc = check_extension(name, value)) < 0)
            return rc;
    }
    return 0;
}

static int client_final(sasl_scram_client_t *c, const char *password, size_t password_len,
                        const char *msg, size_t len, char *out, size_t cap, size_t *out_len)
{
    sasl_hash_t hash = (sasl_hash_t)c->hash;
    size_t dlen = sasl_hash_len(hash);
    uint8_t client_key[SASL_DIGEST_MAX_BYTES], stored_key[SASL_DIGEST_MAX_BYTES];
    uint8_t server_key[SASL_DIGEST_MAX_BYTES], sig[SASL_DIGEST_MAX_BYTES];
    server_first_t sf;
    int rc;

    if ((rc = parse_server_first(c, msg, len, &sf)) < 0)
        return rc;
    sasl_scram_key_cache_t *k = c->cache;
    if (k && k->valid && k->hash == c->hash && k->iterations == sf.iterations &&
        k->salt_len == sf.salt_len && !memcmp(k->salt, sf.salt, sf.salt_len)) {
        memcpy(client_key, k->client_key, dlen);
        memcpy(stored_key, k->stored_key, dlen);
        memcpy(server_key, k->server_key, dlen);
    } else {
        rc = derive_keys(hash, password, password_len, sf.salt, sf.salt_len, sf.iterations,
                         client_key, stored_key, server_key);
        if (rc < 0)
            goto out;
        if (k) {
            k->valid = true;
            k->hash = c->hash;
            k->iterations = sf.iterations;
            k->salt_len = (uint8_t)sf.salt_len;
            memcpy(k->salt, sf.salt, sf.salt_len);
            memcpy(k->client_key, client_key, dlen);
            memcpy(k->stored_key, stored_key, dlen);
            memcpy(k->server_key, server_key, dlen);
        }
    }

    sb_t b = { out, cap, 0, false };
    sb_str(&b, "c=");
    sb_b64(&b, (const uint8_t *)c->first, c->gs2_len);
    sb_str(&b, ",r=");
    sb_put(&b, sf.nonce.ptr, sf.nonce.len);
    rc = -ENOSPC;
    if (b.overflow)
        goto out;
    const str_t auth_message[] = {
        { c->first + c->gs2_len, (size_t)(c->first_len - c->gs2_len) }, STR_LIT(","),
        { msg, len }, STR_LIT(","), { out, b.len },
    };
    rc = hmac_parts(hash, stored_key, dlen, auth_message, ARRAY_LEN(auth_message), sig);
    if (rc == 0)
        rc = hmac_parts(hash, server_key, dlen, auth_message, ARRAY_LEN(auth_message),
                        c->server_signature);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < dlen; i++)
        sig[i] ^= client_key[i];    /* ClientProof */
    sb_str(&b, ",p=");
    sb_b64(&b, sig, dlen);
    rc = -ENOSPC;
    if (b.overflow || b.len >= cap)
        goto out;
    out[b.len] = '\0';
    *out_len = b.len;
    rc = 0;
out:
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    return rc;
}

void sasl_scram_client_set_key_cache(sasl_scram_client_t *c, sasl_scram_key_cache_t *cache)
{
    c->cache = cache;
}

int sasl_scram_client_final(sasl_scram_client_t *c, const char *password, size_t password_len,
                            const char *server_first, size_t len, char *out, size_t cap,
                            size_t *out_len)
{
    if (c->state == ST_FAILED)
        return c->err;
    ASSERT(c->state == ST_SENT_FIRST);
    int rc = client_final(c, password, password_len, server_first, len, out, cap, out_len);
    if (rc < 0)
        return client_fail(c, rc);
    c->state = ST_SENT_FINAL;
    return 0;
}

/* server-final-message = (server-error / verifier) ["," extensions] */
static int client_verify(const sasl_scram_client_t *c, const char *msg, size_t len)
{
    uint8_t sig[B64_LEN(SASL_DIGEST_MAX_BYTES) / 4 * 3];
    size_t n = 0, dlen = sasl_hash_len((sasl_hash_t)c->hash);
    str_t v, value;
    char name;
    int rc;

    /* v= and room for extensions, as for the client-final we accept. */
    if (len > SASL_CLIENT_FINAL_MAX_BYTES)
        return -EMSGSIZE;
    scan_t s = { msg, msg + len, false };
    if (scan_attr(&s, &name, &v) < 0)
        return -EBADMSG;
    if (name == 'e')
        return v.len ? -EACCES : -EBADMSG;
    if (name == 'm')
        return -ENOTSUP;
    if (name != 'v' || !b64_decode(v, sig, sizeof(sig), &n) || n != dlen)
        return -EBADMSG;
    while (scan_more(&s)) {
        if (scan_attr(&s, &name, &value) < 0)
            return -EBADMSG;
        if ((rc = check_extension(name, value)) < 0)
            return rc;
    }
    return CRYPTO_memcmp(sig, c->server_signature, dlen) == 0 ? 0 : -EACCES;
}

int sasl_scram_client_verify(sasl_scram_client_t *c, const char *server_final, size_t len)
{
    if (c->state == ST_FAILED)
        return c->err;
    ASSERT(c->state == ST_SENT_FINAL);
    int rc = client_verify(c, server_final, len);
    if (rc < 0)
        return client_fail(c, rc);
    c->state = ST_DONE;
    OPENSSL_cleanse(c->server_signature, sizeof(c->server_signature));
    return 0;
}
