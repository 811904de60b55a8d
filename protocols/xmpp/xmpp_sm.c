/*
 * xmpp_sm.c - the XMPP session manager on each shard: the users homed here,
 * their sessions (bound resources), their contact lists and subscription
 * states (engine/sub.h, stored with engine/contact.h), presence and routing
 * (RFC 6121).
 *
 * Every user lives on its home shard; a stanza for a user is a mailbox
 * message to that shard carrying the serialised stanza, which the home shard
 * delivers to the user's connections (they were handed to it at login). The
 * item comes back to its sender for release (STYLE.md, Memory).
 *
 * Users are kept in memory while they have sessions or were touched by a
 * subscription change; their contact list is loaded from storage on first
 * use and written through the shard's per-turn batch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/contact.h"
#include "engine/log.h"
#include "engine/route.h"
#include "engine/sub.h"
#include "protocols/xmpp/xmpp_int.h"
#include "protocols/xmpp/xmpp_jid.h"

/* --- per-shard tables --- */

typedef struct sm_contact {
    char *key;                  /* contact's bare JID */
    sub_state_t sub;
    char *name;                 /* NULL: none */
    char **groups;
    unsigned n_groups;
} sm_contact_t;

typedef struct sm_user {
    struct sm_user *next;       /* hash chain */
    char *key;
    xmpp_sess_t *sessions;
    bool contacts_loaded;
    sm_contact_t *contacts;
    unsigned n_contacts, cap_contacts;
    uint64_t roster_ver;
} sm_user_t;

struct xmpp_sess {
    xmpp_sess_t *next;
    sm_user_t *user;
    c2s_t *c2s;
    char *resource;
    int priority;
    bool available;             /* sent initial presence */
    bool interested;            /* asked for the roster: gets pushes */
    buf_t presence;             /* last available presence, as broadcast */
};

typedef struct {
    sm_user_t **buckets;
    unsigned n_buckets;
    unsigned n_users;
} sm_t;

static void sm_fini(void *p)
{
    sm_t *sm = p;
    for (unsigned i = 0; i < sm->n_buckets; i++) {
        for (sm_user_t *u = sm->buckets[i], *n; u; u = n) {
            n = u->next;
            for (unsigned k = 0; k < u->n_contacts; k++) {
                free(u->contacts[k].key);
                free(u->contacts[k].name);
                for (unsigned g = 0; g < u->contacts[k].n_groups; g++)
                    free(u->contacts[k].groups[g]);
                free(u->contacts[k].groups);
            }
            free(u->contacts);
            free(u->key);
            free(u);
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
        sm->n_buckets = 1024;
        sm->buckets = calloc(sm->n_buckets, sizeof(*sm->buckets));
        if (!sm || !sm->buckets)
            PANIC("out of memory creating the session manager");
        shard_set_slot(sh, SHARD_SLOT_XMPP, sm, sm_fini);
    }
    return sm;
}

static sm_user_t *sm_find(sm_t *sm, str_t key, bool create)
{
    unsigned b = (unsigned)(route_hash(key.ptr, key.len) % sm->n_buckets);
    for (sm_user_t *u = sm->buckets[b]; u; u = u->next)
        if (strlen(u->key) == key.len && memcmp(u->key, key.ptr, key.len) == 0)
            return u;
    if (!create)
        return NULL;
    sm_user_t *u = calloc(1, sizeof(*u));
    u->key = strndup(key.ptr, key.len);
    if (!u || !u->key)
        PANIC("out of memory adding a user");
    u->next = sm->buckets[b];
    sm->buckets[b] = u;
    sm->n_users++;
    return u;
}

/* --- contacts --- */

static int sm_load_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    sm_user_t *u = ctx;
    str_t user, ck;
    contact_t c;
    if (contact_key_split(key, klen, &user, &ck) < 0) {
        contact_version_decode(val, vlen, &u->roster_ver);
        return 0;
    }
    if (contact_decode(val, vlen, &c) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_ERROR, "damaged contact record for %s", u->key);
        return 0;
    }
    if (u->n_contacts == u->cap_contacts) {
        u->cap_contacts = u->cap_contacts ? u->cap_contacts * 2 : 16;
        u->contacts = realloc(u->contacts, sizeof(*u->contacts) * u->cap_contacts);
        if (!u->contacts)
            PANIC("out of memory loading contacts");
    }
    sm_contact_t *sc = &u->contacts[u->n_contacts++];
    memset(sc, 0, sizeof(*sc));
    sc->key = strndup(ck.ptr, ck.len);
    sc->sub = c.sub;
    sc->name = c.name.len ? strndup(c.name.ptr, c.name.len) : NULL;
    if (c.n_groups) {
        sc->groups = calloc(c.n_groups, sizeof(char *));
        for (unsigned g = 0; g < c.n_groups; g++)
            sc->groups[g] = strndup(c.groups[g].ptr, c.groups[g].len);
        sc->n_groups = c.n_groups;
    }
    return 0;
}

