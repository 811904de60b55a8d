/*
 * test_buf.c - the growable buffer: appends, formatted appends, stealing the
 * bytes, giving back unused capacity and decimal numbers.
 */
#include "engine/buf.h"
#include "tests/unit/t.h"

static void test_append_and_printf(void)
{
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "ab");
    buf_printf(&b, "%d-%s", 42, "x");
    CHECK_EQ(b.len, 6);
    CHECK(memcmp(b.data, "ab42-x", 6) == 0);
    CHECK(b.cap >= 256);
    char big[1000];
    memset(big, 'z', sizeof(big));
    buf_append(&b, big, sizeof(big));
    CHECK_EQ(b.len, 1006);
    CHECK(b.cap >= 1006);
    buf_fini(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

/* Every number as printf writes it: the edges of each digit count and of 64 bits. */
static void test_append_uint(void)
{
    uint64_t v[] = { 0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u, 18446744073709551615u };
    buf_t b, want;
    buf_init(&b);
    buf_init(&want);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        buf_append_uint(&b, v[i]);
        buf_append_str(&b, ",");
        buf_printf(&want, "%llu,", (unsigned long long)v[i]);
    }
    CHECK_EQ(b.len, want.len);
    CHECK(memcmp(b.data, want.data, b.len) == 0);
    buf_fini(&b);
    buf_fini(&want);
}

static void test_append_strs(void)
{
    buf_t b;
    buf_init(&b);
    buf_append_strs(&b, NULL);
    CHECK_EQ(b.len, 0);
    char big[600];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    buf_append_strs(&b, "From: <", "sip:a@b", ">", "", big, "\r\n", NULL);
    CHECK_EQ(b.len, 7 + 7 + 1 + 599 + 2);
    CHECK(memcmp(b.data, "From: <sip:a@b>q", 16) == 0);
    CHECK(memcmp(b.data + b.len - 3, "q\r\n", 3) == 0);
    buf_fini(&b);
}

static void test_fit(void)
{
    buf_t b;
    buf_init(&b);
    buf_fit(&b);                    /* empty: nothing to do */
    CHECK(b.data == NULL);
    buf_append_str(&b, "<presence/>");
    buf_fit(&b);
    CHECK_EQ(b.cap, 11);
    CHECK_EQ(b.len, 11);
    CHECK(memcmp(b.data, "<presence/>", 11) == 0);
    buf_append_str(&b, "!");        /* grows again from the fitted size */
    CHECK_EQ(b.len, 12);
    CHECK(b.cap >= 12);
    CHECK(memcmp(b.data, "<presence/>!", 12) == 0);
    b.len = 0;
    buf_fit(&b);                    /* emptied: the data goes */
    CHECK(b.data == NULL && b.cap == 0);
    buf_fini(&b);
}

static void test_steal(void)
{
    buf_t b;
    buf_init(&b);
    buf_append_str(&b, "bytes");
    size_t len = 0;
    char *d = buf_steal(&b, &len);
    CHECK_EQ(len, 5);
    CHECK(memcmp(d, "bytes", 5) == 0);
    CHECK(b.data == NULL && b.len == 0);
    free(d);
}

int main(void)
{
    T_RUN(test_append_and_printf);
    T_RUN(test_append_uint);
    T_RUN(test_append_strs);
    T_RUN(test_fit);
    T_RUN(test_steal);
    T_DONE();
}
