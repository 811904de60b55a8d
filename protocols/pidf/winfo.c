/*
 * winfo.c - see winfo.h. The same shape as pidf.c: pidf_xml_parse builds a bounded tree,
 * one walk copies what is kept into one allocation (document, lists, watchers, then an arena
 * the size of the input for the strings), and the tree is freed.
 */
#include "protocols/pidf/winfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"

_Static_assert(WINFO_ERR_COUNT == 16, "err_names has one name per code");
_Static_assert(WINFO_DOC_BYTES_DEFAULT <= PIDF_DOC_BYTES_LIMIT, "the parser's bound");

const winfo_limits_t winfo_limits_default = {
    .doc_bytes_max = WINFO_DOC_BYTES_DEFAULT,
    .elements_max = WINFO_ELEMENTS_DEFAULT,
    .depth_max = WINFO_DEPTH_DEFAULT,
};

/* RFC 3858 §6, the enumerations of the schema, in the enums' order. */
static const char *const status_names[WINFO_STATUS_COUNT] = {
    [WINFO_STATUS_PENDING] = "pending",
    [WINFO_STATUS_ACTIVE] = "active",
    [WINFO_STATUS_WAITING] = "waiting",
    [WINFO_STATUS_TERMINATED] = "terminated",
};

static const char *const event_names[WINFO_EVENT_COUNT] = {
    [WINFO_EVENT_SUBSCRIBE] = "subscribe",
    [WINFO_EVENT_APPROVED] = "approved",
    [WINFO_EVENT_DEACTIVATED] = "deactivated",
    [WINFO_EVENT_PROBATION] = "probation",
    [WINFO_EVENT_REJECTED] = "rejected",
    [WINFO_EVENT_TIMEOUT] = "timeout",
    [WINFO_EVENT_GIVEUP] = "giveup",
    [WINFO_EVENT_NORESOURCE] = "noresource",
};

