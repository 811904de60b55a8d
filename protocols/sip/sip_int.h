/*
 * sip_int.h - what the SIP service's parts share: the per-shard state, where
 * a request came from (so that responses and NOTIFYs leave through the same
 * flow), and the presence part (sip_presence.c: PUBLISH, SUBSCRIBE/NOTIFY).
 */
#ifndef PRESENCED_SIP_INT_H
#define PRESENCED_SIP_INT_H

#include "engine/presence.h"
#include "engine/shard.h"
#include "protocols/sip/sip_msg.h"
#include "protocols/sip/sip_queue.h"
#include "protocols/sip/sip_service.h"

/* Bindings per address of record: a phone, a softphone, a few more. */
#define SIP_BINDINGS_MAX 16

/* Where a request came from: a datagram listener's socket and the peer's
 * address, or a connection; and the shard that owns either. */
typedef struct {
    uint16_t shard;
    uint16_t listener;          /* datagram listener */
    bool stream;
    bool tls;
    uint64_t conn;              /* stream: the connection's id on its shard */
    struct sockaddr_storage peer;
    socklen_t peer_len;
} sip_origin_t;

typedef struct sip_txn {
    struct sip_txn *next;
    timer_ent_t timer;
    struct sip_shard *ss;
    buf_t response;             /* empty while the request is being handled */
    char key[];
} sip_txn_t;

typedef struct {
    char *contact;              /* the URI, as registered */
    char *call_id;
    uint32_t cseq;
    uint64_t expires_ms;        /* shard clock */
    sip_origin_t origin;        /* the flow it registered over: requests to it leave there */
} sip_binding_t;

typedef struct sip_aor {
    struct sip_aor *next;
    sip_binding_t b[SIP_BINDINGS_MAX];
    unsigned n;
    char key[];                 /* "user@domain" */
} sip_aor_t;

struct sip_pres;
struct sip_ctxn;

/* A chained hash table of nodes whose first member is their next pointer and
 * whose key is a NUL-terminated array key_off bytes in. It doubles when it
 * holds more nodes than buckets: a node with 250,000 subscriptions holds as
 * many server transactions during their set-up, and fixed tables made every
 * request walk chains dozens long. */
typedef struct {
    void **slots;
    unsigned n;                 /* a power of two */
    unsigned count;
    size_t key_off;
} sip_table_t;

void sip_table_init(sip_table_t *t, unsigned n, size_t key_off);
void sip_table_fini(sip_table_t *t);
void *sip_table_find(const sip_table_t *t, const char *key);
void sip_table_add(sip_table_t *t, void *node);
void sip_table_del(sip_table_t *t, void *node);

typedef struct sip_shard {
    shard_t *sh;
    sip_table_t txns;           /* sip_txn_t by key */
    sip_table_t aors;           /* sip_aor_t by key */
    sip_table_t pres;           /* presentities with publications or watchers here */
    sip_table_t ctxns;          /* our requests (NOTIFY...) waiting for a response, by branch */
    struct sip_line *lines;     /* phone lines the gateway watches for users homed here */
    uint64_t next_id;
    uint64_t branch_seq;        /* our requests' branches: a counter behind a random prefix */
    char branch_prefix[9];
    sip_queue_t queue;          /* how long datagrams wait in the UDP socket's queue */
    bool full;                  /* max_unanswered of ctxns: counted in sip_shards_full */
    buf_t scratch;              /* a request being composed (reused: no allocation each) */
    sip_msg_t msg;              /* the message being handled (6 KiB: not on the stack) */
} sip_shard_t;

extern sip_service_config_t sip_cfg;

typedef struct {
    metric_id_t requests, responses, retransmissions, bad, bindings;
    metric_id_t subscriptions, notifies, publications, notify_retransmissions;
    metric_id_t gateway_lines;      /* + GW_STARTING, GW_ACTIVE, GW_WAITING */
    metric_id_t overload_refusals;
} sip_metric_ids_t;
extern sip_metric_ids_t sip_mid;

