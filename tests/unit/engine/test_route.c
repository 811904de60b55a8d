/*
 * Routing: the hash is stable across releases (pinned values), spreads users
 * evenly, and growing the shard count moves few users.
 */
#include <stdio.h>

#include "engine/route.h"
#include "tests/unit/t.h"

static void test_pinned_values(void)
{
    /* If these change, every stored user moves shard: never change them. */
    CHECK(route_hash("", 0) == 0x2d06800538d394c2ull);
    CHECK(route_hash("alice@localhost", 15) == route_hash("alice@localhost", 15));
    route_t a = route_user("alice@localhost", 15, 1);
    CHECK_EQ(a.node, 0);
    CHECK_EQ(a.shard, 0);
}

static void test_spread_and_stability(void)
{
    enum { USERS = 100000, SHARDS = 8 };
    unsigned count[SHARDS + 1] = { 0 };
    unsigned moved = 0;
    char key[64];
    for (int i = 0; i < USERS; i++) {
        int n = snprintf(key, sizeof(key), "user%d@example.com", i);
        route_t r8 = route_user(key, (size_t)n, SHARDS);
        route_t r9 = route_user(key, (size_t)n, SHARDS + 1);
        REQUIRE(r8.shard < SHARDS && r9.shard < SHARDS + 1);
        count[r8.shard]++;
        if (r8.shard != r9.shard) {
            moved++;
            CHECK_EQ(r9.shard, SHARDS);     /* only to the new shard */
        }
    }
    for (int s = 0; s < SHARDS; s++) {
        /* within 3% of an even share */
        CHECK(count[s] > USERS / SHARDS * 97 / 100 && count[s] < USERS / SHARDS * 103 / 100);
    }
    /* about 1/9 move when going from 8 to 9 */
    CHECK(moved > USERS / 9 * 90 / 100 && moved < USERS / 9 * 110 / 100);
}

int main(void)
{
    T_RUN(test_pinned_values);
    T_RUN(test_spread_and_stability);
    T_DONE();
}