static void sm_load_contacts(shard_t *sh, sm_user_t *u)
{
    if (u->contacts_loaded)
        return;
    buf_t prefix;
    buf_init(&prefix);
    contact_version_key(str_from_cstr(u->key), &prefix);
    stor_scan_prefix(shard_storage(sh), STOR_CF_ROSTERS, prefix.data, prefix.len, sm_load_one,
                     u);
    buf_fini(&prefix);
    u->contacts_loaded = true;
}

static sm_contact_t *sm_contact(sm_user_t *u, str_t key)
{
    for (unsigned i = 0; i < u->n_contacts; i++)
        if (strlen(u->contacts[i].key) == key.len &&
            memcmp(u->contacts[i].key, key.ptr, key.len) == 0)
            return &u->contacts[i];
    return NULL;
}

static sm_contact_t *sm_contact_add(sm_user_t *u, str_t key)
{
    if (u->n_contacts == u->cap_contacts) {
        u->cap_contacts = u->cap_contacts ? u->cap_contacts * 2 : 16;
        u->contacts = realloc(u->contacts, sizeof(*u->contacts) * u->cap_contacts);
        if (!u->contacts)
            PANIC("out of memory adding a contact");
    }
    sm_contact_t *c = &u->contacts[u->n_contacts++];
    memset(c, 0, sizeof(*c));
    c->key = strndup(key.ptr, key.len);
    return c;
}

