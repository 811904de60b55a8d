/*
 * The XML layer under PIDF, watcherinfo and dialog-info (protocols/pidf/pidf_int.h): the tree
 * it builds (names, namespaces, attributes, links, lines), how character data and attribute
 * values are decoded and normalised (XML 1.0 §2.11, §3.3.3, §4.6), every class of document it
 * must refuse with the error it must give, its bounds at the limit and one past it, and
 * libxml2's verdict and tree next to ours (xml_oracle.h) for every document here, for the
 * committed corpora of the three formats, and for documents made by cutting and changing
 * good ones byte by byte.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocols/pidf/pidf.h"
#include "protocols/pidf/pidf_int.h"
#include "tests/unit/pidf/xml_oracle.h"
#include "tests/unit/t.h"

/* ---- Helpers ----------------------------------------------------------- */

#define BYTES_MAX PIDF_DOC_BYTES_DEFAULT
#define ELEMENTS_MAX PIDF_ELEMENTS_DEFAULT
#define DEPTH_MAX PIDF_DEPTH_DEFAULT

static const char *err_name(pidf_xml_err_t e)
{
    static const char *const names[] = {
        "OK", "TOO_LARGE", "ENCODING", "NOT_WELL_FORMED", "DOCTYPE", "TOO_MANY_ELEMENTS",
        "TOO_DEEP", "NOMEM",
    };
    return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

/* A parse that does not return names its input rather than leaving meson's timeout to say
 * only that the test took too long. */
#define PARSE_SECONDS_MAX 10

static const char *watched;
static size_t watched_len;

static void on_alarm(int sig)
{
    (void)sig;
    fprintf(stderr, "no result after %d s for: ", PARSE_SECONDS_MAX);
    xml_oracle_print_escaped(watched, watched_len, 2000);
    fputc('\n', stderr);
    _exit(1);
}

static void watch(const char *xml, size_t len)
{
    watched = xml;
    watched_len = len;
    signal(SIGALRM, on_alarm);
    alarm(PARSE_SECONDS_MAX);
}

/* xml_oracle_check, watched. */
static int oracle(const char *xml, size_t len, uint32_t bytes_max, uint32_t elements_max,
                  uint32_t depth_max)
{
    watch(xml, len);
    return xml_oracle_check(xml, len, bytes_max, elements_max, depth_max);
}

/* Parses len bytes that must give a tree under the given bounds; libxml2 must agree. */
static pidf_xml_doc_t *PL(const char *xml, size_t len, uint32_t bytes_max,
                          uint32_t elements_max, uint32_t depth_max)
{
    pidf_xml_status_t st = { PIDF_XML_OK, NULL, 0 };
    watch(xml, len);
    pidf_xml_doc_t *d = pidf_xml_parse(xml, len, bytes_max, elements_max, depth_max, &st);
    if (!d) {
        fprintf(stderr, "parse failed: %s (%s) line %u: ", err_name(st.err),
                st.reason ? st.reason : "", st.line);
        xml_oracle_print_escaped(xml, len, 300);
        fputc('\n', stderr);
    }
    REQUIRE(d);
    REQUIRE(pidf_xml_root(d));
    CHECK(xml_oracle_compare(xml, len, d, NULL) == 0);
    return d;
}

static pidf_xml_doc_t *P(const char *xml)
{
    return PL(xml, strlen(xml), BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX);
}

/* The status of len bytes that must fail under the given bounds; libxml2 must agree. */
static pidf_xml_status_t EL(const char *xml, size_t len, uint32_t bytes_max,
                            uint32_t elements_max, uint32_t depth_max)
{
    pidf_xml_status_t st = { PIDF_XML_OK, NULL, 0 };
    watch(xml, len);
    pidf_xml_doc_t *d = pidf_xml_parse(xml, len, bytes_max, elements_max, depth_max, &st);
    CHECK(d == NULL);
    CHECK(st.err != PIDF_XML_OK);
    CHECK(st.reason && st.reason[0]);
    CHECK(xml_oracle_compare(xml, len, d, d ? NULL : &st) == 0);
    if (d)
        pidf_xml_free(d);
    return st;
}

/* An element's text through pidf_xml_text, into an arena of the input's size. */
typedef struct {
    char mem[8192];
    pidf_arena_t a;
} arena_t;

static pidf_arena_t *arena(arena_t *m, size_t cap)
{
    REQUIRE(cap <= sizeof(m->mem));
    m->a = (pidf_arena_t){ m->mem, 0, cap };
    return &m->a;
}

static const char *TEXT(pidf_arena_t *a, const pidf_xml_node_t *n)
{
    str_t s = { NULL, 0 };
    CHECK(pidf_xml_text(a, n, &s));
    CHECK(s.ptr != NULL);
    return t_str(s);
}

static const char *ATTR(pidf_arena_t *a, const pidf_xml_node_t *n, const char *name,
                        const char *ns)
{
    str_t s = { "x", 1 };
    CHECK(pidf_xml_attr(a, n, name, ns, &s));
    return t_str(s);
}

static unsigned attr_count(const pidf_xml_node_t *n)
{
    unsigned k = 0;
    for (const pidf_xml_attr_t *a = n->attrs; a; a = a->next)
        k++;
    return k;
}

#define NS_PIDF "urn:ietf:params:xml:ns:pidf"
#define NS_DM "urn:ietf:params:xml:ns:pidf:data-model"

/* ---- Tree shape -------------------------------------------------------- */

static void test_tree_shape(void)
{
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                         /* line 1 */
        "<presence xmlns=\"" NS_PIDF "\" xmlns:dm=\"" NS_DM "\"\n"              /* line 2 */
        "          entity=\"sip:alice@example.com\">\n"                         /* line 3 */
        "  <tuple id=\"t1\"><status><basic>open</basic></status></tuple>\n"     /* line 4 */
        "  <dm:person id=\"p1\" xml:lang=\"en\" dm:id=\"q\"/>\n"                /* line 5 */
        "  <x xmlns=\"urn:other\"><y/></x>\n"                                   /* line 6 */
        "  <z xmlns=\"\"><w a=\"1\"/></z>\n"                                    /* line 7 */
        "  <dm:q xmlns:dm=\"urn:redeclared\"><dm:r/></dm:q><dm:s/>\n"           /* line 8 */
        "</presence>\n";
    pidf_xml_doc_t *d = P(xml);
    const pidf_xml_node_t *root = pidf_xml_root(d);
    CHECK(root->parent == NULL);
    CHECK(root->next == NULL);
    CHECK_STR(t_str(pidf_xml_name(root)), "presence");
    CHECK_STR(pidf_xml_ns(root), NS_PIDF);
    CHECK_EQ(pidf_xml_line(root), 2);
    CHECK(pidf_xml_is(root, "presence", NS_PIDF));
    CHECK(!pidf_xml_is(root, "presence", NULL));
    CHECK(!pidf_xml_is(root, "presence", NS_DM));
    CHECK(pidf_xml_name_is(root, "presence"));
    CHECK(!pidf_xml_name_is(root, "presenc"));
    /* Namespace declarations are not attributes. */
    CHECK_EQ(attr_count(root), 1);
    CHECK_STR(t_str(root->attrs->name), "entity");
    CHECK(root->attrs->ns == NULL);
    CHECK_STR(t_str(root->attrs->value), "sip:alice@example.com");

    const pidf_xml_node_t *tuple = pidf_xml_first(root);
    REQUIRE(tuple);
    CHECK(tuple->parent == root);
    CHECK(pidf_xml_is(tuple, "tuple", NS_PIDF));
    CHECK_EQ(pidf_xml_line(tuple), 4);
    const pidf_xml_node_t *status = pidf_xml_first(tuple);
    REQUIRE(status && status->parent == tuple && status->next == NULL);
    CHECK(tuple->last == status);
    const pidf_xml_node_t *basic = pidf_xml_first(status);
    REQUIRE(basic && pidf_xml_is(basic, "basic", NS_PIDF));
    CHECK(basic->first == NULL && basic->last == NULL);
    CHECK_EQ(pidf_xml_line(basic), 4);

    const pidf_xml_node_t *person = pidf_xml_next(tuple);
    REQUIRE(person);
    CHECK(person->parent == root);
    CHECK(pidf_xml_is(person, "person", NS_DM));
    CHECK_EQ(pidf_xml_line(person), 5);
    /* An unprefixed attribute has no namespace, not its element's; xml: is always bound. */
    REQUIRE(attr_count(person) == 3);
    const pidf_xml_attr_t *a = person->attrs;
    CHECK_STR(t_str(a->name), "id");
    CHECK(a->ns == NULL);
    a = a->next;
    CHECK_STR(t_str(a->name), "lang");
    CHECK_STR(a->ns, PIDF_XML_NS_XML);
    CHECK_STR(t_str(a->value), "en");
    a = a->next;
    CHECK_STR(t_str(a->name), "id");
    CHECK_STR(a->ns, NS_DM);
    CHECK_STR(t_str(a->value), "q");

    const pidf_xml_node_t *x = pidf_xml_next(person);
    REQUIRE(x && pidf_xml_is(x, "x", "urn:other"));
    CHECK_EQ(attr_count(x), 0);
    REQUIRE(pidf_xml_first(x));
    CHECK(pidf_xml_is(pidf_xml_first(x), "y", "urn:other"));  /* inherited default */

    const pidf_xml_node_t *z = pidf_xml_next(x);
    REQUIRE(z);
    CHECK(pidf_xml_is(z, "z", NULL));                           /* xmlns="" undeclares */
    CHECK(pidf_xml_ns(z) == NULL);
    REQUIRE(pidf_xml_first(z));
    CHECK(pidf_xml_is(pidf_xml_first(z), "w", NULL));
    CHECK(pidf_xml_ns(pidf_xml_first(z)) == NULL);

    const pidf_xml_node_t *q = pidf_xml_next(z);
    REQUIRE(q);
    CHECK(pidf_xml_is(q, "q", "urn:redeclared"));
    CHECK_EQ(pidf_xml_line(q), 8);
    REQUIRE(pidf_xml_first(q));
    CHECK(pidf_xml_is(pidf_xml_first(q), "r", "urn:redeclared"));
    const pidf_xml_node_t *s = pidf_xml_next(q);
    REQUIRE(s);
    CHECK(pidf_xml_is(s, "s", NS_DM));                          /* the redeclaration ended */
    CHECK(s->next == NULL);
    CHECK(root->last == s);
    CHECK_EQ(pidf_xml_count_children(status), 1);
    CHECK_EQ(pidf_xml_count_children(basic), 0);
    pidf_xml_free(d);

    /* A prefixed root; the same URI under two prefixes; a declaration after its use in the
     * same start tag; the xml prefix declared as itself; xml: on an element. */
    d = P("<p:r xmlns:p='urn:a' xmlns:q='urn:a' p:a='1' q:b='2' c:d='3' xmlns:c='urn:c'"
          " xmlns:xml='" PIDF_XML_NS_XML "'><xml:e/></p:r>");
    root = pidf_xml_root(d);
    CHECK(pidf_xml_is(root, "r", "urn:a"));
    REQUIRE(attr_count(root) == 3);
    CHECK_STR(root->attrs->ns, "urn:a");
    CHECK_STR(root->attrs->next->ns, "urn:a");
    CHECK_STR(root->attrs->next->next->ns, "urn:c");
    REQUIRE(pidf_xml_first(root));
    CHECK(pidf_xml_is(pidf_xml_first(root), "e", PIDF_XML_NS_XML));
    pidf_xml_free(d);

    /* Children in order, first/last/next consistent. */
    d = P("<r><a/><b/><c/><d/></r>");
    root = pidf_xml_root(d);
    const char *names[] = { "a", "b", "c", "d" };
    unsigned i = 0;
    for (const pidf_xml_node_t *k = pidf_xml_first(root); k; k = pidf_xml_next(k), i++) {
        REQUIRE(i < 4);
        CHECK(pidf_xml_name_is(k, names[i]));
        CHECK(k->parent == root);
        if (!k->next)
            CHECK(root->last == k);
    }
    CHECK_EQ(i, 4);
    CHECK_EQ(pidf_xml_count_children(root), 4);
    pidf_xml_free(d);
}

/* pidf_xml_text and pidf_xml_attr: copies into the arena, absent versus empty. */
static void test_text_and_attr_queries(void)
{
    const char *xml = "<r a='1' p:a='2' xmlns:p='urn:p' e=''>x<k/>y<!-- c -->z<e/></r>";
    pidf_xml_doc_t *d = P(xml);
    arena_t m;
    pidf_arena_t *a = arena(&m, strlen(xml));
    const pidf_xml_node_t *root = pidf_xml_root(d);
    CHECK_STR(TEXT(a, root), "xyz");
    CHECK_STR(TEXT(a, pidf_xml_first(root)), "");      /* present, empty, ptr not NULL */
    CHECK_STR(ATTR(a, root, "a", NULL), "1");
    CHECK_STR(ATTR(a, root, "a", "urn:p"), "2");
    CHECK_STR(ATTR(a, root, "e", NULL), "");
    CHECK_STR(ATTR(a, root, "b", NULL), "(absent)");
    CHECK_STR(ATTR(a, root, "a", "urn:q"), "(absent)");
    CHECK_STR(ATTR(a, root, "p", NULL), "(absent)");    /* xmlns:p is not an attribute */
    CHECK_STR(ATTR(a, root, "xmlns", NULL), "(absent)");
    CHECK(a->used <= a->cap);
    pidf_xml_free(d);
}

/* ---- Character data and attribute values ------------------------------- */

typedef struct {
    const char *xml;
    const char *text;           /* the root's text */
} text_case_t;

static void test_text_decoding(void)
{
    static const text_case_t cases[] = {
        { "<r>a&lt;b&gt;c&amp;d&apos;e&quot;f</r>", "a<b>c&d'e\"f" },
        { "<r>&#65;&#x42;&#x000043;&#0000068;&#xe9;&#233;</r>", "ABCD\xC3\xA9\xC3\xA9" },
        { "<r>&#x20AC;&#8364;</r>", "\xE2\x82\xAC\xE2\x82\xAC" },
        { "<r>&#x1F600;&#128512;&#x10FFFF;</r>",
          "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF" },
        { "<r>&#xFFFD;&#xE000;&#xD7FF;&#x10000;</r>",
          "\xEF\xBF\xBD\xEE\x80\x80\xED\x9F\xBF\xF0\x90\x80\x80" },
        /* Line ends: CRLF and a lone CR become LF (§2.11); references to them are kept. */
        { "<r>a\r\nb\rc\n\rd\r\r\ne</r>", "a\nb\nc\n\nd\n\ne" },
        { "<r>&#13;&#xD;&#10;&#9;\r&#13;\n</r>", "\r\r\n\t\n\r\n" },
        /* CDATA: markup and references are not recognised inside; line ends are. */
        { "<r>x<![CDATA[<&amp;>]]]]>y</r>", "x<&amp;>]]y" },
        { "<r><![CDATA[]]><![CDATA[]]]></r>", "]" },
        { "<r><![CDATA[a\r\nb\rc]]></r>", "a\nb\nc" },
        /* Mixed content: the element's own pieces, in order, around children, comments and
         * processing instructions. */
        { "<r>a<b>inner</b>c<!--x-->d<?pi x?>e<![CDATA[f]]>g</r>", "acdefg" },
        { "<r> <a/>\n\t</r>", " \n\t" },
        { "<r>a>b]]c]>d]</r>", "a>b]]c]>d]" },
        { "<r>\xEF\xBB\xBF\x7F\xC2\x80\xC2\x9F</r>", "\xEF\xBB\xBF\x7F\xC2\x80\xC2\x9F" },
        { "<r>\xEF\xBF\xBD\xF0\x90\x80\x80\xF4\x8F\xBF\xBD</r>",
          "\xEF\xBF\xBD\xF0\x90\x80\x80\xF4\x8F\xBF\xBD" },
        { "<r></r>", "" },
        { "<r/>", "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pidf_xml_doc_t *d = P(cases[i].xml);
        arena_t m;
        pidf_arena_t *a = arena(&m, strlen(cases[i].xml));
        const char *got = TEXT(a, pidf_xml_root(d));
        if (strcmp(got, cases[i].text) != 0)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].xml);
        CHECK_STR(got, cases[i].text);
        for (const pidf_xml_piece_t *p = pidf_xml_root(d)->text; p; p = p->next)
            CHECK(pidf_xml_valid(p->text));
        pidf_xml_free(d);
    }
    /* The inner element's text is its own. */
    pidf_xml_doc_t *d = P("<r>a<b>x&amp;<c>y</c>z</b>c</r>");
    arena_t m;
    pidf_arena_t *a = arena(&m, 64);
    const pidf_xml_node_t *b = pidf_xml_first(pidf_xml_root(d));
    CHECK_STR(TEXT(a, b), "x&z");
    CHECK_STR(TEXT(a, pidf_xml_first(b)), "y");
    pidf_xml_free(d);
}

