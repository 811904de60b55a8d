/*
 * Our requests' branches: every one unique for its shard, each naming the shard a
 * response must go back to, and nothing else read as ours.
 */
#include <stdio.h>
#include <string.h>

#include "protocols/sip/sip_int.h"
#include "tests/unit/t.h"

static str_t branch_of(buf_t *b, unsigned shard, const char *prefix, uint64_t seq)
{
    b->len = 0;
    sip_branch_append(b, shard, prefix, seq);
    return (str_t){ b->data, b->len };
}

int main(void)
{
    static const unsigned shards[] = { 0, 1, 7, 65535 };
    static const uint64_t seqs[] = { 0, 1, 2, 0xffffffffffffffffull };
    buf_t b, prev;
    buf_init(&b);
    buf_init(&prev);
    for (size_t i = 0; i < sizeof(shards) / sizeof(shards[0]); i++) {
        for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
            str_t br = branch_of(&b, shards[i], "0a1b2c3d", seqs[k]);
            CHECK(br.len < SIP_BRANCH_MAX);
            CHECK(br.len > 7 && !memcmp(br.ptr, "z9hG4bK", 7));     /* RFC 3261 §8.1.1.7 */
            unsigned got = 99;
            CHECK(sip_branch_shard(br, &got));
            CHECK_EQ(got, shards[i]);
            if (k > 0)
                CHECK(br.len != prev.len || memcmp(br.ptr, prev.data, br.len) != 0);
            prev.len = 0;
            buf_append(&prev, br.ptr, br.len);
        }
    }
    str_t br = branch_of(&b, 3, "0a1b2c3d", 255);
    CHECK(br.len == strlen("z9hG4bK-3-0a1b2c3d00000000000000ff") &&
          !memcmp(br.ptr, "z9hG4bK-3-0a1b2c3d00000000000000ff", br.len));
    /* Branches of other senders: no shard of ours. */
    static const char *const foreign[] = { "z9hG4bKabc", "z9hG4bK--1", "z9hG4bK-12",
                                           "z9hG4bK-x-1", "z9hG4bK", "branch-1-2" };
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        unsigned got;
        CHECK(!sip_branch_shard(str_from_cstr(foreign[i]), &got));
    }
    buf_fini(&b);
    buf_fini(&prev);
    T_DONE();
}
