/*
 * xmpp_sm.c - the XMPP session manager on each shard: the users homed here,
 * their sessions (bound resources), their contact lists, subscription states
 * and block lists, presence and routing (RFC 6121).
 *
 * Every user lives on its home shard; a stanza for a user is a mailbox
 * message to that shard carrying the serialised stanza, which the home shard
 * delivers to the user's connections (they were handed to it at login). The
 * item comes back to its sender for release (STYLE.md, Memory).
 *
 * Presence fan-out (DESIGN.md §3): each contact record carries whether the
 * contact is known to be online. A change goes to the online watchers only,
 * as one mailbox message per destination shard listing the watchers there;
 * the destination renders one stanza per session. The flags are learned from
 * probes, from the answers to the initial broadcast (which goes to every
 * subscriber) and from unavailable presence, and corrected lazily: a
 * destination that finds a listed watcher offline says so.
 *
 * Users are kept in memory while they have sessions; their contact list is
 * loaded from storage on first use and written through the shard's per-turn
 * batch. A user without sessions is forgotten once a turn's work on it ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/contact.h"
#include "engine/log.h"
#include "engine/presence.h"
#include "engine/route.h"
#include "engine/sub.h"
#include "protocols/xmpp/xmpp_c2s.h"
#include "protocols/xmpp/xmpp_int.h"
#include "protocols/xmpp/xmpp_jid.h"
#include "protocols/xmpp/xmpp_roster.h"

/* Messages kept per user while it is away: beyond this the sender gets an
 * error rather than the store growing without bound. */
#define SM_OFFLINE_MAX 1000
/* Block list entries per user (XEP-0191 leaves the bound to the server). */
#define SM_BLOCKED_MAX 1000
/* Unacknowledged stanzas per stream-managed session (XEP-0198): a client
 * that never acknowledges is disconnected rather than held in memory. */
#define SM_UNACKED_MAX 5000
/* Ask for an acknowledgement every this many unacknowledged stanzas. */
#define SM_REQUEST_EVERY 8
/* Presences held for an inactive client (XEP-0352) before they are flushed
 * anyway; one per sender, the latest wins. */
#define SM_HELD_MAX 256
/* vCard size (XEP-0054): also bounded by the stanza size. */
#define SM_VCARD_MAX (64 * 1024)

/* --- per-shard tables --- */

typedef struct sm_user {
    struct sm_user *next;       /* hash chain */
    xmpp_sess_t *sessions;
    xmpp_roster_t *roster;      /* the contact list, once loaded */
    uint64_t roster_ver;
    char **blocked;             /* XEP-0191 entries: domain, bare or full JIDs */
    unsigned n_blocked;
    bool contacts_loaded;       /* roster, roster_ver and blocked are read */
    char key[];                 /* the bare JID */
} sm_user_t;

typedef struct sm_out {         /* a stanza not yet acknowledged (XEP-0198) */
    struct sm_out *next;
    uint32_t len;
    char is_message;            /* goes to offline storage if the session ends */
    char bytes[];
} sm_out_t;

typedef struct {                /* a presence held for an inactive client */
    char *from;
    buf_t bytes;
} sm_held_t;

struct xmpp_sess {
    xmpp_sess_t *next;
    sm_user_t *user;
    c2s_t *c2s;                 /* NULL while waiting for resumption */
    const char *resource;       /* points into full */
    char *full;                 /* the full JID */
    int priority;
    bool available;             /* sent initial presence */
    bool interested;            /* asked for the roster: gets pushes */
    bool blocklist_interested;  /* asked for the block list: gets its pushes */
    bool carbons;               /* XEP-0280 */
    bool inactive;              /* XEP-0352 */
    bool external;              /* a source held by another protocol (a SIP publication),
                                   shown to XMPP watchers as a resource of its own */
    uint8_t pstate;             /* pres_state_t of the last available presence */
    char *status;               /* its <status/>, or NULL */
    bool sm_enabled, sm_resumable;
    uint32_t h_in, h_out, h_acked;
    sm_out_t *unacked, *unacked_tail;
    unsigned n_unacked;
    char sm_id[24];
    timer_ent_t resume_timer;
    shard_t *shard;
    sm_held_t *held;
    unsigned n_held;
    buf_t presence;             /* last available presence, as broadcast, without 'to' */
};

typedef struct {
    sm_user_t **buckets;
    unsigned n_buckets;
    unsigned n_users;
} sm_t;

static void sm_user_free(sm_user_t *u)
{
    xmpp_roster_free(u->roster);
    for (unsigned k = 0; k < u->n_blocked; k++)
        free(u->blocked[k]);
    free(u->blocked);
    free(u);
}

static void sm_fini(void *p)
{
    sm_t *sm = p;
    for (unsigned i = 0; i < sm->n_buckets; i++) {
        for (sm_user_t *u = sm->buckets[i], *n; u; u = n) {
            n = u->next;
            sm_user_free(u);
        }
    }
    free(sm->buckets);
    free(sm);
}

static sm_t *sm_of(shard_t *sh)
{
    sm_t *sm = shard_slot(sh, SHARD_SLOT_XMPP);
    if (!sm) {
        sm = calloc(1, sizeof(*sm));
        if (!sm)
            PANIC("out of memory creating the session manager");
        sm->n_buckets = 4096;
        sm->buckets = calloc(sm->n_buckets, sizeof(*sm->buckets));
        if (!sm->buckets)
            PANIC("out of memory creating the session manager");
        shard_set_slot(sh, SHARD_SLOT_XMPP, sm, sm_fini);
    }
    return sm;
}

static void sm_grow(sm_t *sm)
{
    unsigned n = sm->n_buckets * 2;
    sm_user_t **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return;     /* longer chains, still correct */
    for (unsigned i = 0; i < sm->n_buckets; i++) {
        for (sm_user_t *u = sm->buckets[i], *next; u; u = next) {
            next = u->next;
            unsigned b = (unsigned)(route_hash(u->key, strlen(u->key)) % n);
            u->next = nb[b];
            nb[b] = u;
        }
    }
    free(sm->buckets);
    sm->buckets = nb;
    sm->n_buckets = n;
}

static sm_user_t *sm_find(sm_t *sm, str_t key, bool create)
{
    unsigned b = (unsigned)(route_hash(key.ptr, key.len) % sm->n_buckets);
    for (sm_user_t *u = sm->buckets[b]; u; u = u->next)
        if (strlen(u->key) == key.len && memcmp(u->key, key.ptr, key.len) == 0)
            return u;
    if (!create)
        return NULL;
    sm_user_t *u = calloc(1, sizeof(*u) + key.len + 1);
    if (!u)
        PANIC("out of memory adding a user");
    memcpy(u->key, key.ptr, key.len);
    u->next = sm->buckets[b];
    sm->buckets[b] = u;
    if (++sm->n_users > sm->n_buckets)
        sm_grow(sm);
    return u;
}

/* A user without sessions costs nothing between turns: its records are in
 * storage and come back on next use. */
static void sm_forget_if_idle(shard_t *sh, sm_user_t *u)
{
    if (!u || u->sessions)
        return;
    sm_t *sm = sm_of(sh);
    unsigned b = (unsigned)(route_hash(u->key, strlen(u->key)) % sm->n_buckets);
    for (sm_user_t **p = &sm->buckets[b]; *p; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            sm->n_users--;
            sm_user_free(u);
            return;
        }
    }
}

/* "local@domain/res" -> "domain" */
static str_t sm_domain_of(str_t jid)
{
    const char *at = memchr(jid.ptr, '@', jid.len);
    const char *start = at ? at + 1 : jid.ptr;
    size_t rest = jid.len - (size_t)(start - jid.ptr);
    const char *slash = memchr(start, '/', rest);
    return (str_t){ start, slash ? (size_t)(slash - start) : rest };
}

static str_t sm_bare_of(str_t jid)
{
    const char *slash = memchr(jid.ptr, '/', jid.len);
    return (str_t){ jid.ptr, slash ? (size_t)(slash - jid.ptr) : jid.len };
}

/* --- contacts and block lists --- */

static uint16_t sm_home_of(shard_t *sh, str_t bare)
{
    return (uint16_t)route_user(bare.ptr, bare.len, shard_count(sh)).shard;
}

typedef struct {
    shard_t *sh;
    sm_user_t *u;
    xmpp_roster_builder_t b;
    contact_t c;
} sm_load_ctx_t;

static int sm_load_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    sm_load_ctx_t *l = ctx;
    sm_user_t *u = l->u;
    str_t user, ck;
    if (contact_key_split(key, klen, &user, &ck) < 0) {
        contact_version_decode(val, vlen, &u->roster_ver);
        return 0;
    }
    if (!ck.len || ck.len > CONTACT_KEY_MAX || contact_decode(val, vlen, &l->c) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_ERROR, "damaged contact record for %s", u->key);
        return 0;
    }
    xmpp_roster_builder_add(&l->b, ck, sm_home_of(l->sh, ck), &l->c);
    return 0;
}

static void sm_blocked_add(sm_user_t *u, str_t jid)
{
    u->blocked = realloc(u->blocked, sizeof(char *) * (u->n_blocked + 1));
    if (!u->blocked)
        PANIC("out of memory adding a block list entry");
    u->blocked[u->n_blocked++] = strndup(jid.ptr, jid.len);
}

static int sm_load_blocked_one(void *ctx, const void *key, size_t klen, const void *val,
                               size_t vlen)
{
    sm_user_t *u = ctx;
    (void)val;
    (void)vlen;
    size_t ul = strlen(u->key) + 1;
    if (klen > ul)
        sm_blocked_add(u, (str_t){ (const char *)key + ul, klen - ul });
    return 0;
}

/* The block list key: "user\0jid" in the privacy column family. */
static void sm_blocked_key(buf_t *k, const char *user, str_t jid)
{
    buf_append(k, user, strlen(user));
    buf_append(k, "", 1);
    buf_append(k, jid.ptr, jid.len);
}

/* On first need, not at bind: a login that never reads its roster, sends
 * presence or gets a stanza does not pay for the two scans. */
static void sm_load_contacts(shard_t *sh, sm_user_t *u)
{
    if (u->contacts_loaded)
        return;
    buf_t prefix;
    buf_init(&prefix);
    contact_version_key(str_from_cstr(u->key), &prefix);
    sm_load_ctx_t l = { .sh = sh, .u = u };
    xmpp_roster_builder_init(&l.b);
    /* Uncached: the list is held here, compact, for as long as the user is. */
    stor_scan_prefix_uncached(shard_storage(sh), STOR_CF_ROSTERS, prefix.data, prefix.len,
                              sm_load_one, &l);
    ASSERT(!u->roster);
    u->roster = xmpp_roster_builder_finish(&l.b);
    xmpp_roster_builder_fini(&l.b);
    prefix.len = 0;
    sm_blocked_key(&prefix, u->key, (str_t){ "", 0 });
    stor_scan_prefix(shard_storage(sh), STOR_CF_PRIVACY, prefix.data, prefix.len,
                     sm_load_blocked_one, u);
    buf_fini(&prefix);
    u->contacts_loaded = true;
}

/* The contact's item, or NULL; valid until the list changes. */
static xmpp_roster_item_t *sm_contact(sm_user_t *u, str_t key)
{
    int i = xmpp_roster_find(u->roster, key);
    return i < 0 ? NULL : xmpp_roster_item(u->roster, (unsigned)i);
}

static int sm_blocked_index(const sm_user_t *u, str_t jid)
{
    for (unsigned i = 0; i < u->n_blocked; i++)
        if (str_eq_cstr(jid, u->blocked[i]))
            return (int)i;
    return -1;
}

/* XEP-0191 §3.5: an entry blocks the JID itself, and a bare or domain entry
 * everything under it. */
static bool sm_blocks(const sm_user_t *u, str_t jid)
{
    if (!u->n_blocked || !jid.len)
        return false;
    return sm_blocked_index(u, jid) >= 0 || sm_blocked_index(u, sm_bare_of(jid)) >= 0 ||
           sm_blocked_index(u, sm_domain_of(jid)) >= 0;
}