static void test_attr_values(void)
{
    const char *xml = "<r a='x&#9;y&#10;z&#13;w&#32;v' b='p\tq\nr\r\ns\rt' c='\"' d=\"'\""
                      " e='&lt;&gt;&amp;&quot;&apos;' f='>' g='  two  spaces  ' h=''"
                      " i='&#x1F600;]]>' j=\"a\r\n\r\nb\"/>";
    pidf_xml_doc_t *d = P(xml);
    const pidf_xml_node_t *root = pidf_xml_root(d);
    arena_t m;
    pidf_arena_t *a = arena(&m, strlen(xml));
    CHECK_STR(ATTR(a, root, "a", NULL), "x\ty\nz\rw v");  /* references keep the character */
    CHECK_STR(ATTR(a, root, "b", NULL), "p q r s t");     /* literal TAB LF CR(LF) -> space */
    CHECK_STR(ATTR(a, root, "c", NULL), "\"");
    CHECK_STR(ATTR(a, root, "d", NULL), "'");
    CHECK_STR(ATTR(a, root, "e", NULL), "<>&\"'");
    CHECK_STR(ATTR(a, root, "f", NULL), ">");
    CHECK_STR(ATTR(a, root, "g", NULL), "  two  spaces  ");   /* CDATA: not collapsed */
    CHECK_STR(ATTR(a, root, "h", NULL), "");
    CHECK_STR(ATTR(a, root, "i", NULL), "\xF0\x9F\x98\x80]]>");
    CHECK_STR(ATTR(a, root, "j", NULL), "a  b");
    CHECK_EQ(attr_count(root), 10);
    pidf_xml_free(d);

    /* A namespace URI is the normalised value too. */
    d = P("<r xmlns='urn:a&amp;b&#x3A;c'><p:x xmlns:p='u&#9;v'/></r>");
    root = pidf_xml_root(d);
    CHECK_STR(pidf_xml_ns(root), "urn:a&b:c");
    REQUIRE(pidf_xml_first(root));
    CHECK_STR(pidf_xml_ns(pidf_xml_first(root)), "u\tv");
    pidf_xml_free(d);
}

