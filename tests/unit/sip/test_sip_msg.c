/*
 * SIP message parser: each clause of sip_msg.h's contract, the RFC 4475 torture messages a
 * parser must accept and must refuse, framing cut at every byte, and the response writer.
 * Every message that parses is also checked against the invariants the fuzz target checks:
 * every slice inside the input, framing of the message giving its length, a response written
 * for it parsing again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "protocols/sip/sip_msg.h"
#include "tests/unit/t.h"

/* A string literal with its length, so that messages may hold NUL bytes. */
#define LIT(s) ((str_t){ (s), sizeof(s) - 1 })

#define SDP "v=0\r\n" \
            "o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n" \
            "s=-\r\n" \
            "c=IN IP4 192.0.2.4\r\n" \
            "t=0 0\r\n" \
            "m=audio 49217 RTP/AVP 0 12\r\n" \
            "m=video 3227 RTP/AVP 31\r\n" \
            "a=rtpmap:31 LPC\r\n"

static sip_msg_t msg, again;

/*
 * Replaces "$CL" in text with the number of bytes after the first empty line, as RFC 4475
 * writes its Content-Lengths; one static buffer, reused by the next call.
 */
static str_t with_cl(str_t text)
{
    static char out[1 << 17];
    const char *blank = NULL;
    for (size_t i = 0; i + 3 < text.len; i++)
        if (memcmp(text.ptr + i, "\r\n\r\n", 4) == 0) {
            blank = text.ptr + i + 4;
            break;
        }
    size_t body = blank ? (size_t)(text.ptr + text.len - blank) : 0;
    size_t n = 0;
    for (size_t i = 0; i < text.len;) {
        if (i + 3 <= text.len && memcmp(text.ptr + i, "$CL", 3) == 0) {
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%zu", body);
            i += 3;
        } else {
            REQUIRE(n < sizeof(out));
            out[n++] = text.ptr[i++];
        }
    }
    return (str_t){ out, n };
}

static ssize_t FR(const char *data, size_t len, const sip_msg_limits_t *lim, sip_frame_t *f)
{
    return sip_msg_frame(data, len, lim, f);
}

static bool inside(str_t s, str_t in)
{
    return s.len == 0 || (s.ptr >= in.ptr && s.ptr + s.len <= in.ptr + in.len);
}

/* Every slice the message holds lies in the input. */
static void check_slices(const sip_msg_t *m, str_t in)
{
    str_t all[] = {
        m->start_line, m->version, m->method_name, m->request_uri, m->reason, m->body,
        m->uri.scheme_name, m->uri.user, m->uri.password, m->uri.host, m->uri.params,
        m->uri.headers, m->via.protocol, m->via.transport, m->via.host, m->via.branch,
        m->via.received, m->via.rport, m->via.params, m->from.display, m->from.uri,
        m->from.params, m->from.tag, m->to.display, m->to.uri, m->to.tag, m->call_id,
        m->cseq.method_name,
    };
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        CHECK(inside(all[i], in));
    for (unsigned i = 0; i < m->header_count; i++) {
        CHECK(inside(m->headers[i].name, in));
        CHECK(inside(m->headers[i].value, in));
        CHECK(m->headers[i].name.len > 0);
    }
}

/* A response written for a request that parsed must itself parse, and echo the request. */
static void check_reply(const sip_msg_t *req)
{
    if (!sip_msg_can_reply(req))
        return;
    buf_t out;
    buf_init(&out);
    sip_response_t rsp = { .status = 200, .to_tag = STR_LIT("t1"),
                           .headers = STR_LIT("Contact: <sip:p@192.0.2.1>\r\n"),
                           .body = STR_LIT("hi") };
    CHECK_EQ(sip_msg_write_response(req, &rsp, &out), 0);
    ssize_t n = sip_msg_parse(&again, out.data, out.len, SIP_MSG_STREAM, NULL);
    CHECK_EQ(n, (ssize_t)out.len);
    CHECK(!again.is_request);
    CHECK_EQ(again.status, 200);
    CHECK(str_eq(again.call_id, req->call_id));
    CHECK_EQ(again.cseq.seq, req->cseq.seq);
    CHECK(str_eq(again.body, STR_LIT("hi")));
    CHECK(again.to.tag.len > 0);
    if (req->to.tag.len > 0)
        CHECK(str_eq(again.to.tag, req->to.tag));
    unsigned vias_req = 0, vias_rsp = 0;
    sip_hdr_iter_t it;
    str_t v;
    for (sip_hdr_iter_init(&it, req, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0;)
        vias_req++;
    for (sip_hdr_iter_init(&it, &again, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0;)
        vias_rsp++;
    CHECK_EQ(vias_rsp, vias_req);
    buf_fini(&out);
}

/* Parses in (one datagram or one framed stream message) into msg; on success also checks
 * the invariants. Returns what sip_msg_parse returned. */
static ssize_t parse_as(str_t in, sip_msg_transport_t tp, const sip_msg_limits_t *lim)
{
    ssize_t n = sip_msg_parse(&msg, in.ptr, in.len, tp, lim);
    CHECK_EQ(msg.err, n < 0 ? n : 0);
    if (msg.head_complete || n > 0)
        check_slices(&msg, in);
    if (n < 0)
        return n;
    CHECK((size_t)n <= in.len);
    CHECK_EQ(msg.len, n);
    CHECK_EQ(msg.head_len + msg.body.len, (size_t)n);
    if (msg.has_content_length) {
        /* Framing sees the same message. */
        sip_frame_t f;
        CHECK_EQ(FR(in.ptr, in.len, lim, &f), n);
        CHECK_EQ(f.skip_bytes, 0);
    }
    if (msg.is_request)
        check_reply(&msg);
    /* check_reply reuses again; parse once more so msg is what the caller asked for. */
    CHECK_EQ(sip_msg_parse(&msg, in.ptr, in.len, tp, lim), n);
    return n;
}

static ssize_t P(str_t in)
{
    return parse_as(in, SIP_MSG_DATAGRAM, NULL);
}

static ssize_t PS(str_t in)
{
    return parse_as(in, SIP_MSG_STREAM, NULL);
}

/* A minimal valid request around extra header lines; the Content-Length is computed. */
static str_t REQ(const char *method, const char *extra, const char *body)
{
    static char buf[1 << 16];
    int n = snprintf(buf, sizeof(buf),
                     "%s sip:bob@example.com SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
                     "Max-Forwards: 70\r\n"
                     "To: Bob <sip:bob@example.com>\r\n"
                     "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
                     "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
                     "CSeq: 314159 %s\r\n"
                     "%s"
                     "Content-Length: %zu\r\n"
                     "\r\n%s",
                     method, method, extra, strlen(body), body);
    REQUIRE(n > 0 && (size_t)n < sizeof(buf));
    return (str_t){ buf, (size_t)n };
}

static str_t CSTR(const char *s)
{
    return str_from_cstr(s);
}


/* ---- Names, methods and status phrases ---------------------------------------------- */

static void test_names(void)
{
    for (unsigned id = SIP_HDR_OTHER + 1; id < SIP_HDR_COUNT; id++) {
        str_t name = sip_hdr_name((sip_hdr_id_t)id);
        REQUIRE(name.len > 0 && name.len < 64);
        CHECK_EQ(sip_hdr_lookup(name), id);
        char up[64], low[64];
        for (size_t i = 0; i < name.len; i++) {
            up[i] = (char)((name.ptr[i] >= 'a' && name.ptr[i] <= 'z') ? name.ptr[i] - 32
                                                                       : name.ptr[i]);
            low[i] = (char)((name.ptr[i] >= 'A' && name.ptr[i] <= 'Z') ? name.ptr[i] + 32
                                                                        : name.ptr[i]);
        }
        CHECK_EQ(sip_hdr_lookup((str_t){ up, name.len }), id);
        CHECK_EQ(sip_hdr_lookup((str_t){ low, name.len }), id);
        /* One byte short is another name (or, for "To", the compact form of another). */
        CHECK(name.len == 2 || sip_hdr_lookup((str_t){ name.ptr, name.len - 1 }) != id);
        /* Any one byte changed to what differs from it in the case bit alone, or in
         * another bit, is no longer the name unless it is a letter's other case. */
        for (size_t i = 0; i < name.len; i++) {
            for (unsigned bit = 0; bit < 8; bit++) {
                memcpy(up, name.ptr, name.len);
                up[i] = (char)(up[i] ^ (1u << bit));
                bool other_case = bit == 5 && ((up[i] | 0x20) >= 'a' && (up[i] | 0x20) <= 'z');
                CHECK_EQ(sip_hdr_lookup((str_t){ up, name.len }) == id, other_case);
            }
        }
    }
    /* '-' and CR differ in the case bit only. */
    CHECK_EQ(sip_hdr_lookup(STR_LIT("Call\rID")), SIP_HDR_OTHER);
    CHECK_EQ(sip_hdr_lookup(STR_LIT("Max\rForwards")), SIP_HDR_OTHER);
    /* RFC 3261 §7.3.3 and the extensions' compact forms, both cases. */
    static const struct {
        char c;
        sip_hdr_id_t id;
    } compact[] = {
        { 'i', SIP_HDR_CALL_ID }, { 'm', SIP_HDR_CONTACT }, { 'e', SIP_HDR_CONTENT_ENCODING },
        { 'l', SIP_HDR_CONTENT_LENGTH }, { 'c', SIP_HDR_CONTENT_TYPE }, { 'f', SIP_HDR_FROM },
        { 's', SIP_HDR_SUBJECT }, { 'k', SIP_HDR_SUPPORTED }, { 't', SIP_HDR_TO },
        { 'v', SIP_HDR_VIA }, { 'o', SIP_HDR_EVENT }, { 'u', SIP_HDR_ALLOW_EVENTS },
        { 'r', SIP_HDR_REFER_TO }, { 'b', SIP_HDR_REFERRED_BY },
        { 'x', SIP_HDR_SESSION_EXPIRES },
    };
    unsigned mapped = 0;
    for (char c = 'a'; c <= 'z'; c++) {
        char upper = (char)(c - 32);
        sip_hdr_id_t id = sip_hdr_lookup((str_t){ &c, 1 });
        CHECK_EQ(sip_hdr_lookup((str_t){ &upper, 1 }), id);
        mapped += id != SIP_HDR_OTHER;
    }
    CHECK_EQ(mapped, ARRAY_LEN(compact));
    for (size_t i = 0; i < ARRAY_LEN(compact); i++)
        CHECK_EQ(sip_hdr_lookup((str_t){ &compact[i].c, 1 }), compact[i].id);
    CHECK_EQ(sip_hdr_lookup(STR_LIT("X-Custom")), SIP_HDR_OTHER);
    CHECK_EQ(sip_hdr_lookup(STR_LIT("")), SIP_HDR_OTHER);
    CHECK_EQ(sip_hdr_lookup(STR_LIT("C%6Fntact")), SIP_HDR_OTHER);
    CHECK_EQ(sip_hdr_lookup(STR_LIT("1")), SIP_HDR_OTHER);
    CHECK_STR(t_str(sip_hdr_name(SIP_HDR_CALL_ID)), "Call-ID");
    CHECK_STR(t_str(sip_hdr_name(SIP_HDR_WWW_AUTHENTICATE)), "WWW-Authenticate");
    CHECK(sip_hdr_is_list(SIP_HDR_VIA));
    CHECK(sip_hdr_is_list(SIP_HDR_ALLOW));
    CHECK(!sip_hdr_is_list(SIP_HDR_AUTHORIZATION));
    CHECK(!sip_hdr_is_list(SIP_HDR_OTHER));

    /* Method names are case-sensitive (RFC 3261 §7.1). */
    for (unsigned m = SIP_METHOD_OTHER + 1; m < SIP_METHOD_COUNT; m++)
        CHECK_EQ(sip_method_lookup(sip_method_name((sip_method_t)m)), m);
    CHECK_EQ(sip_method_lookup(STR_LIT("invite")), SIP_METHOD_OTHER);
    CHECK_EQ(sip_method_lookup(STR_LIT("IN%56ITE")), SIP_METHOD_OTHER);
    CHECK_EQ(sip_method_name(SIP_METHOD_OTHER).len, 0);

    CHECK_STR(sip_status_reason(200), "OK");
    CHECK_STR(sip_status_reason(202), "Accepted");
    CHECK_STR(sip_status_reason(412), "Conditional Request Failed");
    CHECK_STR(sip_status_reason(481), "Call/Transaction Does Not Exist");
    CHECK_STR(sip_status_reason(489), "Bad Event");
    CHECK_STR(sip_status_reason(513), "Message Too Large");
    CHECK_STR(sip_status_reason(199), "Early Dialog Terminated");
    CHECK_STR(sip_status_reason(299), "Successful");
    CHECK_STR(sip_status_reason(499), "Request Failure");
    CHECK_STR(sip_status_reason(699), "Global Failure");
    CHECK_STR(sip_status_reason(99), "Unknown");
    CHECK_STR(sip_status_reason(700), "Unknown");
    for (unsigned code = 100; code <= 699; code++)
        CHECK(strlen(sip_status_reason(code)) > 0);
}

static void test_error_mapping(void)
{
    static const struct {
        sip_msg_err_t err;
        unsigned status;
    } map[] = {
        { SIP_MSG_E_START_LINE, 400 }, { SIP_MSG_E_HEADER_SYNTAX, 400 },
        { SIP_MSG_E_BAD_HEADER, 400 }, { SIP_MSG_E_MISSING_HEADER, 400 },
        { SIP_MSG_E_DUPLICATE_HEADER, 400 }, { SIP_MSG_E_CSEQ_MISMATCH, 400 },
        { SIP_MSG_E_BAD_URI, 400 }, { SIP_MSG_E_CONTENT_LENGTH, 400 },
        { SIP_MSG_E_NO_CONTENT_LENGTH, 400 }, { SIP_MSG_E_TRUNCATED, 400 },
        { SIP_MSG_E_VERSION, 505 }, { SIP_MSG_E_URI_SCHEME, 416 },
        { SIP_MSG_E_BODY_TOO_LARGE, 413 }, { SIP_MSG_E_TOO_LARGE, 513 },
        { SIP_MSG_E_TOO_MANY_HEADERS, 513 }, { SIP_MSG_E_LINE_TOO_LONG, 513 },
    };
    CHECK_EQ(ARRAY_LEN(map), SIP_MSG_E_COUNT - 1);
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        CHECK_EQ(sip_msg_err_status(map[i].err), map[i].status);
        const char *r = sip_msg_err_reason(map[i].err);
        CHECK(strlen(r) > 0 && !strpbrk(r, "\r\n"));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(r, sip_msg_err_reason(map[j].err)) != 0);
    }
    CHECK_STR(sip_msg_err_reason(SIP_MSG_E_VERSION), "Version Not Supported");
    CHECK_STR(sip_msg_err_reason(SIP_MSG_E_URI_SCHEME), "Unsupported URI Scheme");
    CHECK_EQ(sip_msg_err_status(SIP_MSG_OK), 500);
    CHECK_EQ(sip_msg_err_status((sip_msg_err_t)-99), 500);
}

/* ---- Start lines and headers -------------------------------------------------------- */

static void test_request_basics(void)
{
    str_t in = REQ("INVITE",
                   "Contact: <sip:alice@pc33.example.com>\r\n"
                   "Content-Type: application/sdp\r\n", SDP);
    CHECK_EQ(P(in), (ssize_t)in.len);
    CHECK(msg.is_request);
    CHECK(msg.head_complete);
    CHECK_EQ(msg.method, SIP_METHOD_INVITE);
    CHECK_STR(t_str(msg.method_name), "INVITE");
    CHECK_STR(t_str(msg.request_uri), "sip:bob@example.com");
    CHECK_STR(t_str(msg.version), "SIP/2.0");
    CHECK_STR(t_str(msg.start_line), "INVITE sip:bob@example.com SIP/2.0");
    CHECK_EQ(msg.uri.scheme, SIP_SCHEME_SIP);
    CHECK_STR(t_str(msg.uri.user), "bob");
    CHECK_STR(t_str(msg.uri.host), "example.com");
    CHECK_EQ(msg.header_count, 9);
    CHECK_EQ(msg.max_forwards, 70);
    CHECK_STR(t_str(msg.call_id), "a84b4c76e66710@pc33.example.com");
    CHECK_EQ(msg.cseq.seq, 314159);
    CHECK_EQ(msg.cseq.method, SIP_METHOD_INVITE);
    CHECK_STR(t_str(msg.from.display), "Alice");
    CHECK_STR(t_str(msg.from.uri), "sip:alice@example.com");
    CHECK_STR(t_str(msg.from.tag), "1928301774");
    CHECK_STR(t_str(msg.to.display), "Bob");
    CHECK_EQ(msg.to.tag.len, 0);
    CHECK_EQ(msg.via.transport_id, SIP_TRANSPORT_UDP);
    CHECK_STR(t_str(msg.via.host), "pc33.example.com");
    CHECK_STR(t_str(msg.via.branch), "z9hG4bK776asdhds");
    CHECK(msg.has_content_length);
    CHECK_EQ(msg.content_length, strlen(SDP));
    CHECK_STR(t_str(msg.body), SDP);
    CHECK_EQ(msg.head_len, in.len - strlen(SDP));
    CHECK(sip_msg_can_reply(&msg));
    /* The same on a stream. */
    CHECK_EQ(PS(in), (ssize_t)in.len);
}

