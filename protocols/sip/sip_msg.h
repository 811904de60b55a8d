/*
 * sip_msg.h - SIP messages (RFC 3261 §7, grammar in §25): a zero-copy parser, stream
 * framing, structured accessors for the header fields presenced acts on, and a response
 * writer for the server transaction layer.
 *
 * Zero copy. sip_msg_parse() never copies and never writes to the input: every field is a
 * str_t into the caller's bytes, valid as long as those bytes are. The input is const and
 * stays so; folded header values (RFC 3261 §7.3.1: a line that starts with SP or HTAB
 * continues the previous one) are therefore exposed raw, line breaks included. Every helper
 * here reads CR and LF inside a value as linear white space, so they work on raw values
 * directly; sip_unfold() copies a value with each fold collapsed to one SP for callers that
 * need a single line (logs, storage, comparisons).
 *
 * What a successful parse guarantees:
 *   - a request line "Method SP Request-URI SP SIP/2.0" whose URI is sip:, sips: or tel:
 *     without URI headers, or a status line "SIP/2.0 SP 3DIGIT SP Reason-Phrase" with a code
 *     of 100-699 (an empty reason, with or without its SP, is accepted: RFC 4475 §3.1.1.13);
 *   - header names are tokens, matched case-insensitively, compact forms included; values
 *     hold no control bytes except inside a quoted-pair (RFC 4475 §3.1.1.2 escapes NUL);
 *   - Via, From, To, Call-ID, CSeq (and Max-Forwards for a request, see the limits) are
 *     present; From, To, Call-ID, CSeq, Max-Forwards and Content-Length at most once
 *     (RFC 4475 §3.3.8, §3.3.9); every Via, From, To, Contact, Route, Record-Route, CSeq,
 *     Max-Forwards (0-255) and Call-ID value is well formed; a request's CSeq method is its
 *     method (RFC 3261 §8.1.1.5);
 *   - the body is exactly Content-Length bytes. On a stream (TCP, TLS) Content-Length is
 *     mandatory (RFC 3261 §18.3); in a datagram its absence means "the rest of the datagram"
 *     and bytes past Content-Length are discarded (§18.3, RFC 4475 §3.1.1.8).
 * Line ends are CRLF; a bare LF is accepted as one too (a bare CR is not). Header values of
 * other fields (Date, Expires, Event, ...) are not checked until their helper is called, so
 * that one odd field does not cost a whole request (RFC 4475 §3.1.2.12, §3.1.2.4).
 *
 * Errors map to responses (sip_msg_err_status()). A request that is rejected after its
 * header section was read still has its fields filled in, and sip_msg_can_reply() says
 * whether a response can be built for it (Via, From, To, Call-ID and CSeq present), so that
 * the 400/413/416/505 goes back to the sender. A response is never answered: one in error is
 * dropped (§18.3).
 *
 * Threads: every function is reentrant and may be called from any shard. Nothing blocks and
 * nothing allocates, except the writer, which appends to a caller's buf_t.
 */
#ifndef PRESENCED_SIP_MSG_H
#define PRESENCED_SIP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/buf.h"
#include "engine/common.h"

/* ---- Limits -------------------------------------------------------------------------- */

/* Header fields a sip_msg_t can hold (the storage bound for headers_max). A REGISTER or
 * NOTIFY carries 10-20; RFC 4475's longreq, the largest torture test, 43. */
#define SIP_MSG_HEADERS_CAP 128

/* Upper bound on msg_max_bytes, so that lengths fit in 32 bits and a misconfiguration is
 * caught at the call, not by an overflow. Far past any SIP message (RFC 3261 §18.1.1 keeps
 * UDP requests under the path MTU; a TCP NOTIFY with a large PIDF is tens of KiB). */
#define SIP_MSG_MAX_LIMIT_BYTES (16u * 1024 * 1024)

typedef struct {
    uint32_t msg_max_bytes;     /* start line to the end of the body; 64 KiB by default */
    uint32_t line_max_bytes;    /* the start line, or one header field with its folds; 8 KiB */
    uint16_t headers_max;       /* header fields, <= SIP_MSG_HEADERS_CAP; 128 */
    bool max_forwards_optional; /* accept requests without Max-Forwards, as RFC 2543 peers
                                   send them (RFC 4475 §3.4.1); off by default */
} sip_msg_limits_t;

