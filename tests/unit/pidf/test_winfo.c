/*
 * Watcher information (RFC 3858): its example, the documents RFC 3857's flows carry (full,
 * then partial after the user decides), every status and event, round trips through the
 * encoder, what the decoder drops or refuses, and its bounds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/pidf.h"
#include "protocols/pidf/winfo.h"
#include "tests/unit/t.h"

static winfo_doc_t *roundtrip_check(winfo_doc_t *d)
{
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    REQUIRE(winfo_encode(&b1, d) == 0);
    winfo_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT, WINFO_DEPTH_DEFAULT };
    winfo_doc_t *again = NULL;
    winfo_error_t err;
    int rc = winfo_decode(b1.data, b1.len, &big, &again, &err);
    if (rc != 0)
        fprintf(stderr, "re-decode failed: %s (%s)\n%.*s\n", winfo_err_name(err.code),
                err.reason, (int)b1.len, b1.data);
    REQUIRE(rc == 0);
    CHECK(winfo_doc_equal(d, again));
    CHECK_EQ(again->ignored, 0);
    REQUIRE(winfo_encode(&b2, again) == 0);
    CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    winfo_doc_free(again);
    buf_fini(&b1);
    buf_fini(&b2);
    return d;
}

static winfo_doc_t *D(const char *xml)
{
    winfo_doc_t *d = NULL;
    winfo_error_t err;
    int rc = winfo_decode(xml, strlen(xml), NULL, &d, &err);
    if (rc != 0)
        fprintf(stderr, "decode failed: %s (%s) line %u\n", winfo_err_name(err.code),
                err.reason, err.line);
    REQUIRE(rc == 0 && d);
    return roundtrip_check(d);
}

static winfo_err_t ERRL(const char *xml, size_t len, const winfo_limits_t *lim)
{
    winfo_doc_t *d = (winfo_doc_t *)1;
    winfo_error_t err;
    int rc = winfo_decode(xml, len, lim, &d, &err);
    CHECK(rc < 0);
    CHECK(d == NULL);
    CHECK(err.reason && err.reason[0]);
    switch (err.code) {
    case WINFO_ERR_TOO_LARGE:
    case WINFO_ERR_TOO_MANY_ELEMENTS:
    case WINFO_ERR_TOO_DEEP:
    case WINFO_ERR_TOO_MANY_LISTS:
    case WINFO_ERR_TOO_MANY_WATCHERS:
    case WINFO_ERR_TOO_LONG:
        CHECK_EQ(rc, -E2BIG);
        break;
    default:
        CHECK_EQ(rc, -EBADMSG);
    }
    return err.code;
}

static winfo_err_t ERR(const char *xml)
{
    return ERRL(xml, strlen(xml), NULL);
}

#define ROOT "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='0' state='full'>"
#define LIST "<watcher-list resource='sip:u@example.com' package='presence'>"
#define END "</watcher-list></watcherinfo>"

static void test_rfc3858_example(void)
{
    winfo_doc_t *d = D("<?xml version=\"1.0\"?>\n"
                       "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\"\n"
                       "             version=\"0\" state=\"full\">\n"
                       "  <watcher-list resource=\"sip:professor@example.net\"\n"
                       "                package=\"presence\">\n"
                       "    <watcher status=\"active\"\n"
                       "             id=\"8ajksjda7s\"\n"
                       "             duration-subscribed=\"509\"\n"
                       "             event=\"approved\" >sip:userA@example.net</watcher>\n"
                       "    <watcher status=\"pending\"\n"
                       "             id=\"hh8juja87s997-ass7\"\n"
                       "             display-name=\"Mr. Subscriber\"\n"
                       "             event=\"subscribe\">sip:userB@example.org</watcher>\n"
                       "  </watcher-list>\n"
                       "</watcherinfo>\n");
    CHECK_EQ(d->version, 0);
    CHECK_EQ(d->state, WINFO_STATE_FULL);
    REQUIRE(d->list_count == 1);
    const winfo_list_t *l = &d->lists[0];
    CHECK_STR(t_str(l->resource), "sip:professor@example.net");
    CHECK_STR(t_str(l->package), "presence");
    REQUIRE(l->watcher_count == 2);
    const winfo_watcher_t *w = &l->watchers[0];
    CHECK_STR(t_str(w->id), "8ajksjda7s");
    CHECK_EQ(w->status, WINFO_STATUS_ACTIVE);
    CHECK_EQ(w->event, WINFO_EVENT_APPROVED);
    CHECK_EQ(w->duration_subscribed_s, 509);
    CHECK_EQ(w->expiration_s, WINFO_SECONDS_NONE);
    CHECK_STR(t_str(w->uri), "sip:userA@example.net");
    CHECK(w->display_name.ptr == NULL);
    w = &l->watchers[1];
    CHECK_EQ(w->status, WINFO_STATUS_PENDING);
    CHECK_EQ(w->event, WINFO_EVENT_SUBSCRIBE);
    CHECK_STR(t_str(w->display_name), "Mr. Subscriber");
    CHECK_STR(t_str(w->uri), "sip:userB@example.org");
    CHECK_EQ(d->ignored, 0);
    winfo_doc_free(d);
}

static void test_rfc3857_flow(void)
{
    /* The user subscribes to its own winfo and sees a pending watcher (full state), then
     * approves it and gets the change alone (partial state, next version). */
    winfo_doc_t *d = D("<?xml version=\"1.0\"?>\n"
                       "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\"\n"
                       "             version=\"0\" state=\"full\">\n"
                       "  <watcher-list resource=\"sip:B@example.com\" package=\"presence\">\n"
                       "    <watcher status=\"pending\" event=\"subscribe\" id=\"78s7ss\"\n"
                       "             expiration=\"3600\">sip:A@example.com</watcher>\n"
                       "  </watcher-list>\n"
                       "</watcherinfo>\n");
    CHECK_EQ(d->lists[0].watchers[0].expiration_s, 3600);
    winfo_doc_free(d);
    d = D("<?xml version=\"1.0\"?>\n"
          "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\"\n"
          "             version=\"1\" state=\"partial\">\n"
          "  <watcher-list resource=\"sip:B@example.com\" package=\"presence\">\n"
          "    <watcher status=\"active\" event=\"approved\" id=\"78s7ss\"\n"
          "             duration-subscribed=\"12\">sip:A@example.com</watcher>\n"
          "  </watcher-list>\n"
          "</watcherinfo>\n");
    CHECK_EQ(d->version, 1);
    CHECK_EQ(d->state, WINFO_STATE_PARTIAL);
    CHECK_EQ(d->lists[0].watchers[0].status, WINFO_STATUS_ACTIVE);
    winfo_doc_free(d);
}

