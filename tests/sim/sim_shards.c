/*
 * sim_shards.c - deterministic simulation of two shards on one thread.
 *
 * The real shard logic (engine/shard.c, mbox.c, timer.c) runs against a tick
 * clock and a simulated I/O driver whose completions arrive after random
 * delays, in random interleavings of the two shards' turns, with shards that
 * really sleep until woken or until their next timer. Checked:
 *   - mailbox: every closure delivered exactly once, in per-sender order, and
 *     none stranded (a lost wake-up leaves a sleeping shard with mail);
 *   - timers: each fires exactly once, never before its due time, and at the
 *     first turn at or after it;
 *   - storage: writes gathered in a turn's batch are acknowledged after the
 *     commit, exactly once, readable when acknowledged as durable and absent
 *     when the (injected) commit failure is reported;
 *   - handoff: a connection moved between shards keeps its protocol state,
 *     its unconsumed bytes and its queued output, whichever half of the move
 *     (socket or mailbox record) arrives first.
 *
 * Usage: sim_shards [--seed N] [--runs K]. Each run prints its seed on
 * failure; --seed N replays exactly that run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/log.h"
#include "engine/shard_int.h"

#define SHARDS 2
#define MSGS_PER_SHARD 3000
#define TIMERS_PER_SHARD 300
#define CONNS 40
#define STEPS_MAX 400000

/* --- deterministic randomness --- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rng_below(unsigned n)
{
    return (unsigned)(rng() % n);
}

/* --- tick clock --- */

static uint64_t sim_now_ns;

static uint64_t sim_clock_now(void *ctx)
{
    (void)ctx;
    return sim_now_ns;
}

static const clk_ops_t sim_clock_ops = { sim_clock_now };

/* --- simulated driver --- */

typedef enum { EV_RECV_END, EV_SENT, EV_CLOSED, EV_MOVED, EV_ARRIVED } ev_kind_t;

typedef struct {
    ev_kind_t kind;
    unsigned shard;
    uint64_t due_step;
    uint32_t index, gen;
    int res;
    void *record;
    int32_t handle;
} sim_event_t;

typedef struct {
    int owner;              /* shard, or -1 once closed */
    char out[8192];         /* everything the engine sent on this socket */
    size_t out_len;
    unsigned sends;
} sim_socket_t;

typedef struct sim sim_t;

typedef struct {
    sim_t *sim;
    unsigned id;
    shard_t *sh;
    bool asleep;
    bool woken;
} sim_shard_t;

struct sim {
    sim_shard_t shards[SHARDS];
    sim_event_t *events;
    size_t n_events, cap_events;
    sim_socket_t sockets[CONNS * 2];
    unsigned n_sockets;
    uint64_t step;
    int failures;
};

static sim_t *sim;

static void sim_schedule(sim_event_t ev)
{
    if (sim->n_events == sim->cap_events) {
        sim->cap_events = sim->cap_events ? sim->cap_events * 2 : 256;
        sim->events = realloc(sim->events, sizeof(*sim->events) * sim->cap_events);
        if (!sim->events)
            PANIC("out of memory");
    }
    ev.due_step = sim->step + 1 + rng_below(6);
    sim->events[sim->n_events++] = ev;
}

static unsigned io_shard(void *io)
{
    return ((sim_shard_t *)io)->id;
}

static void sim_recv_arm(void *io, conn_t *c)
{
    (void)io;
    (void)c;
}

static void sim_recv_cancel(void *io, conn_t *c)
{
    sim_schedule((sim_event_t){ .kind = EV_RECV_END, .shard = io_shard(io),
                                .index = conn_index(c), .gen = conn_gen(c), .res = -ECANCELED });
}

static void sim_send(void *io, conn_t *c, const void *buf, size_t len)
{
    sim_socket_t *s = &sim->sockets[conn_handle(c)];
    /* A random short write, like a full socket buffer would give. */
    size_t n = 1 + rng_below((unsigned)len);
    if (s->out_len + n > sizeof(s->out))
        PANIC("simulated socket overflow");
    memcpy(s->out + s->out_len, buf, n);
    s->out_len += n;
    s->sends++;
    sim_schedule((sim_event_t){ .kind = EV_SENT, .shard = io_shard(io), .index = conn_index(c),
                                .gen = conn_gen(c), .res = (int)n });
}

