/*
 * dialoginfo.h - application/dialog-info+xml (RFC 4235), the body of NOTIFYs for the "dialog"
 * event package. The presence gateway subscribes to a call-control system (CUCM, Asterisk,
 * FreeSWITCH, Kamailio's presence_dialoginfo) for a user's line and learns from these
 * documents whether the line is idle, ringing or in a call (DESIGN §3, "the phone line state
 * learned from the presence gateway"). Decoding, the line state a document shows, the merge
 * of partial documents into the state a subscriber holds (RFC 4235 §4.3), and an encoder for
 * tests and test peers.
 *
 *   <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="N"
 *                state="full|partial" entity="sip:1000@pbx">          RFC 4235 §4.1
 *     <dialog id="..." call-id="..." local-tag="..." remote-tag="..."
 *             direction="initiator|recipient">                         §4.1.1, id required
 *       <state event="rejected" code="486">terminated</state>          §4.1.2, required
 *       <duration>274</duration>                                       §4.1.3
 *       <local>                                                        §4.1.6 (and <remote>)
 *         <identity display-name="Alice">sip:alice@example.com</identity>
 *         <target uri="sip:alice@pc33.example.com"><param .../></target>
 *
 * What is not kept (replaces, referred-by, route-set, session-description, cseq, target
 * parameters, other namespaces' extensions such as Cisco's or RFC 7463's) is skipped and
 * counted in `ignored`.
 *
 * Decoding is bounded as pidf.h describes: no DTD, no entities, a DOCTYPE refused before its
 * internal subset is read, caps on bytes, elements, depth, dialogs and string lengths, UTF-8
 * only. The root must be {urn:ietf:params:xml:ns:dialog-info}dialog-info with a version and
 * a state; every dialog needs a non-empty id, unique in the document (it keys the merge), and a
 * <state> with one of the five values of §4.1.2. Leniency, each for a sender seen in the
 * field: entity may be absent (the subscription already names the line); identity's display
 * name is read from display-name (the §4.4 schema) or display (what RFC 4235's own examples,
 * FreeSWITCH, Kamailio and Asterisk write); elements of the format may also be in no
 * namespace; enumerations and numbers are trimmed; an unknown direction or event and a
 * duration or code that does not parse are dropped rather than failing the document; a
 * second <state>, <duration>, <local>, <identity> or <target> is ignored.
 *
 * Ownership: a decoded or merged document is one allocation holding every string and array;
 * free it with dialoginfo_doc_free(). A document built by hand for dialoginfo_encode() points
 * at the caller's memory. Threads: any shard, never blocking, as pidf.h.
 */
#ifndef PRESENCED_DIALOGINFO_H
#define PRESENCED_DIALOGINFO_H

#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

#define DIALOGINFO_NS "urn:ietf:params:xml:ns:dialog-info"
#define DIALOGINFO_CONTENT_TYPE "application/dialog-info+xml"
#define DIALOGINFO_EVENT_PACKAGE "dialog"

/* ---- Limits ------------------------------------------------------------ */

/* A line's NOTIFY carries a handful of dialogs at ~0.5-1 KiB each with both parties named;
 * 64 KiB is the largest SIP message over TCP most proxies accept (as PIDF_DOC_BYTES_DEFAULT). */
#define DIALOGINFO_DOC_BYTES_DEFAULT (64u * 1024)
/* A dialog as senders write it has under 20 elements (state, duration, two parties of
 * identity and target, FreeSWITCH's and Asterisk's target params, Cisco's extensions):
 * 64 dialogs come to ~1,300. */
#define DIALOGINFO_ELEMENTS_DEFAULT 4096u
/* dialog-info > dialog > local > target > param is 5; extensions nest a few more. */
#define DIALOGINFO_DEPTH_DEFAULT 16u

typedef struct {
    uint32_t doc_bytes_max;
    uint32_t elements_max;
    uint32_t depth_max;
} dialoginfo_limits_t;

extern const dialoginfo_limits_t dialoginfo_limits_default;

