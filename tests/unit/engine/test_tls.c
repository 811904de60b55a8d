/*
 * TLS over memory: a generated self-signed pair loads into a server context;
 * a client and a server tls_conn_t shuttle bytes through their BIOs (no
 * socket), complete a handshake, exchange data both ways (including
 * plaintext written before the handshake finished), and garbage fails
 * cleanly with -EPROTO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/tls.h"
#include "tests/unit/t.h"

static char dir[] = "/tmp/presenced-test-tls-XXXXXX";
static char cert[128], key[128];

typedef struct {
    buf_t got;
} sink_t;

static int collect(void *ctx, const char *data, size_t len)
{
    buf_append(&((sink_t *)ctx)->got, data, len);
    return 0;
}

/* Moves ciphertext both ways until neither side has anything to say. */
static void shuttle(tls_conn_t *c, tls_conn_t *s, sink_t *cs, sink_t *ss)
{
    for (int round = 0; round < 20; round++) {
        buf_t b;
        buf_init(&b);
        size_t a = tls_conn_take_out(c, &b);
        if (a)
            CHECK_EQ(tls_conn_recv(s, b.data, b.len, collect, ss), 0);
        b.len = 0;
        size_t z = tls_conn_take_out(s, &b);
        if (z)
            CHECK_EQ(tls_conn_recv(c, b.data, b.len, collect, cs), 0);
        buf_fini(&b);
        if (!a && !z)
            return;
    }
}

static void test_generate_and_handshake(void)
{
    char err[256] = "";
    tls_ctx_t *sctx, *cctx;
    REQUIRE(tls_generate_self_signed(cert, key, "localhost", err, sizeof(err)) == 0);
    struct stat st;
    REQUIRE(stat(key, &st) == 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    REQUIRE(tls_ctx_create_server(cert, key, &sctx, err, sizeof(err)) == 0);
    REQUIRE(tls_ctx_create_client(&cctx) == 0);

    tls_conn_t *s = tls_conn_create(sctx, true), *c = tls_conn_create(cctx, false);
    sink_t ss = { 0 }, cs = { 0 };
    buf_init(&ss.got);
    buf_init(&cs.got);
    /* The server speaks first in XMPP's direct TLS after the handshake;
     * here both queue data before it completes. */
    CHECK_EQ(tls_conn_send(c, "hello server", 12), 0);
    CHECK_EQ(tls_conn_send(s, "hello client", 12), 0);
    CHECK(!tls_conn_established(s));
    CHECK_EQ(tls_conn_connect(c), 0);
    shuttle(c, s, &cs, &ss);
    CHECK(tls_conn_established(s));
    CHECK(tls_conn_established(c));
    CHECK_STR(tls_conn_version(s), "TLSv1.3");
    /* Pending plaintext flushes once a later call sees the handshake done. */
    CHECK_EQ(tls_conn_send(s, "", 0), 0);
    CHECK_EQ(tls_conn_send(c, "", 0), 0);
    shuttle(c, s, &cs, &ss);
    CHECK_EQ(ss.got.len, 12);
    CHECK(ss.got.len == 12 && memcmp(ss.got.data, "hello server", 12) == 0);
    CHECK(cs.got.len == 12 && memcmp(cs.got.data, "hello client", 12) == 0);
    /* Bulk both ways, larger than a record. */
    char *big = malloc(100000);
    for (int i = 0; i < 100000; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ(tls_conn_send(c, big, 100000), 0);
    shuttle(c, s, &cs, &ss);
    CHECK_EQ(ss.got.len, 12 + 100000);
    CHECK(memcmp(ss.got.data + 12, big, 100000) == 0);
    /* Idle again, neither end keeps the burst's buffers; the next burst,
     * the other way, allocates afresh and arrives whole. */
    CHECK_EQ(tls_conn_buffered_bytes(c), 0);
    CHECK_EQ(tls_conn_buffered_bytes(s), 0);
    CHECK_EQ(tls_conn_send(s, big, 100000), 0);
    shuttle(c, s, &cs, &ss);
    CHECK_EQ(cs.got.len, 12 + 100000);
    CHECK(cs.got.len == 12 + 100000 && memcmp(cs.got.data + 12, big, 100000) == 0);
    CHECK_EQ(tls_conn_buffered_bytes(c), 0);
    CHECK_EQ(tls_conn_buffered_bytes(s), 0);
    /* Channel binding material agrees on both ends. */
    uint8_t ek1[32], ek2[32];
    CHECK_EQ(tls_conn_exporter(s, ek1, sizeof(ek1)), 0);
    CHECK_EQ(tls_conn_exporter(c, ek2, sizeof(ek2)), 0);
    CHECK(memcmp(ek1, ek2, sizeof(ek1)) == 0);
    free(big);
    buf_fini(&ss.got);
    buf_fini(&cs.got);
    tls_conn_destroy(s);
    tls_conn_destroy(c);

    /* Garbage instead of a ClientHello. */
    s = tls_conn_create(sctx, true);
    sink_t g = { 0 };
    buf_init(&g.got);
    CHECK_EQ(tls_conn_recv(s, "GET / HTTP/1.1\r\n\r\n", 18, collect, &g), -EPROTO);
    CHECK_EQ(g.got.len, 0);
    CHECK(!tls_conn_established(s));
    CHECK_EQ(tls_conn_send(s, "x", 1), -EPROTO);
    tls_conn_destroy(s);
    buf_fini(&g.got);
    tls_ctx_destroy(sctx);
    tls_ctx_destroy(cctx);
}

static void test_bad_files(void)
{
    char err[256] = "";
    tls_ctx_t *ctx;
    CHECK_EQ(tls_ctx_create_server("/nonexistent.pem", key, &ctx, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "/nonexistent.pem") != NULL);
    /* A key that does not match the certificate. */
    char cert2[160], key2[160];
    snprintf(cert2, sizeof(cert2), "%s/other.crt", dir);
    snprintf(key2, sizeof(key2), "%s/other.key", dir);
    REQUIRE(tls_generate_self_signed(cert2, key2, "example.org", err, sizeof(err)) == 0);
    CHECK_EQ(tls_ctx_create_server(cert, key2, &ctx, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, key2) != NULL || strstr(err, "does not match") != NULL);
}

int main(void)
{
    REQUIRE(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
    snprintf(key, sizeof(key), "%s/tls.key", dir);
    T_RUN(test_generate_and_handshake);
    T_RUN(test_bad_files);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    T_DONE();
}
