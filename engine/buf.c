#include "engine/buf.h"

#include <stdio.h>
#include <stdlib.h>

void buf_init(buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_fini(buf_t *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        PANIC("out of memory growing a buffer to %zu bytes", cap);
    b->data = data;
    b->cap = cap;
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;

    buf_reserve(b, 128);
    va_start(ap, fmt);
    int need = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    ASSERT(need >= 0);
    if ((size_t)need >= b->cap - b->len) {
        /* Did not fit: grow to the size it told us and format again. */
        buf_reserve(b, (size_t)need + 1);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)need;
}

void buf_append_uint(buf_t *b, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, digits + sizeof(digits) - n, n);
}

void buf_append_strs(buf_t *b, ...)
{
    va_list ap;
    va_start(ap, b);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        buf_append(b, s, strlen(s));
    va_end(ap);
}

char *buf_steal(buf_t *b, size_t *len)
{
    char *data = b->data;
    if (len)
        *len = b->len;
    buf_init(b);
    return data;
}

void buf_fit(buf_t *b)
{
    if (b->len == b->cap)
        return;
    if (!b->len) {
        buf_fini(b);
        return;
    }
    char *data = realloc(b->data, b->len);
    if (data) {         /* a failed shrink keeps the larger block: still correct */
        b->data = data;
        b->cap = b->len;
    }
}
