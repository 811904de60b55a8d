/*
 * Dialog information (RFC 4235): the documents of its examples, what Asterisk, CUCM,
 * FreeSWITCH, Kamailio and Yealink phones send for a line, the line state each shows, the
 * merge of partial documents with its version rules, round trips through the encoder, what
 * the decoder drops or refuses, and its bounds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/dialoginfo.h"
#include "protocols/pidf/pidf.h"
#include "tests/unit/t.h"

static dialoginfo_doc_t *roundtrip_check(dialoginfo_doc_t *d)
{
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    REQUIRE(dialoginfo_encode(&b1, d) == 0);
    dialoginfo_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT,
                                DIALOGINFO_DEPTH_DEFAULT };
    dialoginfo_doc_t *again = NULL;
    dialoginfo_error_t err;
    int rc = dialoginfo_decode(b1.data, b1.len, &big, &again, &err);
    if (rc != 0)
        fprintf(stderr, "re-decode failed: %s (%s)\n%.*s\n", dialoginfo_err_name(err.code),
                err.reason, (int)b1.len, b1.data);
    REQUIRE(rc == 0);
    CHECK(dialoginfo_doc_equal(d, again));
    CHECK_EQ(again->ignored, 0);
    CHECK_EQ(dialoginfo_line_state(again), dialoginfo_line_state(d));
    REQUIRE(dialoginfo_encode(&b2, again) == 0);
    CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    dialoginfo_doc_free(again);
    buf_fini(&b1);
    buf_fini(&b2);
    return d;
}

static dialoginfo_doc_t *D(const char *xml)
{
    dialoginfo_doc_t *d = NULL;
    dialoginfo_error_t err;
    int rc = dialoginfo_decode(xml, strlen(xml), NULL, &d, &err);
    if (rc != 0)
        fprintf(stderr, "decode failed: %s (%s) line %u\n", dialoginfo_err_name(err.code),
                err.reason, err.line);
    REQUIRE(rc == 0 && d);
    return roundtrip_check(d);
}

static dialoginfo_err_t ERRL(const char *xml, size_t len, const dialoginfo_limits_t *lim)
{
    dialoginfo_doc_t *d = (dialoginfo_doc_t *)1;
    dialoginfo_error_t err;
    int rc = dialoginfo_decode(xml, len, lim, &d, &err);
    CHECK(rc < 0);
    CHECK(d == NULL);
    CHECK(err.reason && err.reason[0]);
    switch (err.code) {
    case DIALOGINFO_ERR_TOO_LARGE:
    case DIALOGINFO_ERR_TOO_MANY_ELEMENTS:
    case DIALOGINFO_ERR_TOO_DEEP:
    case DIALOGINFO_ERR_TOO_MANY_DIALOGS:
    case DIALOGINFO_ERR_TOO_LONG:
        CHECK_EQ(rc, -E2BIG);
        break;
    default:
        CHECK_EQ(rc, -EBADMSG);
    }
    return err.code;
}

static dialoginfo_err_t ERR(const char *xml)
{
    return ERRL(xml, strlen(xml), NULL);
}

#define NS "urn:ietf:params:xml:ns:dialog-info"
#define ROOT "<dialog-info xmlns='" NS "' version='0' state='full' entity='sip:u@example.com'>"
#define END "</dialog-info>"

static void test_rfc4235_examples(void)
{
    /* Alice has sent an INVITE: one dialog in trying, its remote tag not yet known. */
    dialoginfo_doc_t *d = D("<?xml version=\"1.0\"?>\n"
                            "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"\n"
                            "             version=\"0\" state=\"full\"\n"
                            "             entity=\"sip:alice@example.com\">\n"
                            "  <dialog id=\"as7d900as8\" call-id=\"a84b4c76e66710\"\n"
                            "          local-tag=\"1928301774\" direction=\"initiator\">\n"
                            "    <state>trying</state>\n"
                            "  </dialog>\n"
                            "</dialog-info>\n");
    CHECK_EQ(d->version, 0);
    CHECK_EQ(d->state, DIALOGINFO_DOC_FULL);
    CHECK_STR(t_str(d->entity), "sip:alice@example.com");
    REQUIRE(d->dialog_count == 1);
    const dialoginfo_dialog_t *dl = &d->dialogs[0];
    CHECK_STR(t_str(dl->id), "as7d900as8");
    CHECK_STR(t_str(dl->call_id), "a84b4c76e66710");
    CHECK_STR(t_str(dl->local_tag), "1928301774");
    CHECK(dl->remote_tag.ptr == NULL);
    CHECK_EQ(dl->direction, DIALOGINFO_DIR_INITIATOR);
    CHECK_EQ(dl->state, DIALOGINFO_TRYING);
    CHECK_EQ(dl->event, DIALOGINFO_EVENT_NONE);
    CHECK_EQ(dl->code, 0);
    CHECK_EQ(dl->duration_s, DIALOGINFO_DURATION_NONE);
    CHECK(dl->local.uri.ptr == NULL && dl->remote.target.ptr == NULL);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    CHECK_EQ(d->ignored, 0);
    dialoginfo_doc_free(d);

    /* The call is up: both parties with identity and target, the target's feature
     * parameters (not kept), the duration. */
    d = D("<?xml version=\"1.0\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"\n"
          "             version=\"1\" state=\"full\" entity=\"sip:alice@example.com\">\n"
          "  <dialog id=\"as7d900as8\" call-id=\"a84b4c76e66710\"\n"
          "          local-tag=\"1928301774\" remote-tag=\"456887766\"\n"
          "          direction=\"initiator\">\n"
          "    <state>confirmed</state>\n"
          "    <duration>274</duration>\n"
          "    <local>\n"
          "      <identity display=\"Alice\">sip:alice@example.com</identity>\n"
          "      <target uri=\"sip:alice@pc33.example.com\">\n"
          "        <param pname=\"isfocus\" pval=\"true\"/>\n"
          "        <param pname=\"class\" pval=\"personal\"/>\n"
          "      </target>\n"
          "    </local>\n"
          "    <remote>\n"
          "      <identity display=\"Bob\">sip:bob@example.org</identity>\n"
          "      <target uri=\"sip:bobster@phone21.example.org\"/>\n"
          "    </remote>\n"
          "  </dialog>\n"
          "</dialog-info>\n");
    dl = &d->dialogs[0];
    CHECK_EQ(dl->state, DIALOGINFO_CONFIRMED);
    CHECK_STR(t_str(dl->remote_tag), "456887766");
    CHECK_EQ(dl->duration_s, 274);
    CHECK_STR(t_str(dl->local.uri), "sip:alice@example.com");
    CHECK_STR(t_str(dl->local.display_name), "Alice");
    CHECK_STR(t_str(dl->local.target), "sip:alice@pc33.example.com");
    CHECK_STR(t_str(dl->remote.uri), "sip:bob@example.org");
    CHECK_STR(t_str(dl->remote.display_name), "Bob");
    CHECK_STR(t_str(dl->remote.target), "sip:bobster@phone21.example.org");
    CHECK_EQ(d->ignored, 2);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);

    /* Bob declined: a partial document with the dialog terminated, and why. */
    d = D("<?xml version=\"1.0\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"\n"
          "             version=\"2\" state=\"partial\" entity=\"sip:alice@example.com\">\n"
          "  <dialog id=\"as7d900as8\" call-id=\"a84b4c76e66710\"\n"
          "          local-tag=\"1928301774\" direction=\"initiator\">\n"
          "    <state event=\"rejected\" code=\"486\">terminated</state>\n"
          "  </dialog>\n"
          "</dialog-info>\n");
    CHECK_EQ(d->state, DIALOGINFO_DOC_PARTIAL);
    CHECK_EQ(d->dialogs[0].state, DIALOGINFO_TERMINATED);
    CHECK_EQ(d->dialogs[0].event, DIALOGINFO_EVENT_REJECTED);
    CHECK_EQ(d->dialogs[0].code, 486);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_IDLE);
    dialoginfo_doc_free(d);

    /* A forked call: one dialog confirmed, a second call ringing in. */
    d = D("<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\"\n"
          "             state=\"full\" entity=\"sip:alice@example.com\">\n"
          "  <dialog id=\"as7d900as8\" call-id=\"a84b4c76e66710\" local-tag=\"1928301774\"\n"
          "          remote-tag=\"hh76a\" direction=\"initiator\">\n"
          "    <state>confirmed</state>\n"
          "  </dialog>\n"
          "  <dialog id=\"j7zgt54\" call-id=\"ASDRRVASDRF\" local-tag=\"123456789\"\n"
          "          remote-tag=\"EE345\" direction=\"recipient\">\n"
          "    <state>early</state>\n"
          "  </dialog>\n"
          "</dialog-info>\n");
    REQUIRE(d->dialog_count == 2);
    CHECK_EQ(dialoginfo_dialog_line_state(&d->dialogs[0]), DIALOGINFO_LINE_BUSY);
    CHECK_EQ(dialoginfo_dialog_line_state(&d->dialogs[1]), DIALOGINFO_LINE_RINGING);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);
}

