/*
 * xmpp_c2s.c - see xmpp_c2s.h. Stream states:
 *
 *   WAIT_HEADER --header--> NEGOTIATE --<auth> PLAIN ok--------------+
 *        ^                     |  \--<auth> SCRAM--> SASL --ok------+|
 *        |                     |<starttls/>: TLS, restart           ||
 *        +--restart (after TLS, and after SASL success)-------------++
 *   after SASL success the header leads to AUTHED --<bind>--> BOUND
 */
#include "protocols/xmpp/xmpp_c2s.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "engine/account.h"
#include "protocols/xmpp/xmpp_account.h"
#include "engine/log.h"
#include "engine/node.h"
#include "engine/route.h"
#include "protocols/xmpp/xmpp_int.h"
#include "protocols/xmpp/xmpp_jid.h"

/* Failed authentications before the stream is closed (RFC 6120 §6.4.5 lets
 * the server choose). */
#define C2S_AUTH_ATTEMPTS_MAX 3
/* SASL payloads: a SCRAM client-final is at most 2 KiB, base64 adds a third. */
#define C2S_SASL_B64_MAX 4096

static xmpp_c2s_config_t c2s_cfg;
xmpp_metric_ids_t xmpp_mid;

static const char *const c2s_mech_names[SASL_MECH_COUNT] = {
    "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
};
static const char *const c2s_kind_names[3] = { "message", "presence", "iq" };
static const char *c2s_cond_names[XMPP_XML_COND_COUNT];

unsigned xmpp_stanza_kind(char stanza)
{
    return stanza == 'm' ? 0 : stanza == 'p' ? 1 : 2;
}

const char *xmpp_domain(void)
{
    return c2s_cfg.domain;
}

const xmpp_c2s_config_t *xmpp_config(void)
{
    return &c2s_cfg;
}

static void c2s_register_metrics(metrics_t *m)
{
    for (unsigned i = 0; i < XMPP_XML_COND_COUNT; i++)
        c2s_cond_names[i] = i ? xmpp_xml_cond_name((xmpp_xml_cond_t)i) : "none";
    xmpp_mid.logins_ok = metrics_register_labelled(
        m, "xmpp_logins_total", "Successful XMPP authentications, by SASL mechanism.",
        METRIC_COUNTER, "mechanism", c2s_mech_names, SASL_MECH_COUNT);
    xmpp_mid.logins_failed = metrics_register_labelled(
        m, "xmpp_login_failures_total", "Failed XMPP authentications, by SASL mechanism.",
        METRIC_COUNTER, "mechanism", c2s_mech_names, SASL_MECH_COUNT);
    xmpp_mid.stanzas_in = metrics_register_labelled(
        m, "xmpp_stanzas_received_total", "Stanzas received from clients, by kind.",
        METRIC_COUNTER, "kind", c2s_kind_names, 3);
    xmpp_mid.stanzas_out = metrics_register_labelled(
        m, "xmpp_stanzas_delivered_total", "Routed stanzas delivered to sessions, by kind.",
        METRIC_COUNTER, "kind", c2s_kind_names, 3);
    xmpp_mid.presence_deliveries = metrics_register(
        m, "xmpp_presence_deliveries_total", "Presence stanzas written to watching sessions.",
        METRIC_COUNTER);
    xmpp_mid.offline_stored = metrics_register(
        m, "xmpp_offline_stored_total", "Messages stored for users without an available session.",
        METRIC_COUNTER);
    xmpp_mid.offline_delivered = metrics_register(
        m, "xmpp_offline_delivered_total", "Stored messages delivered at the next login.",
        METRIC_COUNTER);
    xmpp_mid.offline_refused = metrics_register(
        m, "xmpp_offline_refused_total", "Messages refused because the offline store was full.",
        METRIC_COUNTER);
    xmpp_mid.stream_errors = metrics_register_labelled(
        m, "xmpp_stream_errors_total", "Stream errors sent, by condition.", METRIC_COUNTER,
        "condition", c2s_cond_names, XMPP_XML_COND_COUNT);
    xmpp_mid.sessions = metrics_register(m, "xmpp_sessions",
                                         "XMPP sessions, bound or waiting for resumption.",
                                         METRIC_GAUGE);
    xmpp_mid.sessions_resumed = metrics_register(
        m, "xmpp_sessions_resumed_total", "Sessions resumed on a new stream (XEP-0198).",
        METRIC_COUNTER);
    xmpp_mid.sessions_detached = metrics_register(
        m, "xmpp_sessions_detached_total",
        "Sessions that lost their stream and waited for resumption (XEP-0198).", METRIC_COUNTER);
    xmpp_mid.carbons = metrics_register(m, "xmpp_carbons_total",
                                        "Message copies sent to a user's other clients (XEP-0280).",
                                        METRIC_COUNTER);
    xmpp_mid.blocked = metrics_register(m, "xmpp_blocked_stanzas_total",
                                        "Stanzas dropped or refused by a block list (XEP-0191).",
                                        METRIC_COUNTER);
}
static char c2s_domain[256];
static sasl_scram_conf_t c2s_scram_conf;
static xmpp_xml_limits_t c2s_limits;

