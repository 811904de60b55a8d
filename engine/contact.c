/*
 * contact.c - see contact.h.
 *
 * Value layout, version 1:
 *   u8 format (1) | u8 sub state | u16 name length | name |
 *   u16 group count | (u16 length | group) * count
 * Integers little-endian.
 */
#include "engine/contact.h"

#include <errno.h>

#define CONTACT_FORMAT 1

static void put_u16(buf_t *out, size_t v)
{
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    buf_append(out, b, 2);
}

int contact_encode(const contact_t *c, buf_t *out)
{
    if (!sub_valid(c->sub) || c->name.len > CONTACT_NAME_MAX ||
        c->n_groups > CONTACT_GROUPS_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < c->n_groups; i++)
        if (c->groups[i].len == 0 || c->groups[i].len > CONTACT_GROUP_MAX)
            return -EINVAL;
    uint8_t head[2] = { CONTACT_FORMAT, c->sub };
    buf_append(out, head, 2);
    put_u16(out, c->name.len);
    buf_append(out, c->name.ptr, c->name.len);
    put_u16(out, c->n_groups);
    for (unsigned i = 0; i < c->n_groups; i++) {
        put_u16(out, c->groups[i].len);
        buf_append(out, c->groups[i].ptr, c->groups[i].len);
    }
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t left;
} reader_t;

static bool get_u16(reader_t *r, size_t *v)
{
    if (r->left < 2)
        return false;
    *v = (size_t)r->p[0] | (size_t)r->p[1] << 8;
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool get_str(reader_t *r, size_t max, str_t *out)
{
    size_t len;
    if (!get_u16(r, &len) || len > max || len > r->left)
        return false;
    out->ptr = (const char *)r->p;
    out->len = len;
    r->p += len;
    r->left -= len;
    return true;
}

int contact_decode(const void *value, size_t len, contact_t *c)
{
    reader_t r = { value, len };
    size_t n;

    memset(c, 0, sizeof(*c));
    if (len < 2 || r.p[0] != CONTACT_FORMAT || !sub_valid(r.p[1]))
        return -EBADMSG;
    c->sub = r.p[1];
    r.p += 2;
    r.left -= 2;
    if (!get_str(&r, CONTACT_NAME_MAX, &c->name) || !get_u16(&r, &n) ||
        n > CONTACT_GROUPS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (!get_str(&r, CONTACT_GROUP_MAX, &c->groups[i]) || c->groups[i].len == 0)
            return -EBADMSG;
    c->n_groups = (unsigned)n;
    return r.left == 0 ? 0 : -EBADMSG;
}

void contact_key(str_t user, str_t contact, buf_t *out)
{
    ASSERT(user.len > 0 && contact.len > 0);
    buf_append(out, user.ptr, user.len);
    buf_append(out, "", 1);
    buf_append(out, contact.ptr, contact.len);
}

void contact_version_key(str_t user, buf_t *out)
{
    ASSERT(user.len > 0);
    buf_append(out, user.ptr, user.len);
    buf_append(out, "", 1);
}

int contact_key_split(const void *key, size_t len, str_t *user, str_t *contact)
{
    const char *k = key;
    const char *nul = memchr(k, 0, len);
    if (!nul || nul == k || (size_t)(nul - k) + 1 == len)
        return -EBADMSG;
    *user = (str_t){ k, (size_t)(nul - k) };
    *contact = (str_t){ nul + 1, len - (size_t)(nul - k) - 1 };
    if (memchr(contact->ptr, 0, contact->len))
        return -EBADMSG;
    return 0;
}

void contact_version_encode(uint64_t version, buf_t *out)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(version >> (8 * i));
    buf_append(out, b, 8);
}

int contact_version_decode(const void *value, size_t len, uint64_t *version)
{
    const uint8_t *b = value;
    if (len != 8)
        return -EBADMSG;
    *version = 0;
    for (int i = 0; i < 8; i++)
        *version |= (uint64_t)b[i] << (8 * i);
    return 0;
}
