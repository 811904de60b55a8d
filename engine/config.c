/*
 * config.c - see config.h. One table describes every key; the parser (inih), cfg_set,
 * cfg_defaults, cfg_format and cfg_equal all walk it.
 *
 * How inih is driven, and why not with ini_parse_string(): Debian's libinih is built with a
 * 200-byte stack line buffer, and a longer line is silently cut, the cut-off value handed
 * to the handler as if it were whole, and the rest parsed as the next line (which then
 * fails with a misleading line number). Its handler gets no line number either
 * (INI_HANDLER_LINENO is 0), and an indented line after a key is a continuation of that
 * key's value. So the text goes through ini_parse_stream() with our own reader, one line
 * per call: the reader counts lines (so the handler knows its line), refuses lines that do
 * not fit and NUL bytes, strips the indentation (so no line is ever a continuation) and
 * hands long comment lines over as a bare ';'. That also reads the caller's bytes in place
 * instead of copying them to get a NUL terminator. inih still does all of the INI syntax.
 */
#include "engine/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/common.h"

typedef enum {
    CFG_UINT = 1,
    CFG_BOOL,
    CFG_ENUM,       /* one of a fixed list, stored as the string */
    CFG_STR,        /* free text in a char[], checked by a character class */
    CFG_ADDR,       /* cfg_addr_t */
} cfg_type_t;

typedef enum {
    CFG_STR_NAME = 1,   /* letters, digits, '.', '_', '-': safe in logs, metrics, paths */
    CFG_STR_HOST,       /* an ASCII domain name (IDNs as xn-- A-labels) */
    CFG_STR_PATH,       /* printable bytes that survive a write and re-read as INI */
} cfg_str_class_t;

enum { CFG_POW2 = 1 };  /* flags: the value must be a power of two (ring and buffer sizes) */

typedef struct {
    cfg_key_info_t info;
    cfg_type_t type;
    unsigned flags;
    size_t offset;
    size_t size;                    /* bytes of the field */
    unsigned min, max;              /* CFG_UINT: value range; CFG_STR: length range */
    cfg_str_class_t str_class;      /* CFG_STR */
    const char *const *choices;     /* CFG_ENUM: NULL-terminated */
} cfg_key_t;

/* offsetof that refuses to compile when the field is not of the expected type: comparing
 * pointers to distinct types is a constraint violation, and sizeof never evaluates it. */
#define CFG_FIELD(f, ptr_expr, ptr_type)                                          \
    .offset = offsetof(cfg_t, f) + 0 * sizeof((ptr_type)0 == (ptr_expr)),         \
    .size = sizeof(((cfg_t *)0)->f)

#define KEY_UINT(sec, key, f, def, lo, hi, fl, help)                              \
    { { sec, key, def, help }, CFG_UINT, fl,                                      \
      CFG_FIELD(f, &((cfg_t *)0)->f, unsigned *), .min = lo, .max = hi }
#define KEY_BOOL(sec, key, f, def, help)                                          \
    { { sec, key, def, help }, CFG_BOOL, 0, CFG_FIELD(f, &((cfg_t *)0)->f, bool *) }
#define KEY_ENUM(sec, key, f, def, list, help)                                    \
    { { sec, key, def, help }, CFG_ENUM, 0,                                       \
      CFG_FIELD(f, ((cfg_t *)0)->f, char *), .choices = list }
#define KEY_STR(sec, key, f, def, cls, help)                                      \
    { { sec, key, def, help }, CFG_STR, 0,                                        \
      CFG_FIELD(f, ((cfg_t *)0)->f, char *), .min = 1, .str_class = cls }
#define KEY_STR_OPT(sec, key, f, def, cls, help)                                  \
    { { sec, key, def, help }, CFG_STR, 0,                                        \
      CFG_FIELD(f, ((cfg_t *)0)->f, char *), .min = 0, .str_class = cls }
