/*
 * tls.h - TLS for connections, on BoringSSL with memory BIOs.
 *
 * The engine owns the socket and its bytes; TLS only transforms them. A
 * tls_conn_t sits between the receive path and the protocol (ciphertext in,
 * plaintext out) and between conn_write and the output queue (plaintext in,
 * records out), so protocols never see ciphertext and TLS never touches a
 * socket. That is what lets a connection, TLS state included, move between
 * shards: the SSL object is only ever used by the shard that owns it.
 *
 * A tls_ctx_t holds the node's certificate and key (one SSL_CTX, thread-safe
 * after creation, shared by all shards). Without a configured pair the node
 * generates a self-signed one on first start (ECDSA P-256, 10 years, SAN
 * DNS:<domain>) and keeps it in the data dir.
 *
 * Threads: tls_ctx_* on the main thread at start and stop; a tls_conn_t on the
 * shard that owns its connection.
 */
#ifndef PRESENCED_TLS_H
#define PRESENCED_TLS_H

#include "engine/buf.h"
#include "engine/common.h"

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

/* Writes a new self-signed certificate and key (PEM) for host. 0 or -errno/-EIO. */
int tls_generate_self_signed(const char *cert_path, const char *key_path, const char *host,
                             char *err, size_t err_len);
/* Server context from PEM files; the key must match the certificate. */
int tls_ctx_create_server(const char *cert_path, const char *key_path, tls_ctx_t **out,
                          char *err, size_t err_len);
/* Client context that accepts any certificate (tests and the load generator). */
int tls_ctx_create_client(tls_ctx_t **out);
void tls_ctx_destroy(tls_ctx_t *ctx);

tls_conn_t *tls_conn_create(tls_ctx_t *ctx, bool server);     /* NULL on ENOMEM */
void tls_conn_destroy(tls_conn_t *t);

/* Plaintext handed up to the protocol; return 0 or -errno to stop. */
typedef int (*tls_plain_fn)(void *ctx, const char *data, size_t len);

/* Feeds ciphertext; delivers every plaintext byte it yields. 0, -EPROTO on a
 * TLS failure (the peer gets its alert through tls_conn_take_out), or the
 * callback's error. */
int tls_conn_recv(tls_conn_t *t, const char *data, size_t len, tls_plain_fn fn, void *ctx);
/* Encrypts plaintext (queued until the handshake completes). 0 or -EPROTO. */
int tls_conn_send(tls_conn_t *t, const void *data, size_t len);
/* Moves the ciphertext ready to send into out. Returns the bytes moved. */
size_t tls_conn_take_out(tls_conn_t *t, buf_t *out);
/* Starts the handshake from the client side (no-op on servers). */
int tls_conn_connect(tls_conn_t *t);
/* Queues a close_notify alert. */
void tls_conn_shutdown(tls_conn_t *t);

bool tls_conn_established(const tls_conn_t *t);
const char *tls_conn_version(const tls_conn_t *t);     /* "TLSv1.3", or "" */
/* TLS exporter for channel binding (RFC 9266 tls-exporter); 0 or -ENOTCONN. */
int tls_conn_exporter(const tls_conn_t *t, uint8_t *out, size_t out_len);
/* Bytes held in the connection's buffers between records (ciphertext both
 * ways, plaintext waiting for the handshake): 0 once everything moved on,
 * whatever bursts it carried before. */
size_t tls_conn_buffered_bytes(const tls_conn_t *t);

#endif
