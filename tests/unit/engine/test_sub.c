/*
 * Subscription states against RFC 6121 Appendix A, transcribed here a second
 * time as the RFC prints it (state names, "route?"/"deliver?" columns), so a
 * slip in either copy fails the test.
 */
#include "engine/sub.h"
#include "tests/unit/t.h"

static const char *const states[] = {
    "None", "None + Pending Out", "None + Pending In", "None + Pending Out/In", "To",
    "To + Pending In", "From", "From + Pending Out", "Both",
};

static sub_state_t by_name(const char *name)
{
    for (unsigned s = 0; s < 16; s++)
        if (sub_valid((sub_state_t)s) && !strcmp(sub_state_name((sub_state_t)s), name))
            return (sub_state_t)s;
    fprintf(stderr, "no state %s\n", name);
    exit(1);
}

typedef struct {
    const char *from;
    int forward;            /* 1 yes, 0 no, 2 no but auto-reply "subscribed" */
    const char *to;         /* NULL: no state change */
} cell_t;

/* A.2.1 outbound subscribe: presenced routes in every state (see sub.c). */
static const cell_t out_subscribe[] = {
    { "None", 1, "None + Pending Out" }, { "None + Pending Out", 1, NULL },
    { "None + Pending In", 1, "None + Pending Out/In" }, { "None + Pending Out/In", 1, NULL },
    { "To", 1, NULL }, { "To + Pending In", 1, NULL },
    { "From", 1, "From + Pending Out" }, { "From + Pending Out", 1, NULL }, { "Both", 1, NULL },
};
static const cell_t out_unsubscribe[] = {
    { "None", 0, NULL }, { "None + Pending Out", 1, "None" }, { "None + Pending In", 0, NULL },
    { "None + Pending Out/In", 1, "None + Pending In" }, { "To", 1, "None" },
    { "To + Pending In", 1, "None + Pending In" }, { "From", 0, NULL },
    { "From + Pending Out", 1, "From" }, { "Both", 1, "From" },
};
static const cell_t out_subscribed[] = {
    { "None", 0, NULL }, { "None + Pending Out", 0, NULL }, { "None + Pending In", 1, "From" },
    { "None + Pending Out/In", 1, "From + Pending Out" }, { "To", 0, NULL },
    { "To + Pending In", 1, "Both" }, { "From", 0, NULL }, { "From + Pending Out", 0, NULL },
    { "Both", 0, NULL },
};
static const cell_t out_unsubscribed[] = {
    { "None", 0, NULL }, { "None + Pending Out", 0, NULL }, { "None + Pending In", 1, "None" },
    { "None + Pending Out/In", 1, "None + Pending Out" }, { "To", 0, NULL },
    { "To + Pending In", 1, "To" }, { "From", 1, "None" },
    { "From + Pending Out", 1, "None + Pending Out" }, { "Both", 1, "To" },
};
static const cell_t in_subscribe[] = {
    { "None", 1, "None + Pending In" }, { "None + Pending Out", 1, "None + Pending Out/In" },
    { "None + Pending In", 0, NULL }, { "None + Pending Out/In", 0, NULL },
    { "To", 1, "To + Pending In" }, { "To + Pending In", 0, NULL }, { "From", 2, NULL },
    { "From + Pending Out", 2, NULL }, { "Both", 2, NULL },
};
static const cell_t in_unsubscribe[] = {
    { "None", 0, NULL }, { "None + Pending Out", 0, NULL }, { "None + Pending In", 1, "None" },
    { "None + Pending Out/In", 1, "None + Pending Out" }, { "To", 0, NULL },
    { "To + Pending In", 1, "To" }, { "From", 1, "None" },
    { "From + Pending Out", 1, "None + Pending Out" }, { "Both", 1, "To" },
};
static const cell_t in_subscribed[] = {
    { "None", 0, NULL }, { "None + Pending Out", 1, "To" }, { "None + Pending In", 0, NULL },
    { "None + Pending Out/In", 1, "To + Pending In" }, { "To", 0, NULL },
    { "To + Pending In", 0, NULL }, { "From", 0, NULL }, { "From + Pending Out", 1, "Both" },
    { "Both", 0, NULL },
};
static const cell_t in_unsubscribed[] = {
    { "None", 0, NULL }, { "None + Pending Out", 1, "None" }, { "None + Pending In", 0, NULL },
    { "None + Pending Out/In", 1, "None + Pending In" }, { "To", 1, "None" },
    { "To + Pending In", 1, "None + Pending In" }, { "From", 0, NULL },
    { "From + Pending Out", 1, "From" }, { "Both", 1, "From" },
};

