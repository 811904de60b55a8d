/*
 * pidf.c - see pidf.h.
 *
 * Decoding walks the tree pidf_xml_parse built once, only along the paths pidf.h lists, and
 * copies everything kept into one allocation (the document, its arrays, then an arena the
 * size of the input for strings), so that the parse tree goes at once and the caller frees
 * one pointer.
 */
#include "protocols/pidf/pidf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "protocols/pidf/pidf_int.h"

_Static_assert(PIDF_TUPLES_MAX <= UINT8_MAX && PIDF_NOTES_MAX <= UINT8_MAX &&
               PIDF_MOODS_MAX <= UINT8_MAX, "counts fit their fields");
_Static_assert(PIDF_ERR_COUNT == 15, "pidf_err_names has one name per code");
_Static_assert(PIDF_STATE_COUNT == 9, "the state tables have one row per state");

const pidf_limits_t pidf_limits_default = {
    .doc_bytes_max = PIDF_DOC_BYTES_DEFAULT,
    .elements_max = PIDF_ELEMENTS_DEFAULT,
    .depth_max = PIDF_DEPTH_DEFAULT,
};

/* ---- Names ------------------------------------------------------------- */

static const char *const activity_names[PIDF_ACT_COUNT] = {
    [PIDF_ACT_APPOINTMENT] = "appointment",
    [PIDF_ACT_AWAY] = "away",
    [PIDF_ACT_BREAKFAST] = "breakfast",
    [PIDF_ACT_BUSY] = "busy",
    [PIDF_ACT_DINNER] = "dinner",
    [PIDF_ACT_HOLIDAY] = "holiday",
    [PIDF_ACT_IN_TRANSIT] = "in-transit",
    [PIDF_ACT_LOOKING_FOR_WORK] = "looking-for-work",
    [PIDF_ACT_MEAL] = "meal",
    [PIDF_ACT_MEETING] = "meeting",
    [PIDF_ACT_ON_THE_PHONE] = "on-the-phone",
    [PIDF_ACT_PERFORMANCE] = "performance",
    [PIDF_ACT_PERMANENT_ABSENCE] = "permanent-absence",
    [PIDF_ACT_PLAYING] = "playing",
    [PIDF_ACT_PRESENTATION] = "presentation",
    [PIDF_ACT_SHOPPING] = "shopping",
    [PIDF_ACT_SLEEPING] = "sleeping",
    [PIDF_ACT_SPECTATOR] = "spectator",
    [PIDF_ACT_STEERING] = "steering",
    [PIDF_ACT_TRAVEL] = "travel",
    [PIDF_ACT_TV] = "tv",
    [PIDF_ACT_UNKNOWN] = "unknown",
    [PIDF_ACT_VACATION] = "vacation",
    [PIDF_ACT_WORKING] = "working",
    [PIDF_ACT_WORSHIP] = "worship",
    [PIDF_ACT_OTHER] = "other",
    [PIDF_ACT_DND] = "dnd",
    [PIDF_ACT_ALERTING] = "alerting",
};

#define ACT_ALL_MASK ((uint32_t)((UINT64_C(1) << PIDF_ACT_COUNT) - 1))
#define ACT_CISCO_MASK (PIDF_ACT_BIT(PIDF_ACT_DND) | PIDF_ACT_BIT(PIDF_ACT_ALERTING))

const char *pidf_activity_name(pidf_activity_t a)
{
    ASSERT((unsigned)a < PIDF_ACT_COUNT);
    return activity_names[a];
}

static int activity_lookup(str_t name)
{
    for (int i = 0; i < PIDF_ACT_COUNT; i++)
        if (str_eq_cstr(name, activity_names[i]))
            return i;
    return -1;
}

static const char *const err_names[PIDF_ERR_COUNT] = {
    [PIDF_OK] = "ok",
    [PIDF_ERR_TOO_LARGE] = "too-large",
    [PIDF_ERR_ENCODING] = "encoding",
    [PIDF_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [PIDF_ERR_DOCTYPE] = "doctype",
    [PIDF_ERR_TOO_MANY_ELEMENTS] = "too-many-elements",
    [PIDF_ERR_TOO_DEEP] = "too-deep",
    [PIDF_ERR_NOT_PIDF] = "not-pidf",
    [PIDF_ERR_ENTITY] = "entity",
    [PIDF_ERR_TOO_MANY_TUPLES] = "too-many-tuples",
    [PIDF_ERR_TUPLE_ID] = "tuple-id",
    [PIDF_ERR_NO_STATUS] = "no-status",
    [PIDF_ERR_BAD_BASIC] = "bad-basic",
    [PIDF_ERR_TOO_LONG] = "too-long",
    [PIDF_ERR_NOMEM] = "nomem",
};

const char *pidf_err_name(pidf_err_t code)
{
    ASSERT((unsigned)code < PIDF_ERR_COUNT);
    return err_names[code];
}

/* The activity namespaces of pidf.h: RFC 4480's, its draft's, Cisco's. */
static bool is_rpid_ns(const char *ns)
{
    return ns && (strcmp(ns, PIDF_NS_RPID) == 0 || strcmp(ns, PIDF_NS_RPID_STATUS) == 0 ||
                  strcmp(ns, PIDF_NS_CISCO_RPID) == 0);
}

static bool is_rpid(const pidf_xml_node_t *n, const char *name)
{
    return pidf_xml_name_is(n, name) && is_rpid_ns(pidf_xml_ns(n));
}

/* A PIDF element: in {pidf}, in no namespace, or in the namespace of the element holding it
 * (Cisco's web service writes tuples and everything in them in its own namespace). */
static bool is_pidf(const pidf_xml_node_t *n, const char *name)
{
    if (!pidf_xml_name_is(n, name))
        return false;
    const char *ns = pidf_xml_ns(n);
    const char *parent_ns = n->parent ? pidf_xml_ns(n->parent) : NULL;
    return !ns || strcmp(ns, PIDF_NS) == 0 || (parent_ns && strcmp(ns, parent_ns) == 0);
}

/* A data-model element of a person or device: {dm}, or as is_pidf, as phones write it. */
static bool is_dm_or_pidf(const pidf_xml_node_t *n, const char *name)
{
    return pidf_xml_is(n, name, PIDF_NS_DM) || is_pidf(n, name);
}

/* A mood name the encoder can write as an element name as it is: ASCII NCName. */
static bool mood_name_ok(str_t s)
{
    if (s.len == 0 || s.len > PIDF_ID_MAX_BYTES)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool other = (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!alpha && (i == 0 || !other))
            return false;
    }
    return true;
}

