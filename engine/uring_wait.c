#include "engine/uring_wait.h"

#include <stdint.h>

#define URING_WAIT_FEAT_MIN_TIMEOUT (1u << 15)

/* The kernel's io_uring_getevents_arg from 6.12, whose pad became min_wait_usec
 * (the installed headers may be older). */
struct uring_wait_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec;
    uint64_t ts;
};

bool uring_wait_batches(const struct io_uring *ring)
{
    return (ring->features & URING_WAIT_FEAT_MIN_TIMEOUT) != 0;
}

int uring_wait_batch(struct io_uring *ring, unsigned batch, unsigned min_wait_usec,
                     struct __kernel_timespec *ts)
{
    if (!uring_wait_batches(ring) || batch <= 1) {
        struct io_uring_cqe *cqe;
        return io_uring_submit_and_wait_timeout(ring, &cqe, 1, ts, NULL);
    }
    /* liburing here predates the batch wait: the queue is handed over as its
     * submit would (no SQPOLL on our rings). */
    struct io_uring_sq *sq = &ring->sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    unsigned to_submit = sq->sqe_tail - io_uring_smp_load_acquire(sq->khead);
    struct uring_wait_arg arg = {
        .min_wait_usec = min_wait_usec,
        .ts = (uint64_t)(uintptr_t)ts,
    };
    return io_uring_enter2((unsigned)ring->ring_fd, to_submit, batch,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (sigset_t *)&arg,
                           sizeof(arg));
}
