/*
 * account.c - see account.h.
 *
 * Value layout, version 1: u8 format (1) | u32 flags | u64 created |
 * u8 count | (u8 kind | u16 length | blob) * count. Little-endian.
 */
#include "engine/account.h"

#include <errno.h>
#include <stdlib.h>

#define ACCOUNT_FORMAT 1

static void put_le(buf_t *out, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    buf_append(out, b, bytes);
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int account_encode(const account_t *a, buf_t *out)
{
    unsigned count = 0;
    for (unsigned k = 1; k < ACCOUNT_CRED_KINDS; k++) {
        if (a->creds[k].len > ACCOUNT_CRED_MAX_BYTES)
            return -EINVAL;
        count += a->creds[k].len > 0;
    }
    put_le(out, ACCOUNT_FORMAT, 1);
    put_le(out, a->flags, 4);
    put_le(out, a->created_s, 8);
    put_le(out, count, 1);
    for (unsigned k = 1; k < ACCOUNT_CRED_KINDS; k++) {
        if (!a->creds[k].len)
            continue;
        put_le(out, k, 1);
        put_le(out, a->creds[k].len, 2);
        buf_append(out, a->creds[k].ptr, a->creds[k].len);
    }
    return 0;
}

int account_decode(const void *value, size_t len, account_t *a)
{
    const uint8_t *p = value;
    memset(a, 0, sizeof(*a));
    if (len < 14 || p[0] != ACCOUNT_FORMAT)
        return -EBADMSG;
    a->flags = (uint32_t)get_le(p + 1, 4);
    a->created_s = get_le(p + 5, 8);
    unsigned count = p[13];
    size_t at = 14;
    for (unsigned i = 0; i < count; i++) {
        if (len - at < 3)
            return -EBADMSG;
        unsigned kind = p[at];
        size_t blen = (size_t)get_le(p + at + 1, 2);
        at += 3;
        if (kind == 0 || kind >= ACCOUNT_CRED_KINDS || a->creds[kind].len ||
            blen == 0 || blen > ACCOUNT_CRED_MAX_BYTES || blen > len - at)
            return -EBADMSG;
        a->creds[kind] = (str_t){ (const char *)p + at, blen };
        at += blen;
    }
    return at == len ? 0 : -EBADMSG;
}

int account_load(stor_t *st, str_t user, account_t *a, void **raw)
{
    size_t len;
    *raw = NULL;
    int rc = stor_get(st, STOR_CF_ACCOUNTS, user.ptr, user.len, raw, &len);
    if (rc < 0)
        return rc;
    rc = account_decode(*raw, len, a);
    if (rc < 0) {
        free(*raw);
        *raw = NULL;
    }
    return rc;
}

int account_store(stor_batch_t *b, str_t user, const account_t *a)
{
    buf_t v;
    buf_init(&v);
    int rc = account_encode(a, &v);
    if (rc == 0)
        stor_batch_put(b, STOR_CF_ACCOUNTS, user.ptr, user.len, v.data, v.len);
    buf_fini(&v);
    return rc;
}

void account_delete(stor_batch_t *b, str_t user)
{
    stor_batch_delete(b, STOR_CF_ACCOUNTS, user.ptr, user.len);
}
