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
