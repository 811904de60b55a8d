/*
 * http_admin_api.c - the admin API on the admin endpoint, used by presencectl.
 *
 *   GET    /api/v1/users                       accounts, one bare JID per line
 *   GET    /api/v1/users/{jid}                 "jid <jid>\nshard <home shard>\n"; 404
 *   PUT    /api/v1/users/{jid}                 body: the password; 201 new, 204 changed
 *   DELETE /api/v1/users/{jid}                 the account and its contact list; 204/404
 *   PUT    /api/v1/users/{jid}/roster/{jid}    body: JSON {"name", "groups", "subscription"}
 *   GET, PUT, DELETE /api/v1/users/{jid}/line  body: the phone line's SIP URI (the presence
 *                                               gateway watches it at the call control)
 *   POST   /api/v1/import                      body: JSON lines (see tools/presencectl.c)
 *
 * Writes go to each user's home shard (the only shard that writes a user's
 * records, DESIGN.md §2, §5) as one message per shard, and the reply is sent
 * once every home shard has committed them: an answered request is durable.
 * JIDs in paths are percent-encoded and normalised here (RFC 7622).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "engine/account.h"
#include "engine/contact.h"
#include "engine/presence.h"
#include "protocols/sip/sip_msg.h"
#include "protocols/xmpp/xmpp_account.h"
#include "engine/log.h"
#include "engine/node.h"
#include "engine/route.h"
#include "protocols/http/http_admin_int.h"
#include "protocols/xmpp/sasl.h"
#include "protocols/xmpp/xmpp_jid.h"

/* Accounts per import request: presencectl sends at most this many lines;
 * more is refused so that one request stays a bounded amount of work. */
#define ADMIN_IMPORT_MAX_LINES 10000

/* --- write jobs spread over home shards --- */

/* OP_ACCOUNT carries a password (admin_account_value): the home shard derives
 * the credentials, so a bulk import spreads its key stretching over every
 * shard. */
typedef enum { OP_PUT, OP_DEL, OP_DEL_PREFIX, OP_ACCOUNT } admin_op_kind_t;

/* A list of writes for one home shard, built by the shard that took the
 * request and returned to it for release. */
typedef struct admin_writes {
    struct admin_job *job;
    buf_t ops;          /* (u8 kind, u8 cf, u32 klen, key, u32 vlen, value)* */
    unsigned count;
    int rc;
} admin_writes_t;

typedef struct admin_job {
    uint64_t conn;
    unsigned pending;   /* shards that have not answered */
    int rc;
    unsigned status;    /* on success */
    char body[128];
    admin_writes_t *per_shard[];
} admin_job_t;

static void admin_op(admin_writes_t *w, admin_op_kind_t kind, stor_cf_t cf, const void *key,
                     size_t klen, const void *val, size_t vlen)
{
    uint8_t head[2] = { (uint8_t)kind, (uint8_t)cf };
    uint32_t k = (uint32_t)klen, v = (uint32_t)vlen;
    buf_append(&w->ops, head, 2);
    buf_append(&w->ops, &k, 4);
    buf_append(&w->ops, key, klen);
    buf_append(&w->ops, &v, 4);
    buf_append(&w->ops, val, vlen);
    w->count++;
}

static admin_job_t *admin_job_new(conn_t *c, unsigned shards)
{
    admin_job_t *job = calloc(1, sizeof(*job) + sizeof(admin_writes_t *) * shards);
    if (!job)
        PANIC("out of memory starting an admin job");
    (void)c;
    job->status = 204;
    return job;
}

static admin_writes_t *admin_writes_for(admin_job_t *job, unsigned shard)
{
    if (!job->per_shard[shard]) {
        admin_writes_t *w = calloc(1, sizeof(*w));
        if (!w)
            PANIC("out of memory starting an admin job");
        w->job = job;
        buf_init(&w->ops);
        job->per_shard[shard] = w;
    }
    return job->per_shard[shard];
}

static unsigned admin_home(conn_t *c, str_t user)
{
    return route_user(user.ptr, user.len, shard_count(conn_shard(c))).shard;
}

