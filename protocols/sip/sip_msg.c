/*
 * sip_msg.c - see sip_msg.h.
 *
 * Hand-written rather than generated or borrowed: the parser must be zero-copy over a const
 * receive buffer and bounded per byte, and no packaged SIP parser gives both (osip2 and
 * sofia-sip copy every field into allocated structures).
 *
 * Layout: character classes; names and tables; the line scanner shared by framing and
 * parsing; the grammar pieces (URIs, hosts, parameters, name-addr, Via, ...); the message
 * parser; framing; the response writer.
 *
 * The line scanner is the one place that walks raw header bytes, and it checks every limit
 * at the byte that crosses it (a field's line_max_bytes-th byte, the head's
 * msg_max_bytes-th). So the outcome for a prefix of a message is either "need more" or the
 * error the whole message gets at the same byte, and sip_msg_frame() and sip_msg_parse()
 * agree on every length because both are this scanner plus the same Content-Length rule.
 */
#include "protocols/sip/sip_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <string.h>

_Static_assert(SIP_MSG_HEADERS_CAP < SIP_MSG_NO_HDR, "indexes and the end marker fit 16 bits");
_Static_assert(SIP_HDR_COUNT <= UINT8_MAX, "a header id fits sip_hdr_t.id");
_Static_assert(SIP_MSG_MAX_LIMIT_BYTES < UINT32_MAX / 2, "lengths and their sums fit 32 bits");
_Static_assert(-SIP_MSG_E_LINE_TOO_LONG == SIP_MSG_E_COUNT - 1, "SIP_MSG_E_COUNT is current");

const sip_msg_limits_t sip_msg_limits_default = {
    .msg_max_bytes = 64 * 1024,
    .line_max_bytes = 8 * 1024,
    .headers_max = SIP_MSG_HEADERS_CAP,
    .max_forwards_optional = false,
};

/* RFC 3261 §8.1.1.6 and §20.22: Max-Forwards is an integer in the range 0-255. */
#define SIP_MAX_FORWARDS_MAX 255

/* Longest IPv6 text inet_pton accepts, with room for the NUL: "ffff:...:255.255.255.255". */
#define SIP_IPV6_TEXT_MAX 45

/* ---- Character classes (RFC 3261 §25.1) --------------------------------------------- */

enum {
    CC_ALPHA = 1 << 0,
    CC_DIGIT = 1 << 1,
    CC_HEX = 1 << 2,
    CC_TOKEN = 1 << 3,          /* token's other characters: - . ! % * _ + ` ' ~ */
    CC_MARK = 1 << 4,           /* unreserved's other characters: - _ . ! ~ * ' ( ) */
    CC_USER = 1 << 5,           /* user-unreserved: & = + $ , ; ? / */
    CC_PASS = 1 << 6,           /* password's extra: & = + $ , */
    CC_PARAM = 1 << 7,          /* param-unreserved: [ ] / : & + $ */
    CC_HNV = 1 << 8,            /* hnv-unreserved: [ ] / ? : + $ */
    CC_WORD = 1 << 9,           /* word's extra beyond token: ( ) < > : \ " / [ ] ? { } */
    CC_RESERVED = 1 << 10,      /* reserved: ; / ? : @ & = + $ , and [ ] (RFC 2732) */
};

#define CC_ALNUM (CC_ALPHA | CC_DIGIT)
#define CC_RUN2(c, f) [(c)] = (f), [(c) + 1] = (f)
#define CC_RUN4(c, f) CC_RUN2((c), f), CC_RUN2((c) + 2, f)
#define CC_RUN8(c, f) CC_RUN4((c), f), CC_RUN4((c) + 4, f)
#define CC_RUN16(c, f) CC_RUN8((c), f), CC_RUN8((c) + 8, f)

static const uint16_t cc[256] = {
    CC_RUN8('0', CC_DIGIT | CC_HEX), CC_RUN2('8', CC_DIGIT | CC_HEX),
    CC_RUN4('A', CC_ALPHA | CC_HEX), CC_RUN2('E', CC_ALPHA | CC_HEX),
    CC_RUN16('G', CC_ALPHA), CC_RUN4('W', CC_ALPHA),
    CC_RUN4('a', CC_ALPHA | CC_HEX), CC_RUN2('e', CC_ALPHA | CC_HEX),
    CC_RUN16('g', CC_ALPHA), CC_RUN4('w', CC_ALPHA),
    ['!'] = CC_TOKEN | CC_MARK,
    ['"'] = CC_WORD,
    ['$'] = CC_USER | CC_PASS | CC_PARAM | CC_HNV | CC_RESERVED,
    ['%'] = CC_TOKEN,
    ['&'] = CC_USER | CC_PASS | CC_PARAM | CC_RESERVED,
    ['\''] = CC_TOKEN | CC_MARK,
    ['('] = CC_MARK | CC_WORD,
    [')'] = CC_MARK | CC_WORD,
    ['*'] = CC_TOKEN | CC_MARK,
    ['+'] = CC_TOKEN | CC_USER | CC_PASS | CC_PARAM | CC_HNV | CC_RESERVED,
    [','] = CC_USER | CC_PASS | CC_RESERVED,
    ['-'] = CC_TOKEN | CC_MARK,
    ['.'] = CC_TOKEN | CC_MARK,
    ['/'] = CC_USER | CC_PARAM | CC_HNV | CC_WORD | CC_RESERVED,
    [':'] = CC_PARAM | CC_HNV | CC_WORD | CC_RESERVED,
    [';'] = CC_USER | CC_RESERVED,
    ['<'] = CC_WORD,
    ['='] = CC_USER | CC_PASS | CC_RESERVED,
    ['>'] = CC_WORD,
    ['?'] = CC_USER | CC_HNV | CC_WORD | CC_RESERVED,
    ['@'] = CC_RESERVED,
    ['['] = CC_PARAM | CC_HNV | CC_WORD | CC_RESERVED,
    ['\\'] = CC_WORD,
    [']'] = CC_PARAM | CC_HNV | CC_WORD | CC_RESERVED,
    ['_'] = CC_TOKEN | CC_MARK,
    ['`'] = CC_TOKEN,
    ['{'] = CC_WORD,
    ['}'] = CC_WORD,
    ['~'] = CC_TOKEN | CC_MARK,
};

static inline bool cc_is(char c, unsigned classes)
{
    return (cc[(unsigned char)c] & classes) != 0;
}

static inline bool is_token(char c)
{
    return cc_is(c, CC_ALNUM | CC_TOKEN);
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Inside a value the scanner lets CR and LF through only as part of a fold, so everything
 * after it reads them as linear white space (RFC 3261 §25.1 LWS). */
static inline bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Control bytes: never allowed raw in a start line or a field value (§25.1 TEXT-UTF8char
 * excludes them), only after a backslash, as a quoted-pair. */
static inline bool is_ctl(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && u != '\t') || u == 0x7f;
}

/* A value byte the scanner reads in a run: not a control or backslash (white space is in a
 * run too; the run's end trims it). */
static inline bool is_value_plain(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 0x20 || u == '\t') && u != 0x7f && u != '\\';
}

/*
 * The first byte in [p, stop) that is not is_value_plain, or stop. Header values are most
 * of a message's bytes and almost all plain: with SSE2 (every x86-64) sixteen are checked
 * at a time (a 200 to a NOTIFY parses in about a fifth less time).
 */
static inline const char *value_plain_run(const char *p, const char *stop)
{
#ifdef __SSE2__
    const __m128i space = _mm_set1_epi8(0x20), tab = _mm_set1_epi8('\t'),
                  del = _mm_set1_epi8(0x7f), backslash = _mm_set1_epi8('\\');
    while (stop - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* unsigned x >= 0x20 (0x80 and up are UTF-8, plain) or a tab, and neither DEL nor
         * '\\' */
        __m128i plain = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(x, space), x),
                                     _mm_cmpeq_epi8(x, tab));
        __m128i other = _mm_or_si128(_mm_cmpeq_epi8(x, del), _mm_cmpeq_epi8(x, backslash));
        unsigned stops = (unsigned)_mm_movemask_epi8(_mm_andnot_si128(other, plain)) ^ 0xffffu;
        if (stops)
            return p + __builtin_ctz(stops);
        p += 16;
    }
#endif
    while (p < stop && is_value_plain(*p))
        p++;
    return p;
}

static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool eq_nocase(str_t s, const char *lit, size_t n)
{
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s.ptr[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    return true;
}

static bool eq_nocase_cstr(str_t s, const char *lit)
{
    return eq_nocase(s, lit, strlen(lit));
}

static inline str_t span(const char *from, const char *to)
{
    DEBUG_ASSERT(from <= to);
    return (str_t){ from, (size_t)(to - from) };
}

static inline const char *str_end(str_t s)
{
    return s.len ? s.ptr + s.len : s.ptr;       /* no arithmetic on a NULL empty slice */
}

static const char *skip_lws(const char *p, const char *end)
{
    while (p < end && is_lws(*p))
        p++;
    return p;
}

static str_t trim_lws(str_t s)
{
    const char *p = s.ptr, *end = str_end(s);
    p = skip_lws(p, end);
    while (end > p && is_lws(end[-1]))
        end--;
    return span(p, end);
}

static const char *skip_token(const char *p, const char *end)
{
    while (p < end && is_token(*p))
        p++;
    return p;
}

/* "%" HEXDIG HEXDIG at p (RFC 3261 §25.1 escaped). */
static inline bool is_escape(const char *p, const char *end)
{
    return end - p >= 3 && p[0] == '%' && cc_is(p[1], CC_HEX) && cc_is(p[2], CC_HEX);
}

/* Skips characters of the given classes and escapes; NULL on a '%' that is no escape. */
static const char *skip_escaped(const char *p, const char *end, unsigned classes)
{
    while (p < end) {
        if (*p == '%') {
            if (!is_escape(p, end))
                return NULL;
            p += 3;
        } else if (cc_is(*p, classes)) {
            p++;
        } else {
            break;
        }
    }
    return p;
}

/*
 * p at a '"': returns the byte after the closing quote, or NULL if it is unterminated or
 * holds a control byte outside a quoted-pair (RFC 3261 §25.1 quoted-string; qdtext includes
 * LWS, so a fold inside quotes is fine; a quoted-pair cannot escape CR or LF).
 */
static const char *skip_quoted(const char *p, const char *end)
{
    DEBUG_ASSERT(p < end && *p == '"');
    for (p++; p < end; p++) {
        char c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (p + 1 == end || p[1] == '\r' || p[1] == '\n')
                return NULL;
            p++;
        } else if (is_ctl(c) && c != '\r' && c != '\n') {
            return NULL;
        }
    }
    return NULL;
}

