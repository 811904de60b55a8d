/*
 * http_parse.c - see http_parse.h.
 *
 * http-parser is callback-driven and hands out pointers into the bytes of the
 * current http_parser_execute call, in as many pieces as the chunks split them.
 * Each piece is appended to rx->data (the one buffer a request owns) and its
 * offset recorded; pointers are made only when the request is complete,
 * because the buffer may move while it grows. Layout of rx->data:
 *
 *     [target][name0][value0][name1][value1]...[body]
 *      0       name_off[0]  value_off[0]        body_off       len
 *
 * Header i's value ends where name i+1 (or the body) begins, so two offsets
 * per header are enough. Every byte kept is a byte received (an obs-fold of at
 * least one LF becomes one SP), so the head part never exceeds the raw head
 * and the buffer never exceeds head_max + body_max.
 *
 * One request's life, per rx:
 *
 *     (no rx) --byte--> head --headers_complete--> body --message_complete--> ready
 *        ^                                          |  ^                         |
 *        |                              last chunk  v  | message_complete        |
 *        |                                        trailers                       |
 *        +-------------------- release (nothing stashed) -----------------------+
 *
 * At message_complete the parser pauses (HPE_PAUSED) so that execute returns
 * right after the request and pipelined bytes stay with the caller; release
 * un-pauses it. It also pauses at a request's first byte and at the last chunk,
 * to count the head and the trailers from there.
 *
 * Cutting the input differently must not change the outcome, errors included
 * (the unit test and the fuzz target check it). So limits are enforced on raw
 * byte positions (rx_run's windows), never on callback pieces, whose size
 * depends on the cuts; and a check that a piece could trip before a syntax
 * error later in the same token (too many headers) is reported at the end of
 * the head instead.
 */
#include "protocols/http/http_parse.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <http_parser.h>

_Static_assert(sizeof(http_req_parser_t) == 24, "the idle cost per HTTP connection");
_Static_assert(HTTP_HEADERS_MAX <= UINT8_MAX, "header_count is a uint8_t");

/* The state block allocated on a request's first byte. 1 KiB leaves ~600 bytes
 * inline, which holds a Prometheus scrape or a curl request (~300 bytes kept)
 * without a second allocation. */
#define HTTP_RX_BYTES 1024u

/* The stash starts at this size and doubles: a few pipelined GETs. */
#define HTTP_STASH_MIN_BYTES 512u

/* The stash holds at most one maximal request plus this: one receive's worth
 * beyond it (provided buffers are at most 64 KiB), so a client that pipelines
 * small requests while one is handled is not cut off. */
#define HTTP_STASH_SLACK_BYTES (64u * 1024)
_Static_assert((uint64_t)HTTP_HEAD_MAX_LIMIT_BYTES + HTTP_BODY_MAX_LIMIT_BYTES +
                   HTTP_STASH_SLACK_BYTES < UINT32_MAX / 2,
               "offsets and the stash bound fit 32 bits");

/* Which callback ran last, to tell a new header from the next piece of one. */
enum { CB_NONE, CB_FIELD, CB_VALUE };

/*
 * The request line's HTTP-version, checked here because the non-strict build
 * takes any letters after the 'H' ("HTTX/1.1"). Positions: idle until the
 * target ends, then spaces, then "HTTP/" DIGIT "." DIGIT, then CR or LF.
 */
enum { VER_IDLE = 0, VER_SPACES = 1, VER_PATTERN = 2, VER_EOL = 10, VER_DONE = 11 };
static const char ver_pattern[] = "HTTP/#.#";      /* '#' is a digit */
_Static_assert(VER_PATTERN + sizeof(ver_pattern) - 1 == VER_EOL, "matcher positions");