static uint64_t sm_next_version(void)
{
    static _Thread_local uint64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    last = now > last ? now : last + 1;
    return last;
}

/* Writes (or deletes, when c is NULL) one contact record and bumps the
 * roster version, in this turn's batch. */
static void sm_store_contact(shard_t *sh, sm_user_t *u, str_t ckey, const contact_t *c)
{
    stor_batch_t *b = shard_batch(sh);
    buf_t k, v;
    buf_init(&k);
    buf_init(&v);
    contact_key(str_from_cstr(u->key), ckey, &k);
    if (c) {
        if (contact_encode(c, &v) == 0)
            stor_batch_put(b, STOR_CF_ROSTERS, k.data, k.len, v.data, v.len);
    } else {
        stor_batch_delete(b, STOR_CF_ROSTERS, k.data, k.len);
    }
    u->roster_ver = sm_next_version();
    k.len = 0;
    v.len = 0;
    contact_version_key(str_from_cstr(u->key), &k);
    contact_version_encode(u->roster_ver, &v);
    stor_batch_put(b, STOR_CF_ROSTERS, k.data, k.len, v.data, v.len);
    buf_fini(&k);
    buf_fini(&v);
}

/* A roster item (RFC 6121 §2.1.2); c NULL: removed. */
static void sm_write_item(buf_t *b, str_t jid, const contact_t *c)
{
    buf_append_str(b, "<item");
    xmpp_xml_write_attr(b, "jid", jid);
    if (!c) {
        buf_append_str(b, " subscription='remove'/>");
        return;
    }
    if (c->name.len)
        xmpp_xml_write_attr(b, "name", c->name);
    buf_printf(b, " subscription='%s'%s", sub_roster_subscription(c->sub),
               sub_roster_ask(c->sub) ? " ask='subscribe'" : "");
    if (!c->n_groups) {
        buf_append_str(b, "/>");
        return;
    }
    buf_append_str(b, ">");
    for (unsigned g = 0; g < c->n_groups; g++) {
        buf_append_str(b, "<group>");
        xmpp_xml_write_text(b, c->groups[g]);
        buf_append_str(b, "</group>");
    }
    buf_append_str(b, "</item>");
}

/* RFC 6121 §2.1.6: a roster push to every interested resource; c NULL:
 * the item was removed. */
static void sm_push(sm_user_t *u, str_t jid, const contact_t *c)
{
    buf_t b;
    buf_init(&b);
    for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->interested)
            continue;
        b.len = 0;
        buf_printf(&b, "<iq type='set' id='push%llu'", (unsigned long long)u->roster_ver);
        xmpp_xml_write_attr(&b, "to", str_from_cstr(s->full));
        buf_printf(&b, "><query xmlns='" NS_ROSTER "' ver='%llu'>",
                   (unsigned long long)u->roster_ver);
        sm_write_item(&b, jid, c);
        buf_append_str(&b, "</query></iq>");
        xmpp_sess_write(s, b.data, b.len);
    }
    buf_fini(&b);
}

/* --- writing to sessions: stream management (XEP-0198), client state (XEP-0352) --- */

static void sm_sess_write_raw(xmpp_sess_t *s, const void *data, size_t len, bool is_message)
{
    if (s->sm_enabled) {
        if (s->n_unacked >= SM_UNACKED_MAX) {
            if (s->c2s)
                c2s_stream_error(s->c2s, XMPP_XML_COND_RESOURCE_CONSTRAINT,
                                 "too many unacknowledged stanzas");
            return;
        }
        sm_out_t *o = malloc(sizeof(*o) + len);
        if (!o)
            PANIC("out of memory queueing a stanza");
        o->next = NULL;
        o->len = (uint32_t)len;
        o->is_message = is_message;
        memcpy(o->bytes, data, len);
        if (s->unacked_tail)
            s->unacked_tail->next = o;
        else
            s->unacked = o;
        s->unacked_tail = o;
        s->n_unacked++;
        s->h_out++;
    }
    if (s->c2s) {
        c2s_write(s->c2s, data, len);
        if (s->sm_enabled && s->n_unacked % SM_REQUEST_EVERY == 0)
            c2s_write(s->c2s, "<r xmlns='" NS_SM "'/>", sizeof("<r xmlns='" NS_SM "'/>") - 1);
    }
}

static void sm_held_flush(xmpp_sess_t *s)
{
    unsigned n = s->n_held;
    sm_held_t *held = s->held;
    s->held = NULL;
    s->n_held = 0;
    for (unsigned i = 0; i < n; i++) {
        sm_sess_write_raw(s, held[i].bytes.data, held[i].bytes.len, false);
        free(held[i].from);
        buf_fini(&held[i].bytes);
    }
    free(held);
}

void xmpp_sess_write(xmpp_sess_t *s, const void *data, size_t len)
{
    /* Anything but presence goes out now, after what was held, so that the
     * client sees stanzas in the order they were sent. */
    if (s->n_held)
        sm_held_flush(s);
    sm_sess_write_raw(s, data, len, len > 8 && !memcmp(data, "<message", 8));
}

/* A presence from `from` for s: held while the client is inactive (only the
 * latest per sender matters to it). */
static void sm_sess_presence(xmpp_sess_t *s, str_t from, const void *data, size_t len)
{
    if (!s->inactive) {
        sm_sess_write_raw(s, data, len, false);
        return;
    }
    for (unsigned i = 0; i < s->n_held; i++) {
        if (str_eq_cstr(from, s->held[i].from)) {
            s->held[i].bytes.len = 0;
            buf_append(&s->held[i].bytes, data, len);
            return;
        }
    }
    if (s->n_held >= SM_HELD_MAX)
        sm_held_flush(s);
    s->held = realloc(s->held, sizeof(*s->held) * (s->n_held + 1));
    if (!s->held)
        PANIC("out of memory holding a presence");
    sm_held_t *h = &s->held[s->n_held++];
    h->from = strndup(from.ptr, from.len);
    buf_init(&h->bytes);
    buf_append(&h->bytes, data, len);
}

/* Acknowledged up to h (XEP-0198 §4): those leave the queue. */
static void sm_acked(xmpp_sess_t *s, uint32_t h)
{
    uint32_t n = h - s->h_acked;
    if (n > s->n_unacked)
        n = s->n_unacked;
    for (uint32_t i = 0; i < n; i++) {
        sm_out_t *o = s->unacked;
        s->unacked = o->next;
        free(o);
        s->n_unacked--;
    }
    if (!s->unacked)
        s->unacked_tail = NULL;
    s->h_acked += n;
}

/* --- routing between shards --- */

typedef enum {
    ITEM_STANZA,        /* deliver bytes to the target's sessions per RFC 6121 §8.5 */
    ITEM_PROBE,         /* a presence probe from `from` */
    ITEM_SUB,           /* an inbound subscription stanza; sub_event in `event` */
    ITEM_FANOUT,        /* presence from `from` for the watchers listed in targets */
    ITEM_ONLINE,        /* targets (contacts of `to`) have available sessions */
    ITEM_OFFLINE,       /* targets (contacts of `to`) have none */
} sm_item_kind_t;

enum {
    ITEM_F_CARBON = 1,      /* a message XEP-0280 copies */
    ITEM_F_INITIAL = 2,     /* fan-out of an initial presence: answer with ITEM_ONLINE */
    ITEM_F_LAST = 4,        /* fan-out of the sender's last unavailable resource */
    ITEM_F_VCARD_GET = 8,   /* an iq get for a vCard (the server answers for the bare JID) */
    ITEM_F_DISCO_GET = 16,  /* an iq get for disco#info */
};

typedef struct {
    uint16_t origin;
    uint8_t kind;
    uint8_t event;
    uint8_t stanza;     /* 'm'essage, 'p'resence, 'i'q */
    uint8_t flags;
    char *to;           /* full or bare JID of the target */
    char *from;         /* full JID of the sender */
    char *id;           /* the stanza's id, for an error bounced back (may be NULL) */
    char type[12];      /* the stanza's type attribute ("" if none) */
    size_t len;         /* of the stanza in bytes */
    size_t tlen;        /* of the NUL-terminated JIDs after it (fan-out lists) */
    char bytes[];
} sm_item_t;

static void sm_item_release(void *ctx, const mbox_msg_t *msg)
{
    (void)ctx;
    sm_item_t *it = msg->ptr;
    free(it->to);
    free(it->from);
    free(it->id);
    free(it);
}

static void sm_item_arrive(void *ctx, const mbox_msg_t *msg);

static sm_item_t *sm_item_new(shard_t *sh, sm_item_kind_t kind, char stanza, str_t to,
                              str_t from, const buf_t *bytes, const buf_t *targets)
{
    size_t len = bytes ? bytes->len : 0, tlen = targets ? targets->len : 0;
    sm_item_t *it = malloc(sizeof(*it) + len + tlen);
    if (!it)
        PANIC("out of memory routing a stanza");
    memset(it, 0, sizeof(*it));
    it->origin = (uint16_t)shard_id(sh);
    it->kind = (uint8_t)kind;
    it->stanza = (uint8_t)stanza;
    it->to = strndup(to.ptr, to.len);
    it->from = strndup(from.ptr, from.len);
    it->len = len;
    it->tlen = tlen;
    if (len)
        memcpy(it->bytes, bytes->data, len);
    if (tlen)
        memcpy(it->bytes + len, targets->data, tlen);
    return it;
}

static void sm_item_post(shard_t *sh, unsigned dst, sm_item_t *it)
{
    mbox_msg_t m = { .ptr = it };
    if (shard_call(sh, dst, sm_item_arrive, &m) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: dropped a stanza for %s", it->to);
        sm_item_release(NULL, &m);
    }
}

static void sm_send_item_el(shard_t *sh, sm_item_kind_t kind, char stanza, str_t to, str_t from,
                            const buf_t *bytes, sub_event_t ev, const xmpp_xml_el_t *el,
                            uint8_t flags)
{
    sm_item_t *it = sm_item_new(sh, kind, stanza, to, from, bytes, NULL);
    const str_t *id = el ? xmpp_xml_attr(el, "id") : NULL;
    const str_t *type = el ? xmpp_xml_attr(el, "type") : NULL;
    it->id = id ? strndup(id->ptr, id->len) : NULL;
    snprintf(it->type, sizeof(it->type), "%.*s", type ? (int)type->len : 0,
             type ? type->ptr : "");
    it->event = (uint8_t)ev;
    it->flags = flags;
    sm_item_post(sh, sm_home_of(sh, sm_bare_of(to)), it);
}

static void sm_send_item(shard_t *sh, sm_item_kind_t kind, char stanza, str_t to, str_t from,
                         const buf_t *bytes, sub_event_t ev)
{
    sm_send_item_el(sh, kind, stanza, to, from, bytes, ev, NULL, 0);
}

/* The stanza with from (and to) stamped by the server (RFC 6120 §8.1.2.1). */
static void sm_serialise(buf_t *b, const xmpp_xml_el_t *el, str_t from, const str_t *to)
{
    xmpp_xml_attr_t attrs[XMPP_XML_ATTRS_DEFAULT + 2];
    unsigned n = 0;
    for (uint32_t i = 0; i < el->attr_count && n < XMPP_XML_ATTRS_DEFAULT; i++) {
        const xmpp_xml_attr_t *a = &el->attrs[i];
        if (!a->ns.len && (str_eq_cstr(a->name, "from") || (to && str_eq_cstr(a->name, "to"))))
            continue;
        attrs[n++] = *a;
    }
    attrs[n++] = (xmpp_xml_attr_t){ .name = STR_LIT("from"), .value = from };
    if (to)
        attrs[n++] = (xmpp_xml_attr_t){ .name = STR_LIT("to"), .value = *to };
    xmpp_xml_el_t copy = *el;
    copy.attrs = attrs;
    copy.attr_count = n;
    xmpp_xml_write_el(b, &copy, STR_LIT(NS_CLIENT));
}

