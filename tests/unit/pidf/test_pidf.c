/*
 * PIDF/RPID: the RFC 3863 and RFC 4480 examples, bodies as phones and servers send them
 * (Polycom, Cisco CUCM and its web service, Linphone, Jitsi, Bria, Asterisk, Kamailio), round
 * trips through the encoder, timestamps and qvalues, the state mappings (PIDF and XMPP
 * <show/>), composition of sources, and every kind of input the decoder must refuse.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/pidf/pidf.h"
#include "tests/unit/t.h"

/* ---- Helpers ----------------------------------------------------------- */

/* Decodes, and also checks the round trip every decoded document must survive:
 * encode, decode, equal; encoding that again gives the same bytes. */
static pidf_doc_t *roundtrip_check(pidf_doc_t *d)
{
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    REQUIRE(pidf_encode(&b1, d) == 0);
    pidf_limits_t big = { PIDF_DOC_BYTES_LIMIT, PIDF_ELEMENTS_LIMIT, PIDF_DEPTH_DEFAULT };
    pidf_doc_t *again = NULL;
    pidf_error_t err;
    int rc = pidf_decode(b1.data, b1.len, &big, &again, &err);
    if (rc != 0)
        fprintf(stderr, "re-decode failed: %s (%s)\n%.*s\n", pidf_err_name(err.code),
                err.reason, (int)b1.len, b1.data);
    REQUIRE(rc == 0);
    CHECK(pidf_doc_equal(d, again));
    CHECK_EQ(again->ignored, 0);
    REQUIRE(pidf_encode(&b2, again) == 0);
    CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    pidf_doc_free(again);
    buf_fini(&b1);
    buf_fini(&b2);
    return d;
}

static pidf_doc_t *D(const char *xml)
{
    pidf_doc_t *d = NULL;
    pidf_error_t err;
    int rc = pidf_decode(xml, strlen(xml), NULL, &d, &err);
    if (rc != 0)
        fprintf(stderr, "decode failed: %s (%s) line %u\n", pidf_err_name(err.code),
                err.reason, err.line);
    REQUIRE(rc == 0 && d);
    CHECK_EQ(err.code, PIDF_OK);
    return roundtrip_check(d);
}

/* The error code of a document that must fail; also checks the errno class. */
static pidf_err_t ERRL(const char *xml, size_t len, const pidf_limits_t *lim)
{
    pidf_doc_t *d = (pidf_doc_t *)1;
    pidf_error_t err;
    int rc = pidf_decode(xml, len, lim, &d, &err);
    CHECK(rc < 0);
    CHECK(d == NULL);
    CHECK(err.code != PIDF_OK);
    CHECK(err.reason && err.reason[0]);
    switch (err.code) {
    case PIDF_ERR_TOO_LARGE:
    case PIDF_ERR_TOO_MANY_ELEMENTS:
    case PIDF_ERR_TOO_DEEP:
    case PIDF_ERR_TOO_MANY_TUPLES:
    case PIDF_ERR_TOO_LONG:
        CHECK_EQ(rc, -E2BIG);
        break;
    case PIDF_ERR_NOMEM:
        CHECK_EQ(rc, -ENOMEM);
        break;
    default:
        CHECK_EQ(rc, -EBADMSG);
    }
    if (rc == 0)
        pidf_doc_free(d);
    return err.code;
}

static pidf_err_t ERR(const char *xml)
{
    return ERRL(xml, strlen(xml), NULL);
}

#define ACT(a) PIDF_ACT_BIT(PIDF_ACT_##a)

#define HEAD                                                                               \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                         \
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""                                      \
    " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\""                                 \
    " xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:alice@example.com\">"
#define TAIL "</presence>"
#define OPEN_TUPLE "<tuple id=\"t1\"><status><basic>open</basic></status></tuple>"

/* ---- RFC examples ------------------------------------------------------ */

static void test_rfc3863_examples(void)
{
    /* The minimal example, with a prefix instead of a default namespace. */
    pidf_doc_t *d = D("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<impp:presence xmlns:impp=\"urn:ietf:params:xml:ns:pidf\"\n"
                      "    entity=\"pres:someone@example.com\">\n"
                      "  <impp:tuple id=\"sg89ae\">\n"
                      "    <impp:status>\n"
                      "      <impp:basic>open</impp:basic>\n"
                      "    </impp:status>\n"
                      "    <impp:contact priority=\"0.8\">tel:+09012345678</impp:contact>\n"
                      "  </impp:tuple>\n"
                      "</impp:presence>\n");
    CHECK_STR(t_str(d->entity), "pres:someone@example.com");
    REQUIRE(d->tuple_count == 1);
    CHECK_STR(t_str(d->tuples[0].id), "sg89ae");
    CHECK_EQ(d->tuples[0].basic, PIDF_BASIC_OPEN);
    CHECK_STR(t_str(d->tuples[0].contact), "tel:+09012345678");
    CHECK_EQ(d->tuples[0].contact_priority, 800);
    CHECK_EQ(d->tuples[0].timestamp_ms, PIDF_TIME_NONE);
    CHECK_EQ(d->person_count, 0);
    CHECK_EQ(d->ignored, 0);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AVAILABLE);
    pidf_doc_free(d);

    /* The example with two tuples, status extensions in other namespaces, notes in two
     * languages and a note about the presentity. */
    d = D("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
          "    xmlns:im=\"urn:ietf:params:xml:ns:pidf:im\"\n"
          "    xmlns:myex=\"http://id.example.com/presence/\"\n"
          "    entity=\"pres:someone@example.com\">\n"
          "  <tuple id=\"bs35r9\">\n"
          "    <status>\n"
          "      <basic>open</basic>\n"
          "      <im:im>busy</im:im>\n"
          "      <myex:location>home</myex:location>\n"
          "    </status>\n"
          "    <contact priority=\"0.8\">im:someone@mobilecarrier.net</contact>\n"
          "    <note xml:lang=\"en\">Don't Disturb Me!</note>\n"
          "    <note xml:lang=\"fr\">Ne derangez pas, s'il vous plait</note>\n"
          "    <timestamp>2001-10-27T16:49:29Z</timestamp>\n"
          "  </tuple>\n"
          "  <tuple id=\"eg92n8\">\n"
          "    <status>\n"
          "      <basic>open</basic>\n"
          "    </status>\n"
          "    <contact priority=\"1.0\">mailto:someone@example.com</contact>\n"
          "  </tuple>\n"
          "  <note>I'll be in Tokyo next week</note>\n"
          "</presence>\n");
    REQUIRE(d->tuple_count == 2);
    const pidf_tuple_t *t = &d->tuples[0];
    CHECK_STR(t_str(t->contact), "im:someone@mobilecarrier.net");
    REQUIRE(t->note_count == 2);
    CHECK_STR(t_str(t->notes[0].text), "Don't Disturb Me!");
    CHECK_STR(t_str(t->notes[0].lang), "en");
    CHECK_STR(t_str(t->notes[1].text), "Ne derangez pas, s'il vous plait");
    CHECK_STR(t_str(t->notes[1].lang), "fr");
    CHECK_EQ(t->timestamp_ms, 1004201369000LL);
    CHECK_EQ(d->tuples[1].contact_priority, 1000);
    CHECK(d->tuples[1].notes[0].lang.ptr == NULL);
    REQUIRE(d->note_count == 1);
    CHECK_STR(t_str(d->notes[0].text), "I'll be in Tokyo next week");
    CHECK(d->notes[0].lang.ptr == NULL);
    CHECK_EQ(d->ignored, 2);                    /* im:im and myex:location */
    CHECK_STR(t_str(pidf_doc_note(d)), "Don't Disturb Me!");
    pidf_doc_free(d);
}