/* A CDATA section holds no references: '&' is text in it, line ends still normalised. Run
 * last: a parser that decodes references in CDATA may not come back from these. */
static void test_cdata_is_not_decoded(void)
{
    static const text_case_t cases[] = {
        { "<r><![CDATA[a\r&amp;]]></r>", "a\n&amp;" },
        { "<r><![CDATA[\r\n&#65;&#x42;]]></r>", "\n&#65;&#x42;" },
        { "<r><![CDATA[\r&]]></r>", "\n&" },
        { "<r><![CDATA[&\r]]></r>", "&\n" },
        { "<r><![CDATA[&foo;\r&#0;]]></r>", "&foo;\n&#0;" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pidf_xml_doc_t *d = P(cases[i].xml);
        arena_t m;
        pidf_arena_t *a = arena(&m, strlen(cases[i].xml));
        CHECK_STR(TEXT(a, pidf_xml_root(d)), cases[i].text);
        pidf_xml_free(d);
    }
}

/* ---- Lines ------------------------------------------------------------- */

static void test_lines(void)
{
    const char *xml = "<?xml version='1.0'?>\n"          /* 1 */
                      "<r>\n"                            /* 2 */
                      "<a/>\r\n"                         /* 3 */
                      "<b/>\r"                           /* 4 */
                      "<c\n/>\n"                         /* 5, 6 */
                      "<d><![CDATA[\n\r\n]]><e/></d>"    /* 7, 8, 9 */
                      "<!--\r-->"                        /* 9, 10 */
                      "<f a='\n'/><?p \n?>"              /* 10, 11, 12 */
                      "<g>&#10;&#13;</g>"                /* 12: references are no line ends */
                      "</r>";
    pidf_xml_doc_t *d = P(xml);
    const pidf_xml_node_t *root = pidf_xml_root(d);
    CHECK_EQ(pidf_xml_line(root), 2);
    const pidf_xml_node_t *k = pidf_xml_first(root);
    static const uint32_t lines[] = { 3, 4, 5, 7, 10, 12 };
    for (unsigned i = 0; i < 6; i++, k = pidf_xml_next(k)) {
        REQUIRE(k);
        CHECK_EQ(pidf_xml_line(k), lines[i]);
    }
    CHECK(k == NULL);
    const pidf_xml_node_t *dd = pidf_xml_next(pidf_xml_next(pidf_xml_next(pidf_xml_first(root))));
    REQUIRE(dd && pidf_xml_first(dd));
    CHECK_EQ(pidf_xml_line(pidf_xml_first(dd)), 9);
    pidf_xml_free(d);

    /* Errors carry the line where they were found. */
    static const struct {
        const char *xml;
        uint32_t line;
    } bad[] = {
        { "<r>\n\n<a></b></r>", 3 },
        { "<r>\r\n&foo;</r>", 2 },
        { "<r>\r\r\r<a b='<'/></r>", 4 },
        { "<r>\n<![CDATA[\n]]>\n<p:x/></r>", 4 },
        { "<?xml version='1.0'?>\n<r/>\n<r/>", 3 },
        { "<r\n\n>\n\x01</r>", 4 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pidf_xml_status_t st = EL(bad[i].xml, strlen(bad[i].xml), BYTES_MAX, ELEMENTS_MAX,
                                  DEPTH_MAX);
        if (st.line != bad[i].line)
            fprintf(stderr, "line case %zu\n", i);
        CHECK_EQ(st.err, PIDF_XML_NOT_WELL_FORMED);
        CHECK_EQ(st.line, bad[i].line);
    }
}

/* ---- Documents that parse ---------------------------------------------- */

/* Each must give a tree, equal to libxml2's. */
static const char *const good_docs[] = {
    "<r/>",
    "<r></r>",
    "<r-/>",
    "<_r.1-x/>",
    "<r\n/>",
    "<r a = '1'\t\n/>",
    "<r></r \n>",
    "<\xC3\xA9l\xC3\xA9ment \xC3\xA9=''/>",
    "<r\xF0\x90\x80\x80 a\xCC\x80='1'/>",               /* U+10000 and a combining mark */
    "<r\xC2\xB7x\xEF\xBF\xBD/>",                          /* U+00B7, U+FFFD (XML 1.0 [4a]) */
    "<\xE4\xB8\xAD\xE6\x96\x87>\xE6\x96\x87</\xE4\xB8\xAD\xE6\x96\x87>",
    "\xEF\xBB\xBF<r/>",
    "\xEF\xBB\xBF<?xml version='1.0'?><r/>",
    "<?xml version='1.0'?><r/>",
    "<?xml version=\"1.0\"?>\n<r/>\n",
    "<?xml version='1.1'?><r/>",
    "<?xml version='1.10'?><r/>",
    "<?xml version = '1.0' ?><r/>",
    "<?xml version='1.0' encoding='utf-8'?><r/>",
    "<?xml version='1.0' encoding='ISO-8859-1'?><r>\xC3\xA9</r>",    /* UTF-8 anyway */
    "<?xml version='1.0' encoding='A._-9'?><r/>",
    "<?xml version='1.0' standalone='yes'?><r/>",
    "<?xml version='1.0' encoding=\"UTF-8\" standalone=\"no\"\n?><r/>",
    "<!----><r/>",
    "<!-- - --><r/><!---->",
    "<!-- <r> & ]]> --><r/>",
    "<?pi?><r/>",
    "<?pi data ?><r><?pi ?x>?></r>",
    "<?xml-stylesheet href='a'?><r/>",
    "<?xmlfoo?><r/>",
    "<?XmLx?><r/>",
    "\n\t <!-- c --> <?p?>\r\n<r/>\r\n<!-- c -->\n<?p?> \n",
    "<r a='>' b=\"]]>\">>]]</r>",
    "<r xml:space='preserve' xml:lang=''/>",
    "<r xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
    "<r xmlns='urn:a'><a xmlns=''><b/></a><c/></r>",
    "<p:r xmlns:p='urn:a'><p:a xmlns:p='urn:b'/><p:c/></p:r>",
    "<r xmlns:a='urn:u' xmlns:b='urn:v' a:x='1' b:x='2' x='3'/>",
    "<r xmlns:p='urn:u' p:xmlns='1' xmlns2='2' xmlnsx:y='3' xmlns:xmlnsx='urn:x'/>",
    "<r xmlns=' urn:spaces '/>",
    "<r xmlns='relative/uri'/>",
    "<r xmlns:p='#x'><p:a/></r>",
    "<r>&#x10FFFF;&#xFFFD;&#9;</r>",
    "<r a='&#x3C;&#60;'/>",
    "<r>&amp;lt;</r>",
    "<r><a><b><c><d/></c></b></a></r>",
};

static void test_good_docs(void)
{
    for (size_t i = 0; i < sizeof(good_docs) / sizeof(good_docs[0]); i++)
        pidf_xml_free(P(good_docs[i]));
}

/* ---- Documents that must fail ------------------------------------------ */

typedef struct {
    const char *xml;
    size_t len;                 /* 0: strlen */
    pidf_xml_err_t err;
} bad_case_t;

#define NWF PIDF_XML_NOT_WELL_FORMED
#define ENC PIDF_XML_ENCODING
#define DTD PIDF_XML_DOCTYPE

static const bad_case_t bad_docs[] = {
    /* Structure. */
    { " ", 0, NWF },
    { "\n\r\n", 0, NWF },
    { "<!-- c -->", 0, NWF },
    { "<?pi?>", 0, NWF },
    { "\xEF\xBB\xBF", 0, NWF },
    { "<?xml version='1.0'?>", 0, NWF },
    { "<r>", 0, NWF },
    { "<r><a></r>", 0, NWF },
    { "<r></a>", 0, NWF },
    { "<r></R>", 0, NWF },
    { "<r/></r>", 0, NWF },
    { "</r>", 0, NWF },
    { "<r", 0, NWF },
    { "<r ", 0, NWF },
    { "<r/", 0, NWF },
    { "<r a", 0, NWF },
    { "<r a=", 0, NWF },
    { "<r a='x", 0, NWF },
    { "<r a='x'", 0, NWF },
    { "<r></r", 0, NWF },
    { "<r>text", 0, NWF },
    { "< r/>", 0, NWF },
    { "<r / >", 0, NWF },
    { "<r/ >", 0, NWF },
    { "<r></ r>", 0, NWF },
    { "<r></r/>", 0, NWF },
    { "<>", 0, NWF },
    { "<r><></r>", 0, NWF },
    { "text<r/>", 0, NWF },
    { "<r/>text", 0, NWF },
    { "<r/>&amp;", 0, NWF },
    { "&amp;<r/>", 0, NWF },
    { "<r/>&#32;", 0, NWF },
    { "<r/><![CDATA[x]]>", 0, NWF },
    { "<![CDATA[x]]><r/>", 0, NWF },
    { "<r/><r/>", 0, NWF },
    { "<r/>\n<s></s>", 0, NWF },
    { "\xEF\xBB\xBF\xEF\xBB\xBF<r/>", 0, NWF },          /* a second BOM is U+FEFF text */
    { "<r/>\xEF\xBB\xBF", 0, NWF },
    /* Names. */
    { "<1r/>", 0, NWF },
    { "<-r/>", 0, NWF },
    { "<.r/>", 0, NWF },
    { "<\xCC\x80r/>", 0, NWF },                           /* a combining mark cannot start */
    { "<r\xC3\x97/>", 0, NWF },                           /* U+00D7 is not a name char */
    { "<r 1a='1'/>", 0, NWF },
    { "<r a\xC3\x97='1'/>", 0, NWF },
    /* Attributes. */
    { "<r a/>", 0, NWF },
    { "<r a b='1'/>", 0, NWF },
    { "<r a=x/>", 0, NWF },
    { "<r a='1\"/>", 0, NWF },
    { "<r a='1'b='2'/>", 0, NWF },
    { "<r a=\"1\"b=\"2\"/>", 0, NWF },
    { "<r a='1' a='2'/>", 0, NWF },
    { "<r a='1' b='2' a='1'/>", 0, NWF },
    { "<r xmlns:p='urn:u' xmlns:q='urn:u' p:a='1' q:a='2'/>", 0, NWF },
    { "<r xmlns:p='urn:u' p:a='1' p:a='2'/>", 0, NWF },
    { "<r xmlns='urn:a' xmlns='urn:b'/>", 0, NWF },
    { "<r xmlns:p='urn:a' xmlns:p='urn:a'/>", 0, NWF },
    { "<r a='<'/>", 0, NWF },
    { "<r a='a<b'/>", 0, NWF },
    { "<r a='&'/>", 0, NWF },
    { "<r a='&amp'/>", 0, NWF },
    { "<r a='&foo;'/>", 0, NWF },
    { "<r a='&#0;'/>", 0, NWF },
    { "<r a='\x01'/>", 0, NWF },
    { "<r a='\xEF\xBF\xBE'/>", 0, NWF },
    /* References. */
    { "<r>&foo;</r>", 0, NWF },
    { "<r>&Amp;</r>", 0, NWF },
    { "<r>&amp</r>", 0, NWF },
    { "<r>&</r>", 0, NWF },
    { "<r>a & b</r>", 0, NWF },
    { "<r>& amp;</r>", 0, NWF },
    { "<r>&;</r>", 0, NWF },
    { "<r>&#;</r>", 0, NWF },
    { "<r>&#x;</r>", 0, NWF },
    { "<r>&#65</r>", 0, NWF },
    { "<r>&#X41;</r>", 0, NWF },
    { "<r>&#x41 ;</r>", 0, NWF },
    { "<r>&#-1;</r>", 0, NWF },
    { "<r>&#+65;</r>", 0, NWF },
    { "<r>&#0;</r>", 0, NWF },
    { "<r>&#x0;</r>", 0, NWF },
    { "<r>&#x00;</r>", 0, NWF },
    { "<r>&#1;</r>", 0, NWF },
    { "<r>&#x1F;</r>", 0, NWF },
    { "<r>&#xD800;</r>", 0, NWF },
    { "<r>&#xDFFF;</r>", 0, NWF },
    { "<r>&#55296;</r>", 0, NWF },
    { "<r>&#xFFFE;</r>", 0, NWF },
    { "<r>&#xFFFF;</r>", 0, NWF },
    { "<r>&#x110000;</r>", 0, NWF },
    { "<r>&#4294967361;</r>", 0, NWF },                  /* 2^32 + 65: no wrap to 'A' */
    { "<r>&#x100000041;</r>", 0, NWF },
    { "<r>&#99999999999999999999999999;</r>", 0, NWF },
    { "<r>&#xG;</r>", 0, NWF },
    /* Character data. */
    { "<r>]]></r>", 0, NWF },
    { "<r>a]]>b</r>", 0, NWF },
    { "<r>]]]></r>", 0, NWF },
    { "<r><![CDATA[x]]</r>", 0, NWF },
    { "<r><![CDATA[x</r>", 0, NWF },
    { "<r><![cdata[x]]></r>", 0, NWF },
    { "<r><![CDATA [x]]></r>", 0, NWF },
    { "<r>\x01</r>", 0, NWF },
    { "<r>\x08</r>", 0, NWF },
    { "<r>\x0B</r>", 0, NWF },
    { "<r>\x0C</r>", 0, NWF },
    { "<r>\x1F</r>", 0, NWF },
    { "<r>\xEF\xBF\xBE</r>", 0, NWF },
    { "<r>\xEF\xBF\xBF</r>", 0, NWF },
    { "<r><![CDATA[\x01]]></r>", 0, NWF },
    /* Comments. */
    { "<r><!-- a -- b --></r>", 0, NWF },
    { "<!-- a --- --><r/>", 0, NWF },
    { "<!-- a ---><r/>", 0, NWF },
    { "<!---><r/>", 0, NWF },
    { "<!--><r/>", 0, NWF },
    { "<r><!-- x</r>", 0, NWF },
    { "<r><!- x --></r>", 0, NWF },
    { "<!--\x01--><r/>", 0, NWF },
    { "<r/><!--", 0, NWF },
    /* Processing instructions and the XML declaration. */
    { "<?xml version='1.0'?><?xml version='1.0'?><r/>", 0, NWF },
    { "<r/><?xml version='1.0'?>", 0, NWF },
    { "<r><?xml version='1.0'?></r>", 0, NWF },
    { " <?xml version='1.0'?><r/>", 0, NWF },
    { "\n<?xml version='1.0'?><r/>", 0, NWF },
    { "<!-- c --><?xml version='1.0'?><r/>", 0, NWF },
    { "<?XML version='1.0'?><r/>", 0, NWF },
    { "<?Xml?><r/>", 0, NWF },
    { "<r><?xMl x?></r>", 0, NWF },
    { "<?xml?><r/>", 0, NWF },
    { "<?xml ?><r/>", 0, NWF },
    { "<?xml encoding='UTF-8'?><r/>", 0, NWF },
    { "<?xml version='2.0'?><r/>", 0, NWF },
    { "<?xml version='1'?><r/>", 0, NWF },
    { "<?xml version='1.0a'?><r/>", 0, NWF },
    { "<?xml version='1.x'?><r/>", 0, NWF },
    { "<?xml version='01.0'?><r/>", 0, NWF },
    { "<?xml version=' 1.0'?><r/>", 0, NWF },
    { "<?xml version=1.0?><r/>", 0, NWF },
    { "<?xml version='1.0\"?><r/>", 0, NWF },
    { "<?xml version='1.0'encoding='UTF-8'?><r/>", 0, NWF },
    { "<?xml version='1.0' encoding='UTF-8'standalone='no'?><r/>", 0, NWF },  /* libxml2: ok */
    { "<?xml version='1.0'standalone='no'?><r/>", 0, NWF },
    { "<?xml version='1.'?><r/>", 0, NWF },                                 /* libxml2: ok */
    { "<?xml version='1.0' encoding=''?><r/>", 0, NWF },
    { "<?xml version='1.0' encoding='8bit'?><r/>", 0, NWF },
    { "<?xml version='1.0' encoding='UTF 8'?><r/>", 0, NWF },
    { "<?xml version='1.0' standalone='maybe'?><r/>", 0, NWF },
    { "<?xml version='1.0' standalone='YES'?><r/>", 0, NWF },
    { "<?xml version='1.0' standalone='yes' encoding='UTF-8'?><r/>", 0, NWF },
    { "<?xml version='1.0' encoding='UTF-8' version='1.0'?><r/>", 0, NWF },
    { "<?xml version='1.0' foo='bar'?><r/>", 0, NWF },
    { "<?xml version='1.0'><r/>", 0, NWF },
    { "<?xml version='1.0'?", 0, NWF },
    { "<?" "?><r/>", 0, NWF },                               /* split: not a trigraph */
    { "<?1pi?><r/>", 0, NWF },
    { "<?pi", 0, NWF },
    { "<?pi?x><r/>", 0, NWF },
    { "<?pi\x01?><r/>", 0, NWF },
    { "<?a:b?><r/>", 0, NWF },           /* Namespaces in XML §7: no colon in a PI target */
    /* Namespaces. */
    { "<p:r/>", 0, NWF },
    { "<r p:a='1'/>", 0, NWF },
    { "<r><p:a xmlns:p='urn:p'/><p:b/></r>", 0, NWF },
    { "<:r/>", 0, NWF },
    { "<r:/>", 0, NWF },
    { "<a:b:c xmlns:a='urn:a'/>", 0, NWF },
    { "<r xmlns:a='urn:a' a:b:c='1'/>", 0, NWF },
    { "<r :a='1'/>", 0, NWF },
    { "<r a:='1'/>", 0, NWF },
    { "<r xmlns:p=''/>", 0, NWF },
    { "<r xmlns:='urn:a'/>", 0, NWF },
    { "<r xmlns:xmlns='urn:a'/>", 0, NWF },
    { "<r xmlns:xmlns='http://www.w3.org/2000/xmlns/'/>", 0, NWF },
    { "<r xmlns:xml='urn:a'/>", 0, NWF },
    { "<r xmlns:xml=''/>", 0, NWF },
    { "<r xmlns:p='http://www.w3.org/XML/1998/namespace'/>", 0, NWF },
    { "<r xmlns:p='http://www.w3.org/2000/xmlns/'/>", 0, NWF },
    { "<r xmlns='http://www.w3.org/XML/1998/namespace'/>", 0, NWF },
    { "<r xmlns='http://www.w3.org/2000/xmlns/'/>", 0, NWF },
    { "<xmlns:r/>", 0, NWF },
    { "<r xmlns:p='urn:p'><xmlns:a/></r>", 0, NWF },
    /* Encoding: not UTF-8, or a NUL. */
    { "<r>\xFF</r>", 0, ENC },
    { "<r>\xC3</r>", 0, ENC },
    { "<r>\x80</r>", 0, ENC },
    { "<r>\xC0\x80</r>", 0, ENC },                        /* overlong NUL */
    { "<r>\xC1\xBF</r>", 0, ENC },
    { "<r>\xE0\x80\xAF</r>", 0, ENC },                    /* overlong '/' */
    { "<r>\xED\xA0\x80</r>", 0, ENC },                    /* encoded surrogate */
    { "<r>\xF4\x90\x80\x80</r>", 0, ENC },                /* above U+10FFFF */
    { "<r>\xF5\x80\x80\x80</r>", 0, ENC },
    { "<r>\xE2\x82</r>", 0, ENC },
    { "<r a='\xE9'/>", 0, ENC },
    { "<\xFFr/>", 0, ENC },
    { "<r/>\xFF", 0, ENC },
    { "<r>\xF0\x9F\x98", 0, ENC },
    { "<r>\0</r>", 8, ENC },
    { "<r/>\0", 5, ENC },
    { "\0<r/>", 5, ENC },
    { "\xFE\xFF\0<\0r\0/\0>", 10, ENC },                  /* UTF-16 */
    { "\xFF\xFE<\0r\0/\0>\0", 10, ENC },
    { "<\0r\0/\0>\0", 8, ENC },
    { "\xEF\xBB\xBF<?xml version='1.0' encoding='ISO-8859-1'?><r>\xE9</r>", 0, ENC },
    /* DOCTYPE, whatever it holds. */
    { "<!DOCTYPE r><r/>", 0, DTD },
    { "<?xml version='1.0'?>\n<!DOCTYPE r>\n<r/>", 0, DTD },
    { "<!DOCTYPE r SYSTEM 'http://example.com/r.dtd'><r/>", 0, DTD },
    { "<!DOCTYPE r PUBLIC '-//x//y' 'file:///etc/passwd'><r/>", 0, DTD },
    { "<!DOCTYPE r [<!ENTITY a 'b'>]><r>&a;</r>", 0, DTD },
    { "<!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><r>&x;</r>", 0, DTD },
    { "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>"
      "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;'>]><lolz>&lol3;</lolz>", 0, DTD },
    { "<!-- c --><!DOCTYPE r><r/>", 0, DTD },
};

static void test_bad_docs(void)
{
    for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); i++) {
        const bad_case_t *c = &bad_docs[i];
        size_t len = c->len ? c->len : strlen(c->xml);
        pidf_xml_status_t st = EL(c->xml, len, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX);
        if (st.err != c->err) {
            fprintf(stderr, "bad doc %zu: expected %s, got %s (%s): ", i, err_name(c->err),
                    err_name(st.err), st.reason ? st.reason : "");
            xml_oracle_print_escaped(c->xml, len, 200);
            fputc('\n', stderr);
        }
        CHECK_EQ(st.err, c->err);
    }
    /* Nothing at all. */
    CHECK_EQ(EL("", 0, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX).err, NWF);
    CHECK_EQ(EL("<r/>", 0, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX).err, NWF);
}

