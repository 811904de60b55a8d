/*
 * xmpp_int.h - what the XMPP client service's parts share: the connection
 * state (xmpp_c2s.c: streams, TLS, SASL, binding) and the session manager
 * (xmpp_sm.c: users, sessions, rosters, presence and routing on their home
 * shard).
 *
 * A client connection is accepted by any shard, authenticates there, and is
 * handed to its user's home shard (route_user of the bare JID) right after
 * SASL success, before the stream restart: from then on everything about the
 * user happens on one shard (DESIGN.md §2).
 */
#ifndef PRESENCED_XMPP_INT_H
#define PRESENCED_XMPP_INT_H

#include "engine/buf.h"
#include "engine/shard.h"
#include "protocols/xmpp/sasl.h"
#include "protocols/xmpp/xmpp_xml.h"

#define NS_CLIENT "jabber:client"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_ROSTER "jabber:iq:roster"
#define NS_PING "urn:xmpp:ping"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_ROSTERVER "urn:xmpp:features:rosterver"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_SM "urn:xmpp:sm:3"
#define NS_CSI "urn:xmpp:csi:0"
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define NS_VCARD "vcard-temp"
#define NS_REGISTER "jabber:iq:register"
#define NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"
#define NS_CAPS "http://jabber.org/protocol/caps"

typedef struct xmpp_sess xmpp_sess_t;

typedef enum {
    C2S_WAIT_HEADER,        /* before the (re)started stream's header */
    C2S_NEGOTIATE,          /* features sent, before authentication */
    C2S_SASL,               /* a SCRAM exchange under way */
    C2S_AUTHED,             /* authenticated, before resource binding */
    C2S_BOUND,              /* a session */
    C2S_CLOSED,
} c2s_state_t;

/* One client connection's XMPP state; moves with the connection. */
typedef struct {
    xmpp_xml_t xml;
    conn_t *conn;
    uint8_t state;
    bool restart;           /* reset the parser once the feed returns */
    bool authed;
    bool tls_pending;       /* <proceed/> sent: TLS starts after this feed */
    bool move_pending;      /* authenticated elsewhere: hand over after this feed */
    bool clean_end;         /* the stream ended with a close or an error: not resumable */
    bool ping_out;          /* an idle probe is unanswered */
    uint8_t auth_failures;
    uint16_t bare_len;      /* of jid */
    sasl_hash_t scram_hash;
    uint8_t mech;           /* sasl_mech_t of the exchange under way */
    sasl_scram_server_t *scram;
    char *jid;              /* "local@domain" after SASL, "/resource" added at bind */
    xmpp_sess_t *sess;      /* after binding */
    char stream_id[24];
} c2s_t;

#define NS_DELAY "urn:xmpp:delay"

/* Metric ids (xmpp_c2s_configure registers them). */
typedef struct {
    metric_id_t logins_ok, logins_failed;       /* + sasl_mech_t */
    metric_id_t stanzas_in, stanzas_out;        /* + 0 message, 1 presence, 2 iq */
    metric_id_t presence_deliveries, offline_stored, offline_delivered, offline_refused;
    metric_id_t stream_errors;                  /* + xmpp_xml_cond_t */
    metric_id_t sessions;
    metric_id_t sessions_resumed, sessions_detached;
    metric_id_t carbons, blocked;
} xmpp_metric_ids_t;

extern xmpp_metric_ids_t xmpp_mid;
unsigned xmpp_stanza_kind(char stanza);         /* 'm' 'p' 'i' -> 0 1 2 */
const char *xmpp_domain(void);
/* The configuration xmpp_c2s_configure was given (domain canonical). */
const struct xmpp_c2s_config *xmpp_config(void);

/* Writes bytes to the client (queued on its connection). */
void c2s_write(c2s_t *st, const void *data, size_t len);
static inline void c2s_write_buf(c2s_t *st, const buf_t *b)
{
    c2s_write(st, b->data, b->len);
}
/* Stream error and close (RFC 6120 §4.9). */
void c2s_stream_error(c2s_t *st, xmpp_xml_cond_t cond, const char *text);

/* A stanza for the client: counted and kept for XEP-0198 once the session
 * has stream management, plain bytes before. */
void c2s_write_stanza(c2s_t *st, const void *data, size_t len);

/* Session manager (home shard). */
int xmpp_sm_bind(c2s_t *st, const char *resource, size_t len);   /* 0 or -errno */
void xmpp_sm_stanza(c2s_t *st, const xmpp_xml_el_t *stanza);
/* A top-level element of the XEP-0198 or XEP-0352 namespaces after binding. */
void xmpp_sm_nonza(c2s_t *st, const xmpp_xml_el_t *el);
/* Counts a stanza received from a stream-managed session. */
void xmpp_sm_count_in(c2s_t *st);
/* <resume/> after authentication (XEP-0198 §5): true when the session was
 * taken over (the connection is then bound). */
bool xmpp_sm_resume(c2s_t *st, const xmpp_xml_el_t *el);
/* Connection gone: a stream-managed session with resumption waits for a new
 * connection, any other is ended (unavailable, forgotten). */
void xmpp_sm_unbind(c2s_t *st);
/* Makes the session manager the keeper of subscription records and an
 * observer of other protocols' presence sources (engine/presence.h). */
void xmpp_sm_register_presence(void);
/* Writes a stanza to a session (after binding). */
void xmpp_sess_write(xmpp_sess_t *s, const void *data, size_t len);

/* A result to an iq (payload NULL: empty), from the iq's 'to'. */
void xmpp_iq_result(c2s_t *st, const xmpp_xml_el_t *iq, const char *payload);
/* jabber:iq:register after binding (XEP-0077 §3.3: password change). */
void xmpp_register_iq(c2s_t *st, const xmpp_xml_el_t *iq, const xmpp_xml_el_t *q);

/* An error reply to a stanza (RFC 6120 §8.3): type and condition. */
void xmpp_stanza_error(c2s_t *st, const xmpp_xml_el_t *stanza, const char *type,
                       const char *cond);

#endif
