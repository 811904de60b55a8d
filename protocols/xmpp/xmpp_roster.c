/*
 * xmpp_roster.c - see xmpp_roster.h.
 */
#include "protocols/xmpp/xmpp_roster.h"

#include <stdlib.h>

#include "engine/route.h"

/* Smallest group hash table in a builder; it doubles at half load. */
#define ROSTER_SLOTS_MIN 16u

_Static_assert(CONTACT_GROUPS_MAX < 128, "an item's group count is one varint byte");

/* LEB128: seven bits a byte, low bits first, the top bit says more follow. */
static void put_varint(buf_t *b, uint32_t v)
{
    uint8_t tmp[5];
    unsigned n = 0;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        tmp[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    buf_append(b, tmp, n);
}

static uint32_t get_varint(const uint8_t **p)
{
    uint32_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint32_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
        DEBUG_ASSERT(shift < 28);
    }
}

static void put_str(buf_t *b, str_t s)
{
    put_varint(b, (uint32_t)s.len);
    buf_append(b, s.ptr, s.len);
}

static str_t get_str(const uint8_t **p)
{
    uint32_t len = get_varint(p);
    str_t s = { (const char *)*p, len };
    *p += len;
    return s;
}

/* Byte order, a shorter prefix first: how storage sorts "user\0contact". */
static int jid_cmp(str_t a, str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* ---- Reading ----------------------------------------------------------- */

static const uint32_t *group_offs(const xmpp_roster_t *r)
{
    return (const uint32_t *)(const void *)(r->items + r->n);
}

static const uint8_t *item_bytes(const xmpp_roster_t *r, unsigned i)
{
    ASSERT(r && i < r->n);
    DEBUG_ASSERT(r->items[i].off < r->bytes);
    return (const uint8_t *)r + r->items[i].off;
}

str_t xmpp_roster_jid(const xmpp_roster_t *r, unsigned i)
{
    const uint8_t *p = item_bytes(r, i);
    return get_str(&p);
}

void xmpp_roster_contact(const xmpp_roster_t *r, unsigned i, contact_t *out)
{
    const uint8_t *p = item_bytes(r, i);
    get_str(&p);
    out->sub = r->items[i].sub;
    out->name = get_str(&p);
    out->n_groups = get_varint(&p);
    ASSERT(out->n_groups <= CONTACT_GROUPS_MAX);
    const uint32_t *offs = group_offs(r);
    for (unsigned g = 0; g < out->n_groups; g++) {
        uint32_t k = get_varint(&p);
        ASSERT(k < r->n_groups);
        const uint8_t *q = (const uint8_t *)r + offs[k];
        out->groups[g] = get_str(&q);
    }
}

int xmpp_roster_find(const xmpp_roster_t *r, str_t jid)
{
    unsigned lo = 0, hi = xmpp_roster_count(r);
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int c = jid_cmp(xmpp_roster_jid(r, mid), jid);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- Building ---------------------------------------------------------- */

void xmpp_roster_builder_init(xmpp_roster_builder_t *b)
{
    buf_init(&b->items);
    buf_init(&b->strings);
    buf_init(&b->groups);
    buf_init(&b->group_off);
    b->slots = NULL;
    b->n_slots = 0;
}

void xmpp_roster_builder_fini(xmpp_roster_builder_t *b)
{
    buf_fini(&b->items);
    buf_fini(&b->strings);
    buf_fini(&b->groups);
    buf_fini(&b->group_off);
    free(b->slots);
    b->slots = NULL;
    b->n_slots = 0;
}

static unsigned builder_n_groups(const xmpp_roster_builder_t *b)
{
    return (unsigned)(b->group_off.len / sizeof(uint32_t));
}

static str_t builder_group(const xmpp_roster_builder_t *b, unsigned k)
{
    uint32_t off;
    memcpy(&off, b->group_off.data + k * sizeof(off), sizeof(off));
    const uint8_t *p = (const uint8_t *)b->groups.data + off;
    return get_str(&p);
}

static void builder_rehash(xmpp_roster_builder_t *b, unsigned n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (!slots)
        PANIC("out of memory building a contact list");
    for (unsigned k = 0; k < builder_n_groups(b); k++) {
        str_t g = builder_group(b, k);
        unsigned s = (unsigned)route_hash(g.ptr, g.len) & (n_slots - 1);
        while (slots[s])
            s = (s + 1) & (n_slots - 1);
        slots[s] = k + 1;
    }
    free(b->slots);
    b->slots = slots;
    b->n_slots = n_slots;
}

/* The index of a group name in the builder's table, added if new. A hash
 * table, because a user controls how many distinct groups there are. */
static uint32_t builder_group_index(xmpp_roster_builder_t *b, str_t name)
{
    unsigned n = builder_n_groups(b);
    if ((n + 1) * 2 > b->n_slots)
        builder_rehash(b, b->n_slots ? b->n_slots * 2 : ROSTER_SLOTS_MIN);
    unsigned mask = b->n_slots - 1;
    for (unsigned s = (unsigned)route_hash(name.ptr, name.len) & mask;; s = (s + 1) & mask) {
        uint32_t v = b->slots[s];
        if (!v) {
            uint32_t off = (uint32_t)b->groups.len;
            put_str(&b->groups, name);
            buf_append(&b->group_off, &off, sizeof(off));
            b->slots[s] = n + 1;
            return n;
        }
        if (str_eq(builder_group(b, v - 1), name))
            return v - 1;
    }
}

xmpp_roster_item_t *xmpp_roster_builder_add(xmpp_roster_builder_t *b, str_t jid, uint16_t home,
                                            const contact_t *c)
{
    ASSERT(jid.len > 0 && jid.len <= CONTACT_KEY_MAX);
    ASSERT(c->n_groups <= CONTACT_GROUPS_MAX && c->name.len <= CONTACT_NAME_MAX);
    ASSERT(b->strings.len < UINT32_MAX / 2);
    xmpp_roster_item_t it = { .off = (uint32_t)b->strings.len, .home = home, .sub = c->sub };
    put_str(&b->strings, jid);
    put_str(&b->strings, c->name);
    put_varint(&b->strings, c->n_groups);
    for (unsigned g = 0; g < c->n_groups; g++)
        put_varint(&b->strings, builder_group_index(b, c->groups[g]));
    buf_append(&b->items, &it, sizeof(it));
    return (xmpp_roster_item_t *)(void *)(b->items.data + b->items.len - sizeof(it));
}

static int builder_item_cmp(const void *a, const void *b, void *ctx)
{
    const uint8_t *base = ctx;
    const uint8_t *pa = base + ((const xmpp_roster_item_t *)a)->off;
    const uint8_t *pb = base + ((const xmpp_roster_item_t *)b)->off;
    return jid_cmp(get_str(&pa), get_str(&pb));
}

xmpp_roster_t *xmpp_roster_builder_finish(xmpp_roster_builder_t *b)
{
    size_t n = b->items.len / sizeof(xmpp_roster_item_t);
    unsigned ng = builder_n_groups(b);
    xmpp_roster_t *r = NULL;
    if (n) {
        xmpp_roster_item_t *items = (xmpp_roster_item_t *)(void *)b->items.data;
        qsort_r(items, n, sizeof(*items), builder_item_cmp, b->strings.data);
        size_t groups_at = sizeof(*r) + n * sizeof(*items) + ng * sizeof(uint32_t);
        size_t strings_at = groups_at + b->groups.len;
        size_t total = strings_at + b->strings.len;
        ASSERT(total < UINT32_MAX);
        r = malloc(total);
        if (!r)
            PANIC("out of memory building a contact list");
        r->n = (uint32_t)n;
        r->n_groups = ng;
        r->bytes = (uint32_t)total;
        for (size_t i = 0; i < n; i++) {
            r->items[i] = items[i];
            r->items[i].off += (uint32_t)strings_at;
        }
        uint32_t *offs = (uint32_t *)(void *)(r->items + n);
        for (unsigned k = 0; k < ng; k++) {
            memcpy(&offs[k], b->group_off.data + k * sizeof(uint32_t), sizeof(uint32_t));
            offs[k] += (uint32_t)groups_at;
        }
        if (b->groups.len)      /* an empty buffer's data is NULL */
            memcpy((char *)r + groups_at, b->groups.data, b->groups.len);
        memcpy((char *)r + strings_at, b->strings.data, b->strings.len);
        for (size_t i = 1; i < n; i++)
            DEBUG_ASSERT(jid_cmp(xmpp_roster_jid(r, (unsigned)i - 1),
                                 xmpp_roster_jid(r, (unsigned)i)) < 0);
    }
    b->items.len = 0;
    b->strings.len = 0;
    b->groups.len = 0;
    b->group_off.len = 0;
    if (b->slots)
        memset(b->slots, 0, b->n_slots * sizeof(*b->slots));
    return r;
}

/* ---- Changing ---------------------------------------------------------- */

/* Copies every item but `skip` (-1: none) into b, online flags included. */
static void roster_copy(const xmpp_roster_t *r, int skip, xmpp_roster_builder_t *b)
{
    contact_t c;
    for (unsigned i = 0; i < xmpp_roster_count(r); i++) {
        if ((int)i == skip)
            continue;
        xmpp_roster_contact(r, i, &c);
        xmpp_roster_item_t *it = xmpp_roster_builder_add(b, xmpp_roster_jid(r, i),
                                                         r->items[i].home, &c);
        it->online = r->items[i].online;
    }
}

unsigned xmpp_roster_put(xmpp_roster_t **rp, str_t jid, uint16_t home, const contact_t *c)
{
    xmpp_roster_t *old = *rp;
    int at = xmpp_roster_find(old, jid);
    xmpp_roster_builder_t b;
    xmpp_roster_builder_init(&b);
    roster_copy(old, at, &b);
    /* jid and c may point into the old block: it goes only after the copy. */
    xmpp_roster_builder_add(&b, jid, home, c)->online = at >= 0 && old->items[at].online;
    xmpp_roster_t *r = xmpp_roster_builder_finish(&b);
    xmpp_roster_builder_fini(&b);
    int idx = xmpp_roster_find(r, jid);
    ASSERT(idx >= 0);
    free(old);
    *rp = r;
    return (unsigned)idx;
}

void xmpp_roster_remove(xmpp_roster_t **rp, unsigned i)
{
    xmpp_roster_t *old = *rp;
    ASSERT(i < xmpp_roster_count(old));
    xmpp_roster_builder_t b;
    xmpp_roster_builder_init(&b);
    roster_copy(old, (int)i, &b);
    *rp = xmpp_roster_builder_finish(&b);
    xmpp_roster_builder_fini(&b);
    free(old);
}

void xmpp_roster_free(xmpp_roster_t *r)
{
    free(r);
}
