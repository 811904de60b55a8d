/*
 * xmpp_account.c - see xmpp_account.h.
 */
#include "protocols/xmpp/xmpp_account.h"

#include <errno.h>

#include "protocols/sip/sip_digest.h"

int xmpp_account_encode(str_t user, str_t password, uint64_t created_s,
                        const sasl_scram_creds_t scram[2], buf_t *out)
{
    static const sasl_hash_t hashes[2] = { SASL_HASH_SHA1, SASL_HASH_SHA256 };
    static const account_cred_kind_t kinds[2] = { ACCOUNT_CRED_SCRAM_SHA1,
                                                  ACCOUNT_CRED_SCRAM_SHA256 };
    const char *at = memchr(user.ptr, '@', user.len);
    if (!at)
        return -EINVAL;
    uint8_t blobs[2][SASL_CREDS_BLOB_MAX_BYTES];
    account_t a = { .created_s = created_s };
    for (int i = 0; i < 2; i++) {
        sasl_scram_creds_t creds;
        size_t len;
        if (scram) {
            creds = scram[i];
        } else {
            int rc = sasl_scram_creds_new(hashes[i], password.ptr, password.len,
                                          SASL_ITERATIONS_DEFAULT, &creds);
            if (rc < 0)
                return rc;
        }
        if (sasl_scram_creds_encode(&creds, blobs[i], sizeof(blobs[i]), &len) < 0)
            return -EIO;
        a.creds[kinds[i]] = (str_t){ (const char *)blobs[i], len };
    }
    /* SIP digest (RFC 8760, RFC 2617): user is the local part, realm the domain. */
    static const sip_digest_alg_t algs[2] = { SIP_DIGEST_MD5, SIP_DIGEST_SHA256 };
    static const account_cred_kind_t dkinds[2] = { ACCOUNT_CRED_DIGEST_MD5,
                                                   ACCOUNT_CRED_DIGEST_SHA256 };
    uint8_t dblobs[2][SIP_DIGEST_HA1_BLOB_MAX_BYTES];
    str_t local = { user.ptr, (size_t)(at - user.ptr) };
    str_t realm = { at + 1, user.len - local.len - 1 };
    for (int i = 0; i < 2; i++) {
        uint8_t ha1[SIP_DIGEST_MAX_BYTES];
        size_t ha1_len, len;
        if (sip_digest_ha1(algs[i], local, realm, password, ha1, &ha1_len) < 0 ||
            sip_digest_ha1_encode(algs[i], ha1, ha1_len, dblobs[i], sizeof(dblobs[i]), &len) < 0)
            continue;   /* a password digest cannot take (too long): SIP only lacks it */
        a.creds[dkinds[i]] = (str_t){ (const char *)dblobs[i], len };
    }
    return account_encode(&a, out) < 0 ? -EINVAL : 0;
}