/* ---- Bounds ------------------------------------------------------------ */

/* Writes into b (cap bytes) and returns the length. */
static size_t doc_of_size(char *b, size_t cap, size_t n)
{
    REQUIRE(n >= 7 && n <= cap);
    memcpy(b, "<r>", 3);
    memset(b + 3, 'x', n - 7);
    memcpy(b + n - 4, "</r>", 4);
    return n;
}

static size_t doc_of_elements(char *b, size_t cap, unsigned children)
{
    size_t n = 0;
    REQUIRE(cap >= 7 + 4 * (size_t)children);
    n += (size_t)sprintf(b + n, "<r>");
    for (unsigned i = 0; i < children; i++)
        n += (size_t)sprintf(b + n, "<a/>");
    n += (size_t)sprintf(b + n, "</r>");
    return n;
}

static size_t doc_of_depth(char *b, size_t cap, unsigned depth)
{
    size_t n = 0;
    REQUIRE(cap >= 7 * (size_t)depth + 1);
    for (unsigned i = 0; i < depth; i++)
        n += (size_t)sprintf(b + n, "<a>");
    for (unsigned i = 0; i < depth; i++)
        n += (size_t)sprintf(b + n, "</a>");
    return n;
}

/* attrs attributes, the first decl of them namespace declarations. */
static size_t doc_of_attrs(char *b, size_t cap, unsigned attrs, unsigned decls)
{
    size_t n = 0;
    REQUIRE(cap >= 20 * (size_t)attrs + 8);
    n += (size_t)sprintf(b + n, "<r");
    for (unsigned i = 0; i < attrs; i++)
        n += (size_t)(i < decls ? sprintf(b + n, " xmlns:n%u='urn:%u'", i, i)
                                : sprintf(b + n, " a%u='%u'", i, i));
    n += (size_t)sprintf(b + n, "/>");
    return n;
}