/* Dialogs in one document, and in a held state after merging. A phone line has a few at
 * once (a call, one on hold, one ringing, conference legs); a PBX aggregating every device
 * of a user adds a few per device. More is refused, not truncated: a dropped dialog could be
 * the confirmed one. */
#define DIALOGINFO_DIALOGS_MAX 64u
/* entity, identities and targets: as PIDF_URI_MAX_BYTES. Longer fails. */
#define DIALOGINFO_URI_MAX_BYTES 1024u
/* Dialog ids, Call-IDs and tags. Call-IDs seen run to ~100 bytes. Longer fails. */
#define DIALOGINFO_ID_MAX_BYTES 256u
/* Display names are free text: cut at a UTF-8 boundary. */
#define DIALOGINFO_NAME_MAX_BYTES 256u

/* ---- The document ------------------------------------------------------ */

/* RFC 4235 §4.1: the whole picture, or the dialogs that changed since the previous one. */
typedef enum {
    DIALOGINFO_DOC_FULL = 0,
    DIALOGINFO_DOC_PARTIAL,
} dialoginfo_doc_state_t;

/*
 * RFC 4235 §3.7.1: the state of one dialog, in the order calls move through them.
 *
 *   trying --> proceeding --> early --> confirmed --> terminated
 *      |            |           |                        ^
 *      +------------+-----------+------------------------+   (CANCEL, error, timeout)
 */
typedef enum {
    DIALOGINFO_TRYING = 0,
    DIALOGINFO_PROCEEDING,
    DIALOGINFO_EARLY,
    DIALOGINFO_CONFIRMED,
    DIALOGINFO_TERMINATED,
    DIALOGINFO_STATE_COUNT
} dialoginfo_state_t;

/* RFC 4235 §4.1.2: what ended a dialog (the state's event attribute). */
typedef enum {
    DIALOGINFO_EVENT_NONE = 0,
    DIALOGINFO_EVENT_CANCELLED,
    DIALOGINFO_EVENT_REJECTED,
    DIALOGINFO_EVENT_REPLACED,
    DIALOGINFO_EVENT_LOCAL_BYE,
    DIALOGINFO_EVENT_REMOTE_BYE,
    DIALOGINFO_EVENT_ERROR,
    DIALOGINFO_EVENT_TIMEOUT,
    DIALOGINFO_EVENT_COUNT
} dialoginfo_event_t;

/* RFC 4235 §4.1.1: whether the observed user sent the INVITE or received it. */
typedef enum {
    DIALOGINFO_DIR_NONE = 0,
    DIALOGINFO_DIR_INITIATOR,
    DIALOGINFO_DIR_RECIPIENT,
    DIALOGINFO_DIR_COUNT
} dialoginfo_direction_t;

/* "trying", ...; "cancelled", "local-bye", ... ("" for NONE); "initiator", "recipient" (""
 * for NONE). Static; crash outside the enums. */
const char *dialoginfo_state_name(dialoginfo_state_t s);
const char *dialoginfo_event_name(dialoginfo_event_t e);
const char *dialoginfo_direction_name(dialoginfo_direction_t d);

/* duration absent. */
#define DIALOGINFO_DURATION_NONE UINT64_MAX

/* RFC 4235 §4.1.6: one end of the dialog. */
typedef struct {
    str_t uri;                  /* <identity> text, trimmed; ptr NULL when absent */
    str_t display_name;         /* ptr NULL when absent; only with uri */
    str_t target;               /* <target uri>; ptr NULL when absent */
} dialoginfo_party_t;

typedef struct {
    str_t id;                   /* required, non-empty, unique in the document */
    str_t call_id;              /* ptr NULL when absent, as the tags */
    str_t local_tag;
    str_t remote_tag;
    dialoginfo_direction_t direction;
    dialoginfo_state_t state;
    dialoginfo_event_t event;
    uint16_t code;              /* response code 100..699 that caused the state, 0 if absent */
    uint64_t duration_s;        /* or DIALOGINFO_DURATION_NONE */
    dialoginfo_party_t local, remote;
} dialoginfo_dialog_t;