/* 64 KiB: the largest UDP datagram, and room for any NOTIFY body presenced sends. 8 KiB per
 * field: an Authorization with a long nonce is under 1 KiB, RFC 4475 longreq's From 700 B. */
extern const sip_msg_limits_t sip_msg_limits_default;

/* ---- Errors -------------------------------------------------------------------------- */

/* Why a message was refused; negative, so parse and frame return them in place of a length.
 * The comment gives the status a request in error is answered with (sip_msg_err_status). */
typedef enum {
    SIP_MSG_OK = 0,
    SIP_MSG_E_START_LINE = -1,          /* 400 malformed request or status line */
    SIP_MSG_E_HEADER_SYNTAX = -2,       /* 400 bad field name, no colon, bare CR, control byte */
    SIP_MSG_E_BAD_HEADER = -3,          /* 400 a checked field's value is malformed (err_hdr) */
    SIP_MSG_E_MISSING_HEADER = -4,      /* 400 a mandatory field is absent (err_hdr) */
    SIP_MSG_E_DUPLICATE_HEADER = -5,    /* 400 a single-valued field repeated (err_hdr) */
    SIP_MSG_E_CSEQ_MISMATCH = -6,       /* 400 CSeq method is not the request method */
    SIP_MSG_E_BAD_URI = -7,             /* 400 malformed Request-URI */
    SIP_MSG_E_CONTENT_LENGTH = -8,      /* 400 Content-Length not a number */
    SIP_MSG_E_NO_CONTENT_LENGTH = -9,   /* 400 no Content-Length on a stream */
    SIP_MSG_E_TRUNCATED = -10,          /* 400 ends before its header section or body does */
    SIP_MSG_E_VERSION = -11,            /* 505 SIP-Version other than 2.0 */
    SIP_MSG_E_URI_SCHEME = -12,         /* 416 Request-URI scheme other than sip/sips/tel */
    SIP_MSG_E_BODY_TOO_LARGE = -13,     /* 413 Content-Length takes it past msg_max_bytes */
    SIP_MSG_E_TOO_LARGE = -14,          /* 513 header section longer than msg_max_bytes */
    SIP_MSG_E_TOO_MANY_HEADERS = -15,   /* 513 more than headers_max fields */
    SIP_MSG_E_LINE_TOO_LONG = -16,      /* 513 a line or field longer than line_max_bytes */
} sip_msg_err_t;

#define SIP_MSG_E_COUNT 17

/* The status code to answer a request in error with: 400, 413, 416, 505 or 513; 500 for a
 * value that is not an error. */
unsigned sip_msg_err_status(sip_msg_err_t err);

/* A short reason phrase for that response ("Missing Mandatory Header", "Version Not
 * Supported"); static storage, safe to put on a status line. */
const char *sip_msg_err_reason(sip_msg_err_t err);

/* The standard reason phrase for a status code (RFC 3261 §21 and the registered extensions),
 * or its class (§21: "Request Failure" for 4xx) for an unregistered one. Static storage. */
const char *sip_status_reason(unsigned status);

/* ---- Methods and header names --------------------------------------------------------- */

/* RFC 3261 §7.1: method names are case-sensitive; anything else is SIP_METHOD_OTHER. */
typedef enum {
    SIP_METHOD_OTHER = 0,
    SIP_METHOD_INVITE,
    SIP_METHOD_ACK,
    SIP_METHOD_BYE,
    SIP_METHOD_CANCEL,
    SIP_METHOD_OPTIONS,
    SIP_METHOD_REGISTER,
    SIP_METHOD_SUBSCRIBE,       /* RFC 6665 */
    SIP_METHOD_NOTIFY,          /* RFC 6665 */
    SIP_METHOD_PUBLISH,         /* RFC 3903 */
    SIP_METHOD_MESSAGE,         /* RFC 3428 */
    SIP_METHOD_INFO,            /* RFC 6086 */
    SIP_METHOD_PRACK,           /* RFC 3262 */
    SIP_METHOD_UPDATE,          /* RFC 3311 */
    SIP_METHOD_REFER,           /* RFC 3515 */
    SIP_METHOD_COUNT
} sip_method_t;