static void test_every_method(void)
{
    static const struct {
        const char *name;
        sip_method_t m;
        const char *extra;
        const char *body;
    } cases[] = {
        { "SUBSCRIBE", SIP_METHOD_SUBSCRIBE,
          "Event: presence\r\nExpires: 3600\r\nContact: <sip:alice@192.0.2.4>\r\n"
          "Accept: application/pidf+xml\r\n", "" },
        { "NOTIFY", SIP_METHOD_NOTIFY,
          "Event: presence\r\nSubscription-State: active;expires=599\r\n"
          "Content-Type: application/pidf+xml\r\n", "<presence/>" },
        { "PUBLISH", SIP_METHOD_PUBLISH,
          "Event: presence\r\nExpires: 120\r\nSIP-If-Match: dx200xyz\r\n"
          "Content-Type: application/pidf+xml\r\n", "<presence/>" },
        { "MESSAGE", SIP_METHOD_MESSAGE, "Content-Type: text/plain\r\n", "Watson, come here." },
        { "REGISTER", SIP_METHOD_REGISTER,
          "Contact: <sip:bob@192.0.2.4>;expires=7200\r\n", "" },
        { "OPTIONS", SIP_METHOD_OPTIONS, "Accept: application/sdp\r\n", "" },
        { "INVITE", SIP_METHOD_INVITE,
          "Contact: <sip:alice@pc33.example.com>\r\nContent-Type: application/sdp\r\n", SDP },
        { "ACK", SIP_METHOD_ACK, "", "" },
        { "BYE", SIP_METHOD_BYE, "", "" },
        { "CANCEL", SIP_METHOD_CANCEL, "", "" },
        { "INFO", SIP_METHOD_INFO, "", "" },
        { "PRACK", SIP_METHOD_PRACK, "RAck: 776656 1 INVITE\r\n", "" },
        { "UPDATE", SIP_METHOD_UPDATE, "", "" },
        { "REFER", SIP_METHOD_REFER, "Refer-To: <sip:carol@example.com>\r\n", "" },
        { "FOO-BAR", SIP_METHOD_OTHER, "", "" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        str_t in = REQ(cases[i].name, cases[i].extra, cases[i].body);
        CHECK_EQ(P(in), (ssize_t)in.len);
        CHECK_EQ(msg.method, cases[i].m);
        CHECK_STR(t_str(msg.method_name), cases[i].name);
        CHECK_EQ(msg.cseq.method, cases[i].m);
        CHECK_STR(t_str(msg.body), cases[i].body);
        /* ACK is never answered (RFC 3261 §17.1.1.3). */
        CHECK_EQ(sip_msg_can_reply(&msg), cases[i].m != SIP_METHOD_ACK);
    }
}

static void test_responses(void)
{
    str_t in = LIT("SIP/2.0 200 OK\r\n"
                   "Via: SIP/2.0/UDP server10.example.com;branch=z9hG4bKnashds8"
                   ";received=192.0.2.3\r\n"
                   "Via: SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1\r\n"
                   "To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
                   "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
                   "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
                   "CSeq: 314159 INVITE\r\n"
                   "Contact: <sip:bob@192.0.2.4>\r\n"
                   "Content-Length: 0\r\n"
                   "\r\n");
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK(!msg.is_request);
    CHECK_EQ(msg.status, 200);
    CHECK_STR(t_str(msg.reason), "OK");
    CHECK_EQ(msg.max_forwards, -1);         /* not needed in a response */
    CHECK_STR(t_str(msg.via.received), "192.0.2.3");
    CHECK_STR(t_str(msg.to.tag), "a6c85cf");
    CHECK(!sip_msg_can_reply(&msg));

    str_t multiword = LIT("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"
                          "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
                          "To: <sip:b@example.com>;tag=1\r\nFrom: <sip:a@example.com>;tag=2\r\n"
                          "Call-ID: x\r\nCSeq: 1 BYE\r\nl: 0\r\n\r\n");
    CHECK(P(multiword) > 0);
    CHECK_EQ(msg.status, 481);
    CHECK_STR(t_str(msg.reason), "Call/Transaction Does Not Exist");

    /* Lower-case version, every class, the extremes of the range. */
    static const char *const lines[] = { "sip/2.0 100 Trying", "SIP/2.0 180 Ringing",
                                         "SIP/2.0 302 Moved Temporarily", "SIP/2.0 699 x",
                                         "SIP/2.0 100", "SIP/2.0 503 " };
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%s\r\nv: SIP/2.0/UDP h\r\nt: <sip:b@h>\r\n"
                         "f: <sip:a@h>;tag=1\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n", lines[i]);
        CHECK_EQ(P((str_t){ buf, (size_t)n }), n);
    }
    /* Codes outside 100-699 or not three digits (RFC 4475 §3.1.2.19 bigcode). */
    static const char *const bad[] = { "SIP/2.0 099 x", "SIP/2.0 700 x", "SIP/2.0 20 OK",
                                       "SIP/2.0 2000 OK", "SIP/2.0 4294967301 better not",
                                       "SIP/2.0 abc OK", "SIP/2.0", "SIP/2.0200 OK",
                                       "SIP/2.0  200 OK" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%s\r\nv: SIP/2.0/UDP h\r\nt: <sip:b@h>\r\n"
                         "f: <sip:a@h>;tag=1\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n", bad[i]);
        CHECK_EQ(P((str_t){ buf, (size_t)n }), SIP_MSG_E_START_LINE);
        CHECK(!msg.head_complete);
    }
}

static void test_peek_response(void)
{
    sip_response_peek_t pk;
    /* What finds a client transaction, and nothing else read: a From no parser takes. */
    str_t in = LIT("SIP/2.0 200 OK\r\n"
                   "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1-abc;rport=5070,\r\n"
                   "  SIP/2.0/TCP other.example.com;branch=z9hG4bKnot-ours\r\n"
                   "Via: SIP/2.0/UDP third;branch=z9hG4bK3\r\n"
                   "From: <<<not an address\r\n"
                   "cseq:\r\n 42\r\n NOTIFY\r\n"
                   "\r\n");
    CHECK_EQ(sip_msg_peek_response(in.ptr, in.len, &pk), 0);
    CHECK_EQ(pk.status, 200);
    CHECK_STR(t_str(pk.via.branch), "z9hG4bK-1-abc");
    CHECK_STR(t_str(pk.via.host), "127.0.0.1");
    CHECK_EQ(pk.via.port, 5060);
    CHECK_EQ(pk.cseq.seq, 42u);
    CHECK_EQ(pk.cseq.method, SIP_METHOD_NOTIFY);
    CHECK(P(in) < 0);                       /* the parser refuses the From */

    in = LIT("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=b1\r\nCSeq: 7 SUBSCRIBE\r\n"
             "Content-Length: 5\r\n\r\nhello");
    CHECK_EQ(sip_msg_peek_response(in.ptr, in.len, &pk), 0);
    CHECK_EQ(pk.status, 180);
    CHECK_EQ(pk.cseq.method, SIP_METHOD_SUBSCRIBE);

    /* A request, or too little to tell, is the parser's. */
    in = LIT("NOTIFY sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=b1\r\n\r\n");
    CHECK_EQ(sip_msg_peek_response(in.ptr, in.len, &pk), 1);
    CHECK_EQ(sip_msg_peek_response("SIP", 3, &pk), 1);
    CHECK_EQ(sip_msg_peek_response("", 0, &pk), 1);
    in = LIT("sip/2.0 202 Accepted\r\nv: SIP/2.0/UDP h;branch=b1\r\nCSeq: 1 NOTIFY\r\n\r\n");
    CHECK_EQ(sip_msg_peek_response(in.ptr, in.len, &pk), 0);
    CHECK_EQ(pk.status, 202);

    static const struct {
        const char *in;
        int err;
    } bad[] = {
        { "SIP/2.0 200 OK\r\nCSeq: 1 NOTIFY\r\n\r\n", SIP_MSG_E_MISSING_HEADER },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\n\r\n", SIP_MSG_E_MISSING_HEADER },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_BAD_HEADER },                       /* no branch: not ours */
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=\r\nCSeq: 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_BAD_HEADER },
        { "SIP/2.0 200 OK\r\nVia: ,SIP/2.0/UDP h;branch=b\r\nCSeq: 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_BAD_HEADER },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: NOTIFY\r\n\r\n",
          SIP_MSG_E_BAD_HEADER },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: 1 NOTIFY\r\n"
          "CSeq: 2 NOTIFY\r\n\r\n", SIP_MSG_E_DUPLICATE_HEADER },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: 1 NOTIFY\r\n",
          SIP_MSG_E_TRUNCATED },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_HEADER_SYNTAX },
        { "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: 1\x01 NOTIFY\r\n\r\n",
          SIP_MSG_E_HEADER_SYNTAX },
        { "SIP/3.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_VERSION },
        { "SIP/2.0 20 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nCSeq: 1 NOTIFY\r\n\r\n",
          SIP_MSG_E_START_LINE },
        { "SIP/2.0 200 OK", SIP_MSG_E_TRUNCATED },
        { "SIP/", SIP_MSG_E_TRUNCATED },
        { "SIP/2.0 200 OK\x01\r\n\r\n", SIP_MSG_E_START_LINE },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int r = sip_msg_peek_response(bad[i].in, strlen(bad[i].in), &pk);
        if (r != bad[i].err)
            fprintf(stderr, "case %zu: %d\n", i, r);
        CHECK_EQ(r, bad[i].err);
    }
    /* Every response the parser reads, peek reads the same (the torture tests' included,
     * in the fuzz target). */
    in = LIT("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"
             "Via: SIP/2.0/TCP h:5061;branch=z9hG4bK1;received=192.0.2.1\r\n"
             "To: <sip:b@example.com>;tag=1\r\nFrom: <sip:a@example.com>;tag=2\r\n"
             "Call-ID: x\r\nCSeq: 1 MESSAGE\r\nl: 0\r\n\r\n");
    CHECK(P(in) > 0);
    CHECK_EQ(sip_msg_peek_response(in.ptr, in.len, &pk), 0);
    CHECK_EQ(pk.status, msg.status);
    CHECK(str_eq(pk.via.branch, msg.via.branch));
    CHECK(str_eq(pk.via.received, msg.via.received));
    CHECK_EQ(pk.cseq.method, SIP_METHOD_MESSAGE);
}

static void test_header_access(void)
{
    str_t in = REQ("REGISTER",
                   "v: SIP/2.0/TCP second.example.com;branch=z9hG4bK2, "
                   "SIP/2.0/UDP third.example.com:5070;branch=z9hG4bK3\r\n"
                   "X-Custom: one\r\n"
                   "Contact: <sip:a@192.0.2.1>;expires=60, \"Bob, Jr\" <sip:b@192.0.2.2>\r\n"
                   "x-custom: two\r\n"
                   "m: sip:c@192.0.2.3;q=0.5\r\n"
                   "Authorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"x\"\r\n"
                   "Allow: INVITE, ACK,OPTIONS\r\n"
                   "Allow: BYE\r\n"
                   "Supported:\r\n"
                   "X-Other: three\r\n", "");
    CHECK_EQ(P(in), (ssize_t)in.len);
    const sip_hdr_t *h = sip_msg_get(&msg, SIP_HDR_VIA);
    REQUIRE(h);
    CHECK_STR(t_str(h->name), "Via");
    h = sip_msg_next(&msg, h);
    REQUIRE(h);
    CHECK_STR(t_str(h->name), "v");
    CHECK(sip_msg_next(&msg, h) == NULL);

    /* Values across lines and commas, not inside quotes. */
    static const char *const vias[] = { "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
                                        "SIP/2.0/TCP second.example.com;branch=z9hG4bK2",
                                        "SIP/2.0/UDP third.example.com:5070;branch=z9hG4bK3" };
    sip_hdr_iter_t it;
    str_t v;
    unsigned n = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0; n++)
        if (n < ARRAY_LEN(vias))
            CHECK_STR(t_str(v), vias[n]);
    CHECK_EQ(n, 3);
    static const char *const contacts[] = { "<sip:a@192.0.2.1>;expires=60",
                                            "\"Bob, Jr\" <sip:b@192.0.2.2>",
                                            "sip:c@192.0.2.3;q=0.5" };
    n = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0; n++)
        if (n < ARRAY_LEN(contacts))
            CHECK_STR(t_str(v), contacts[n]);
    CHECK_EQ(n, 3);
    static const char *const allow[] = { "INVITE", "ACK", "OPTIONS", "BYE" };
    n = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_ALLOW); sip_hdr_iter_next(&it, &v) > 0; n++)
        if (n < ARRAY_LEN(allow))
            CHECK_STR(t_str(v), allow[n]);
    CHECK_EQ(n, 4);
    /* The authentication fields are not lists: their commas separate parameters. */
    n = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_AUTHORIZATION); sip_hdr_iter_next(&it, &v) > 0;)
        n++;
    CHECK_EQ(n, 1);
    /* An empty list field has no values; an absent field neither. */
    CHECK(sip_msg_get(&msg, SIP_HDR_SUPPORTED) != NULL);
    sip_hdr_iter_init(&it, &msg, SIP_HDR_SUPPORTED);
    CHECK_EQ(sip_hdr_iter_next(&it, &v), 0);
    sip_hdr_iter_init(&it, &msg, SIP_HDR_REQUIRE);
    CHECK_EQ(sip_hdr_iter_next(&it, &v), 0);
    CHECK(sip_msg_get(&msg, SIP_HDR_REQUIRE) == NULL);

    /* Unknown fields: by name, case-insensitively, and in order. */
    h = sip_msg_find(&msg, STR_LIT("X-CUSTOM"));
    REQUIRE(h);
    CHECK_STR(t_str(h->value), "one");
    h = sip_msg_next(&msg, h);
    REQUIRE(h);
    CHECK_STR(t_str(h->value), "two");
    CHECK(sip_msg_next(&msg, h) == NULL);
    CHECK(sip_msg_find(&msg, STR_LIT("X-Missing")) == NULL);
    h = sip_msg_find(&msg, STR_LIT("x-other"));
    REQUIRE(h);
    CHECK_STR(t_str(h->value), "three");
    /* Known fields by any of their names. */
    CHECK(sip_msg_find(&msg, STR_LIT("m")) == sip_msg_get(&msg, SIP_HDR_CONTACT));
    CHECK(sip_msg_find(&msg, STR_LIT("call-id")) == sip_msg_get(&msg, SIP_HDR_CALL_ID));
    /* Iteration over every field, unknown ones included, in order. */
    unsigned others = 0;
    for (unsigned i = 0; i < msg.header_count; i++)
        others += msg.headers[i].id == SIP_HDR_OTHER;
    CHECK_EQ(others, 3);
    CHECK_EQ(msg.headers[0].id, SIP_HDR_VIA);
    CHECK_STR(t_str(msg.headers[msg.header_count - 1].name), "Content-Length");
}

static void test_compact_forms(void)
{
    str_t in = LIT("SUBSCRIBE sip:bob@example.com SIP/2.0\r\n"
                   "v: SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bKc1\r\n"
                   "f: <sip:alice@example.com>;tag=f1\r\n"
                   "t: <sip:bob@example.com>\r\n"
                   "i: compact@192.0.2.7\r\n"
                   "CSeq: 7 SUBSCRIBE\r\n"
                   "Max-Forwards: 69\r\n"
                   "m: <sip:alice@192.0.2.7;transport=tcp>\r\n"
                   "o: presence;id=4\r\n"
                   "u: presence, dialog\r\n"
                   "k: eventlist\r\n"
                   "s: hello\r\n"
                   "r: <sip:carol@example.com>\r\n"
                   "b: <sip:dave@example.com>\r\n"
                   "x: 1800;refresher=uas\r\n"
                   "e: gzip\r\n"
                   "c: text/plain\r\n"
                   "l: 2\r\n"
                   "\r\n"
                   "ok");
    CHECK_EQ(PS(in), (ssize_t)in.len);
    static const sip_hdr_id_t ids[] = {
        SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID, SIP_HDR_CONTACT,
        SIP_HDR_EVENT, SIP_HDR_ALLOW_EVENTS, SIP_HDR_SUPPORTED, SIP_HDR_SUBJECT,
        SIP_HDR_REFER_TO, SIP_HDR_REFERRED_BY, SIP_HDR_SESSION_EXPIRES,
        SIP_HDR_CONTENT_ENCODING, SIP_HDR_CONTENT_TYPE, SIP_HDR_CONTENT_LENGTH,
    };
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        const sip_hdr_t *h = sip_msg_get(&msg, ids[i]);
        REQUIRE(h);
        CHECK_EQ(h->name.len, 1);
    }
    CHECK_STR(t_str(msg.call_id), "compact@192.0.2.7");
    CHECK_STR(t_str(msg.body), "ok");
    sip_event_t ev;
    CHECK_EQ(sip_event_parse(sip_msg_get(&msg, SIP_HDR_EVENT)->value, &ev), 0);
    CHECK_STR(t_str(ev.id), "4");
}