/* 1*DIGIT to *out, at most max; false on no digits or a larger value. */
static bool parse_uint(str_t s, uint64_t max, uint64_t *out)
{
    if (s.len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_digit(s.ptr[i]))
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* ---- Names and tables ------------------------------------------------------------------ */

static const str_t method_names[SIP_METHOD_COUNT] = {
    [SIP_METHOD_OTHER] = { "", 0 },
    [SIP_METHOD_INVITE] = STR_LIT("INVITE"),
    [SIP_METHOD_ACK] = STR_LIT("ACK"),
    [SIP_METHOD_BYE] = STR_LIT("BYE"),
    [SIP_METHOD_CANCEL] = STR_LIT("CANCEL"),
    [SIP_METHOD_OPTIONS] = STR_LIT("OPTIONS"),
    [SIP_METHOD_REGISTER] = STR_LIT("REGISTER"),
    [SIP_METHOD_SUBSCRIBE] = STR_LIT("SUBSCRIBE"),
    [SIP_METHOD_NOTIFY] = STR_LIT("NOTIFY"),
    [SIP_METHOD_PUBLISH] = STR_LIT("PUBLISH"),
    [SIP_METHOD_MESSAGE] = STR_LIT("MESSAGE"),
    [SIP_METHOD_INFO] = STR_LIT("INFO"),
    [SIP_METHOD_PRACK] = STR_LIT("PRACK"),
    [SIP_METHOD_UPDATE] = STR_LIT("UPDATE"),
    [SIP_METHOD_REFER] = STR_LIT("REFER"),
};

sip_method_t sip_method_lookup(str_t name)
{
    for (unsigned m = SIP_METHOD_OTHER + 1; m < SIP_METHOD_COUNT; m++)
        if (str_eq(name, method_names[m]))
            return (sip_method_t)m;
    return SIP_METHOD_OTHER;
}

str_t sip_method_name(sip_method_t m)
{
    ASSERT((unsigned)m < SIP_METHOD_COUNT);
    return method_names[m];
}

typedef struct {
    str_t name;
    bool list;                  /* a comma-separated list (§7.3.1) */
    bool single;                /* at most one per message (RFC 4475 §3.3.8) */
} hdr_info_t;

#define HDR(n, l, s) { STR_LIT(n), (l), (s) }

static const hdr_info_t hdr_info[SIP_HDR_COUNT] = {
    [SIP_HDR_OTHER] = { { "", 0 }, false, false },
    [SIP_HDR_VIA] = HDR("Via", true, false),
    [SIP_HDR_FROM] = HDR("From", false, true),
    [SIP_HDR_TO] = HDR("To", false, true),
    [SIP_HDR_CALL_ID] = HDR("Call-ID", false, true),
    [SIP_HDR_CSEQ] = HDR("CSeq", false, true),
    [SIP_HDR_MAX_FORWARDS] = HDR("Max-Forwards", false, true),
    [SIP_HDR_CONTACT] = HDR("Contact", true, false),
    [SIP_HDR_CONTENT_TYPE] = HDR("Content-Type", false, false),
    [SIP_HDR_CONTENT_LENGTH] = HDR("Content-Length", false, true),
    [SIP_HDR_CONTENT_ENCODING] = HDR("Content-Encoding", true, false),
    [SIP_HDR_EXPIRES] = HDR("Expires", false, false),
    [SIP_HDR_MIN_EXPIRES] = HDR("Min-Expires", false, false),
    [SIP_HDR_EVENT] = HDR("Event", false, false),                 /* RFC 6665 */
    [SIP_HDR_SUBSCRIPTION_STATE] = HDR("Subscription-State", false, false),
    [SIP_HDR_ALLOW_EVENTS] = HDR("Allow-Events", true, false),
    [SIP_HDR_SIP_ETAG] = HDR("SIP-ETag", false, false),              /* RFC 3903 */
    [SIP_HDR_SIP_IF_MATCH] = HDR("SIP-If-Match", false, false),
    [SIP_HDR_AUTHORIZATION] = HDR("Authorization", false, false),
    [SIP_HDR_PROXY_AUTHORIZATION] = HDR("Proxy-Authorization", false, false),
    [SIP_HDR_WWW_AUTHENTICATE] = HDR("WWW-Authenticate", false, false),
    [SIP_HDR_PROXY_AUTHENTICATE] = HDR("Proxy-Authenticate", false, false),
    [SIP_HDR_ROUTE] = HDR("Route", true, false),
    [SIP_HDR_RECORD_ROUTE] = HDR("Record-Route", true, false),
    [SIP_HDR_REQUIRE] = HDR("Require", true, false),
    [SIP_HDR_PROXY_REQUIRE] = HDR("Proxy-Require", true, false),
    [SIP_HDR_SUPPORTED] = HDR("Supported", true, false),
    [SIP_HDR_UNSUPPORTED] = HDR("Unsupported", true, false),
    [SIP_HDR_ACCEPT] = HDR("Accept", true, false),
    [SIP_HDR_ALLOW] = HDR("Allow", true, false),
    [SIP_HDR_USER_AGENT] = HDR("User-Agent", false, false),
    [SIP_HDR_SERVER] = HDR("Server", false, false),
    [SIP_HDR_SUBJECT] = HDR("Subject", false, false),
    [SIP_HDR_REFER_TO] = HDR("Refer-To", false, false),           /* RFC 3515 */
    [SIP_HDR_REFERRED_BY] = HDR("Referred-By", false, false),     /* RFC 3892 */
    [SIP_HDR_SESSION_EXPIRES] = HDR("Session-Expires", false, false), /* RFC 4028 */
    [SIP_HDR_TIMESTAMP] = HDR("Timestamp", false, false),
};

/* Compact forms by letter - 'a': RFC 3261 §7.3.3 (i m e l c f s k t v), RFC 6665 (o u),
 * RFC 3515 (r), RFC 3892 (b), RFC 4028 (x). */
static const uint8_t compact_ids[26] = {
    ['b' - 'a'] = SIP_HDR_REFERRED_BY,
    ['c' - 'a'] = SIP_HDR_CONTENT_TYPE,
    ['e' - 'a'] = SIP_HDR_CONTENT_ENCODING,
    ['f' - 'a'] = SIP_HDR_FROM,
    ['i' - 'a'] = SIP_HDR_CALL_ID,
    ['k' - 'a'] = SIP_HDR_SUPPORTED,
    ['l' - 'a'] = SIP_HDR_CONTENT_LENGTH,
    ['m' - 'a'] = SIP_HDR_CONTACT,
    ['o' - 'a'] = SIP_HDR_EVENT,
    ['r' - 'a'] = SIP_HDR_REFER_TO,
    ['s' - 'a'] = SIP_HDR_SUBJECT,
    ['t' - 'a'] = SIP_HDR_TO,
    ['u' - 'a'] = SIP_HDR_ALLOW_EVENTS,
    ['v' - 'a'] = SIP_HDR_VIA,
    ['x' - 'a'] = SIP_HDR_SESSION_EXPIRES,
};

/* Full names by first letter, so that a lookup compares against at most seven. */
static const uint8_t *const ids_by_letter[26] = {
    ['a' - 'a'] = (const uint8_t[]){ SIP_HDR_ACCEPT, SIP_HDR_ALLOW, SIP_HDR_ALLOW_EVENTS,
                                     SIP_HDR_AUTHORIZATION, 0 },
    ['c' - 'a'] = (const uint8_t[]){ SIP_HDR_CALL_ID, SIP_HDR_CSEQ, SIP_HDR_CONTACT,
                                     SIP_HDR_CONTENT_TYPE, SIP_HDR_CONTENT_LENGTH,
                                     SIP_HDR_CONTENT_ENCODING, 0 },
    ['e' - 'a'] = (const uint8_t[]){ SIP_HDR_EXPIRES, SIP_HDR_EVENT, 0 },
    ['f' - 'a'] = (const uint8_t[]){ SIP_HDR_FROM, 0 },
    ['m' - 'a'] = (const uint8_t[]){ SIP_HDR_MAX_FORWARDS, SIP_HDR_MIN_EXPIRES, 0 },
    ['p' - 'a'] = (const uint8_t[]){ SIP_HDR_PROXY_AUTHORIZATION, SIP_HDR_PROXY_AUTHENTICATE,
                                     SIP_HDR_PROXY_REQUIRE, 0 },
    ['r' - 'a'] = (const uint8_t[]){ SIP_HDR_ROUTE, SIP_HDR_RECORD_ROUTE, SIP_HDR_REQUIRE,
                                     SIP_HDR_REFER_TO, SIP_HDR_REFERRED_BY, 0 },
    ['s' - 'a'] = (const uint8_t[]){ SIP_HDR_SUBSCRIPTION_STATE, SIP_HDR_SIP_ETAG,
                                     SIP_HDR_SIP_IF_MATCH, SIP_HDR_SUPPORTED, SIP_HDR_SERVER,
                                     SIP_HDR_SUBJECT, SIP_HDR_SESSION_EXPIRES, 0 },
    ['t' - 'a'] = (const uint8_t[]){ SIP_HDR_TO, SIP_HDR_TIMESTAMP, 0 },
    ['u' - 'a'] = (const uint8_t[]){ SIP_HDR_UNSUPPORTED, SIP_HDR_USER_AGENT, 0 },
    ['v' - 'a'] = (const uint8_t[]){ SIP_HDR_VIA, 0 },
    ['w' - 'a'] = (const uint8_t[]){ SIP_HDR_WWW_AUTHENTICATE, 0 },
};

/*
 * name against a table name (letters and '-' only), case-insensitively, eight bytes at a
 * time: bit 0x20 tells a letter's cases apart, so two bytes match when they differ in that
 * bit alone and the table's byte is a letter (bit 0x40; '-' has not).
 */
static inline bool hdr_byte_ok(uint64_t a, uint64_t b)
{
    const uint64_t case_bits = 0x2020202020202020u, letter_bits = 0x4040404040404040u;
    uint64_t x = a ^ b;
    return (x & ~case_bits) == 0 && (x & ~((b & letter_bits) >> 1)) == 0;
}

static bool hdr_name_eq(str_t name, str_t full)
{
    if (name.len != full.len)
        return false;
    size_t i = 0;
    uint64_t a, b;
    for (; i + 8 <= name.len; i += 8) {
        memcpy(&a, name.ptr + i, 8);
        memcpy(&b, full.ptr + i, 8);
        if (!hdr_byte_ok(a, b))
            return false;
    }
    for (; i < name.len; i++)
        if (!hdr_byte_ok((unsigned char)name.ptr[i], (unsigned char)full.ptr[i]))
            return false;
    return true;
}

sip_hdr_id_t sip_hdr_lookup(str_t name)
{
    if (name.len == 0)
        return SIP_HDR_OTHER;
    unsigned char first = ascii_lower((unsigned char)name.ptr[0]);
    if (first < 'a' || first > 'z')
        return SIP_HDR_OTHER;
    if (name.len == 1)
        return (sip_hdr_id_t)compact_ids[first - 'a'];
    const uint8_t *ids = ids_by_letter[first - 'a'];
    for (; ids && *ids; ids++) {
        if (hdr_name_eq(name, hdr_info[*ids].name))
            return (sip_hdr_id_t)*ids;
    }
    return SIP_HDR_OTHER;
}

str_t sip_hdr_name(sip_hdr_id_t id)
{
    ASSERT((unsigned)id < SIP_HDR_COUNT);
    return hdr_info[id].name;
}

bool sip_hdr_is_list(sip_hdr_id_t id)
{
    ASSERT((unsigned)id < SIP_HDR_COUNT);
    return hdr_info[id].list;
}

/* ---- Errors and status phrases -------------------------------------------------------- */

static const struct {
    uint16_t status;
    const char *reason;
} err_info[SIP_MSG_E_COUNT] = {
    [0] = { 500, "Server Internal Error" },
    [-SIP_MSG_E_START_LINE] = { 400, "Malformed Start Line" },
    [-SIP_MSG_E_HEADER_SYNTAX] = { 400, "Malformed Header Line" },
    [-SIP_MSG_E_BAD_HEADER] = { 400, "Malformed Header Value" },
    [-SIP_MSG_E_MISSING_HEADER] = { 400, "Missing Mandatory Header" },
    [-SIP_MSG_E_DUPLICATE_HEADER] = { 400, "Duplicate Header" },
    [-SIP_MSG_E_CSEQ_MISMATCH] = { 400, "CSeq Method Mismatch" },
    [-SIP_MSG_E_BAD_URI] = { 400, "Malformed Request-URI" },
    [-SIP_MSG_E_CONTENT_LENGTH] = { 400, "Malformed Content-Length" },
    [-SIP_MSG_E_NO_CONTENT_LENGTH] = { 400, "Missing Content-Length" },
    [-SIP_MSG_E_TRUNCATED] = { 400, "Truncated Message" },
    [-SIP_MSG_E_VERSION] = { 505, "Version Not Supported" },
    [-SIP_MSG_E_URI_SCHEME] = { 416, "Unsupported URI Scheme" },
    [-SIP_MSG_E_BODY_TOO_LARGE] = { 413, "Request Entity Too Large" },
    [-SIP_MSG_E_TOO_LARGE] = { 513, "Message Too Large" },
    [-SIP_MSG_E_TOO_MANY_HEADERS] = { 513, "Too Many Headers" },
    [-SIP_MSG_E_LINE_TOO_LONG] = { 513, "Header Too Long" },
};

unsigned sip_msg_err_status(sip_msg_err_t err)
{
    if (err >= 0 || -(int)err >= SIP_MSG_E_COUNT)
        return err_info[0].status;
    return err_info[-err].status;
}

const char *sip_msg_err_reason(sip_msg_err_t err)
{
    if (err >= 0 || -(int)err >= SIP_MSG_E_COUNT)
        return err_info[0].reason;
    return err_info[-err].reason;
}

const char *sip_status_reason(unsigned status)
{
    switch (status) {
    case 100: return "Trying";
    case 180: return "Ringing";
    case 181: return "Call Is Being Forwarded";
    case 182: return "Queued";
    case 183: return "Session Progress";
    case 199: return "Early Dialog Terminated";             /* RFC 6228 */
    case 200: return "OK";
    case 202: return "Accepted";                            /* RFC 6665 (deprecated) */
    case 204: return "No Notification";                     /* RFC 5839 */
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Moved Temporarily";
    case 305: return "Use Proxy";
    case 380: return "Alternative Service";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 412: return "Conditional Request Failed";          /* RFC 3903 */
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Unsupported URI Scheme";
    case 417: return "Unknown Resource-Priority";           /* RFC 4412 */
    case 420: return "Bad Extension";
    case 421: return "Extension Required";
    case 422: return "Session Interval Too Small";          /* RFC 4028 */
    case 423: return "Interval Too Brief";
    case 424: return "Bad Location Information";            /* RFC 6442 */
    case 428: return "Use Identity Header";                 /* RFC 8224 */
    case 429: return "Provide Referrer Identity";           /* RFC 3892 */
    case 430: return "Flow Failed";                         /* RFC 5626 */
    case 433: return "Anonymity Disallowed";                /* RFC 5079 */
    case 436: return "Bad Identity Info";                   /* RFC 8224 */
    case 437: return "Unsupported Credential";
    case 438: return "Invalid Identity Header";
    case 439: return "First Hop Lacks Outbound Support";    /* RFC 5626 */
    case 440: return "Max-Breadth Exceeded";                /* RFC 5393 */
    case 469: return "Bad Info Package";                    /* RFC 6086 */
    case 470: return "Consent Needed";                      /* RFC 5360 */
    case 480: return "Temporarily Unavailable";
    case 481: return "Call/Transaction Does Not Exist";
    case 482: return "Loop Detected";
    case 483: return "Too Many Hops";
    case 484: return "Address Incomplete";
    case 485: return "Ambiguous";
    case 486: return "Busy Here";
    case 487: return "Request Terminated";
    case 488: return "Not Acceptable Here";
    case 489: return "Bad Event";                           /* RFC 6665 */
    case 491: return "Request Pending";
    case 493: return "Undecipherable";
    case 494: return "Security Agreement Required";         /* RFC 3329 */
    case 500: return "Server Internal Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Server Time-out";
    case 505: return "Version Not Supported";
    case 513: return "Message Too Large";
    case 555: return "Push Notification Service Not Supported"; /* RFC 8599 */
    case 580: return "Precondition Failure";                /* RFC 3312 */
    case 600: return "Busy Everywhere";
    case 603: return "Decline";
    case 604: return "Does Not Exist Anywhere";
    case 606: return "Not Acceptable";
    case 607: return "Unwanted";                            /* RFC 8197 */
    case 608: return "Rejected";                            /* RFC 8688 */
    default: break;
    }
    /* RFC 3261 §21: an unknown code is understood by its class. */
    static const char *const classes[] = { "Provisional", "Successful", "Redirection",
                                           "Request Failure", "Server Failure",
                                           "Global Failure" };
    if (status >= 100 && status <= 699)
        return classes[status / 100 - 1];
    return "Unknown";
}

/* ---- Parameters and lists -------------------------------------------------------------- */

/* gen-value (RFC 3261 §25.1): token / host / quoted-string. A host's IPv6 reference adds
 * ':' '[' ']' to the token characters. Returns the end of the value, or NULL. */
static const char *skip_gen_value(const char *p, const char *end)
{
    if (p < end && *p == '"')
        return skip_quoted(p, end);
    const char *start = p;
    while (p < end && (is_token(*p) || *p == ':' || *p == '[' || *p == ']'))
        p++;
    return p == start ? NULL : p;
}

int sip_param_next(str_t *rest, str_t *name, str_t *value)
{
    const char *end = str_end(*rest);
    const char *p = skip_lws(rest->ptr, end);
    if (p == end) {
        *rest = span(p, p);
        return 0;
    }
    if (*p != ';')
        return -EBADMSG;
    p = skip_lws(p + 1, end);
    const char *n = p;
    p = skip_token(p, end);
    if (p == n)
        return -EBADMSG;
    *name = span(n, p);
    *value = span(p, p);
    const char *q = skip_lws(p, end);
    if (q < end && *q == '=') {
        q = skip_lws(q + 1, end);
        const char *v_end = skip_gen_value(q, end);
        if (!v_end)
            return -EBADMSG;
        *value = span(q, v_end);
        p = v_end;
    }
    *rest = span(p, end);
    return 1;
}

int sip_param_get(str_t params, const char *name, str_t *value)
{
    size_t n = strlen(name);
    str_t pn, pv;
    int r;
    while ((r = sip_param_next(&params, &pn, &pv)) > 0) {
        if (eq_nocase(pn, name, n)) {
            *value = pv;
            return 1;
        }
    }
    return r;
}

/* The first byte in [p, end) that is one of the four given, or end: list elements are
 * mostly bytes that mean nothing to the list, sixteen of them checked at a time. */
static inline const char *find_any4(const char *p, const char *end, char a, char b, char c,
                                    char d)
{
#ifdef __SSE2__
    const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b), vc = _mm_set1_epi8(c),
                  vd = _mm_set1_epi8(d);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
                                   _mm_or_si128(_mm_cmpeq_epi8(x, vc), _mm_cmpeq_epi8(x, vd)));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && *p != a && *p != b && *p != c && *p != d)
        p++;
    return p;
}

