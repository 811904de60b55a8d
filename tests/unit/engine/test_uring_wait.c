/*
 * Batched waits against the real kernel, on a ring set up as a shard's
 * (single issuer, deferred task work): what is queued is submitted; one
 * completion ends an idle wait (never the whole timeout); where the kernel
 * waits for batches, a second completion within the window is waited for.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "engine/uring_wait.h"
#include "tests/unit/t.h"

static struct io_uring ring;

static void ring_init(void)
{
    struct io_uring_params p = { 0 };
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(16, &ring, &p) < 0)
        REQUIRE(io_uring_queue_init(16, &ring, 0) == 0);
}

static unsigned reap(void)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
        n++;
    }
    io_uring_cq_advance(&ring, n);
    return n;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void nop(uint64_t ud)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    REQUIRE(sqe);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ud);
}

static void test_submits_what_is_queued(void)
{
    ring_init();
    nop(1);
    nop(2);
    nop(3);
    struct __kernel_timespec ts = { .tv_sec = 5 };
    CHECK_EQ(uring_wait_batch(&ring, 3, 1000000, &ts), 3);
    CHECK_EQ(reap(), 3);
    io_uring_queue_exit(&ring);
}

static void test_one_completion_ends_the_wait(void)
{
    ring_init();
    nop(1);
    struct __kernel_timespec ts = { .tv_sec = 5 };
    double t0 = now_s();
    CHECK(uring_wait_batch(&ring, 32, 1000, &ts) >= 0);
    CHECK(now_s() - t0 < 2.5);      /* not the 5 s bound: the window is 1 ms */
    CHECK_EQ(reap(), 1);
    io_uring_queue_exit(&ring);
}

static void test_times_out_with_nothing(void)
{
    ring_init();
    struct __kernel_timespec ts = { .tv_nsec = 30 * 1000 * 1000 };
    CHECK_EQ(uring_wait_batch(&ring, 32, 100, &ts), -ETIME);
    CHECK_EQ(reap(), 0);
    io_uring_queue_exit(&ring);
}

static int pipe_fds[2];

static void *write_later(void *arg)
{
    (void)arg;
    usleep(20 * 1000);
    REQUIRE(write(pipe_fds[1], "x", 1) == 1);
    return NULL;
}

static void test_waits_for_the_batch(void)
{
    ring_init();
    REQUIRE(pipe(pipe_fds) == 0);
    static char byte;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, pipe_fds[0], &byte, 1, 0);
    io_uring_sqe_set_data64(sqe, 7);
    nop(1);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, write_later, NULL) == 0);
    struct __kernel_timespec ts = { .tv_sec = 5 };
    CHECK(uring_wait_batch(&ring, 2, 2000000, &ts) >= 0);
    unsigned n = reap();
    printf("kernel waits for batches: %s\n", uring_wait_batches(&ring) ? "yes" : "no");
    if (uring_wait_batches(&ring)) {
        CHECK_EQ(n, 2);             /* the read 20 ms later joined the NOP's batch */
    } else {
        CHECK(n >= 1);
        if (n == 1) {
            CHECK(uring_wait_batch(&ring, 1, 0, &ts) >= 0);
            CHECK_EQ(reap(), 1);
        }
    }
    CHECK_EQ(byte, 'x');
    pthread_join(t, NULL);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    io_uring_queue_exit(&ring);
}

int main(void)
{
    T_RUN(test_submits_what_is_queued);
    T_RUN(test_one_completion_ends_the_wait);
    T_RUN(test_times_out_with_nothing);
    T_RUN(test_waits_for_the_batch);
    T_DONE();
}