static void test_rfc4480_example(void)
{
    /* RFC 4480's complete example: services with deviceIDs and RPID service elements, a
     * device, and a person with timed activities, a mood and place information. */
    pidf_doc_t *d = D(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
        "  xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
        "  xmlns:lt=\"urn:ietf:params:xml:ns:location-type\"\n"
        "  xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
        "  entity=\"pres:someone@example.com\">\n"
        "  <tuple id=\"bs35r9\">\n"
        "    <status><basic>open</basic></status>\n"
        "    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>\n"
        "    <rpid:relationship><rpid:self/></rpid:relationship>\n"
        "    <rpid:service-class><rpid:electronic/></rpid:service-class>\n"
        "    <contact priority=\"0.8\">im:someone@mobilecarrier.net</contact>\n"
        "    <note xml:lang=\"en\">Don't Disturb Me!</note>\n"
        "    <note xml:lang=\"fr\">Ne derangez pas, s'il vous plait</note>\n"
        "    <timestamp>2005-10-27T16:49:29Z</timestamp>\n"
        "  </tuple>\n"
        "  <tuple id=\"ty4658\">\n"
        "    <status><basic>open</basic></status>\n"
        "    <rpid:relationship><rpid:assistant/></rpid:relationship>\n"
        "    <contact priority=\"1.0\">mailto:secretary@example.com</contact>\n"
        "  </tuple>\n"
        "  <tuple id=\"eg92n8\">\n"
        "    <status><basic>open</basic></status>\n"
        "    <dm:deviceID>urn:x-mac:0003ba4811e3</dm:deviceID>\n"
        "    <rpid:class>email</rpid:class>\n"
        "    <rpid:service-class><rpid:electronic/></rpid:service-class>\n"
        "    <rpid:status-icon>http://example.com/mail.png</rpid:status-icon>\n"
        "    <contact priority=\"1.0\">mailto:someone@example.com</contact>\n"
        "  </tuple>\n"
        "  <note>I'll be in Tokyo next week</note>\n"
        "  <dm:device id=\"pc147\">\n"
        "    <rpid:user-input idle-threshold=\"600\"\n"
        "      last-input=\"2004-10-21T13:20:00.000-05:00\">idle</rpid:user-input>\n"
        "    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>\n"
        "    <dm:note>PC</dm:note>\n"
        "  </dm:device>\n"
        "  <dm:person id=\"p1\">\n"
        "    <rpid:activities from=\"2005-05-30T12:00:00+05:00\"\n"
        "        until=\"2005-05-30T17:00:00+05:00\">\n"
        "      <rpid:note>Far away</rpid:note>\n"
        "      <rpid:away/>\n"
        "    </rpid:activities>\n"
        "    <rpid:class>calendar</rpid:class>\n"
        "    <rpid:mood>\n"
        "      <rpid:angry/>\n"
        "      <rpid:other>brooding</rpid:other>\n"
        "    </rpid:mood>\n"
        "    <rpid:place-is><rpid:audio><rpid:noisy/></rpid:audio></rpid:place-is>\n"
        "    <rpid:place-type><lt:residence/></rpid:place-type>\n"
        "    <rpid:privacy><rpid:unknown/></rpid:privacy>\n"
        "    <rpid:sphere>bowling league</rpid:sphere>\n"
        "    <rpid:status-icon>http://example.com/play.gif</rpid:status-icon>\n"
        "    <rpid:time-offset>-240</rpid:time-offset>\n"
        "    <dm:note>Scoring 120</dm:note>\n"
        "    <dm:timestamp>2005-05-30T16:09:44+05:00</dm:timestamp>\n"
        "  </dm:person>\n"
        "</presence>\n");
    REQUIRE(d->tuple_count == 3 && d->person_count == 1 && d->device_count == 1);
    CHECK_STR(t_str(d->tuples[0].device_id), "urn:device:0003ba4811e3");
    CHECK_STR(t_str(d->tuples[2].device_id), "urn:x-mac:0003ba4811e3");
    CHECK(d->tuples[1].device_id.ptr == NULL);

    const pidf_person_t *p = &d->persons[0];
    CHECK_STR(t_str(p->id), "p1");
    CHECK_EQ(p->activities, ACT(AWAY));
    REQUIRE(p->mood_count == 2);
    CHECK_STR(t_str(p->moods[0]), "angry");
    CHECK_STR(t_str(p->moods[1]), "other");
    CHECK_STR(t_str(p->mood_other), "brooding");
    REQUIRE(p->note_count == 1);
    CHECK_STR(t_str(p->notes[0].text), "Scoring 120");
    CHECK_EQ(p->timestamp_ms, 1117451384000LL);     /* 16:09:44+05:00 is 11:09:44Z */

    const pidf_device_t *v = &d->devices[0];
    CHECK_STR(t_str(v->id), "pc147");
    CHECK_STR(t_str(v->device_id), "urn:device:0003ba4811e3");
    CHECK_STR(t_str(v->notes[0].text), "PC");
    CHECK_EQ(v->timestamp_ms, PIDF_TIME_NONE);

    /* 6 service elements, user-input, rpid:note, 7 person elements. */
    CHECK_EQ(d->ignored, 6 + 1 + 1 + 7);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AWAY);
    CHECK_STR(t_str(pidf_doc_note(d)), "Scoring 120");
    pidf_doc_free(d);
}

/* ---- Phones and servers ------------------------------------------------ */

static void test_polycom(void)
{
    /* A desk phone publishing "Busy" (its DND key) and then "on the phone". */
    pidf_doc_t *d = D(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" "
        "xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"sip:1001@pbx.example.com\">\r\n"
        "<tuple id=\"t9d2c1a7f\"><status><basic>open</basic></status>"
        "<contact priority=\"0.8\">sip:1001@192.0.2.41:5060</contact>"
        "<timestamp>2024-03-11T09:14:02.125Z</timestamp></tuple>\r\n"
        "<dm:person id=\"p9d2c1a7f\"><rpid:activities><rpid:busy/></rpid:activities>"
        "<c:display-name>Front Desk</c:display-name><dm:note>Busy</dm:note></dm:person>\r\n"
        "</presence>\r\n");
    CHECK_EQ(d->tuples[0].timestamp_ms % 1000, 125);
    CHECK_EQ(d->persons[0].activities, ACT(BUSY));
    CHECK_EQ(d->ignored, 1);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_BUSY);
    CHECK_STR(t_str(pidf_doc_note(d)), "Busy");
    pidf_doc_free(d);
}

static void test_cisco_cucm(void)
{
    /* What CUCM sends over the presence trunk: the draft RPID namespace, a person with a
     * PIDF <status> inside it, the activities repeated in the tuple's status, servcaps. */
    pidf_doc_t *d = D(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\" ?>\r\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:8001@192.0.2.198\" "
        "xmlns:e=\"urn:ietf:params:xml:ns:pidf:status:rpid\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:ce=\"urn:cisco:params:xml:ns:pidf:rpid\" "
        "xmlns:sc=\"urn:ietf:params:xml:ns:pidf:servcaps\">\r\n"
        "  <dm:person>\r\n"
        "    <status>\r\n      <basic>open</basic>\r\n    </status>\r\n"
        "    <e:activities>\r\n      <e:on-the-phone/>\r\n    </e:activities>\r\n"
        "  </dm:person>\r\n"
        "  <tuple id=\"cmp-8001-162\">\r\n"
        "    <status>\r\n      <basic>open</basic>\r\n"
        "      <e:activities>\r\n        <e:on-the-phone/>\r\n      </e:activities>\r\n"
        "    </status>\r\n"
        "    <sc:servcaps>\r\n      <sc:audio>true</sc:audio>\r\n    </sc:servcaps>\r\n"
        "    <contact priority=\"0.8\">sip:8001@192.0.2.198:5060</contact>\r\n"
        "    <timestamp>2009-01-25T10:56:16Z</timestamp>\r\n"
        "  </tuple>\r\n"
        "</presence>\r\n");
    CHECK(d->persons[0].id.ptr == NULL);
    CHECK_EQ(d->persons[0].activities, ACT(ON_THE_PHONE));
    CHECK_EQ(d->tuples[0].activities, ACT(ON_THE_PHONE));
    CHECK_EQ(d->tuples[0].timestamp_ms, 1232880976000LL);
    CHECK_EQ(d->ignored, 2);                    /* the person's status, servcaps */
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_ON_THE_PHONE);
    pidf_doc_free(d);

    /* Asterisk's Cisco-flavoured body for a ringing line, and for DND. */
    d = D("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""
          " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\""
          " xmlns:e=\"urn:ietf:params:xml:ns:pidf:status:rpid\""
          " xmlns:ce=\"urn:cisco:params:xml:ns:pidf:rpid\" entity=\"sip:1004@pbx\">\n"
          "  <dm:person>\n    <e:activities>\n      <ce:alerting/>\n"
          "    </e:activities>\n  </dm:person>\n"
          "  <tuple id=\"1004\">\n    <status><basic>open</basic></status>\n  </tuple>\n"
          "</presence>\n");
    CHECK_EQ(d->persons[0].activities, ACT(ALERTING));
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AVAILABLE);     /* ringing is not busy */
    pidf_doc_free(d);
    d = D(HEAD "<dm:person xmlns:ce=\"urn:cisco:params:xml:ns:pidf:rpid\"><rpid:activities>"
               "<rpid:busy/><ce:dnd/></rpid:activities></dm:person>" OPEN_TUPLE TAIL);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_DND);
    pidf_doc_free(d);
}

