/*
 * stor_mem.c - the in-memory store: one sorted array of entries per column
 * family, behind one mutex.
 *
 * Why sorted arrays: this store backs unit tests and the simulator, whose data
 * sets are small; binary search gives key-ordered scans for free and the code
 * is short enough to trust. Inserts move the tail of the array (O(n)), which
 * is fine at those sizes and would not be for a production data set.
 *
 * Atomic commits: every allocation a batch needs (entry copies, array growth)
 * is made before the first change, so a commit either fails having changed
 * nothing or applies every operation; the mutex makes it atomic to readers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storage/stor_int.h"

/* One allocation per entry: the key bytes, then the value bytes. */
typedef struct {
    uint8_t *kv;
    size_t klen, vlen;
} stor_mem_ent_t;

typedef struct {
    stor_mem_ent_t *ents;
    size_t len, cap;
} stor_mem_cf_t;

typedef struct {
    stor_t base;
    pthread_mutex_t mu;             /* guards cfs and fail_commits */
    stor_mem_cf_t cfs[STOR_CF_COUNT];
    unsigned fail_commits;
} stor_mem_t;

/* A queued operation; its key and value live in the batch's byte buffer. */
typedef struct {
    uint8_t cf;
    bool del;
    size_t off, klen, vlen;
} stor_mem_op_t;

typedef struct {
    stor_batch_t base;
    stor_mem_op_t *ops;
    size_t nops, ops_cap;
    uint8_t *bytes;
    size_t nbytes, bytes_cap;
} stor_mem_batch_t;

_Static_assert(STOR_CF_COUNT <= UINT8_MAX, "stor_mem_op_t.cf is a byte");

static const stor_ops_t stor_mem_ops;

static stor_mem_t *stor_mem_of(stor_t *st)
{
    ASSERT(st->ops == &stor_mem_ops);
    return container_of(st, stor_mem_t, base);
}

static stor_mem_batch_t *stor_mem_batch_of(stor_batch_t *b)
{
    ASSERT(b->st->ops == &stor_mem_ops);
    return container_of(b, stor_mem_batch_t, base);
}

/* Bytewise order, a proper prefix first: RocksDB's BytewiseComparator. */
static int stor_mem_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

