/*
 * libFuzzer target for dialog information (protocols/pidf/dialoginfo.c).
 *
 * Input: an application/dialog-info+xml body; or two bodies separated by a NUL byte (which no
 * body may contain), applied in turn to the state a subscriber holds.
 *
 * Checked on every input:
 *   - decoding gives a document and DIALOGINFO_OK, or no document, an error code with a
 *     reason and the errno of its class;
 *   - a decoded document keeps its bounds: dialog count, every string readable (ASan), valid
 *     UTF-8, trimmed and within its byte limit, enums and codes in range, ids present and
 *     unique;
 *   - the line state is the strongest of the dialogs' ones, BUSY exactly when a dialog is
 *     confirmed or an outgoing one is under way, IDLE exactly when every dialog is over;
 *   - whatever decodes encodes, and the output decodes again (with a byte limit that allows
 *     for escaping) to a dialoginfo_doc_equal document with nothing ignored, which encodes to
 *     the same bytes;
 *   - limits only ever make decoding fail: under small limits (4 KiB, 48 elements, depth 4)
 *     the input fails or gives the same document as under the defaults;
 *   - merging: with nothing held, a document is taken (a partial one asking for full state)
 *     without its terminated dialogs and with its line state; applying it again, or an older
 *     version, is stale; the same dialogs as the next partial version leave the held state
 *     as it was, a version further on asks for full state; with two bodies, the second
 *     applied to the first gives the outcome RFC 4235 §4.3 prescribes and exactly the
 *     dialogs it describes.
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/dialoginfo.h"
#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_dialoginfo: " __VA_ARGS__);                           \
        fputc('\n', stderr);                                                        \
        __builtin_trap();                                                           \
    } while (0)

static void check_str(str_t s, size_t max, bool required, const char *what)
{
    if (!s.ptr) {
        if (required)
            FAIL("%s absent", what);
        return;
    }
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s.len; i++)
        sink ^= (unsigned char)s.ptr[i];
    (void)sink;
    if (s.len > max)
        FAIL("%s longer than its limit (%zu)", what, s.len);
    if (!pidf_xml_valid(s))
        FAIL("%s is not UTF-8 XML text", what);
    if (pidf_xml_trim(s).len != s.len)
        FAIL("%s not trimmed", what);
}

static void check_party(const dialoginfo_party_t *p)
{
    check_str(p->uri, DIALOGINFO_URI_MAX_BYTES, false, "identity");
    check_str(p->display_name, DIALOGINFO_NAME_MAX_BYTES, false, "display name");
    check_str(p->target, DIALOGINFO_URI_MAX_BYTES, false, "target");
    if (p->display_name.ptr && !p->uri.ptr)
        FAIL("display name without identity");
}

static void check_doc(const dialoginfo_doc_t *d)
{
    if (d->state > DIALOGINFO_DOC_PARTIAL || d->dialog_count > DIALOGINFO_DIALOGS_MAX)
        FAIL("state or dialog count out of range");
    check_str(d->entity, DIALOGINFO_URI_MAX_BYTES, false, "entity");
    bool busy = false, ringing = false;
    for (uint32_t i = 0; i < d->dialog_count; i++) {
        const dialoginfo_dialog_t *dl = &d->dialogs[i];
        check_str(dl->id, DIALOGINFO_ID_MAX_BYTES, true, "dialog id");
        if (dl->id.len == 0)
            FAIL("empty dialog id");
        for (uint32_t j = 0; j < i; j++)
            if (str_eq(d->dialogs[j].id, dl->id))
                FAIL("repeated dialog id");
        check_str(dl->call_id, DIALOGINFO_ID_MAX_BYTES, false, "call-id");
        check_str(dl->local_tag, DIALOGINFO_ID_MAX_BYTES, false, "local-tag");
        check_str(dl->remote_tag, DIALOGINFO_ID_MAX_BYTES, false, "remote-tag");
        if ((unsigned)dl->state >= DIALOGINFO_STATE_COUNT ||
            (unsigned)dl->event >= DIALOGINFO_EVENT_COUNT ||
            (unsigned)dl->direction >= DIALOGINFO_DIR_COUNT)
            FAIL("state, event or direction out of range");
        if (dl->code != 0 && (dl->code < 100 || dl->code > 699))
            FAIL("code out of range");
        (void)dialoginfo_state_name(dl->state);
        (void)dialoginfo_event_name(dl->event);
        (void)dialoginfo_direction_name(dl->direction);
        check_party(&dl->local);
        check_party(&dl->remote);
        bool live = dl->state != DIALOGINFO_TERMINATED;
        bool up = dl->state == DIALOGINFO_CONFIRMED ||
                  (live && dl->direction == DIALOGINFO_DIR_INITIATOR);
        busy |= up;
        ringing |= live && !up;
        dialoginfo_line_t l = dialoginfo_dialog_line_state(dl);
        if (l != (up ? DIALOGINFO_LINE_BUSY : live ? DIALOGINFO_LINE_RINGING
                                                   : DIALOGINFO_LINE_IDLE))
            FAIL("dialog line state");
    }
    dialoginfo_line_t want = busy ? DIALOGINFO_LINE_BUSY
                             : ringing ? DIALOGINFO_LINE_RINGING
                                       : DIALOGINFO_LINE_IDLE;
    if (dialoginfo_line_state(d) != want)
        FAIL("document line state %s, expected %s", dialoginfo_line_name(dialoginfo_line_state(d)),
             dialoginfo_line_name(want));
}

static void check_roundtrip(const dialoginfo_doc_t *d)
{
    static const dialoginfo_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT,
                                             DIALOGINFO_DEPTH_DEFAULT };
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    if (dialoginfo_encode(&b1, d) != 0)
        FAIL("a decoded or merged document does not encode");
    dialoginfo_doc_t *again = NULL;
    dialoginfo_error_t err;
    if (dialoginfo_decode(b1.data, b1.len, &big, &again, &err) != 0)
        FAIL("encoded document does not decode: %s (%s)", dialoginfo_err_name(err.code),
             err.reason);
    if (!dialoginfo_doc_equal(d, again))
        FAIL("round trip changed the document");
    if (again->ignored != 0)
        FAIL("the encoder wrote elements the decoder ignores");
    if (dialoginfo_encode(&b2, again) != 0 || b1.len != b2.len ||
        memcmp(b1.data, b2.data, b1.len))
        FAIL("encoding is not stable");
    dialoginfo_doc_free(again);
    buf_fini(&b1);
    buf_fini(&b2);
}

static uint32_t live_count(const dialoginfo_doc_t *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->dialog_count; i++)
        n += d->dialogs[i].state != DIALOGINFO_TERMINATED;
    return n;
}

static const dialoginfo_dialog_t *find(const dialoginfo_doc_t *d, str_t id)
{
    for (uint32_t i = 0; i < d->dialog_count; i++)
        if (str_eq(d->dialogs[i].id, id))
            return &d->dialogs[i];
    return NULL;
}

static bool dialog_same(const dialoginfo_dialog_t *a, const dialoginfo_dialog_t *b)
{
    dialoginfo_doc_t da = { .dialogs = a, .dialog_count = 1 };
    dialoginfo_doc_t db = { .dialogs = b, .dialog_count = 1 };
    return dialoginfo_doc_equal(&da, &db);
}

/* What a merged state must be, whatever the outcome: full, no terminated dialog. */
static void check_held(const dialoginfo_doc_t *h, uint64_t version)
{
    check_doc(h);
    if (h->state != DIALOGINFO_DOC_FULL || h->version != version || h->ignored != 0)
        FAIL("held state not full, or of another version");
    if (live_count(h) != h->dialog_count)
        FAIL("held state keeps a terminated dialog");
    check_roundtrip(h);
}