/* ---- Time (RFC 3339 §5.6) ---------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil: exact for every year, no table, no time zone database). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && leap(y) ? 29 : dim[m - 1];
}

#define TIME_MIN_MS (days_from_civil(0, 1, 1) * 86400000)
#define TIME_MAX_MS (days_from_civil(9999, 12, 31) * 86400000 + 86399999)

static bool digits(const char *p, const char *end, int n, int *out)
{
    if (end - p < n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (RFC 3339 §5.6), also with 't'/'z' or a
 * space (§5.6's note), an offset without its colon or no offset at all (read as UTC, as
 * xs:dateTime leaves it unspecified and some phones send it so). Milliseconds; more digits
 * of fraction are dropped. A leap second counts as the next minute's first.
 */
static int64_t parse_time(str_t s)
{
    const char *p = s.ptr, *end = s.ptr + s.len;
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    if (!digits(p, end, 4, &y) || end - p < 5 || p[4] != '-' || !digits(p + 5, end, 2, &mo) ||
        end - p < 8 || p[7] != '-' || !digits(p + 8, end, 2, &d))
        return PIDF_TIME_NONE;
    p += 10;
    if (p == end || (*p != 'T' && *p != 't' && *p != ' '))
        return PIDF_TIME_NONE;
    p++;
    if (!digits(p, end, 2, &h) || end - p < 3 || p[2] != ':' || !digits(p + 3, end, 2, &mi) ||
        end - p < 6 || p[5] != ':' || !digits(p + 6, end, 2, &sec))
        return PIDF_TIME_NONE;
    p += 8;
    if (p < end && *p == '.') {
        p++;
        int nd = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (nd < 3)
                ms = ms * 10 + (*p - '0');
            nd++, p++;
        }
        if (nd == 0)
            return PIDF_TIME_NONE;
        for (int i = nd; i < 3; i++)
            ms *= 10;
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!digits(p, end, 2, &oh))
            return PIDF_TIME_NONE;
        p += 2;
        if (p < end && *p == ':')
            p++;
        if (!digits(p, end, 2, &om))
            return PIDF_TIME_NONE;
        p += 2;
    }
    if (p != end || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60 || oh > 23 || om > 59)
        return PIDF_TIME_NONE;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    int64_t t_ms = t * 1000 + ms;
    if (t_ms < TIME_MIN_MS || t_ms > TIME_MAX_MS)
        return PIDF_TIME_NONE;                      /* not writable back in RFC 3339 */
    return t_ms;
}

static bool time_ok(int64_t t_ms)
{
    return t_ms == PIDF_TIME_NONE || (t_ms >= TIME_MIN_MS && t_ms <= TIME_MAX_MS);
}

/* v in width decimal digits, zero-padded (v < 10^width). */
static void write_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

/* Written with appends, not printf: every PUBLISH's NOTIFY body carries timestamps. */
static void write_time(buf_t *b, const char *el, int64_t t_ms)
{
    int64_t days = t_ms >= 0 ? t_ms / 86400000 : -((-t_ms + 86399999) / 86400000);
    int64_t rem = t_ms - days * 86400000;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned ms = (unsigned)(rem % 1000), s = (unsigned)(rem / 1000);
    ASSERT(y >= 0 && y <= 9999);                /* time_ok() holds it to RFC 3339's years */
    char t[25] = "0000-00-00T00:00:00.000Z";
    write_digits(t, (unsigned)y, 4);
    write_digits(t + 5, (unsigned)m, 2);
    write_digits(t + 8, (unsigned)d, 2);
    write_digits(t + 11, s / 3600, 2);
    write_digits(t + 14, s / 60 % 60, 2);
    write_digits(t + 17, s % 60, 2);
    buf_append_strs(b, "<", el, ">", NULL);
    if (ms) {
        write_digits(t + 20, ms, 3);
        buf_append(b, t, 24);
    } else {
        buf_append(b, t, 19);
        buf_append_str(b, "Z");
    }
    buf_append_strs(b, "</", el, ">", NULL);
}

/* ---- Contact priority (RFC 3863 §4.1.5, RFC 3261 §25.1 qvalue) ---------- */

/* "0", "0.8", "1", "1.000"; more than three decimals are accepted and cut. */
static uint16_t parse_qvalue(str_t s)
{
    if (s.len == 0 || (s.ptr[0] != '0' && s.ptr[0] != '1'))
        return PIDF_PRIORITY_NONE;
    unsigned v = (unsigned)(s.ptr[0] - '0') * 1000;
    if (s.len == 1)
        return (uint16_t)v;
    if (s.ptr[1] != '.')
        return PIDF_PRIORITY_NONE;
    unsigned scale = 100;
    for (size_t i = 2; i < s.len; i++) {
        unsigned dg = (unsigned)((unsigned char)s.ptr[i] - '0');
        if (dg > 9)
            return PIDF_PRIORITY_NONE;
        v += dg * scale;
        scale /= 10;
    }
    return v > 1000 ? PIDF_PRIORITY_NONE : (uint16_t)v;
}

static void write_qvalue(buf_t *b, uint16_t q)
{
    if (q == 1000 || q == 0) {
        buf_append_str(b, q ? "1" : "0");
        return;
    }
    char frac[4] = { (char)('0' + q / 100), (char)('0' + q / 10 % 10), (char)('0' + q % 10) };
    size_t n = 3;
    while (frac[n - 1] == '0')
        n--;
    buf_append_str(b, "0.");
    buf_append(b, frac, n);
}

/* ---- Decoding ---------------------------------------------------------- */

typedef struct {
    pidf_arena_t arena;
    pidf_doc_t *doc;
    pidf_err_t code;
    const char *reason;
    uint32_t line;
} dec_t;

static bool fail(dec_t *d, pidf_err_t code, const char *reason, const pidf_xml_node_t *at)
{
    if (d->code == PIDF_OK) {
        d->code = code;
        d->reason = reason;
        d->line = at ? pidf_xml_line(at) : 0;
    }
    return false;
}

static bool nomem(dec_t *d)
{
    return fail(d, PIDF_ERR_NOMEM, "out of memory", NULL);
}

