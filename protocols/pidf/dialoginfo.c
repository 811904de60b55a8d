/*
 * dialoginfo.c - see dialoginfo.h. The same shape as winfo.c: pidf_xml_parse builds a bounded
 * tree, one walk copies what is kept into one allocation (document, dialogs, then an arena
 * the size of the input for the strings), and the tree is freed. A merge copies the dialogs
 * it keeps into a fresh allocation of the same layout.
 */
#include "protocols/pidf/dialoginfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"

_Static_assert(DIALOGINFO_ERR_COUNT == 15, "err_names has one name per code");
_Static_assert(DIALOGINFO_DOC_BYTES_DEFAULT <= PIDF_DOC_BYTES_LIMIT, "the parser's bound");
_Static_assert(DIALOGINFO_DEPTH_DEFAULT <= PIDF_DEPTH_LIMIT, "the parser's bound");
_Static_assert(DIALOGINFO_DIALOGS_MAX < DIALOGINFO_ELEMENTS_DEFAULT / 8,
               "a document at the dialog limit fits the element limit");
_Static_assert(DIALOGINFO_LINE_IDLE < DIALOGINFO_LINE_RINGING &&
                   DIALOGINFO_LINE_RINGING < DIALOGINFO_LINE_BUSY,
               "the line state of a document is the maximum over its dialogs");

const dialoginfo_limits_t dialoginfo_limits_default = {
    .doc_bytes_max = DIALOGINFO_DOC_BYTES_DEFAULT,
    .elements_max = DIALOGINFO_ELEMENTS_DEFAULT,
    .depth_max = DIALOGINFO_DEPTH_DEFAULT,
};

/* RFC 4235 §4.4, the enumerations of the schema, in the enums' order. */
static const char *const state_names[DIALOGINFO_STATE_COUNT] = {
    [DIALOGINFO_TRYING] = "trying",
    [DIALOGINFO_PROCEEDING] = "proceeding",
    [DIALOGINFO_EARLY] = "early",
    [DIALOGINFO_CONFIRMED] = "confirmed",
    [DIALOGINFO_TERMINATED] = "terminated",
};

static const char *const event_names[DIALOGINFO_EVENT_COUNT] = {
    [DIALOGINFO_EVENT_NONE] = "",
    [DIALOGINFO_EVENT_CANCELLED] = "cancelled",
    [DIALOGINFO_EVENT_REJECTED] = "rejected",
    [DIALOGINFO_EVENT_REPLACED] = "replaced",
    [DIALOGINFO_EVENT_LOCAL_BYE] = "local-bye",
    [DIALOGINFO_EVENT_REMOTE_BYE] = "remote-bye",
    [DIALOGINFO_EVENT_ERROR] = "error",
    [DIALOGINFO_EVENT_TIMEOUT] = "timeout",
};

static const char *const direction_names[DIALOGINFO_DIR_COUNT] = {
    [DIALOGINFO_DIR_NONE] = "",
    [DIALOGINFO_DIR_INITIATOR] = "initiator",
    [DIALOGINFO_DIR_RECIPIENT] = "recipient",
};

static const char *const line_names[DIALOGINFO_LINE_COUNT] = {
    [DIALOGINFO_LINE_IDLE] = "idle",
    [DIALOGINFO_LINE_RINGING] = "ringing",
    [DIALOGINFO_LINE_BUSY] = "busy",
};

static const char *const merge_names[DIALOGINFO_MERGE_COUNT] = {
    [DIALOGINFO_MERGE_APPLIED] = "applied",
    [DIALOGINFO_MERGE_STALE] = "stale",
    [DIALOGINFO_MERGE_REFETCH] = "refetch",
};