static xmpp_sess_t *sm_sess_by_resource(sm_user_t *u, str_t res)
{
    for (xmpp_sess_t *s = u->sessions; s; s = s->next)
        if (strlen(s->resource) == res.len && memcmp(s->resource, res.ptr, res.len) == 0)
            return s;
    return NULL;
}

static bool sm_any_available(const sm_user_t *u, const xmpp_sess_t *except)
{
    for (const xmpp_sess_t *s = u->sessions; s; s = s->next)
        if (s != except && s->available)
            return true;
    return false;
}

/* --- offline messages (XEP-0160) and errors back to the sender --- */

static void sm_bounce_with(shard_t *sh, sm_item_t *it, const char *type, const char *cond,
                           const char *app)
{
    if (!strcmp(it->type, "error"))
        return;     /* RFC 6120 §8.3.1: no error about an error */
    static const char *const names[] = { "message", "presence", "iq" };
    const char *name = names[xmpp_stanza_kind((char)it->stanza)];
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<%s type='error'", name);
    if (it->id)
        xmpp_xml_write_attr(&b, "id", str_from_cstr(it->id));
    xmpp_xml_write_attr(&b, "from", str_from_cstr(it->to));
    xmpp_xml_write_attr(&b, "to", str_from_cstr(it->from));
    buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/>%s</error></%s>", type, cond,
               app ? app : "", name);
    sm_item_t *e = sm_item_new(sh, ITEM_STANZA, (char)it->stanza, str_from_cstr(it->from),
                               str_from_cstr(it->to), &b, NULL);
    snprintf(e->type, sizeof(e->type), "error");
    sm_item_post(sh, sm_home_of(sh, sm_bare_of(str_from_cstr(it->from))), e);
    buf_fini(&b);
}

static void sm_bounce(shard_t *sh, sm_item_t *it, const char *type, const char *cond)
{
    sm_bounce_with(sh, it, type, cond, NULL);
}

static bool sm_account_exists(shard_t *sh, str_t bare)
{
    void *raw = NULL;
    size_t len;
    bool ok = stor_get(shard_storage(sh), STOR_CF_ACCOUNTS, bare.ptr, bare.len, &raw, &len) == 0;
    free(raw);
    return ok;
}

static void sm_offline_key(buf_t *k, str_t bare, uint64_t seq)
{
    buf_append(k, bare.ptr, bare.len);
    buf_append(k, "", 1);
    for (int i = 7; i >= 0; i--) {
        uint8_t byte = (uint8_t)(seq >> (8 * i));
        buf_append(k, &byte, 1);    /* big-endian: keys sort in arrival order */
    }
}

static int sm_offline_count_one(void *ctx, const void *key, size_t klen, const void *val,
                                size_t vlen)
{
    (void)key; (void)klen; (void)val; (void)vlen;
    return ++*(unsigned *)ctx >= SM_OFFLINE_MAX ? 1 : 0;
}

/* Stores a message for bare; false when the store is full. */
static bool sm_offline_put(shard_t *sh, str_t bare, const char *bytes, size_t len)
{
    buf_t k;
    buf_init(&k);
    buf_append(&k, bare.ptr, bare.len);
    buf_append(&k, "", 1);
    unsigned count = 0;
    stor_scan_prefix(shard_storage(sh), STOR_CF_OFFLINE, k.data, k.len, sm_offline_count_one,
                     &count);
    if (count >= SM_OFFLINE_MAX) {
        metric_inc(shard_metrics(sh), xmpp_mid.offline_refused);
        buf_fini(&k);
        return false;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static _Thread_local uint64_t last;
    uint64_t seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    last = seq = seq > last ? seq : last + 1;
    k.len = 0;
    sm_offline_key(&k, bare, seq);
    /* XEP-0203: when it was stored. */
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char delay[160];
    snprintf(delay, sizeof(delay),
             "<delay xmlns='" NS_DELAY "' from='%s' stamp='%04d-%02d-%02dT%02d:%02d:%02dZ'/>",
             xmpp_domain(), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    buf_t v;
    buf_init(&v);
    if (len >= 2 && !memcmp(bytes + len - 2, "/>", 2)) {
        buf_append(&v, bytes, len - 2);
        buf_printf(&v, ">%s</message>", delay);
    } else if (len >= 10 && !memcmp(bytes + len - 10, "</message>", 10)) {
        buf_append(&v, bytes, len - 10);
        buf_printf(&v, "%s</message>", delay);
    } else {
        buf_append(&v, bytes, len);
    }
    stor_batch_put(shard_batch(sh), STOR_CF_OFFLINE, k.data, k.len, v.data, v.len);
    metric_inc(shard_metrics(sh), xmpp_mid.offline_stored);
    buf_fini(&k);
    buf_fini(&v);
    return true;
}

/* RFC 6121 §8.5.2.2: a message for an account without an available
 * resource is stored (types normal and chat) and the rest dropped. */
static void sm_offline_store(shard_t *sh, str_t bare, sm_item_t *it)
{
    if (strcmp(it->type, "") && strcmp(it->type, "normal") && strcmp(it->type, "chat"))
        return;
    if (!sm_offline_put(sh, bare, it->bytes, it->len))
        sm_bounce(sh, it, "wait", "resource-constraint");
}

typedef struct {
    shard_t *sh;
    xmpp_sess_t *s;
} sm_flush_ctx_t;

static int sm_offline_deliver_one(void *ctx, const void *key, size_t klen, const void *val,
                                  size_t vlen)
{
    sm_flush_ctx_t *f = ctx;
    xmpp_sess_write(f->s, val, vlen);
    stor_batch_delete(shard_batch(f->sh), STOR_CF_OFFLINE, key, klen);
    metric_inc(shard_metrics(f->sh), xmpp_mid.offline_delivered);
    return 0;
}

/* XEP-0160 §4: at initial presence with a non-negative priority. */
static void sm_offline_flush(shard_t *sh, xmpp_sess_t *s)
{
    buf_t k;
    buf_init(&k);
    buf_append(&k, s->user->key, strlen(s->user->key));
    buf_append(&k, "", 1);
    sm_flush_ctx_t f = { sh, s };
    stor_scan_prefix(shard_storage(sh), STOR_CF_OFFLINE, k.data, k.len, sm_offline_deliver_one,
                     &f);
    buf_fini(&k);
}

static void sm_count_out(shard_t *sh, char stanza)
{
    metric_inc(shard_metrics(sh), (metric_id_t)(xmpp_mid.stanzas_out + xmpp_stanza_kind(stanza)));
    if (stanza == 'p')
        metric_inc(shard_metrics(sh), xmpp_mid.presence_deliveries);
}

static void sm_write_counted(shard_t *sh, xmpp_sess_t *s, const sm_item_t *it)
{
    if (it->stanza == 'p')
        sm_sess_presence(s, str_from_cstr(it->from), it->bytes, it->len);
    else
        xmpp_sess_write(s, it->bytes, it->len);
    sm_count_out(sh, (char)it->stanza);
}

/* XEP-0280 §6, §7: a copy of a message for another of the user's clients,
 * wrapped in <received/> or <sent/>. */
static void sm_carbon(shard_t *sh, xmpp_sess_t *s, const char *how, const char *bytes,
                      size_t len)
{
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<message");
    xmpp_xml_write_attr(&b, "from", str_from_cstr(s->user->key));
    xmpp_xml_write_attr(&b, "to", str_from_cstr(s->full));
    buf_printf(&b, " type='chat'><%s xmlns='" NS_CARBONS "'><forwarded xmlns='" NS_FORWARD "'>",
               how);
    /* The forwarded stanza keeps its own namespace inside <forwarded/>. */
    if (len > 9 && !memcmp(bytes, "<message ", 9) && memcmp(bytes + 9, "xmlns=", 6)) {
        buf_append_str(&b, "<message xmlns='" NS_CLIENT "' ");
        buf_append(&b, bytes + 9, len - 9);
    } else {
        buf_append(&b, bytes, len);
    }
    buf_printf(&b, "</forwarded></%s></message>", how);
    xmpp_sess_write(s, b.data, b.len);
    metric_inc(shard_metrics(sh), xmpp_mid.carbons);
    buf_fini(&b);
}

/* Answers for the bare JID of a user (RFC 6121 §8.5.2.1.3 and XEP-0054 §3.1):
 * its vCard or its disco#info, from whichever shard holds the account. */
static bool sm_answer_for_account(shard_t *sh, str_t bare, sm_item_t *it)
{
    if (!(it->flags & (ITEM_F_VCARD_GET | ITEM_F_DISCO_GET)) || !sm_account_exists(sh, bare))
        return false;
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<iq type='result'");
    if (it->id)
        xmpp_xml_write_attr(&b, "id", str_from_cstr(it->id));
    xmpp_xml_write_attr(&b, "from", bare);
    xmpp_xml_write_attr(&b, "to", str_from_cstr(it->from));
    buf_append_str(&b, ">");
    if (it->flags & ITEM_F_VCARD_GET) {
        void *raw = NULL;
        size_t rlen;
        if (stor_get(shard_storage(sh), STOR_CF_VCARDS, bare.ptr, bare.len, &raw, &rlen) == 0)
            buf_append(&b, raw, rlen);
        else
            buf_append_str(&b, "<vCard xmlns='" NS_VCARD "'/>");
        free(raw);
    } else {
        buf_append_str(&b, "<query xmlns='" NS_DISCO_INFO "'>"
                           "<identity category='account' type='registered'/>"
                           "<feature var='" NS_DISCO_INFO "'/></query>");
    }
    buf_append_str(&b, "</iq>");
    sm_item_t *r = sm_item_new(sh, ITEM_STANZA, 'i', str_from_cstr(it->from), bare, &b, NULL);
    snprintf(r->type, sizeof(r->type), "result");
    sm_item_post(sh, sm_home_of(sh, sm_bare_of(str_from_cstr(it->from))), r);
    buf_fini(&b);
    return true;
}

static xmpp_xml_verdict_t sm_body_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    buf_t *out = ctx;
    str_t body = xmpp_xml_child_text(el, "body", NS_CLIENT);
    if (body.ptr)
        buf_append(out, body.ptr, body.len);
    else
        buf_append(out, "", 1);     /* marks "no body" (a body is never a lone NUL) */
    return XMPP_XML_STOP;
}

/* The <body/> of a serialised message; false when it has none. */
static bool sm_body_of(const char *bytes, size_t len, buf_t *out)
{
    static const char hdr[] = "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const xmpp_xml_cbs_t cbs = { .stanza = sm_body_stanza };
    xmpp_xml_t p;
    xmpp_xml_init(&p, NULL, &cbs, out);
    bool ok = xmpp_xml_feed(&p, hdr, sizeof(hdr) - 1) >= 0 && xmpp_xml_feed(&p, bytes, len) >= 0;
    xmpp_xml_fini(&p);
    return ok && out->len && !(out->len == 1 && out->data[0] == 0);
}

/* RFC 6121 §8.5: a routed stanza on the target's home shard. */
static void sm_deliver(shard_t *sh, sm_user_t *u, str_t bare, str_t res, sm_item_t *it)
{
    if (u)
        sm_load_contacts(sh, u);    /* the block list */
    if (u && u->n_blocked && sm_blocks(u, str_from_cstr(it->from))) {
        /* XEP-0191 §3.5: nothing from a blocked entity reaches the user. */
        metric_inc(shard_metrics(sh), xmpp_mid.blocked);
        if (it->stanza != 'p')
            sm_bounce(sh, it, "cancel", "service-unavailable");
        return;
    }
    xmpp_sess_t *target = u && res.len ? sm_sess_by_resource(u, res) : NULL;
    if (target) {
        sm_write_counted(sh, target, it);
        if (it->stanza == 'm' && (it->flags & ITEM_F_CARBON))
            for (xmpp_sess_t *s = u->sessions; s; s = s->next)
                if (s != target && s->carbons && s->available)
                    sm_carbon(sh, s, "received", it->bytes, it->len);
        return;
    }
    if (it->stanza == 'p') {
        /* Presence to a bare JID goes to every available session; to an
         * absent resource, nowhere (§8.5.3.2.3). */
        if (u && !res.len)
            for (xmpp_sess_t *s = u->sessions; s; s = s->next)
                if (s->available)
                    sm_write_counted(sh, s, it);
        return;
    }
    if (it->stanza == 'i') {
        /* §8.5.2.1.3 / §8.5.3.2.2: the server answers for the bare JID or an
         * absent resource. */
        if (res.len || !sm_answer_for_account(sh, bare, it))
            sm_bounce(sh, it, "cancel", "service-unavailable");
        return;
    }
    /* Messages (§8.5.2.1.1, §8.5.3.2.1): the available resources with the
     * highest non-negative priority; none: store (or refuse). */
    int best = -1;
    if (u)
        for (xmpp_sess_t *s = u->sessions; s; s = s->next)
            if (s->available && s->priority >= 0 && s->priority > best)
                best = s->priority;
    if (best >= 0) {
        for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
            if (s->available && s->priority == best)
                sm_write_counted(sh, s, it);
            else if (s->carbons && s->available && (it->flags & ITEM_F_CARBON))
                sm_carbon(sh, s, "received", it->bytes, it->len);
        }
        return;
    }
    if (!sm_account_exists(sh, bare)) {
        sm_bounce(sh, it, "cancel", "service-unavailable");
        return;
    }
    /* Nobody here to take it: a client over another protocol may (the IM
     * gateway), else it waits (XEP-0160). */
    if (!strcmp(it->type, "") || !strcmp(it->type, "normal") || !strcmp(it->type, "chat")) {
        buf_t body;
        buf_init(&body);
        if (sm_body_of(it->bytes, it->len, &body)) {
            im_msg_t msg = { .to = bare, .from = str_from_cstr(it->from),
                             .body = { (const char *)body.data, body.len },
                             .id = it->id ? str_from_cstr(it->id) : (str_t){ "", 0 } };
            im_result_t r = im_offer(sh, &msg, PRES_PROVIDER_XMPP);
            buf_fini(&body);
            if (r == IM_SENT)
                return;
        } else {
            buf_fini(&body);
        }
    }
    sm_offline_store(sh, bare, it);
}