/* Trimmed text of n, failing with TOO_LONG beyond max. */
static bool text_ident(dec_t *d, const pidf_xml_node_t *n, size_t max, const char *what, str_t *out)
{
    if (!pidf_xml_text(&d->arena, n, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return out->len <= max || fail(d, PIDF_ERR_TOO_LONG, what, n);
}

static bool attr_ident(dec_t *d, const pidf_xml_node_t *n, const char *name, const char *ns,
                       size_t max, const char *what, str_t *out)
{
    if (!pidf_xml_attr(&d->arena, n, name, ns, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return out->len <= max || fail(d, PIDF_ERR_TOO_LONG, what, n);
}

/* Free text: trimmed, cut to PIDF_NOTE_MAX_BYTES, trimmed again (so that decoding the
 * result gives it back unchanged). */
static bool text_free(dec_t *d, const pidf_xml_node_t *n, str_t *out)
{
    if (!pidf_xml_text(&d->arena, n, out))
        return nomem(d);
    *out = pidf_xml_trim(pidf_xml_cut(pidf_xml_trim(*out), PIDF_NOTE_MAX_BYTES));
    return true;
}

static bool add_note(dec_t *d, const pidf_xml_node_t *n, pidf_note_t *notes, uint8_t *count)
{
    if (*count >= PIDF_NOTES_MAX) {
        d->doc->ignored++;
        return true;
    }
    pidf_note_t *note = &notes[*count];
    if (!text_free(d, n, &note->text) ||
        !attr_ident(d, n, "lang", PIDF_XML_NS_XML, PIDF_LANG_MAX_BYTES, "xml:lang too long",
                    &note->lang))
        return false;
    (*count)++;
    return true;
}

static bool dec_timestamp(dec_t *d, const pidf_xml_node_t *n, int64_t *t_ms, bool *seen)
{
    if (*seen) {
        d->doc->ignored++;
        return true;
    }
    *seen = true;
    str_t s;
    if (!pidf_xml_text(&d->arena, n, &s))
        return nomem(d);
    *t_ms = parse_time(pidf_xml_trim(s));
    return true;
}

/* RFC 4480 §3.2: the children of <activities>, added to *acts. */
static bool dec_activities(dec_t *d, const pidf_xml_node_t *n, uint32_t *acts, str_t *other)
{
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        int a = is_rpid_ns(pidf_xml_ns(c)) ? activity_lookup(pidf_xml_name(c)) : -1;
        if (a < 0) {
            d->doc->ignored++;                  /* <rpid:note>, future values */
            continue;
        }
        if (a == PIDF_ACT_OTHER) {
            if (other->ptr) {
                d->doc->ignored++;
                continue;
            }
            if (!text_free(d, c, other))
                return false;
        }
        *acts |= PIDF_ACT_BIT(a);
    }
    return true;
}

/* RFC 4480's <mood>: values by name, "other" with its text. */
static bool dec_mood(dec_t *d, const pidf_xml_node_t *n, pidf_person_t *p)
{
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        str_t name = pidf_xml_name(c);
        bool dup = false;
        for (unsigned i = 0; i < p->mood_count; i++)
            dup |= str_eq(p->moods[i], name);
        if (!is_rpid_ns(pidf_xml_ns(c)) || pidf_xml_name_is(c, "note") || !mood_name_ok(name) ||
            dup || p->mood_count >= PIDF_MOODS_MAX) {
            d->doc->ignored++;
            continue;
        }
        if (str_eq_cstr(name, "other") && !text_free(d, c, &p->mood_other))
            return false;
        if (!pidf_arena_copy(&d->arena, name.ptr, name.len, &p->moods[p->mood_count]))
            return nomem(d);
        p->mood_count++;
    }
    return true;
}

/* RFC 3863 §4.1.3 - §4.1.4. */
static bool dec_status(dec_t *d, const pidf_xml_node_t *n, pidf_tuple_t *t)
{
    bool basic_seen = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        if (is_pidf(c, "basic") && !basic_seen) {
            basic_seen = true;
            str_t v;
            if (!pidf_xml_text(&d->arena, c, &v))
                return nomem(d);
            v = pidf_xml_trim(v);
            if (pidf_xml_eq_nocase(v, "open"))
                t->basic = PIDF_BASIC_OPEN;
            else if (pidf_xml_eq_nocase(v, "closed"))
                t->basic = PIDF_BASIC_CLOSED;
            else
                return fail(d, PIDF_ERR_BAD_BASIC, "<basic> neither open nor closed", c);
        } else if (is_rpid(c, "activities")) {
            if (!dec_activities(d, c, &t->activities, &t->activity_other))
                return false;
        } else {
            d->doc->ignored++;
        }
    }
    return true;
}

/* RFC 3863 §4.1.2. */
static bool dec_tuple(dec_t *d, const pidf_xml_node_t *n, pidf_tuple_t *t,
                      const pidf_tuple_t *before, uint32_t nbefore)
{
    *t = (pidf_tuple_t){ .contact_priority = PIDF_PRIORITY_NONE, .timestamp_ms = PIDF_TIME_NONE };
    if (!pidf_xml_attr(&d->arena, n, "id", NULL, &t->id))
        return nomem(d);
    t->id = pidf_xml_trim(t->id);
    if (!t->id.ptr || t->id.len == 0 || t->id.len > PIDF_ID_MAX_BYTES)
        return fail(d, PIDF_ERR_TUPLE_ID, "tuple id missing, empty or too long", n);
    for (uint32_t i = 0; i < nbefore; i++)
        if (str_eq(before[i].id, t->id))
            return fail(d, PIDF_ERR_TUPLE_ID, "two tuples with one id", n);

    bool status_seen = false, ts_seen = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        bool ok = true;
        if (is_pidf(c, "status") && !status_seen) {
            status_seen = true;
            ok = dec_status(d, c, t);
        } else if (pidf_xml_is(c, "deviceID", PIDF_NS_DM) && !t->device_id.ptr) {
            ok = text_ident(d, c, PIDF_URI_MAX_BYTES, "deviceID too long", &t->device_id);
        } else if (is_pidf(c, "contact") && !t->contact.ptr) {
            str_t q;
            ok = text_ident(d, c, PIDF_URI_MAX_BYTES, "contact too long", &t->contact) &&
                 (pidf_xml_attr(&d->arena, c, "priority", NULL, &q) || nomem(d));
            if (ok && q.ptr)
                t->contact_priority = parse_qvalue(pidf_xml_trim(q));
        } else if (is_pidf(c, "note")) {
            ok = add_note(d, c, t->notes, &t->note_count);
        } else if (is_pidf(c, "timestamp")) {
            ok = dec_timestamp(d, c, &t->timestamp_ms, &ts_seen);
        } else if (is_rpid(c, "activities")) {
            ok = dec_activities(d, c, &t->activities, &t->activity_other);
        } else {
            d->doc->ignored++;
        }
        if (!ok)
            return false;
    }
    return status_seen || fail(d, PIDF_ERR_NO_STATUS, "tuple without <status>", n);
}

