/*
 * config.h - the node's configuration: defaults, the INI file, overrides.
 *
 * A cfg_t is a plain struct of values. It starts from cfg_defaults() (the embedded default
 * configuration, also written out in presenced.conf at the top of the source tree), then a
 * file is loaded over it with cfg_load_file(), then command-line overrides go through
 * cfg_set(). Every key is described once, in a table in config.c (section, name, type,
 * default, range, one-line help); parsing, validation, cfg_format() and cfg_equal() all
 * walk that table, so a key cannot be readable but not writable or vice versa.
 *
 * The file format is INI as parsed by inih (Debian's libinih, r55):
 *
 *     # a comment; ';' also starts one, and " ;" after a value ends the value
 *     [node]
 *     shards = 4          ; key = value (or key: value), whitespace around both ignored
 *
 * - Sections and keys are lowercase and matched exactly. A section may appear more than
 *   once; a key given twice takes the last value.
 * - Indentation is not significant (inih's multi-line continuation values are not used:
 *   an indented line is an ordinary line).
 * - A line holds at most CFG_LINE_MAX bytes after its indentation, because Debian builds
 *   inih with a 200-byte stack line buffer (INI_MAX_LINE). Comment lines may be any length.
 *   The same bound caps string values (data_dir, domain) so that every configuration
 *   cfg_set() accepts can be written back out by cfg_format().
 * - A file or string is at most CFG_TEXT_MAX bytes and may not contain NUL bytes.
 *
 * Errors: every loader and setter returns 0, -EINVAL for anything wrong with the content
 * (syntax, unknown section or key, bad value), -E2BIG for oversize input, or -errno when
 * the file cannot be read, and writes one line naming the file and the line of the first
 * error into err (err may be NULL; the message is truncated to err_len). After an error
 * the cfg_t is unspecified: keys before the bad line have been applied. Load into a copy
 * when the old configuration must survive a bad reload.
 *
 * Threads: none of these functions keep state; a cfg_t is not synchronised, so one thread
 * loads it (the main thread, at start and on SIGHUP) and hands shards a copy. Only
 * cfg_load_file() blocks (it reads the file): never call it from a shard loop.
 */
#ifndef PRESENCED_CONFIG_H
#define PRESENCED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Shards per node: 256 is well beyond the cores a single node gets (DESIGN.md section 7
 * targets 2 cores) and caps the per-pair mailbox matrix (n^2 rings) at 64 Ki rings. */
#define CFG_SHARDS_MAX 256

/* Bytes per configuration file or string: a full configuration is about 3 KiB, so 1 MiB
 * only stops a wrong path (a log file, /dev/zero) from being read into memory. */
#define CFG_TEXT_MAX (1024 * 1024)

/* Longest line inih can take: its line buffer is INI_MAX_LINE (200) bytes including the
 * terminating NUL. Checked again at run time against the size inih actually passes. */
#define CFG_LINE_MAX 199

typedef struct {
    char text[128];                 /* as written, e.g. "127.0.0.1:8084" or "[::1]:5222";
                                     * empty text = disabled */
    struct sockaddr_storage addr;   /* parsed numeric address (no DNS: IPv4 dotted, IPv6 in
                                     * brackets, or "*" = 0.0.0.0); zero-filled past
                                     * addr_len so two parses of one text compare equal */
    socklen_t addr_len;             /* 0 when disabled */
} cfg_addr_t;