static void test_limits(void)
{
    static char b[64 * 1024];
    pidf_xml_doc_t *d;

    /* Bytes: exactly bytes_max parses, one more does not, even when it is garbage. */
    size_t n = doc_of_size(b, sizeof(b), 1000);
    pidf_xml_free(PL(b, n, 1000, ELEMENTS_MAX, DEPTH_MAX));
    CHECK_EQ(EL(b, n, 999, ELEMENTS_MAX, DEPTH_MAX).err, PIDF_XML_TOO_LARGE);
    pidf_xml_free(PL("<r/>", 4, 4, 1, 1));
    CHECK_EQ(EL("<r/>", 4, 3, 1, 1).err, PIDF_XML_TOO_LARGE);
    memset(b, 0xFF, 101);
    CHECK_EQ(EL(b, 101, 100, ELEMENTS_MAX, DEPTH_MAX).err, PIDF_XML_TOO_LARGE);

    /* Elements, the root included. */
    n = doc_of_elements(b, sizeof(b), 47);
    pidf_xml_free(PL(b, n, BYTES_MAX, 48, DEPTH_MAX));
    CHECK_EQ(EL(b, n, BYTES_MAX, 47, DEPTH_MAX).err, PIDF_XML_TOO_MANY_ELEMENTS);
    pidf_xml_free(PL("<r/>", 4, BYTES_MAX, 1, DEPTH_MAX));
    CHECK_EQ(EL("<r><a/></r>", 11, BYTES_MAX, 1, DEPTH_MAX).err, PIDF_XML_TOO_MANY_ELEMENTS);
    n = doc_of_elements(b, sizeof(b), ELEMENTS_MAX - 1);
    pidf_xml_free(PL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX));
    n = doc_of_elements(b, sizeof(b), ELEMENTS_MAX);
    CHECK_EQ(EL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX).err, PIDF_XML_TOO_MANY_ELEMENTS);

    /* Depth: the root is at depth 1. */
    n = doc_of_depth(b, sizeof(b), 5);
    pidf_xml_free(PL(b, n, BYTES_MAX, ELEMENTS_MAX, 5));
    CHECK_EQ(EL(b, n, BYTES_MAX, ELEMENTS_MAX, 4).err, PIDF_XML_TOO_DEEP);
    pidf_xml_free(PL("<r/>", 4, BYTES_MAX, ELEMENTS_MAX, 1));
    CHECK_EQ(EL("<r><a/></r>", 11, BYTES_MAX, ELEMENTS_MAX, 1).err, PIDF_XML_TOO_DEEP);
    n = doc_of_depth(b, sizeof(b), PIDF_DEPTH_LIMIT);
    d = PL(b, n, BYTES_MAX, ELEMENTS_MAX, PIDF_DEPTH_LIMIT);
    const pidf_xml_node_t *k = pidf_xml_root(d);
    unsigned depth = 1;
    while (pidf_xml_first(k)) {
        CHECK(pidf_xml_first(k)->parent == k);
        k = pidf_xml_first(k), depth++;
    }
    CHECK_EQ(depth, PIDF_DEPTH_LIMIT);
    pidf_xml_free(d);
    n = doc_of_depth(b, sizeof(b), PIDF_DEPTH_LIMIT + 1);
    CHECK_EQ(EL(b, n, BYTES_MAX, ELEMENTS_MAX, PIDF_DEPTH_LIMIT).err, PIDF_XML_TOO_DEEP);
    /* Deeper than the bound but not well-formed past it: the bound is found first. */
    CHECK_EQ(EL("<a><b><c><d>&bad;", 17, BYTES_MAX, ELEMENTS_MAX, 3).err, PIDF_XML_TOO_DEEP);

    /* Attributes on one element, namespace declarations counted. */
    n = doc_of_attrs(b, sizeof(b), PIDF_XML_ATTRS_MAX, 0);
    d = PL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX);
    CHECK_EQ(attr_count(pidf_xml_root(d)), PIDF_XML_ATTRS_MAX);
    pidf_xml_free(d);
    n = doc_of_attrs(b, sizeof(b), PIDF_XML_ATTRS_MAX + 1, 0);
    CHECK_EQ(EL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX).err, PIDF_XML_TOO_MANY_ELEMENTS);
    n = doc_of_attrs(b, sizeof(b), PIDF_XML_ATTRS_MAX, 10);
    d = PL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX);
    CHECK_EQ(attr_count(pidf_xml_root(d)), PIDF_XML_ATTRS_MAX - 10);
    pidf_xml_free(d);
    n = doc_of_attrs(b, sizeof(b), PIDF_XML_ATTRS_MAX + 1, 10);
    CHECK_EQ(EL(b, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX).err, PIDF_XML_TOO_MANY_ELEMENTS);
}