static void test_folding(void)
{
    str_t in = with_cl(LIT("NOTIFY sip:w@192.0.2.9 SIP/2.0\r\n"
                           "Via: SIP/2.0/UDP\r\n"
                           " 192.0.2.2\r\n"
                           "\t;branch=z9hG4bKf1\r\n"
                           "Max-Forwards:\r\n"
                           "   70\r\n"
                           "To: <sip:w@example.com>;tag=1\r\n"
                           "From: <sip:p@example.com>;\r\n"
                           " tag=2\r\n"
                           "Call-ID: fold@192.0.2.2\r\n"
                           "CSeq: 9\r\n"
                           "  NOTIFY\r\n"
                           "Event: presence\r\n"
                           "Subscription-State: active ;\r\n"
                           "   expires = 300\r\n"
                           "Subject: one\r\n"
                           "    two  \t  three\r\n"
                           "\t four   \r\n"
                           "X-Empty:\r\n"
                           " \r\n"
                           "Content-Length: $CL\r\n"
                           "\r\n"
                           "body"));
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.max_forwards, 70);
    CHECK_STR(t_str(msg.via.host), "192.0.2.2");
    CHECK_STR(t_str(msg.via.branch), "z9hG4bKf1");
    CHECK_STR(t_str(msg.from.tag), "2");
    CHECK_EQ(msg.cseq.seq, 9);
    CHECK_EQ(msg.cseq.method, SIP_METHOD_NOTIFY);
    /* The raw value keeps its folds; sip_unfold makes one line of it. */
    const sip_hdr_t *subj = sip_msg_get(&msg, SIP_HDR_SUBJECT);
    REQUIRE(subj);
    CHECK_STR(t_str(subj->value), "one\r\n    two  \t  three\r\n\t four");
    char out[128];
    ssize_t n = sip_unfold(subj->value, out, sizeof(out));
    CHECK_EQ(n, (ssize_t)strlen("one two  \t  three four"));
    CHECK(n > 0 && memcmp(out, "one two  \t  three four", (size_t)n) == 0);
    CHECK_EQ(sip_unfold(subj->value, out, 5), -ENOSPC);
    n = sip_unfold(STR_LIT("no folds  here"), out, sizeof(out));
    CHECK_EQ(n, 14);
    /* A value that is only folds is empty. */
    const sip_hdr_t *empty = sip_msg_find(&msg, STR_LIT("X-Empty"));
    REQUIRE(empty);
    CHECK_EQ(empty->value.len, 0);
    sip_subscription_state_t ss;
    CHECK_EQ(sip_subscription_state_parse(sip_msg_get(&msg, SIP_HDR_SUBSCRIPTION_STATE)->value,
                                          &ss), 0);
    CHECK_EQ(ss.state, SIP_SUBSTATE_ACTIVE);
    CHECK(ss.has_expires);
    CHECK_EQ(ss.expires_s, 300);

    /* Bare LF line ends and folds are read as CRLF ones. */
    str_t lf = LIT("OPTIONS sip:a@example.com SIP/2.0\n"
                   "Via: SIP/2.0/UDP h;branch=z9hG4bKlf\n"
                   "To: <sip:a@example.com>\nFrom: <sip:b@example.com>;tag=1\n"
                   "Call-ID: lf\nCSeq: 1\n OPTIONS\nMax-Forwards: 1\nContent-Length: 0\n\n");
    CHECK_EQ(PS(lf), (ssize_t)lf.len);
    CHECK_EQ(msg.cseq.method, SIP_METHOD_OPTIONS);

    /* A fold right after the start line continues nothing. */
    str_t bad = LIT("OPTIONS sip:a@example.com SIP/2.0\r\n Via: x\r\n\r\n");
    CHECK_EQ(P(bad), SIP_MSG_E_HEADER_SYNTAX);
    /* No fold between a name and its colon. */
    bad = LIT("OPTIONS sip:a@example.com SIP/2.0\r\nVia\r\n : x\r\n\r\n");
    CHECK_EQ(P(bad), SIP_MSG_E_HEADER_SYNTAX);
}

/* text with a C0 control, then DEL, at k, put in fmt (one %s): the message alone, or
 * that line in a minimal request, fails with err each time. text[k] is put back. */
static void check_controls_at(char *text, unsigned k, const char *fmt, bool in_request,
                              ssize_t err)
{
    static const char controls[] = { '\001', '\177' };
    char line[160], keep = text[k];
    for (size_t i = 0; i < sizeof(controls); i++) {
        text[k] = controls[i];
        snprintf(line, sizeof(line), fmt, text);
        if (in_request)
            CHECK_EQ(P(REQ("OPTIONS", line, "")), err);
        else
            CHECK_EQ(sip_msg_parse(&msg, line, strlen(line), SIP_MSG_DATAGRAM, NULL), err);
    }
    text[k] = keep;
}

/* The scanner checks a value's plain bytes sixteen at a time: a control, DEL or backslash
 * is found at every offset of a block, and trailing white space is trimmed at every length. */
static void test_value_blocks(void)
{
    for (unsigned k = 0; k < 48; k++) {
        char v[64], line[96];
        memset(v, 'a', 48);
        v[48] = 0;
        check_controls_at(v, k, "X-Long: %s\r\n", true, SIP_MSG_E_HEADER_SYNTAX);
        if (k + 1 < 48) {
            v[k] = '\\';          /* escapes the control after it */
            v[k + 1] = '\001';
            snprintf(line, sizeof(line), "X-Long: %s\r\n", v);
            str_t in = REQ("OPTIONS", line, "");
            CHECK_EQ(P(in), (ssize_t)in.len);
            v[k + 1] = 'a';
        }
        memset(v + k, ' ', 48 - k);
        v[k ? k - 1 : 0] = k ? 'b' : ' ';
        snprintf(line, sizeof(line), "X-Long: %s\r\n", v);
        str_t in = REQ("OPTIONS", line, "");
        CHECK_EQ(P(in), (ssize_t)in.len);
        const sip_hdr_t *h = sip_msg_find(&msg, STR_LIT("X-Long"));
        REQUIRE(h);
        CHECK_EQ(h->value.len, k);
        CHECK(k == 0 || h->value.ptr[k - 1] == 'b');
    }
}

/* A long start line and a value with inner white space: a control byte at every offset
 * of the runs the scanner reads at once stops it, white space at a value's ends is not
 * the value's, tabs and spaces inside are. */
static void test_start_line_and_space_blocks(void)
{
    for (unsigned k = 0; k < 48; k++) {
        char user[64], line[160];
        memset(user, 'u', 48);
        user[48] = 0;
        check_controls_at(user, k, "OPTIONS sip:%s@h SIP/2.0\r\n", false,
                          SIP_MSG_E_START_LINE);

        char v[64];
        memset(v, ' ', 48);
        v[48] = 0;
        v[k] = 'b';
        if (k + 2 < 48) {
            v[k + 1] = '\t';
            v[k + 2] = 'c';
        }
        snprintf(line, sizeof(line), "X-Spaced:%s\r\n", v);
        str_t in = REQ("OPTIONS", line, "");
        CHECK_EQ(P(in), (ssize_t)in.len);
        const sip_hdr_t *h = sip_msg_find(&msg, STR_LIT("X-Spaced"));
        REQUIRE(h);
        CHECK_STR(t_str(h->value), k + 2 < 48 ? "b\tc" : "b");
    }
}

/* An all-digits-and-dots host is an IPv4 address exactly when inet_pton takes it. */
static void test_ipv4_hosts(void)
{
    static const char *const hosts[] = {
        "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
        "1.2.3.04", "1.2.3.0", "10.0.0.1", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4.",
        "1234.1.1.1", "1.2.3.999", "00.1.1.1", "100.200.250.255", "9", "192.0.2.4",
    };
    char uri[64];
    for (size_t i = 0; i < ARRAY_LEN(hosts); i++) {
        unsigned char addr[4];
        bool ok = inet_pton(AF_INET, hosts[i], addr) == 1;
        snprintf(uri, sizeof(uri), "sip:%s", hosts[i]);
        sip_uri_t u;
        int r = sip_uri_parse(str_from_cstr(uri), &u);
        CHECK_EQ(r == 0 && u.host_type == SIP_HOST_IPV4, ok);
        CHECK(ok || r < 0 || u.host_type != SIP_HOST_IPV4);
    }
    /* Every address of the form a.b.c.d over a spread of octets, with leading zeros too. */
    static const char *const octets[] = { "0", "7", "00", "09", "10", "99", "100", "199",
                                          "255", "256", "300", "999", "010", "0255" };
    for (size_t a = 0; a < ARRAY_LEN(octets); a++) {
        for (size_t b = 0; b < ARRAY_LEN(octets); b++) {
            char host[32];
            snprintf(host, sizeof(host), "%s.1.%s.2", octets[a], octets[b]);
            unsigned char addr[4];
            bool ok = inet_pton(AF_INET, host, addr) == 1;
            snprintf(uri, sizeof(uri), "sip:u@%s:5060", host);
            sip_uri_t u;
            int r = sip_uri_parse(str_from_cstr(uri), &u);
            CHECK_EQ(r == 0, ok);
            CHECK(!ok || u.host_type == SIP_HOST_IPV4);
        }
    }
}

static void test_control_bytes(void)
{
    /* A bare CR is no line end (RFC 3261 §7: CRLF). */
    CHECK_EQ(P(LIT("OPTIONS sip:a@h SIP/2.0\rVia: x\r\n\r\n")), SIP_MSG_E_START_LINE);
    str_t in = REQ("OPTIONS", "X-A: a\rb\r\n", "");
    CHECK_EQ(P(in), SIP_MSG_E_HEADER_SYNTAX);
    /* NUL, DEL and other controls outside a quoted-pair. */
    in = REQ("OPTIONS", "X-A: a\001b\r\n", "");
    CHECK_EQ(P(in), SIP_MSG_E_HEADER_SYNTAX);
    in = REQ("OPTIONS", "X-A: \"a\177\"\r\n", "");
    CHECK_EQ(P(in), SIP_MSG_E_HEADER_SYNTAX);
    static const char nul[] = "OPTIONS sip:a@h SIP/2.0\r\nX-A: a\0b\r\n\r\n";
    CHECK_EQ(P((str_t){ nul, sizeof(nul) - 1 }), SIP_MSG_E_HEADER_SYNTAX);
    static const char nul_line[] = "OPTIONS sip:a\0@h SIP/2.0\r\n\r\n";
    CHECK_EQ(P((str_t){ nul_line, sizeof(nul_line) - 1 }), SIP_MSG_E_START_LINE);
    /* ... but escaped: a quoted-pair may hold them (RFC 4475 §3.1.1.2). An escaped
     * backslash escapes nothing after it. */
    in = REQ("OPTIONS", "X-A: \"\\\001\"\r\n", "");
    CHECK_EQ(P(in), (ssize_t)in.len);
    in = REQ("OPTIONS", "X-A: \"\\\\\001\"\r\n", "");
    CHECK_EQ(P(in), SIP_MSG_E_HEADER_SYNTAX);
    /* UTF-8 is fine in values, not in names. */
    in = REQ("OPTIONS", "X-A: \xe5\xa4\xa7\xe5\x81\x9c\r\n", "");
    CHECK_EQ(P(in), (ssize_t)in.len);
    in = REQ("OPTIONS", "X-\xe5: a\r\n", "");
    CHECK_EQ(P(in), SIP_MSG_E_HEADER_SYNTAX);
    /* A field line with no colon, an empty name, a space in the name. */
    CHECK_EQ(P(REQ("OPTIONS", "NoColon\r\n", "")), SIP_MSG_E_HEADER_SYNTAX);
    CHECK_EQ(P(REQ("OPTIONS", ": x\r\n", "")), SIP_MSG_E_HEADER_SYNTAX);
    CHECK_EQ(P(REQ("OPTIONS", "X A: x\r\n", "")), SIP_MSG_E_HEADER_SYNTAX);
    /* White space before the colon is allowed (HCOLON). */
    in = REQ("OPTIONS", "X-A \t : x\r\n", "");
    CHECK_EQ(P(in), (ssize_t)in.len);
    CHECK_STR(t_str(sip_msg_find(&msg, STR_LIT("x-a"))->name), "X-A");
}

/* ---- Structured values ---------------------------------------------------------------- */

static void test_uri(void)
{
    sip_uri_t u;
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:alice:secretword@atlanta.com;transport=tcp"), &u), 0);
    CHECK_EQ(u.scheme, SIP_SCHEME_SIP);
    CHECK_STR(t_str(u.user), "alice");
    CHECK_STR(t_str(u.password), "secretword");
    CHECK_STR(t_str(u.host), "atlanta.com");
    CHECK_EQ(u.host_type, SIP_HOST_NAME);
    CHECK(!u.has_port);
    CHECK_STR(t_str(u.params), ";transport=tcp");
    CHECK_STR(t_str(u.transport), "tcp");

    CHECK_EQ(sip_uri_parse(STR_LIT("SIPS:alice@atlanta.com?subject=project%20x&priority=urgent"),
                           &u), 0);
    CHECK_EQ(u.scheme, SIP_SCHEME_SIPS);
    CHECK_STR(t_str(u.scheme_name), "SIPS");
    CHECK_STR(t_str(u.headers), "subject=project%20x&priority=urgent");

    CHECK_EQ(sip_uri_parse(STR_LIT("sip:+1-212-555-1212:1234@gateway.com;user=phone"), &u), 0);
    CHECK_STR(t_str(u.user), "+1-212-555-1212");
    CHECK_STR(t_str(u.password), "1234");
    CHECK_STR(t_str(u.user_param), "phone");

    CHECK_EQ(sip_uri_parse(STR_LIT("sip:192.0.2.4:5061;maddr=239.255.255.1;ttl=15;lr"), &u), 0);
    CHECK_EQ(u.host_type, SIP_HOST_IPV4);
    CHECK(u.has_port);
    CHECK_EQ(u.port, 5061);
    CHECK_STR(t_str(u.maddr), "239.255.255.1");
    CHECK(u.lr);
    CHECK_EQ(u.user.len, 0);
    str_t v;
    CHECK_EQ(sip_param_get(u.params, "TTL", &v), 1);
    CHECK_STR(t_str(v), "15");

    CHECK_EQ(sip_uri_parse(STR_LIT("sip:bob@[2001:db8::10]:5070;transport=udp"), &u), 0);
    CHECK_EQ(u.host_type, SIP_HOST_IPV6);
    CHECK_STR(t_str(u.host), "2001:db8::10");
    CHECK_EQ(u.port, 5070);
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:[::ffff:192.0.2.1]"), &u), 0);
    CHECK_STR(t_str(u.host), "::ffff:192.0.2.1");

    /* Userinfo may hold ';' '?' ',' '/' (RFC 4475 §3.1.1.2, §3.1.1.9); escapes are kept. */
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:user;par=u%40example.net@example.com"), &u), 0);
    CHECK_STR(t_str(u.user), "user;par=u%40example.net");
    CHECK_STR(t_str(u.host), "example.com");
    CHECK_EQ(u.params.len, 0);
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:"
                                   "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"),
                           &u), 0);
    CHECK_STR(t_str(u.user), "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    CHECK_STR(t_str(u.password), "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"),
                           &u), 0);
    CHECK_STR(t_str(u.user), "cal%6Cer");
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:%00@host5.example.com"), &u), 0);
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:host.example.com."), &u), 0);
    CHECK_EQ(sip_uri_parse(STR_LIT("sip:a-b.c-d9.example"), &u), 0);

    /* tel: (RFC 3966). */
    CHECK_EQ(sip_uri_parse(STR_LIT("tel:+1-201-555-0123"), &u), 0);
    CHECK_EQ(u.scheme, SIP_SCHEME_TEL);
    CHECK_STR(t_str(u.user), "+1-201-555-0123");
    CHECK_EQ(u.host_type, SIP_HOST_NONE);
    CHECK_EQ(sip_uri_parse(STR_LIT("tel:7042;phone-context=example.com"), &u), 0);
    CHECK_STR(t_str(u.user), "7042");
    CHECK_EQ(sip_param_get(u.params, "phone-context", &v), 1);
    CHECK_STR(t_str(v), "example.com");
    CHECK_EQ(sip_uri_parse(STR_LIT("tel:*21#;phone-context=+1-212"), &u), 0);

    /* Other schemes stay opaque (RFC 3261 §25.1 absoluteURI; RFC 4475 §3.3.2-4). */
    CHECK_EQ(sip_uri_parse(STR_LIT("isbn:2983792873"), &u), 0);
    CHECK_EQ(u.scheme, SIP_SCHEME_OTHER);
    CHECK_STR(t_str(u.opaque), "2983792873");
    CHECK_EQ(sip_uri_parse(STR_LIT("soap.beep://192.0.2.103:3002"), &u), 0);
    CHECK_EQ(sip_uri_parse(STR_LIT("http://www.example.com/a%20b?c=d"), &u), 0);
    CHECK_STR(t_str(u.scheme_name), "http");

    static const char *const bad[] = {
        "", "sip", "sip:", "1sip:a@b", ":a@b", "sip:@example.com", "sip:a@", "sip:a@b:",
        "sip:a@b:65536", "sip:a@b:12x", "sip:a@b;", "sip:a@b;=x", "sip:a@b;x=", "sip:a@b?",
        "sip:a@b?x", "sip:a@b?=1", "sip:a b@c", "sip:a@b c", "sip:a%4@b", "sip:a%zz@b",
        "sip:a@-b.com", "sip:a@b-.com", "sip:a@b..com", "sip:a@.b", "sip:a@1.2.3",
        "sip:a@1.2.3.256", "sip:a@192.0.2.1.5", "sip:a@example.123", "sip:a@[::1",
        "sip:a@[::g]", "sip:a@[192.0.2.1]", "sip:a@b_c.com", "sip:a@b>", "sip:<a@b>",
        "sip:a:b:c@d", "sip:a@b@c", "tel:", "tel:+", "tel:++1", "tel:+12a",
        "tel:1;", "tel:1@x", "tel:1?x=y", "tel:12g", "isbn:", "isbn:a b", "isbn:a%4", "x y:z",
        "sips:[]",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int r = sip_uri_parse(CSTR(bad[i]), &u);
        if (r != -EBADMSG)
            fprintf(stderr, "accepted bad URI: %s\n", bad[i]);
        CHECK_EQ(r, -EBADMSG);
    }
}

