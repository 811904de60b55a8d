/*
 * loopback_ceiling - how many small messages this machine's kernel carries over loopback
 * between two processes that do nothing else: the bound under any server's delivery rate
 * measured with its load generator on the same box.
 *
 *   tcp  the sender (the server's part) writes SIZE-byte messages round-robin over CONNS
 *        TCP connections (TCP_NODELAY, one send each: one segment per message, as a
 *        presence delivery to one client is), batched BATCH sends per io_uring submit;
 *        the receiver (the clients' part) reads them with epoll. Messages/s received.
 *   udp  the sender sends SIZE-byte datagrams over SOCKS connected UDP sockets, at most
 *        WINDOW unanswered, with sendmmsg; the receiver answers each with a REPLY-byte
 *        datagram, as a SIP UA answers a NOTIFY with 200. Datagram pairs/s.
 *
 * Each run forks the receiver, warms up for a second, counts for SECONDS; RUNS runs, the
 * summary line gives median, MAD, min and max. Everything stays on 127.0.0.1.
 *
 * usage: loopback_ceiling tcp|udp [--size B] [--reply B] [--conns N] [--socks N]
 *                                 [--window N] [--batch N] [--seconds S] [--runs N]
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/micro/bench_stats.h"
#include "engine/clock.h"

#define LC_CONNS_MAX 16384
#define LC_MMSG 64

static struct {
    int tcp;
    unsigned size, reply, conns, socks, window, batch, seconds, runs;
} opt = { 1, 250, 350, 1000, 16, 256, 64, 5, 3 };

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static struct sockaddr_in lc_loopback(uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return a;
}

static uint16_t lc_port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("getsockname");
    return ntohs(a.sin_port);
}

/* The receiver's count over the measuring window goes back to the parent on a pipe. */
static void lc_report(int pipe_fd, uint64_t count)
{
    if (write(pipe_fd, &count, sizeof(count)) != sizeof(count))
        die("write");
}

static bool lc_window(uint64_t t0, uint64_t now, uint64_t *start, uint64_t *count, uint64_t add)
{
    uint64_t warm = t0 + 1000000000ull;
    if (now < warm)
        return true;
    if (!*start)
        *start = now;
    *count += add;
    return now < *start + (uint64_t)opt.seconds * 1000000000ull;
}

/* Runs sender(fds) in a process of its own until the receiver (already running as
 * receiver_pid) reports its count on pipe_rd, then stops both. */
static uint64_t lc_measure(pid_t receiver_pid, int pipe_rd, void (*sender)(int *), int *fds)
{
    pid_t pid = fork();
    if (pid == 0) {
        sender(fds);
        _exit(0);
    }
    uint64_t count = 0;
    if (read(pipe_rd, &count, sizeof(count)) != sizeof(count))
        die("read");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    waitpid(receiver_pid, NULL, 0);
    return count;
}

/* ---- TCP: one segment per message -------------------------------------------------- */

static void lc_tcp_receiver(int lfd, int pipe_fd)
{
    int ep = epoll_create1(0);
    for (unsigned i = 0; i < opt.conns; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            die("accept");
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    static char buf[65536];
    struct epoll_event evs[256];
    uint64_t t0 = clk_monotonic_ns(), start = 0, bytes = 0;
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        uint64_t got = 0;
        for (int i = 0; i < n; i++) {
            ssize_t r = read(evs[i].data.fd, buf, sizeof(buf));
            if (r > 0)
                got += (uint64_t)r;
        }
        if (!lc_window(t0, clk_monotonic_ns(), &start, &bytes, got))
            break;
    }
    lc_report(pipe_fd, bytes / opt.size);
}

static void lc_tcp_sender(int *fds)
{
    struct io_uring ring;
    if (io_uring_queue_init(1024, &ring, 0) < 0)
        die("io_uring_queue_init");
    char *msg = malloc(opt.size);
    memset(msg, 'x', opt.size);
    unsigned next = 0, inflight = 0;
    for (;;) {
        while (inflight + opt.batch <= 1024 - opt.batch) {
            for (unsigned i = 0; i < opt.batch; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_send(sqe, fds[next], msg, opt.size, 0);
                next = (next + 1) % opt.conns;
            }
            inflight += opt.batch;
        }
        if (io_uring_submit_and_wait(&ring, 1) < 0)
            return;
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->res < 0 && cqe->res != -EAGAIN)
                return;     /* the receiver has gone */
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        inflight -= seen;
    }
}

