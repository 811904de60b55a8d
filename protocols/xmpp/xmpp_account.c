/*
 * xmpp_account.c - see xmpp_account.h.
 */
#include "protocols/xmpp/xmpp_account.h"

#include <errno.h>

#include "protocols/xmpp/sasl.h"

int xmpp_account_encode(str_t password, uint64_t created_s, buf_t *out)
{
    static const sasl_hash_t hashes[2] = { SASL_HASH_SHA1, SASL_HASH_SHA256 };
    static const account_cred_kind_t kinds[2] = { ACCOUNT_CRED_SCRAM_SHA1,
                                                  ACCOUNT_CRED_SCRAM_SHA256 };
    uint8_t blobs[2][SASL_CREDS_BLOB_MAX_BYTES];
    account_t a = { .created_s = created_s };
    for (int i = 0; i < 2; i++) {
        sasl_scram_creds_t creds;
        size_t len;
        int rc = sasl_scram_creds_new(hashes[i], password.ptr, password.len,
                                      SASL_ITERATIONS_DEFAULT, &creds);
        if (rc < 0)
            return rc;
        if (sasl_scram_creds_encode(&creds, blobs[i], sizeof(blobs[i]), &len) < 0)
            return -EIO;
        a.creds[kinds[i]] = (str_t){ (const char *)blobs[i], len };
    }
    return account_encode(&a, out) < 0 ? -EINVAL : 0;
}
