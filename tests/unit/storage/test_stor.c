/*
 * Storage: the same put/get/delete/scan/batch checks against the memory store
 * and RocksDB (they must agree, or the simulator tests something else than
 * production), then what only one of them has: RocksDB persistence, column
 * families and the dir lock; the memory store's injected commit failures.
 */
/* nftw's FTW_DEPTH and FTW_PHYS need _GNU_SOURCE, which the build defines. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "engine/common.h"
#include "storage/stor.h"
#include "tests/unit/t.h"

static char tmp_root[] = "/tmp/test_stor.XXXXXX";
static unsigned tmp_seq;

#define ERR_LEN 512

/* ---- helpers ---- */

/* A fresh, not yet existing dir under tmp_root; stor_open_rocksdb creates it. */
static void fresh_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/db%u", tmp_root, tmp_seq++);
}

static stor_t *open_rdb(const char *dir, stor_sync_t sync)
{
    char err[ERR_LEN];
    stor_t *st = NULL;
    int rc = stor_open_rocksdb(dir, sync, &st, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "stor_open_rocksdb(%s): %d %s\n", dir, rc, err);
    REQUIRE(rc == 0 && st);
    return st;
}

static stor_t *open_rdb_fresh(void)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir));
    return open_rdb(dir, STOR_SYNC_NONE);
}

static stor_t *open_mem(void)
{
    stor_t *st = stor_open_mem();
    REQUIRE(st);
    return st;
}

static void put(stor_t *st, stor_cf_t cf, const char *k, size_t klen, const char *v, size_t vlen)
{
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    stor_batch_put(b, cf, k, klen, v, vlen);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_destroy(b);
}

static void put_s(stor_t *st, stor_cf_t cf, const char *k, const char *v)
{
    put(st, cf, k, strlen(k), v, strlen(v));
}

static void del_s(stor_t *st, stor_cf_t cf, const char *k)
{
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    stor_batch_delete(b, cf, k, strlen(k));
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_destroy(b);
}

/* True when key holds exactly val. */
static bool has(stor_t *st, stor_cf_t cf, const char *k, size_t klen, const char *v, size_t vlen)
{
    void *got = NULL;
    size_t glen = 0;
    int rc = stor_get(st, cf, k, klen, &got, &glen);
    if (rc != 0)
        return false;
    bool same = got && glen == vlen && (vlen == 0 || memcmp(got, v, vlen) == 0);
    free(got);
    return same;
}

static bool has_s(stor_t *st, stor_cf_t cf, const char *k, const char *v)
{
    return has(st, cf, k, strlen(k), v, strlen(v));
}

static bool absent(stor_t *st, stor_cf_t cf, const char *k, size_t klen)
{
    void *got = (void *)&got;
    size_t glen = 12345;
    int rc = stor_get(st, cf, k, klen, &got, &glen);
    /* -ENOENT leaves the out-parameters alone */
    return rc == -ENOENT && got == (void *)&got && glen == 12345;
}

static bool absent_s(stor_t *st, stor_cf_t cf, const char *k)
{
    return absent(st, cf, k, strlen(k));
}

/* Collects what a scan visits. */
#define SCAN_MAX 64
#define SCAN_KEY_MAX 32

typedef struct {
    unsigned n, stop_after;
    int stop_rc;
    size_t klen[SCAN_MAX];
    char key[SCAN_MAX][SCAN_KEY_MAX];
    char val[SCAN_MAX][SCAN_KEY_MAX];
} scan_t;

static int collect(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    scan_t *s = ctx;
    REQUIRE(s->n < SCAN_MAX && klen < SCAN_KEY_MAX && vlen < SCAN_KEY_MAX);
    memcpy(s->key[s->n], key, klen);
    memcpy(s->val[s->n], val, vlen);
    s->val[s->n][vlen] = '\0';
    s->klen[s->n++] = klen;
    return s->stop_after && s->n == s->stop_after ? s->stop_rc : 0;
}

typedef struct {
    const char *p;
    size_t len;
} bytes_t;

#define B(lit) ((bytes_t){ (lit), sizeof(lit) - 1 })