static void test_cisco_web_service(void)
{
    /* The web service's rich presence: person in Cisco's RPID namespace with Cisco-only
     * values, a tuple in Cisco's PIDF namespace with <status> last, another in PIDF's. */
    pidf_doc_t *d = D(
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:jdoe@example.com\">"
        " <person xmlns=\"urn:cisco:params:xml:ns:pidf:rpid\" id=\"jdoe\">"
        "  <activities> <user-input> idle </user-input> <available/>"
        "   <phone-status> unavailable </phone-status> <im-status> available </im-status>"
        "  </activities> </person>"
        " <display-name xmlns=\"urn:ietf:params:xml:ns:pidf:cipid\"> J Doe </display-name>"
        " <tuple xmlns=\"urn:cisco:params:xml:ns:pidf\" id=\"cisco-upc\">"
        "  <contact priority=\"0.6\"> sip:jdoe@example.com </contact> <note xml:lang=\"en\"/>"
        "  <sc:servcaps xmlns:sc=\"urn:ietf:params:xml:ns:pidf:servcaps\">"
        "   <sc:text> true </sc:text> </sc:servcaps>"
        "  <user-input> idle </user-input> <status> <basic> open </basic> </status> </tuple>"
        " <tuple xmlns=\"urn:ietf:params:xml:ns:pidf\" id=\"Jabbercup7\">"
        "  <status> <basic> open </basic> </status> </tuple>"
        "</presence>");
    REQUIRE(d->tuple_count == 2 && d->person_count == 1);
    CHECK_STR(t_str(d->persons[0].id), "jdoe");
    CHECK_EQ(d->persons[0].activities, 0);
    const pidf_tuple_t *t = &d->tuples[0];
    CHECK_STR(t_str(t->id), "cisco-upc");
    CHECK_EQ(t->basic, PIDF_BASIC_OPEN);
    CHECK_STR(t_str(t->contact), "sip:jdoe@example.com");
    CHECK_EQ(t->contact_priority, 600);
    REQUIRE(t->note_count == 1);
    CHECK_STR(t_str(t->notes[0].text), "");
    CHECK_STR(t_str(t->notes[0].lang), "en");
    /* user-input, available, phone-status, im-status; display-name; servcaps, user-input */
    CHECK_EQ(d->ignored, 4 + 1 + 2);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AVAILABLE);
    pidf_doc_free(d);

    /* Its meeting is sent together with busy: the meeting wins. */
    d = D("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:jdoe@example.com\">"
          "<person xmlns=\"urn:cisco:params:xml:ns:pidf:rpid\" id=\"jdoe\"><activities>"
          "<busy/><meeting/></activities></person>"
          "<tuple id=\"pws-override\"><status><basic>open</basic></status></tuple></presence>");
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_MEETING);
    pidf_doc_free(d);
}

static void test_linphone_jitsi_bria(void)
{
    /* Linphone: person first, tuple with a deviceID-less contact and a timestamp. */
    pidf_doc_t *d = D(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:bob@sip.example.org\">\n"
        "  <tuple id=\"qoic3e\">\n"
        "    <status>\n      <basic>open</basic>\n    </status>\n"
        "    <contact>sip:bob@sip.example.org</contact>\n"
        "    <timestamp>2017-05-11T10:23:41Z</timestamp>\n"
        "  </tuple>\n"
        "  <dm:person id=\"sip:bob@sip.example.org\">\n"
        "    <rpid:activities>\n      <rpid:away/>\n    </rpid:activities>\n"
        "    <dm:note xml:lang=\"en\">Back in 5 minutes</dm:note>\n"
        "  </dm:person>\n"
        "</presence>\n");
    CHECK_EQ(d->tuples[0].contact_priority, PIDF_PRIORITY_NONE);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AWAY);
    CHECK_STR(t_str(pidf_doc_note(d)), "Back in 5 minutes");
    pidf_doc_free(d);

    /* Jitsi: on the phone, a status icon, a note in the tuple. */
    d = D("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>"
          "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""
          " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\""
          " xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:carol@example.net\">"
          "<dm:person id=\"p3994\"><rpid:activities><rpid:on-the-phone/></rpid:activities>"
          "<rpid:status-icon>http://example.net/icon.png</rpid:status-icon></dm:person>"
          "<tuple id=\"t5430\"><status><basic>open</basic></status>"
          "<contact>sip:carol@example.net</contact><note>On the phone</note></tuple>"
          "</presence>");
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_ON_THE_PHONE);
    CHECK_STR(t_str(pidf_doc_note(d)), "On the phone");
    pidf_doc_free(d);

    /* Bria, single quotes, "Do not disturb" with closed basic. */
    d = D("<?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf'"
          " xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'"
          " xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid'"
          " xmlns:c='urn:ietf:params:xml:ns:pidf:cipid' entity='sip:dave@example.org'>"
          "<tuple id='t6a5ed77e'><status><basic>closed</basic></status></tuple>"
          "<dm:person id='p06360c4a'><rpid:activities><rpid:busy/></rpid:activities>"
          "<dm:note>Do not disturb</dm:note></dm:person></presence>");
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_UNAVAILABLE);
    pidf_doc_free(d);

    /* eyeBeam / older Bria: the draft namespace with activities inside the tuple status. */
    d = D("<?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf'"
          " xmlns:es='urn:ietf:params:xml:ns:pidf:status:rpid' entity='sip:erin@example.org'>"
          "<tuple id='t1'><status><basic>open</basic><es:activities><es:vacation/>"
          "</es:activities></status><note>Gone fishing</note></tuple></presence>");
    CHECK_EQ(d->tuples[0].activities, ACT(VACATION));
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_VACATION);
    pidf_doc_free(d);
}

static void test_kamailio_aggregate(void)
{
    /* Kamailio's presence_xml aggregation of two publishers: each brings its tuple and its
     * person; numeric-looking tuple ids (not xs:ID, accepted). */
    pidf_doc_t *d = D(
        "<?xml version=\"1.0\"?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:frank@example.com\">\n"
        "<tuple xmlns=\"urn:ietf:params:xml:ns:pidf\" id=\"0x7f3a2c\"><status><basic>open"
        "</basic></status><contact>sip:frank@198.51.100.7:5060</contact></tuple>\n"
        "<tuple xmlns=\"urn:ietf:params:xml:ns:pidf\" id=\"0x7f3b90\"><status><basic>closed"
        "</basic></status></tuple>\n"
        "<dm:person id=\"p1\"><rpid:activities><rpid:away/></rpid:activities></dm:person>\n"
        "<dm:person id=\"p2\"><rpid:activities><rpid:on-the-phone/></rpid:activities>"
        "</dm:person>\n"
        "</presence>\n");
    CHECK_EQ(d->tuple_count, 2);
    CHECK_EQ(d->person_count, 2);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_ON_THE_PHONE);
    pidf_doc_free(d);
}