int xmpp_c2s_configure(const xmpp_c2s_config_t *cfg)
{
    c2s_cfg = *cfg;
    snprintf(c2s_domain, sizeof(c2s_domain), "%s", cfg->domain);
    c2s_cfg.domain = c2s_domain;
    memcpy(c2s_scram_conf.fake_salt_key, cfg->fake_salt_key, 32);
    c2s_scram_conf.fake_iterations = SASL_ITERATIONS_DEFAULT;
    c2s_limits = xmpp_xml_limits_default;
    if (cfg->max_stanza_bytes) {
        c2s_limits.stanza_bytes_max = cfg->max_stanza_bytes;
        uint64_t tree = 8ull * cfg->max_stanza_bytes;
        c2s_limits.tree_bytes_max = (uint32_t)(tree < XMPP_XML_TREE_BYTES_LIMIT
                                                   ? tree : XMPP_XML_TREE_BYTES_LIMIT);
    }
    xmpp_xml_global_init();
    xmpp_sm_register_presence();
    if (cfg->metrics)
        c2s_register_metrics(cfg->metrics);
    return 0;
}

void c2s_write(c2s_t *st, const void *data, size_t len)
{
    if (st->conn && st->state != C2S_CLOSED)
        conn_write(st->conn, data, len);
}

static void c2s_write_str(c2s_t *st, const char *s)
{
    c2s_write(st, s, strlen(s));
}

void c2s_write_stanza(c2s_t *st, const void *data, size_t len)
{
    if (st->sess)
        xmpp_sess_write(st->sess, data, len);
    else
        c2s_write(st, data, len);
}

void xmpp_iq_result(c2s_t *st, const xmpp_xml_el_t *iq, const char *payload)
{
    const str_t *id = xmpp_xml_attr(iq, "id");
    const str_t *to = xmpp_xml_attr(iq, "to");
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<iq type='result'");
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    if (st->jid && st->sess)
        xmpp_xml_write_attr(&b, "to", str_from_cstr(st->jid));
    if (to)
        xmpp_xml_write_attr(&b, "from", *to);
    if (payload)
        buf_printf(&b, ">%s</iq>", payload);
    else
        buf_append_str(&b, "/>");
    c2s_write_stanza(st, b.data, b.len);
    buf_fini(&b);
}

void c2s_stream_error(c2s_t *st, xmpp_xml_cond_t cond, const char *text)
{
    if (st->state == C2S_CLOSED)
        return;
    buf_t b;
    buf_init(&b);
    if (st->state == C2S_WAIT_HEADER && !st->stream_id[0]) {
        /* RFC 6120 §4.9.1.3: open a stream first so the error has a parent. */
        xmpp_xml_header_t h = { .from = str_from_cstr(c2s_cfg.domain), .version = STR_LIT("1.0"),
                                .content_ns = STR_LIT(NS_CLIENT), .id = STR_LIT("error") };
        xmpp_xml_write_stream_open(&b, &h);
    }
    xmpp_xml_write_stream_error(&b, cond, text);
    xmpp_xml_write_stream_close(&b);
    st->clean_end = true;
    metric_inc(shard_metrics(conn_shard(st->conn)), (metric_id_t)(xmpp_mid.stream_errors + cond));
    c2s_write_buf(st, &b);
    buf_fini(&b);
    st->state = C2S_CLOSED;
    conn_close(st->conn, true);
}

void xmpp_stanza_error(c2s_t *st, const xmpp_xml_el_t *stanza, const char *type,
                       const char *cond)
{
    const str_t *t = xmpp_xml_attr(stanza, "type");
    if (t && str_eq_cstr(*t, "error"))
        return;     /* never answer an error with an error (RFC 6120 §8.3.1) */
    const str_t *id = xmpp_xml_attr(stanza, "id"), *to = xmpp_xml_attr(stanza, "to");
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<%.*s type='error'", (int)stanza->name.len, stanza->name.ptr);
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    if (to)
        xmpp_xml_write_attr(&b, "from", *to);
    if (st->jid && st->sess)
        xmpp_xml_write_attr(&b, "to", str_from_cstr(st->jid));
    buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></%.*s>", type, cond,
               (int)stanza->name.len, stanza->name.ptr);
    c2s_write_stanza(st, b.data, b.len);
    buf_fini(&b);
}

/* --- stream header and features --- */

static void c2s_features(c2s_t *st, buf_t *b)
{
    buf_append_str(b, "<stream:features>");
    if (!st->authed) {
        bool tls = conn_is_tls(st->conn);
        if (!tls && c2s_cfg.tls)
            buf_printf(b, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                       c2s_cfg.require_tls ? "<required/>" : "");
        if (tls || !c2s_cfg.require_tls) {
            buf_append_str(b, "<mechanisms xmlns='" NS_SASL "'>");
            /* Test authentication knows no password, so it takes PLAIN only. */
            if (!c2s_cfg.test_auth)
                buf_append_str(b, "<mechanism>SCRAM-SHA-256</mechanism>"
                                  "<mechanism>SCRAM-SHA-1</mechanism>");
            if (tls || c2s_cfg.plain_without_tls || c2s_cfg.test_auth)
                buf_append_str(b, "<mechanism>PLAIN</mechanism>");
            buf_append_str(b, "</mechanisms>");
            if (c2s_cfg.registration)
                buf_append_str(b, "<register xmlns='" NS_REGISTER_FEATURE "'/>");
        }
    } else {
        buf_append_str(b, "<bind xmlns='" NS_BIND "'/>"
                          "<session xmlns='" NS_SESSION "'><optional/></session>"
                          "<ver xmlns='" NS_ROSTERVER "'/>"
                          "<csi xmlns='" NS_CSI "'/>"
                          "<sm xmlns='" NS_SM "'/>");
    }
    buf_append_str(b, "</stream:features>");
}