static void test_every_status_and_event(void)
{
    char xml[8192];
    int n = snprintf(xml, sizeof(xml), ROOT LIST);
    for (int s = 0; s < WINFO_STATUS_COUNT; s++)
        for (int e = 0; e < WINFO_EVENT_COUNT; e++)
            n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                          "<watcher id='w%d.%d' status='%s' event='%s'>sip:w%d@x</watcher>", s,
                          e, winfo_status_name((winfo_status_t)s),
                          winfo_event_name((winfo_event_t)e), e);
    snprintf(xml + n, sizeof(xml) - (size_t)n, END);
    winfo_doc_t *d = D(xml);
    REQUIRE(d->lists[0].watcher_count == WINFO_STATUS_COUNT * WINFO_EVENT_COUNT);
    for (int s = 0; s < WINFO_STATUS_COUNT; s++)
        for (int e = 0; e < WINFO_EVENT_COUNT; e++) {
            const winfo_watcher_t *w = &d->lists[0].watchers[s * WINFO_EVENT_COUNT + e];
            CHECK_EQ(w->status, s);
            CHECK_EQ(w->event, e);
        }
    winfo_doc_free(d);
    CHECK_STR(winfo_status_name(WINFO_STATUS_WAITING), "waiting");
    CHECK_STR(winfo_event_name(WINFO_EVENT_NORESOURCE), "noresource");
    CHECK_STR(winfo_event_name(WINFO_EVENT_GIVEUP), "giveup");
    for (int e = 0; e < WINFO_ERR_COUNT; e++)
        CHECK(winfo_err_name((winfo_err_t)e)[0]);
}