/* --- presence --- */

static str_t sm_full(const xmpp_sess_t *s)
{
    return str_from_cstr(s->full);
}

static void sm_send_presence_to(shard_t *sh, xmpp_sess_t *s, str_t to)
{
    buf_t b;
    buf_init(&b);
    /* The stored presence has no 'to'; add it for this recipient. */
    buf_append_str(&b, "<presence");
    xmpp_xml_write_attr(&b, "to", to);
    buf_append(&b, s->presence.data + 9, s->presence.len - 9);
    sm_send_item(sh, ITEM_STANZA, 'p', to, sm_full(s), &b, 0);
    buf_fini(&b);
}

/* One mailbox message per destination shard carrying the presence (without
 * 'to') and the watchers there (DESIGN.md §3). The initial broadcast goes to
 * every subscriber, later ones to those known online. */
static void sm_fanout(shard_t *sh, sm_user_t *u, str_t from, const buf_t *bytes, uint8_t flags)
{
    unsigned n = shard_count(sh);
    buf_t *per = calloc(n, sizeof(*per));
    if (!per)
        PANIC("out of memory fanning out presence");
    for (unsigned i = 0; i < xmpp_roster_count(u->roster); i++) {
        const xmpp_roster_item_t *c = xmpp_roster_item(u->roster, i);
        if (!(c->sub & SUB_FROM) || (!(flags & ITEM_F_INITIAL) && !c->online))
            continue;
        str_t jid = xmpp_roster_jid(u->roster, i);
        if (u->n_blocked && sm_blocks(u, jid))
            continue;   /* XEP-0191 §3.4: blocked contacts see us offline */
        buf_append(&per[c->home], jid.ptr, jid.len);
        buf_append(&per[c->home], "", 1);
    }
    for (unsigned d = 0; d < n; d++) {
        if (!per[d].len)
            continue;
        sm_item_t *it = sm_item_new(sh, ITEM_FANOUT, 'p', STR_LIT(""), from, bytes, &per[d]);
        it->flags = flags;
        sm_item_post(sh, d, it);
        buf_fini(&per[d]);
    }
    free(per);
}

/* The presence of s (type NULL: its available presence; else that type) to
 * its subscribers and to the user's other available sessions. */
static void sm_broadcast(shard_t *sh, xmpp_sess_t *s, const char *type, bool initial)
{
    sm_user_t *u = s->user;
    sm_load_contacts(sh, u);
    buf_t b;
    buf_init(&b);
    if (type) {
        buf_append_str(&b, "<presence");
        xmpp_xml_write_attr(&b, "from", sm_full(s));
        buf_printf(&b, " type='%s'/>", type);
    } else {
        buf_append(&b, s->presence.data, s->presence.len);
    }
    uint8_t flags = 0;
    if (initial && !sm_any_available(u, s)) {
        flags |= ITEM_F_INITIAL;
        for (unsigned i = 0; i < xmpp_roster_count(u->roster); i++)
            xmpp_roster_item(u->roster, i)->online = false;  /* relearned from the answers */
    }
    if (type && !sm_any_available(u, NULL))
        flags |= ITEM_F_LAST;
    sm_fanout(sh, u, sm_full(s), &b, flags);
    for (xmpp_sess_t *o = u->sessions; o; o = o->next) {
        if (o == s || !o->available)
            continue;
        sm_sess_presence(o, sm_full(s), b.data, b.len);
        sm_count_out(sh, 'p');
    }
    buf_fini(&b);
}

/* Destination shard of a fan-out: one stanza per available session of each
 * listed watcher; the sender learns who turned out to be offline (and, for
 * an initial presence, who is online). */
static void sm_fanout_arrive(shard_t *sh, sm_item_t *it)
{
    sm_t *sm = sm_of(sh);
    str_t from = str_from_cstr(it->from), from_bare = sm_bare_of(from);
    buf_t online, offline, b;
    buf_init(&online);
    buf_init(&offline);
    buf_init(&b);
    const char *p = it->bytes + it->len, *end = p + it->tlen;
    for (; p < end; p += strlen(p) + 1) {
        str_t t = str_from_cstr(p);
        sm_user_t *u = sm_find(sm, t, false);
        if (!u || !sm_any_available(u, NULL)) {
            buf_append(&offline, p, t.len + 1);
            continue;
        }
        if (it->flags & (ITEM_F_INITIAL | ITEM_F_LAST)) {
            xmpp_roster_item_t *c = sm_contact(u, from_bare);
            if (c && (c->sub & SUB_FROM))
                c->online = !(it->flags & ITEM_F_LAST);
            if (it->flags & ITEM_F_INITIAL)
                buf_append(&online, p, t.len + 1);
        }
        if (u->n_blocked && sm_blocks(u, from)) {
            metric_inc(shard_metrics(sh), xmpp_mid.blocked);
            continue;
        }
        for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
            if (!s->available)
                continue;
            b.len = 0;
            buf_append_str(&b, "<presence");
            xmpp_xml_write_attr(&b, "to", str_from_cstr(s->full));
            buf_append(&b, it->bytes + 9, it->len - 9);
            sm_sess_presence(s, from, b.data, b.len);
            sm_count_out(sh, 'p');
        }
    }
    if (online.len) {
        sm_item_t *r = sm_item_new(sh, ITEM_ONLINE, 'p', from_bare, STR_LIT(""), NULL, &online);
        sm_item_post(sh, it->origin, r);
    }
    if (offline.len) {
        sm_item_t *r = sm_item_new(sh, ITEM_OFFLINE, 'p', from_bare, STR_LIT(""), NULL,
                                   &offline);
        sm_item_post(sh, it->origin, r);
    }
    buf_fini(&online);
    buf_fini(&offline);
    buf_fini(&b);
}

static void sm_online_arrive(shard_t *sh, sm_item_t *it)
{
    sm_user_t *u = sm_find(sm_of(sh), str_from_cstr(it->to), false);
    if (!u)
        return;
    const char *p = it->bytes + it->len, *end = p + it->tlen;
    for (; p < end; p += strlen(p) + 1) {
        xmpp_roster_item_t *c = sm_contact(u, str_from_cstr(p));
        if (c)
            c->online = it->kind == ITEM_ONLINE;
    }
}

static void sm_probe_contacts(shard_t *sh, xmpp_sess_t *s)
{
    sm_user_t *u = s->user;
    for (unsigned i = 0; i < xmpp_roster_count(u->roster); i++) {
        const xmpp_roster_item_t *c = xmpp_roster_item(u->roster, i);
        str_t jid = xmpp_roster_jid(u->roster, i);
        if ((c->sub & SUB_TO) && !(u->n_blocked && sm_blocks(u, jid)))
            sm_send_item(sh, ITEM_PROBE, 'p', jid, sm_full(s), NULL, 0);
        if (c->sub & SUB_PENDING_IN) {
            /* RFC 6121 §3.1.3: a request that waited while the user was away. */
            buf_t b;
            buf_init(&b);
            buf_append_str(&b, "<presence type='subscribe'");
            xmpp_xml_write_attr(&b, "from", jid);
            buf_append_str(&b, "/>");
            xmpp_sess_write(s, b.data, b.len);
            buf_fini(&b);
        }
    }
}

/* RFC 6121 §4.3.2: a probe is answered for a subscriber only, with each
 * available resource; the prober is online, so it now watches. */
static void sm_probe_arrive(shard_t *sh, sm_user_t *u, sm_item_t *it)
{
    if (!u || !sm_any_available(u, NULL))
        return;
    sm_load_contacts(sh, u);
    str_t from = str_from_cstr(it->from);
    xmpp_roster_item_t *c = sm_contact(u, sm_bare_of(from));
    if (!c || !(c->sub & SUB_FROM) || (u->n_blocked && sm_blocks(u, from)))
        return;
    c->online = true;
    for (xmpp_sess_t *s = u->sessions; s; s = s->next)
        if (s->available)
            sm_send_presence_to(sh, s, from);
}

/* --- subscriptions --- */

static sub_event_t sm_sub_event(str_t type, bool outbound)
{
    static const char *const names[] = { "subscribe", "unsubscribe", "subscribed",
                                         "unsubscribed" };
    for (unsigned i = 0; i < 4; i++)
        if (str_eq_cstr(type, names[i]))
            return (sub_event_t)(i + (outbound ? SUB_OUT_SUBSCRIBE : SUB_IN_SUBSCRIBE));
    return SUB_EVENTS;
}

static const char *sm_sub_type(sub_event_t ev)
{
    static const char *const names[] = { "subscribe", "unsubscribe", "subscribed",
                                         "unsubscribed" };
    return names[ev % 4];
}

/* Presence from every available session of u to `to` (granted "from"), or
 * unavailable from each (lost "from"). */
static void sm_presence_to_contact(shard_t *sh, sm_user_t *u, str_t to, bool available)
{
    for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->available)
            continue;
        if (available) {
            sm_send_presence_to(sh, s, to);
        } else {
            buf_t b;
            buf_init(&b);
            buf_append_str(&b, "<presence type='unavailable'");
            xmpp_xml_write_attr(&b, "from", sm_full(s));
            xmpp_xml_write_attr(&b, "to", to);
            buf_append_str(&b, "/>");
            sm_send_item(sh, ITEM_STANZA, 'p', to, sm_full(s), &b, 0);
            buf_fini(&b);
        }
    }
}

