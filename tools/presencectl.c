/*
 * presencectl - manages a running presenced through its admin endpoint, and
 * sizes a deployment without one.
 *
 *   presencectl [--admin HOST:PORT] user add JID        password read from stdin
 *   presencectl [--admin HOST:PORT] user passwd JID     password read from stdin
 *   presencectl [--admin HOST:PORT] user del JID
 *   presencectl [--admin HOST:PORT] user list
 *   presencectl [--admin HOST:PORT] user show JID       the account and its home shard
 *   presencectl [--admin HOST:PORT] roster add JID CONTACT [--name N] [--group G]...
 *                                   [--subscription none|to|from|both]
 *   presencectl [--admin HOST:PORT] line set JID SIP-URI | line del JID | line show JID
 *   presencectl [--admin HOST:PORT] import FILE [--jobs N] [--batch N]
 *   presencectl sizing --users N [--devices D] [--contacts K] [--tls]
 *
 * The admin address defaults to $PRESENCED_ADMIN or 127.0.0.1:8084. An
 * answered request is durable on the node. Exit status: 0 done, 1 refused or
 * failed (the server's reason is printed), 2 usage.
 *
 * import reads JSON lines, one account each:
 *   {"jid": "alice@example.com", "password": "...",
 *    "roster": [{"jid": "bob@example.com", "name": "Bob", "groups": ["Team"],
 *                "subscription": "both"}]}
 * and sends them in batches over several connections at once, so that every
 * shard of the node derives credentials in parallel. A line may also give
 * "salt" (base64 of 16 to 64 bytes) and "iterations" (4096 to 10,000,000) for
 * its SCRAM credentials; without them each account gets a fresh random salt
 * and 4096 iterations. Accounts that share a password and a salt are derived
 * once per shard (load tests provision thousands that way); never share a salt
 * between real users' accounts.
 *
 * sizing maps users (D devices each, K contacts, default 1 and 50) to the fewest
 * nodes of the reference machine and, per node, the smallest preset of
 * tools/profiles/ that holds its share in memory, and prints the table with the
 * model's assumptions (cmd_sizing; its constants say where each figure comes
 * from). It reads nothing and contacts nothing: exit 0, or 2 for bad input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CTL_BATCH_DEFAULT 250
#define CTL_JOBS_DEFAULT 4

static char admin_host[256] = "127.0.0.1";
static char admin_port[16] = "8084";

static void usage(void)
{
    fprintf(stderr,
            "usage: presencectl [--admin HOST:PORT] COMMAND\n"
            "  user add JID | user passwd JID    (password on stdin)\n"
            "  user del JID | user list | user show JID\n"
            "  roster add JID CONTACT [--name N] [--group G]... "
            "[--subscription none|to|from|both]\n"
            "  line set JID SIP-URI | line del JID | line show JID\n"
            "  import FILE [--jobs N] [--batch N]\n"
            "    FILE: JSON lines {\"jid\", \"password\", [\"salt\" (base64), "
            "\"iterations\"], \"roster\": [{\"jid\", \"name\", \"groups\", "
            "\"subscription\"}]}\n"
            "  sizing --users N [--devices D] [--contacts K] [--tls]\n"
            "    nodes and the tools/profiles/ preset per node; needs no server\n");
    exit(2);
}

static int ctl_connect(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(admin_host, admin_port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "presencectl: %s: %s\n", admin_host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr, "presencectl: cannot reach the admin endpoint %s:%s: %s\n", admin_host,
                admin_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One request on fd (kept alive). Returns the status, the body in *body
 * (malloc'd, NUL-terminated), or -1 on a transport error. */