/* The scan of prefix visited exactly want[], in that order. */
static bool scan_is(stor_t *st, stor_cf_t cf, bytes_t prefix, const bytes_t *want, unsigned n)
{
    scan_t s = { 0 };
    int rc = stor_scan_prefix(st, cf, prefix.p, prefix.len, collect, &s);
    bool ok = rc == 0 && s.n == n;
    for (unsigned i = 0; ok && i < n; i++)
        ok = s.klen[i] == want[i].len && memcmp(s.key[i], want[i].p, want[i].len) == 0;
    if (!ok) {
        fprintf(stderr, "scan of %zu-byte prefix: rc %d, %u keys (want %u):", prefix.len, rc,
                s.n, n);
        for (unsigned i = 0; i < s.n; i++) {
            fputs(" \"", stderr);
            for (size_t j = 0; j < s.klen[i]; j++)
                fprintf(stderr, "\\x%02x", (unsigned char)s.key[i][j]);
            fputc('"', stderr);
        }
        fputc('\n', stderr);
    }
    return ok;
}

/* ---- checks both implementations must pass ---- */

static void check_put_get_delete(stor_t *st)
{
    CHECK(absent_s(st, STOR_CF_ACCOUNTS, "alice@example.com"));
    put_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-1");
    CHECK(has_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-1"));

    put_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-2");
    CHECK(has_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-2"));

    del_s(st, STOR_CF_ACCOUNTS, "alice@example.com");
    CHECK(absent_s(st, STOR_CF_ACCOUNTS, "alice@example.com"));
    del_s(st, STOR_CF_ACCOUNTS, "nobody@example.com");     /* deleting nothing is fine */

    /* binary keys and values, embedded NULs, empty key and empty value */
    put(st, STOR_CF_ROSTERS, "u\0a", 3, "\0\1\2", 3);
    put(st, STOR_CF_ROSTERS, "u\0b", 3, "", 0);
    put(st, STOR_CF_ROSTERS, NULL, 0, "root", 4);
    CHECK(has(st, STOR_CF_ROSTERS, "u\0a", 3, "\0\1\2", 3));
    CHECK(has(st, STOR_CF_ROSTERS, "u\0b", 3, "", 0));
    CHECK(has(st, STOR_CF_ROSTERS, "", 0, "root", 4));
    CHECK(absent(st, STOR_CF_ROSTERS, "u", 1));
    CHECK(absent(st, STOR_CF_ROSTERS, "u\0", 2));

    void *v = NULL;
    size_t vlen = 99;
    CHECK_EQ(stor_get(st, STOR_CF_ROSTERS, "u\0b", 3, &v, &vlen), 0);
    CHECK(v != NULL);           /* contract: never NULL on success */
    CHECK_EQ(vlen, 0);
    free(v);

    /* a large value */
    size_t big_len = 256 * 1024;
    char *big = malloc(big_len);
    REQUIRE(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7);
    put(st, STOR_CF_ARCHIVE, "big", 3, big, big_len);
    CHECK(has(st, STOR_CF_ARCHIVE, "big", 3, big, big_len));
    free(big);
}

static void check_cf_isolation(stor_t *st)
{
    for (int cf = 0; cf < STOR_CF_COUNT; cf++)
        put_s(st, (stor_cf_t)cf, "k", stor_cf_name((stor_cf_t)cf));
    for (int cf = 0; cf < STOR_CF_COUNT; cf++)
        CHECK(has_s(st, (stor_cf_t)cf, "k", stor_cf_name((stor_cf_t)cf)));
    del_s(st, STOR_CF_PRESENCE, "k");
    CHECK(absent_s(st, STOR_CF_PRESENCE, "k"));
    CHECK(has_s(st, STOR_CF_OFFLINE, "k", "offline"));
}

static void check_batch(stor_t *st)
{
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    CHECK_EQ(stor_batch_count(b), 0);
    CHECK_EQ(stor_batch_commit(st, b), 0);          /* empty commit: no-op */

    /* operations apply in order */
    stor_batch_put(b, STOR_CF_ROSTERS, "x", 1, "1", 1);
    stor_batch_put(b, STOR_CF_ROSTERS, "x", 1, "2", 1);
    stor_batch_put(b, STOR_CF_ROSTERS, "y", 1, "1", 1);
    stor_batch_delete(b, STOR_CF_ROSTERS, "y", 1);
    stor_batch_delete(b, STOR_CF_ROSTERS, "z", 1);
    stor_batch_put(b, STOR_CF_ROSTERS, "z", 1, "3", 1);
    stor_batch_put(b, STOR_CF_PRIVACY, "x", 1, "p", 1);
    CHECK_EQ(stor_batch_count(b), 7);
    /* nothing is visible before the commit */
    CHECK(absent_s(st, STOR_CF_ROSTERS, "x"));
    CHECK(absent_s(st, STOR_CF_PRIVACY, "x"));
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK_EQ(stor_batch_count(b), 0);               /* commit clears */
    CHECK(has_s(st, STOR_CF_ROSTERS, "x", "2"));
    CHECK(absent_s(st, STOR_CF_ROSTERS, "y"));
    CHECK(has_s(st, STOR_CF_ROSTERS, "z", "3"));
    CHECK(has_s(st, STOR_CF_PRIVACY, "x", "p"));

    /* clear drops what was queued; the batch is reusable afterwards */
    stor_batch_put(b, STOR_CF_ROSTERS, "gone", 4, "g", 1);
    stor_batch_delete(b, STOR_CF_ROSTERS, "x", 1);
    CHECK_EQ(stor_batch_count(b), 2);
    stor_batch_clear(b);
    CHECK_EQ(stor_batch_count(b), 0);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK(absent_s(st, STOR_CF_ROSTERS, "gone"));
    CHECK(has_s(st, STOR_CF_ROSTERS, "x", "2"));

    stor_batch_put(b, STOR_CF_ROSTERS, "again", 5, "a", 1);
    CHECK_EQ(stor_batch_count(b), 1);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK(has_s(st, STOR_CF_ROSTERS, "again", "a"));
    stor_batch_destroy(b);
    stor_batch_destroy(NULL);
}

/* Many operations in one batch, then a scan that must see them all in order. */
#define BIG_BATCH 10000

static int count_ordered(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    unsigned *n = ctx;
    const unsigned char *k = key;
    unsigned idx = (unsigned)k[2] << 8 | k[3];
    (void)val;
    REQUIRE(klen == 4 && vlen == 4);
    CHECK_EQ(idx, *n * 2);      /* only the even keys survive, in order */
    ++*n;
    return 0;
}

static void check_big_batch(stor_t *st)
{
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    for (unsigned i = BIG_BATCH; i-- > 0;) {
        /* big-endian index: key order is numeric order */
        unsigned char k[4] = { 'B', '/', (unsigned char)(i >> 8), (unsigned char)i };
        stor_batch_put(b, STOR_CF_ARCHIVE, k, sizeof(k), k, sizeof(k));
        if (i % 2)
            stor_batch_delete(b, STOR_CF_ARCHIVE, k, sizeof(k));
    }
    CHECK_EQ(stor_batch_count(b), BIG_BATCH + BIG_BATCH / 2);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_destroy(b);

    unsigned n = 0;
    CHECK_EQ(stor_scan_prefix(st, STOR_CF_ARCHIVE, "B/", 2, count_ordered, &n), 0);
    CHECK_EQ(n, BIG_BATCH / 2);
    /* Whether blocks are cached changes nothing a caller sees. */
    n = 0;
    CHECK_EQ(stor_scan_prefix_uncached(st, STOR_CF_ARCHIVE, "B/", 2, count_ordered, &n), 0);
    CHECK_EQ(n, BIG_BATCH / 2);
}

static void check_scan(stor_t *st)
{
    /* inserted out of order; every edge of bytewise order near the prefix "a" */
    static const bytes_t keys[] = {
        B("b"), B("a\xff"), B("a"), B("ab"), B("a\0\0"), B("\xff\xff"), B("a\x01"),
        B(""), B("a\0"), B("`"), B("\xff"), B("a\xff\xff"),
    };
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        stor_batch_put(b, STOR_CF_ROSTERS, keys[i].p, keys[i].len, "v", 1);
    /* the same keys elsewhere must not leak into the scans */
    stor_batch_put(b, STOR_CF_PRIVACY, "a", 1, "other", 5);
    stor_batch_put(b, STOR_CF_META, "ab", 2, "other", 5);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_destroy(b);

    const bytes_t a[] = {
        B("a"), B("a\0"), B("a\0\0"), B("a\x01"), B("ab"), B("a\xff"), B("a\xff\xff"),
    };
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("a"), a, ARRAY_LEN(a)));
    const bytes_t a0[] = { B("a\0"), B("a\0\0") };
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("a\0"), a0, ARRAY_LEN(a0)));
    /* upper bound computed by dropping the trailing 0xff */
    const bytes_t aff[] = { B("a\xff"), B("a\xff\xff") };
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("a\xff"), aff, ARRAY_LEN(aff)));
    /* no upper bound exists for an all-0xff prefix */
    const bytes_t ff[] = { B("\xff"), B("\xff\xff") };
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("\xff"), ff, ARRAY_LEN(ff)));
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("c"), NULL, 0));
    CHECK(scan_is(st, STOR_CF_ROSTERS, B("abc"), NULL, 0));
    CHECK(scan_is(st, STOR_CF_ROOMS, B(""), NULL, 0));

    const bytes_t all[] = {
        B(""), B("`"), B("a"), B("a\0"), B("a\0\0"), B("a\x01"), B("ab"), B("a\xff"),
        B("a\xff\xff"), B("b"), B("\xff"), B("\xff\xff"),
    };
    CHECK(scan_is(st, STOR_CF_ROSTERS, (bytes_t){ NULL, 0 }, all, ARRAY_LEN(all)));

    /* fn's non-zero return stops the scan and comes back */
    scan_t s = { .stop_after = 3, .stop_rc = 42 };
    CHECK_EQ(stor_scan_prefix(st, STOR_CF_ROSTERS, "a", 1, collect, &s), 42);
    CHECK_EQ(s.n, 3);

    /* values come with their keys */
    scan_t p = { 0 };
    CHECK_EQ(stor_scan_prefix(st, STOR_CF_PRIVACY, "a", 1, collect, &p), 0);
    CHECK_EQ(p.n, 1);
    CHECK_STR(p.val[0], "other");
}