static void test_lenient_and_ignored(void)
{
    /* Several lists (a resource list), an empty one, no lists at all, unknown elements and
     * children, xml:lang, huge and bad optional numbers, whitespace, escapes. */
    winfo_doc_t *d = D(
        "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version=' 18446744073709551614 '"
        " state='partial'><x:ext xmlns:x='urn:example'/>"
        "<watcher-list resource='sip:friends@example.com' package='presence'>"
        "<watcher id='a' status='waiting' event='timeout' xml:lang='de' "
        "display-name='  J&#xFC;rgen &amp; Co  ' expiration='-1' "
        "duration-subscribed='99999999999999999999'> sip:j@example.de <x:y xmlns:x='urn:e'/>"
        "</watcher><note/></watcher-list>"
        "<watcher-list resource='sip:b@example.com' package='presence.winfo'/>"
        "</watcherinfo>");
    CHECK_EQ(d->version, 18446744073709551614ULL);
    CHECK_EQ(d->list_count, 2);
    const winfo_watcher_t *w = &d->lists[0].watchers[0];
    CHECK_STR(t_str(w->display_name), "J\xC3\xBCrgen & Co");
    CHECK_STR(t_str(w->lang), "de");
    CHECK_STR(t_str(w->uri), "sip:j@example.de");
    CHECK_EQ(w->expiration_s, WINFO_SECONDS_NONE);
    CHECK_EQ(w->duration_subscribed_s, WINFO_SECONDS_NONE);
    CHECK_EQ(d->lists[1].watcher_count, 0);
    CHECK_STR(t_str(d->lists[1].package), "presence.winfo");
    CHECK_EQ(d->ignored, 3);
    winfo_doc_free(d);

    d = D("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='7' state='full'/>");
    CHECK_EQ(d->list_count, 0);
    winfo_doc_free(d);

    /* An empty watcher URI is kept (the schema's anyURI allows it). */
    d = D(ROOT LIST "<watcher id='e' status='active' event='approved'/>" END);
    CHECK_STR(t_str(d->lists[0].watchers[0].uri), "");
    winfo_doc_free(d);
}

static void test_reject(void)
{
    CHECK_EQ(ERR(""), WINFO_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(ROOT LIST), WINFO_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR("<!DOCTYPE w [<!ENTITY a 'b'>]>" ROOT "</watcherinfo>"), WINFO_ERR_DOCTYPE);
    CHECK_EQ(ERR("<watcherinfo version='0' state='full'/>"), WINFO_ERR_NOT_WINFO);
    CHECK_EQ(ERR("<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b'/>"),
             WINFO_ERR_NOT_WINFO);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' state='full'/>"),
             WINFO_ERR_VERSION);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='-1' "
                 "state='full'/>"),
             WINFO_ERR_VERSION);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' "
                 "version='18446744073709551616' state='full'/>"),
             WINFO_ERR_VERSION);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='1'/>"),
             WINFO_ERR_STATE);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='1' "
                 "state='Full'/>"),
             WINFO_ERR_STATE);
    CHECK_EQ(ERR(ROOT "<watcher-list package='presence'/></watcherinfo>"), WINFO_ERR_LIST);
    CHECK_EQ(ERR(ROOT "<watcher-list resource='sip:a@b' package=' '/></watcherinfo>"),
             WINFO_ERR_LIST);
    CHECK_EQ(ERR(ROOT LIST "<watcher status='active' event='approved'>sip:a</watcher>" END),
             WINFO_ERR_WATCHER);
    CHECK_EQ(ERR(ROOT LIST "<watcher id='a' event='approved'>sip:a</watcher>" END),
             WINFO_ERR_WATCHER);
    CHECK_EQ(ERR(ROOT LIST "<watcher id='a' status='active'>sip:a</watcher>" END),
             WINFO_ERR_WATCHER);
    CHECK_EQ(ERR(ROOT LIST "<watcher id='a' status='blocked' event='approved'>s</watcher>" END),
             WINFO_ERR_WATCHER);
    CHECK_EQ(ERR(ROOT LIST "<watcher id='a' status='active' event='approve'>s</watcher>" END),
             WINFO_ERR_WATCHER);
    static const char utf16[] = "\xFE\xFF\0<\0w\0/\0>";
    CHECK_EQ(ERRL(utf16, sizeof(utf16) - 1, NULL), WINFO_ERR_ENCODING);
}