static void test_lenient_details(void)
{
    /* <basic> with odd case and whitespace; a status without <basic>; timestamps that do not
     * parse are dropped; a bad priority is dropped; notes are trimmed. */
    pidf_doc_t *d = D(HEAD "<tuple id=' a '><status><basic> OPEN </basic></status>"
                           "<contact priority='high'>sip:x</contact>"
                           "<timestamp>yesterday</timestamp><note>\n  hi  \n</note></tuple>"
                           "<tuple id='geo'><status><gp:geopriv xmlns:gp='urn:ietf:params:xml:ns:"
                           "pidf:geopriv10'/></status></tuple>" TAIL);
    CHECK_STR(t_str(d->tuples[0].id), "a");
    CHECK_EQ(d->tuples[0].basic, PIDF_BASIC_OPEN);
    CHECK_EQ(d->tuples[0].contact_priority, PIDF_PRIORITY_NONE);
    CHECK_EQ(d->tuples[0].timestamp_ms, PIDF_TIME_NONE);
    CHECK_STR(t_str(d->tuples[0].notes[0].text), "hi");
    CHECK_EQ(d->tuples[1].basic, PIDF_BASIC_NONE);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AVAILABLE);
    pidf_doc_free(d);

    /* Only <basic>-less tuples: the persons decide, and without activities nothing does. */
    d = D(HEAD "<tuple id='g'><status/></tuple><dm:person><rpid:activities><rpid:meal/>"
               "</rpid:activities></dm:person>" TAIL);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_AWAY);
    pidf_doc_free(d);
    d = D(HEAD "<tuple id='g'><status/></tuple>" TAIL);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_UNAVAILABLE);
    pidf_doc_free(d);
    d = D(HEAD TAIL);
    CHECK_EQ(d->tuple_count, 0);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_UNAVAILABLE);
    CHECK(pidf_doc_note(d).ptr == NULL);
    pidf_doc_free(d);

    /* Surplus elements: the first <basic>, contact, timestamp, deviceID win; a fifth note, a
     * ninth person, a seventeenth device, a fifth mood and duplicates are counted. */
    char xml[16384];
    int n = snprintf(xml, sizeof(xml), HEAD "<tuple id='t'><status><basic>closed</basic>"
                                            "<basic>open</basic></status><status/>"
                                            "<contact>a</contact><contact>b</contact>"
                                            "<dm:deviceID>d1</dm:deviceID><dm:deviceID>d2"
                                            "</dm:deviceID><timestamp>2020-01-01T00:00:00Z"
                                            "</timestamp><timestamp>2021-01-01T00:00:00Z"
                                            "</timestamp>");
    for (int i = 0; i < 5; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<note>n%d</note>", i);
    n += snprintf(xml + n, sizeof(xml) - (size_t)n, "</tuple>");
    for (int i = 0; i < 9; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<dm:person id='p%d'><rpid:mood><rpid:happy/><rpid:happy/><rpid:sad/>"
                      "<rpid:hot/><rpid:cold/><rpid:shy/></rpid:mood></dm:person>", i);
    for (int i = 0; i < 17; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<dm:device id='d%d'/>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, TAIL);
    d = D(xml);
    const pidf_tuple_t *t = &d->tuples[0];
    CHECK_EQ(t->basic, PIDF_BASIC_CLOSED);
    CHECK_STR(t_str(t->contact), "a");
    CHECK_STR(t_str(t->device_id), "d1");
    CHECK_EQ(t->timestamp_ms, 1577836800000LL);
    CHECK_EQ(t->note_count, PIDF_NOTES_MAX);
    CHECK_EQ(d->person_count, PIDF_PERSONS_MAX);
    CHECK_EQ(d->persons[0].mood_count, PIDF_MOODS_MAX);
    CHECK_STR(t_str(d->persons[0].moods[3]), "cold");
    CHECK_EQ(d->device_count, PIDF_DEVICES_MAX);
    /* basic, status, contact, deviceID, timestamp, note; person 9; device 17; and per kept
     * person a duplicate and a fifth mood. */
    CHECK_EQ(d->ignored, 6 + 1 + 1 + 8 * 2);
    pidf_doc_free(d);
}

static void test_notes_cut(void)
{
    /* A note over the limit is cut at a character boundary (é is two bytes). */
    static char xml[8192];
    int n = snprintf(xml, sizeof(xml), HEAD "<note>");
    for (unsigned i = 0; i < PIDF_NOTE_MAX_BYTES; i += 2)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, i == 0 ? "x" : "\xC3\xA9");
    snprintf(xml + n, sizeof(xml) - (size_t)n, "</note>" TAIL);
    pidf_doc_t *d = D(xml);
    str_t note = d->notes[0].text;
    CHECK(note.len <= PIDF_NOTE_MAX_BYTES);
    CHECK(note.len >= PIDF_NOTE_MAX_BYTES - 1);
    CHECK(note.ptr[0] == 'x' && (unsigned char)note.ptr[note.len - 1] == 0xA9);
    pidf_doc_free(d);

    /* Escapes and references decode to the characters; CDATA counts as text. */
    d = D(HEAD "<note>a &amp; b &lt;c&gt; &#x263A; <![CDATA[<raw>]]> &#13;.&#13;</note>" TAIL);
    CHECK_STR(t_str(d->notes[0].text), "a & b <c> \xE2\x98\xBA <raw> \r.");
    pidf_doc_free(d);
}

/* ---- Rejection --------------------------------------------------------- */

static void test_reject_xml(void)
{
    CHECK_EQ(ERR(""), PIDF_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR("<presence"), PIDF_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(HEAD "<tuple id='a'>" TAIL), PIDF_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(HEAD "<note>&nbsp;</note>" TAIL), PIDF_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(HEAD TAIL "<presence/>"), PIDF_ERR_NOT_WELL_FORMED);
    CHECK_EQ(ERR(HEAD "<note>&#1;</note>" TAIL), PIDF_ERR_NOT_WELL_FORMED);

    /* Encodings: UTF-16 with and without BOM, Latin-1 bytes, a NUL. */
    static const char utf16[] = "\xFF\xFE<\0p\0/\0>\0";
    CHECK_EQ(ERRL(utf16, sizeof(utf16) - 1, NULL), PIDF_ERR_ENCODING);
    CHECK_EQ(ERRL(utf16 + 2, sizeof(utf16) - 3, NULL), PIDF_ERR_ENCODING);
    CHECK_EQ(ERR(HEAD "<note>caf\xE9</note>" TAIL), PIDF_ERR_ENCODING);
    static const char nul[] = HEAD "<note>a\0b</note>" TAIL;
    CHECK_EQ(ERRL(nul, sizeof(nul) - 1, NULL), PIDF_ERR_ENCODING);
    /* A declaration naming another encoding is ignored: UTF-8 bytes still decode. */
    pidf_doc_t *d = D("<?xml version='1.0' encoding='ISO-8859-1'?>"
                      "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b'>"
                      "<note>caf\xC3\xA9</note></presence>");
    CHECK_STR(t_str(d->notes[0].text), "caf\xC3\xA9");
    pidf_doc_free(d);
}

static void test_reject_doctype(void)
{
    /* Billion laughs: refused at the DOCTYPE, before any entity is declared. */
    CHECK_EQ(ERR("<?xml version=\"1.0\"?>\n"
                 "<!DOCTYPE lolz [\n"
                 " <!ENTITY lol \"lol\">\n"
                 " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                 " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                 " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                 " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                 " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
                 " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
                 " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
                 " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
                 " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
                 "]>\n"
                 "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:a@b\">"
                 "<note>&lol9;</note></presence>"),
             PIDF_ERR_DOCTYPE);
    /* External entities (XXE) and an external DTD: refused the same way, nothing fetched. */
    CHECK_EQ(ERR("<!DOCTYPE presence [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                 "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:a@b\">"
                 "<note>&x;</note></presence>"),
             PIDF_ERR_DOCTYPE);
    CHECK_EQ(ERR("<!DOCTYPE presence SYSTEM \"http://192.0.2.1/pidf.dtd\">"
                 "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:a@b\"/>"),
             PIDF_ERR_DOCTYPE);
    CHECK_EQ(ERR("<!DOCTYPE presence><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                 "entity=\"sip:a@b\"/>"),
             PIDF_ERR_DOCTYPE);
}

static void test_reject_structure(void)
{
    CHECK_EQ(ERR("<presence entity='sip:a@b'/>"), PIDF_ERR_NOT_PIDF);
    CHECK_EQ(ERR("<presence xmlns='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:a@b'/>"),
             PIDF_ERR_NOT_PIDF);
    CHECK_EQ(ERR("<presense xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b'/>"),
             PIDF_ERR_NOT_PIDF);
    CHECK_EQ(ERR("<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='0' "
                 "state='full'/>"),
             PIDF_ERR_NOT_PIDF);
    CHECK_EQ(ERR("<presence xmlns='urn:ietf:params:xml:ns:pidf'/>"), PIDF_ERR_ENTITY);
    CHECK_EQ(ERR("<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='  '/>"),
             PIDF_ERR_ENTITY);
    CHECK_EQ(ERR(HEAD "<tuple><status><basic>open</basic></status></tuple>" TAIL),
             PIDF_ERR_TUPLE_ID);
    CHECK_EQ(ERR(HEAD "<tuple id=''><status><basic>open</basic></status></tuple>" TAIL),
             PIDF_ERR_TUPLE_ID);
    CHECK_EQ(ERR(HEAD OPEN_TUPLE "<tuple id=' t1'><status/></tuple>" TAIL), PIDF_ERR_TUPLE_ID);
    CHECK_EQ(ERR(HEAD "<tuple id='a'><contact>sip:a@b</contact></tuple>" TAIL),
             PIDF_ERR_NO_STATUS);
    CHECK_EQ(ERR(HEAD "<tuple id='a'><status><basic>busy</basic></status></tuple>" TAIL),
             PIDF_ERR_BAD_BASIC);
    CHECK_EQ(ERR(HEAD "<tuple id='a'><status><basic/></status></tuple>" TAIL),
             PIDF_ERR_BAD_BASIC);
}

