/*
 * sub.c - see sub.h. The table is RFC 6121 Appendix A, one row per state,
 * one column per event; cells are "stay" or the new state, plus whether the
 * stanza is routed or delivered.
 */
#include "engine/sub.h"

enum {
    NONE = 0,
    NONE_PO = SUB_PENDING_OUT,
    NONE_PI = SUB_PENDING_IN,
    NONE_POI = SUB_PENDING_OUT | SUB_PENDING_IN,
    TO = SUB_TO,
    TO_PI = SUB_TO | SUB_PENDING_IN,
    FROM = SUB_FROM,
    FROM_PO = SUB_FROM | SUB_PENDING_OUT,
    BOTH = SUB_TO | SUB_FROM,
};

#define STAY 0xff
#define FWD 0x100
#define AUTO 0x200

/* cell = new state (or STAY) | FWD when the stanza goes on | AUTO */
static const uint16_t sub_table[16][SUB_EVENTS] = {
    /*             OUT_SUB          OUT_UNSUB        OUT_SUBD          OUT_UNSUBD
     *             IN_SUB           IN_UNSUB         IN_SUBD           IN_UNSUBD */
    [NONE] =     { NONE_PO | FWD,   STAY,            STAY,             STAY,
                   NONE_PI | FWD,   STAY,            STAY,             STAY },
    [NONE_PO] =  { STAY | FWD,      NONE | FWD,      STAY,             STAY,
                   NONE_POI | FWD,  STAY,            TO | FWD,         NONE | FWD },
    [NONE_PI] =  { NONE_POI | FWD,  STAY,            FROM | FWD,       NONE | FWD,
                   STAY,            NONE | FWD,      STAY,             STAY },
    [NONE_POI] = { STAY | FWD,      NONE_PI | FWD,   FROM_PO | FWD,    NONE_PO | FWD,
                   STAY,            NONE_PO | FWD,   TO_PI | FWD,      NONE_PI | FWD },
    [TO] =       { STAY | FWD,      NONE | FWD,      STAY,             STAY,
                   TO_PI | FWD,     STAY,            STAY,             NONE | FWD },
    [TO_PI] =    { STAY | FWD,      NONE_PI | FWD,   BOTH | FWD,       TO | FWD,
                   STAY,            TO | FWD,        STAY,             NONE_PI | FWD },
    [FROM] =     { FROM_PO | FWD,   STAY,            STAY,             NONE | FWD,
                   STAY | AUTO,     NONE | FWD,      STAY,             STAY },
    [FROM_PO] =  { STAY | FWD,      FROM | FWD,      STAY,             NONE_PO | FWD,
                   STAY | AUTO,     NONE_PO | FWD,   BOTH | FWD,       FROM | FWD },
    [BOTH] =     { STAY | FWD,      FROM | FWD,      STAY,             TO | FWD,
                   STAY | AUTO,     TO | FWD,        STAY,             FROM | FWD },
};

/*
 * Outbound "subscribe" is routed in every state (RFC 6121 §3.1.2: a user may
 * re-send a request when the contact's server lost it), though the state only
 * moves from None, None + Pending In and From. Every other cell follows the
 * appendix's "route?" / "deliver?" column exactly.
 */

bool sub_valid(sub_state_t state)
{
    switch (state) {
    case NONE: case NONE_PO: case NONE_PI: case NONE_POI:
    case TO: case TO_PI: case FROM: case FROM_PO: case BOTH:
        return true;
    default:
        return false;
    }
}

sub_result_t sub_apply(sub_state_t state, sub_event_t ev)
{
    ASSERT(sub_valid(state));
    ASSERT(ev < SUB_EVENTS);
    uint16_t cell = sub_table[state][ev];
    sub_result_t r = { state, 0 };
    if ((cell & 0xff) != STAY)
        r.state = (sub_state_t)(cell & 0xff);
    if (cell & FWD)
        r.actions |= SUB_ACT_FORWARD;
    if (cell & AUTO)
        r.actions |= SUB_ACT_AUTO_SUBSCRIBED;
    if (r.state != state)
        r.actions |= SUB_ACT_PUSH;
    if (!(state & SUB_FROM) && (r.state & SUB_FROM))
        r.actions |= SUB_ACT_SEND_PRESENCE;
    if ((state & SUB_FROM) && !(r.state & SUB_FROM))
        r.actions |= SUB_ACT_SEND_UNAVAILABLE;
    DEBUG_ASSERT(sub_valid(r.state));
    return r;
}

const char *sub_roster_subscription(sub_state_t state)
{
    switch (state & (SUB_TO | SUB_FROM)) {
    case SUB_TO: return "to";
    case SUB_FROM: return "from";
    case SUB_TO | SUB_FROM: return "both";
    default: return "none";
    }
}

bool sub_roster_ask(sub_state_t state)
{
    return (state & SUB_PENDING_OUT) != 0;
}

const char *sub_state_name(sub_state_t state)
{
    switch (state) {
    case NONE: return "None";
    case NONE_PO: return "None + Pending Out";
    case NONE_PI: return "None + Pending In";
    case NONE_POI: return "None + Pending Out/In";
    case TO: return "To";
    case TO_PI: return "To + Pending In";
    case FROM: return "From";
    case FROM_PO: return "From + Pending Out";
    case BOTH: return "Both";
    default: return "invalid";
    }
}

const char *sub_event_name(sub_event_t ev)
{
    static const char *const names[SUB_EVENTS] = {
        "outbound subscribe", "outbound unsubscribe", "outbound subscribed",
        "outbound unsubscribed", "inbound subscribe", "inbound unsubscribe",
        "inbound subscribed", "inbound unsubscribed",
    };
    return ev < SUB_EVENTS ? names[ev] : "invalid";
}