sip_method_t sip_method_lookup(str_t name);
/* "INVITE"; "" for SIP_METHOD_OTHER. Static storage. */
str_t sip_method_name(sip_method_t m);

/*
 * The header fields with O(1) access to their first instance. Names are case-insensitive;
 * the compact forms of RFC 3261 §7.3.3 and the extensions (i m e l c f s k t v o u r b x)
 * map to the same id. Every other name is SIP_HDR_OTHER.
 */
typedef enum {
    SIP_HDR_OTHER = 0,
    SIP_HDR_VIA,
    SIP_HDR_FROM,
    SIP_HDR_TO,
    SIP_HDR_CALL_ID,
    SIP_HDR_CSEQ,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_CONTACT,
    SIP_HDR_CONTENT_TYPE,
    SIP_HDR_CONTENT_LENGTH,
    SIP_HDR_CONTENT_ENCODING,
    SIP_HDR_EXPIRES,
    SIP_HDR_MIN_EXPIRES,
    SIP_HDR_EVENT,
    SIP_HDR_SUBSCRIPTION_STATE,
    SIP_HDR_ALLOW_EVENTS,
    SIP_HDR_SIP_ETAG,
    SIP_HDR_SIP_IF_MATCH,
    SIP_HDR_AUTHORIZATION,
    SIP_HDR_PROXY_AUTHORIZATION,
    SIP_HDR_WWW_AUTHENTICATE,
    SIP_HDR_PROXY_AUTHENTICATE,
    SIP_HDR_ROUTE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_REQUIRE,
    SIP_HDR_PROXY_REQUIRE,
    SIP_HDR_SUPPORTED,
    SIP_HDR_UNSUPPORTED,
    SIP_HDR_ACCEPT,
    SIP_HDR_ALLOW,
    SIP_HDR_USER_AGENT,
    SIP_HDR_SERVER,
    SIP_HDR_SUBJECT,
    SIP_HDR_REFER_TO,
    SIP_HDR_REFERRED_BY,
    SIP_HDR_SESSION_EXPIRES,
    SIP_HDR_TIMESTAMP,
    SIP_HDR_COUNT
} sip_hdr_id_t;

sip_hdr_id_t sip_hdr_lookup(str_t name);
/* The canonical full name ("Call-ID"); "" for SIP_HDR_OTHER. Static storage. */
str_t sip_hdr_name(sip_hdr_id_t id);

/*
 * Whether a field's value is a comma-separated list that may also be split over several
 * lines (RFC 3261 §7.3.1): Via, Contact, Route, Record-Route, Require, Proxy-Require,
 * Supported, Unsupported, Accept, Allow, Allow-Events, Content-Encoding. The
 * authentication fields are not (their commas separate parameters), nor are unknown ones.
 */
bool sip_hdr_is_list(sip_hdr_id_t id);

/* ---- Structured values ----------------------------------------------------------------- */
/* Every str_t below points into the string the helper was given. Parsers return 0, or
 * -EBADMSG when the text does not match the grammar (the output is then unspecified). */

typedef enum {
    SIP_SCHEME_OTHER = 0,       /* any absoluteURI (RFC 3261 §25.1), kept opaque */
    SIP_SCHEME_SIP,
    SIP_SCHEME_SIPS,
    SIP_SCHEME_TEL,             /* RFC 3966 */
} sip_scheme_t;

typedef enum {
    SIP_HOST_NONE = 0,          /* tel: and other schemes */
    SIP_HOST_NAME,
    SIP_HOST_IPV4,
    SIP_HOST_IPV6,              /* host holds the address without its brackets */
} sip_host_type_t;

/*
 * A URI (RFC 3261 §19.1, §25.1; RFC 3966 for tel:). Percent-escapes are kept as received
 * (sip_unescape() decodes); comparison rules (§19.1.4) are the caller's.
 *   sip:user:password@host:port;uri-parameters?headers
 *   tel:+1-201-555-0123;phone-context=example.com   (user = the number, params = the rest)
 */