/* Origin shard: one home shard has committed (or failed). */
static void admin_writes_done(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    admin_writes_t *w = msg->ptr;
    admin_job_t *job = w->job;
    if (w->rc < 0)
        job->rc = w->rc;
    buf_fini(&w->ops);
    free(w);
    if (--job->pending > 0)
        return;
    if (job->rc < 0)
        http_admin_respond_later(sh, job->conn, 500, "text/plain", "storage error\n", 14);
    else
        http_admin_respond_later(sh, job->conn, job->status, "text/plain", job->body,
                                 strlen(job->body));
    free(job);
}

static void admin_writes_durable(shard_t *sh, void *arg, uint64_t origin, int rc)
{
    admin_writes_t *w = arg;
    w->rc = rc;
    mbox_msg_t m = { .ptr = w };
    if (shard_call(sh, (unsigned)origin, admin_writes_done, &m) < 0)
        PANIC("mailbox refused an admin reply");
}

typedef struct {
    stor_batch_t *b;
    stor_cf_t cf;
} admin_del_ctx_t;

static int admin_del_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    admin_del_ctx_t *d = ctx;
    (void)val;
    (void)vlen;
    stor_batch_delete(d->b, d->cf, key, klen);
    return 0;
}

/* The value of an OP_ACCOUNT op: u32 iterations (0: the default) | u8 salt
 * length (0: a fresh random salt) | salt | password. Salt and count were
 * checked against the stored policy before the job was sent. */
static void admin_account_value(buf_t *v, str_t password, const uint8_t *salt, size_t salt_len,
                                uint32_t iterations)
{
    uint8_t sl = (uint8_t)salt_len;
    ASSERT(salt_len <= SASL_SALT_MAX_BYTES);
    buf_append(v, &iterations, 4);
    buf_append(v, &sl, 1);
    buf_append(v, salt, salt_len);
    buf_append(v, password.ptr, password.len);
}

/*
 * Credentials derived with an imported salt, per shard (thread-local: the home
 * shard's thread is the only one that applies account writes). An import that
 * gives many accounts one password and one salt, as load tests provision
 * thousands of users, then stretches the password once per shard rather than
 * once per account: PBKDF2 is nearly the whole cost of an import line. Entries
 * are keyed by a SHA-256 of the password, so no plaintext outlives the
 * request; the digest tells no more than the StoredKey beside it. Four entries
 * cover an import's few distinct (password, salt) pairs; random salts never
 * repeat and are not cached.
 */
#define ADMIN_DERIVE_CACHE_ENTRIES 4

typedef struct {
    bool valid;
    uint8_t pw_digest[SHA256_DIGEST_LENGTH];
    sasl_scram_creds_t creds;   /* hash, salt and iterations are part of the key */
} admin_derive_entry_t;

static _Thread_local admin_derive_entry_t admin_derive_cache[ADMIN_DERIVE_CACHE_ENTRIES];
static _Thread_local unsigned admin_derive_next;

static int admin_derive_cached(sasl_hash_t hash, str_t password, const uint8_t *salt,
                               size_t salt_len, uint32_t iterations, sasl_scram_creds_t *out)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)password.ptr, password.len, digest);
    for (unsigned i = 0; i < ADMIN_DERIVE_CACHE_ENTRIES; i++) {
        const admin_derive_entry_t *e = &admin_derive_cache[i];
        if (e->valid && e->creds.hash == hash && e->creds.iterations == iterations &&
            e->creds.salt_len == salt_len && !memcmp(e->creds.salt, salt, salt_len) &&
            !memcmp(e->pw_digest, digest, sizeof(digest))) {
            *out = e->creds;
            return 0;
        }
    }
    int rc = sasl_scram_derive(hash, password.ptr, password.len, salt, salt_len, iterations, out);
    if (rc < 0)
        return rc;
    admin_derive_entry_t *e = &admin_derive_cache[admin_derive_next++ % ADMIN_DERIVE_CACHE_ENTRIES];
    e->valid = true;
    memcpy(e->pw_digest, digest, sizeof(digest));
    e->creds = *out;
    return 0;
}