#define KEY_ADDR(sec, key, f, def, help)                                          \
    { { sec, key, def, help }, CFG_ADDR, 0,                                       \
      CFG_FIELD(f, &((cfg_t *)0)->f, cfg_addr_t *) }

static const char *const cfg_log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const cfg_sync_modes[] = { "batch", "none", NULL };
static const char *const cfg_sip_auth_modes[] = { "digest", "off", NULL };
static const char *const cfg_sip_digests[] = { "sha256+md5", "sha256", "md5", NULL };
static const char *const cfg_gateway_events[] = { "dialog", "presence", NULL };

/*
 * Every key, in the order cfg_format writes them (a section's keys are contiguous). The
 * bounds: idle 1 day; output queue 1 GiB (beyond that a slow reader is a leak); 1048576
 * connections = the kernel's default fs.nr_open; recv buffers up to 64 KiB (a TLS record
 * is 16 KiB) and 32768 of them (io_uring's limit for a provided-buffer ring); backlog
 * 65535 (the kernel clamps to net.core.somaxconn anyway); mailbox rings up to 1 Mi slots
 * x 32 B = 32 MiB per shard pair; drain up to 10 minutes.
 */
static const cfg_key_t cfg_keys[] = {
    KEY_STR("node", "name", name, "presenced", CFG_STR_NAME,
            "node name in logs, metrics and the cluster; letters, digits, '.', '_', '-'"),
    KEY_UINT("node", "shards", shards, "0", 0, CFG_SHARDS_MAX, 0,
             "shard threads; 0 = one per online CPU core; 0..256"),
    KEY_STR("node", "data_dir", data_dir, "./data", CFG_STR_PATH,
            "directory of the RocksDB database and its checkpoints"),
    KEY_ENUM("node", "log_level", log_level, "info", cfg_log_levels,
             "least severe level logged: error, warn, info or debug"),
    KEY_BOOL("node", "pin_shards", pin_shards, "true",
             "pin each shard thread to its own core: true or false"),
    KEY_STR("node", "domain", domain, "localhost", CFG_STR_HOST,
            "the XMPP/SIP domain this node serves (ASCII; IDNs as xn-- labels)"),
    KEY_ADDR("admin", "listen", admin_listen, "127.0.0.1:8084",
             "admin HTTP endpoint (/metrics, /ready); keep it on loopback; empty disables"),
    KEY_UINT("net", "idle_timeout_s", idle_timeout_s, "300", 0, 86400, 0,
             "close a connection silent for this long, seconds; 0 disables; 0..86400"),
    KEY_UINT("net", "output_queue_max_bytes", output_queue_max_bytes, "262144",
             4096, 1u << 30, 0,
             "unsent bytes a connection may queue before it is closed; 4096..1073741824"),
    KEY_UINT("net", "max_connections_per_shard", max_connections_per_shard, "0",
             0, 1u << 20, 0,
             "connections per shard; 0 = as many as RLIMIT_NOFILE allows; 0..1048576"),
    KEY_UINT("net", "recv_buffer_bytes", recv_buffer_bytes, "4096", 512, 65536, CFG_POW2,
             "bytes per receive buffer; power of two, 512..65536"),
    KEY_UINT("net", "recv_buffers_per_shard", recv_buffers_per_shard, "1024",
             16, 32768, CFG_POW2,
             "receive buffers in each shard's io_uring buffer ring; power of two, 16..32768"),
    KEY_UINT("net", "listen_backlog", listen_backlog, "4096", 1, 65535, 0,
             "listen(2) backlog of each listener (capped by net.core.somaxconn); 1..65535"),
    KEY_UINT("mailbox", "ring_slots", mailbox_ring_slots, "4096", 64, 1u << 20, CFG_POW2,
             "32-byte slots per shard-to-shard mailbox ring; power of two, 64..1048576"),
    KEY_UINT("shutdown", "drain_timeout_ms", drain_timeout_ms, "5000", 0, 600000, 0,
             "time to flush and close connections at shutdown, milliseconds; 0..600000"),
    KEY_ENUM("storage", "sync", storage_sync, "batch", cfg_sync_modes,
             "batch = fsync each turn's writes before acking; none = survives kill -9 only"),
    KEY_ADDR("xmpp", "listen", xmpp_listen, "0.0.0.0:5222",
             "XMPP clients, plain and STARTTLS; ip:port, [ipv6]:port, *:port; empty disables"),
    KEY_ADDR("xmpp", "tls_listen", xmpp_tls_listen, "0.0.0.0:5223",
             "XMPP clients with direct TLS; empty disables"),
    KEY_BOOL("xmpp", "require_tls", xmpp_require_tls, "true",
             "authenticate XMPP clients only over TLS (STARTTLS or direct): true or false"),
    KEY_BOOL("xmpp", "plain_without_tls", xmpp_plain_without_tls, "false",
             "offer SASL PLAIN on unencrypted streams (test setups only): true or false"),
    KEY_UINT("xmpp", "max_stanza_bytes", xmpp_max_stanza_bytes, "65536", 1024, 16777216, 0,
             "largest stanza a client may send, bytes; larger: policy-violation; 1024..16777216"),
    KEY_BOOL("xmpp", "registration", xmpp_registration, "false",
             "allow in-band account registration (XEP-0077): true or false"),
    KEY_UINT("xmpp", "resume_timeout_s", xmpp_resume_timeout_s, "300", 0, 86400, 0,
             "how long a lost stream-managed session waits for resumption (XEP-0198), s; 0 = never"),
    KEY_BOOL("xmpp", "test_auth", xmpp_test_auth, "false",
             "interop tests only: any password logs in, unknown accounts are created; loopback only"),
    KEY_ADDR("sip", "listen", sip_listen, "0.0.0.0:5060",
             "SIP over UDP and TCP on the same port; empty disables"),
    KEY_ADDR("sip", "tls_listen", sip_tls_listen, "0.0.0.0:5061",
             "SIP over TLS; empty disables"),
    KEY_UINT("sip", "min_expires_s", sip_min_expires_s, "60", 1, 86400, 0,
             "shortest registration or subscription accepted (423 below), s; 1..86400"),
    KEY_UINT("sip", "max_expires_s", sip_max_expires_s, "3600", 1, 604800, 0,
             "longer registrations and subscriptions are cut to this, s; 1..604800"),
    KEY_UINT("sip", "default_expires_s", sip_default_expires_s, "3600", 1, 604800, 0,
             "registration time when a REGISTER names none, s; 1..604800"),
    KEY_UINT("sip", "max_unanswered", sip_max_unanswered, "20000", 0, 10000000, 0,
             "requests a shard sent (NOTIFY, MESSAGE) waiting for an answer past which new "
             "PUBLISH, SUBSCRIBE and MESSAGE get 503; 0 = no bound"),
    KEY_ENUM("sip", "auth", sip_auth, "digest", cfg_sip_auth_modes,
             "digest = REGISTER, SUBSCRIBE and PUBLISH need a user's password; off = no checks"),
    KEY_ENUM("sip", "digest", sip_digest, "sha256+md5", cfg_sip_digests,
             "digest algorithms offered: sha256+md5 (RFC 8760 order), sha256 or md5"),
    KEY_STR_OPT("sip", "trusted", sip_trusted, "", CFG_STR_PATH,
                "addresses that may act for any user without a password (call control): "
                "a comma-separated list of IPs"),
    KEY_ADDR("gateway", "call_control", gw_call_control, "",
             "call control for phone lines (presencectl line set): ip:port over UDP; empty: off"),
    KEY_ENUM("gateway", "event", gw_event, "dialog", cfg_gateway_events,
             "what to subscribe to for a line: dialog (RFC 4235) or presence (RFC 3856)"),
    KEY_UINT("gateway", "expires_s", gw_expires_s, "3600", 60, 86400, 0,
             "subscription time asked of the call control, s (refreshed at 80%); 60..86400"),
    KEY_UINT("gateway", "retry_s", gw_retry_s, "30", 1, 3600, 0,
             "first wait after a failed subscription, doubling to 20x, s; 1..3600"),
    KEY_ADDR("pws", "listen", pws_listen, "0.0.0.0:8082",
             "Presence Web Service (SOAP and REST) over HTTP; empty disables"),
    KEY_ADDR("pws", "tls_listen", pws_tls_listen, "0.0.0.0:8083",
             "Presence Web Service over HTTPS; empty disables"),
    KEY_STR_OPT("tls", "cert_file", tls_cert_file, "", CFG_STR_PATH,
                "PEM certificate chain; empty = self-signed, generated in data_dir"),
    KEY_STR_OPT("tls", "key_file", tls_key_file, "", CFG_STR_PATH,
                "PEM private key for cert_file; empty = generated with the certificate"),
};