typedef struct {
    sip_scheme_t scheme;
    sip_host_type_t host_type;
    bool has_port;
    bool lr;                    /* ";lr" present (loose routing, RFC 3261 §19.1.1) */
    uint16_t port;              /* 0 unless has_port */
    str_t scheme_name;          /* as written, "SIP" or "sip" */
    str_t opaque;               /* everything after "scheme:" */
    str_t user;                 /* empty when there is no userinfo */
    str_t password;
    str_t host;
    str_t params;               /* ";transport=tcp;lr" with its first ';', or empty */
    str_t headers;              /* "subject=x&priority=urgent" without the '?', or empty */
    str_t transport;            /* value of ;transport=, or empty */
    str_t user_param;           /* value of ;user= ("phone"), or empty */
    str_t maddr;                /* value of ;maddr=, or empty */
} sip_uri_t;

/* s is the URI alone: no surrounding LWS, no angle brackets. */
int sip_uri_parse(str_t s, sip_uri_t *uri);

/*
 * One name-addr or addr-spec with its header parameters (RFC 3261 §20.10, §20.20, §20.39):
 *   "Alice" <sip:alice@example.com>;tag=1928301774
 *   sip:bob@example.com;tag=a6c85cf          (no <>: every ';' after the URI starts a
 *                                             header parameter, and a '?' is not allowed)
 *   *                                        (only in Contact; star is set, uri is "*")
 * The URI must parse with sip_uri_parse() (any scheme). display is raw: a quoted-string
 * with its quotes (sip_unquote() decodes it) or tokens with the LWS between them.
 */
typedef struct {
    str_t display;              /* empty when absent */
    str_t uri;                  /* without the <> */
    str_t params;               /* "; tag=x;expires=60" from the first ';', or empty */
    str_t tag;                  /* value of the tag parameter, or empty */
    bool angle;                 /* the URI was in <> */
    bool star;
} sip_addr_t;

/* s is one value (a list element, not a whole Contact list). */
int sip_addr_parse(str_t s, sip_addr_t *addr);

typedef enum {
    SIP_TRANSPORT_OTHER = 0,
    SIP_TRANSPORT_UDP,
    SIP_TRANSPORT_TCP,
    SIP_TRANSPORT_TLS,
    SIP_TRANSPORT_SCTP,
    SIP_TRANSPORT_WS,           /* RFC 7118 */
    SIP_TRANSPORT_WSS,
} sip_transport_t;

/*
 * One Via value (RFC 3261 §20.42): "SIP / 2.0 / UDP host:port ;branch=z9hG4bK..;rport".
 * LWS is allowed around '/', ':', ';' and '=' (RFC 4475 §3.1.1.1).
 */
typedef struct {
    sip_transport_t transport_id;
    sip_host_type_t host_type;
    bool has_port;
    bool has_rport;             /* ";rport" with or without a value (RFC 3581) */
    uint16_t port;              /* 0 unless has_port */
    str_t protocol;             /* "SIP" */
    str_t version;              /* "2.0" */
    str_t transport;            /* "UDP", as written */
    str_t host;                 /* IPv6 without its brackets */
    str_t params;               /* from the first ';', or empty */
    str_t branch;               /* each: the parameter's value, or empty */
    str_t received;
    str_t rport;
    str_t maddr;
} sip_via_t;

int sip_via_parse(str_t s, sip_via_t *via);

/* CSeq (RFC 3261 §20.16): a 32-bit number and a method. */
typedef struct {
    uint32_t seq;
    sip_method_t method;
    str_t method_name;
} sip_cseq_t;

int sip_cseq_parse(str_t s, sip_cseq_t *cseq);

/*
 * Event (RFC 6665 §8.2.1): "presence.winfo;id=17". type is the whole event-type (what an
 * event package registers under), package the part before the first '.'.
 */
typedef struct {
    str_t type;                 /* "presence.winfo" */
    str_t package;              /* "presence" */
    str_t id;                   /* value of ;id=, or empty */
    str_t params;
} sip_event_t;

int sip_event_parse(str_t s, sip_event_t *event);

typedef enum {
    SIP_SUBSTATE_OTHER = 0,     /* an extension value: treat as pending (RFC 6665 §8.2.3) */
    SIP_SUBSTATE_ACTIVE,
    SIP_SUBSTATE_PENDING,
    SIP_SUBSTATE_TERMINATED,
} sip_substate_t;

/* Subscription-State (RFC 6665 §8.2.3): "active;expires=3600", "terminated;reason=timeout". */
typedef struct {
    sip_substate_t state;
    bool has_expires;
    bool has_retry_after;
    uint32_t expires_s;
    uint32_t retry_after_s;
    str_t state_name;           /* as written, case preserved */
    str_t reason;               /* value of ;reason=, or empty */
    str_t params;
} sip_subscription_state_t;