/* Home shard: derives both SCRAM credentials (and so PLAIN) from the
 * password and writes the account. A password that cannot be prepared was
 * refused before the job was sent. */
static void admin_account_apply(stor_batch_t *b, str_t user, str_t value)
{
    static const sasl_hash_t hashes[2] = { SASL_HASH_SHA1, SASL_HASH_SHA256 };
    uint32_t iterations;
    ASSERT(value.len >= 5);
    memcpy(&iterations, value.ptr, 4);
    size_t salt_len = (uint8_t)value.ptr[4];
    ASSERT(value.len >= 5 + salt_len);
    const uint8_t *salt = (const uint8_t *)value.ptr + 5;
    str_t password = { value.ptr + 5 + salt_len, value.len - 5 - salt_len };
    if (!iterations)
        iterations = SASL_ITERATIONS_DEFAULT;
    sasl_scram_creds_t creds[2];
    for (int i = 0; i < 2; i++) {
        int rc = salt_len ? admin_derive_cached(hashes[i], password, salt, salt_len, iterations,
                                                &creds[i])
                          : sasl_scram_creds_new(hashes[i], password.ptr, password.len,
                                                 iterations, &creds[i]);
        if (rc < 0)
            PANIC("deriving credentials from a checked password failed");
    }
    buf_t v;
    buf_init(&v);
    if (xmpp_account_encode(user, password, (uint64_t)time(NULL), creds, &v) < 0)
        PANIC("account record over its limits");
    stor_batch_put(b, STOR_CF_ACCOUNTS, user.ptr, user.len, v.data, v.len);
    buf_fini(&v);
}

/* Home shard: applies the writes to this turn's batch. */
static void admin_writes_apply(void *ctx, const mbox_msg_t *msg)
{
    shard_t *sh = ctx;
    admin_writes_t *w = msg->ptr;
    stor_batch_t *b = shard_batch(sh);
    const uint8_t *p = (const uint8_t *)w->ops.data, *end = p + w->ops.len;
    while (p < end) {
        admin_op_kind_t kind = p[0];
        stor_cf_t cf = p[1];
        uint32_t klen, vlen;
        memcpy(&klen, p + 2, 4);
        const uint8_t *key = p + 6;
        memcpy(&vlen, key + klen, 4);
        const uint8_t *val = key + klen + 4;
        p = val + vlen;
        if (kind == OP_ACCOUNT) {
            admin_account_apply(b, (str_t){ (const char *)key, klen },
                                (str_t){ (const char *)val, vlen });
        } else if (kind == OP_PUT) {
            stor_batch_put(b, cf, key, klen, val, vlen);
            if (cf == STOR_CF_LINES)
                pres_line_changed(sh, (str_t){ (const char *)key, klen },
                                  (str_t){ (const char *)val, vlen });
        } else if (kind == OP_DEL) {
            stor_batch_delete(b, cf, key, klen);
            if (cf == STOR_CF_LINES)
                pres_line_changed(sh, (str_t){ (const char *)key, klen }, (str_t){ "", 0 });
        } else {
            admin_del_ctx_t d = { b, cf };
            stor_scan_prefix(shard_storage(sh), cf, key, klen, admin_del_one, &d);
        }
    }
    shard_on_durable(sh, admin_writes_durable, w, msg->u64);
}

/* Sends every shard's writes; replies when all committed. */
static int admin_job_run(conn_t *c, const http_request_t *req, admin_job_t *job)
{
    shard_t *sh = conn_shard(c);
    job->conn = http_admin_defer(c, req);
    for (unsigned s = 0; s < shard_count(sh); s++)
        job->pending += job->per_shard[s] != NULL;
    if (job->pending == 0) {
        /* Nothing to write: answer through the same path, next turn. */
        admin_writes_t *w = admin_writes_for(job, shard_id(sh));
        job->pending = 1;
        mbox_msg_t m = { .ptr = w };
        shard_call(sh, shard_id(sh), admin_writes_done, &m);
        return 1;
    }
    for (unsigned s = 0; s < shard_count(sh); s++) {
        if (!job->per_shard[s])
            continue;
        mbox_msg_t m = { .ptr = job->per_shard[s], .u64 = shard_id(sh) };
        if (shard_call(sh, s, admin_writes_apply, &m) < 0)
            PANIC("mailbox to shard %u refused admin writes", s);
    }
    return 1;
}