/* An RFC 4479 person with RFC 4480's elements. */
static bool dec_person(dec_t *d, const pidf_xml_node_t *n, pidf_person_t *p)
{
    *p = (pidf_person_t){ .timestamp_ms = PIDF_TIME_NONE };
    if (!attr_ident(d, n, "id", NULL, PIDF_ID_MAX_BYTES, "person id too long", &p->id))
        return false;
    bool ts_seen = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        bool ok = true;
        if (is_rpid(c, "activities"))
            ok = dec_activities(d, c, &p->activities, &p->activity_other);
        else if (is_rpid(c, "mood"))
            ok = dec_mood(d, c, p);
        else if (is_dm_or_pidf(c, "note"))
            ok = add_note(d, c, p->notes, &p->note_count);
        else if (is_dm_or_pidf(c, "timestamp"))
            ok = dec_timestamp(d, c, &p->timestamp_ms, &ts_seen);
        else
            d->doc->ignored++;
        if (!ok)
            return false;
    }
    return true;
}

/* An RFC 4479 device. */
static bool dec_device(dec_t *d, const pidf_xml_node_t *n, pidf_device_t *v)
{
    *v = (pidf_device_t){ .timestamp_ms = PIDF_TIME_NONE };
    if (!attr_ident(d, n, "id", NULL, PIDF_ID_MAX_BYTES, "device id too long", &v->id))
        return false;
    bool ts_seen = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        bool ok = true;
        if (pidf_xml_is(c, "deviceID", PIDF_NS_DM) && !v->device_id.ptr)
            ok = text_ident(d, c, PIDF_URI_MAX_BYTES, "deviceID too long", &v->device_id);
        else if (is_dm_or_pidf(c, "note"))
            ok = add_note(d, c, v->notes, &v->note_count);
        else if (is_dm_or_pidf(c, "timestamp"))
            ok = dec_timestamp(d, c, &v->timestamp_ms, &ts_seen);
        else
            d->doc->ignored++;
        if (!ok)
            return false;
    }
    return true;
}

/* Tuples and persons are matched by local name in any namespace ({pidf} and {dm}, Cisco's,
 * none: pidf.h). */
static bool is_tuple(const pidf_xml_node_t *n)
{
    return pidf_xml_name_is(n, "tuple");
}

static bool is_person(const pidf_xml_node_t *n)
{
    return pidf_xml_name_is(n, "person");
}

static bool is_device(const pidf_xml_node_t *n)
{
    return pidf_xml_is(n, "device", PIDF_NS_DM);
}

/* RFC 3863 §4.1.1. Counts first, to size the one allocation. */
static bool dec_presence(dec_t *d, const pidf_xml_node_t *root, size_t input_len)
{
    if (!pidf_xml_is(root, "presence", PIDF_NS))
        return fail(d, PIDF_ERR_NOT_PIDF, "root is not a PIDF <presence>", root);
    uint32_t nt = 0, np = 0, nd = 0;
    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c)) {
        nt += is_tuple(c);
        np += is_person(c);
        nd += is_device(c);
    }
    if (nt > PIDF_TUPLES_MAX)
        return fail(d, PIDF_ERR_TOO_MANY_TUPLES, "too many tuples", root);
    np = np < PIDF_PERSONS_MAX ? np : PIDF_PERSONS_MAX;
    nd = nd < PIDF_DEVICES_MAX ? nd : PIDF_DEVICES_MAX;

    size_t arrays = sizeof(pidf_doc_t) + nt * sizeof(pidf_tuple_t) +
                    np * sizeof(pidf_person_t) + nd * sizeof(pidf_device_t);
    char *mem = malloc(arrays + input_len);
    if (!mem)
        return nomem(d);
    pidf_doc_t *doc = (pidf_doc_t *)(void *)mem;
    pidf_tuple_t *tuples = (pidf_tuple_t *)(void *)(mem + sizeof(pidf_doc_t));
    pidf_person_t *persons = (pidf_person_t *)(void *)(tuples + nt);
    pidf_device_t *devices = (pidf_device_t *)(void *)(persons + np);
    *doc = (pidf_doc_t){ .tuples = tuples, .persons = persons, .devices = devices };
    d->doc = doc;
    d->arena = (pidf_arena_t){ .base = mem + arrays, .cap = input_len };

    str_t entity;
    if (!pidf_xml_attr(&d->arena, root, "entity", NULL, &entity))
        return nomem(d);
    entity = pidf_xml_trim(entity);
    if (!entity.ptr || entity.len == 0 || entity.len > PIDF_URI_MAX_BYTES)
        return fail(d, PIDF_ERR_ENTITY, "entity missing, empty or too long", root);
    doc->entity = entity;

    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c)) {
        bool ok = true;
        if (is_tuple(c)) {
            ok = dec_tuple(d, c, &tuples[doc->tuple_count], tuples, doc->tuple_count);
            doc->tuple_count += ok;
        } else if (is_pidf(c, "note")) {
            ok = add_note(d, c, doc->notes, &doc->note_count);
        } else if (is_person(c) && doc->person_count < np) {
            ok = dec_person(d, c, &persons[doc->person_count]);
            doc->person_count += ok;
        } else if (is_device(c) && doc->device_count < nd) {
            ok = dec_device(d, c, &devices[doc->device_count]);
            doc->device_count += ok;
        } else {
            doc->ignored++;
        }
        if (!ok)
            return false;
    }
    /* Every tuple counted was decoded (or failed the document): the arrays are full. */
    ASSERT(doc->tuple_count == nt);
    ASSERT(doc->person_count == np && doc->device_count == nd);
    return true;
}

static int err_to_errno(pidf_err_t code)
{
    switch (code) {
    case PIDF_OK:
        return 0;
    case PIDF_ERR_TOO_LARGE:
    case PIDF_ERR_TOO_MANY_ELEMENTS:
    case PIDF_ERR_TOO_DEEP:
    case PIDF_ERR_TOO_MANY_TUPLES:
    case PIDF_ERR_TOO_LONG:
        return -E2BIG;
    case PIDF_ERR_NOMEM:
        return -ENOMEM;
    default:
        return -EBADMSG;
    }
}

static pidf_err_t from_xml_err(pidf_xml_err_t e)
{
    static const pidf_err_t map[] = {
        [PIDF_XML_OK] = PIDF_OK,
        [PIDF_XML_TOO_LARGE] = PIDF_ERR_TOO_LARGE,
        [PIDF_XML_ENCODING] = PIDF_ERR_ENCODING,
        [PIDF_XML_NOT_WELL_FORMED] = PIDF_ERR_NOT_WELL_FORMED,
        [PIDF_XML_DOCTYPE] = PIDF_ERR_DOCTYPE,
        [PIDF_XML_TOO_MANY_ELEMENTS] = PIDF_ERR_TOO_MANY_ELEMENTS,
        [PIDF_XML_TOO_DEEP] = PIDF_ERR_TOO_DEEP,
        [PIDF_XML_NOMEM] = PIDF_ERR_NOMEM,
    };
    return map[e];
}