/* -EBADMSG also for an expires or retry-after that is not a 32-bit number. */
int sip_subscription_state_parse(str_t s, sip_subscription_state_t *ss);

/*
 * delta-seconds (RFC 3261 §25: Expires, Min-Expires, ;expires=): 1*DIGIT, leading zeros
 * allowed. 0, -EBADMSG when not digits, -ERANGE above 2^32-1 (RFC 4475 §3.1.2.4 suggests
 * treating such a value as absent, that is, as the default).
 */
int sip_delta_seconds_parse(str_t s, uint32_t *out_s);

/* ---- Parameters and lists ------------------------------------------------------------- */

/*
 * Iterates ";name=value" parameters (generic-param, RFC 3261 §25; LWS around ';' and '=').
 * *rest starts at the first ';' (LWS before it is fine) and is advanced past each one.
 * Returns 1 with *name and *value (empty when there is no '='; a quoted-string value keeps
 * its quotes), 0 at the end, -EBADMSG for an empty or malformed parameter.
 */
int sip_param_next(str_t *rest, str_t *name, str_t *value);

/* The value of parameter name (case-insensitive, RFC 3261 §7.3.1) in params: 1 found, 0
 * absent, -EBADMSG if params is malformed before it is found. */
int sip_param_get(str_t params, const char *name, str_t *value);

/*
 * Splits a list value at commas that are outside quoted strings and <> (RFC 3261 §7.3.1).
 * Returns 1 with the next element (LWS trimmed), 0 at the end, -EBADMSG for an empty element
 * (",,", a trailing comma), an unterminated quote or unbalanced <>. An empty value is a list
 * of no elements.
 */
int sip_list_next(str_t *rest, str_t *item);

/* ---- Copying helpers ------------------------------------------------------------------ */
/* Each writes at most cap bytes to out (no NUL) and returns the length written, or -ENOSPC
 * (out then holds a prefix). Output is never longer than the input. */

/* The value with each line fold and the white space around it replaced by one SP. */
ssize_t sip_unfold(str_t raw, char *out, size_t cap);

/* A quoted-string's content: quotes dropped, quoted-pairs resolved, folds unfolded.
 * -EBADMSG unless raw is exactly one quoted-string. */
ssize_t sip_unquote(str_t raw, char *out, size_t cap);

/* %XX escapes decoded (RFC 3261 §19.1.2); -EBADMSG for a '%' not followed by two hex digits. */
ssize_t sip_unescape(str_t s, char *out, size_t cap);

/* ---- The parsed message -------------------------------------------------------------- */

#define SIP_MSG_NO_HDR UINT16_MAX

typedef struct {
    str_t name;                 /* as received: "Via", "v", "VIA" */
    str_t value;                /* LWS trimmed at both ends; may contain folds */
    uint8_t id;                 /* sip_hdr_id_t */
    uint16_t next;              /* index of the next field with the same id, or SIP_MSG_NO_HDR */
} sip_hdr_t;

/*
 * Filled by sip_msg_parse(); about 6 KiB, so keep one per shard or transaction rather than
 * on a small stack. The fields below "checked values" hold what the parser verified and are
 * meaningful only when err is SIP_MSG_OK.
 */
typedef struct {
    const char *data;           /* the first byte of the start line */
    uint32_t len;               /* start line to the end of the body */
    uint32_t head_len;          /* start line to the empty line, inclusive */
    sip_msg_err_t err;          /* what sip_msg_parse() returned if negative, else OK */
    uint8_t err_hdr;            /* sip_hdr_id_t the error is about, else SIP_HDR_OTHER */
    bool is_request;
    bool head_complete;         /* the header section was read to its empty line */
    bool has_content_length;

    str_t start_line;           /* without its line end */
    str_t version;              /* "SIP/2.0" */
    /* request line */
    sip_method_t method;
    str_t method_name;
    str_t request_uri;
    /* status line */
    uint16_t status;
    str_t reason;               /* may be empty */

    uint16_t header_count;
    uint16_t first[SIP_HDR_COUNT];      /* index of the first field per id, or SIP_MSG_NO_HDR */
    uint16_t last_[SIP_HDR_COUNT];      /* private: chain tails while parsing */
    sip_hdr_t headers[SIP_MSG_HEADERS_CAP];

    uint32_t content_length;    /* 0 unless has_content_length */
    str_t body;

    /* checked values */
    sip_uri_t uri;              /* the Request-URI, parsed */
    sip_via_t via;              /* the topmost Via value */
    sip_addr_t from, to;
    str_t call_id;
    sip_cseq_t cseq;
    int16_t max_forwards;       /* 0-255, or -1 when absent */
} sip_msg_t;