/* --- request helpers --- */

static int admin_text(conn_t *c, const http_request_t *req, unsigned status, const char *text)
{
    return http_admin_respond(c, req, status, "text/plain", text, strlen(text));
}

/* Percent-decodes one path segment into out (NUL-terminated). */
static int admin_pct_decode(str_t in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        char ch = in.ptr[i];
        if (ch == '%') {
            if (i + 2 >= in.len)
                return -EBADMSG;
            char hex[3] = { in.ptr[i + 1], in.ptr[i + 2], 0 };
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || v <= 0)
                return -EBADMSG;
            ch = (char)v;
            i += 2;
        }
        if (n + 1 >= cap)
            return -ENOSPC;
        out[n++] = ch;
    }
    out[n] = 0;
    return (int)n;
}

/* A bare JID from a path segment or a JSON string; 400 text in err. */
static int admin_bare_jid(const char *s, size_t len, xmpp_jid_t *jid, char *err, size_t err_len)
{
    if (xmpp_jid_parse(s, len, jid) < 0) {
        xmpp_jid_part_t part;
        xmpp_jid_reason_t why = xmpp_jid_error(jid, &part);
        snprintf(err, err_len, "invalid JID '%.*s': %s %s\n", (int)(len > 100 ? 100 : len), s,
                 xmpp_jid_part_name(part), xmpp_jid_reason_name(why));
        return -EINVAL;
    }
    if (!xmpp_jid_has_local(jid) || xmpp_jid_has_resource(jid)) {
        snprintf(err, err_len, "'%.*s' is not a user's bare JID (local@domain)\n",
                 (int)(len > 100 ? 100 : len), s);
        return -EINVAL;
    }
    return 0;
}

/* Splits "/api/v1/users/a/roster/b" into segments after "/api/v1/". */
static unsigned admin_segments(str_t path, str_t *seg, unsigned max)
{
    static const char prefix[] = "/api/v1/";
    if (path.len < sizeof(prefix) - 1 || memcmp(path.ptr, prefix, sizeof(prefix) - 1))
        return 0;
    const char *p = path.ptr + sizeof(prefix) - 1, *end = path.ptr + path.len;
    unsigned n = 0;
    while (p < end && n < max) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        seg[n++] = (str_t){ p, (size_t)(e - p) };
        p = slash ? slash + 1 : end;
    }
    return p < end ? max + 1 : n;
}

/* --- account credentials --- */

/* Refuses a password the home shard could not prepare (RFC 8265 §4.2). */
static bool admin_password_ok(const char *pw, size_t len)
{
    char prepared[SASL_PASSWORD_MAX_BYTES];
    size_t n;
    return len > 0 && sasl_password_prepare(pw, len, prepared, sizeof(prepared), &n) == 0;
}


/* Roster versions must only grow (XEP-0237); the wall clock in microseconds,
 * kept strictly increasing per shard, does that without a read. */
static uint64_t admin_roster_version(void)
{
    static _Thread_local uint64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    last = now > last ? now : last + 1;
    return last;
}