static void test_limits(void)
{
    static char xml[1u << 21];
    int n = snprintf(xml, sizeof(xml), ROOT);
    for (unsigned i = 0; i <= WINFO_LISTS_MAX; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<watcher-list resource='sip:r%u@x' package='presence'/>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, "</watcherinfo>");
    CHECK_EQ(ERR(xml), WINFO_ERR_TOO_MANY_LISTS);

    n = snprintf(xml, sizeof(xml), ROOT LIST);
    for (unsigned i = 0; i <= WINFO_WATCHERS_MAX; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<watcher id='%u' status='active' event='approved'>s</watcher>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, END);
    CHECK_EQ(ERR(xml), WINFO_ERR_TOO_MANY_WATCHERS);
    winfo_limits_t lim = { WINFO_DOC_BYTES_DEFAULT, WINFO_ELEMENTS_DEFAULT, 2 };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), WINFO_ERR_TOO_DEEP);
    lim = (winfo_limits_t){ WINFO_DOC_BYTES_DEFAULT, 100, WINFO_DEPTH_DEFAULT };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), WINFO_ERR_TOO_MANY_ELEMENTS);
    lim = (winfo_limits_t){ 1000, WINFO_ELEMENTS_DEFAULT, WINFO_DEPTH_DEFAULT };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), WINFO_ERR_TOO_LARGE);

    char big[WINFO_URI_MAX_BYTES + 2];
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(xml, sizeof(xml), ROOT LIST "<watcher id='a' status='active' event='approved'>%s"
                               "</watcher>" END, big);
    CHECK_EQ(ERR(xml), WINFO_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml), ROOT "<watcher-list resource='%s' package='p'/></watcherinfo>",
             big);
    CHECK_EQ(ERR(xml), WINFO_ERR_TOO_LONG);
    big[WINFO_ID_MAX_BYTES + 1] = '\0';
    snprintf(xml, sizeof(xml), ROOT LIST "<watcher id='%s' status='active' event='approved'/>"
                               END, big);
    CHECK_EQ(ERR(xml), WINFO_ERR_TOO_LONG);
    /* display-name is free text: cut, not refused. */
    memset(big, 'n', WINFO_NAME_MAX_BYTES + 1);
    snprintf(xml, sizeof(xml), ROOT LIST "<watcher id='a' status='active' event='approved' "
                               "display-name='%s'/>" END, big);
    winfo_doc_t *d = D(xml);
    CHECK_EQ(d->lists[0].watchers[0].display_name.len, WINFO_NAME_MAX_BYTES);
    winfo_doc_free(d);
}