struct http_rx {
    http_parser hp;             /* hp.data points back at the http_req_parser_t */
    const char *exec_start;     /* bytes of the http_parser_execute call under way */
    const char *exec_end;
    char *data;                 /* inline_buf or a heap buffer */
    char *pend;                 /* stashed raw bytes, parsed before new ones */
    uint32_t len, cap;
    uint32_t pend_off, pend_len, pend_cap;
    uint32_t head_bytes;        /* raw head bytes from the method's first byte */
    uint32_t trailer_bytes;     /* raw bytes of chunked trailers (never kept) */
    uint32_t url_len;           /* the target is data[0, url_len) */
    uint32_t body_off;
    uint32_t name_off[HTTP_HEADERS_MAX];
    uint32_t value_off[HTTP_HEADERS_MAX];
    int err;                    /* why a callback failed */
    uint8_t header_count;
    uint8_t last_cb;
    uint8_t ver_pos;            /* version matcher (VER_*) */
    bool value_at_end;          /* the last value piece ran to exec_end */
    bool fold_ws;               /* dropping the whitespace that follows an obs-fold */
    bool in_msg;                /* the request's first byte was seen */
    bool begin_pause;           /* paused right after that byte */
    bool head_done;
    bool in_trailers;           /* past the last chunk */
    bool too_many;              /* over HTTP_HEADERS_MAX: the rest are dropped */
    bool ready;                 /* complete and handed out, not yet released */
    bool keep_alive;
    char inline_buf[];
};

#define HTTP_RX_INLINE_BYTES (HTTP_RX_BYTES - offsetof(struct http_rx, inline_buf))
_Static_assert(offsetof(struct http_rx, inline_buf) + 512 <= HTTP_RX_BYTES,
               "room inline for a typical request");

static int on_message_begin(http_parser *hp);
static int on_url(http_parser *hp, const char *at, size_t n);
static int on_header_field(http_parser *hp, const char *at, size_t n);
static int on_header_value(http_parser *hp, const char *at, size_t n);
static int on_headers_complete(http_parser *hp);
static int on_body(http_parser *hp, const char *at, size_t n);
static int on_chunk_header(http_parser *hp);
static int on_message_complete(http_parser *hp);

static const http_parser_settings http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ---- Small helpers ----------------------------------------------------- */

