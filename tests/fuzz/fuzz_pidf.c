/*
 * libFuzzer target for PIDF (protocols/pidf/pidf.c).
 *
 * Input: the body of a PUBLISH or NOTIFY with Content-Type application/pidf+xml.
 *
 * Checked on every input:
 *   - decoding gives a document and PIDF_OK, or no document, an error code with a reason
 *     and the errno of its class (-EBADMSG, -E2BIG, -ENOMEM);
 *   - a decoded document keeps its bounds: counts within their maxima, every string
 *     readable (ASan sees a slice outside its block), valid UTF-8, identifiers and notes
 *     within their byte limits and trimmed, timestamps and priorities in range, activity
 *     sets within the enum;
 *   - whatever decodes encodes, the output decodes again (with a byte limit that allows
 *     for escaping) to a pidf_doc_equal document with nothing ignored, the same state and
 *     note, and that encodes to the same bytes;
 *   - the document's tuples, made into sources, encode with pidf_encode_presence (one tuple
 *     each and composed) into documents that decode, and whose state is the composed state
 *     as PIDF carries it (XA reads back as AWAY);
 *   - limits only ever make decoding fail: the input decoded under small limits (4 KiB,
 *     48 elements, depth 5) either fails or gives the same document, ignored count included,
 *     as under the defaults.
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_pidf: " __VA_ARGS__);                                 \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

static const pidf_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT,
                                   PIDF_DEPTH_DEFAULT };
static const pidf_limits_t small = { 4096, 48, 5 };

static void check_str(str_t s, size_t max, bool trimmed, const char *what)
{
    if (!s.ptr)
        return;
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
    if (s.len > max)
        FAIL("%s longer than its limit (%zu)", what, s.len);
    if (!pidf_xml_valid(s))
        FAIL("%s is not UTF-8 XML text", what);
    if (trimmed && pidf_xml_trim(s).len != s.len)
        FAIL("%s not trimmed", what);
}

static void check_notes(const pidf_note_t *n, unsigned count)
{
    if (count > PIDF_NOTES_MAX)
        FAIL("too many notes kept");
    for (unsigned i = 0; i < count; i++) {
        if (!n[i].text.ptr)
            FAIL("a note without text");
        check_str(n[i].text, PIDF_NOTE_MAX_BYTES, true, "note");
        check_str(n[i].lang, PIDF_LANG_MAX_BYTES, true, "xml:lang");
    }
}

static void check_time(int64_t t)
{
    if (t != PIDF_TIME_NONE && (t < -62167219200000LL || t > 253402300799999LL))
        FAIL("timestamp out of range");
}

static void check_acts(uint32_t acts, str_t other)
{
    if (acts >> PIDF_ACT_COUNT)
        FAIL("activity outside the enum");
    if (!!(acts & PIDF_ACT_BIT(PIDF_ACT_OTHER)) != !!other.ptr)
        FAIL("<other> bit and text disagree");
    check_str(other, PIDF_NOTE_MAX_BYTES, true, "other");
}

static void check_doc(const pidf_doc_t *d)
{
    if (d->tuple_count > PIDF_TUPLES_MAX || d->person_count > PIDF_PERSONS_MAX ||
        d->device_count > PIDF_DEVICES_MAX)
        FAIL("count over its maximum");
    if (!d->entity.ptr || d->entity.len == 0)
        FAIL("no entity");
    check_str(d->entity, PIDF_URI_MAX_BYTES, true, "entity");
    check_notes(d->notes, d->note_count);
    for (uint32_t i = 0; i < d->tuple_count; i++) {
        const pidf_tuple_t *t = &d->tuples[i];
        if (!t->id.ptr || t->id.len == 0)
            FAIL("tuple without id");
        check_str(t->id, PIDF_ID_MAX_BYTES, true, "tuple id");
        for (uint32_t j = 0; j < i; j++)
            if (str_eq(t->id, d->tuples[j].id))
                FAIL("repeated tuple id");
        if (t->basic > PIDF_BASIC_CLOSED)
            FAIL("basic out of range");
        check_acts(t->activities, t->activity_other);
        check_str(t->contact, PIDF_URI_MAX_BYTES, true, "contact");
        if (t->contact_priority > 1000 && t->contact_priority != PIDF_PRIORITY_NONE)
            FAIL("priority out of range");
        check_str(t->device_id, PIDF_URI_MAX_BYTES, true, "deviceID");
        check_time(t->timestamp_ms);
        check_notes(t->notes, t->note_count);
    }
    for (uint32_t i = 0; i < d->person_count; i++) {
        const pidf_person_t *p = &d->persons[i];
        check_str(p->id, PIDF_ID_MAX_BYTES, true, "person id");
        check_acts(p->activities, p->activity_other);
        if (p->mood_count > PIDF_MOODS_MAX)
            FAIL("too many moods");
        for (unsigned j = 0; j < p->mood_count; j++)
            check_str(p->moods[j], PIDF_ID_MAX_BYTES, true, "mood");
        check_str(p->mood_other, PIDF_NOTE_MAX_BYTES, true, "mood other");
        check_time(p->timestamp_ms);
        check_notes(p->notes, p->note_count);
    }
    for (uint32_t i = 0; i < d->device_count; i++) {
        const pidf_device_t *v = &d->devices[i];
        check_str(v->id, PIDF_ID_MAX_BYTES, true, "device id");
        check_str(v->device_id, PIDF_URI_MAX_BYTES, true, "device deviceID");
        check_time(v->timestamp_ms);
        check_notes(v->notes, v->note_count);
    }
}

static void roundtrip(const pidf_doc_t *d)
{
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    if (pidf_encode(&b1, d) != 0)
        FAIL("a decoded document does not encode");
    pidf_doc_t *again = NULL;
    pidf_error_t err;
    if (pidf_decode(b1.data, b1.len, &big, &again, &err) != 0)
        FAIL("encoded document does not decode: %s (%s)", pidf_err_name(err.code), err.reason);
    if (!pidf_doc_equal(d, again))
        FAIL("round trip changed the document");
    if (again->ignored != 0)
        FAIL("the encoder wrote elements the decoder ignores");
    if (pidf_doc_state(d) != pidf_doc_state(again))
        FAIL("round trip changed the state");
    if (!str_eq(pidf_doc_note(d), pidf_doc_note(again)))
        FAIL("round trip changed the note");
    if (pidf_encode(&b2, again) != 0 || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len))
        FAIL("encoding is not stable");
    pidf_doc_free(again);
    buf_fini(&b1);
    buf_fini(&b2);
}

/* The tuples as the engine's sources, through the neutral encoder. */
static void as_sources(const pidf_doc_t *d)
{
    pidf_source_t src[PIDF_TUPLES_MAX];
    uint32_t persons = 0;
    for (uint32_t i = 0; i < d->person_count; i++)
        persons |= d->persons[i].activities;
    for (uint32_t i = 0; i < d->tuple_count; i++) {
        const pidf_tuple_t *t = &d->tuples[i];
        src[i] = (pidf_source_t){
            .id = t->id,
            .state = pidf_state_from_pidf(t->basic, t->activities | persons),
            .priority = t->contact_priority,
            .timestamp_ms = t->timestamp_ms,
            .note = t->note_count ? t->notes[0].text : (str_t){ NULL, 0 },
            .note_lang = t->note_count ? t->notes[0].lang : (str_t){ NULL, 0 },
            .contact = t->contact,
        };
    }
    pidf_state_t composed = pidf_compose(src, d->tuple_count, NULL);
    pidf_state_t expect = composed == PIDF_STATE_XA ? PIDF_STATE_AWAY : composed;
    for (int mode = 0; mode < 2; mode++) {
        buf_t b;
        buf_init(&b);
        if (pidf_encode_presence(&b, d->entity, src, d->tuple_count, mode) != 0)
            FAIL("sources from a decoded document do not encode");
        pidf_doc_t *out = NULL;
        pidf_error_t err;
        if (pidf_decode(b.data, b.len, &big, &out, &err) != 0)
            FAIL("pidf_encode_presence output does not decode: %s", err.reason);
        roundtrip(out);
        if (out->tuple_count != (mode || d->tuple_count == 0 ? 1 : d->tuple_count))
            FAIL("one tuple per source expected");
        if (pidf_doc_state(out) != expect)
            FAIL("document state %s, composed %s", pidf_state_name(pidf_doc_state(out)),
                 pidf_state_name(composed));
        pidf_doc_free(out);
        buf_fini(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pidf_doc_t *d = (pidf_doc_t *)(uintptr_t)1, *ds = NULL;
    pidf_error_t err;
    int rc_small = pidf_decode((const char *)data, size, &small, &ds, &err);
    int rc = pidf_decode((const char *)data, size, NULL, &d, &err);
    if (rc_small == 0 && (rc != 0 || !pidf_doc_equal(d, ds) || d->ignored != ds->ignored))
        FAIL("small limits changed the document instead of failing");
    pidf_doc_free(ds);
    if (rc != 0) {
        if (d != NULL)
            FAIL("failure left a document");
        if (err.code == PIDF_OK || err.code >= PIDF_ERR_COUNT || !err.reason || !err.reason[0])
            FAIL("failure without a code and reason");
        if (rc != -EBADMSG && rc != -E2BIG && rc != -ENOMEM)
            FAIL("unexpected return %d", rc);
        (void)pidf_err_name(err.code);
        return 0;
    }
    if (!d || err.code != PIDF_OK)
        FAIL("success without a document");
    check_doc(d);
    str_t note = pidf_doc_note(d);
    if (note.ptr)
        check_str(note, PIDF_NOTE_MAX_BYTES, true, "doc note");
    pidf_state_t st = pidf_doc_state(d);
    const char *show = pidf_state_to_xmpp_show(st);
    pidf_state_t back;
    if (show && pidf_state_from_xmpp_show(str_from_cstr(show), &back) != 0)
        FAIL("show %s does not map back", show);
    roundtrip(d);
    as_sources(d);
    pidf_doc_free(d);
    return 0;
}
