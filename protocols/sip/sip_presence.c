/*
 * sip_presence.c - SIP presence on the presentity's home shard: publications
 * (RFC 3903), subscriptions and their NOTIFYs (RFC 6665, RFC 3856) with PIDF
 * bodies (RFC 3863) that hold one tuple per source of the user's presence,
 * whichever protocol it came from (engine/presence.h).
 *
 * Watcher authorisation is the user's subscription record (the same one XMPP
 * keeps): a watcher the user lets see its presence ("from") is active, any
 * other is pending and its SUBSCRIBE is an inbound subscription request to
 * the user; when the user decides, the subscription becomes active or is
 * terminated (rejected).
 *
 * A NOTIFY is composed on the home shard and leaves through the shard that
 * owns the watcher's flow (the one its SUBSCRIBE arrived on), which adds the
 * Via, keeps the client transaction, retransmits over UDP (RFC 3261 §17.1.2:
 * Timer E from T1 doubling to T2, Timer F = 64*T1) and reports a failure
 * back, upon which the subscription ends (RFC 6665 §4.2.2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/log.h"
#include "engine/presence.h"
#include "engine/route.h"
#include "protocols/pidf/pidf.h"
#include "protocols/pidf/winfo.h"
#include "protocols/sip/sip_int.h"

#define SIP_T1_MS 500u
#define SIP_T2_MS 4000u
#define SIP_TIMER_F_MS (64u * SIP_T1_MS)
/* RFC 3856 §6.4: a presence subscription without Expires lasts an hour. */
#define SIP_PRESENCE_EXPIRES_DEFAULT 3600u
#define SIP_PUBS_MAX 16          /* publications per presentity */
#define SIP_SUBS_MAX 1000        /* watchers' subscriptions per presentity */

_Static_assert((int)PRES_ON_THE_PHONE == (int)PIDF_STATE_ON_THE_PHONE &&
                   (int)PRES_VACATION == (int)PIDF_STATE_VACATION &&
                   (int)PRES_UNAVAILABLE == (int)PIDF_STATE_UNAVAILABLE,
               "engine/presence.h and pidf.h number the states alike");

typedef struct sip_pub {
    struct sip_pub *next;
    struct sip_pres *pres;
    timer_ent_t timer;
    char id[17];                /* the source's id for its whole life */
    char etag[17];              /* changes with every refresh and modification */
    uint8_t state;              /* pres_state_t */
    char *note;
    int64_t timestamp_ms;
} sip_pub_t;

enum { SUB_PENDING, SUB_ACTIVE };

/* A watcher's Contact URI, kept as where its NOTIFYs go: a SIP URI with parameters fits. */
#define SIP_TARGET_MAX_BYTES 1024u

typedef struct sip_sub {
    struct sip_sub *next;
    struct sip_pres *pres;
    timer_ent_t timer;
    uint64_t id;
    uint8_t state;
    bool winfo;                 /* presence.winfo (RFC 3857): the user watching its watchers */
    uint32_t first_cseq;        /* of the SUBSCRIBE that created it */
    uint64_t winfo_version;
    uint32_t local_cseq, remote_cseq;
    uint64_t expires_ms;
    sip_origin_t origin;
    /* The dialog's strings live in text[], set once when the subscription is made. */
    const char *call_id, *local_tag, *remote_tag;
    const char *remote;         /* the watcher's From, name-addr without its tag */
    const char *watcher;        /* its key for the subscription record ("w@domain") */
    const char *target;         /* the watcher's Contact URI: where NOTIFYs go */
    const char *routes;         /* "Route: ...\r\n" lines (Record-Route), or NULL */
    const char *event_id;       /* ;id= of the Event, or NULL */
    /* What every NOTIFY repeats between its Via and its CSeq number, written once: Routes,
     * Max-Forwards, From, To, Call-ID and "CSeq: ". */
    str_t notify_dialog;
    char text[];
} sip_sub_t;

typedef struct sip_pres {
    struct sip_pres *next;
    shard_t *sh;
    sip_pub_t *pubs;
    sip_sub_t *subs;
    unsigned n_pubs, n_subs;
    uint64_t account_seen;      /* stor_deletes + 1 when the account was last found; 0 never */
    char key[];                 /* "user@domain" */
} sip_pres_t;

/* --- presentities --- */

static sip_pres_t *sip_pres_find(sip_shard_t *ss, const char *key, bool create)
{
    sip_pres_t *found = sip_table_find(&ss->pres, key);
    if (found || !create)
        return found;
    sip_pres_t *p = calloc(1, sizeof(*p) + strlen(key) + 1);
    if (!p)
        PANIC("out of memory adding a presentity");
    strcpy(p->key, key);
    p->sh = ss->sh;
    sip_table_add(&ss->pres, p);
    return p;
}

static void sip_pres_forget_if_idle(sip_shard_t *ss, sip_pres_t *p)
{
    if (!p || p->pubs || p->subs)
        return;
    sip_table_del(&ss->pres, p);
    free(p);
}

static void sip_pub_free(sip_pub_t *pub)
{
    free(pub->note);
    free(pub);
}

static void sip_sub_free(sip_sub_t *s)
{
    free(s);
}

/* The strings of a new subscription's dialog, before they are laid out in it. */
typedef struct {
    str_t local_tag, remote_tag, call_id, remote, watcher, target, routes, event_id;
} sip_sub_text_t;

/* Copies v and a NUL at *at; NULL when v is absent (ptr NULL). */
static const char *sip_sub_put(char **at, str_t v)
{
    if (!v.ptr)
        return NULL;
    char *d = *at;
    memcpy(d, v.ptr, v.len);
    d[v.len] = 0;
    *at = d + v.len + 1;
    return d;
}