static const char *const err_names[WINFO_ERR_COUNT] = {
    [WINFO_OK] = "ok",
    [WINFO_ERR_TOO_LARGE] = "too-large",
    [WINFO_ERR_ENCODING] = "encoding",
    [WINFO_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [WINFO_ERR_DOCTYPE] = "doctype",
    [WINFO_ERR_TOO_MANY_ELEMENTS] = "too-many-elements",
    [WINFO_ERR_TOO_DEEP] = "too-deep",
    [WINFO_ERR_NOT_WINFO] = "not-winfo",
    [WINFO_ERR_VERSION] = "version",
    [WINFO_ERR_STATE] = "state",
    [WINFO_ERR_LIST] = "list",
    [WINFO_ERR_WATCHER] = "watcher",
    [WINFO_ERR_TOO_MANY_LISTS] = "too-many-lists",
    [WINFO_ERR_TOO_MANY_WATCHERS] = "too-many-watchers",
    [WINFO_ERR_TOO_LONG] = "too-long",
    [WINFO_ERR_NOMEM] = "nomem",
};

const char *winfo_status_name(winfo_status_t s)
{
    ASSERT((unsigned)s < WINFO_STATUS_COUNT);
    return status_names[s];
}

const char *winfo_event_name(winfo_event_t e)
{
    ASSERT((unsigned)e < WINFO_EVENT_COUNT);
    return event_names[e];
}

const char *winfo_err_name(winfo_err_t code)
{
    ASSERT((unsigned)code < WINFO_ERR_COUNT);
    return err_names[code];
}

static int lookup(str_t s, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (str_eq_cstr(s, names[i]))
            return i;
    return -1;
}

/* ---- Decoding ---------------------------------------------------------- */

typedef struct {
    pidf_arena_t arena;
    winfo_doc_t *doc;
    winfo_err_t code;
    const char *reason;
    uint32_t line;
} dec_t;

static bool fail(dec_t *d, winfo_err_t code, const char *reason, const pidf_xml_node_t *at)
{
    if (d->code == WINFO_OK) {
        d->code = code;
        d->reason = reason;
        d->line = at ? pidf_xml_line(at) : 0;
    }
    return false;
}

static bool nomem(dec_t *d)
{
    return fail(d, WINFO_ERR_NOMEM, "out of memory", NULL);
}

/* A trimmed attribute, TOO_LONG beyond max; *out ptr NULL when absent. */
static bool attr(dec_t *d, const pidf_xml_node_t *n, const char *name, const char *ns, size_t max,
                 str_t *out)
{
    if (!pidf_xml_attr(&d->arena, n, name, ns, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return out->len <= max || fail(d, WINFO_ERR_TOO_LONG, "attribute value too long", n);
}

static bool is_winfo(const pidf_xml_node_t *n, const char *name)
{
    return pidf_xml_is(n, name, WINFO_NS);
}

static bool seconds(dec_t *d, const pidf_xml_node_t *n, const char *name, uint64_t *out)
{
    str_t v;
    if (!pidf_xml_attr(&d->arena, n, name, NULL, &v))
        return nomem(d);
    uint64_t s;
    /* WINFO_SECONDS_NONE itself cannot be sent: it means absent. */
    *out = v.ptr && pidf_xml_parse_u64(pidf_xml_trim(v), &s) && s != WINFO_SECONDS_NONE
               ? s
               : WINFO_SECONDS_NONE;
    return true;
}

/* RFC 3858 §3: one <watcher>. */
static bool dec_watcher(dec_t *d, const pidf_xml_node_t *n, winfo_watcher_t *w)
{
    *w = (winfo_watcher_t){ 0 };
    str_t status, event, name;
    if (!attr(d, n, "id", NULL, WINFO_ID_MAX_BYTES, &w->id) ||
        !attr(d, n, "status", NULL, WINFO_ID_MAX_BYTES, &status) ||
        !attr(d, n, "event", NULL, WINFO_ID_MAX_BYTES, &event) ||
        !attr(d, n, "lang", PIDF_XML_NS_XML, WINFO_ID_MAX_BYTES, &w->lang) ||
        !seconds(d, n, "expiration", &w->expiration_s) ||
        !seconds(d, n, "duration-subscribed", &w->duration_subscribed_s))
        return false;
    if (!w->id.ptr || w->id.len == 0)
        return fail(d, WINFO_ERR_WATCHER, "watcher without an id", n);
    int s = status.ptr ? lookup(status, status_names, WINFO_STATUS_COUNT) : -1;
    int e = event.ptr ? lookup(event, event_names, WINFO_EVENT_COUNT) : -1;
    if (s < 0)
        return fail(d, WINFO_ERR_WATCHER, "watcher status missing or unknown", n);
    if (e < 0)
        return fail(d, WINFO_ERR_WATCHER, "watcher event missing or unknown", n);
    w->status = (winfo_status_t)s;
    w->event = (winfo_event_t)e;

    if (!pidf_xml_attr(&d->arena, n, "display-name", NULL, &name))
        return nomem(d);
    if (name.ptr)
        w->display_name = pidf_xml_trim(pidf_xml_cut(pidf_xml_trim(name), WINFO_NAME_MAX_BYTES));
    if (!pidf_xml_text(&d->arena, n, &w->uri))
        return nomem(d);
    w->uri = pidf_xml_trim(w->uri);
    if (w->uri.len > WINFO_URI_MAX_BYTES)
        return fail(d, WINFO_ERR_TOO_LONG, "watcher URI too long", n);
    d->doc->ignored += pidf_xml_count_children(n);
    return true;
}

/* RFC 3858 §3: <watcher-list>, its watchers at w. */
static bool dec_list(dec_t *d, const pidf_xml_node_t *n, winfo_list_t *l, winfo_watcher_t *w)
{
    *l = (winfo_list_t){ .watchers = w };
    if (!attr(d, n, "resource", NULL, WINFO_URI_MAX_BYTES, &l->resource) ||
        !attr(d, n, "package", NULL, WINFO_ID_MAX_BYTES, &l->package))
        return false;
    if (!l->resource.ptr || l->resource.len == 0)
        return fail(d, WINFO_ERR_LIST, "watcher-list without a resource", n);
    if (!l->package.ptr || l->package.len == 0)
        return fail(d, WINFO_ERR_LIST, "watcher-list without a package", n);
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        if (!is_winfo(c, "watcher")) {
            d->doc->ignored++;
            continue;
        }
        if (!dec_watcher(d, c, &w[l->watcher_count]))
            return false;
        l->watcher_count++;
    }
    return true;
}

static bool dec_root(dec_t *d, const pidf_xml_node_t *root, size_t input_len)
{
    if (!is_winfo(root, "watcherinfo"))
        return fail(d, WINFO_ERR_NOT_WINFO, "root is not <watcherinfo>", root);
    uint32_t nl = 0, nw = 0;
    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c)) {
        if (!is_winfo(c, "watcher-list"))
            continue;
        nl++;
        for (const pidf_xml_node_t *w = pidf_xml_first(c); w; w = pidf_xml_next(w))
            nw += is_winfo(w, "watcher");
    }
    if (nl > WINFO_LISTS_MAX)
        return fail(d, WINFO_ERR_TOO_MANY_LISTS, "too many watcher lists", root);
    if (nw > WINFO_WATCHERS_MAX)
        return fail(d, WINFO_ERR_TOO_MANY_WATCHERS, "too many watchers", root);

    size_t arrays = sizeof(winfo_doc_t) + nl * sizeof(winfo_list_t) +
                    nw * sizeof(winfo_watcher_t);
    char *mem = malloc(arrays + input_len);
    if (!mem)
        return nomem(d);
    winfo_doc_t *doc = (winfo_doc_t *)(void *)mem;
    winfo_list_t *lists = (winfo_list_t *)(void *)(mem + sizeof(winfo_doc_t));
    winfo_watcher_t *watchers = (winfo_watcher_t *)(void *)(lists + nl);
    *doc = (winfo_doc_t){ .lists = lists };
    d->doc = doc;
    d->arena = (pidf_arena_t){ .base = mem + arrays, .cap = input_len };

    str_t version, state;
    if (!attr(d, root, "version", NULL, WINFO_ID_MAX_BYTES, &version) ||
        !attr(d, root, "state", NULL, WINFO_ID_MAX_BYTES, &state))
        return false;
    if (!version.ptr || !pidf_xml_parse_u64(version, &doc->version))
        return fail(d, WINFO_ERR_VERSION, "version missing or not a number", root);
    if (state.ptr && str_eq_cstr(state, "full"))
        doc->state = WINFO_STATE_FULL;
    else if (state.ptr && str_eq_cstr(state, "partial"))
        doc->state = WINFO_STATE_PARTIAL;
    else
        return fail(d, WINFO_ERR_STATE, "state neither full nor partial", root);

    uint32_t used = 0;
    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c)) {
        if (!is_winfo(c, "watcher-list")) {
            doc->ignored++;
            continue;
        }
        winfo_list_t *l = &lists[doc->list_count];
        if (!dec_list(d, c, l, watchers + used))
            return false;
        used += l->watcher_count;
        doc->list_count++;
    }
    DEBUG_ASSERT(used == nw && doc->list_count == nl);
    return true;
}

