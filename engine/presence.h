/*
 * presence.h - the protocol-neutral presence of a user (DESIGN.md §3).
 *
 * A user's presence has sources: each XMPP resource, each SIP publication,
 * later the phone line and the web service. The protocol that holds a kind of
 * source lists them on request (a provider) and says when one changed; the
 * protocols that show presence to watchers listen (observers) and compose
 * what each watcher sees. The subscription record (engine/sub.h) is one per
 * (user, contact) whichever protocol created it: the protocol that keeps
 * contact lists reports changes to it, and takes subscription requests that
 * arrive over other protocols.
 *
 * Everything about a user runs on the user's home shard, so none of this is
 * synchronised. Providers and observers are registered on the main thread
 * before the node starts (the tables are read-only afterwards).
 */
#ifndef PRESENCED_PRESENCE_H
#define PRESENCED_PRESENCE_H

#include "engine/shard.h"
#include "engine/sub.h"

/* The same numbering as pidf_state_t (protocols/pidf/pidf.h), which maps
 * each state to PIDF/RPID and to XMPP <show/>. */
typedef enum {
    PRES_UNAVAILABLE = 0,
    PRES_AVAILABLE,
    PRES_AWAY,
    PRES_XA,
    PRES_DND,
    PRES_BUSY,
    PRES_ON_THE_PHONE,
    PRES_MEETING,
    PRES_VACATION,
    PRES_STATES
} pres_state_t;

typedef enum {
    PRES_PROVIDER_XMPP,
    PRES_PROVIDER_SIP,
    PRES_PROVIDERS
} pres_provider_t;

typedef struct {
    pres_provider_t provider;
    str_t id;                   /* stable per source: a resource, a publication */
    pres_state_t state;
    int32_t priority;
    int64_t timestamp_ms;       /* last change, wall clock; INT64_MIN when unknown */
    str_t note;                 /* ptr NULL when none */
    bool phone_line;            /* the line state from the presence gateway: it counts
                                   only while the line is in use (pidf_compose) */
} pres_source_t;

typedef void (*pres_each_fn)(void *ctx, const pres_source_t *src);
/* Lists the available sources of user (bare JID / address of record
 * "local@domain") that this provider holds. */
typedef void (*pres_list_fn)(shard_t *sh, str_t user, pres_each_fn each, void *ctx);
/* A source of user changed (from: the provider that holds it). */
typedef void (*pres_changed_fn)(shard_t *sh, str_t user, pres_provider_t from);
/* The subscription record of (user, contact) is now state. */
typedef void (*pres_sub_changed_fn)(shard_t *sh, str_t user, str_t contact, sub_state_t state);
/* contact asks to see user's presence (an inbound subscribe, RFC 6121 §3.1.3). */
typedef void (*pres_sub_request_fn)(shard_t *sh, str_t user, str_t contact);
/* The subscription record of (user, contact), 0 when there is none. */
typedef sub_state_t (*pres_sub_get_fn)(shard_t *sh, str_t user, str_t contact);

/*
 * Instant messages between protocols (the seeds' IM gateway). A message for
 * a user goes to the protocol where the user can take it now; the results
 * say what happened so the sender's protocol can answer in its own terms.
 */
typedef enum {
    IM_DELIVERED = 0,           /* handed to a client of the user */
    IM_SENT,                    /* sent on to another protocol's client; a failure may follow */
    IM_STORED,                  /* kept for the user's next login */
    IM_NO_USER,                 /* no such account */
    IM_BLOCKED,                 /* the user blocks the sender */
    IM_UNREACHABLE,             /* nobody to take it, nowhere to keep it */
} im_result_t;

typedef struct {
    str_t to;                   /* the user, "local@domain" */
    str_t from;                 /* the sender's address as a JID: "user@domain[/res]" */
    str_t body;                 /* plain text */
    str_t id;                   /* the sender's message id, for errors (may be empty) */
} im_msg_t;

/* The protocol that keeps accounts and offline messages (XMPP) delivers to its
 * clients, else offers the message to the other protocols, else stores it. */
typedef im_result_t (*im_deliver_fn)(shard_t *sh, const im_msg_t *msg);
/* Another protocol's clients of the user, if any: IM_SENT, or IM_UNREACHABLE
 * when it has none. */
typedef im_result_t (*im_offer_fn)(shard_t *sh, const im_msg_t *msg);
/* A message sent on (IM_SENT) could not be delivered; status is a SIP status. */
typedef void (*im_failed_fn)(shard_t *sh, const im_msg_t *msg, unsigned status);

/*
 * Phone lines (the presence gateway): the call-control address of a user's
 * line, set or removed by the operator; the protocol that watches lines
 * starts or stops watching. uri empty: removed.
 */
typedef void (*pres_line_fn)(shard_t *sh, str_t user, str_t uri);
void pres_watch_lines(pres_line_fn fn);                 /* main thread, before start */
void pres_line_changed(shard_t *sh, str_t user, str_t uri);     /* home shard of user */

/* Main thread, before the node starts. */
void im_register_delivery(im_deliver_fn deliver, im_failed_fn failed);
void im_register_offer(pres_provider_t p, im_offer_fn offer);

/* Home shard of msg->to. */
im_result_t im_deliver(shard_t *sh, const im_msg_t *msg);
/* The other protocols' clients (all but `except`): IM_SENT or IM_UNREACHABLE. */
im_result_t im_offer(shard_t *sh, const im_msg_t *msg, pres_provider_t except);
void im_failed(shard_t *sh, const im_msg_t *msg, unsigned status);

/* Main thread, before the node starts. */
void pres_provide(pres_provider_t p, pres_list_fn list);
void pres_observe(pres_changed_fn fn);
void pres_observe_subs(pres_sub_changed_fn fn);
void pres_keep_subs(pres_sub_get_fn get, pres_sub_request_fn request);

/* Home shard of user. */
void pres_sources(shard_t *sh, str_t user, pres_each_fn each, void *ctx);
void pres_changed(shard_t *sh, str_t user, pres_provider_t from);
void pres_sub_changed(shard_t *sh, str_t user, str_t contact, sub_state_t state);
sub_state_t pres_sub_get(shard_t *sh, str_t user, str_t contact);
void pres_sub_request(shard_t *sh, str_t user, str_t contact);

#endif
