/*
 * log.c - see log.h. One fprintf per line: stdio locks the stream for the
 * duration of the call, so lines from different shards never interleave.
 */
#include "engine/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int log_level = LOG_LEVEL_INFO;
static _Thread_local char log_tag[32] = "main";

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void log_set_level(log_level_t level)
{
    ASSERT(level >= LOG_LEVEL_OFF && level <= LOG_LEVEL_DEBUG);
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (size_t i = 0; i < ARRAY_LEN(log_names); i++) {
        if (s && strcmp(s, log_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *log_level_name(log_level_t level)
{
    ASSERT(level >= LOG_LEVEL_ERROR && level <= LOG_LEVEL_DEBUG);
    return log_names[level];
}

void log_set_thread_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

const char *log_thread_tag(void)
{
    return log_tag;
}

static void log_vemit(const char *level, const char *fmt, va_list ap)
{
    char msg[1024];
    struct timespec ts;
    struct tm tm;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            level, log_tag, msg);
}

void log_emit(log_level_t level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(log_names[level], fmt, ap);
    va_end(ap);
}

bool log_limit_allow(log_limit_t *site, uint32_t *dropped_before)
{
    struct timespec ts;
    uint64_t now_ms;

    /* Coarse clock: this runs only for lines that pass the level check. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    *dropped_before = 0;
    if (now_ms - site->window_start_ms >= 1000) {
        *dropped_before = site->dropped;
        site->window_start_ms = now_ms;
        site->emitted = 0;
        site->dropped = 0;
    }
    if (site->emitted < LOG_BURST) {
        site->emitted++;
        return true;
    }
    site->dropped++;
    return false;
}

_Noreturn void panic_at(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "PANIC [%s] %s:%d: %s\n", log_tag, file, line, msg);
    fflush(stderr);
    abort();
}
