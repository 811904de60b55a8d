/*
 * Configuration: defaults, presenced.conf, every value type at and past its bounds, the
 * exact error messages (file, line, first error), inih's edges as Debian builds it (long
 * lines, continuations, BOM, CRLF, NUL bytes), and cfg_format round trips.
 *
 * presenced.conf is found through PRESENCED_SRC_DIR (meson sets it) or the current
 * directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/config.h"
#include "tests/unit/t.h"

/* A valid value for every key that differs from its default: loading presenced.conf over
 * a cfg_t holding these must give the defaults back, which proves the file sets every key. */
static const struct {
    const char *section, *key, *value;
} other[] = {
    { "node", "name", "edge-1" },
    { "node", "shards", "4" },
    { "node", "data_dir", "/var/lib/presenced" },
    { "node", "log_level", "debug" },
    { "node", "pin_shards", "no" },
    { "node", "domain", "example.com" },
    { "admin", "listen", "[::1]:9000" },
    { "net", "idle_timeout_s", "0" },
    { "net", "output_queue_max_bytes", "4096" },
    { "net", "max_connections_per_shard", "100000" },
    { "net", "recv_buffer_bytes", "65536" },
    { "net", "recv_buffers_per_shard", "16" },
    { "net", "listen_backlog", "1" },
    { "mailbox", "ring_slots", "1048576" },
    { "shutdown", "drain_timeout_ms", "0" },
    { "storage", "sync", "none" },
    { "xmpp", "listen", "" },
    { "xmpp", "tls_listen", "*:15223" },
    { "xmpp", "require_tls", "false" },
    { "xmpp", "plain_without_tls", "yes" },
    { "xmpp", "max_stanza_bytes", "1024" },
    { "xmpp", "registration", "true" },
    { "xmpp", "resume_timeout_s", "0" },
    { "xmpp", "test_auth", "true" },
    { "sip", "listen", "192.0.2.1:5070" },
    { "sip", "tls_listen", "" },
    { "sip", "min_expires_s", "1" },
    { "sip", "max_expires_s", "604800" },
    { "sip", "default_expires_s", "600" },
    { "sip", "max_unanswered", "0" },
    { "sip", "auth", "off" },
    { "sip", "digest", "md5" },
    { "sip", "trusted", "192.0.2.10, 2001:db8::5" },
    { "gateway", "call_control", "192.0.2.7:5060" },
    { "gateway", "event", "presence" },
    { "gateway", "expires_s", "60" },
    { "gateway", "retry_s", "1" },
    { "pws", "listen", "[2001:db8::1]:8080" },
    { "pws", "tls_listen", "0.0.0.0:65535" },
    { "tls", "cert_file", "/etc/presenced/cert.pem" },
    { "tls", "key_file", "/etc/presenced/key.pem" },
};

static char err[512];

static void set_others(cfg_t *cfg)
{
    cfg_defaults(cfg);
    for (size_t i = 0; i < ARRAY_LEN(other); i++)
        REQUIRE(cfg_set(cfg, other[i].section, other[i].key, other[i].value, err,
                        sizeof err) == 0);
}

/* Loads a NUL-terminated text over the defaults. */
static int load(cfg_t *cfg, const char *text)
{
    cfg_defaults(cfg);
    err[0] = '\0';
    return cfg_load_string(cfg, text, strlen(text), "x.conf", err, sizeof err);
}

/* cfg_set on a fresh default config; 0 or -EINVAL. */
static int set1(const char *section, const char *key, const char *value)
{
    cfg_t cfg;
    cfg_defaults(&cfg);
    err[0] = '\0';
    return cfg_set(&cfg, section, key, value, err, sizeof err);
}

static uint16_t port_of(const cfg_addr_t *a)
{
    if (a->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->addr)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->addr)->sin6_port);
}