static void check_limits(const pidf_limits_t *lim)
{
    ASSERT(lim->doc_bytes_max > 0 && lim->doc_bytes_max <= PIDF_DOC_BYTES_LIMIT);
    ASSERT(lim->elements_max > 0 && lim->elements_max <= PIDF_ELEMENTS_LIMIT);
    ASSERT(lim->depth_max > 0 && lim->depth_max <= PIDF_DEPTH_LIMIT);
}

int pidf_decode(const char *data, size_t len, const pidf_limits_t *lim, pidf_doc_t **out,
                pidf_error_t *err)
{
    pidf_error_t dummy;
    err = err ? err : &dummy;
    lim = lim ? lim : &pidf_limits_default;
    check_limits(lim);
    *out = NULL;

    pidf_xml_status_t st;
    pidf_xml_doc_t *x = pidf_xml_parse(data, len, lim->doc_bytes_max, lim->elements_max,
                                 lim->depth_max, &st);
    if (!x) {
        *err = (pidf_error_t){ from_xml_err(st.err), st.reason, st.line };
        return err_to_errno(err->code);
    }
    dec_t d = { .code = PIDF_OK, .reason = "" };
    bool ok = dec_presence(&d, pidf_xml_root(x), len);
    pidf_xml_free(x);
    if (!ok) {
        free(d.doc);
        *err = (pidf_error_t){ d.code, d.reason, d.line };
        return err_to_errno(d.code);
    }
    DEBUG_ASSERT(d.code == PIDF_OK);
    *err = (pidf_error_t){ PIDF_OK, "", 0 };
    *out = d.doc;
    return 0;
}

void pidf_doc_free(pidf_doc_t *doc)
{
    free(doc);
}

/* ---- Equality ---------------------------------------------------------- */

static bool notes_eq(const pidf_note_t *a, uint8_t na, const pidf_note_t *b, uint8_t nb)
{
    if (na != nb)
        return false;
    for (unsigned i = 0; i < na; i++)
        if (!str_eq(a[i].text, b[i].text) || !pidf_xml_opt_eq(a[i].lang, b[i].lang))
            return false;
    return true;
}

static bool tuple_eq(const pidf_tuple_t *a, const pidf_tuple_t *b)
{
    return str_eq(a->id, b->id) && a->basic == b->basic && a->activities == b->activities &&
           pidf_xml_opt_eq(a->activity_other, b->activity_other) &&
           pidf_xml_opt_eq(a->contact, b->contact) &&
           a->contact_priority == b->contact_priority &&
           pidf_xml_opt_eq(a->device_id, b->device_id) && a->timestamp_ms == b->timestamp_ms &&
           notes_eq(a->notes, a->note_count, b->notes, b->note_count);
}

static bool person_eq(const pidf_person_t *a, const pidf_person_t *b)
{
    if (!pidf_xml_opt_eq(a->id, b->id) || a->activities != b->activities ||
        !pidf_xml_opt_eq(a->activity_other, b->activity_other) ||
        a->mood_count != b->mood_count || !pidf_xml_opt_eq(a->mood_other, b->mood_other) ||
        a->timestamp_ms != b->timestamp_ms)
        return false;
    for (unsigned i = 0; i < a->mood_count; i++)
        if (!str_eq(a->moods[i], b->moods[i]))
            return false;
    return notes_eq(a->notes, a->note_count, b->notes, b->note_count);
}

static bool device_eq(const pidf_device_t *a, const pidf_device_t *b)
{
    return pidf_xml_opt_eq(a->id, b->id) && pidf_xml_opt_eq(a->device_id, b->device_id) &&
           a->timestamp_ms == b->timestamp_ms &&
           notes_eq(a->notes, a->note_count, b->notes, b->note_count);
}

bool pidf_doc_equal(const pidf_doc_t *a, const pidf_doc_t *b)
{
    if (!str_eq(a->entity, b->entity) || a->tuple_count != b->tuple_count ||
        a->person_count != b->person_count || a->device_count != b->device_count ||
        !notes_eq(a->notes, a->note_count, b->notes, b->note_count))
        return false;
    for (uint32_t i = 0; i < a->tuple_count; i++)
        if (!tuple_eq(&a->tuples[i], &b->tuples[i]))
            return false;
    for (uint32_t i = 0; i < a->person_count; i++)
        if (!person_eq(&a->persons[i], &b->persons[i]))
            return false;
    for (uint32_t i = 0; i < a->device_count; i++)
        if (!device_eq(&a->devices[i], &b->devices[i]))
            return false;
    return true;
}

/* ---- Encoding ---------------------------------------------------------- */

/* An identifier the decoder will give back as it is: UTF-8 XML characters, within max
 * (absent is fine unless required; present-empty only when empty_ok). */
static bool ident_ok(str_t s, size_t max, bool required, bool empty_ok)
{
    if (!s.ptr)
        return !required;
    if (s.len > max || !pidf_xml_valid(s))
        return false;
    return empty_ok || pidf_xml_trim(s).len > 0;
}

static bool notes_ok(const pidf_note_t *notes, uint8_t count)
{
    if (count > PIDF_NOTES_MAX)
        return false;
    for (unsigned i = 0; i < count; i++)
        if (!notes[i].text.ptr || !ident_ok(notes[i].lang, PIDF_LANG_MAX_BYTES, false, true))
            return false;
    return true;
}

static bool acts_ok(uint32_t acts)
{
    return (acts & ~ACT_ALL_MASK) == 0;
}

