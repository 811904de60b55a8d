/*
 * sasl_plain.c - see sasl.h. PLAIN (RFC 4616) against SCRAM credentials: the
 * password is re-derived with the account's salt and count and StoredKey is
 * compared, so PLAIN needs no plaintext storage. PLAIN sends the password
 * itself; offering it only over TLS (encryption-required) is the stream's job.
 */
#include "protocols/xmpp/sasl.h"

#include <errno.h>

#include <openssl/mem.h>

/* The three fields fit in one message of this size; anything longer is refused
 * before it is scanned. */
#define PLAIN_MAX_BYTES (SASL_AUTHZID_MAX_BYTES + SASL_USERNAME_MAX_BYTES + \
                         SASL_PASSWORD_MAX_BYTES + 2)

int sasl_plain_parse(const char *msg, size_t len, str_t *authzid, str_t *authcid,
                     str_t *password)
{
    if (len > PLAIN_MAX_BYTES)
        return -EMSGSIZE;
    /* message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 §2): exactly
     * two NULs, since no field may contain one. */
    const char *nul1 = len ? memchr(msg, '\0', len) : NULL;
    if (!nul1)
        return -EBADMSG;
    size_t rest = len - (size_t)(nul1 + 1 - msg);
    const char *nul2 = rest ? memchr(nul1 + 1, '\0', rest) : NULL;
    if (!nul2)
        return -EBADMSG;
    str_t z = { msg, (size_t)(nul1 - msg) };
    str_t c = { nul1 + 1, (size_t)(nul2 - nul1 - 1) };
    str_t p = { nul2 + 1, len - (size_t)(nul2 + 1 - msg) };
    if (memchr(p.ptr, '\0', p.len))
        return -EBADMSG;
    /* authcid and passwd are 1*SAFE; an empty authzid means "none". */
    if (c.len == 0 || p.len == 0)
        return -EBADMSG;
    if (z.len > SASL_AUTHZID_MAX_BYTES || c.len > SASL_USERNAME_MAX_BYTES ||
        p.len > SASL_PASSWORD_MAX_BYTES)
        return -EMSGSIZE;
    if (!sasl_utf8_valid(z.ptr, z.len) || !sasl_utf8_valid(c.ptr, c.len) ||
        !sasl_utf8_valid(p.ptr, p.len))
        return -EILSEQ;
    *authzid = z;
    *authcid = c;
    *password = p;
    return 0;
}

int sasl_plain_verify(const sasl_scram_creds_t *creds, str_t password)
{
    sasl_scram_creds_t got;
    ASSERT(creds->salt_len > 0 && creds->salt_len <= SASL_SALT_MAX_BYTES);
    int rc = sasl_scram_derive(creds->hash, password.ptr, password.len, creds->salt,
                               creds->salt_len, creds->iterations, &got);
    if (rc == -EIO)
        return rc;
    /* A password that preparation refuses could never have been enrolled:
     * that is a wrong password, not a malformed request. */
    if (rc < 0)
        return -EACCES;
    /* RFC 5802 §3: StoredKey decides, exactly as a SCRAM proof does. */
    bool ok = CRYPTO_memcmp(got.stored_key, creds->stored_key, sasl_hash_len(creds->hash)) == 0;
    OPENSSL_cleanse(&got, sizeof(got));
    return ok ? 0 : -EACCES;
}