static inline bool is_tchar(unsigned char c)
{
    /* RFC 7230 3.2.6 token characters; the non-strict build also lets SP through. */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static inline bool is_field_vchar(unsigned char c)
{
    /* RFC 7230 3.2: VCHAR, obs-text, SP and HTAB; no other control bytes. */
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool str_eq_nocase(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)s.ptr[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return true;
}

static str_t trim_ows(str_t s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        s.ptr++, s.len--;
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

static inline str_t rx_slice(const struct http_rx *rx, uint32_t start, uint32_t end)
{
    ASSERT(start <= end);
    ASSERT(end <= rx->len);
    return (str_t){ rx->data + start, end - start };
}

/* Header i's value ends where the next name starts or the head ends. */
static str_t rx_value(const struct http_rx *rx, unsigned i, uint32_t head_end)
{
    uint32_t end = i + 1 < rx->header_count ? rx->name_off[i + 1] : head_end;
    return trim_ows(rx_slice(rx, rx->value_off[i], end));
}

static inline str_t rx_name(const struct http_rx *rx, unsigned i)
{
    return rx_slice(rx, rx->name_off[i], rx->value_off[i]);
}

static inline size_t parser_bound(const http_req_parser_t *p)
{
    return (size_t)p->head_max_bytes + p->body_max_bytes;
}

/*
 * Splits a request-target (RFC 7230 5.3) into path and query. Origin-form is
 * split by hand (the common case, and http_parser_parse_url's offsets are 16
 * bits); absolute-form goes through http-parser; "*" is its own path.
 */
static int split_target(str_t t, str_t *path, str_t *query)
{
    *query = (str_t){ "", 0 };
    if (t.len == 0)
        return -EBADMSG;
    if (t.ptr[0] == '/') {
        size_t i = 0;
        while (i < t.len && t.ptr[i] != '?' && t.ptr[i] != '#')
            i++;
        *path = (str_t){ t.ptr, i };
        if (i < t.len && t.ptr[i] == '?') {
            size_t j = i + 1;
            while (j < t.len && t.ptr[j] != '#')
                j++;
            *query = (str_t){ t.ptr + i + 1, j - i - 1 };
        }
        return 0;
    }
    if (t.len == 1 && t.ptr[0] == '*') {
        *path = t;
        return 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (t.len > UINT16_MAX || http_parser_parse_url(t.ptr, t.len, 0, &u) != 0)
        return -EBADMSG;
    if (!(u.field_set & (1u << UF_SCHEMA)))
        return -EBADMSG;
    *path = STR_LIT("/");
    if (u.field_set & (1u << UF_PATH))
        *path = (str_t){ t.ptr + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len };
    if (u.field_set & (1u << UF_QUERY))
        *query = (str_t){ t.ptr + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len };
    return 0;
}

/* Runs the version matcher over raw bytes of the request line. */
static int ver_scan(struct http_rx *rx, const char *s, const char *end)
{
    for (; s < end && rx->ver_pos != VER_DONE; s++) {
        char c = *s;
        if (rx->ver_pos == VER_SPACES) {
            if (c == ' ')
                continue;
            rx->ver_pos = VER_PATTERN;
        }
        if (rx->ver_pos == VER_EOL) {
            if (c != '\r' && c != '\n')
                return -EBADMSG;
            rx->ver_pos = VER_DONE;
            continue;
        }
        char want = ver_pattern[rx->ver_pos - VER_PATTERN];
        if (want == '#' ? !(c >= '0' && c <= '9') : c != want)
            return -EBADMSG;
        rx->ver_pos++;
    }
    return 0;
}

/* ---- The state block --------------------------------------------------- */

static struct http_rx *rx_create(http_req_parser_t *p)
{
    struct http_rx *rx = malloc(HTTP_RX_BYTES);
    if (!rx)
        return NULL;
    memset(rx, 0, offsetof(struct http_rx, inline_buf));
    http_parser_init(&rx->hp, HTTP_REQUEST);
    rx->hp.data = p;
    rx->data = rx->inline_buf;
    rx->cap = (uint32_t)HTTP_RX_INLINE_BYTES;
    return rx;
}

static void rx_destroy(struct http_rx *rx)
{
    if (rx->data != rx->inline_buf)
        free(rx->data);
    free(rx->pend);
    free(rx);
}

/* Back to "no request yet", keeping http-parser's state and the stash. */
static void rx_reset_message(struct http_rx *rx)
{
    if (rx->data != rx->inline_buf) {
        free(rx->data);
        rx->data = rx->inline_buf;
        rx->cap = (uint32_t)HTTP_RX_INLINE_BYTES;
    }
    rx->len = 0;
    rx->head_bytes = rx->trailer_bytes = rx->url_len = rx->body_off = 0;
    rx->header_count = 0;
    rx->last_cb = CB_NONE;
    rx->ver_pos = VER_IDLE;
    rx->value_at_end = rx->fold_ws = rx->too_many = false;
    rx->in_msg = rx->begin_pause = rx->head_done = rx->in_trailers = false;
    rx->ready = rx->keep_alive = false;
    http_parser_pause(&rx->hp, 0);
}

static int rx_append(const http_req_parser_t *p, struct http_rx *rx, const char *at, size_t n)
{
    /* Holds because kept bytes are a subset of the bounded head plus the
     * bounded body (see the top of the file); a failure here is our bug. */
    ASSERT(rx->len + n <= parser_bound(p));
    if (n == 0)
        return 0;
    if (rx->len + n > rx->cap) {
        size_t cap = rx->cap;
        while (cap < rx->len + n)
            cap *= 2;
        if (cap > parser_bound(p))
            cap = parser_bound(p);
        char *data;
        if (rx->data == rx->inline_buf) {
            data = malloc(cap);
            if (data)
                memcpy(data, rx->data, rx->len);
        } else {
            data = realloc(rx->data, cap);
        }
        if (!data)
            return -ENOMEM;
        rx->data = data;
        rx->cap = (uint32_t)cap;
    }
    memcpy(rx->data + rx->len, at, n);
    rx->len += (uint32_t)n;
    return 0;
}

static int pend_append(const http_req_parser_t *p, struct http_rx *rx, const char *data, size_t n)
{
    size_t keep = rx->pend_len - rx->pend_off;
    if (n == 0)
        return 0;
    if (n > parser_bound(p) + HTTP_STASH_SLACK_BYTES - keep)
        return -ENOBUFS;
    if (rx->pend_off > 0) {
        memmove(rx->pend, rx->pend + rx->pend_off, keep);
        rx->pend_off = 0;
        rx->pend_len = (uint32_t)keep;
    }
    if (keep + n > rx->pend_cap) {
        size_t cap = rx->pend_cap ? rx->pend_cap : HTTP_STASH_MIN_BYTES;
        while (cap < keep + n)
            cap *= 2;
        char *pend = realloc(rx->pend, cap);
        if (!pend)
            return -ENOMEM;
        rx->pend = pend;
        rx->pend_cap = (uint32_t)cap;
    }
    memcpy(rx->pend + keep, data, n);
    rx->pend_len = (uint32_t)(keep + n);
    return 0;
}

static inline bool pend_empty(const struct http_rx *rx)
{
    return rx->pend_off == rx->pend_len;
}

/* ---- http-parser callbacks --------------------------------------------- */

static inline http_req_parser_t *parser_of(http_parser *hp)
{
    return hp->data;
}

/* Records why the parse stops; http-parser reports HPE_CB_* and we map it back. */
static int cb_fail(struct http_rx *rx, int err)
{
    ASSERT(err < 0);
    rx->err = err;
    return -1;
}

static int on_message_begin(http_parser *hp)
{
    struct http_rx *rx = parser_of(hp)->rx;
    /* Blank lines before a request are ignored (RFC 7230 3.5) and not counted,
     * since a feed of nothing else keeps no state to count them in. Pause so
     * that execute returns right after the first byte and the head is counted
     * from there, whatever came before in the same call. */
    rx->in_msg = true;
    rx->begin_pause = true;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    http_req_parser_t *p = parser_of(hp);
    struct http_rx *rx = p->rx;
    ASSERT(rx->last_cb == CB_NONE);
    for (size_t i = 0; i < n; i++) {
        /* The non-strict build lets HTAB and FF into the target. */
        unsigned char c = (unsigned char)at[i];
        if (c <= ' ' || c == 0x7f)
            return cb_fail(rx, -EBADMSG);
    }
    int err = rx_append(p, rx, at, n);
    if (err)
        return cb_fail(rx, err);
    rx->url_len += (uint32_t)n;
    if (at + n < rx->exec_end) {
        /* Not cut by the end of the bytes, so the target ended here: what
         * follows in this call is checked now, later calls in rx_run. */
        rx->ver_pos = VER_SPACES;
        if ((err = ver_scan(rx, at + n, rx->exec_end)) != 0)
            return cb_fail(rx, err);
    }
    return 0;
}

/* Chunked trailers come through the header callbacks after the body. Nothing
 * here needs them, so they are dropped; rx_run bounds their raw bytes. */
static int on_trailer(struct http_rx *rx)
{
    ASSERT(rx->in_trailers);
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    http_req_parser_t *p = parser_of(hp);
    struct http_rx *rx = p->rx;
    if (rx->head_done)
        return on_trailer(rx);
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)at[i]))
            return cb_fail(rx, -EBADMSG);
    }
    if (rx->too_many)
        return 0;
    if (rx->last_cb != CB_FIELD) {
        if (rx->header_count == HTTP_HEADERS_MAX) {
            /* Reported by on_headers_complete, at a byte that does not depend
             * on how the input was cut (a name is delivered in as many pieces
             * as there are cuts, and a syntax error may follow in it). */
            rx->too_many = true;
            return 0;
        }
        rx->name_off[rx->header_count] = rx->len;
        rx->value_off[rx->header_count] = rx->len;
        rx->header_count++;
        rx->last_cb = CB_FIELD;
    }
    int err = rx_append(p, rx, at, n);
    if (err)
        return cb_fail(rx, err);
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    http_req_parser_t *p = parser_of(hp);
    struct http_rx *rx = p->rx;
    int err;
    if (rx->head_done)
        return on_trailer(rx);
    for (size_t i = 0; i < n; i++) {
        if (!is_field_vchar((unsigned char)at[i]))
            return cb_fail(rx, -EBADMSG);
    }
    if (rx->too_many)
        return 0;
    bool continues = at == rx->exec_start && rx->value_at_end;
    rx->value_at_end = at + n == rx->exec_end;
    if (rx->last_cb == CB_FIELD) {
        rx->value_off[rx->header_count - 1] = rx->len;
        rx->last_cb = CB_VALUE;
        rx->fold_ws = false;
    } else if (!continues) {
        /* A second piece of the same value that does not continue the previous
         * execute call's bytes: a line break lies between, so this is an
         * obs-fold. RFC 7230 3.2.4 lets a server replace it (CRLF and the
         * whitespace after it) with one SP. */
        ASSERT(rx->last_cb == CB_VALUE);
        if ((err = rx_append(p, rx, " ", 1)) != 0)
            return cb_fail(rx, err);
        rx->fold_ws = true;
    }
    if (rx->fold_ws) {
        while (n > 0 && (*at == ' ' || *at == '\t'))
            at++, n--;
        rx->fold_ws = n == 0;
    }
    if ((err = rx_append(p, rx, at, n)) != 0)
        return cb_fail(rx, err);
    return 0;
}