static int admin_put_contact(admin_writes_t *w, str_t user, str_t contact, json_t *item,
                             char *err, size_t err_len)
{
    contact_t ct = { 0 };
    json_t *name = json_object_get(item, "name");
    json_t *groups = json_object_get(item, "groups");
    json_t *sub = json_object_get(item, "subscription");
    if (name && json_is_string(name))
        ct.name = (str_t){ json_string_value(name), json_string_length(name) };
    if (groups && json_is_array(groups)) {
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g) {
            if (!json_is_string(g) || ct.n_groups == CONTACT_GROUPS_MAX) {
                snprintf(err, err_len, "groups must be at most %d strings\n",
                         CONTACT_GROUPS_MAX);
                return -EINVAL;
            }
            ct.groups[ct.n_groups++] = (str_t){ json_string_value(g), json_string_length(g) };
        }
    }
    const char *s = sub && json_is_string(sub) ? json_string_value(sub) : "none";
    if (!strcmp(s, "none"))
        ct.sub = 0;
    else if (!strcmp(s, "to"))
        ct.sub = SUB_TO;
    else if (!strcmp(s, "from"))
        ct.sub = SUB_FROM;
    else if (!strcmp(s, "both"))
        ct.sub = SUB_TO | SUB_FROM;
    else {
        snprintf(err, err_len, "subscription must be none, to, from or both\n");
        return -EINVAL;
    }
    buf_t k, v, ver;
    buf_init(&k);
    buf_init(&v);
    buf_init(&ver);
    int rc = contact_encode(&ct, &v);
    if (rc < 0) {
        snprintf(err, err_len, "contact name or groups too long\n");
    } else {
        contact_key(user, contact, &k);
        admin_op(w, OP_PUT, STOR_CF_ROSTERS, k.data, k.len, v.data, v.len);
        k.len = 0;
        contact_version_key(user, &k);
        contact_version_encode(admin_roster_version(), &ver);
        admin_op(w, OP_PUT, STOR_CF_ROSTERS, k.data, k.len, ver.data, ver.len);
    }
    buf_fini(&k);
    buf_fini(&v);
    buf_fini(&ver);
    return rc;
}

/* --- handlers --- */

static int admin_list_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    buf_append(ctx, key, klen);
    buf_append(ctx, "\n", 1);
    return 0;
}

static int admin_users_list(conn_t *c, const http_request_t *req)
{
    buf_t out;
    buf_init(&out);
    stor_scan_prefix(shard_storage(conn_shard(c)), STOR_CF_ACCOUNTS, "", 0, admin_list_one,
                     &out);
    int rc = http_admin_respond(c, req, 200, "text/plain", out.data ? out.data : "", out.len);
    buf_fini(&out);
    return rc;
}

static int admin_user_put(conn_t *c, const http_request_t *req, str_t user)
{
    if (req->body.len == 0)
        return admin_text(c, req, 400, "the body must be the password\n");
    if (!admin_password_ok(req->body.ptr, req->body.len))
        return admin_text(c, req, 400, "the password is not usable (invalid UTF-8 or too long)\n");
    void *raw = NULL;
    account_t old;
    bool exists = account_load(shard_storage(conn_shard(c)), user, &old, &raw) == 0;
    free(raw);
    admin_job_t *job = admin_job_new(c, shard_count(conn_shard(c)));
    buf_t v;
    buf_init(&v);
    admin_account_value(&v, req->body, NULL, 0, 0);
    admin_op(admin_writes_for(job, admin_home(c, user)), OP_ACCOUNT, STOR_CF_ACCOUNTS, user.ptr,
             user.len, v.data, v.len);
    OPENSSL_cleanse(v.data, v.len);
    buf_fini(&v);
    job->status = exists ? 204 : 201;
    snprintf(job->body, sizeof(job->body), "%s\n", exists ? "changed" : "created");
    return admin_job_run(c, req, job);
}

static int admin_user_delete(conn_t *c, const http_request_t *req, str_t user)
{
    void *raw = NULL;
    size_t len;
    if (stor_get(shard_storage(conn_shard(c)), STOR_CF_ACCOUNTS, user.ptr, user.len, &raw,
                 &len) < 0)
        return admin_text(c, req, 404, "no such user\n");
    free(raw);
    admin_job_t *job = admin_job_new(c, shard_count(conn_shard(c)));
    admin_writes_t *w = admin_writes_for(job, admin_home(c, user));
    admin_op(w, OP_DEL, STOR_CF_ACCOUNTS, user.ptr, user.len, NULL, 0);
    buf_t prefix;
    buf_init(&prefix);
    contact_version_key(user, &prefix);     /* "<user>\0": the whole contact list */
    admin_op(w, OP_DEL_PREFIX, STOR_CF_ROSTERS, prefix.data, prefix.len, NULL, 0);
    buf_fini(&prefix);
    return admin_job_run(c, req, job);
}