/* Applies ev to u's record of contact; returns the actions. */
static uint8_t sm_sub_apply(shard_t *sh, sm_user_t *u, str_t contact, sub_event_t ev)
{
    sm_load_contacts(sh, u);
    if (!contact.len || contact.len > CONTACT_KEY_MAX)
        return 0;   /* not a JID any client could have (another protocol's garbage) */
    int at = xmpp_roster_find(u->roster, contact);
    sub_state_t old = at >= 0 ? xmpp_roster_item(u->roster, (unsigned)at)->sub : 0;
    sub_result_t r = sub_apply(old, ev);
    if (r.state != old) {
        contact_t c = { .sub = r.state };
        if (at < 0)
            at = (int)xmpp_roster_put(&u->roster, contact, sm_home_of(sh, contact), &c);
        xmpp_roster_item(u->roster, (unsigned)at)->sub = r.state;
        xmpp_roster_contact(u->roster, (unsigned)at, &c);
        sm_store_contact(sh, u, contact, &c);
        sm_push(u, contact, &c);
        pres_sub_changed(sh, str_from_cstr(u->key), contact, r.state);
    }
    if (r.actions & SUB_ACT_SEND_PRESENCE) {
        if (at >= 0)    /* if not, its shard says so at the next change */
            xmpp_roster_item(u->roster, (unsigned)at)->online = true;
        sm_presence_to_contact(sh, u, contact, true);
    }
    if (r.actions & SUB_ACT_SEND_UNAVAILABLE)
        sm_presence_to_contact(sh, u, contact, false);
    return r.actions;
}

static void sm_sub_inbound(shard_t *sh, sm_user_t *u, sm_item_t *it)
{
    str_t from = { it->from, strcspn(it->from, "/") };
    sm_load_contacts(sh, u);
    if (u->n_blocked && sm_blocks(u, from)) {
        metric_inc(shard_metrics(sh), xmpp_mid.blocked);
        return;     /* XEP-0191 §3.5: dropped, as presence is */
    }
    uint8_t act = sm_sub_apply(sh, u, from, (sub_event_t)it->event);
    if (act & SUB_ACT_AUTO_SUBSCRIBED)
        sm_send_item(sh, ITEM_SUB, 'p', from, str_from_cstr(u->key), NULL, SUB_IN_SUBSCRIBED);
    if (act & SUB_ACT_FORWARD) {
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "<presence type='%s'", sm_sub_type((sub_event_t)it->event));
        xmpp_xml_write_attr(&b, "from", from);
        xmpp_xml_write_attr(&b, "to", str_from_cstr(u->key));
        buf_append_str(&b, "/>");
        for (xmpp_sess_t *s = u->sessions; s; s = s->next)
            if (s->available)
                xmpp_sess_write(s, b.data, b.len);
        buf_fini(&b);
    }
}

/* Home shard of the target. */
static void sm_item_arrive(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sm_item_t *it = msg->ptr;
    sm_t *sm = sm_of(sh);
    str_t to = str_from_cstr(it->to);
    str_t bare = sm_bare_of(to);
    str_t res = bare.len < to.len ? (str_t){ to.ptr + bare.len + 1, to.len - bare.len - 1 }
                                  : (str_t){ NULL, 0 };
    switch ((sm_item_kind_t)it->kind) {
    case ITEM_FANOUT:
        sm_fanout_arrive(sh, it);
        break;
    case ITEM_ONLINE:
    case ITEM_OFFLINE:
        sm_online_arrive(sh, it);
        break;
    case ITEM_PROBE:
        sm_probe_arrive(sh, sm_find(sm, bare, false), it);
        break;
    case ITEM_SUB: {
        sm_user_t *u = sm_find(sm, bare, false);
        if (!u && !sm_account_exists(sh, bare))
            break;      /* no such user: no records for it */
        u = sm_find(sm, bare, true);
        sm_sub_inbound(sh, u, it);
        sm_forget_if_idle(sh, u);
        break;
    }
    case ITEM_STANZA: {
        sm_user_t *u = sm_find(sm, bare, false);
        if (!u && it->stanza == 'm' && sm_account_exists(sh, bare)) {
            /* Offline: the block list still applies to what is stored. */
            u = sm_find(sm, bare, true);
            sm_load_contacts(sh, u);
            sm_deliver(sh, u, bare, res, it);
            sm_forget_if_idle(sh, u);
        } else {
            sm_deliver(sh, u, bare, res, it);
        }
        break;
    }
    }
    mbox_msg_t rel = { .ptr = it };
    if (shard_call(sh, it->origin, sm_item_release, &rel) < 0)
        PANIC("mailbox refused a release");
}

static void sm_sub_outbound(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *el, sub_event_t ev)
{
    const str_t *to = xmpp_xml_attr(el, "to");
    xmpp_jid_t *jid = malloc(sizeof(*jid));
    if (!to || !jid || xmpp_jid_parse(to->ptr, to->len, jid) < 0 || !xmpp_jid_has_local(jid)) {
        free(jid);
        xmpp_stanza_error(st, el, "modify", "jid-malformed");
        return;
    }
    str_t contact = xmpp_jid_bare(jid);
    uint8_t act = sm_sub_apply(sh, st->sess->user, contact, ev);
    if (act & SUB_ACT_FORWARD)
        sm_send_item(sh, ITEM_SUB, 'p', contact, str_from_cstr(st->sess->user->key), NULL,
                     (sub_event_t)(ev - SUB_OUT_SUBSCRIBE + SUB_IN_SUBSCRIBE));
    free(jid);
}

/* XEP-0191 §3.4: a stanza to a blocked entity is refused. */
static bool sm_refuse_blocked(c2s_t *st, const xmpp_xml_el_t *el, str_t to)
{
    sm_user_t *u = st->sess->user;
    sm_load_contacts(conn_shard(st->conn), u);
    if (!u->n_blocked || !sm_blocks(u, to))
        return false;
    const str_t *type = xmpp_xml_attr(el, "type");
    if (type && str_eq_cstr(*type, "error"))
        return true;
    const str_t *id = xmpp_xml_attr(el, "id");
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<%.*s type='error'", (int)el->name.len, el->name.ptr);
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    xmpp_xml_write_attr(&b, "from", to);
    xmpp_xml_write_attr(&b, "to", str_from_cstr(st->sess->full));
    buf_printf(&b, "><error type='cancel'><not-acceptable xmlns='" NS_STANZAS "'/>"
                   "<blocked xmlns='" NS_BLOCKING_ERRORS "'/></error></%.*s>",
               (int)el->name.len, el->name.ptr);
    xmpp_sess_write(st->sess, b.data, b.len);
    buf_fini(&b);
    return true;
}

/* --- presence from the client --- */

/* RFC 6121 §4.7.2.1 <show/> as a neutral state; anything else is available. */
static uint8_t sm_show_state(str_t show)
{
    if (str_eq_cstr(show, "away"))
        return PRES_AWAY;
    if (str_eq_cstr(show, "xa"))
        return PRES_XA;
    if (str_eq_cstr(show, "dnd"))
        return PRES_DND;
    return PRES_AVAILABLE;
}

static void sm_presence(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *el)
{
    xmpp_sess_t *s = st->sess;
    const str_t *type = xmpp_xml_attr(el, "type");
    const str_t *to = xmpp_xml_attr(el, "to");
    if (type) {
        sub_event_t ev = sm_sub_event(*type, true);
        if (ev != SUB_EVENTS) {
            sm_sub_outbound(sh, st, el, ev);
            return;
        }
        if (str_eq_cstr(*type, "probe") || str_eq_cstr(*type, "error"))
            return;
    }
    bool unavailable = type && str_eq_cstr(*type, "unavailable");
    if (type && !unavailable) {
        xmpp_stanza_error(st, el, "modify", "bad-request");
        return;
    }
    if (to) {
        /* Directed presence (RFC 6121 §4.6): straight to the recipient. */
        if (sm_refuse_blocked(st, el, *to))
            return;
        buf_t b;
        buf_init(&b);
        sm_serialise(&b, el, sm_full(s), to);
        sm_send_item_el(sh, ITEM_STANZA, 'p', *to, sm_full(s), &b, 0, el, 0);
        buf_fini(&b);
        return;
    }
    if (unavailable) {
        if (s->available) {
            s->available = false;
            sm_broadcast(sh, s, "unavailable", false);
            pres_changed(sh, str_from_cstr(s->user->key), PRES_PROVIDER_XMPP);
        }
        return;
    }
    bool initial = !s->available;
    str_t prio = xmpp_xml_child_text(el, "priority", NS_CLIENT);
    s->priority = prio.len ? atoi(strndupa(prio.ptr, prio.len < 8 ? prio.len : 8)) : 0;
    if (s->priority < -128 || s->priority > 127)
        s->priority = 0;
    s->presence.len = 0;
    sm_serialise(&s->presence, el, sm_full(s), NULL);
    buf_fit(&s->presence);      /* kept for the session's life, once per user */
    s->pstate = sm_show_state(xmpp_xml_child_text(el, "show", NS_CLIENT));
    str_t status = xmpp_xml_child_text(el, "status", NS_CLIENT);
    free(s->status);
    s->status = status.ptr ? strndup(status.ptr, status.len) : NULL;
    s->available = true;
    sm_broadcast(sh, s, NULL, initial);
    pres_changed(sh, str_from_cstr(s->user->key), PRES_PROVIDER_XMPP);
    if (initial)
        sm_probe_contacts(sh, s);
    if (initial && s->priority >= 0)
        sm_offline_flush(sh, s);
}

/* --- replies acknowledged after a durable write --- */

typedef struct {
    uint64_t conn;
    char *id;
    char *to;
} sm_ack_t;

static void sm_acked_durable(shard_t *sh, void *arg, uint64_t arg2, int rc)
{
    sm_ack_t *a = arg;
    (void)arg2;
    conn_t *c = conn_by_id(sh, a->conn);
    c2s_t *st = c ? conn_state(c) : NULL;
    if (st && st->state != C2S_CLOSED && st->sess) {
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "<iq type='%s'", rc == 0 ? "result" : "error");
        xmpp_xml_write_attr(&b, "id", str_from_cstr(a->id));
        xmpp_xml_write_attr(&b, "to", str_from_cstr(a->to));
        if (rc == 0)
            buf_append_str(&b, "/>");
        else
            buf_append_str(&b, "><error type='wait'><internal-server-error xmlns='" NS_STANZAS
                               "'/></error></iq>");
        xmpp_sess_write(st->sess, b.data, b.len);
        buf_fini(&b);
    }
    free(a->id);
    free(a->to);
    free(a);
}

/* The iq's result once this turn's writes are durable (DESIGN.md §5). */
static void sm_reply_when_durable(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq)
{
    sm_ack_t *a = calloc(1, sizeof(*a));
    const str_t *id = xmpp_xml_attr(iq, "id");
    if (!a)
        PANIC("out of memory acknowledging a write");
    a->conn = conn_id(st->conn);
    a->id = id ? strndup(id->ptr, id->len) : strdup("");
    a->to = strdup(st->sess->full);
    shard_on_durable(sh, sm_acked_durable, a, 0);
}

/* --- roster --- */

static void sm_roster_get(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq,
                          const xmpp_xml_el_t *q)
{
    sm_user_t *u = st->sess->user;
    sm_load_contacts(sh, u);
    st->sess->interested = true;
    const str_t *id = xmpp_xml_attr(iq, "id");
    const str_t *ver = xmpp_xml_attr(q, "ver");
    char cur[32];
    snprintf(cur, sizeof(cur), "%llu", (unsigned long long)u->roster_ver);
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<iq type='result'");
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    xmpp_xml_write_attr(&b, "to", str_from_cstr(st->sess->full));
    if (ver && str_eq_cstr(*ver, cur)) {
        /* XEP-0237 §2.4: unchanged since the client's copy. */
        buf_append_str(&b, "/>");
    } else {
        buf_printf(&b, "><query xmlns='" NS_ROSTER "' ver='%s'>", cur);
        contact_t c;
        for (unsigned i = 0; i < xmpp_roster_count(u->roster); i++) {
            xmpp_roster_contact(u->roster, i, &c);
            sm_write_item(&b, xmpp_roster_jid(u->roster, i), &c);
        }
        buf_append_str(&b, "</query></iq>");
    }
    xmpp_sess_write(st->sess, b.data, b.len);
    buf_fini(&b);
}