static int err_to_errno(winfo_err_t code)
{
    switch (code) {
    case WINFO_OK:
        return 0;
    case WINFO_ERR_TOO_LARGE:
    case WINFO_ERR_TOO_MANY_ELEMENTS:
    case WINFO_ERR_TOO_DEEP:
    case WINFO_ERR_TOO_MANY_LISTS:
    case WINFO_ERR_TOO_MANY_WATCHERS:
    case WINFO_ERR_TOO_LONG:
        return -E2BIG;
    case WINFO_ERR_NOMEM:
        return -ENOMEM;
    default:
        return -EBADMSG;
    }
}

static winfo_err_t from_xml_err(pidf_xml_err_t e)
{
    static const winfo_err_t map[] = {
        [PIDF_XML_OK] = WINFO_OK,
        [PIDF_XML_TOO_LARGE] = WINFO_ERR_TOO_LARGE,
        [PIDF_XML_ENCODING] = WINFO_ERR_ENCODING,
        [PIDF_XML_NOT_WELL_FORMED] = WINFO_ERR_NOT_WELL_FORMED,
        [PIDF_XML_DOCTYPE] = WINFO_ERR_DOCTYPE,
        [PIDF_XML_TOO_MANY_ELEMENTS] = WINFO_ERR_TOO_MANY_ELEMENTS,
        [PIDF_XML_TOO_DEEP] = WINFO_ERR_TOO_DEEP,
        [PIDF_XML_NOMEM] = WINFO_ERR_NOMEM,
    };
    return map[e];
}

int winfo_decode(const char *data, size_t len, const winfo_limits_t *lim, winfo_doc_t **out,
                 winfo_error_t *err)
{
    winfo_error_t dummy;
    err = err ? err : &dummy;
    lim = lim ? lim : &winfo_limits_default;
    ASSERT(lim->doc_bytes_max > 0 && lim->doc_bytes_max <= PIDF_DOC_BYTES_LIMIT);
    ASSERT(lim->elements_max > 0 && lim->depth_max > 0 && lim->depth_max <= PIDF_DEPTH_LIMIT);
    *out = NULL;

    pidf_xml_status_t st;
    pidf_xml_doc_t *x = pidf_xml_parse(data, len, lim->doc_bytes_max, lim->elements_max,
                                 lim->depth_max, &st);
    if (!x) {
        *err = (winfo_error_t){ from_xml_err(st.err), st.reason, st.line };
        return err_to_errno(err->code);
    }
    dec_t d = { .code = WINFO_OK, .reason = "" };
    bool ok = dec_root(&d, pidf_xml_root(x), len);
    pidf_xml_free(x);
    if (!ok) {
        free(d.doc);
        *err = (winfo_error_t){ d.code, d.reason, d.line };
        return err_to_errno(d.code);
    }
    *err = (winfo_error_t){ WINFO_OK, "", 0 };
    *out = d.doc;
    return 0;
}