/* Index of the first entry whose key is >= key. */
static size_t stor_mem_lower_bound(const stor_mem_cf_t *c, const void *key, size_t klen)
{
    size_t lo = 0, hi = c->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const stor_mem_ent_t *e = &c->ents[mid];
        if (stor_mem_cmp(e->kv, e->klen, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool stor_mem_is(const stor_mem_cf_t *c, size_t i, const void *key, size_t klen)
{
    return i < c->len && stor_mem_cmp(c->ents[i].kv, c->ents[i].klen, key, klen) == 0;
}

static bool stor_mem_has_prefix(const stor_mem_ent_t *e, const void *prefix, size_t plen)
{
    return e->klen >= plen && (plen == 0 || memcmp(e->kv, prefix, plen) == 0);
}

/*
 * A larger buffer for an array of cap elements of size sz that must hold need:
 * capacity doubles, so n appends cost O(n). NULL on ENOMEM, buf untouched.
 * Callers call it only when need > *cap.
 */
static void *stor_mem_grow(void *buf, size_t *cap, size_t need, size_t sz)
{
    size_t n = *cap ? *cap : 16;
    while (n < need && n <= SIZE_MAX / 2)
        n *= 2;
    if (n < need || n > SIZE_MAX / sz)
        return NULL;
    void *p = realloc(buf, n * sz);
    if (p)
        *cap = n;
    return p;
}

/* ---- lifetime ---- */

stor_t *stor_open_mem(void)
{
    stor_mem_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    stor_base_init(&m->base, &stor_mem_ops);
    return &m->base;
}

static void stor_mem_close(stor_t *st)
{
    stor_mem_t *m = stor_mem_of(st);
    for (size_t cf = 0; cf < STOR_CF_COUNT; cf++) {
        for (size_t i = 0; i < m->cfs[cf].len; i++)
            free(m->cfs[cf].ents[i].kv);
        free(m->cfs[cf].ents);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void stor_mem_fail_commits(stor_t *st, unsigned n)
{
    stor_mem_t *m = stor_mem_of(st);
    pthread_mutex_lock(&m->mu);
    m->fail_commits = n;
    pthread_mutex_unlock(&m->mu);
}

/* ---- batches ---- */

static stor_batch_t *stor_mem_batch_create(stor_t *st)
{
    stor_mem_batch_t *mb = calloc(1, sizeof(*mb));
    if (!mb)
        return NULL;
    stor_batch_base_init(&mb->base, st);
    return &mb->base;
}

static void stor_mem_batch_destroy(stor_batch_t *b)
{
    stor_mem_batch_t *mb = stor_mem_batch_of(b);
    free(mb->ops);
    free(mb->bytes);
    free(mb);
}

static void stor_mem_batch_add(stor_batch_t *b, stor_cf_t cf, bool del, const void *key,
                               size_t klen, const void *val, size_t vlen)
{
    stor_mem_batch_t *mb = stor_mem_batch_of(b);
    /* put/delete cannot report failure; RocksDB's batch aborts on OOM too. */
    if (mb->nops == mb->ops_cap) {
        mb->ops = stor_mem_grow(mb->ops, &mb->ops_cap, mb->nops + 1, sizeof(*mb->ops));
        if (!mb->ops)
            PANIC("storage: out of memory growing a batch");
    }
    if (mb->nbytes + klen + vlen > mb->bytes_cap) {
        mb->bytes = stor_mem_grow(mb->bytes, &mb->bytes_cap, mb->nbytes + klen + vlen, 1);
        if (!mb->bytes)
            PANIC("storage: out of memory growing a batch");
    }
    mb->ops[mb->nops++] = (stor_mem_op_t){
        .cf = (uint8_t)cf, .del = del, .off = mb->nbytes, .klen = klen, .vlen = vlen,
    };
    if (klen)
        memcpy(mb->bytes + mb->nbytes, key, klen);
    if (vlen)
        memcpy(mb->bytes + mb->nbytes + klen, val, vlen);
    mb->nbytes += klen + vlen;
}

static void stor_mem_batch_put(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen,
                               const void *val, size_t vlen)
{
    stor_mem_batch_add(b, cf, false, key, klen, val, vlen);
}

static void stor_mem_batch_delete(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen)
{
    stor_mem_batch_add(b, cf, true, key, klen, NULL, 0);
}

static void stor_mem_batch_clear(stor_batch_t *b)
{
    stor_mem_batch_t *mb = stor_mem_batch_of(b);
    mb->nops = 0;
    mb->nbytes = 0;
}

/*
 * Phase one of a commit, under the lock: one entry copy per put in kvs[] and
 * room in every array for all of the batch's puts, so phase two cannot fail.
 */
static int stor_mem_prepare(stor_mem_t *m, stor_mem_batch_t *mb, uint8_t **kvs)
{
    size_t puts[STOR_CF_COUNT] = { 0 };
    for (size_t i = 0; i < mb->nops; i++) {
        const stor_mem_op_t *op = &mb->ops[i];
        kvs[i] = NULL;
        if (op->del)
            continue;
        puts[op->cf]++;
        /* +1: a zero-length entry still needs a pointer unique to it */
        kvs[i] = malloc(op->klen + op->vlen + 1);
        if (!kvs[i])
            return -ENOMEM;
        memcpy(kvs[i], mb->bytes + op->off, op->klen + op->vlen);
    }
    for (size_t cf = 0; cf < STOR_CF_COUNT; cf++) {
        stor_mem_cf_t *c = &m->cfs[cf];
        if (c->len + puts[cf] <= c->cap)
            continue;
        stor_mem_ent_t *ents = stor_mem_grow(c->ents, &c->cap, c->len + puts[cf],
                                             sizeof(*c->ents));
        if (!ents)
            return -ENOMEM;
        c->ents = ents;
    }
    return 0;
}

static void stor_mem_apply(stor_mem_t *m, const stor_mem_batch_t *mb, uint8_t **kvs)
{
    for (size_t i = 0; i < mb->nops; i++) {
        const stor_mem_op_t *op = &mb->ops[i];
        stor_mem_cf_t *c = &m->cfs[op->cf];
        const uint8_t *key = mb->bytes + op->off;
        size_t at = stor_mem_lower_bound(c, key, op->klen);
        bool found = stor_mem_is(c, at, key, op->klen);
        if (found)
            free(c->ents[at].kv);
        if (op->del) {
            if (found) {
                memmove(&c->ents[at], &c->ents[at + 1], (c->len - at - 1) * sizeof(*c->ents));
                c->len--;
            }
            continue;
        }
        if (!found) {
            ASSERT(c->len < c->cap);    /* reserved by stor_mem_prepare */
            memmove(&c->ents[at + 1], &c->ents[at], (c->len - at) * sizeof(*c->ents));
            c->len++;
        }
        c->ents[at] = (stor_mem_ent_t){ .kv = kvs[i], .klen = op->klen, .vlen = op->vlen };
    }
}

static int stor_mem_batch_commit(stor_t *st, stor_batch_t *b)
{
    stor_mem_t *m = stor_mem_of(st);
    stor_mem_batch_t *mb = stor_mem_batch_of(b);
    uint8_t **kvs = calloc(mb->nops, sizeof(*kvs));
    if (!kvs)
        return -ENOMEM;

    pthread_mutex_lock(&m->mu);
    int rc = 0;
    if (m->fail_commits > 0) {
        m->fail_commits--;
        rc = -EIO;
    } else {
        rc = stor_mem_prepare(m, mb, kvs);
    }
    if (rc == 0)
        stor_mem_apply(m, mb, kvs);
    pthread_mutex_unlock(&m->mu);

    if (rc != 0) {
        for (size_t i = 0; i < mb->nops; i++)
            free(kvs[i]);
    }
    free(kvs);
    return rc;
}

/* ---- reads ---- */

static int stor_mem_get(stor_t *st, stor_cf_t cf, const void *key, size_t klen, void **val,
                        size_t *vlen)
{
    stor_mem_t *m = stor_mem_of(st);
    stor_mem_cf_t *c = &m->cfs[cf];
    int rc = -ENOENT;

    pthread_mutex_lock(&m->mu);
    size_t at = stor_mem_lower_bound(c, key, klen);
    if (stor_mem_is(c, at, key, klen)) {
        const stor_mem_ent_t *e = &c->ents[at];
        /* +1 so an empty value is still a non-NULL pointer to free() */
        void *copy = malloc(e->vlen + 1);
        rc = -ENOMEM;
        if (copy) {
            memcpy(copy, e->kv + e->klen, e->vlen);
            *val = copy;
            *vlen = e->vlen;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/*
 * The entry is copied out and the lock dropped around fn, so fn may read and
 * commit (even delete the key it was given); the scan then resumes after the
 * last key it passed, found again by binary search because the array may have
 * moved.
 */
static int stor_mem_scan_prefix(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                                stor_scan_fn fn, void *ctx)
{
    stor_mem_t *m = stor_mem_of(st);
    stor_mem_cf_t *c = &m->cfs[cf];
    uint8_t *copy = NULL;
    size_t copy_cap = 0, klen = 0, vlen = 0;
    int rc = 0;

    pthread_mutex_lock(&m->mu);
    size_t at = stor_mem_lower_bound(c, prefix, plen);
    while (at < c->len && stor_mem_has_prefix(&c->ents[at], prefix, plen)) {
        const stor_mem_ent_t *e = &c->ents[at];
        klen = e->klen;
        vlen = e->vlen;
        if (klen + vlen + 1 > copy_cap) {
            uint8_t *bigger = stor_mem_grow(copy, &copy_cap, klen + vlen + 1, 1);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            copy = bigger;
        }
        memcpy(copy, e->kv, klen + vlen);
        pthread_mutex_unlock(&m->mu);

        rc = fn(ctx, copy, klen, copy + klen, vlen);

        pthread_mutex_lock(&m->mu);
        if (rc != 0)
            break;
        at = stor_mem_lower_bound(c, copy, klen);
        if (stor_mem_is(c, at, copy, klen))
            at++;
    }
    pthread_mutex_unlock(&m->mu);
    free(copy);
    return rc;
}

static const stor_ops_t stor_mem_ops = {
    .kind = "memory",
    .close = stor_mem_close,
    .batch_create = stor_mem_batch_create,
    .batch_destroy = stor_mem_batch_destroy,
    .batch_put = stor_mem_batch_put,
    .batch_delete = stor_mem_batch_delete,
    .batch_clear = stor_mem_batch_clear,
    .batch_commit = stor_mem_batch_commit,
    .get = stor_mem_get,
    .scan_prefix = stor_mem_scan_prefix,
};
