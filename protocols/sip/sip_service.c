/*
 * sip_service.c - see sip_service.h.
 *
 * Server transactions (RFC 3261 §17.2): over UDP a request is remembered by
 * its transaction key (top Via branch and sent-by, and the method, §17.2.3)
 * for Timer J (64*T1 = 32 s); a retransmission gets the stored response
 * again, or nothing while the request is still being handled. Over TCP the
 * transport does not retransmit, so nothing is kept (Timer J is 0).
 *
 * Responses go to the address the request came from (RFC 3581 rport
 * behaviour, whatever the Via says): presenced answers over the flow the
 * request used, which is what clients behind NAT need.
 */
#include "protocols/sip/sip_service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/account.h"
#include "engine/log.h"
#include "engine/route.h"
#include "protocols/sip/sip_digest.h"
#include "protocols/sip/sip_int.h"

#define SIP_TIMER_J_MS 32000u
#define SIP_ALLOW "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, " \
                  "MESSAGE"
#define SIP_ALLOWED_HERE "OPTIONS, REGISTER, SUBSCRIBE, PUBLISH, MESSAGE"

sip_service_config_t sip_cfg;
static char sip_domain[256];
sip_metric_ids_t sip_mid;

/* Whether the node is behind, for every shard to read. A PUBLISH taken on one shard fans
 * out into NOTIFYs that wait for their answers on the shards of the watchers' flows, so
 * one shard's backlog is grown by work the others admit: each refuses new work while any
 * is behind. Relaxed: a verdict read a little late admits a request or two more. */
static _Atomic unsigned sip_shards_full;        /* shards at max_unanswered */
static _Atomic uint64_t sip_standing_until_ms;  /* a shard's queue stands until then */

void sip_unanswered_changed(sip_shard_t *ss)
{
    bool full = sip_cfg.max_unanswered && ss->ctxns.count >= sip_cfg.max_unanswered;
    if (full == ss->full)
        return;
    ss->full = full;
    if (full)
        atomic_fetch_add_explicit(&sip_shards_full, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&sip_shards_full, 1, memory_order_relaxed);
}

/* A datagram read after waiting wait_us: the shard's queue verdict, shared once per
 * interval that it stands. */
static void sip_queue_observed(shard_t *sh, uint32_t wait_us)
{
    sip_shard_t *ss = sip_of(sh);
    sip_queue_observe(&ss->queue, shard_now_ms(sh), wait_us);
    uint64_t until = sip_queue_standing_until(&ss->queue);
    uint64_t seen = atomic_load_explicit(&sip_standing_until_ms, memory_order_relaxed);
    while (until > seen &&
           !atomic_compare_exchange_weak_explicit(&sip_standing_until_ms, &seen, until,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static sip_digest_conf_t sip_digest_conf;
/* Nonces live five minutes (RFC 7616 §5.4 leaves it to the server); a user
 * agent answering a stale one is challenged again with stale=true. */
#define SIP_NONCE_LIFETIME_S 300

int sip_trusted_parse(const char *list, sip_service_config_t *cfg)
{
    cfg->n_trusted = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (cfg->n_trusted == SIP_TRUSTED_MAX)
            return -EINVAL;
        struct sockaddr_storage *ss = &cfg->trusted[cfg->n_trusted];
        memset(ss, 0, sizeof(*ss));
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, tok, &in->sin_addr) == 1)
            ss->ss_family = AF_INET;
        else if (inet_pton(AF_INET6, tok, &in6->sin6_addr) == 1)
            ss->ss_family = AF_INET6;
        else
            return -EINVAL;
        cfg->n_trusted++;
    }
    return 0;
}

static bool sip_peer_trusted(const struct sockaddr_storage *peer)
{
    for (unsigned i = 0; i < sip_cfg.n_trusted; i++) {
        const struct sockaddr_storage *t = &sip_cfg.trusted[i];
        if (t->ss_family != peer->ss_family)
            continue;
        if (t->ss_family == AF_INET &&
            ((const struct sockaddr_in *)t)->sin_addr.s_addr ==
                ((const struct sockaddr_in *)peer)->sin_addr.s_addr)
            return true;
        if (t->ss_family == AF_INET6 &&
            !memcmp(&((const struct sockaddr_in6 *)t)->sin6_addr,
                    &((const struct sockaddr_in6 *)peer)->sin6_addr, sizeof(struct in6_addr)))
            return true;
    }
    return false;
}

static const char *const sip_class_names[6] = { "1xx", "2xx", "3xx", "4xx", "5xx", "6xx" };
static const char *sip_method_names[SIP_METHOD_COUNT];