int sip_list_next(str_t *rest, str_t *item)
{
    const char *end = str_end(*rest);
    const char *p = skip_lws(rest->ptr, end);
    if (p == end) {
        *rest = span(p, p);
        return 0;
    }
    const char *start = p;
    bool angle = false;
    while ((p = angle ? find_any4(p, end, '<', '>', '<', '>')
                      : find_any4(p, end, '"', '<', '>', ',')) < end) {
        char c = *p;
        if (angle) {
            /* Inside <> only the closing bracket matters: a URI holds no quotes, and its
             * commas belong to it (user-unreserved). */
            if (c == '<')
                return -EBADMSG;
            angle = c != '>';
            p++;
        } else if (c == '"') {
            p = skip_quoted(p, end);
            if (!p)
                return -EBADMSG;
        } else if (c == '<') {
            angle = true;
            p++;
        } else if (c == '>') {
            return -EBADMSG;
        } else {
            break;                  /* ',' */
        }
    }
    if (angle)
        return -EBADMSG;
    *item = trim_lws(span(start, p));
    if (item->len == 0)
        return -EBADMSG;
    if (p < end) {
        /* A comma must be followed by another element. */
        p = skip_lws(p + 1, end);
        if (p == end || *p == ',')
            return -EBADMSG;
    }
    *rest = span(p, end);
    return 1;
}

/* ---- Hosts and URIs ----------------------------------------------------------------- */

/* What inet_pton(AF_INET) takes: four decimal octets up to 255, none with a leading zero. */
static bool ipv4_text_ok(str_t s)
{
    const char *p = s.ptr, *end = str_end(s);
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (p == end || *p != '.')
                return false;
            p++;
        }
        const char *d = p;
        unsigned v = 0;
        while (p < end && is_digit(*p) && p - d < 3)
            v = v * 10 + (unsigned)(*p++ - '0');
        if (p == d || v > 255 || (p - d > 1 && *d == '0'))
            return false;
    }
    return p == end;
}

static bool ip_text_ok(int af, str_t s)
{
    char text[SIP_IPV6_TEXT_MAX + 1];
    unsigned char addr[16];
    if (s.len == 0 || s.len > SIP_IPV6_TEXT_MAX)
        return false;
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    return inet_pton(af, text, addr) == 1;
}

/* hostname (RFC 3261 §25.1): dot-separated labels of alphanumerics and inner '-', the last
 * one starting with a letter; one trailing '.' allowed. */
static bool hostname_ok(str_t s)
{
    const char *p = s.ptr, *end = str_end(s);
    if (s.len > 1 && end[-1] == '.')
        end--;
    const char *label = p, *last_label = p;
    for (;; p++) {
        if (p == end || *p == '.') {
            if (p == label || !cc_is(label[0], CC_ALNUM) || !cc_is(p[-1], CC_ALNUM))
                return false;
            last_label = label;
            if (p == end)
                break;
            label = p + 1;
        } else if (!cc_is(*p, CC_ALNUM) && *p != '-') {
            return false;
        }
    }
    return cc_is(*last_label, CC_ALPHA);
}

/* host = hostname / IPv4address / IPv6reference, at *pp; advances past it. */
static int parse_host(const char **pp, const char *end, str_t *host, sip_host_type_t *type)
{
    const char *p = *pp;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return -EBADMSG;
        *host = span(p + 1, close);
        if (!ip_text_ok(AF_INET6, *host))
            return -EBADMSG;
        *type = SIP_HOST_IPV6;
        *pp = close + 1;
        return 0;
    }
    const char *start = p;
    bool digits_dots = true;
    while (p < end && (cc_is(*p, CC_ALNUM) || *p == '-' || *p == '.')) {
        digits_dots &= is_digit(*p) || *p == '.';
        p++;
    }
    *host = span(start, p);
    if (host->len == 0)
        return -EBADMSG;
    /* Digits and dots are an IPv4 address or nothing: the last label of a name starts
     * with a letter. */
    if (digits_dots) {
        if (!ipv4_text_ok(*host))
            return -EBADMSG;
        *type = SIP_HOST_IPV4;
    } else {
        if (!hostname_ok(*host))
            return -EBADMSG;
        *type = SIP_HOST_NAME;
    }
    *pp = p;
    return 0;
}