/* ---- Differential: the corpora and mutations --------------------------- */

/* Documents of the three formats, cut and changed byte by byte below. */
static const char *const seeds[] = {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n"
    "    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n"
    "    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:a@b.c\">\r\n"
    "  <tuple id=\"t&#49;\"><status><basic>open</basic></status>\r\n"
    "    <contact priority='0.8'>sip:a@10.0.0.1</contact><note xml:lang=\"en\">at &amp; "
    "work</note></tuple>\r\n"
    "  <dm:person id=\"p\"><rpid:activities><rpid:busy/></rpid:activities></dm:person>\r\n"
    "</presence>\r\n",

    "<?xml version='1.0'?><watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' "
    "version='0' state='full'><watcher-list resource='sip:p@x' package='presence'>"
    "<watcher status='pending' id='w1' event='subscribe' display-name='B&#xe9;b'>"
    "sip:b@x</watcher></watcher-list></watcherinfo>",

    "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" "
    "state=\"full\" entity=\"sip:a@x\"><dialog id=\"d\" direction=\"initiator\">"
    "<state>confirmed</state><local><identity display=\"A\">sip:a@x</identity>"
    "<target uri=\"sip:a@1.2.3.4\"><param pname=\"+sip.rendering\" pvalue=\"no\"/>"
    "</target></local></dialog></dialog-info>",

    "\xEF\xBB\xBF<?xml version='1.0' standalone='no'?><!-- c --><?pi x?>"
    "<p:r xmlns:p='urn:p' xmlns='urn:d' a='1' p:b=\"2\"><x><![CDATA[<&]]>y&#x1F600;"
    "</x><p:z xmlns:p='urn:q' p:c='&lt;'/></p:r>\n<!---->",
};