static void sim_close(void *io, conn_t *c)
{
    sim->sockets[conn_handle(c)].owner = -1;
    sim_schedule((sim_event_t){ .kind = EV_RECV_END, .shard = io_shard(io),
                                .index = conn_index(c), .gen = conn_gen(c), .res = 0 });
    sim_schedule((sim_event_t){ .kind = EV_CLOSED, .shard = io_shard(io), .index = conn_index(c),
                                .gen = conn_gen(c) });
}

static void sim_move(void *io, conn_t *c, unsigned dst, void *record)
{
    sim->sockets[conn_handle(c)].owner = (int)dst;
    sim_schedule((sim_event_t){ .kind = EV_ARRIVED, .shard = dst, .record = record,
                                .handle = conn_handle(c) });
    sim_schedule((sim_event_t){ .kind = EV_MOVED, .shard = io_shard(io), .index = conn_index(c),
                                .gen = conn_gen(c), .res = 0 });
}

static void sim_wake(void *io, unsigned dst)
{
    (void)io;
    sim->shards[dst].woken = true;
}

static void sim_listeners_stop(void *io)
{
    (void)io;
}

static const shard_io_ops_t sim_io_ops = {
    .recv_arm = sim_recv_arm,
    .recv_cancel = sim_recv_cancel,
    .send = sim_send,
    .close = sim_close,
    .move = sim_move,
    .wake = sim_wake,
    .listeners_stop = sim_listeners_stop,
};

/* Delivers this shard's due completions, in schedule order. */
static void sim_reap(sim_shard_t *ss)
{
    size_t kept = 0;
    size_t n = sim->n_events;
    for (size_t i = 0; i < n; i++) {
        sim_event_t ev = sim->events[i];
        if (ev.shard != ss->id || ev.due_step > sim->step) {
            sim->events[kept++] = ev;
            continue;
        }
        conn_t *c = ev.kind == EV_ARRIVED ? NULL : shard_conn_lookup(ss->sh, ev.index, ev.gen);
        switch (ev.kind) {
        case EV_RECV_END: if (c) shard_recv_ended(c, ev.res); break;
        case EV_SENT: if (c) shard_sent(c, ev.res); break;
        case EV_CLOSED: if (c) shard_io_closed(c); break;
        case EV_MOVED: if (c) shard_moved(c, ev.res); break;
        case EV_ARRIVED: shard_fd_arrived(ss->sh, ev.record, ev.handle); break;
        }
    }
    /* Events scheduled by the callbacks above were appended after n. */
    if (sim->n_events > n)
        memmove(sim->events + kept, sim->events + n, sizeof(*sim->events) * (sim->n_events - n));
    sim->n_events = kept + (sim->n_events - n);
}

static bool sim_has_events(unsigned shard)
{
    for (size_t i = 0; i < sim->n_events; i++)
        if (sim->events[i].shard == shard)
            return true;
    return false;
}

/* --- workload: mailbox closures --- */

static uint64_t sent_seq[SHARDS][SHARDS];       /* [from][to] */
static uint64_t recv_seq[SHARDS][SHARDS];

#define SIM_FAIL(...)                                 \
    do {                                              \
        fprintf(stderr, "step %llu: ", (unsigned long long)sim->step); \
        fprintf(stderr, __VA_ARGS__);                 \
        fputc('\n', stderr);                          \
        sim->failures++;                              \
    } while (0)

static void on_closure(void *dst_ctx, const mbox_msg_t *m)
{
    shard_t *sh = dst_ctx;
    unsigned to = shard_id(sh), from = m->src;
    if (m->u32 != to)
        SIM_FAIL("closure for shard %u ran on shard %u", m->u32, to);
    if (m->u64 != recv_seq[from][to])
        SIM_FAIL("shard %u got seq %llu from %u, expected %llu", to,
                 (unsigned long long)m->u64, from, (unsigned long long)recv_seq[from][to]);
    recv_seq[from][to] = m->u64 + 1;
}

