/*
 * winfo.h - application/watcherinfo+xml (RFC 3858): the document presenced sends in NOTIFYs
 * of the presence.winfo package (RFC 3857) so that a user sees who asks to watch them and
 * decides (DESIGN §3, "watchers and authorisation"), and a decoder for the same format (tests,
 * and clients that send it).
 *
 *   <watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="N" state="full|partial">
 *     <watcher-list resource="sip:user@example.com" package="presence">
 *       <watcher id="..." status="pending" event="subscribe" display-name="..."
 *                expiration="600" duration-subscribed="0" xml:lang="en">sip:w@x</watcher>
 *
 * The version counts documents within one winfo subscription, starting at 0 and one higher in
 * each NOTIFY; a subscriber that sees a gap asks again (RFC 3858 §4). It is the caller's per
 * subscription counter. A "partial" document carries only the watchers that changed since the
 * previous one (§4); what goes in it is the caller's choice too.
 *
 * Decoding is bounded as pidf.h describes (no DTD, no entities, DOCTYPE refused, caps on
 * bytes, elements, depth, lists, watchers and string lengths, UTF-8 only). Required attributes
 * (RFC 3858 §6) missing or outside their enumerations fail the document; optional ones that
 * do not parse (expiration, duration-subscribed) are dropped; unknown elements are skipped
 * and counted.
 *
 * Ownership and threads: as pidf.h. A decoded document is one allocation (winfo_doc_free).
 */
#ifndef PRESENCED_WINFO_H
#define PRESENCED_WINFO_H

#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

#define WINFO_NS "urn:ietf:params:xml:ns:watcherinfo"
#define WINFO_CONTENT_TYPE "application/watcherinfo+xml"

/* ---- Limits ------------------------------------------------------------ */

/* A full document for a user with a few thousand watchers: ~200 bytes each. */
#define WINFO_DOC_BYTES_DEFAULT (1024u * 1024)
/* Watchers plus lists plus the root, with room for unknown extensions. */
#define WINFO_ELEMENTS_DEFAULT 16384u
/* watcherinfo > watcher-list > watcher is 3. */
#define WINFO_DEPTH_DEFAULT 16u

typedef struct {
    uint32_t doc_bytes_max;
    uint32_t elements_max;
    uint32_t depth_max;
} winfo_limits_t;

extern const winfo_limits_t winfo_limits_default;

/* One list per resource watched: one for a plain subscription, one per member of a resource
 * list (RFC 4662). */
#define WINFO_LISTS_MAX 256u
/* Watchers in one decoded document, all lists together. The encoder takes any number: a
 * server may have more watchers than it accepts in one document from a client. */
#define WINFO_WATCHERS_MAX 8192u
/* URIs (resource, watcher): as PIDF_URI_MAX_BYTES. Longer fails. */
#define WINFO_URI_MAX_BYTES 1024u
/* Watcher ids, package names, xml:lang. Longer fails. */
#define WINFO_ID_MAX_BYTES 256u
/* display-name is free text: cut at a UTF-8 boundary. */
#define WINFO_NAME_MAX_BYTES 256u

/* ---- The document ------------------------------------------------------ */

typedef enum {
    WINFO_STATE_FULL = 0,
    WINFO_STATE_PARTIAL,
} winfo_state_t;

/* RFC 3858 §3: the subscription's state. */
typedef enum {
    WINFO_STATUS_PENDING = 0,
    WINFO_STATUS_ACTIVE,
    WINFO_STATUS_WAITING,
    WINFO_STATUS_TERMINATED,
    WINFO_STATUS_COUNT
} winfo_status_t;

/* RFC 3858 §3: what moved it there. */
typedef enum {
    WINFO_EVENT_SUBSCRIBE = 0,
    WINFO_EVENT_APPROVED,
    WINFO_EVENT_DEACTIVATED,
    WINFO_EVENT_PROBATION,
    WINFO_EVENT_REJECTED,
    WINFO_EVENT_TIMEOUT,
    WINFO_EVENT_GIVEUP,
    WINFO_EVENT_NORESOURCE,
    WINFO_EVENT_COUNT
} winfo_event_t;