static int admin_roster_put(conn_t *c, const http_request_t *req, str_t user, str_t contact)
{
    char err[256];
    json_error_t jerr;
    json_t *item = req->body.len ? json_loadb(req->body.ptr, req->body.len, 0, &jerr)
                                 : json_object();
    if (!item || !json_is_object(item)) {
        json_decref(item);
        return admin_text(c, req, 400, "the body must be a JSON object\n");
    }
    admin_job_t *job = admin_job_new(c, shard_count(conn_shard(c)));
    int rc = admin_put_contact(admin_writes_for(job, admin_home(c, user)), user, contact, item,
                               err, sizeof(err));
    json_decref(item);
    if (rc < 0) {
        for (unsigned s = 0; s < shard_count(conn_shard(c)); s++)
            if (job->per_shard[s]) {
                buf_fini(&job->per_shard[s]->ops);
                free(job->per_shard[s]);
            }
        free(job);
        return admin_text(c, req, 400, err);
    }
    return admin_job_run(c, req, job);
}

/* The optional "salt" (base64) and "iterations" of an import line, checked
 * against the policy stored credentials keep (sasl.h): 0, or -EINVAL with the
 * 400 text in err. Absent: *salt_len 0, *iterations 0 (the defaults). */
static int admin_import_kdf(json_t *o, uint8_t *salt, size_t *salt_len, uint32_t *iterations,
                            char *err, size_t err_len)
{
    json_t *js = json_object_get(o, "salt"), *ji = json_object_get(o, "iterations");
    *salt_len = 0;
    *iterations = 0;
    if (js) {
        /* Decoded into a buffer with room for what EVP_DecodeBase64 may write
         * before it notices the input is too long. */
        uint8_t tmp[SASL_SALT_MAX_BYTES * 2];
        size_t n;
        if (!json_is_string(js) || json_string_length(js) > 4 * SASL_SALT_MAX_BYTES / 3 + 4 ||
            !EVP_DecodeBase64(tmp, &n, sizeof(tmp), (const uint8_t *)json_string_value(js),
                              json_string_length(js)) ||
            n < SASL_SALT_MIN_BYTES || n > SASL_SALT_MAX_BYTES) {
            snprintf(err, err_len, "\"salt\" must be base64 of %d to %d bytes\n",
                     SASL_SALT_MIN_BYTES, SASL_SALT_MAX_BYTES);
            return -EINVAL;
        }
        memcpy(salt, tmp, n);
        *salt_len = n;
    }
    if (ji) {
        json_int_t i = json_is_integer(ji) ? json_integer_value(ji) : 0;
        if (i < SASL_ITERATIONS_MIN || i > SASL_ITERATIONS_MAX) {
            snprintf(err, err_len, "\"iterations\" must be an integer from %u to %u\n",
                     SASL_ITERATIONS_MIN, SASL_ITERATIONS_MAX);
            return -EINVAL;
        }
        *iterations = (uint32_t)i;
    }
    return 0;
}

/* One JSON line: {"jid", "password", optional "salt" (base64) and "iterations",
 * "roster": [{"jid", "name", "groups", "subscription"}]}. */
