/*
 * sip_parse_bench - what the SIP parser and the response writer cost per message, on the
 * messages a presence load carries: a NOTIFY with its PIDF body as presenced sends it, the
 * 200 a watcher answers it with (parsed whole, and read as the node reads it), a PUBLISH as
 * sipbench sends it, and the PUBLISH's PIDF decoded. One thread, the messages hot in
 * cache: the figure is the code's own cost, not the machine's memory.
 *
 * usage: sip_parse_bench [--runs N] [--iterations N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/micro/bench_stats.h"
#include "engine/buf.h"
#include "engine/clock.h"
#include "protocols/pidf/pidf.h"
#include "protocols/sip/sip_msg.h"

static const char notify_msg[] =
    "NOTIFY sip:w1234_7@127.0.0.1:40123 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1-a1b2c3d40000000000001f2e;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:p1234@localhost>;tag=6f1e2d3c4b5a69788796a5b4c3d2e1f0\r\n"
    "To: <sip:w1234_7@localhost>;tag=5eedf00dw12347\r\n"
    "Call-ID: 5eedf00dw12347@sipbench\r\n"
    "CSeq: 42 NOTIFY\r\n"
    "Contact: <sip:p1234@127.0.0.1:5060>\r\n"
    "Event: presence\r\n"
    "Subscription-State: active;expires=3571\r\n"
    "Content-Type: application/pidf+xml\r\n"
    "Content-Length: 312\r\n"
    "\r\n"
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:p1234@localhost\">"
    "<tuple id=\"sb\"><status><basic>open</basic></status>"
    "<note>sipbench 3 1234567890123456</note><timestamp>2026-11-22T05:00:00.000Z</timestamp>"
    "</tuple><note>sipbench 3 1234567890123456</note></presence>\n";

static const char ok_msg[] =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1-a1b2c3d40000000000001f2e;rport\r\n"
    "From: <sip:p1234@localhost>;tag=6f1e2d3c4b5a69788796a5b4c3d2e1f0\r\n"
    "To: <sip:w1234_7@localhost>;tag=5eedf00dw12347\r\n"
    "Call-ID: 5eedf00dw12347@sipbench\r\n"
    "CSeq: 42 NOTIFY\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char publish_msg[] =
    "PUBLISH sip:p1234@localhost SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:40123;branch=z9hG4bK5eedf00dp1234c7;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:p1234@localhost>;tag=5eedf00dp1234\r\n"
    "To: <sip:p1234@localhost>\r\n"
    "Call-ID: 5eedf00dp1234@sipbench\r\n"
    "CSeq: 7 PUBLISH\r\n"
    "Event: presence\r\n"
    "Expires: 3600\r\n"
    "SIP-If-Match: 0a1b2c3d4e5f60718293a4b5c6d7e8f9\r\n"
    "Content-Type: application/pidf+xml\r\n"
    "Content-Length: 227\r\n"
    "\r\n"
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:p1234@localhost\">"
    "<tuple id=\"sb\"><status><basic>open</basic></status>"
    "<note>sipbench 3 1234567890123456</note></tuple></presence>\r\n";

static unsigned runs = 7;
static unsigned long iterations = 1000000;

static double parse_ns(const char *msg, size_t len)
{
    static sip_msg_t m;
    uint64_t t0 = clk_monotonic_ns();
    for (unsigned long i = 0; i < iterations; i++) {
        /* All of it: a Content-Length short of the body would time a cut message. */
        if (sip_msg_parse(&m, msg, len, SIP_MSG_DATAGRAM, NULL) != (ssize_t)len) {
            fprintf(stderr, "sip_parse_bench: a benchmark message does not parse whole\n");
            exit(1);
        }
        __asm__ volatile("" : : "r"(&m) : "memory");
    }
    return (double)(clk_monotonic_ns() - t0) / (double)iterations;
}

/* What the node reads of a response to its own request (sip_msg_peek_response). */
static double peek_ns(const char *msg, size_t len)
{
    sip_response_peek_t pk;
    uint64_t t0 = clk_monotonic_ns();
    for (unsigned long i = 0; i < iterations; i++) {
        if (sip_msg_peek_response(msg, len, &pk) != 0) {
            fprintf(stderr, "sip_parse_bench: the 200 does not peek\n");
            exit(1);
        }
        __asm__ volatile("" : : "r"(&pk) : "memory");
    }
    return (double)(clk_monotonic_ns() - t0) / (double)iterations;
}

static double respond_ns(const char *msg, size_t len)
{
    static sip_msg_t m;
    if (sip_msg_parse(&m, msg, len, SIP_MSG_DATAGRAM, NULL) < 0)
        exit(1);
    buf_t out;
    buf_init(&out);
    sip_response_t rsp = { .status = 200 };
    uint64_t t0 = clk_monotonic_ns();
    for (unsigned long i = 0; i < iterations; i++) {
        out.len = 0;
        if (sip_msg_write_response(&m, &rsp, &out) < 0)
            exit(1);
        __asm__ volatile("" : : "r"(out.data) : "memory");
    }
    double ns = (double)(clk_monotonic_ns() - t0) / (double)iterations;
    buf_fini(&out);
    return ns;
}

/* The body of the PUBLISH, as the node decodes it once per PUBLISH. */
static double pidf_ns(const char *msg, size_t len)
{
    static sip_msg_t m;
    if (sip_msg_parse(&m, msg, len, SIP_MSG_DATAGRAM, NULL) < 0)
        exit(1);
    uint64_t t0 = clk_monotonic_ns();
    for (unsigned long i = 0; i < iterations; i++) {
        pidf_doc_t *doc;
        if (pidf_decode(m.body.ptr, m.body.len, NULL, &doc, NULL) < 0) {
            fprintf(stderr, "sip_parse_bench: the PUBLISH's PIDF does not decode\n");
            exit(1);
        }
        pidf_doc_free(doc);
    }
    return (double)(clk_monotonic_ns() - t0) / (double)iterations;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: sip_parse_bench [--runs N] [--iterations N]\n");
            return 2;
        }
    }
    if (runs == 0 || runs > BENCH_RUNS_MAX || iterations == 0) {
        fprintf(stderr, "sip_parse_bench: runs 1-%d, iterations > 0\n", BENCH_RUNS_MAX);
        return 2;
    }
    static const struct {
        const char *what, *msg;
        size_t len;
        double (*fn)(const char *, size_t);
    } cases[] = {
        { "parse NOTIFY with PIDF", notify_msg, sizeof(notify_msg) - 1, parse_ns },
        { "parse 200 to a NOTIFY", ok_msg, sizeof(ok_msg) - 1, parse_ns },
        { "peek 200 to a NOTIFY", ok_msg, sizeof(ok_msg) - 1, peek_ns },
        { "parse PUBLISH with PIDF", publish_msg, sizeof(publish_msg) - 1, parse_ns },
        { "write the 200 to a NOTIFY", notify_msg, sizeof(notify_msg) - 1, respond_ns },
        { "decode the PUBLISH's PIDF", publish_msg, sizeof(publish_msg) - 1, pidf_ns },
    };
    double v[BENCH_RUNS_MAX];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (unsigned r = 0; r < runs; r++)
            v[r] = cases[c].fn(cases[c].msg, cases[c].len);
        bench_summary(cases[c].what, v, runs, "ns/message");
    }
    return 0;
}