static bool quiescing;

static void send_some(sim_shard_t *ss)
{
    if (quiescing)
        return;
    unsigned burst = rng_below(40);
    for (unsigned i = 0; i < burst; i++) {
        unsigned to = rng_below(SHARDS);
        if (sent_seq[ss->id][to] >= MSGS_PER_SHARD)
            continue;
        mbox_msg_t m = { .u64 = sent_seq[ss->id][to], .u32 = to };
        if (shard_call(ss->sh, to, on_closure, &m) == 0)
            sent_seq[ss->id][to]++;
    }
}

/* --- workload: storage writes and their acknowledgements --- */

#define WRITES_PER_SHARD 400

static stor_t *store;
static unsigned writes_made[SHARDS], writes_acked[SHARDS], writes_failed[SHARDS];

static void write_key(unsigned shard, unsigned seq, char *key, size_t *len)
{
    *len = (size_t)snprintf(key, 32, "w/%u/%u", shard, seq);
}

static void on_durable(shard_t *sh, void *arg, uint64_t seq, int rc)
{
    unsigned id = shard_id(sh);
    (void)arg;
    char key[32];
    size_t len;
    void *val = NULL;
    size_t vlen;
    write_key(id, (unsigned)seq, key, &len);
    int got = stor_get(store, STOR_CF_META, key, len, &val, &vlen);
    free(val);
    if (rc == 0 && got != 0)
        SIM_FAIL("write %u/%llu acknowledged as durable but not readable", id,
                 (unsigned long long)seq);
    if (rc < 0 && got == 0)
        SIM_FAIL("write %u/%llu reported failed but present", id, (unsigned long long)seq);
    if (seq != writes_acked[id] + writes_failed[id])
        SIM_FAIL("acknowledgement %llu out of order", (unsigned long long)seq);
    if (rc == 0)
        writes_acked[id]++;
    else
        writes_failed[id]++;
}

static void write_some(sim_shard_t *ss)
{
    if (quiescing || writes_made[ss->id] >= WRITES_PER_SHARD || rng_below(3) != 0)
        return;
    unsigned n = 1 + rng_below(4);
    for (unsigned i = 0; i < n && writes_made[ss->id] < WRITES_PER_SHARD; i++) {
        char key[32];
        size_t len;
        unsigned seq = writes_made[ss->id]++;
        write_key(ss->id, seq, key, &len);
        stor_batch_put(shard_batch(ss->sh), STOR_CF_META, key, len, "v", 1);
        shard_on_durable(ss->sh, on_durable, NULL, seq);
    }
    if (rng_below(40) == 0)
        stor_mem_fail_commits(store, 1);
}

/* --- workload: timers --- */

typedef struct {
    timer_ent_t t;
    uint64_t due_ms;
    unsigned fired;
    unsigned shard;
} sim_timer_t;

static sim_timer_t timers[SHARDS][TIMERS_PER_SHARD];
static unsigned timers_armed[SHARDS];

static void on_timer(timer_wheel_t *w, timer_ent_t *t)
{
    sim_timer_t *st = container_of(t, sim_timer_t, t);
    st->fired++;
    if (w->now_ms < st->due_ms)
        SIM_FAIL("timer due %llu fired early at %llu", (unsigned long long)st->due_ms,
                 (unsigned long long)w->now_ms);
}

static void arm_some(sim_shard_t *ss)
{
    if (timers_armed[ss->id] >= TIMERS_PER_SHARD || rng_below(4) != 0)
        return;
    sim_timer_t *st = &timers[ss->id][timers_armed[ss->id]++];
    st->shard = ss->id;
    st->due_ms = shard_now_ms(ss->sh) + rng_below(1u << rng_below(18));
    timer_init(&st->t, on_timer);
    timer_arm(shard_timers(ss->sh), &st->t, st->due_ms);
}

static void check_timers_due(sim_shard_t *ss)
{
    uint64_t now = shard_now_ms(ss->sh);
    for (unsigned i = 0; i < timers_armed[ss->id]; i++) {
        sim_timer_t *st = &timers[ss->id][i];
        if (st->fired > 1)
            SIM_FAIL("timer fired %u times", st->fired);
        if (!st->fired && st->due_ms <= now)
            SIM_FAIL("timer due %llu not fired at %llu", (unsigned long long)st->due_ms,
                     (unsigned long long)now);
    }
}