/* "pending", ...; "subscribe", ... (static). Crash outside the enums. */
const char *winfo_status_name(winfo_status_t s);
const char *winfo_event_name(winfo_event_t e);

/* expiration or duration-subscribed absent. */
#define WINFO_SECONDS_NONE UINT64_MAX

typedef struct {
    str_t id;                       /* required, non-empty */
    str_t uri;                      /* the element's text, trimmed; may be empty */
    str_t display_name;             /* ptr NULL when absent */
    str_t lang;                     /* xml:lang; ptr NULL when absent */
    winfo_status_t status;
    winfo_event_t event;
    uint64_t expiration_s;          /* or WINFO_SECONDS_NONE */
    uint64_t duration_subscribed_s; /* or WINFO_SECONDS_NONE */
} winfo_watcher_t;

typedef struct {
    str_t resource;                 /* required, non-empty */
    str_t package;                  /* required, non-empty: "presence" */
    const winfo_watcher_t *watchers;
    uint32_t watcher_count;
} winfo_list_t;

typedef struct {
    uint64_t version;
    winfo_state_t state;
    const winfo_list_t *lists;
    uint32_t list_count;
    uint32_t ignored;               /* decoding only: skipped elements, not compared */
} winfo_doc_t;

/* ---- Decoding ---------------------------------------------------------- */

typedef enum {
    WINFO_OK = 0,
    WINFO_ERR_TOO_LARGE,
    WINFO_ERR_ENCODING,
    WINFO_ERR_NOT_WELL_FORMED,
    WINFO_ERR_DOCTYPE,
    WINFO_ERR_TOO_MANY_ELEMENTS,
    WINFO_ERR_TOO_DEEP,
    WINFO_ERR_NOT_WINFO,            /* the root is not {urn:...:watcherinfo}watcherinfo */
    WINFO_ERR_VERSION,              /* version missing or not a 64-bit unsigned integer */
    WINFO_ERR_STATE,                /* state missing or neither full nor partial */
    WINFO_ERR_LIST,                 /* a watcher-list without resource or package */
    WINFO_ERR_WATCHER,              /* a watcher without id, or status/event missing or unknown */
    WINFO_ERR_TOO_MANY_LISTS,
    WINFO_ERR_TOO_MANY_WATCHERS,
    WINFO_ERR_TOO_LONG,             /* a URI, id, package or xml:lang too long */
    WINFO_ERR_NOMEM,
    WINFO_ERR_COUNT
} winfo_err_t;

typedef struct {
    winfo_err_t code;
    const char *reason;             /* static */
    uint32_t line;
} winfo_error_t;

const char *winfo_err_name(winfo_err_t code);

/*
 * Decodes len bytes (not referenced afterwards); lim NULL means winfo_limits_default (values
 * non-zero, bytes within PIDF_DOC_BYTES_LIMIT, depth within PIDF_DEPTH_LIMIT, else it
 * crashes). Returns 0 and *out (free with winfo_doc_free), or -EBADMSG (malformed),
 * -E2BIG (a limit), -ENOMEM, with *out NULL and *err filled in (err may be NULL).
 */
int winfo_decode(const char *data, size_t len, const winfo_limits_t *lim, winfo_doc_t **out,
                 winfo_error_t *err);

void winfo_doc_free(winfo_doc_t *doc);

/* Same version, state, lists and watchers in order; `ignored` is not compared. */
bool winfo_doc_equal(const winfo_doc_t *a, const winfo_doc_t *b);

/* ---- Encoding ---------------------------------------------------------- */

/*
 * Appends doc as a watcherinfo document. display-name is written whole (the decoder cuts it),
 * with bytes that are not UTF-8 XML characters as U+FFFD. Returns 0, or -EINVAL with b
 * unchanged if the document could not decode again: a state, status or event out of range; a
 * resource, package or watcher id empty after trimming; a URI, id, package or xml:lang over
 * its limit or not valid UTF-8. For a decoded doc, decoding the output gives a
 * winfo_doc_equal one (given a byte limit that fits: escaping can lengthen it).
 */
int winfo_encode(buf_t *b, const winfo_doc_t *doc);

#endif