static void test_encode(void)
{
    winfo_watcher_t w[3] = {
        { .id = STR_LIT("w1"), .uri = STR_LIT("sip:a@example.com"),
          .display_name = STR_LIT("A \"the\" <boss> & co\t\xFF"), .lang = STR_LIT("en"),
          .status = WINFO_STATUS_PENDING, .event = WINFO_EVENT_SUBSCRIBE,
          .expiration_s = 600, .duration_subscribed_s = 0 },
        { .id = STR_LIT("w2"), .uri = STR_LIT("sip:b@example.com"),
          .status = WINFO_STATUS_TERMINATED, .event = WINFO_EVENT_REJECTED,
          .expiration_s = WINFO_SECONDS_NONE, .duration_subscribed_s = WINFO_SECONDS_NONE },
        { .id = STR_LIT("w3"), .uri = STR_LIT("sip:c@example.com"),
          .status = WINFO_STATUS_ACTIVE, .event = WINFO_EVENT_PROBATION,
          .expiration_s = UINT64_MAX - 1, .duration_subscribed_s = WINFO_SECONDS_NONE },
    };
    winfo_list_t l = { .resource = STR_LIT("sip:boss@example.com"),
                       .package = STR_LIT("presence"), .watchers = w, .watcher_count = 3 };
    winfo_doc_t doc = { .version = 42, .state = WINFO_STATE_PARTIAL, .lists = &l,
                        .list_count = 1 };
    buf_t b;
    buf_init(&b);
    REQUIRE(winfo_encode(&b, &doc) == 0);
    buf_append(&b, "", 1);
    CHECK(strstr(b.data, "version=\"42\" state=\"partial\""));
    CHECK(strstr(b.data, "display-name=\"A &quot;the&quot; &lt;boss&gt; &amp; co&#9;"
                         "\xEF\xBF\xBD\""));
    CHECK(strstr(b.data, "expiration=\"600\" duration-subscribed=\"0\""));
    CHECK(strstr(b.data, "expiration=\"18446744073709551614\""));
    CHECK(strstr(b.data, "xml:lang=\"en\""));
    winfo_doc_t *d = NULL;
    REQUIRE(winfo_decode(b.data, b.len - 1, NULL, &d, NULL) == 0);
    roundtrip_check(d);
    CHECK_EQ(d->version, 42);
    CHECK_EQ(d->lists[0].watchers[1].status, WINFO_STATUS_TERMINATED);
    CHECK_EQ(d->lists[0].watchers[1].event, WINFO_EVENT_REJECTED);
    CHECK(d->lists[0].watchers[1].display_name.ptr == NULL);
    CHECK_STR(t_str(d->lists[0].watchers[0].display_name),
              "A \"the\" <boss> & co\t\xEF\xBF\xBD");
    winfo_doc_free(d);

    /* Refused without touching b. */
    size_t len = b.len;
    winfo_watcher_t bw = w[0];
    winfo_list_t bl = { .resource = STR_LIT("sip:r"), .package = STR_LIT("presence"),
                        .watchers = &bw, .watcher_count = 1 };
    winfo_doc_t bad = { .version = 0, .state = WINFO_STATE_FULL, .lists = &bl,
                        .list_count = 1 };
    bw.status = WINFO_STATUS_COUNT;
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    bw = w[0];
    bw.event = (winfo_event_t)-1;
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    bw = w[0];
    bw.id = STR_LIT("  ");
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    bw = w[0];
    bw.uri = STR_LIT("sip:\xED\xA0\x80");
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    bw = w[0];
    bl.package = STR_LIT("");
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    bl.package = STR_LIT("presence");
    bad.state = (winfo_state_t)2;
    CHECK_EQ(winfo_encode(&b, &bad), -EINVAL);
    CHECK_EQ(b.len, len);
    buf_fini(&b);

    /* An empty full document. */
    buf_init(&b);
    winfo_doc_t empty = { .version = 3, .state = WINFO_STATE_FULL };
    REQUIRE(winfo_encode(&b, &empty) == 0);
    REQUIRE(winfo_decode(b.data, b.len, NULL, &d, NULL) == 0);
    CHECK(winfo_doc_equal(d, &empty));
    winfo_doc_free(d);
    buf_fini(&b);
}

int main(void)
{
    T_RUN(test_rfc3858_example);
    T_RUN(test_rfc3857_flow);
    T_RUN(test_every_status_and_event);
    T_RUN(test_lenient_and_ignored);
    T_RUN(test_reject);
    T_RUN(test_limits);
    T_RUN(test_encode);
    T_DONE();
}