/* --- workload: connections that move --- */

/* Protocol state: which shards it lived on and what it was fed. */
typedef struct {
    unsigned socket;
    unsigned hops;
    char seen[256];
    size_t seen_len;
    bool closed;
} sim_proto_state_t;

static sim_proto_state_t proto_states[CONNS];
static unsigned n_conns;

static void sim_proto_open(conn_t *c)
{
    if (!conn_state(c)) {
        sim_proto_state_t *st = &proto_states[n_conns];
        st->socket = (unsigned)conn_handle(c);
        conn_set_state(c, st);
        n_conns++;
    } else {
        ((sim_proto_state_t *)conn_state(c))->hops++;
    }
}

/* Input "M<rest>": move to the other shard with <rest> unconsumed.
 * Anything else is recorded and echoed. */
static int sim_proto_data(conn_t *c, const char *data, size_t len)
{
    sim_proto_state_t *st = conn_state(c);
    if (data[0] == 'M') {
        /* Queue output first: it must arrive on the peer's socket after the move. */
        conn_write(c, "<", 1);
        unsigned dst = (shard_id(conn_shard(c)) + 1) % SHARDS;
        if (conn_handoff(c, dst, data + 1, len - 1) != 0)
            SIM_FAIL("handoff refused");
        return 0;
    }
    if (st->seen_len + len > sizeof(st->seen))
        PANIC("sim input too long");
    memcpy(st->seen + st->seen_len, data, len);
    st->seen_len += len;
    return conn_write(c, data, len);
}

static void sim_proto_close(conn_t *c)
{
    sim_proto_state_t *st = conn_state(c);
    if (st)
        st->closed = true;
}

static const conn_proto_t sim_proto = {
    .name = "sim",
    .on_open = sim_proto_open,
    .on_data = sim_proto_data,
    .on_close = sim_proto_close,
};

/* Scripted input per connection: bytes, then a move carrying "abc",
 * then more bytes on whichever shard it lives. */
static const char *const script[] = { "hello", "Mabc", "world", "Mxy", "!" };
static unsigned script_pos[CONNS];

static conn_t *sim_find_conn(unsigned socket)
{
    int owner = sim->sockets[socket].owner;
    if (owner < 0)
        return NULL;
    shard_t *sh = sim->shards[owner].sh;
    /* Scan: the table is tiny in the simulation. */
    for (uint32_t idx = 0; idx < 4096; idx++)
        for (uint32_t gen = 1; gen < 4096; gen++) {
            conn_t *c = shard_conn_lookup(sh, idx, gen);
            if (c && conn_handle(c) == (int32_t)socket && !conn_closing(c))
                return c;
            if (!shard_conn_lookup(sh, idx, gen) && gen > 200)
                break;
        }
    return NULL;
}

static void feed_some(sim_shard_t *ss)
{
    if (rng_below(3) != 0)
        return;
    if (sim->n_sockets < CONNS && rng_below(2) == 0) {
        unsigned s = sim->n_sockets++;
        sim->sockets[s].owner = (int)ss->id;
        shard_accepted(ss->sh, (int32_t)s, 0);
        return;
    }
    if (sim->n_sockets == 0)
        return;
    unsigned s = rng_below(sim->n_sockets);
    if (sim->sockets[s].owner != (int)ss->id || script_pos[s] >= ARRAY_LEN(script))
        return;
    conn_t *c = sim_find_conn(s);
    if (!c)
        return;     /* moving: input waits, as in a socket */
    const char *in = script[script_pos[s]++];
    shard_received(c, in, strlen(in));
}