/* ":" port after a host, if present: 1*DIGIT up to 65535. */
static int parse_port(const char **pp, const char *end, bool lws_ok, bool *has, uint16_t *port)
{
    const char *p = *pp;
    if (lws_ok)
        p = skip_lws(p, end);
    if (p == end || *p != ':')
        return 0;
    p++;
    if (lws_ok)
        p = skip_lws(p, end);
    const char *d = p;
    while (p < end && is_digit(*p))
        p++;
    uint64_t v;
    if (!parse_uint(span(d, p), UINT16_MAX, &v))
        return -EBADMSG;
    *has = true;
    *port = (uint16_t)v;
    *pp = p;
    return 0;
}

/* uri-parameters (RFC 3261 §19.1.1): ";" pname ["=" pvalue], both 1*paramchar; the ones
 * the URI struct names are picked out on the way. */
static int parse_uri_params(const char **pp, const char *end, sip_uri_t *u)
{
    const char *p = *pp;
    const char *start = p;
    while (p < end && *p == ';') {
        const char *n = p + 1;
        p = skip_escaped(n, end, CC_ALNUM | CC_MARK | CC_PARAM);
        if (!p || p == n)
            return -EBADMSG;
        str_t name = span(n, p);
        str_t value = span(p, p);
        if (p < end && *p == '=') {
            const char *v = p + 1;
            p = skip_escaped(v, end, CC_ALNUM | CC_MARK | CC_PARAM);
            if (!p || p == v)
                return -EBADMSG;
            value = span(v, p);
        }
        if (eq_nocase_cstr(name, "transport"))
            u->transport = value;
        else if (eq_nocase_cstr(name, "user"))
            u->user_param = value;
        else if (eq_nocase_cstr(name, "maddr"))
            u->maddr = value;
        else if (eq_nocase_cstr(name, "lr"))
            u->lr = true;
    }
    u->params = span(start, p);
    *pp = p;
    return 0;
}

/* headers (§19.1.1): "?" hname "=" hvalue *( "&" hname "=" hvalue ). */
static int parse_uri_headers(const char **pp, const char *end, sip_uri_t *u)
{
    const char *p = *pp;
    if (p == end || *p != '?')
        return 0;
    const char *start = ++p;
    for (;;) {
        const char *n = p;
        p = skip_escaped(p, end, CC_ALNUM | CC_MARK | CC_HNV);
        if (!p || p == n || p == end || *p != '=')
            return -EBADMSG;
        p = skip_escaped(p + 1, end, CC_ALNUM | CC_MARK | CC_HNV);
        if (!p)
            return -EBADMSG;
        if (p == end || *p != '&')
            break;
        p++;
    }
    u->headers = span(start, p);
    *pp = p;
    return 0;
}

static int parse_sip_uri(const char *p, const char *end, sip_uri_t *u)
{
    /* Neither hostport, parameters nor headers may hold an unescaped '@', so the first
     * one ends the userinfo (which may itself hold ';' '?' '/' ',', RFC 4475 §3.1.1.9). */
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        const char *q = skip_escaped(p, user_end, CC_ALNUM | CC_MARK | CC_USER);
        if (q != user_end || q == p)
            return -EBADMSG;
        u->user = span(p, user_end);
        if (colon) {
            q = skip_escaped(colon + 1, at, CC_ALNUM | CC_MARK | CC_PASS);
            if (q != at)
                return -EBADMSG;
            u->password = span(colon + 1, at);
        }
        p = at + 1;
    }
    if (parse_host(&p, end, &u->host, &u->host_type) < 0)
        return -EBADMSG;
    if (parse_port(&p, end, false, &u->has_port, &u->port) < 0)
        return -EBADMSG;
    if (parse_uri_params(&p, end, u) < 0 || parse_uri_headers(&p, end, u) < 0)
        return -EBADMSG;
    return p == end ? 0 : -EBADMSG;
}

/* RFC 3966 §3: "+" 1*phonedigit (global) or 1*phonedigit-hex (local), visual separators
 * - . ( ) anywhere, at least one real digit. */
static int parse_tel_uri(const char *p, const char *end, sip_uri_t *u)
{
    const char *start = p;
    bool global = p < end && *p == '+';
    bool digit = false;
    if (global)
        p++;
    for (; p < end && *p != ';'; p++) {
        char c = *p;
        if (c == '-' || c == '.' || c == '(' || c == ')')
            continue;
        if (is_digit(c) || (!global && (cc_is(c, CC_HEX) || c == '*' || c == '#')))
            digit = true;
        else
            return -EBADMSG;
    }
    if (!digit)
        return -EBADMSG;
    u->user = span(start, p);
    u->host_type = SIP_HOST_NONE;
    if (parse_uri_params(&p, end, u) < 0)
        return -EBADMSG;
    return p == end ? 0 : -EBADMSG;
}

int sip_uri_parse(str_t s, sip_uri_t *u)
{
    memset(u, 0, sizeof(*u));
    const char *p = s.ptr, *end = str_end(s);
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    if (p == end || !cc_is(*p, CC_ALPHA))
        return -EBADMSG;
    while (p < end && (cc_is(*p, CC_ALNUM) || *p == '+' || *p == '-' || *p == '.'))
        p++;
    if (p == end || *p != ':')
        return -EBADMSG;
    u->scheme_name = span(s.ptr, p);
    p++;
    u->opaque = span(p, end);
    if (eq_nocase_cstr(u->scheme_name, "sip"))
        u->scheme = SIP_SCHEME_SIP;
    else if (eq_nocase_cstr(u->scheme_name, "sips"))
        u->scheme = SIP_SCHEME_SIPS;
    else if (eq_nocase_cstr(u->scheme_name, "tel"))
        u->scheme = SIP_SCHEME_TEL;
    switch (u->scheme) {
    case SIP_SCHEME_SIP:
    case SIP_SCHEME_SIPS:
        return parse_sip_uri(p, end, u);
    case SIP_SCHEME_TEL:
        return parse_tel_uri(p, end, u);
    case SIP_SCHEME_OTHER:
        break;
    }
    /* absoluteURI (§25.1): one or more uric, opaque beyond that. */
    const char *q = skip_escaped(p, end, CC_ALNUM | CC_MARK | CC_RESERVED);
    return (q == end && q != p) ? 0 : -EBADMSG;
}

/* ---- name-addr, Via, CSeq, Event, Subscription-State ---------------------------------- */

/* Header parameters after an address: every one well formed; tag picked out (tag-param =
 * "tag" EQUAL token, so a valueless or quoted tag is malformed). */
static int parse_addr_params(str_t rest, sip_addr_t *a)
{
    str_t t = trim_lws(rest);
    a->params = t;
    str_t n, v;
    int r;
    while ((r = sip_param_next(&t, &n, &v)) > 0) {
        if (eq_nocase_cstr(n, "tag")) {
            if (v.len == 0 || v.ptr[0] == '"')
                return -EBADMSG;
            a->tag = v;
        }
    }
    return r;
}

int sip_addr_parse(str_t s, sip_addr_t *a)
{
    memset(a, 0, sizeof(*a));
    const char *end = str_end(s);
    const char *p = skip_lws(s.ptr, end);
    if (p == end)
        return -EBADMSG;
    /* STAR = SWS "*" SWS, alone (RFC 3261 §20.10); "*" followed by more is a display-name
     * token. */
    if (*p == '*' && skip_lws(p + 1, end) == end) {
        a->star = true;
        a->uri = span(p, p + 1);
        return 0;
    }
    const char *start = p;
    if (*p == '"') {
        p = skip_quoted(p, end);
        if (!p)
            return -EBADMSG;
        a->display = span(start, p);
        p = skip_lws(p, end);
        if (p == end || *p != '<')
            return -EBADMSG;
    } else {
        /* display-name = *(token LWS): name-addr if the tokens end at '<' (no LWS needed
         * before it, RFC 4475 §3.1.1.6), else this is an addr-spec. */
        while (p < end && (is_token(*p) || is_lws(*p)))
            p++;
        if (p < end && *p == '<')
            a->display = trim_lws(span(start, p));
        else
            p = start;
    }
    const char *uri_start;
    if (p < end && *p == '<') {
        /* LAQUOT addr-spec RAQUOT: no white space inside (RFC 4475 §3.1.2.14). */
        uri_start = ++p;
        while (p < end && *p != '>' && !is_lws(*p) && *p != '<')
            p++;
        if (p == end || *p != '>')
            return -EBADMSG;
        a->uri = span(uri_start, p);
        a->angle = true;
        p++;
    } else {
        /* Without <> a ';' starts the header parameters, and a URI holding ',' ';' or '?'
         * must have been enclosed (RFC 3261 §20.10; RFC 4475 §3.1.2.13). */
        uri_start = p;
        while (p < end && !is_lws(*p) && *p != ';')
            p++;
        a->uri = span(uri_start, p);
        if (memchr(a->uri.ptr, '?', a->uri.len) || memchr(a->uri.ptr, ',', a->uri.len))
            return -EBADMSG;
    }
    sip_uri_t u;
    if (sip_uri_parse(a->uri, &u) < 0)
        return -EBADMSG;
    return parse_addr_params(span(p, end), a) < 0 ? -EBADMSG : 0;
}

static sip_transport_t transport_lookup(str_t t)
{
    static const char *const names[] = {
        [SIP_TRANSPORT_UDP] = "UDP", [SIP_TRANSPORT_TCP] = "TCP", [SIP_TRANSPORT_TLS] = "TLS",
        [SIP_TRANSPORT_SCTP] = "SCTP", [SIP_TRANSPORT_WS] = "WS", [SIP_TRANSPORT_WSS] = "WSS",
    };
    for (unsigned i = SIP_TRANSPORT_UDP; i < ARRAY_LEN(names); i++)
        if (eq_nocase_cstr(t, names[i]))
            return (sip_transport_t)i;
    return SIP_TRANSPORT_OTHER;
}

/* token SWS "/" SWS, for sent-protocol; NULL on a mismatch. */
static const char *via_proto_part(const char *p, const char *end, str_t *out, bool slash)
{
    p = skip_lws(p, end);
    const char *t = p;
    p = skip_token(p, end);
    if (p == t)
        return NULL;
    *out = span(t, p);
    if (!slash)
        return p;
    p = skip_lws(p, end);
    return (p < end && *p == '/') ? p + 1 : NULL;
}

