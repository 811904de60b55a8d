/*
 * tls.c - see tls.h.
 */
#include "engine/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/buf.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Plaintext read out of SSL per call: one maximal TLS record. */
#define TLS_PLAIN_CHUNK 16384
/* Plaintext a connection may queue before its handshake completes: a stream
 * header and features; more is a peer stalling the handshake. */
#define TLS_PENDING_MAX (64 * 1024)
/* Self-signed certificates: ten years, as long-lived test deployments expect. */
#define TLS_SELF_SIGNED_DAYS 3650

struct tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio;          /* ciphertext from the peer, read by SSL */
    BIO *wbio;          /* ciphertext for the peer, written by SSL */
    buf_t pending;      /* plaintext written before the handshake finished */
    bool failed;
};

/* A memory BIO keeps the largest buffer it ever held (its BUF_MEM grows and
 * never shrinks), so a stream that once carried a roster or a burst of
 * presences would hold kilobytes of it for as long as it stays idle. Emptied,
 * the BIO gives the buffer back; the next record allocates afresh. */
static void tls_bio_release_if_empty(BIO *bio)
{
    BUF_MEM *bm = NULL;
    if (BIO_get_mem_ptr(bio, &bm) == 1 && bm && bm->length == 0 && bm->data) {
        OPENSSL_free(bm->data);
        bm->data = NULL;
        bm->max = 0;
    }
}

static size_t tls_bio_capacity(BIO *bio)
{
    BUF_MEM *bm = NULL;
    return BIO_get_mem_ptr(bio, &bm) == 1 && bm && bm->data ? bm->max : 0;
}

size_t tls_conn_buffered_bytes(const tls_conn_t *t)
{
    return tls_bio_capacity(t->rbio) + tls_bio_capacity(t->wbio) + t->pending.cap;
}

static void tls_err(char *err, size_t len, const char *what)
{
    char detail[160];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, detail, sizeof(detail));
    snprintf(err, len, "%s: %s", what, e ? detail : "unknown error");
    ERR_clear_error();
}

/* --- certificates --- */

static int tls_write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    /* 0600: the key file must not be readable by others. */
    FILE *f = NULL;
    int fd = -1;
    if (key) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
    } else {
        f = fopen(path, "w");
    }
    if (!f)
        return -errno;
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, cert);
    if (fclose(f) != 0 || !ok)
        return -EIO;
    return 0;
}

int tls_generate_self_signed(const char *cert_path, const char *key_path, const char *host,
                             char *err, size_t err_len)
{
    int rc = -EIO;
    EVP_PKEY *pkey = EVP_PKEY_new();
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    X509 *x = X509_new();
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    uint8_t serial[16];

    if (!pkey || !ec || !x || !names || !gn || !ia5 || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        tls_err(err, err_len, "generating a key");
        goto out;
    }
    ec = NULL;      /* owned by pkey now */
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;      /* positive */
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    X509_NAME *name = X509_get_subject_name(x);
    if (!bn || !X509_set_version(x, X509_VERSION_3) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)TLS_SELF_SIGNED_DAYS * 86400) ||
        !X509_set_pubkey(x, pkey) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)host, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name) ||
        !ASN1_STRING_set(ia5, host, (int)strlen(host))) {
        BN_free(bn);
        tls_err(err, err_len, "building the certificate");
        goto out;
    }
    BN_free(bn);
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(names, gn)) {
        tls_err(err, err_len, "building the certificate");
        goto out;
    }
    gn = NULL;
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0) ||
        !X509_sign(x, pkey, EVP_sha256())) {
        tls_err(err, err_len, "signing the certificate");
        goto out;
    }
    rc = tls_write_pem(key_path, NULL, pkey);
    if (rc == 0)
        rc = tls_write_pem(cert_path, x, NULL);
    if (rc < 0)
        snprintf(err, err_len, "writing %s / %s: %s", cert_path, key_path, strerror(-rc));
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free);
    X509_free(x);
    EC_KEY_free(ec);
    EVP_PKEY_free(pkey);
    return rc;
}

/* --- contexts --- */

/* A context with the node's protocol settings, or NULL on ENOMEM. */
static tls_ctx_t *tls_ctx_new(void)
{
    tls_ctx_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl_ctx = SSL_CTX_new(TLS_method());
    if (!t->ssl_ctx) {
        free(t);
        return NULL;
    }
    /* TLS 1.2 is still what many XMPP and SIP clients offer; nothing older. */
    SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
    /* Handshakes are driven by our loop through memory BIOs. */
    SSL_CTX_set_mode(t->ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return t;
}

int tls_ctx_create_server(const char *cert_path, const char *key_path, tls_ctx_t **out,
                          char *err, size_t err_len)
{
    tls_ctx_t *t = tls_ctx_new();
    if (!t)
        return -ENOMEM;
    if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cert_path) != 1) {
        tls_err(err, err_len, cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        tls_err(err, err_len, key_path);
        goto fail;
    }
    if (SSL_CTX_check_private_key(t->ssl_ctx) != 1) {
        tls_err(err, err_len, "the key does not match the certificate");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tls_ctx_destroy(t);
    return -EINVAL;
}

int tls_ctx_create_client(tls_ctx_t **out)
{
    tls_ctx_t *t = tls_ctx_new();
    if (!t)
        return -ENOMEM;
    SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_NONE, NULL);
    *out = t;
    return 0;
}