static xmpp_xml_verdict_t c2s_on_header(void *ctx, const xmpp_xml_header_t *hdr)
{
    c2s_t *st = ctx;
    if (st->state != C2S_WAIT_HEADER)
        return XMPP_XML_CONTINUE;
    uint8_t rnd[8];
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(st->stream_id, sizeof(st->stream_id), "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    buf_t b;
    buf_init(&b);
    xmpp_xml_header_t h = { .from = str_from_cstr(c2s_cfg.domain),
                            .id = str_from_cstr(st->stream_id), .version = STR_LIT("1.0"),
                            .lang = STR_LIT("en"), .content_ns = STR_LIT(NS_CLIENT) };
    xmpp_xml_write_stream_open(&b, &h);
    c2s_write_buf(st, &b);
    buf_fini(&b);
    if (!str_eq_cstr(hdr->content_ns, NS_CLIENT)) {
        c2s_stream_error(st, XMPP_XML_COND_INVALID_NAMESPACE, NULL);
        return XMPP_XML_STOP;
    }
    char dom[1024];
    xmpp_jid_reason_t why;
    ssize_t dl = hdr->to.len ? xmpp_jid_prep_domainpart(hdr->to.ptr, hdr->to.len, dom,
                                                         sizeof(dom), &why)
                             : -EINVAL;
    if (dl < 0 || (size_t)dl != strlen(c2s_cfg.domain) || memcmp(dom, c2s_cfg.domain, (size_t)dl)) {
        c2s_stream_error(st, XMPP_XML_COND_HOST_UNKNOWN, NULL);
        return XMPP_XML_STOP;
    }
    if (!str_eq_cstr(hdr->version, "1.0")) {
        c2s_stream_error(st, XMPP_XML_COND_UNSUPPORTED_VERSION, NULL);
        return XMPP_XML_STOP;
    }
    buf_init(&b);
    c2s_features(st, &b);
    c2s_write_buf(st, &b);
    buf_fini(&b);
    st->state = st->authed ? C2S_AUTHED : C2S_NEGOTIATE;
    return XMPP_XML_CONTINUE;
}

/* --- SASL --- */

static void c2s_sasl_failure(c2s_t *st, sasl_failure_t why, const char *text)
{
    if (st->mech < SASL_MECH_COUNT)
        metric_inc(shard_metrics(conn_shard(st->conn)),
                   (metric_id_t)(xmpp_mid.logins_failed + st->mech));
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<failure xmlns='" NS_SASL "'><%s/>", sasl_failure_name(why));
    if (text) {
        buf_append_str(&b, "<text xml:lang='en'>");
        xmpp_xml_write_text(&b, str_from_cstr(text));
        buf_append_str(&b, "</text>");
    }
    buf_append_str(&b, "</failure>");
    c2s_write_buf(st, &b);
    buf_fini(&b);
    if (st->scram) {
        sasl_scram_server_fini(st->scram);
        free(st->scram);
        st->scram = NULL;
    }
    st->state = C2S_NEGOTIATE;
}

static int c2s_b64_decode(str_t in, uint8_t *out, size_t cap, size_t *len)
{
    if (in.len == 1 && in.ptr[0] == '=') {      /* RFC 6120 §6.4.2: empty response */
        *len = 0;
        return 0;
    }
    if (!EVP_DecodeBase64(out, len, cap, (const uint8_t *)in.ptr, in.len))
        return -EBADMSG;
    return 0;
}

static void c2s_b64_element(c2s_t *st, const char *name, const char *data, size_t len)
{
    size_t enc_len;
    EVP_EncodedLength(&enc_len, len);
    char *enc = malloc(enc_len);
    EVP_EncodeBlock((uint8_t *)enc, (const uint8_t *)data, len);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "<%s xmlns='" NS_SASL "'>%s</%s>", name, len ? enc : "=", name);
    c2s_write_buf(st, &b);
    buf_fini(&b);
    free(enc);
}

/* The account key ("local@domain") for a SASL username. */
static int c2s_account_key(str_t username, char *out, size_t cap)
{
    xmpp_jid_reason_t why;
    ssize_t n = xmpp_jid_prep_localpart(username.ptr, username.len, out, cap, &why);
    if (n < 0 || (size_t)n + 1 + strlen(c2s_cfg.domain) + 1 > cap)
        return -EINVAL;
    snprintf(out + n, cap - (size_t)n, "@%s", c2s_cfg.domain);
    return (int)strlen(out);
}