static void test_defaults(void)
{
    cfg_t c;
    memset(&c, 0xa5, sizeof c);
    cfg_defaults(&c);
    CHECK_STR(c.name, "presenced");
    CHECK_EQ(c.shards, 0);
    CHECK_STR(c.data_dir, "./data");
    CHECK_STR(c.log_level, "info");
    CHECK(c.pin_shards);
    CHECK_STR(c.domain, "localhost");
    CHECK_STR(c.admin_listen.text, "127.0.0.1:8084");
    CHECK_EQ(c.admin_listen.addr.ss_family, AF_INET);
    CHECK_EQ(c.admin_listen.addr_len, sizeof(struct sockaddr_in));
    CHECK_EQ(port_of(&c.admin_listen), 8084);
    CHECK_EQ(((struct sockaddr_in *)&c.admin_listen.addr)->sin_addr.s_addr,
             htonl(INADDR_LOOPBACK));
    CHECK_EQ(c.idle_timeout_s, 300);
    CHECK_EQ(c.output_queue_max_bytes, 262144);
    CHECK_EQ(c.max_connections_per_shard, 0);
    CHECK_EQ(c.recv_buffer_bytes, 4096);
    CHECK_EQ(c.recv_buffers_per_shard, 1024);
    CHECK_EQ(c.listen_backlog, 4096);
    CHECK_EQ(c.mailbox_ring_slots, 4096);
    CHECK_EQ(c.drain_timeout_ms, 5000);
    CHECK_STR(c.storage_sync, "batch");
    CHECK_STR(c.xmpp_listen.text, "0.0.0.0:5222");
    CHECK_STR(c.xmpp_tls_listen.text, "0.0.0.0:5223");
    CHECK_STR(c.sip_listen.text, "0.0.0.0:5060");
    CHECK_STR(c.sip_tls_listen.text, "0.0.0.0:5061");
    CHECK_STR(c.pws_listen.text, "0.0.0.0:8082");
    CHECK_STR(c.pws_tls_listen.text, "0.0.0.0:8083");
    CHECK_EQ(port_of(&c.pws_tls_listen), 8083);
    CHECK(c.xmpp_require_tls);
    CHECK(!c.xmpp_plain_without_tls);
    CHECK_STR(c.tls_cert_file, "");
    CHECK_STR(c.tls_key_file, "");

    /* Padding and string tails are cleared too, so whole-struct copies compare equal. */
    cfg_t d;
    memset(&d, 0x5a, sizeof d);
    cfg_defaults(&d);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK(cfg_equal(&c, &d));
}

static void test_key_table(void)
{
    /* The test's list of other values covers the whole table, in its order. */
    REQUIRE(cfg_key_count() == ARRAY_LEN(other));
    for (size_t i = 0; i < cfg_key_count(); i++) {
        const cfg_key_info_t *k = cfg_key_info(i);
        CHECK_STR(k->section, other[i].section);
        CHECK_STR(k->name, other[i].key);
        CHECK(k->help && k->help[0]);
        CHECK(k->def != NULL);
        /* Each of these values differs from the default: cfg_equal sees every key. */
        cfg_t a, b;
        cfg_defaults(&a);
        cfg_defaults(&b);
        CHECK_EQ(cfg_set(&b, k->section, k->name, other[i].value, err, sizeof err), 0);
        CHECK(!cfg_equal(&a, &b));
        CHECK_EQ(cfg_set(&b, k->section, k->name, k->def, err, sizeof err), 0);
        CHECK(cfg_equal(&a, &b));
    }
}