/* Transfer-Encoding: only a single "chunked" is understood (RFC 7230 3.3.1). */
static int check_transfer_encoding(const struct http_rx *rx, str_t te, unsigned te_count)
{
    if (te_count == 0)
        return 0;
    if (te_count == 1 && str_eq_nocase(te, "chunked"))
        return 0;
    if (te_count > 1)
        return -EBADMSG;
    /* "gzip, chunked": framed, but a coding we would have to undo -> 501.
     * Chunked not last: the length is unknowable (RFC 7230 3.3.3) -> 400. */
    return (rx->hp.flags & F_CHUNKED) ? -ENOTSUP : -EBADMSG;
}

/* The request-level checks that need the whole head. */
static int check_head(const http_req_parser_t *p, struct http_rx *rx)
{
    unsigned host = 0, cl = 0, te_count = 0;
    str_t te = { "", 0 }, path, query;

    if (rx->too_many)
        return -E2BIG;
    if (rx->hp.http_major != 1)
        return -EPROTONOSUPPORT;
    if (rx->hp.upgrade)
        return -ENOTSUP;        /* Upgrade or CONNECT: we only speak HTTP/1.1 */
    for (unsigned i = 0; i < rx->header_count; i++) {
        str_t name = rx_name(rx, i);
        if (name.len == 0)
            return -EBADMSG;
        if (str_eq_nocase(name, "host"))
            host++;
        else if (str_eq_nocase(name, "content-length"))
            cl++;
        else if (str_eq_nocase(name, "transfer-encoding")) {
            te_count++;
            te = rx_value(rx, i, rx->len);
        }
    }
    /* RFC 7230 5.4: exactly one Host in 1.1, at most one in 1.0. */
    if (host > 1 || (host == 0 && rx->hp.http_minor >= 1))
        return -EBADMSG;
    /* Both framings at once is the request smuggling shape (RFC 7230 3.3.3). */
    if (cl > 0 && te_count > 0)
        return -EBADMSG;
    int err = check_transfer_encoding(rx, te, te_count);
    if (err)
        return err;
    if ((rx->hp.flags & F_CONTENTLENGTH) && rx->hp.content_length > p->body_max_bytes)
        return -EFBIG;
    return split_target(rx_slice(rx, 0, rx->url_len), &path, &query);
}