static void test_params_and_lists(void)
{
    str_t rest = STR_LIT(" ; tag = 98asjd8 ;lr; q=0.33;x=\"a;b,c\";r=[2001:db8::1] ");
    str_t n, v;
    static const char *const expect[][2] = { { "tag", "98asjd8" }, { "lr", "" }, { "q", "0.33" },
                                             { "x", "\"a;b,c\"" }, { "r", "[2001:db8::1]" } };
    for (size_t i = 0; i < ARRAY_LEN(expect); i++) {
        CHECK_EQ(sip_param_next(&rest, &n, &v), 1);
        CHECK_STR(t_str(n), expect[i][0]);
        CHECK_STR(t_str(v), expect[i][1]);
    }
    CHECK_EQ(sip_param_next(&rest, &n, &v), 0);
    CHECK_EQ(sip_param_get(STR_LIT(";a=1;TAG=x;b"), "tag", &v), 1);
    CHECK_STR(t_str(v), "x");
    CHECK_EQ(sip_param_get(STR_LIT(";a=1;b"), "tag", &v), 0);
    CHECK_EQ(sip_param_get(STR_LIT(""), "tag", &v), 0);
    CHECK_EQ(sip_param_get(STR_LIT(";;tag=1"), "tag", &v), -EBADMSG);
    CHECK_EQ(sip_param_get(STR_LIT(";a=;tag=1"), "tag", &v), -EBADMSG);
    CHECK_EQ(sip_param_get(STR_LIT(";a=\"open;tag=1"), "tag", &v), -EBADMSG);
    CHECK_EQ(sip_param_get(STR_LIT("tag=1"), "tag", &v), -EBADMSG);
    CHECK_EQ(sip_param_get(STR_LIT(";a=b c"), "c", &v), -EBADMSG);
    /* Found before the part that is malformed. */
    CHECK_EQ(sip_param_get(STR_LIT(";tag=1;;"), "tag", &v), 1);

    rest = STR_LIT(" <sip:a,b@h>;p=\"x,y\" ,\r\n \"D, E\" <sip:c@h> , sip:d@h ");
    static const char *const items[] = { "<sip:a,b@h>;p=\"x,y\"", "\"D, E\" <sip:c@h>",
                                         "sip:d@h" };
    for (size_t i = 0; i < ARRAY_LEN(items); i++) {
        CHECK_EQ(sip_list_next(&rest, &n), 1);
        CHECK_STR(t_str(n), items[i]);
    }
    CHECK_EQ(sip_list_next(&rest, &n), 0);
    /* Long elements: what matters lies past the first sixteen bytes, and at each offset. */
    static const char many[] = "0123456789abcdef0123456789abcdef0123456789";
    for (int pad = 0; pad < 40; pad++) {
        char one[160], two[64], buf[256];
        int n1 = snprintf(one, sizeof(one), "\"%.*s\" <sip:%.*s,x@h>;p=\"q,%.*s\"", pad, many,
                          pad, many, pad, many);
        int n2 = snprintf(two, sizeof(two), "sip:%.*s@h", pad, many);
        snprintf(buf, sizeof(buf), "%s,%s", one, two);
        rest = CSTR(buf);
        CHECK_EQ(sip_list_next(&rest, &n), 1);
        CHECK_EQ(n.len, (size_t)n1);
        CHECK_EQ(sip_list_next(&rest, &n), 1);
        CHECK_EQ(n.len, (size_t)n2);
        CHECK_EQ(sip_list_next(&rest, &n), 0);
        snprintf(buf, sizeof(buf), "<sip:%.*s<x@h>", pad, many);
        rest = CSTR(buf);
        CHECK_EQ(sip_list_next(&rest, &n), -EBADMSG);
        snprintf(buf, sizeof(buf), "sip:%.*s>x@h", pad, many);
        rest = CSTR(buf);
        CHECK_EQ(sip_list_next(&rest, &n), -EBADMSG);
    }
    rest = STR_LIT("   ");
    CHECK_EQ(sip_list_next(&rest, &n), 0);
    static const char *const bad[] = { "a,,b", "a,", ",a", "a, ,b", "\"a,b", "<a,b", "a>,b",
                                       "<a<b>>" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        rest = CSTR(bad[i]);
        int r;
        while ((r = sip_list_next(&rest, &n)) > 0)
            ;
        CHECK_EQ(r, -EBADMSG);
    }
}

static void test_addr(void)
{
    sip_addr_t a;
    CHECK_EQ(sip_addr_parse(STR_LIT("\"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s"), &a),
             0);
    CHECK_STR(t_str(a.display), "\"A. G. Bell\"");
    CHECK_STR(t_str(a.uri), "sip:agb@bell-telephone.com");
    CHECK_STR(t_str(a.tag), "a48s");
    CHECK_STR(t_str(a.params), ";tag=a48s");
    CHECK(a.angle);
    char out[64];
    ssize_t n = sip_unquote(a.display, out, sizeof(out));
    CHECK_EQ(n, 10);
    CHECK(n > 0 && memcmp(out, "A. G. Bell", 10) == 0);

    CHECK_EQ(sip_addr_parse(STR_LIT("sip:+12125551212@server.phone2net.com;tag=887s"), &a), 0);
    CHECK_EQ(a.display.len, 0);
    CHECK(!a.angle);
    CHECK_STR(t_str(a.uri), "sip:+12125551212@server.phone2net.com");
    CHECK_STR(t_str(a.tag), "887s");

    CHECK_EQ(sip_addr_parse(STR_LIT("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8"), &a), 0);
    CHECK_STR(t_str(a.display), "Anonymous");
    CHECK_EQ(sip_addr_parse(STR_LIT("caller<sip:caller@example.com>;tag=323"), &a), 0);
    CHECK_STR(t_str(a.display), "caller");
    CHECK_EQ(sip_addr_parse(STR_LIT("token1~` token2'+_ token3*%!.- <sip:m@example.com>"), &a),
             0);
    CHECK_STR(t_str(a.display), "token1~` token2'+_ token3*%!.-");
    CHECK_EQ(sip_addr_parse(STR_LIT("<sip:a@b;transport=tcp>;expires=60;q=0.5"), &a), 0);
    CHECK_STR(t_str(a.uri), "sip:a@b;transport=tcp");
    CHECK_EQ(sip_param_get(a.params, "expires", &a.display), 1);
    CHECK_STR(t_str(a.display), "60");
    /* Escaped quotes and backslashes in the display name. */
    CHECK_EQ(sip_addr_parse(STR_LIT("\"J Rosenberg \\\\\\\"\" <sip:j@example.com>"), &a), 0);
    n = sip_unquote(a.display, out, sizeof(out));
    CHECK_EQ(n, 14);
    CHECK(n > 0 && memcmp(out, "J Rosenberg \\\"", 14) == 0);
    CHECK_EQ(sip_addr_parse(STR_LIT("*"), &a), 0);
    CHECK(a.star);
    CHECK_EQ(sip_addr_parse(STR_LIT(" * "), &a), 0);
    CHECK(a.star);
    CHECK_EQ(sip_addr_parse(STR_LIT("* <sip:a@b>"), &a), 0);
    CHECK(!a.star);
    CHECK_EQ(sip_addr_parse(STR_LIT("isbn:2983792873"), &a), 0);
    CHECK_EQ(sip_addr_parse(STR_LIT("<http://www.example.com>;tag=3234233"), &a), 0);
    CHECK_EQ(sip_addr_parse(STR_LIT("<tel:+1-555-1212>"), &a), 0);

    static const char *const bad[] = {
        "", "  ", "\"Mr. J. User <sip:j.user@example.com>",     /* quotbal */
        "\"Watson, Thomas\" < sip:t.watson@example.org >",       /* badaspec */
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",     /* baddn */
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  /* regbadct */
        "<sip:a@b", "sip:a@b>", "<sip:a@b>>", "<<sip:a@b>>", "<>", "\"x\" sip:a@b",
        "<sip:a@b> x", "<sip:a@b>;", "<sip:a@b>;tag", "<sip:a@b>;tag=\"q\"", "<notauri>",
        "sip:a,b@c", "\"x\"<sip:a@b>junk", "<sip:a@b>;tag=1;;x",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int r = sip_addr_parse(CSTR(bad[i]), &a);
        if (r != -EBADMSG)
            fprintf(stderr, "accepted bad address: %s\n", bad[i]);
        CHECK_EQ(r, -EBADMSG);
    }
}

static void test_via(void)
{
    sip_via_t v;
    CHECK_EQ(sip_via_parse(STR_LIT("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87a"
                                   ";received=192.0.2.207;rport=5061"), &v), 0);
    CHECK_STR(t_str(v.protocol), "SIP");
    CHECK_STR(t_str(v.version), "2.0");
    CHECK_STR(t_str(v.transport), "UDP");
    CHECK_EQ(v.transport_id, SIP_TRANSPORT_UDP);
    CHECK_STR(t_str(v.host), "erlang.bell-telephone.com");
    CHECK(v.has_port);
    CHECK_EQ(v.port, 5060);
    CHECK_STR(t_str(v.branch), "z9hG4bK87a");
    CHECK_STR(t_str(v.received), "192.0.2.207");
    CHECK(v.has_rport);
    CHECK_STR(t_str(v.rport), "5061");

    CHECK_EQ(sip_via_parse(STR_LIT("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw"),
                           &v), 0);
    CHECK_STR(t_str(v.transport), "UDP");
    CHECK_STR(t_str(v.host), "192.0.2.2");
    CHECK(v.has_rport);
    CHECK_EQ(v.rport.len, 0);
    CHECK_STR(t_str(v.branch), "390skdjuw");
    CHECK_EQ(sip_via_parse(STR_LIT("SIP/2.0/TLS [2001:db8::9] : 5061 ; branch = z9hG4bKx ; "
                                   "maddr=224.2.0.1;ttl=16"), &v), 0);
    CHECK_EQ(v.transport_id, SIP_TRANSPORT_TLS);
    CHECK_EQ(v.host_type, SIP_HOST_IPV6);
    CHECK_STR(t_str(v.host), "2001:db8::9");
    CHECK_EQ(v.port, 5061);
    CHECK_STR(t_str(v.maddr), "224.2.0.1");
    str_t ttl;
    CHECK_EQ(sip_param_get(v.params, "ttl", &ttl), 1);
    CHECK_STR(t_str(ttl), "16");
    static const struct {
        const char *t;
        sip_transport_t id;
    } tps[] = { { "tcp", SIP_TRANSPORT_TCP }, { "SCTP", SIP_TRANSPORT_SCTP },
                { "WS", SIP_TRANSPORT_WS }, { "wss", SIP_TRANSPORT_WSS },
                { "UNKNOWN", SIP_TRANSPORT_OTHER } };
    for (size_t i = 0; i < ARRAY_LEN(tps); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "SIP/2.0/%s h.example.com", tps[i].t);
        CHECK_EQ(sip_via_parse(CSTR(buf), &v), 0);
        CHECK_EQ(v.transport_id, tps[i].id);
    }
    static const char *const bad[] = {
        "", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/2.0 UDP h", "SIP//UDP h", "SIP/2.0/UDPh",
        "SIP/2.0/UDP 192.0.2.15;;", ";", "SIP/2.0/UDP h;branch", "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h;received", "SIP/2.0/UDP h;rport=x", "SIP/2.0/UDP h;rport=70000",
        "SIP/2.0/UDP h:", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP h x", "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP h;branch=a b", "SIP/2.0/UDP -h",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int r = sip_via_parse(CSTR(bad[i]), &v);
        if (r != -EBADMSG)
            fprintf(stderr, "accepted bad Via: %s\n", bad[i]);
        CHECK_EQ(r, -EBADMSG);
    }
}

static void test_cseq_event_state_expires(void)
{
    sip_cseq_t c;
    CHECK_EQ(sip_cseq_parse(STR_LIT("4711 INVITE"), &c), 0);
    CHECK_EQ(c.seq, 4711);
    CHECK_EQ(c.method, SIP_METHOD_INVITE);
    CHECK_EQ(sip_cseq_parse(STR_LIT("0009\r\n  INVITE"), &c), 0);
    CHECK_EQ(c.seq, 9);
    CHECK_EQ(sip_cseq_parse(STR_LIT("4294967295 FOO"), &c), 0);
    CHECK_EQ(c.seq, 4294967295u);
    CHECK_EQ(c.method, SIP_METHOD_OTHER);
    CHECK_STR(t_str(c.method_name), "FOO");
    static const char *const bad_cseq[] = { "", "1", "INVITE", "1INVITE", "4294967296 INVITE",
                                            "36893488147419103232 REGISTER", "-1 INVITE",
                                            "1 INVITE x", "1 INV/ITE", "1 2" };
    for (size_t i = 0; i < ARRAY_LEN(bad_cseq) - 1; i++)
        CHECK_EQ(sip_cseq_parse(CSTR(bad_cseq[i]), &c), -EBADMSG);
    /* "1 2": a method is any token, digits included. */
    CHECK_EQ(sip_cseq_parse(STR_LIT("1 2"), &c), 0);

    sip_event_t e;
    CHECK_EQ(sip_event_parse(STR_LIT("presence"), &e), 0);
    CHECK_STR(t_str(e.type), "presence");
    CHECK_STR(t_str(e.package), "presence");
    CHECK_EQ(e.id.len, 0);
    CHECK_EQ(sip_event_parse(STR_LIT("presence.winfo ; id=17;x"), &e), 0);
    CHECK_STR(t_str(e.type), "presence.winfo");
    CHECK_STR(t_str(e.package), "presence");
    CHECK_STR(t_str(e.id), "17");
    CHECK_EQ(sip_event_parse(STR_LIT("dialog;sla;ma"), &e), 0);
    static const char *const bad_event[] = { "", ";id=1", ".presence", "presence.", "a..b",
                                             "presence;", "presence id=1", "pres ence" };
    for (size_t i = 0; i < ARRAY_LEN(bad_event); i++)
        CHECK_EQ(sip_event_parse(CSTR(bad_event[i]), &e), -EBADMSG);

    sip_subscription_state_t ss;
    CHECK_EQ(sip_subscription_state_parse(STR_LIT("active;expires=3600"), &ss), 0);
    CHECK_EQ(ss.state, SIP_SUBSTATE_ACTIVE);
    CHECK_EQ(ss.expires_s, 3600);
    CHECK(!ss.has_retry_after);
    CHECK_EQ(sip_subscription_state_parse(STR_LIT("Pending"), &ss), 0);
    CHECK_EQ(ss.state, SIP_SUBSTATE_PENDING);
    CHECK(!ss.has_expires);
    CHECK_EQ(sip_subscription_state_parse(STR_LIT("terminated;reason=timeout;retry-after=20"),
                                          &ss), 0);
    CHECK_EQ(ss.state, SIP_SUBSTATE_TERMINATED);
    CHECK_STR(t_str(ss.reason), "timeout");
    CHECK(ss.has_retry_after);
    CHECK_EQ(ss.retry_after_s, 20);
    CHECK_EQ(sip_subscription_state_parse(STR_LIT("waiting;foo=bar"), &ss), 0);
    CHECK_EQ(ss.state, SIP_SUBSTATE_OTHER);
    CHECK_STR(t_str(ss.state_name), "waiting");
    static const char *const bad_ss[] = { "", "active;expires=", "active;expires=x",
                                          "active;expires=4294967296", "active;;",
                                          "terminated;retry-after=-1", "active expires=1" };
    for (size_t i = 0; i < ARRAY_LEN(bad_ss); i++)
        CHECK_EQ(sip_subscription_state_parse(CSTR(bad_ss[i]), &ss), -EBADMSG);

    uint32_t s;
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT(" 3600 "), &s), 0);
    CHECK_EQ(s, 3600);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("0"), &s), 0);
    CHECK_EQ(s, 0);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("4294967295"), &s), 0);
    CHECK_EQ(s, 4294967295u);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("4294967296"), &s), -ERANGE);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("1000000000000000000000000000000000000000"), &s),
             -ERANGE);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT(""), &s), -EBADMSG);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("1 2"), &s), -EBADMSG);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("-5"), &s), -EBADMSG);
    CHECK_EQ(sip_delta_seconds_parse(STR_LIT("Thu, 01 Dec 1994 16:00:00 GMT"), &s), -EBADMSG);

    str_t in = REQ("REGISTER", "Expires: 7200\r\nMin-Expires: 60\r\n", "");
    CHECK(P(in) > 0);
    CHECK_EQ(sip_msg_expires(&msg, SIP_HDR_EXPIRES, &s), 0);
    CHECK_EQ(s, 7200);
    CHECK_EQ(sip_msg_expires(&msg, SIP_HDR_MIN_EXPIRES, &s), 0);
    CHECK_EQ(s, 60);
    in = REQ("REGISTER", "", "");
    CHECK(P(in) > 0);
    CHECK_EQ(sip_msg_expires(&msg, SIP_HDR_EXPIRES, &s), -ENOENT);
}

static void test_copy_helpers(void)
{
    char out[64];
    ssize_t n = sip_unquote(STR_LIT("\"a\\\"b\\\\c\r\n d\""), out, sizeof(out));
    CHECK_EQ(n, 7);
    CHECK(n > 0 && memcmp(out, "a\"b\\c d", 7) == 0);
    CHECK_EQ(sip_unquote(STR_LIT("\"\""), out, sizeof(out)), 0);
    CHECK_EQ(sip_unquote(STR_LIT("\"abc\""), out, 2), -ENOSPC);
    CHECK_EQ(sip_unquote(STR_LIT("abc"), out, sizeof(out)), -EBADMSG);
    CHECK_EQ(sip_unquote(STR_LIT("\"abc"), out, sizeof(out)), -EBADMSG);
    CHECK_EQ(sip_unquote(STR_LIT("\"a\"b\""), out, sizeof(out)), -EBADMSG);
    CHECK_EQ(sip_unquote(STR_LIT("\"a\" "), out, sizeof(out)), -EBADMSG);

    n = sip_unescape(STR_LIT("I%20have%20spaces%2f"), out, sizeof(out));
    CHECK_EQ(n, 14);
    CHECK(n > 0 && memcmp(out, "I have spaces/", 14) == 0);
    n = sip_unescape(STR_LIT("null-%00-null"), out, sizeof(out));
    CHECK_EQ(n, 11);
    CHECK(n > 5 && out[5] == '\0');
    CHECK_EQ(sip_unescape(STR_LIT("%4"), out, sizeof(out)), -EBADMSG);
    CHECK_EQ(sip_unescape(STR_LIT("%zz"), out, sizeof(out)), -EBADMSG);
    CHECK_EQ(sip_unescape(STR_LIT("abc"), out, 2), -ENOSPC);
}

/* ---- RFC 4475 ---------------------------------------------------------------------------- */

/* §3.1.1.1 wsinv: folding, LWS everywhere, escaped quotes, compact and long names mixed. */
static const char wsinv[] =
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    "TO :\r\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    "from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n"
    "  ;\r\n"
    "  tag = 98asjd8\r\n"
    "MaX-fOrWaRdS: 0068\r\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    "Content-Length   : $CL\r\n"
    "cseq: 0009\r\n"
    "  INVITE\r\n"
    "Via  : SIP  /   2.0\r\n"
    " /UDP\r\n"
    "    192.0.2.2;rport;branch=390skdjuw\r\n"
    "s :\r\n"
    "NewFangledHeader:   newfangled value\r\n"
    " continued newfangled value\r\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    "Content-Type: application/sdp\r\n"
    "Route:\r\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    "  branch  =   z9hG4bK9ikj8  ,\r\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    " z9hG4bK30239\r\n"
    "m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n"
    "      newvalue ;\r\n"
    "  secondparam ; q = 0.33\r\n"
    "\r\n" SDP;

