/*
 * sip_gateway.c - the presence gateway, client side: for each user with a
 * phone line (presencectl line set), the user's home shard SUBSCRIBEs to the
 * call control for the line's state (event "dialog", RFC 4235, or
 * "presence", RFC 3856), refreshes the subscription before it expires, and
 * starts over after a failure with a doubling wait. A line in a call, or
 * ringing, becomes a source of the user's presence marked as the phone line
 * (engine/presence.h): composition lets it override "available" (DESIGN.md
 * §3), and watchers over every protocol see it.
 *
 * The SUBSCRIBE leaves through the shard's own UDP socket of the SIP
 * listener; its Contact is the user's address here, so the call control's
 * NOTIFYs reach the home shard, where they are matched to the dialog (any
 * other NOTIFY gets 481).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/log.h"
#include "engine/route.h"
#include "protocols/pidf/dialoginfo.h"
#include "protocols/pidf/pidf.h"
#include "protocols/sip/sip_int.h"

/* Refresh when this share of the granted time has passed (RFC 6665 §4.1.2.2
 * leaves the margin to the subscriber). */
#define GW_REFRESH_PERCENT 80u
#define GW_RETRY_FACTOR_MAX 20u

enum { LINE_IDLE, LINE_RINGING, LINE_BUSY };
enum { GW_STARTING, GW_ACTIVE, GW_WAITING };

typedef struct sip_line {
    struct sip_line *next;
    shard_t *sh;
    uint64_t id;
    char *user;                 /* "local@domain" */
    char *uri;                  /* the line at the call control */
    char *remote_tag;           /* NULL until the dialog is established */
    char call_id[40];
    char local_tag[17];
    uint32_t cseq;
    uint8_t state;              /* GW_* */
    uint8_t line;               /* LINE_* */
    uint64_t version;           /* of the last dialog-info document taken */
    unsigned retry_s;
    timer_ent_t timer;
} sip_line_t;

/* Every state change goes through here, so the gauge stays true. */
static void gw_state(sip_line_t *l, uint8_t st)
{
    metrics_shard_t *m = shard_metrics(l->sh);
    metric_sub(m, (metric_id_t)(sip_mid.gateway_lines + l->state), 1);
    metric_inc(m, (metric_id_t)(sip_mid.gateway_lines + st));
    l->state = st;
}

static sip_line_t *gw_find(sip_shard_t *ss, const char *user)
{
    for (sip_line_t *l = ss->lines; l; l = l->next)
        if (!strcmp(l->user, user))
            return l;
    return NULL;
}

static void gw_free(sip_line_t *l)
{
    free(l->user);
    free(l->uri);
    free(l->remote_tag);
    free(l);
}

void sip_gateway_fini(sip_shard_t *ss)
{
    for (sip_line_t *l = ss->lines, *n; l; l = n) {
        n = l->next;
        gw_free(l);
    }
}

void sip_gateway_sources(shard_t *sh, const char *user, pres_each_fn each, void *ctx)
{
    sip_line_t *l = gw_find(sip_of(sh), user);
    if (!l || l->line == LINE_IDLE)
        return;
    pres_source_t src = {
        .provider = PRES_PROVIDER_SIP,
        .id = STR_LIT("line"),
        .state = PRES_ON_THE_PHONE,
        .priority = 0,
        .timestamp_ms = INT64_MIN,
        .note = l->line == LINE_BUSY ? STR_LIT("On the phone") : STR_LIT("Ringing"),
        .phone_line = true,
    };
    each(ctx, &src);
}

static void gw_set_line(sip_line_t *l, uint8_t line)
{
    if (l->line == line)
        return;
    l->line = line;
    pres_changed(l->sh, str_from_cstr(l->user), PRES_PROVIDER_SIP);
}

static void gw_subscribe(sip_line_t *l, uint32_t expires)
{
    shard_t *sh = l->sh;
    if (sip_cfg.udp_listener < 0)
        return;
    if (!l->remote_tag) {
        /* A new dialog every time one is set up (RFC 6665 §4.1.2.1). */
        char a[17], b[17];
        sip_tag(a);
        sip_tag(b);
        snprintf(l->call_id, sizeof(l->call_id), "gw%s%s", a, b);
        sip_tag(l->local_tag);
        l->cseq = 0;
        l->version = 0;
    }
    const char *at = strchr(l->user, '@');
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "SUBSCRIBE %s SIP/2.0\r\nMax-Forwards: 70\r\n"
                   "From: <sip:%s>;tag=%s\r\nTo: <%s>",
               l->uri, l->user, l->local_tag, l->uri);
    if (l->remote_tag)
        buf_printf(&b, ";tag=%s", l->remote_tag);
    buf_printf(&b, "\r\nCall-ID: %s@%s\r\nCSeq: %u SUBSCRIBE\r\n"
                   "Contact: <sip:%.*s@%s:%u>\r\nEvent: %s\r\nAccept: %s\r\nExpires: %u\r\n"
                   "Content-Length: 0\r\n\r\n",
               l->call_id, sip_cfg.via_host, ++l->cseq, (int)(at - l->user), l->user,
               sip_cfg.via_host, sip_cfg.port, sip_cfg.gw_presence ? "presence" : "dialog",
               sip_cfg.gw_presence ? PIDF_CONTENT_TYPE : DIALOGINFO_CONTENT_TYPE, expires);
    sip_origin_t via = { .shard = (uint16_t)shard_id(sh), .listener = (uint16_t)sip_cfg.udp_listener,
                         .peer_len = sip_cfg.gw_call_control_len };
    memcpy(&via.peer, &sip_cfg.gw_call_control, sip_cfg.gw_call_control_len);
    sip_request_send(sh, &via, OUT_SUBSCRIBE, l->user, l->id, &b);
    buf_fini(&b);
}

