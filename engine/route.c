#include "engine/route.h"

#include <xxhash.h>

uint64_t route_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

/* Jump consistent hash: maps a 64-bit key to one of n buckets so that
 * growing n moves the fewest keys. */
static uint32_t route_jump(uint64_t key, uint32_t buckets)
{
    int64_t b = -1, j = 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

route_t route_user(const void *key, size_t len, unsigned shards)
{
    ASSERT(shards >= 1 && shards <= UINT16_MAX);
    route_t r = { .node = 0, .shard = (uint16_t)route_jump(route_hash(key, len), shards) };
    return r;
}