void tls_ctx_destroy(tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* --- connections --- */

tls_conn_t *tls_conn_create(tls_ctx_t *ctx, bool server)
{
    tls_conn_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return NULL;
    }
    /* An empty memory BIO reports "retry" rather than end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);      /* SSL owns both BIOs now */
    if (server) {
        /* The copy of the context's configuration (certificate chain, cipher
         * and curve lists) is only needed for the handshake. */
        SSL_set_shed_handshake_config(t->ssl, 1);
        SSL_set_accept_state(t->ssl);
    }
    else
        SSL_set_connect_state(t->ssl);
    buf_init(&t->pending);
    return t;
}

void tls_conn_destroy(tls_conn_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    buf_fini(&t->pending);
    free(t);
}

static int tls_fail(tls_conn_t *t)
{
    t->failed = true;
    ERR_clear_error();
    return -EPROTO;
}

/* Writes queued plaintext once the handshake allows it. */
static int tls_flush_pending(tls_conn_t *t)
{
    size_t off = 0;
    while (off < t->pending.len) {
        int n = SSL_write(t->ssl, t->pending.data + off, (int)(t->pending.len - off));
        if (n <= 0) {
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            return tls_fail(t);
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(t->pending.data, t->pending.data + off, t->pending.len - off);
        t->pending.len -= off;
    }
    if (!t->pending.len)
        buf_fini(&t->pending);      /* as for the BIOs: nothing kept while idle */
    return 0;
}

int tls_conn_recv(tls_conn_t *t, const char *data, size_t len, tls_plain_fn fn, void *ctx)
{
    char plain[TLS_PLAIN_CHUNK];

    if (t->failed)
        return -EPROTO;
    if (len && BIO_write(t->rbio, data, (int)len) != (int)len)
        return tls_fail(t);
    for (;;) {
        int n = SSL_read(t->ssl, plain, sizeof(plain));
        if (n > 0) {
            int rc = fn(ctx, plain, (size_t)n);
            if (rc < 0)
                return rc;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            break;      /* close_notify: the peer's end of stream follows */
        return tls_fail(t);
    }
    tls_bio_release_if_empty(t->rbio);
    if (t->pending.len && SSL_is_init_finished(t->ssl))
        return tls_flush_pending(t);
    return 0;
}

int tls_conn_send(tls_conn_t *t, const void *data, size_t len)
{
    if (t->failed)
        return -EPROTO;
    if (t->pending.len || !SSL_is_init_finished(t->ssl)) {
        if (t->pending.len + len > TLS_PENDING_MAX)
            return -ENOBUFS;
        buf_append(&t->pending, data, len);
        return SSL_is_init_finished(t->ssl) ? tls_flush_pending(t) : 0;
    }
    size_t off = 0;
    while (off < len) {
        int n = SSL_write(t->ssl, (const char *)data + off, (int)(len - off));
        if (n <= 0) {
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                buf_append(&t->pending, (const char *)data + off, len - off);
                return 0;
            }
            return tls_fail(t);
        }
        off += (size_t)n;
    }
    return 0;
}

size_t tls_conn_take_out(tls_conn_t *t, buf_t *out)
{
    size_t pending = BIO_pending(t->wbio);
    if (pending == 0)
        return 0;
    buf_reserve(out, pending);
    int n = BIO_read(t->wbio, out->data + out->len, (int)pending);
    if (n <= 0)
        return 0;
    out->len += (size_t)n;
    tls_bio_release_if_empty(t->wbio);
    return (size_t)n;
}

int tls_conn_connect(tls_conn_t *t)
{
    int n = SSL_do_handshake(t->ssl);
    if (n == 1)
        return 0;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return tls_fail(t);
}

void tls_conn_shutdown(tls_conn_t *t)
{
    if (!t->failed && SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

bool tls_conn_established(const tls_conn_t *t)
{
    return !t->failed && SSL_is_init_finished(t->ssl);
}

const char *tls_conn_version(const tls_conn_t *t)
{
    return tls_conn_established(t) ? SSL_get_version(t->ssl) : "";
}

int tls_conn_exporter(const tls_conn_t *t, uint8_t *out, size_t out_len)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    if (!tls_conn_established(t))
        return -ENOTCONN;
    if (!SSL_export_keying_material(t->ssl, out, out_len, label, sizeof(label) - 1, NULL, 0,
                                    1))
        return -EIO;
    return 0;
}
