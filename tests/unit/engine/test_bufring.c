/*
 * Provided-buffer ring against the real kernel: a multishot receive on a
 * socketpair takes buffers from the ring, runs dry (-ENOBUFS) when none are
 * recycled, and carries on once they are.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/bufring.h"
#include "tests/unit/t.h"

#define COUNT 4
#define SIZE 64

static struct io_uring ring;
static bufring_t br;

static void arm(int fd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    io_uring_sqe_set_data64(sqe, 42);
    REQUIRE(io_uring_submit(&ring) == 1);
}

/* Waits for one completion; returns res, fills bid (or -1) and more. */
static int wait_one(int *bid, bool *more)
{
    struct io_uring_cqe *cqe;
    REQUIRE(io_uring_wait_cqe(&ring, &cqe) == 0);
    int res = cqe->res;
    *bid = (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    *more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

static void test_receive_recycle_starve(void)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    REQUIRE(io_uring_queue_init(16, &ring, 0) == 0);
    REQUIRE(bufring_init(&br, &ring, 7, COUNT, SIZE) == 0);
    CHECK_EQ(bufring_available(&br), COUNT);
    arm(sv[0]);

    int held[COUNT];
    bool more;
    /* Take every buffer without giving any back. */
    for (int i = 0; i < COUNT; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "msg-%d", i);
        REQUIRE(write(sv[1], msg, (size_t)n) == n);
        int res = wait_one(&held[i], &more);
        CHECK_EQ(res, n);
        REQUIRE(held[i] >= 0 && held[i] < COUNT);
        bufring_taken(&br);
        CHECK(memcmp(bufring_buf(&br, (uint16_t)held[i]), msg, (size_t)n) == 0);
        CHECK(more);
    }
    CHECK_EQ(bufring_available(&br), 0);
    /* The next message finds no buffer: the multishot receive ends. */
    REQUIRE(write(sv[1], "late", 4) == 4);
    int bid;
    CHECK_EQ(wait_one(&bid, &more), -ENOBUFS);
    CHECK(!more);
    /* Give them back, publish once, re-arm: the waiting bytes arrive. */
    for (int i = 0; i < COUNT; i++)
        bufring_recycle(&br, (uint16_t)held[i]);
    CHECK_EQ(br.unpublished, COUNT);
    bufring_publish(&br);
    CHECK_EQ(br.unpublished, 0);
    arm(sv[0]);
    CHECK_EQ(wait_one(&bid, &more), 4);
    REQUIRE(bid >= 0);
    bufring_taken(&br);
    CHECK(memcmp(bufring_buf(&br, (uint16_t)bid), "late", 4) == 0);
    bufring_recycle(&br, (uint16_t)bid);
    bufring_publish(&br);
    /* Many more messages than buffers, recycling each: never starves. */
    for (int i = 0; i < 100; i++) {
        REQUIRE(write(sv[1], "x", 1) == 1);
        CHECK_EQ(wait_one(&bid, &more), 1);
        REQUIRE(bid >= 0);
        bufring_taken(&br);
        bufring_recycle(&br, (uint16_t)bid);
        bufring_publish(&br);
    }
    CHECK_EQ(bufring_available(&br), COUNT);
    bufring_fini(&br, &ring);
    io_uring_queue_exit(&ring);
    close(sv[0]);
    close(sv[1]);
}

static void test_bad_sizes(void)
{
    struct io_uring r;
    bufring_t b;
    REQUIRE(io_uring_queue_init(4, &r, 0) == 0);
    CHECK_EQ(bufring_init(&b, &r, 1, 3, 64), -EINVAL);
    CHECK_EQ(bufring_init(&b, &r, 1, 65536, 64), -EINVAL);
    CHECK_EQ(bufring_init(&b, &r, 1, 4, 0), -EINVAL);
    io_uring_queue_exit(&r);
}

int main(void)
{
    T_RUN(test_receive_recycle_starve);
    T_RUN(test_bad_sizes);
    T_DONE();
}
