/*
 * The engine on the real kernel: a node with two shards, each on its own
 * io_uring, a loopback listener and a small line protocol. Checks that
 * connections spread over both shards, a connection moves between shards
 * with its unconsumed input and queued output (MSG_RING plus the mailbox),
 * the output bound disconnects a connection instead of growing, idle
 * connections time out while active ones stay, and stop closes everything.
 *
 * Protocol: "WHO\n" -> "shard=N\n"; "MOVE N\n" -> move to shard N (the rest of
 * the input goes along); "FLOOD N\n" -> N bytes of 'x'; "QUIT\n" -> "bye\n".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/node.h"
#include "engine/shard_int.h"
#include "tests/unit/t.h"

typedef struct {
    char line[256];
    size_t len;
} probe_t;

static int probe_line(conn_t *c, const char *line, const char *rest, size_t rest_len,
                      bool *moved)
{
    char out[64];
    unsigned n;
    if (!strcmp(line, "WHO")) {
        int len = snprintf(out, sizeof(out), "shard=%u\n", shard_id(conn_shard(c)));
        return conn_write(c, out, (size_t)len);
    }
    if (sscanf(line, "MOVE %u", &n) == 1) {
        *moved = true;
        return conn_handoff(c, n, rest, rest_len);
    }
    if (sscanf(line, "FLOOD %u", &n) == 1) {
        char chunk[1024];
        void *mine = conn_state(c);
        memset(chunk, 'x', sizeof(chunk));
        for (unsigned sent = 0; sent < n; sent += sizeof(chunk)) {
            size_t k = n - sent < sizeof(chunk) ? n - sent : sizeof(chunk);
            if (conn_write(c, chunk, k) < 0) {
                /* Failed for overflow, which is the point; the close waits
                 * for the end of the turn, so the state is still ours. */
                CHECK(mine != NULL && conn_state(c) == mine);
                CHECK(conn_write(c, "x", 1) == -EPIPE);
                return 0;
            }
        }
        return 0;
    }
    if (!strcmp(line, "QUIT")) {
        conn_write(c, "bye\n", 4);
        conn_close(c, true);
        return 0;
    }
    return -EBADMSG;
}

static int probe_data(conn_t *c, const char *data, size_t len)
{
    probe_t *p = conn_state(c);
    if (!p) {
        p = calloc(1, sizeof(*p));
        conn_set_state(c, p);
    }
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (p->len + 1 >= sizeof(p->line))
                return -EBADMSG;
            p->line[p->len++] = data[i];
            continue;
        }
        p->line[p->len] = 0;
        p->len = 0;
        bool moved = false;
        int rc = probe_line(c, p->line, data + i + 1, len - i - 1, &moved);
        if (rc < 0 || moved)
            return rc;
        if (conn_closing(c))
            return 0;
    }
    return 0;
}

static void probe_close(conn_t *c)
{
    free(conn_state(c));
    conn_set_state(c, NULL);
}

static const conn_proto_t probe_proto = {
    .name = "probe", .on_data = probe_data, .on_close = probe_close,
};

static node_t *node;
static unsigned port, tls_port;
static tls_ctx_t *server_tls, *client_tls;