void winfo_doc_free(winfo_doc_t *doc)
{
    free(doc);
}

/* ---- Equality ---------------------------------------------------------- */

static bool watcher_eq(const winfo_watcher_t *a, const winfo_watcher_t *b)
{
    return str_eq(a->id, b->id) && str_eq(a->uri, b->uri) &&
           pidf_xml_opt_eq(a->display_name, b->display_name) &&
           pidf_xml_opt_eq(a->lang, b->lang) && a->status == b->status &&
           a->event == b->event && a->expiration_s == b->expiration_s &&
           a->duration_subscribed_s == b->duration_subscribed_s;
}

bool winfo_doc_equal(const winfo_doc_t *a, const winfo_doc_t *b)
{
    if (a->version != b->version || a->state != b->state || a->list_count != b->list_count)
        return false;
    for (uint32_t i = 0; i < a->list_count; i++) {
        const winfo_list_t *la = &a->lists[i], *lb = &b->lists[i];
        if (!str_eq(la->resource, lb->resource) || !str_eq(la->package, lb->package) ||
            la->watcher_count != lb->watcher_count)
            return false;
        for (uint32_t j = 0; j < la->watcher_count; j++)
            if (!watcher_eq(&la->watchers[j], &lb->watchers[j]))
                return false;
    }
    return true;
}

/* ---- Encoding ---------------------------------------------------------- */

/* As pidf.c's: a value the decoder gives back as it is. */
static bool ident_ok(str_t s, size_t max, bool required)
{
    if (!s.ptr)
        return !required;
    if (s.len > max || !pidf_xml_valid(s))
        return false;
    return !required || pidf_xml_trim(s).len > 0;
}

static bool doc_ok(const winfo_doc_t *doc)
{
    if (doc->state > WINFO_STATE_PARTIAL)
        return false;
    for (uint32_t i = 0; i < doc->list_count; i++) {
        const winfo_list_t *l = &doc->lists[i];
        if (!ident_ok(l->resource, WINFO_URI_MAX_BYTES, true) ||
            !ident_ok(l->package, WINFO_ID_MAX_BYTES, true))
            return false;
        for (uint32_t j = 0; j < l->watcher_count; j++) {
            const winfo_watcher_t *w = &l->watchers[j];
            if ((unsigned)w->status >= WINFO_STATUS_COUNT ||
                (unsigned)w->event >= WINFO_EVENT_COUNT ||
                !ident_ok(w->id, WINFO_ID_MAX_BYTES, true) || !w->uri.ptr ||
                !ident_ok(w->uri, WINFO_URI_MAX_BYTES, false) ||
                !ident_ok(w->lang, WINFO_ID_MAX_BYTES, false))
                return false;
        }
    }
    return true;
}

static void write_watcher(buf_t *b, const winfo_watcher_t *w)
{
    buf_append_str(b, "<watcher");
    pidf_xml_write_attr(b, "id", w->id);
    buf_printf(b, " status=\"%s\" event=\"%s\"", status_names[w->status],
               event_names[w->event]);
    if (w->display_name.ptr)
        pidf_xml_write_attr(b, "display-name", w->display_name);
    if (w->expiration_s != WINFO_SECONDS_NONE)
        buf_printf(b, " expiration=\"%llu\"", (unsigned long long)w->expiration_s);
    if (w->duration_subscribed_s != WINFO_SECONDS_NONE)
        buf_printf(b, " duration-subscribed=\"%llu\"",
                   (unsigned long long)w->duration_subscribed_s);
    if (w->lang.ptr)
        pidf_xml_write_attr(b, "xml:lang", w->lang);
    buf_append_str(b, ">");
    pidf_xml_write_text(b, w->uri);
    buf_append_str(b, "</watcher>");
}

int winfo_encode(buf_t *b, const winfo_doc_t *doc)
{
    if (!doc_ok(doc))
        return -EINVAL;
    size_t before = b->len;
    buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<watcherinfo xmlns=\"" WINFO_NS
                  "\" version=\"%llu\" state=\"%s\">",
               (unsigned long long)doc->version,
               doc->state == WINFO_STATE_FULL ? "full" : "partial");
    for (uint32_t i = 0; i < doc->list_count; i++) {
        const winfo_list_t *l = &doc->lists[i];
        buf_append_str(b, "<watcher-list");
        pidf_xml_write_attr(b, "resource", l->resource);
        pidf_xml_write_attr(b, "package", l->package);
        buf_append_str(b, ">");
        for (uint32_t j = 0; j < l->watcher_count; j++)
            write_watcher(b, &l->watchers[j]);
        buf_append_str(b, "</watcher-list>");
    }
    buf_append_str(b, "</watcherinfo>\n");
    ASSERT(b->len > before);
    return 0;
}