int sip_service_configure(const sip_service_config_t *cfg)
{
    sip_cfg = *cfg;
    snprintf(sip_domain, sizeof(sip_domain), "%s", cfg->domain);
    sip_cfg.domain = sip_domain;
    static char via_host[256];
    snprintf(via_host, sizeof(via_host), "%s", cfg->via_host ? cfg->via_host : cfg->domain);
    sip_cfg.via_host = via_host;
    RAND_bytes(sip_digest_conf.nonce_key, sizeof(sip_digest_conf.nonce_key));
    sip_digest_conf.nonce_lifetime_s = SIP_NONCE_LIFETIME_S;
    sip_digest_conf.algs = cfg->digest_algs ? cfg->digest_algs
                                            : (uint8_t)(SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256) |
                                                        SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5));
    sip_presence_register();
    sip_gateway_register();
    if (!cfg->metrics)
        return 0;
    for (unsigned i = 0; i < SIP_METHOD_COUNT; i++) {
        str_t n = sip_method_name((sip_method_t)i);
        sip_method_names[i] = i ? n.ptr : "other";
    }
    metrics_t *m = cfg->metrics;
    sip_mid.requests = metrics_register_labelled(m, "sip_requests_total",
                                                 "SIP requests received, by method.",
                                                 METRIC_COUNTER, "method", sip_method_names,
                                                 SIP_METHOD_COUNT);
    sip_mid.responses = metrics_register_labelled(m, "sip_responses_total",
                                                  "SIP responses sent, by status class.",
                                                  METRIC_COUNTER, "class", sip_class_names, 6);
    sip_mid.retransmissions = metrics_register(
        m, "sip_retransmissions_total",
        "Retransmitted requests absorbed by their server transaction.", METRIC_COUNTER);
    sip_mid.bad = metrics_register(m, "sip_malformed_total",
                                   "SIP messages refused as malformed or over limits.",
                                   METRIC_COUNTER);
    sip_mid.bindings = metrics_register(m, "sip_registrations",
                                        "Contact bindings held by the registrar.", METRIC_GAUGE);
    sip_mid.subscriptions = metrics_register(m, "sip_subscriptions",
                                             "Active and pending SIP presence subscriptions.",
                                             METRIC_GAUGE);
    sip_mid.notifies = metrics_register(m, "sip_notifies_total", "NOTIFY requests sent.",
                                        METRIC_COUNTER);
    sip_mid.publications = metrics_register(m, "sip_publications",
                                            "SIP presence publications in force.",
                                            METRIC_GAUGE);
    static const char *const gw_states[3] = { "subscribing", "active", "waiting" };
    sip_mid.gateway_lines = metrics_register_labelled(
        m, "sip_gateway_lines", "Phone lines the presence gateway watches, by subscription state.",
        METRIC_GAUGE, "state", gw_states, 3);
    sip_mid.notify_retransmissions = metrics_register(
        m, "sip_request_retransmissions_total",
        "Our requests (NOTIFY) sent again over UDP for want of a response.", METRIC_COUNTER);
    sip_mid.overload_refusals = metrics_register(
        m, "sip_overload_refusals_total",
        "New requests refused with 503 while the shard was behind: a standing backlog in its "
        "UDP queue, or [sip] max_unanswered requests waiting for answers.",
        METRIC_COUNTER);
    return 0;
}

static void sip_shard_fini(void *p)
{
    sip_shard_t *ss = p;
    for (unsigned i = 0; i < ss->txns.n; i++) {
        for (sip_txn_t *t = ss->txns.slots[i], *n; t; t = n) {
            n = t->next;
            buf_fini(&t->response);
            free(t);
        }
    }
    for (unsigned i = 0; i < ss->aors.n; i++) {
        for (sip_aor_t *a = ss->aors.slots[i], *n; a; a = n) {
            n = a->next;
            for (unsigned k = 0; k < a->n; k++) {
                free(a->b[k].contact);
                free(a->b[k].call_id);
            }
            free(a);
        }
    }
    sip_presence_fini(ss);
    sip_gateway_fini(ss);
    if (ss->full)
        atomic_fetch_sub_explicit(&sip_shards_full, 1, memory_order_relaxed);
    buf_fini(&ss->scratch);
    sip_table_fini(&ss->txns);
    sip_table_fini(&ss->aors);
    sip_table_fini(&ss->pres);
    sip_table_fini(&ss->ctxns);
    free(ss);
}

sip_shard_t *sip_of(shard_t *sh)
{
    sip_shard_t *ss = shard_slot(sh, SHARD_SLOT_SIP);
    if (!ss) {
        ss = calloc(1, sizeof(*ss));
        if (!ss)
            PANIC("out of memory creating the SIP service");
        ss->sh = sh;
        char rnd[17];
        sip_tag(rnd);
        memcpy(ss->branch_prefix, rnd, 8);
        buf_init(&ss->scratch);
        sip_queue_init(&ss->queue);
        sip_table_init(&ss->txns, 1024, offsetof(sip_txn_t, key));
        sip_table_init(&ss->aors, 1024, offsetof(sip_aor_t, key));
        sip_presence_init(ss);
        shard_set_slot(sh, SHARD_SLOT_SIP, ss, sip_shard_fini);
    }
    return ss;
}

/* --- sending back --- */

void sip_send(shard_t *sh, const sip_origin_t *o, const void *data, size_t len)
{
    if (o->stream) {
        conn_t *c = conn_by_id(sh, o->conn);
        if (c)
            conn_write(c, data, len);
    } else {
        shard_send_datagram(sh, o->listener, (const struct sockaddr *)&o->peer, o->peer_len,
                            data, len);
    }
}

/* --- transactions --- */

/* --- tables --- */

static const char *sip_table_key(const sip_table_t *t, const void *node)
{
    return (const char *)node + t->key_off;
}

static void **sip_table_slot(const sip_table_t *t, const char *key)
{
    return &t->slots[route_hash(key, strlen(key)) & (t->n - 1)];
}

void sip_table_init(sip_table_t *t, unsigned n, size_t key_off)
{
    t->slots = calloc(n, sizeof(*t->slots));
    if (!t->slots)
        PANIC("out of memory creating a SIP table");
    t->n = n;
    t->count = 0;
    t->key_off = key_off;
}

void sip_table_fini(sip_table_t *t)
{
    free(t->slots);
    t->slots = NULL;
    t->n = t->count = 0;
}

void *sip_table_find(const sip_table_t *t, const char *key)
{
    for (void *node = *sip_table_slot(t, key); node; node = *(void **)node)
        if (!strcmp(sip_table_key(t, node), key))
            return node;
    return NULL;
}

