/*
 * uring_wait.h - submitting and sleeping on a ring until a batch of
 * completions is ready.
 *
 * A thread that wakes for every completion pays a context switch for each
 * datagram; under load that costs about as much as handling the datagram.
 * From 6.12 the kernel can wait for a batch (IORING_FEAT_MIN_TIMEOUT): up to
 * `batch` completions, or `min_wait_usec` with at least one ready, whichever
 * comes first; with none ready by then it waits on for the first, up to ts. An
 * idle thread so sleeps as before, and one under load wakes once per batch.
 * On older kernels this is io_uring_submit_and_wait_timeout for one.
 *
 * Threads: the ring's submitter.
 */
#ifndef PRESENCED_URING_WAIT_H
#define PRESENCED_URING_WAIT_H

#include <liburing.h>
#include <stdbool.h>

/* Whether the ring's kernel waits for batches. */
bool uring_wait_batches(const struct io_uring *ring);

/* Submits what is queued and sleeps as above (ts NULL: no bound). Returns what
 * io_uring_enter returned: the number submitted, or -errno (-ETIME, -EINTR). */
int uring_wait_batch(struct io_uring *ring, unsigned batch, unsigned min_wait_usec,
                     struct __kernel_timespec *ts);

#endif