int sip_via_parse(str_t s, sip_via_t *v)
{
    memset(v, 0, sizeof(*v));
    const char *p = s.ptr, *end = str_end(s);
    /* sent-protocol = protocol-name SLASH protocol-version SLASH transport (§20.42) */
    if (!(p = via_proto_part(p, end, &v->protocol, true)) ||
        !(p = via_proto_part(p, end, &v->version, true)) ||
        !(p = via_proto_part(p, end, &v->transport, false)))
        return -EBADMSG;
    v->transport_id = transport_lookup(v->transport);
    if (p == end || !is_lws(*p))
        return -EBADMSG;
    p = skip_lws(p, end);
    if (parse_host(&p, end, &v->host, &v->host_type) < 0)
        return -EBADMSG;
    if (parse_port(&p, end, true, &v->has_port, &v->port) < 0)
        return -EBADMSG;
    str_t rest = trim_lws(span(p, end)), n, val;
    v->params = rest;
    int r;
    while ((r = sip_param_next(&rest, &n, &val)) > 0) {
        str_t *slot = NULL;
        if (eq_nocase_cstr(n, "branch"))
            slot = &v->branch;
        else if (eq_nocase_cstr(n, "received"))
            slot = &v->received;
        else if (eq_nocase_cstr(n, "maddr"))
            slot = &v->maddr;
        if (slot) {
            /* via-branch, via-received, via-maddr: each "=" and a value (§25.1). */
            if (val.len == 0)
                return -EBADMSG;
            *slot = val;
        } else if (eq_nocase_cstr(n, "rport")) {
            /* RFC 3581 §3: valueless in requests, a port in responses. */
            uint64_t port;
            if (val.len > 0 && !parse_uint(val, UINT16_MAX, &port))
                return -EBADMSG;
            v->has_rport = true;
            v->rport = val;
        }
    }
    return r < 0 ? -EBADMSG : 0;
}

int sip_cseq_parse(str_t s, sip_cseq_t *c)
{
    memset(c, 0, sizeof(*c));
    const char *end = str_end(s);
    const char *p = skip_lws(s.ptr, end), *d = p;
    while (p < end && is_digit(*p))
        p++;
    /* CSeq = 1*DIGIT LWS Method (§20.16); 32 bits (§8.1.1.5, RFC 4475 §3.1.2.4). */
    uint64_t seq;
    if (!parse_uint(span(d, p), UINT32_MAX, &seq))
        return -EBADMSG;
    if (p == end || !is_lws(*p))
        return -EBADMSG;
    p = skip_lws(p, end);
    const char *m = p;
    p = skip_token(p, end);
    if (p == m || skip_lws(p, end) != end)
        return -EBADMSG;
    c->seq = (uint32_t)seq;
    c->method_name = span(m, p);
    c->method = sip_method_lookup(c->method_name);
    return 0;
}

int sip_event_parse(str_t s, sip_event_t *e)
{
    memset(e, 0, sizeof(*e));
    const char *end = str_end(s);
    const char *p = skip_lws(s.ptr, end), *t = p;
    p = skip_token(p, end);
    e->type = span(t, p);
    /* event-type = event-package *( "." event-template ), each a token-nodot (RFC 6665
     * §8.4): no empty part. */
    if (e->type.len == 0 || t[0] == '.' || p[-1] == '.')
        return -EBADMSG;
    for (const char *q = t; q + 1 < p; q++)
        if (q[0] == '.' && q[1] == '.')
            return -EBADMSG;
    const char *dot = memchr(t, '.', e->type.len);
    e->package = span(t, dot ? dot : p);
    str_t rest = trim_lws(span(p, end)), n, v;
    e->params = rest;
    int r;
    while ((r = sip_param_next(&rest, &n, &v)) > 0)
        if (eq_nocase_cstr(n, "id"))
            e->id = v;
    return r < 0 ? -EBADMSG : 0;
}

int sip_delta_seconds_parse(str_t s, uint32_t *out_s)
{
    s = trim_lws(s);
    if (s.len == 0)
        return -EBADMSG;
    uint64_t v = 0;
    bool big = false;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_digit(s.ptr[i]))
            return -EBADMSG;
        if (!big) {
            v = v * 10 + (uint64_t)(s.ptr[i] - '0');
            big = v > UINT32_MAX;
        }
    }
    if (big)
        return -ERANGE;
    *out_s = (uint32_t)v;
    return 0;
}

int sip_subscription_state_parse(str_t s, sip_subscription_state_t *ss)
{
    memset(ss, 0, sizeof(*ss));
    const char *end = str_end(s);
    const char *p = skip_lws(s.ptr, end), *t = p;
    p = skip_token(p, end);
    if (p == t)
        return -EBADMSG;
    ss->state_name = span(t, p);
    if (eq_nocase_cstr(ss->state_name, "active"))
        ss->state = SIP_SUBSTATE_ACTIVE;
    else if (eq_nocase_cstr(ss->state_name, "pending"))
        ss->state = SIP_SUBSTATE_PENDING;
    else if (eq_nocase_cstr(ss->state_name, "terminated"))
        ss->state = SIP_SUBSTATE_TERMINATED;
    str_t rest = trim_lws(span(p, end)), n, v;
    ss->params = rest;
    int r;
    while ((r = sip_param_next(&rest, &n, &v)) > 0) {
        if (eq_nocase_cstr(n, "reason")) {
            ss->reason = v;
        } else if (eq_nocase_cstr(n, "expires")) {
            if (sip_delta_seconds_parse(v, &ss->expires_s) < 0)
                return -EBADMSG;
            ss->has_expires = true;
        } else if (eq_nocase_cstr(n, "retry-after")) {
            if (sip_delta_seconds_parse(v, &ss->retry_after_s) < 0)
                return -EBADMSG;
            ss->has_retry_after = true;
        }
    }
    return r < 0 ? -EBADMSG : 0;
}

/* callid = word [ "@" word ] (§25.1). */
static bool call_id_ok(str_t s)
{
    const char *p = s.ptr, *end = str_end(s);
    const char *at = memchr(p, '@', s.len);
    for (int part = 0; part < (at ? 2 : 1); part++) {
        const char *stop = (part == 0 && at) ? at : end;
        const char *w = p;
        while (p < stop && cc_is(*p, CC_ALNUM | CC_TOKEN | CC_WORD))
            p++;
        if (p == w || p != stop)
            return false;
        p = stop + 1;
    }
    return true;
}

/* ---- Copying helpers ------------------------------------------------------------------ */

static inline bool put(char *out, size_t cap, size_t *n, char c)
{
    if (*n == cap)
        return false;
    out[(*n)++] = c;
    return true;
}

/* Copies [p, end) to out, each run of LWS that holds a line break as one SP. */
static ssize_t unfold_into(const char *p, const char *end, char *out, size_t cap, size_t *n)
{
    while (p < end) {
        if (is_lws(*p)) {
            const char *run = p;
            bool brk = false;
            while (p < end && is_lws(*p)) {
                brk |= *p == '\r' || *p == '\n';
                p++;
            }
            if (brk) {
                if (!put(out, cap, n, ' '))
                    return -ENOSPC;
            } else {
                for (; run < p; run++)
                    if (!put(out, cap, n, *run))
                        return -ENOSPC;
            }
            continue;
        }
        if (!put(out, cap, n, *p++))
            return -ENOSPC;
    }
    return (ssize_t)*n;
}

ssize_t sip_unfold(str_t raw, char *out, size_t cap)
{
    size_t n = 0;
    return unfold_into(raw.ptr, str_end(raw), out, cap, &n);
}

ssize_t sip_unquote(str_t raw, char *out, size_t cap)
{
    const char *end = str_end(raw);
    if (raw.len < 2 || raw.ptr[0] != '"' || skip_quoted(raw.ptr, end) != end)
        return -EBADMSG;
    size_t n = 0;
    const char *p = raw.ptr + 1, *stop = end - 1;
    while (p < stop) {
        const char *run = p;
        while (p < stop && *p != '\\')
            p++;
        if (unfold_into(run, p, out, cap, &n) < 0)
            return -ENOSPC;
        if (p < stop) {
            /* quoted-pair: the backslash goes, the next byte stays. */
            if (!put(out, cap, &n, p[1]))
                return -ENOSPC;
            p += 2;
        }
    }
    return (ssize_t)n;
}

static inline int hex_val(char c)
{
    if (is_digit(c))
        return c - '0';
    return ascii_lower((unsigned char)c) - 'a' + 10;
}

ssize_t sip_unescape(str_t s, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = s.ptr, *end = str_end(s);
    while (p < end) {
        char c = *p;
        if (c == '%') {
            if (!is_escape(p, end))
                return -EBADMSG;
            c = (char)(hex_val(p[1]) << 4 | hex_val(p[2]));
            p += 3;
        } else {
            p++;
        }
        if (!put(out, cap, &n, c))
            return -ENOSPC;
    }
    return (ssize_t)n;
}

/* ---- The line scanner ------------------------------------------------------------------ */

/* Scanner results besides errors (negative sip_msg_err_t). */
enum { SCAN_END = 0, SCAN_LINE = 1, SCAN_MORE = 2 };

/*
 * Where the scanner is: reading the start line, between fields, inside a field's name, before
 * its colon, in its value, or past the empty line.
 *
 *   S_START --line end--> S_IDLE --token--> S_NAME --WSP/':'--> S_COLON --':'--> S_VALUE
 *                           |  ^                                                   |
 *                           |  +----------- line end not followed by WSP ----------+
 *                           +--empty line--> S_DONE
 */
enum { S_START = 0, S_IDLE, S_NAME, S_COLON, S_VALUE, S_DONE };

/*
 * Everything is an offset from base, so that sip_msg_frame() can keep the state between
 * calls while the caller's buffer moves. A SCAN_MORE leaves pos at the first byte whose
 * meaning is not settled yet (at most a line end), and every check depends only on a byte,
 * its position and this state, so resuming there reads exactly as one pass would.
 */
typedef struct {
    const char *base;           /* the start line's first byte */
    const char *end;
    const sip_msg_limits_t *lim;
    uint32_t pos;               /* next byte to read */
    uint32_t fields;            /* complete header fields */
    uint32_t field_start;       /* the field under way */
    uint32_t name_end;
    uint32_t v_beg, v_end;      /* first and past-last non-WSP value bytes; 0: none yet (0 is
                                   the start line's, never a value's) */
    uint8_t state;
    bool escaped;               /* the last value byte was a backslash that escapes */
} scan_t;

static inline uint32_t scan_off(const scan_t *s, const char *p)
{
    DEBUG_ASSERT(p >= s->base && p <= s->end);
    return (uint32_t)(p - s->base);
}

/* True when the byte at q would take the header section past msg_max_bytes. */
static inline bool past_msg_max(const scan_t *s, const char *q)
{
    return (size_t)(q - s->base) >= s->lim->msg_max_bytes;
}

/*
 * A line end at p (CR LF, or a lone LF): its length, 0 when the buffer stops between CR and
 * LF, or -1 for a CR without its LF.
 */
static int line_end_len(const scan_t *s, const char *p)
{
    if (*p == '\n')
        return 1;
    DEBUG_ASSERT(*p == '\r');
    if (p + 1 == s->end)
        return 0;
    return p[1] == '\n' ? 2 : -1;
}

static int scan_start_line(scan_t *s, str_t *line)
{
    ASSERT(s->state == S_START);
    for (const char *p = s->base + s->pos;; p++) {
        if (p == s->end) {
            s->pos = scan_off(s, p);
            return SCAN_MORE;
        }
        if (past_msg_max(s, p))
            return SIP_MSG_E_TOO_LARGE;
        char c = *p;
        if (c == '\r' || c == '\n') {
            int eol = line_end_len(s, p);
            if (eol == 0) {
                s->pos = scan_off(s, p);
                return SCAN_MORE;
            }
            if (eol < 0 || p == s->base)
                return SIP_MSG_E_START_LINE;
            if (eol == 2 && past_msg_max(s, p + 1))
                return SIP_MSG_E_TOO_LARGE;
            *line = span(s->base, p);
            s->pos = scan_off(s, p + eol);
            s->state = S_IDLE;
            return SCAN_LINE;
        }
        if ((size_t)(p - s->base) >= s->lim->line_max_bytes)
            return SIP_MSG_E_LINE_TOO_LONG;
        if (is_ctl(c))
            return SIP_MSG_E_START_LINE;
        /* The checks above, for a run of bytes at once: only a control byte (a line
         * end among them) or the bounds stop it; a backslash means nothing here. */
        size_t at = (size_t)(p - s->base), bound = s->lim->line_max_bytes;
        if (bound > s->lim->msg_max_bytes)
            bound = s->lim->msg_max_bytes;
        const char *stop = (size_t)(s->end - p) > bound - at ? p + (bound - at) : s->end;
        const char *q = p + 1;
        while (q < stop) {
            q = value_plain_run(q, stop);
            if (q == stop || *q != '\\')
                break;
            q++;
        }
        p = q - 1;
    }
}