static void test_reject_limits(void)
{
    static char xml[1u << 17];
    /* Too many tuples: 33. */
    int n = snprintf(xml, sizeof(xml), HEAD);
    for (unsigned i = 0; i <= PIDF_TUPLES_MAX; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n,
                      "<tuple id='t%u'><status><basic>open</basic></status></tuple>", i);
    snprintf(xml + n, sizeof(xml) - (size_t)n, TAIL);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_MANY_TUPLES);

    /* Over the byte limit. */
    memset(xml, ' ', sizeof(xml));
    memcpy(xml, HEAD, strlen(HEAD));
    memcpy(xml + sizeof(xml) - 1 - strlen(TAIL), TAIL, strlen(TAIL));
    xml[sizeof(xml) - 1] = '\0';
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_LARGE);
    pidf_limits_t lim = pidf_limits_default;
    lim.doc_bytes_max = PIDF_DOC_BYTES_LIMIT;
    pidf_doc_t *d;
    REQUIRE(pidf_decode(xml, strlen(xml), &lim, &d, NULL) == 0);
    pidf_doc_free(d);

    /* Element count and depth, caught while the document is parsed. */
    n = snprintf(xml, sizeof(xml), HEAD);
    for (unsigned i = 0; i < PIDF_ELEMENTS_DEFAULT; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<x/>");
    snprintf(xml + n, sizeof(xml) - (size_t)n, TAIL);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_MANY_ELEMENTS);
    n = snprintf(xml, sizeof(xml), HEAD);
    for (unsigned i = 0; i < PIDF_DEPTH_DEFAULT; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "<x>");
    for (unsigned i = 0; i < PIDF_DEPTH_DEFAULT; i++)
        n += snprintf(xml + n, sizeof(xml) - (size_t)n, "</x>");
    snprintf(xml + n, sizeof(xml) - (size_t)n, TAIL);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_DEEP);
    pidf_limits_t tiny = { 4096, 3, 10 };
    CHECK_EQ(ERRL(HEAD OPEN_TUPLE TAIL, strlen(HEAD OPEN_TUPLE TAIL), &tiny),
             PIDF_ERR_TOO_MANY_ELEMENTS);
    tiny = (pidf_limits_t){ 4096, 100, 2 };
    CHECK_EQ(ERRL(HEAD OPEN_TUPLE TAIL, strlen(HEAD OPEN_TUPLE TAIL), &tiny),
             PIDF_ERR_TOO_DEEP);

    /* Identifiers over their limits. */
    char big[PIDF_URI_MAX_BYTES + 2];
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(xml, sizeof(xml), HEAD "<tuple id='a'><status/><contact>%s</contact></tuple>" TAIL,
             big);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_LONG);
    snprintf(xml, sizeof(xml), "<presence xmlns='" PIDF_NS "' entity='%s'/>", big);
    CHECK_EQ(ERR(xml), PIDF_ERR_ENTITY);
    big[PIDF_ID_MAX_BYTES + 1] = '\0';
    snprintf(xml, sizeof(xml), HEAD "<tuple id='%s'><status/></tuple>" TAIL, big);
    CHECK_EQ(ERR(xml), PIDF_ERR_TUPLE_ID);
    snprintf(xml, sizeof(xml), HEAD "<dm:person id='%s'/>" TAIL, big);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_LONG);
    big[PIDF_LANG_MAX_BYTES + 1] = '\0';
    snprintf(xml, sizeof(xml), HEAD "<note xml:lang='%s'>x</note>" TAIL, big);
    CHECK_EQ(ERR(xml), PIDF_ERR_TOO_LONG);
}

/* ---- Timestamps and qvalues -------------------------------------------- */

static int64_t T(const char *ts)
{
    char xml[512];
    snprintf(xml, sizeof(xml), HEAD "<tuple id='t'><status/><timestamp>%s</timestamp></tuple>"
                               TAIL, ts);
    pidf_doc_t *d = D(xml);
    int64_t t = d->tuples[0].timestamp_ms;
    pidf_doc_free(d);
    return t;
}

