/*
 * pidf.h - application/pidf+xml (RFC 3863) with the data model of RFC 4479 and the
 * RPID extensions of RFC 4480: decoding what SIP phones PUBLISH and NOTIFY, encoding what
 * presenced sends to SIP watchers, and the mapping between PIDF/RPID and the engine's
 * protocol-neutral presence states (DESIGN.md §3), including the XMPP <show> values.
 *
 * Decoding is bounded and never trusts the document: the document must be
 * namespace-well-formed XML 1.0 (pidf_int.h's parser), no DTD is loaded, no entity other
 * than XML's five is known, a document with a DOCTYPE is refused (so "billion laughs" never
 * starts), the input, the number of elements and their nesting are capped while it is
 * parsed (pidf_limits_t), and so are the counts of tuples, persons,
 * devices and notes and the length of every string kept. Only UTF-8 is accepted: RFC 3863
 * §4.1 makes it the one encoding every implementation must accept, and no phone sends
 * another; an encoding declaration naming something else is ignored and the bytes must
 * still be UTF-8. The XML declaration §4.1 asks for is written, not required.
 *
 * What is read, and where (other elements are skipped and counted in `ignored`):
 *
 *   {pidf}presence @entity                          RFC 3863 §4.1.1, required
 *     {pidf}tuple @id                               §4.1.2, id required, unique
 *       {pidf}status                                §4.1.3, required
 *         {pidf}basic  open | closed                §4.1.4, optional
 *         {rpid}activities                          eyeBeam/CUCM style, read as the tuple's
 *       {dm}deviceID                                RFC 4479, links it to a device
 *       {pidf}contact @priority                     §4.1.5, qvalue 0..1
 *       {pidf}note @xml:lang                        §4.1.6, up to PIDF_NOTES_MAX
 *       {pidf}timestamp                             §4.1.7, RFC 3339
 *     {pidf}note                                    §4.1.6, about the presentity
 *     {dm}person @id                                RFC 4479, up to PIDF_PERSONS_MAX
 *       {rpid}activities / {rpid}mood               RFC 4480 §3.2 / mood
 *       {dm}note / {dm}timestamp
 *     {dm}device @id                                RFC 4479, up to PIDF_DEVICES_MAX
 *       {dm}deviceID / {dm}note / {dm}timestamp
 *
 * Leniency, each for a sender seen in the field: {rpid} is the RFC 4480 namespace, the
 * pre-RFC "urn:ietf:params:xml:ns:pidf:status:rpid" (eyeBeam, Bria, CUCM, Asterisk) or
 * Cisco's "urn:cisco:params:xml:ns:pidf:rpid" (which adds <dnd/> and <alerting/>); tuples
 * and persons are matched by local name in any namespace, and the PIDF elements inside a tuple
 * in {pidf}, in none or in the tuple's own, as Cisco's web service and its clients write them
 * (in any order: they put <status> last); notes and timestamps in a person or a device are
 * read in {dm} too; `basic` is compared without case; a bad qvalue or
 * timestamp is dropped rather than failing the document; a status without <basic> (RFC
 * 3863 §4.1.4 makes it optional, e.g. PIDF-LO's geopriv-only tuples) gives PIDF_BASIC_NONE.
 * Whitespace around identifiers, URIs, tokens and notes is trimmed; an over-long note is cut
 * at a character boundary. The root must be {urn:ietf:params:xml:ns:pidf}presence.
 *
 * Ownership: a decoded document is one allocation holding every string and array; free it
 * with pidf_doc_free(). A document built by hand for pidf_encode() points at the caller's
 * memory and is not freed here. Encoders append to a buf_t (which aborts on allocation
 * failure).
 *
 * Threads: every function may be called from any shard at once and none blocks.
 */
#ifndef PRESENCED_PIDF_H
#define PRESENCED_PIDF_H

#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

/* ---- Namespaces -------------------------------------------------------- */

#define PIDF_NS "urn:ietf:params:xml:ns:pidf"                       /* RFC 3863 */
#define PIDF_NS_DM "urn:ietf:params:xml:ns:pidf:data-model"         /* RFC 4479 */
#define PIDF_NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"             /* RFC 4480 */
/* draft-ietf-simple-rpid before RFC 4480; still sent by eyeBeam, CUCM and Asterisk. */
#define PIDF_NS_RPID_STATUS "urn:ietf:params:xml:ns:pidf:status:rpid"
/* Cisco's RPID extension: <dnd/> and <alerting/> among the activities. */
#define PIDF_NS_CISCO_RPID "urn:cisco:params:xml:ns:pidf:rpid"
#define PIDF_CONTENT_TYPE "application/pidf+xml"