static int ctl_request(int fd, const char *method, const char *path, const char *body,
                       size_t body_len, char **out)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: presenced\r\nContent-Length: %zu\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n",
                     method, path, body_len);
    if (n < 0 || (size_t)n >= sizeof(head) || write_all(fd, head, (size_t)n) < 0 ||
        write_all(fd, body ? body : "", body_len) < 0)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t body_off = 0;        /* an offset, not a pointer: buf moves as it grows */
    long clen = -1;
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
        buf[len] = 0;
        const char *end_head;
        if (!body_off && (end_head = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            clen = cl && cl < end_head ? strtol(cl + 17, NULL, 10) : 0;
            body_off = (size_t)(end_head + 4 - buf);
        }
        if (body_off && (long)(len - body_off) >= clen)
            break;
    }
    int status = -1;
    if (body_off && sscanf(buf, "HTTP/1.%*d %d", &status) == 1)
        *out = strndup(buf + body_off, len - body_off);
    free(buf);
    return status;
}

/* Percent-encodes a JID for a path segment. */
static void pct(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("@.-_~", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = 0;
}

static int ctl_simple(const char *method, const char *path, const char *body, size_t len,
                      bool print_body)
{
    int fd = ctl_connect();
    if (fd < 0)
        return 1;
    char *reply = NULL;
    int status = ctl_request(fd, method, path, body, len, &reply);
    close(fd);
    if (status < 0) {
        fprintf(stderr, "presencectl: no answer from the admin endpoint\n");
        return 1;
    }
    if (status >= 300) {
        fprintf(stderr, "presencectl: %d: %s", status, reply ? reply : "\n");
        free(reply);
        return 1;
    }
    if (print_body && reply)
        fputs(reply, stdout);
    free(reply);
    return 0;
}

static char *read_password(size_t *len)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n <= 0) {
        fprintf(stderr, "presencectl: no password on stdin\n");
        exit(1);
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    *len = (size_t)n;
    return line;
}

static int cmd_user(int argc, char **argv)
{
    char path[4096], enc[3200];
    if (argc >= 1 && !strcmp(argv[0], "list") && argc == 1)
        return ctl_simple("GET", "/api/v1/users", NULL, 0, true);
    if (argc != 2)
        usage();
    pct(argv[1], enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/users/%s", enc);
    if (!strcmp(argv[0], "add") || !strcmp(argv[0], "passwd")) {
        size_t len;
        char *pw = read_password(&len);
        int rc = ctl_simple("PUT", path, pw, len, false);
        free(pw);
        return rc;
    }
    if (!strcmp(argv[0], "del"))
        return ctl_simple("DELETE", path, NULL, 0, false);
    if (!strcmp(argv[0], "show"))
        return ctl_simple("GET", path, NULL, 0, true);
    usage();
    return 2;
}

/* line set JID URI | line del JID | line show JID: the phone line the
 * presence gateway watches for the user. */
static int cmd_line(int argc, char **argv)
{
    char path[4096], enc[3200];
    if (argc < 2)
        usage();
    pct(argv[1], enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/users/%s/line", enc);
    if (!strcmp(argv[0], "set") && argc == 3)
        return ctl_simple("PUT", path, argv[2], strlen(argv[2]), false);
    if (!strcmp(argv[0], "del") && argc == 2)
        return ctl_simple("DELETE", path, NULL, 0, false);
    if (!strcmp(argv[0], "show") && argc == 2)
        return ctl_simple("GET", path, NULL, 0, true);
    usage();
    return 2;
}

static int cmd_roster(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[0], "add"))
        usage();
    json_t *item = json_object(), *groups = json_array();
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--name"))
            json_object_set_new(item, "name", json_string(argv[++i]));
        else if (!strcmp(argv[i], "--group"))
            json_array_append_new(groups, json_string(argv[++i]));
        else if (!strcmp(argv[i], "--subscription"))
            json_object_set_new(item, "subscription", json_string(argv[++i]));
        else
            usage();
    }
    json_object_set_new(item, "groups", groups);
    char *body = json_dumps(item, JSON_COMPACT);
    json_decref(item);
    char path[8192], a[3200], b[3200];
    pct(argv[1], a, sizeof(a));
    pct(argv[2], b, sizeof(b));
    snprintf(path, sizeof(path), "/api/v1/users/%s/roster/%s", a, b);
    int rc = ctl_simple("PUT", path, body, strlen(body), false);
    free(body);
    return rc;
}

