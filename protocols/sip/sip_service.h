/*
 * sip_service.h - SIP on the engine (RFC 3261): UDP and TCP on one port, TLS
 * on another, server transactions that absorb retransmissions, and the
 * requests a presence server answers: OPTIONS, REGISTER (a registrar).
 *
 * A request is parsed on the shard that received it; what concerns a user
 * (the address of record of a REGISTER) is handed to the user's home shard as
 * a mailbox message carrying the request's bytes, and the response comes back
 * to the receiving shard, which sends it on the connection or socket the
 * request came in on. A trunk carrying many users' requests therefore stays
 * on its shard (DESIGN.md §2).
 *
 * Threads: sip_service_configure on the main thread before the node starts;
 * everything else on shards.
 */
#ifndef PRESENCED_SIP_SERVICE_H
#define PRESENCED_SIP_SERVICE_H

#include "engine/shard.h"

#define SIP_TRUSTED_MAX 16

/* Parses "192.0.2.1, 2001:db8::1" into cfg->trusted; 0 or -EINVAL. */
struct sip_service_config;
int sip_trusted_parse(const char *list, struct sip_service_config *cfg);

typedef struct sip_service_config {
    const char *domain;         /* the domain served, canonical */
    unsigned min_expires_s;     /* shorter registrations get 423 (RFC 3261 §10.3) */
    unsigned max_expires_s;     /* longer ones are cut to this */
    unsigned default_expires_s; /* when the request names none */
    /* Our requests (NOTIFY, MESSAGE) a shard may have waiting for an answer before it
     * refuses new PUBLISH, SUBSCRIBE and MESSAGE with 503; 0: no bound. */
    unsigned max_unanswered;
    const char *via_host;       /* how peers reach this node: our Via and Contact host */
    unsigned port, tls_port;    /* and ports */
    bool auth;                  /* digest authentication of REGISTER, SUBSCRIBE, PUBLISH */
    int udp_listener;           /* the node's SIP datagram listener, -1: none */
    /* The presence gateway: call control to subscribe to for phone lines. */
    struct sockaddr_storage gw_call_control;
    socklen_t gw_call_control_len;  /* 0: no gateway */
    bool gw_presence;               /* event presence instead of dialog */
    unsigned gw_expires_s, gw_retry_s;
    uint8_t digest_algs;        /* SIP_DIGEST_ALG_BIT of the algorithms offered */
    /* Peers that act for any user without a password (a call-control trunk). */
    struct sockaddr_storage trusted[SIP_TRUSTED_MAX];
    unsigned n_trusted;
    metrics_t *metrics;         /* the node's, for the SIP series */
} sip_service_config_t;

int sip_service_configure(const sip_service_config_t *cfg);

extern const conn_proto_t sip_tcp_proto;      /* TCP and TLS connections */
extern const dgram_proto_t sip_udp_proto;     /* UDP datagrams */

#endif