/* ---- Limits ------------------------------------------------------------ */

/* A PUBLISH body, a NOTIFY body built from one user's sources, or a rich PUT of the web
 * service: a phone sends 0.5-2 KiB; Kamailio-style aggregation of a few dozen tuples stays
 * well under 64 KiB, the largest SIP message over TCP most proxies accept. */
#define PIDF_DOC_BYTES_DEFAULT (64u * 1024)
/* Elements of the whole document, unknown ones included. An encoded document at every
 * count limit below has under 2,000 (32 tuples of ~40, 8 persons of ~45, 16 devices of 7). */
#define PIDF_ELEMENTS_DEFAULT 4096u
/* presence > person > activities > other is 4; PIDF-LO (RFC 4119) nests to about 10. */
#define PIDF_DEPTH_DEFAULT 24u

#define PIDF_DOC_BYTES_LIMIT (16u * 1024 * 1024)
#define PIDF_ELEMENTS_LIMIT 1000000u
#define PIDF_DEPTH_LIMIT 200u               /* the parser's stack of open elements */

typedef struct {
    uint32_t doc_bytes_max;
    uint32_t elements_max;
    uint32_t depth_max;
} pidf_limits_t;

extern const pidf_limits_t pidf_limits_default;

/* One tuple per source of a user (DESIGN §3): a few XMPP resources, a SIP phone or two, the
 * gateway's line, the web service, a calendar. More is refused, not truncated: a dropped
 * tuple could be the one that is open. */
#define PIDF_TUPLES_MAX 32u
/* RFC 4479 expects one person; Kamailio-style aggregation concatenates one per publisher.
 * Extra persons and devices are ignored (and counted). */
#define PIDF_PERSONS_MAX 8u
#define PIDF_DEVICES_MAX 16u
/* Notes per element: one per language (RFC 3863 §4.1.6). Extra notes are ignored. */
#define PIDF_NOTES_MAX 4u
/* Mood values kept per person (RFC 4480 allows several). */
#define PIDF_MOODS_MAX 4u
/* Free text (notes, <other>) is cut to this many bytes at a UTF-8 boundary: a status
 * line, not a letter. */
#define PIDF_NOTE_MAX_BYTES 1024u
/* URIs (entity, contact, deviceID): a SIP URI with parameters fits; longer fails. */
#define PIDF_URI_MAX_BYTES 1024u
/* Tuple, person and device ids, mood names. Longer fails. */
#define PIDF_ID_MAX_BYTES 256u
/* xml:lang: RFC 5646 tags are at most 35 characters in practice. Longer fails. */
#define PIDF_LANG_MAX_BYTES 64u

/* ---- The document ------------------------------------------------------ */

/* Absent timestamp. Present ones are milliseconds since 1970-01-01T00:00:00Z, within
 * 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z (what RFC 3339 can write). */
#define PIDF_TIME_NONE INT64_MIN
/* Absent contact priority; present ones are thousandths, 0..1000 (RFC 3863 §4.1.5 qvalue). */
#define PIDF_PRIORITY_NONE UINT16_MAX

typedef enum {
    PIDF_BASIC_NONE = 0,        /* <status> without <basic> */
    PIDF_BASIC_OPEN,
    PIDF_BASIC_CLOSED,
} pidf_basic_t;

/* RFC 4480 §3.2 activities in the order of its schema, then Cisco's additions. A set is a
 * uint32_t of PIDF_ACT_BIT(a). */
typedef enum {
    PIDF_ACT_APPOINTMENT = 0,
    PIDF_ACT_AWAY,
    PIDF_ACT_BREAKFAST,
    PIDF_ACT_BUSY,
    PIDF_ACT_DINNER,
    PIDF_ACT_HOLIDAY,
    PIDF_ACT_IN_TRANSIT,
    PIDF_ACT_LOOKING_FOR_WORK,
    PIDF_ACT_MEAL,
    PIDF_ACT_MEETING,
    PIDF_ACT_ON_THE_PHONE,
    PIDF_ACT_PERFORMANCE,
    PIDF_ACT_PERMANENT_ABSENCE,
    PIDF_ACT_PLAYING,
    PIDF_ACT_PRESENTATION,
    PIDF_ACT_SHOPPING,
    PIDF_ACT_SLEEPING,
    PIDF_ACT_SPECTATOR,
    PIDF_ACT_STEERING,
    PIDF_ACT_TRAVEL,
    PIDF_ACT_TV,
    PIDF_ACT_UNKNOWN,
    PIDF_ACT_VACATION,
    PIDF_ACT_WORKING,
    PIDF_ACT_WORSHIP,
    PIDF_ACT_OTHER,             /* <other>text</other>; the text is activity_other */
    PIDF_ACT_DND,               /* Cisco <dnd/> */
    PIDF_ACT_ALERTING,          /* Cisco <alerting/>: the phone is ringing */
    PIDF_ACT_COUNT
} pidf_activity_t;