/* §3.1.1.2 intmeth: unusual token, URI and word characters, escaped NUL/BEL/DEL. */
static const char intmeth[] =
    "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy"
    "?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP host1.example.com;rport;branch=z9hG4bK-.!%66*_+`'~\r\n"
    "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" "
    "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n"
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com> ;fromParam''~+*_!.-%="
    "\"\xD1\x80\xD0\xB0\xD0\xB1\xD0\xBE\xD1\x82\xD0\xB0\xD1\x8E\xD1\x89\xD0\xB8\xD0\xB9\""
    ";tag=_token~1'+`*%!-.\r\n"
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"
    "Max-Forwards: 255\r\n"
    "extensionHeader-!.%*+_`'~:\xEF\xBB\xBF\xE5\xA4\xA7\xE5\x81\x9C\xE9\x9B\xBB\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

/* §3.1.1.3 esc01: escapes in URIs, compact Content-Type in upper case. */
static const char esc01[] =
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
    "To: sip:%75se%72@example.com\r\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
    "Max-Forwards: 87\r\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\r\n"
    "CSeq: 234234 INVITE\r\n"
    "Via: SIP/2.0/UDP host5.example.net;rport;branch=z9hG4bKkdjuw\r\n"
    "C: application/sdp\r\n"
    "Contact:\r\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n"
    "Content-Length: $CL\r\n"
    "\r\n" SDP;

/* §3.1.1.4 escnull. */
static const char escnull[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "To: sip:null-%00-null@example.com\r\n"
    "From: sip:null-%00-null@example.com;tag=839923423\r\n"
    "Max-Forwards: 70\r\n"
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
    "CSeq: 14398234 REGISTER\r\n"
    "Via: SIP/2.0/UDP host5.example.com;rport;branch=z9hG4bKkdjuw\r\n"
    "Contact: <sip:%00@host5.example.com>\r\n"
    "Contact: <sip:%00%00@host5.example.com>\r\n"
    "L:0\r\n"
    "\r\n";

/* §3.1.1.5 esc02: '%' that is no escape in a method, a name and a branch. */
static const char esc02[] =
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
    "To: \"%Z%45\" <sip:resource@example.com>\r\n"
    "From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23\r\n"
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n"
    "Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209%fzsnel234\r\n"
    "CSeq: 29344 RE%47IST%45R\r\n"
    "Max-Forwards: 70\r\n"
    "Contact: <sip:alias1@host1.example.com>\r\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\r\n"
    "Contact: <sip:alias3@host3.example.com>\r\n"
    "l: 0\r\n"
    "\r\n";

/* §3.1.1.6 lwsdisp. */
static const char lwsdisp[] =
    "OPTIONS sip:user@example.com SIP/2.0\r\n"
    "To: sip:user@example.com\r\n"
    "From: caller<sip:caller@example.com>;tag=323\r\n"
    "Max-Forwards: 70\r\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\r\n"
    "CSeq: 60 OPTIONS\r\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n"
    "l: 0\r\n"
    "\r\n";

/* §3.1.1.8 dblreq: a datagram holding a second message after the first one's body. */
static const char dblreq[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "To: sip:j.user@example.com\r\n"
    "From: sip:j.user@example.com;tag=43251j3j324\r\n"
    "Max-Forwards: 8\r\n"
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n"
    "Contact: sip:j.user@host.example.com\r\n"
    "CSeq: 8 REGISTER\r\n"
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "INVITE sip:joe@example.com SIP/2.0\r\n"
    "t: sip:joe@example.com\r\n"
    "From: sip:caller@example.net;tag=141334\r\n"
    "Max-Forwards: 8\r\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\r\n"
    "CSeq: 8 INVITE\r\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 150\r\n"
    "\r\n" SDP;

/* §3.1.1.9 semiuri, with a folded Accept list. */
static const char semiuri[] =
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
    "To: sip:j_user@example.com\r\n"
    "From: sip:caller@example.org;tag=33242\r\n"
    "Max-Forwards: 3\r\n"
    "Call-ID: semiuri.0ha0isndaksdj\r\n"
    "CSeq: 8 OPTIONS\r\n"
    "Accept: application/sdp, application/pkcs7-mime,\r\n"
    "  multipart/mixed, multipart/signed,\r\n"
    "  message/sip, message/sipfrag\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n"
    "l: 0\r\n"
    "\r\n";

/* §3.1.1.10 transports. */
static const char transports[] =
    "OPTIONS sip:user@example.com SIP/2.0\r\n"
    "To: sip:user@example.com\r\n"
    "From: <sip:caller@example.com>;tag=323\r\n"
    "Max-Forwards: 70\r\n"
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj\r\n"
    "Accept: application/sdp\r\n"
    "CSeq: 60 OPTIONS\r\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\r\n"
    "l: 0\r\n"
    "\r\n";

/* §3.1.1.11 mpart01: a multipart body with binary bytes (NUL, CR, LF among them). */
static const char mpart01[] =
    "MESSAGE sip:kumiko@example.org SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\r\n"
    "Max-Forwards: 70\r\n"
    "Route: <sip:127.0.0.1:5080>\r\n"
    "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813g"
    "vYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWY"
    "UA=\r\n"
    "Contact: <sip:fluffy@127.0.0.1:5070>\r\n"
    "To: <sip:kumiko@example.org>\r\n"
    "From: <sip:fluffy@example.com>;tag=2fb0dcc9\r\n"
    "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\r\n"
    "CSeq: 1 MESSAGE\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\r\n"
    "Date: Sat, 15 Oct 2005 04:44:56 GMT\r\n"
    "User-Agent: SIPimp.org/0.2.5 (curses)\r\n"
    "Content-Length: $CL\r\n"
    "\r\n"
    "--7a9cbec02ceef655\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "Hello\r\n"
    "--7a9cbec02ceef655\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "\x30\x82\x01\x52\x06\x09\x2A\x86\r\n\x48\x86\xF7\x0D\x01\x07\x02\xA0\x00\x00\x0A\x0D"
    "\x05\x00\x04\x81\x80\x8E\xF4\r\n"
    "--7a9cbec02ceef655--\r\n";

/* §3.1.1.12 unreason: a UTF-8 reason phrase. */
static const char unreason[] =
    "SIP/2.0 200 = 2**3 * 5**2 \xD0\xBD\xD0\xBE \xD1\x81\xD1\x82\xD0\xBE \xD0\xB4\xD0\xB5\xD0\xB2"
    "\xD1\x8F\xD0\xBD\xD0\xBE\xD1\x81\xD1\x82\xD0\xBE \xD0\xB4\xD0\xB5\xD0\xB2\xD1\x8F\xD1\x82\xD1"
    "\x8C - \xD0\xBF\xD1\x80\xD0\xBE\xD1\x81\xD1\x82\xD0\xBE\xD0\xB5\r\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n"
    "CSeq: 35 INVITE\r\n"
    "From: sip:user@example.com;tag=11141343\r\n"
    "To: sip:user@example.edu;tag=2229\r\n"
    "Content-Length: $CL\r\n"
    "Content-Type: application/sdp\r\n"
    "Contact: <sip:user@host198.example.com>\r\n"
    "\r\n" SDP;

/* §3.1.1.13 noreason: an empty reason phrase after its SP. */
static const char noreason[] =
    "SIP/2.0 100 \r\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
    "Call-ID: noreason.asndj203insdf99223ndf\r\n"
    "CSeq: 35 INVITE\r\n"
    "From: <sip:user@example.com>;tag=39ansfi3\r\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\r\n"
    "Content-Length: 0\r\n"
    "Contact: <sip:user@host105.example.com>\r\n"
    "\r\n";

/* §3.1.1.7 longreq: long values, many Vias in every spelling. Built, not spelled out. */
static str_t longreq(void)
{
    static char out[16384];
    buf_t b;
    buf_init(&b);
    const char *long_ = "longlonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglong"
                        "longlonglonglonglonglonglonglonglonglonglonglonglonglonglong";
    const char *name = "amazinglylongcallernameamazinglylongcallernameamazinglylongcallername"
                       "amazinglylongcallernameamazinglylongcallername";
    buf_printf(&b, "INVITE sip:user@example.com SIP/2.0\r\n");
    buf_printf(&b, "To: \"I have a user name of extreme extreme extreme extreme extreme extreme "
                   "extreme extreme extreme extreme proportion\" <sip:user@example.com:6000;"
                   "unknownparam1=very%svalue;longparam%sname=shortvalue;very%sParameterName"
                   "WithNoValue>\r\n", long_, long_, long_);
    buf_printf(&b, "F: sip:%s@example.net;tag=12982982982982982982982982982982982982982982982982"
                   "98298298298298298298298298298298298298298298298298298298298298298298298298298"
                   "298298298298298298298424;unknownheaderparam%s=unknowheaderparam%svalue;"
                   "unknownValuelessparam%s\r\n", name, long_, long_, long_);
    buf_printf(&b, "Call-ID: longreq.onereallyreallyreallyreally%sreallylongcallid\r\n", long_);
    buf_printf(&b, "CSeq: 3882340 INVITE\r\n");
    buf_printf(&b, "Unknown-%s-Name:unknown-%s-value;unknown-%s-parameter-name =unknown-%s-"
                   "parameter-value\r\n", long_, long_, long_, long_);
    static const char *const via_names[] = { "Via", "v", "V", "Via", "ViA", "VIa", "VIA", "via",
                                             "viA", "vIa", "vIA", "V ", "v ", "V  ", "v  ",
                                             "Via ", "Via  " };
    for (int i = 33; i >= 1; i--)
        buf_printf(&b, "%s: SIP/2.0/TCP sip%d.example.com\r\n",
                   via_names[(33 - i) % ARRAY_LEN(via_names)], i);
    buf_printf(&b, "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very%sbranch"
                   "value\r\n", long_);
    buf_printf(&b, "Max-Forwards: 70\r\n");
    buf_printf(&b, "Contact: <sip:%s@host5.example.net>\r\n", name);
    buf_printf(&b, "Content-Type: application/sdp\r\n");
    buf_printf(&b, "l: %zu\r\n\r\n%s", strlen(SDP), SDP);
    REQUIRE(b.len < sizeof(out));
    memcpy(out, b.data, b.len);
    str_t r = { out, b.len };
    buf_fini(&b);
    return r;
}

static void test_torture_valid(void)
{
    /* wsinv */
    str_t in = with_cl(LIT(wsinv));
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.method, SIP_METHOD_INVITE);
    CHECK_STR(t_str(msg.uri.host), "chair-dnrc.example.com");
    CHECK_STR(t_str(msg.uri.params), ";unknownparam");
    CHECK_STR(t_str(msg.to.uri), "sip:vivekg@chair-dnrc.example.com");
    CHECK_STR(t_str(msg.to.tag), "1918181833n");
    CHECK_STR(t_str(msg.from.tag), "98asjd8");
    char out[256];
    ssize_t n = sip_unquote(msg.from.display, out, sizeof(out));
    CHECK_EQ(n, 14);
    CHECK(n > 0 && memcmp(out, "J Rosenberg \\\"", 14) == 0);
    CHECK_EQ(msg.max_forwards, 68);
    CHECK_EQ(msg.cseq.seq, 9);
    CHECK_EQ(msg.cseq.method, SIP_METHOD_INVITE);
    CHECK_STR(t_str(msg.via.host), "192.0.2.2");
    CHECK_STR(t_str(msg.via.branch), "390skdjuw");
    CHECK(msg.via.has_rport);
    CHECK_EQ(sip_msg_get(&msg, SIP_HDR_SUBJECT)->value.len, 0);
    CHECK_STR(t_str(sip_msg_find(&msg, STR_LIT("newfangledheader"))->value),
              "newfangled value\r\n continued newfangled value");
    CHECK_STR(t_str(sip_msg_find(&msg, STR_LIT("UnknownHeaderWithUnusualValue"))->value),
              ";;,,;;,;");
    static const char *const hosts[] = { "192.0.2.2", "spindle.example.com", "192.168.255.111" };
    static const char *const branches[] = { "390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239" };
    sip_hdr_iter_t it;
    str_t v;
    unsigned count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0; count++) {
        sip_via_t via;
        REQUIRE(count < 3);
        CHECK_EQ(sip_via_parse(v, &via), 0);
        CHECK_STR(t_str(via.host), hosts[count]);
        CHECK_STR(t_str(via.branch), branches[count]);
    }
    CHECK_EQ(count, 3);
    sip_addr_t a;
    CHECK_EQ(sip_addr_parse(sip_msg_get(&msg, SIP_HDR_CONTACT)->value, &a), 0);
    n = sip_unquote(a.display, out, sizeof(out));
    CHECK_EQ(n, 16);
    CHECK(n > 0 && memcmp(out, "Quoted string \"\"", 16) == 0);
    CHECK_EQ(sip_param_get(a.params, "newparam", &v), 1);
    CHECK_STR(t_str(v), "newvalue");
    CHECK_EQ(sip_param_get(a.params, "secondparam", &v), 1);
    CHECK_EQ(v.len, 0);
    CHECK_EQ(sip_param_get(a.params, "q", &v), 1);
    CHECK_STR(t_str(v), "0.33");
    CHECK_EQ(sip_addr_parse(sip_msg_get(&msg, SIP_HDR_ROUTE)->value, &a), 0);
    sip_uri_t u;
    CHECK_EQ(sip_uri_parse(a.uri, &u), 0);
    CHECK(u.lr);
    CHECK_STR(t_str(msg.body), SDP);

    /* intmeth */
    in = LIT(intmeth);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.method, SIP_METHOD_OTHER);
    CHECK_STR(t_str(msg.method_name), "!interesting-Method0123456789_*+`.%indeed'~");
    CHECK_STR(t_str(msg.uri.password), "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    CHECK_STR(t_str(msg.via.branch), "z9hG4bK-.!%66*_+`'~");
    CHECK_EQ(msg.to.display.len, 22);
    n = sip_unquote(msg.to.display, out, sizeof(out));
    CHECK_EQ(n, 17);
    CHECK(n > 14 && out[4] == '\x07' && out[10] == '\0' && out[16] == '\x7f');
    CHECK_STR(t_str(msg.from.display), "token1~` token2'+_ token3*%!.-");
    CHECK_STR(t_str(msg.from.tag), "_token~1'+`*%!-.");
    CHECK_EQ(sip_param_get(msg.from.params, "fromParam''~+*_!.-%", &v), 1);
    CHECK_EQ(v.len, 22);
    CHECK_STR(t_str(msg.call_id), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    CHECK_EQ(msg.cseq.seq, 139122385);
    CHECK_EQ(msg.max_forwards, 255);
    CHECK(sip_msg_find(&msg, STR_LIT("extensionHeader-!.%*+_`'~")) != NULL);

    /* esc01 */
    in = with_cl(LIT(esc01));
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_STR(t_str(msg.uri.user), "sips%3Auser%40example.com");
    CHECK_STR(t_str(msg.uri.host), "example.net");
    n = sip_unescape(msg.uri.user, out, sizeof(out));
    CHECK_EQ(n, 21);
    CHECK(n > 0 && memcmp(out, "sips:user@example.com", 21) == 0);
    CHECK_EQ(sip_uri_parse(msg.to.uri, &u), 0);
    CHECK_STR(t_str(u.user), "%75se%72");
    CHECK(sip_msg_get(&msg, SIP_HDR_CONTENT_TYPE) != NULL);
    CHECK_EQ(sip_addr_parse(sip_msg_get(&msg, SIP_HDR_CONTACT)->value, &a), 0);
    CHECK_EQ(sip_uri_parse(a.uri, &u), 0);
    CHECK_STR(t_str(u.params), ";%6C%72;n%61me=v%61lue%25%34%31");

    /* escnull */
    in = LIT(escnull);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0;)
        count++;
    CHECK_EQ(count, 2);

    /* esc02: C%6Fntact is an unknown field, not a Contact. */
    in = LIT(esc02);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.method, SIP_METHOD_OTHER);
    CHECK_STR(t_str(msg.method_name), "RE%47IST%45R");
    count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_CONTACT); sip_hdr_iter_next(&it, &v) > 0;)
        count++;
    CHECK_EQ(count, 2);
    CHECK(sip_msg_find(&msg, STR_LIT("C%6Fntact")) != NULL);

    /* lwsdisp */
    in = LIT(lwsdisp);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_STR(t_str(msg.from.display), "caller");

    /* longreq */
    in = longreq();
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.to.uri.len > 300, true);
    CHECK_EQ(sip_uri_parse(msg.to.uri, &u), 0);
    CHECK_EQ(u.port, 6000);
    CHECK(msg.from.tag.len > 150);
    count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0;)
        count++;
    CHECK_EQ(count, 34);
    CHECK_STR(t_str(msg.via.host), "sip33.example.com");
    CHECK_EQ(msg.via.branch.len, 0);

    /* dblreq: the first message is the datagram's; the rest is discarded. */
    in = LIT(dblreq);
    ssize_t first = P(in);
    const char *second = strstr(dblreq, "INVITE sip:joe");
    REQUIRE(second);
    CHECK_EQ(first, second - dblreq);
    CHECK_EQ(msg.method, SIP_METHOD_REGISTER);
    CHECK_EQ(msg.body.len, 0);
    CHECK_EQ(PS(in), first);

    /* semiuri */
    in = LIT(semiuri);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_STR(t_str(msg.uri.user), "user;par=u%40example.net");
    count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_ACCEPT); sip_hdr_iter_next(&it, &v) > 0;)
        count++;
    CHECK_EQ(count, 6);

    /* transports */
    in = LIT(transports);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    static const sip_transport_t tps[] = { SIP_TRANSPORT_UDP, SIP_TRANSPORT_SCTP,
                                           SIP_TRANSPORT_TLS, SIP_TRANSPORT_OTHER,
                                           SIP_TRANSPORT_TCP };
    count = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_VIA); sip_hdr_iter_next(&it, &v) > 0; count++) {
        sip_via_t via;
        REQUIRE(count < ARRAY_LEN(tps));
        CHECK_EQ(sip_via_parse(v, &via), 0);
        CHECK_EQ(via.transport_id, tps[count]);
    }

    /* mpart01 */
    in = with_cl((str_t){ mpart01, sizeof(mpart01) - 1 });
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.method, SIP_METHOD_MESSAGE);
    CHECK(msg.body.len > 200);
    CHECK(memmem(msg.body.ptr, msg.body.len, "\x02\xA0\x00\x00\x0A\x0D", 6) != NULL);

    /* unreason, noreason */
    in = with_cl(LIT(unreason));
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.status, 200);
    CHECK(msg.reason.len > 40);
    CHECK(memcmp(msg.reason.ptr, "= 2**3 * 5**2 ", 14) == 0);
    in = LIT(noreason);
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.status, 100);
    CHECK_EQ(msg.reason.len, 0);
}