static void test_timestamps(void)
{
    CHECK_EQ(T("2001-10-27T16:49:29Z"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27t16:49:29z"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27 16:49:29Z"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27T18:49:29+02:00"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27T11:49:29-0500"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27T16:49:29"), 1004201369000LL);
    CHECK_EQ(T("2001-10-27T16:49:29.5Z"), 1004201369500LL);
    CHECK_EQ(T("2001-10-27T16:49:29.123456Z"), 1004201369123LL);
    CHECK_EQ(T("1969-12-31T23:59:59Z"), -1000);
    CHECK_EQ(T("0000-01-01T00:00:00Z"), -62167219200000LL);
    CHECK_EQ(T("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    CHECK_EQ(T("2016-12-31T23:59:60Z"), T("2017-01-01T00:00:00Z"));
    CHECK_EQ(T("2024-02-29T00:00:00Z"), 1709164800000LL);
    /* Not RFC 3339, or out of what it can write: dropped. */
    CHECK_EQ(T("2023-02-29T00:00:00Z"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-13-01T00:00:00Z"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-10-27T24:00:00Z"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-10-27T16:49Z"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-10-27T16:49:29.Z"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-10-27T16:49:29+2:00"), PIDF_TIME_NONE);
    CHECK_EQ(T("2001-10-27T16:49:29ZZ"), PIDF_TIME_NONE);
    CHECK_EQ(T("0000-01-01T00:00:00+00:01"), PIDF_TIME_NONE);
    CHECK_EQ(T("9999-12-31T23:59:59-00:01"), PIDF_TIME_NONE);
    CHECK_EQ(T("-001-01-01T00:00:00Z"), PIDF_TIME_NONE);
    CHECK_EQ(T(""), PIDF_TIME_NONE);
}

static uint16_t Q(const char *q)
{
    char xml[512];
    snprintf(xml, sizeof(xml), HEAD "<tuple id='t'><status/><contact priority='%s'>c</contact>"
                               "</tuple>" TAIL, q);
    pidf_doc_t *d = D(xml);
    uint16_t v = d->tuples[0].contact_priority;
    pidf_doc_free(d);
    return v;
}

static void test_qvalues(void)
{
    CHECK_EQ(Q("0"), 0);
    CHECK_EQ(Q("0."), 0);
    CHECK_EQ(Q("0.5"), 500);
    CHECK_EQ(Q("0.05"), 50);
    CHECK_EQ(Q("0.001"), 1);
    CHECK_EQ(Q("0.9999"), 999);
    CHECK_EQ(Q("1"), 1000);
    CHECK_EQ(Q("1.000"), 1000);
    CHECK_EQ(Q(" 0.8 "), 800);
    CHECK_EQ(Q("1.5"), PIDF_PRIORITY_NONE);
    CHECK_EQ(Q("2"), PIDF_PRIORITY_NONE);
    CHECK_EQ(Q("-0"), PIDF_PRIORITY_NONE);
    CHECK_EQ(Q(".5"), PIDF_PRIORITY_NONE);
    CHECK_EQ(Q("0.a"), PIDF_PRIORITY_NONE);
    CHECK_EQ(Q(""), PIDF_PRIORITY_NONE);
}

/* ---- Encoding ---------------------------------------------------------- */

static void test_encode_doc(void)
{
    pidf_note_t notes[2] = {
        { STR_LIT("Out <to> lunch & back\r\nsoon"), STR_LIT("en") },
        { STR_LIT("bad \xFF byte \x01"), { NULL, 0 } },
    };
    pidf_tuple_t t[2] = {
        { .id = STR_LIT("t\"1'"), .basic = PIDF_BASIC_OPEN,
          .activities = PIDF_ACT_BIT(PIDF_ACT_OTHER) | PIDF_ACT_BIT(PIDF_ACT_ALERTING),
          .activity_other = STR_LIT("gardening"), .contact = STR_LIT("sip:a@b;x=\"1\""),
          .contact_priority = 50, .device_id = STR_LIT("urn:uuid:1"),
          .timestamp_ms = 1004201369123LL, .note_count = 2,
          .notes = { notes[0], notes[1] } },
        { .id = STR_LIT("t2"), .basic = PIDF_BASIC_NONE, .contact_priority = PIDF_PRIORITY_NONE,
          .timestamp_ms = PIDF_TIME_NONE },
    };
    pidf_person_t p = { .id = { NULL, 0 }, .activities = ACT(MEETING), .mood_count = 2,
                        .moods = { STR_LIT("in_love"), STR_LIT("other") },
                        .mood_other = STR_LIT("meh"), .timestamp_ms = -1 };
    pidf_device_t v = { .id = STR_LIT(""), .device_id = STR_LIT("mac:1"),
                        .timestamp_ms = PIDF_TIME_NONE };
    pidf_doc_t doc = { .entity = STR_LIT("sip:a@example.com"), .tuples = t, .tuple_count = 2,
                       .persons = &p, .person_count = 1, .devices = &v, .device_count = 1 };
    buf_t b;
    buf_init(&b);
    REQUIRE(pidf_encode(&b, &doc) == 0);
    buf_append(&b, "", 1);
    CHECK(strstr(b.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>") == b.data);
    CHECK(strstr(b.data, "id=\"t&quot;1'\""));
    CHECK(strstr(b.data, "priority=\"0.05\""));
    CHECK(strstr(b.data, "Out &lt;to&gt; lunch &amp; back&#13;\nsoon"));
    CHECK(strstr(b.data, "bad \xEF\xBF\xBD byte \xEF\xBF\xBD"));
    CHECK(strstr(b.data, "<ce:alerting/>"));
    CHECK(strstr(b.data, "xmlns:ce="));
    CHECK(strstr(b.data, "<timestamp>2001-10-27T16:49:29.123Z</timestamp>"));
    CHECK(strstr(b.data, "<dm:timestamp>1969-12-31T23:59:59.999Z</dm:timestamp>"));
    pidf_doc_t *d = NULL;
    REQUIRE(pidf_decode(b.data, b.len - 1, NULL, &d, NULL) == 0);
    roundtrip_check(d);
    CHECK_STR(t_str(d->tuples[0].id), "t\"1'");
    CHECK_STR(t_str(d->tuples[0].notes[0].text), "Out <to> lunch & back\r\nsoon");
    CHECK_STR(t_str(d->tuples[0].activity_other), "gardening");
    CHECK_EQ(d->tuples[0].activities, t[0].activities);
    CHECK_EQ(d->tuples[1].basic, PIDF_BASIC_NONE);
    CHECK(d->persons[0].id.ptr == NULL);
    CHECK_STR(t_str(d->persons[0].mood_other), "meh");
    CHECK_STR(t_str(d->devices[0].id), "");
    CHECK_EQ(d->persons[0].timestamp_ms, -1);
    pidf_doc_free(d);

    /* Documents the decoder would not give back are refused, and b is left alone. */
    size_t len = b.len;
    pidf_doc_t bad = doc;
    bad.entity = STR_LIT(" ");
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    bad = doc;
    bad.entity = STR_LIT("sip:\xC0\x80");
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    pidf_tuple_t tb[2] = { t[0], t[1] };
    bad = doc;
    bad.tuples = tb;
    tb[1].id = STR_LIT(" t\"1' ");
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    tb[1] = t[1];
    tb[1].contact_priority = 1001;
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    tb[1] = t[1];
    tb[1].timestamp_ms = 253402300800000LL;
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    tb[1] = t[1];
    tb[1].basic = (pidf_basic_t)7;
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    tb[1] = t[1];
    tb[1].activities = 1u << 31;
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    pidf_person_t pb = p;
    bad = doc;
    bad.persons = &pb;
    pb.moods[0] = STR_LIT("not a name");
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    bad = doc;
    bad.tuple_count = PIDF_TUPLES_MAX + 1;
    CHECK_EQ(pidf_encode(&b, &bad), -EINVAL);
    CHECK_EQ(b.len, len);
    buf_fini(&b);
}

/* ---- States ------------------------------------------------------------ */

static void test_state_mapping(void)
{
    /* Every state written and read back; XA comes back as AWAY (no RPID for it). */
    for (int s = 0; s < PIDF_STATE_COUNT; s++) {
        pidf_state_t back = pidf_state_from_pidf(pidf_state_basic((pidf_state_t)s),
                                                 pidf_state_activities((pidf_state_t)s));
        CHECK_EQ(back, s == PIDF_STATE_XA ? PIDF_STATE_AWAY : s);
        CHECK(pidf_state_name((pidf_state_t)s)[0]);
    }
    CHECK_EQ(pidf_state_basic(PIDF_STATE_UNAVAILABLE), PIDF_BASIC_CLOSED);
    CHECK_EQ(pidf_state_basic(PIDF_STATE_VACATION), PIDF_BASIC_OPEN);
    CHECK_EQ(pidf_state_activities(PIDF_STATE_DND), ACT(BUSY) | ACT(DND));

    /* Reading: open with nothing is available, closed is unavailable whatever else. */
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, 0), PIDF_STATE_AVAILABLE);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_CLOSED, ACT(ON_THE_PHONE)), PIDF_STATE_UNAVAILABLE);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_NONE, ACT(AWAY)), PIDF_STATE_AWAY);
    static const struct {
        pidf_activity_t a;
        pidf_state_t s;
    } each[] = {
        { PIDF_ACT_APPOINTMENT, PIDF_STATE_MEETING },   { PIDF_ACT_AWAY, PIDF_STATE_AWAY },
        { PIDF_ACT_BREAKFAST, PIDF_STATE_AWAY },        { PIDF_ACT_BUSY, PIDF_STATE_BUSY },
        { PIDF_ACT_DINNER, PIDF_STATE_AWAY },           { PIDF_ACT_HOLIDAY, PIDF_STATE_VACATION },
        { PIDF_ACT_IN_TRANSIT, PIDF_STATE_AWAY },
        { PIDF_ACT_LOOKING_FOR_WORK, PIDF_STATE_AVAILABLE },
        { PIDF_ACT_MEAL, PIDF_STATE_AWAY },             { PIDF_ACT_MEETING, PIDF_STATE_MEETING },
        { PIDF_ACT_ON_THE_PHONE, PIDF_STATE_ON_THE_PHONE },
        { PIDF_ACT_PERFORMANCE, PIDF_STATE_BUSY },
        { PIDF_ACT_PERMANENT_ABSENCE, PIDF_STATE_XA },
        { PIDF_ACT_PLAYING, PIDF_STATE_AVAILABLE },
        { PIDF_ACT_PRESENTATION, PIDF_STATE_MEETING },  { PIDF_ACT_SHOPPING, PIDF_STATE_AWAY },
        { PIDF_ACT_SLEEPING, PIDF_STATE_AWAY },         { PIDF_ACT_SPECTATOR, PIDF_STATE_BUSY },
        { PIDF_ACT_STEERING, PIDF_STATE_AWAY },         { PIDF_ACT_TRAVEL, PIDF_STATE_AWAY },
        { PIDF_ACT_TV, PIDF_STATE_AVAILABLE },          { PIDF_ACT_UNKNOWN, PIDF_STATE_AVAILABLE },
        { PIDF_ACT_VACATION, PIDF_STATE_VACATION },     { PIDF_ACT_WORKING, PIDF_STATE_AVAILABLE },
        { PIDF_ACT_WORSHIP, PIDF_STATE_BUSY },          { PIDF_ACT_OTHER, PIDF_STATE_AVAILABLE },
        { PIDF_ACT_DND, PIDF_STATE_DND },               { PIDF_ACT_ALERTING, PIDF_STATE_AVAILABLE },
    };
    _Static_assert(ARRAY_LEN(each) == PIDF_ACT_COUNT, "one row per activity");
    for (size_t i = 0; i < ARRAY_LEN(each); i++) {
        CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, PIDF_ACT_BIT(each[i].a)), each[i].s);
        CHECK(pidf_activity_name(each[i].a)[0]);
    }
    /* Several at once: the order DND, ON_THE_PHONE, MEETING, BUSY, VACATION, XA, AWAY. */
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(BUSY) | ACT(MEETING)),
             PIDF_STATE_MEETING);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(MEETING) | ACT(ON_THE_PHONE)),
             PIDF_STATE_ON_THE_PHONE);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(ON_THE_PHONE) | ACT(DND)),
             PIDF_STATE_DND);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(AWAY) | ACT(VACATION)),
             PIDF_STATE_VACATION);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(AWAY) | ACT(PERMANENT_ABSENCE)),
             PIDF_STATE_XA);
    CHECK_EQ(pidf_state_from_pidf(PIDF_BASIC_OPEN, ACT(AWAY) | ACT(WORKING)), PIDF_STATE_AWAY);
}