/* --- import: batches of lines over several connections --- */

typedef struct {
    FILE *f;
    pthread_mutex_t lock;
    unsigned batch;
    unsigned long line;         /* lines read so far */
    unsigned long imported;
    bool failed;
} import_t;

/* Next batch of lines (under the lock); returns its length, 0 at the end. */
static size_t import_next(import_t *im, char **buf, size_t *cap, unsigned long *first)
{
    size_t len = 0;
    pthread_mutex_lock(&im->lock);
    *first = im->line + 1;
    char *line = NULL;
    size_t lcap = 0;
    for (unsigned n = 0; n < im->batch && !im->failed;) {
        ssize_t got = getline(&line, &lcap, im->f);
        if (got <= 0)
            break;
        im->line++;
        if (got == 1 && line[0] == '\n')
            continue;
        if (len + (size_t)got + 1 > *cap) {
            *cap = (len + (size_t)got + 1) * 2;
            *buf = realloc(*buf, *cap);
        }
        memcpy(*buf + len, line, (size_t)got);
        len += (size_t)got;
        if ((*buf)[len - 1] != '\n')
            (*buf)[len++] = '\n';
        n++;
    }
    free(line);
    pthread_mutex_unlock(&im->lock);
    return len;
}

static void *import_worker(void *arg)
{
    import_t *im = arg;
    int fd = ctl_connect();
    char *buf = NULL;
    size_t cap = 0, len;
    unsigned long first;
    if (fd < 0) {
        im->failed = true;
        return NULL;
    }
    while ((len = import_next(im, &buf, &cap, &first)) > 0) {
        char *reply = NULL;
        int status = ctl_request(fd, "POST", "/api/v1/import", buf, len, &reply);
        if (status != 200) {
            fprintf(stderr, "presencectl: import from line %lu: %d: %s", first, status,
                    reply ? reply : "no answer\n");
            im->failed = true;
            free(reply);
            break;
        }
        unsigned long n = 0;
        sscanf(reply, "imported %lu", &n);
        pthread_mutex_lock(&im->lock);
        im->imported += n;
        pthread_mutex_unlock(&im->lock);
        free(reply);
    }
    free(buf);
    close(fd);
    return NULL;
}