static void test_asterisk(void)
{
    /* chan_sip and res_pjsip for a hint: the extension as dialog id, no Call-ID. */
    dialoginfo_doc_t *d = D(
        "<?xml version=\"1.0\"?>\n"
        "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"5\" "
        "state=\"full\" entity=\"sip:1000@pbx\"><dialog id=\"1000\" direction=\"recipient\">"
        "<state>early</state></dialog></dialog-info>\n");
    CHECK_STR(t_str(d->entity), "sip:1000@pbx");
    CHECK_EQ(d->dialogs[0].direction, DIALOGINFO_DIR_RECIPIENT);
    CHECK(d->dialogs[0].call_id.ptr == NULL);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_RINGING);
    dialoginfo_doc_free(d);

    /* Ringing with the caller named for pickup: parties before <state>. */
    d = D("<?xml version=\"1.0\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"6\" "
          "state=\"full\" entity=\"sip:1000@pbx\">\n"
          "<dialog id=\"1000\" call-id=\"pickup-dialog\" local-tag=\"\" remote-tag=\"\" "
          "direction=\"recipient\">\n"
          "<remote>\n<identity display=\"Carol &amp; Co\">sip:1001@pbx</identity>\n"
          "<target uri=\"sip:**1000@pbx\"/>\n</remote>\n"
          "<local>\n<identity>sip:1000@pbx</identity>\n<target uri=\"sip:1000@pbx\"/>\n"
          "</local>\n<state>early</state>\n</dialog>\n</dialog-info>\n");
    const dialoginfo_dialog_t *dl = &d->dialogs[0];
    CHECK_STR(t_str(dl->local_tag), "");
    CHECK_STR(t_str(dl->remote.display_name), "Carol & Co");
    CHECK_STR(t_str(dl->remote.target), "sip:**1000@pbx");
    CHECK(dl->local.display_name.ptr == NULL);
    CHECK_EQ(dl->state, DIALOGINFO_EARLY);
    dialoginfo_doc_free(d);

    /* res_pjsip on hold: confirmed with +sip.rendering=no (a parameter, not kept). */
    d = D("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"7\" "
          "state=\"full\" entity=\"sip:1000@pbx\">\n <dialog id=\"1000\">\n"
          "  <state>confirmed</state>\n  <local>\n   <target uri=\"sip:1000@pbx\">\n"
          "    <param pname=\"+sip.rendering\" pval=\"no\" />\n   </target>\n  </local>\n"
          " </dialog>\n</dialog-info>\n");
    CHECK_EQ(d->dialogs[0].direction, DIALOGINFO_DIR_NONE);
    CHECK_STR(t_str(d->dialogs[0].local.target), "sip:1000@pbx");
    CHECK(d->dialogs[0].local.uri.ptr == NULL);
    CHECK_EQ(d->ignored, 1);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);

    /* Idle: the dialog terminated, or no dialog at all. */
    d = D("<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" "
          "version=\"8\" state=\"full\" entity=\"sip:1000@pbx\">\n<dialog id=\"1000\">\n"
          "<state>terminated</state>\n</dialog>\n</dialog-info>\n");
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_IDLE);
    dialoginfo_doc_free(d);
    d = D("<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" "
          "state=\"full\" entity=\"sip:1000@pbx\"/>");
    CHECK_EQ(d->dialog_count, 0);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_IDLE);
    dialoginfo_doc_free(d);
}