static void sm_roster_set(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq,
                          const xmpp_xml_el_t *q)
{
    sm_user_t *u = st->sess->user;
    const xmpp_xml_el_t *item = xmpp_xml_child(q, "item", NS_ROSTER);
    const str_t *jattr = item ? xmpp_xml_attr(item, "jid") : NULL;
    const str_t *sattr = item ? xmpp_xml_attr(item, "subscription") : NULL;
    const str_t *name = item ? xmpp_xml_attr(item, "name") : NULL;
    xmpp_jid_t *jid = malloc(sizeof(*jid));
    /* RFC 6121 §2.3.3: exactly one item, with a valid bare-ish JID. */
    if (!jid || !item || q->child_count != 1 || !jattr ||
        xmpp_jid_parse(jattr->ptr, jattr->len, jid) < 0 ||
        (sattr && !str_eq_cstr(*sattr, "remove") && !str_eq_cstr(*sattr, "none") &&
         !str_eq_cstr(*sattr, "both") && !str_eq_cstr(*sattr, "to") &&
         !str_eq_cstr(*sattr, "from")) ||
        (name && name->len > CONTACT_NAME_MAX)) {
        free(jid);
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    sm_load_contacts(sh, u);
    str_t ckey = xmpp_jid_bare(jid);
    int at = xmpp_roster_find(u->roster, ckey);
    bool remove = sattr && str_eq_cstr(*sattr, "remove");
    if (remove) {
        if (at < 0) {
            free(jid);
            xmpp_stanza_error(st, iq, "cancel", "item-not-found");
            return;
        }
        /* RFC 6121 §2.5.2: cancel both directions. */
        sub_state_t sub = xmpp_roster_item(u->roster, (unsigned)at)->sub;
        if (sub & (SUB_TO | SUB_PENDING_OUT))
            sm_send_item(sh, ITEM_SUB, 'p', ckey, str_from_cstr(u->key), NULL,
                         SUB_IN_UNSUBSCRIBE);
        if (sub & (SUB_FROM | SUB_PENDING_IN)) {
            sm_presence_to_contact(sh, u, ckey, false);
            sm_send_item(sh, ITEM_SUB, 'p', ckey, str_from_cstr(u->key), NULL,
                         SUB_IN_UNSUBSCRIBED);
        }
        sm_store_contact(sh, u, ckey, NULL);
        sm_push(u, ckey, NULL);
        pres_sub_changed(sh, str_from_cstr(u->key), ckey, 0);
        xmpp_roster_remove(&u->roster, (unsigned)at);
    } else {
        /* The subscription is the server's to change (§2.1.2.5), the rest
         * the client's: a new item starts at none. */
        contact_t c = { .sub = at >= 0 ? xmpp_roster_item(u->roster, (unsigned)at)->sub : 0 };
        if (name)
            c.name = *name;
        for (const xmpp_xml_el_t *g = item->children; g && c.n_groups < CONTACT_GROUPS_MAX;
             g = g->next) {
            if (!xmpp_xml_is(g, "group", NS_ROSTER) || !xmpp_xml_text(g).len)
                continue;
            c.groups[c.n_groups++] = xmpp_xml_text(g);
        }
        xmpp_roster_put(&u->roster, ckey, sm_home_of(sh, ckey), &c);
        sm_store_contact(sh, u, ckey, &c);
        sm_push(u, ckey, &c);
    }
    free(jid);
    /* RFC 6121 §2.3.2 and DESIGN §5: the result once the change is durable. */
    sm_reply_when_durable(sh, st, iq);
}

/* --- block list (XEP-0191) --- */

static void sm_blocklist_push(sm_user_t *u, const char *what, const buf_t *items)
{
    buf_t b;
    buf_init(&b);
    for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->blocklist_interested)
            continue;
        b.len = 0;
        buf_printf(&b, "<iq type='set' id='block%llu'", (unsigned long long)sm_next_version());
        xmpp_xml_write_attr(&b, "to", str_from_cstr(s->full));
        buf_printf(&b, "><%s xmlns='" NS_BLOCKING "'>", what);
        buf_append(&b, items->data, items->len);
        buf_printf(&b, "</%s></iq>", what);
        xmpp_sess_write(s, b.data, b.len);
    }
    buf_fini(&b);
}

