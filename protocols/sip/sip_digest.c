/*
 * sip_digest.c - see sip_digest.h. HTTP Digest (RFC 7616 §3.4) as SIP uses it (RFC 3261 §22),
 * with the algorithms of RFC 8760.
 *
 * What everything below computes, with H() the algorithm's hash as lowercase hex and unq()
 * the value of a quoted-string:
 *   HA1      = H(unq(username) ":" unq(realm) ":" password)          (stored, binary)
 *   HA1-sess = H(HA1 ":" unq(nonce) ":" unq(cnonce))                 (-sess, §3.4.2)
 *   HA2      = H(Method ":" unq(uri))                                (qop=auth or none)
 *            = H(Method ":" unq(uri) ":" H(body))                    (qop=auth-int, §3.4.3)
 *   response = H(HA1 ":" unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" HA2)
 *            = H(HA1 ":" unq(nonce) ":" HA2)                         (no qop: RFC 2069)
 * The server hashes the nonce, cnonce, nc and qop exactly as the UA sent them, not as we
 * would have spelled them, so that a UA writing "Auth" or an uppercase nc still matches.
 */
#include "protocols/sip/sip_digest.h"

#include <errno.h>
#include <stdio.h>

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "protocols/sip/sip_msg.h"

/* MAC bytes kept in a nonce, after its 8-byte timestamp. */
#define NONCE_TS_BYTES 8
#define NONCE_MAC_BYTES (SIP_DIGEST_NONCE_RAW_BYTES - NONCE_TS_BYTES)

/* Base64 characters for n bytes when n is a multiple of 3 (no padding needed). */
#define B64_CHARS(n) ((n) / 3 * 4)

/* Replay window per nonce (bits of sip_digest_nc_slot_t.seen). */
#define GUARD_WINDOW 64u

_Static_assert(NONCE_MAC_BYTES == 16, "128-bit nonce MAC");
_Static_assert(SIP_DIGEST_NONCE_RAW_BYTES % 3 == 0, "nonces need no padding");
_Static_assert(B64_CHARS(SIP_DIGEST_NONCE_RAW_BYTES) == SIP_DIGEST_NONCE_CHARS, "nonce chars");
_Static_assert(SIP_DIGEST_CNONCE_RANDOM_BYTES % 3 == 0, "cnonces need no padding");
_Static_assert(SIP_DIGEST_FIELD_MAX_BYTES <= SIP_DIGEST_VALUE_MAX_BYTES, "a field fits a value");
/* "Digest realm=\"" 14, realm escaped, "\", nonce=\"" 10, nonce, "\", opaque=\"" 11, opaque
 * escaped, "\", algorithm=SHA-256-sess" 25, ", qop=\"auth,auth-int\"" 21, ", stale=true" 12,
 * NUL 1. */
_Static_assert(SIP_DIGEST_CHALLENGE_MAX_BYTES >= 14 + 2 * SIP_DIGEST_FIELD_MAX_BYTES + 10 +
               SIP_DIGEST_NONCE_CHARS + 11 + 2 * SIP_DIGEST_FIELD_MAX_BYTES + 25 + 21 + 12 + 1,
               "largest challenge we write");
_Static_assert(SIP_DIGEST_HA1_BLOB_MAX_BYTES == 1 + SIP_DIGEST_MAX_BYTES, "blob");
_Static_assert(SIP_DIGEST_ALGS_ALL <= UINT8_MAX, "conf.algs is a byte");
_Static_assert(sizeof(((sip_digest_nc_slot_t *)0)->seen) * 8 == GUARD_WINDOW, "window bits");
_Static_assert(sizeof(sip_digest_nc_guard_t) == 128, "the guard is as small as sip_digest.h says");

/* ---- Characters -------------------------------------------------------------------- */