static void gw_timer(timer_wheel_t *w, timer_ent_t *t)
{
    (void)w;
    sip_line_t *l = container_of(t, sip_line_t, timer);
    if (l->state == GW_WAITING) {
        free(l->remote_tag);
        l->remote_tag = NULL;
        gw_state(l, GW_STARTING);
    }
    gw_subscribe(l, sip_cfg.gw_expires_s);
}

/* The subscription failed or ended: try again later, from scratch. */
static void gw_retry(sip_line_t *l, const char *why)
{
    LOG_RATELIMITED(LOG_LEVEL_WARN, "presence gateway: line of %s: %s; again in %u s", l->user,
                    why, l->retry_s);
    gw_set_line(l, LINE_IDLE);      /* unknown is not "in a call" */
    gw_state(l, GW_WAITING);
    timer_arm(shard_timers(l->sh), &l->timer, shard_now_ms(l->sh) + l->retry_s * 1000ull);
    unsigned max = sip_cfg.gw_retry_s * GW_RETRY_FACTOR_MAX;
    l->retry_s = l->retry_s * 2 < max ? l->retry_s * 2 : max;
}

typedef struct {
    char *user;
    uint64_t ref;
    unsigned status;            /* 0: no response */
    char *to_tag;
    uint32_t expires;
    bool has_expires;
} gw_answer_t;

static void gw_answer_home(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    gw_answer_t *a = msg->ptr;
    sip_line_t *l = gw_find(sip_of(sh), a->user);
    if (l && l->id == a->ref && l->state != GW_WAITING) {
        if (a->status >= 200 && a->status < 300) {
            if (!l->remote_tag && a->to_tag)
                l->remote_tag = strdup(a->to_tag);
            uint32_t granted = a->has_expires ? a->expires : sip_cfg.gw_expires_s;
            if (granted == 0) {
                gw_retry(l, "the call control ended the subscription");
            } else {
                gw_state(l, GW_ACTIVE);
                l->retry_s = sip_cfg.gw_retry_s;
                timer_arm(shard_timers(sh), &l->timer,
                          shard_now_ms(sh) + granted * 10ull * GW_REFRESH_PERCENT);
            }
        } else if (a->status == 481 && l->remote_tag) {
            /* RFC 6665 §4.1.2.2: the dialog is gone; a new one at once. */
            free(l->remote_tag);
            l->remote_tag = NULL;
            gw_subscribe(l, sip_cfg.gw_expires_s);
        } else {
            char why[48];
            snprintf(why, sizeof(why), a->status ? "SUBSCRIBE got %u" : "no answer%.0u",
                     a->status);
            gw_retry(l, why);
        }
    }
    free(a->user);
    free(a->to_tag);
    free(a);
}

void sip_gateway_answered(shard_t *sh, unsigned home, const char *user, uint64_t ref,
                          const sip_msg_t *rsp)
{
    gw_answer_t *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->user = strdup(user);
    a->ref = ref;
    if (rsp) {
        a->status = rsp->status;
        if (rsp->to.tag.len)
            a->to_tag = strndup(rsp->to.tag.ptr, rsp->to.tag.len);
        a->has_expires = sip_msg_expires(rsp, SIP_HDR_EXPIRES, &a->expires) == 0;
    }
    mbox_msg_t m = { .ptr = a };
    if (shard_call(sh, home, gw_answer_home, &m) < 0) {
        free(a->user);
        free(a->to_tag);
        free(a);
    }
}