typedef struct {
    /* [node] */
    char name[64];                  /* "presenced" */
    unsigned shards;                /* 0 = one per online core; max CFG_SHARDS_MAX (256) */
    char data_dir[4096];            /* "./data"; in practice limited by CFG_LINE_MAX */
    char log_level[16];             /* error|warn|info|debug, default "info" */
    bool pin_shards;                /* true */
    char domain[256];               /* "localhost": the XMPP/SIP domain the node serves */
    /* [admin] */
    cfg_addr_t admin_listen;        /* listen = 127.0.0.1:8084 */
    /* [net] */
    unsigned idle_timeout_s;        /* 300; 0 disables */
    unsigned output_queue_max_bytes;/* 262144; per connection; min 4096 */
    unsigned max_connections_per_shard; /* 0 = as many as RLIMIT_NOFILE allows */
    unsigned recv_buffer_bytes;     /* 4096; power of two, 512..65536 */
    unsigned recv_buffers_per_shard;/* 1024; power of two, 16..32768 */
    unsigned listen_backlog;        /* 4096 */
    /* [mailbox] */
    unsigned mailbox_ring_slots;    /* ring_slots = 4096; power of two, 64..1048576 */
    /* [shutdown] */
    unsigned drain_timeout_ms;      /* 5000 */
    /* [storage] */
    char storage_sync[16];          /* sync = "batch" | "none"; default "batch" */
    /* listeners for the protocols: [xmpp], [sip] and [pws], keys listen and tls_listen */
    cfg_addr_t xmpp_listen;         /* 0.0.0.0:5222 */
    bool xmpp_require_tls;          /* true: authenticate only over TLS */
    bool xmpp_plain_without_tls;    /* false: PLAIN only over TLS */
    cfg_addr_t xmpp_tls_listen;     /* 0.0.0.0:5223 */
    unsigned xmpp_max_stanza_bytes; /* 65536 */
    bool xmpp_registration;         /* false: no XEP-0077 in-band registration */
    unsigned xmpp_resume_timeout_s; /* 300; 0: sessions are not resumable */
    bool xmpp_test_auth;            /* false; true refused unless every listener is loopback */
    cfg_addr_t sip_listen;          /* 0.0.0.0:5060 (UDP and TCP) */
    cfg_addr_t sip_tls_listen;      /* 0.0.0.0:5061 */
    unsigned sip_min_expires_s;     /* 60 */
    unsigned sip_max_expires_s;     /* 3600 */
    unsigned sip_default_expires_s; /* 3600 */
    unsigned sip_max_unanswered;    /* 20000; 0: no bound */
    char sip_auth[16];              /* "digest" | "off" */
    char sip_digest[16];            /* "sha256+md5" | "sha256" | "md5" */
    char sip_trusted[192];          /* comma-separated IPs; empty: none */
    /* [gateway]: the presence gateway to the call control */
    cfg_addr_t gw_call_control;     /* empty: off */
    char gw_event[16];              /* "dialog" | "presence" */
    unsigned gw_expires_s;          /* 3600 */
    unsigned gw_retry_s;            /* 30 */
    cfg_addr_t pws_listen;          /* 0.0.0.0:8082 */
    cfg_addr_t pws_tls_listen;      /* 0.0.0.0:8083 */
    /* [tls]: empty = a self-signed pair generated in data_dir on first start */
    char tls_cert_file[192];
    char tls_key_file[192];
} cfg_t;

/* ---- Building a configuration ---------------------------------------------------------- */

/* Overwrites all of *cfg (padding included) with the embedded defaults. Cannot fail. */
void cfg_defaults(cfg_t *cfg);

/*
 * Loads path over the values already in cfg (call cfg_defaults first). On error returns
 * -EINVAL (bad syntax, unknown section or key, bad value), -E2BIG (file over CFG_TEXT_MAX)
 * or -errno (cannot open or read) and writes into err a message naming the file and the
 * line: "presenced.conf:12: unknown key 'shard' in [node]" /
 * "x.conf:3: bad value for idle_timeout_s: 'abc' (expected an integer 0..86400)" /
 * "x.conf: No such file or directory". Reports the first error. Blocks on the file.
 */
int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t err_len);

/* The same for len bytes of text (not necessarily NUL-terminated; the caller keeps
 * ownership). name is what messages call the text (NULL gives "<config>"). */
int cfg_load_string(cfg_t *cfg, const char *text, size_t len, const char *name, char *err,
                    size_t err_len);

/* Sets one key from code or a command-line flag, with the same validation as the file
 * ("node", "shards", "4"). Messages carry no file or line. 0 or -EINVAL. */
int cfg_set(cfg_t *cfg, const char *section, const char *key, const char *value, char *err,
            size_t err_len);

/* Parses "a.b.c.d:port", "[v6]:port", "*:port" or "" (disabled) into *out (fully
 * overwritten, also on error). Ports are 0..65535, 0 letting the kernel choose one (for
 * tests); names are refused (no DNS here). 0 or -EINVAL. */
int cfg_addr_parse(const char *text, cfg_addr_t *out);

/* ---- Reading a configuration back ------------------------------------------------------ */

/* Writes the configuration as an INI file, every key preceded by its help line, that
 * cfg_load_string reads back to a cfg_t that cfg_equal() calls equal. Returns the bytes
 * written, not counting the NUL terminator it also writes, or -ENOSPC if len is too small
 * (buf then holds a truncated, still NUL-terminated prefix when len > 0). */
int cfg_format(const cfg_t *cfg, char *buf, size_t len);

/* True when every key has the same value in both (string tails and padding ignored):
 * lets a SIGHUP reload tell what changed. */
bool cfg_equal(const cfg_t *a, const cfg_t *b);

/* ---- The key table, for --help and for tests ------------------------------------------- */

typedef struct {
    const char *section;            /* "node" */
    const char *name;               /* "shards" */
    const char *def;                /* the default as the file spells it: "0" */
    const char *help;               /* one line: what it does, its unit and range */
} cfg_key_info_t;

/* Keys in file order (grouped by section). Static storage; valid for the process. */
size_t cfg_key_count(void);
const cfg_key_info_t *cfg_key_info(size_t i);      /* i < cfg_key_count() */

#endif