/* The callback reads and deletes the key it was given, as a shard draining
 * offline messages would; the scan must go on to the next key. */
typedef struct {
    stor_t *st;
    unsigned seen, read_ok;
} drain_t;

static int drain_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    drain_t *d = ctx;
    d->read_ok += has(d->st, STOR_CF_OFFLINE, key, klen, val, vlen);
    stor_batch_t *b = stor_batch_create(d->st);
    REQUIRE(b);
    stor_batch_delete(b, STOR_CF_OFFLINE, key, klen);
    CHECK_EQ(stor_batch_commit(d->st, b), 0);
    stor_batch_destroy(b);
    CHECK(absent(d->st, STOR_CF_OFFLINE, key, klen));
    d->seen++;
    return 0;
}

static void check_scan_mutating(stor_t *st)
{
    char k[16], v[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "bob/%02d", i);
        snprintf(v, sizeof(v), "msg %d", i);
        put_s(st, STOR_CF_OFFLINE, k, v);
    }
    put_s(st, STOR_CF_OFFLINE, "carol/00", "keep");

    drain_t d = { .st = st };
    CHECK_EQ(stor_scan_prefix(st, STOR_CF_OFFLINE, "bob/", 4, drain_one, &d), 0);
    CHECK_EQ(d.seen, 10);
    CHECK_EQ(d.read_ok, 10);
    CHECK(scan_is(st, STOR_CF_OFFLINE, B("bob/"), NULL, 0));
    CHECK(has_s(st, STOR_CF_OFFLINE, "carol/00", "keep"));
}