static void check_conns(void)
{
    /* Expected: "hello" echoed, "<" from the move, "abc" echoed on the
     * target, "world", "<", "xy", "!". */
    const char *want_out = "hello<abcworld<xy!";
    const char *want_seen = "helloabcworldxy!";
    for (unsigned s = 0; s < sim->n_sockets; s++) {
        if (script_pos[s] < ARRAY_LEN(script))
            continue;
        sim_socket_t *so = &sim->sockets[s];
        sim_proto_state_t *st = NULL;
        for (unsigned i = 0; i < n_conns; i++)
            if (proto_states[i].socket == s)
                st = &proto_states[i];
        if (!st) {
            SIM_FAIL("socket %u has no protocol state", s);
            continue;
        }
        if (st->hops != 2)
            SIM_FAIL("socket %u moved %u times, expected 2", s, st->hops);
        if (st->seen_len != strlen(want_seen) || memcmp(st->seen, want_seen, st->seen_len))
            SIM_FAIL("socket %u protocol saw '%.*s'", s, (int)st->seen_len, st->seen);
        if (so->out_len != strlen(want_out) || memcmp(so->out, want_out, so->out_len))
            SIM_FAIL("socket %u peer got '%.*s'", s, (int)so->out_len, so->out);
    }
}

/* --- the run --- */

static metrics_t *metrics;
static mbox_hub_t *hub;

static void sim_turn(sim_shard_t *ss)
{
    shard_t *sh = ss->sh;
    shard_turn_start(sh);
    shard_drain_mailbox(sh, 64 + rng_below(512));
    sim_reap(ss);
    send_some(ss);
    arm_some(ss);
    feed_some(ss);
    shard_run_timers(sh);
    check_timers_due(ss);
    write_some(ss);
    shard_commit(sh);
    shard_flush_output(sh);
    shard_flush_mailboxes(sh);
    if (!sim_has_events(ss->id) && shard_may_sleep(sh)) {
        ss->asleep = true;
        ss->woken = false;
    }
}

static bool sim_done(void)
{
    for (unsigned s = 0; s < SHARDS; s++)
        if (writes_acked[s] + writes_failed[s] < WRITES_PER_SHARD)
            return false;
    for (unsigned a = 0; a < SHARDS; a++)
        for (unsigned b = 0; b < SHARDS; b++)
            if (recv_seq[a][b] < MSGS_PER_SHARD)
                return false;
    for (unsigned s = 0; s < SHARDS; s++)
        if (timers_armed[s] < TIMERS_PER_SHARD)
            return false;
    if (sim->n_sockets < CONNS)
        return false;
    for (unsigned s = 0; s < sim->n_sockets; s++)
        if (script_pos[s] < ARRAY_LEN(script))
            return false;
    return sim->n_events == 0;
}