/* Bytes put at every offset, in place of the byte there or before it. */
static const char mutation_bytes[] = "<>&\"':; x\r\n/=?!-#[]\x01\x80\xC3";

static unsigned mutation_failures;

/* The first disagreements are printed; a systematic one would print thousands. */
#define MUTATION_REPORTS_MAX 30

static void differential(const char *data, size_t len)
{
    if (oracle(data, len, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX) != 0 &&
        ++mutation_failures == MUTATION_REPORTS_MAX)
        xml_oracle_quiet(true);
}

static void test_oracle_mutations(void)
{
    static char b[4096];
    mutation_failures = 0;
    unsigned runs = 0;
    size_t n_seeds = sizeof(seeds) / sizeof(seeds[0]);
    size_t n_good = sizeof(good_docs) / sizeof(good_docs[0]);
    for (size_t s = 0; s < n_seeds + n_good; s++) {
        const char *seed = s < n_seeds ? seeds[s] : good_docs[s - n_seeds];
        size_t len = strlen(seed);
        REQUIRE(len + 1 <= sizeof(b));
        pidf_xml_free(P(seed));
        for (size_t cut = 0; cut < len; cut++, runs++) {
            memcpy(b, seed, cut);
            differential(b, cut);
        }
        for (size_t at = 0; at < len; at++) {
            for (size_t m = 0; m < sizeof(mutation_bytes) - 1; m++) {
                memcpy(b, seed, len);
                b[at] = mutation_bytes[m];                          /* replaced */
                differential(b, len);
                memcpy(b, seed, at);
                b[at] = mutation_bytes[m];                          /* inserted */
                memcpy(b + at + 1, seed + at, len - at);
                differential(b, len + 1);
                runs += 2;
            }
            memcpy(b, seed, at);                                    /* deleted */
            memcpy(b + at, seed + at + 1, len - at - 1);
            differential(b, len - 1);
            runs++;
        }
    }
    alarm(0);
    xml_oracle_quiet(false);
    fprintf(stderr, "     %u mutated documents, %u disagreements\n", runs, mutation_failures);
    CHECK_EQ(mutation_failures, 0);
}

