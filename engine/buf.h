/*
 * buf.h - a growable byte buffer for building replies (metrics pages, HTTP
 * responses). Not for the hot receive path, which uses provided buffers.
 *
 * Allocation failure is treated as fatal: buffers here are small and bounded
 * by their callers (a metrics page, one HTTP response).
 * Threads: a buf_t belongs to whoever holds it.
 */
#ifndef PRESENCED_BUF_H
#define PRESENCED_BUF_H

#include <stdarg.h>

#include "engine/common.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

void buf_init(buf_t *b);
void buf_fini(buf_t *b);
void buf_reserve(buf_t *b, size_t extra);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal: what buf_printf("%llu") writes, without the format machinery, for
 * messages composed once per delivery. */
void buf_append_uint(buf_t *b, uint64_t v);
/* Appends each string up to the NULL that ends the list: a message's fixed and variable
 * parts in the order they go out. */
void buf_append_strs(buf_t *b, ...) __attribute__((sentinel));
/* Hands the bytes to the caller (free() them); b is left empty. */
char *buf_steal(buf_t *b, size_t *len);
/* Gives back the capacity beyond len (growth doubles from 256 bytes), for a
 * buffer that is kept long after it was built; an empty buffer frees its data. */
void buf_fit(buf_t *b);

/* Inline: a message is composed of many short appends, most of which fit. */
static inline void buf_append(buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->cap - b->len < len)
        buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* A literal's length is known where this is inlined. */
static inline void buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

#endif