static int on_headers_complete(http_parser *hp)
{
    http_req_parser_t *p = parser_of(hp);
    struct http_rx *rx = p->rx;
    int err = check_head(p, rx);
    if (err)
        return cb_fail(rx, err);
    rx->keep_alive = http_should_keep_alive(hp) != 0;
    rx->head_done = true;
    rx->body_off = rx->len;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    http_req_parser_t *p = parser_of(hp);
    struct http_rx *rx = p->rx;
    ASSERT(rx->head_done);
    if (n > p->body_max_bytes - (rx->len - rx->body_off))
        return cb_fail(rx, -EFBIG);
    int err = rx_append(p, rx, at, n);
    if (err)
        return cb_fail(rx, err);
    return 0;
}

static int on_chunk_header(http_parser *hp)
{
    struct http_rx *rx = parser_of(hp)->rx;
    if (hp->content_length == 0) {
        /* The last chunk: pause so that execute returns exactly where the
         * trailers begin and rx_run can bound them by raw bytes, like the head.
         * Counting callback bytes instead would depend on how input is cut. */
        rx->in_trailers = true;
        http_parser_pause(hp, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_rx *rx = parser_of(hp)->rx;
    ASSERT(rx->head_done);
    rx->ready = true;
    /* Stop right after this request: pipelined bytes belong to the next one. */
    http_parser_pause(hp, 1);
    return 0;
}

/* ---- Feeding ----------------------------------------------------------- */

static int map_errno(const struct http_rx *rx)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&rx->hp);
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete) {
        ASSERT(rx->err < 0);
        return rx->err;
    }
    if (e == HPE_HEADER_OVERFLOW)
        return -E2BIG;
    return -EBADMSG;
}