/* A subscription with its strings in one allocation (zeroed otherwise). */
static sip_sub_t *sip_sub_new(const char *key, const sip_sub_text_t *t)
{
    static const char mf[] = "Max-Forwards: 70\r\nFrom: <sip:", tag[] = ">;tag=",
                      to[] = "\r\nTo: ", rtag[] = ";tag=", cid[] = "\r\nCall-ID: ",
                      cseq[] = "\r\nCSeq: ";
    size_t dialog = t->routes.len + strlen(mf) + strlen(key) + strlen(tag) + t->local_tag.len +
                    strlen(to) + t->remote.len + strlen(rtag) + t->remote_tag.len +
                    strlen(cid) + t->call_id.len + strlen(cseq);
    size_t strings = t->local_tag.len + t->remote_tag.len + t->call_id.len + t->remote.len +
                     t->watcher.len + t->target.len + t->routes.len + t->event_id.len + 8;
    sip_sub_t *s = calloc(1, sizeof(*s) + strings + dialog);
    if (!s)
        PANIC("out of memory adding a subscription");
    char *at = s->text;
    s->local_tag = sip_sub_put(&at, t->local_tag);
    s->remote_tag = sip_sub_put(&at, t->remote_tag);
    s->call_id = sip_sub_put(&at, t->call_id);
    s->remote = sip_sub_put(&at, t->remote);
    s->watcher = sip_sub_put(&at, t->watcher);
    s->target = sip_sub_put(&at, t->target);
    s->routes = sip_sub_put(&at, t->routes);
    s->event_id = sip_sub_put(&at, t->event_id);
    char *d = at;
#define SIP_SUB_ADD(p, n) (memcpy(at, (p), (n)), at += (n))
    SIP_SUB_ADD(t->routes.ptr, t->routes.len);
    SIP_SUB_ADD(mf, strlen(mf));
    SIP_SUB_ADD(key, strlen(key));
    SIP_SUB_ADD(tag, strlen(tag));
    SIP_SUB_ADD(t->local_tag.ptr, t->local_tag.len);
    SIP_SUB_ADD(to, strlen(to));
    SIP_SUB_ADD(t->remote.ptr, t->remote.len);
    SIP_SUB_ADD(rtag, strlen(rtag));
    SIP_SUB_ADD(t->remote_tag.ptr, t->remote_tag.len);
    SIP_SUB_ADD(cid, strlen(cid));
    SIP_SUB_ADD(t->call_id.ptr, t->call_id.len);
    SIP_SUB_ADD(cseq, strlen(cseq));
#undef SIP_SUB_ADD
    ASSERT((size_t)(at - s->text) <= strings + dialog);
    s->notify_dialog = (str_t){ d, (size_t)(at - d) };
    return s;
}

/* --- the sources SIP holds --- */

static void sip_pres_list(shard_t *sh, str_t user, pres_each_fn each, void *ctx)
{
    char key[600];
    if (user.len >= sizeof(key))
        return;
    memcpy(key, user.ptr, user.len);
    key[user.len] = 0;
    sip_gateway_sources(sh, key, each, ctx);
    sip_pres_t *p = sip_pres_find(sip_of(sh), key, false);
    if (!p)
        return;
    for (sip_pub_t *pub = p->pubs; pub; pub = pub->next) {
        if (pub->state == PRES_UNAVAILABLE)
            continue;
        pres_source_t src = {
            .provider = PRES_PROVIDER_SIP,
            .id = str_from_cstr(pub->id),
            .state = (pres_state_t)pub->state,
            .priority = 0,
            .timestamp_ms = pub->timestamp_ms,
            .note = pub->note ? str_from_cstr(pub->note) : (str_t){ NULL, 0 },
        };
        each(ctx, &src);
    }
}

/* --- requests: composed on the home shard, sent by the flow's shard --- */

/* A client transaction. The home shard composes the request, Via included, straight into
 * it; the flow's shard keeps it until the response (or Timer F). */
typedef struct sip_ctxn {
    struct sip_ctxn *next;
    timer_ent_t timer;
    shard_t *sh;
    sip_origin_t origin;
    uint16_t home;
    uint8_t kind;
    uint64_t sub_id;            /* NOTIFY: the subscription; SUBSCRIBE: the line */
    char *from, *id;            /* MESSAGE: the sender (a JID) and its message id */
    uint64_t deadline_ms;
    uint32_t interval_ms;
    char *user;
    char branch[SIP_BRANCH_MAX];
    size_t len;
    char bytes[];
} sip_ctxn_t;

static void sip_ctxn_free(sip_ctxn_t *c);

static void sip_ctxn_unlink(sip_shard_t *ss, sip_ctxn_t *c)
{
    sip_table_del(&ss->ctxns, c);
    sip_unanswered_changed(ss);
    timer_cancel(shard_timers(ss->sh), &c->timer);
    sip_ctxn_free(c);
}

typedef struct {
    uint8_t kind;
    char *user;
    uint64_t sub_id;
    char *from, *id;
    unsigned status;
} sip_failure_t;

static void sip_failure_free(sip_failure_t *f)
{
    free(f->user);
    free(f->from);
    free(f->id);
    free(f);
}

static void sip_sub_end(shard_t *sh, sip_sub_t *s, const char *reason);

/* Home shard: the watcher refused or never answered a NOTIFY. */
static void sip_notify_failed(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sip_failure_t *f = msg->ptr;
    if (f->kind == OUT_MESSAGE) {
        im_msg_t im = { .to = str_from_cstr(f->user), .from = str_from_cstr(f->from),
                        .id = str_from_cstr(f->id ? f->id : "") };
        im_failed(sh, &im, f->status);
        sip_failure_free(f);
        return;
    }
    sip_pres_t *p = sip_pres_find(sip_of(sh), f->user, false);
    for (sip_sub_t *s = p ? p->subs : NULL; s; s = s->next) {
        if (s->id == f->sub_id) {
            LOG_DEBUG("subscription to %s ended: NOTIFY got %u", f->user, f->status);
            sip_sub_end(sh, s, NULL);
            break;
        }
    }
    sip_failure_free(f);
}

static void sip_ctxn_fail(sip_ctxn_t *c, unsigned status)
{
    if (c->kind == OUT_SUBSCRIBE) {
        sip_gateway_answered(c->sh, c->home, c->user, c->sub_id, NULL);     /* timed out */
        return;
    }
    sip_failure_t *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->kind = c->kind;
    f->user = strdup(c->user);
    f->sub_id = c->sub_id;
    f->from = c->from ? strdup(c->from) : NULL;
    f->id = c->id ? strdup(c->id) : NULL;
    f->status = status;
    mbox_msg_t m = { .ptr = f };
    if (shard_call(c->sh, c->home, sip_notify_failed, &m) < 0)
        sip_failure_free(f);
}