static void test_xmpp_show(void)
{
    static const struct {
        pidf_state_t s;
        const char *show;
    } rows[] = {
        { PIDF_STATE_AVAILABLE, "" },     { PIDF_STATE_AWAY, "away" },
        { PIDF_STATE_XA, "xa" },          { PIDF_STATE_DND, "dnd" },
        { PIDF_STATE_BUSY, "dnd" },       { PIDF_STATE_ON_THE_PHONE, "dnd" },
        { PIDF_STATE_MEETING, "dnd" },    { PIDF_STATE_VACATION, "xa" },
    };
    for (size_t i = 0; i < ARRAY_LEN(rows); i++)
        CHECK_STR(pidf_state_to_xmpp_show(rows[i].s), rows[i].show);
    CHECK(pidf_state_to_xmpp_show(PIDF_STATE_UNAVAILABLE) == NULL);

    pidf_state_t s = PIDF_STATE_UNAVAILABLE;
    CHECK(pidf_state_from_xmpp_show((str_t){ NULL, 0 }, &s) == 0 && s == PIDF_STATE_AVAILABLE);
    s = PIDF_STATE_UNAVAILABLE;
    CHECK(pidf_state_from_xmpp_show(STR_LIT(""), &s) == 0 && s == PIDF_STATE_AVAILABLE);
    s = PIDF_STATE_UNAVAILABLE;
    CHECK(pidf_state_from_xmpp_show(STR_LIT("chat"), &s) == 0 && s == PIDF_STATE_AVAILABLE);
    CHECK(pidf_state_from_xmpp_show(STR_LIT("away"), &s) == 0 && s == PIDF_STATE_AWAY);
    CHECK(pidf_state_from_xmpp_show(STR_LIT("xa"), &s) == 0 && s == PIDF_STATE_XA);
    CHECK(pidf_state_from_xmpp_show(STR_LIT("dnd"), &s) == 0 && s == PIDF_STATE_DND);
    CHECK_EQ(pidf_state_from_xmpp_show(STR_LIT("busy"), &s), -EINVAL);
    CHECK_EQ(pidf_state_from_xmpp_show(STR_LIT("Away"), &s), -EINVAL);
    CHECK_EQ(s, PIDF_STATE_DND);                /* untouched on error */

    /* The gateway's two hops: every XMPP show survives XMPP -> state -> PIDF -> state ->
     * XMPP, except chat, which has no PIDF form and comes back as plain available. */
    static const char *const shows[] = { "", "away", "xa", "dnd" };
    for (size_t i = 0; i < ARRAY_LEN(shows); i++) {
        REQUIRE(pidf_state_from_xmpp_show(str_from_cstr(shows[i]), &s) == 0);
        pidf_state_t via = pidf_state_from_pidf(pidf_state_basic(s), pidf_state_activities(s));
        const char *back = pidf_state_to_xmpp_show(via);
        CHECK_STR(back, strcmp(shows[i], "xa") == 0 ? "away" : shows[i]);
    }
}

static pidf_source_t SRC(pidf_state_t s, int32_t prio, int64_t ts, bool line)
{
    return (pidf_source_t){ .id = STR_LIT("x"), .state = s, .priority = prio,
                            .timestamp_ms = ts, .phone_line = line };
}

static void test_compose(void)
{
    size_t w = 99;
    CHECK_EQ(pidf_compose(NULL, 0, &w), PIDF_STATE_UNAVAILABLE);
    CHECK_EQ(w, 0);

    /* Rule 3: all unavailable. */
    pidf_source_t s[4] = { SRC(PIDF_STATE_UNAVAILABLE, 5, 1, false),
                           SRC(PIDF_STATE_UNAVAILABLE, 0, 2, false) };
    CHECK_EQ(pidf_compose(s, 2, &w), PIDF_STATE_UNAVAILABLE);
    CHECK_EQ(w, 2);

    /* Rule 2: the most available wins, whatever the priorities. */
    s[0] = SRC(PIDF_STATE_AWAY, 10, 1, false);
    s[1] = SRC(PIDF_STATE_AVAILABLE, -1, 0, false);
    s[2] = SRC(PIDF_STATE_XA, 0, 5, false);
    CHECK_EQ(pidf_compose(s, 3, &w), PIDF_STATE_AVAILABLE);
    CHECK_EQ(w, 1);
    s[1] = SRC(PIDF_STATE_VACATION, 0, 0, false);
    CHECK_EQ(pidf_compose(s, 3, &w), PIDF_STATE_AWAY);
    CHECK_EQ(w, 0);

    /* Rule 1: on the phone from the gateway overrides available. */
    s[0] = SRC(PIDF_STATE_AVAILABLE, 0, 1, false);
    s[1] = SRC(PIDF_STATE_ON_THE_PHONE, 0, 0, true);
    CHECK_EQ(pidf_compose(s, 2, &w), PIDF_STATE_ON_THE_PHONE);
    CHECK_EQ(w, 1);
    /* An idle line says nothing: it does not make an away person available ... */
    s[0] = SRC(PIDF_STATE_AWAY, 0, 1, false);
    s[1] = SRC(PIDF_STATE_AVAILABLE, 0, 2, true);
    CHECK_EQ(pidf_compose(s, 2, &w), PIDF_STATE_AWAY);
    CHECK_EQ(w, 0);
    /* ... nor online on its own, while a call with every client offline still shows. */
    CHECK_EQ(pidf_compose(&s[1], 1, &w), PIDF_STATE_UNAVAILABLE);
    s[0] = SRC(PIDF_STATE_UNAVAILABLE, 0, 1, false);
    s[1] = SRC(PIDF_STATE_ON_THE_PHONE, 0, 2, true);
    CHECK_EQ(pidf_compose(s, 2, NULL), PIDF_STATE_ON_THE_PHONE);
    /* DND asked for on any device beats a call; a call beats a meeting beats busy. */
    s[0] = SRC(PIDF_STATE_MEETING, 0, 1, false);
    s[1] = SRC(PIDF_STATE_ON_THE_PHONE, 0, 2, true);
    s[2] = SRC(PIDF_STATE_BUSY, 9, 3, false);
    s[3] = SRC(PIDF_STATE_AVAILABLE, 9, 4, false);
    CHECK_EQ(pidf_compose(s, 4, &w), PIDF_STATE_ON_THE_PHONE);
    s[3] = SRC(PIDF_STATE_DND, -5, 0, false);
    CHECK_EQ(pidf_compose(s, 4, &w), PIDF_STATE_DND);
    CHECK_EQ(w, 3);
    CHECK_EQ(pidf_compose(s, 1, &w), PIDF_STATE_MEETING);
    s[1] = SRC(PIDF_STATE_BUSY, 0, 0, false);
    CHECK_EQ(pidf_compose(s, 3, &w), PIDF_STATE_MEETING);

    /* Ties: higher priority, then newer, then the first. */
    s[0] = SRC(PIDF_STATE_AVAILABLE, 1, 100, false);
    s[1] = SRC(PIDF_STATE_AVAILABLE, 5, 50, false);
    s[2] = SRC(PIDF_STATE_AVAILABLE, 5, 70, false);
    s[3] = SRC(PIDF_STATE_AVAILABLE, 5, 70, false);
    CHECK_EQ(pidf_compose(s, 4, &w), PIDF_STATE_AVAILABLE);
    CHECK_EQ(w, 2);
    s[2].timestamp_ms = PIDF_TIME_NONE;
    s[3].timestamp_ms = PIDF_TIME_NONE;
    pidf_compose(s, 4, &w);
    CHECK_EQ(w, 1);
}

