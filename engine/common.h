/*
 * common.h - small definitions every presenced module uses.
 *
 * Slices ({ptr, len} views into buffers that someone else owns), branch hints,
 * container_of, and the always-on assertion that crashes with the caller's shard
 * named (see STYLE.md, "Errors and assertions"). Header-only; safe from any thread.
 */
#ifndef PRESENCED_COMMON_H
#define PRESENCED_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define CACHE_LINE_BYTES 64

/* A view into bytes owned elsewhere; never NUL-terminated by contract. */
typedef struct {
    const char *ptr;
    size_t len;
} str_t;

#define STR_LIT(s) ((str_t){ (s), sizeof(s) - 1 })

static inline str_t str_from_cstr(const char *s)
{
    return (str_t){ s, s ? strlen(s) : 0 };
}

static inline bool str_eq(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool str_eq_cstr(str_t a, const char *b)
{
    return str_eq(a, str_from_cstr(b));
}

/*
 * Programmer errors crash; they are never returned. The message names the shard
 * of the calling thread (or "main"), the file and the line. Defined in log.c so
 * that the shard tag comes from the same thread-local the logger uses.
 */
_Noreturn void panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define PANIC(...) panic_at(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(cond)                                                    \
    do {                                                                \
        if (unlikely(!(cond)))                                          \
            panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

/* Expensive checks: compiled only into debug and sanitizer builds. */
#ifdef PRESENCED_DEBUG
#define DEBUG_ASSERT(cond) ASSERT(cond)
#else
#define DEBUG_ASSERT(cond) ((void)sizeof(cond))
#endif

#endif