static void test_example_file(void)
{
    const char *dir = getenv("PRESENCED_SRC_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/presenced.conf", dir && dir[0] ? dir : ".");

    cfg_t want, got;
    cfg_defaults(&want);
    cfg_defaults(&got);
    int rc = cfg_load_file(&got, path, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    REQUIRE(rc == 0);
    CHECK(cfg_equal(&got, &want));

    /* Over a config where every key differs, the file alone brings back the defaults. */
    set_others(&got);
    CHECK(!cfg_equal(&got, &want));
    CHECK_EQ(cfg_load_file(&got, path, err, sizeof err), 0);
    CHECK(cfg_equal(&got, &want));
}

static void check_round_trip(const cfg_t *in)
{
    char buf[8192];
    int n = cfg_format(in, buf, sizeof buf);
    REQUIRE(n > 0 && (size_t)n < sizeof buf);
    CHECK_EQ(strlen(buf), n);

    /* Read back over a base that differs everywhere, so nothing passes by accident. */
    cfg_t out;
    set_others(&out);
    int rc = cfg_load_string(&out, buf, (size_t)n, "formatted", err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ(rc, 0);
    CHECK(cfg_equal(in, &out));
}

static void test_round_trip(void)
{
    cfg_t c;
    cfg_defaults(&c);
    check_round_trip(&c);
    set_others(&c);
    check_round_trip(&c);

    /* The longest strings each key accepts still fit on one line when written back. */
    char v[300];
    size_t dd_max = CFG_LINE_MAX - strlen("data_dir = ");
    memset(v, 'p', dd_max);
    v[0] = '/';
    v[dd_max] = '\0';
    CHECK_EQ(cfg_set(&c, "node", "data_dir", v, err, sizeof err), 0);
    memset(v, 'n', 63);
    v[63] = '\0';
    CHECK_EQ(cfg_set(&c, "node", "name", v, err, sizeof err), 0);
    /* domain: labels of 63 up to the line limit */
    size_t dom_max = CFG_LINE_MAX - strlen("domain = ");
    for (size_t i = 0; i < dom_max; i++)
        v[i] = (i % 64 == 63) ? '.' : 'd';
    v[dom_max] = '\0';
    CHECK_EQ(cfg_set(&c, "node", "domain", v, err, sizeof err), 0);
    CHECK_EQ(cfg_set(&c, "pws", "listen", "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
                     err, sizeof err), 0);
    CHECK_EQ(cfg_set(&c, "node", "data_dir", "/a b;c=d:e#f[g]\"h\"", err, sizeof err), 0);
    check_round_trip(&c);

    /* Every buffer size: -ENOSPC with a terminated prefix until the text and NUL fit. */
    char full[8192], small[8192];
    int n = cfg_format(&c, full, sizeof full);
    REQUIRE(n > 0);
    CHECK_EQ(cfg_format(&c, NULL, 0), -ENOSPC);
    for (size_t len = 1; len <= (size_t)n + 1; len++) {
        memset(small, 'x', sizeof small);
        int r = cfg_format(&c, small, len);
        if (len <= (size_t)n) {
            CHECK_EQ(r, -ENOSPC);
            CHECK(memchr(small, '\0', len) != NULL);
            CHECK(strncmp(small, full, strlen(small)) == 0);
        } else {
            CHECK_EQ(r, n);
            CHECK_STR(small, full);
        }
    }
}

static void test_integers(void)
{
    static const struct {
        const char *key, *value;
        int rc;
    } cases[] = {
        { "idle_timeout_s", "0", 0 },
        { "idle_timeout_s", "86400", 0 },
        { "idle_timeout_s", "86401", -EINVAL },
        { "idle_timeout_s", "007", 0 },
        { "idle_timeout_s", "", -EINVAL },
        { "idle_timeout_s", "abc", -EINVAL },
        { "idle_timeout_s", "12abc", -EINVAL },
        { "idle_timeout_s", "-1", -EINVAL },
        { "idle_timeout_s", "+1", -EINVAL },
        { "idle_timeout_s", " 1", -EINVAL },
        { "idle_timeout_s", "1 ", -EINVAL },
        { "idle_timeout_s", "0x10", -EINVAL },
        { "idle_timeout_s", "1e3", -EINVAL },
        { "idle_timeout_s", "1.5", -EINVAL },
        { "output_queue_max_bytes", "4095", -EINVAL },
        { "output_queue_max_bytes", "4096", 0 },
        { "output_queue_max_bytes", "1073741824", 0 },
        { "output_queue_max_bytes", "1073741825", -EINVAL },
        { "output_queue_max_bytes", "4294967295", -EINVAL },
        { "output_queue_max_bytes", "4294967296", -EINVAL },
        { "output_queue_max_bytes", "18446744073709551617", -EINVAL },
        { "output_queue_max_bytes", "99999999999999999999999999999999", -EINVAL },
        { "recv_buffer_bytes", "256", -EINVAL },
        { "recv_buffer_bytes", "512", 0 },
        { "recv_buffer_bytes", "1000", -EINVAL },
        { "recv_buffer_bytes", "65536", 0 },
        { "recv_buffer_bytes", "131072", -EINVAL },
        { "recv_buffers_per_shard", "8", -EINVAL },
        { "recv_buffers_per_shard", "16", 0 },
        { "recv_buffers_per_shard", "24", -EINVAL },
        { "recv_buffers_per_shard", "32768", 0 },
        { "recv_buffers_per_shard", "65536", -EINVAL },
        { "listen_backlog", "0", -EINVAL },
        { "listen_backlog", "65535", 0 },
        { "max_connections_per_shard", "1048576", 0 },
        { "max_connections_per_shard", "1048577", -EINVAL },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int rc = set1("net", cases[i].key, cases[i].value);
        if (rc != cases[i].rc)
            fprintf(stderr, "  net.%s = '%s': %d (%s)\n", cases[i].key, cases[i].value, rc, err);
        CHECK_EQ(rc, cases[i].rc);
    }
    CHECK_EQ(set1("node", "shards", "256"), 0);
    CHECK_EQ(set1("node", "shards", "257"), -EINVAL);
    CHECK_EQ(set1("mailbox", "ring_slots", "32"), -EINVAL);
    CHECK_EQ(set1("mailbox", "ring_slots", "64"), 0);
    CHECK_EQ(set1("mailbox", "ring_slots", "1048576"), 0);
    CHECK_EQ(set1("mailbox", "ring_slots", "2097152"), -EINVAL);
    CHECK_EQ(set1("mailbox", "ring_slots", "4097"), -EINVAL);
    CHECK_EQ(set1("shutdown", "drain_timeout_ms", "600000"), 0);
    CHECK_EQ(set1("shutdown", "drain_timeout_ms", "600001"), -EINVAL);

    CHECK_EQ(set1("net", "recv_buffer_bytes", "1000"), -EINVAL);
    CHECK_STR(err, "bad value for recv_buffer_bytes: '1000' (expected a power of two 512..65536)");

    /* A rejected value leaves the old one. */
    cfg_t c;
    cfg_defaults(&c);
    CHECK_EQ(cfg_set(&c, "net", "idle_timeout_s", "99x", err, sizeof err), -EINVAL);
    CHECK_EQ(c.idle_timeout_s, 300);
}

static void test_bools_and_enums(void)
{
    static const char *const yes[] = { "true", "yes", "on", "1", "TRUE", "Yes", "ON" };
    static const char *const no[] = { "false", "no", "off", "0", "False", "NO", "Off" };
    cfg_t c;
    cfg_defaults(&c);
    for (size_t i = 0; i < ARRAY_LEN(no); i++) {
        c.pin_shards = true;
        CHECK_EQ(cfg_set(&c, "node", "pin_shards", no[i], err, sizeof err), 0);
        CHECK(!c.pin_shards);
        CHECK_EQ(cfg_set(&c, "node", "pin_shards", yes[i], err, sizeof err), 0);
        CHECK(c.pin_shards);
    }
    CHECK_EQ(set1("node", "pin_shards", ""), -EINVAL);
    CHECK_EQ(set1("node", "pin_shards", "2"), -EINVAL);
    CHECK_EQ(set1("node", "pin_shards", "truee"), -EINVAL);
    CHECK_EQ(set1("node", "pin_shards", "maybe"), -EINVAL);
    CHECK_STR(err, "bad value for pin_shards: 'maybe' "
                   "(expected true or false (or yes/no, on/off, 1/0))");

    const char *levels[] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < ARRAY_LEN(levels); i++) {
        CHECK_EQ(cfg_set(&c, "node", "log_level", levels[i], err, sizeof err), 0);
        CHECK_STR(c.log_level, levels[i]);
    }
    CHECK_EQ(set1("node", "log_level", "trace"), -EINVAL);
    CHECK_STR(err, "bad value for log_level: 'trace' (expected error, warn, info or debug)");
    CHECK_EQ(set1("node", "log_level", "INFO"), -EINVAL);
    CHECK_EQ(set1("node", "log_level", "warning"), -EINVAL);
    CHECK_EQ(set1("storage", "sync", "none"), 0);
    CHECK_EQ(set1("storage", "sync", "batch"), 0);
    CHECK_EQ(set1("storage", "sync", "always"), -EINVAL);
    CHECK_STR(err, "bad value for sync: 'always' (expected batch or none)");
    CHECK_EQ(set1("storage", "sync", ""), -EINVAL);
}

static void test_strings(void)
{
    char v[5000];
    CHECK_EQ(set1("node", "name", "node-1.eu_west"), 0);
    CHECK_EQ(set1("node", "name", ""), -EINVAL);
    CHECK_EQ(set1("node", "name", "a b"), -EINVAL);
    CHECK_EQ(set1("node", "name", "a/b"), -EINVAL);
    CHECK_STR(err, "bad value for name: 'a/b' (expected 1..63 letters, digits, '.', '_' or '-')");
    CHECK_EQ(set1("node", "name", "caf\xc3\xa9"), -EINVAL);
    memset(v, 'n', 64);
    v[64] = '\0';
    CHECK_EQ(set1("node", "name", v), -EINVAL);
    v[63] = '\0';
    CHECK_EQ(set1("node", "name", v), 0);

    CHECK_EQ(set1("node", "domain", "example.com"), 0);
    CHECK_EQ(set1("node", "domain", "xn--bcher-kva.example"), 0);
    CHECK_EQ(set1("node", "domain", "localhost"), 0);
    CHECK_EQ(set1("node", "domain", ""), -EINVAL);
    CHECK_EQ(set1("node", "domain", ".example.com"), -EINVAL);
    CHECK_EQ(set1("node", "domain", "example.com."), -EINVAL);
    CHECK_EQ(set1("node", "domain", "example..com"), -EINVAL);
    CHECK_STR(err, "bad value for domain: 'example..com' "
                   "(expected a domain name of 1..190 letters, digits, '-' and dots)");
    CHECK_EQ(set1("node", "domain", "user@example.com"), -EINVAL);
    CHECK_EQ(set1("node", "domain", "example.com:5222"), -EINVAL);
    CHECK_EQ(set1("node", "domain", "b\xc3\xbc" "cher.example"), -EINVAL);
    memset(v, 'd', 64);
    strcpy(v + 64, ".com");
    CHECK_EQ(set1("node", "domain", v), -EINVAL);   /* a label of 64 */
    strcpy(v + 63, ".com");
    CHECK_EQ(set1("node", "domain", v), 0);

    CHECK_EQ(set1("node", "data_dir", "/var/lib/presenced"), 0);
    CHECK_EQ(set1("node", "data_dir", "relative/dir with space"), 0);
    CHECK_EQ(set1("node", "data_dir", "a;b"), 0);
    CHECK_EQ(set1("node", "data_dir", ""), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", " lead"), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", "trail "), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", "a ;b"), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", ";a"), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", "a\tb"), -EINVAL);
    CHECK_EQ(set1("node", "data_dir", "a\nb"), -EINVAL);
    size_t max = CFG_LINE_MAX - strlen("data_dir = ");
    memset(v, 'p', sizeof v);
    v[max] = '\0';
    CHECK_EQ(set1("node", "data_dir", v), 0);
    v[max] = 'p';
    v[max + 1] = '\0';
    CHECK_EQ(set1("node", "data_dir", v), -EINVAL);
    /* The message shows a bounded, sanitised excerpt, not 4 KB of the value. */
    v[4500] = '\0';
    v[3] = '\x1b';
    CHECK_EQ(set1("node", "data_dir", v), -EINVAL);
    CHECK_STR(err, "bad value for data_dir: 'ppp?pppppppppppppppppppppppppppppppppppp...' "
                   "(expected 1..188 printable bytes, no leading or trailing space, "
                   "no ' ;')");
}