static void sip_table_grow(sip_table_t *t)
{
    sip_table_t bigger = *t;
    bigger.n = t->n * 2;
    bigger.slots = calloc(bigger.n, sizeof(*bigger.slots));
    if (!bigger.slots)
        return;     /* longer chains, still correct */
    for (unsigned i = 0; i < t->n; i++) {
        for (void *node = t->slots[i], *next; node; node = next) {
            next = *(void **)node;
            void **slot = sip_table_slot(&bigger, sip_table_key(t, node));
            *(void **)node = *slot;
            *slot = node;
        }
    }
    free(t->slots);
    *t = bigger;
}

void sip_table_add(sip_table_t *t, void *node)
{
    if (t->count >= t->n)
        sip_table_grow(t);
    void **slot = sip_table_slot(t, sip_table_key(t, node));
    *(void **)node = *slot;
    *slot = node;
    t->count++;
}

void sip_table_del(sip_table_t *t, void *node)
{
    for (void **p = sip_table_slot(t, sip_table_key(t, node)); *p; p = (void **)*p) {
        if (*p == node) {
            *p = *(void **)node;
            t->count--;
            return;
        }
    }
}

/* RFC 3261 §17.2.3: branch, sent-by and method (ACK matches its INVITE). */
static int sip_txn_key(const sip_msg_t *m, buf_t *out)
{
    if (!m->via.branch.len)
        return -ENOENT;     /* RFC 2543 peers: no transaction matching, treated as new */
    str_t method = m->method == SIP_METHOD_ACK ? STR_LIT("INVITE") : m->method_name;
    buf_append(out, m->via.branch.ptr, m->via.branch.len);
    buf_append(out, "|", 1);
    buf_append(out, m->via.host.ptr, m->via.host.len);
    buf_append_str(out, ":");
    buf_append_uint(out, m->via.port);
    buf_append_str(out, "|");
    buf_append(out, method.ptr, method.len);
    buf_append(out, "", 1);
    return 0;
}

static sip_txn_t *sip_txn_find(sip_shard_t *ss, const char *key)
{
    return sip_table_find(&ss->txns, key);
}

static void sip_txn_expired(timer_wheel_t *w, timer_ent_t *te)
{
    (void)w;
    sip_txn_t *t = container_of(te, sip_txn_t, timer);
    sip_table_del(&t->ss->txns, t);
    buf_fini(&t->response);
    free(t);
}

static sip_txn_t *sip_txn_add(sip_shard_t *ss, const char *key)
{
    size_t len = strlen(key);
    sip_txn_t *t = calloc(1, sizeof(*t) + len + 1);
    if (!t)
        PANIC("out of memory adding a transaction");
    memcpy(t->key, key, len + 1);
    t->ss = ss;
    buf_init(&t->response);
    timer_init(&t->timer, sip_txn_expired);
    timer_arm(shard_timers(ss->sh), &t->timer, shard_now_ms(ss->sh) + SIP_TIMER_J_MS);
    sip_table_add(&ss->txns, t);
    return t;
}

/* The final response leaves through the shard that received the request. */
static void sip_respond_bytes(shard_t *sh, const sip_origin_t *o, const char *txn_key,
                              const char *data, size_t len)
{
    /* "SIP/2.0 NNN ": the class digit. */
    if (len > 8 && data[7] == ' ' && data[8] >= '1' && data[8] <= '6')
        metric_inc(shard_metrics(sh), (metric_id_t)(sip_mid.responses + (data[8] - '1')));
    if (txn_key && !o->stream) {
        sip_txn_t *t = sip_txn_find(sip_of(sh), txn_key);
        if (t) {
            t->response.len = 0;
            buf_append(&t->response, data, len);
        }
    }
    sip_send(sh, o, data, len);
}

void sip_tag(char out[17])
{
    uint8_t rnd[8];
    RAND_bytes(rnd, sizeof(rnd));
    sip_digest_hex(rnd, sizeof(rnd), out);
}

void sip_branch_append(buf_t *b, unsigned shard, const char prefix[8], uint64_t seq)
{
    uint8_t be[8];
    for (unsigned i = 0; i < 8; i++)
        be[i] = (uint8_t)(seq >> (56 - 8 * i));
    char hex[17];
    sip_digest_hex(be, sizeof(be), hex);
    buf_append_str(b, "z9hG4bK-");
    buf_append_uint(b, shard);
    buf_append_str(b, "-");
    buf_append(b, prefix, 8);
    buf_append(b, hex, 16);
}

void sip_write_tagged(const sip_msg_t *m, unsigned status, const char *reason, str_t to_tag,
                      const char *headers, str_t body, buf_t *out)
{
    buf_t h;
    buf_init(&h);
    buf_append_strs(&h, "Server: presenced\r\n", headers ? headers : "", NULL);
    sip_response_t rsp = {
        .status = status,
        .reason = reason,
        .to_tag = to_tag,
        .headers = { (const char *)h.data, h.len },
        .body = body,
    };
    if (sip_msg_write_response(m, &rsp, out) < 0)
        out->len = 0;
    buf_fini(&h);
}

void sip_write(const sip_msg_t *m, unsigned status, const char *reason, const char *headers,
               buf_t *out)
{
    char tag[17];
    sip_tag(tag);
    sip_write_tagged(m, status, reason, str_from_cstr(tag), headers, (str_t){ NULL, 0 }, out);
}

/* --- the registrar (home shard of the address of record) --- */

static bool sip_host_ours(const sip_uri_t *u)
{
    if (u->host_type == SIP_HOST_IPV4 || u->host_type == SIP_HOST_IPV6)
        return true;    /* addressed to this node by address */
    return u->host_type == SIP_HOST_NAME && u->host.len == strlen(sip_domain) &&
           !strncasecmp(u->host.ptr, sip_domain, u->host.len);
}