/* Shards share one store: each thread writes its own users' keys. */
#define THREADS 4
#define THREAD_BATCHES 200
#define THREAD_BATCH_KEYS 5

typedef struct {
    stor_t *st;
    int id;
    int bad;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    stor_batch_t *b = stor_batch_create(w->st);
    char k[32];
    if (!b) {
        w->bad++;
        return NULL;
    }
    for (int i = 0; i < THREAD_BATCHES; i++) {
        for (int j = 0; j < THREAD_BATCH_KEYS; j++) {
            int n = snprintf(k, sizeof(k), "t%d/%05d", w->id, i * THREAD_BATCH_KEYS + j);
            stor_batch_put(b, STOR_CF_PRESENCE, k, (size_t)n, k, (size_t)n);
        }
        if (stor_batch_commit(w->st, b) != 0)
            w->bad++;
        int n = snprintf(k, sizeof(k), "t%d/%05d", w->id, i * THREAD_BATCH_KEYS);
        if (!has(w->st, STOR_CF_PRESENCE, k, (size_t)n, k, (size_t)n))
            w->bad++;
    }
    stor_batch_destroy(b);
    return NULL;
}

static int count_keys(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    ++*(unsigned *)ctx;
    return 0;
}

static void check_threads(stor_t *st)
{
    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){ .st = st, .id = i };
        REQUIRE(pthread_create(&th[i], NULL, worker, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].bad, 0);
    }
    for (int i = 0; i < THREADS; i++) {
        char prefix[8];
        unsigned n = 0;
        int plen = snprintf(prefix, sizeof(prefix), "t%d/", i);
        CHECK_EQ(stor_scan_prefix(st, STOR_CF_PRESENCE, prefix, (size_t)plen, count_keys, &n), 0);
        CHECK_EQ(n, THREAD_BATCHES * THREAD_BATCH_KEYS);
    }
}

