/*
 * xmpp_roster.h - one user's contact list as the session manager holds it in
 * memory: every roster item (RFC 6121 §2.1.2: the contact's bare JID, the
 * subscription state, the name, the groups) and the fan-out state of each
 * contact (its home shard, whether it is known to have an available session),
 * in one exact-size block.
 *
 * Why one block: a node keeps the contact list of every connected user
 * (250,000 users with 50 contacts each, DESIGN.md §7) and an idle user is
 * allowed 4 KiB in all. A record plus separately allocated strings per contact
 * cost about 110 bytes of heap; here a contact costs an 8-byte item plus its
 * JID and name with one-byte lengths, and one byte per group, which is an index
 * into the list's own table of distinct group names (a user's contacts share
 * a handful of groups).
 *
 *   xmpp_roster_t: n, n_groups, bytes | items[n] | group offsets[n_groups] | strings
 *   an item's strings at items[i].off: len jid | len name | count | index...
 *   a group's at its offset:           len name
 *   (len, count and index are LEB128 varints: one byte below 128)
 *
 * Items are sorted by JID (bytes, a shorter prefix first: the order a storage
 * scan returns them in), so a lookup is a binary search. Adding, replacing or
 * removing an item rebuilds the block in O(items); that happens on roster sets
 * and subscription changes, never on the presence path. The subscription state
 * and the online flag are changed in place.
 *
 * Ownership: a list is one malloc'd block owned by its user; NULL is the empty
 * list. Functions taking xmpp_roster_t ** may move it, which invalidates every
 * slice and item pointer obtained before. Allocation failure is fatal (PANIC),
 * as everywhere in the session manager.
 *
 * Threads: the shard that owns the user; nothing blocks.
 */
#ifndef PRESENCED_XMPP_ROSTER_H
#define PRESENCED_XMPP_ROSTER_H

#include "engine/buf.h"
#include "engine/common.h"
#include "engine/contact.h"

typedef struct {
    uint32_t off;       /* the item's strings, from the start of the block */
    uint16_t home;      /* the contact's home shard */
    uint8_t sub;        /* sub_state_t */
    uint8_t online;     /* known to have an available session */
} xmpp_roster_item_t;

typedef struct xmpp_roster {
    uint32_t n;         /* items */
    uint32_t n_groups;  /* distinct group names */
    uint32_t bytes;     /* of the whole block */
    xmpp_roster_item_t items[];
} xmpp_roster_t;

_Static_assert(sizeof(xmpp_roster_item_t) == 8, "a contact's fixed cost in memory");

/* ---- Reading (NULL is the empty list) ---------------------------------- */

static inline unsigned xmpp_roster_count(const xmpp_roster_t *r)
{
    return r ? r->n : 0;
}

/* Item i (< count): its subscription and online flag may be changed through
 * the pointer. */
static inline xmpp_roster_item_t *xmpp_roster_item(xmpp_roster_t *r, unsigned i)
{
    ASSERT(r && i < r->n);
    return &r->items[i];
}

/* The contact's bare JID: a slice into the block. */
str_t xmpp_roster_jid(const xmpp_roster_t *r, unsigned i);

/* Item i as a storage record: subscription, name and groups as slices into
 * the block (name empty when there is none). */
void xmpp_roster_contact(const xmpp_roster_t *r, unsigned i, contact_t *out);

/* The index of the item for jid, or -1. */
int xmpp_roster_find(const xmpp_roster_t *r, str_t jid);

/* ---- Building ---------------------------------------------------------- */

/* Collects items in any order (a storage scan, or a copy of a list with one
 * item changed), then makes the block. */
typedef struct {
    buf_t items;        /* xmpp_roster_item_t, off into strings */
    buf_t strings;      /* per item: len jid | len name | count | index... */
    buf_t groups;       /* distinct group names: len name, back to back */
    buf_t group_off;    /* uint32_t offset into groups, per distinct group */
    uint32_t *slots;    /* hash of group names -> index + 1 (0: empty) */
    unsigned n_slots;
} xmpp_roster_builder_t;

void xmpp_roster_builder_init(xmpp_roster_builder_t *b);
void xmpp_roster_builder_fini(xmpp_roster_builder_t *b);

/* Adds an item. jid must be non-empty and not already added; c's name and
 * groups are within contact.h's limits (as contact_decode and the roster set
 * check guarantee). online starts false. Returns the item, valid until the
 * next add or finish. */
xmpp_roster_item_t *xmpp_roster_builder_add(xmpp_roster_builder_t *b, str_t jid, uint16_t home,
                                            const contact_t *c);

/* The list (NULL when no item was added); the builder is left empty, ready for
 * fini or more adds. */
xmpp_roster_t *xmpp_roster_builder_finish(xmpp_roster_builder_t *b);

/* ---- Changing ---------------------------------------------------------- */

/* Adds the item for jid, or replaces its subscription, name and groups (the
 * online flag is kept). Returns its index in the new list. */
unsigned xmpp_roster_put(xmpp_roster_t **r, str_t jid, uint16_t home, const contact_t *c);

/* Removes item i (< count). */
void xmpp_roster_remove(xmpp_roster_t **r, unsigned i);

void xmpp_roster_free(xmpp_roster_t *r);

#endif