#define PIDF_ACT_BIT(a) (UINT32_C(1) << (a))
_Static_assert(PIDF_ACT_COUNT <= 32, "activity sets are uint32_t");

/* Element name of an activity ("on-the-phone"); crashes outside the enum. */
const char *pidf_activity_name(pidf_activity_t a);

typedef struct {
    str_t text;                 /* trimmed, at most PIDF_NOTE_MAX_BYTES */
    str_t lang;                 /* xml:lang; ptr NULL when absent */
} pidf_note_t;

typedef struct {
    str_t id;                   /* required, non-empty */
    pidf_basic_t basic;
    uint32_t activities;        /* RPID activities inside the tuple or its status */
    str_t activity_other;       /* text of <other>; ptr NULL when absent */
    str_t contact;              /* ptr NULL when absent */
    uint16_t contact_priority;  /* thousandths, or PIDF_PRIORITY_NONE */
    str_t device_id;            /* {dm}deviceID; ptr NULL when absent */
    int64_t timestamp_ms;       /* or PIDF_TIME_NONE */
    uint8_t note_count;
    pidf_note_t notes[PIDF_NOTES_MAX];
} pidf_tuple_t;

typedef struct {
    str_t id;                   /* ptr NULL when absent (RFC 4479 requires it; not all send it) */
    uint32_t activities;
    str_t activity_other;       /* ptr NULL when absent */
    uint8_t mood_count;
    str_t moods[PIDF_MOODS_MAX];/* element names: "happy", "in_love", "other" */
    str_t mood_other;           /* text of the mood's <other>; ptr NULL when absent */
    int64_t timestamp_ms;
    uint8_t note_count;
    pidf_note_t notes[PIDF_NOTES_MAX];
} pidf_person_t;

typedef struct {
    str_t id;                   /* ptr NULL when absent */
    str_t device_id;            /* ptr NULL when absent */
    int64_t timestamp_ms;
    uint8_t note_count;
    pidf_note_t notes[PIDF_NOTES_MAX];
} pidf_device_t;

typedef struct {
    str_t entity;               /* the presentity's URI, required */
    const pidf_tuple_t *tuples;
    const pidf_person_t *persons;
    const pidf_device_t *devices;
    uint32_t tuple_count, person_count, device_count;
    uint8_t note_count;
    pidf_note_t notes[PIDF_NOTES_MAX];  /* directly under <presence> */
    /* Elements skipped: unknown names, and surplus ones (a second <basic>, a fifth note, a
     * ninth person) with their subtrees counted as one. Decoding only; pidf_encode ignores
     * it and pidf_doc_equal does not compare it. */
    uint32_t ignored;
} pidf_doc_t;

/* ---- Decoding ---------------------------------------------------------- */

typedef enum {
    PIDF_OK = 0,
    PIDF_ERR_TOO_LARGE,         /* more bytes than doc_bytes_max */
    PIDF_ERR_ENCODING,          /* not UTF-8 (UTF-16, UCS-4, EBCDIC, a NUL byte) */
    PIDF_ERR_NOT_WELL_FORMED,   /* not namespace-well-formed XML (reason says what) */
    PIDF_ERR_DOCTYPE,           /* a document type declaration */
    PIDF_ERR_TOO_MANY_ELEMENTS,
    PIDF_ERR_TOO_DEEP,
    PIDF_ERR_NOT_PIDF,          /* the root is not {urn:ietf:params:xml:ns:pidf}presence */
    PIDF_ERR_ENTITY,            /* entity missing, empty or too long */
    PIDF_ERR_TOO_MANY_TUPLES,
    PIDF_ERR_TUPLE_ID,          /* a tuple id missing, empty, too long or repeated */
    PIDF_ERR_NO_STATUS,         /* a tuple without <status> (RFC 3863 §4.1.2) */
    PIDF_ERR_BAD_BASIC,         /* <basic> neither open nor closed (§4.1.4) */
    PIDF_ERR_TOO_LONG,          /* a contact, deviceID, person or device id, xml:lang too long */
    PIDF_ERR_NOMEM,
    PIDF_ERR_COUNT
} pidf_err_t;