/* One test function per (check, implementation), each on a fresh store. */
#define BOTH(check)                                                 \
    static void check##_mem(void)                                   \
    {                                                               \
        stor_t *st = open_mem();                                    \
        CHECK_STR(stor_kind(st), "memory");                         \
        check(st);                                                  \
        stor_close(st);                                             \
    }                                                               \
    static void check##_rocksdb(void)                               \
    {                                                               \
        stor_t *st = open_rdb_fresh();                              \
        CHECK_STR(stor_kind(st), "rocksdb");                        \
        check(st);                                                  \
        stor_close(st);                                             \
    }

/* stor_deletes counts committed batches with a delete, per column family, and nothing else:
 * puts, deletes in another family and batches cleared unwritten leave it. */
static void check_deletes_count(stor_t *st)
{
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 0);
    put_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-1");
    put_s(st, STOR_CF_ACCOUNTS, "bob@example.com", "scram-2");
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 0);
    del_s(st, STOR_CF_ROSTERS, "alice@example.com");
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 0);
    CHECK_EQ(stor_deletes(st, STOR_CF_ROSTERS), 1);

    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    stor_batch_delete(b, STOR_CF_ACCOUNTS, "alice@example.com", 17);
    stor_batch_clear(b);
    stor_batch_put(b, STOR_CF_ACCOUNTS, "carol@example.com", 17, "scram-3", 7);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 0);
    CHECK(has_s(st, STOR_CF_ACCOUNTS, "alice@example.com", "scram-1"));

    /* Two deletes in one batch are one batch. */
    stor_batch_delete(b, STOR_CF_ACCOUNTS, "alice@example.com", 17);
    stor_batch_delete(b, STOR_CF_ACCOUNTS, "bob@example.com", 15);
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 0);    /* not before the commit */
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 1);
    CHECK(absent_s(st, STOR_CF_ACCOUNTS, "alice@example.com"));
    del_s(st, STOR_CF_ACCOUNTS, "carol@example.com");
    CHECK_EQ(stor_deletes(st, STOR_CF_ACCOUNTS), 2);
    stor_batch_destroy(b);
}

BOTH(check_put_get_delete)
BOTH(check_deletes_count)
BOTH(check_cf_isolation)
BOTH(check_batch)
BOTH(check_big_batch)
BOTH(check_scan)
BOTH(check_scan_mutating)
BOTH(check_threads)

/* ---- names and parsing ---- */

static void test_names(void)
{
    static const char *const want[STOR_CF_COUNT] = {
        "meta", "accounts", "rosters", "privacy", "presence", "offline", "rooms", "archive",
        "vcards", "lines",
    };
    for (int cf = 0; cf < STOR_CF_COUNT; cf++)
        CHECK_STR(stor_cf_name((stor_cf_t)cf), want[cf]);

    stor_sync_t s = STOR_SYNC_BATCH;
    CHECK_EQ(stor_sync_parse("none", &s), 0);
    CHECK_EQ(s, STOR_SYNC_NONE);
    CHECK_EQ(stor_sync_parse("batch", &s), 0);
    CHECK_EQ(s, STOR_SYNC_BATCH);
    CHECK_EQ(stor_sync_parse("Batch", &s), -EINVAL);
    CHECK_EQ(stor_sync_parse("", &s), -EINVAL);
    CHECK_EQ(stor_sync_parse(NULL, &s), -EINVAL);
    CHECK_EQ(s, STOR_SYNC_BATCH);
    CHECK_STR(stor_sync_name(STOR_SYNC_NONE), "none");
    CHECK_STR(stor_sync_name(STOR_SYNC_BATCH), "batch");
}

/* ---- memory store only ---- */