static int sim_run(uint64_t seed)
{
    rng_state = seed;
    sim_now_ns = 1000000000ull;
    memset(sent_seq, 0, sizeof(sent_seq));
    memset(recv_seq, 0, sizeof(recv_seq));
    memset(timers, 0, sizeof(timers));
    memset(timers_armed, 0, sizeof(timers_armed));
    memset(proto_states, 0, sizeof(proto_states));
    memset(script_pos, 0, sizeof(script_pos));
    n_conns = 0;
    quiescing = false;
    memset(writes_made, 0, sizeof(writes_made));
    memset(writes_acked, 0, sizeof(writes_acked));
    memset(writes_failed, 0, sizeof(writes_failed));
    store = stor_open_mem();
    sim = calloc(1, sizeof(*sim));
    metrics = metrics_create(SHARDS);
    shard_metrics_register(metrics);
    /* Tiny rings: the backlog path runs too. */
    hub = mbox_hub_create(SHARDS, 64);
    for (unsigned i = 0; i < SHARDS; i++) {
        sim_shard_t *ss = &sim->shards[i];
        ss->sim = sim;
        ss->id = i;
        shard_config_t cfg = {
            .id = i, .count = SHARDS, .mbox = mbox_hub_ep(hub, i),
            .metrics = metrics_shard(metrics, i),
            .clock = { &sim_clock_ops, NULL },
            .io_ops = &sim_io_ops, .io = ss,
            .idle_timeout_ms = 0, .output_max_bytes = 1 << 20, .drain_timeout_ms = 1000,
            .max_connections = 1024, .n_listeners = 1, .stor = store,
        };
        cfg.listeners[0].proto = &sim_proto;
        ss->sh = shard_create(&cfg);
    }

    for (sim->step = 0; sim->step < STEPS_MAX && !sim->failures; sim->step++) {
        sim_now_ns += rng_below(3) * 1000000ull + rng_below(1000000);
        sim_shard_t *ss = &sim->shards[rng_below(SHARDS)];
        for (unsigned i = 0; i < SHARDS; i++) {
            /* The mailbox promise: a sleeper nobody woke has no mail. */
            sim_shard_t *s = &sim->shards[i];
            if (s->asleep && !s->woken && mbox_depth(mbox_hub_ep(hub, i)) > 0)
                SIM_FAIL("shard %u sleeps with %llu messages and no wake-up", i,
                         (unsigned long long)mbox_depth(mbox_hub_ep(hub, i)));
        }
        if (ss->asleep) {
            /* A sleeping shard runs only when woken, when its next timer is
             * due (the driver's wait timeout), when a completion is due, or
             * when the outside world sends it something (the workload). */
            uint64_t next = shard_sleep_ms(ss->sh);
            uint64_t now_ms = sim_now_ns / 1000000u;
            bool timer_due = next != UINT64_MAX && shard_now_ms(ss->sh) + next <= now_ms;
            bool external = rng_below(20) == 0;
            if (!ss->woken && !timer_due && !external && !sim_has_events(ss->id))
                continue;
            ss->asleep = false;
            shard_woke(ss->sh);
        }
        sim_turn(ss);
        if (sim_done())
            break;
    }
    if (!sim->failures && !sim_done()) {
        /* Quiesce: stop the workload, let both finish; mail left now was
         * lost. */
        quiescing = true;
        for (unsigned t = 0; t < 200; t++)
            for (unsigned i = 0; i < SHARDS; i++)
                sim_turn(&sim->shards[i]);
        for (unsigned a = 0; a < SHARDS; a++)
            for (unsigned b = 0; b < SHARDS; b++)
                if (recv_seq[a][b] != sent_seq[a][b])
                    SIM_FAIL("mail from %u to %u: %llu sent, %llu delivered", a, b,
                             (unsigned long long)sent_seq[a][b],
                             (unsigned long long)recv_seq[a][b]);
        if (!sim->failures)
            SIM_FAIL("did not finish the workload in %d steps", STEPS_MAX);
    }
    if (!sim->failures)
        check_conns();
    /* The workload can end with mail still on its way, such as a handoff's release
     * back to the shard it left: delivered before the shards go, or it leaks. */
    for (unsigned t = 0; t < 4; t++)
        for (unsigned i = 0; i < SHARDS; i++)
            shard_drain_mailbox(sim->shards[i].sh, 1u << 20);
    for (unsigned i = 0; i < SHARDS; i++) {
        for (unsigned t = 0; t < timers_armed[i]; t++)
            timer_cancel(shard_timers(sim->shards[i].sh), &timers[i][t].t);
        shard_destroy(sim->shards[i].sh);
    }
    mbox_hub_destroy(hub);
    metrics_destroy(metrics);
    stor_close(store);
    int failures = sim->failures;
    free(sim->events);
    free(sim);
    return failures;
}

int main(int argc, char **argv)
{
    uint64_t seed = 0;
    bool fixed = false;
    unsigned runs = 50;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
            fixed = true;
            runs = 1;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = (unsigned)strtoul(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "usage: sim_shards [--seed N] [--runs K]\n");
            return 2;
        }
    }
    /* The run provokes commit failures on purpose; failures print on their own. */
    log_set_level(LOG_LEVEL_OFF);
    if (!fixed) {
        const char *env = getenv("SIM_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 1000003u;
    }
    printf("sim: %u runs from seed %llu\n", runs, (unsigned long long)seed);
    for (unsigned r = 0; r < runs; r++) {
        uint64_t s = seed + r;
        if (sim_run(s)) {
            printf("sim: FAILED with seed %llu (replay: sim_shards --seed %llu)\n",
                   (unsigned long long)s, (unsigned long long)s);
            return 1;
        }
    }
    printf("sim: %u runs passed\n", runs);
    return 0;
}