/* Between fields: the empty line that ends the section (SCAN_END), or a field's first byte
 * (SCAN_LINE, state S_NAME). */
static int scan_field_begin(scan_t *s)
{
    const char *p = s->base + s->pos;
    if (p == s->end)
        return SCAN_MORE;
    if (past_msg_max(s, p))
        return SIP_MSG_E_TOO_LARGE;
    if (*p == '\r' || *p == '\n') {
        int eol = line_end_len(s, p);
        if (eol == 0)
            return SCAN_MORE;
        if (eol < 0)
            return SIP_MSG_E_HEADER_SYNTAX;
        if (eol == 2 && past_msg_max(s, p + 1))
            return SIP_MSG_E_TOO_LARGE;
        s->pos = scan_off(s, p + eol);
        s->state = S_DONE;
        return SCAN_END;
    }
    if (is_wsp(*p))
        return SIP_MSG_E_HEADER_SYNTAX;         /* a fold with no field to continue */
    if (s->fields == s->lim->headers_max)
        return SIP_MSG_E_TOO_MANY_HEADERS;
    s->state = S_NAME;
    s->field_start = s->pos;
    s->name_end = s->v_beg = s->v_end = 0;
    s->escaped = false;
    return SCAN_LINE;
}

/*
 * Reads one header field, folds included (RFC 3261 §7.3.1), or the empty line that ends the
 * header section (SCAN_END; pos is then the body's first byte). The value is trimmed of white
 * space at both ends, folds at the ends included.
 */
static int scan_field(scan_t *s, str_t *name, str_t *value)
{
    if (s->state == S_IDLE) {
        int r = scan_field_begin(s);
        if (r != SCAN_LINE)
            return r;
    }
    ASSERT(s->state == S_NAME || s->state == S_COLON || s->state == S_VALUE);
    const char *start = s->base + s->field_start;
    for (const char *p = s->base + s->pos;;) {
        if (p == s->end) {
            s->pos = scan_off(s, p);
            return SCAN_MORE;
        }
        if (past_msg_max(s, p))
            return SIP_MSG_E_TOO_LARGE;
        char c = *p;
        if (c == '\r' || c == '\n') {
            if (s->state != S_VALUE)
                return SIP_MSG_E_HEADER_SYNTAX;
            int eol = line_end_len(s, p);
            if (eol < 0)
                return SIP_MSG_E_HEADER_SYNTAX;
            if (eol == 2 && past_msg_max(s, p + 1))
                return SIP_MSG_E_TOO_LARGE;
            /* Whether the field goes on shows only in the next line's first byte. */
            if (eol == 0 || p + eol == s->end) {
                s->pos = scan_off(s, p);
                return SCAN_MORE;
            }
            if (is_wsp(p[eol])) {
                p += eol;
                s->escaped = false;
                continue;
            }
            *name = span(start, s->base + s->name_end);
            *value = s->v_beg ? span(s->base + s->v_beg, s->base + s->v_end) : span(p, p);
            s->pos = scan_off(s, p + eol);
            s->state = S_IDLE;
            s->fields++;
            return SCAN_LINE;
        }
        if ((size_t)(p - start) >= s->lim->line_max_bytes)
            return SIP_MSG_E_LINE_TOO_LONG;
        switch (s->state) {
        case S_NAME:
            if (is_token(c)) {
                p++;
                continue;
            }
            if (p == start)
                return SIP_MSG_E_HEADER_SYNTAX;
            s->name_end = scan_off(s, p);
            s->state = S_COLON;
            /* fall through */
        case S_COLON:
            /* HCOLON = *( SP / HTAB ) ":" SWS */
            if (is_wsp(c)) {
                p++;
                continue;
            }
            if (c != ':')
                return SIP_MSG_E_HEADER_SYNTAX;
            s->state = S_VALUE;
            p++;
            continue;
        default:
            if (!s->escaped && is_value_plain(c)) {
                /* Most of a value: a run of bytes that need no bookkeeping one by one,
                 * up to where the checks at the loop's top would stop it; the value's
                 * bounds leave out the white space at the run's ends. */
                const char *stop = s->end;
                size_t room = s->lim->msg_max_bytes - (size_t)(p - s->base);
                if ((size_t)(stop - p) > room)
                    stop = p + room;
                room = s->lim->line_max_bytes - (size_t)(p - start);
                if ((size_t)(stop - p) > room)
                    stop = p + room;
                const char *q = value_plain_run(p + 1, stop);
                const char *b = p;
                while (b < q && is_wsp(*b))
                    b++;
                if (b < q) {
                    const char *e = q;
                    while (is_wsp(e[-1]))
                        e--;
                    if (!s->v_beg)
                        s->v_beg = scan_off(s, b);
                    s->v_end = scan_off(s, e);
                }
                p = q;
                continue;
            }
            if (is_ctl(c) && !s->escaped)
                return SIP_MSG_E_HEADER_SYNTAX;
            s->escaped = c == '\\' && !s->escaped;
            if (!is_wsp(c)) {
                if (!s->v_beg)
                    s->v_beg = scan_off(s, p);
                s->v_end = scan_off(s, p + 1);
            }
            p++;
            continue;
        }
    }
}

/* Content-Length = 1*DIGIT (§20.14). A value past msg_max_bytes can never frame. */
static int content_length_parse(str_t v, const sip_msg_limits_t *lim, uint32_t *out)
{
    if (v.len == 0)
        return SIP_MSG_E_CONTENT_LENGTH;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_digit(v.ptr[i]))
            return SIP_MSG_E_CONTENT_LENGTH;
        if (n <= lim->msg_max_bytes)
            n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    if (n > lim->msg_max_bytes)
        return SIP_MSG_E_BODY_TOO_LARGE;
    *out = (uint32_t)n;
    return 0;
}

static const sip_msg_limits_t *limits_or_default(const sip_msg_limits_t *lim)
{
    if (!lim)
        return &sip_msg_limits_default;
    ASSERT(lim->msg_max_bytes > 0);
    ASSERT(lim->msg_max_bytes <= SIP_MSG_MAX_LIMIT_BYTES);
    ASSERT(lim->line_max_bytes > 0);
    ASSERT(lim->headers_max > 0);
    ASSERT(lim->headers_max <= SIP_MSG_HEADERS_CAP);
    return lim;
}

/* ---- The message parser ---------------------------------------------------------------- */

static void msg_reset(sip_msg_t *m, const char *data)
{
    /* Everything but the header array, which header_count bounds. */
    memset(m, 0, offsetof(sip_msg_t, headers));
    memset(&m->content_length, 0, sizeof(*m) - offsetof(sip_msg_t, content_length));
    memset(m->first, 0xff, sizeof(m->first));
    memset(m->last_, 0xff, sizeof(m->last_));
    m->data = data;
    m->max_forwards = -1;
}

static ssize_t msg_fail(sip_msg_t *m, int err)
{
    ASSERT(err < 0);
    m->err = (sip_msg_err_t)err;
    return err;
}

/* Records a problem that still lets the message be read (and a request be answered); the
 * first one recorded is the one reported. */
static void msg_note(sip_msg_t *m, sip_msg_err_t err, sip_hdr_id_t id)
{
    if (m->err == SIP_MSG_OK) {
        m->err = err;
        m->err_hdr = (uint8_t)id;
    }
}

/* SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive (§7.1). 1 for 2.0, 0 for
 * another version, -1 for no version at all. */
static int version_check(str_t v)
{
    if (v.len < 7 || !eq_nocase(span(v.ptr, v.ptr + 4), "SIP/", 4))
        return -1;
    const char *p = v.ptr + 4, *end = str_end(v);
    const char *dot = memchr(p, '.', (size_t)(end - p));
    uint64_t major, minor;
    if (!dot || !parse_uint(span(p, dot), UINT32_MAX, &major) ||
        !parse_uint(span(dot + 1, end), UINT32_MAX, &minor))
        return -1;
    return major == 2 && minor == 0 ? 1 : 0;
}

/* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2). Returns 1 for SIP/2.0,
 * 0 for another version, or SIP_MSG_E_START_LINE. */
static int status_line_parse(str_t line, str_t *version, uint16_t *status, str_t *reason)
{
    const char *p = line.ptr, *end = str_end(line);
    const char *sp = memchr(p, ' ', line.len);
    if (!sp)
        return SIP_MSG_E_START_LINE;
    *version = span(p, sp);
    int v = version_check(*version);
    if (v < 0)
        return SIP_MSG_E_START_LINE;
    /* Status-Code = 3DIGIT, of classes 1 to 6 (§7.2; RFC 4475 §3.1.2.19). */
    const char *code = sp + 1;
    uint64_t st;
    if (end - code < 3 || !parse_uint(span(code, code + 3), 999, &st) || st < 100 || st > 699)
        return SIP_MSG_E_START_LINE;
    p = code + 3;
    if (p < end && *p != ' ')
        return SIP_MSG_E_START_LINE;
    *status = (uint16_t)st;
    *reason = p < end ? span(p + 1, end) : span(p, p);
    return v;
}

static int parse_status_line(sip_msg_t *m, str_t line)
{
    int v = status_line_parse(line, &m->version, &m->status, &m->reason);
    if (v < 0)
        return v;
    if (v == 0)
        msg_note(m, SIP_MSG_E_VERSION, SIP_HDR_OTHER);
    return 0;
}

static inline bool is_status_line(str_t line)
{
    return line.len >= 4 && eq_nocase(span(line.ptr, line.ptr + 4), "SIP/", 4);
}

/*
 * Request-Line = Method SP Request-URI SP SIP-Version (§7.1). A method token and two SPs
 * are needed to go on; anything wrong between them (an URI with LWS in it, extra SPs,
 * RFC 4475 §3.1.2.8-10) still lets the request be answered.
 */
static int parse_request_line(sip_msg_t *m, str_t line, bool *scheme_unsupported)
{
    const char *p = line.ptr, *end = str_end(line);
    const char *sp1 = memchr(p, ' ', line.len);
    const char *sp2 = memrchr(p, ' ', line.len);
    if (!sp1 || sp1 == sp2 || skip_token(p, sp1) != sp1 || sp1 == p)
        return SIP_MSG_E_START_LINE;
    m->is_request = true;
    m->method_name = span(p, sp1);
    m->method = sip_method_lookup(m->method_name);
    m->request_uri = span(sp1 + 1, sp2);
    m->version = span(sp2 + 1, end);
    int v = version_check(m->version);
    if (v < 0)
        msg_note(m, SIP_MSG_E_START_LINE, SIP_HDR_OTHER);
    else if (v == 0)
        msg_note(m, SIP_MSG_E_VERSION, SIP_HDR_OTHER);
    if (sip_uri_parse(m->request_uri, &m->uri) < 0)
        msg_note(m, SIP_MSG_E_BAD_URI, SIP_HDR_OTHER);
    else if (m->uri.scheme == SIP_SCHEME_OTHER)
        *scheme_unsupported = true;             /* 416, once the rest is known good */
    else if (m->uri.headers.len > 0)
        msg_note(m, SIP_MSG_E_BAD_URI, SIP_HDR_OTHER);  /* §19.1.1 Table 1; RFC 4475 §3.1.2.11 */
    return 0;
}