static void test_mem_fail_commits(void)
{
    stor_t *st = open_mem();
    put_s(st, STOR_CF_ROOMS, "room", "v1");

    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    stor_batch_put(b, STOR_CF_ROOMS, "room", 4, "v2", 2);
    stor_batch_put(b, STOR_CF_ROOMS, "new", 3, "n", 1);
    stor_batch_delete(b, STOR_CF_ROOMS, "room", 4);
    stor_batch_put(b, STOR_CF_ARCHIVE, "a", 1, "a", 1);

    stor_mem_fail_commits(st, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(stor_batch_commit(st, b), -EIO);
        CHECK_EQ(stor_deletes(st, STOR_CF_ROOMS), 0);      /* a failed commit deleted nothing */
        CHECK_EQ(stor_batch_count(b), 4);           /* kept for a retry */
        CHECK(has_s(st, STOR_CF_ROOMS, "room", "v1"));  /* nothing applied */
        CHECK(absent_s(st, STOR_CF_ROOMS, "new"));
        CHECK(absent_s(st, STOR_CF_ARCHIVE, "a"));
    }
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK_EQ(stor_batch_count(b), 0);
    CHECK_EQ(stor_deletes(st, STOR_CF_ROOMS), 1);
    CHECK(absent_s(st, STOR_CF_ROOMS, "room"));
    CHECK(has_s(st, STOR_CF_ROOMS, "new", "n"));
    CHECK(has_s(st, STOR_CF_ARCHIVE, "a", "a"));

    /* 0 cancels what is pending; an empty batch consumes no injected failure */
    stor_mem_fail_commits(st, 1);
    stor_mem_fail_commits(st, 0);
    stor_batch_put(b, STOR_CF_ROOMS, "x", 1, "x", 1);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_mem_fail_commits(st, 1);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_put(b, STOR_CF_ROOMS, "y", 1, "y", 1);
    CHECK_EQ(stor_batch_commit(st, b), -EIO);
    CHECK_EQ(stor_batch_commit(st, b), 0);
    CHECK(has_s(st, STOR_CF_ROOMS, "y", "y"));

    stor_batch_destroy(b);
    stor_close(st);
    stor_close(NULL);
}

/* ---- RocksDB only ---- */

static void test_rdb_persists(void)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir));

    stor_t *st = open_rdb(dir, STOR_SYNC_BATCH);
    stor_batch_t *b = stor_batch_create(st);
    REQUIRE(b);
    for (int cf = 0; cf < STOR_CF_COUNT; cf++) {
        const char *name = stor_cf_name((stor_cf_t)cf);
        stor_batch_put(b, (stor_cf_t)cf, "user/1", 6, name, strlen(name));
        stor_batch_put(b, (stor_cf_t)cf, "user/2", 6, "two", 3);
    }
    CHECK_EQ(stor_batch_commit(st, b), 0);
    stor_batch_destroy(b);
    stor_close(st);

    st = open_rdb(dir, STOR_SYNC_NONE);
    for (int cf = 0; cf < STOR_CF_COUNT; cf++) {
        CHECK(has_s(st, (stor_cf_t)cf, "user/1", stor_cf_name((stor_cf_t)cf)));
        CHECK(has_s(st, (stor_cf_t)cf, "user/2", "two"));
    }
    /* under sync none a clean close still keeps everything */
    del_s(st, STOR_CF_ACCOUNTS, "user/2");
    put_s(st, STOR_CF_ROSTERS, "user/3", "three");
    stor_close(st);

    st = open_rdb(dir, STOR_SYNC_NONE);
    CHECK(absent_s(st, STOR_CF_ACCOUNTS, "user/2"));
    CHECK(has_s(st, STOR_CF_ACCOUNTS, "user/1", "accounts"));
    CHECK(has_s(st, STOR_CF_ROSTERS, "user/3", "three"));
    stor_close(st);
}

static bool listed(char **names, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], want) == 0)
            return true;
    }
    return false;
}

/* Column families on disk, as RocksDB itself reports them; NULL on error. */
static char **list_cfs(const char *dir, size_t *n)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *e = NULL;
    char **names = rocksdb_list_column_families(o, dir, n, &e);
    rocksdb_options_destroy(o);
    if (e) {
        fprintf(stderr, "list_column_families(%s): %s\n", dir, e);
        free(e);
        rocksdb_list_column_families_destroy(names, *n);   /* allocated even on error */
        return NULL;
    }
    return names;
}