static void test_cucm(void)
{
    /* Cisco's call-info extension beside the RFC elements; display names from the
     * directory, partial state after the first NOTIFY. */
    dialoginfo_doc_t *d = D(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"\n"
        " xmlns:call=\"urn:x-cisco:params:xml:ns:dialog-info:dialog:callinfo-dialog\"\n"
        " version=\"12\" state=\"partial\" entity=\"sip:2001@cucm.example.com\">\n"
        " <dialog id=\"1f3a-20d1@10.1.1.10\" call-id=\"8c1d4e00-1f3a-20d1@10.1.1.10\"\n"
        "  local-tag=\"97843561~e0c1\" remote-tag=\"4411-ab\" direction=\"recipient\">\n"
        "  <state>confirmed</state>\n"
        "  <call:orientation>to</call:orientation>\n"
        "  <local>\n"
        "   <identity display=\"J\xC3\xBCrgen M\xC3\xBCller\">"
        "sip:2001@cucm.example.com</identity>\n"
        "   <target uri=\"sip:2001@10.1.1.21:5060\"/>\n"
        "  </local>\n"
        "  <remote>\n"
        "   <identity display=\"Front Desk\">sip:2000@cucm.example.com</identity>\n"
        "   <target uri=\"sip:2000@10.1.1.22:5060\"/>\n"
        "  </remote>\n"
        "  <call:call-info><call:state>connected</call:state></call:call-info>\n"
        " </dialog>\n"
        "</dialog-info>\n");
    CHECK_EQ(d->version, 12);
    CHECK_EQ(d->state, DIALOGINFO_DOC_PARTIAL);
    const dialoginfo_dialog_t *dl = &d->dialogs[0];
    CHECK_STR(t_str(dl->call_id), "8c1d4e00-1f3a-20d1@10.1.1.10");
    CHECK_STR(t_str(dl->local_tag), "97843561~e0c1");
    CHECK_STR(t_str(dl->local.display_name), "J\xC3\xBCrgen M\xC3\xBCller");
    CHECK_STR(t_str(dl->remote.uri), "sip:2000@cucm.example.com");
    CHECK_EQ(d->ignored, 2);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);
}

static void test_freeswitch_kamailio_yealink(void)
{
    /* FreeSWITCH: pvalue for pval, a UUID id, a call being placed (early, initiator). */
    dialoginfo_doc_t *d = D(
        "<?xml version=\"1.0\"?>\n"
        "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"2\" "
        "state=\"full\" entity=\"sip:1000@fs.example.com\">\n"
        "<dialog id=\"e367f2db-dd4c-4563-975b-0ea1f1e75693\" direction=\"initiator\">\n"
        "<state>early</state>\n"
        "<local>\n<identity display=\"1000\">sip:1000@fs.example.com</identity>\n"
        "<target uri=\"sip:1000@fs.example.com\">\n"
        "<param pname=\"+sip.rendering\" pvalue=\"yes\"/>\n</target>\n</local>\n"
        "<remote>\n<identity display=\"07766088671\">sip:07766088671@fs.example.com</identity>\n"
        "<target uri=\"sip:**07766088671@fs.example.com\"/>\n</remote>\n"
        "</dialog>\n</dialog-info>\n");
    CHECK_EQ(d->dialogs[0].direction, DIALOGINFO_DIR_INITIATOR);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    CHECK_STR(t_str(d->dialogs[0].remote.display_name), "07766088671");
    dialoginfo_doc_free(d);

    /* Kamailio's presence_dialoginfo: attributes of its own on the root and the dialog, the
     * callee side of a call while the caller's phone rings it. */
    d = D("<?xml version=\"1.0\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"4\" "
          "state=\"full\" entity=\"sip:bob@example.org\" notify-state=\"full\">\n"
          "  <dialog id=\"a84b4c76e66710\" call-id=\"a84b4c76e66710\" local-tag=\"1928301774\" "
          "remote-tag=\"456887766\" direction=\"recipient\" kamailio-branch=\"0\">\n"
          "    <state>early</state>\n"
          "    <remote><identity display=\"alice\">sip:alice@example.org</identity>"
          "<target uri=\"sip:alice@example.org\"/></remote>\n"
          "    <local><identity display=\"bob\">sip:bob@example.org</identity>"
          "<target uri=\"sip:bob@192.0.2.7:5060;transport=udp\"/></local>\n"
          "  </dialog>\n</dialog-info>\n");
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_RINGING);
    CHECK_STR(t_str(d->dialogs[0].local.target), "sip:bob@192.0.2.7:5060;transport=udp");
    CHECK_EQ(d->ignored, 0);
    dialoginfo_doc_free(d);

    /* A Yealink BLF line: a confirmed call and the previous one, already over. */
    d = D("<?xml version=\"1.0\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" "
          "state=\"full\"\nentity=\"sip:1000@10.2.1.48:5060\">\n"
          "<dialog id=\"65626\" call-id=\"0_3138198645@10.10.20.31\" local-tag=\"2331766736\" "
          "remote-tag=\"1786911541\"\ndirection=\"initiator\">\n<state>confirmed</state>\n"
          "<local>\n<identity>sip:1000@10.2.1.48:5060</identity>\n"
          "<target uri=\"sip:1000@10.2.1.48:5060\"/>\n</local>\n"
          "<remote>\n<identity>sip:1@10.2.1.48:5060</identity>\n"
          "<target uri=\"sip:1@10.2.1.48:5060\"/>\n</remote>\n</dialog>\n"
          "<dialog id=\"65622\">\n<state>terminated</state>\n</dialog>\n</dialog-info>\n");
    CHECK_EQ(d->dialog_count, 2);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);
}