static void sm_block_iq(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq,
                        const xmpp_xml_el_t *q, bool set)
{
    sm_user_t *u = st->sess->user;
    sm_load_contacts(sh, u);
    if (!set) {
        if (!xmpp_xml_is(q, "blocklist", NS_BLOCKING)) {
            xmpp_stanza_error(st, iq, "modify", "bad-request");
            return;
        }
        st->sess->blocklist_interested = true;
        buf_t b;
        buf_init(&b);
        buf_append_str(&b, "<blocklist xmlns='" NS_BLOCKING "'>");
        for (unsigned i = 0; i < u->n_blocked; i++) {
            buf_append_str(&b, "<item");
            xmpp_xml_write_attr(&b, "jid", str_from_cstr(u->blocked[i]));
            buf_append_str(&b, "/>");
        }
        buf_append_str(&b, "</blocklist>");
        buf_append(&b, "", 1);
        xmpp_iq_result(st, iq, b.data);
        buf_fini(&b);
        return;
    }
    bool block = xmpp_xml_is(q, "block", NS_BLOCKING);
    if (!block && !xmpp_xml_is(q, "unblock", NS_BLOCKING)) {
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    /* Every item is checked before anything changes (XEP-0191 §3.3). */
    xmpp_jid_t *jid = malloc(sizeof(*jid));
    if (!jid)
        PANIC("out of memory parsing a block list");
    unsigned n_items = 0;
    for (const xmpp_xml_el_t *it = q->children; it; it = it->next) {
        const str_t *j = xmpp_xml_attr(it, "jid");
        if (!xmpp_xml_is(it, "item", NS_BLOCKING) || !j ||
            xmpp_jid_parse(j->ptr, j->len, jid) < 0) {
            free(jid);
            xmpp_stanza_error(st, iq, "modify", block ? "bad-request" : "jid-malformed");
            return;
        }
        n_items++;
    }
    if ((block && !n_items) || (block && u->n_blocked + n_items > SM_BLOCKED_MAX)) {
        free(jid);
        xmpp_stanza_error(st, iq, "modify", n_items ? "not-acceptable" : "bad-request");
        return;
    }
    buf_t items, k;
    buf_init(&items);
    buf_init(&k);
    if (!block && !n_items) {
        /* §3.4: unblock everything. */
        while (u->n_blocked) {
            char *e = u->blocked[--u->n_blocked];
            k.len = 0;
            sm_blocked_key(&k, u->key, str_from_cstr(e));
            stor_batch_delete(shard_batch(sh), STOR_CF_PRIVACY, k.data, k.len);
            xmpp_roster_item_t *c = sm_contact(u, str_from_cstr(e));
            if (c && (c->sub & SUB_FROM))
                sm_presence_to_contact(sh, u, str_from_cstr(e), true);
            free(e);
        }
    }
    for (const xmpp_xml_el_t *it = q->children; it; it = it->next) {
        const str_t *j = xmpp_xml_attr(it, "jid");
        xmpp_jid_parse(j->ptr, j->len, jid);
        str_t e = xmpp_jid_full(jid);
        int idx = sm_blocked_index(u, e);
        k.len = 0;
        sm_blocked_key(&k, u->key, e);
        xmpp_roster_item_t *c = sm_contact(u, e);
        if (block && idx < 0) {
            sm_blocked_add(u, e);
            stor_batch_put(shard_batch(sh), STOR_CF_PRIVACY, k.data, k.len, "", 0);
            if (c && (c->sub & SUB_FROM))
                sm_presence_to_contact(sh, u, e, false);
        } else if (!block && idx >= 0) {
            free(u->blocked[idx]);
            u->blocked[idx] = u->blocked[--u->n_blocked];
            stor_batch_delete(shard_batch(sh), STOR_CF_PRIVACY, k.data, k.len);
            if (c && (c->sub & SUB_FROM))
                sm_presence_to_contact(sh, u, e, true);
        }
        buf_append_str(&items, "<item");
        xmpp_xml_write_attr(&items, "jid", e);
        buf_append_str(&items, "/>");
    }
    free(jid);
    buf_fini(&k);
    sm_blocklist_push(u, block ? "block" : "unblock", &items);
    buf_fini(&items);
    sm_reply_when_durable(sh, st, iq);
}

/* --- vCards (XEP-0054) --- */

static void sm_vcard_iq(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq,
                        const xmpp_xml_el_t *q, bool set)
{
    sm_user_t *u = st->sess->user;
    str_t key = str_from_cstr(u->key);
    buf_t b;
    buf_init(&b);
    if (!set) {
        void *raw = NULL;
        size_t len;
        if (stor_get(shard_storage(sh), STOR_CF_VCARDS, key.ptr, key.len, &raw, &len) == 0)
            buf_append(&b, raw, len);
        else
            buf_append_str(&b, "<vCard xmlns='" NS_VCARD "'/>");
        free(raw);
        buf_append(&b, "", 1);
        xmpp_iq_result(st, iq, b.data);
        buf_fini(&b);
        return;
    }
    xmpp_xml_write_el(&b, q, STR_LIT(NS_CLIENT));
    if (b.len > SM_VCARD_MAX) {
        buf_fini(&b);
        xmpp_stanza_error(st, iq, "modify", "not-acceptable");
        return;
    }
    stor_batch_put(shard_batch(sh), STOR_CF_VCARDS, key.ptr, key.len, b.data, b.len);
    buf_fini(&b);
    sm_reply_when_durable(sh, st, iq);
}

/* --- iq --- */

static void sm_disco_info(c2s_t *st, const xmpp_xml_el_t *iq, bool server)
{
    const xmpp_c2s_config_t *cfg = xmpp_config();
    char payload[1200];
    if (!server) {
        xmpp_iq_result(st, iq, "<query xmlns='" NS_DISCO_INFO "'>"
                               "<identity category='account' type='registered'/>"
                               "<feature var='" NS_DISCO_INFO "'/></query>");
        return;
    }
    snprintf(payload, sizeof(payload),
             "<query xmlns='" NS_DISCO_INFO "'>"
             "<identity category='server' type='im' name='presenced'/>"
             "<feature var='" NS_DISCO_INFO "'/>"
             "<feature var='" NS_DISCO_ITEMS "'/>"
             "<feature var='" NS_PING "'/>"
             "<feature var='" NS_ROSTERVER "'/>"
             "<feature var='" NS_BLOCKING "'/>"
             "<feature var='" NS_CARBONS "'/>"
             "<feature var='" NS_VCARD "'/>"
             "<feature var='" NS_CSI "'/>"
             "<feature var='" NS_SM "'/>"
             "<feature var='msgoffline'/>"
             "%s</query>",
             cfg->registration ? "<feature var='" NS_REGISTER "'/>" : "");
    xmpp_iq_result(st, iq, payload);
}

static void sm_iq(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *iq)
{
    const str_t *type = xmpp_xml_attr(iq, "type");
    const str_t *to = xmpp_xml_attr(iq, "to");
    const str_t *id = xmpp_xml_attr(iq, "id");
    const xmpp_xml_el_t *q = iq->children;
    bool get = type && str_eq_cstr(*type, "get"), set = type && str_eq_cstr(*type, "set");
    sm_user_t *u = st->sess->user;

    if (!type || !id || ((get || set) && iq->child_count != 1)) {
        /* RFC 6120 §8.2.3: get/set carry exactly one child. */
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    bool to_self = !to || str_eq_cstr(*to, u->key);
    bool to_server = to && str_eq_cstr(*to, xmpp_domain());
    if (!to_self && !to_server) {
        /* Addressed to another entity: route (RFC 6121 §8.5). */
        if (sm_refuse_blocked(st, iq, *to))
            return;
        uint8_t flags = 0;
        if (get && xmpp_xml_is(q, "vCard", NS_VCARD))
            flags = ITEM_F_VCARD_GET;
        else if (get && xmpp_xml_is(q, "query", NS_DISCO_INFO))
            flags = ITEM_F_DISCO_GET;
        buf_t b;
        buf_init(&b);
        sm_serialise(&b, iq, sm_full(st->sess), NULL);
        sm_send_item_el(sh, ITEM_STANZA, 'i', *to, sm_full(st->sess), &b, 0, iq, flags);
        buf_fini(&b);
        return;
    }
    if (!get && !set)
        return;     /* results and errors to us: nothing waits for them */
    if (xmpp_xml_is(q, "query", NS_ROSTER) && to_self) {
        if (get)
            sm_roster_get(sh, st, iq, q);
        else
            sm_roster_set(sh, st, iq, q);
        return;
    }
    if (get && xmpp_xml_is(q, "ping", NS_PING)) {
        xmpp_iq_result(st, iq, NULL);
        return;
    }
    if (set && xmpp_xml_is(q, "session", NS_SESSION)) {
        xmpp_iq_result(st, iq, NULL);     /* RFC 3921 legacy step, a no-op */
        return;
    }
    if (q && q->ns.len && str_eq_cstr(q->ns, NS_BLOCKING) && to_self) {
        sm_block_iq(sh, st, iq, q, set);
        return;
    }
    if (set && q && str_eq_cstr(q->ns, NS_CARBONS) &&
        (xmpp_xml_is(q, "enable", NS_CARBONS) || xmpp_xml_is(q, "disable", NS_CARBONS))) {
        st->sess->carbons = xmpp_xml_is(q, "enable", NS_CARBONS);
        xmpp_iq_result(st, iq, NULL);
        return;
    }
    if (xmpp_xml_is(q, "vCard", NS_VCARD) && (to_self || !to)) {
        sm_vcard_iq(sh, st, iq, q, set);
        return;
    }
    if (get && xmpp_xml_is(q, "query", NS_DISCO_INFO)) {
        sm_disco_info(st, iq, to_server);
        return;
    }
    if (get && xmpp_xml_is(q, "query", NS_DISCO_ITEMS)) {
        xmpp_iq_result(st, iq, "<query xmlns='" NS_DISCO_ITEMS "'/>");
        return;
    }
    if (xmpp_xml_is(q, "query", NS_REGISTER)) {
        xmpp_register_iq(st, iq, q);
        return;
    }
    xmpp_stanza_error(st, iq, "cancel", "service-unavailable");
}

/* --- messages --- */

/* XEP-0280 §6: which messages are copied. */
static bool sm_carbon_eligible(const xmpp_xml_el_t *el)
{
    const str_t *type = xmpp_xml_attr(el, "type");
    if (!type || !str_eq_cstr(*type, "chat"))
        return false;
    return !xmpp_xml_child(el, "private", NS_CARBONS) && !xmpp_xml_child(el, "no-copy", NS_HINTS);
}

static void sm_message(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *el)
{
    xmpp_sess_t *s = st->sess;
    const str_t *to = xmpp_xml_attr(el, "to");
    str_t self = str_from_cstr(s->user->key);
    xmpp_jid_t *jid = NULL;
    if (to) {
        jid = malloc(sizeof(*jid));
        if (!jid || xmpp_jid_parse(to->ptr, to->len, jid) < 0) {
            free(jid);
            xmpp_stanza_error(st, el, "modify", "jid-malformed");
            return;
        }
        free(jid);
        if (sm_refuse_blocked(st, el, *to))
            return;
    }
    bool carbon = sm_carbon_eligible(el);
    buf_t b;
    buf_init(&b);
    /* RFC 6121 §8.5.1: no 'to' means the user's own bare JID. */
    sm_serialise(&b, el, sm_full(s), to ? NULL : &self);
    sm_send_item_el(sh, ITEM_STANZA, 'm', to ? *to : self, sm_full(s), &b, 0, el,
                    carbon ? ITEM_F_CARBON : 0);
    if (carbon)
        for (xmpp_sess_t *o = s->user->sessions; o; o = o->next)
            if (o != s && o->carbons && o->available)
                sm_carbon(sh, o, "sent", b.data, b.len);
    buf_fini(&b);
}

/* --- sessions --- */

static void sm_sess_end(shard_t *sh, xmpp_sess_t *s)
{
    sm_user_t *u = s->user;
    bool was_available = s->available;
    timer_cancel(shard_timers(sh), &s->resume_timer);
    if (s->available) {
        /* RFC 6121 §4.5.2: unavailable on the user's behalf. */
        s->available = false;
        sm_broadcast(sh, s, "unavailable", false);
    }
    for (xmpp_sess_t **p = &u->sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    /* XEP-0198 §4: what the client never acknowledged was not delivered;
     * messages wait in offline storage. */
    for (sm_out_t *o = s->unacked, *n; o; o = n) {
        n = o->next;
        if (o->is_message)
            sm_offline_put(sh, str_from_cstr(u->key), o->bytes, o->len);
        free(o);
    }
    for (unsigned i = 0; i < s->n_held; i++) {
        free(s->held[i].from);
        buf_fini(&s->held[i].bytes);
    }
    free(s->held);
    buf_fini(&s->presence);
    bool tell = was_available && !s->external;
    free(s->full);
    free(s->status);
    if (!s->external)
        metric_sub(shard_metrics(sh), xmpp_mid.sessions, 1);
    free(s);
    if (tell)
        pres_changed(sh, str_from_cstr(u->key), PRES_PROVIDER_XMPP);
    sm_forget_if_idle(sh, u);
}

static void sm_resume_expired(timer_wheel_t *w, timer_ent_t *t)
{
    (void)w;
    xmpp_sess_t *s = container_of(t, xmpp_sess_t, resume_timer);
    LOG_DEBUG("%s: not resumed in time", s->full);
    sm_sess_end(s->shard, s);
}

int xmpp_sm_bind(c2s_t *st, const char *resource, size_t len)
{
    shard_t *sh = conn_shard(st->conn);
    char res[XMPP_JID_PART_BUF_BYTES];
    xmpp_jid_reason_t why;
    ssize_t rl = xmpp_jid_prep_resourcepart(resource, len, res, sizeof(res), &why);
    if (rl < 0)
        return -EINVAL;
    sm_user_t *u = sm_find(sm_of(sh), (str_t){ st->jid, st->bare_len }, true);
    xmpp_sess_t *old = sm_sess_by_resource(u, (str_t){ res, (size_t)rl });
    if (old) {
        /* RFC 6120 §7.7.2.2: the new session wins; the old one is told why. */
        if (old->c2s) {
            c2s_t *ost = old->c2s;
            c2s_stream_error(ost, XMPP_XML_COND_CONFLICT, NULL);
            xmpp_sm_unbind(ost);
        } else {
            sm_sess_end(sh, old);
        }
        u = sm_find(sm_of(sh), (str_t){ st->jid, st->bare_len }, true);
    }
    xmpp_sess_t *s = calloc(1, sizeof(*s));
    char *full = malloc(st->bare_len + 1 + (size_t)rl + 1);
    if (!s || !full) {
        free(s);
        free(full);
        return -ENOMEM;
    }
    memcpy(full, st->jid, st->bare_len);
    full[st->bare_len] = '/';
    memcpy(full + st->bare_len + 1, res, (size_t)rl);
    full[st->bare_len + 1 + rl] = 0;
    free(st->jid);
    st->jid = full;
    s->full = strdup(full);
    if (!s->full)
        PANIC("out of memory binding a resource");
    s->resource = s->full + st->bare_len + 1;
    s->user = u;
    s->c2s = st;
    s->shard = sh;
    timer_init(&s->resume_timer, sm_resume_expired);
    buf_init(&s->presence);
    s->next = u->sessions;
    u->sessions = s;
    st->sess = s;
    metric_inc(shard_metrics(sh), xmpp_mid.sessions);
    return 0;
}

void xmpp_sm_unbind(c2s_t *st)
{
    xmpp_sess_t *s = st->sess;
    if (!s)
        return;
    shard_t *sh = conn_shard(st->conn);
    st->sess = NULL;
    s->c2s = NULL;
    unsigned timeout = xmpp_config()->resume_timeout_s;
    if (s->sm_resumable && timeout && !st->clean_end) {
        /* XEP-0198 §5: the session outlives its connection for a while. */
        timer_arm(shard_timers(sh), &s->resume_timer, shard_now_ms(sh) + timeout * 1000ull);
        metric_inc(shard_metrics(sh), xmpp_mid.sessions_detached);
        return;
    }
    sm_sess_end(sh, s);
}

static void sm_sm_failed(c2s_t *st, const char *cond)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<failed xmlns='" NS_SM "'><%s xmlns='" NS_STANZAS "'/></failed>", cond);
    c2s_write(st, b.data, b.len);
    buf_fini(&b);
}

bool xmpp_sm_resume(c2s_t *st, const xmpp_xml_el_t *el)
{
    shard_t *sh = conn_shard(st->conn);
    const str_t *previd = xmpp_xml_attr(el, "previd"), *h = xmpp_xml_attr(el, "h");
    sm_user_t *u = sm_find(sm_of(sh), (str_t){ st->jid, st->bare_len }, false);
    xmpp_sess_t *s = NULL;
    if (u && previd)
        for (s = u->sessions; s; s = s->next)
            if (s->sm_resumable && str_eq_cstr(*previd, s->sm_id))
                break;
    char *endp = NULL;
    unsigned long long hv = h && h->len && h->len < 11 ? strtoull(strndupa(h->ptr, h->len), &endp, 10)
                                                      : 0;
    if (!s || !h || !endp || *endp || hv > UINT32_MAX) {
        sm_sm_failed(st, "item-not-found");
        return false;
    }
    if (s->c2s) {
        /* The old connection is a ghost the server has not noticed yet. */
        c2s_t *old = s->c2s;
        old->sess = NULL;
        s->c2s = NULL;
        c2s_stream_error(old, XMPP_XML_COND_CONFLICT, "session resumed on another stream");
    }
    timer_cancel(shard_timers(sh), &s->resume_timer);
    sm_acked(s, (uint32_t)hv);
    s->c2s = st;
    st->sess = s;
    free(st->jid);
    st->jid = strdup(s->full);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<resumed xmlns='" NS_SM "' h='%u'", s->h_in);
    xmpp_xml_write_attr(&b, "previd", str_from_cstr(s->sm_id));
    buf_append_str(&b, "/>");
    c2s_write(st, b.data, b.len);
    buf_fini(&b);
    for (sm_out_t *o = s->unacked; o; o = o->next)
        c2s_write(st, o->bytes, o->len);
    metric_inc(shard_metrics(sh), xmpp_mid.sessions_resumed);
    return true;
}

void xmpp_sm_count_in(c2s_t *st)
{
    if (st->sess && st->sess->sm_enabled)
        st->sess->h_in++;
}

void xmpp_sm_nonza(c2s_t *st, const xmpp_xml_el_t *el)
{
    xmpp_sess_t *s = st->sess;
    if (xmpp_xml_is(el, "enable", NS_SM)) {
        if (s->sm_enabled) {
            sm_sm_failed(st, "unexpected-request");
            return;
        }
        const str_t *resume = xmpp_xml_attr(el, "resume");
        unsigned timeout = xmpp_config()->resume_timeout_s;
        s->sm_enabled = true;
        buf_t b;
        buf_init(&b);
        buf_append_str(&b, "<enabled xmlns='" NS_SM "'");
        if (resume && (str_eq_cstr(*resume, "true") || str_eq_cstr(*resume, "1")) && timeout) {
            uint8_t rnd[10];
            RAND_bytes(rnd, sizeof(rnd));
            for (unsigned i = 0; i < sizeof(rnd); i++)
                snprintf(s->sm_id + 2 * i, 3, "%02x", rnd[i]);
            s->sm_resumable = true;
            buf_printf(&b, " id='%s' resume='true' max='%u'", s->sm_id, timeout);
        }
        buf_append_str(&b, "/>");
        c2s_write(st, b.data, b.len);
        buf_fini(&b);
    } else if (xmpp_xml_is(el, "r", NS_SM)) {
        if (s->sm_enabled) {
            char a[64];
            int n = snprintf(a, sizeof(a), "<a xmlns='" NS_SM "' h='%u'/>", s->h_in);
            c2s_write(st, a, (size_t)n);
        }
    } else if (xmpp_xml_is(el, "a", NS_SM)) {
        const str_t *h = xmpp_xml_attr(el, "h");
        if (s->sm_enabled && h && h->len && h->len < 11)
            sm_acked(s, (uint32_t)strtoull(strndupa(h->ptr, h->len), NULL, 10));
    } else if (xmpp_xml_is(el, "inactive", NS_CSI)) {
        s->inactive = true;
    } else if (xmpp_xml_is(el, "active", NS_CSI)) {
        s->inactive = false;
        if (s->n_held)
            sm_held_flush(s);
    } else {
        c2s_stream_error(st, XMPP_XML_COND_UNSUPPORTED_STANZA_TYPE, NULL);
    }
}

void xmpp_sm_stanza(c2s_t *st, const xmpp_xml_el_t *el)
{
    shard_t *sh = conn_shard(st->conn);
    if (xmpp_xml_is(el, "message", NS_CLIENT))
        sm_message(sh, st, el);
    else if (xmpp_xml_is(el, "presence", NS_CLIENT))
        sm_presence(sh, st, el);
    else if (xmpp_xml_is(el, "iq", NS_CLIENT))
        sm_iq(sh, st, el);
    else
        c2s_stream_error(st, XMPP_XML_COND_UNSUPPORTED_STANZA_TYPE, NULL);
}

/* --- the neutral presence model (engine/presence.h) --- */

static void sm_pres_list(shard_t *sh, str_t user, pres_each_fn each, void *ctx)
{
    sm_user_t *u = sm_find(sm_of(sh), user, false);
    if (!u)
        return;
    for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->available || s->external)
            continue;
        pres_source_t src = {
            .provider = PRES_PROVIDER_XMPP,
            .id = str_from_cstr(s->resource),
            .state = (pres_state_t)s->pstate,
            .priority = s->priority,
            .timestamp_ms = INT64_MIN,
            .note = s->status ? str_from_cstr(s->status) : (str_t){ NULL, 0 },
        };
        each(ctx, &src);
    }
}

