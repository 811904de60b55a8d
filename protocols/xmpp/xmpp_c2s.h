/*
 * xmpp_c2s.h - XMPP client connections (RFC 6120): stream negotiation,
 * STARTTLS or direct TLS (XEP-0368), SASL SCRAM-SHA-256, SCRAM-SHA-1 and
 * PLAIN, resource binding, then the session (xmpp_int.h, xmpp_sm.c).
 *
 * Threads: xmpp_c2s_configure on the main thread before the node starts;
 * the protocol runs on shards.
 */
#ifndef PRESENCED_XMPP_C2S_H
#define PRESENCED_XMPP_C2S_H

#include "engine/shard.h"

typedef struct xmpp_c2s_config {
    const char *domain;         /* the one domain served, canonical */
    tls_ctx_t *tls;             /* NULL: no STARTTLS offered */
    bool require_tls;           /* refuse authentication before TLS */
    bool plain_without_tls;     /* offer PLAIN on unencrypted streams (tests only) */
    unsigned max_stanza_bytes;  /* 0: the parser's default */
    bool registration;          /* XEP-0077 in-band registration */
    unsigned resume_timeout_s;  /* XEP-0198: 0 = no resumption */
    bool test_auth;             /* any password; unknown accounts created (loopback only) */
    uint8_t fake_salt_key[32];  /* SCRAM answers for unknown users (sasl.h) */
    metrics_t *metrics;         /* the node's, to register the XMPP series */
} xmpp_c2s_config_t;

/* Copies cfg; returns 0. */
int xmpp_c2s_configure(const xmpp_c2s_config_t *cfg);

extern const conn_proto_t xmpp_c2s_proto;

#endif