static int cmd_import(int argc, char **argv)
{
    unsigned jobs = CTL_JOBS_DEFAULT, batch = CTL_BATCH_DEFAULT;
    if (argc < 1)
        usage();
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--jobs"))
            jobs = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch"))
            batch = (unsigned)atoi(argv[++i]);
        else
            usage();
    }
    if (jobs < 1 || jobs > 64 || batch < 1 || batch > 10000)
        usage();
    import_t im = { .batch = batch };
    im.f = strcmp(argv[0], "-") ? fopen(argv[0], "r") : stdin;
    if (!im.f) {
        fprintf(stderr, "presencectl: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    pthread_mutex_init(&im.lock, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t th[64];
    for (unsigned i = 0; i < jobs; i++)
        pthread_create(&th[i], NULL, import_worker, &im);
    for (unsigned i = 0; i < jobs; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "presencectl: imported %lu accounts in %.1f s (%.0f/s)\n", im.imported, s,
            s > 0 ? (double)im.imported / s : 0.0);
    if (im.f != stdin)
        fclose(im.f);
    return im.failed ? 1 : 0;
}

/* --- sizing: nodes and a profile per node for a user count, without a server --- */

/*
 * The sizing model, in one place. Each figure says where it comes from:
 *   measured  bench/RESULTS.md, on its reference machine (2 cores, 24 GiB, Debian 12
 *             container, RLIMIT_NOFILE hard limit 20000);
 *   bound     a limit the code enforces;
 *   target    DESIGN.md §7;
 *   estimate  derived from the code, for what RESULTS.md has no figure for. The XMPP
 *             estimates give way to the per-user figure bench/xmpp_load.sh reports
 *             ("server RSS per connected user") once RESULTS.md records one.
 * A node fits when its steady memory, the kernel's sockets and the OS reserve take at most
 * half of its RAM. The other half is for what a steady estimate leaves out: output queues
 * of slow readers, mailbox backlogs, login storms (a SCRAM exchange and a ~20 KiB parser
 * context per stanza in flight), allocator fragmentation, and the estimates' own error.
 */
#define SZ_KIB 1024ull
#define SZ_MIB (1024ull * 1024)
/* Reference node (RESULTS.md header; DESIGN.md §7). */
#define SZ_NODE_CORES 2u
#define SZ_NODE_RAM_BYTES (24ull << 30)
#define SZ_NODE_BUDGET_BYTES (SZ_NODE_RAM_BYTES / 2)
/* Measured: process RSS with no connections, 17.4 MiB with 2 shards and 20.5 MiB with 7
 * (RESULTS.md, "Memory per idle connection", RSS before): 0.62 MiB per further shard. */
#define SZ_BASE_BYTES (174 * SZ_MIB / 10)
#define SZ_SHARD_BYTES ((205 - 174) * SZ_MIB / 10 / 5)
/* Measured: an idle connection's record, table slot and timer, 198 B at 10,000 and 183 B
 * at 100,000 (same section); the larger is used. */
#define SZ_CONN_BYTES 198ull
/* Bound: RocksDB memtables 64 MiB plus block cache 64 MiB (storage/stor_rocksdb.c). */
#define SZ_STORAGE_BYTES (128 * SZ_MIB)
/* Bound: a mailbox slot is 32 B and there is one ring per ordered pair of endpoints, the
 * shards and the main thread (engine/mbox.c). */
#define SZ_MBOX_SLOT_BYTES 32ull
/* Estimate: once a connection has written it keeps its last output chunk, reused when it
 * empties (engine/shard.c, CONN_CHUNK_BYTES); the pages a login's roster and presence
 * burst touch stay resident, up to the chunk's 16 KiB. */
#define SZ_OUT_CHUNK_BYTES (16 * SZ_KIB)
/* Estimate: an XMPP session: c2s_t 248 B and struct xmpp_sess 216 B (x86-64), its full
 * JID, resource and last broadcast presence, in jemalloc size classes. */
#define SZ_SESSION_BYTES 1024ull
/* Estimate: a user with a session: struct sm_user 72 B, its bare JID, a hash bucket. */
#define SZ_USER_BYTES 128ull
/* Estimate: a contact of an online user: struct sm_contact 40 B in a doubling array
 * (~60 B), its JID (32), a name (16) and one group (8 + 16). */
#define SZ_CONTACT_BYTES 144ull
/* Estimate: TLS: BoringSSL after a TLS 1.3 handshake (SSL, session, two AES-GCM contexts,
 * two memory BIOs) ~5 KiB; a memory BIO never shrinks, so the write side keeps the largest
 * output of one turn, ~10 KiB after a login with 50 contacts. */
#define SZ_TLS_BYTES (15 * SZ_KIB)
/* Estimate: kernel memory per idle TCP socket: slab objects TCP 2368 B, sock_inode_cache
 * 832, filp 192, dentry 192 (/proc/slabinfo, reference kernel), rounded up. RESULTS.md's
 * figures leave kernel socket memory out. */
#define SZ_KERNEL_CONN_BYTES (4 * SZ_KIB)
/* Estimate: room for the OS and for RocksDB's files in the page cache. */
#define SZ_OS_RESERVE_BYTES (1ull << 30)
/* Defaults: one device per user (the OVA sizes count clients); a roster of 50 (DESIGN.md
 * §7). Input bounds: more than 64 devices or 100,000 contacts per user is a data error,
 * and 10^9 users keeps every product below 2^64. */
#define SZ_DEVICES_DEFAULT 1u
#define SZ_DEVICES_MAX 64u
#define SZ_CONTACTS_DEFAULT 50u
#define SZ_CONTACTS_MAX 100000u
#define SZ_USERS_MAX 1000000000ull

/*
 * The presets in tools/profiles/, rated in connections (users x devices); the values are
 * the files' and tests/integration/test_sizing.py checks that they agree. Rules: shards =
 * the reference's 2 cores, or more when 1.3 x connections (SO_REUSEPORT and the user hash
 * spread unevenly) would pass 19,500 on a shard (RLIMIT_NOFILE 20000 caps each shard's
 * ring, less room for the node's own descriptors); max_connections_per_shard = 1.3 x
 * connections / shards; one receive buffer per 16 connections of a shard, at least 256;
 * output queues at the default while all of them full take at most a third of the RAM,
 * else 128 KiB, the smallest power of two holding two of the largest stanzas and the admin
 * endpoint's /metrics answer (85 KB with 17 shards; it shares the bound); largest profile
 * = DESIGN.md §7's 250,000 users per node.
 */
typedef struct {
    const char *file;
    uint32_t connections;
    uint32_t shards;
    bool pin_shards;
    uint32_t max_connections_per_shard;
    uint32_t recv_buffers_per_shard;
    uint32_t recv_buffer_bytes;
    uint32_t output_queue_max_bytes;
    uint32_t ring_slots;
    uint32_t max_stanza_bytes;
} sz_profile_t;

static const sz_profile_t sz_profiles[] = {
    { "1k.conf", 1000, 2, true, 650, 256, 4096, 262144, 4096, 65536 },
    { "5k.conf", 5000, 2, true, 3250, 256, 4096, 262144, 4096, 65536 },
    { "15k.conf", 15000, 2, true, 9750, 512, 4096, 262144, 4096, 65536 },
    { "25k.conf", 25000, 2, true, 16250, 1024, 4096, 262144, 4096, 65536 },
    { "100k.conf", 100000, 7, false, 18572, 1024, 4096, 131072, 4096, 65536 },
    { "250k.conf", 250000, 17, false, 19118, 1024, 4096, 131072, 2048, 65536 },
};
#define SZ_PROFILES (sizeof(sz_profiles) / sizeof(sz_profiles[0]))

typedef struct {
    uint64_t steady;            /* presenced's own memory, connections idle */
    uint64_t node;              /* + kernel sockets and the OS: what must fit the budget */
    uint64_t queues_full;       /* node + every output queue at its bound */
} sz_mem_t;

static sz_mem_t sz_node_memory(const sz_profile_t *p, uint64_t users, uint64_t conns,
                               uint64_t contacts, bool tls)
{
    uint64_t endpoints = p->shards + 1ull;
    /* The baseline was measured with 2 shards; fewer are counted as 2. */
    uint64_t extra_shards = p->shards > SZ_NODE_CORES ? p->shards - SZ_NODE_CORES : 0;
    uint64_t fixed = SZ_BASE_BYTES + extra_shards * SZ_SHARD_BYTES + SZ_STORAGE_BYTES +
                     (uint64_t)p->shards * p->recv_buffers_per_shard * p->recv_buffer_bytes +
                     endpoints * endpoints * p->ring_slots * SZ_MBOX_SLOT_BYTES;
    uint64_t per_conn = SZ_CONN_BYTES + SZ_OUT_CHUNK_BYTES + SZ_SESSION_BYTES +
                        (tls ? SZ_TLS_BYTES : 0);
    uint64_t per_user = SZ_USER_BYTES + contacts * SZ_CONTACT_BYTES;
    sz_mem_t m;
    m.steady = fixed + conns * per_conn + users * per_user;
    m.node = m.steady + conns * SZ_KERNEL_CONN_BYTES + SZ_OS_RESERVE_BYTES;
    m.queues_full = m.node + conns * (p->output_queue_max_bytes - SZ_OUT_CHUNK_BYTES);
    return m;
}

static uint64_t sz_mib(uint64_t bytes)
{
    return (bytes + SZ_MIB - 1) / SZ_MIB;
}

static void sz_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void sz_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "presencectl: sizing: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: presencectl sizing --users N [--devices D] [--contacts K] "
                    "[--tls]\n");
    exit(2);
}

