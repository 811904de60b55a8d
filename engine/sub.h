/*
 * sub.h - presence subscription states, one record per (user, contact),
 * whichever protocol created it (DESIGN.md §3).
 *
 * The states and transitions are RFC 6121's (§3 and Appendix A): a
 * subscription "to" the contact (the user sees the contact's presence), "from"
 * the contact (the contact sees the user's), and a pending request in each
 * direction. XMPP subscription stanzas, SIP watcher authorisation (RFC 3857
 * winfo decisions) and the Presence Web Service all drive the same table, so
 * a SIP watcher approved from an XMPP client is the same record.
 *
 * A transition is named from the point of view of the user whose record it
 * is: OUT_* are stanzas the user sends (or the equivalent action), IN_* are
 * stanzas that arrive for the user from the contact.
 *
 * Threads: pure functions, any thread.
 */
#ifndef PRESENCED_SUB_H
#define PRESENCED_SUB_H

#include "engine/common.h"

/* State bits; only the nine RFC 6121 combinations are valid (sub_valid). */
typedef enum {
    SUB_TO = 1u << 0,            /* user receives contact's presence */
    SUB_FROM = 1u << 1,          /* contact receives user's presence */
    SUB_PENDING_OUT = 1u << 2,   /* user asked contact, no answer yet ("ask=subscribe") */
    SUB_PENDING_IN = 1u << 3,    /* contact asked user, no answer yet */
} sub_bits_t;

typedef uint8_t sub_state_t;    /* 0 = "None" */

typedef enum {
    SUB_OUT_SUBSCRIBE,
    SUB_OUT_UNSUBSCRIBE,
    SUB_OUT_SUBSCRIBED,
    SUB_OUT_UNSUBSCRIBED,
    SUB_IN_SUBSCRIBE,
    SUB_IN_UNSUBSCRIBE,
    SUB_IN_SUBSCRIBED,
    SUB_IN_UNSUBSCRIBED,
    SUB_EVENTS
} sub_event_t;

/* What the server must do besides storing the new state. */
typedef enum {
    /* OUT_*: route the stanza to the contact; IN_*: deliver it to the user. */
    SUB_ACT_FORWARD = 1u << 0,
    /* IN_SUBSCRIBE while the contact already has "from": answer "subscribed"
     * on the user's behalf instead of bothering the user (RFC 6121 §3.1.3). */
    SUB_ACT_AUTO_SUBSCRIBED = 1u << 1,
    /* "from" was granted: send the user's current presence to the contact. */
    SUB_ACT_SEND_PRESENCE = 1u << 2,
    /* "from" was lost: send unavailable from the user's resources to the contact. */
    SUB_ACT_SEND_UNAVAILABLE = 1u << 3,
    /* The roster item changed: push it to the user's interested resources. */
    SUB_ACT_PUSH = 1u << 4,
} sub_action_t;

typedef struct {
    sub_state_t state;      /* the new state (equal to the old one when unchanged) */
    uint8_t actions;        /* sub_action_t bits */
} sub_result_t;

/* The transition table of RFC 6121 Appendix A. state must be valid. */
sub_result_t sub_apply(sub_state_t state, sub_event_t ev);
bool sub_valid(sub_state_t state);

/* RFC 6121 §2.1.2.5 roster item attributes for a state. */
const char *sub_roster_subscription(sub_state_t state);   /* "none", "to", "from", "both" */
bool sub_roster_ask(sub_state_t state);                  /* ask="subscribe" */
/* "None + Pending In"-style name for logs and admin output. */
const char *sub_state_name(sub_state_t state);
const char *sub_event_name(sub_event_t ev);

#endif