static void hdr_add(sip_msg_t *m, str_t name, str_t value, sip_hdr_id_t id)
{
    ASSERT(m->header_count < SIP_MSG_HEADERS_CAP);
    uint16_t i = m->header_count++;
    m->headers[i] = (sip_hdr_t){ .name = name, .value = value, .id = (uint8_t)id,
                                 .next = SIP_MSG_NO_HDR };
    if (m->first[id] == SIP_MSG_NO_HDR)
        m->first[id] = i;
    else
        m->headers[m->last_[id]].next = i;
    m->last_[id] = i;
}

/* Every value of a list field must parse; check(value, index) says whether one does. */
static int list_check(sip_msg_t *m, const sip_hdr_t *h, bool is_first_line,
                      int (*check)(sip_msg_t *m, str_t value, bool top))
{
    str_t rest = h->value, item;
    int r, n = 0;
    while ((r = sip_list_next(&rest, &item)) > 0) {
        if (check(m, item, is_first_line && n == 0) < 0)
            return -EBADMSG;
        n++;
    }
    return (r < 0 || n == 0) ? -EBADMSG : 0;
}

static int via_check(sip_msg_t *m, str_t v, bool top)
{
    sip_via_t via;
    if (sip_via_parse(v, top ? &m->via : &via) < 0)
        return -EBADMSG;
    return 0;
}

static int contact_check(sip_msg_t *m, str_t v, bool top)
{
    (void)m;
    (void)top;
    sip_addr_t a;
    if (sip_addr_parse(v, &a) < 0 || a.star)
        return -EBADMSG;
    return 0;
}

/* route-param = name-addr *( SEMI rr-param ): always in <> (§20.30, §20.34). */
static int route_check(sip_msg_t *m, str_t v, bool top)
{
    (void)m;
    (void)top;
    sip_addr_t a;
    if (sip_addr_parse(v, &a) < 0 || !a.angle)
        return -EBADMSG;
    return 0;
}

static int addr_check(str_t v, sip_addr_t *a)
{
    if (sip_addr_parse(v, a) < 0 || a->star)
        return -EBADMSG;
    return 0;
}

/* The checks of sip_msg.h's "what a successful parse guarantees", field by field. */
static void fields_check(sip_msg_t *m)
{
    for (unsigned i = 0; i < m->header_count; i++) {
        const sip_hdr_t *h = &m->headers[i];
        sip_hdr_id_t id = (sip_hdr_id_t)h->id;
        bool first = m->first[id] == i;
        if (hdr_info[id].single && !first) {
            msg_note(m, SIP_MSG_E_DUPLICATE_HEADER, id);
            continue;
        }
        int r = 0;
        uint64_t mf;
        switch (id) {
        case SIP_HDR_VIA:
            r = list_check(m, h, first, via_check);
            break;
        case SIP_HDR_CONTACT:
            /* "*" is a whole Contact value on its own (§10.2.2), never a list element. */
            if (!(h->value.len == 1 && h->value.ptr[0] == '*'))
                r = list_check(m, h, first, contact_check);
            break;
        case SIP_HDR_ROUTE:
        case SIP_HDR_RECORD_ROUTE:
            r = list_check(m, h, first, route_check);
            break;
        case SIP_HDR_FROM:
            r = addr_check(h->value, &m->from);
            break;
        case SIP_HDR_TO:
            r = addr_check(h->value, &m->to);
            break;
        case SIP_HDR_CALL_ID:
            m->call_id = h->value;
            r = call_id_ok(h->value) ? 0 : -EBADMSG;
            break;
        case SIP_HDR_CSEQ:
            r = sip_cseq_parse(h->value, &m->cseq);
            break;
        case SIP_HDR_MAX_FORWARDS:
            if (parse_uint(h->value, SIP_MAX_FORWARDS_MAX, &mf))
                m->max_forwards = (int16_t)mf;
            else
                r = -EBADMSG;
            break;
        default:
            break;
        }
        if (r < 0)
            msg_note(m, SIP_MSG_E_BAD_HEADER, id);
    }
}

static void mandatory_check(sip_msg_t *m, const sip_msg_limits_t *lim)
{
    /* RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards and Via in every request;
     * a response echoes all of them but Max-Forwards (§8.2.6.2). */
    static const sip_hdr_id_t needed[] = { SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO,
                                           SIP_HDR_CALL_ID, SIP_HDR_CSEQ,
                                           SIP_HDR_MAX_FORWARDS };
    for (size_t i = 0; i < ARRAY_LEN(needed); i++) {
        sip_hdr_id_t id = needed[i];
        if (id == SIP_HDR_MAX_FORWARDS && (!m->is_request || lim->max_forwards_optional))
            continue;
        if (m->first[id] == SIP_MSG_NO_HDR)
            msg_note(m, SIP_MSG_E_MISSING_HEADER, id);
    }
}

ssize_t sip_msg_parse(sip_msg_t *m, const char *data, size_t len, sip_msg_transport_t tp,
                      const sip_msg_limits_t *lim)
{
    ASSERT(data != NULL || len == 0);
    ASSERT(tp == SIP_MSG_DATAGRAM || tp == SIP_MSG_STREAM);
    lim = limits_or_default(lim);
    msg_reset(m, data);
    scan_t s = { .base = data, .end = data + len, .lim = lim, .state = S_START };
    bool scheme_unsupported = false;

    int r = scan_start_line(&s, &m->start_line);
    if (r == SCAN_MORE)
        return msg_fail(m, SIP_MSG_E_TRUNCATED);
    if (r < 0)
        return msg_fail(m, r);
    str_t line = m->start_line;
    if (is_status_line(line))
        r = parse_status_line(m, line);      /* '/' is no token character: not a method */
    else
        r = parse_request_line(m, line, &scheme_unsupported);
    if (r < 0)
        return msg_fail(m, r);

    /* A second or a bad Content-Length leaves the body unknown (RFC 4475 §3.3.9,
     * §3.1.2.3), the error sip_msg_frame() gives at that field. The rest of the header
     * section is still read, so that a datagram can be answered. */
    bool has_cl = false;
    int cl_err = 0;
    for (;;) {
        str_t name, value;
        r = scan_field(&s, &name, &value);
        if (r == SCAN_MORE)
            r = SIP_MSG_E_TRUNCATED;
        if (r < 0)
            return msg_fail(m, cl_err ? cl_err : r);
        if (r == SCAN_END)
            break;
        sip_hdr_id_t id = sip_hdr_lookup(name);
        if (id == SIP_HDR_CONTENT_LENGTH && cl_err == 0) {
            if (has_cl)
                cl_err = SIP_MSG_E_DUPLICATE_HEADER;
            else
                cl_err = content_length_parse(value, lim, &m->content_length);
            has_cl = true;
        }
        hdr_add(m, name, value, id);
    }
    m->head_complete = true;
    m->head_len = s.pos;
    if (cl_err < 0) {
        m->err_hdr = SIP_HDR_CONTENT_LENGTH;
        m->content_length = 0;
        return msg_fail(m, cl_err);
    }
    m->has_content_length = has_cl;

    /* The body: Content-Length bytes, or on a datagram without one the rest (§18.3). */
    size_t avail = len - m->head_len;
    size_t body = avail;
    if (has_cl) {
        body = m->content_length;
        if ((size_t)m->head_len + body > lim->msg_max_bytes)
            return msg_fail(m, SIP_MSG_E_BODY_TOO_LARGE);
        if (body > avail) {
            m->body = span(data + m->head_len, data + len);
            return msg_fail(m, SIP_MSG_E_TRUNCATED);
        }
    } else if (tp == SIP_MSG_STREAM) {
        m->err_hdr = SIP_HDR_CONTENT_LENGTH;
        return msg_fail(m, SIP_MSG_E_NO_CONTENT_LENGTH);
    } else if ((size_t)m->head_len + body > lim->msg_max_bytes) {
        return msg_fail(m, SIP_MSG_E_BODY_TOO_LARGE);
    }
    m->body = span(data + m->head_len, data + m->head_len + body);
    m->len = (uint32_t)(m->head_len + body);
    DEBUG_ASSERT(m->len <= len && m->len <= lim->msg_max_bytes);

    fields_check(m);
    mandatory_check(m, lim);
    /* §8.1.1.5: a request's CSeq method matches its method (RFC 4475 §3.1.2.17-18). */
    if (m->is_request && m->err == SIP_MSG_OK && !str_eq(m->cseq.method_name, m->method_name))
        msg_note(m, SIP_MSG_E_CSEQ_MISMATCH, SIP_HDR_CSEQ);
    if (scheme_unsupported)
        msg_note(m, SIP_MSG_E_URI_SCHEME, SIP_HDR_OTHER);   /* §8.2.2.1 */
    return m->err != SIP_MSG_OK ? (ssize_t)m->err : (ssize_t)m->len;
}