static bool c2s_load_creds(c2s_t *st, const char *key, sasl_hash_t hash,
                           sasl_scram_creds_t *creds, bool *disabled)
{
    account_t a;
    void *raw;
    *disabled = false;
    if (account_load(shard_storage(conn_shard(st->conn)), str_from_cstr(key), &a, &raw) < 0)
        return false;
    account_cred_kind_t kind = hash == SASL_HASH_SHA1 ? ACCOUNT_CRED_SCRAM_SHA1
                                                      : ACCOUNT_CRED_SCRAM_SHA256;
    bool ok = a.creds[kind].len &&
              sasl_scram_creds_decode((const uint8_t *)a.creds[kind].ptr, a.creds[kind].len,
                                      creds) == 0;
    *disabled = (a.flags & ACCOUNT_F_DISABLED) != 0;
    free(raw);
    return ok;
}

/* --- account changes on the user's home shard (registration, test auth) --- */

typedef enum {
    ACCT_CREATE,            /* in-band registration: fails if the account exists */
    ACCT_CREATE_IF_MISSING, /* test authentication: nobody waits for the answer */
    ACCT_PASSWD,            /* password change by the logged-in user */
} c2s_acct_kind_t;

typedef struct {
    uint16_t origin;
    uint8_t kind;
    int rc;
    uint64_t conn;          /* 0: no reply */
    char *id;               /* the iq's id */
    char *user;             /* "local@domain" */
    char *password;         /* wiped before it is freed */
    size_t password_len;
} c2s_acct_op_t;

static void c2s_acct_free(c2s_acct_op_t *op)
{
    OPENSSL_cleanse(op->password, op->password_len);
    free(op->password);
    free(op->user);
    free(op->id);
    free(op);
}

/* Origin shard: the answer for the connection that asked, if still there. */
static void c2s_acct_done(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    c2s_acct_op_t *op = msg->ptr;
    conn_t *c = op->conn ? conn_by_id(sh, op->conn) : NULL;
    c2s_t *st = c ? conn_state(c) : NULL;
    if (st && st->state != C2S_CLOSED) {
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "<iq type='%s'", op->rc == 0 ? "result" : "error");
        xmpp_xml_write_attr(&b, "id", str_from_cstr(op->id));
        if (op->rc == 0)
            buf_append_str(&b, "/>");
        else
            buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></iq>",
                       op->rc == -EEXIST ? "cancel" : "wait",
                       op->rc == -EEXIST ? "conflict" : "internal-server-error");
        c2s_write_stanza(st, b.data, b.len);
        buf_fini(&b);
    }
    c2s_acct_free(op);
}

static void c2s_acct_reply(shard_t *sh, c2s_acct_op_t *op)
{
    if (!op->conn) {
        c2s_acct_free(op);
        return;
    }
    mbox_msg_t m = { .ptr = op };
    if (shard_call(sh, op->origin, c2s_acct_done, &m) < 0) {
        LOG_RATELIMITED(LOG_LEVEL_WARN, "mailbox full: an account change went unanswered");
        c2s_acct_free(op);
    }
}

static void c2s_acct_durable(shard_t *sh, void *arg, uint64_t arg2, int rc)
{
    (void)arg2;
    c2s_acct_op_t *op = arg;
    op->rc = rc;
    c2s_acct_reply(sh, op);
}

/* Home shard of the account. */
static void c2s_acct_apply(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    c2s_acct_op_t *op = msg->ptr;
    str_t user = str_from_cstr(op->user);
    void *raw = NULL;
    size_t len;
    bool exists = stor_get(shard_storage(sh), STOR_CF_ACCOUNTS, user.ptr, user.len, &raw,
                           &len) == 0;
    free(raw);
    if ((exists && op->kind != ACCT_PASSWD) || (!exists && op->kind == ACCT_PASSWD)) {
        op->rc = exists ? -EEXIST : -ENOENT;
        c2s_acct_reply(sh, op);
        return;
    }
    buf_t v;
    buf_init(&v);
    op->rc = xmpp_account_encode(user, (str_t){ op->password, op->password_len },
                                 (uint64_t)time(NULL), NULL, &v);
    if (op->rc == 0) {
        stor_batch_put(shard_batch(sh), STOR_CF_ACCOUNTS, user.ptr, user.len, v.data, v.len);
        shard_on_durable(sh, c2s_acct_durable, op, 0);
    } else {
        c2s_acct_reply(sh, op);
    }
    buf_fini(&v);
}

static void c2s_acct_request(c2s_t *st, c2s_acct_kind_t kind, const char *user, str_t password,
                             const str_t *iq_id)
{
    shard_t *sh = conn_shard(st->conn);
    c2s_acct_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        PANIC("out of memory changing an account");
    op->origin = (uint16_t)shard_id(sh);
    op->kind = (uint8_t)kind;
    op->conn = iq_id ? conn_id(st->conn) : 0;
    op->id = iq_id ? strndup(iq_id->ptr, iq_id->len) : NULL;
    op->user = strdup(user);
    op->password = malloc(password.len + 1);
    memcpy(op->password, password.ptr, password.len);
    op->password_len = password.len;
    route_t home = route_user(user, strlen(user), shard_count(sh));
    mbox_msg_t m = { .ptr = op };
    if (shard_call(sh, home.shard, c2s_acct_apply, &m) < 0) {
        op->rc = -EAGAIN;
        c2s_acct_done(sh, &m);
    }
}