typedef struct {
    uint64_t version;
    dialoginfo_doc_state_t state;
    str_t entity;               /* ptr NULL when absent */
    const dialoginfo_dialog_t *dialogs;
    uint32_t dialog_count;
    uint32_t ignored;           /* decoding only: skipped elements, not compared */
} dialoginfo_doc_t;

/* ---- Decoding ---------------------------------------------------------- */

typedef enum {
    DIALOGINFO_OK = 0,
    DIALOGINFO_ERR_TOO_LARGE,
    DIALOGINFO_ERR_ENCODING,        /* not UTF-8 (UTF-16, UCS-4, EBCDIC, a NUL byte) */
    DIALOGINFO_ERR_NOT_WELL_FORMED,
    DIALOGINFO_ERR_DOCTYPE,
    DIALOGINFO_ERR_TOO_MANY_ELEMENTS,
    DIALOGINFO_ERR_TOO_DEEP,
    DIALOGINFO_ERR_NOT_DIALOGINFO,  /* the root is not {urn:...:dialog-info}dialog-info */
    DIALOGINFO_ERR_VERSION,         /* version missing or not a 64-bit unsigned integer */
    DIALOGINFO_ERR_STATE,           /* state missing or neither full nor partial */
    DIALOGINFO_ERR_DIALOG_ID,       /* a dialog id missing, empty or repeated */
    DIALOGINFO_ERR_DIALOG_STATE,    /* a dialog without <state>, or not one of §4.1.2's */
    DIALOGINFO_ERR_TOO_MANY_DIALOGS,
    DIALOGINFO_ERR_TOO_LONG,        /* a URI, id, Call-ID or tag too long */
    DIALOGINFO_ERR_NOMEM,
    DIALOGINFO_ERR_COUNT
} dialoginfo_err_t;

typedef struct {
    dialoginfo_err_t code;
    const char *reason;             /* static, for logs */
    uint32_t line;                  /* 1-based, 0 if unknown */
} dialoginfo_error_t;

/* "too-large", "dialog-state", ... (static); crashes outside the enum. */
const char *dialoginfo_err_name(dialoginfo_err_t code);

/*
 * Decodes len bytes (not referenced afterwards); lim NULL means dialoginfo_limits_default
 * (values non-zero, bytes within PIDF_DOC_BYTES_LIMIT, depth within PIDF_DEPTH_LIMIT, else
 * it crashes). Returns 0 and *out (free with dialoginfo_doc_free), or -EBADMSG (malformed),
 * -E2BIG (a limit), -ENOMEM, with *out NULL and *err filled in (err may be NULL).
 */
int dialoginfo_decode(const char *data, size_t len, const dialoginfo_limits_t *lim,
                      dialoginfo_doc_t **out, dialoginfo_error_t *err);

/* NULL is fine. */
void dialoginfo_doc_free(dialoginfo_doc_t *doc);

/* Same version, state, entity and dialogs in order; `ignored` is not compared. What a round
 * trip through dialoginfo_encode and dialoginfo_decode preserves. */
bool dialoginfo_doc_equal(const dialoginfo_doc_t *a, const dialoginfo_doc_t *b);

/* ---- Line state -------------------------------------------------------- */

/*
 * What a busy lamp shows for a line, ordered so that the stronger wins:
 *
 *   dialog state                  initiator         recipient or no direction
 *   trying, proceeding, early     BUSY              RINGING
 *   confirmed                     BUSY              BUSY
 *   terminated                    IDLE              IDLE
 *
 * A call the user is placing has the line off-hook, so it is busy from the first INVITE
 * (Kamailio's caller_confirmed exists because phones show it so); a call arriving is ringing
 * until answered, and can be picked up. RFC 4235 §3.7.1 has no "ringing": early is the
 * state a ringing phone's dialog is in, and trying/proceeding come just before it.
 */