/* held (may be NULL) + doc, checked against RFC 4235 §4.3; returns the new held state (the old
 * one freed) or held itself. */
static dialoginfo_doc_t *check_apply(dialoginfo_doc_t *held, const dialoginfo_doc_t *doc)
{
    dialoginfo_doc_t *out = (dialoginfo_doc_t *)(uintptr_t)1;
    int rc = dialoginfo_merge(held, doc, &out);
    bool partial = doc->state == DIALOGINFO_DOC_PARTIAL;
    if (held && doc->version <= held->version) {
        if (rc != DIALOGINFO_MERGE_STALE || out)
            FAIL("an old version was not stale (%d)", rc);
        return held;
    }
    if (rc == -E2BIG) {
        if (out)
            FAIL("-E2BIG left a document");
        if (!partial || !held)
            FAIL("-E2BIG from a decoded document alone");
        return held;
    }
    int want = partial && (!held || doc->version != held->version + 1) ? DIALOGINFO_MERGE_REFETCH
                                                                       : DIALOGINFO_MERGE_APPLIED;
    if (rc != want || !out)
        FAIL("merge outcome %d, expected %d", rc, want);
    check_held(out, doc->version);
    if (!pidf_xml_opt_eq(out->entity, doc->entity.ptr || !held ? doc->entity : held->entity))
        FAIL("merged entity");
    uint32_t expect = 0;
    for (uint32_t i = 0; i < doc->dialog_count; i++) {
        const dialoginfo_dialog_t *u = &doc->dialogs[i], *m = find(out, u->id);
        if (u->state == DIALOGINFO_TERMINATED ? m != NULL : !m || !dialog_same(m, u))
            FAIL("a dialog of the document is not as it says");
        expect += u->state != DIALOGINFO_TERMINATED;
    }
    if (partial && held)
        for (uint32_t i = 0; i < held->dialog_count; i++) {
            const dialoginfo_dialog_t *h = &held->dialogs[i];
            if (find(doc, h->id))
                continue;
            const dialoginfo_dialog_t *m = find(out, h->id);
            if (!m || !dialog_same(m, h))
                FAIL("a held dialog the document does not name changed");
            expect++;
        }
    if (out->dialog_count != expect)
        FAIL("merged state has %u dialogs, expected %u", out->dialog_count, expect);
    dialoginfo_doc_free(held);
    return out;
}