static void test_addresses(void)
{
    static const struct {
        const char *text;
        int rc, family;
        uint16_t port;
    } cases[] = {
        { "127.0.0.1:8084", 0, AF_INET, 8084 },
        { "0.0.0.0:1", 0, AF_INET, 1 },
        { "*:5222", 0, AF_INET, 5222 },
        { "[::1]:5222", 0, AF_INET6, 5222 },
        { "[::]:65535", 0, AF_INET6, 65535 },
        { "[::ffff:192.0.2.1]:80", 0, AF_INET6, 80 },
        { "", 0, 0, 0 },
        { "localhost:80", -EINVAL, 0, 0 },
        { "example.com:80", -EINVAL, 0, 0 },
        { "1.2.3.4", -EINVAL, 0, 0 },
        { "1.2.3.4:", -EINVAL, 0, 0 },
        { ":80", -EINVAL, 0, 0 },
        { "127.0.0.1:0", 0, AF_INET, 0 },
        { "[::1]:0", 0, AF_INET6, 0 },
        { "1.2.3.4:65536", -EINVAL, 0, 0 },
        { "1.2.3.4:000080", -EINVAL, 0, 0 },
        { "1.2.3.4:-1", -EINVAL, 0, 0 },
        { "1.2.3.4:+80", -EINVAL, 0, 0 },
        { "1.2.3.4:80x", -EINVAL, 0, 0 },
        { "1.2.3.4: 80", -EINVAL, 0, 0 },
        { "1.2.3.4.5:80", -EINVAL, 0, 0 },
        { "256.1.1.1:80", -EINVAL, 0, 0 },
        { "::1:5222", -EINVAL, 0, 0 },
        { "[::1]", -EINVAL, 0, 0 },
        { "[::1]5222", -EINVAL, 0, 0 },
        { "[::1]:", -EINVAL, 0, 0 },
        { "[]:80", -EINVAL, 0, 0 },
        { "[1.2.3.4]:80", -EINVAL, 0, 0 },
        { "[*]:80", -EINVAL, 0, 0 },
        { "[fe80::1%eth0]:80", -EINVAL, 0, 0 },
        { "[::1:80", -EINVAL, 0, 0 },
        { "*", -EINVAL, 0, 0 },
        { " 1.2.3.4:80", -EINVAL, 0, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cfg_addr_t a;
        memset(&a, 0xa5, sizeof a);
        int rc = cfg_addr_parse(cases[i].text, &a);
        if (rc != cases[i].rc)
            fprintf(stderr, "  '%s': %d\n", cases[i].text, rc);
        CHECK_EQ(rc, cases[i].rc);
        if (rc != 0) {
            CHECK_EQ(a.addr_len, 0);    /* fully overwritten on error too */
            CHECK_STR(a.text, "");
            continue;
        }
        CHECK_STR(a.text, cases[i].text);
        if (cases[i].family == 0) {
            CHECK_EQ(a.addr_len, 0);
            continue;
        }
        CHECK_EQ(a.addr.ss_family, cases[i].family);
        CHECK_EQ(a.addr_len, cases[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                         : sizeof(struct sockaddr_in6));
        CHECK_EQ(port_of(&a), cases[i].port);
    }
    cfg_addr_t a;
    CHECK_EQ(cfg_addr_parse(NULL, &a), -EINVAL);
    char big[200];
    memset(big, '1', sizeof big);
    big[sizeof big - 1] = '\0';
    CHECK_EQ(cfg_addr_parse(big, &a), -EINVAL);

    CHECK_EQ(set1("xmpp", "listen", "host:5222"), -EINVAL);
    CHECK_STR(err, "bad value for listen: 'host:5222' "
                   "(expected ipv4:port, [ipv6]:port, *:port, or nothing to disable)");
}

static void test_file_syntax(void)
{
    cfg_t c;
    /* Sections repeat, a key given twice takes the last value; ':' works like '='. */
    CHECK_EQ(load(&c, "[net]\nidle_timeout_s = 10\n[node]\nshards = 2\n"
                      "[net]\nidle_timeout_s=20\nlisten_backlog: 7\n"), 0);
    CHECK_EQ(c.idle_timeout_s, 20);
    CHECK_EQ(c.shards, 2);
    CHECK_EQ(c.listen_backlog, 7);

    /* Comments: whole lines with '#' or ';', inline only as " ;". */
    CHECK_EQ(load(&c, "# c\n; c\n[net] ; c\n  # indented comment\n"
                      "idle_timeout_s = 30 ; thirty\n"), 0);
    CHECK_EQ(c.idle_timeout_s, 30);
    CHECK_EQ(load(&c, "[net]\nidle_timeout_s = 30 # thirty\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: bad value for idle_timeout_s: '30 # thirty' "
                   "(expected an integer 0..86400)");

    /* Indentation is ignored: no inih continuation lines, an indented header is a header. */
    CHECK_EQ(load(&c, "[node]\n  shards = 3\n    [net]\n\tidle_timeout_s = 40\n"), 0);
    CHECK_EQ(c.shards, 3);
    CHECK_EQ(c.idle_timeout_s, 40);
    CHECK_EQ(load(&c, "[node]\nshards = 3\n    5\n"), -EINVAL);
    CHECK_STR(err, "x.conf:3: expected '[section]', 'key = value' or a comment");

    /* CRLF, a BOM, no final newline, blank lines, an empty text. */
    CHECK_EQ(load(&c, "\xEF\xBB\xBF[node]\r\n\r\nshards = 5\r\n"), 0);
    CHECK_EQ(c.shards, 5);
    CHECK_EQ(load(&c, "\xEF\xBB\xBF  # BOM then a comment\n[node]\nshards = 6"), 0);
    CHECK_EQ(c.shards, 6);
    CHECK_EQ(load(&c, ""), 0);
    CHECK_EQ(load(&c, "\n\n   \n"), 0);

    /* An empty address disables the listener. */
    CHECK_EQ(load(&c, "[sip]\ntls_listen =\n[pws]\ntls_listen = \n"), 0);
    CHECK_STR(c.sip_tls_listen.text, "");
    CHECK_EQ(c.sip_tls_listen.addr_len, 0);
    CHECK_EQ(c.pws_tls_listen.addr_len, 0);

    /* Only len bytes are read: the text need not be NUL-terminated. */
    const char *t = "[net]\nidle_timeout_s = 12345";
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_string(&c, t, strlen(t) - 3, "x", err, sizeof err), 0);
    CHECK_EQ(c.idle_timeout_s, 12);
    CHECK_EQ(cfg_load_string(&c, NULL, 0, "x", err, sizeof err), 0);
}

static void test_file_errors(void)
{
    cfg_t c;
    /* The contract's examples, word for word. */
    CHECK_EQ(load(&c, "[net]\n\nidle_timeout_s = abc\n"), -EINVAL);
    CHECK_STR(err, "x.conf:3: bad value for idle_timeout_s: 'abc' "
                   "(expected an integer 0..86400)");
    cfg_defaults(&c);
    const char *t = "# 1\n# 2\n# 3\n# 4\n# 5\n# 6\n# 7\n# 8\n# 9\n# 10\n[node]\nshard = 4\n";
    CHECK_EQ(cfg_load_string(&c, t, strlen(t), "presenced.conf", err, sizeof err), -EINVAL);
    CHECK_STR(err, "presenced.conf:12: unknown key 'shard' in [node]");

    CHECK_EQ(load(&c, "[nodes]\nshards = 4\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: unknown section [nodes]");
    CHECK_EQ(load(&c, "[ node ]\nshards = 4\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: unknown section [ node ]");
    CHECK_EQ(load(&c, "[NODE]\nshards = 4\n"), -EINVAL);
    CHECK_EQ(load(&c, "[node]\nShards = 4\n"), -EINVAL);
    CHECK_EQ(load(&c, "shards = 4\n"), -EINVAL);
    CHECK_STR(err, "x.conf:1: key 'shards' is outside any section");
    CHECK_EQ(load(&c, "[node]\n= 4\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: unknown key '' in [node]");
    CHECK_EQ(load(&c, "[node]\nshards\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: expected '[section]', 'key = value' or a comment");
    CHECK_EQ(load(&c, "[node\nshards = 4\n"), -EINVAL);
    CHECK_STR(err, "x.conf:1: section header without its closing ']'");
    CHECK_EQ(load(&c, "[node]\nshards = 4\n  [net ; ]\n"), -EINVAL);
    CHECK_STR(err, "x.conf:3: section header without its closing ']'");

    /* The first error wins, whichever kind comes first. */
    CHECK_EQ(load(&c, "[node]\nbad line\nshards = x\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: expected '[section]', 'key = value' or a comment");
    CHECK_EQ(load(&c, "[node]\nshards = x\nbad line\n"), -EINVAL);
    CHECK_STR(err, "x.conf:2: bad value for shards: 'x' (expected an integer 0..256)");
    /* ...and loading stops there: later lines are not applied. */
    CHECK_EQ(load(&c, "[node]\nshards = x\n[net]\nidle_timeout_s = 1\n"), -EINVAL);
    CHECK_EQ(c.idle_timeout_s, 300);

    /* NUL bytes would make inih see a shorter line than the file has. */
    const char nul[] = "[node]\nshards = 4\0 junk\n";
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_string(&c, nul, sizeof nul - 1, "x.conf", err, sizeof err), -EINVAL);
    CHECK_STR(err, "x.conf:2: NUL byte in line");

    /* Messages are truncated, never overflow; err may be absent. */
    char tiny[8];
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_string(&c, "[q]\na=1\n", 8, "x.conf", tiny, sizeof tiny), -EINVAL);
    CHECK_STR(tiny, "x.conf:");
    CHECK_EQ(cfg_load_string(&c, "[q]\na=1\n", 8, "x.conf", NULL, 0), -EINVAL);
    CHECK_EQ(cfg_set(&c, "q", "a", "1", NULL, 0), -EINVAL);
    CHECK_EQ(cfg_load_string(&c, "[q]\na=1\n", 8, NULL, err, sizeof err), -EINVAL);
    CHECK_STR(err, "<config>:2: unknown section [q]");

    /* cfg_set reports without a file or line. */
    CHECK_EQ(set1("node", "shard", "4"), -EINVAL);
    CHECK_STR(err, "unknown key 'shard' in [node]");
    CHECK_EQ(set1("nope", "shards", "4"), -EINVAL);
    CHECK_STR(err, "unknown section [nope]");
    CHECK_EQ(set1("", "shards", "4"), -EINVAL);
}

/* Debian's inih has a 200-byte line buffer: 199 bytes after the indentation fit, 200 do
 * not, and the message says so instead of inih's silent cut. */
static void test_long_lines(void)
{
    static char text[8192];
    cfg_t c;
    size_t pad = CFG_LINE_MAX - strlen("data_dir = ");
    int n = snprintf(text, sizeof text, "[node]\n    data_dir = /%0*d\n", (int)pad - 1, 0);
    REQUIRE(n > 0);
    CHECK_EQ(load(&c, text), 0);
    CHECK_EQ(strlen(c.data_dir), pad);

    /* One byte more: refused, with the length and the limit. */
    snprintf(text, sizeof text, "[node]\ndata_dir = /%0*d\n", (int)pad, 0);
    CHECK_EQ(load(&c, text), -EINVAL);
    CHECK_STR(err, "x.conf:2: line is 200 bytes long, the limit is 199");

    /* Far longer: same, and nothing after it is read as a line of its own. */
    memset(text, 'a', sizeof text);
    memcpy(text, "[node]\nname = ", 14);
    text[sizeof text - 1] = '\0';
    CHECK_EQ(load(&c, text), -EINVAL);
    CHECK_STR(err, "x.conf:2: line is 8184 bytes long, the limit is 199");

    /* Trailing spaces do not count; comment lines may be as long as they like. */
    n = snprintf(text, sizeof text, "[node]\nshards = 7%300s\n# %5000d\n", "", 1);
    REQUIRE(n > 0 && (size_t)n < sizeof text);
    CHECK_EQ(load(&c, text), 0);
    CHECK_EQ(c.shards, 7);
}

static void test_size_limit(void)
{
    /* Exactly CFG_TEXT_MAX bytes of comments load; one byte more is refused unread. */
    char *big = malloc(CFG_TEXT_MAX + 1);
    REQUIRE(big);
    for (size_t i = 0; i < CFG_TEXT_MAX + 1; i++)
        big[i] = (i % 100 == 99) ? '\n' : '#';
    cfg_t c;
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_string(&c, big, CFG_TEXT_MAX, "big", err, sizeof err), 0);
    CHECK_EQ(cfg_load_string(&c, big, CFG_TEXT_MAX + 1, "big", err, sizeof err), -E2BIG);
    CHECK_STR(err, "big: larger than 1048576 bytes");

    char path[] = "/tmp/presenced-test-config-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, big, CFG_TEXT_MAX + 1) == CFG_TEXT_MAX + 1);
    close(fd);
    CHECK_EQ(cfg_load_file(&c, path, err, sizeof err), -E2BIG);
    CHECK(strstr(err, ": larger than 1048576 bytes") != NULL);
    unlink(path);
    free(big);
}

static void test_load_file(void)
{
    cfg_t c;
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(&c, "/nonexistent/x.conf", err, sizeof err), -ENOENT);
    CHECK_STR(err, "/nonexistent/x.conf: No such file or directory");
    CHECK_EQ(cfg_load_file(&c, "/tmp", err, sizeof err), -EISDIR);
    CHECK_STR(err, "/tmp: Is a directory");

    char path[] = "/tmp/presenced-test-config-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *t = "[node]\nshards = 8\n[mailbox]\nring_slots = 100\n";
    REQUIRE(write(fd, t, strlen(t)) == (ssize_t)strlen(t));
    close(fd);
    CHECK_EQ(cfg_load_file(&c, path, err, sizeof err), -EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:4: bad value for ring_slots: '100' "
             "(expected a power of two 64..1048576)", path);
    CHECK_STR(err, want);
    CHECK_EQ(c.shards, 8);      /* keys before the error were applied */
    unlink(path);
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_key_table);
    T_RUN(test_example_file);
    T_RUN(test_round_trip);
    T_RUN(test_integers);
    T_RUN(test_bools_and_enums);
    T_RUN(test_strings);
    T_RUN(test_addresses);
    T_RUN(test_file_syntax);
    T_RUN(test_file_errors);
    T_RUN(test_long_lines);
    T_RUN(test_size_limit);
    T_RUN(test_load_file);
    T_DONE();
}