typedef enum {
    DIALOGINFO_LINE_IDLE = 0,
    DIALOGINFO_LINE_RINGING,
    DIALOGINFO_LINE_BUSY,
    DIALOGINFO_LINE_COUNT
} dialoginfo_line_t;

/* "idle", "ringing", "busy" (static); crashes outside the enum. */
const char *dialoginfo_line_name(dialoginfo_line_t l);

/* One dialog's contribution (table above). A state or direction outside its enum crashes. */
dialoginfo_line_t dialoginfo_dialog_line_state(const dialoginfo_dialog_t *d);

/* The strongest over the document's dialogs: BUSY over RINGING over IDLE; IDLE with no
 * dialogs or only terminated ones. Meaningful for full state: for a line followed with
 * partial documents, ask the held state dialoginfo_merge keeps. */
dialoginfo_line_t dialoginfo_line_state(const dialoginfo_doc_t *doc);

/* ---- Held state -------------------------------------------------------- */

/*
 * What applying a document to the held state did (RFC 4235 §4.3, "Constructing Coherent
 * State"). The version counts documents within one subscription; a new subscription starts
 * again, so its caller starts again from nothing held.
 */
typedef enum {
    DIALOGINFO_MERGE_APPLIED = 0,   /* *out is the new held state */
    DIALOGINFO_MERGE_STALE,         /* version not above the held one: ignore it, keep held */
    DIALOGINFO_MERGE_REFETCH,       /* a partial after a gap in versions, or with nothing held:
                                     * applied as §4.3 says (*out is the new held state), but
                                     * dialogs may be missing: refresh the subscription so the
                                     * notifier sends full state */
    DIALOGINFO_MERGE_COUNT
} dialoginfo_merge_t;

/* "applied", "stale", "refetch" (static); crashes outside the enum. */
const char *dialoginfo_merge_name(dialoginfo_merge_t m);

/*
 * Applies doc (decoded, so its ids are unique) to held, the state held so far (NULL for
 * nothing yet; else a full-state document, as this function makes them; a partial one
 * crashes). Neither is changed or referenced afterwards.
 *   - doc->version <= held->version: STALE, *out NULL.
 *   - doc is full: its dialogs replace the held ones.
 *   - doc is partial: each of its dialogs replaces the held one with the same id, or is
 *     added after them; a partial whose version is not held->version + 1, or with nothing
 *     held, is applied all the same and returns REFETCH.
 * Terminated dialogs are dropped: §4.3 lets a holder remove them, and a line state reads
 * them as idle anyway. The result is a full-state document with doc's version, doc's entity
 * (held's when doc has none), ignored 0; its line state is what the lamp shows. Returns
 * APPLIED or REFETCH with *out (free with dialoginfo_doc_free; the caller then frees held),
 * STALE, or -E2BIG (more than DIALOGINFO_DIALOGS_MAX live dialogs) or -ENOMEM with *out NULL
 * and held still current.
 *
 * A notifier that never raises its version (several PBXs stamp every NOTIFY version="0")
 * makes every later document STALE; a caller that knows it talks to one may adopt each full
 * document with held NULL.
 */
int dialoginfo_merge(const dialoginfo_doc_t *held, const dialoginfo_doc_t *doc,
                     dialoginfo_doc_t **out);

/* ---- Encoding ---------------------------------------------------------- */

/*
 * Appends doc as a dialog-info document (UTF-8, with an XML declaration), dialog children in
 * the §4.4 schema's order, display names as display-name and written whole (the decoder
 * cuts). Returns 0, or -EINVAL with b unchanged if the document could not decode again: a
 * state, direction, dialog state or event out of range; a code neither 0 nor 100..699; more
 * than DIALOGINFO_DIALOGS_MAX dialogs; a dialog id empty after trimming or repeated; a URI,
 * id, Call-ID or tag over its limit or not valid UTF-8; a display name without an identity.
 * For a decoded doc, decoding the output gives a dialoginfo_doc_equal one (given a byte
 * limit that fits: escaping can lengthen it).
 */
int dialoginfo_encode(buf_t *b, const dialoginfo_doc_t *doc);

#endif