static void sip_ctxn_timer(timer_wheel_t *w, timer_ent_t *t)
{
    sip_ctxn_t *c = container_of(t, sip_ctxn_t, timer);
    uint64_t now = w->now_ms;
    if (now >= c->deadline_ms) {
        sip_ctxn_fail(c, 408);          /* Timer F */
        sip_ctxn_unlink(sip_of(c->sh), c);
        return;
    }
    if (!c->origin.stream) {
        sip_send(c->sh, &c->origin, c->bytes, c->len);
        metric_inc(shard_metrics(c->sh), sip_mid.notify_retransmissions);
        c->interval_ms = c->interval_ms * 2 < SIP_T2_MS ? c->interval_ms * 2 : SIP_T2_MS;
    }
    uint64_t next = c->origin.stream ? c->deadline_ms : now + c->interval_ms;
    timer_arm(w, t, next < c->deadline_ms ? next : c->deadline_ms);
}

/* Appends our Via for a request over o's flow. Its branch names the flow's shard, which
 * keeps the client transaction (a response the kernel hands to another shard's socket finds
 * its way there, sip_receive); this shard's random prefix and counter make it unique. The
 * branch is also copied to branch. */
static void sip_via_append(shard_t *sh, buf_t *b, const sip_origin_t *o,
                           char branch[SIP_BRANCH_MAX])
{
    sip_shard_t *ss = sip_of(sh);
    buf_append_str(b, !o->stream ? "Via: SIP/2.0/UDP "
                      : o->tls   ? "Via: SIP/2.0/TLS "
                                 : "Via: SIP/2.0/TCP ");
    buf_append_str(b, sip_cfg.via_host);
    buf_append_str(b, ":");
    buf_append_uint(b, o->tls ? sip_cfg.tls_port : sip_cfg.port);
    buf_append_str(b, ";branch=");
    size_t at = b->len;
    sip_branch_append(b, o->shard, ss->branch_prefix, ++ss->branch_seq);
    size_t n = b->len - at;
    ASSERT(n < SIP_BRANCH_MAX);
    memcpy(branch, b->data + at, n);
    branch[n] = 0;
    buf_append_str(b, ";rport\r\n");
}

/* The flow's shard: the transaction starts; the request goes out. */
static void sip_ctxn_start(shard_t *sh, sip_ctxn_t *c)
{
    DEBUG_ASSERT(c->origin.shard == shard_id(sh));
    c->sh = sh;
    c->interval_ms = SIP_T1_MS;
    c->deadline_ms = shard_now_ms(sh) + SIP_TIMER_F_MS;
    timer_init(&c->timer, sip_ctxn_timer);
    timer_arm(shard_timers(sh), &c->timer,
              c->origin.stream ? c->deadline_ms : shard_now_ms(sh) + c->interval_ms);
    sip_table_add(&sip_of(sh)->ctxns, c);
    sip_unanswered_changed(sip_of(sh));
    sip_send(sh, &c->origin, c->bytes, c->len);
    if (c->kind == OUT_NOTIFY)
        metric_inc(shard_metrics(sh), sip_mid.notifies);
}

static void sip_ctxn_arrived(void *ctx, const mbox_msg_t *msg)
{
    sip_ctxn_start(ctx, msg->ptr);
}

static void sip_ctxn_free(sip_ctxn_t *c)
{
    free(c->user);
    free(c->from);
    free(c->id);
    free(c);
}

/* Home shard: a client transaction for the request head + body (head with its Via and
 * branch from sip_via_append), started here when this shard has the flow, else on the
 * flow's shard. Takes user, from and id (malloc'd; from and id may be NULL). Returns 0, or
 * -EAGAIN when the flow's shard's mailbox is full (the request is dropped). */
static int sip_ctxn_send(shard_t *sh, const sip_origin_t *o, sip_out_kind_t kind, uint64_t ref,
                         char *user, char *from, char *id, const char *branch, str_t head,
                         str_t body)
{
    sip_ctxn_t *c = malloc(sizeof(*c) + head.len + body.len);
    if (!c)
        PANIC("out of memory sending a SIP request");
    memset(c, 0, sizeof(*c));
    c->origin = *o;
    c->home = (uint16_t)shard_id(sh);
    c->kind = (uint8_t)kind;
    c->sub_id = ref;
    c->user = user;
    c->from = from;
    c->id = id;
    strcpy(c->branch, branch);
    memcpy(c->bytes, head.ptr, head.len);
    if (body.len)
        memcpy(c->bytes + head.len, body.ptr, body.len);
    c->len = head.len + body.len;
    if (o->shard == shard_id(sh)) {
        sip_ctxn_start(sh, c);
        return 0;
    }
    mbox_msg_t m = { .ptr = c };
    if (shard_call(sh, o->shard, sip_ctxn_arrived, &m) < 0) {
        sip_ctxn_free(c);
        return -EAGAIN;
    }
    return 0;
}

/* A request composed elsewhere without its Via: ours goes after the request line. */
static int sip_request_send_as(shard_t *sh, const sip_origin_t *via, sip_out_kind_t kind,
                               uint64_t ref, char *user, char *from, char *id,
                               const buf_t *request)
{
    const char *data = (const char *)request->data;
    const char *eol = memchr(data, '\n', request->len);
    size_t first = eol ? (size_t)(eol - data) + 1 : 0;
    buf_t *b = &sip_of(sh)->scratch;
    b->len = 0;
    buf_append(b, data, first);
    char branch[SIP_BRANCH_MAX];
    sip_via_append(sh, b, via, branch);
    buf_append(b, data + first, request->len - first);
    return sip_ctxn_send(sh, via, kind, ref, user, from, id, branch,
                         (str_t){ (const char *)b->data, b->len }, (str_t){ NULL, 0 });
}

void sip_request_send(shard_t *sh, const sip_origin_t *via, sip_out_kind_t kind,
                      const char *user, uint64_t ref, const buf_t *request)
{
    if (sip_request_send_as(sh, via, kind, ref, strdup(user), NULL, NULL, request) < 0)
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: a SIP request was dropped");
}

/* RFC 3261 §17.1.3: a response is the transaction's when the branch of its top Via and
 * the method of its CSeq are the request's. Only a response to our SUBSCRIBE is read
 * whole: the gateway takes its To tag, Expires and Record-Route. */
