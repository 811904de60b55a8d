/*
 * xmpp_account.h - account records built from a password: both SCRAM
 * credentials (SHA-1 and SHA-256, which PLAIN also checks against) and the
 * SIP digest HA1s (MD5 and SHA-256, realm = the account's domain), never the
 * password itself. Shared by everything that creates or changes accounts
 * (in-band registration, test authentication, the admin API).
 *
 * Threads: any; the key stretching costs two PBKDF2 runs (milliseconds), so
 * callers on a shard do it on the user's home shard, never per message.
 */
#ifndef PRESENCED_XMPP_ACCOUNT_H
#define PRESENCED_XMPP_ACCOUNT_H

#include "engine/account.h"
#include "engine/buf.h"
#include "protocols/xmpp/sasl.h"

/* Appends the encoded account record of user ("local@domain"), created at
 * created_s, to out. scram: the SCRAM-SHA-1 and SCRAM-SHA-256 credentials
 * when the caller derived them already (a cache), else NULL and they are
 * derived with a random salt. 0, or -EINVAL when the password cannot be
 * prepared (sasl_password_prepare) or user has no '@', -EIO when BoringSSL
 * fails. */
int xmpp_account_encode(str_t user, str_t password, uint64_t created_s,
                        const sasl_scram_creds_t scram[2], buf_t *out);

#endif