static double lc_tcp_run(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1, pipefd[2];
    struct sockaddr_in a = lc_loopback(0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0)
        die("listen");
    a = lc_loopback(lc_port_of(lfd));
    if (pipe(pipefd) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        lc_tcp_receiver(lfd, pipefd[1]);
        _exit(0);
    }
    close(lfd);
    close(pipefd[1]);
    int *fds = calloc(opt.conns, sizeof(int));
    for (unsigned i = 0; i < opt.conns; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            die("connect");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    uint64_t count = lc_measure(pid, pipefd[0], lc_tcp_sender, fds);
    for (unsigned i = 0; i < opt.conns; i++)
        close(fds[i]);
    free(fds);
    close(pipefd[0]);
    return (double)count / opt.seconds;
}

/* ---- UDP: a datagram and its answer ------------------------------------------------- */

static void lc_udp_receiver(int *fds, int pipe_fd)
{
    int ep = epoll_create1(0);
    for (unsigned i = 0; i < opt.socks; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    static char bufs[LC_MMSG][2048];
    char *answer = calloc(1, opt.reply);
    struct sockaddr_in from[LC_MMSG];
    struct mmsghdr in[LC_MMSG], out[LC_MMSG];
    struct iovec iov_in[LC_MMSG], iov_out[LC_MMSG];
    for (unsigned i = 0; i < LC_MMSG; i++) {
        iov_in[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
        iov_out[i] = (struct iovec){ answer, opt.reply };
    }
    struct epoll_event evs[64];
    uint64_t t0 = clk_monotonic_ns(), start = 0, pairs = 0;
    for (;;) {
        int n = epoll_wait(ep, evs, 64, 100), got = 0;
        for (int e = 0; e < n; e++) {
            for (unsigned i = 0; i < LC_MMSG; i++)
                in[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &from[i],
                                                       .msg_namelen = sizeof(from[i]),
                                                       .msg_iov = &iov_in[i],
                                                       .msg_iovlen = 1 } };
            int r = recvmmsg(evs[e].data.fd, in, LC_MMSG, MSG_DONTWAIT, NULL);
            for (int i = 0; i < r; i++)
                out[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &from[i],
                                                        .msg_namelen = in[i].msg_hdr.msg_namelen,
                                                        .msg_iov = &iov_out[i],
                                                        .msg_iovlen = 1 } };
            if (r > 0 && sendmmsg(evs[e].data.fd, out, (unsigned)r, 0) > 0)
                got += r;
        }
        if (!lc_window(t0, clk_monotonic_ns(), &start, &pairs, (uint64_t)got))
            break;
    }
    lc_report(pipe_fd, pairs);
}

static void lc_udp_sender(int *fds)
{
    int ep = epoll_create1(0);
    for (unsigned i = 0; i < opt.socks; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    char *req = calloc(1, opt.size);
    static char bufs[LC_MMSG][2048];
    struct mmsghdr in[LC_MMSG], out[LC_MMSG];
    struct iovec iov_in[LC_MMSG], iov_out = { req, opt.size };
    for (unsigned i = 0; i < LC_MMSG; i++) {
        iov_in[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
        in[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov_in[i], .msg_iovlen = 1 } };
        out[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov_out, .msg_iovlen = 1 } };
    }
    unsigned outstanding = 0, next = 0;
    struct epoll_event evs[64];
    for (;;) {
        while (outstanding < opt.window) {
            unsigned k = opt.window - outstanding;
            if (k > LC_MMSG)
                k = LC_MMSG;
            int r = sendmmsg(fds[next], out, k, 0);
            if (r <= 0)
                return;
            outstanding += (unsigned)r;
            next = (next + 1) % opt.socks;
        }
        int n = epoll_wait(ep, evs, 64, 1000);
        if (n <= 0)
            return;
        for (int e = 0; e < n; e++) {
            int r = recvmmsg(evs[e].data.fd, in, LC_MMSG, MSG_DONTWAIT, NULL);
            if (r > 0)
                outstanding -= (unsigned)r < outstanding ? (unsigned)r : outstanding;
        }
    }
}

static double lc_udp_run(void)
{
    int rx[LC_MMSG * 4], tx[LC_MMSG * 4], pipefd[2];
    for (unsigned i = 0; i < opt.socks; i++) {
        struct sockaddr_in a = lc_loopback(0);
        int big = 4 << 20;
        rx[i] = socket(AF_INET, SOCK_DGRAM, 0);
        tx[i] = socket(AF_INET, SOCK_DGRAM, 0);
        setsockopt(rx[i], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
        setsockopt(tx[i], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
        if (bind(rx[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            die("bind");
        a = lc_loopback(lc_port_of(rx[i]));
        if (connect(tx[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            die("connect");
    }
    if (pipe(pipefd) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        lc_udp_receiver(rx, pipefd[1]);
        _exit(0);
    }
    close(pipefd[1]);
    uint64_t count = lc_measure(pid, pipefd[0], lc_udp_sender, tx);
    for (unsigned i = 0; i < opt.socks; i++) {
        close(rx[i]);
        close(tx[i]);
    }
    close(pipefd[0]);
    return (double)count / opt.seconds;
}

static unsigned lc_arg(const char *v, unsigned lo, unsigned hi, const char *name)
{
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "loopback_ceiling: %s must be %u..%u\n", name, lo, hi);
        exit(2);
    }
    return (unsigned)x;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "tcp") && strcmp(argv[1], "udp"))) {
        fprintf(stderr, "usage: loopback_ceiling tcp|udp [--size B] [--reply B] [--conns N] "
                        "[--socks N] [--window N] [--batch N] [--seconds S] [--runs N]\n");
        return 2;
    }
    opt.tcp = !strcmp(argv[1], "tcp");
    if (!opt.tcp)
        opt.size = 900;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--size"))
            opt.size = lc_arg(v, 1, 1400, k);
        else if (!strcmp(k, "--reply"))
            opt.reply = lc_arg(v, 1, 1400, k);
        else if (!strcmp(k, "--conns"))
            opt.conns = lc_arg(v, 1, LC_CONNS_MAX, k);
        else if (!strcmp(k, "--socks"))
            opt.socks = lc_arg(v, 1, LC_MMSG * 4, k);
        else if (!strcmp(k, "--window"))
            opt.window = lc_arg(v, 1, 1 << 20, k);
        else if (!strcmp(k, "--batch"))
            opt.batch = lc_arg(v, 1, 256, k);
        else if (!strcmp(k, "--seconds"))
            opt.seconds = lc_arg(v, 1, 600, k);
        else if (!strcmp(k, "--runs"))
            opt.runs = lc_arg(v, 1, BENCH_RUNS_MAX, k);
        else {
            fprintf(stderr, "loopback_ceiling: unknown option %s\n", k);
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (opt.tcp && 2 * opt.conns + 64 > rl.rlim_cur) {
        fprintf(stderr, "loopback_ceiling: %u connections need %u descriptors\n", opt.conns,
                2 * opt.conns + 64);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    double v[BENCH_RUNS_MAX];
    for (unsigned r = 0; r < opt.runs; r++) {
        v[r] = opt.tcp ? lc_tcp_run() : lc_udp_run();
        printf("run %u: %.0f %s/s\n", r + 1, v[r], opt.tcp ? "messages" : "pairs");
        fflush(stdout);
    }
    char what[96];
    if (opt.tcp)
        snprintf(what, sizeof(what), "tcp %u B x %u conns", opt.size, opt.conns);
    else
        snprintf(what, sizeof(what), "udp %u/%u B x %u socks", opt.size, opt.reply, opt.socks);
    bench_summary(what, v, opt.runs, opt.tcp ? "messages/s" : "pairs/s");
    return 0;
}
