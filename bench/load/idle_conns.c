/*
 * idle_conns - holds N idle TCP connections to a presenced listener and
 * measures the server's memory per connection.
 *
 * Connections come from several source addresses in 127.0.0.0/8 (bound with
 * IP_BIND_ADDRESS_NO_PORT, so each address has its own 28K ephemeral ports)
 * and from several processes (each under its own RLIMIT_NOFILE). The parent
 * samples the server's VmRSS from /proc/<pid>/status before and after, and
 * reads presenced_connections_open from the admin endpoint to confirm the
 * server holds them all.
 *
 * usage: idle_conns --pid PID --port PORT --admin-port PORT --conns N
 *                   [--hold SECONDS] [--per-process N]
 * Prints one line: conns, held, rss_before_kib, rss_after_kib, bytes_per_conn.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/common.h"

#define SOURCES_MAX 64
#define PORTS_PER_SOURCE 20000      /* well inside the 28K ephemeral range */

static long rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Sum of presenced_connections_open over shards, from the admin endpoint. */
static long open_conns(unsigned admin_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)admin_port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(fd);
    long total = 0;
    for (char *p = buf; (p = strstr(p, "\npresenced_connections_open{")); p++) {
        char *v = strchr(p, '}');
        if (v)
            total += strtol(v + 1, NULL, 10);
    }
    free(buf);
    return total;
}

static int dial(unsigned src, unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in local = { .sin_family = AF_INET };
    local.sin_addr.s_addr = htonl(0x7f000000u | (src + 2));    /* 127.0.0.2 .. */
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(0x7f000001u);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Child: open count connections, report through the pipe, hold until killed. */
static void child(unsigned first_src, unsigned count, unsigned port, int report)
{
    int *fds = malloc(sizeof(int) * count);
    unsigned opened = 0;
    for (unsigned i = 0; i < count; i++) {
        unsigned src = first_src + i / PORTS_PER_SOURCE;
        int fd = dial(src % SOURCES_MAX, port);
        if (fd < 0) {
            fprintf(stderr, "idle_conns: connection %u: %s\n", i, strerror(errno));
            break;
        }
        fds[opened++] = fd;
    }
    if (write(report, &opened, sizeof(opened)) != sizeof(opened))
        _exit(1);
    pause();
    _exit(0);
}

int main(int argc, char **argv)
{
    int pid = 0;
    unsigned port = 0, admin_port = 0, conns = 10000, hold_s = 2, per_proc = 18000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pid")) pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--port")) port = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--admin-port")) admin_port = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns")) conns = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hold")) hold_s = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-process")) per_proc = (unsigned)atoi(argv[i + 1]);
    }
    if (!pid || !port || !admin_port) {
        fprintf(stderr, "usage: idle_conns --pid PID --port PORT --admin-port PORT --conns N\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (per_proc + 100 > rl.rlim_cur)
        per_proc = (unsigned)rl.rlim_cur - 100;

    long before = rss_kib(pid);
    unsigned procs = (conns + per_proc - 1) / per_proc;
    pid_t kids[256];
    int pipes[256][2];
    unsigned src = 0;
    for (unsigned p = 0; p < procs && p < 256; p++) {
        unsigned count = conns - p * per_proc < per_proc ? conns - p * per_proc : per_proc;
        if (pipe(pipes[p]) < 0)
            return 1;
        kids[p] = fork();
        if (kids[p] == 0)
            child(src, count, port, pipes[p][1]);
        src += (count + PORTS_PER_SOURCE - 1) / PORTS_PER_SOURCE;
    }
    unsigned opened = 0;
    for (unsigned p = 0; p < procs; p++) {
        unsigned n = 0;
        if (read(pipes[p][0], &n, sizeof(n)) == sizeof(n))
            opened += n;
    }
    /* Let the server accept the tail of the backlog and settle. */
    long held = 0;
    for (unsigned t = 0; t < 100; t++) {
        held = open_conns(admin_port);
        if (held >= (long)opened)
            break;
        usleep(100000);
    }
    sleep(hold_s);
    held = open_conns(admin_port);
    long after = rss_kib(pid);
    for (unsigned p = 0; p < procs; p++)
        kill(kids[p], SIGTERM);
    for (unsigned p = 0; p < procs; p++)
        waitpid(kids[p], NULL, 0);
    double per = held > 0 ? (double)(after - before) * 1024.0 / (double)held : 0;
    printf("conns %u opened %u held %ld rss_before_kib %ld rss_after_kib %ld bytes_per_conn %.0f\n",
           conns, opened, held, before, after, per);
    return held >= (long)conns ? 0 : 1;
}