sip_shard_t *sip_of(shard_t *sh);
/* After ctxns grew or shrank: tells the other shards whether this one is at max_unanswered. */
void sip_unanswered_changed(sip_shard_t *ss);
/* Sends bytes on the origin's flow (owning shard only). */
void sip_send(shard_t *sh, const sip_origin_t *o, const void *data, size_t len);
/* A response to m with a fresh To tag (when m's To has none) into out. */
void sip_write(const sip_msg_t *m, unsigned status, const char *reason, const char *headers,
               buf_t *out);
void sip_write_tagged(const sip_msg_t *m, unsigned status, const char *reason, str_t to_tag,
                      const char *headers, str_t body, buf_t *out);
/* 16 hex digits from the CSPRNG: tags and entity tags (RFC 3261 §19.3 wants tags
 * cryptographically random). */
void sip_tag(char out[17]);
/* Appends "z9hG4bK-<shard>-<prefix><seq in hex>": with a prefix drawn once per shard and
 * a counter, unique for every request the shard sends (§8.1.1.7 asks uniqueness, not
 * secrecy, of a branch), made without the CSPRNG. */
#define SIP_BRANCH_MAX 48
void sip_branch_append(buf_t *b, unsigned shard, const char prefix[8], uint64_t seq);
/* The shard a branch of ours names, so that a response reaches the shard that sent the
 * request; false for a branch we did not write. */
bool sip_branch_shard(str_t branch, unsigned *shard);
/* "user@domain" for a sip: or sips: URI of this domain (or an address of
 * this node); -EINVAL otherwise. */
int sip_aor_key(str_t uri_text, char *out, size_t cap);
bool sip_account_exists(shard_t *sh, const char *key);
/* The user's current contact bindings (expired ones dropped), or NULL. */
sip_aor_t *sip_bindings(shard_t *sh, const char *key);

/* sip_presence.c, on the presentity's home shard: out gets the response. */
void sip_publish(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out);
/* MESSAGE (RFC 3428) for user from a SIP client: the IM gateway delivers it. */
void sip_message(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out);
/* Returns the subscription the response created or refreshed (0: none). */
uint64_t sip_subscribe(shard_t *sh, const sip_msg_t *m, const char *user, const sip_origin_t *o,
                       buf_t *out);
/* After the response to a SUBSCRIBE left: the NOTIFY it owes (RFC 6665 §4.2.1.2). */
void sip_subscribe_done(shard_t *sh, const char *user, uint64_t sub_id);
typedef enum { OUT_NOTIFY, OUT_MESSAGE, OUT_SUBSCRIBE } sip_out_kind_t;

/* Sends a request composed on this (home) shard without its Via over the flow
 * via names: that flow's shard adds the Via, keeps the client transaction and
 * retransmits over UDP. ref: the NOTIFY's subscription, or the gateway line. */
void sip_request_send(shard_t *sh, const sip_origin_t *via, sip_out_kind_t kind,
                      const char *user, uint64_t ref, const buf_t *request);
/* sip_gateway.c: the final response (NULL: none came) to a gateway SUBSCRIBE,
 * on the shard that received it; passes what matters to the line's home. */
void sip_gateway_answered(shard_t *sh, unsigned home, const char *user, uint64_t ref,
                          const sip_msg_t *rsp);
/* sip_gateway.c, home shard: a NOTIFY from the call control. */
void sip_gateway_notify(shard_t *sh, const sip_msg_t *m, const char *user, buf_t *out);
/* sip_gateway.c: the user's phone line as a source, if it says anything. */
void sip_gateway_sources(shard_t *sh, const char *user, pres_each_fn each, void *ctx);
void sip_gateway_register(void);
void sip_gateway_fini(sip_shard_t *ss);

/* sip_presence.c, on the shard that owns the flow: a response to one of our requests,
 * as sip_msg_peek_response() read it from data; true when it was ours. */
bool sip_client_response(shard_t *sh, const sip_response_peek_t *pk, const char *data,
                         size_t len, sip_msg_transport_t tp);
void sip_presence_register(void);
/* The presence tables of a new SIP shard. */
void sip_presence_init(sip_shard_t *ss);
void sip_presence_fini(sip_shard_t *ss);

#endif