static bool doc_ok(const pidf_doc_t *doc)
{
    if (!ident_ok(doc->entity, PIDF_URI_MAX_BYTES, true, false) ||
        doc->tuple_count > PIDF_TUPLES_MAX || doc->person_count > PIDF_PERSONS_MAX ||
        doc->device_count > PIDF_DEVICES_MAX || !notes_ok(doc->notes, doc->note_count))
        return false;
    for (uint32_t i = 0; i < doc->tuple_count; i++) {
        const pidf_tuple_t *t = &doc->tuples[i];
        if (!ident_ok(t->id, PIDF_ID_MAX_BYTES, true, false) || t->basic > PIDF_BASIC_CLOSED ||
            !acts_ok(t->activities) || !ident_ok(t->contact, PIDF_URI_MAX_BYTES, false, true) ||
            (t->contact_priority > 1000 && t->contact_priority != PIDF_PRIORITY_NONE) ||
            !ident_ok(t->device_id, PIDF_URI_MAX_BYTES, false, true) ||
            !time_ok(t->timestamp_ms) || !notes_ok(t->notes, t->note_count))
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (str_eq(pidf_xml_trim(doc->tuples[j].id), pidf_xml_trim(t->id)))
                return false;
    }
    for (uint32_t i = 0; i < doc->person_count; i++) {
        const pidf_person_t *p = &doc->persons[i];
        if (!ident_ok(p->id, PIDF_ID_MAX_BYTES, false, true) || !acts_ok(p->activities) ||
            p->mood_count > PIDF_MOODS_MAX || !time_ok(p->timestamp_ms) ||
            !notes_ok(p->notes, p->note_count))
            return false;
        for (unsigned j = 0; j < p->mood_count; j++)
            if (!mood_name_ok(p->moods[j]))
                return false;
    }
    for (uint32_t i = 0; i < doc->device_count; i++) {
        const pidf_device_t *v = &doc->devices[i];
        if (!ident_ok(v->id, PIDF_ID_MAX_BYTES, false, true) ||
            !ident_ok(v->device_id, PIDF_URI_MAX_BYTES, false, true) ||
            !time_ok(v->timestamp_ms) || !notes_ok(v->notes, v->note_count))
            return false;
    }
    return true;
}

static void write_notes(buf_t *b, const char *el, const pidf_note_t *notes, uint8_t count)
{
    for (unsigned i = 0; i < count; i++) {
        buf_append_strs(b, "<", el, NULL);
        if (notes[i].lang.ptr)
            pidf_xml_write_attr(b, "xml:lang", notes[i].lang);
        buf_append_str(b, ">");
        pidf_xml_write_text(b, notes[i].text);
        buf_append_strs(b, "</", el, ">", NULL);
    }
}

static void write_activities(buf_t *b, uint32_t acts, str_t other)
{
    if (!acts)
        return;
    buf_append_str(b, "<rpid:activities>");
    for (int a = 0; a < PIDF_ACT_COUNT; a++) {
        if (!(acts & PIDF_ACT_BIT(a)))
            continue;
        const char *prefix = (ACT_CISCO_MASK & PIDF_ACT_BIT(a)) ? "ce" : "rpid";
        if (a == PIDF_ACT_OTHER) {
            buf_append_str(b, "<rpid:other>");
            pidf_xml_write_text(b, other.ptr ? other : (str_t){ "", 0 });
            buf_append_str(b, "</rpid:other>");
        } else {
            buf_append_strs(b, "<", prefix, ":", activity_names[a], "/>", NULL);
        }
    }
    buf_append_str(b, "</rpid:activities>");
}

static void write_tuple(buf_t *b, const pidf_tuple_t *t)
{
    buf_append_str(b, "<tuple");
    pidf_xml_write_attr(b, "id", t->id);
    buf_append_str(b, "><status>");
    if (t->basic != PIDF_BASIC_NONE)
        buf_append_str(b, t->basic == PIDF_BASIC_OPEN ? "<basic>open</basic>"
                                                      : "<basic>closed</basic>");
    write_activities(b, t->activities, t->activity_other);
    buf_append_str(b, "</status>");
    if (t->device_id.ptr)
        pidf_xml_write_el(b, "dm:deviceID", t->device_id);
    if (t->contact.ptr) {
        buf_append_str(b, "<contact");
        if (t->contact_priority != PIDF_PRIORITY_NONE) {
            buf_append_str(b, " priority=\"");
            write_qvalue(b, t->contact_priority);
            buf_append_str(b, "\"");
        }
        buf_append_str(b, ">");
        pidf_xml_write_text(b, t->contact);
        buf_append_str(b, "</contact>");
    }
    write_notes(b, "note", t->notes, t->note_count);
    if (t->timestamp_ms != PIDF_TIME_NONE)
        write_time(b, "timestamp", t->timestamp_ms);
    buf_append_str(b, "</tuple>");
}

static void write_person(buf_t *b, const pidf_person_t *p)
{
    buf_append_str(b, "<dm:person");
    if (p->id.ptr)
        pidf_xml_write_attr(b, "id", p->id);
    buf_append_str(b, ">");
    write_activities(b, p->activities, p->activity_other);
    if (p->mood_count) {
        buf_append_str(b, "<rpid:mood>");
        for (unsigned i = 0; i < p->mood_count; i++) {
            if (str_eq_cstr(p->moods[i], "other")) {
                buf_append_str(b, "<rpid:other>");
                pidf_xml_write_text(b, p->mood_other.ptr ? p->mood_other : (str_t){ "", 0 });
                buf_append_str(b, "</rpid:other>");
            } else {
                buf_append_str(b, "<rpid:");
                buf_append(b, p->moods[i].ptr, p->moods[i].len);
                buf_append_str(b, "/>");
            }
        }
        buf_append_str(b, "</rpid:mood>");
    }
    write_notes(b, "dm:note", p->notes, p->note_count);
    if (p->timestamp_ms != PIDF_TIME_NONE)
        write_time(b, "dm:timestamp", p->timestamp_ms);
    buf_append_str(b, "</dm:person>");
}

static void write_device(buf_t *b, const pidf_device_t *v)
{
    buf_append_str(b, "<dm:device");
    if (v->id.ptr)
        pidf_xml_write_attr(b, "id", v->id);
    buf_append_str(b, ">");
    if (v->device_id.ptr)
        pidf_xml_write_el(b, "dm:deviceID", v->device_id);
    write_notes(b, "dm:note", v->notes, v->note_count);
    if (v->timestamp_ms != PIDF_TIME_NONE)
        write_time(b, "dm:timestamp", v->timestamp_ms);
    buf_append_str(b, "</dm:device>");
}