bool sip_client_response(shard_t *sh, const sip_response_peek_t *pk, const char *data,
                         size_t len, sip_msg_transport_t tp)
{
    static const sip_method_t method_of[] = {
        [OUT_NOTIFY] = SIP_METHOD_NOTIFY,
        [OUT_MESSAGE] = SIP_METHOD_MESSAGE,
        [OUT_SUBSCRIBE] = SIP_METHOD_SUBSCRIBE,
    };
    sip_shard_t *ss = sip_of(sh);
    char branch[64];
    if (pk->via.branch.len >= sizeof(branch))
        return false;
    memcpy(branch, pk->via.branch.ptr, pk->via.branch.len);
    branch[pk->via.branch.len] = 0;
    sip_ctxn_t *c = sip_table_find(&ss->ctxns, branch);
    if (!c || pk->cseq.method != method_of[c->kind])
        return false;
    if (pk->status < 200)
        return true;        /* provisional: keep waiting (Timer F still runs) */
    if (c->kind == OUT_SUBSCRIBE) {
        sip_msg_t *m = &ss->msg;
        if (sip_msg_parse(m, data, len, tp, NULL) < 0)
            return false;   /* dropped (§18.3); Timer F ends the transaction */
        sip_gateway_answered(sh, c->home, c->user, c->sub_id, m);
    } else if (pk->status >= 300) {
        sip_ctxn_fail(c, pk->status);
    }
    sip_ctxn_unlink(ss, c);
    return true;
}

typedef struct {
    pidf_source_t src[PIDF_TUPLES_MAX];
    size_t n;
} sip_src_list_t;

static void sip_collect(void *ctx, const pres_source_t *s)
{
    sip_src_list_t *l = ctx;
    if (l->n == PIDF_TUPLES_MAX)
        return;
    l->src[l->n++] = (pidf_source_t){
        .id = s->id,
        .state = (pidf_state_t)s->state,
        .priority = s->priority,
        .timestamp_ms = s->timestamp_ms == INT64_MIN ? PIDF_TIME_NONE : s->timestamp_ms,
        .note = s->note,
        .phone_line = s->phone_line,
    };
}

/* RFC 3858: every watcher of the user's presence, in full each time (a
 * client that missed one NOTIFY is never out of step). */
static void sip_winfo_body(sip_pres_t *p, sip_sub_t *s, buf_t *out)
{
    unsigned n = 0;
    for (sip_sub_t *w = p->subs; w; w = w->next)
        n += !w->winfo;
    winfo_watcher_t *ws = calloc(n ? n : 1, sizeof(*ws));
    char (*ids)[24] = calloc(n ? n : 1, sizeof(*ids));
    buf_t uris;
    buf_init(&uris);
    size_t *offs = calloc(n ? n : 1, sizeof(*offs));
    if (!ws || !ids || !offs)
        PANIC("out of memory listing watchers");
    unsigned i = 0;
    for (sip_sub_t *w = p->subs; w; w = w->next) {
        if (w->winfo)
            continue;
        offs[i] = uris.len;
        buf_printf(&uris, "sip:%s", w->watcher);
        snprintf(ids[i], sizeof(ids[i]), "w%llu", (unsigned long long)w->id);
        ws[i].id = str_from_cstr(ids[i]);
        ws[i].status = w->state == SUB_ACTIVE ? WINFO_STATUS_ACTIVE : WINFO_STATUS_PENDING;
        ws[i].event = w->state == SUB_ACTIVE ? WINFO_EVENT_APPROVED : WINFO_EVENT_SUBSCRIBE;
        ws[i].expiration_s = WINFO_SECONDS_NONE;
        ws[i].duration_subscribed_s = WINFO_SECONDS_NONE;
        i++;
    }
    for (unsigned k = 0; k < n; k++) {
        size_t end = k + 1 < n ? offs[k + 1] : uris.len;
        ws[k].uri = (str_t){ (const char *)uris.data + offs[k], end - offs[k] };
    }
    char resource[640];
    snprintf(resource, sizeof(resource), "sip:%s", p->key);
    winfo_list_t list = { .resource = str_from_cstr(resource), .package = STR_LIT("presence"),
                          .watchers = ws, .watcher_count = n };
    winfo_doc_t doc = { .version = s->winfo_version++, .state = WINFO_STATE_FULL,
                        .lists = &list, .list_count = 1 };
    if (winfo_encode(out, &doc) < 0)
        out->len = 0;
    buf_fini(&uris);
    free(offs);
    free(ids);
    free(ws);
}

/* The presentity's PIDF document: one tuple per source (DESIGN.md §3). */
static void sip_pidf_body(shard_t *sh, const sip_pres_t *p, buf_t *body)
{
    sip_src_list_t l = { .n = 0 };
    pres_sources(sh, str_from_cstr(p->key), sip_collect, &l);
    char entity[640];
    snprintf(entity, sizeof(entity), "sip:%s", p->key);
    if (pidf_encode_presence(body, str_from_cstr(entity), l.src, l.n, false) < 0)
        body->len = 0;
}

/* A NOTIFY in s's dialog. pidf: the presentity's document when the caller
 * made it already (one per change, whatever the number of watchers), or NULL.
 * Composed with appends, not printf: one is written for every watcher of every change. */
static void sip_notify_pidf(shard_t *sh, sip_sub_t *s, const char *terminated_reason,
                            const buf_t *pidf)
{
    sip_pres_t *p = s->pres;
    uint64_t now = shard_now_ms(sh);
    buf_t own;
    buf_init(&own);
    const buf_t *body = &own;
    if (s->winfo && !terminated_reason) {
        sip_winfo_body(p, s, &own);
    } else if (s->state == SUB_ACTIVE && !terminated_reason) {
        if (pidf)
            body = pidf;
        else
            sip_pidf_body(sh, p, &own);
    }
    buf_t *b = &sip_of(sh)->scratch;
    b->len = 0;
    char branch[SIP_BRANCH_MAX];
    buf_append_str(b, "NOTIFY ");
    buf_append_str(b, s->target);
    buf_append_str(b, " SIP/2.0\r\n");
    sip_via_append(sh, b, &s->origin, branch);
    buf_append(b, s->notify_dialog.ptr, s->notify_dialog.len);
    buf_append_uint(b, ++s->local_cseq);
    buf_append_str(b, " NOTIFY\r\nContact: <sip:");
    const char *at = strchr(p->key, '@');
    buf_append(b, p->key, (size_t)(at - p->key));
    buf_append_str(b, "@");
    buf_append_str(b, sip_cfg.via_host);
    buf_append_str(b, ":");
    buf_append_uint(b, s->origin.tls ? sip_cfg.tls_port : sip_cfg.port);
    buf_append_str(b, !s->origin.stream ? ">\r\n"
                      : s->origin.tls   ? ";transport=tls>\r\n"
                                        : ";transport=tcp>\r\n");
    buf_append_str(b, s->winfo ? "Event: presence.winfo" : "Event: presence");
    if (s->event_id) {
        buf_append_str(b, ";id=");
        buf_append_str(b, s->event_id);
    }
    if (terminated_reason) {
        buf_append_str(b, "\r\nSubscription-State: terminated;reason=");
        buf_append_str(b, terminated_reason);
    } else {
        unsigned left = s->expires_ms > now ? (unsigned)((s->expires_ms - now + 999) / 1000) : 0;
        buf_append_str(b, s->state == SUB_ACTIVE ? "\r\nSubscription-State: active;expires="
                                                 : "\r\nSubscription-State: pending;expires=");
        buf_append_uint(b, left);
    }
    if (body->len)
        buf_append_str(b, s->winfo ? "\r\nContent-Type: " WINFO_CONTENT_TYPE
                                   : "\r\nContent-Type: " PIDF_CONTENT_TYPE);
    buf_append_str(b, "\r\nContent-Length: ");
    buf_append_uint(b, body->len);
    buf_append_str(b, "\r\n\r\n");
    if (sip_ctxn_send(sh, &s->origin, OUT_NOTIFY, s->id, strdup(p->key), NULL, NULL, branch,
                      (str_t){ (const char *)b->data, b->len },
                      (str_t){ (const char *)body->data, body->len }) < 0)
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: a NOTIFY was dropped");
    buf_fini(&own);
}

