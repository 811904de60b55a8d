/*
 * sasl.c - see sasl.h. What every mechanism shares: mechanism and failure
 * names, the error -> RFC 6120 §6.5 condition map, UTF-8 validation and the
 * OpaqueString password preparation. SCRAM is in sasl_scram.c, PLAIN in
 * sasl_plain.c.
 */
#include "protocols/xmpp/sasl.h"

#include <errno.h>

#include <openssl/mem.h>
#include <utf8proc.h>

static const char *const mech_names[SASL_MECH_COUNT] = {
    [SASL_MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SASL_MECH_SCRAM_SHA_1] = "SCRAM-SHA-1",
    [SASL_MECH_PLAIN] = "PLAIN",
};

/* Indexed by sasl_failure_t; the element names of RFC 6120 §6.5.1-§6.5.11. */
static const char *const failure_names[SASL_FAIL_COUNT] = {
    [SASL_FAIL_ABORTED] = "aborted",
    [SASL_FAIL_ACCOUNT_DISABLED] = "account-disabled",
    [SASL_FAIL_CREDENTIALS_EXPIRED] = "credentials-expired",
    [SASL_FAIL_ENCRYPTION_REQUIRED] = "encryption-required",
    [SASL_FAIL_INCORRECT_ENCODING] = "incorrect-encoding",
    [SASL_FAIL_INVALID_AUTHZID] = "invalid-authzid",
    [SASL_FAIL_INVALID_MECHANISM] = "invalid-mechanism",
    [SASL_FAIL_MALFORMED_REQUEST] = "malformed-request",
    [SASL_FAIL_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
    [SASL_FAIL_NOT_AUTHORIZED] = "not-authorized",
    [SASL_FAIL_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
};

size_t sasl_hash_len(sasl_hash_t hash)
{
    ASSERT(hash == SASL_HASH_SHA1 || hash == SASL_HASH_SHA256);
    return hash == SASL_HASH_SHA1 ? 20 : 32;
}

const char *sasl_mech_name(sasl_mech_t mech)
{
    ASSERT((unsigned)mech < SASL_MECH_COUNT);
    return mech_names[mech];
}

int sasl_mech_from_name(str_t name, sasl_mech_t *out)
{
    for (unsigned i = 0; i < SASL_MECH_COUNT; i++) {
        if (str_eq_cstr(name, mech_names[i])) {
            *out = (sasl_mech_t)i;
            return 0;
        }
    }
    return -ENOENT;
}

const char *sasl_failure_name(sasl_failure_t failure)
{
    ASSERT((unsigned)failure < SASL_FAIL_COUNT);
    return failure_names[failure];
}

sasl_failure_t sasl_failure_for_error(int err)
{
    switch (err) {
    case -EACCES:
        return SASL_FAIL_NOT_AUTHORIZED;
    case -EBADMSG:
    case -EMSGSIZE:
    case -EILSEQ:
    case -EPROTONOSUPPORT:
    case -ENOTSUP:
    case -EINVAL:
        return SASL_FAIL_MALFORMED_REQUEST;
    default:
        /* -ENOSPC (caller's buffer), -EIO (no randomness): our fault, not the
         * client's, and worth a retry (RFC 6120 §6.5.11). */
        return SASL_FAIL_TEMPORARY_AUTH_FAILURE;
    }
}

const char *sasl_error_text(int err)
{
    switch (err) {
    case 0:
        return "";
    case -EACCES:
        return "authentication failed";
    case -EMSGSIZE:
        return "message or field too long";
    case -EILSEQ:
        return "invalid UTF-8 or disallowed character";
    case -EPROTONOSUPPORT:
        return "channel binding is not supported";
    case -ENOTSUP:
        return "mandatory extension not supported";
    case -EBADMSG:
    case -EINVAL:
        return "malformed message";
    default:
        return "temporary failure";
    }
}

bool sasl_utf8_valid(const char *s, size_t len)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t off = 0;
    while (off < len) {
        /* Plain ASCII is the common case and needs no call. */
        if (p[off] < 0x80) {
            off++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + off, (utf8proc_ssize_t)(len - off), &cp);
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

/*
 * Code points held while normalising: one per input byte covers every input
 * whose decomposition is no longer than itself, which is all but contrived
 * ones (a few 3-byte characters decompose into 4 code points); longer ones are
 * refused with -EMSGSIZE rather than truncated. The +1 is the byte that
 * utf8proc_reencode writes after the result (its header's warning).
 */
#define PREP_CODEPOINTS_MAX SASL_PASSWORD_MAX_BYTES
_Static_assert(PREP_CODEPOINTS_MAX * 4 >= SASL_PASSWORD_MAX_BYTES + 1,
               "re-encoded password must fit in the code-point buffer");

int sasl_password_prepare(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    utf8proc_int32_t cps[PREP_CODEPOINTS_MAX + 1];
    /* STABLE|COMPOSE: canonical decomposition and reordering now, composition in
     * utf8proc_reencode; that pair is NFC (utf8proc_NFC uses the same flags).
     * REJECTNA: FreeformClass allows no unassigned code points. */
    const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_REJECTNA;
    int rc = 0;

    if (len > SASL_PASSWORD_MAX_BYTES)
        return -EMSGSIZE;
    if (len == 0)
        return -EINVAL;
    utf8proc_ssize_t n = utf8proc_decompose((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)len,
                                            cps, PREP_CODEPOINTS_MAX, opts);
    if (n == UTF8PROC_ERROR_INVALIDUTF8 || n == UTF8PROC_ERROR_NOTASSIGNED) {
        rc = -EILSEQ;
        goto out;
    }
    ASSERT(n > 0);                  /* the other errors are bad options or memory */
    if (n > PREP_CODEPOINTS_MAX) {
        rc = -EMSGSIZE;
        goto out;
    }

    for (utf8proc_ssize_t i = 0; i < n; i++) {
        utf8proc_category_t cat = utf8proc_category(cps[i]);
        if (cat == UTF8PROC_CATEGORY_CC) {
            rc = -EILSEQ;
            goto out;
        }
        /* RFC 8265 §4.2.2.1 step 1: non-ASCII space -> SPACE. Zs code points are
         * starters that compose with nothing, so mapping them after the
         * decomposition gives the same result as before it. */
        if (cat == UTF8PROC_CATEGORY_ZS)
            cps[i] = 0x20;
    }

    utf8proc_ssize_t bytes = utf8proc_reencode(cps, n, opts);
    ASSERT(bytes > 0);              /* code points came from utf8proc itself */
    if ((size_t)bytes > SASL_PASSWORD_MAX_BYTES || (size_t)bytes > cap) {
        rc = -EMSGSIZE;
        goto out;
    }
    memcpy(out, cps, (size_t)bytes);
    *out_len = (size_t)bytes;
out:
    /* The buffer held the password: do not leave it on the stack. */
    OPENSSL_cleanse(cps, sizeof(cps));
    return rc;
}