int sip_msg_peek_response(const char *data, size_t len, sip_response_peek_t *out)
{
    ASSERT(data != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    /* A request is told by its first bytes, before its start line is read: the parser reads
     * it next, and would read it again. */
    if (!is_status_line((str_t){ data, len < 4 ? len : 4 }))
        return 1;
    scan_t s = { .base = data, .end = data + len, .lim = &sip_msg_limits_default,
                 .state = S_START };
    str_t line, version, reason;
    int r = scan_start_line(&s, &line);
    if (r == SCAN_MORE)
        return SIP_MSG_E_TRUNCATED;
    if (r < 0)
        return r;
    r = status_line_parse(line, &version, &out->status, &reason);
    if (r <= 0)
        return r < 0 ? r : SIP_MSG_E_VERSION;
    bool via = false, cseq = false;
    for (;;) {
        str_t name, value;
        r = scan_field(&s, &name, &value);
        if (r == SCAN_MORE)
            return SIP_MSG_E_TRUNCATED;
        if (r < 0)
            return r;
        if (r == SCAN_END)
            break;
        /* Only two names matter: a switch on the length spares the lookup of each. */
        sip_hdr_id_t id = SIP_HDR_OTHER;
        if (name.len == 1 || name.len == 3 || name.len == 4)
            id = sip_hdr_lookup(name);
        if (id == SIP_HDR_VIA && !via) {
            str_t rest = value, top;
            if (sip_list_next(&rest, &top) <= 0 || sip_via_parse(top, &out->via) < 0 ||
                out->via.branch.len == 0)
                return SIP_MSG_E_BAD_HEADER;
            via = true;
        } else if (id == SIP_HDR_CSEQ) {
            if (cseq)
                return SIP_MSG_E_DUPLICATE_HEADER;
            if (sip_cseq_parse(value, &out->cseq) < 0)
                return SIP_MSG_E_BAD_HEADER;
            cseq = true;
        }
    }
    return via && cseq ? 0 : SIP_MSG_E_MISSING_HEADER;
}

bool sip_msg_can_reply(const sip_msg_t *m)
{
    if (!m->is_request || !m->head_complete || m->method == SIP_METHOD_ACK)
        return false;
    static const sip_hdr_id_t needed[] = { SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO,
                                           SIP_HDR_CALL_ID, SIP_HDR_CSEQ };
    for (size_t i = 0; i < ARRAY_LEN(needed); i++)
        if (m->first[needed[i]] == SIP_MSG_NO_HDR)
            return false;
    return true;
}

/* ---- Header access ---------------------------------------------------------------------- */

const sip_hdr_t *sip_msg_next(const sip_msg_t *m, const sip_hdr_t *h)
{
    DEBUG_ASSERT(h >= m->headers && h < m->headers + m->header_count);
    if (h->id != SIP_HDR_OTHER)
        return h->next == SIP_MSG_NO_HDR ? NULL : &m->headers[h->next];
    for (const sip_hdr_t *n = h + 1; n < m->headers + m->header_count; n++)
        if (n->id == SIP_HDR_OTHER && eq_nocase(n->name, h->name.ptr, h->name.len))
            return n;
    return NULL;
}

const sip_hdr_t *sip_msg_find(const sip_msg_t *m, str_t name)
{
    sip_hdr_id_t id = sip_hdr_lookup(name);
    if (id != SIP_HDR_OTHER)
        return sip_msg_get(m, id);
    for (const sip_hdr_t *h = m->headers; h < m->headers + m->header_count; h++)
        if (h->id == SIP_HDR_OTHER && eq_nocase(h->name, name.ptr, name.len))
            return h;
    return NULL;
}

void sip_hdr_iter_init(sip_hdr_iter_t *it, const sip_msg_t *m, sip_hdr_id_t id)
{
    ASSERT(id > SIP_HDR_OTHER);
    ASSERT(id < SIP_HDR_COUNT);
    it->msg = m;
    it->hdr = sip_msg_get(m, id);
    it->rest = it->hdr ? it->hdr->value : (str_t){ "", 0 };
}

int sip_hdr_iter_next(sip_hdr_iter_t *it, str_t *value)
{
    while (it->hdr) {
        const sip_hdr_t *h = it->hdr;
        if (!hdr_info[h->id].list) {
            *value = h->value;
            it->hdr = sip_msg_next(it->msg, h);
            it->rest = it->hdr ? it->hdr->value : (str_t){ "", 0 };
            return 1;
        }
        int r = sip_list_next(&it->rest, value);
        if (r != 0)
            return r;
        it->hdr = sip_msg_next(it->msg, h);
        it->rest = it->hdr ? it->hdr->value : (str_t){ "", 0 };
    }
    return 0;
}

int sip_msg_expires(const sip_msg_t *m, sip_hdr_id_t id, uint32_t *out_s)
{
    ASSERT(id == SIP_HDR_EXPIRES || id == SIP_HDR_MIN_EXPIRES);
    const sip_hdr_t *h = sip_msg_get(m, id);
    if (!h)
        return -ENOENT;
    return sip_delta_seconds_parse(h->value, out_s);
}

/* ---- Framing ---------------------------------------------------------------------------- */

/*
 * CRLFs before a message (§7.5), counting "\r\n\r\n" pings (RFC 5626 §3.5.1). Stops at the
 * first other byte, or at a tail ("\r", "\r\n", "\r\n\r") whose meaning the next byte
 * decides: *undecided is then set.
 */
static size_t skip_keepalives(const char *data, size_t len, size_t *pings, bool *undecided)
{
    size_t i = 0;
    *undecided = false;
    while (i < len) {
        if (data[i] == '\n') {
            i++;
            continue;
        }
        if (data[i] != '\r')
            break;
        if (i + 1 == len || (data[i + 1] == '\n' && (i + 2 == len ||
                                                     (data[i + 2] == '\r' && i + 3 == len)))) {
            *undecided = true;
            break;
        }
        if (data[i + 1] != '\n')
            break;                              /* a bare CR: the start line scan rejects it */
        if (data[i + 2] == '\r' && data[i + 3] == '\n') {
            (*pings)++;
            i += 4;
        } else {
            i += 2;
        }
    }
    return i;
}

static void frame_load(scan_t *s, const sip_frame_state_t *f)
{
    s->pos = f->pos_;
    s->fields = f->fields_;
    s->field_start = f->field_start_;
    s->name_end = f->name_end_;
    s->v_beg = f->v_beg_;
    s->v_end = f->v_end_;
    s->state = f->state_;
    s->escaped = f->escaped_;
}

static void frame_save(sip_frame_state_t *f, const scan_t *s)
{
    f->pos_ = s->pos;
    f->fields_ = s->fields;
    f->field_start_ = s->field_start;
    f->name_end_ = s->name_end;
    f->v_beg_ = s->v_beg;
    f->v_end_ = s->v_end;
    f->state_ = s->state;
    f->escaped_ = s->escaped;
}

/* The scan behind sip_msg_frame(): 0 for more, the length, or an error. */
static ssize_t frame_scan(scan_t *s, sip_frame_state_t *f, const sip_msg_limits_t *lim)
{
    str_t line, name, value;
    int r;
    if (s->state == S_START) {
        r = scan_start_line(s, &line);
        if (r != SCAN_LINE)
            return r == SCAN_MORE ? 0 : r;
    }
    while (s->state != S_DONE) {
        r = scan_field(s, &name, &value);
        if (r == SCAN_MORE)
            return 0;
        if (r < 0)
            return r;
        if (r == SCAN_LINE && sip_hdr_lookup(name) == SIP_HDR_CONTENT_LENGTH) {
            if (f->has_cl_)
                return SIP_MSG_E_DUPLICATE_HEADER;
            r = content_length_parse(value, lim, &f->cl_);
            if (r < 0)
                return r;
            f->has_cl_ = true;
        }
    }
    if (!f->has_cl_)
        return SIP_MSG_E_NO_CONTENT_LENGTH;     /* mandatory on streams (§18.3, §20.14) */
    size_t total = (size_t)s->pos + f->cl_;
    if (total > lim->msg_max_bytes)
        return SIP_MSG_E_BODY_TOO_LARGE;
    if ((size_t)(s->end - s->base) < total)
        return 0;
    return (ssize_t)total;
}

ssize_t sip_msg_frame_resume(sip_frame_state_t *st, const char *data, size_t len,
                             const sip_msg_limits_t *lim, sip_frame_t *frame)
{
    ASSERT(data != NULL || len == 0);
    lim = limits_or_default(lim);
    frame->skip_bytes = 0;
    frame->pings = 0;
    /* Keep-alives come only between messages: once a message's first byte was read, data
     * starts with that message. */
    if (st->state_ == S_START && st->pos_ == 0) {
        bool undecided;
        frame->skip_bytes = skip_keepalives(data, len, &frame->pings, &undecided);
        if (undecided || frame->skip_bytes == len)
            return 0;
    }
    /* A message under way must be offered again from its first byte, with more after it. */
    ASSERT(st->pos_ <= len - frame->skip_bytes);
    scan_t s = { .base = data + frame->skip_bytes, .end = data + len, .lim = lim };
    frame_load(&s, st);
    ssize_t r = frame_scan(&s, st, lim);
    if (r == 0)
        frame_save(st, &s);
    else
        sip_frame_state_init(st);
    DEBUG_ASSERT(r <= 0 || frame->skip_bytes + (size_t)r <= len);
    return r;
}

ssize_t sip_msg_frame(const char *data, size_t len, const sip_msg_limits_t *lim,
                      sip_frame_t *frame)
{
    sip_frame_state_t st;
    sip_frame_state_init(&st);
    return sip_msg_frame_resume(&st, data, len, lim, frame);
}

/* ---- Writing responses ------------------------------------------------------------------ */

static void put_field(buf_t *out, sip_hdr_id_t id, str_t value)
{
    str_t name = hdr_info[id].name;
    buf_reserve(out, name.len + value.len + 4);
    buf_append(out, name.ptr, name.len);
    buf_append(out, ": ", 2);
    buf_append(out, value.ptr, value.len);
    buf_append(out, "\r\n", 2);
}

static void put_all(buf_t *out, const sip_msg_t *req, sip_hdr_id_t id)
{
    for (const sip_hdr_t *h = sip_msg_get(req, id); h; h = sip_msg_next(req, h))
        put_field(out, id, h->value);
}

int sip_msg_write_response(const sip_msg_t *req, const sip_response_t *rsp, buf_t *out)
{
    if (!sip_msg_can_reply(req))
        return -EINVAL;
    ASSERT(rsp->status >= 100);
    ASSERT(rsp->status <= 699);
    const char *reason = rsp->reason ? rsp->reason : sip_status_reason(rsp->status);
    ASSERT(!strpbrk(reason, "\r\n"));
    ASSERT(rsp->to_tag.len == 0 ||
           skip_token(rsp->to_tag.ptr, str_end(rsp->to_tag)) == str_end(rsp->to_tag));
    ASSERT(rsp->headers.len == 0 ||
           (rsp->headers.len >= 2 && memcmp(str_end(rsp->headers) - 2, "\r\n", 2) == 0));

    /* Appended, not formatted: a watcher answers every NOTIFY with one. */
    buf_append_str(out, "SIP/2.0 ");
    buf_append_uint(out, rsp->status);
    buf_append_strs(out, " ", reason, "\r\n", NULL);
    /* §8.2.6.2: Via values in order, From, Call-ID and CSeq as received; To too, plus a
     * tag if it has none. */
    put_all(out, req, SIP_HDR_VIA);
    put_field(out, SIP_HDR_FROM, sip_msg_get(req, SIP_HDR_FROM)->value);
    str_t to = sip_msg_get(req, SIP_HDR_TO)->value;
    bool add_tag = false;
    if (rsp->to_tag.len > 0) {
        sip_addr_t a;
        /* After a failed parse m->to may be unset: look again. A To that does not parse
         * gets no tag (the response is an error anyway). */
        if (req->err == SIP_MSG_OK)
            add_tag = req->to.tag.len == 0;
        else
            add_tag = sip_addr_parse(to, &a) == 0 && a.tag.len == 0;
    }
    if (add_tag) {
        /* Appended, not formatted: a quoted-pair may hold a NUL that %s would stop at. */
        buf_append_str(out, "To: ");
        buf_append(out, to.ptr, to.len);
        buf_append_str(out, ";tag=");
        buf_append(out, rsp->to_tag.ptr, rsp->to_tag.len);
        buf_append_str(out, "\r\n");
    } else {
        put_field(out, SIP_HDR_TO, to);
    }
    put_field(out, SIP_HDR_CALL_ID, sip_msg_get(req, SIP_HDR_CALL_ID)->value);
    put_field(out, SIP_HDR_CSEQ, sip_msg_get(req, SIP_HDR_CSEQ)->value);
    if (rsp->status == 100)
        put_all(out, req, SIP_HDR_TIMESTAMP);   /* §8.2.6.1 */
    if (rsp->record_route)
        put_all(out, req, SIP_HDR_RECORD_ROUTE);
    buf_append(out, rsp->headers.ptr, rsp->headers.len);
    buf_append_str(out, "Content-Length: ");
    buf_append_uint(out, rsp->body.len);
    buf_append_str(out, "\r\n\r\n");
    buf_append(out, rsp->body.ptr, rsp->body.len);
    return 0;
}