static void test_rdb_column_families(void)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir));
    stor_close(open_rdb(dir, STOR_SYNC_NONE));

    size_t n = 0;
    char **names = list_cfs(dir, &n);
    REQUIRE(names);
    CHECK_EQ(n, 1 + STOR_CF_COUNT);
    CHECK(listed(names, n, "default"));
    for (int cf = 0; cf < STOR_CF_COUNT; cf++)
        CHECK(listed(names, n, stor_cf_name((stor_cf_t)cf)));
    rocksdb_list_column_families_destroy(names, n);

    /* a newer version adds a column family; this one must still open the DB */
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_missing_column_families(o, 1);
    const char *cf_names[] = {
        "default", "meta", "accounts", "rosters", "privacy", "presence", "offline", "rooms",
        "archive", "vcards", "lines", "future",
    };
    const rocksdb_options_t *cf_opts[ARRAY_LEN(cf_names)];
    rocksdb_column_family_handle_t *h[ARRAY_LEN(cf_names)];
    for (size_t i = 0; i < ARRAY_LEN(cf_names); i++)
        cf_opts[i] = o;
    char *e = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, (int)ARRAY_LEN(cf_names), cf_names,
                                                 cf_opts, h, &e);
    if (e)
        fprintf(stderr, "open with \"future\": %s\n", e);
    REQUIRE(!e && db);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(db, wo, h[ARRAY_LEN(cf_names) - 1], "f", 1, "new", 3, &e);
    CHECK(!e);
    rocksdb_put_cf(db, wo, h[2], "acct", 4, "old", 3, &e);    /* "accounts" */
    CHECK(!e);
    rocksdb_writeoptions_destroy(wo);
    for (size_t i = 0; i < ARRAY_LEN(cf_names); i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(o);

    stor_t *st = open_rdb(dir, STOR_SYNC_NONE);
    CHECK(has_s(st, STOR_CF_ACCOUNTS, "acct", "old"));
    put_s(st, STOR_CF_ACCOUNTS, "acct2", "mine");
    stor_close(st);

    names = list_cfs(dir, &n);
    REQUIRE(names);
    CHECK_EQ(n, 2 + STOR_CF_COUNT);
    CHECK(listed(names, n, "future"));
    rocksdb_list_column_families_destroy(names, n);
}

static void read_file(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* A second stor_open_rocksdb on dir, from a forked child; its rc and message. */
static int open_in_child(const char *dir, char *err, size_t err_len)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        char cerr[ERR_LEN];
        stor_t *st = NULL;
        close(fds[0]);
        int rc = stor_open_rocksdb(dir, STOR_SYNC_NONE, &st, cerr, sizeof(cerr));
        /* never touch RocksDB from a child of a threaded parent; just report */
        if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc) ||
            write(fds[1], cerr, strlen(cerr) + 1) < 0)
            _exit(2);
        _exit(st ? 3 : 0);
    }
    close(fds[1]);
    int rc = 1;
    memset(err, 0, err_len);
    CHECK(read(fds[0], &rc, sizeof(rc)) == sizeof(rc));
    CHECK(read(fds[0], err, err_len - 1) > 0);
    close(fds[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return rc;
}

static void test_rdb_lock(void)
{
    char dir[256], lock[300], want[ERR_LEN], err[ERR_LEN], content[64];
    fresh_dir(dir, sizeof(dir));
    snprintf(lock, sizeof(lock), "%s/presenced.lock", dir);
    snprintf(want, sizeof(want), "data dir %s is in use by another running presenced (pid %ld)",
             dir, (long)getpid());

    stor_t *st = open_rdb(dir, STOR_SYNC_NONE);
    put_s(st, STOR_CF_META, "k", "v");

    read_file(lock, content, sizeof(content));
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    CHECK_STR(content, pid);

    /* this process again: flock is per open file description, so refused too */
    stor_t *second = (stor_t *)&second;
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &second, err, sizeof(err)), -EBUSY);
    CHECK(second == (stor_t *)&second);
    CHECK_STR(err, want);
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &second, NULL, 0), -EBUSY);
    /* a short buffer gets a truncated, terminated message */
    char tiny[10];
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &second, tiny, sizeof(tiny)), -EBUSY);
    CHECK_STR(tiny, "data dir ");

    /* another process */
    CHECK_EQ(open_in_child(dir, err, sizeof(err)), -EBUSY);
    CHECK_STR(err, want);

    /* the refused openers did not disturb the owner */
    CHECK(has_s(st, STOR_CF_META, "k", "v"));
    read_file(lock, content, sizeof(content));
    CHECK_STR(content, pid);
    stor_close(st);

    /* released by close; the lock file stays but no longer names us */
    read_file(lock, content, sizeof(content));
    CHECK_STR(content, "");
    st = open_rdb(dir, STOR_SYNC_BATCH);
    CHECK(has_s(st, STOR_CF_META, "k", "v"));
    stor_close(st);
}