static void test_oracle_tables(void)
{
    /* The tables above already ran through the oracle; here under small bounds too. */
    for (size_t i = 0; i < sizeof(good_docs) / sizeof(good_docs[0]); i++)
        CHECK(oracle(good_docs[i], strlen(good_docs[i]), 64, 4, 3) == 0);
    for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); i++) {
        const bad_case_t *c = &bad_docs[i];
        CHECK(oracle(c->xml, c->len ? c->len : strlen(c->xml), 64, 4, 3) == 0);
    }
}

/* Every committed fuzz corpus file of the three formats. */
static void test_oracle_corpora(void)
{
    const char *src = getenv("PRESENCED_SRC_DIR");
    if (!src) {
        fprintf(stderr, "     PRESENCED_SRC_DIR unset: corpora not compared\n");
        return;
    }
    static const char *const dirs[] = { "pidf", "winfo", "dialoginfo", "pidf_xml" };
    unsigned files = 0;
    static char data[PIDF_DOC_BYTES_DEFAULT + 1];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/%s", src, dirs[i]);
        DIR *dir = opendir(path);
        CHECK(dir != NULL);
        if (!dir)
            continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.')
                continue;
            char file[8192];
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
            FILE *f = fopen(file, "rb");
            CHECK(f != NULL);
            if (!f)
                continue;
            size_t n = fread(data, 1, sizeof(data), f);
            fclose(f);
            if (oracle(data, n, BYTES_MAX, ELEMENTS_MAX, DEPTH_MAX) != 0) {
                fprintf(stderr, "  (file %s)\n", file);
                CHECK(!"corpus file: libxml2 disagrees");
            }
            files++;
        }
        closedir(dir);
    }
    CHECK(files > 0);
}

int main(void)
{
    T_RUN(test_tree_shape);
    T_RUN(test_text_and_attr_queries);
    T_RUN(test_text_decoding);
    T_RUN(test_attr_values);
    T_RUN(test_lines);
    T_RUN(test_good_docs);
    T_RUN(test_bad_docs);
    T_RUN(test_limits);
    T_RUN(test_oracle_tables);
    T_RUN(test_oracle_corpora);
    T_RUN(test_oracle_mutations);
    T_RUN(test_cdata_is_not_decoded);
    alarm(0);
    T_DONE();
}