typedef enum {
    SIP_MSG_DATAGRAM = 0,       /* UDP: one datagram is one message */
    SIP_MSG_STREAM,             /* TCP, TLS: Content-Length frames the body */
} sip_msg_transport_t;

/*
 * Parses the message at data[0]: the start line must come first (strip keepalive CRLFs
 * with sip_msg_frame() on a stream). lim may be NULL for sip_msg_limits_default; a limit
 * out of range is a programmer error. On a stream, data should be what sip_msg_frame()
 * delimited; bytes past the message are ignored either way.
 *
 * Returns the message length (> 0: start line to the end of the body; in a datagram the
 * rest is to be discarded), or a sip_msg_err_t, also stored in msg->err. After an error
 * with head_complete set the header fields, start line and body are filled in as far as
 * they go, and sip_msg_can_reply() tells whether to answer. msg points into data.
 */
ssize_t sip_msg_parse(sip_msg_t *msg, const char *data, size_t len, sip_msg_transport_t tp,
                      const sip_msg_limits_t *lim);

/*
 * What a response to one of our own requests must hold for its client transaction to be
 * found and ended (RFC 3261 §17.1.3): the status, the topmost Via's branch and the CSeq.
 */
typedef struct {
    uint16_t status;
    sip_via_t via;              /* the topmost Via value; its branch is not empty */
    sip_cseq_t cseq;
} sip_response_peek_t;

/*
 * Reads a response just far enough for that, at a fraction of sip_msg_parse()'s cost: a
 * server reads one for every request it sends. Checked: the status line as sip_msg_parse()
 * checks it (version 2.0 only); the header section to its empty line, with the same syntax
 * and limits; the topmost Via value (a branch required); one CSeq. Not read: the other
 * fields, Content-Length and the body (framing on a stream is sip_msg_frame()'s). Returns 0
 * with out filled, 1 when data does not start with "SIP/" (a request, or no message: parse
 * it with sip_msg_parse()), or a negative sip_msg_err_t for a response that lacks what is
 * needed (to be dropped, §18.3). out points into data.
 */
int sip_msg_peek_response(const char *data, size_t len, sip_response_peek_t *out);

/* A request whose header section was read and has Via, From, To, Call-ID and CSeq, so that
 * a response can be addressed (RFC 3261 §8.2.6.2), and that is not an ACK (§17.2.1: never
 * answered). True for every successfully parsed request other than ACK. */
bool sip_msg_can_reply(const sip_msg_t *msg);

/* ---- Header access ------------------------------------------------------------------- */

/* The first field with this id, or NULL. O(1). */
static inline const sip_hdr_t *sip_msg_get(const sip_msg_t *msg, sip_hdr_id_t id)
{
    uint16_t i = msg->first[id];
    return i == SIP_MSG_NO_HDR ? NULL : &msg->headers[i];
}

/* The next field of the same kind after h (same id; for SIP_HDR_OTHER, the same name
 * case-insensitively), or NULL. */
const sip_hdr_t *sip_msg_next(const sip_msg_t *msg, const sip_hdr_t *h);

/* The first field named name (any form: "Via", "v", "X-Foo"), or NULL. */
const sip_hdr_t *sip_msg_find(const sip_msg_t *msg, str_t name);

/*
 * Iterates the values of one field id over all its lines: a list field is split at its
 * commas (sip_list_next), any other yields each line's value whole.
 *
 *     sip_hdr_iter_t it;
 *     str_t v;
 *     for (sip_hdr_iter_init(&it, msg, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0;)
 *         ...
 */
typedef struct {
    const sip_msg_t *msg;
    const sip_hdr_t *hdr;       /* line being split; NULL at the end */
    str_t rest;
} sip_hdr_iter_t;

