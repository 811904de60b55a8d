/*
 * presencectl - manages a running presenced through its admin endpoint.
 *
 *   presencectl [--admin HOST:PORT] user add JID        password read from stdin
 *   presencectl [--admin HOST:PORT] user passwd JID     password read from stdin
 *   presencectl [--admin HOST:PORT] user del JID
 *   presencectl [--admin HOST:PORT] user list
 *   presencectl [--admin HOST:PORT] user show JID       the account and its home shard
 *   presencectl [--admin HOST:PORT] roster add JID CONTACT [--name N] [--group G]...
 *                                   [--subscription none|to|from|both]
 *   presencectl [--admin HOST:PORT] import FILE [--jobs N] [--batch N]
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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
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
            "\"subscription\"}]}\n");
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
    char *end_head = NULL;
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
        if (!end_head && (end_head = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            clen = cl && cl < end_head ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (end_head && (long)(len - (size_t)(end_head + 4 - buf)) >= clen)
            break;
    }
    int status = -1;
    if (end_head && sscanf(buf, "HTTP/1.%*d %d", &status) == 1) {
        size_t off = (size_t)(end_head + 4 - buf);
        *out = strndup(buf + off, len - off);
    }
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

int main(int argc, char **argv)
{
    const char *env = getenv("PRESENCED_ADMIN");
    const char *admin = env;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--admin")) {
        admin = argv[i + 1];
        i += 2;
    }
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