/* The raw-byte counter that bounds the current part, or NULL if none does. */
static uint32_t *rx_counter(struct http_rx *rx)
{
    if (!rx->in_msg)
        return NULL;            /* blank lines only: see on_message_begin */
    if (!rx->head_done)
        return &rx->head_bytes;
    if (rx->in_trailers)
        return &rx->trailer_bytes;
    return NULL;
}

/*
 * Runs http-parser over src until it is used up or a request is complete.
 * While in the head (or the trailers), each execute call gets at most the
 * bytes left under head_max_bytes, so the limit holds exactly, at the same
 * byte, however the input is cut.
 */
static ssize_t rx_run(http_req_parser_t *p, struct http_rx *rx, const char *src, size_t n)
{
    size_t done = 0;

    while (done < n && !rx->ready) {
        size_t chunk = n - done;
        uint32_t *counter = rx_counter(rx);
        if (counter) {
            size_t room = p->head_max_bytes - *counter;
            if (room == 0)
                return -E2BIG;
            if (chunk > room)
                chunk = room;
        }
        if (rx->ver_pos != VER_IDLE && rx->ver_pos != VER_DONE) {
            int err = ver_scan(rx, src + done, src + done + chunk);
            if (err)
                return err;
        }
        rx->hp.data = p;
        rx->exec_start = src + done;
        rx->exec_end = src + done + chunk;
        size_t got = http_parser_execute(&rx->hp, &http_settings, src + done, chunk);
        ASSERT(got <= chunk);
        if (counter)
            *counter += (uint32_t)got;
        done += got;
        enum http_errno e = HTTP_PARSER_ERRNO(&rx->hp);
        if (e == HPE_PAUSED && !rx->ready) {
            if (rx->begin_pause) {
                rx->begin_pause = false;
                ASSERT(counter == NULL);
                rx->head_bytes = 1;         /* the method's first byte */
            } else {
                ASSERT(rx->in_trailers);    /* on_chunk_header: count from here */
            }
            http_parser_pause(&rx->hp, 0);
            continue;
        }
        if (e == HPE_PAUSED)
            break;
        if (e != HPE_OK)
            return map_errno(rx);
        /* Short only on an upgrade, which on_headers_complete refuses. */
        ASSERT(got == chunk);
    }
    rx->exec_start = rx->exec_end = NULL;
    return (ssize_t)done;
}

/* The parser is in error from now on. A held request keeps its memory until
 * release (its slices may still be in use); otherwise it goes now. */
static int parser_fail(http_req_parser_t *p, int err)
{
    ASSERT(err < 0 && err >= INT16_MIN);
    p->err = (int16_t)err;
    if (p->rx && !p->rx->ready) {
        rx_destroy(p->rx);
        p->rx = NULL;
    }
    return err;
}

