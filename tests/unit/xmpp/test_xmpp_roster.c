/*
 * test_xmpp_roster.c - the in-memory contact list: order and lookup, items
 * read back as they were added, shared group names, changes that keep the
 * online flag, and the exact size of the block.
 */
#include <stdio.h>

#include "protocols/xmpp/xmpp_roster.h"
#include "tests/unit/t.h"

static contact_t mk(sub_state_t sub, const char *name, unsigned n, const char *const *groups)
{
    contact_t c;
    memset(&c, 0, sizeof(c));
    c.sub = sub;
    c.name = name ? str_from_cstr(name) : (str_t){ "", 0 };
    c.n_groups = n;
    for (unsigned i = 0; i < n; i++)
        c.groups[i] = str_from_cstr(groups[i]);
    return c;
}

static bool jid_is(const xmpp_roster_t *r, unsigned i, const char *s)
{
    return str_eq_cstr(xmpp_roster_jid(r, i), s);
}

static void test_empty(void)
{
    xmpp_roster_builder_t b;
    xmpp_roster_builder_init(&b);
    CHECK(xmpp_roster_builder_finish(&b) == NULL);
    xmpp_roster_builder_fini(&b);
    CHECK_EQ(xmpp_roster_count(NULL), 0);
    CHECK_EQ(xmpp_roster_find(NULL, STR_LIT("a@b")), -1);
    xmpp_roster_free(NULL);
}

static void test_sorted_and_read_back(void)
{
    static const char *const g1[] = { "Friends", "Work" };
    static const char *const g2[] = { "Work" };
    xmpp_roster_builder_t b;
    xmpp_roster_builder_init(&b);
    contact_t c = mk(SUB_TO | SUB_FROM, "Juliet", 2, g1);
    xmpp_roster_builder_add(&b, STR_LIT("juliet@example.com"), 1, &c);
    c = mk(SUB_PENDING_IN, NULL, 0, NULL);
    xmpp_roster_builder_add(&b, STR_LIT("benvolio@example.com"), 0, &c);
    c = mk(SUB_TO, "Nurse", 1, g2);
    xmpp_roster_builder_add(&b, STR_LIT("b@example.com"), 3, &c);
    /* A prefix of another JID sorts first, as storage returns it. */
    xmpp_roster_builder_add(&b, STR_LIT("b@example.co"), 2, &c);
    xmpp_roster_t *r = xmpp_roster_builder_finish(&b);
    xmpp_roster_builder_fini(&b);
    REQUIRE(r);
    CHECK_EQ(xmpp_roster_count(r), 4);
    CHECK(jid_is(r, 0, "b@example.co"));
    CHECK(jid_is(r, 1, "b@example.com"));
    CHECK(jid_is(r, 2, "benvolio@example.com"));
    CHECK(jid_is(r, 3, "juliet@example.com"));
    CHECK_EQ(r->n_groups, 2);
    CHECK_EQ(xmpp_roster_find(r, STR_LIT("juliet@example.com")), 3);
    CHECK_EQ(xmpp_roster_find(r, STR_LIT("b@example.co")), 0);
    CHECK_EQ(xmpp_roster_find(r, STR_LIT("b@example.c")), -1);
    CHECK_EQ(xmpp_roster_find(r, STR_LIT("romeo@example.com")), -1);
    CHECK_EQ(xmpp_roster_find(r, STR_LIT("")), -1);

    contact_t out;
    xmpp_roster_contact(r, 3, &out);
    CHECK_EQ(out.sub, SUB_TO | SUB_FROM);
    CHECK(str_eq_cstr(out.name, "Juliet"));
    CHECK_EQ(out.n_groups, 2);
    CHECK(str_eq_cstr(out.groups[0], "Friends"));
    CHECK(str_eq_cstr(out.groups[1], "Work"));
    CHECK_EQ(xmpp_roster_item(r, 3)->home, 1);
    CHECK_EQ(xmpp_roster_item(r, 3)->online, 0);
    xmpp_roster_contact(r, 2, &out);
    CHECK_EQ(out.sub, SUB_PENDING_IN);
    CHECK_EQ(out.name.len, 0);
    CHECK_EQ(out.n_groups, 0);
    xmpp_roster_contact(r, 1, &out);
    CHECK(str_eq_cstr(out.groups[0], "Work"));
    CHECK_EQ(xmpp_roster_item(r, 1)->home, 3);

    /* Exact size: header, items, one offset per distinct group, then per
     * group and per item one length byte before each string, one count byte
     * and one index byte per group. */
    size_t strings = (1 + 7) + (1 + 4)                              /* Friends, Work */
                     + (1 + 18) + (1 + 6) + 1 + 2                   /* juliet */
                     + (1 + 20) + 1 + 1                             /* benvolio */
                     + (1 + 13) + (1 + 5) + 1 + 1                   /* b@example.com */
                     + (1 + 12) + (1 + 5) + 1 + 1;                  /* b@example.co */
    CHECK_EQ(r->bytes, sizeof(*r) + 4 * sizeof(xmpp_roster_item_t) + 2 * 4 + strings);
    xmpp_roster_free(r);
}