/* Parses text (with $CL filled in) as a datagram and returns the error. */
static ssize_t PE(const char *text)
{
    return P(with_cl(CSTR(text)));
}

static void test_torture_invalid(void)
{
    /* §3.1.2.1 badinv01: empty Via and Contact parameters and list elements. */
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\n"
                "To: sip:j.user@example.com\r\n"
                "From: sip:caller@example.net;tag=134161461246\r\n"
                "Max-Forwards: 7\r\n"
                "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\r\n"
                "CSeq: 8 INVITE\r\n"
                "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
                "Contact: \"Joe\" <sip:joe@example.org>;;;;\r\n"
                "Content-Length: $CL\r\n"
                "Content-Type: application/sdp\r\n"
                "\r\n" SDP), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_VIA);
    CHECK(sip_msg_can_reply(&msg));

    /* §3.1.2.2 clerr: Content-Length past the end of the datagram. */
    static const char clerr[] =
        "INVITE sip:user@example.com SIP/2.0\r\n"
        "Max-Forwards: 80\r\n"
        "To: sip:j.user@example.com\r\n"
        "From: sip:caller@example.net;tag=93942939o2\r\n"
        "Contact: <sip:caller@hungry.example.net>\r\n"
        "Call-ID: clerr.0ha0isndaksdjweiafasdk3\r\n"
        "CSeq: 8 INVITE\r\n"
        "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: 9999\r\n"
        "\r\n" SDP;
    CHECK_EQ(P(LIT(clerr)), SIP_MSG_E_TRUNCATED);
    CHECK(sip_msg_can_reply(&msg));
    CHECK_EQ(msg.body.len, strlen(SDP));
    sip_frame_t f;
    CHECK_EQ(FR(clerr, sizeof(clerr) - 1, NULL, &f), 0);     /* a stream waits */

    /* §3.1.2.3 ncl: negative Content-Length. */
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\n"
                "Max-Forwards: 254\r\n"
                "To: sip:j.user@example.com\r\n"
                "From: sip:caller@example.net;tag=32394234\r\n"
                "Call-ID: ncl.0ha0isndaksdj2193423r542w35\r\n"
                "CSeq: 0 INVITE\r\n"
                "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\r\n"
                "Contact: <sip:caller@example53.example.net>\r\n"
                "Content-Type: application/sdp\r\n"
                "Content-Length: -999\r\n"
                "\r\n" SDP), SIP_MSG_E_CONTENT_LENGTH);
    CHECK_EQ(msg.err_hdr, SIP_HDR_CONTENT_LENGTH);
    CHECK(sip_msg_can_reply(&msg));

    /* §3.1.2.4 scalar02: CSeq past 32 bits (and Max-Forwards past 255, huge expiries). */
    static const char scalar02[] =
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n"
        "To: <sip:user@example.com>\r\n"
        "From: <sip:user@example.com>;tag=239232jh3\r\n"
        "CSeq: 36893488147419103232 REGISTER\r\n"
        "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\n"
        "Max-Forwards: 300\r\n"
        "Expires: 1000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000\r\n"
        "Contact: <sip:user@host129.example.com>\r\n"
        "  ;expires=280297596632815\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    CHECK_EQ(P(LIT(scalar02)), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_CSEQ);
    uint32_t secs;
    CHECK_EQ(sip_msg_expires(&msg, SIP_HDR_EXPIRES, &secs), -ERANGE);
    /* Only Max-Forwards wrong is still wrong here. */
    CHECK_EQ(P(REQ("OPTIONS", "", "")) > 0, true);
    str_t mf300 = LIT("OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
                      "From: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
                      "Max-Forwards: 300\r\nl: 0\r\n\r\n");
    CHECK_EQ(P(mf300), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_MAX_FORWARDS);

    /* §3.1.2.5 scalarlg: the same in a response. */
    CHECK_EQ(PE("SIP/2.0 503 Service Unavailable\r\n"
                "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw"
                ";received=192.0.2.129\r\n"
                "To: <sip:user@example.com>\r\n"
                "From: <sip:other@example.net>;tag=2easdjfejw\r\n"
                "CSeq: 9292394834772304023312 OPTIONS\r\n"
                "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\n"
                "Retry-After: 949302838503028349304023988\r\n"
                "Warning: 1812 overture \"In Progress\"\r\n"
                "Content-Length: 0\r\n"
                "\r\n"), SIP_MSG_E_BAD_HEADER);
    CHECK(!sip_msg_can_reply(&msg));

    /* §3.1.2.6 quotbal: unterminated quoted string in To. */
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\n"
                "To: \"Mr. J. User <sip:j.user@example.com>\r\n"
                "From: sip:caller@example.net;tag=93334\r\n"
                "Max-Forwards: 10\r\n"
                "Call-ID: quotbal.aksdj\r\n"
                "Contact: <sip:caller@host59.example.net>\r\n"
                "CSeq: 8 INVITE\r\n"
                "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\r\n"
                "Content-Type: application/sdp\r\n"
                "Content-Length: $CL\r\n"
                "\r\n" SDP), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_TO);

    /* §3.1.2.7-11: Request-URI in <>, with LWS, after two SPs, trailing SPs, with headers. */
    static const char *const ruri_lines[] = {
        "INVITE <sip:user@example.com> SIP/2.0",
        "INVITE sip:user@example.com; lr SIP/2.0",
        "INVITE  sip:user@example.com  SIP/2.0",
        "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
    };
    for (size_t i = 0; i < ARRAY_LEN(ruri_lines); i++) {
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s\r\n"
                 "To: sip:user@example.com\r\nFrom: sip:caller@example.net;tag=39291\r\n"
                 "Max-Forwards: 23\r\nCall-ID: ltgtruri.1@192.0.2.5\r\nCSeq: 1 INVITE\r\n"
                 "Via: SIP/2.0/UDP 192.0.2.5\r\nContent-Length: 0\r\n\r\n", ruri_lines[i]);
        CHECK_EQ(PE(buf), SIP_MSG_E_BAD_URI);
        CHECK(sip_msg_can_reply(&msg));
    }
    CHECK_EQ(PE("OPTIONS sip:remote-target@example.com SIP/2.0  \r\n"
                "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\r\n"
                "To: <sip:remote-target@example.com>\r\n"
                "From: <sip:local-resource@example.com>;tag=329429089\r\n"
                "Call-ID: trws.oicu34958239neffasdhr2345r\r\n"
                "Accept: application/sdp\r\n"
                "CSeq: 238923 OPTIONS\r\n"
                "Max-Forwards: 70\r\n"
                "Content-Length: 0\r\n"
                "\r\n"), SIP_MSG_E_START_LINE);
    CHECK(msg.head_complete);
    CHECK(sip_msg_can_reply(&msg));

    /* §3.1.2.12 baddate: Date is not checked, the request goes on. */
    CHECK(PE("INVITE sip:user@example.com SIP/2.0\r\n"
             "To: sip:user@example.com\r\n"
             "From: sip:caller@example.net;tag=2234923\r\n"
             "Max-Forwards: 70\r\n"
             "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\r\n"
             "CSeq: 1392934 INVITE\r\n"
             "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
             "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n"
             "Contact: <sip:caller@host5.example.net>\r\n"
             "Content-Type: application/sdp\r\n"
             "Content-Length: $CL\r\n"
             "\r\n" SDP) > 0);

    /* §3.1.2.13 regbadct: a URI with '?' outside <>. */
    CHECK_EQ(PE("REGISTER sip:example.com SIP/2.0\r\n"
                "To: sip:user@example.com\r\n"
                "From: sip:user@example.com;tag=998332\r\n"
                "Max-Forwards: 70\r\n"
                "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\r\n"
                "CSeq: 1 REGISTER\r\n"
                "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\r\n"
                "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_CONTACT);

    /* §3.1.2.14 badaspec: spaces inside <>. */
    CHECK_EQ(PE("OPTIONS sip:user@example.org SIP/2.0\r\n"
                "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\r\n"
                "Max-Forwards: 70\r\n"
                "From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\r\n"
                "To: \"Watson, Thomas\" < sip:t.watson@example.org >\r\n"
                "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\r\n"
                "Accept: application/sdp\r\n"
                "CSeq: 3923239 OPTIONS\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_TO);

    /* §3.1.2.15 baddn: a comma in an unquoted display name. */
    CHECK_EQ(PE("OPTIONS sip:t.watson@example.org SIP/2.0\r\n"
                "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\n"
                "Max-Forwards:      70\r\n"
                "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n"
                "To:      Watson, Thomas <sip:t.watson@example.org>\r\n"
                "Call-ID: baddn.31415@c.example.com\r\n"
                "Accept: application/sdp\r\n"
                "CSeq:    3923239 OPTIONS\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_BAD_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_FROM);

    /* §3.1.2.16 badvers: 505, and still answerable. */
    CHECK_EQ(PE("OPTIONS sip:t.watson@example.org SIP/7.0\r\n"
                "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"
                "Max-Forwards:     70\r\n"
                "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n"
                "To:      T. Watson <sip:t.watson@example.org>\r\n"
                "Call-ID: badvers.31417@c.example.com\r\n"
                "CSeq:    1 OPTIONS\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_VERSION);
    CHECK_EQ(sip_msg_err_status(msg.err), 505);
    CHECK(sip_msg_can_reply(&msg));
    CHECK_EQ(PE("SIP/3.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>;tag=1\r\n"
                "From: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"),
             SIP_MSG_E_VERSION);
    CHECK_EQ(PE("OPTIONS sip:a@h HTTP/1.1\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
                "From: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 1\r\n"
                "l: 0\r\n\r\n"), SIP_MSG_E_START_LINE);

    /* §3.1.2.17-18 mismatch01/02. */
    CHECK_EQ(PE("OPTIONS sip:user@example.com SIP/2.0\r\n"
                "To: sip:j.user@example.com\r\n"
                "From: sip:caller@example.net;tag=34525\r\n"
                "Max-Forwards: 6\r\n"
                "Call-ID: mismatch01.dj0234sxdfl3\r\n"
                "CSeq: 8 INVITE\r\n"
                "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_CSEQ_MISMATCH);
    CHECK(sip_msg_can_reply(&msg));
    CHECK_EQ(PE("NEWMETHOD sip:user@example.com SIP/2.0\r\n"
                "To: sip:j.user@example.com\r\n"
                "From: sip:caller@example.net;tag=34525\r\n"
                "Max-Forwards: 6\r\n"
                "Call-ID: mismatch02.dj0234sxdfl3\r\n"
                "CSeq: 8 INVITE\r\n"
                "Contact: <sip:caller@host.example.net>\r\n"
                "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\r\n"
                "Content-Type: application/sdp\r\n"
                "l: $CL\r\n"
                "\r\n" SDP), SIP_MSG_E_CSEQ_MISMATCH);

    /* §3.1.2.19 bigcode. */
    CHECK_EQ(PE("SIP/2.0 4294967301 better not break the receiver\r\n"
                "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
                "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\n"
                "CSeq: 353494 INVITE\r\n"
                "From: <sip:user@example.com>;tag=39ansfi3\r\n"
                "To: <sip:user@example.edu>;tag=902jndnke3\r\n"
                "Content-Length: 0\r\n"
                "Contact: <sip:user@host105.example.com>\r\n"
                "\r\n"), SIP_MSG_E_START_LINE);
}

static void test_torture_application(void)
{
    /* §3.3.1 insuf: missing Call-ID, From, To, Max-Forwards; too little to answer. */
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\n"
                "CSeq: 193942 INVITE\r\n"
                "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\n"
                "Content-Type: application/sdp\r\n"
                "l: $CL\r\n"
                "\r\n" SDP), SIP_MSG_E_MISSING_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_FROM);
    CHECK(!sip_msg_can_reply(&msg));
    CHECK_EQ(P(REQ("INVITE", "", "")) > 0, true);

    /* §3.3.2-3 unkscm, novelsc: 416. */
    static const char *const schemes[] = { "nobodyKnowsThisScheme:totallyopaquecontent",
                                           "soap.beep://192.0.2.103:3002" };
    for (size_t i = 0; i < ARRAY_LEN(schemes); i++) {
        char buf[1024];
        snprintf(buf, sizeof(buf), "OPTIONS %s SIP/2.0\r\n"
                 "To: sip:user@example.com\r\nFrom: sip:caller@example.net;tag=384\r\n"
                 "Max-Forwards: 3\r\nCall-ID: unkscm.nasdfasser0q239nwsdfasdkl34\r\n"
                 "CSeq: 3923423 OPTIONS\r\n"
                 "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw\r\n"
                 "Content-Length: 0\r\n\r\n", schemes[i]);
        CHECK_EQ(PE(buf), SIP_MSG_E_URI_SCHEME);
        CHECK_EQ(sip_msg_err_status(msg.err), 416);
        CHECK(sip_msg_can_reply(&msg));
    }
    /* ... but 400 first when something else is wrong too. */
    CHECK_EQ(PE("OPTIONS isbn:1 SIP/2.0\r\nTo: sip:u@h\r\nFrom: sip:c@h;tag=1\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 1\r\n"
                "l: 0\r\n\r\n"), SIP_MSG_E_CSEQ_MISMATCH);

    /* §3.3.4 unksm2: unknown schemes in To and From are fine. */
    CHECK(PE("REGISTER sip:example.com SIP/2.0\r\n"
             "To: isbn:2983792873\r\n"
             "From: <http://www.example.com>;tag=3234233\r\n"
             "Call-ID: unksch.fh3ijd93f2kfjsw\r\n"
             "CSeq: 3923423 REGISTER\r\n"
             "Max-Forwards: 70\r\n"
             "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\r\n"
             "Contact: <sip:user@host.example.com>\r\n"
             "l: 0\r\n"
             "\r\n") > 0);

    /* §3.3.5 bext01, §3.3.6 invut, §3.3.7 regaut01, §3.3.15 sdp01: fields the parser leaves
     * to the application. */
    str_t in = REQ("OPTIONS",
                   "Require: nothingSupportsThis, nothingSupportsThisEither\r\n"
                   "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\r\n"
                   "Authorization: NoOneKnowsThisScheme opaque-data=here\r\n"
                   "Accept: text/nobodyKnowsThis\r\n"
                   "Content-Type: application/unknownformat\r\n", "<h1>foo</h1>");
    CHECK_EQ(P(in), (ssize_t)in.len);
    sip_hdr_iter_t it;
    str_t v;
    unsigned n = 0;
    for (sip_hdr_iter_init(&it, &msg, SIP_HDR_PROXY_REQUIRE); sip_hdr_iter_next(&it, &v) > 0;)
        n++;
    CHECK_EQ(n, 2);
    CHECK_STR(t_str(sip_msg_get(&msg, SIP_HDR_AUTHORIZATION)->value),
              "NoOneKnowsThisScheme opaque-data=here");

    /* §3.3.8 multi01: single-valued fields repeated. */
    CHECK_EQ(PE("INVITE sip:user@company.com SIP/2.0\r\n"
                "Contact: <sip:caller@host25.example.net>\r\n"
                "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\r\n"
                "Max-Forwards: 70\r\n"
                "CSeq: 5 INVITE\r\n"
                "Call-ID: multi01.98asdh@192.0.2.1\r\n"
                "CSeq: 59 INVITE\r\n"
                "Call-ID: multi01.98asdh@192.0.2.2\r\n"
                "From: sip:caller@example.com;tag=3413415\r\n"
                "To: sip:user@example.com\r\n"
                "To: sip:other@example.net\r\n"
                "From: sip:caller@example.net;tag=2923420123\r\n"
                "Content-Type: application/sdp\r\n"
                "l: $CL\r\n"
                "Contact: <sip:caller@host36.example.net>\r\n"
                "Max-Forwards: 5\r\n"
                "\r\n" SDP), SIP_MSG_E_DUPLICATE_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_CSEQ);
    CHECK(sip_msg_can_reply(&msg));

    /* §3.3.9 mcl01: two Content-Lengths; the header section is still read. */
    static const char mcl01[] =
        "OPTIONS sip:user@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\r\n"
        "To: sip:user@example.com\r\n"
        "From: sip:other@example.net;tag=3923942\r\n"
        "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\r\n"
        "CSeq: 15932 OPTIONS\r\n"
        "Content-Length: 13\r\n"
        "Max-Forwards: 60\r\n"
        "Content-Length: 5\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "There's no way to know how many octets are supposed to be here.\r\n";
    CHECK_EQ(P(LIT(mcl01)), SIP_MSG_E_DUPLICATE_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_CONTENT_LENGTH);
    CHECK(msg.head_complete);
    CHECK(sip_msg_can_reply(&msg));
    sip_frame_t f;
    CHECK_EQ(FR(mcl01, sizeof(mcl01) - 1, NULL, &f), SIP_MSG_E_DUPLICATE_HEADER);
    /* Even with the same value twice. */
    CHECK_EQ(P(REQ("OPTIONS", "Content-Length: 0\r\n", "")), SIP_MSG_E_DUPLICATE_HEADER);

    /* §3.3.10 bcast, §3.3.11 zeromf, §3.3.12-14 cparam01/02, regescrt. */
    CHECK(PE("SIP/2.0 200 OK\r\n"
             "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
             "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\r\n"
             "Call-ID: bcast.0293242SDKSDKLJF\r\n"
             "CSeq: 35 INVITE\r\n"
             "From: sip:user@example.com;tag=11141343\r\n"
             "To: sip:user@example.edu;tag=2229\r\n"
             "Content-Length: $CL\r\n"
             "Content-Type: application/sdp\r\n"
             "Contact: <sip:user@host28.example.com>\r\n"
             "\r\n" SDP) > 0);
    CHECK(PE("OPTIONS sip:user@example.com SIP/2.0\r\n"
             "To: sip:user@example.com\r\n"
             "From: sip:caller@example.net;tag=3ghsd41\r\n"
             "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\r\n"
             "CSeq: 39234321 OPTIONS\r\n"
             "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\r\n"
             "Max-Forwards: 0\r\n"
             "Content-Length: 0\r\n"
             "\r\n") > 0);
    CHECK_EQ(msg.max_forwards, 0);
    CHECK(PE("REGISTER sip:example.com SIP/2.0\r\n"
             "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n"
             "Max-Forwards: 70\r\n"
             "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\r\n"
             "To: sip:watson@example.com\r\n"
             "Call-ID: cparam01.70710@saturn.example.com\r\n"
             "CSeq: 2 REGISTER\r\n"
             "Contact: sip:+19725552222@gw1.example.net;unknownparam\r\n"
             "l: 0\r\n"
             "\r\n") > 0);
    sip_addr_t a;
    CHECK_EQ(sip_addr_parse(sip_msg_get(&msg, SIP_HDR_CONTACT)->value, &a), 0);
    CHECK_STR(t_str(a.uri), "sip:+19725552222@gw1.example.net");
    CHECK_STR(t_str(a.params), ";unknownparam");
    CHECK(PE("REGISTER sip:example.com SIP/2.0\r\n"
             "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:watson@example.com>;tag=838293\r\n"
             "To: <sip:watson@example.com>\r\n"
             "Call-ID: cparam02.70710@saturn.example.com\r\n"
             "CSeq: 3 REGISTER\r\n"
             "Contact: <sip:+19725552222@gw1.example.net;unknownparam>\r\n"
             "l: 0\r\n"
             "\r\n") > 0);
    CHECK(PE("REGISTER sip:example.com SIP/2.0\r\n"
             "To: sip:user@example.com\r\n"
             "From: sip:user@example.com;tag=8\r\n"
             "Max-Forwards: 70\r\n"
             "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\r\n"
             "CSeq: 14398234 REGISTER\r\n"
             "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
             "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n"
             "L:0\r\n"
             "\r\n") > 0);
    CHECK_EQ(sip_addr_parse(sip_msg_get(&msg, SIP_HDR_CONTACT)->value, &a), 0);
    sip_uri_t u;
    CHECK_EQ(sip_uri_parse(a.uri, &u), 0);
    CHECK_STR(t_str(u.headers), "Route=%3Csip:sip.example.com%3E");

    /* §3.2.1 badbranch: a bare magic cookie is the transaction layer's business. */
    CHECK(PE("OPTIONS sip:user@example.com SIP/2.0\r\n"
             "To: sip:user@example.com\r\n"
             "From: sip:caller@example.org;tag=33242\r\n"
             "Max-Forwards: 3\r\n"
             "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
             "Accept: application/sdp\r\n"
             "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n"
             "CSeq: 8 OPTIONS\r\n"
             "l: 0\r\n"
             "\r\n") > 0);
    CHECK_STR(t_str(msg.via.branch), "z9hG4bK");

    /* §3.4.1 inv2543: no Max-Forwards, no Content-Length, no tag, no branch. */
    static const char inv2543[] =
        "INVITE sip:UserB@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP iftgw.example.com\r\n"
        "From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
        "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
        "To: sip:+16505552222@ss1.example.net;user=phone\r\n"
        "Call-ID: inv2543.1717@ift.client.example.com\r\n"
        "CSeq: 56 INVITE\r\n"
        "Content-Type: application/sdp\r\n"
        "\r\n" SDP;
    CHECK_EQ(P(LIT(inv2543)), SIP_MSG_E_MISSING_HEADER);
    CHECK_EQ(msg.err_hdr, SIP_HDR_MAX_FORWARDS);
    CHECK(sip_msg_can_reply(&msg));
    sip_msg_limits_t compat = sip_msg_limits_default;
    compat.max_forwards_optional = true;
    CHECK_EQ(parse_as(LIT(inv2543), SIP_MSG_DATAGRAM, &compat), (ssize_t)strlen(inv2543));
    CHECK(!msg.has_content_length);
    CHECK_STR(t_str(msg.body), SDP);
    CHECK_EQ(msg.max_forwards, -1);
    CHECK_EQ(msg.from.tag.len, 0);
    CHECK_EQ(parse_as(LIT(inv2543), SIP_MSG_STREAM, &compat), SIP_MSG_E_NO_CONTENT_LENGTH);
}

static void test_fields_checked(void)
{
    /* Missing mandatory fields, one at a time. */
    static const char *const lines[] = {
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", "To: <sip:a@h>\r\n",
        "From: <sip:b@h>;tag=1\r\n", "Call-ID: c@h\r\n", "CSeq: 1 OPTIONS\r\n",
        "Max-Forwards: 70\r\n",
    };
    static const sip_hdr_id_t ids[] = { SIP_HDR_VIA, SIP_HDR_TO, SIP_HDR_FROM, SIP_HDR_CALL_ID,
                                        SIP_HDR_CSEQ, SIP_HDR_MAX_FORWARDS };
    for (size_t skip = 0; skip < ARRAY_LEN(lines); skip++) {
        char buf[1024];
        size_t n = (size_t)snprintf(buf, sizeof(buf), "OPTIONS sip:a@h SIP/2.0\r\n");
        for (size_t i = 0; i < ARRAY_LEN(lines); i++)
            if (i != skip)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", lines[i]);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "l: 0\r\n\r\n");
        CHECK_EQ(P((str_t){ buf, n }), SIP_MSG_E_MISSING_HEADER);
        CHECK_EQ(msg.err_hdr, ids[skip]);
        /* Without Max-Forwards a response can still be built. */
        CHECK_EQ(sip_msg_can_reply(&msg), ids[skip] == SIP_HDR_MAX_FORWARDS);
    }
    /* Malformed values of each checked field. */
    static const struct {
        const char *line;
        sip_hdr_id_t id;
    } bad[] = {
        { "Call-ID: two words\r\n", SIP_HDR_CALL_ID },
        { "Call-ID: a@b@c\r\n", SIP_HDR_CALL_ID },
        { "Call-ID: @b\r\n", SIP_HDR_CALL_ID },
        { "Call-ID:\r\n", SIP_HDR_CALL_ID },
        { "From: *\r\n", SIP_HDR_FROM },
        { "To: <sip:a@h>, <sip:b@h>\r\n", SIP_HDR_TO },
        { "Max-Forwards: 256\r\n", SIP_HDR_MAX_FORWARDS },
        { "Max-Forwards: -1\r\n", SIP_HDR_MAX_FORWARDS },
        { "Max-Forwards: \r\n", SIP_HDR_MAX_FORWARDS },
        { "CSeq: 1\r\n", SIP_HDR_CSEQ },
        { "Via:\r\n", SIP_HDR_VIA },
        { "Via: SIP/2.0/UDP h, \r\n", SIP_HDR_VIA },
        { "Contact: <sip:a@h>, *\r\n", SIP_HDR_CONTACT },
        { "Contact:\r\n", SIP_HDR_CONTACT },
        { "Route: sip:p@h;lr\r\n", SIP_HDR_ROUTE },
        { "Record-Route: <sip:p@h;lr>, sip:q@h\r\n", SIP_HDR_RECORD_ROUTE },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char buf[1024];
        int n = snprintf(buf, sizeof(buf), "OPTIONS sip:a@h SIP/2.0\r\n%s"
                         "Via: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\nFrom: <sip:b@h>;tag=1\r\n"
                         "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 1\r\nl: 0\r\n\r\n",
                         bad[i].line);
        ssize_t r = P((str_t){ buf, (size_t)n });
        /* A first bad single-valued field is malformed; a second one a duplicate. */
        if (r != SIP_MSG_E_BAD_HEADER && r != SIP_MSG_E_DUPLICATE_HEADER)
            fprintf(stderr, "accepted: %s", bad[i].line);
        CHECK_EQ(r, SIP_MSG_E_BAD_HEADER);
        CHECK_EQ(msg.err_hdr, bad[i].id);
    }
    /* Contact "*" alone, as for un-REGISTER. */
    str_t in = REQ("REGISTER", "Contact: *\r\nExpires: 0\r\n", "");
    CHECK_EQ(P(in), (ssize_t)in.len);
}

/* ---- Bodies, Content-Length and limits ------------------------------------------------- */

static void test_body(void)
{
    /* Datagram: the rest without Content-Length; past it, discarded. */
    str_t in = LIT("MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
                   "From: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 9\r\n"
                   "\r\nhello world");
    CHECK_EQ(P(in), (ssize_t)in.len);
    CHECK(!msg.has_content_length);
    CHECK_STR(t_str(msg.body), "hello world");
    CHECK_EQ(PS(in), SIP_MSG_E_NO_CONTENT_LENGTH);
    CHECK(sip_msg_can_reply(&msg));
    in = LIT("MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
             "From: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 9\r\n"
             "Content-Length: 5\r\n\r\nhello world");
    CHECK_EQ(P(in), (ssize_t)in.len - 6);
    CHECK_STR(t_str(msg.body), "hello");
    CHECK_EQ(PS(in), (ssize_t)in.len - 6);
    /* Leading zeros, a folded value. */
    in = REQ("MESSAGE", "", "");
    CHECK(P(in) > 0);
    in = LIT("MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
             "From: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 9\r\n"
             "l:\r\n 0005 \r\n\r\nhello");
    CHECK_EQ(PS(in), (ssize_t)in.len);
    CHECK_EQ(msg.content_length, 5);
    /* No empty line: the header section never ends. */
    CHECK_EQ(P(LIT("OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n")), SIP_MSG_E_TRUNCATED);
    CHECK(!msg.head_complete);
    CHECK_EQ(P(LIT("OPTIONS sip:a@h SIP/2.0")), SIP_MSG_E_TRUNCATED);
    CHECK_EQ(P(LIT("")), SIP_MSG_E_TRUNCATED);
    CHECK_EQ(P(LIT("\r\n\r\n")), SIP_MSG_E_START_LINE);
    /* Malformed values. */
    static const char *const bad[] = { "1 2", "0x10", "+5", "5;x", "\"5\"", "" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "OPTIONS sip:a@h SIP/2.0\r\nContent-Length: %s\r\n"
                         "\r\n", bad[i]);
        CHECK_EQ(P((str_t){ buf, (size_t)n }), SIP_MSG_E_CONTENT_LENGTH);
        sip_frame_t f;
        CHECK_EQ(FR(buf, (size_t)n, NULL, &f), SIP_MSG_E_CONTENT_LENGTH);
    }
}

static void test_limits(void)
{
    sip_msg_limits_t lim = { .msg_max_bytes = 512, .line_max_bytes = 100, .headers_max = 10 };
    str_t ok = LIT("OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@h>\r\n"
                   "From: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 9\r\n"
                   "l: 0\r\n\r\n");
    CHECK_EQ(parse_as(ok, SIP_MSG_STREAM, &lim), (ssize_t)ok.len);

    /* Fields: exactly headers_max passes, one more does not. */
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%.*sX-1: a\r\nX-2: b\r\nX-3: c\r\n\r\n",
                     (int)ok.len - 2, ok.ptr);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), n);
    n = snprintf(buf, sizeof(buf), "%.*sX-1: a\r\nX-2: b\r\nX-3: c\r\nX-4: d\r\n\r\n",
                 (int)ok.len - 2, ok.ptr);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim),
             SIP_MSG_E_TOO_MANY_HEADERS);
    sip_frame_t f;
    CHECK_EQ(FR(buf, (size_t)n, &lim, &f), SIP_MSG_E_TOO_MANY_HEADERS);

    /* A field of exactly line_max_bytes (folds included) passes, one byte more does not. */
    char field[256];
    memset(field, 'x', sizeof(field));
    memcpy(field, "X-L: ", 5);
    n = snprintf(buf, sizeof(buf), "%.*s%.*s\r\n\r\n", (int)ok.len - 2, ok.ptr, 100, field);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), n);
    n = snprintf(buf, sizeof(buf), "%.*s%.*s\r\n\r\n", (int)ok.len - 2, ok.ptr, 101, field);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), SIP_MSG_E_LINE_TOO_LONG);
    CHECK_EQ(FR(buf, (size_t)n, &lim, &f), SIP_MSG_E_LINE_TOO_LONG);
    n = snprintf(buf, sizeof(buf), "%.*sX-L: %.*s\r\n %.*s\r\n\r\n", (int)ok.len - 2, ok.ptr, 50,
                 field + 5, 50, field + 5);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), SIP_MSG_E_LINE_TOO_LONG);
    /* The start line too. */
    n = snprintf(buf, sizeof(buf), "OPTIONS sip:%.*s@h SIP/2.0\r\n\r\n", 90, field + 5);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), SIP_MSG_E_LINE_TOO_LONG);

    /* The header section within msg_max_bytes: 513; the body taking it past: 413. */
    lim.line_max_bytes = 4096;
    lim.headers_max = 128;
    char ys[400];
    memset(ys, 'y', sizeof(ys));
    n = snprintf(buf, sizeof(buf), "%.*sX-L: %.*s\r\n\r\n", (int)ok.len - 2, ok.ptr,
                 (int)sizeof(ys), ys);
    CHECK(n > 512);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_STREAM, &lim), SIP_MSG_E_TOO_LARGE);
    CHECK_EQ(FR(buf, (size_t)n, &lim, &f), SIP_MSG_E_TOO_LARGE);
    CHECK(!msg.head_complete);

    str_t big = REQ("MESSAGE", "Content-Type: text/plain\r\n",
                    "0123456789012345678901234567890123456789012345678901234567890123456789012345"
                    "0123456789012345678901234567890123456789012345678901234567890123456789012345"
                    "0123456789012345678901234567890123456789012345678901234567890123456789012345");
    CHECK(big.len > 512);
    CHECK(big.len - 228 < 512);
    CHECK_EQ(parse_as(big, SIP_MSG_STREAM, &lim), SIP_MSG_E_BODY_TOO_LARGE);
    CHECK(sip_msg_can_reply(&msg));
    CHECK_EQ(sip_msg_err_status(msg.err), 413);
    CHECK_EQ(FR(big.ptr, big.len, &lim, &f), SIP_MSG_E_BODY_TOO_LARGE);
    /* Known as soon as the Content-Length is read, before the body arrives. */
    CHECK_EQ(FR(big.ptr, big.len - 228, &lim, &f), SIP_MSG_E_BODY_TOO_LARGE);
    CHECK_EQ(parse_as(big, SIP_MSG_DATAGRAM, &lim), SIP_MSG_E_BODY_TOO_LARGE);
    /* A Content-Length beyond any limit, even 2^64 and more. */
    str_t huge = LIT("OPTIONS sip:a@h SIP/2.0\r\n"
                     "Content-Length: 99999999999999999999999999\r\n\r\n");
    CHECK_EQ(P(huge), SIP_MSG_E_BODY_TOO_LARGE);
    CHECK_EQ(FR(huge.ptr, huge.len, NULL, &f), SIP_MSG_E_BODY_TOO_LARGE);
    /* Without Content-Length, a datagram's rest counts too. */
    n = snprintf(buf, sizeof(buf), "%.*s", (int)ok.len - 8, ok.ptr);   /* drop "l: 0" */
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n%0600d", 0);
    CHECK_EQ(parse_as((str_t){ buf, (size_t)n }, SIP_MSG_DATAGRAM, &lim),
             SIP_MSG_E_BODY_TOO_LARGE);

    /* The defaults: 64 KiB, 128 fields, 8 KiB per field. */
    CHECK_EQ(sip_msg_limits_default.msg_max_bytes, 65536);
    CHECK_EQ(sip_msg_limits_default.headers_max, SIP_MSG_HEADERS_CAP);
    CHECK_EQ(sip_msg_limits_default.line_max_bytes, 8192);
    CHECK(!sip_msg_limits_default.max_forwards_optional);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "OPTIONS sip:a@h SIP/2.0\r\n");
    for (int i = 0; i <= SIP_MSG_HEADERS_CAP; i++)
        buf_printf(&b, "X-%d: %d\r\n", i, i);
    buf_printf(&b, "\r\n");
    CHECK_EQ(P((str_t){ b.data, b.len }), SIP_MSG_E_TOO_MANY_HEADERS);
    buf_fini(&b);
    buf_init(&b);
    buf_printf(&b, "MESSAGE sip:a@h SIP/2.0\r\nContent-Length: 65520\r\n\r\n");
    CHECK_EQ(P((str_t){ b.data, b.len }), SIP_MSG_E_BODY_TOO_LARGE);
    buf_fini(&b);
}