/* A message line: "file:line: " + the longest message (two quoted 40-byte excerpts plus
 * the expected-value text) fits with room to spare. */
#define CFG_MSG_MAX 320
/* Bytes of a user's value shown in a message before it is cut with "...". */
#define CFG_QUOTE_MAX 40

/* ---- Small helpers ----------------------------------------------------------------------- */

static void msg_set(char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void msg_set(char *msg, size_t len, const char *fmt, ...)
{
    if (!msg || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

/* Copies user text for a message: bounded, with control and non-ASCII bytes as '?', so a
 * hostile file cannot put escape sequences or megabytes into the log. */
static const char *quote(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    ASSERT(cap > CFG_QUOTE_MAX + 3);
    for (; s[n] && n < CFG_QUOTE_MAX; n++) {
        unsigned char c = (unsigned char)s[n];
        dst[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[n]) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
    return dst;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Decimal digits only: no sign, no space, no 0x, no suffix; -ERANGE past UINT32_MAX. */
static int parse_uint(const char *s, unsigned *out)
{
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > UINT32_MAX)
            return -ERANGE;
    }
    *out = (unsigned)v;
    return 0;
}

static const cfg_key_t *key_find(const char *section, const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
        if (strcmp(cfg_keys[i].info.section, section) == 0
            && strcmp(cfg_keys[i].info.name, name) == 0)
            return &cfg_keys[i];
    }
    return NULL;
}

static bool section_known(const char *section)
{
    for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
        if (strcmp(cfg_keys[i].info.section, section) == 0)
            return true;
    }
    return false;
}

/* Longest string a key may hold: its field, and "key = value" on one INI line, so that
 * cfg_format never writes a line cfg_load_string would refuse. */
static size_t str_max_len(const cfg_key_t *k)
{
    size_t line = CFG_LINE_MAX - strlen(k->info.name) - 3;
    return k->size - 1 < line ? k->size - 1 : line;
}

/* ---- Values ------------------------------------------------------------------------------ */

static bool host_ok(const char *v)
{
    size_t label = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return false;   /* leading dot or ".." */
            label = 0;
        } else if (is_alnum(*p) || *p == '-') {
            if (++label > 63)   /* RFC 1035 section 2.3.4 */
                return false;
        } else {
            return false;
        }
    }
    return label > 0;           /* no trailing dot */
}