/* What a NOTIFY body says about the line. -1: nothing usable. */
static int gw_line_of(sip_line_t *l, const sip_msg_t *m)
{
    const sip_hdr_t *ct = sip_msg_get(m, SIP_HDR_CONTENT_TYPE);
    if (!m->body.len || !ct)
        return -1;
    if (!strncasecmp(ct->value.ptr, PIDF_CONTENT_TYPE, strlen(PIDF_CONTENT_TYPE))) {
        pidf_doc_t *doc = NULL;
        if (pidf_decode(m->body.ptr, m->body.len, NULL, &doc, NULL) < 0)
            return -1;
        pidf_state_t st = pidf_doc_state(doc);
        pidf_doc_free(doc);
        return st == PIDF_STATE_ON_THE_PHONE || st == PIDF_STATE_BUSY ? LINE_BUSY : LINE_IDLE;
    }
    if (!strncasecmp(ct->value.ptr, DIALOGINFO_CONTENT_TYPE, strlen(DIALOGINFO_CONTENT_TYPE))) {
        dialoginfo_doc_t *doc = NULL;
        if (dialoginfo_decode(m->body.ptr, m->body.len, NULL, &doc, NULL) < 0)
            return -1;
        /* RFC 4235 §4.1: an old version is stale news. Each document is read
         * as the line's whole state; partial ones name the dialogs that
         * changed, which for a line's busy/idle is the same whenever the
         * call control has one call per line. */
        int r = -1;
        if (!l->version || doc->version > l->version) {
            l->version = doc->version;
            dialoginfo_line_t s = dialoginfo_line_state(doc);
            r = s == DIALOGINFO_LINE_BUSY ? LINE_BUSY
              : s == DIALOGINFO_LINE_RINGING ? LINE_RINGING : LINE_IDLE;
        }
        dialoginfo_doc_free(doc);
        return r;
    }
    return -1;
}

void sip_gateway_notify(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out)
{
    sip_line_t *l = gw_find(sip_of(sh), user);
    size_t cid_len = l ? strlen(l->call_id) : 0;
    if (!l || m->call_id.len < cid_len || memcmp(m->call_id.ptr, l->call_id, cid_len) ||
        !str_eq_cstr(m->to.tag, l->local_tag)) {
        sip_write(m, 481, NULL, NULL, out);
        return;
    }
    if (!l->remote_tag && m->from.tag.len)
        l->remote_tag = strndup(m->from.tag.ptr, m->from.tag.len);
    int line = gw_line_of(l, m);
    sip_write(m, 200, NULL, NULL, out);
    const sip_hdr_t *ss = sip_msg_get(m, SIP_HDR_SUBSCRIPTION_STATE);
    sip_subscription_state_t st;
    if (ss && sip_subscription_state_parse(ss->value, &st) == 0 &&
        st.state == SIP_SUBSTATE_TERMINATED) {
        timer_cancel(shard_timers(sh), &l->timer);
        gw_retry(l, "the call control terminated the subscription");
        return;
    }
    if (line >= 0)
        gw_set_line(l, (uint8_t)line);
}

/* Starts watching user's line (uri) from this, its home, shard; or stops
 * (uri empty). */
static void gw_line(shard_t *sh, str_t user, str_t uri)
{
    if (!sip_cfg.gw_call_control_len)
        return;
    sip_shard_t *ss = sip_of(sh);
    char key[600];
    if (user.len >= sizeof(key))
        return;
    memcpy(key, user.ptr, user.len);
    key[user.len] = 0;
    sip_line_t *l = gw_find(ss, key);
    if (l) {
        if (l->state == GW_ACTIVE && l->remote_tag)
            gw_subscribe(l, 0);     /* unsubscribe (RFC 6665 §4.1.2.3) */
        timer_cancel(shard_timers(sh), &l->timer);
        metric_sub(shard_metrics(sh), (metric_id_t)(sip_mid.gateway_lines + l->state), 1);
        uint8_t was = l->line;
        for (sip_line_t **p = &ss->lines; *p; p = &(*p)->next)
            if (*p == l) {
                *p = l->next;
                break;
            }
        gw_free(l);
        if (was != LINE_IDLE)
            pres_changed(sh, user, PRES_PROVIDER_SIP);
    }
    if (!uri.len)
        return;
    l = calloc(1, sizeof(*l));
    if (!l)
        PANIC("out of memory watching a phone line");
    l->sh = sh;
    l->id = ++ss->next_id;
    l->user = strdup(key);
    l->uri = strndup(uri.ptr, uri.len);
    l->retry_s = sip_cfg.gw_retry_s;
    l->state = GW_STARTING;
    metric_inc(shard_metrics(sh), (metric_id_t)(sip_mid.gateway_lines + GW_STARTING));
    timer_init(&l->timer, gw_timer);
    l->next = ss->lines;
    ss->lines = l;
    gw_subscribe(l, sip_cfg.gw_expires_s);
}

typedef struct {
    shard_t *sh;
} gw_scan_t;

static int gw_scan_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    gw_scan_t *g = ctx;
    route_t home = route_user(key, klen, shard_count(g->sh));
    if (home.shard == shard_id(g->sh))
        gw_line(g->sh, (str_t){ key, klen }, (str_t){ val, vlen });
    return 0;
}

/* At start: every line of a user homed on this shard. */
static void gw_start(shard_t *sh)
{
    if (!sip_cfg.gw_call_control_len || !shard_storage(sh))
        return;
    gw_scan_t g = { sh };
    stor_scan_prefix(shard_storage(sh), STOR_CF_LINES, "", 0, gw_scan_one, &g);
}

void sip_gateway_register(void)
{
    pres_watch_lines(gw_line);
    shard_on_start(gw_start);
}