void sip_hdr_iter_init(sip_hdr_iter_t *it, const sip_msg_t *msg, sip_hdr_id_t id);
/* 1 with *value, 0 at the end, -EBADMSG as sip_list_next. */
int sip_hdr_iter_next(sip_hdr_iter_t *it, str_t *value);

/* Expires or Min-Expires as seconds: 0, -ENOENT when absent, else as sip_delta_seconds_parse. */
int sip_msg_expires(const sip_msg_t *msg, sip_hdr_id_t id, uint32_t *out_s);

/* ---- Framing on streams --------------------------------------------------------------- */

typedef struct {
    size_t skip_bytes;          /* CRLFs before the message: consume them in any case */
    size_t pings;               /* "\r\n\r\n" pings among them; answer each with "\r\n" */
} sip_frame_t;

/*
 * Delimits the next message in a stream's buffered bytes. First skips the CRLFs that may
 * precede a message (RFC 3261 §7.5) and counts the double-CRLF keep-alive pings among them
 * (RFC 5626 §3.5.1); a CRLF that may be the first half of a ping is left until the next
 * byte shows. Then reads the header section up to its empty line and its Content-Length.
 *
 * Returns the message length starting at data + frame->skip_bytes once the header section
 * and body are complete, 0 when more bytes are needed, or a negative sip_msg_err_t:
 * malformed field lines, limits, no or malformed or repeated Content-Length. An error leaves
 * the stream out of step: answer if sip_msg_parse() on the buffered bytes allows it, then
 * close the connection. However the bytes are cut, a complete message frames to the length
 * that sip_msg_parse() returns for it.
 *
 * Stateless: each call reads the buffered header section from its start. A peer trickling
 * a 64 KiB header a byte per segment makes that quadratic (2^31 byte steps); a connection
 * should keep a sip_frame_state_t and call sip_msg_frame_resume() instead.
 */
ssize_t sip_msg_frame(const char *data, size_t len, const sip_msg_limits_t *lim,
                      sip_frame_t *frame);

/* How far earlier calls read into the message under way; one per stream connection. */
typedef struct {
    uint32_t pos_, fields_, field_start_, name_end_, v_beg_, v_end_, cl_;  /* private */
    uint8_t state_;
    bool escaped_;
    bool has_cl_;
} sip_frame_state_t;

static inline void sip_frame_state_init(sip_frame_state_t *st)
{
    memset(st, 0, sizeof(*st));
}

/*
 * sip_msg_frame() that carries on where the last call on st stopped, so that each byte is
 * read once however the header section is cut. After a 0, call again with the same bytes
 * from the message's first byte (skip_bytes consumed) and whatever arrived since; the buffer
 * may move in between. A result other than 0 resets st for the next message. The results
 * are those sip_msg_frame() gives on the same bytes.
 */
ssize_t sip_msg_frame_resume(sip_frame_state_t *st, const char *data, size_t len,
                             const sip_msg_limits_t *lim, sip_frame_t *frame);

/* ---- Writing responses --------------------------------------------------------------- */

typedef struct {
    unsigned status;            /* 100-699 */
    const char *reason;         /* NULL: sip_status_reason(status); no CR or LF */
    str_t to_tag;               /* a token appended as ";tag=" when To has no tag; may be empty */
    str_t headers;              /* extra fields, each line ending in CRLF (Contact,
                                   Content-Type, Expires, ...); may be empty */
    str_t body;                 /* may be empty; its Content-Type belongs in headers */
    bool record_route;          /* copy Record-Route, as for a 2xx that creates a dialog
                                   (RFC 3261 §12.1.1) */
} sip_response_t;

/*
 * Appends to out a response to req (RFC 3261 §8.2.6): the status line; every Via value in
 * order, From, To (with to_tag added if it has none), Call-ID and CSeq copied from the
 * request; Timestamp for a 100 (§8.2.6.1); Record-Route if asked; the extra headers; the
 * Content-Length of body; the empty line and body. Returns 0, or -EINVAL when
 * !sip_msg_can_reply(req) (out untouched). An out-of-range status, a reason with a line
 * break, a to_tag that is not a token or headers not ending in CRLF are programmer errors.
 */
int sip_msg_write_response(const sip_msg_t *req, const sip_response_t *rsp, buf_t *out);

#endif
