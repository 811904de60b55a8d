/*
 * uring.h - the io_uring driver that runs a shard.
 *
 * One ring per shard, created on the shard's own thread (SINGLE_ISSUER and
 * DEFER_TASKRUN where the kernel has them: completions are processed only
 * when the shard asks, so no interrupt-style task work lands mid-turn).
 * Sockets are io_uring direct descriptors: accepted straight into the ring's
 * registered file table (multishot accept), read with multishot receives into
 * the shard's provided-buffer ring, moved between shards with
 * IORING_OP_MSG_RING. They never occupy the process's descriptor table, so a
 * node holds up to RLIMIT_NOFILE connections per shard rather than per process.
 * Sleeping shards are woken by IORING_OP_MSG_RING from the sender's ring.
 *
 * Threads: uring_shard_* run on the shard's thread except uring_shard_ring_fd
 * (any thread, after create returned). The waker belongs to one non-shard
 * thread (the node's main thread).
 */
#ifndef PRESENCED_URING_H
#define PRESENCED_URING_H

#include "engine/shard_int.h"

typedef struct uring_shard uring_shard_t;

typedef struct {
    unsigned shard_id;
    const int *listen_fds;          /* one per listener, owned by the driver after create */
    unsigned n_listeners;
    uint32_t dgram_mask;            /* bit i: listener i is a datagram socket */
    uint32_t max_files;             /* registered file table size */
    uint32_t recv_buffers;          /* power of two */
    uint32_t recv_buffer_bytes;
    /* Ring fds of every shard, indexed by shard id; read only after the node
     * has started them all. */
    const int *ring_fds;
} uring_shard_config_t;

/* On the shard's thread. 0 or -errno with a message in err. */
int uring_shard_create(const uring_shard_config_t *cfg, uring_shard_t **out, char *err,
                       size_t err_len);
int uring_shard_ring_fd(const uring_shard_t *u);
void uring_shard_attach(uring_shard_t *u, shard_t *sh);
/* Runs turns until the shard has stopped and every connection is gone. */
void uring_shard_run(uring_shard_t *u);
void uring_shard_destroy(uring_shard_t *u);
/* Kernel features found at create, for the log. */
const char *uring_shard_features(const uring_shard_t *u);

extern const shard_io_ops_t uring_io_ops;

/* A ring used only to wake shards from a thread that is not a shard. */
typedef struct uring_waker uring_waker_t;
int uring_waker_create(uring_waker_t **out);
void uring_waker_wake(uring_waker_t *w, int ring_fd);
void uring_waker_destroy(uring_waker_t *w);

#endif