typedef struct {
    pidf_err_t code;
    const char *reason;         /* static, for logs: "tuple without <status>" */
    uint32_t line;              /* 1-based line where it was found, 0 if unknown */
} pidf_error_t;

/* "too-large", "not-well-formed", ... (static); crashes outside the enum. */
const char *pidf_err_name(pidf_err_t code);

/*
 * Decodes len bytes (not referenced afterwards). lim NULL means pidf_limits_default; its
 * values must be non-zero and within the PIDF_*_LIMIT bounds (else it crashes). Returns 0
 * and *out (free with pidf_doc_free), or:
 *   -EBADMSG   malformed or not PIDF (ENCODING, NOT_WELL_FORMED, DOCTYPE, NOT_PIDF, ENTITY,
 *              TUPLE_ID, NO_STATUS, BAD_BASIC)
 *   -E2BIG     a limit was exceeded (TOO_LARGE, TOO_MANY_*, TOO_DEEP, TOO_LONG)
 *   -ENOMEM
 * with *out NULL and *err filled in (err may be NULL).
 */
int pidf_decode(const char *data, size_t len, const pidf_limits_t *lim, pidf_doc_t **out,
                pidf_error_t *err);

/* NULL is fine. */
void pidf_doc_free(pidf_doc_t *doc);

/* Same entity, tuples, persons, devices and notes, in order; `ignored` is not compared.
 * What a round trip through pidf_encode and pidf_decode preserves. */
bool pidf_doc_equal(const pidf_doc_t *a, const pidf_doc_t *b);

/* ---- Encoding ---------------------------------------------------------- */

/*
 * Appends doc as a PIDF document (UTF-8, with an XML declaration): tuples, then presence
 * notes, then persons and devices (RFC 3863 §4.1's order: tuples and notes first, other
 * namespaces after). Activities are written as {rpid}, Cisco's two as {ce}, a tuple's inside
 * its <status>. Text that is not UTF-8 or not an XML character becomes U+FFFD; notes are
 * written whole (the decoder cuts). Returns 0, or -EINVAL with b unchanged when doc could not
 * decode again: entity or a tuple id empty after trimming, a repeated tuple id, a count
 * above its PIDF_*_MAX, an identifier over its byte limit or not valid UTF-8, a basic,
 * priority, activity or timestamp out of range, or a mood name that is not an XML name.
 * For a doc that pidf_decode produced, pidf_decode(pidf_encode(doc)) is pidf_doc_equal to
 * it (given a byte limit that fits the output: escaping can make it longer than the input).
 */
int pidf_encode(buf_t *b, const pidf_doc_t *doc);

/* ---- Protocol-neutral states ------------------------------------------- */

/*
 * The states of DESIGN §3 as far as PIDF can carry them. Mapping to and from PIDF:
 *
 *   state          basic    activities written         read back from
 *   AVAILABLE      open     -                          open, none of the below
 *   AWAY           open     away                       away, meal, breakfast, dinner,
 *                                                      shopping, sleeping, travel,
 *                                                      in-transit, steering
 *   XA             open     away                       permanent-absence
 *   DND            open     busy + Cisco dnd           dnd
 *   BUSY           open     busy                       busy, performance, spectator, worship
 *   ON_THE_PHONE   open     on-the-phone               on-the-phone
 *   MEETING        open     meeting                    meeting, appointment, presentation
 *   VACATION       open     vacation                   vacation, holiday
 *   UNAVAILABLE    closed   -                          closed (whatever the activities)
 *
 * RPID has no "extended away", so XA is written as away and reads back as AWAY: SIP
 * watchers show both as away anyway. Several activities at once resolve in the order
 * DND, ON_THE_PHONE, MEETING, BUSY, VACATION, XA, AWAY (Cisco sends meeting together with
 * busy; the more specific wins). Other activities (working, playing, tv, unknown, other,
 * alerting, looking-for-work) leave the person available.
 */
typedef enum {
    PIDF_STATE_UNAVAILABLE = 0,
    PIDF_STATE_AVAILABLE,
    PIDF_STATE_AWAY,
    PIDF_STATE_XA,
    PIDF_STATE_DND,
    PIDF_STATE_BUSY,
    PIDF_STATE_ON_THE_PHONE,
    PIDF_STATE_MEETING,
    PIDF_STATE_VACATION,
    PIDF_STATE_COUNT
} pidf_state_t;