int pidf_encode(buf_t *b, const pidf_doc_t *doc)
{
    if (!doc_ok(doc))
        return -EINVAL;
    uint32_t all = 0;
    for (uint32_t i = 0; i < doc->tuple_count; i++)
        all |= doc->tuples[i].activities;
    for (uint32_t i = 0; i < doc->person_count; i++)
        all |= doc->persons[i].activities;
    size_t before = b->len;

    buf_append_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"" PIDF_NS
                      "\" xmlns:dm=\"" PIDF_NS_DM "\" xmlns:rpid=\"" PIDF_NS_RPID "\"");
    if (all & ACT_CISCO_MASK)
        buf_append_str(b, " xmlns:ce=\"" PIDF_NS_CISCO_RPID "\"");
    pidf_xml_write_attr(b, "entity", doc->entity);
    buf_append_str(b, ">");
    for (uint32_t i = 0; i < doc->tuple_count; i++)
        write_tuple(b, &doc->tuples[i]);
    write_notes(b, "note", doc->notes, doc->note_count);
    for (uint32_t i = 0; i < doc->person_count; i++)
        write_person(b, &doc->persons[i]);
    for (uint32_t i = 0; i < doc->device_count; i++)
        write_device(b, &doc->devices[i]);
    buf_append_str(b, "</presence>\n");
    ASSERT(b->len > before);
    return 0;
}

/* ---- States ------------------------------------------------------------ */

static const char *const state_names[PIDF_STATE_COUNT] = {
    [PIDF_STATE_UNAVAILABLE] = "unavailable",
    [PIDF_STATE_AVAILABLE] = "available",
    [PIDF_STATE_AWAY] = "away",
    [PIDF_STATE_XA] = "xa",
    [PIDF_STATE_DND] = "dnd",
    [PIDF_STATE_BUSY] = "busy",
    [PIDF_STATE_ON_THE_PHONE] = "on-the-phone",
    [PIDF_STATE_MEETING] = "meeting",
    [PIDF_STATE_VACATION] = "vacation",
};

const char *pidf_state_name(pidf_state_t s)
{
    ASSERT((unsigned)s < PIDF_STATE_COUNT);
    return state_names[s];
}

#define B(a) PIDF_ACT_BIT(PIDF_ACT_##a)

/* Reading activities: the first row with a bit in the set decides (pidf.h's table). */
static const struct {
    pidf_state_t state;
    uint32_t acts;
} acts_to_state[] = {
    { PIDF_STATE_DND, B(DND) },
    { PIDF_STATE_ON_THE_PHONE, B(ON_THE_PHONE) },
    { PIDF_STATE_MEETING, B(MEETING) | B(APPOINTMENT) | B(PRESENTATION) },
    { PIDF_STATE_BUSY, B(BUSY) | B(PERFORMANCE) | B(SPECTATOR) | B(WORSHIP) },
    { PIDF_STATE_VACATION, B(VACATION) | B(HOLIDAY) },
    { PIDF_STATE_XA, B(PERMANENT_ABSENCE) },
    { PIDF_STATE_AWAY, B(AWAY) | B(MEAL) | B(BREAKFAST) | B(DINNER) | B(SHOPPING) |
                           B(SLEEPING) | B(TRAVEL) | B(IN_TRANSIT) | B(STEERING) },
};

/* Writing a state. DND carries busy for watchers that do not know Cisco's <dnd/>. */
static const uint32_t state_to_acts[PIDF_STATE_COUNT] = {
    [PIDF_STATE_UNAVAILABLE] = 0,
    [PIDF_STATE_AVAILABLE] = 0,
    [PIDF_STATE_AWAY] = B(AWAY),
    [PIDF_STATE_XA] = B(AWAY),
    [PIDF_STATE_DND] = B(BUSY) | B(DND),
    [PIDF_STATE_BUSY] = B(BUSY),
    [PIDF_STATE_ON_THE_PHONE] = B(ON_THE_PHONE),
    [PIDF_STATE_MEETING] = B(MEETING),
    [PIDF_STATE_VACATION] = B(VACATION),
};

#undef B

pidf_state_t pidf_state_from_pidf(pidf_basic_t basic, uint32_t acts)
{
    if (basic == PIDF_BASIC_CLOSED)
        return PIDF_STATE_UNAVAILABLE;
    for (size_t i = 0; i < ARRAY_LEN(acts_to_state); i++)
        if (acts & acts_to_state[i].acts)
            return acts_to_state[i].state;
    return PIDF_STATE_AVAILABLE;
}

pidf_basic_t pidf_state_basic(pidf_state_t s)
{
    ASSERT((unsigned)s < PIDF_STATE_COUNT);
    return s == PIDF_STATE_UNAVAILABLE ? PIDF_BASIC_CLOSED : PIDF_BASIC_OPEN;
}

uint32_t pidf_state_activities(pidf_state_t s)
{
    ASSERT((unsigned)s < PIDF_STATE_COUNT);
    return state_to_acts[s];
}

pidf_state_t pidf_doc_state(const pidf_doc_t *doc)
{
    uint32_t persons = 0, open_acts = 0, all_acts = 0;
    bool any_open = false, any_closed = false;
    for (uint32_t i = 0; i < doc->person_count; i++)
        persons |= doc->persons[i].activities;
    for (uint32_t i = 0; i < doc->tuple_count; i++) {
        const pidf_tuple_t *t = &doc->tuples[i];
        all_acts |= t->activities;
        if (t->basic == PIDF_BASIC_OPEN) {
            any_open = true;
            open_acts |= t->activities;
        }
        any_closed |= t->basic == PIDF_BASIC_CLOSED;
    }
    if (any_open)
        return pidf_state_from_pidf(PIDF_BASIC_OPEN, persons | open_acts);
    if (any_closed)
        return PIDF_STATE_UNAVAILABLE;
    if (persons | all_acts)
        return pidf_state_from_pidf(PIDF_BASIC_NONE, persons | all_acts);
    return PIDF_STATE_UNAVAILABLE;
}

str_t pidf_doc_note(const pidf_doc_t *doc)
{
    for (uint32_t i = 0; i < doc->person_count; i++)
        if (doc->persons[i].note_count)
            return doc->persons[i].notes[0].text;
    for (uint32_t i = 0; i < doc->tuple_count; i++)
        if (doc->tuples[i].basic == PIDF_BASIC_OPEN && doc->tuples[i].note_count)
            return doc->tuples[i].notes[0].text;
    if (doc->note_count)
        return doc->notes[0].text;
    for (uint32_t i = 0; i < doc->tuple_count; i++)
        if (doc->tuples[i].note_count)
            return doc->tuples[i].notes[0].text;
    return (str_t){ NULL, 0 };
}

/* ---- XMPP <show/> (RFC 6121 §4.7.2.1) ---------------------------------- */

static const char *const state_to_show[PIDF_STATE_COUNT] = {
    [PIDF_STATE_UNAVAILABLE] = NULL,
    [PIDF_STATE_AVAILABLE] = "",
    [PIDF_STATE_AWAY] = "away",
    [PIDF_STATE_XA] = "xa",
    [PIDF_STATE_DND] = "dnd",
    [PIDF_STATE_BUSY] = "dnd",
    [PIDF_STATE_ON_THE_PHONE] = "dnd",
    [PIDF_STATE_MEETING] = "dnd",
    [PIDF_STATE_VACATION] = "xa",
};