static void sip_notify(shard_t *sh, sip_sub_t *s, const char *terminated_reason)
{
    sip_notify_pidf(sh, s, terminated_reason, NULL);
}

/* --- subscriptions --- */

/* The Expires of a SUBSCRIBE or PUBLISH, negotiated: an hour when absent
 * (RFC 3856 §6.4, RFC 3903 §4), 423 with Min-Expires below the floor, cut to
 * the ceiling. -1 when out holds the refusal. */
static int sip_expires_of(const sip_msg_t *m, uint32_t *expires, buf_t *out)
{
    *expires = SIP_PRESENCE_EXPIRES_DEFAULT;
    int er = sip_msg_expires(m, SIP_HDR_EXPIRES, expires);
    if (er < 0 && er != -ENOENT) {
        sip_write(m, 400, "Bad Expires", NULL, out);
        return -1;
    }
    if (*expires && *expires < sip_cfg.min_expires_s) {
        char h[64];
        snprintf(h, sizeof(h), "Min-Expires: %u\r\n", sip_cfg.min_expires_s);
        sip_write(m, 423, NULL, h, out);
        return -1;
    }
    if (*expires > sip_cfg.max_expires_s)
        *expires = sip_cfg.max_expires_s;
    return 0;
}

/* The watchers of p changed: its own winfo subscriptions hear of it. */
static void sip_winfo_changed(shard_t *sh, sip_pres_t *p)
{
    for (sip_sub_t *s = p ? p->subs : NULL; s; s = s->next)
        if (s->winfo)
            sip_notify(sh, s, NULL);
}

static void sip_sub_unlink(shard_t *sh, sip_sub_t *s)
{
    sip_pres_t *p = s->pres;
    for (sip_sub_t **q = &p->subs; *q; q = &(*q)->next) {
        if (*q == s) {
            *q = s->next;
            break;
        }
    }
    p->n_subs--;
    timer_cancel(shard_timers(sh), &s->timer);
    metric_sub(shard_metrics(sh), sip_mid.subscriptions, 1);
    bool watcher = !s->winfo;
    sip_sub_free(s);
    if (watcher)
        sip_winfo_changed(sh, p);
    sip_pres_forget_if_idle(sip_of(sh), p);
}

/* reason NULL: end without telling the watcher (it refused our NOTIFY). */
static void sip_sub_end(shard_t *sh, sip_sub_t *s, const char *reason)
{
    if (reason)
        sip_notify(sh, s, reason);
    sip_sub_unlink(sh, s);
}

static void sip_sub_expired(timer_wheel_t *w, timer_ent_t *t)
{
    (void)w;
    sip_sub_t *s = container_of(t, sip_sub_t, timer);
    sip_sub_end(s->pres->sh, s, "timeout");
}

static sip_sub_t *sip_sub_by_dialog(sip_pres_t *p, const sip_msg_t *m)
{
    for (sip_sub_t *s = p ? p->subs : NULL; s; s = s->next)
        if (str_eq_cstr(m->call_id, s->call_id) && str_eq_cstr(m->to.tag, s->local_tag) &&
            str_eq_cstr(m->from.tag, s->remote_tag))
            return s;
    return NULL;
}

/* The watcher's key for the subscription record: "user@host" of its From. */
static int sip_watcher_key(const sip_msg_t *m, char *out, size_t cap)
{
    if (sip_aor_key(m->from.uri, out, cap) == 0)
        return 0;
    sip_uri_t u;
    if (sip_uri_parse(m->from.uri, &u) < 0 || !u.user.len || !u.host.len ||
        u.user.len + 1 + u.host.len + 1 > cap)
        return -EINVAL;
    snprintf(out, cap, "%.*s@%.*s", (int)u.user.len, u.user.ptr, (int)u.host.len, u.host.ptr);
    for (char *c = out; *c; c++)
        if (*c >= 'A' && *c <= 'Z' && c > strchr(out, '@'))
            *c = (char)(*c - 'A' + 'a');       /* hosts compare case-insensitively */
    return 0;
}

static bool sip_watcher_allowed(shard_t *sh, const char *user, const char *watcher)
{
    if (!strcmp(user, watcher))
        return true;    /* one's own presence */
    return (pres_sub_get(sh, str_from_cstr(user), str_from_cstr(watcher)) & SUB_FROM) != 0;
}

static void sip_expires_header(buf_t *h, unsigned s)
{
    buf_printf(h, "Expires: %u\r\n", s);
}