static void test_line_state(void)
{
    static const dialoginfo_line_t want[DIALOGINFO_STATE_COUNT][DIALOGINFO_DIR_COUNT] = {
        /*                        none      initiator  recipient */
        [DIALOGINFO_TRYING] = { DIALOGINFO_LINE_RINGING, DIALOGINFO_LINE_BUSY,
                                DIALOGINFO_LINE_RINGING },
        [DIALOGINFO_PROCEEDING] = { DIALOGINFO_LINE_RINGING, DIALOGINFO_LINE_BUSY,
                                    DIALOGINFO_LINE_RINGING },
        [DIALOGINFO_EARLY] = { DIALOGINFO_LINE_RINGING, DIALOGINFO_LINE_BUSY,
                               DIALOGINFO_LINE_RINGING },
        [DIALOGINFO_CONFIRMED] = { DIALOGINFO_LINE_BUSY, DIALOGINFO_LINE_BUSY,
                                   DIALOGINFO_LINE_BUSY },
        [DIALOGINFO_TERMINATED] = { DIALOGINFO_LINE_IDLE, DIALOGINFO_LINE_IDLE,
                                    DIALOGINFO_LINE_IDLE },
    };
    for (int s = 0; s < DIALOGINFO_STATE_COUNT; s++)
        for (int dir = 0; dir < DIALOGINFO_DIR_COUNT; dir++) {
            dialoginfo_dialog_t dl = { .id = STR_LIT("x"), .state = (dialoginfo_state_t)s,
                                       .direction = (dialoginfo_direction_t)dir };
            CHECK_EQ(dialoginfo_dialog_line_state(&dl), want[s][dir]);
        }

    /* The strongest wins, whatever the order. */
    dialoginfo_dialog_t dls[3] = {
        { .id = STR_LIT("a"), .state = DIALOGINFO_TERMINATED },
        { .id = STR_LIT("b"), .state = DIALOGINFO_EARLY, .direction = DIALOGINFO_DIR_RECIPIENT },
        { .id = STR_LIT("c"), .state = DIALOGINFO_CONFIRMED },
    };
    dialoginfo_doc_t doc = { .dialogs = dls, .dialog_count = 3 };
    CHECK_EQ(dialoginfo_line_state(&doc), DIALOGINFO_LINE_BUSY);
    doc.dialog_count = 2;
    CHECK_EQ(dialoginfo_line_state(&doc), DIALOGINFO_LINE_RINGING);
    doc.dialog_count = 1;
    CHECK_EQ(dialoginfo_line_state(&doc), DIALOGINFO_LINE_IDLE);
    doc.dialog_count = 0;
    CHECK_EQ(dialoginfo_line_state(&doc), DIALOGINFO_LINE_IDLE);
    doc.dialogs = dls + 1;
    doc.dialog_count = 2;
    CHECK_EQ(dialoginfo_line_state(&doc), DIALOGINFO_LINE_BUSY);

    CHECK_STR(dialoginfo_line_name(DIALOGINFO_LINE_RINGING), "ringing");
    CHECK_STR(dialoginfo_state_name(DIALOGINFO_PROCEEDING), "proceeding");
    CHECK_STR(dialoginfo_event_name(DIALOGINFO_EVENT_REMOTE_BYE), "remote-bye");
    CHECK_STR(dialoginfo_event_name(DIALOGINFO_EVENT_NONE), "");
    CHECK_STR(dialoginfo_direction_name(DIALOGINFO_DIR_RECIPIENT), "recipient");
    CHECK_STR(dialoginfo_merge_name(DIALOGINFO_MERGE_REFETCH), "refetch");
    for (int e = 0; e < DIALOGINFO_ERR_COUNT; e++)
        CHECK(dialoginfo_err_name((dialoginfo_err_t)e)[0]);
}

/* Merges xml into *held, replacing it on success; returns the outcome. */
static int apply(dialoginfo_doc_t **held, const char *xml)
{
    dialoginfo_doc_t *doc = D(xml), *out = (dialoginfo_doc_t *)1;
    int rc = dialoginfo_merge(*held, doc, &out);
    dialoginfo_doc_free(doc);
    if (rc == DIALOGINFO_MERGE_APPLIED || rc == DIALOGINFO_MERGE_REFETCH) {
        REQUIRE(out != NULL);
        CHECK_EQ(out->state, DIALOGINFO_DOC_FULL);
        CHECK_EQ(out->ignored, 0);
        for (uint32_t i = 0; i < out->dialog_count; i++)
            CHECK(out->dialogs[i].state != DIALOGINFO_TERMINATED);
        roundtrip_check(out);
        dialoginfo_doc_free(*held);
        *held = out;
    } else {
        CHECK(out == NULL);
    }
    return rc;
}

#define DOC(v, st) "<dialog-info xmlns='" NS "' version='" #v "' state='" st "'"
#define DLG(id, st, dir) "<dialog id='" id "' direction='" dir "'><state>" st "</state></dialog>"