/* One document on its own: taken with nothing held, stale again, idempotent as the next
 * partial, a gap further on. */
static void check_merge_alone(const dialoginfo_doc_t *d)
{
    dialoginfo_doc_t *held = check_apply(NULL, d);
    if (dialoginfo_line_state(held) != dialoginfo_line_state(d))
        FAIL("taking a document changed its line state");
    if (held->dialog_count != live_count(d))
        FAIL("taking a document kept other than its live dialogs");
    if (check_apply(held, d) != held)
        FAIL("the same version again was applied");
    if (d->version <= UINT64_MAX - 3) {
        dialoginfo_doc_t next = *d;
        next.state = DIALOGINFO_DOC_PARTIAL;
        next.version = d->version + 1;
        dialoginfo_doc_t *h2 = check_apply(held, &next);
        if (h2->dialog_count != live_count(d) || dialoginfo_line_state(h2) !=
                                                     dialoginfo_line_state(d))
            FAIL("re-applying the same dialogs changed the held state");
        next.version = d->version + 3;
        held = check_apply(h2, &next);
    }
    dialoginfo_doc_free(held);
}

static int decode_checked(const uint8_t *data, size_t size, dialoginfo_doc_t **d)
{
    static const dialoginfo_limits_t small = { 4096, 48, 4 };
    dialoginfo_doc_t *ds = NULL;
    dialoginfo_error_t err;
    *d = (dialoginfo_doc_t *)(uintptr_t)1;
    int rc_small = dialoginfo_decode((const char *)data, size, &small, &ds, &err);
    int rc = dialoginfo_decode((const char *)data, size, NULL, d, &err);
    if (rc_small == 0 &&
        (rc != 0 || !dialoginfo_doc_equal(*d, ds) || (*d)->ignored != ds->ignored))
        FAIL("small limits changed the document instead of failing");
    dialoginfo_doc_free(ds);
    if (rc != 0) {
        if (*d != NULL)
            FAIL("failure left a document");
        if (err.code == DIALOGINFO_OK || err.code >= DIALOGINFO_ERR_COUNT || !err.reason ||
            !err.reason[0])
            FAIL("failure without a code and reason");
        if (rc != -EBADMSG && rc != -E2BIG && rc != -ENOMEM)
            FAIL("unexpected return %d", rc);
        (void)dialoginfo_err_name(err.code);
        return rc;
    }
    if (!*d || err.code != DIALOGINFO_OK)
        FAIL("success without a document");
    check_doc(*d);
    check_roundtrip(*d);
    check_merge_alone(*d);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dialoginfo_doc_t *d;
    if (decode_checked(data, size, &d) == 0) {
        dialoginfo_doc_free(d);
        return 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul)
        return 0;
    dialoginfo_doc_t *a, *b;
    if (decode_checked(data, (size_t)(nul - data), &a) != 0)
        return 0;
    size_t rest = size - (size_t)(nul - data) - 1;
    if (decode_checked(nul + 1, rest, &b) == 0) {
        dialoginfo_doc_t *held = check_apply(NULL, a);
        held = check_apply(held, b);
        dialoginfo_doc_free(held);
        dialoginfo_doc_free(b);
    }
    dialoginfo_doc_free(a);
    return 0;
}