static const char *const err_names[DIALOGINFO_ERR_COUNT] = {
    [DIALOGINFO_OK] = "ok",
    [DIALOGINFO_ERR_TOO_LARGE] = "too-large",
    [DIALOGINFO_ERR_ENCODING] = "encoding",
    [DIALOGINFO_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [DIALOGINFO_ERR_DOCTYPE] = "doctype",
    [DIALOGINFO_ERR_TOO_MANY_ELEMENTS] = "too-many-elements",
    [DIALOGINFO_ERR_TOO_DEEP] = "too-deep",
    [DIALOGINFO_ERR_NOT_DIALOGINFO] = "not-dialog-info",
    [DIALOGINFO_ERR_VERSION] = "version",
    [DIALOGINFO_ERR_STATE] = "state",
    [DIALOGINFO_ERR_DIALOG_ID] = "dialog-id",
    [DIALOGINFO_ERR_DIALOG_STATE] = "dialog-state",
    [DIALOGINFO_ERR_TOO_MANY_DIALOGS] = "too-many-dialogs",
    [DIALOGINFO_ERR_TOO_LONG] = "too-long",
    [DIALOGINFO_ERR_NOMEM] = "nomem",
};

const char *dialoginfo_state_name(dialoginfo_state_t s)
{
    ASSERT((unsigned)s < DIALOGINFO_STATE_COUNT);
    return state_names[s];
}

const char *dialoginfo_event_name(dialoginfo_event_t e)
{
    ASSERT((unsigned)e < DIALOGINFO_EVENT_COUNT);
    return event_names[e];
}

const char *dialoginfo_direction_name(dialoginfo_direction_t d)
{
    ASSERT((unsigned)d < DIALOGINFO_DIR_COUNT);
    return direction_names[d];
}

const char *dialoginfo_line_name(dialoginfo_line_t l)
{
    ASSERT((unsigned)l < DIALOGINFO_LINE_COUNT);
    return line_names[l];
}

const char *dialoginfo_merge_name(dialoginfo_merge_t m)
{
    ASSERT((unsigned)m < DIALOGINFO_MERGE_COUNT);
    return merge_names[m];
}

const char *dialoginfo_err_name(dialoginfo_err_t code)
{
    ASSERT((unsigned)code < DIALOGINFO_ERR_COUNT);
    return err_names[code];
}

/* The index of s among names[first, count), or -1. */
static int lookup(str_t s, const char *const *names, int first, int count)
{
    for (int i = first; i < count; i++)
        if (str_eq_cstr(s, names[i]))
            return i;
    return -1;
}

/* ---- Decoding ---------------------------------------------------------- */

typedef struct {
    pidf_arena_t arena;
    dialoginfo_doc_t *doc;
    dialoginfo_err_t code;
    const char *reason;
    uint32_t line;
} dec_t;

static bool fail(dec_t *d, dialoginfo_err_t code, const char *reason, const pidf_xml_node_t *at)
{
    if (d->code == DIALOGINFO_OK) {
        d->code = code;
        d->reason = reason;
        d->line = at ? pidf_xml_line(at) : 0;
    }
    return false;
}

static bool nomem(dec_t *d)
{
    return fail(d, DIALOGINFO_ERR_NOMEM, "out of memory", NULL);
}

/* An element of the format: in its namespace, or in none (a root written with a prefix and
 * children without one). */
static bool is_di(const pidf_xml_node_t *n, const char *name)
{
    if (!pidf_xml_name_is(n, name))
        return false;
    const char *ns = pidf_xml_ns(n);
    return !ns || strcmp(ns, DIALOGINFO_NS) == 0;
}

/* A trimmed attribute, TOO_LONG beyond max; *out ptr NULL when absent. */
static bool attr(dec_t *d, const pidf_xml_node_t *n, const char *name, size_t max, str_t *out)
{
    if (!pidf_xml_attr(&d->arena, n, name, NULL, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return out->len <= max || fail(d, DIALOGINFO_ERR_TOO_LONG, "attribute value too long", n);
}

/* A trimmed attribute that is matched or parsed, not kept: no length bound, since a value
 * too long for its enumeration or number is dropped like any other that does not fit. */
static bool token(dec_t *d, const pidf_xml_node_t *n, const char *name, str_t *out)
{
    if (!pidf_xml_attr(&d->arena, n, name, NULL, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return true;
}

/* A trimmed text, TOO_LONG beyond max. */
static bool text(dec_t *d, const pidf_xml_node_t *n, size_t max, str_t *out)
{
    if (!pidf_xml_text(&d->arena, n, out))
        return nomem(d);
    *out = pidf_xml_trim(*out);
    return out->len <= max || fail(d, DIALOGINFO_ERR_TOO_LONG, "element text too long", n);
}

/* RFC 4235 §4.1.6: <identity display-name="...">URI</identity>. */
static bool dec_identity(dec_t *d, const pidf_xml_node_t *n, dialoginfo_party_t *p)
{
    if (!text(d, n, DIALOGINFO_URI_MAX_BYTES, &p->uri))
        return false;
    str_t name;
    if (!pidf_xml_attr(&d->arena, n, "display-name", NULL, &name))
        return nomem(d);
    if (!name.ptr && !pidf_xml_attr(&d->arena, n, "display", NULL, &name))
        return nomem(d);
    if (name.ptr)
        p->display_name =
            pidf_xml_trim(pidf_xml_cut(pidf_xml_trim(name), DIALOGINFO_NAME_MAX_BYTES));
    d->doc->ignored += pidf_xml_count_children(n);
    return true;
}

/* RFC 4235 §4.1.6: <local> or <remote>. */
static bool dec_party(dec_t *d, const pidf_xml_node_t *n, dialoginfo_party_t *p)
{
    bool have_identity = false, have_target = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        if (is_di(c, "identity") && !have_identity) {
            have_identity = true;
            if (!dec_identity(d, c, p))
                return false;
        } else if (is_di(c, "target") && !have_target) {
            /* The §4.4 schema requires uri; a target without one says nothing. */
            if (!attr(d, c, "uri", DIALOGINFO_URI_MAX_BYTES, &p->target))
                return false;
            have_target = p->target.ptr != NULL;
            d->doc->ignored += have_target ? pidf_xml_count_children(c) : 1;
        } else {
            d->doc->ignored++;          /* session-description, cseq, extensions */
        }
    }
    return true;
}

/* RFC 4235 §4.1.2: <state event="..." code="...">value</state>. */
static bool dec_state(dec_t *d, const pidf_xml_node_t *n, dialoginfo_dialog_t *dl)
{
    str_t v, event, code;
    if (!pidf_xml_text(&d->arena, n, &v))
        return nomem(d);
    int s = lookup(pidf_xml_trim(v), state_names, 0, DIALOGINFO_STATE_COUNT);
    if (s < 0)
        return fail(d, DIALOGINFO_ERR_DIALOG_STATE, "dialog state unknown", n);
    dl->state = (dialoginfo_state_t)s;
    if (!token(d, n, "event", &event) || !token(d, n, "code", &code))
        return false;
    int e = event.ptr ? lookup(event, event_names, 1, DIALOGINFO_EVENT_COUNT) : -1;
    dl->event = e > 0 ? (dialoginfo_event_t)e : DIALOGINFO_EVENT_NONE;
    uint64_t c;
    /* The schema's range: a SIP response code. */
    if (code.ptr && pidf_xml_parse_u64(code, &c) && c >= 100 && c <= 699)
        dl->code = (uint16_t)c;
    d->doc->ignored += pidf_xml_count_children(n);
    return true;
}

/* RFC 4235 §4.1.1: one <dialog>. Children in any order: Asterisk writes <state> last. */
static bool dec_dialog(dec_t *d, const pidf_xml_node_t *n, dialoginfo_dialog_t *dl)
{
    *dl = (dialoginfo_dialog_t){ .duration_s = DIALOGINFO_DURATION_NONE };
    str_t dir;
    if (!attr(d, n, "id", DIALOGINFO_ID_MAX_BYTES, &dl->id) ||
        !attr(d, n, "call-id", DIALOGINFO_ID_MAX_BYTES, &dl->call_id) ||
        !attr(d, n, "local-tag", DIALOGINFO_ID_MAX_BYTES, &dl->local_tag) ||
        !attr(d, n, "remote-tag", DIALOGINFO_ID_MAX_BYTES, &dl->remote_tag) ||
        !token(d, n, "direction", &dir))
        return false;
    if (!dl->id.ptr || dl->id.len == 0)
        return fail(d, DIALOGINFO_ERR_DIALOG_ID, "dialog without an id", n);
    int di = dir.ptr ? lookup(dir, direction_names, 1, DIALOGINFO_DIR_COUNT) : -1;
    dl->direction = di > 0 ? (dialoginfo_direction_t)di : DIALOGINFO_DIR_NONE;

    bool have_state = false, have_duration = false, have_local = false, have_remote = false;
    for (const pidf_xml_node_t *c = pidf_xml_first(n); c; c = pidf_xml_next(c)) {
        bool ok = true;
        if (is_di(c, "state") && !have_state) {
            have_state = true;
            ok = dec_state(d, c, dl);
        } else if (is_di(c, "duration") && !have_duration) {
            have_duration = true;
            str_t v;
            uint64_t s;
            if (!pidf_xml_text(&d->arena, c, &v))
                return nomem(d);
            /* DIALOGINFO_DURATION_NONE itself cannot be sent: it means absent. */
            if (pidf_xml_parse_u64(pidf_xml_trim(v), &s) && s != DIALOGINFO_DURATION_NONE)
                dl->duration_s = s;
        } else if (is_di(c, "local") && !have_local) {
            have_local = true;
            ok = dec_party(d, c, &dl->local);
        } else if (is_di(c, "remote") && !have_remote) {
            have_remote = true;
            ok = dec_party(d, c, &dl->remote);
        } else {
            d->doc->ignored++;          /* replaces, referred-by, route-set, extensions */
        }
        if (!ok)
            return false;
    }
    if (!have_state)
        return fail(d, DIALOGINFO_ERR_DIALOG_STATE, "dialog without <state>", n);
    return true;
}

/* The id keys the merge of partial documents (§4.3): two dialogs with one id could not be
 * told apart there. */
static bool id_taken(const dialoginfo_dialog_t *dialogs, uint32_t n, str_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (str_eq(dialogs[i].id, id))
            return true;
    return false;
}

static bool dec_root(dec_t *d, const pidf_xml_node_t *root, size_t input_len)
{
    if (!pidf_xml_is(root, "dialog-info", DIALOGINFO_NS))
        return fail(d, DIALOGINFO_ERR_NOT_DIALOGINFO, "root is not <dialog-info>", root);
    uint32_t nd = 0;
    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c))
        nd += is_di(c, "dialog");
    if (nd > DIALOGINFO_DIALOGS_MAX)
        return fail(d, DIALOGINFO_ERR_TOO_MANY_DIALOGS, "too many dialogs", root);

    size_t arrays = sizeof(dialoginfo_doc_t) + nd * sizeof(dialoginfo_dialog_t);
    char *mem = malloc(arrays + input_len);
    if (!mem)
        return nomem(d);
    dialoginfo_doc_t *doc = (dialoginfo_doc_t *)(void *)mem;
    dialoginfo_dialog_t *dialogs = (dialoginfo_dialog_t *)(void *)(mem + sizeof(*doc));
    *doc = (dialoginfo_doc_t){ .dialogs = dialogs };
    d->doc = doc;
    d->arena = (pidf_arena_t){ .base = mem + arrays, .cap = input_len };

    str_t version, state;
    if (!token(d, root, "version", &version) || !token(d, root, "state", &state) ||
        !attr(d, root, "entity", DIALOGINFO_URI_MAX_BYTES, &doc->entity))
        return false;
    if (!version.ptr || !pidf_xml_parse_u64(version, &doc->version))
        return fail(d, DIALOGINFO_ERR_VERSION, "version missing or not a number", root);
    if (state.ptr && str_eq_cstr(state, "full"))
        doc->state = DIALOGINFO_DOC_FULL;
    else if (state.ptr && str_eq_cstr(state, "partial"))
        doc->state = DIALOGINFO_DOC_PARTIAL;
    else
        return fail(d, DIALOGINFO_ERR_STATE, "state neither full nor partial", root);

    for (const pidf_xml_node_t *c = pidf_xml_first(root); c; c = pidf_xml_next(c)) {
        if (!is_di(c, "dialog")) {
            doc->ignored++;
            continue;
        }
        dialoginfo_dialog_t *dl = &dialogs[doc->dialog_count];
        if (!dec_dialog(d, c, dl))
            return false;
        if (id_taken(dialogs, doc->dialog_count, dl->id))
            return fail(d, DIALOGINFO_ERR_DIALOG_ID, "two dialogs with one id", c);
        doc->dialog_count++;
    }
    ASSERT(doc->dialog_count == nd);
    return true;
}

static int err_to_errno(dialoginfo_err_t code)
{
    switch (code) {
    case DIALOGINFO_OK:
        return 0;
    case DIALOGINFO_ERR_TOO_LARGE:
    case DIALOGINFO_ERR_TOO_MANY_ELEMENTS:
    case DIALOGINFO_ERR_TOO_DEEP:
    case DIALOGINFO_ERR_TOO_MANY_DIALOGS:
    case DIALOGINFO_ERR_TOO_LONG:
        return -E2BIG;
    case DIALOGINFO_ERR_NOMEM:
        return -ENOMEM;
    default:
        return -EBADMSG;
    }
}

static dialoginfo_err_t from_xml_err(pidf_xml_err_t e)
{
    static const dialoginfo_err_t map[] = {
        [PIDF_XML_OK] = DIALOGINFO_OK,
        [PIDF_XML_TOO_LARGE] = DIALOGINFO_ERR_TOO_LARGE,
        [PIDF_XML_ENCODING] = DIALOGINFO_ERR_ENCODING,
        [PIDF_XML_NOT_WELL_FORMED] = DIALOGINFO_ERR_NOT_WELL_FORMED,
        [PIDF_XML_DOCTYPE] = DIALOGINFO_ERR_DOCTYPE,
        [PIDF_XML_TOO_MANY_ELEMENTS] = DIALOGINFO_ERR_TOO_MANY_ELEMENTS,
        [PIDF_XML_TOO_DEEP] = DIALOGINFO_ERR_TOO_DEEP,
        [PIDF_XML_NOMEM] = DIALOGINFO_ERR_NOMEM,
    };
    ASSERT((unsigned)e < ARRAY_LEN(map));
    return map[e];
}

int dialoginfo_decode(const char *data, size_t len, const dialoginfo_limits_t *lim,
                      dialoginfo_doc_t **out, dialoginfo_error_t *err)
{
    dialoginfo_error_t dummy;
    err = err ? err : &dummy;
    lim = lim ? lim : &dialoginfo_limits_default;
    ASSERT(lim->doc_bytes_max > 0 && lim->doc_bytes_max <= PIDF_DOC_BYTES_LIMIT);
    ASSERT(lim->elements_max > 0 && lim->depth_max > 0 && lim->depth_max <= PIDF_DEPTH_LIMIT);
    *out = NULL;

    pidf_xml_status_t st;
    pidf_xml_doc_t *x = pidf_xml_parse(data, len, lim->doc_bytes_max, lim->elements_max,
                                 lim->depth_max, &st);
    if (!x) {
        *err = (dialoginfo_error_t){ from_xml_err(st.err), st.reason, st.line };
        return err_to_errno(err->code);
    }
    dec_t d = { .code = DIALOGINFO_OK, .reason = "" };
    bool ok = dec_root(&d, pidf_xml_root(x), len);
    pidf_xml_free(x);
    if (!ok) {
        free(d.doc);
        *err = (dialoginfo_error_t){ d.code, d.reason, d.line };
        return err_to_errno(d.code);
    }
    *err = (dialoginfo_error_t){ DIALOGINFO_OK, "", 0 };
    *out = d.doc;
    return 0;
}

void dialoginfo_doc_free(dialoginfo_doc_t *doc)
{
    free(doc);
}

/* ---- Equality ---------------------------------------------------------- */

static bool party_eq(const dialoginfo_party_t *a, const dialoginfo_party_t *b)
{
    return pidf_xml_opt_eq(a->uri, b->uri) && pidf_xml_opt_eq(a->display_name, b->display_name) &&
           pidf_xml_opt_eq(a->target, b->target);
}

static bool dialog_eq(const dialoginfo_dialog_t *a, const dialoginfo_dialog_t *b)
{
    return str_eq(a->id, b->id) && pidf_xml_opt_eq(a->call_id, b->call_id) &&
           pidf_xml_opt_eq(a->local_tag, b->local_tag) &&
           pidf_xml_opt_eq(a->remote_tag, b->remote_tag) && a->direction == b->direction &&
           a->state == b->state && a->event == b->event && a->code == b->code &&
           a->duration_s == b->duration_s && party_eq(&a->local, &b->local) &&
           party_eq(&a->remote, &b->remote);
}

bool dialoginfo_doc_equal(const dialoginfo_doc_t *a, const dialoginfo_doc_t *b)
{
    if (a->version != b->version || a->state != b->state || a->dialog_count != b->dialog_count ||
        !pidf_xml_opt_eq(a->entity, b->entity))
        return false;
    for (uint32_t i = 0; i < a->dialog_count; i++)
        if (!dialog_eq(&a->dialogs[i], &b->dialogs[i]))
            return false;
    return true;
}

/* ---- Line state -------------------------------------------------------- */

dialoginfo_line_t dialoginfo_dialog_line_state(const dialoginfo_dialog_t *d)
{
    ASSERT((unsigned)d->state < DIALOGINFO_STATE_COUNT);
    ASSERT((unsigned)d->direction < DIALOGINFO_DIR_COUNT);
    switch (d->state) {
    case DIALOGINFO_TRYING:
    case DIALOGINFO_PROCEEDING:
    case DIALOGINFO_EARLY:
        return d->direction == DIALOGINFO_DIR_INITIATOR ? DIALOGINFO_LINE_BUSY
                                                        : DIALOGINFO_LINE_RINGING;
    case DIALOGINFO_CONFIRMED:
        return DIALOGINFO_LINE_BUSY;
    default:
        return DIALOGINFO_LINE_IDLE;
    }
}

dialoginfo_line_t dialoginfo_line_state(const dialoginfo_doc_t *doc)
{
    dialoginfo_line_t l = DIALOGINFO_LINE_IDLE;
    for (uint32_t i = 0; i < doc->dialog_count && l != DIALOGINFO_LINE_BUSY; i++) {
        dialoginfo_line_t di = dialoginfo_dialog_line_state(&doc->dialogs[i]);
        l = di > l ? di : l;
    }
    return l;
}

/* ---- Held state -------------------------------------------------------- */

static const dialoginfo_dialog_t *find(const dialoginfo_doc_t *doc, str_t id)
{
    for (uint32_t i = 0; i < doc->dialog_count; i++)
        if (str_eq(doc->dialogs[i].id, id))
            return &doc->dialogs[i];
    return NULL;
}

static size_t party_bytes(const dialoginfo_party_t *p)
{
    return p->uri.len + p->display_name.len + p->target.len;
}

static size_t dialog_bytes(const dialoginfo_dialog_t *d)
{
    return d->id.len + d->call_id.len + d->local_tag.len + d->remote_tag.len +
           party_bytes(&d->local) + party_bytes(&d->remote);
}

/* Absent stays absent (ptr NULL); the arena was sized for every byte copied. */
static void copy_str(pidf_arena_t *a, str_t *s)
{
    if (!s->ptr)
        return;
    bool ok = pidf_arena_copy(a, s->ptr, s->len, s);
    ASSERT(ok);
}

static void copy_dialog(pidf_arena_t *a, dialoginfo_dialog_t *d)
{
    str_t *strs[] = { &d->id, &d->call_id, &d->local_tag, &d->remote_tag,
                      &d->local.uri, &d->local.display_name, &d->local.target,
                      &d->remote.uri, &d->remote.display_name, &d->remote.target };
    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        copy_str(a, strs[i]);
}

/* One allocation of the decoder's layout holding copies of pick[0, n). */
static dialoginfo_doc_t *build(uint64_t version, str_t entity,
                               const dialoginfo_dialog_t *const *pick, uint32_t n)
{
    size_t strings = entity.len;
    for (uint32_t i = 0; i < n; i++)
        strings += dialog_bytes(pick[i]);
    size_t arrays = sizeof(dialoginfo_doc_t) + n * sizeof(dialoginfo_dialog_t);
    char *mem = malloc(arrays + strings);
    if (!mem)
        return NULL;
    dialoginfo_doc_t *doc = (dialoginfo_doc_t *)(void *)mem;
    dialoginfo_dialog_t *dialogs = (dialoginfo_dialog_t *)(void *)(mem + sizeof(*doc));
    pidf_arena_t a = { .base = mem + arrays, .cap = strings };
    *doc = (dialoginfo_doc_t){ .version = version, .state = DIALOGINFO_DOC_FULL,
                               .entity = entity, .dialogs = dialogs, .dialog_count = n };
    copy_str(&a, &doc->entity);
    for (uint32_t i = 0; i < n; i++) {
        dialogs[i] = *pick[i];
        copy_dialog(&a, &dialogs[i]);
    }
    ASSERT(a.used == strings);
    return doc;
}

static bool add(const dialoginfo_dialog_t **pick, uint32_t *n, const dialoginfo_dialog_t *d)
{
    if (d->state == DIALOGINFO_TERMINATED)
        return true;
    if (*n == DIALOGINFO_DIALOGS_MAX)
        return false;
    pick[(*n)++] = d;
    return true;
}

int dialoginfo_merge(const dialoginfo_doc_t *held, const dialoginfo_doc_t *doc,
                     dialoginfo_doc_t **out)
{
    ASSERT(!held || held->state == DIALOGINFO_DOC_FULL);
    ASSERT(doc->state == DIALOGINFO_DOC_FULL || doc->state == DIALOGINFO_DOC_PARTIAL);
    *out = NULL;
    /* §4.3: a document older than the held state is discarded; one of the same version
     * repeats what is held. */
    if (held && doc->version <= held->version)
        return DIALOGINFO_MERGE_STALE;
    bool partial = doc->state == DIALOGINFO_DOC_PARTIAL;
    /* §4.3: a version more than one higher means notifications were lost; the document is
     * processed and the subscriber refreshes to get full state. */
    int outcome = partial && (!held || doc->version != held->version + 1)
                      ? DIALOGINFO_MERGE_REFETCH
                      : DIALOGINFO_MERGE_APPLIED;

    const dialoginfo_dialog_t *pick[DIALOGINFO_DIALOGS_MAX];
    uint32_t n = 0;
    if (partial && held) {
        /* Held dialogs keep their places, replaced by the document's version of them. */
        for (uint32_t i = 0; i < held->dialog_count; i++) {
            const dialoginfo_dialog_t *h = &held->dialogs[i], *u = find(doc, h->id);
            if (!add(pick, &n, u ? u : h))
                return -E2BIG;
        }
        for (uint32_t i = 0; i < doc->dialog_count; i++)
            if (!find(held, doc->dialogs[i].id) && !add(pick, &n, &doc->dialogs[i]))
                return -E2BIG;
    } else {
        for (uint32_t i = 0; i < doc->dialog_count; i++)
            if (!add(pick, &n, &doc->dialogs[i]))
                return -E2BIG;
    }
    str_t entity = doc->entity.ptr || !held ? doc->entity : held->entity;
    *out = build(doc->version, entity, pick, n);
    if (!*out)
        return -ENOMEM;
    return outcome;
}

/* ---- Encoding ---------------------------------------------------------- */

/* As winfo.c's: a value the decoder gives back as it is. */
static bool ident_ok(str_t s, size_t max, bool required)
{
    if (!s.ptr)
        return !required;
    if (s.len > max || !pidf_xml_valid(s))
        return false;
    return !required || pidf_xml_trim(s).len > 0;
}

static bool party_ok(const dialoginfo_party_t *p)
{
    if (p->display_name.ptr && !p->uri.ptr)
        return false;
    return ident_ok(p->uri, DIALOGINFO_URI_MAX_BYTES, false) &&
           ident_ok(p->target, DIALOGINFO_URI_MAX_BYTES, false);
}

static bool dialog_ok(const dialoginfo_dialog_t *d)
{
    if ((unsigned)d->direction >= DIALOGINFO_DIR_COUNT ||
        (unsigned)d->state >= DIALOGINFO_STATE_COUNT ||
        (unsigned)d->event >= DIALOGINFO_EVENT_COUNT)
        return false;
    if (d->code != 0 && (d->code < 100 || d->code > 699))
        return false;
    return ident_ok(d->id, DIALOGINFO_ID_MAX_BYTES, true) &&
           ident_ok(d->call_id, DIALOGINFO_ID_MAX_BYTES, false) &&
           ident_ok(d->local_tag, DIALOGINFO_ID_MAX_BYTES, false) &&
           ident_ok(d->remote_tag, DIALOGINFO_ID_MAX_BYTES, false) && party_ok(&d->local) &&
           party_ok(&d->remote);
}

static bool doc_ok(const dialoginfo_doc_t *doc)
{
    if ((unsigned)doc->state > DIALOGINFO_DOC_PARTIAL ||
        doc->dialog_count > DIALOGINFO_DIALOGS_MAX ||
        !ident_ok(doc->entity, DIALOGINFO_URI_MAX_BYTES, false))
        return false;
    for (uint32_t i = 0; i < doc->dialog_count; i++)
        if (!dialog_ok(&doc->dialogs[i]) || id_taken(doc->dialogs, i, doc->dialogs[i].id))
            return false;
    return true;
}

static void write_opt_attr(buf_t *b, const char *name, str_t v)
{
    if (v.ptr)
        pidf_xml_write_attr(b, name, v);
}

static void write_party(buf_t *b, const char *name, const dialoginfo_party_t *p)
{
    if (!p->uri.ptr && !p->target.ptr)
        return;
    buf_printf(b, "<%s>", name);
    if (p->uri.ptr) {
        buf_append_str(b, "<identity");
        write_opt_attr(b, "display-name", p->display_name);
        buf_append_str(b, ">");
        pidf_xml_write_text(b, p->uri);
        buf_append_str(b, "</identity>");
    }
    if (p->target.ptr) {
        buf_append_str(b, "<target");
        pidf_xml_write_attr(b, "uri", p->target);
        buf_append_str(b, "/>");
    }
    buf_printf(b, "</%s>", name);
}

static void write_dialog(buf_t *b, const dialoginfo_dialog_t *d)
{
    buf_append_str(b, "<dialog");
    pidf_xml_write_attr(b, "id", d->id);
    write_opt_attr(b, "call-id", d->call_id);
    write_opt_attr(b, "local-tag", d->local_tag);
    write_opt_attr(b, "remote-tag", d->remote_tag);
    if (d->direction != DIALOGINFO_DIR_NONE)
        buf_printf(b, " direction=\"%s\"", direction_names[d->direction]);
    buf_append_str(b, ">\n<state");
    if (d->event != DIALOGINFO_EVENT_NONE)
        buf_printf(b, " event=\"%s\"", event_names[d->event]);
    if (d->code)
        buf_printf(b, " code=\"%u\"", (unsigned)d->code);
    buf_printf(b, ">%s</state>", state_names[d->state]);
    if (d->duration_s != DIALOGINFO_DURATION_NONE)
        buf_printf(b, "<duration>%llu</duration>", (unsigned long long)d->duration_s);
    write_party(b, "local", &d->local);
    write_party(b, "remote", &d->remote);
    buf_append_str(b, "\n</dialog>\n");
}

int dialoginfo_encode(buf_t *b, const dialoginfo_doc_t *doc)
{
    if (!doc_ok(doc))
        return -EINVAL;
    size_t before = b->len;
    buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info xmlns=\"" DIALOGINFO_NS
                  "\" version=\"%llu\" state=\"%s\"",
               (unsigned long long)doc->version,
               doc->state == DIALOGINFO_DOC_FULL ? "full" : "partial");
    write_opt_attr(b, "entity", doc->entity);
    buf_append_str(b, ">\n");
    for (uint32_t i = 0; i < doc->dialog_count; i++)
        write_dialog(b, &doc->dialogs[i]);
    buf_append_str(b, "</dialog-info>\n");
    ASSERT(b->len > before);
    return 0;
}
