/*
 * test_buf.c - the growable buffer: appends, formatted appends, stealing the
 * bytes and giving back unused capacity.
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
    T_RUN(test_fit);
    T_RUN(test_steal);
    T_DONE();
}