/* Another process (not this one's fork of the store) holds the dir: its pid is named. */
static void test_rdb_lock_other_process(void)
{
    char dir[256], lock[300], want[ERR_LEN], err[ERR_LEN];
    fresh_dir(dir, sizeof(dir));
    stor_close(open_rdb(dir, STOR_SYNC_NONE));
    snprintf(lock, sizeof(lock), "%s/presenced.lock", dir);

    int ready[2], release[2];
    REQUIRE(pipe(ready) == 0 && pipe(release) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        char c = 0, buf[32];
        /* drop the parent's ends, or the release pipe never reaches EOF */
        close(ready[0]);
        close(release[1]);
        int fd = open(lock, O_RDWR);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(2);
        int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
        if (pwrite(fd, buf, (size_t)n, 0) != n || write(ready[1], &c, 1) != 1)
            _exit(3);
        /* hold the lock until the parent closes its end */
        while (read(release[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char c;
    REQUIRE(read(ready[0], &c, 1) == 1);

    stor_t *st = NULL;
    snprintf(want, sizeof(want), "data dir %s is in use by another running presenced (pid %ld)",
             dir, (long)pid);
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &st, err, sizeof(err)), -EBUSY);
    CHECK_STR(err, want);
    CHECK(st == NULL);

    close(release[1]);
    close(ready[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* its lock died with it */
    st = open_rdb(dir, STOR_SYNC_NONE);
    stor_close(st);
}

static void test_rdb_open_errors(void)
{
    char dir[300], err[ERR_LEN];
    stor_t *st = NULL;

    snprintf(dir, sizeof(dir), "%s/missing/parent", tmp_root);
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &st, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, dir) != NULL);
    CHECK(st == NULL);

    /* the dir is a regular file */
    snprintf(dir, sizeof(dir), "%s/file", tmp_root);
    FILE *f = fopen(dir, "w");
    REQUIRE(f);
    fclose(f);
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &st, err, sizeof(err)), -ENOTDIR);
    CHECK(strstr(err, dir) != NULL);
    CHECK(st == NULL);

    /* a dir that holds something other than a RocksDB: RocksDB's own error */
    snprintf(dir, sizeof(dir), "%s/notadb", tmp_root);
    REQUIRE(mkdir(dir, 0700) == 0);
    char current[400];
    snprintf(current, sizeof(current), "%s/CURRENT", dir);
    f = fopen(current, "w");
    REQUIRE(f);
    fputs("MANIFEST-999999\n", f);
    fclose(f);
    CHECK_EQ(stor_open_rocksdb(dir, STOR_SYNC_NONE, &st, err, sizeof(err)), -EIO);
    CHECK(strstr(err, "rocksdb open") != NULL);
    CHECK(st == NULL);
    /* and the failed open released the lock */
    int fd = open(strcat(dir, "/presenced.lock"), O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    REQUIRE(mkdtemp(tmp_root));

    T_RUN(test_names);
    T_RUN(check_put_get_delete_mem);
    T_RUN(check_put_get_delete_rocksdb);
    T_RUN(check_deletes_count_mem);
    T_RUN(check_deletes_count_rocksdb);
    T_RUN(check_cf_isolation_mem);
    T_RUN(check_cf_isolation_rocksdb);
    T_RUN(check_batch_mem);
    T_RUN(check_batch_rocksdb);
    T_RUN(check_big_batch_mem);
    T_RUN(check_big_batch_rocksdb);
    T_RUN(check_scan_mem);
    T_RUN(check_scan_rocksdb);
    T_RUN(check_scan_mutating_mem);
    T_RUN(check_scan_mutating_rocksdb);
    T_RUN(check_threads_mem);
    T_RUN(check_threads_rocksdb);
    T_RUN(test_mem_fail_commits);
    T_RUN(test_rdb_persists);
    T_RUN(test_rdb_column_families);
    T_RUN(test_rdb_lock);
    T_RUN(test_rdb_lock_other_process);
    T_RUN(test_rdb_open_errors);

    CHECK_EQ(nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    T_DONE();
}