static void rx_fill(const struct http_rx *rx, http_request_t *req)
{
    req->method = rx->hp.method;
    req->method_name = str_from_cstr(http_method_str((enum http_method)rx->hp.method));
    req->target = rx_slice(rx, 0, rx->url_len);
    int err = split_target(req->target, &req->path, &req->query);
    ASSERT(err == 0);           /* checked by on_headers_complete */
    req->version_major = rx->hp.http_major;
    req->version_minor = rx->hp.http_minor;
    req->header_count = rx->header_count;
    for (unsigned i = 0; i < rx->header_count; i++) {
        req->headers[i].name = rx_name(rx, i);
        req->headers[i].value = rx_value(rx, i, rx->body_off);
    }
    req->body = rx_slice(rx, rx->body_off, rx->len);
    req->keep_alive = rx->keep_alive;
}

void http_req_parser_init(http_req_parser_t *p, const http_limits_t *lim)
{
    ASSERT(lim->head_max_bytes > 0 && lim->head_max_bytes <= HTTP_HEAD_MAX_LIMIT_BYTES);
    ASSERT(lim->body_max_bytes <= HTTP_BODY_MAX_LIMIT_BYTES);
    *p = (http_req_parser_t){
        .head_max_bytes = (uint32_t)lim->head_max_bytes,
        .body_max_bytes = (uint32_t)lim->body_max_bytes,
    };
}

void http_req_parser_fini(http_req_parser_t *p)
{
    if (p->rx)
        rx_destroy(p->rx);
    p->rx = NULL;
}

ssize_t http_req_feed(http_req_parser_t *p, const char *data, size_t len, http_request_t *req,
                      bool *ready)
{
    ASSERT(req != NULL && ready != NULL);
    ASSERT(data != NULL || len == 0);
    ASSERT(len <= SSIZE_MAX);
    *ready = false;
    if (p->err)
        return p->err;
    http_req_release(p);
    if (p->closed)
        return (ssize_t)len;    /* RFC 7230 6.6: nothing after "close" is processed */

    struct http_rx *rx = p->rx;
    ssize_t used;
    if (rx && !pend_empty(rx)) {
        /* Stashed bytes came first: queue these behind them and parse from there. */
        int err = pend_append(p, rx, data, len);
        if (err)
            return parser_fail(p, err);
        ssize_t n = rx_run(p, rx, rx->pend + rx->pend_off, rx->pend_len - rx->pend_off);
        if (n < 0)
            return parser_fail(p, (int)n);
        rx->pend_off += (uint32_t)n;
        if (pend_empty(rx)) {
            free(rx->pend);
            rx->pend = NULL;
            rx->pend_off = rx->pend_len = rx->pend_cap = 0;
        }
        used = (ssize_t)len;
    } else {
        if (len == 0)
            return 0;
        if (!rx && !(rx = p->rx = rx_create(p)))
            return parser_fail(p, -ENOMEM);
        used = rx_run(p, rx, data, len);
        if (used < 0)
            return parser_fail(p, (int)used);
    }

    if (rx->ready) {
        p->closed = !rx->keep_alive;
        rx_fill(rx, req);
        *ready = true;
    } else if (!rx->in_msg && pend_empty(rx)) {
        rx_destroy(rx);         /* only blank lines so far: keep nothing while idle */
        p->rx = NULL;
    }
    return used;
}

void http_req_release(http_req_parser_t *p)
{
    struct http_rx *rx = p->rx;
    if (!rx || !rx->ready)
        return;
    if (p->err || p->closed || pend_empty(rx)) {
        rx_destroy(rx);
        p->rx = NULL;
        return;
    }
    rx_reset_message(rx);
}

int http_req_stash(http_req_parser_t *p, const char *data, size_t len)
{
    ASSERT(data != NULL || len == 0);
    if (p->err)
        return p->err;
    if (len == 0 || p->closed)
        return 0;               /* after "close" it would be discarded anyway */
    if (!p->rx && !(p->rx = rx_create(p)))
        return parser_fail(p, -ENOMEM);
    int err = pend_append(p, p->rx, data, len);
    if (err)
        return parser_fail(p, err);
    return 0;
}