static int admin_import_line(conn_t *c, admin_job_t *job, const char *line, size_t len,
                             char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    int rc = -EINVAL;
    if (!o || !json_is_object(o)) {
        snprintf(err, err_len, "not a JSON object: %s\n", o ? "" : jerr.text);
        goto out;
    }
    json_t *jid = json_object_get(o, "jid"), *pw = json_object_get(o, "password");
    if (!json_is_string(jid) || !json_is_string(pw)) {
        snprintf(err, err_len, "\"jid\" and \"password\" strings are required\n");
        goto out;
    }
    xmpp_jid_t user;
    if (admin_bare_jid(json_string_value(jid), json_string_length(jid), &user, err, err_len) < 0)
        goto out;
    if (!admin_password_ok(json_string_value(pw), json_string_length(pw))) {
        snprintf(err, err_len, "unusable password for %s\n", json_string_value(jid));
        goto out;
    }
    uint8_t salt[SASL_SALT_MAX_BYTES];
    size_t salt_len;
    uint32_t iterations;
    if (admin_import_kdf(o, salt, &salt_len, &iterations, err, err_len) < 0)
        goto out;
    str_t ukey = xmpp_jid_bare(&user);
    admin_writes_t *w = admin_writes_for(job, admin_home(c, ukey));
    buf_t v;
    buf_init(&v);
    admin_account_value(&v, (str_t){ json_string_value(pw), json_string_length(pw) }, salt,
                        salt_len, iterations);
    admin_op(w, OP_ACCOUNT, STOR_CF_ACCOUNTS, ukey.ptr, ukey.len, v.data, v.len);
    OPENSSL_cleanse(v.data, v.len);
    buf_fini(&v);
    json_t *roster = json_object_get(o, "roster");
    if (roster && json_is_array(roster)) {
        size_t i;
        json_t *item;
        json_array_foreach(roster, i, item) {
            json_t *cj = json_object_get(item, "jid");
            xmpp_jid_t contact;
            if (!json_is_object(item) || !json_is_string(cj) ||
                admin_bare_jid(json_string_value(cj), json_string_length(cj), &contact, err,
                               err_len) < 0 ||
                admin_put_contact(w, ukey, xmpp_jid_bare(&contact), item, err, err_len) < 0) {
                if (!json_is_string(cj))
                    snprintf(err, err_len, "a roster item needs a \"jid\" string\n");
                goto out;
            }
        }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static int admin_import(conn_t *c, const http_request_t *req)
{
    char err[300];
    admin_job_t *job = admin_job_new(c, shard_count(conn_shard(c)));
    const char *p = req->body.ptr, *end = p + req->body.len;
    unsigned lines = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e > p) {
            if (++lines > ADMIN_IMPORT_MAX_LINES) {
                snprintf(err, sizeof(err), "at most %d accounts per request\n",
                         ADMIN_IMPORT_MAX_LINES);
                rc = -E2BIG;
            } else {
                rc = admin_import_line(c, job, p, (size_t)(e - p), err, sizeof(err));
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (rc < 0) {
        for (unsigned s = 0; s < shard_count(conn_shard(c)); s++)
            if (job->per_shard[s]) {
                buf_fini(&job->per_shard[s]->ops);
                free(job->per_shard[s]);
            }
        free(job);
        char msg[360];
        snprintf(msg, sizeof(msg), "line %u: %s", lines, err);
        return admin_text(c, req, 400, msg);
    }
    job->status = 200;
    snprintf(job->body, sizeof(job->body), "imported %u\n", lines);
    return admin_job_run(c, req, job);
}

/* A user's phone line: the SIP URI the presence gateway subscribes to. */
static int admin_line(conn_t *c, const http_request_t *req, str_t user)
{
    str_t m = req->method_name;
    stor_t *st = shard_storage(conn_shard(c));
    void *raw = NULL;
    size_t len;
    if (stor_get(st, STOR_CF_ACCOUNTS, user.ptr, user.len, &raw, &len) < 0)
        return admin_text(c, req, 404, "no such user\n");
    free(raw);
    if (str_eq_cstr(m, "GET")) {
        raw = NULL;
        if (stor_get(st, STOR_CF_LINES, user.ptr, user.len, &raw, &len) < 0)
            return admin_text(c, req, 404, "no line\n");
        int rc = http_admin_respond(c, req, 200, "text/plain", raw, len);
        free(raw);
        return rc;
    }
    bool put = str_eq_cstr(m, "PUT");
    if (!put && !str_eq_cstr(m, "DELETE"))
        return admin_text(c, req, 405, "use GET, PUT or DELETE\n");
    str_t uri = req->body;
    while (uri.len && (uri.ptr[uri.len - 1] == '\n' || uri.ptr[uri.len - 1] == '\r'))
        uri.len--;
    sip_uri_t u;
    if (put && (!uri.len || uri.len > 256 || sip_uri_parse(uri, &u) < 0 ||
                (u.scheme != SIP_SCHEME_SIP && u.scheme != SIP_SCHEME_SIPS) || !u.host.len))
        return admin_text(c, req, 400, "the body must be a sip: or sips: URI\n");
    admin_job_t *job = admin_job_new(c, shard_count(conn_shard(c)));
    admin_writes_t *w = admin_writes_for(job, admin_home(c, user));
    if (put)
        admin_op(w, OP_PUT, STOR_CF_LINES, user.ptr, user.len, uri.ptr, uri.len);
    else
        admin_op(w, OP_DEL, STOR_CF_LINES, user.ptr, user.len, NULL, 0);
    return admin_job_run(c, req, job);
}

int http_admin_api(conn_t *c, const http_request_t *req)
{
    str_t seg[5];
    unsigned n = admin_segments(req->path, seg, 4);
    str_t m = req->method_name;
    char a[XMPP_JID_MAX_BYTES + 1], b[XMPP_JID_MAX_BYTES + 1], err[256];
    xmpp_jid_t user, contact;

    if (!shard_storage(conn_shard(c)))
        return admin_text(c, req, 503, "no storage\n");
    if (n == 1 && str_eq_cstr(seg[0], "import")) {
        if (!str_eq_cstr(m, "POST"))
            return admin_text(c, req, 405, "use POST\n");
        return admin_import(c, req);
    }
    if (n == 0 || n > 4 || !str_eq_cstr(seg[0], "users"))
        return admin_text(c, req, 404, "not found\n");
    if (n == 1) {
        if (!str_eq_cstr(m, "GET"))
            return admin_text(c, req, 405, "use GET\n");
        return admin_users_list(c, req);
    }
    int la = admin_pct_decode(seg[1], a, sizeof(a));
    if (la < 0 || admin_bare_jid(a, (size_t)la, &user, err, sizeof(err)) < 0)
        return admin_text(c, req, 400, la < 0 ? "bad percent-encoding\n" : err);
    if (n == 2) {
        if (str_eq_cstr(m, "GET")) {
            str_t key = xmpp_jid_bare(&user);
            void *raw = NULL;
            size_t len;
            if (stor_get(shard_storage(conn_shard(c)), STOR_CF_ACCOUNTS, key.ptr, key.len, &raw,
                         &len) < 0)
                return admin_text(c, req, 404, "no such user\n");
            free(raw);
            char out[XMPP_JID_MAX_BYTES + 64];
            int ol = snprintf(out, sizeof(out), "jid %.*s\nshard %u\n", (int)key.len, key.ptr,
                              admin_home(c, key));
            return http_admin_respond(c, req, 200, "text/plain", out, (size_t)ol);
        }
        if (str_eq_cstr(m, "PUT"))
            return admin_user_put(c, req, xmpp_jid_bare(&user));
        if (str_eq_cstr(m, "DELETE"))
            return admin_user_delete(c, req, xmpp_jid_bare(&user));
        return admin_text(c, req, 405, "use GET, PUT or DELETE\n");
    }
    if (n == 3 && str_eq_cstr(seg[2], "line"))
        return admin_line(c, req, xmpp_jid_bare(&user));
    if (n != 4 || !str_eq_cstr(seg[2], "roster"))
        return admin_text(c, req, 404, "not found\n");
    int lb = admin_pct_decode(seg[3], b, sizeof(b));
    if (lb < 0 || admin_bare_jid(b, (size_t)lb, &contact, err, sizeof(err)) < 0)
        return admin_text(c, req, 400, lb < 0 ? "bad percent-encoding\n" : err);
    if (!str_eq_cstr(m, "PUT"))
        return admin_text(c, req, 405, "use PUT\n");
    return admin_roster_put(c, req, xmpp_jid_bare(&user), xmpp_jid_bare(&contact));
}