static void sm_contact_free(sm_contact_t *c)
{
    free(c->key);
    free(c->name);
    for (unsigned g = 0; g < c->n_groups; g++)
        free(c->groups[g]);
    free(c->groups);
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
static void sm_store_contact(shard_t *sh, sm_user_t *u, str_t ckey, const sm_contact_t *c)
{
    stor_batch_t *b = shard_batch(sh);
    buf_t k, v;
    buf_init(&k);
    buf_init(&v);
    contact_key(str_from_cstr(u->key), ckey, &k);
    if (c) {
        contact_t rec = { .sub = c->sub, .name = str_from_cstr(c->name) };
        for (unsigned g = 0; g < c->n_groups && g < CONTACT_GROUPS_MAX; g++)
            rec.groups[rec.n_groups++] = str_from_cstr(c->groups[g]);
        if (contact_encode(&rec, &v) == 0)
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

static void sm_write_item(buf_t *b, const sm_contact_t *c, bool removed)
{
    buf_append_str(b, "<item");
    xmpp_xml_write_attr(b, "jid", str_from_cstr(c->key));
    if (removed) {
        buf_append_str(b, " subscription='remove'/>");
        return;
    }
    if (c->name)
        xmpp_xml_write_attr(b, "name", str_from_cstr(c->name));
    buf_printf(b, " subscription='%s'%s", sub_roster_subscription(c->sub),
               sub_roster_ask(c->sub) ? " ask='subscribe'" : "");
    if (!c->n_groups) {
        buf_append_str(b, "/>");
        return;
    }
    buf_append_str(b, ">");
    for (unsigned g = 0; g < c->n_groups; g++) {
        buf_append_str(b, "<group>");
        xmpp_xml_write_text(b, str_from_cstr(c->groups[g]));
        buf_append_str(b, "</group>");
    }
    buf_append_str(b, "</item>");
}

/* RFC 6121 §2.1.6: a roster push to every interested resource. */
static void sm_push(sm_user_t *u, const sm_contact_t *c, bool removed)
{
    buf_t b;
    buf_init(&b);
    for (xmpp_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->interested)
            continue;
        b.len = 0;
        buf_printf(&b, "<iq type='set' id='push%llu'", (unsigned long long)u->roster_ver);
        xmpp_xml_write_attr(&b, "to", str_from_cstr(s->c2s->jid));
        buf_printf(&b, "><query xmlns='" NS_ROSTER "' ver='%llu'>",
                   (unsigned long long)u->roster_ver);
        sm_write_item(&b, c, removed);
        buf_append_str(&b, "</query></iq>");
        c2s_write_buf(s->c2s, &b);
    }
    buf_fini(&b);
}

/* --- routing between shards --- */

typedef enum {
    ITEM_STANZA,        /* deliver bytes to the target's sessions per RFC 6121 §8.5 */
    ITEM_PROBE,         /* a presence probe from `from` */
    ITEM_SUB,           /* an inbound subscription stanza; sub_event in `event` */
} sm_item_kind_t;

typedef struct {
    uint16_t origin;
    uint8_t kind;
    uint8_t event;
    uint8_t stanza;     /* 'm'essage, 'p'resence, 'i'q */
    char *to;           /* full or bare JID of the target */
    char *from;         /* full JID of the sender */
    char *id;           /* the stanza's id, for an error bounced back (may be NULL) */
    char type[12];      /* the stanza's type attribute ("" if none) */
    size_t len;
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

static void sm_send_item_el(shard_t *sh, sm_item_kind_t kind, char stanza, str_t to, str_t from,
                            const buf_t *bytes, sub_event_t ev, const xmpp_xml_el_t *el)
{
    sm_item_t *it = malloc(sizeof(*it) + (bytes ? bytes->len : 0));
    if (!it)
        PANIC("out of memory routing a stanza");
    const str_t *id = el ? xmpp_xml_attr(el, "id") : NULL;
    const str_t *type = el ? xmpp_xml_attr(el, "type") : NULL;
    it->id = id ? strndup(id->ptr, id->len) : NULL;
    snprintf(it->type, sizeof(it->type), "%.*s", type ? (int)type->len : 0,
             type ? type->ptr : "");
    it->origin = (uint16_t)shard_id(sh);
    it->kind = (uint8_t)kind;
    it->event = (uint8_t)ev;
    it->stanza = (uint8_t)stanza;
    it->to = strndup(to.ptr, to.len);
    it->from = strndup(from.ptr, from.len);
    it->len = bytes ? bytes->len : 0;
    if (it->len)
        memcpy(it->bytes, bytes->data, it->len);
    const char *slash = memchr(to.ptr, '/', to.len);
    size_t bare = slash ? (size_t)(slash - to.ptr) : to.len;
    route_t home = route_user(to.ptr, bare, shard_count(sh));
    mbox_msg_t m = { .ptr = it };
    if (shard_call(sh, home.shard, sm_item_arrive, &m) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: dropped a stanza for %.*s",
                        (int)to.len, to.ptr);
        mbox_msg_t rel = { .ptr = it };
        sm_item_release(NULL, &rel);
    }
}

static void sm_send_item(shard_t *sh, sm_item_kind_t kind, char stanza, str_t to, str_t from,
                         const buf_t *bytes, sub_event_t ev)
{
    sm_send_item_el(sh, kind, stanza, to, from, bytes, ev, NULL);
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

static void sm_send_presence_to(shard_t *sh, xmpp_sess_t *s, str_t to);
static void sm_sub_inbound(shard_t *sh, sm_user_t *u, sm_item_t *it);

/* --- offline messages (XEP-0160) and errors back to the sender --- */

/* Messages kept per user while it is away: beyond this the sender gets an
 * error rather than the store growing without bound. */
#define SM_OFFLINE_MAX 1000

static void sm_bounce(shard_t *sh, sm_item_t *it, const char *type, const char *cond)
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
    buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></%s>", type, cond,
               name);
    sm_send_item(sh, ITEM_STANZA, (char)it->stanza, str_from_cstr(it->from), str_from_cstr(it->to),
                 &b, 0);
    buf_fini(&b);
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

/* RFC 6121 §8.5.2.2: a message for an account without an available
 * resource is stored (types normal and chat) and the rest dropped. */
static void sm_offline_store(shard_t *sh, str_t bare, sm_item_t *it)
{
    if (strcmp(it->type, "") && strcmp(it->type, "normal") && strcmp(it->type, "chat"))
        return;
    buf_t k;
    buf_init(&k);
    buf_append(&k, bare.ptr, bare.len);
    buf_append(&k, "", 1);
    unsigned count = 0;
    stor_scan_prefix(shard_storage(sh), STOR_CF_OFFLINE, k.data, k.len, sm_offline_count_one,
                     &count);
    if (count >= SM_OFFLINE_MAX) {
        metric_inc(shard_metrics(sh), xmpp_mid.offline_refused);
        sm_bounce(sh, it, "wait", "resource-constraint");
        buf_fini(&k);
        return;
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
    if (it->len >= 2 && !memcmp(it->bytes + it->len - 2, "/>", 2)) {
        buf_append(&v, it->bytes, it->len - 2);
        buf_printf(&v, ">%s</message>", delay);
    } else if (it->len >= 10 && !memcmp(it->bytes + it->len - 10, "</message>", 10)) {
        buf_append(&v, it->bytes, it->len - 10);
        buf_printf(&v, "%s</message>", delay);
    } else {
        buf_append(&v, it->bytes, it->len);
    }
    stor_batch_put(shard_batch(sh), STOR_CF_OFFLINE, k.data, k.len, v.data, v.len);
    metric_inc(shard_metrics(sh), xmpp_mid.offline_stored);
    buf_fini(&k);
    buf_fini(&v);
}

typedef struct {
    shard_t *sh;
    xmpp_sess_t *s;
} sm_flush_ctx_t;

static int sm_offline_deliver_one(void *ctx, const void *key, size_t klen, const void *val,
                                  size_t vlen)
{
    sm_flush_ctx_t *f = ctx;
    c2s_write(f->s->c2s, val, vlen);
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

static void sm_write_counted(shard_t *sh, xmpp_sess_t *s, const sm_item_t *it)
{
    c2s_write(s->c2s, it->bytes, it->len);
    metric_inc(shard_metrics(sh), (metric_id_t)(xmpp_mid.stanzas_out +
                                                xmpp_stanza_kind((char)it->stanza)));
    if (it->stanza == 'p')
        metric_inc(shard_metrics(sh), xmpp_mid.presence_deliveries);
}

/* RFC 6121 §8.5: a routed stanza on the target's home shard. */
static void sm_deliver(shard_t *sh, sm_user_t *u, str_t bare, str_t res, sm_item_t *it)
{
    xmpp_sess_t *target = u && res.len ? sm_sess_by_resource(u, res) : NULL;
    if (target) {
        sm_write_counted(sh, target, it);
        return;
    }
    if (it->stanza == 'p') {
        /* Presence to a bare JID goes to every session; to an absent
         * resource, nowhere (§8.5.3.2.3). */
        if (u && !res.len)
            for (xmpp_sess_t *s = u->sessions; s; s = s->next)
                sm_write_counted(sh, s, it);
        return;
    }
    if (it->stanza == 'i') {
        /* §8.5.2.1.3 / §8.5.3.2.2: the server answers for the bare JID or an
         * absent resource. */
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
        for (xmpp_sess_t *s = u->sessions; s; s = s->next)
            if (s->available && s->priority == best)
                sm_write_counted(sh, s, it);
        return;
    }
    if (!sm_account_exists(sh, bare)) {
        sm_bounce(sh, it, "cancel", "service-unavailable");
        return;
    }
    sm_offline_store(sh, bare, it);
}

/* Home shard of the target. */
static void sm_item_arrive(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sm_item_t *it = msg->ptr;
    sm_t *sm = sm_of(sh);
    str_t to = str_from_cstr(it->to);
    const char *slash = strchr(it->to, '/');
    str_t bare = slash ? (str_t){ it->to, (size_t)(slash - it->to) } : to;
    str_t res = slash ? str_from_cstr(slash + 1) : (str_t){ NULL, 0 };
    sm_user_t *u = sm_find(sm, bare, it->kind == ITEM_SUB);

    if (it->kind == ITEM_PROBE) {
        /* RFC 6121 §4.3.2: answer only a subscriber, with each available resource. */
        sm_contact_t *c;
        if (u && u->sessions && (sm_load_contacts(sh, u), 1) &&
            (c = sm_contact(u, (str_t){ it->from, strcspn(it->from, "/") })) &&
            (c->sub & SUB_FROM)) {
            for (xmpp_sess_t *s = u->sessions; s; s = s->next)
                if (s->available)
                    sm_send_presence_to(sh, s, str_from_cstr(it->from));
        }
    } else if (it->kind == ITEM_SUB) {
        sm_sub_inbound(sh, u, it);
    } else {
        sm_deliver(sh, u, bare, res, it);
    }
    mbox_msg_t rel = { .ptr = it };
    if (shard_call(sh, it->origin, sm_item_release, &rel) < 0)
        PANIC("mailbox refused a release");
}

/* --- presence --- */

static str_t sm_full(const xmpp_sess_t *s)
{
    return str_from_cstr(s->c2s->jid);
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

/* Sends bytes (a presence from s) to every contact with subscription "from"
 * and to the user's other available resources. */
static void sm_broadcast(shard_t *sh, xmpp_sess_t *s, const char *type)
{
    sm_user_t *u = s->user;
    buf_t b;
    buf_init(&b);
    sm_load_contacts(sh, u);
    for (unsigned i = 0; i < u->n_contacts; i++) {
        sm_contact_t *c = &u->contacts[i];
        if (!(c->sub & SUB_FROM))
            continue;
        b.len = 0;
        if (type) {
            buf_printf(&b, "<presence type='%s'", type);
            xmpp_xml_write_attr(&b, "from", sm_full(s));
            xmpp_xml_write_attr(&b, "to", str_from_cstr(c->key));
            buf_append_str(&b, "/>");
            sm_send_item(sh, ITEM_STANZA, 'p', str_from_cstr(c->key), sm_full(s), &b, 0);
        } else {
            sm_send_presence_to(sh, s, str_from_cstr(c->key));
        }
    }
    for (xmpp_sess_t *o = u->sessions; o; o = o->next) {
        if (o == s || !o->available)
            continue;
        b.len = 0;
        if (type) {
            buf_printf(&b, "<presence type='%s'", type);
            xmpp_xml_write_attr(&b, "from", sm_full(s));
            buf_append_str(&b, "/>");
            c2s_write_buf(o->c2s, &b);
        } else {
            c2s_write_buf(o->c2s, &s->presence);
        }
    }
    buf_fini(&b);
}

static void sm_probe_contacts(shard_t *sh, xmpp_sess_t *s)
{
    sm_user_t *u = s->user;
    for (unsigned i = 0; i < u->n_contacts; i++) {
        sm_contact_t *c = &u->contacts[i];
        if (c->sub & SUB_TO)
            sm_send_item(sh, ITEM_PROBE, 'p', str_from_cstr(c->key), sm_full(s), NULL, 0);
        if (c->sub & SUB_PENDING_IN) {
            /* RFC 6121 §3.1.3: a request that waited while the user was away. */
            buf_t b;
            buf_init(&b);
            buf_append_str(&b, "<presence type='subscribe'");
            xmpp_xml_write_attr(&b, "from", str_from_cstr(c->key));
            buf_append_str(&b, "/>");
            c2s_write_buf(s->c2s, &b);
            buf_fini(&b);
        }
    }
}

static void sm_presence(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *el);

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
    sm_contact_t *c = sm_contact(u, contact);
    sub_state_t old = c ? c->sub : 0;
    sub_result_t r = sub_apply(old, ev);
    if (r.state != old) {
        if (!c)
            c = sm_contact_add(u, contact);
        c->sub = r.state;
        sm_store_contact(sh, u, contact, c);
        sm_push(u, c, false);
    }
    if (r.actions & SUB_ACT_SEND_PRESENCE)
        sm_presence_to_contact(sh, u, contact, true);
    if (r.actions & SUB_ACT_SEND_UNAVAILABLE)
        sm_presence_to_contact(sh, u, contact, false);
    return r.actions;
}

static void sm_sub_inbound(shard_t *sh, sm_user_t *u, sm_item_t *it)
{
    str_t from = { it->from, strcspn(it->from, "/") };
    uint8_t act = sm_sub_apply(sh, u, from, (sub_event_t)it->event);
    if (act & SUB_ACT_AUTO_SUBSCRIBED) {
        buf_t b;
        buf_init(&b);
        sm_send_item(sh, ITEM_SUB, 'p', from, str_from_cstr(u->key), NULL, SUB_IN_SUBSCRIBED);
        buf_fini(&b);
    }
    if (act & SUB_ACT_FORWARD) {
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "<presence type='%s'", sm_sub_type((sub_event_t)it->event));
        xmpp_xml_write_attr(&b, "from", from);
        xmpp_xml_write_attr(&b, "to", str_from_cstr(u->key));
        buf_append_str(&b, "/>");
        for (xmpp_sess_t *s = u->sessions; s; s = s->next)
            if (s->available)
                c2s_write_buf(s->c2s, &b);
        buf_fini(&b);
    }
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

/* --- presence from the client --- */

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
        buf_t b;
        buf_init(&b);
        sm_serialise(&b, el, sm_full(s), to);
        sm_send_item_el(sh, ITEM_STANZA, 'p', *to, sm_full(s), &b, 0, el);
        buf_fini(&b);
        return;
    }
    if (unavailable) {
        if (s->available) {
            s->available = false;
            sm_broadcast(sh, s, "unavailable");
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
    s->available = true;
    sm_broadcast(sh, s, NULL);
    if (initial)
        sm_probe_contacts(sh, s);
    if (initial && s->priority >= 0)
        sm_offline_flush(sh, s);
}

/* --- roster --- */

typedef struct {
    uint64_t conn;
    char *id;
    sm_contact_t item;
    bool removed;
} sm_roster_ack_t;

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
    xmpp_xml_write_attr(&b, "to", str_from_cstr(st->jid));
    if (ver && str_eq_cstr(*ver, cur)) {
        /* XEP-0237 §2.4: unchanged since the client's copy. */
        buf_append_str(&b, "/>");
    } else {
        buf_printf(&b, "><query xmlns='" NS_ROSTER "' ver='%s'>", cur);
        for (unsigned i = 0; i < u->n_contacts; i++)
            sm_write_item(&b, &u->contacts[i], false);
        buf_append_str(&b, "</query></iq>");
    }
    c2s_write_buf(st, &b);
    buf_fini(&b);
}

static void sm_roster_acked(shard_t *sh, void *arg, uint64_t id_unused, int rc)
{
    sm_roster_ack_t *a = arg;
    (void)id_unused;
    conn_t *c = conn_by_id(sh, a->conn);
    c2s_t *st = c ? conn_state(c) : NULL;
    if (st && st->state != C2S_CLOSED) {
        buf_t b;
        buf_init(&b);
        if (rc == 0) {
            buf_append_str(&b, "<iq type='result'");
            xmpp_xml_write_attr(&b, "id", str_from_cstr(a->id));
            buf_append_str(&b, "/>");
        } else {
            buf_append_str(&b, "<iq type='error'");
            xmpp_xml_write_attr(&b, "id", str_from_cstr(a->id));
            buf_append_str(&b, "><error type='wait'><internal-server-error xmlns='" NS_STANZAS
                               "'/></error></iq>");
        }
        c2s_write_buf(st, &b);
        buf_fini(&b);
    }
    free(a->id);
    free(a);
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
    sm_contact_t *c = sm_contact(u, ckey);
    bool remove = sattr && str_eq_cstr(*sattr, "remove");
    if (remove) {
        if (!c) {
            free(jid);
            xmpp_stanza_error(st, iq, "cancel", "item-not-found");
            return;
        }
        /* RFC 6121 §2.5.2: cancel both directions. */
        if (c->sub & (SUB_TO | SUB_PENDING_OUT))
            sm_send_item(sh, ITEM_SUB, 'p', ckey, str_from_cstr(u->key), NULL,
                         SUB_IN_UNSUBSCRIBE);
        if (c->sub & (SUB_FROM | SUB_PENDING_IN)) {
            sm_presence_to_contact(sh, u, ckey, false);
            sm_send_item(sh, ITEM_SUB, 'p', ckey, str_from_cstr(u->key), NULL,
                         SUB_IN_UNSUBSCRIBED);
        }
        sm_store_contact(sh, u, ckey, NULL);
        sm_push(u, c, true);
        sm_contact_free(c);
        *c = u->contacts[--u->n_contacts];
    } else {
        if (!c)
            c = sm_contact_add(u, ckey);
        free(c->name);
        c->name = name && name->len ? strndup(name->ptr, name->len) : NULL;
        for (unsigned g = 0; g < c->n_groups; g++)
            free(c->groups[g]);
        free(c->groups);
        c->groups = NULL;
        c->n_groups = 0;
        for (const xmpp_xml_el_t *g = item->children; g && c->n_groups < CONTACT_GROUPS_MAX;
             g = g->next) {
            if (!xmpp_xml_is(g, "group", NS_ROSTER) || !xmpp_xml_text(g).len)
                continue;
            c->groups = realloc(c->groups, sizeof(char *) * (c->n_groups + 1));
            c->groups[c->n_groups++] = strndup(xmpp_xml_text(g).ptr, xmpp_xml_text(g).len);
        }
        sm_store_contact(sh, u, ckey, c);
        sm_push(u, c, false);
    }
    free(jid);
    /* RFC 6121 §2.3.2 and DESIGN §5: the result once the change is durable. */
    sm_roster_ack_t *a = calloc(1, sizeof(*a));
    const str_t *id = xmpp_xml_attr(iq, "id");
    a->conn = conn_id(st->conn);
    a->id = id ? strndup(id->ptr, id->len) : strdup("");
    shard_on_durable(sh, sm_roster_acked, a, 0);
}

/* --- iq --- */

static void sm_iq_result(c2s_t *st, const xmpp_xml_el_t *iq, const char *payload)
{
    const str_t *id = xmpp_xml_attr(iq, "id");
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<iq type='result'");
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    xmpp_xml_write_attr(&b, "to", str_from_cstr(st->jid));
    const str_t *to = xmpp_xml_attr(iq, "to");
    if (to)
        xmpp_xml_write_attr(&b, "from", *to);
    if (payload)
        buf_printf(&b, ">%s</iq>", payload);
    else
        buf_append_str(&b, "/>");
    c2s_write_buf(st, &b);
    buf_fini(&b);
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
    bool to_server = to && strchr(u->key, '@') && str_eq_cstr(*to, strchr(u->key, '@') + 1);
    if (!to_self && !to_server) {
        /* Addressed to another entity: route (RFC 6121 §8.5). */
        buf_t b;
        buf_init(&b);
        sm_serialise(&b, iq, str_from_cstr(st->jid), NULL);
        sm_send_item_el(sh, ITEM_STANZA, 'i', *to, str_from_cstr(st->jid), &b, 0, iq);
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
        sm_iq_result(st, iq, NULL);
        return;
    }
    if (set && xmpp_xml_is(q, "session", NS_SESSION)) {
        sm_iq_result(st, iq, NULL);     /* RFC 3921 legacy step, a no-op */
        return;
    }
    if (get && xmpp_xml_is(q, "query", NS_DISCO_INFO) && to_server) {
        sm_iq_result(st, iq,
                     "<query xmlns='" NS_DISCO_INFO "'>"
                     "<identity category='server' type='im' name='presenced'/>"
                     "<feature var='" NS_DISCO_INFO "'/>"
                     "<feature var='" NS_PING "'/>"
                     "<feature var='" NS_ROSTERVER "'/>"
                     "</query>");
        return;
    }
    xmpp_stanza_error(st, iq, "cancel", "service-unavailable");
}

/* --- messages --- */

static void sm_message(shard_t *sh, c2s_t *st, const xmpp_xml_el_t *el)
{
    const str_t *to = xmpp_xml_attr(el, "to");
    if (!to) {
        /* RFC 6121 §8.5.1: no 'to' means the user's own bare JID. */
        buf_t b;
        buf_init(&b);
        str_t self = str_from_cstr(st->sess->user->key);
        sm_serialise(&b, el, str_from_cstr(st->jid), &self);
        sm_send_item_el(sh, ITEM_STANZA, 'm', self, str_from_cstr(st->jid), &b, 0, el);
        buf_fini(&b);
        return;
    }
    xmpp_jid_t *jid = malloc(sizeof(*jid));
    if (!jid || xmpp_jid_parse(to->ptr, to->len, jid) < 0) {
        free(jid);
        xmpp_stanza_error(st, el, "modify", "jid-malformed");
        return;
    }
    free(jid);
    buf_t b;
    buf_init(&b);
    sm_serialise(&b, el, str_from_cstr(st->jid), NULL);
    sm_send_item_el(sh, ITEM_STANZA, 'm', *to, str_from_cstr(st->jid), &b, 0, el);
    buf_fini(&b);
}

/* --- entry points from the connection --- */

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
        c2s_stream_error(old->c2s, XMPP_XML_COND_CONFLICT, NULL);
        xmpp_sm_unbind(old->c2s);
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
    s->resource = strndup(res, (size_t)rl);
    s->user = u;
    s->c2s = st;
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
    if (s->available) {
        /* RFC 6121 §4.5.2: unavailable on the user's behalf. */
        s->available = false;
        sm_broadcast(sh, s, "unavailable");
    }
    sm_user_t *u = s->user;
    for (xmpp_sess_t **p = &u->sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    buf_fini(&s->presence);
    free(s->resource);
    free(s);
    st->sess = NULL;
    metric_sub(shard_metrics(sh), xmpp_mid.sessions, 1);
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