static int dial(unsigned p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

static int client(void)
{
    return dial(port);
}

static void say(int fd, const char *s)
{
    REQUIRE(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

/* Reads until want bytes, EOF or timeout; returns bytes read, -1 on EOF first. */
static ssize_t hear(int fd, char *buf, size_t want, int timeout_ms)
{
    size_t got = 0;
    while (got < want) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t n = read(fd, buf + got, want - got);
        if (n <= 0)
            return got ? (ssize_t)got : -1;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int who(int fd)
{
    char buf[16] = { 0 };
    say(fd, "WHO\n");
    if (hear(fd, buf, 8, 3000) != 8)
        return -1;
    return buf[6] - '0';
}

static uint64_t metric(metric_id_t id)
{
    return metrics_sum(node_metrics(node), id);
}

static void test_spread_over_shards(void)
{
    int fds[40], seen[2] = { 0, 0 };
    for (int i = 0; i < 40; i++) {
        fds[i] = client();
        int s = who(fds[i]);
        REQUIRE(s == 0 || s == 1);
        seen[s]++;
    }
    CHECK(seen[0] > 0);
    CHECK(seen[1] > 0);
    CHECK_EQ(metric(shard_mid.open), 40);
    for (int i = 0; i < 40; i++)
        close(fds[i]);
    for (int t = 0; t < 300 && metric(shard_mid.open) != 0; t++)
        usleep(10000);
    CHECK_EQ(metric(shard_mid.open), 0);
}

static void test_handoff(void)
{
    uint64_t out_before = metric(shard_mid.handoffs_out);
    for (int round = 0; round < 20; round++) {
        int fd = client();
        int from = who(fd);
        REQUIRE(from == 0 || from == 1);
        int to = 1 - from;
        /* The move, a question for the old shard queued before it, and one
         * for the new shard in the same packet (unconsumed input). */
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "WHO\nMOVE %d\nWHO\n", to);
        say(fd, cmd);
        char buf[32] = { 0 };
        CHECK_EQ(hear(fd, buf, 16, 3000), 16);
        char want[32];
        snprintf(want, sizeof(want), "shard=%d\nshard=%d\n", from, to);
        CHECK_STR(buf, want);
        /* Later input goes to the new shard; and it can move back. */
        CHECK_EQ(who(fd), to);
        snprintf(cmd, sizeof(cmd), "MOVE %d\n", from);
        say(fd, cmd);
        CHECK_EQ(who(fd), from);
        close(fd);
    }
    CHECK_EQ(metric(shard_mid.handoffs_out) - out_before, 40);
    for (int t = 0; t < 300 && metric(shard_mid.handoffs_in) < 40; t++)
        usleep(10000);
    CHECK_EQ(metric(shard_mid.handoffs_in), 40);
}

static void test_output_bound(void)
{
    uint64_t before = metric(shard_mid.overflows);
    /* Under the bound, read as it comes: everything arrives. */
    int fd = client();
    say(fd, "FLOOD 60000\nWHO\n");
    char *buf = malloc(70000);
    CHECK_EQ(hear(fd, buf, 60008, 5000), 60008);
    close(fd);
    CHECK_EQ(metric(shard_mid.overflows), before);
    /* Over the bound (64 KiB queued): disconnected, not buffered. */
    fd = client();
    say(fd, "FLOOD 10000000\n");
    ssize_t got = 0, n;
    while ((n = hear(fd, buf, 65536, 3000)) > 0)
        got += n;
    CHECK(got < 10000000);
    CHECK_EQ(metric(shard_mid.overflows), before + 1);
    free(buf);
    close(fd);
}

static void test_idle_timeout(void)
{
    uint64_t before = metric((metric_id_t)(shard_mid.closed + CONN_CLOSE_IDLE));
    int idle = client(), busy = client();
    /* The busy one talks every 300 ms for 2.4 s; the idle one never. */
    for (int i = 0; i < 8; i++) {
        CHECK(who(busy) >= 0);
        usleep(300000);
    }
    char buf[8];
    CHECK_EQ(hear(idle, buf, 1, 3000), -1);     /* EOF: closed by the server */
    CHECK(who(busy) >= 0);
    CHECK_EQ(metric((metric_id_t)(shard_mid.closed + CONN_CLOSE_IDLE)), before + 1);
    close(idle);
    close(busy);
}

/* --- a TLS client over a blocking socket --- */

typedef struct {
    int fd;
    tls_conn_t *tls;
    buf_t in;       /* plaintext received */
} tls_client_t;

static int tls_collect(void *ctx, const char *data, size_t len)
{
    buf_append(&((tls_client_t *)ctx)->in, data, len);
    return 0;
}

static void tls_pump_out(tls_client_t *t)
{
    buf_t b;
    buf_init(&b);
    if (tls_conn_take_out(t->tls, &b))
        REQUIRE(write(t->fd, b.data, b.len) == (ssize_t)b.len);
    buf_fini(&b);
}

/* Reads until `want` plaintext bytes are buffered or the timeout. */
static bool tls_wait(tls_client_t *t, size_t want, int timeout_ms)
{
    char raw[16384];
    while (t->in.len < want) {
        struct pollfd p = { t->fd, POLLIN, 0 };
        if (poll(&p, 1, timeout_ms) <= 0)
            return false;
        ssize_t n = read(t->fd, raw, sizeof(raw));
        if (n <= 0)
            return false;
        if (tls_conn_recv(t->tls, raw, (size_t)n, tls_collect, t) < 0)
            return false;
        tls_pump_out(t);
    }
    return true;
}

static int tls_who(tls_client_t *t)
{
    t->in.len = 0;
    REQUIRE(tls_conn_send(t->tls, "WHO\n", 4) == 0);
    tls_pump_out(t);
    if (!tls_wait(t, 8, 3000))
        return -1;
    return t->in.data[6] - '0';
}

static void test_tls_and_moving_tls_state(void)
{
    tls_client_t t = { .fd = dial(tls_port), .tls = tls_conn_create(client_tls, false) };
    buf_init(&t.in);
    REQUIRE(t.tls);
    CHECK_EQ(tls_conn_connect(t.tls), 0);
    tls_pump_out(&t);
    int from = tls_who(&t);
    REQUIRE(from == 0 || from == 1);
    CHECK(tls_conn_established(t.tls));
    /* Move mid-stream: the TLS session state travels; the next request,
     * encrypted with the same keys, is answered by the other shard. */
    char cmd[64];
    int n = snprintf(cmd, sizeof(cmd), "MOVE %d\nWHO\n", 1 - from);
    t.in.len = 0;
    REQUIRE(tls_conn_send(t.tls, cmd, (size_t)n) == 0);
    tls_pump_out(&t);
    CHECK(tls_wait(&t, 8, 3000));
    CHECK(t.in.len >= 8 && t.in.data[6] - '0' == 1 - from);
    CHECK_EQ(tls_who(&t), 1 - from);
    /* A client that speaks plaintext to the TLS port is dropped. */
    int raw = dial(tls_port);
    say(raw, "WHO\n");
    char buf[64];
    ssize_t got = hear(raw, buf, sizeof(buf), 3000);
    CHECK(got < 8 || memcmp(buf, "shard=", 6) != 0);
    close(raw);
    tls_conn_destroy(t.tls);
    buf_fini(&t.in);
    close(t.fd);
}

static void test_quit_and_stop(void)
{
    int fd = client();
    say(fd, "QUIT\n");
    char buf[8] = { 0 };
    CHECK_EQ(hear(fd, buf, 4, 3000), 4);
    CHECK(memcmp(buf, "bye\n", 4) == 0);
    CHECK_EQ(hear(fd, buf, 1, 3000), -1);
    close(fd);
    /* Open connections at stop are closed, and stop is clean. */
    int a = client(), b = client();
    CHECK(who(a) >= 0);
    CHECK(node_ready(node));
    CHECK(node_stop(node));
    CHECK(!node_ready(node));
    CHECK_EQ(hear(a, buf, 1, 3000), -1);
    CHECK_EQ(hear(b, buf, 1, 3000), -1);
    close(a);
    close(b);
}

/* Datagrams: "shard=N " + the payload back to the sender. */
static void echo_datagram(shard_t *sh, unsigned listener, const struct sockaddr *from,
                          socklen_t from_len, const char *data, size_t len)
{
    char out[2048];
    int n = snprintf(out, sizeof(out), "shard=%u ", shard_id(sh));
    if (len > sizeof(out) - (size_t)n)
        len = sizeof(out) - (size_t)n;
    memcpy(out + n, data, len);
    CHECK_EQ(shard_send_datagram(sh, listener, from, from_len, out, (size_t)n + len), 0);
}

static const dgram_proto_t echo_proto = { .name = "echo", .on_datagram = echo_datagram };
static unsigned udp_port;

/* Datagram listeners: one socket per shard on the TCP listener's port, each
 * peer's datagrams answered from the shard the kernel chose, and datagrams
 * larger than a receive buffer dropped and counted, never truncated. */
static void test_datagrams(void)
{
    CHECK_EQ(udp_port, port);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)udp_port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bool seen[2] = { false, false };
    for (int i = 0; i < 32 && !(seen[0] && seen[1]); i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        REQUIRE(fd >= 0);
        struct timeval tv = { .tv_sec = 3 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char msg[32], buf[256];
        int n = snprintf(msg, sizeof(msg), "ping %d", i);
        for (int k = 0; k < 3; k++) {
            REQUIRE(sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&sa, sizeof(sa)) == n);
            ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
            REQUIRE(got > 0);
            buf[got] = 0;
            unsigned shard;
            char rest[64];
            REQUIRE(sscanf(buf, "shard=%u %63[^\n]", &shard, rest) == 2);
            CHECK(shard < 2);
            CHECK_STR(rest, msg);
            seen[shard] = true;
        }
        /* Bigger than a 4 KiB receive buffer: dropped, no answer. */
        static char big[9000];
        memset(big, 'b', sizeof(big));
        REQUIRE(sendto(fd, big, sizeof(big), 0, (struct sockaddr *)&sa, sizeof(sa)) ==
                (ssize_t)sizeof(big));
        struct timeval shortwait = { .tv_usec = 200000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &shortwait, sizeof(shortwait));
        CHECK(recv(fd, buf, sizeof(buf), 0) < 0);
        close(fd);
    }
    CHECK(seen[0] && seen[1]);
}

int main(void)
{
    char dir[] = "/tmp/presenced-test-shard-XXXXXX";
    char err[512];
    cfg_t *cfg = malloc(sizeof(*cfg));

    log_set_level(LOG_LEVEL_WARN);
    REQUIRE(mkdtemp(dir));
    cfg_defaults(cfg);
    cfg->shards = 2;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", dir);
    cfg->idle_timeout_s = 1;
    cfg->output_queue_max_bytes = 65536;
    cfg->drain_timeout_ms = 2000;
    cfg->max_connections_per_shard = 1024;
    cfg_addr_t addr;
    REQUIRE(cfg_addr_parse("127.0.0.1:0", &addr) == 0);
    if (node_create(cfg, &node, err, sizeof(err)) < 0) {
        fprintf(stderr, "node_create: %s\n", err);
        return 1;
    }
    REQUIRE(node_add_listener(node, &addr, &probe_proto, NULL, err, sizeof(err)) == 0);
    char cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
    snprintf(key, sizeof(key), "%s/tls.key", dir);
    REQUIRE(tls_generate_self_signed(cert, key, "localhost", err, sizeof(err)) == 0);
    REQUIRE(tls_ctx_create_server(cert, key, &server_tls, err, sizeof(err)) == 0);
    REQUIRE(tls_ctx_create_client(&client_tls) == 0);
    REQUIRE(node_add_listener(node, &addr, &probe_proto, server_tls, err, sizeof(err)) == 0);
    REQUIRE(node_add_dgram_listener(node, &addr, &echo_proto, 0, err, sizeof(err)) == 0);
    if (node_start(node, err, sizeof(err)) < 0) {
        fprintf(stderr, "node_start: %s\n", err);
        return 1;
    }
    port = node_listener_port(node, 0);
    tls_port = node_listener_port(node, 1);
    udp_port = node_listener_port(node, 2);
    REQUIRE(port > 0 && tls_port > 0);

    T_RUN(test_spread_over_shards);
    T_RUN(test_handoff);
    T_RUN(test_output_bound);
    T_RUN(test_idle_timeout);
    T_RUN(test_tls_and_moving_tls_state);
    T_RUN(test_datagrams);
    T_RUN(test_quit_and_stop);

    node_destroy(node);
    tls_ctx_destroy(server_tls);
    tls_ctx_destroy(client_tls);
    free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    T_DONE();
}