/* inih strips whitespace around a value and cuts it at a ';' that follows whitespace
 * (an inline comment), so such values would not read back the same. */
static bool path_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0)
        return true;
    if (v[0] == ' ' || v[0] == ';' || v[n - 1] == ' ' || strstr(v, " ;"))
        return false;
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static bool str_ok(const cfg_key_t *k, const char *v)
{
    size_t n = strlen(v);
    if (n < k->min || n > str_max_len(k))
        return false;
    switch (k->str_class) {
    case CFG_STR_NAME:
        for (const char *p = v; *p; p++) {
            if (!is_alnum(*p) && *p != '.' && *p != '_' && *p != '-')
                return false;
        }
        return true;
    case CFG_STR_HOST:
        return host_ok(v);
    case CFG_STR_PATH:
        return path_ok(v);
    }
    PANIC("key %s: bad string class %d", k->info.name, (int)k->str_class);
}

static bool bool_parse(const char *v, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

/* What a key accepts, for "bad value" messages. */
static void expected(const cfg_key_t *k, char *buf, size_t len)
{
    switch (k->type) {
    case CFG_UINT:
        snprintf(buf, len, "%s %u..%u", (k->flags & CFG_POW2) ? "a power of two" : "an integer",
                 k->min, k->max);
        return;
    case CFG_BOOL:
        snprintf(buf, len, "true or false (or yes/no, on/off, 1/0)");
        return;
    case CFG_ENUM: {
        size_t used = 0;
        for (size_t i = 0; k->choices[i]; i++) {
            const char *sep = i == 0 ? "" : k->choices[i + 1] ? ", " : " or ";
            int w = snprintf(buf + used, len - used, "%s%s", sep, k->choices[i]);
            if (w < 0 || (size_t)w >= len - used)
                return;
            used += (size_t)w;
        }
        return;
    }
    case CFG_STR:
        if (k->str_class == CFG_STR_NAME)
            snprintf(buf, len, "%u..%zu letters, digits, '.', '_' or '-'", k->min,
                     str_max_len(k));
        else if (k->str_class == CFG_STR_HOST)
            snprintf(buf, len, "a domain name of %u..%zu letters, digits, '-' and dots", k->min,
                     str_max_len(k));
        else
            snprintf(buf, len, "%u..%zu printable bytes, no leading or trailing space, no ' ;'",
                     k->min, str_max_len(k));
        return;
    case CFG_ADDR:
        snprintf(buf, len, "ipv4:port, [ipv6]:port, *:port, or nothing to disable");
        return;
    }
    PANIC("key %s: bad type %d", k->info.name, (int)k->type);
}

/* Zero-fills the whole field first, so that copies of a cfg_t compare equal byte for byte. */
static void str_store(const cfg_key_t *k, char *field, const char *value)
{
    size_t n = strlen(value);
    ASSERT(n < k->size);
    memset(field, 0, k->size);
    memcpy(field, value, n);
}

/* Parses value for k and stores it in cfg; on a bad value leaves cfg alone. */
static int key_set(const cfg_key_t *k, cfg_t *cfg, const char *value, char *msg, size_t len)
{
    char *field = (char *)cfg + k->offset;
    bool ok = false;

    switch (k->type) {
    case CFG_UINT: {
        unsigned v;
        ok = parse_uint(value, &v) == 0 && v >= k->min && v <= k->max
             && (!(k->flags & CFG_POW2) || (v & (v - 1)) == 0);
        if (ok)
            memcpy(field, &v, sizeof v);
        break;
    }
    case CFG_BOOL: {
        bool v;
        ok = bool_parse(value, &v);
        if (ok)
            memcpy(field, &v, sizeof v);
        break;
    }
    case CFG_ENUM:
        for (size_t i = 0; k->choices[i] && !ok; i++)
            ok = strcmp(value, k->choices[i]) == 0;
        if (ok)
            str_store(k, field, value);
        break;
    case CFG_STR:
        ok = str_ok(k, value);
        if (ok)
            str_store(k, field, value);
        break;
    case CFG_ADDR: {
        cfg_addr_t a;
        ok = cfg_addr_parse(value, &a) == 0;
        if (ok)
            memcpy(field, &a, sizeof a);
        break;
    }
    }
    if (ok)
        return 0;

    char q[CFG_QUOTE_MAX + 4], want[160];
    expected(k, want, sizeof want);
    msg_set(msg, len, "bad value for %s: '%s' (expected %s)", k->info.name,
            quote(q, sizeof q, value), want);
    return -EINVAL;
}

/* Finds the key and sets it: the one path shared by the file and cfg_set. */
static int apply(cfg_t *cfg, const char *section, const char *name, const char *value,
                 char *msg, size_t len)
{
    char qs[CFG_QUOTE_MAX + 4], qn[CFG_QUOTE_MAX + 4];
    if (!section[0]) {
        msg_set(msg, len, "key '%s' is outside any section", quote(qn, sizeof qn, name));
        return -EINVAL;
    }
    const cfg_key_t *k = key_find(section, name);
    if (!k) {
        if (section_known(section))
            msg_set(msg, len, "unknown key '%s' in [%s]", quote(qn, sizeof qn, name),
                    quote(qs, sizeof qs, section));
        else
            msg_set(msg, len, "unknown section [%s]", quote(qs, sizeof qs, section));
        return -EINVAL;
    }
    return key_set(k, cfg, value, msg, len);
}

/* ---- Addresses --------------------------------------------------------------------------- */

/* Port 0 is allowed: the first shard's socket gets a port from the kernel and the other
 * shards join it (node.c), which is how tests get a free port without a race. */
static int port_parse(const char *s, uint16_t *out)
{
    unsigned v;
    if (strlen(s) > 5 || parse_uint(s, &v) != 0 || v > 65535)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

static int addr_parse_into(const char *text, cfg_addr_t *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t host_len;
    uint16_t p;
    bool bracketed = text[0] == '[';    /* IPv6 always, IPv4 never */

    if (bracketed) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host_len = (size_t)(close - text - 1);
        text++;
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            return -EINVAL;
        host_len = (size_t)(colon - text);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof host || port_parse(port, &p) != 0)
        return -EINVAL;
    memcpy(host, text, host_len);
    host[host_len] = '\0';

    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
    if (!bracketed && strcmp(host, "*") == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons(p);
        out->addr_len = sizeof *sin;
    } else if (!bracketed && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(p);
        out->addr_len = sizeof *sin;
    } else if (bracketed && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(p);
        out->addr_len = sizeof *sin6;
    } else {
        return -EINVAL;
    }
    return 0;
}

int cfg_addr_parse(const char *text, cfg_addr_t *out)
{
    ASSERT(out);
    memset(out, 0, sizeof *out);
    if (!text || strlen(text) >= sizeof out->text)
        return -EINVAL;
    memcpy(out->text, text, strlen(text));
    if (!text[0])
        return 0;               /* empty = this listener is disabled */
    int rc = addr_parse_into(text, out);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- Loading ------------------------------------------------------------------------------ */

typedef struct {
    cfg_t *cfg;
    const char *pos, *end;          /* the unread rest of the text */
    unsigned lineno;                /* lines handed to inih: the handler's current line */
    unsigned err_line;              /* first error we found ourselves, 0 = none */
    char msg[CFG_MSG_MAX];          /* its message, without "name:line: " */
} cfg_load_t;

/* inih's ini_reader: one line per call, as fgets would return it but without the newline,
 * the indentation or trailing spaces. Returns NULL at the end or after an error (which
 * makes inih stop and return). */
static char *load_read_line(char *str, int num, void *stream)
{
    cfg_load_t *ld = stream;
    ASSERT(num > 1);
    if (ld->err_line || ld->pos >= ld->end)
        return NULL;

    const char *line = ld->pos;
    const char *nl = memchr(line, '\n', (size_t)(ld->end - line));
    const char *end = nl ? nl : ld->end;
    ld->pos = nl ? nl + 1 : ld->end;
    ld->lineno++;

    if (memchr(line, '\0', (size_t)(end - line))) {
        ld->err_line = ld->lineno;
        msg_set(ld->msg, sizeof ld->msg, "NUL byte in line");
        return NULL;
    }
    /* inih would skip a BOM itself, but only when it is the first byte it sees. */
    if (ld->lineno == 1 && end - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3;
    while (line < end && is_space(*line))
        line++;
    while (end > line && is_space(end[-1]))
        end--;
    /* Comments are for people: any length is fine, inih only needs to see it is one. */
    if (line < end && (*line == ';' || *line == '#')) {
        memcpy(str, ";", 2);
        return str;
    }
    size_t n = (size_t)(end - line);
    if (n > (size_t)num - 1) {
        ld->err_line = ld->lineno;
        msg_set(ld->msg, sizeof ld->msg, "line is %zu bytes long, the limit is %d", n, num - 1);
        return NULL;
    }
    memcpy(str, line, n);
    str[n] = '\0';
    return str;
}

static int load_on_key(void *user, const char *section, const char *name, const char *value)
{
    cfg_load_t *ld = user;
    DEBUG_ASSERT(ld->err_line == 0);
    if (apply(ld->cfg, section, name, value ? value : "", ld->msg, sizeof ld->msg) != 0) {
        ld->err_line = ld->lineno;
        return 0;
    }
    return 1;
}

/* inih found a line it could not parse (it has no message of its own): say why. */
static void syntax_msg(const char *text, size_t len, unsigned line, char *msg, size_t msg_len)
{
    const char *p = text, *end = text + len;
    for (unsigned i = 1; i < line && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    if (line == 1 && end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (p < end && *p != '\n' && is_space(*p))
        p++;
    if (p < end && *p == '[')
        msg_set(msg, msg_len, "section header without its closing ']'");
    else
        msg_set(msg, msg_len, "expected '[section]', 'key = value' or a comment");
}

int cfg_load_string(cfg_t *cfg, const char *text, size_t len, const char *name, char *err,
                    size_t err_len)
{
    ASSERT(cfg);
    ASSERT(text || len == 0);
    if (!name)
        name = "<config>";
    if (len > CFG_TEXT_MAX) {
        msg_set(err, err_len, "%s: larger than %d bytes", name, CFG_TEXT_MAX);
        return -E2BIG;
    }

    /* An empty text may be NULL: no pointer arithmetic on it. */
    cfg_load_t ld = { .cfg = cfg, .pos = text, .end = text ? text + len : text };
    int rc = ini_parse_stream(load_read_line, &ld, load_on_key, &ld);
    if (rc < 0) {
        /* Only a heap-buffer inih fails this way; Debian's uses the stack. */
        msg_set(err, err_len, "%s: %s", name, strerror(ENOMEM));
        return -ENOMEM;
    }
    /* inih keeps going after a syntax error, so it may have reached a line we refused:
     * the first error is the lower line. */
    if (rc > 0 && (ld.err_line == 0 || (unsigned)rc < ld.err_line)) {
        ld.err_line = (unsigned)rc;
        syntax_msg(text, len, ld.err_line, ld.msg, sizeof ld.msg);
    }
    if (ld.err_line == 0)
        return 0;
    msg_set(err, err_len, "%s:%u: %s", name, ld.err_line, ld.msg);
    return -EINVAL;
}

/* Reads the whole file (bounded) and parses it like a string. */
int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t err_len)
{
    ASSERT(cfg);
    ASSERT(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        msg_set(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    /* One byte past the limit tells "exactly the limit" from "too big". Pages never read
     * into are never touched, so a small file costs little of this. */
    char *buf = malloc(CFG_TEXT_MAX + 1);
    if (!buf) {
        close(fd);
        msg_set(err, err_len, "%s: %s", path, strerror(ENOMEM));
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    while (len < CFG_TEXT_MAX + 1) {
        ssize_t n = read(fd, buf + len, CFG_TEXT_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            msg_set(err, err_len, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == 0)
        rc = cfg_load_string(cfg, buf, len, path, err, err_len);
    free(buf);
    return rc;
}

int cfg_set(cfg_t *cfg, const char *section, const char *key, const char *value, char *err,
            size_t err_len)
{
    ASSERT(cfg);
    ASSERT(section && key && value);
    return apply(cfg, section, key, value, err, err_len);
}

void cfg_defaults(cfg_t *cfg)
{
    ASSERT(cfg);
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
        char msg[CFG_MSG_MAX];
        if (key_set(&cfg_keys[i], cfg, cfg_keys[i].info.def, msg, sizeof msg) != 0)
            PANIC("default of [%s] %s: %s", cfg_keys[i].info.section, cfg_keys[i].info.name,
                  msg);
    }
}

/* ---- Writing back -------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, used;
    bool full;
} cfg_out_t;

static void out_printf(cfg_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(cfg_out_t *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->len - o->used)
        o->full = true;
    else
        o->used += (size_t)n;
}

static void out_value(cfg_out_t *o, const cfg_key_t *k, const cfg_t *cfg)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case CFG_UINT: {
        unsigned v;
        memcpy(&v, field, sizeof v);
        out_printf(o, "%s = %u\n", k->info.name, v);
        return;
    }
    case CFG_BOOL: {
        bool v;
        memcpy(&v, field, sizeof v);
        out_printf(o, "%s = %s\n", k->info.name, v ? "true" : "false");
        return;
    }
    case CFG_ENUM:
    case CFG_STR:
        out_printf(o, "%s = %.*s\n", k->info.name, (int)strnlen(field, k->size), field);
        return;
    case CFG_ADDR: {
        const cfg_addr_t *a = (const cfg_addr_t *)(const void *)field;
        int n = (int)strnlen(a->text, sizeof a->text);
        out_printf(o, "%s =%s%.*s\n", k->info.name, n ? " " : "", n, a->text);
        return;
    }
    }
    PANIC("key %s: bad type %d", k->info.name, (int)k->type);
}

int cfg_format(const cfg_t *cfg, char *buf, size_t len)
{
    ASSERT(cfg);
    ASSERT(buf || len == 0);
    cfg_out_t o = { .buf = buf, .len = len, .full = len == 0 };
    const char *section = NULL;
    for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
        const cfg_key_t *k = &cfg_keys[i];
        if (!section || strcmp(section, k->info.section) != 0) {
            section = k->info.section;
            out_printf(&o, "%s[%s]\n", i ? "\n" : "", section);
        }
        out_printf(&o, "# %s\n", k->info.help);
        out_value(&o, k, cfg);
    }
    if (o.full) {
        if (len > 0)
            buf[o.used] = '\0';
        return -ENOSPC;
    }
    ASSERT(o.used <= INT32_MAX);
    return (int)o.used;
}

bool cfg_equal(const cfg_t *a, const cfg_t *b)
{
    ASSERT(a && b);
    for (size_t i = 0; i < ARRAY_LEN(cfg_keys); i++) {
        const cfg_key_t *k = &cfg_keys[i];
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
        bool same;
        switch (k->type) {
        case CFG_ENUM:
        case CFG_STR:
            same = strncmp(fa, fb, k->size) == 0;
            break;
        case CFG_ADDR: {
            const cfg_addr_t *x = (const cfg_addr_t *)(const void *)fa;
            const cfg_addr_t *y = (const cfg_addr_t *)(const void *)fb;
            same = strncmp(x->text, y->text, sizeof x->text) == 0 && x->addr_len == y->addr_len
                   && memcmp(&x->addr, &y->addr, x->addr_len) == 0;
            break;
        }
        default:
            same = memcmp(fa, fb, k->size) == 0;
            break;
        }
        if (!same)
            return false;
    }
    return true;
}

size_t cfg_key_count(void)
{
    return ARRAY_LEN(cfg_keys);
}

const cfg_key_info_t *cfg_key_info(size_t i)
{
    ASSERT(i < ARRAY_LEN(cfg_keys));
    return &cfg_keys[i].info;
}
