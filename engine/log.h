/*
 * log.h - leveled logging with a per-thread tag and rate-limited repeats.
 *
 * Lines go to stderr as "<time> <level> [<tag>] <message>". The tag is set once
 * per thread ("main", "shard 3"), so every line and every panic names where it
 * came from. The level is a process-wide atomic: any thread may change it (the
 * main thread does on SIGHUP) and every thread sees the change at its next line.
 *
 * LOG_RATELIMITED keeps a burst of identical events from flooding the log: each
 * call site lets through LOG_BURST lines per second and then says how many it
 * dropped. Its state is per call site and per thread, so it needs no lock.
 *
 * All functions are safe from any thread; none blocks except on stderr itself.
 */
#ifndef PRESENCED_LOG_H
#define PRESENCED_LOG_H

#include <stdint.h>

#include "engine/common.h"

typedef enum {
    LOG_LEVEL_OFF = -1,     /* nothing at all: for tests that provoke errors */
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
} log_level_t;

/* Lines a rate-limited call site lets through per second before it drops. */
#define LOG_BURST 5

void log_set_level(log_level_t level);
log_level_t log_get_level(void);

/* "error", "warn", "info" or "debug" -> 0 and *out; anything else -> -EINVAL. */
int log_level_parse(const char *s, log_level_t *out);
const char *log_level_name(log_level_t level);

/* The tag is copied; call once per thread before logging (default "main"). */
void log_set_thread_tag(const char *tag);
const char *log_thread_tag(void);

void log_emit(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Per call site: returns true when this line may be printed now; counts drops. */
typedef struct {
    uint64_t window_start_ms;
    uint32_t emitted;
    uint32_t dropped;
} log_limit_t;

bool log_limit_allow(log_limit_t *site, uint32_t *dropped_before);

#define LOG_AT(level, ...)                         \
    do {                                           \
        if ((level) <= log_get_level())            \
            log_emit((level), __VA_ARGS__);        \
    } while (0)

#define LOG_ERROR(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#define LOG_RATELIMITED(level, ...)                                             \
    do {                                                                        \
        static _Thread_local log_limit_t log_site_;                             \
        uint32_t log_dropped_;                                                  \
        if ((level) <= log_get_level() && log_limit_allow(&log_site_, &log_dropped_)) { \
            if (log_dropped_)                                                   \
                log_emit((level), "(%u similar lines suppressed)", log_dropped_); \
            log_emit((level), __VA_ARGS__);                                     \
        }                                                                       \
    } while (0)

#endif