/* A plain decimal number in [min, max]: no sign, no spaces, nothing after it. */
static uint64_t sz_number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    if (!s)
        sz_usage_error("%s needs a value", opt);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v < min || v > max)
        sz_usage_error("%s takes a whole number from %llu to %llu, not '%s'", opt,
                       (unsigned long long)min, (unsigned long long)max, s);
    return v;
}

static void sz_print(uint64_t users, uint64_t devices, uint64_t contacts, bool tls,
                     const sz_profile_t *p, uint64_t nodes, uint64_t per_node,
                     const sz_mem_t *mem)
{
    typedef unsigned long long ull;
    printf("%llu users, %llu device%s each: %llu connections; %llu contacts each; TLS %s\n\n",
           (ull)users, (ull)devices, devices == 1 ? "" : "s", (ull)(users * devices),
           (ull)contacts, tls ? "on" : "off");
    printf("%-10s %6s %11s %17s %12s\n", "profile", "nodes", "users/node", "connections/node",
           "memory/node");
    printf("%-10s %6llu %11llu %17llu %8llu MiB\n\n", p->file, (ull)nodes, (ull)per_node,
           (ull)(per_node * devices), (ull)sz_mib(mem->steady));
    printf("per node: %llu MiB presenced (estimated); %llu MiB with kernel sockets and the OS,\n"
           "  of a budget of %llu MiB (half of %llu); %llu MiB if every output queue filled%s\n",
           (ull)sz_mib(mem->steady), (ull)sz_mib(mem->node), (ull)sz_mib(SZ_NODE_BUDGET_BYTES),
           (ull)sz_mib(SZ_NODE_RAM_BYTES), (ull)sz_mib(mem->queues_full),
           mem->queues_full > SZ_NODE_RAM_BYTES ? "\n  (more than the RAM: slow readers must "
                                                  "stay a minority)" : "");
    printf("profile tools/profiles/%s: shards %u, pin_shards %s, max_connections_per_shard %u,\n"
           "  recv_buffers_per_shard %u, recv_buffer_bytes %u, output_queue_max_bytes %u,\n"
           "  ring_slots %u, max_stanza_bytes %u\n\n",
           p->file, p->shards, p->pin_shards ? "true" : "false", p->max_connections_per_shard,
           p->recv_buffers_per_shard, p->recv_buffer_bytes, p->output_queue_max_bytes,
           p->ring_slots, p->max_stanza_bytes);
    printf("assumptions (reference node: %u cores, %llu GiB, Debian 12, RLIMIT_NOFILE 20000):\n"
           "  measured  %llu B per idle connection; 17.4 MiB process with 2 shards, +%llu KiB\n"
           "            per further shard (bench/RESULTS.md, Memory per idle connection)\n"
           "  bound     %llu MiB RocksDB memtables and block cache; receive buffers and mailbox\n"
           "            rings in full\n"
           "  estimate  %llu B output chunk kept per connection, %llu B per XMPP session,\n"
           "            %llu B per online user, %llu B per contact (from the code's "
           "structures)\n",
           SZ_NODE_CORES, (ull)(SZ_NODE_RAM_BYTES >> 30), SZ_CONN_BYTES,
           (ull)(SZ_SHARD_BYTES / SZ_KIB), (ull)(SZ_STORAGE_BYTES / SZ_MIB), SZ_OUT_CHUNK_BYTES,
           SZ_SESSION_BYTES, SZ_USER_BYTES, SZ_CONTACT_BYTES);
    if (tls)
        printf("  estimate  %llu B of TLS state per connection\n", SZ_TLS_BYTES);
    printf("  estimate  %llu B kernel memory per socket, %llu MiB for the OS\n"
           "  target    at most %u connections per node (DESIGN.md §7)\n"
           "  not modelled: CPU (profiles are sized by memory and descriptors); redundancy\n"
           "            (a presence redundancy group doubles the nodes)\n",
           SZ_KERNEL_CONN_BYTES, (ull)(SZ_OS_RESERVE_BYTES / SZ_MIB),
           sz_profiles[SZ_PROFILES - 1].connections);
}