uint64_t sip_subscribe(shard_t *sh, const sip_msg_t *m, const char *user, const sip_origin_t *o,
                       buf_t *out)
{
    sip_shard_t *ss = sip_of(sh);
    const sip_hdr_t *ev = sip_msg_get(m, SIP_HDR_EVENT);
    sip_event_t event;
    bool winfo = ev && sip_event_parse(ev->value, &event) == 0 &&
                 str_eq_cstr(event.type, "presence.winfo");
    if (!winfo && (!ev || sip_event_parse(ev->value, &event) < 0 ||
                   !str_eq_cstr(event.type, "presence"))) {
        /* RFC 6665 §8.2.2 / §7.2.2: 489 names what we do serve. */
        sip_write(m, 489, NULL, "Allow-Events: presence, presence.winfo\r\n", out);
        return 0;
    }
    if (!sip_account_exists(sh, user)) {
        sip_write(m, 404, NULL, NULL, out);
        return 0;
    }
    uint32_t expires;
    if (sip_expires_of(m, &expires, out) < 0)
        return 0;
    sip_pres_t *p = sip_pres_find(ss, user, false);
    sip_sub_t *s = NULL;
    uint64_t now = shard_now_ms(sh);
    if (m->to.tag.len) {
        /* Inside a dialog: a refresh or an unsubscribe (RFC 6665 §4.1.2.2). */
        s = sip_sub_by_dialog(p, m);
        if (!s) {
            sip_write(m, 481, NULL, NULL, out);
            return 0;
        }
        if (m->cseq.seq <= s->remote_cseq) {
            sip_write(m, 500, "Server Internal Error (CSeq out of order)", "Retry-After: 1\r\n",
                      out);
            return 0;
        }
        s->remote_cseq = m->cseq.seq;
        s->origin = *o;     /* the flow may have changed (a new TCP connection) */
    } else {
        if (!p)
            p = sip_pres_find(ss, user, true);
        if (p->n_subs >= SIP_SUBS_MAX) {
            sip_write(m, 503, "Service Unavailable (too many watchers)", "Retry-After: 60\r\n",
                      out);
            sip_pres_forget_if_idle(ss, p);
            return 0;
        }
        char watcher[600];
        const sip_hdr_t *contact = sip_msg_get(m, SIP_HDR_CONTACT);
        sip_addr_t ca;
        str_t cv;
        sip_hdr_iter_t it;
        sip_hdr_iter_init(&it, m, SIP_HDR_CONTACT);
        if (!contact || sip_hdr_iter_next(&it, &cv) <= 0 || sip_addr_parse(cv, &ca) < 0 ||
            ca.star || ca.uri.len >= SIP_TARGET_MAX_BYTES ||
            sip_watcher_key(m, watcher, sizeof(watcher)) < 0 || !m->from.tag.len) {
            sip_write(m, 400, "Bad Contact or From", NULL, out);
            sip_pres_forget_if_idle(ss, p);
            return 0;
        }
        char tag[17];
        sip_tag(tag);
        buf_t remote, routes;
        buf_init(&remote);
        buf_init(&routes);
        if (m->from.display.len) {
            buf_append(&remote, m->from.display.ptr, m->from.display.len);
            buf_append_str(&remote, " ");
        }
        buf_append_str(&remote, "<");
        buf_append(&remote, m->from.uri.ptr, m->from.uri.len);
        buf_append_str(&remote, ">");
        sip_hdr_iter_init(&it, m, SIP_HDR_RECORD_ROUTE);
        str_t rr;
        while (sip_hdr_iter_next(&it, &rr) > 0) {
            buf_append_str(&routes, "Route: ");
            buf_append(&routes, rr.ptr, rr.len);
            buf_append_str(&routes, "\r\n");
        }
        sip_sub_text_t t = {
            .local_tag = str_from_cstr(tag),
            .remote_tag = m->from.tag,
            .call_id = m->call_id,
            .remote = { (const char *)remote.data, remote.len },
            .watcher = str_from_cstr(watcher),
            .target = ca.uri,
            .routes = routes.len ? (str_t){ (const char *)routes.data, routes.len }
                                 : (str_t){ NULL, 0 },
            .event_id = event.id.len ? event.id : (str_t){ NULL, 0 },
        };
        s = sip_sub_new(p->key, &t);
        buf_fini(&remote);
        buf_fini(&routes);
        s->pres = p;
        s->id = ++ss->next_id;
        s->remote_cseq = m->cseq.seq;
        s->first_cseq = m->cseq.seq;
        s->origin = *o;
        timer_init(&s->timer, sip_sub_expired);
        s->next = p->subs;
        p->subs = s;
        p->n_subs++;
        metric_inc(shard_metrics(sh), sip_mid.subscriptions);
        if (winfo) {
            /* RFC 3857 §5.1: a user's watchers are the user's business. */
            if (strcmp(watcher, user)) {
                s->winfo = true;        /* not a watcher: nobody to tell */
                sip_sub_unlink(sh, s);
                sip_write(m, 403, "Forbidden (only the user sees its watchers)", NULL, out);
                return 0;
            }
            s->winfo = true;
            s->state = SUB_ACTIVE;
        } else {
            s->state = sip_watcher_allowed(sh, user, watcher) ? SUB_ACTIVE : SUB_PENDING;
            if (s->state == SUB_PENDING)
                pres_sub_request(sh, str_from_cstr(user), str_from_cstr(watcher));
        }
    }
    s->expires_ms = now + expires * 1000ull;
    timer_arm(shard_timers(sh), &s->timer, s->expires_ms);
    buf_t h;
    buf_init(&h);
    sip_expires_header(&h, expires);
    const char *at = strchr(user, '@');
    buf_printf(&h, "Contact: <sip:%.*s@%s:%u%s>\r\n", (int)(at - user), user, sip_cfg.via_host,
               o->tls ? sip_cfg.tls_port : sip_cfg.port,
               !o->stream ? "" : o->tls ? ";transport=tls" : ";transport=tcp");
    buf_append(&h, "", 1);
    /* RFC 6665 §4.2.1.1: 200 accepted; 202 is deprecated but what pending
     * watchers of RFC 3265 vintage expect. */
    sip_write_tagged(m, s->state == SUB_ACTIVE ? 200 : 202, NULL, str_from_cstr(s->local_tag),
                     (const char *)h.data, (str_t){ NULL, 0 }, out);
    buf_fini(&h);
    return s->id;
}

void sip_subscribe_done(shard_t *sh, const char *user, uint64_t sub_id)
{
    sip_pres_t *p = sip_pres_find(sip_of(sh), user, false);
    for (sip_sub_t *s = p ? p->subs : NULL; s; s = s->next) {
        if (s->id != sub_id)
            continue;
        bool watcher = !s->winfo;
        if (s->expires_ms <= shard_now_ms(sh)) {
            sip_sub_end(sh, s, "timeout");      /* Expires: 0 */
        } else {
            sip_notify(sh, s, NULL);
            if (watcher && s->remote_cseq == s->first_cseq)
                sip_winfo_changed(sh, p);       /* a new watcher */
        }
        return;
    }
}

