/*
 * stor_int.h - what the store implementations share: the vtable and the common
 * head of every store and batch. stor.c checks arguments and dispatches; each
 * implementation embeds these heads first and gets back to its own struct with
 * container_of. Not for use outside storage/.
 */
#ifndef PRESENCED_STOR_INT_H
#define PRESENCED_STOR_INT_H

#include <stdatomic.h>

#include "engine/common.h"
#include "storage/stor.h"

typedef struct {
    const char *kind;
    void (*close)(stor_t *st);
    stor_batch_t *(*batch_create)(stor_t *st);
    void (*batch_destroy)(stor_batch_t *b);
    void (*batch_put)(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen,
                      const void *val, size_t vlen);
    void (*batch_delete)(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen);
    void (*batch_clear)(stor_batch_t *b);
    int (*batch_commit)(stor_t *st, stor_batch_t *b);
    int (*get)(stor_t *st, stor_cf_t cf, const void *key, size_t klen, void **val,
               size_t *vlen);
    int (*scan_prefix)(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                       stor_scan_fn fn, void *ctx);
    /* NULL: a store without a cache of its own scans as scan_prefix does. */
    int (*scan_prefix_uncached)(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                                stor_scan_fn fn, void *ctx);
} stor_ops_t;

struct stor {
    const stor_ops_t *ops;
    /* Live batches: a batch refers to the store's handles, so closing under one
     * is a use-after-free waiting to happen; stor_close asserts this is zero. */
    atomic_uint batches;
    /* Batches committed that deleted something, per column family (stor_deletes). */
    _Atomic uint64_t deletes[STOR_CF_COUNT];
};

struct stor_batch {
    stor_t *st;
    size_t count;       /* puts + deletes since the last clear; kept by stor.c */
    uint32_t deleted_cfs;   /* bit per column family with a delete since the last clear */
};

/* Sets up the common heads; implementations call these from their constructors. */
static inline void stor_base_init(stor_t *st, const stor_ops_t *ops)
{
    st->ops = ops;
    atomic_init(&st->batches, 0);
    for (unsigned i = 0; i < STOR_CF_COUNT; i++)
        atomic_init(&st->deletes[i], 0);
}

static inline void stor_batch_base_init(stor_batch_t *b, stor_t *st)
{
    b->st = st;
    b->count = 0;
    b->deleted_cfs = 0;
}

#endif
