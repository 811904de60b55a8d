/*
 * libFuzzer target for watcher information (protocols/pidf/winfo.c).
 *
 * Input: an application/watcherinfo+xml body.
 *
 * Checked on every input:
 *   - decoding gives a document and WINFO_OK, or no document, an error code with a reason
 *     and the errno of its class;
 *   - a decoded document keeps its bounds: list and watcher counts, every string readable
 *     (ASan), valid UTF-8, trimmed and within its byte limit, enums in range, required
 *     values present;
 *   - whatever decodes encodes, and the output decodes again (with a byte limit that allows
 *     for escaping) to a winfo_doc_equal document with nothing ignored, which encodes to
 *     the same bytes;
 *   - limits only ever make decoding fail: under small limits (4 KiB, 48 elements, depth 3)
 *     the input fails or gives the same document as under the defaults.
 * Any difference is a finding, as is a crash, a sanitizer report or a leak.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"
#include "protocols/pidf/winfo.h"
#include "tests/fuzz/fuzz.h"

#define FAIL(...)                                                                   \
    do {                                                                            \
        fprintf(stderr, "fuzz_winfo: " __VA_ARGS__);                                \
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

static void check_doc(const winfo_doc_t *d)
{
    if (d->state > WINFO_STATE_PARTIAL || d->list_count > WINFO_LISTS_MAX)
        FAIL("state or list count out of range");
    uint32_t watchers = 0;
    for (uint32_t i = 0; i < d->list_count; i++) {
        const winfo_list_t *l = &d->lists[i];
        check_str(l->resource, WINFO_URI_MAX_BYTES, true, "resource");
        check_str(l->package, WINFO_ID_MAX_BYTES, true, "package");
        if (l->resource.len == 0 || l->package.len == 0)
            FAIL("empty resource or package");
        watchers += l->watcher_count;
        for (uint32_t j = 0; j < l->watcher_count; j++) {
            const winfo_watcher_t *w = &l->watchers[j];
            check_str(w->id, WINFO_ID_MAX_BYTES, true, "watcher id");
            if (w->id.len == 0)
                FAIL("empty watcher id");
            check_str(w->uri, WINFO_URI_MAX_BYTES, true, "watcher URI");
            check_str(w->display_name, WINFO_NAME_MAX_BYTES, false, "display-name");
            check_str(w->lang, WINFO_ID_MAX_BYTES, false, "xml:lang");
            if ((unsigned)w->status >= WINFO_STATUS_COUNT ||
                (unsigned)w->event >= WINFO_EVENT_COUNT)
                FAIL("status or event out of range");
            (void)winfo_status_name(w->status);
            (void)winfo_event_name(w->event);
        }
    }
    if (watchers > WINFO_WATCHERS_MAX)
        FAIL("too many watchers kept");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const winfo_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT,
                                        WINFO_DEPTH_DEFAULT };
    static const winfo_limits_t small = { 4096, 48, 3 };
    winfo_doc_t *d = (winfo_doc_t *)(uintptr_t)1, *ds = NULL;
    winfo_error_t err;
    int rc_small = winfo_decode((const char *)data, size, &small, &ds, &err);
    int rc = winfo_decode((const char *)data, size, NULL, &d, &err);
    if (rc_small == 0 && (rc != 0 || !winfo_doc_equal(d, ds) || d->ignored != ds->ignored))
        FAIL("small limits changed the document instead of failing");
    winfo_doc_free(ds);
    if (rc != 0) {
        if (d != NULL)
            FAIL("failure left a document");
        if (err.code == WINFO_OK || err.code >= WINFO_ERR_COUNT || !err.reason ||
            !err.reason[0])
            FAIL("failure without a code and reason");
        if (rc != -EBADMSG && rc != -E2BIG && rc != -ENOMEM)
            FAIL("unexpected return %d", rc);
        (void)winfo_err_name(err.code);
        return 0;
    }
    if (!d || err.code != WINFO_OK)
        FAIL("success without a document");
    check_doc(d);

    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    if (winfo_encode(&b1, d) != 0)
        FAIL("a decoded document does not encode");
    winfo_doc_t *again = NULL;
    if (winfo_decode(b1.data, b1.len, &big, &again, &err) != 0)
        FAIL("encoded document does not decode: %s (%s)", winfo_err_name(err.code),
             err.reason);
    if (!winfo_doc_equal(d, again))
        FAIL("round trip changed the document");
    if (again->ignored != 0)
        FAIL("the encoder wrote elements the decoder ignores");
    if (winfo_encode(&b2, again) != 0 || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len))
        FAIL("encoding is not stable");
    winfo_doc_free(again);
    winfo_doc_free(d);
    buf_fini(&b1);
    buf_fini(&b2);
    return 0;
}