/* XEP-0077 before authentication: the form, and account creation. */
static void c2s_register_pre_auth(c2s_t *st, const xmpp_xml_el_t *iq, const xmpp_xml_el_t *q)
{
    const str_t *type = xmpp_xml_attr(iq, "type");
    const str_t *id = xmpp_xml_attr(iq, "id");
    if (!type || !id) {
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    if (str_eq_cstr(*type, "get")) {
        xmpp_iq_result(st, iq, "<query xmlns='" NS_REGISTER "'>"
                               "<instructions>Choose a username and password.</instructions>"
                               "<username/><password/></query>");
        return;
    }
    if (!str_eq_cstr(*type, "set")) {
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    str_t username = xmpp_xml_child_text(q, "username", NS_REGISTER);
    str_t password = xmpp_xml_child_text(q, "password", NS_REGISTER);
    char key[XMPP_JID_MAX_BYTES + 1], prepared[SASL_PASSWORD_MAX_BYTES];
    size_t plen;
    if (xmpp_xml_child(q, "remove", NS_REGISTER)) {
        xmpp_stanza_error(st, iq, "auth", "not-authorized");
        return;
    }
    /* XEP-0077 §3.1: a missing or unusable field is not-acceptable. */
    if (!username.len || !password.len || c2s_account_key(username, key, sizeof(key)) < 0 ||
        sasl_password_prepare(password.ptr, password.len, prepared, sizeof(prepared), &plen) < 0) {
        xmpp_stanza_error(st, iq, "modify", "not-acceptable");
        return;
    }
    OPENSSL_cleanse(prepared, sizeof(prepared));
    c2s_acct_request(st, ACCT_CREATE, key, password, id);
}

void xmpp_register_iq(c2s_t *st, const xmpp_xml_el_t *iq, const xmpp_xml_el_t *q)
{
    const str_t *type = xmpp_xml_attr(iq, "type");
    const str_t *id = xmpp_xml_attr(iq, "id");
    if (!c2s_cfg.registration) {
        xmpp_stanza_error(st, iq, "cancel", "service-unavailable");
        return;
    }
    if (type && str_eq_cstr(*type, "get")) {
        buf_t b;
        buf_init(&b);
        buf_append_str(&b, "<query xmlns='" NS_REGISTER "'><registered/><username>");
        xmpp_xml_write_text(&b, (str_t){ st->jid, (size_t)(strchr(st->jid, '@') - st->jid) });
        buf_append_str(&b, "</username><password/></query>");
        buf_append(&b, "", 1);
        xmpp_iq_result(st, iq, b.data);
        buf_fini(&b);
        return;
    }
    str_t username = xmpp_xml_child_text(q, "username", NS_REGISTER);
    str_t password = xmpp_xml_child_text(q, "password", NS_REGISTER);
    char key[XMPP_JID_MAX_BYTES + 1], prepared[SASL_PASSWORD_MAX_BYTES];
    size_t plen;
    if (xmpp_xml_child(q, "remove", NS_REGISTER)) {
        /* Cancelling an account from a client is left to the operator. */
        xmpp_stanza_error(st, iq, "cancel", "not-allowed");
        return;
    }
    /* XEP-0077 §3.3: a password change names the user's own username. */
    if (!username.len || !password.len || c2s_account_key(username, key, sizeof(key)) < 0 ||
        strlen(key) != st->bare_len || memcmp(key, st->jid, st->bare_len) ||
        sasl_password_prepare(password.ptr, password.len, prepared, sizeof(prepared), &plen) < 0) {
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    OPENSSL_cleanse(prepared, sizeof(prepared));
    c2s_acct_request(st, ACCT_PASSWD, key, password, id);
}

static xmpp_xml_verdict_t c2s_auth_success(c2s_t *st, const char *key, const char *extra,
                                           size_t extra_len)
{
    if (extra_len)
        c2s_b64_element(st, "success", extra, extra_len);
    else
        c2s_write_str(st, "<success xmlns='" NS_SASL "'/>");
    if (st->scram) {
        sasl_scram_server_fini(st->scram);
        free(st->scram);
        st->scram = NULL;
    }
    metric_inc(shard_metrics(conn_shard(st->conn)), (metric_id_t)(xmpp_mid.logins_ok + st->mech));
    st->jid = strdup(key);
    st->bare_len = (uint16_t)strlen(key);
    st->authed = true;
    st->state = C2S_WAIT_HEADER;
    st->stream_id[0] = 0;
    st->restart = true;     /* RFC 6120 §6.4.6: a new stream follows */
    shard_t *sh = conn_shard(st->conn);
    route_t home = route_user(key, strlen(key), shard_count(sh));
    st->move_pending = home.shard != shard_id(sh);
    LOG_DEBUG("%s authenticated (home shard %u)", key, home.shard);
    return XMPP_XML_STOP;
}

static xmpp_xml_verdict_t c2s_auth(c2s_t *st, const xmpp_xml_el_t *el)
{
    uint8_t msg[C2S_SASL_B64_MAX];
    size_t len;
    char out[SASL_SERVER_FIRST_MAX_BYTES], key[XMPP_JID_MAX_BYTES + 1];
    size_t out_len;
    const str_t *mech_attr = xmpp_xml_attr(el, "mechanism");
    sasl_mech_t mech;
    bool tls = conn_is_tls(st->conn);

    if (!tls && c2s_cfg.require_tls) {
        c2s_sasl_failure(st, SASL_FAIL_ENCRYPTION_REQUIRED, NULL);
        return XMPP_XML_CONTINUE;
    }
    st->mech = SASL_MECH_COUNT;
    if (mech_attr && sasl_mech_from_name(*mech_attr, &mech) == 0)
        st->mech = (uint8_t)mech;
    if (!mech_attr || sasl_mech_from_name(*mech_attr, &mech) < 0 ||
        (mech == SASL_MECH_PLAIN && !tls && !c2s_cfg.plain_without_tls && !c2s_cfg.test_auth) ||
        (mech != SASL_MECH_PLAIN && c2s_cfg.test_auth)) {
        c2s_sasl_failure(st, SASL_FAIL_INVALID_MECHANISM, NULL);
        return XMPP_XML_CONTINUE;
    }
    if (xmpp_xml_text(el).len > C2S_SASL_B64_MAX ||
        c2s_b64_decode(xmpp_xml_text(el), msg, sizeof(msg), &len) < 0) {
        c2s_sasl_failure(st, SASL_FAIL_INCORRECT_ENCODING, NULL);
        return XMPP_XML_CONTINUE;
    }
    if (mech == SASL_MECH_PLAIN) {
        str_t authzid, authcid, password;
        sasl_scram_creds_t creds;
        bool disabled;
        if (sasl_plain_parse((const char *)msg, len, &authzid, &authcid, &password) < 0) {
            c2s_sasl_failure(st, SASL_FAIL_MALFORMED_REQUEST, NULL);
            return XMPP_XML_CONTINUE;
        }
        if (c2s_cfg.test_auth && c2s_account_key(authcid, key, sizeof(key)) > 0) {
            /* Any password; an unknown account is created with this one. */
            if (!c2s_load_creds(st, key, SASL_HASH_SHA256, &creds, &disabled))
                c2s_acct_request(st, ACCT_CREATE_IF_MISSING, key, password, NULL);
            return c2s_auth_success(st, key, NULL, 0);
        }
        if (c2s_account_key(authcid, key, sizeof(key)) < 0 ||
            !c2s_load_creds(st, key, SASL_HASH_SHA256, &creds, &disabled) ||
            sasl_plain_verify(&creds, password) != 0) {
            c2s_sasl_failure(st, SASL_FAIL_NOT_AUTHORIZED, NULL);
            return XMPP_XML_CONTINUE;
        }
        if (disabled) {
            c2s_sasl_failure(st, SASL_FAIL_ACCOUNT_DISABLED, NULL);
            return XMPP_XML_CONTINUE;
        }
        return c2s_auth_success(st, key, NULL, 0);
    }
    sasl_hash_t hash = mech == SASL_MECH_SCRAM_SHA_1 ? SASL_HASH_SHA1 : SASL_HASH_SHA256;
    st->scram = malloc(sizeof(*st->scram));
    if (!st->scram) {
        c2s_sasl_failure(st, SASL_FAIL_TEMPORARY_AUTH_FAILURE, NULL);
        return XMPP_XML_CONTINUE;
    }
    sasl_scram_server_init(st->scram, &c2s_scram_conf);
    st->scram_hash = hash;
    int rc = sasl_scram_server_start(st->scram, hash, (const char *)msg, len);
    if (rc < 0) {
        c2s_sasl_failure(st, sasl_failure_for_error(rc), sasl_error_text(rc));
        return XMPP_XML_CONTINUE;
    }
    sasl_scram_creds_t creds;
    bool disabled = false, known = false;
    int kl = c2s_account_key(sasl_scram_server_username(st->scram), key, sizeof(key));
    if (kl > 0)
        known = c2s_load_creds(st, key, hash, &creds, &disabled);
    else
        snprintf(key, sizeof(key), "invalid@%s", c2s_cfg.domain);
    rc = sasl_scram_server_first(st->scram, known && !disabled ? &creds : NULL,
                                 str_from_cstr(key), out, sizeof(out), &out_len);
    if (rc < 0) {
        c2s_sasl_failure(st, sasl_failure_for_error(rc), sasl_error_text(rc));
        return XMPP_XML_CONTINUE;
    }
    free(st->jid);
    st->jid = strdup(key);      /* remembered for the final step */
    c2s_b64_element(st, "challenge", out, out_len);
    st->state = C2S_SASL;
    return XMPP_XML_CONTINUE;
}

static xmpp_xml_verdict_t c2s_response(c2s_t *st, const xmpp_xml_el_t *el)
{
    uint8_t msg[C2S_SASL_B64_MAX];
    size_t len, out_len;
    char out[SASL_SERVER_FINAL_MAX_BYTES];
    if (xmpp_xml_text(el).len > C2S_SASL_B64_MAX ||
        c2s_b64_decode(xmpp_xml_text(el), msg, sizeof(msg), &len) < 0) {
        c2s_sasl_failure(st, SASL_FAIL_INCORRECT_ENCODING, NULL);
        return XMPP_XML_CONTINUE;
    }
    int rc = sasl_scram_server_final(st->scram, (const char *)msg, len, out, sizeof(out),
                                     &out_len);
    if (rc < 0) {
        free(st->jid);
        st->jid = NULL;
        c2s_sasl_failure(st, sasl_failure_for_error(rc), sasl_error_text(rc));
        return XMPP_XML_CONTINUE;
    }
    char key[XMPP_JID_MAX_BYTES + 1];
    snprintf(key, sizeof(key), "%s", st->jid);
    free(st->jid);
    st->jid = NULL;
    return c2s_auth_success(st, key, out, out_len);
}

/* --- stanzas by state --- */

static xmpp_xml_verdict_t c2s_negotiate(c2s_t *st, const xmpp_xml_el_t *el)
{
    if (st->state == C2S_NEGOTIATE && xmpp_xml_is(el, "starttls", NS_TLS) && c2s_cfg.tls &&
        !conn_is_tls(st->conn)) {
        c2s_write_str(st, "<proceed xmlns='" NS_TLS "'/>");
        st->tls_pending = true;
        st->state = C2S_WAIT_HEADER;
        st->stream_id[0] = 0;
        return XMPP_XML_STOP;
    }
    if (st->state == C2S_NEGOTIATE && xmpp_xml_is(el, "auth", NS_SASL))
        return c2s_auth(st, el);
    const xmpp_xml_el_t *reg = xmpp_xml_is(el, "iq", NS_CLIENT) && el->child_count == 1
                                   ? xmpp_xml_child(el, "query", NS_REGISTER) : NULL;
    if (st->state == C2S_NEGOTIATE && reg && c2s_cfg.registration &&
        (conn_is_tls(st->conn) || !c2s_cfg.require_tls)) {
        c2s_register_pre_auth(st, el, reg);
        return XMPP_XML_CONTINUE;
    }
    if (st->state == C2S_SASL && xmpp_xml_is(el, "response", NS_SASL))
        return c2s_response(st, el);
    if (st->state == C2S_SASL && xmpp_xml_is(el, "abort", NS_SASL)) {
        c2s_sasl_failure(st, SASL_FAIL_ABORTED, NULL);
        return XMPP_XML_CONTINUE;
    }
    /* RFC 6120 §6.4.1 / §7.3: nothing else before authentication. */
    c2s_stream_error(st, XMPP_XML_COND_NOT_AUTHORIZED, NULL);
    return XMPP_XML_STOP;
}

static void c2s_bind(c2s_t *st, const xmpp_xml_el_t *iq)
{
    const xmpp_xml_el_t *bind = xmpp_xml_child(iq, "bind", NS_BIND);
    str_t res = bind ? xmpp_xml_child_text(bind, "resource", NS_BIND) : (str_t){ 0 };
    char gen[24];
    if (res.len == 0) {
        uint8_t rnd[6];
        RAND_bytes(rnd, sizeof(rnd));
        snprintf(gen, sizeof(gen), "pd%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                 rnd[3], rnd[4], rnd[5]);
        res = str_from_cstr(gen);
    }
    int rc = xmpp_sm_bind(st, res.ptr, res.len);
    if (rc == -EINVAL) {
        xmpp_stanza_error(st, iq, "modify", "bad-request");
        return;
    }
    if (rc < 0) {
        xmpp_stanza_error(st, iq, "wait", "resource-constraint");
        return;
    }
    const str_t *id = xmpp_xml_attr(iq, "id");
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "<iq type='result'");
    if (id)
        xmpp_xml_write_attr(&b, "id", *id);
    buf_append_str(&b, "><bind xmlns='" NS_BIND "'><jid>");
    xmpp_xml_write_text(&b, str_from_cstr(st->jid));
    buf_append_str(&b, "</jid></bind></iq>");
    c2s_write_buf(st, &b);
    buf_fini(&b);
    st->state = C2S_BOUND;
}

static xmpp_xml_verdict_t c2s_on_stanza(void *ctx, const xmpp_xml_el_t *el)
{
    c2s_t *st = ctx;
    switch (st->state) {
    case C2S_NEGOTIATE:
    case C2S_SASL:
        return c2s_negotiate(st, el);
    case C2S_AUTHED: {
        const str_t *type = xmpp_xml_attr(el, "type");
        if (xmpp_xml_is(el, "iq", NS_CLIENT) && type && str_eq_cstr(*type, "set") &&
            xmpp_xml_child(el, "bind", NS_BIND)) {
            c2s_bind(st, el);
            return XMPP_XML_CONTINUE;
        }
        if (xmpp_xml_is(el, "resume", NS_SM)) {
            if (xmpp_sm_resume(st, el))
                st->state = C2S_BOUND;
            return XMPP_XML_CONTINUE;
        }
        if (xmpp_xml_is(el, "enable", NS_SM)) {
            /* XEP-0198 §3: only after binding. */
            c2s_write_str(st, "<failed xmlns='" NS_SM "'><unexpected-request xmlns='" NS_STANZAS
                              "'/></failed>");
            return XMPP_XML_CONTINUE;
        }
        /* RFC 6120 §7.3: stanzas before binding. */
        c2s_stream_error(st, XMPP_XML_COND_NOT_AUTHORIZED, NULL);
        return XMPP_XML_STOP;
    }
    case C2S_BOUND:
        if (el->ns.len && (str_eq_cstr(el->ns, NS_SM) || str_eq_cstr(el->ns, NS_CSI))) {
            xmpp_sm_nonza(st, el);
            return st->state == C2S_CLOSED ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
        }
        if (el->name.len)
            metric_inc(shard_metrics(conn_shard(st->conn)),
                       (metric_id_t)(xmpp_mid.stanzas_in + xmpp_stanza_kind(el->name.ptr[0])));
        xmpp_sm_count_in(st);
        xmpp_sm_stanza(st, el);
        return st->state == C2S_CLOSED ? XMPP_XML_STOP : XMPP_XML_CONTINUE;
    default:
        return XMPP_XML_STOP;
    }
}

static void c2s_on_closed(void *ctx)
{
    c2s_t *st = ctx;
    if (st->state == C2S_CLOSED)
        return;
    buf_t b;
    buf_init(&b);
    xmpp_xml_write_stream_close(&b);
    c2s_write_buf(st, &b);
    buf_fini(&b);
    st->clean_end = true;   /* XEP-0198 §5: a closed stream is not resumed */
    st->state = C2S_CLOSED;
    conn_close(st->conn, true);
}

static void c2s_on_error(void *ctx, const xmpp_xml_error_t *err)
{
    c2s_t *st = ctx;
    LOG_DEBUG("stream error %s: %s", xmpp_xml_cond_name(err->cond), err->reason);
    c2s_stream_error(st, err->cond, NULL);
}

static const xmpp_xml_cbs_t c2s_xml_cbs = {
    .header = c2s_on_header,
    .stanza = c2s_on_stanza,
    .keepalive = NULL,
    .closed = c2s_on_closed,
    .error = c2s_on_error,
};

/* --- the connection protocol --- */

static void c2s_open(conn_t *c)
{
    c2s_t *st = conn_state(c);
    if (st) {
        st->conn = c;   /* arrived by handoff: same state, new connection */
        return;
    }
    st = calloc(1, sizeof(*st));
    if (!st) {
        conn_close(c, false);
        return;
    }
    st->conn = c;
    xmpp_xml_init(&st->xml, &c2s_limits, &c2s_xml_cbs, st);
    conn_set_state(c, st);
}

static int c2s_data(conn_t *c, const char *data, size_t len)
{
    c2s_t *st = conn_state(c);
    st->ping_out = false;
    while (len > 0 && st->state != C2S_CLOSED) {
        ssize_t used = xmpp_xml_feed(&st->xml, data, len);
        if (used < 0)
            return 0;   /* the error callback answered and closed */
        data += used;
        len -= (size_t)used;
        if (st->tls_pending) {
            /* RFC 6120 §5.4.3.3: what follows <starttls/> is TLS. */
            st->tls_pending = false;
            xmpp_xml_reset(&st->xml);
            if (conn_start_tls(c, c2s_cfg.tls, data, len) < 0)
                conn_close(c, false);
            return 0;
        }
        if (st->restart) {
            st->restart = false;
            xmpp_xml_reset(&st->xml);
            if (st->move_pending) {
                st->move_pending = false;
                shard_t *sh = conn_shard(c);
                route_t home = route_user(st->jid, st->bare_len, shard_count(sh));
                if (conn_handoff(c, home.shard, data, len) < 0)
                    c2s_stream_error(st, XMPP_XML_COND_INTERNAL_SERVER_ERROR, NULL);
                return 0;
            }
        }
    }
    return 0;
}

static void c2s_shutdown(conn_t *c)
{
    c2s_t *st = conn_state(c);
    if (!st) {
        conn_close(c, true);
        return;
    }
    c2s_stream_error(st, XMPP_XML_COND_SYSTEM_SHUTDOWN, NULL);
}

/* Silent for the idle timeout: a bound client gets an XEP-0199 ping and one
 * more timeout to answer; then (or before binding) connection-timeout. */
static bool c2s_idle(conn_t *c)
{
    c2s_t *st = conn_state(c);
    if (!st)
        return false;
    if (st->state == C2S_BOUND && !st->ping_out) {
        st->ping_out = true;
        buf_t b;
        buf_init(&b);
        buf_append_str(&b, "<iq type='get' id='idle-ping'");
        xmpp_xml_write_attr(&b, "from", str_from_cstr(c2s_cfg.domain));
        xmpp_xml_write_attr(&b, "to", str_from_cstr(st->jid));
        buf_append_str(&b, "><ping xmlns='" NS_PING "'/></iq>");
        c2s_write_stanza(st, b.data, b.len);
        buf_fini(&b);
        return true;
    }
    c2s_stream_error(st, XMPP_XML_COND_CONNECTION_TIMEOUT, NULL);
    return false;
}

static void c2s_close(conn_t *c)
{
    c2s_t *st = conn_state(c);
    if (!st)
        return;
    st->state = C2S_CLOSED;
    if (st->sess)
        xmpp_sm_unbind(st);
    if (st->scram) {
        sasl_scram_server_fini(st->scram);
        free(st->scram);
    }
    xmpp_xml_fini(&st->xml);
    free(st->jid);
    free(st);
    conn_set_state(c, NULL);
}

const conn_proto_t xmpp_c2s_proto = {
    .name = "xmpp-c2s",
    .on_open = c2s_open,
    .on_data = c2s_data,
    .on_shutdown = c2s_shutdown,
    .on_idle = c2s_idle,
    .on_close = c2s_close,
};
