/*
 * Contact records: round trips, limits, every truncation and corruption of a
 * valid record rejected, and key layout (version key sorts before entries,
 * entries in contact order under the user's prefix).
 */
#include <errno.h>

#include "engine/contact.h"
#include "tests/unit/t.h"

static void test_round_trip(void)
{
    contact_t c = { .sub = SUB_TO | SUB_PENDING_IN, .name = STR_LIT("Juliet") };
    c.groups[0] = STR_LIT("Friends");
    c.groups[1] = STR_LIT("Verona");
    c.n_groups = 2;
    buf_t b;
    buf_init(&b);
    REQUIRE(contact_encode(&c, &b) == 0);
    contact_t d;
    REQUIRE(contact_decode(b.data, b.len, &d) == 0);
    CHECK_EQ(d.sub, c.sub);
    CHECK(str_eq(d.name, c.name));
    CHECK_EQ(d.n_groups, 2);
    CHECK(str_eq(d.groups[1], STR_LIT("Verona")));
    /* Every truncation and one flipped length byte are caught. */
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ(contact_decode(b.data, n, &d), -EBADMSG);
    buf_append(&b, "x", 1);
    CHECK_EQ(contact_decode(b.data, b.len, &d), -EBADMSG);
    b.len--;
    b.data[2] = (char)0xff;     /* name length past the end */
    CHECK_EQ(contact_decode(b.data, b.len, &d), -EBADMSG);
    b.data[2] = 6;
    b.data[1] = SUB_TO | SUB_PENDING_OUT;   /* not an RFC 6121 state */
    CHECK_EQ(contact_decode(b.data, b.len, &d), -EBADMSG);
    buf_fini(&b);
}

static void test_limits(void)
{
    static char big[CONTACT_NAME_MAX + 1];
    memset(big, 'a', sizeof(big));
    contact_t c = { .sub = 0, .name = { big, sizeof(big) } };
    buf_t b;
    buf_init(&b);
    CHECK_EQ(contact_encode(&c, &b), -EINVAL);
    c.name.len = CONTACT_NAME_MAX;
    CHECK_EQ(contact_encode(&c, &b), 0);
    c.n_groups = 1;
    c.groups[0] = (str_t){ "", 0 };
    CHECK_EQ(contact_encode(&c, &b), -EINVAL);      /* empty group name */
    c.n_groups = CONTACT_GROUPS_MAX + 1;
    CHECK_EQ(contact_encode(&c, &b), -EINVAL);
    buf_fini(&b);
}

static void test_keys(void)
{
    buf_t v, a, z;
    buf_init(&v);
    buf_init(&a);
    buf_init(&z);
    contact_version_key(STR_LIT("romeo@example.net"), &v);
    contact_key(STR_LIT("romeo@example.net"), STR_LIT("juliet@example.com"), &a);
    contact_key(STR_LIT("romeo@example.net"), STR_LIT("mercutio@example.com"), &z);
    /* The version key is a prefix of every entry key, so it sorts first. */
    CHECK(a.len > v.len && memcmp(a.data, v.data, v.len) == 0);
    CHECK(memcmp(a.data, z.data, a.len < z.len ? a.len : z.len) < 0);
    str_t user, contact;
    REQUIRE(contact_key_split(a.data, a.len, &user, &contact) == 0);
    CHECK(str_eq(user, STR_LIT("romeo@example.net")));
    CHECK(str_eq(contact, STR_LIT("juliet@example.com")));
    CHECK_EQ(contact_key_split(v.data, v.len, &user, &contact), -EBADMSG);
    CHECK_EQ(contact_key_split("abc", 3, &user, &contact), -EBADMSG);
    buf_t n;
    buf_init(&n);
    contact_version_encode(0x0102030405060708ull, &n);
    uint64_t ver;
    CHECK_EQ(contact_version_decode(n.data, n.len, &ver), 0);
    CHECK(ver == 0x0102030405060708ull);
    CHECK_EQ(contact_version_decode(n.data, 7, &ver), -EBADMSG);
    buf_fini(&n);
    buf_fini(&v);
    buf_fini(&a);
    buf_fini(&z);
}

int main(void)
{
    T_RUN(test_round_trip);
    T_RUN(test_limits);
    T_RUN(test_keys);
    T_DONE();
}