typedef struct {
    shard_t *sh;
    sm_user_t *u;
    xmpp_sess_t **seen;
    unsigned n_seen;
} sm_ext_sync_t;

static void sm_ext_source(void *ctx, const pres_source_t *src)
{
    sm_ext_sync_t *x = ctx;
    if (src->provider == PRES_PROVIDER_XMPP || src->state == PRES_UNAVAILABLE)
        return;
    sm_user_t *u = x->u;
    static const char *const prefix[PRES_PROVIDERS] = { "xmpp-", "sip-" };
    buf_t res;
    buf_init(&res);
    buf_append_str(&res, prefix[src->provider]);
    buf_append(&res, src->id.ptr, src->id.len);
    xmpp_sess_t *s = sm_sess_by_resource(u, (str_t){ (const char *)res.data, res.len });
    bool initial = false;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            PANIC("out of memory adding a presence source");
        buf_append(&res, "", 1);
        char *full = malloc(strlen(u->key) + 1 + res.len);
        if (!full)
            PANIC("out of memory adding a presence source");
        sprintf(full, "%s/%s", u->key, (const char *)res.data);
        s->full = full;
        s->resource = full + strlen(u->key) + 1;
        s->user = u;
        s->shard = x->sh;
        s->external = true;
        s->priority = -1;       /* never the target of a message to the bare JID */
        timer_init(&s->resume_timer, sm_resume_expired);
        buf_init(&s->presence);
        s->next = u->sessions;
        u->sessions = s;
        initial = true;
    }
    buf_fini(&res);
    x->seen = realloc(x->seen, sizeof(*x->seen) * (x->n_seen + 1));
    x->seen[x->n_seen++] = s;
    /* The XMPP rendering: <show/> as RFC 6121 has it, the note as <status/>. */
    static const char *const shows[PRES_STATES] = {
        [PRES_AWAY] = "away", [PRES_XA] = "xa", [PRES_VACATION] = "xa", [PRES_DND] = "dnd",
        [PRES_BUSY] = "dnd", [PRES_ON_THE_PHONE] = "dnd", [PRES_MEETING] = "dnd",
    };
    buf_t p;
    buf_init(&p);
    buf_append_str(&p, "<presence");
    xmpp_xml_write_attr(&p, "from", str_from_cstr(s->full));
    buf_append_str(&p, ">");
    if (src->state < PRES_STATES && shows[src->state])
        buf_printf(&p, "<show>%s</show>", shows[src->state]);
    if (src->note.ptr) {
        buf_append_str(&p, "<status>");
        xmpp_xml_write_text(&p, src->note);
        buf_append_str(&p, "</status>");
    }
    buf_append_str(&p, "<priority>-1</priority></presence>");
    if (initial || p.len != s->presence.len || memcmp(p.data, s->presence.data, p.len)) {
        s->presence.len = 0;
        buf_append(&s->presence, p.data, p.len);
        buf_fit(&s->presence);
        s->pstate = (uint8_t)src->state;
        s->available = true;
        sm_broadcast(x->sh, s, NULL, initial);
    }
    buf_fini(&p);
}

/* Sources of other protocols appear to XMPP watchers as resources. */
static void sm_pres_changed(shard_t *sh, str_t user, pres_provider_t from)
{
    if (from == PRES_PROVIDER_XMPP)
        return;
    sm_user_t *u = sm_find(sm_of(sh), user, true);
    sm_load_contacts(sh, u);
    sm_ext_sync_t x = { .sh = sh, .u = u };
    pres_sources(sh, user, sm_ext_source, &x);
    for (xmpp_sess_t *s = u->sessions, *n; s; s = n) {
        n = s->next;
        if (!s->external)
            continue;
        bool seen = false;
        for (unsigned i = 0; i < x.n_seen && !seen; i++)
            seen = x.seen[i] == s;
        if (!seen)
            sm_sess_end(sh, s);     /* may forget u when nothing is left */
    }
    free(x.seen);
    u = sm_find(sm_of(sh), user, false);
    sm_forget_if_idle(sh, u);
}

static sub_state_t sm_pres_sub_get(shard_t *sh, str_t user, str_t contact)
{
    sm_user_t *u = sm_find(sm_of(sh), user, false);
    bool temporary = !u;
    if (temporary) {
        if (!sm_account_exists(sh, user))
            return 0;
        u = sm_find(sm_of(sh), user, true);
    }
    sm_load_contacts(sh, u);
    xmpp_roster_item_t *c = sm_contact(u, contact);
    sub_state_t st = c ? c->sub : 0;
    if (u->n_blocked && sm_blocks(u, contact))
        st = 0;     /* XEP-0191: a blocked watcher sees nothing, whatever the record */
    if (temporary)
        sm_forget_if_idle(sh, u);
    return st;
}

/* A watcher over another protocol asks for the user's presence: the same
 * inbound subscribe an XMPP contact's request is (RFC 6121 §3.1.3). */
static void sm_pres_sub_request(shard_t *sh, str_t user, str_t contact)
{
    sm_user_t *u = sm_find(sm_of(sh), user, false);
    if (!u && !sm_account_exists(sh, user))
        return;
    u = sm_find(sm_of(sh), user, true);
    sm_item_t *it = sm_item_new(sh, ITEM_SUB, 'p', user, contact, NULL, NULL);
    it->event = SUB_IN_SUBSCRIBE;
    sm_sub_inbound(sh, u, it);
    mbox_msg_t m = { .ptr = it };
    sm_item_release(NULL, &m);
    sm_forget_if_idle(sh, u);
}

/* --- the IM gateway (engine/presence.h) --- */

/* A message from another protocol's client, as a chat message for the user:
 * to the XMPP sessions that take it, else to another protocol's client, else
 * offline storage. */
static im_result_t sm_im_deliver(shard_t *sh, const im_msg_t *msg)
{
    sm_t *sm = sm_of(sh);
    sm_user_t *u = sm_find(sm, msg->to, false);
    if (!u && !sm_account_exists(sh, msg->to))
        return IM_NO_USER;
    if (!u)
        u = sm_find(sm, msg->to, true);
    sm_load_contacts(sh, u);
    im_result_t r;
    if (u->n_blocked && sm_blocks(u, msg->from)) {
        metric_inc(shard_metrics(sh), xmpp_mid.blocked);
        r = IM_BLOCKED;
    } else {
        buf_t b;
        buf_init(&b);
        buf_append_str(&b, "<message type='chat'");
        if (msg->id.len)
            xmpp_xml_write_attr(&b, "id", msg->id);
        xmpp_xml_write_attr(&b, "from", msg->from);
        xmpp_xml_write_attr(&b, "to", msg->to);
        buf_append_str(&b, "><body>");
        xmpp_xml_write_text(&b, msg->body);
        buf_append_str(&b, "</body></message>");
        int best = -1;
        for (xmpp_sess_t *s = u->sessions; s; s = s->next)
            if (s->available && s->priority >= 0 && s->priority > best)
                best = s->priority;
        if (best >= 0) {
            for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
                if (s->available && s->priority == best) {
                    xmpp_sess_write(s, b.data, b.len);
                    sm_count_out(sh, 'm');
                } else if (s->carbons && s->available) {
                    sm_carbon(sh, s, "received", b.data, b.len);
                }
            }
            r = IM_DELIVERED;
        } else if (im_offer(sh, msg, PRES_PROVIDER_XMPP) == IM_SENT) {
            r = IM_SENT;
        } else {
            r = sm_offline_put(sh, msg->to, b.data, b.len) ? IM_STORED : IM_UNREACHABLE;
        }
        buf_fini(&b);
    }
    sm_forget_if_idle(sh, u);
    return r;
}

/* A message an XMPP user sent on to another protocol was refused there: the
 * sender gets the error in XMPP terms (RFC 6120 §8.3.3). */
static void sm_im_failed(shard_t *sh, const im_msg_t *msg, unsigned status)
{
    const char *type = "cancel", *cond = "service-unavailable";
    if (status == 404 || status == 410 || status == 484)
        cond = "item-not-found";
    else if (status == 403 || status == 401 || status == 407)
        cond = "forbidden";
    else if (status == 408 || status == 480 || status == 486 || status == 600 || status == 603) {
        type = "wait";
        cond = "recipient-unavailable";
    } else if (status == 413 || status == 415 || status == 488) {
        type = "modify";
        cond = "not-acceptable";
    }
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<message type='error'");
    if (msg->id.len)
        xmpp_xml_write_attr(&b, "id", msg->id);
    xmpp_xml_write_attr(&b, "from", msg->to);
    xmpp_xml_write_attr(&b, "to", msg->from);
    buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></message>", type, cond);
    sm_item_t *e = sm_item_new(sh, ITEM_STANZA, 'm', msg->from, msg->to, &b, NULL);
    snprintf(e->type, sizeof(e->type), "error");
    sm_item_post(sh, sm_home_of(sh, sm_bare_of(msg->from)), e);
    buf_fini(&b);
}

void xmpp_sm_register_presence(void)
{
    im_register_delivery(sm_im_deliver, sm_im_failed);
    pres_provide(PRES_PROVIDER_XMPP, sm_pres_list);
    pres_observe(sm_pres_changed);
    pres_keep_subs(sm_pres_sub_get, sm_pres_sub_request);
}