/* "user@domain" for a SIP URI of ours; -EINVAL otherwise. */
int sip_aor_key(str_t uri_text, char *out, size_t cap)
{
    sip_uri_t u;
    if (sip_uri_parse(uri_text, &u) < 0 || (u.scheme != SIP_SCHEME_SIP &&
                                            u.scheme != SIP_SCHEME_SIPS) ||
        !u.user.len || !sip_host_ours(&u))
        return -EINVAL;
    char user[256];
    ssize_t n = sip_unescape(u.user, user, sizeof(user));
    if (n <= 0 || memchr(user, '@', (size_t)n) || memchr(user, '/', (size_t)n) ||
        (size_t)n + 1 + strlen(sip_domain) + 1 > cap)
        return -EINVAL;
    snprintf(out, cap, "%.*s@%s", (int)n, user, sip_domain);
    return 0;
}

static sip_aor_t *sip_aor(sip_shard_t *ss, const char *key, bool create)
{
    sip_aor_t *found = sip_table_find(&ss->aors, key);
    if (found || !create)
        return found;
    sip_aor_t *a = calloc(1, sizeof(*a) + strlen(key) + 1);
    if (!a)
        PANIC("out of memory adding a registration");
    strcpy(a->key, key);
    sip_table_add(&ss->aors, a);
    return a;
}

static void sip_binding_drop(shard_t *sh, sip_aor_t *a, unsigned i)
{
    free(a->b[i].contact);
    free(a->b[i].call_id);
    a->b[i] = a->b[--a->n];
    metric_sub(shard_metrics(sh), sip_mid.bindings, 1);
}

static void sip_aor_prune(shard_t *sh, sip_aor_t *a)
{
    uint64_t now = shard_now_ms(sh);
    for (unsigned i = 0; i < a->n;)
        if (a->b[i].expires_ms <= now)
            sip_binding_drop(sh, a, i);
        else
            i++;
}

bool sip_account_exists(shard_t *sh, const char *key)
{
    void *raw = NULL;
    size_t len;
    bool ok = stor_get(shard_storage(sh), STOR_CF_ACCOUNTS, key, strlen(key), &raw, &len) == 0;
    free(raw);
    return ok;
}

sip_aor_t *sip_bindings(shard_t *sh, const char *key)
{
    sip_aor_t *a = sip_aor(sip_of(sh), key, false);
    if (a)
        sip_aor_prune(sh, a);
    return a && a->n ? a : NULL;
}