static void check_table(sub_event_t ev, const cell_t *cells)
{
    for (unsigned i = 0; i < 9; i++) {
        sub_state_t from = by_name(cells[i].from);
        sub_result_t r = sub_apply(from, ev);
        sub_state_t want = cells[i].to ? by_name(cells[i].to) : from;
        if (r.state != want || !!(r.actions & SUB_ACT_FORWARD) != (cells[i].forward == 1) ||
            !!(r.actions & SUB_ACT_AUTO_SUBSCRIBED) != (cells[i].forward == 2) ||
            !!(r.actions & SUB_ACT_PUSH) != (r.state != from)) {
            fprintf(stderr, "%s in %s: got %s actions %#x\n", sub_event_name(ev),
                    cells[i].from, sub_state_name(r.state), r.actions);
            t_failures++;
        }
        /* "from" gained or lost drives presence to the contact. */
        CHECK(!!(r.actions & SUB_ACT_SEND_PRESENCE) ==
              (!(from & SUB_FROM) && (r.state & SUB_FROM)));
        CHECK(!!(r.actions & SUB_ACT_SEND_UNAVAILABLE) ==
              ((from & SUB_FROM) && !(r.state & SUB_FROM)));
    }
}

static void test_appendix_a(void)
{
    check_table(SUB_OUT_SUBSCRIBE, out_subscribe);
    check_table(SUB_OUT_UNSUBSCRIBE, out_unsubscribe);
    check_table(SUB_OUT_SUBSCRIBED, out_subscribed);
    check_table(SUB_OUT_UNSUBSCRIBED, out_unsubscribed);
    check_table(SUB_IN_SUBSCRIBE, in_subscribe);
    check_table(SUB_IN_UNSUBSCRIBE, in_unsubscribe);
    check_table(SUB_IN_SUBSCRIBED, in_subscribed);
    check_table(SUB_IN_UNSUBSCRIBED, in_unsubscribed);
}

static void test_closed_and_roster_attributes(void)
{
    unsigned valid = 0;
    for (unsigned s = 0; s < 16; s++) {
        if (!sub_valid((sub_state_t)s))
            continue;
        valid++;
        for (unsigned e = 0; e < SUB_EVENTS; e++)
            CHECK(sub_valid(sub_apply((sub_state_t)s, (sub_event_t)e).state));
    }
    CHECK_EQ(valid, ARRAY_LEN(states));
    CHECK_STR(sub_roster_subscription(by_name("To + Pending In")), "to");
    CHECK_STR(sub_roster_subscription(by_name("From + Pending Out")), "from");
    CHECK(sub_roster_ask(by_name("From + Pending Out")));
    CHECK(!sub_roster_ask(by_name("None + Pending In")));
    CHECK_STR(sub_roster_subscription(by_name("Both")), "both");
}

static void test_full_handshake(void)
{
    /* alice asks bob, bob approves and asks back, alice approves: both. */
    sub_state_t alice = 0, bob = 0;
    alice = sub_apply(alice, SUB_OUT_SUBSCRIBE).state;
    bob = sub_apply(bob, SUB_IN_SUBSCRIBE).state;
    sub_result_t r = sub_apply(bob, SUB_OUT_SUBSCRIBED);
    bob = r.state;
    CHECK(r.actions & SUB_ACT_SEND_PRESENCE);
    alice = sub_apply(alice, SUB_IN_SUBSCRIBED).state;
    bob = sub_apply(bob, SUB_OUT_SUBSCRIBE).state;
    alice = sub_apply(alice, SUB_IN_SUBSCRIBE).state;
    alice = sub_apply(alice, SUB_OUT_SUBSCRIBED).state;
    bob = sub_apply(bob, SUB_IN_SUBSCRIBED).state;
    CHECK_STR(sub_state_name(alice), "Both");
    CHECK_STR(sub_state_name(bob), "Both");
}

int main(void)
{
    T_RUN(test_appendix_a);
    T_RUN(test_closed_and_roster_attributes);
    T_RUN(test_full_handshake);
    T_DONE();
}
