#include "engine/bufring.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

int bufring_init(bufring_t *br, struct io_uring *ring, uint16_t bgid, uint32_t count,
                 uint32_t size)
{
    memset(br, 0, sizeof(*br));
    if (count == 0 || count > 32768 || (count & (count - 1)) || size == 0)
        return -EINVAL;
    br->ring_bytes = sizeof(struct io_uring_buf) * count;
    /* The ring must be page-aligned; mmap gives that and zeroed memory. */
    void *mem = mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (mem == MAP_FAILED)
        return -ENOMEM;
    br->ring = mem;
    br->bufs = malloc((size_t)count * size);
    if (!br->bufs) {
        munmap(mem, br->ring_bytes);
        return -ENOMEM;
    }
    br->count = count;
    br->size = size;
    br->bgid = bgid;
    io_uring_buf_ring_init(br->ring);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br->ring,
        .ring_entries = count,
        .bgid = bgid,
    };
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        free(br->bufs);
        munmap(mem, br->ring_bytes);
        memset(br, 0, sizeof(*br));
        return rc;
    }
    for (uint32_t i = 0; i < count; i++)
        io_uring_buf_ring_add(br->ring, bufring_buf(br, (uint16_t)i), size, (uint16_t)i,
                              io_uring_buf_ring_mask(count), (int)i);
    io_uring_buf_ring_advance(br->ring, (int)count);
    return 0;
}

void bufring_fini(bufring_t *br, struct io_uring *ring)
{
    if (!br->ring)
        return;
    io_uring_unregister_buf_ring(ring, br->bgid);
    munmap(br->ring, br->ring_bytes);
    free(br->bufs);
    memset(br, 0, sizeof(*br));
}

void bufring_recycle(bufring_t *br, uint16_t bid)
{
    ASSERT(bid < br->count);
    ASSERT(br->out > 0);
    io_uring_buf_ring_add(br->ring, bufring_buf(br, bid), br->size, bid,
                          io_uring_buf_ring_mask(br->count), (int)br->unpublished);
    br->unpublished++;
    br->out--;
}

void bufring_publish(bufring_t *br)
{
    if (br->unpublished == 0)
        return;
    /* io_uring_buf_ring_advance stores the new tail with release semantics,
     * pairing with the kernel's acquire when it picks a buffer. */
    io_uring_buf_ring_advance(br->ring, (int)br->unpublished);
    br->unpublished = 0;
}
