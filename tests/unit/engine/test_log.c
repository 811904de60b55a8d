/*
 * Logging: level parsing and filtering, the thread tag on every line, and the
 * per-call-site rate limit that reports what it dropped.
 */
#include <stdio.h>
#include <unistd.h>

#include "engine/log.h"
#include "tests/unit/t.h"

static char captured[65536];

/* Runs fn with stderr redirected into captured[]. */
static void capture(void (*fn)(void))
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    REQUIRE(tmp);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(captured, 1, sizeof(captured) - 1, tmp);
    captured[n] = 0;
    fclose(tmp);
}

static unsigned count(const char *needle)
{
    unsigned n = 0;
    for (const char *p = captured; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_levels(void)
{
    log_level_t l;
    CHECK_EQ(log_level_parse("debug", &l), 0);
    CHECK_EQ(l, LOG_LEVEL_DEBUG);
    CHECK(log_level_parse("verbose", &l) < 0);
    CHECK(log_level_parse(NULL, &l) < 0);
    CHECK_STR(log_level_name(LOG_LEVEL_WARN), "warn");
}

static void emit_filtered(void)
{
    log_set_level(LOG_LEVEL_WARN);
    log_set_thread_tag("shard 7");
    LOG_INFO("hidden info");
    LOG_WARN("shown warning %d", 42);
    log_set_level(LOG_LEVEL_DEBUG);
    LOG_DEBUG("shown debug");
}

static void test_filter_and_tag(void)
{
    capture(emit_filtered);
    CHECK(!strstr(captured, "hidden info"));
    CHECK(strstr(captured, "warn  [shard 7] shown warning 42") != NULL);
    CHECK(strstr(captured, "[shard 7] shown debug") != NULL);
}

static void flood(void)
{
    LOG_RATELIMITED(LOG_LEVEL_WARN, "flood line");
}

static void emit_burst(void)
{
    log_set_level(LOG_LEVEL_INFO);
    for (int i = 0; i < 100; i++)
        flood();
    /* The same site in a new window (1 s later) says what the last one dropped. */
    usleep(1100000);
    flood();
}

static void test_rate_limit(void)
{
    capture(emit_burst);
    CHECK_EQ(count("flood line"), LOG_BURST + 1);
    CHECK(strstr(captured, "(95 similar lines suppressed)") != NULL);
}

int main(void)
{
    T_RUN(test_levels);
    T_RUN(test_filter_and_tag);
    T_RUN(test_rate_limit);
    T_DONE();
}