/* --- publications (RFC 3903) --- */

static void sip_pub_unlink(shard_t *sh, sip_pub_t *pub)
{
    sip_pres_t *p = pub->pres;
    for (sip_pub_t **q = &p->pubs; *q; q = &(*q)->next) {
        if (*q == pub) {
            *q = pub->next;
            break;
        }
    }
    p->n_pubs--;
    timer_cancel(shard_timers(sh), &pub->timer);
    metric_sub(shard_metrics(sh), sip_mid.publications, 1);
    sip_pub_free(pub);
}

static void sip_pub_expired(timer_wheel_t *w, timer_ent_t *t)
{
    (void)w;
    sip_pub_t *pub = container_of(t, sip_pub_t, timer);
    sip_pres_t *p = pub->pres;
    shard_t *sh = p->sh;
    char key[600];
    snprintf(key, sizeof(key), "%s", p->key);
    sip_pub_unlink(sh, pub);
    pres_changed(sh, str_from_cstr(key), PRES_PROVIDER_SIP);
    sip_pres_forget_if_idle(sip_of(sh), sip_pres_find(sip_of(sh), key, false));
}

static int64_t sip_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether user has an account, read from the store only when no account has been deleted
 * since it was last found: a presentity that publishes at a rate costs no read each time. */
static bool sip_pres_account_exists(shard_t *sh, sip_pres_t *p, const char *user)
{
    uint64_t deletes = stor_deletes(shard_storage(sh), STOR_CF_ACCOUNTS);
    if (p && p->account_seen == deletes + 1)
        return true;
    if (!sip_account_exists(sh, user))
        return false;
    if (p)
        p->account_seen = deletes + 1;
    return true;
}

void sip_publish(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out)
{
    sip_shard_t *ss = sip_of(sh);
    const sip_hdr_t *ev = sip_msg_get(m, SIP_HDR_EVENT);
    sip_event_t event;
    if (!ev || sip_event_parse(ev->value, &event) < 0 || !str_eq_cstr(event.type, "presence")) {
        sip_write(m, 489, NULL, "Allow-Events: presence\r\n", out);
        return;
    }
    sip_pres_t *p = sip_pres_find(ss, user, false);
    if (!sip_pres_account_exists(sh, p, user)) {
        sip_write(m, 404, NULL, NULL, out);
        return;
    }
    uint32_t expires;
    if (sip_expires_of(m, &expires, out) < 0)
        return;
    const sip_hdr_t *match = sip_msg_get(m, SIP_HDR_SIP_IF_MATCH);
    sip_pub_t *pub = NULL;
    if (match) {
        for (pub = p ? p->pubs : NULL; pub; pub = pub->next)
            if (str_eq_cstr(match->value, pub->etag))
                break;
        if (!pub) {
            /* RFC 3903 §6 step 4. */
            sip_write(m, 412, NULL, NULL, out);
            return;
        }
    } else if (!m->body.len) {
        /* §6 step 5: an initial publication carries state. */
        sip_write(m, 400, "Bad Request (no body)", NULL, out);
        return;
    }
    pidf_doc_t *doc = NULL;
    if (m->body.len) {
        const sip_hdr_t *ct = sip_msg_get(m, SIP_HDR_CONTENT_TYPE);
        if (!ct || strncasecmp(ct->value.ptr, PIDF_CONTENT_TYPE, strlen(PIDF_CONTENT_TYPE))) {
            sip_write(m, 415, NULL, "Accept: " PIDF_CONTENT_TYPE "\r\n", out);
            return;
        }
        pidf_error_t perr;
        if (pidf_decode(m->body.ptr, m->body.len, NULL, &doc, &perr) < 0) {
            char reason[96];
            snprintf(reason, sizeof(reason), "Bad Request (PIDF: %s)", perr.reason);
            sip_write(m, 400, reason, NULL, out);
            return;
        }
    }
    bool changed = false;
    if (expires == 0) {
        /* §6 step 6: removal. */
        if (pub) {
            sip_pub_unlink(sh, pub);
            changed = true;
        }
        pidf_doc_free(doc);
        sip_write(m, 200, NULL, "Expires: 0\r\n", out);
        if (changed)
            pres_changed(sh, str_from_cstr(user), PRES_PROVIDER_SIP);
        sip_pres_forget_if_idle(ss, sip_pres_find(ss, user, false));
        return;
    }
    if (!pub) {
        if (!p)
            p = sip_pres_find(ss, user, true);
        if (p->n_pubs >= SIP_PUBS_MAX) {
            pidf_doc_free(doc);
            sip_write(m, 503, "Service Unavailable (too many publications)", "Retry-After: 60\r\n",
                      out);
            return;
        }
        pub = calloc(1, sizeof(*pub));
        if (!pub)
            PANIC("out of memory adding a publication");
        pub->pres = p;
        sip_tag(pub->id);
        timer_init(&pub->timer, sip_pub_expired);
        pub->next = p->pubs;
        p->pubs = pub;
        p->n_pubs++;
        metric_inc(shard_metrics(sh), sip_mid.publications);
        changed = true;
    }
    if (doc) {
        uint8_t state = (uint8_t)pidf_doc_state(doc);
        str_t note = pidf_doc_note(doc);
        bool same_note = (!note.ptr && !pub->note) ||
                         (note.ptr && pub->note && str_eq_cstr(note, pub->note));
        if (changed || state != pub->state || !same_note) {
            pub->state = state;
            free(pub->note);
            pub->note = note.ptr ? strndup(note.ptr, note.len) : NULL;
            pub->timestamp_ms = sip_wall_ms();
            changed = true;
        }
        pidf_doc_free(doc);
    }
    sip_tag(pub->etag);     /* §6 step 7: a new entity tag every time */
    timer_arm(shard_timers(sh), &pub->timer, shard_now_ms(sh) + expires * 1000ull);
    char h[96];
    snprintf(h, sizeof(h), "SIP-ETag: %s\r\nExpires: %u\r\n", pub->etag, expires);
    sip_write(m, 200, NULL, h, out);
    if (changed)
        pres_changed(sh, str_from_cstr(user), PRES_PROVIDER_SIP);
}

/* --- instant messages (RFC 3428) through the IM gateway --- */