static void test_merge_call_flow(void)
{
    /* A line through an incoming call: idle, ringing, answered, a second call ringing in,
     * declined, hung up. */
    dialoginfo_doc_t *held = NULL;
    CHECK_EQ(apply(&held, DOC(0, "full") " entity='sip:1000@pbx'/>"), DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(held->dialog_count, 0);
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_IDLE);

    CHECK_EQ(apply(&held, DOC(1, "partial") ">" DLG("c1", "early", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(held->version, 1);
    CHECK_STR(t_str(held->entity), "sip:1000@pbx");
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_RINGING);

    CHECK_EQ(apply(&held, DOC(2, "partial") ">" DLG("c1", "confirmed", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    REQUIRE(held->dialog_count == 1);
    CHECK_EQ(held->dialogs[0].state, DIALOGINFO_CONFIRMED);
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_BUSY);

    CHECK_EQ(apply(&held, DOC(3, "partial") ">" DLG("c2", "early", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    REQUIRE(held->dialog_count == 2);
    CHECK_STR(t_str(held->dialogs[0].id), "c1");
    CHECK_STR(t_str(held->dialogs[1].id), "c2");
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_BUSY);

    /* Repeats and older documents change nothing. */
    CHECK_EQ(apply(&held, DOC(3, "partial") ">" DLG("c1", "terminated", "recipient") END),
             DIALOGINFO_MERGE_STALE);
    CHECK_EQ(apply(&held, DOC(2, "full") "/>"), DIALOGINFO_MERGE_STALE);
    CHECK_EQ(held->dialog_count, 2);
    CHECK_EQ(held->version, 3);

    CHECK_EQ(apply(&held, DOC(4, "partial") ">"
                              "<dialog id='c2'><state event='rejected' code='603'>terminated"
                              "</state></dialog>" END),
             DIALOGINFO_MERGE_APPLIED);
    REQUIRE(held->dialog_count == 1);
    CHECK_STR(t_str(held->dialogs[0].id), "c1");

    CHECK_EQ(apply(&held, DOC(5, "partial") ">"
                              "<dialog id='c1'><state event='remote-bye'>terminated</state>"
                              "<duration>95</duration></dialog>" END),
             DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(held->dialog_count, 0);
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_IDLE);
    CHECK_STR(t_str(held->entity), "sip:1000@pbx");
    dialoginfo_doc_free(held);
}

static void test_merge_versions(void)
{
    /* A partial with nothing held: applied, and full state must be asked for. */
    dialoginfo_doc_t *held = NULL;
    CHECK_EQ(apply(&held, DOC(7, "partial") ">" DLG("a", "confirmed", "initiator") END),
             DIALOGINFO_MERGE_REFETCH);
    REQUIRE(held);
    CHECK_EQ(held->version, 7);
    CHECK_EQ(held->dialog_count, 1);
    CHECK(held->entity.ptr == NULL);

    /* A gap: the partial is applied (RFC 4235 §4.3) but a NOTIFY was lost. */
    CHECK_EQ(apply(&held, DOC(9, "partial") ">" DLG("b", "early", "recipient") END),
             DIALOGINFO_MERGE_REFETCH);
    CHECK_EQ(held->version, 9);
    CHECK_EQ(held->dialog_count, 2);

    /* The full state after the refresh replaces everything, whatever the gap. */
    CHECK_EQ(apply(&held, DOC(15, "full") " entity='sip:x@y'>" DLG("c", "proceeding", "recipient")
                              DLG("d", "terminated", "initiator") END),
             DIALOGINFO_MERGE_APPLIED);
    REQUIRE(held->dialog_count == 1);
    CHECK_STR(t_str(held->dialogs[0].id), "c");
    CHECK_STR(t_str(held->entity), "sip:x@y");
    CHECK_EQ(dialoginfo_line_state(held), DIALOGINFO_LINE_RINGING);

    /* A dialog that changes keeps its place; an unknown one terminated is no change. */
    CHECK_EQ(apply(&held, DOC(16, "partial") ">" DLG("e", "early", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(apply(&held, DOC(17, "partial") ">" DLG("zz", "terminated", "recipient")
                              DLG("c", "confirmed", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    REQUIRE(held->dialog_count == 2);
    CHECK_STR(t_str(held->dialogs[0].id), "c");
    CHECK_EQ(held->dialogs[0].state, DIALOGINFO_CONFIRMED);
    CHECK_STR(t_str(held->dialogs[1].id), "e");

    /* Nothing is newer than the largest version. */
    CHECK_EQ(apply(&held, DOC(18446744073709551615, "full") "/>"), DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(apply(&held, DOC(18446744073709551615, "partial") "/>"), DIALOGINFO_MERGE_STALE);
    dialoginfo_doc_free(held);

    /* A notifier that stamps every document version 0: the caller adopts full documents
     * with nothing held. */
    held = NULL;
    CHECK_EQ(apply(&held, DOC(0, "full") ">" DLG("a", "early", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(apply(&held, DOC(0, "full") ">" DLG("a", "confirmed", "recipient") END),
             DIALOGINFO_MERGE_STALE);
    dialoginfo_doc_t *again = NULL, *doc = D(DOC(0, "full") ">" DLG("a", "confirmed", "x") END);
    CHECK_EQ(dialoginfo_merge(NULL, doc, &again), DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(dialoginfo_line_state(again), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(again);
    dialoginfo_doc_free(doc);
    dialoginfo_doc_free(held);
}

static void test_merge_bounds(void)
{
    /* Held at the dialog limit: a new live dialog is refused and the held state stays. */
    static char xml[1u << 16];
    int n = snprintf(xml, sizeof(xml), DOC(1, "full") ">");
    for (unsigned i = 0; i < DIALOGINFO_DIALOGS_MAX; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<dialog id='d%u'><state>confirmed</state></dialog>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, END);
    dialoginfo_doc_t *held = NULL;
    CHECK_EQ(apply(&held, xml), DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(held->dialog_count, DIALOGINFO_DIALOGS_MAX);

    dialoginfo_doc_t *doc = D(DOC(2, "partial") ">" DLG("new", "early", "recipient") END);
    dialoginfo_doc_t *out = (dialoginfo_doc_t *)1;
    CHECK_EQ(dialoginfo_merge(held, doc, &out), -E2BIG);
    CHECK(out == NULL);
    dialoginfo_doc_free(doc);

    /* One ending and one starting in the same document fits. */
    CHECK_EQ(apply(&held, DOC(2, "partial") ">" DLG("new", "early", "recipient")
                              DLG("d5", "terminated", "recipient") END),
             DIALOGINFO_MERGE_APPLIED);
    CHECK_EQ(held->dialog_count, DIALOGINFO_DIALOGS_MAX);
    CHECK_STR(t_str(held->dialogs[DIALOGINFO_DIALOGS_MAX - 1].id), "new");
    CHECK_STR(t_str(held->dialogs[5].id), "d6");
    dialoginfo_doc_free(held);
}

static void test_lenient_and_ignored(void)
{
    /* Whitespace around values; unknown direction, event, code and duration dropped;
     * display-name preferred to display; a target without uri; second elements, unknown
     * children and foreign namespaces skipped and counted; escapes and CDATA. */
    dialoginfo_doc_t *d = D(
        "<dialog-info xmlns='" NS "' version=' 42 ' state='partial'>"
        "<x:ext xmlns:x='urn:example'/>"
        "<dialog id=' d1 ' call-id=' c@h ' direction='sideways'>"
        "<state event='hangup' code='486x'>\n  confirmed\n</state>"
        "<state>early</state>"
        "<duration>-3</duration>"
        "<replaces call-id='a' local-tag='b' remote-tag='c'/>"
        "<local><identity display-name=' Ann &lt;1&gt; ' display='ignored'> sip:a@b </identity>"
        "<identity>sip:second@b</identity><target/><target uri='sip:t@b'/>"
        "<session-description type='application/sdp'>v=0</session-description></local>"
        "<remote><identity><![CDATA[sip:c&d@e]]></identity></remote>"
        "</dialog>"
        "<dialog id='d2'><state code='700'>trying</state>"
        "<duration>18446744073709551615</duration></dialog>"
        "<dialog id='d3'><state code=' 180 ' event=' cancelled '>early</state>"
        "<duration> 0 </duration></dialog>"
        END);
    CHECK_EQ(d->version, 42);
    CHECK(d->entity.ptr == NULL);
    REQUIRE(d->dialog_count == 3);
    const dialoginfo_dialog_t *dl = &d->dialogs[0];
    CHECK_STR(t_str(dl->id), "d1");
    CHECK_STR(t_str(dl->call_id), "c@h");
    CHECK_EQ(dl->direction, DIALOGINFO_DIR_NONE);
    CHECK_EQ(dl->state, DIALOGINFO_CONFIRMED);
    CHECK_EQ(dl->event, DIALOGINFO_EVENT_NONE);
    CHECK_EQ(dl->code, 0);
    CHECK_EQ(dl->duration_s, DIALOGINFO_DURATION_NONE);
    CHECK_STR(t_str(dl->local.uri), "sip:a@b");
    CHECK_STR(t_str(dl->local.display_name), "Ann <1>");
    CHECK_STR(t_str(dl->local.target), "sip:t@b");
    CHECK_STR(t_str(dl->remote.uri), "sip:c&d@e");
    CHECK(dl->remote.display_name.ptr == NULL && dl->remote.target.ptr == NULL);
    CHECK_EQ(d->dialogs[1].code, 0);
    CHECK_EQ(d->dialogs[1].duration_s, DIALOGINFO_DURATION_NONE);
    CHECK_EQ(d->dialogs[2].code, 180);
    CHECK_EQ(d->dialogs[2].event, DIALOGINFO_EVENT_CANCELLED);
    CHECK_EQ(d->dialogs[2].duration_s, 0);
    /* ext, second state, replaces, second identity, target without uri, session-description */
    CHECK_EQ(d->ignored, 6);
    dialoginfo_doc_free(d);

    /* A prefixed root with children in no namespace. */
    d = D("<d:dialog-info xmlns:d='" NS "' version='1' state='full' entity='sip:a@b'>"
          "<dialog id='x'><state>early</state></dialog>"
          "<d:dialog id='y'><d:state>confirmed</d:state></d:dialog></d:dialog-info>");
    CHECK_EQ(d->dialog_count, 2);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_BUSY);
    dialoginfo_doc_free(d);

    /* Elements of other namespaces with the format's names are not the format's. */
    d = D(ROOT "<o:dialog xmlns:o='urn:other' id='z'><o:state>confirmed</o:state></o:dialog>"
               "<dialog id='w'><o:state xmlns:o='urn:other'>confirmed</o:state>"
               "<state>terminated</state></dialog>" END);
    CHECK_EQ(d->dialog_count, 1);
    CHECK_EQ(d->dialogs[0].state, DIALOGINFO_TERMINATED);
    CHECK_EQ(d->ignored, 2);
    dialoginfo_doc_free(d);
}

static void test_reject(void)
{
    CHECK_EQ(ERR(""), DIALOGINFO_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(ROOT "<dialog id='a'>"), DIALOGINFO_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR("<!DOCTYPE dialog-info>" ROOT END), DIALOGINFO_ERR_DOCTYPE);
    /* Billion laughs: refused at the DOCTYPE, before any entity is declared. */
    CHECK_EQ(ERR("<?xml version='1.0'?>\n<!DOCTYPE lolz [\n <!ENTITY lol 'lol'>\n"
                 " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
                 " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
                 " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
                 "]>\n" ROOT "<dialog id='&lol3;'><state>early</state></dialog>" END),
             DIALOGINFO_ERR_DOCTYPE);
    CHECK_EQ(ERR("<!DOCTYPE d SYSTEM 'file:///etc/passwd'>" ROOT END), DIALOGINFO_ERR_DOCTYPE);
    /* An undeclared entity is not well-formed, not expanded. */
    CHECK_EQ(ERR(ROOT "<dialog id='&xxe;'><state>early</state></dialog>" END),
             DIALOGINFO_ERR_NOT_WELL_FORMED);

    CHECK_EQ(ERR("<dialog-info version='0' state='full'/>"), DIALOGINFO_ERR_NOT_DIALOGINFO);
    CHECK_EQ(ERR("<dialog-info xmlns='urn:ietf:params:xml:ns:dialog' version='0' "
                 "state='full'/>"),
             DIALOGINFO_ERR_NOT_DIALOGINFO);
    CHECK_EQ(ERR("<dialoginfo xmlns='" NS "' version='0' state='full'/>"),
             DIALOGINFO_ERR_NOT_DIALOGINFO);
    CHECK_EQ(ERR("<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b'/>"),
             DIALOGINFO_ERR_NOT_DIALOGINFO);

    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' state='full'/>"), DIALOGINFO_ERR_VERSION);
    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' version='-1' state='full'/>"),
             DIALOGINFO_ERR_VERSION);
    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' version='1.0' state='full'/>"),
             DIALOGINFO_ERR_VERSION);
    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' version='18446744073709551616' state='full'/>"),
             DIALOGINFO_ERR_VERSION);
    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' version='1'/>"), DIALOGINFO_ERR_STATE);
    CHECK_EQ(ERR("<dialog-info xmlns='" NS "' version='1' state='Full'/>"),
             DIALOGINFO_ERR_STATE);

    CHECK_EQ(ERR(ROOT "<dialog><state>early</state></dialog>" END), DIALOGINFO_ERR_DIALOG_ID);
    CHECK_EQ(ERR(ROOT "<dialog id='  '><state>early</state></dialog>" END),
             DIALOGINFO_ERR_DIALOG_ID);
    CHECK_EQ(ERR(ROOT "<dialog id='a'><state>early</state></dialog>"
                      "<dialog id=' a'><state>terminated</state></dialog>" END),
             DIALOGINFO_ERR_DIALOG_ID);
    CHECK_EQ(ERR(ROOT "<dialog id='a'/>" END), DIALOGINFO_ERR_DIALOG_STATE);
    CHECK_EQ(ERR(ROOT "<dialog id='a'><state>ringing</state></dialog>" END),
             DIALOGINFO_ERR_DIALOG_STATE);
    CHECK_EQ(ERR(ROOT "<dialog id='a'><state>Early</state></dialog>" END),
             DIALOGINFO_ERR_DIALOG_STATE);
    CHECK_EQ(ERR(ROOT "<dialog id='a'><state/></dialog>" END), DIALOGINFO_ERR_DIALOG_STATE);
    CHECK_EQ(ERR(ROOT "<dialog id='a'><state>early<x/>ish</state></dialog>" END),
             DIALOGINFO_ERR_DIALOG_STATE);

    static const char utf16[] = "\xFF\xFE<\0d\0/\0>\0";
    CHECK_EQ(ERRL(utf16, sizeof(utf16) - 1, NULL), DIALOGINFO_ERR_ENCODING);
    CHECK_EQ(ERR(ROOT "<dialog id='\xC3\x28'><state>early</state></dialog>" END),
             DIALOGINFO_ERR_ENCODING);
    static const char nul[] = ROOT "<dialog id='a\0'><state>early</state></dialog>" END;
    CHECK_EQ(ERRL(nul, sizeof(nul) - 1, NULL), DIALOGINFO_ERR_ENCODING);
}

static void test_limits(void)
{
    static char xml[1u << 18];
    int n = snprintf(xml, sizeof(xml), ROOT);
    for (unsigned i = 0; i <= DIALOGINFO_DIALOGS_MAX; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<dialog id='d%u'><state>terminated</state></dialog>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, END);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_MANY_DIALOGS);
    dialoginfo_limits_t lim = { DIALOGINFO_DOC_BYTES_DEFAULT, DIALOGINFO_ELEMENTS_DEFAULT, 2 };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), DIALOGINFO_ERR_TOO_DEEP);
    lim = (dialoginfo_limits_t){ DIALOGINFO_DOC_BYTES_DEFAULT, 100, DIALOGINFO_DEPTH_DEFAULT };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), DIALOGINFO_ERR_TOO_MANY_ELEMENTS);
    lim = (dialoginfo_limits_t){ 1000, DIALOGINFO_ELEMENTS_DEFAULT, DIALOGINFO_DEPTH_DEFAULT };
    CHECK_EQ(ERRL(xml, strlen(xml), &lim), DIALOGINFO_ERR_TOO_LARGE);

    /* Unknown elements count towards the element bound too. */
    n = snprintf(xml, sizeof(xml), ROOT);
    for (unsigned i = 0; i < DIALOGINFO_ELEMENTS_DEFAULT; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<x/>");
    snprintf(xml + n, sizeof(xml) - (size_t)n, END);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_MANY_ELEMENTS);
    n = snprintf(xml, sizeof(xml), ROOT);
    for (unsigned i = 0; i < DIALOGINFO_DEPTH_DEFAULT; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<x>");
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_DEEP);

    char big[DIALOGINFO_URI_MAX_BYTES + 2];
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a'><state>early</state><local><identity>%s</identity></local>"
                  "</dialog>" END, big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a'><state>early</state><remote><target uri='%s'/></remote>"
                  "</dialog>" END, big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml),
             "<dialog-info xmlns='" NS "' version='0' state='full' entity='%s'/>", big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);
    big[DIALOGINFO_ID_MAX_BYTES + 1] = '\0';
    snprintf(xml, sizeof(xml), ROOT "<dialog id='%s'><state>early</state></dialog>" END, big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a' call-id='%s'><state>early</state></dialog>" END, big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a' remote-tag='%s'><state>early</state></dialog>" END, big);
    CHECK_EQ(ERR(xml), DIALOGINFO_ERR_TOO_LONG);

    /* Values that are matched, not kept, are dropped whatever their length. */
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a' direction='%s'><state event='%s' code='%s'>early</state>"
                  "</dialog>" END, big, big, big);
    dialoginfo_doc_t *d = D(xml);
    CHECK_EQ(d->dialogs[0].direction, DIALOGINFO_DIR_NONE);
    CHECK_EQ(d->dialogs[0].event, DIALOGINFO_EVENT_NONE);
    CHECK_EQ(d->dialogs[0].code, 0);
    dialoginfo_doc_free(d);

    /* At the limits, accepted. */
    big[DIALOGINFO_ID_MAX_BYTES] = '\0';
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='%s' call-id='%s'><state>early</state></dialog>" END, big, big);
    d = D(xml);
    CHECK_EQ(d->dialogs[0].id.len, DIALOGINFO_ID_MAX_BYTES);
    dialoginfo_doc_free(d);

    /* A display name is free text: cut at a character boundary, not refused. */
    char name[3 * DIALOGINFO_NAME_MAX_BYTES];
    size_t k = 0;
    name[k++] = 'a';                        /* then é at odd offsets: the cut falls inside one */
    while (k < DIALOGINFO_NAME_MAX_BYTES + 4)
        name[k++] = '\xC3', name[k++] = '\xA9';
    name[k] = '\0';
    snprintf(xml, sizeof(xml),
             ROOT "<dialog id='a'><state>early</state><local><identity display='%s'>sip:a@b"
                  "</identity></local></dialog>" END, name);
    d = D(xml);
    CHECK_EQ(d->dialogs[0].local.display_name.len, DIALOGINFO_NAME_MAX_BYTES - 1);
    dialoginfo_doc_free(d);
}

static void test_encode(void)
{
    dialoginfo_dialog_t dl[2] = {
        { .id = STR_LIT("d1"), .call_id = STR_LIT("c1@h"), .local_tag = STR_LIT("lt"),
          .remote_tag = STR_LIT("rt"), .direction = DIALOGINFO_DIR_RECIPIENT,
          .state = DIALOGINFO_TERMINATED, .event = DIALOGINFO_EVENT_LOCAL_BYE, .code = 200,
          .duration_s = 61,
          .local = { .uri = STR_LIT("sip:me@example.com"),
                     .display_name = STR_LIT("Me \"the\" <boss> & co\t\xFF"),
                     .target = STR_LIT("sip:me@192.0.2.1;transport=tcp&x=\"y\"") },
          .remote = { .target = STR_LIT("sip:them@example.com") } },
        { .id = STR_LIT("d2"), .state = DIALOGINFO_EARLY, .duration_s = DIALOGINFO_DURATION_NONE,
          .remote = { .uri = STR_LIT("sip:caller@example.com\r") } },
    };
    dialoginfo_doc_t doc = { .version = 9, .state = DIALOGINFO_DOC_PARTIAL,
                             .entity = STR_LIT("sip:me@example.com"), .dialogs = dl,
                             .dialog_count = 2 };
    buf_t b;
    buf_init(&b);
    REQUIRE(dialoginfo_encode(&b, &doc) == 0);
    buf_append(&b, "", 1);
    CHECK(strstr(b.data, "version=\"9\" state=\"partial\" entity=\"sip:me@example.com\""));
    CHECK(strstr(b.data, "<dialog id=\"d1\" call-id=\"c1@h\" local-tag=\"lt\" remote-tag=\"rt\""
                         " direction=\"recipient\">"));
    CHECK(strstr(b.data, "<state event=\"local-bye\" code=\"200\">terminated</state>"
                         "<duration>61</duration>"));
    CHECK(strstr(b.data, "display-name=\"Me &quot;the&quot; &lt;boss&gt; &amp; co&#9;"
                         "\xEF\xBF\xBD\""));
    CHECK(strstr(b.data, "<remote><target uri=\"sip:them@example.com\"/></remote>"));
    CHECK(strstr(b.data, "<dialog id=\"d2\">\n<state>early</state><remote><identity>"
                         "sip:caller@example.com&#13;</identity></remote>"));
    dialoginfo_doc_t *d = NULL;
    REQUIRE(dialoginfo_decode(b.data, b.len - 1, NULL, &d, NULL) == 0);
    CHECK_EQ(d->version, 9);
    CHECK_EQ(d->dialogs[0].event, DIALOGINFO_EVENT_LOCAL_BYE);
    CHECK_STR(t_str(d->dialogs[0].local.display_name), "Me \"the\" <boss> & co\t\xEF\xBF\xBD");
    CHECK_STR(t_str(d->dialogs[0].local.target), "sip:me@192.0.2.1;transport=tcp&x=\"y\"");
    CHECK(d->dialogs[0].remote.uri.ptr == NULL);
    CHECK_EQ(d->dialogs[1].direction, DIALOGINFO_DIR_NONE);
    CHECK_EQ(dialoginfo_line_state(d), DIALOGINFO_LINE_RINGING);
    roundtrip_check(d);
    dialoginfo_doc_free(d);

    /* Refused without touching b. */
    size_t len = b.len;
    dialoginfo_dialog_t bd = dl[0];
    dialoginfo_doc_t bad = { .version = 0, .state = DIALOGINFO_DOC_FULL, .dialogs = &bd,
                             .dialog_count = 1 };
    bd.state = DIALOGINFO_STATE_COUNT;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.event = (dialoginfo_event_t)-1;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.direction = DIALOGINFO_DIR_COUNT;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.code = 99;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd.code = 700;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.id = STR_LIT(" \t");
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd.id = (str_t){ NULL, 0 };
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.call_id = STR_LIT("c\xED\xA0\x80");
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bd.remote.display_name = STR_LIT("nameless");
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bd = dl[0];
    bad.state = (dialoginfo_doc_state_t)2;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bad.state = DIALOGINFO_DOC_FULL;
    dialoginfo_dialog_t twins[2] = { dl[0], dl[0] };
    bad.dialogs = twins;
    bad.dialog_count = 2;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    bad.dialog_count = DIALOGINFO_DIALOGS_MAX + 1;
    CHECK_EQ(dialoginfo_encode(&b, &bad), -EINVAL);
    CHECK_EQ(b.len, len);
    buf_fini(&b);

    /* An empty full document, without an entity. */
    buf_init(&b);
    dialoginfo_doc_t empty = { .version = 3, .state = DIALOGINFO_DOC_FULL };
    REQUIRE(dialoginfo_encode(&b, &empty) == 0);
    REQUIRE(dialoginfo_decode(b.data, b.len, NULL, &d, NULL) == 0);
    CHECK(dialoginfo_doc_equal(d, &empty));
    CHECK(d->entity.ptr == NULL);
    dialoginfo_doc_free(d);
    buf_fini(&b);
}

int main(void)
{
    T_RUN(test_rfc4235_examples);
    T_RUN(test_asterisk);
    T_RUN(test_cucm);
    T_RUN(test_freeswitch_kamailio_yealink);
    T_RUN(test_line_state);
    T_RUN(test_merge_call_flow);
    T_RUN(test_merge_versions);
    T_RUN(test_merge_bounds);
    T_RUN(test_lenient_and_ignored);
    T_RUN(test_reject);
    T_RUN(test_limits);
    T_RUN(test_encode);
    T_DONE();
}