const char *pidf_state_to_xmpp_show(pidf_state_t s)
{
    ASSERT((unsigned)s < PIDF_STATE_COUNT);
    return state_to_show[s];
}

int pidf_state_from_xmpp_show(str_t show, pidf_state_t *out)
{
    if (show.len == 0 || str_eq_cstr(show, "chat"))
        *out = PIDF_STATE_AVAILABLE;
    else if (str_eq_cstr(show, "away"))
        *out = PIDF_STATE_AWAY;
    else if (str_eq_cstr(show, "xa"))
        *out = PIDF_STATE_XA;
    else if (str_eq_cstr(show, "dnd"))
        *out = PIDF_STATE_DND;
    else
        return -EINVAL;
    return 0;
}

/* ---- Composition ------------------------------------------------------- */

/* Rule 1 of pidf_compose: how strongly a state occupies the person, 0 for none. */
static int occupied_rank(pidf_state_t s)
{
    switch (s) {
    case PIDF_STATE_DND:
        return 4;
    case PIDF_STATE_ON_THE_PHONE:
        return 3;
    case PIDF_STATE_MEETING:
        return 2;
    case PIDF_STATE_BUSY:
        return 1;
    default:
        return 0;
    }
}

/* Rule 2: how available, 0 for UNAVAILABLE and the occupied states. */
static int available_rank(pidf_state_t s)
{
    switch (s) {
    case PIDF_STATE_AVAILABLE:
        return 4;
    case PIDF_STATE_AWAY:
        return 3;
    case PIDF_STATE_XA:
        return 2;
    case PIDF_STATE_VACATION:
        return 1;
    default:
        return 0;
    }
}

/* Occupied states rank above every available one; 0 takes no part. */
static int compose_rank(const pidf_source_t *s)
{
    ASSERT((unsigned)s->state < PIDF_STATE_COUNT);
    int occ = occupied_rank(s->state);
    if (occ)
        return 10 + occ;
    return s->phone_line ? 0 : available_rank(s->state);
}

pidf_state_t pidf_compose(const pidf_source_t *src, size_t n, size_t *winner)
{
    size_t best = n;
    int best_rank = 0;
    for (size_t i = 0; i < n; i++) {
        int r = compose_rank(&src[i]);
        if (r == 0)
            continue;
        if (best < n) {
            const pidf_source_t *a = &src[i], *b = &src[best];
            if (r < best_rank)
                continue;
            /* Same rank: higher priority, then newer (PIDF_TIME_NONE is INT64_MIN, the
             * oldest), then the earlier index (kept by requiring strictly better). */
            if (r == best_rank && (a->priority < b->priority ||
                                   (a->priority == b->priority &&
                                    a->timestamp_ms <= b->timestamp_ms)))
                continue;
        }
        best = i;
        best_rank = r;
    }
    if (winner)
        *winner = best;
    return best < n ? src[best].state : PIDF_STATE_UNAVAILABLE;
}

/* ---- Encoding sources -------------------------------------------------- */

/* pidf_encode_presence's tuple ids: "t" + [A-Za-z0-9.-] kept, other bytes _XX (so '_' is
 * always escaped and the mapping is one to one), or "h" + 16 hex digits of XXH3 when that
 * would be longer than PIDF_ID_MAX_BYTES. Always a valid xs:ID. */
static str_t source_tuple_id(str_t id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    out[n++] = 't';
    for (size_t i = 0; i < id.len; i++) {
        unsigned char c = (unsigned char)id.ptr[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (n + (keep ? 1 : 3) > PIDF_ID_MAX_BYTES) {
            uint64_t h = XXH3_64bits(id.ptr, id.len);
            out[0] = 'h';
            for (int k = 0; k < 16; k++)
                out[1 + k] = hex[(h >> (60 - 4 * k)) & 0xF];
            return (str_t){ out, 17 };
        }
        if (keep) {
            out[n++] = (char)c;
        } else {
            out[n++] = '_';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 0xF];
        }
    }
    return (str_t){ out, n };
}

static void source_tuple(pidf_tuple_t *t, str_t id, pidf_state_t state, const pidf_source_t *s)
{
    *t = (pidf_tuple_t){
        .id = id,
        .basic = pidf_state_basic(state),
        .contact_priority = PIDF_PRIORITY_NONE,
        .timestamp_ms = PIDF_TIME_NONE,
    };
    if (!s)
        return;
    t->contact = s->contact;
    t->timestamp_ms = time_ok(s->timestamp_ms) ? s->timestamp_ms : PIDF_TIME_NONE;
    if (s->note.ptr) {
        t->notes[0] = (pidf_note_t){ s->note, s->note_lang };
        t->note_count = 1;
    }
}

int pidf_encode_presence(buf_t *b, str_t entity, const pidf_source_t *src, size_t n,
                         bool composed)
{
    if (n > PIDF_TUPLES_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        ASSERT((unsigned)src[i].state < PIDF_STATE_COUNT);
    size_t w;
    pidf_state_t st = pidf_compose(src, n, &w);
    const pidf_source_t *win = w < n ? &src[w] : NULL;

    pidf_tuple_t tuples[PIDF_TUPLES_MAX];
    char ids[PIDF_TUPLES_MAX][PIDF_ID_MAX_BYTES];
    uint32_t nt = 0;
    if (n == 0) {
        source_tuple(&tuples[nt++], STR_LIT("offline"), PIDF_STATE_UNAVAILABLE, NULL);
    } else if (composed) {
        source_tuple(&tuples[nt++], STR_LIT("composed"), st, win);
    } else {
        for (size_t i = 0; i < n; i++)
            source_tuple(&tuples[nt++], source_tuple_id(src[i].id, ids[i]), src[i].state,
                         &src[i]);
    }
    pidf_person_t person = {
        .id = STR_LIT("p"),
        .activities = pidf_state_activities(st),
        .timestamp_ms = win && time_ok(win->timestamp_ms) ? win->timestamp_ms : PIDF_TIME_NONE,
    };
    if (win && win->note.ptr) {
        person.notes[0] = (pidf_note_t){ win->note, win->note_lang };
        person.note_count = 1;
    }
    ASSERT(nt >= 1 && nt <= PIDF_TUPLES_MAX);
    pidf_doc_t doc = {
        .entity = entity,
        .tuples = tuples,
        .tuple_count = nt,
        .persons = &person,
        .person_count = 1,
    };
    return pidf_encode(b, &doc);
}