static void test_put_and_remove(void)
{
    static const char *const g[] = { "G" };
    xmpp_roster_t *r = NULL;
    contact_t c = mk(SUB_TO, "A", 1, g);
    CHECK_EQ(xmpp_roster_put(&r, STR_LIT("m@x"), 1, &c), 0);
    c = mk(SUB_FROM, NULL, 0, NULL);
    CHECK_EQ(xmpp_roster_put(&r, STR_LIT("a@x"), 0, &c), 0);
    CHECK_EQ(xmpp_roster_put(&r, STR_LIT("z@x"), 0, &c), 2);
    CHECK_EQ(xmpp_roster_count(r), 3);
    xmpp_roster_item(r, 1)->online = 1;     /* m@x */
    xmpp_roster_item(r, 2)->online = 1;     /* z@x */

    /* Replacing keeps the online flag; the others keep theirs. */
    c = mk(SUB_TO | SUB_FROM, "Emm", 0, NULL);
    CHECK_EQ(xmpp_roster_put(&r, STR_LIT("m@x"), 1, &c), 1);
    CHECK_EQ(xmpp_roster_count(r), 3);
    contact_t out;
    xmpp_roster_contact(r, 1, &out);
    CHECK(str_eq_cstr(out.name, "Emm"));
    CHECK_EQ(out.n_groups, 0);
    CHECK_EQ(out.sub, SUB_TO | SUB_FROM);
    CHECK_EQ(r->n_groups, 0);               /* nothing refers to "G" any more */
    CHECK_EQ(xmpp_roster_item(r, 1)->online, 1);
    CHECK_EQ(xmpp_roster_item(r, 2)->online, 1);
    CHECK_EQ(xmpp_roster_item(r, 0)->online, 0);

    /* A put whose record points into the list itself. */
    xmpp_roster_contact(r, 2, &out);
    out.sub = SUB_TO;
    CHECK_EQ(xmpp_roster_put(&r, xmpp_roster_jid(r, 2), 0, &out), 2);
    CHECK(jid_is(r, 2, "z@x"));
    CHECK_EQ(xmpp_roster_item(r, 2)->sub, SUB_TO);

    xmpp_roster_remove(&r, 1);
    CHECK_EQ(xmpp_roster_count(r), 2);
    CHECK(jid_is(r, 0, "a@x"));
    CHECK(jid_is(r, 1, "z@x"));
    CHECK_EQ(xmpp_roster_item(r, 1)->online, 1);
    xmpp_roster_remove(&r, 0);
    xmpp_roster_remove(&r, 0);
    CHECK(r == NULL);
}

/* Hundreds of distinct groups and long strings: indexes and lengths past one
 * varint byte, and the builder's hash table past several doublings. */
static void test_many_groups(void)
{
    enum { N = 300 };
    static char names[N][16];
    xmpp_roster_builder_t b;
    xmpp_roster_builder_init(&b);
    char long_name[CONTACT_NAME_MAX + 1];
    memset(long_name, 'n', CONTACT_NAME_MAX);
    long_name[CONTACT_NAME_MAX] = 0;
    for (unsigned i = 0; i < N; i++)
        snprintf(names[i], sizeof(names[i]), "group%u", i);
    for (unsigned i = 0; i < N; i++) {
        char jid[32];
        snprintf(jid, sizeof(jid), "c%03u@example.net", i);
        const char *g[CONTACT_GROUPS_MAX];
        unsigned ng = i % CONTACT_GROUPS_MAX;
        for (unsigned k = 0; k < ng; k++)
            g[k] = names[(i + k) % N];
        contact_t c = mk(SUB_TO, i % 7 ? long_name : NULL, ng, g);
        xmpp_roster_builder_add(&b, str_from_cstr(jid), (uint16_t)i, &c);
    }
    xmpp_roster_t *r = xmpp_roster_builder_finish(&b);
    xmpp_roster_builder_fini(&b);
    REQUIRE(r);
    CHECK_EQ(r->n_groups, N);
    unsigned bad = 0;
    for (unsigned i = 0; i < N; i++) {
        char jid[32];
        snprintf(jid, sizeof(jid), "c%03u@example.net", i);
        int at = xmpp_roster_find(r, str_from_cstr(jid));
        if (at != (int)i) {
            bad++;
            continue;
        }
        contact_t out;
        xmpp_roster_contact(r, i, &out);
        bad += xmpp_roster_item(r, i)->home != i;
        bad += out.n_groups != i % CONTACT_GROUPS_MAX;
        bad += out.name.len != (i % 7 ? CONTACT_NAME_MAX : 0u);
        for (unsigned k = 0; k < out.n_groups; k++)
            bad += !str_eq_cstr(out.groups[k], names[(i + k) % N]);
    }
    CHECK_EQ(bad, 0);
    xmpp_roster_free(r);
}

int main(void)
{
    T_RUN(test_empty);
    T_RUN(test_sorted_and_read_back);
    T_RUN(test_put_and_remove);
    T_RUN(test_many_groups);
    T_DONE();
}
