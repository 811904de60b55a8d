/*
 * xmpp_account.h - account records built from a password: both SCRAM
 * credentials (SHA-1 and SHA-256, which PLAIN also checks against), never the
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

/* Appends the encoded account record (created at created_s, flags 0) to out.
 * 0, or -EINVAL when the password cannot be prepared (sasl_password_prepare),
 * -EIO when BoringSSL fails. */
int xmpp_account_encode(str_t password, uint64_t created_s, buf_t *out);

#endif