static bool sip_text_body(const sip_msg_t *m)
{
    const sip_hdr_t *ct = sip_msg_get(m, SIP_HDR_CONTENT_TYPE);
    return ct && ct->value.len >= 10 && !strncasecmp(ct->value.ptr, "text/plain", 10);
}

void sip_message(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out)
{
    char from[600];
    if (!m->body.len || !sip_text_body(m)) {
        sip_write(m, 415, NULL, "Accept: text/plain\r\n", out);
        return;
    }
    if (sip_watcher_key(m, from, sizeof(from)) < 0) {
        sip_write(m, 400, "Bad From", NULL, out);
        return;
    }
    im_msg_t msg = { .to = str_from_cstr(user), .from = str_from_cstr(from), .body = m->body,
                     .id = { "", 0 } };
    switch (im_deliver(sh, &msg)) {
    case IM_DELIVERED:
        sip_write(m, 200, NULL, NULL, out);
        break;
    case IM_SENT:
    case IM_STORED:
        sip_write(m, 202, NULL, NULL, out);     /* §7: accepted, not yet read */
        break;
    case IM_NO_USER:
        sip_write(m, 404, NULL, NULL, out);
        break;
    case IM_BLOCKED:
        sip_write(m, 403, NULL, NULL, out);
        break;
    default:
        sip_write(m, 480, NULL, NULL, out);
        break;
    }
}

/* A message for a user with SIP registrations: a MESSAGE to its most recent
 * binding, over the flow that binding registered on. */
static im_result_t sip_im_offer(shard_t *sh, const im_msg_t *msg)
{
    char user[600];
    if (msg->to.len >= sizeof(user))
        return IM_UNREACHABLE;
    memcpy(user, msg->to.ptr, msg->to.len);
    user[msg->to.len] = 0;
    sip_aor_t *a = sip_bindings(sh, user);
    if (!a)
        return IM_UNREACHABLE;
    const sip_binding_t *bd = &a->b[0];
    for (unsigned i = 1; i < a->n; i++)
        if (a->b[i].expires_ms > bd->expires_ms)
            bd = &a->b[i];
    str_t from_bare = msg->from;
    const char *slash = memchr(msg->from.ptr, '/', msg->from.len);
    if (slash)
        from_bare.len = (size_t)(slash - msg->from.ptr);
    char tag[17], cid[17];
    sip_tag(tag);
    sip_tag(cid);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "MESSAGE %s SIP/2.0\r\nMax-Forwards: 70\r\n"
                   "From: <sip:%.*s>;tag=%s\r\nTo: <sip:%s>\r\nCall-ID: %s@%s\r\n"
                   "CSeq: 1 MESSAGE\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                   "Content-Length: %zu\r\n\r\n",
               bd->contact, (int)from_bare.len, from_bare.ptr, tag, user, cid, sip_cfg.via_host,
               msg->body.len);
    buf_append(&b, msg->body.ptr, msg->body.len);
    int rc = sip_request_send_as(sh, &bd->origin, OUT_MESSAGE, 0, strdup(user),
                                 strndup(msg->from.ptr, msg->from.len),
                                 msg->id.len ? strndup(msg->id.ptr, msg->id.len) : NULL, &b);
    buf_fini(&b);
    return rc < 0 ? IM_UNREACHABLE : IM_SENT;
}

/* --- what other protocols tell us --- */

static void sip_on_presence(shard_t *sh, str_t user, pres_provider_t from)
{
    (void)from;
    char key[600];
    if (user.len >= sizeof(key))
        return;
    memcpy(key, user.ptr, user.len);
    key[user.len] = 0;
    sip_pres_t *p = sip_pres_find(sip_of(sh), key, false);
    buf_t pidf;
    buf_init(&pidf);
    bool made = false;
    for (sip_sub_t *s = p ? p->subs : NULL; s; s = s->next) {
        if (s->state != SUB_ACTIVE || s->winfo)
            continue;
        if (!made) {
            sip_pidf_body(sh, p, &pidf);
            made = true;
        }
        sip_notify_pidf(sh, s, NULL, &pidf);
    }
    buf_fini(&pidf);
}

static void sip_on_sub(shard_t *sh, str_t user, str_t contact, sub_state_t state)
{
    char key[600];
    if (user.len >= sizeof(key))
        return;
    memcpy(key, user.ptr, user.len);
    key[user.len] = 0;
    sip_pres_t *p = sip_pres_find(sip_of(sh), key, false);
    for (sip_sub_t *s = p ? p->subs : NULL, *n; s; s = n) {
        n = s->next;
        if (s->winfo || !str_eq_cstr(contact, s->watcher))
            continue;
        if ((state & SUB_FROM) && s->state == SUB_PENDING) {
            s->state = SUB_ACTIVE;
            sip_notify(sh, s, NULL);
            sip_winfo_changed(sh, p);
        } else if (!(state & SUB_FROM) && !(state & SUB_PENDING_IN)) {
            /* RFC 6665 §4.2.2: the user said no, or took it back. */
            sip_sub_end(sh, s, "rejected");
        }
    }
}

void sip_presence_register(void)
{
    pres_provide(PRES_PROVIDER_SIP, sip_pres_list);
    pres_observe(sip_on_presence);
    pres_observe_subs(sip_on_sub);
    im_register_offer(PRES_PROVIDER_SIP, sip_im_offer);
}

void sip_presence_init(sip_shard_t *ss)
{
    sip_table_init(&ss->pres, 1024, offsetof(sip_pres_t, key));
    sip_table_init(&ss->ctxns, 1024, offsetof(sip_ctxn_t, branch));
}

void sip_presence_fini(sip_shard_t *ss)
{
    for (unsigned i = 0; i < ss->pres.n; i++) {
        for (sip_pres_t *p = ss->pres.slots[i], *n; p; p = n) {
            n = p->next;
            for (sip_pub_t *pub = p->pubs, *pn; pub; pub = pn) {
                pn = pub->next;
                sip_pub_free(pub);
            }
            for (sip_sub_t *s = p->subs, *sn; s; s = sn) {
                sn = s->next;
                sip_sub_free(s);
            }
            free(p);
        }
    }
    for (unsigned i = 0; i < ss->ctxns.n; i++) {
        for (sip_ctxn_t *c = ss->ctxns.slots[i], *n; c; c = n) {
            n = c->next;
            free(c->user);
            free(c->from);
            free(c->id);
            free(c);
        }
    }
}