/* "unavailable", "available", "away", "xa", "dnd", "busy", "on-the-phone", "meeting",
 * "vacation" (static); crashes outside the enum. */
const char *pidf_state_name(pidf_state_t s);

/* The state a basic status and a set of activities express (table above). NONE counts as
 * open: without <basic> only the activities say anything. */
pidf_state_t pidf_state_from_pidf(pidf_basic_t basic, uint32_t activities);

/* What to write for a state (table above). */
pidf_basic_t pidf_state_basic(pidf_state_t s);
uint32_t pidf_state_activities(pidf_state_t s);

/*
 * The state a whole document expresses (what a PUBLISH sets): if any tuple is open, the
 * state of the activities of every person and every open tuple together; else if any tuple
 * is closed, UNAVAILABLE; else (no <basic> anywhere) the persons' activities if there are
 * any, UNAVAILABLE if not.
 */
pidf_state_t pidf_doc_state(const pidf_doc_t *doc);

/* The note a watcher should see: the first person note, else the first note of an open
 * tuple, else the first presence note, else the first note of any tuple; ptr NULL if none. */
str_t pidf_doc_note(const pidf_doc_t *doc);

/*
 * XMPP <show/> (RFC 6121 §4.7.2.1) for a state: "" (no <show/>) for AVAILABLE, "away" for
 * AWAY, "xa" for XA and VACATION, "dnd" for DND, BUSY, ON_THE_PHONE and MEETING (occupied,
 * not absent), NULL for UNAVAILABLE (send type='unavailable' instead).
 */
const char *pidf_state_to_xmpp_show(pidf_state_t s);

/* The state of an available XMPP presence from its <show/> text: absent (ptr NULL) or empty
 * and "chat" give AVAILABLE, "away", "xa", "dnd" their states. Returns 0, or -EINVAL for any
 * other value (RFC 6121 §4.7.2.1 allows no other). type='unavailable' is the caller's. */
int pidf_state_from_xmpp_show(str_t show, pidf_state_t *out);

/* ---- Sources and composition ------------------------------------------- */

typedef struct {
    str_t id;                   /* stable per source (resource, entity-tag, "pws"); any bytes */
    pidf_state_t state;
    int32_t priority;           /* higher wins ties (XMPP priority, or a policy's) */
    int64_t timestamp_ms;       /* last change, or PIDF_TIME_NONE */
    str_t note, note_lang;      /* ptr NULL when absent */
    str_t contact;              /* ptr NULL when absent */
    bool phone_line;            /* the line state from the presence gateway */
} pidf_source_t;

/*
 * Composition of a user's sources into one state (DESIGN §3):
 *   1. Occupied states win over everything else, the strongest first: DND (the person
 *      asked for it, on whichever device), ON_THE_PHONE ("on the phone" from the gateway
 *      overrides available), MEETING, BUSY.
 *   2. Otherwise the most available of AVAILABLE, AWAY, XA, VACATION wins: one device in
 *      use shows the person is there, whatever the idle ones say.
 *   3. Otherwise (no sources, or all UNAVAILABLE) UNAVAILABLE.
 * A phone_line source takes part only with an occupied state: an idle or unregistered line
 * says nothing about the person. Among sources in the winning state the highest priority
 * wins, then the newest timestamp (absent is oldest), then the first. *winner (may be NULL)
 * gets the index of the deciding source, or n when the result is UNAVAILABLE by rule 3.
 */
pidf_state_t pidf_compose(const pidf_source_t *src, size_t n, size_t *winner);

/*
 * Appends the document a SIP watcher of entity receives for these sources. composed false:
 * one tuple per source (basic from its state, its note, contact and timestamp; its id made
 * into a valid XML ID: "t" followed by the id with bytes other than [A-Za-z0-9.-] written
 * as _XX, or "h" and a hash when that is longer than PIDF_ID_MAX_BYTES). composed true: one
 * tuple "composed" with the composed state. No sources: one closed tuple "offline". Then a
 * person "p" with the composed state's activities and the deciding source's note and
 * timestamp (timestamps outside what RFC 3339 can write are left out). Returns 0, or -EINVAL
 * (b unchanged) if n is above PIDF_TUPLES_MAX or pidf_encode refuses the result: entity
 * empty, too long or not UTF-8, a contact or note_lang too long or not UTF-8. A state outside
 * the enum is a programmer error and crashes.
 */
int pidf_encode_presence(buf_t *b, str_t entity, const pidf_source_t *src, size_t n,
                         bool composed);

#endif