/* The encoder writes timestamps and qvalues digit by digit: each width, padding and ending. */
static void test_encode_times_and_qvalues(void)
{
    static const struct {
        int64_t t_ms;
        uint16_t priority;
        const char *time, *q;
    } cases[] = {
        { 0, 1000, "<timestamp>1970-01-01T00:00:00Z</timestamp>", "priority=\"1\"" },
        { -62167219200000LL, 0, "<timestamp>0000-01-01T00:00:00Z</timestamp>",
          "priority=\"0\"" },
        { 253402300799999LL, 800, "<timestamp>9999-12-31T23:59:59.999Z</timestamp>",
          "priority=\"0.8\"" },
        { -30636384832992LL, 5, "<timestamp>0999-03-04T05:06:07.008Z</timestamp>",
          "priority=\"0.005\"" },
        { 1709251199007LL, 250, "<timestamp>2024-02-29T23:59:59.007Z</timestamp>",
          "priority=\"0.25\"" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        pidf_tuple_t t = { .id = STR_LIT("t"), .basic = PIDF_BASIC_OPEN,
                           .contact = STR_LIT("sip:a@b"), .contact_priority = cases[i].priority,
                           .timestamp_ms = cases[i].t_ms };
        pidf_person_t p = { .id = STR_LIT("p"), .mood_count = 1, .moods = { STR_LIT("in_love") },
                            .timestamp_ms = cases[i].t_ms };
        pidf_doc_t doc = { .entity = STR_LIT("sip:a@example.com"), .tuples = &t,
                           .tuple_count = 1, .persons = &p, .person_count = 1 };
        buf_t b;
        buf_init(&b);
        REQUIRE(pidf_encode(&b, &doc) == 0);
        buf_append(&b, "", 1);
        char dm[80];
        snprintf(dm, sizeof(dm), "<dm:%s", cases[i].time + 1);
        snprintf(dm + strlen(dm) - strlen("</timestamp>"), 32, "</dm:timestamp>");
        if (!strstr(b.data, cases[i].time) || !strstr(b.data, dm) || !strstr(b.data, cases[i].q))
            fprintf(stderr, "case %zu: %s\n", i, (const char *)b.data);
        CHECK(strstr(b.data, cases[i].time));
        CHECK(strstr(b.data, dm));
        CHECK(strstr(b.data, cases[i].q));
        CHECK(strstr(b.data, "<rpid:mood><rpid:in_love/></rpid:mood>"));
        pidf_doc_t *d = NULL;
        REQUIRE(pidf_decode(b.data, b.len - 1, NULL, &d, NULL) == 0);
        CHECK_EQ(d->tuples[0].timestamp_ms, cases[i].t_ms);
        CHECK_EQ(d->persons[0].timestamp_ms, cases[i].t_ms);
        CHECK_EQ(d->tuples[0].contact_priority, cases[i].priority);
        pidf_doc_free(d);
        buf_fini(&b);
    }
}

static void test_encode_presence(void)
{
    pidf_source_t src[3] = {
        { .id = STR_LIT("desk/phone_1"), .state = PIDF_STATE_AWAY, .priority = 0,
          .timestamp_ms = 1004201369000LL, .note = STR_LIT("Lunch"),
          .note_lang = STR_LIT("en"), .contact = STR_LIT("xmpp:alice@example.com/desk") },
        { .id = STR_LIT("line"), .state = PIDF_STATE_ON_THE_PHONE, .phone_line = true,
          .timestamp_ms = 1004201370000LL, .note = STR_LIT("On a call") },
        { .id = STR_LIT("pws"), .state = PIDF_STATE_UNAVAILABLE,
          .timestamp_ms = PIDF_TIME_NONE },
    };
    buf_t b;
    buf_init(&b);
    REQUIRE(pidf_encode_presence(&b, STR_LIT("sip:alice@example.com"), src, 3, false) == 0);
    pidf_doc_t *d = NULL;
    REQUIRE(pidf_decode(b.data, b.len, NULL, &d, NULL) == 0);
    roundtrip_check(d);
    REQUIRE(d->tuple_count == 3 && d->person_count == 1);
    CHECK_STR(t_str(d->tuples[0].id), "tdesk_2fphone_5f1");
    CHECK_EQ(d->tuples[0].basic, PIDF_BASIC_OPEN);
    CHECK_STR(t_str(d->tuples[0].notes[0].text), "Lunch");
    CHECK_STR(t_str(d->tuples[0].contact), "xmpp:alice@example.com/desk");
    CHECK_EQ(d->tuples[0].timestamp_ms, 1004201369000LL);
    CHECK_STR(t_str(d->tuples[1].id), "tline");
    CHECK_EQ(d->tuples[2].basic, PIDF_BASIC_CLOSED);
    CHECK_EQ(d->persons[0].activities, ACT(ON_THE_PHONE));
    CHECK_STR(t_str(d->persons[0].notes[0].text), "On a call");
    CHECK_EQ(d->persons[0].timestamp_ms, 1004201370000LL);
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_ON_THE_PHONE);
    pidf_doc_free(d);

    /* Composed: one tuple with the winner's details. */
    buf_fini(&b);
    REQUIRE(pidf_encode_presence(&b, STR_LIT("sip:alice@example.com"), src, 3, true) == 0);
    REQUIRE(pidf_decode(b.data, b.len, NULL, &d, NULL) == 0);
    REQUIRE(d->tuple_count == 1);
    CHECK_STR(t_str(d->tuples[0].id), "composed");
    CHECK_EQ(d->tuples[0].basic, PIDF_BASIC_OPEN);
    CHECK_STR(t_str(d->tuples[0].notes[0].text), "On a call");
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_ON_THE_PHONE);
    pidf_doc_free(d);

    /* No sources: one closed tuple. DND: busy plus Cisco's dnd, read back as DND. */
    buf_fini(&b);
    REQUIRE(pidf_encode_presence(&b, STR_LIT("sip:alice@example.com"), NULL, 0, false) == 0);
    REQUIRE(pidf_decode(b.data, b.len, NULL, &d, NULL) == 0);
    CHECK_STR(t_str(d->tuples[0].id), "offline");
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_UNAVAILABLE);
    pidf_doc_free(d);
    buf_fini(&b);
    pidf_source_t dnd = { .id = STR_LIT("r"), .state = PIDF_STATE_DND,
                          .timestamp_ms = PIDF_TIME_NONE };
    REQUIRE(pidf_encode_presence(&b, STR_LIT("sip:alice@example.com"), &dnd, 1, false) == 0);
    REQUIRE(pidf_decode(b.data, b.len, NULL, &d, NULL) == 0);
    CHECK_EQ(d->persons[0].activities, ACT(BUSY) | ACT(DND));
    CHECK_EQ(pidf_doc_state(d), PIDF_STATE_DND);
    pidf_doc_free(d);

    /* Ids: distinct sources keep distinct tuple ids, long ones are hashed. */
    char longid[400];
    memset(longid, '/', sizeof(longid));
    pidf_source_t two[2] = {
        { .id = { longid, sizeof(longid) }, .state = PIDF_STATE_AVAILABLE,
          .timestamp_ms = PIDF_TIME_NONE },
        { .id = STR_LIT("_"), .state = PIDF_STATE_AVAILABLE, .timestamp_ms = PIDF_TIME_NONE },
    };
    buf_fini(&b);
    REQUIRE(pidf_encode_presence(&b, STR_LIT("sip:a@b"), two, 2, false) == 0);
    REQUIRE(pidf_decode(b.data, b.len, NULL, &d, NULL) == 0);
    CHECK_EQ(d->tuples[0].id.len, 17);
    CHECK_EQ(d->tuples[0].id.ptr[0], 'h');
    CHECK_STR(t_str(d->tuples[1].id), "t_5f");
    pidf_doc_free(d);

    buf_fini(&b);
    CHECK_EQ(pidf_encode_presence(&b, STR_LIT(""), two, 2, false), -EINVAL);
    CHECK_EQ(pidf_encode_presence(&b, STR_LIT("sip:a@b"), two, PIDF_TUPLES_MAX + 1, false),
             -EINVAL);
    CHECK_EQ(b.len, 0);
    buf_fini(&b);
}

/* ---- Threads ----------------------------------------------------------- */

static void *decode_loop(void *arg)
{
    const char *xml = arg;
    for (int i = 0; i < 300; i++) {
        pidf_doc_t *d = NULL;
        if (pidf_decode(xml, strlen(xml), NULL, &d, NULL) != 0 || pidf_doc_state(d) !=
                                                                    PIDF_STATE_ON_THE_PHONE)
            return (void *)1;
        pidf_doc_free(d);
    }
    return NULL;
}

static void test_threads(void)
{
    /* Shards decode at once: nothing in the decoder may be shared between threads. */
    static const char xml[] = HEAD "<tuple id='a'><status><basic>open</basic></status></tuple>"
                                   "<dm:person><rpid:activities><rpid:on-the-phone/>"
                                   "</rpid:activities></dm:person>" TAIL;
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        REQUIRE(pthread_create(&th[i], NULL, decode_loop, (void *)xml) == 0);
    for (int i = 0; i < 6; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        CHECK(rc == NULL);
    }
}

static void test_names(void)
{
    for (int e = 0; e < PIDF_ERR_COUNT; e++)
        CHECK(pidf_err_name((pidf_err_t)e)[0]);
    CHECK_STR(pidf_err_name(PIDF_ERR_DOCTYPE), "doctype");
    CHECK_STR(pidf_activity_name(PIDF_ACT_ON_THE_PHONE), "on-the-phone");
    CHECK_STR(pidf_state_name(PIDF_STATE_ON_THE_PHONE), "on-the-phone");
}

int main(void)
{
    T_RUN(test_rfc3863_examples);
    T_RUN(test_rfc4480_example);
    T_RUN(test_polycom);
    T_RUN(test_cisco_cucm);
    T_RUN(test_cisco_web_service);
    T_RUN(test_linphone_jitsi_bria);
    T_RUN(test_kamailio_aggregate);
    T_RUN(test_lenient_details);
    T_RUN(test_notes_cut);
    T_RUN(test_reject_xml);
    T_RUN(test_reject_doctype);
    T_RUN(test_reject_structure);
    T_RUN(test_reject_limits);
    T_RUN(test_timestamps);
    T_RUN(test_qvalues);
    T_RUN(test_encode_doc);
    T_RUN(test_encode_times_and_qvalues);
    T_RUN(test_state_mapping);
    T_RUN(test_xmpp_show);
    T_RUN(test_compose);
    T_RUN(test_encode_presence);
    T_RUN(test_threads);
    T_RUN(test_names);
    T_DONE();
}
