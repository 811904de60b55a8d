/*
 * stor.c - see stor.h. Argument checks and the batch count live here, once, so
 * both implementations get the same programmer-error crashes and the memory
 * store cannot drift from the RocksDB one in what it accepts.
 */
#include "storage/stor.h"

#include <errno.h>
#include <string.h>

#include "storage/stor_int.h"

static const char *const stor_cf_names[STOR_CF_COUNT] = {
    [STOR_CF_META] = "meta",
    [STOR_CF_ACCOUNTS] = "accounts",
    [STOR_CF_ROSTERS] = "rosters",
    [STOR_CF_PRIVACY] = "privacy",
    [STOR_CF_PRESENCE] = "presence",
    [STOR_CF_OFFLINE] = "offline",
    [STOR_CF_ROOMS] = "rooms",
    [STOR_CF_ARCHIVE] = "archive",
    [STOR_CF_VCARDS] = "vcards",
    [STOR_CF_LINES] = "lines",
};

/* A name added to the enum without one here would open a CF called "(null)". */
_Static_assert(ARRAY_LEN(stor_cf_names) == STOR_CF_COUNT, "one name per column family");

static const char *const stor_sync_names[] = {
    [STOR_SYNC_NONE] = "none",
    [STOR_SYNC_BATCH] = "batch",
};

const char *stor_cf_name(stor_cf_t cf)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    return stor_cf_names[cf];
}

int stor_sync_parse(const char *s, stor_sync_t *out)
{
    for (size_t i = 0; s && i < ARRAY_LEN(stor_sync_names); i++) {
        if (strcmp(s, stor_sync_names[i]) == 0) {
            *out = (stor_sync_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *stor_sync_name(stor_sync_t sync)
{
    ASSERT((unsigned)sync < ARRAY_LEN(stor_sync_names));
    return stor_sync_names[sync];
}

void stor_close(stor_t *st)
{
    if (!st)
        return;
    ASSERT(atomic_load_explicit(&st->batches, memory_order_relaxed) == 0);
    st->ops->close(st);
}

const char *stor_kind(const stor_t *st)
{
    ASSERT(st);
    return st->ops->kind;
}

stor_batch_t *stor_batch_create(stor_t *st)
{
    ASSERT(st);
    stor_batch_t *b = st->ops->batch_create(st);
    if (b) {
        ASSERT(b->st == st);
        ASSERT(b->count == 0);
        atomic_fetch_add_explicit(&st->batches, 1, memory_order_relaxed);
    }
    return b;
}

void stor_batch_destroy(stor_batch_t *b)
{
    if (!b)
        return;
    stor_t *st = b->st;
    ASSERT(atomic_load_explicit(&st->batches, memory_order_relaxed) > 0);
    atomic_fetch_sub_explicit(&st->batches, 1, memory_order_relaxed);
    st->ops->batch_destroy(b);
}

void stor_batch_put(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    ASSERT(key || klen == 0);
    ASSERT(val || vlen == 0);
    b->st->ops->batch_put(b, cf, key, klen, val, vlen);
    b->count++;
}

void stor_batch_delete(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    ASSERT(key || klen == 0);
    b->st->ops->batch_delete(b, cf, key, klen);
    b->count++;
    b->deleted_cfs |= 1u << cf;
}

size_t stor_batch_count(const stor_batch_t *b)
{
    return b->count;
}

void stor_batch_clear(stor_batch_t *b)
{
    b->st->ops->batch_clear(b);
    b->count = 0;
    b->deleted_cfs = 0;
}

int stor_batch_commit(stor_t *st, stor_batch_t *b)
{
    /* A batch committed to another store would write through foreign handles. */
    ASSERT(b->st == st);
    if (b->count == 0)
        return 0;
    int rc = st->ops->batch_commit(st, b);
    ASSERT(rc <= 0);
    if (rc == 0) {
        /* After the write: a reader that sees the old count and then the key present
         * read it before this batch was visible, and finds the count moved next time. */
        for (unsigned cf = 0; cf < STOR_CF_COUNT; cf++)
            if (b->deleted_cfs & (1u << cf))
                atomic_fetch_add_explicit(&st->deletes[cf], 1, memory_order_release);
        stor_batch_clear(b);
    }
    return rc;
}

uint64_t stor_deletes(stor_t *st, stor_cf_t cf)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    return atomic_load_explicit(&st->deletes[cf], memory_order_acquire);
}

int stor_get(stor_t *st, stor_cf_t cf, const void *key, size_t klen, void **val, size_t *vlen)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    ASSERT(key || klen == 0);
    ASSERT(val && vlen);
    return st->ops->get(st, cf, key, klen, val, vlen);
}

int stor_scan_prefix(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                     stor_scan_fn fn, void *ctx)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    ASSERT(prefix || plen == 0);
    ASSERT(fn);
    return st->ops->scan_prefix(st, cf, prefix, plen, fn, ctx);
}

int stor_scan_prefix_uncached(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                              stor_scan_fn fn, void *ctx)
{
    ASSERT((unsigned)cf < STOR_CF_COUNT);
    ASSERT(prefix || plen == 0);
    ASSERT(fn);
    if (!st->ops->scan_prefix_uncached)
        return st->ops->scan_prefix(st, cf, prefix, plen, fn, ctx);
    return st->ops->scan_prefix_uncached(st, cf, prefix, plen, fn, ctx);
}
