/*
 * account.h - user accounts as stored: never a password, only the derived
 * credentials each protocol verifies against.
 *
 * An account is keyed by its canonical bare JID ("local@domain") in the
 * accounts column family. Its record holds one credential per kind: SCRAM
 * stored/server keys for XMPP's SCRAM-SHA-1 and SCRAM-SHA-256 (also used to
 * check PLAIN), and later the SIP digest hashes. The engine treats each
 * credential as an opaque blob: the protocol that derives it also checks it.
 *
 * Threads: encode/decode are pure; account_load/account_store block on
 * storage (RocksDB reads from memory in microseconds) and may run on a shard.
 */
#ifndef PRESENCED_ACCOUNT_H
#define PRESENCED_ACCOUNT_H

#include "engine/buf.h"
#include "engine/common.h"
#include "storage/stor.h"

typedef enum {
    ACCOUNT_CRED_SCRAM_SHA1 = 1,
    ACCOUNT_CRED_SCRAM_SHA256 = 2,
    ACCOUNT_CRED_DIGEST_MD5 = 3,        /* SIP digest HA1, RFC 2617 */
    ACCOUNT_CRED_DIGEST_SHA256 = 4,     /* SIP digest HA1, RFC 8760 */
    ACCOUNT_CRED_KINDS
} account_cred_kind_t;

/* A credential blob is at most this large (a SCRAM blob with a 64-byte salt
 * is 135 bytes); records are read on every login, so they stay small. */
#define ACCOUNT_CRED_MAX_BYTES 512

enum {
    ACCOUNT_F_DISABLED = 1u << 0,       /* SASL "account-disabled" */
};

typedef struct {
    uint32_t flags;
    uint64_t created_s;                 /* seconds since the epoch */
    str_t creds[ACCOUNT_CRED_KINDS];    /* empty: none of that kind */
} account_t;

/* Appends the record to out; -EINVAL when a blob is too large. */
int account_encode(const account_t *a, buf_t *out);
/* Slices into value; 0 or -EBADMSG. */
int account_decode(const void *value, size_t len, account_t *a);

/* Reads the record of user into *raw (malloc'd; the caller frees it) and
 * decodes it into a (slices into *raw). 0, -ENOENT, -EBADMSG, -EIO. */
int account_load(stor_t *st, str_t user, account_t *a, void **raw);
/* Writes (or replaces) the record in batch b. */
int account_store(stor_batch_t *b, str_t user, const account_t *a);
void account_delete(stor_batch_t *b, str_t user);

#endif