static int cmd_sizing(int argc, char **argv)
{
    uint64_t users = 0, devices = SZ_DEVICES_DEFAULT, contacts = SZ_CONTACTS_DEFAULT;
    bool tls = false;
    for (int i = 0; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--users")) {
            users = sz_number("--users", val, 1, SZ_USERS_MAX);
            i++;
        } else if (!strcmp(argv[i], "--devices")) {
            devices = sz_number("--devices", val, 1, SZ_DEVICES_MAX);
            i++;
        } else if (!strcmp(argv[i], "--contacts")) {
            contacts = sz_number("--contacts", val, 0, SZ_CONTACTS_MAX);
            i++;
        } else if (!strcmp(argv[i], "--tls")) {
            tls = true;
        } else {
            sz_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (users == 0)
        sz_usage_error("--users is required");

    /* The fewest nodes first, then the smallest profile that holds a node's share. A node
     * count that holds a share also holds any smaller one, so nodes never fall as users
     * grow; shares differ by at most one user. One user on a node always fits (at the
     * input bounds it takes under 2 GiB), so the search ends. */
    const sz_profile_t *largest = &sz_profiles[SZ_PROFILES - 1];
    uint64_t nodes = (users * devices + largest->connections - 1) / largest->connections;
    const sz_profile_t *p = NULL;
    uint64_t per_node = 0;
    sz_mem_t mem = { 0, 0, 0 };
    for (;; nodes++) {
        per_node = (users + nodes - 1) / nodes;
        for (size_t k = 0; k < SZ_PROFILES && !p; k++) {
            if (per_node * devices > sz_profiles[k].connections)
                continue;
            mem = sz_node_memory(&sz_profiles[k], per_node, per_node * devices, contacts, tls);
            if (mem.node <= SZ_NODE_BUDGET_BYTES)
                p = &sz_profiles[k];
        }
        if (p)
            break;
    }
    sz_print(users, devices, contacts, tls, p, nodes, per_node, &mem);
    return 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("PRESENCED_ADMIN");
    const char *admin = env;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--admin")) {
        admin = argv[i + 1];
        i += 2;
    }
    /* Sizing never contacts a node, so a bad admin address is no reason to refuse it. */
    if (i < argc && !strcmp(argv[i], "sizing"))
        return cmd_sizing(argc - i - 1, argv + i + 1);
    if (admin) {
        const char *colon = strrchr(admin, ':');
        if (!colon || colon == admin || strlen(colon + 1) >= sizeof(admin_port))
            usage();
        snprintf(admin_host, sizeof(admin_host), "%.*s", (int)(colon - admin), admin);
        snprintf(admin_port, sizeof(admin_port), "%s", colon + 1);
    }
    if (i >= argc)
        usage();
    if (!strcmp(argv[i], "user"))
        return cmd_user(argc - i - 1, argv + i + 1);
    if (!strcmp(argv[i], "roster"))
        return cmd_roster(argc - i - 1, argv + i + 1);
    if (!strcmp(argv[i], "line"))
        return cmd_line(argc - i - 1, argv + i + 1);
    if (!strcmp(argv[i], "import"))
        return cmd_import(argc - i - 1, argv + i + 1);
    usage();
    return 2;
}