/* ---- Request accessors ------------------------------------------------- */

const str_t *http_header_get(const http_request_t *req, const char *name)
{
    ASSERT(name != NULL);
    ASSERT(req->header_count <= HTTP_HEADERS_MAX);
    for (unsigned i = 0; i < req->header_count; i++) {
        if (str_eq_nocase(req->headers[i].name, name))
            return &req->headers[i].value;
    }
    return NULL;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)ascii_lower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* One decoded byte of a form-urlencoded string at *s (< end): 0..255, or -1
 * for a broken %XX escape. Advances *s. */
static int form_byte(const char **s, const char *end)
{
    const char *c = *s;
    if (*c == '+') {
        *s = c + 1;
        return ' ';
    }
    if (*c != '%') {
        *s = c + 1;
        return (unsigned char)*c;
    }
    if (end - c < 3 || hex_val(c[1]) < 0 || hex_val(c[2]) < 0)
        return -1;
    *s = c + 3;
    return hex_val(c[1]) << 4 | hex_val(c[2]);
}

static bool form_key_eq(const char *s, const char *end, const char *name)
{
    while (s < end) {
        int b = form_byte(&s, end);
        if (b < 0 || *name == '\0' || (unsigned char)*name != b)
            return false;
        name++;
    }
    return *name == '\0';
}

static int form_decode(const char *s, const char *end, char *out, size_t out_len, size_t *written)
{
    size_t w = 0;
    while (s < end) {
        int b = form_byte(&s, end);
        if (b <= 0)
            return -EBADMSG;    /* broken escape, or %00 */
        if (w + 1 >= out_len)
            return -ENOSPC;
        out[w++] = (char)b;
    }
    if (w >= out_len)
        return -ENOSPC;
    out[w] = '\0';
    if (written)
        *written = w;
    return 0;
}

int http_query_param(str_t query, const char *name, char *out, size_t out_len,
                     size_t *out_written)
{
    ASSERT(name != NULL && name[0] != '\0');
    ASSERT(out != NULL || out_len == 0);
    const char *s = query.ptr, *end = query.ptr + query.len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(seg_end - s));
        const char *key_end = eq ? eq : seg_end;
        if (form_key_eq(s, key_end, name)) {
            const char *v = eq ? eq + 1 : seg_end;
            return form_decode(v, seg_end, out, out_len, out_written);
        }
        s = amp ? amp + 1 : end;
    }
    return -ENOENT;
}

/* ---- Errors and responses ---------------------------------------------- */

int http_status_for_error(int err)
{
    switch (err) {
    case -EBADMSG:
        return 400;
    case -E2BIG:
        return 431;
    case -EFBIG:
        return 413;
    case -ENOTSUP:
        return 501;
    case -EPROTONOSUPPORT:
        return 505;
    case -ENOBUFS:
    case -ENOMEM:
        return 503;
    default:
        return 500;
    }
}

const char *http_status_reason(unsigned status)
{
    switch (status) {
#define XX(num, name, string) case num: return #string;
    HTTP_STATUS_MAP(XX)
#undef XX
    default:
        return "Unknown";
    }
}

int http_response_head(char *buf, size_t len, unsigned status, const char *content_type,
                       size_t content_length, bool keep_alive, const char *extra_headers)
{
    ASSERT(buf != NULL || len == 0);
    ASSERT(status >= 100 && status <= 999);
    /* Programmer errors that would let a caller inject header lines. */
    ASSERT(content_type == NULL || strpbrk(content_type, "\r\n") == NULL);
    DEBUG_ASSERT(extra_headers == NULL || extra_headers[0] == '\0' ||
                 (strlen(extra_headers) >= 2 &&
                  strcmp(extra_headers + strlen(extra_headers) - 2, "\r\n") == 0));

    char length[48] = "";
    if (status >= 200 && status != 204)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", content_length);
    int n = snprintf(buf, len, "HTTP/1.1 %u %s\r\n%s%s%s%sConnection: %s\r\n%s\r\n", status,
                     http_status_reason(status), content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "", length,
                     keep_alive ? "keep-alive" : "close", extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return n;
}