/* ---- Framing ------------------------------------------------------------------------------ */

/* Every prefix of a complete message needs more bytes; the whole frames to its length, also
 * with another message behind it and after keep-alive CRLFs. */
static void check_every_cut(str_t in)
{
    sip_frame_t f;
    ssize_t whole = FR(in.ptr, in.len, NULL, &f);
    REQUIRE(whole > 0);
    CHECK_EQ(f.skip_bytes, 0);
    /* Each prefix on its own, and all of them in turn through one state, as the bytes of
     * one connection arrive; each call gets a buffer of its own, as after a realloc. */
    sip_frame_state_t st;
    sip_frame_t inc;
    sip_frame_state_init(&st);
    for (size_t k = 0; k <= (size_t)whole; k++) {
        char *cut = malloc(k ? k : 1);          /* exact size: ASan sees a read past it */
        REQUIRE(cut);
        memcpy(cut, in.ptr, k);
        ssize_t r = FR(cut, k, NULL, &f);
        ssize_t ri = sip_msg_frame_resume(&st, cut, k, NULL, &inc);
        ssize_t want = k == (size_t)whole ? whole : 0;
        if (r != want || ri != want)
            fprintf(stderr, "cut at %zu of %zd: %zd, incrementally %zd\n", k, whole, r, ri);
        CHECK_EQ(r, want);
        CHECK_EQ(ri, want);
        CHECK_EQ(f.skip_bytes, 0);
        CHECK_EQ(inc.skip_bytes, 0);
        if (k < (size_t)whole)
            CHECK_EQ(sip_msg_parse(&again, cut, k, SIP_MSG_STREAM, NULL), SIP_MSG_E_TRUNCATED);
        free(cut);
    }
    buf_t b;
    buf_init(&b);
    buf_append(&b, "\r\n\r\n\r\n", 6);
    buf_append(&b, in.ptr, (size_t)whole);
    buf_append(&b, in.ptr, (size_t)whole);
    CHECK_EQ(FR(b.data, b.len, NULL, &f), whole);
    CHECK_EQ(f.skip_bytes, 6);
    CHECK_EQ(f.pings, 1);
    CHECK_EQ(FR(b.data + 6 + whole, b.len - 6 - (size_t)whole, NULL, &f), whole);
    CHECK_EQ(f.skip_bytes, 0);
    ssize_t alone = sip_msg_parse(&again, in.ptr, (size_t)whole, SIP_MSG_STREAM, NULL);
    CHECK_EQ(sip_msg_parse(&again, b.data + 6, b.len - 6, SIP_MSG_STREAM, NULL), alone);
    buf_fini(&b);
}

