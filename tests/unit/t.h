/*
 * t.h - the unit tests' checks. Each test is its own executable run by meson;
 * a failed check prints file:line and the expression and the test exits 1, so
 * meson counts it failed. Exit 77 is "skipped" and is never counted as a pass.
 */
#ifndef PRESENCED_T_H
#define PRESENCED_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

static int t_failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            t_failures++;                                                   \
        }                                                                   \
    } while (0)

#define CHECK_EQ(a, b)                                                      \
    do {                                                                    \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);             \
        if (t_a_ != t_b_) {                                                 \
            fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, t_a_, t_b_);                \
            t_failures++;                                                   \
        }                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                     \
    do {                                                                    \
        const char *t_a_ = (a), *t_b_ = (b);                                \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                    \
            fprintf(stderr, "%s:%d: check failed: %s == \"%s\" (got \"%s\")\n", \
                    __FILE__, __LINE__, #a, t_b_ ? t_b_ : "(null)",         \
                    t_a_ ? t_a_ : "(null)");                                \
            t_failures++;                                                   \
        }                                                                   \
    } while (0)

/* Fatal: stop the test now (later checks would only cascade). */
#define REQUIRE(cond)                                                       \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: required: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

/* s as a C string for a check or a message, "(absent)" when its ptr is NULL. A ring of
 * eight buffers, so that several fit in one CHECK; a string longer than a buffer stops the
 * test rather than being compared cut. */
#define T_STR_MAX_BYTES 8192
static inline const char *t_str(str_t s)
{
    static char bufs[8][T_STR_MAX_BYTES];
    static unsigned next;
    if (!s.ptr)
        return "(absent)";
    REQUIRE(s.len < T_STR_MAX_BYTES);
    char *b = bufs[next++ % 8];
    memcpy(b, s.ptr, s.len);
    b[s.len] = '\0';
    return b;
}

#define T_RUN(fn)                                                           \
    do {                                                                    \
        int t_before_ = t_failures;                                         \
        fn();                                                               \
        fprintf(stderr, "%s %s\n", t_failures == t_before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

#define T_DONE() return t_failures ? 1 : 0

#endif