/* token (RFC 3261 §25.1): alphanum and -.!%*_+`'~ */
static bool is_token(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-.!%*_+`'~", c) != NULL;
}

/* LWS (§25.1), CR and LF included: a folded value reaches us raw (sip_msg.h). */
static bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Not allowed in a value once unquoted: C0 controls but HTAB, and DEL (§25.1 TEXT-UTF8char
 * and LWS are all a quoted-string may hold). */
static bool is_ctl(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && u != '\t') || u == 0x7f;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool all_hex(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (hex_val(s.ptr[i]) < 0)
            return false;
    return true;
}

static bool all_token(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!is_token(s.ptr[i]))
            return false;
    return s.len > 0;
}

static bool no_ctl(str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (is_ctl(s.ptr[i]))
            return false;
    return true;
}

static bool eq_nocase(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a != b)
            return false;
    }
    return true;
}

static const char *str_end(str_t s)
{
    return s.len ? s.ptr + s.len : s.ptr;
}

static str_t trim_lws(str_t s)
{
    const char *p = s.ptr, *end = str_end(s);
    while (p < end && is_lws(*p))
        p++;
    while (end > p && is_lws(end[-1]))
        end--;
    return (str_t){ p, (size_t)(end - p) };
}

void sip_digest_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* s must be 2 * n hex digits (checked by the caller). */
static void hex_decode(str_t s, uint8_t *out, size_t n)
{
    DEBUG_ASSERT(s.len == 2 * n && all_hex(s));
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hex_val(s.ptr[2 * i]) << 4 | hex_val(s.ptr[2 * i + 1]));
}

/* ---- base64url (RFC 4648 §5), whole groups only ------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    ASSERT(n % 3 == 0);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = b64url[v >> 18];
        *out++ = b64url[(v >> 12) & 63];
        *out++ = b64url[(v >> 6) & 63];
        *out++ = b64url[v & 63];
    }
    *out = '\0';
}

static int b64url_val(char c)
{
    const char *at = c ? strchr(b64url, c) : NULL;
    return at ? (int)(at - b64url) : -1;
}

/* Exactly SIP_DIGEST_NONCE_CHARS characters of the alphabet into raw. */
static bool nonce_decode(str_t s, uint8_t raw[SIP_DIGEST_NONCE_RAW_BYTES])
{
    if (s.len != SIP_DIGEST_NONCE_CHARS)
        return false;
    for (size_t i = 0, o = 0; i < s.len; i += 4, o += 3) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = b64url_val(s.ptr[i + k]);
            if (d < 0)
                return false;
            v = v << 6 | (uint32_t)d;
        }
        raw[o] = (uint8_t)(v >> 16);
        raw[o + 1] = (uint8_t)(v >> 8);
        raw[o + 2] = (uint8_t)v;
    }
    return true;
}

/* ---- Hashes ------------------------------------------------------------------------ */

/* MD5 and SHA-256 through their low-level contexts, which neither allocate nor fail. */
typedef struct {
    bool sha256;
    union {
        MD5_CTX md5;
        SHA256_CTX sha256;
    } u;
} hash_t;

bool sip_digest_alg_supported(sip_digest_alg_t alg)
{
    return alg >= SIP_DIGEST_MD5 && alg <= SIP_DIGEST_SHA256_SESS;
}

static bool alg_is_sess(sip_digest_alg_t alg)
{
    return alg == SIP_DIGEST_MD5_SESS || alg == SIP_DIGEST_SHA256_SESS;
}

sip_digest_alg_t sip_digest_alg_base(sip_digest_alg_t alg)
{
    ASSERT(sip_digest_alg_supported(alg));
    return alg == SIP_DIGEST_MD5 || alg == SIP_DIGEST_MD5_SESS ? SIP_DIGEST_MD5
                                                                : SIP_DIGEST_SHA256;
}

size_t sip_digest_alg_len(sip_digest_alg_t alg)
{
    return sip_digest_alg_base(alg) == SIP_DIGEST_MD5 ? MD5_DIGEST_LENGTH : SHA256_DIGEST_LENGTH;
}

static const char *const alg_names[] = {
    [SIP_DIGEST_MD5] = "MD5",
    [SIP_DIGEST_MD5_SESS] = "MD5-sess",
    [SIP_DIGEST_SHA256] = "SHA-256",
    [SIP_DIGEST_SHA256_SESS] = "SHA-256-sess",
};

const char *sip_digest_alg_name(sip_digest_alg_t alg)
{
    ASSERT(sip_digest_alg_supported(alg));
    return alg_names[alg];
}

sip_digest_alg_t sip_digest_alg_lookup(str_t name)
{
    for (int a = SIP_DIGEST_MD5; a <= SIP_DIGEST_SHA256_SESS; a++)
        if (eq_nocase(name, alg_names[a]))
            return (sip_digest_alg_t)a;
    return SIP_DIGEST_ALG_OTHER;
}

static void h_init(hash_t *h, sip_digest_alg_t alg)
{
    h->sha256 = sip_digest_alg_base(alg) == SIP_DIGEST_SHA256;
    if (h->sha256)
        SHA256_Init(&h->u.sha256);
    else
        MD5_Init(&h->u.md5);
}

static void h_update(hash_t *h, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (h->sha256)
        SHA256_Update(&h->u.sha256, p, n);
    else
        MD5_Update(&h->u.md5, p, n);
}

static void h_str(hash_t *h, str_t s)
{
    h_update(h, s.ptr, s.len);
}

static void h_colon(hash_t *h)
{
    h_update(h, ":", 1);
}

/* Writes the digest (16 or 32 bytes) and wipes the context, which held secrets. */
static void h_final(hash_t *h, uint8_t *out)
{
    if (h->sha256)
        SHA256_Final(out, &h->u.sha256);
    else
        MD5_Final(out, &h->u.md5);
    OPENSSL_cleanse(h, sizeof(*h));
}

/* ---- Stored credentials ------------------------------------------------------------- */

int sip_digest_ha1(sip_digest_alg_t alg, str_t user, str_t realm, str_t password, uint8_t *out,
                   size_t *out_len)
{
    if (!sip_digest_alg_supported(alg) || user.len == 0 || password.len == 0 ||
        user.len > SIP_DIGEST_FIELD_MAX_BYTES || realm.len > SIP_DIGEST_FIELD_MAX_BYTES ||
        password.len > SIP_DIGEST_FIELD_MAX_BYTES)
        return -EINVAL;
    hash_t h;
    h_init(&h, alg);
    h_str(&h, user);
    h_colon(&h);
    h_str(&h, realm);
    h_colon(&h);
    h_str(&h, password);
    h_final(&h, out);
    *out_len = sip_digest_alg_len(alg);
    return 0;
}

int sip_digest_ha1_encode(sip_digest_alg_t alg, const uint8_t *ha1, size_t ha1_len,
                          uint8_t *out, size_t cap, size_t *out_len)
{
    if (!sip_digest_alg_supported(alg) || ha1_len != sip_digest_alg_len(alg))
        return -EINVAL;
    if (cap < 1 + ha1_len)
        return -ENOSPC;
    out[0] = (uint8_t)sip_digest_alg_base(alg);
    memcpy(out + 1, ha1, ha1_len);
    *out_len = 1 + ha1_len;
    return 0;
}

int sip_digest_ha1_decode(const uint8_t *blob, size_t len, sip_digest_alg_t *alg, uint8_t *out,
                          size_t *out_len)
{
    if (len < 1 || (blob[0] != SIP_DIGEST_MD5 && blob[0] != SIP_DIGEST_SHA256))
        return -EBADMSG;
    sip_digest_alg_t a = (sip_digest_alg_t)blob[0];
    if (len != 1 + sip_digest_alg_len(a))
        return -EBADMSG;
    memcpy(out, blob + 1, len - 1);
    *out_len = len - 1;
    *alg = a;
    return 0;
}

/* ---- Configuration and nonces ------------------------------------------------------- */

static void conf_assert(const sip_digest_conf_t *conf)
{
    ASSERT(conf->nonce_lifetime_s >= 1);
    ASSERT(conf->nonce_lifetime_s <= SIP_DIGEST_NONCE_LIFETIME_MAX_S);
    ASSERT(conf->algs != 0);
    ASSERT((conf->algs & ~SIP_DIGEST_ALGS_ALL) == 0);
}

static void store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* HMAC-SHA-256(nonce_key, ts || realm). The timestamp has a fixed length, so the input
 * splits one way only. HMAC fails only when BoringSSL cannot get memory: fatal, as in buf.h. */
static void nonce_mac(const sip_digest_conf_t *conf, str_t realm,
                      const uint8_t ts[NONCE_TS_BYTES], uint8_t mac[SHA256_DIGEST_LENGTH])
{
    HMAC_CTX ctx;
    unsigned n = 0;

    HMAC_CTX_init(&ctx);
    int ok = HMAC_Init_ex(&ctx, conf->nonce_key, sizeof(conf->nonce_key), EVP_sha256(), NULL) &&
             HMAC_Update(&ctx, ts, NONCE_TS_BYTES) &&
             (realm.len == 0 || HMAC_Update(&ctx, (const uint8_t *)realm.ptr, realm.len)) &&
             HMAC_Final(&ctx, mac, &n);
    HMAC_CTX_cleanup(&ctx);
    ASSERT(ok);
    ASSERT(n == SHA256_DIGEST_LENGTH);
}

void sip_digest_nonce_make(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                           char out[SIP_DIGEST_NONCE_CHARS + 1])
{
    uint8_t raw[SIP_DIGEST_NONCE_RAW_BYTES], mac[SHA256_DIGEST_LENGTH];

    conf_assert(conf);
    store_be64(raw, now_s);
    nonce_mac(conf, realm, raw, mac);
    memcpy(raw + NONCE_TS_BYTES, mac, NONCE_MAC_BYTES);
    b64url_encode(raw, sizeof(raw), out);
    DEBUG_ASSERT(strlen(out) == SIP_DIGEST_NONCE_CHARS);
}

/* Fresh: dated at most the skew ahead, and at most the lifetime behind. */
static bool nonce_fresh(const sip_digest_conf_t *conf, uint64_t issued_s, uint64_t now_s)
{
    if (issued_s > now_s)
        return issued_s - now_s <= SIP_DIGEST_CLOCK_SKEW_S;
    return now_s - issued_s <= conf->nonce_lifetime_s;
}

int sip_digest_nonce_check(const sip_digest_conf_t *conf, str_t realm, str_t nonce,
                           uint64_t now_s, uint64_t *issued_s)
{
    uint8_t raw[SIP_DIGEST_NONCE_RAW_BYTES], mac[SHA256_DIGEST_LENGTH];

    conf_assert(conf);
    if (!nonce_decode(nonce, raw))
        return -EBADMSG;
    nonce_mac(conf, realm, raw, mac);
    if (CRYPTO_memcmp(mac, raw + NONCE_TS_BYTES, NONCE_MAC_BYTES) != 0)
        return -EBADMSG;
    uint64_t ts = load_be64(raw);
    if (issued_s)
        *issued_s = ts;
    return nonce_fresh(conf, ts, now_s) ? 0 : -ETIMEDOUT;
}

/* ---- Writing values ---------------------------------------------------------------- */

/* An output buffer that remembers running out of room, so that writers check once. */
typedef struct {
    char *p;
    size_t cap;
    size_t len;
    bool full;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len < n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_cstr(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A quoted-string (RFC 3261 §25.1) holding s: '"' and '\' become quoted-pairs. false for a
 * control character, which no quoted-string carries through our parser. */
static bool put_quoted(out_t *o, str_t s)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (is_ctl(c))
            return false;
        if (c == '"' || c == '\\')
            put(o, "\\", 1);
        put(o, &c, 1);
    }
    put(o, "\"", 1);
    return true;
}

/* NUL-terminates and reports: 0, or -ENOSPC when anything did not fit. */
static int out_finish(out_t *o, size_t *out_len)
{
    put(o, "", 1);
    if (o->full)
        return -ENOSPC;
    *out_len = o->len - 1;
    return 0;
}

/* ---- Challenges ------------------------------------------------------------------------ */

/* RFC 8760 §2.4: the server lists its challenges by preference, strongest first. */
static const sip_digest_alg_t alg_order[] = {
    SIP_DIGEST_SHA256, SIP_DIGEST_SHA256_SESS, SIP_DIGEST_MD5, SIP_DIGEST_MD5_SESS,
};

static bool field_ok(str_t s)
{
    return s.len <= SIP_DIGEST_FIELD_MAX_BYTES && no_ctl(s);
}

int sip_digest_challenge(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                         sip_digest_alg_t alg, bool stale, char *out, size_t cap,
                         size_t *out_len)
{
    char nonce[SIP_DIGEST_NONCE_CHARS + 1];

    conf_assert(conf);
    if (!sip_digest_alg_supported(alg) || !(conf->algs & SIP_DIGEST_ALG_BIT(alg)) ||
        realm.len == 0 || !field_ok(realm) || !field_ok(conf->opaque))
        return -EINVAL;
    sip_digest_nonce_make(conf, realm, now_s, nonce);

    out_t o = { .p = out, .cap = cap };
    put_cstr(&o, "Digest realm=");
    put_quoted(&o, realm);
    put_cstr(&o, ", nonce=\"");
    put_cstr(&o, nonce);
    put_cstr(&o, "\"");
    if (conf->opaque.len) {
        put_cstr(&o, ", opaque=");
        put_quoted(&o, conf->opaque);
    }
    put_cstr(&o, ", algorithm=");
    put_cstr(&o, sip_digest_alg_name(alg));
    /* RFC 3261 §22.4: servers MUST always send qop. */
    put_cstr(&o, conf->offer_auth_int ? ", qop=\"auth,auth-int\"" : ", qop=\"auth\"");
    if (stale)
        put_cstr(&o, ", stale=true");
    return out_finish(&o, out_len);
}

int sip_digest_challenge_headers(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                                 bool stale, bool proxy, buf_t *out)
{
    char value[SIP_DIGEST_CHALLENGE_MAX_BYTES];
    const char *name = proxy ? "Proxy-Authenticate: " : "WWW-Authenticate: ";
    bool first = true;

    conf_assert(conf);
    for (size_t i = 0; i < ARRAY_LEN(alg_order); i++) {
        if (!(conf->algs & SIP_DIGEST_ALG_BIT(alg_order[i])))
            continue;
        size_t n = 0;
        int rc = sip_digest_challenge(conf, realm, now_s, alg_order[i], stale, value,
                                      sizeof(value), &n);
        /* Only the realm or the opaque can make it fail, and then it fails first. */
        if (rc < 0) {
            ASSERT(first);
            ASSERT(rc == -EINVAL);
            return rc;
        }
        first = false;
        buf_append_str(out, name);
        buf_append(out, value, n);
        buf_append(out, "\r\n", 2);
    }
    return 0;
}

/* ---- Parsing auth-params ------------------------------------------------------------ */

/* Where unquoted strings go when they cannot be slices of the input. */
typedef struct {
    char *p;
    size_t cap;
    size_t used;
} scratch_t;

/*
 * "Digest" LWS params (RFC 3261 §25.1 credentials, challenge). 1 and *params for Digest, 0
 * for another auth-scheme, -EBADMSG when there is no scheme or nothing after Digest.
 */
static int split_scheme(str_t value, str_t *params)
{
    value = trim_lws(value);
    if (value.len > SIP_DIGEST_VALUE_MAX_BYTES)
        return -EMSGSIZE;
    const char *p = value.ptr, *end = str_end(value);
    while (p < end && is_token(*p))
        p++;
    str_t scheme = { value.ptr, (size_t)(p - value.ptr) };
    if (scheme.len == 0)
        return -EBADMSG;
    if (!eq_nocase(scheme, "Digest"))
        return 0;
    if (p == end || !is_lws(*p))
        return -EBADMSG;
    *params = (str_t){ p, (size_t)(end - p) };
    return 1;
}

/* One auth-param: name EQUAL (token / quoted-string). The item comes from sip_list_next, so
 * its quotes balance and it has no LWS at either end. */
static int split_param(str_t item, str_t *name, str_t *raw)
{
    const char *p = item.ptr, *end = str_end(item);
    while (p < end && is_token(*p))
        p++;
    if (p == item.ptr)
        return -EBADMSG;
    *name = (str_t){ item.ptr, (size_t)(p - item.ptr) };
    while (p < end && is_lws(*p))
        p++;
    if (p == end || *p != '=')
        return -EBADMSG;
    p++;
    while (p < end && is_lws(*p))
        p++;
    *raw = (str_t){ p, (size_t)(end - p) };
    if (raw->len == 0)
        return -EBADMSG;
    return 0;
}

/*
 * A parameter's value: a token as is; a quoted-string's content as a slice of the input when
 * it has neither quoted-pair nor line fold, else resolved by sip_unquote into scratch. The
 * result is bounded and free of control characters.
 */
static int param_value(str_t raw, scratch_t *s, str_t *out)
{
    if (raw.ptr[0] != '"') {
        if (!all_token(raw))
            return -EBADMSG;
        *out = raw;
    } else {
        bool copy = false;
        if (raw.len < 2 || raw.ptr[raw.len - 1] != '"')
            return -EBADMSG;
        for (size_t i = 1; i + 1 < raw.len; i++) {
            char c = raw.ptr[i];
            if (c == '"')
                return -EBADMSG;            /* a second quoted-string, or text after one */
            if (c == '\\') {
                if (i + 2 >= raw.len || raw.ptr[i + 1] == '\r' || raw.ptr[i + 1] == '\n')
                    return -EBADMSG;
                copy = true;
                i++;
            } else if (c == '\r' || c == '\n') {
                copy = true;
            }
        }
        if (!copy) {
            *out = (str_t){ raw.ptr + 1, raw.len - 2 };
        } else {
            ssize_t n = sip_unquote(raw, s->p + s->used, s->cap - s->used);
            if (n == -ENOSPC)
                return -ENOSPC;
            if (n < 0)
                return -EBADMSG;
            *out = (str_t){ s->p + s->used, (size_t)n };
            s->used += (size_t)n;
        }
    }
    if (out->len > SIP_DIGEST_FIELD_MAX_BYTES)
        return -EMSGSIZE;
    return no_ctl(*out) ? 0 : -EBADMSG;
}

/*
 * Walks the parameters of params, storing the value of each name in names[] into vals[] (a
 * repeat is -EBADMSG); others are checked and dropped. *seen gets a bit per name found.
 */
static int parse_params(str_t params, const char *const *names, size_t nnames, str_t *vals,
                        uint32_t *seen, scratch_t *s)
{
    unsigned count = 0;
    str_t item, name, raw, v;
    int r;

    *seen = 0;
    while ((r = sip_list_next(&params, &item)) > 0) {
        if (++count > SIP_DIGEST_PARAMS_MAX)
            return -EMSGSIZE;
        if ((r = split_param(item, &name, &raw)) < 0 || (r = param_value(raw, s, &v)) < 0)
            return r;
        for (size_t i = 0; i < nnames; i++) {
            if (!eq_nocase(name, names[i]))
                continue;
            if (*seen & (1u << i))
                return -EBADMSG;            /* RFC 7616 §3.4: each directive once */
            *seen |= 1u << i;
            vals[i] = v;
            break;
        }
    }
    if (r < 0)
        return -EBADMSG;
    return count == 0 ? -EBADMSG : 0;
}

static sip_digest_qop_t qop_lookup(str_t s)
{
    if (eq_nocase(s, "auth"))
        return SIP_DIGEST_QOP_AUTH;
    if (eq_nocase(s, "auth-int"))
        return SIP_DIGEST_QOP_AUTH_INT;
    return SIP_DIGEST_QOP_OTHER;
}

static const char *qop_name(sip_digest_qop_t q)
{
    return q == SIP_DIGEST_QOP_AUTH_INT ? "auth-int" : "auth";
}

/* nc-value (RFC 7616 §3.4): exactly 8 hex digits. */
static bool parse_nc(str_t s, uint32_t *nc)
{
    if (s.len != 8 || !all_hex(s))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 4 | (uint32_t)hex_val(s.ptr[i]);
    *nc = v;
    return true;
}

/* ---- Credentials -------------------------------------------------------------------- */

enum {
    C_USERNAME, C_REALM, C_NONCE, C_URI, C_RESPONSE, C_ALGORITHM, C_CNONCE, C_OPAQUE, C_QOP,
    C_NC, C_USERHASH, C_COUNT
};

static const char *const creds_names[C_COUNT] = {
    [C_USERNAME] = "username", [C_REALM] = "realm", [C_NONCE] = "nonce", [C_URI] = "uri",
    [C_RESPONSE] = "response", [C_ALGORITHM] = "algorithm", [C_CNONCE] = "cnonce",
    [C_OPAQUE] = "opaque", [C_QOP] = "qop", [C_NC] = "nc", [C_USERHASH] = "userhash",
};

#define BIT(i) (1u << (i))
#define CREDS_REQUIRED (BIT(C_USERNAME) | BIT(C_REALM) | BIT(C_NONCE) | BIT(C_URI) | \
                        BIT(C_RESPONSE))

int sip_digest_creds_parse(str_t value, sip_digest_creds_t *out, char *scratch, size_t cap)
{
    str_t params, v[C_COUNT] = { 0 };
    uint32_t seen = 0;
    scratch_t s = { .p = scratch, .cap = cap };

    int r = split_scheme(value, &params);
    if (r <= 0)
        return r;
    if ((r = parse_params(params, creds_names, C_COUNT, v, &seen, &s)) < 0)
        return r;
    if ((seen & CREDS_REQUIRED) != CREDS_REQUIRED)
        return -EBADMSG;

    *out = (sip_digest_creds_t){
        .username = v[C_USERNAME], .realm = v[C_REALM], .nonce = v[C_NONCE], .uri = v[C_URI],
        .response = v[C_RESPONSE], .cnonce = v[C_CNONCE], .opaque = v[C_OPAQUE],
        .algorithm = v[C_ALGORITHM], .qop_name = v[C_QOP], .nc_text = v[C_NC],
    };
    if (out->username.len == 0 || out->nonce.len == 0 || out->uri.len == 0)
        return -EBADMSG;
    /* RFC 2617 §3.2.1: no algorithm means MD5. */
    out->alg = (seen & BIT(C_ALGORITHM)) ? sip_digest_alg_lookup(out->algorithm)
                                          : SIP_DIGEST_MD5;
    size_t want = sip_digest_alg_supported(out->alg) ? 2 * sip_digest_alg_len(out->alg) : 0;
    if (out->response.len == 0 || out->response.len > SIP_DIGEST_HEX_MAX_BYTES ||
        (want && out->response.len != want) || !all_hex(out->response))
        return -EBADMSG;

    /* RFC 7616 §3.4: cnonce and nc come with qop and only with it. */
    bool has_qop = seen & BIT(C_QOP);
    if (has_qop != !!(seen & BIT(C_CNONCE)) || has_qop != !!(seen & BIT(C_NC)))
        return -EBADMSG;
    out->qop = has_qop ? qop_lookup(out->qop_name) : SIP_DIGEST_QOP_NONE;
    if (has_qop && !parse_nc(out->nc_text, &out->nc))
        return -EBADMSG;

    if (seen & BIT(C_USERHASH)) {
        if (eq_nocase(v[C_USERHASH], "true"))
            out->userhash = true;
        else if (!eq_nocase(v[C_USERHASH], "false"))
            return -EBADMSG;
    }
    return 1;
}

int sip_digest_creds_write(const sip_digest_creds_t *c, char *out, size_t cap,
                           size_t *out_len)
{
    out_t o = { .p = out, .cap = cap };
    bool ok = true;
    char nc[9];

    if (c->username.len == 0 || c->nonce.len == 0 || c->uri.len == 0 || c->response.len == 0)
        return -EINVAL;
    if (!sip_digest_alg_supported(c->alg) && !all_token(c->algorithm))
        return -EINVAL;
    if (c->qop != SIP_DIGEST_QOP_NONE) {
        if (c->qop == SIP_DIGEST_QOP_OTHER && !all_token(c->qop_name))
            return -EINVAL;
        if (c->nc_text.len == 0)
            snprintf(nc, sizeof(nc), "%08x", c->nc);
        else if (c->nc_text.len == 8 && all_hex(c->nc_text))
            snprintf(nc, sizeof(nc), "%.8s", c->nc_text.ptr);
        else
            return -EINVAL;
    }

    put_cstr(&o, "Digest username=");
    ok &= put_quoted(&o, c->username);
    put_cstr(&o, ", realm=");
    ok &= put_quoted(&o, c->realm);
    put_cstr(&o, ", nonce=");
    ok &= put_quoted(&o, c->nonce);
    put_cstr(&o, ", uri=");
    ok &= put_quoted(&o, c->uri);
    put_cstr(&o, ", response=");
    ok &= put_quoted(&o, c->response);
    put_cstr(&o, ", algorithm=");
    if (sip_digest_alg_supported(c->alg))
        put_cstr(&o, sip_digest_alg_name(c->alg));
    else
        put(&o, c->algorithm.ptr, c->algorithm.len);
    if (c->qop != SIP_DIGEST_QOP_NONE) {
        put_cstr(&o, ", cnonce=");
        ok &= put_quoted(&o, c->cnonce);
    }
    if (c->opaque.len) {
        put_cstr(&o, ", opaque=");
        ok &= put_quoted(&o, c->opaque);
    }
    if (c->qop != SIP_DIGEST_QOP_NONE) {
        put_cstr(&o, ", qop=");
        if (c->qop == SIP_DIGEST_QOP_OTHER)
            put(&o, c->qop_name.ptr, c->qop_name.len);
        else
            put_cstr(&o, qop_name(c->qop));
        put_cstr(&o, ", nc=");
        put_cstr(&o, nc);
    }
    if (c->userhash)
        put_cstr(&o, ", userhash=true");
    if (!ok)
        return -EINVAL;
    return out_finish(&o, out_len);
}

/* ---- Verification ------------------------------------------------------------------- */

/* RFC 7616 §3.4.1-§3.4.3, into out (the algorithm's length), from ha1 (the base HA1). */
static void compute_response(const sip_digest_creds_t *c, str_t method, str_t body,
                             const uint8_t *ha1, uint8_t *out)
{
    sip_digest_alg_t alg = c->alg;
    size_t dlen = sip_digest_alg_len(alg);
    uint8_t d[SIP_DIGEST_MAX_BYTES];
    char a1hex[SIP_DIGEST_HEX_MAX_BYTES + 1], a2hex[SIP_DIGEST_HEX_MAX_BYTES + 1];
    char bodyhex[SIP_DIGEST_HEX_MAX_BYTES + 1];
    hash_t h;

    ASSERT(c->qop != SIP_DIGEST_QOP_OTHER);
    sip_digest_hex(ha1, dlen, a1hex);
    if (alg_is_sess(alg)) {
        h_init(&h, alg);
        h_update(&h, a1hex, 2 * dlen);
        h_colon(&h);
        h_str(&h, c->nonce);
        h_colon(&h);
        h_str(&h, c->cnonce);
        h_final(&h, d);
        sip_digest_hex(d, dlen, a1hex);
    }

    h_init(&h, alg);
    h_str(&h, method);
    h_colon(&h);
    h_str(&h, c->uri);
    if (c->qop == SIP_DIGEST_QOP_AUTH_INT) {
        /* RFC 3261 §22.4: an empty body hashes as the empty string. */
        hash_t hb;
        h_init(&hb, alg);
        h_str(&hb, body);
        h_final(&hb, d);
        sip_digest_hex(d, dlen, bodyhex);
        h_colon(&h);
        h_update(&h, bodyhex, 2 * dlen);
    }
    h_final(&h, d);
    sip_digest_hex(d, dlen, a2hex);

    h_init(&h, alg);
    h_update(&h, a1hex, 2 * dlen);
    h_colon(&h);
    h_str(&h, c->nonce);
    h_colon(&h);
    if (c->qop != SIP_DIGEST_QOP_NONE) {
        h_str(&h, c->nc_text);
        h_colon(&h);
        h_str(&h, c->cnonce);
        h_colon(&h);
        h_str(&h, c->qop_name.len ? c->qop_name : str_from_cstr(qop_name(c->qop)));
        h_colon(&h);
    }
    h_update(&h, a2hex, 2 * dlen);
    h_final(&h, out);
    OPENSSL_cleanse(a1hex, sizeof(a1hex));
    OPENSSL_cleanse(d, sizeof(d));
}

void sip_digest_response_hex(const sip_digest_creds_t *creds, str_t method, str_t body,
                             const uint8_t *ha1, size_t ha1_len,
                             char out[SIP_DIGEST_HEX_MAX_BYTES + 1])
{
    uint8_t d[SIP_DIGEST_MAX_BYTES];
    ASSERT(sip_digest_alg_supported(creds->alg));
    ASSERT(ha1_len == sip_digest_alg_len(creds->alg));
    compute_response(creds, method, body, ha1, d);
    sip_digest_hex(d, ha1_len, out);
}

const char *sip_digest_result_name(sip_digest_result_t r)
{
    static const char *const names[] = {
        [SIP_DIGEST_OK] = "ok", [SIP_DIGEST_BAD] = "bad", [SIP_DIGEST_STALE] = "stale",
        [SIP_DIGEST_MALFORMED] = "malformed", [SIP_DIGEST_WRONG_REALM] = "wrong-realm",
    };
    ASSERT((size_t)r < ARRAY_LEN(names));
    return names[r];
}

/* Step 1 of sip_digest_verify: what makes credentials impossible to check as sent. */
static bool creds_checkable(const sip_digest_conf_t *conf, const sip_digest_request_t *req,
                            const sip_digest_creds_t *c)
{
    if (!sip_digest_alg_supported(c->alg) || !(conf->algs & SIP_DIGEST_ALG_BIT(c->alg)))
        return false;
    switch (c->qop) {
    case SIP_DIGEST_QOP_NONE:
        /* -sess needs a cnonce, which comes only with qop. */
        if (!conf->accept_no_qop || alg_is_sess(c->alg))
            return false;
        break;
    case SIP_DIGEST_QOP_AUTH:
        break;
    case SIP_DIGEST_QOP_AUTH_INT:
        if (!conf->offer_auth_int)
            return false;
        break;
    default:
        return false;
    }
    if (c->qop != SIP_DIGEST_QOP_NONE && (c->nc == 0 || c->nc_text.len != 8))
        return false;
    if (c->userhash || (conf->opaque.len && !str_eq(c->opaque, conf->opaque)))
        return false;
    if (req->request_uri.len && !str_eq(c->uri, req->request_uri))
        return false;
    return c->response.len == 2 * sip_digest_alg_len(c->alg) && all_hex(c->response);
}

sip_digest_result_t sip_digest_verify(const sip_digest_conf_t *conf,
                                      const sip_digest_request_t *req,
                                      const sip_digest_creds_t *creds, const uint8_t *ha1,
                                      size_t ha1_len, sip_digest_alg_t ha1_alg)
{
    conf_assert(conf);
    if (ha1) {
        ASSERT(sip_digest_alg_supported(ha1_alg));
        ASSERT(ha1_len == sip_digest_alg_len(ha1_alg));
    }
    if (!creds_checkable(conf, req, creds))
        return SIP_DIGEST_MALFORMED;
    if (!str_eq(creds->realm, req->realm))
        return SIP_DIGEST_WRONG_REALM;
    int fresh = sip_digest_nonce_check(conf, req->realm, creds->nonce, req->now_s, NULL);
    if (fresh == -EBADMSG)
        return SIP_DIGEST_BAD;

    /* Without a usable HA1 the same work is done on zeros, and the answer is BAD whatever
     * the comparison says. */
    size_t dlen = sip_digest_alg_len(creds->alg);
    bool usable = ha1 && sip_digest_alg_base(ha1_alg) == sip_digest_alg_base(creds->alg);
    uint8_t key[SIP_DIGEST_MAX_BYTES] = { 0 }, want[SIP_DIGEST_MAX_BYTES];
    uint8_t got[SIP_DIGEST_MAX_BYTES];
    if (usable)
        memcpy(key, ha1, dlen);
    compute_response(creds, req->method, req->body, key, want);
    hex_decode(creds->response, got, dlen);
    bool match = CRYPTO_memcmp(want, got, dlen) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(want, sizeof(want));

    if (!match || !usable)
        return SIP_DIGEST_BAD;
    /* RFC 7616 §3.3: stale only when the response proves the UA knows the password. */
    return fresh == -ETIMEDOUT ? SIP_DIGEST_STALE : SIP_DIGEST_OK;
}

/* ---- Replay guard ------------------------------------------------------------------- */

void sip_digest_nc_guard_init(sip_digest_nc_guard_t *g)
{
    memset(g, 0, sizeof(*g));
}

/* A slot is free when nc_max is 0: every accepted nonce-count is at least 1. */
static sip_digest_nc_slot_t *guard_victim(sip_digest_nc_guard_t *g,
                                          const sip_digest_conf_t *conf, uint64_t now_s)
{
    sip_digest_nc_slot_t *oldest = &g->slot[0];
    for (size_t i = 0; i < SIP_DIGEST_GUARD_SLOTS; i++) {
        sip_digest_nc_slot_t *s = &g->slot[i];
        if (s->nc_max == 0 || !nonce_fresh(conf, s->issued_s, now_s))
            return s;
        if (s->issued_s < oldest->issued_s)
            oldest = s;
    }
    return oldest;
}

int sip_digest_nc_guard_check(sip_digest_nc_guard_t *g, const sip_digest_conf_t *conf,
                              const sip_digest_creds_t *creds, uint64_t now_s)
{
    uint8_t raw[SIP_DIGEST_NONCE_RAW_BYTES];

    conf_assert(conf);
    if (creds->qop == SIP_DIGEST_QOP_NONE)
        return 0;
    ASSERT(nonce_decode(creds->nonce, raw));
    ASSERT(creds->nc > 0);
    uint64_t ts = load_be64(raw);
    const uint8_t *mac = raw + NONCE_TS_BYTES;
    uint32_t nc = creds->nc;

    for (size_t i = 0; i < SIP_DIGEST_GUARD_SLOTS; i++) {
        sip_digest_nc_slot_t *s = &g->slot[i];
        if (s->nc_max == 0 || s->issued_s != ts || memcmp(s->mac, mac, sizeof(s->mac)) != 0)
            continue;
        if (nc > s->nc_max) {
            uint32_t shift = nc - s->nc_max;
            s->seen = shift >= GUARD_WINDOW ? 1 : (s->seen << shift) | 1;
            s->nc_max = nc;
            return 0;
        }
        uint32_t back = s->nc_max - nc;
        if (back >= GUARD_WINDOW || (s->seen & (UINT64_C(1) << back)))
            return -EALREADY;
        s->seen |= UINT64_C(1) << back;
        return 0;
    }
    sip_digest_nc_slot_t *s = guard_victim(g, conf, now_s);
    s->issued_s = ts;
    memcpy(s->mac, mac, sizeof(s->mac));
    s->nc_max = nc;
    s->seen = 1;
    return 0;
}

/* ---- Client ------------------------------------------------------------------------ */

enum { H_REALM, H_NONCE, H_OPAQUE, H_ALGORITHM, H_QOP, H_STALE, H_DOMAIN, H_USERHASH, H_COUNT };

static const char *const challenge_names[H_COUNT] = {
    [H_REALM] = "realm", [H_NONCE] = "nonce", [H_OPAQUE] = "opaque",
    [H_ALGORITHM] = "algorithm", [H_QOP] = "qop", [H_STALE] = "stale", [H_DOMAIN] = "domain",
    [H_USERHASH] = "userhash",
};

/* qop-options (RFC 7616 §3.3): a comma-separated list inside the quoted value. */
static void parse_qop_options(str_t list, sip_digest_challenge_t *ch)
{
    const char *p = list.ptr, *end = str_end(list);
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e)
            e = end;
        sip_digest_qop_t q = qop_lookup(trim_lws((str_t){ p, (size_t)(e - p) }));
        ch->qop_auth |= q == SIP_DIGEST_QOP_AUTH;
        ch->qop_auth_int |= q == SIP_DIGEST_QOP_AUTH_INT;
        p = e < end ? e + 1 : end;
    }
}

int sip_digest_challenge_parse(str_t value, sip_digest_challenge_t *out, char *scratch,
                               size_t cap)
{
    str_t params, v[H_COUNT] = { 0 };
    uint32_t seen = 0;
    scratch_t s = { .p = scratch, .cap = cap };

    int r = split_scheme(value, &params);
    if (r <= 0)
        return r;
    if ((r = parse_params(params, challenge_names, H_COUNT, v, &seen, &s)) < 0)
        return r;
    if (!(seen & BIT(H_REALM)) || !(seen & BIT(H_NONCE)) || v[H_NONCE].len == 0)
        return -EBADMSG;

    *out = (sip_digest_challenge_t){
        .realm = v[H_REALM], .nonce = v[H_NONCE], .opaque = v[H_OPAQUE],
        .algorithm = v[H_ALGORITHM], .domain = v[H_DOMAIN],
        .alg = (seen & BIT(H_ALGORITHM)) ? sip_digest_alg_lookup(v[H_ALGORITHM])
                                         : SIP_DIGEST_MD5,
        .has_qop = seen & BIT(H_QOP),
        .stale = eq_nocase(v[H_STALE], "true"),
        .userhash = eq_nocase(v[H_USERHASH], "true"),
    };
    if (out->has_qop)
        parse_qop_options(v[H_QOP], out);
    return 1;
}

bool sip_digest_challenge_usable(const sip_digest_challenge_t *ch)
{
    if (!sip_digest_alg_supported(ch->alg))
        return false;
    if (!ch->has_qop)
        return !alg_is_sess(ch->alg);
    return ch->qop_auth || ch->qop_auth_int;
}

int sip_digest_respond(const sip_digest_challenge_t *ch, const sip_digest_client_req_t *req,
                       char *out, size_t cap, size_t *out_len)
{
    uint8_t ha1[SIP_DIGEST_MAX_BYTES], d[SIP_DIGEST_MAX_BYTES];
    uint8_t rnd[SIP_DIGEST_CNONCE_RANDOM_BYTES];
    char cnonce[B64_CHARS(SIP_DIGEST_CNONCE_RANDOM_BYTES) + 1], nc[9];
    char response[SIP_DIGEST_HEX_MAX_BYTES + 1];
    size_t dlen = 0;
    int rc;

    if (!sip_digest_challenge_usable(ch))
        return -ENOTSUP;
    /* Method is a token (RFC 3261 §25.1); the other strings are checked as they are quoted. */
    if (req->username.len == 0 || req->uri.len == 0 || !all_token(req->method))
        return -EINVAL;
    if (req->ha1) {
        dlen = sip_digest_alg_len(ch->alg);
        if (req->ha1_len != dlen)
            return -EINVAL;
        memcpy(ha1, req->ha1, dlen);
    } else if ((rc = sip_digest_ha1(ch->alg, req->username, ch->realm, req->password, ha1,
                                    &dlen)) < 0) {
        return rc;
    }

    sip_digest_creds_t c = {
        .username = req->username, .realm = ch->realm, .nonce = ch->nonce, .uri = req->uri,
        .opaque = ch->opaque, .alg = ch->alg, .qop = SIP_DIGEST_QOP_NONE,
    };
    if (ch->has_qop) {
        bool auth_int = ch->qop_auth_int && (!ch->qop_auth || req->prefer_auth_int);
        c.qop = auth_int ? SIP_DIGEST_QOP_AUTH_INT : SIP_DIGEST_QOP_AUTH;
        c.qop_name = str_from_cstr(qop_name(c.qop));
        c.nc = req->nc ? req->nc : 1;
        snprintf(nc, sizeof(nc), "%08x", c.nc);
        c.nc_text = (str_t){ nc, 8 };
        if (req->cnonce.len) {
            c.cnonce = req->cnonce;
        } else {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                OPENSSL_cleanse(ha1, sizeof(ha1));
                return -EIO;
            }
            b64url_encode(rnd, sizeof(rnd), cnonce);
            c.cnonce = (str_t){ cnonce, B64_CHARS(sizeof(rnd)) };
        }
    }
    compute_response(&c, req->method, req->body, ha1, d);
    sip_digest_hex(d, dlen, response);
    OPENSSL_cleanse(ha1, sizeof(ha1));
    c.response = (str_t){ response, 2 * dlen };
    return sip_digest_creds_write(&c, out, cap, out_len);
}