/* RFC 3261 §10.3. */
static void sip_register(shard_t *sh, const sip_msg_t *m, const sip_origin_t *o, buf_t *out)
{
    sip_shard_t *ss = sip_of(sh);
    char key[600];
    if (sip_aor_key(m->to.uri, key, sizeof(key)) < 0) {
        sip_write(m, 404, "Not Found (no such address of record here)", NULL, out);
        return;
    }
    if (!sip_account_exists(sh, key)) {
        sip_write(m, 404, NULL, NULL, out);
        return;
    }
    uint32_t hdr_expires = sip_cfg.default_expires_s;
    bool has_hdr_expires = sip_msg_expires(m, SIP_HDR_EXPIRES, &hdr_expires) == 0;
    sip_aor_t *a = sip_aor(ss, key, false);
    if (a)
        sip_aor_prune(sh, a);

    /* First pass: check everything, so that a refused request changes nothing. */
    sip_hdr_iter_t it;
    str_t v;
    unsigned n_contacts = 0;
    bool star = false;
    for (sip_hdr_iter_init(&it, m, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0;) {
        sip_addr_t addr;
        if (sip_addr_parse(v, &addr) < 0) {
            sip_write(m, 400, "Bad Contact", NULL, out);
            return;
        }
        star |= addr.star;
        n_contacts++;
        str_t ev;
        uint32_t e = hdr_expires;
        if (!addr.star && sip_param_get(addr.params, "expires", &ev) == 1 &&
            sip_delta_seconds_parse(ev, &e) < 0) {
            sip_write(m, 400, "Bad Contact expires", NULL, out);
            return;
        }
        if (e && e < sip_cfg.min_expires_s) {
            char h[64];
            snprintf(h, sizeof(h), "Min-Expires: %u\r\n", sip_cfg.min_expires_s);
            sip_write(m, 423, NULL, h, out);
            return;
        }
    }
    if (star && (n_contacts != 1 || !has_hdr_expires || hdr_expires != 0)) {
        /* §10.3 step 6: "*" only alone and with Expires: 0. */
        sip_write(m, 400, "Bad wildcard Contact", NULL, out);
        return;
    }
    uint64_t now = shard_now_ms(sh);
    if (star) {
        while (a && a->n)
            sip_binding_drop(sh, a, 0);
    } else if (n_contacts) {
        if (!a)
            a = sip_aor(ss, key, true);
        for (sip_hdr_iter_init(&it, m, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0;) {
            sip_addr_t addr;
            sip_addr_parse(v, &addr);
            str_t ev;
            uint32_t e = hdr_expires;
            if (sip_param_get(addr.params, "expires", &ev) == 1)
                sip_delta_seconds_parse(ev, &e);
            if (e > sip_cfg.max_expires_s)
                e = sip_cfg.max_expires_s;
            unsigned i;
            for (i = 0; i < a->n; i++)
                if (str_eq_cstr(addr.uri, a->b[i].contact))
                    break;
            if (i < a->n && str_eq_cstr(m->call_id, a->b[i].call_id) &&
                m->cseq.seq <= a->b[i].cseq) {
                /* §10.3 step 7: out of order. */
                sip_write(m, 500, "Server Internal Error (CSeq out of order)", "Retry-After: 1\r\n",
                          out);
                return;
            }
            if (e == 0) {
                if (i < a->n)
                    sip_binding_drop(sh, a, i);
                continue;
            }
            if (i == a->n) {
                if (a->n == SIP_BINDINGS_MAX) {
                    sip_write(m, 403, "Forbidden (too many contacts)", NULL, out);
                    return;
                }
                a->b[i].contact = strndup(addr.uri.ptr, addr.uri.len);
                a->b[i].call_id = NULL;
                a->n++;
                metric_inc(shard_metrics(sh), sip_mid.bindings);
            }
            free(a->b[i].call_id);
            a->b[i].call_id = strndup(m->call_id.ptr, m->call_id.len);
            a->b[i].cseq = m->cseq.seq;
            a->b[i].expires_ms = now + e * 1000ull;
            a->b[i].origin = *o;
        }
    }
    /* §10.3 step 8: 200 with every current binding. */
    buf_t h;
    buf_init(&h);
    if (a) {
        for (unsigned i = 0; i < a->n; i++)
            buf_printf(&h, "Contact: <%s>;expires=%llu\r\n", a->b[i].contact,
                       (unsigned long long)((a->b[i].expires_ms - now + 999) / 1000));
    }
    buf_append(&h, "", 1);
    sip_write(m, 200, NULL, (const char *)h.data, out);
    buf_fini(&h);
    if (a && !a->n) {
        sip_table_del(&ss->aors, a);
        free(a);
    }
}

/* --- requests handed to the home shard --- */

typedef struct {
    sip_origin_t origin;
    char *txn_key;              /* NULL: not remembered */
    char *user;                 /* the address of record it concerns */
    uint8_t tp;                 /* sip_msg_transport_t */
    size_t len;
    buf_t response;             /* filled on the home shard */
    char bytes[];
} sip_job_t;

static void sip_job_free(sip_job_t *j)
{
    free(j->txn_key);
    free(j->user);
    buf_fini(&j->response);
    free(j);
}

/* Back on the receiving shard. */
static void sip_job_done(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sip_job_t *j = msg->ptr;
    if (j->response.len)
        sip_respond_bytes(sh, &j->origin, j->txn_key, (const char *)j->response.data,
                          j->response.len);
    sip_job_free(j);
}

/* The home shard's part of a request that concerns user: fills response, returns the id of a
 * subscription that sip_subscribe_done must follow up once the response is out, or 0. */
static uint64_t sip_home_dispatch(shard_t *sh, const sip_msg_t *m, const sip_origin_t *o,
                                  const char *user, buf_t *response)
{
    if (m->method == SIP_METHOD_REGISTER)
        sip_register(sh, m, o, response);
    else if (m->method == SIP_METHOD_MESSAGE)
        sip_message(sh, m, user, response);
    else if (m->method == SIP_METHOD_NOTIFY)
        sip_gateway_notify(sh, m, user, response);
    else if (m->method == SIP_METHOD_PUBLISH)
        sip_publish(sh, m, user, response);
    else if (m->method == SIP_METHOD_SUBSCRIBE)
        return sip_subscribe(sh, m, user, o, response);
    return 0;
}

static void sip_job_run(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sip_job_t *j = msg->ptr;
    sip_msg_t *m = &sip_of(sh)->msg;
    uint64_t sub_id = 0;
    if (sip_msg_parse(m, j->bytes, j->len, (sip_msg_transport_t)j->tp, NULL) > 0)
        sub_id = sip_home_dispatch(sh, m, &j->origin, j->user, &j->response);
    mbox_msg_t back = { .ptr = j };
    char user[600];
    snprintf(user, sizeof(user), "%s", j->user);
    if (shard_call(sh, j->origin.shard, sip_job_done, &back) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: a SIP response was lost");
        sip_job_free(j);
    }
    /* Posted after the response, so the watcher sees them in that order. */
    if (sub_id)
        sip_subscribe_done(sh, user, sub_id);
}

/* m concerns the user aor_key: handled here when this is its home shard (m as parsed, the
 * response sent at once), else copied to the home shard, which parses it again there. */
static void sip_to_home(shard_t *sh, const sip_origin_t *o, const char *txn_key,
                        const char *aor_key, const sip_msg_t *m, sip_msg_transport_t tp)
{
    route_t home = route_user(aor_key, strlen(aor_key), shard_count(sh));
    if (home.shard == shard_id(sh)) {
        buf_t response;
        buf_init(&response);
        uint64_t sub_id = sip_home_dispatch(sh, m, o, aor_key, &response);
        if (response.len)
            sip_respond_bytes(sh, o, txn_key, (const char *)response.data, response.len);
        buf_fini(&response);
        if (sub_id)
            sip_subscribe_done(sh, aor_key, sub_id);      /* after the response */
        return;
    }
    sip_job_t *j = malloc(sizeof(*j) + m->len);
    if (!j)
        PANIC("out of memory handing a SIP request over");
    j->origin = *o;
    j->txn_key = txn_key ? strdup(txn_key) : NULL;
    j->user = strdup(aor_key);
    j->tp = (uint8_t)tp;
    j->len = m->len;
    buf_init(&j->response);
    memcpy(j->bytes, m->data, m->len);
    mbox_msg_t mm = { .ptr = j };
    if (shard_call(sh, home.shard, sip_job_run, &mm) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: a SIP request was dropped");
        sip_job_free(j);
    }
}

/* --- receiving --- */

static void sip_reply_now(shard_t *sh, const sip_origin_t *o, const char *txn_key,
                          const sip_msg_t *m, unsigned status, const char *reason,
                          const char *headers)
{
    buf_t out;
    buf_init(&out);
    sip_write(m, status, reason, headers, &out);
    if (out.len)
        sip_respond_bytes(sh, o, txn_key, (const char *)out.data, out.len);
    buf_fini(&out);
}

/* The account's HA1 for alg's base hash; false when there is none. */
static bool sip_load_ha1(shard_t *sh, const char *user, sip_digest_alg_t alg, uint8_t *ha1,
                         size_t *ha1_len, sip_digest_alg_t *ha1_alg)
{
    account_t a;
    void *raw = NULL;
    bool ok = false;
    if (account_load(shard_storage(sh), str_from_cstr(user), &a, &raw) == 0 &&
        !(a.flags & ACCOUNT_F_DISABLED)) {
        account_cred_kind_t kind = sip_digest_alg_base(alg) == SIP_DIGEST_SHA256
                                       ? ACCOUNT_CRED_DIGEST_SHA256 : ACCOUNT_CRED_DIGEST_MD5;
        ok = a.creds[kind].len &&
             sip_digest_ha1_decode((const uint8_t *)a.creds[kind].ptr, a.creds[kind].len,
                                   ha1_alg, ha1, ha1_len) == 0;
    }
    free(raw);
    return ok;
}

/*
 * RFC 3261 §22: the identity a request acts for (the registered AOR, the
 * publisher, the watcher) proves its password with digest, unless the request
 * comes from a trusted peer. Answers 401/403/400 itself and returns false when
 * the request may not go on.
 */
static bool sip_authorised(shard_t *sh, const sip_origin_t *o, const char *txn_key,
                           const sip_msg_t *m, const char *target)
{
    if (!sip_cfg.auth || (o->peer_len && sip_peer_trusted(&o->peer)))
        return true;
    char identity[600];
    if (m->method == SIP_METHOD_SUBSCRIBE || m->method == SIP_METHOD_MESSAGE) {
        /* The watcher (sender) is who asks; a foreign one proves nothing here. */
        if (sip_aor_key(m->from.uri, identity, sizeof(identity)) < 0) {
            sip_reply_now(sh, o, txn_key, m, 403, "Forbidden (watchers of this domain only)",
                          NULL);
            return false;
        }
    } else {
        snprintf(identity, sizeof(identity), "%s", target);
    }
    str_t realm = str_from_cstr(sip_cfg.domain);
    str_t local = { identity, (size_t)(strchr(identity, '@') - identity) };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    bool stale = false;
    for (const sip_hdr_t *h = sip_msg_get(m, SIP_HDR_AUTHORIZATION); h; h = sip_msg_next(m, h)) {
        sip_digest_creds_t creds;
        char scratch[SIP_DIGEST_VALUE_MAX_BYTES];
        int pr = sip_digest_creds_parse(h->value, &creds, scratch, sizeof(scratch));
        if (pr < 0) {
            sip_reply_now(sh, o, txn_key, m, 400, "Bad Request (Authorization)", NULL);
            return false;
        }
        if (pr == 0 || !str_eq(creds.realm, realm))
            continue;       /* another scheme, or credentials for another realm */
        if (!str_eq(creds.username, local)) {
            sip_reply_now(sh, o, txn_key, m, 403,
                          "Forbidden (credentials of another user)", NULL);
            return false;
        }
        uint8_t ha1[SIP_DIGEST_MAX_BYTES];
        size_t ha1_len = 0;
        sip_digest_alg_t ha1_alg = SIP_DIGEST_MD5;
        bool have = sip_digest_alg_supported(creds.alg) &&
                    sip_load_ha1(sh, identity, creds.alg, ha1, &ha1_len, &ha1_alg);
        sip_digest_request_t req = {
            .realm = realm,
            .method = m->method_name,
            .request_uri = m->request_uri,
            .body = m->body,
            .now_s = (uint64_t)ts.tv_sec,
        };
        sip_digest_result_t r = sip_digest_verify(&sip_digest_conf, &req, &creds,
                                                  have ? ha1 : NULL, ha1_len, ha1_alg);
        if (r == SIP_DIGEST_OK)
            return true;
        if (r == SIP_DIGEST_MALFORMED) {
            sip_reply_now(sh, o, txn_key, m, 400, "Bad Request (Authorization)", NULL);
            return false;
        }
        stale |= r == SIP_DIGEST_STALE;
    }
    buf_t h;
    buf_init(&h);
    if (sip_digest_challenge_headers(&sip_digest_conf, realm, (uint64_t)ts.tv_sec, stale, false,
                                     &h) < 0) {
        buf_fini(&h);
        sip_reply_now(sh, o, txn_key, m, 500, NULL, NULL);
        return false;
    }
    buf_append(&h, "", 1);
    sip_reply_now(sh, o, txn_key, m, 401, NULL, (const char *)h.data);
    buf_fini(&h);
    return false;
}

bool sip_branch_shard(str_t branch, unsigned *out)
{
    static const char magic[] = "z9hG4bK-";
    size_t i = sizeof(magic) - 1;
    if (branch.len <= i || memcmp(branch.ptr, magic, i))
        return false;
    unsigned v = 0;
    size_t start = i;
    while (i < branch.len && i - start < 5 && branch.ptr[i] >= '0' && branch.ptr[i] <= '9')
        v = v * 10 + (unsigned)(branch.ptr[i++] - '0');
    if (i == start || i >= branch.len || branch.ptr[i] != '-')
        return false;
    *out = v;
    return true;
}

typedef struct {
    uint8_t tp;
    size_t len;
    char bytes[];
} sip_fwd_t;

static void sip_forwarded_response(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    sip_fwd_t *f = msg->ptr;
    sip_response_peek_t pk;
    if (sip_msg_peek_response(f->bytes, f->len, &pk) == 0)
        sip_client_response(sh, &pk, f->bytes, f->len, (sip_msg_transport_t)f->tp);
    free(f);
}

static void sip_forward_response(shard_t *sh, unsigned dst, const char *data, size_t len,
                                 sip_msg_transport_t tp)
{
    sip_fwd_t *f = malloc(sizeof(*f) + len);
    if (!f)
        return;
    f->tp = (uint8_t)tp;
    f->len = len;
    memcpy(f->bytes, data, len);
    mbox_msg_t m = { .ptr = f };
    if (shard_call(sh, dst, sip_forwarded_response, &m) < 0)
        free(f);
}

/* What a refused client waits before trying again, s. */
#define SIP_OVERLOAD_RETRY_AFTER "5"
/* Each NOTIFY a shard sends waits for its answer. When answers come in faster than the shard
 * reads them, the socket's queue fills and drops some, and over UDP every lost answer sends
 * its NOTIFY again (up to ten times): the load feeds itself, and past the peak latency grew
 * to seconds; over TCP the NOTIFYs queue on the trunk's connection until it is closed as
 * a slow reader. So while this request waited SIP_QUEUE_LIMIT_US, or any shard is behind (a
 * standing queue, or max_unanswered requests of its own waiting for answers), work that
 * fans out into more requests is refused (RFC 3261 §21.5.4): PUBLISH, MESSAGE and a
 * SUBSCRIBE that starts a dialog. Refreshes and unsubscribes go on, and so do
 * retransmissions of what was taken (its transaction answers them). */
static bool sip_overloaded(shard_t *sh, const sip_shard_t *ss, const sip_msg_t *m)
{
    if (m->method != SIP_METHOD_PUBLISH && m->method != SIP_METHOD_MESSAGE &&
        (m->method != SIP_METHOD_SUBSCRIBE || m->to.tag.len))
        return false;
    uint64_t now = shard_now_ms(sh);
    if (sip_queue_behind(&ss->queue, now, shard_datagram_wait_us(sh)))
        return true;
    return atomic_load_explicit(&sip_shards_full, memory_order_relaxed) > 0 ||
           now < atomic_load_explicit(&sip_standing_until_ms, memory_order_relaxed);
}

static void sip_receive(shard_t *sh, const sip_origin_t *o, const char *data, size_t len,
                        sip_msg_transport_t tp)
{
    sip_shard_t *ss = sip_of(sh);
    /* A response is to one of our requests: what finds its transaction is read, no more.
     * Its branch names the shard that sent the request. */
    sip_response_peek_t pk;
    int pr = sip_msg_peek_response(data, len, &pk);
    if (pr < 0) {
        metric_inc(shard_metrics(sh), sip_mid.bad);
        return;
    }
    if (pr == 0) {
        unsigned owner;
        if (sip_branch_shard(pk.via.branch, &owner) && owner != shard_id(sh) &&
            owner < shard_count(sh))
            sip_forward_response(sh, owner, data, len, tp);
        else
            sip_client_response(sh, &pk, data, len, tp);
        return;
    }
    sip_msg_t *m = &ss->msg;
    ssize_t n = sip_msg_parse(m, data, len, tp, NULL);
    if (n < 0) {
        metric_inc(shard_metrics(sh), sip_mid.bad);
        if (m->is_request && sip_msg_can_reply(m))
            sip_reply_now(sh, o, NULL, m, sip_msg_err_status(m->err), sip_msg_err_reason(m->err),
                          NULL);
        return;
    }
    DEBUG_ASSERT(m->is_request);    /* the start line sip_msg_peek_response() read */
    metric_inc(shard_metrics(sh), (metric_id_t)(sip_mid.requests + m->method));
    if (m->method == SIP_METHOD_ACK)
        return;     /* §17.2.1: absorbed; only an INVITE's non-2xx needs it */
    buf_t kb;
    buf_init(&kb);
    const char *key = NULL;
    if (!o->stream && sip_txn_key(m, &kb) == 0) {
        key = (const char *)kb.data;
        sip_txn_t *t = sip_txn_find(ss, key);
        if (t) {
            metric_inc(shard_metrics(sh), sip_mid.retransmissions);
            if (t->response.len)
                sip_send(sh, o, t->response.data, t->response.len);
            buf_fini(&kb);
            return;
        }
        sip_txn_add(ss, key);
    }
    /* RFC 3261 §8.2.2.3: an extension the request requires and we do not
     * implement (none is, yet) ends it with 420 naming them. */
    if (sip_msg_get(m, SIP_HDR_REQUIRE) && m->method != SIP_METHOD_CANCEL) {
        buf_t h;
        buf_init(&h);
        sip_hdr_iter_t it;
        str_t tag;
        buf_append_str(&h, "Unsupported: ");
        bool first = true;
        for (sip_hdr_iter_init(&it, m, SIP_HDR_REQUIRE); sip_hdr_iter_next(&it, &tag) > 0;) {
            if (!first)
                buf_append_str(&h, ", ");
            for (size_t i = 0; i < tag.len; i++)     /* option-tags are tokens */
                if ((unsigned char)tag.ptr[i] > ' ' && tag.ptr[i] != ',' && tag.ptr[i] != 0x7f)
                    buf_append(&h, &tag.ptr[i], 1);
            first = false;
        }
        buf_append_str(&h, "\r\n");
        buf_append(&h, "", 1);
        if (!first)
            sip_reply_now(sh, o, key, m, 420, NULL, (const char *)h.data);
        buf_fini(&h);
        if (!first) {
            buf_fini(&kb);
            return;
        }
    }
    if (sip_overloaded(sh, ss, m)) {
        metric_inc(shard_metrics(sh), sip_mid.overload_refusals);
        sip_reply_now(sh, o, key, m, 503, "Service Unavailable (overloaded)",
                      "Retry-After: " SIP_OVERLOAD_RETRY_AFTER "\r\n");
        buf_fini(&kb);
        return;
    }
    switch (m->method) {
    case SIP_METHOD_OPTIONS:
        /* RFC 3261 §11.2: what this server does. */
        sip_reply_now(sh, o, key, m, 200, NULL,
                      "Allow: " SIP_ALLOWED_HERE "\r\n"
                      "Allow-Events: presence, presence.winfo\r\n"
                      "Accept: application/pidf+xml, application/watcherinfo+xml, "
                      "text/plain\r\n");
        break;
    case SIP_METHOD_REGISTER:
    case SIP_METHOD_PUBLISH:
    case SIP_METHOD_SUBSCRIBE:
    case SIP_METHOD_MESSAGE:
    case SIP_METHOD_NOTIFY: {
        /* The registrar's AOR is in To; a presentity is the Request-URI
         * (our Contact carries it for requests inside a dialog). */
        char aor[600];
        str_t uri = m->method == SIP_METHOD_REGISTER ? m->to.uri : m->request_uri;
        if (sip_aor_key(uri, aor, sizeof(aor)) < 0) {
            sip_reply_now(sh, o, key, m, 404, "Not Found (no such user here)", NULL);
            break;
        }
        /* A NOTIFY is only taken inside one of the gateway's dialogs. */
        if (m->method != SIP_METHOD_NOTIFY && !sip_authorised(sh, o, key, m, aor))
            break;
        sip_to_home(sh, o, key, aor, m, tp);
        break;
    }
    case SIP_METHOD_OTHER:
        sip_reply_now(sh, o, key, m, 501, NULL, "Allow: " SIP_ALLOWED_HERE "\r\n");
        break;
    default:
        /* §8.2.1: known, not served here. */
        sip_reply_now(sh, o, key, m, 405, NULL, "Allow: " SIP_ALLOWED_HERE "\r\n");
        break;
    }
    buf_fini(&kb);
}

/* --- UDP --- */

static void sip_udp_datagram(shard_t *sh, unsigned listener, const struct sockaddr *from,
                             socklen_t from_len, const char *data, size_t len)
{
    if (from_len > sizeof(struct sockaddr_storage))
        return;
    /* RFC 5626 §4.4.1: a CRLF keep-alive over UDP needs no answer here. */
    if (len <= 4 && strspn(data, "\r\n") >= len)
        return;
    sip_origin_t o = { .shard = (uint16_t)shard_id(sh), .listener = (uint16_t)listener,
                       .peer_len = from_len };
    memcpy(&o.peer, from, from_len);
    sip_queue_observed(sh, shard_datagram_wait_us(sh));
    sip_receive(sh, &o, data, len, SIP_MSG_DATAGRAM);
}

const dgram_proto_t sip_udp_proto = {
    .name = "sip-udp",
    .on_datagram = sip_udp_datagram,
};

/* --- TCP and TLS --- */

typedef struct {
    buf_t in;                   /* bytes of a message not complete yet */
    sip_frame_state_t frame;    /* how far framing read them: each byte once */
} sip_conn_t;

static void sip_tcp_open(conn_t *c)
{
    if (conn_state(c))
        return;
    sip_conn_t *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        conn_close(c, false);
        return;
    }
    buf_init(&sc->in);
    sip_frame_state_init(&sc->frame);
    conn_set_state(c, sc);
}

static int sip_tcp_data(conn_t *c, const char *data, size_t len)
{
    sip_conn_t *sc = conn_state(c);
    shard_t *sh = conn_shard(c);
    buf_append(&sc->in, data, len);
    sip_origin_t o = { .shard = (uint16_t)shard_id(sh), .stream = true, .tls = conn_is_tls(c),
                       .conn = conn_id(c) };
    size_t off = 0;
    while (off < sc->in.len) {
        sip_frame_t fr;
        const char *p = (const char *)sc->in.data + off;
        size_t avail = sc->in.len - off;
        ssize_t n = sip_msg_frame_resume(&sc->frame, p, avail, NULL, &fr);
        for (size_t i = 0; i < fr.pings; i++)
            conn_write(c, "\r\n", 2);       /* RFC 5626 §4.4.1 pong */
        off += fr.skip_bytes;
        if (n == 0)
            break;
        if (n < 0) {
            /* Out of step with the stream: answer if the head allows, then close. */
            metric_inc(shard_metrics(sh), sip_mid.bad);
            sip_msg_t *m = &sip_of(sh)->msg;
            sip_msg_parse(m, p + fr.skip_bytes, avail - fr.skip_bytes, SIP_MSG_STREAM, NULL);
            if (m->is_request && sip_msg_can_reply(m)) {
                buf_t out;
                buf_init(&out);
                sip_write(m, sip_msg_err_status((sip_msg_err_t)n),
                          sip_msg_err_reason((sip_msg_err_t)n), NULL, &out);
                if (out.len)
                    sip_respond_bytes(sh, &o, NULL, (const char *)out.data, out.len);
                buf_fini(&out);
            }
            conn_close(c, true);
            sc->in.len = 0;
            return 0;
        }
        sip_receive(sh, &o, (const char *)sc->in.data + off, (size_t)n, SIP_MSG_STREAM);
        off += (size_t)n;
    }
    if (off) {
        memmove(sc->in.data, sc->in.data + off, sc->in.len - off);
        sc->in.len -= off;
    }
    return 0;
}

static void sip_tcp_close(conn_t *c)
{
    sip_conn_t *sc = conn_state(c);
    if (!sc)
        return;
    buf_fini(&sc->in);
    free(sc);
    conn_set_state(c, NULL);
}

const conn_proto_t sip_tcp_proto = {
    .name = "sip-tcp",
    .on_open = sip_tcp_open,
    .on_data = sip_tcp_data,
    .on_close = sip_tcp_close,
};
