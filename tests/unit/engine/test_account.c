/*
 * Account records: round trip through the memory store, absent users,
 * corrupt records rejected at every truncation.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine/account.h"
#include "tests/unit/t.h"

static void test_store_load(void)
{
    stor_t *st = stor_open_mem();
    stor_batch_t *b = stor_batch_create(st);
    account_t a = { .flags = 0, .created_s = 1795000000 };
    a.creds[ACCOUNT_CRED_SCRAM_SHA256] = STR_LIT("sha256-blob");
    a.creds[ACCOUNT_CRED_SCRAM_SHA1] = STR_LIT("sha1-blob");
    REQUIRE(account_store(b, STR_LIT("juliet@example.com"), &a) == 0);
    REQUIRE(stor_batch_commit(st, b) == 0);

    account_t got;
    void *raw;
    REQUIRE(account_load(st, STR_LIT("juliet@example.com"), &got, &raw) == 0);
    CHECK(got.created_s == 1795000000);
    CHECK(str_eq(got.creds[ACCOUNT_CRED_SCRAM_SHA256], STR_LIT("sha256-blob")));
    CHECK(str_eq(got.creds[ACCOUNT_CRED_SCRAM_SHA1], STR_LIT("sha1-blob")));
    CHECK_EQ(got.creds[ACCOUNT_CRED_DIGEST_MD5].len, 0);
    free(raw);
    CHECK_EQ(account_load(st, STR_LIT("romeo@example.net"), &got, &raw), -ENOENT);
    CHECK(raw == NULL);

    account_delete(b, STR_LIT("juliet@example.com"));
    REQUIRE(stor_batch_commit(st, b) == 0);
    CHECK_EQ(account_load(st, STR_LIT("juliet@example.com"), &got, &raw), -ENOENT);
    stor_batch_destroy(b);
    stor_close(st);
}

static void test_corrupt(void)
{
    account_t a = { .flags = ACCOUNT_F_DISABLED };
    a.creds[ACCOUNT_CRED_SCRAM_SHA256] = STR_LIT("blob");
    buf_t v;
    buf_init(&v);
    REQUIRE(account_encode(&a, &v) == 0);
    account_t got;
    CHECK_EQ(account_decode(v.data, v.len, &got), 0);
    CHECK(got.flags & ACCOUNT_F_DISABLED);
    for (size_t n = 0; n < v.len; n++)
        CHECK_EQ(account_decode(v.data, n, &got), -EBADMSG);
    v.data[14] = 9;     /* unknown credential kind */
    CHECK_EQ(account_decode(v.data, v.len, &got), -EBADMSG);
    buf_fini(&v);
    static char big[ACCOUNT_CRED_MAX_BYTES + 1];
    a.creds[ACCOUNT_CRED_SCRAM_SHA1] = (str_t){ big, sizeof(big) };
    buf_init(&v);
    CHECK_EQ(account_encode(&a, &v), -EINVAL);
    buf_fini(&v);
}

int main(void)
{
    T_RUN(test_store_load);
    T_RUN(test_corrupt);
    T_DONE();
}