static void test_frame_every_cut(void)
{
    check_every_cut(REQ("INVITE", "Content-Type: application/sdp\r\n", SDP));
    check_every_cut(with_cl(LIT(wsinv)));
    check_every_cut(LIT(intmeth));
    check_every_cut(with_cl(LIT(esc01)));
    check_every_cut(LIT(noreason));
    check_every_cut(LIT("OPTIONS sip:a@h SIP/2.0\nl: 0\n\n"));
    check_every_cut(LIT("OPTIONS sip:a@h SIP/2.0\r\nl:\r\n 3\r\n\r\nabc"));
    check_every_cut(with_cl((str_t){ mpart01, sizeof(mpart01) - 1 }));
}

static void test_frame_keepalives(void)
{
    static const struct {
        const char *in;
        ssize_t ret;
        size_t skip, pings;
    } cases[] = {
        { "", 0, 0, 0 },
        { "\r", 0, 0, 0 },
        { "\r\n", 0, 0, 0 },              /* may be half a ping: wait */
        { "\r\n\r", 0, 0, 0 },
        { "\r\n\r\n", 0, 4, 1 },
        { "\r\n\r\n\r\n", 0, 4, 1 },
        { "\r\n\r\n\r\n\r\n", 0, 8, 2 },
        { "\r\nO", 0, 2, 0 },             /* a lone CRLF before a message */
        { "\n\nO", 0, 2, 0 },
        { "\r\n\r\nO", 0, 4, 1 },
        { "\r\n\r\nOPTIONS sip:a@h SIP/2.0\r\nl: 0\r\n\r\n", 33, 4, 1 },
        { "\r\n\nOPTIONS sip:a@h SIP/2.0\r\nl: 0\r\n\r\n", 33, 3, 0 },
        { "\r\r\n", SIP_MSG_E_START_LINE, 0, 0 },
        { "\r\n\rx", SIP_MSG_E_START_LINE, 2, 0 },
        { "\r\n\r\n\rx", SIP_MSG_E_START_LINE, 4, 1 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sip_frame_t f;
        ssize_t r = FR(cases[i].in, strlen(cases[i].in), NULL, &f);
        if (r != cases[i].ret || f.skip_bytes != cases[i].skip || f.pings != cases[i].pings)
            fprintf(stderr, "keepalive case %zu: %zd skip %zu pings %zu\n", i, r, f.skip_bytes,
                    f.pings);
        CHECK_EQ(r, cases[i].ret);
        CHECK_EQ(f.skip_bytes, cases[i].skip);
        CHECK_EQ(f.pings, cases[i].pings);
    }
    /* A stream of pings fed a byte at a time answers each once. */
    const char *stream = "\r\n\r\n\r\n\r\n\r\n\r\nOPTIONS sip:a@h SIP/2.0\r\nl: 0\r\n\r\n";
    size_t have = 0, off = 0, pings = 0, msgs = 0;
    sip_frame_state_t st;
    sip_frame_t f;
    sip_frame_state_init(&st);
    for (size_t fed = 1; fed <= strlen(stream); fed++) {
        have = fed;
        ssize_t r = sip_msg_frame_resume(&st, stream + off, have - off, NULL, &f);
        REQUIRE(r >= 0);
        off += f.skip_bytes;
        pings += f.pings;
        if (r > 0) {
            off += (size_t)r;
            msgs++;
        }
    }
    CHECK_EQ(pings, 3);
    CHECK_EQ(msgs, 1);
    CHECK_EQ(off, strlen(stream));
}

/* Feeds in a byte at a time through one state; returns the first result other than 0 (or
 * 0), and the keep-alive bytes skipped before it in *skipped. */
static ssize_t frame_trickle(const char *in, size_t len, size_t *skipped)
{
    sip_frame_state_t st;
    sip_frame_t f;
    sip_frame_state_init(&st);
    size_t off = 0;
    *skipped = 0;
    for (size_t fed = 1; fed <= len; fed++) {
        ssize_t r = sip_msg_frame_resume(&st, in + off, fed - off, NULL, &f);
        off += f.skip_bytes;
        *skipped += f.skip_bytes;
        if (r != 0)
            return r;
    }
    return 0;
}

static void test_frame_errors(void)
{
    sip_frame_t f;
    static const struct {
        const char *in;
        ssize_t ret;
    } cases[] = {
        { "OPTIONS sip:a@h SIP/2.0\r\n\r\n", SIP_MSG_E_NO_CONTENT_LENGTH },
        { "OPTIONS sip:a@h SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r",
          SIP_MSG_E_DUPLICATE_HEADER },
        { "OPTIONS sip:a@h SIP/2.0\r\nContent-Length: -999\r\nX", SIP_MSG_E_CONTENT_LENGTH },
        { "OPTIONS sip:a@h SIP/2.0\r\nBad Name: x\r\n", SIP_MSG_E_HEADER_SYNTAX },
        { "OPTIONS sip:a@h SIP/2.0\r\n Fold: x\r\n", SIP_MSG_E_HEADER_SYNTAX },
        { "OPTIONS sip:a@h SIP/2.0\r\nX: a\rb", SIP_MSG_E_HEADER_SYNTAX },
        { "OPTIONS sip:a@h SIP/2.0\r\nX: \001\r\n", SIP_MSG_E_HEADER_SYNTAX },
        { "\001", SIP_MSG_E_START_LINE },
        { "OPTIONS sip:a@h SIP/2.0\rX", SIP_MSG_E_START_LINE },
        /* Incomplete, not yet wrong. */
        { "OPTIONS sip:a@h SIP/2.0\r\nl: 5\r\n\r\nabcd", 0 },
        { "OPTIONS sip:a@h SIP/2.0\r\nl: 5\r\n\r", 0 },
        { "OPTIONS sip:a@h SIP/2.0\r\nl: 5\r\n", 0 },
        { "OPTIONS sip:a@h SIP/2.0\r\nX: a\r", 0 },
        /* Framing reads nothing but field lines and Content-Length: the parser judges the
         * start line and the values. */
        { "GARBAGE\r\nl: 0\r\n\r\n", 17 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ssize_t r = FR(cases[i].in, strlen(cases[i].in), NULL, &f);
        size_t skipped;
        ssize_t trickled = frame_trickle(cases[i].in, strlen(cases[i].in), &skipped);
        if (r != cases[i].ret || trickled != r)
            fprintf(stderr, "frame case %zu: %zd, trickled %zd\n", i, r, trickled);
        CHECK_EQ(r, cases[i].ret);
        CHECK_EQ(trickled, r);
        CHECK_EQ(skipped, f.skip_bytes);
    }
    /* Limits too, at the same byte whichever way the bytes come. */
    char big[9000];
    int n = snprintf(big, sizeof(big), "OPTIONS sip:a@h SIP/2.0\r\nX: %08190d\r\n", 0);
    size_t skipped;
    CHECK_EQ(FR(big, (size_t)n, NULL, &f), SIP_MSG_E_LINE_TOO_LONG);
    CHECK_EQ(frame_trickle(big, (size_t)n, &skipped), SIP_MSG_E_LINE_TOO_LONG);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "\r\n\r\nOPTIONS sip:a@h SIP/2.0\r\n");
    for (int i = 0; i < 200; i++)
        buf_printf(&b, "X-%d:\r\n %d\r\n", i, i);
    CHECK_EQ(FR(b.data, b.len, NULL, &f), SIP_MSG_E_TOO_MANY_HEADERS);
    CHECK_EQ(frame_trickle(b.data, b.len, &skipped), SIP_MSG_E_TOO_MANY_HEADERS);
    CHECK_EQ(skipped, 4);
    buf_fini(&b);
    CHECK_EQ(P(LIT("GARBAGE\r\nl: 0\r\n\r\n")), SIP_MSG_E_START_LINE);
}

/* ---- Responses -------------------------------------------------------------------------- */

static void test_writer(void)
{
    str_t in = LIT("INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
                   "v: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa1,\r\n"
                   " SIP/2.0/UDP p2.example.com;branch=z9hG4bKa2\r\n"
                   "Max-Forwards: 70\r\n"
                   "f: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
                   "To: Bob <sip:bob@biloxi.example.com>\r\n"
                   "i: 3848276298220188511@atlanta.example.com\r\n"
                   "CSeq: 1 INVITE\r\n"
                   "Record-Route: <sip:p1.example.com;lr>\r\n"
                   "Record-Route: <sip:p2.example.com;lr>\r\n"
                   "Timestamp: 54\r\n"
                   "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
                   "Content-Length: 0\r\n"
                   "\r\n");
    CHECK_EQ(PS(in), (ssize_t)in.len);
    buf_t out;
    buf_init(&out);
    sip_response_t rsp = { .status = 180, .to_tag = STR_LIT("8321234356") };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    buf_append(&out, "", 1);
    CHECK_STR(out.data,
              "SIP/2.0 180 Ringing\r\n"
              "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
              "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa1,\r\n"
              " SIP/2.0/UDP p2.example.com;branch=z9hG4bKa2\r\n"
              "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
              "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n"
              "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
              "CSeq: 1 INVITE\r\n"
              "Content-Length: 0\r\n"
              "\r\n");
    CHECK_EQ(sip_msg_parse(&again, out.data, out.len - 1, SIP_MSG_STREAM, NULL),
             (ssize_t)out.len - 1);
    CHECK_STR(t_str(again.to.tag), "8321234356");
    buf_fini(&out);

    /* 100 Trying: Timestamp copied, no tag. A 200 with Record-Route, headers and a body. */
    buf_init(&out);
    rsp = (sip_response_t){ .status = 100 };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK(memmem(out.data, out.len, "\r\nTimestamp: 54\r\n", 17) != NULL);
    CHECK(memmem(out.data, out.len, "To: Bob <sip:bob@biloxi.example.com>\r\n", 38) != NULL);
    buf_fini(&out);
    buf_init(&out);
    rsp = (sip_response_t){ .status = 200, .reason = "Fine", .to_tag = STR_LIT("x"),
                            .record_route = true,
                            .headers = STR_LIT("Contact: <sip:bob@192.0.2.4>\r\n"
                                               "Content-Type: application/sdp\r\n"),
                            .body = STR_LIT(SDP) };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK_EQ(sip_msg_parse(&again, out.data, out.len, SIP_MSG_STREAM, NULL), (ssize_t)out.len);
    CHECK_STR(t_str(again.reason), "Fine");
    CHECK_STR(t_str(again.body), SDP);
    CHECK_EQ(again.content_length, strlen(SDP));
    const sip_hdr_t *rr = sip_msg_get(&again, SIP_HDR_RECORD_ROUTE);
    REQUIRE(rr);
    CHECK_STR(t_str(rr->value), "<sip:p1.example.com;lr>");
    rr = sip_msg_next(&again, rr);
    REQUIRE(rr);
    CHECK_STR(t_str(rr->value), "<sip:p2.example.com;lr>");
    CHECK(sip_msg_get(&again, SIP_HDR_TIMESTAMP) == NULL);
    CHECK(sip_msg_get(&again, SIP_HDR_CONTACT) != NULL);
    buf_fini(&out);

    /* A To that has a tag keeps it; an addr-spec To gets its tag as a header parameter. */
    in = LIT("BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
             "To: sip:a@h;tag=old\r\nFrom: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
             "Max-Forwards: 70\r\nl: 0\r\n\r\n");
    CHECK(PS(in) > 0);
    buf_init(&out);
    rsp = (sip_response_t){ .status = 200, .to_tag = STR_LIT("new") };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK_EQ(sip_msg_parse(&again, out.data, out.len, SIP_MSG_DATAGRAM, NULL), (ssize_t)out.len);
    CHECK_STR(t_str(again.to.tag), "old");
    buf_fini(&out);
    in = LIT("BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
             "To: sip:a@h\r\nFrom: <sip:b@h>;tag=1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
             "Max-Forwards: 70\r\nl: 0\r\n\r\n");
    CHECK(PS(in) > 0);
    buf_init(&out);
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK_EQ(sip_msg_parse(&again, out.data, out.len, SIP_MSG_DATAGRAM, NULL), (ssize_t)out.len);
    CHECK_STR(t_str(again.to.uri), "sip:a@h");
    CHECK_STR(t_str(again.to.tag), "new");
    buf_fini(&out);

    /* Error responses to requests that did not parse, answered with their own status. */
    CHECK_EQ(PE("OPTIONS sip:user@example.com SIP/2.0\r\n"
                "To: sip:j.user@example.com\r\n"
                "From: sip:caller@example.net;tag=34525\r\n"
                "Max-Forwards: 6\r\n"
                "Call-ID: mismatch01.dj0234sxdfl3\r\n"
                "CSeq: 8 INVITE\r\n"
                "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_CSEQ_MISMATCH);
    buf_init(&out);
    rsp = (sip_response_t){ .status = sip_msg_err_status(msg.err),
                            .reason = sip_msg_err_reason(msg.err), .to_tag = STR_LIT("e1") };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK_EQ(sip_msg_parse(&again, out.data, out.len, SIP_MSG_DATAGRAM, NULL), (ssize_t)out.len);
    CHECK_EQ(again.status, 400);
    CHECK_STR(t_str(again.reason), "CSeq Method Mismatch");
    CHECK_STR(t_str(again.to.tag), "e1");
    buf_fini(&out);
    /* quotbal: a To that does not parse gets no tag. */
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\n"
                "To: \"Mr. J. User <sip:j.user@example.com>\r\n"
                "From: sip:caller@example.net;tag=93334\r\n"
                "Max-Forwards: 10\r\n"
                "Call-ID: quotbal.aksdj\r\n"
                "CSeq: 8 INVITE\r\n"
                "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\r\n"
                "l: 0\r\n"
                "\r\n"), SIP_MSG_E_BAD_HEADER);
    buf_init(&out);
    rsp = (sip_response_t){ .status = 400, .to_tag = STR_LIT("e2") };
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), 0);
    CHECK(memmem(out.data, out.len, "e2", 2) == NULL);
    buf_fini(&out);

    /* Nothing to answer: a response, an ACK, a request without its dialog fields. */
    buf_init(&out);
    rsp = (sip_response_t){ .status = 200 };
    CHECK(P(LIT(noreason)) > 0);
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), -EINVAL);
    CHECK(P(REQ("ACK", "", "")) > 0);
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), -EINVAL);
    CHECK_EQ(PE("INVITE sip:user@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\n"
                "Via: SIP/2.0/UDP h\r\nl: 0\r\n\r\n"), SIP_MSG_E_MISSING_HEADER);
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), -EINVAL);
    CHECK_EQ(P(LIT("OPTIONS sip:a@h SIP/2.0\r\nVia: x\r\n")), SIP_MSG_E_TRUNCATED);
    CHECK_EQ(sip_msg_write_response(&msg, &rsp, &out), -EINVAL);
    CHECK_EQ(out.len, 0);
    buf_fini(&out);
}

int main(void)
{
    T_RUN(test_names);
    T_RUN(test_error_mapping);
    T_RUN(test_request_basics);
    T_RUN(test_every_method);
    T_RUN(test_responses);
    T_RUN(test_peek_response);
    T_RUN(test_header_access);
    T_RUN(test_compact_forms);
    T_RUN(test_folding);
    T_RUN(test_control_bytes);
    T_RUN(test_value_blocks);
    T_RUN(test_start_line_and_space_blocks);
    T_RUN(test_uri);
    T_RUN(test_ipv4_hosts);
    T_RUN(test_params_and_lists);
    T_RUN(test_addr);
    T_RUN(test_via);
    T_RUN(test_cseq_event_state_expires);
    T_RUN(test_copy_helpers);
    T_RUN(test_torture_valid);
    T_RUN(test_torture_invalid);
    T_RUN(test_torture_application);
    T_RUN(test_fields_checked);
    T_RUN(test_body);
    T_RUN(test_limits);
    T_RUN(test_frame_every_cut);
    T_RUN(test_frame_keepalives);
    T_RUN(test_frame_errors);
    T_RUN(test_writer);
    T_DONE();
}
