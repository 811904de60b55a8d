/*
 * presbench - the presenced load generator. Mode xmpp: N users u<i>@DOMAIN
 * with a seeded, symmetric contact graph of K contacts each, driven through
 * the life of an XMPP client against a running node.
 *
 *   presbench xmpp provision --users N --contacts K [--seed S] [--out FILE]
 *       writes the JSON-lines import file for `presencectl import` (every
 *       account with one password and one salt, rosters with subscription
 *       "both" both ways)
 *   presbench xmpp register --port P --users N --contacts K [--seed S]
 *                      [--concurrency C] [--json FILE] [--label L]
 *       provisions through the protocol, for any XMPP server: XEP-0077
 *       in-band registration of every user (one stream each, at most C at
 *       once; an existing account counts as done), then login, roster get
 *       and initial presence, then the RFC 6121 §3 subscription handshake
 *       of every edge of the graph (subscribe and subscribed both ways, each
 *       edge started by its lower-numbered user, at most C users waiting on
 *       theirs), then a roster get that checks every user has its K contacts
 *       with subscription "both"; prints (and writes as JSON) how long each
 *       part took
 *   presbench xmpp run --port P --users N --contacts K [--seed S]
 *                      [--rates R1,R2,...] [--msg-rate M] [--duration D]
 *                      [--server-pid PID] [--json FILE] [--label L] ...
 *       phases, each started for every user before the next:
 *         login    connect, SCRAM-SHA-256 (RFC 5802, RFC 6120 §6), resource
 *                  binding (§7), at --login-rate with at most --login-window
 *                  logins under way
 *         roster   roster get (RFC 6121 §2.1.3), checked against the graph
 *         initial  initial presence (RFC 6121 §4.2), then quiet: the node
 *                  answers probes and broadcasts until nothing arrives
 *         stages   for each rate R (or --every T: each user every T
 *                  seconds, R = N/T): every user in turn changes presence
 *                  (alternating <show>away</show> and available) so that
 *                  the node receives R changes/s for D seconds; each change
 *                  carries its send time (CLOCK_MONOTONIC ns, one machine)
 *                  in <status>, so every delivery to a contact gives one
 *                  change-to-delivery latency; with --msg-rate, the users
 *                  also send M chat messages/s (all users together; or
 *                  --msg-every T, each user every T seconds) during
 *                  every stage, each to the next online contact of its
 *                  sender, stamped the same way in <body>
 *         logout   </stream:stream> on every stream at once (a logout
 *                  storm), until the node closed every stream
 *       then prints a table (and with --json, a JSON document): logins/s
 *       from the first connect to the last bind result, login latency
 *       percentiles, roster fetch time, per stage deliveries/s and latency
 *       percentiles (and messages/s delivered and message latency), logouts/s
 *       and the time until the node closed the last stream, errors by kind,
 *       the server's CPU and RSS per phase from /proc/<pid> (--server-pid)
 *       with its RSS per connected user, and the generator's own CPU. The
 *       JSON adds --label (which server this was, for bench/report) and a
 *       time series, one entry a second from the start of the login phase:
 *       logins, deliveries, messages and logouts in that second, stage and
 *       message latency p50/p99 of what arrived in it, the server's cores and
 *       RSS, and the phase at the second's end.
 *
 * Mode sip: `presbench sip provision|run ...` is sipbench (bench/load/sipbench.c,
 * its options and output), linked into this binary with its main renamed.
 *
 * Connections: each worker thread has its own io_uring and holds its
 * connections as direct descriptors in the ring's file table: sockets are
 * created, bound and registered in batches, and their fds closed at once, so
 * the process's own descriptor table stays small whatever the number of
 * users (a ring's table is capped at RLIMIT_NOFILE, raised here to the hard
 * limit: more users than that per worker need more workers). Sources are
 * spread over 127.0.0.2 and up, bound with IP_BIND_ADDRESS_NO_PORT, so that
 * each address gets the whole ephemeral port range towards the server.
 * Receives are multishot into a provided-buffer ring; sends are queued per
 * connection and flushed once per loop turn.
 *
 * SCRAM: the server runs the full exchange and checks every proof; the
 * client derives SaltedPassword once per worker and salt (RFC 5802 §5.1
 * allows the cache, sasl_scram_client_set_key_cache), which is what makes a
 * login storm of thousands of accounts sharing one password and salt cost
 * the generator a few HMACs per login instead of a PBKDF2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/base64.h>

#include "bench/load/pb_graph.h"
#include "bench/load/pb_hist.h"
#include "bench/load/pb_xml.h"
#include "engine/bufring.h"
#include "engine/clock.h"
#include "protocols/xmpp/sasl.h"

/* ---- Limits ---------------------------------------------------------------- */

#define PB_THREADS_MAX 64
#define PB_STAGES_MAX 16
/* Source addresses 127.0.0.2 .. 127.0.0.251. */
#define PB_SOURCES_MAX 250
/* Submission queue: one loop turn queues a send per connection with output
 * at most; a full queue is submitted and refilled, so this only sets how
 * many go per syscall. Completions get 16 times that (IORING_SETUP_CQSIZE):
 * a turn can complete a receive on every connection of a busy worker. */
#define PB_SQ_ENTRIES 4096u
#define PB_CQ_ENTRIES (16u * PB_SQ_ENTRIES)
/* Receive buffers per worker: 8192 x 4 KiB = 32 MiB. A presence is ~150
 * bytes and a roster of 50 items ~4 KiB; buffers go back to the ring as soon
 * as their completion is read, and running out only costs a re-armed receive
 * (-ENOBUFS, counted). */
#define PB_RECV_BUFS 8192u
#define PB_RECV_BUF_BYTES 4096u
#define PB_BUF_GROUP 1
/* Sockets created and registered per io_uring_register call. */
#define PB_SOCKET_BATCH 64u
/* Bytes of one unfinished first-level element kept between receives; the
 * largest the node sends here is a roster (~80 bytes per item). */
#define PB_PARTIAL_MAX (1u << 20)
/* A worker's sleep when nothing is scheduled: how late it notices a phase
 * change. Pacing sleeps are shorter (at most PB_TICK_NS). */
#define PB_IDLE_WAIT_NS 2000000ull
/* Sending granularity of paced phases: changes due within one tick go out
 * together (each stamped when it is written, so this does not add latency). */
#define PB_TICK_NS 1000000ull

/* ---- Options --------------------------------------------------------------- */

typedef struct {
    const char *host;
    unsigned port;
    const char *domain;
    unsigned users, contacts;
    uint64_t seed;
    const char *password;
    const char *salt_b64;
    unsigned iterations;
    const char *resource;
    unsigned threads, sources;
    double login_rate;          /* logins/s started; 0: as fast as the window allows */
    unsigned login_window;      /* logins (and roster gets) under way, all workers */
    double initial_rate;        /* initial presences/s; 0: all at once */
    double rates[PB_STAGES_MAX];
    unsigned n_rates;
    double msg_rate;            /* chat messages/s during every stage, all users */
    bool registering;           /* xmpp register: XEP-0077 and subscription handshakes */
    unsigned concurrency;       /* register: registrations and handshakes under way */
    const char *label;          /* names the run (the server) in the JSON and reports */
    double duration_s, settle_s, quiet_s, idle_s, phase_timeout_s;
    int server_pid;
    const char *json_path;
    const char *commit;
    const char *out_path;       /* provision */
} pb_opts_t;

static pb_opts_t opt = {
    .host = "127.0.0.1",
    .domain = "localhost",
    .users = 1000,
    .contacts = 50,
    .seed = 1,
    .password = "presbench",
    /* base64 of the 16 bytes "presbench-salt-1" (SASL_SALT_MIN_BYTES) */
    .salt_b64 = "cHJlc2JlbmNoLXNhbHQtMQ==",
    .iterations = SASL_ITERATIONS_DEFAULT,
    .resource = "pb",
    .threads = 2,
    .login_window = 2000,
    .initial_rate = 0,
    .duration_s = 10,
    .settle_s = 3,
    .quiet_s = 1,
    .phase_timeout_s = 120,
    .concurrency = 200,
};

/* ---- The contact graph (pb_graph.h) -------------------------------------- */

static pb_graph_t graph;

/* ---- provision ------------------------------------------------------------ */

static int pb_provision(void)
{
    FILE *f = opt.out_path && strcmp(opt.out_path, "-") ? fopen(opt.out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "presbench: %s: %s\n", opt.out_path, strerror(errno));
        return 1;
    }
    uint32_t *c = malloc(sizeof(uint32_t) * (graph.degree + 1));
    for (uint32_t u = 0; u < opt.users; u++) {
        fprintf(f, "{\"jid\":\"u%" PRIu32 "@%s\",\"password\":\"%s\",\"salt\":\"%s\","
                   "\"iterations\":%u,\"roster\":[",
                u, opt.domain, opt.password, opt.salt_b64, opt.iterations);
        pb_graph_contacts(&graph, u, c);
        for (unsigned i = 0; i < graph.degree; i++)
            fprintf(f, "%s{\"jid\":\"u%" PRIu32 "@%s\",\"name\":\"u%" PRIu32 "\","
                       "\"groups\":[\"presbench\"],\"subscription\":\"both\"}",
                    i ? "," : "", c[i], opt.domain, c[i]);
        fputs("]}\n", f);
    }
    free(c);
    if (f != stdout && fclose(f) != 0) {
        fprintf(stderr, "presbench: %s: %s\n", opt.out_path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "presbench: %u accounts, %u contacts each, seed %" PRIu64 "\n", opt.users,
            graph.degree, opt.seed);
    return 0;
}

/* ---- Errors ---------------------------------------------------------------- */

typedef enum {
    PB_ERR_CONNECT,             /* socket, bind or connect failed */
    PB_ERR_NO_SCRAM,            /* SCRAM-SHA-256 not offered */
    PB_ERR_SASL_FAILURE,        /* <failure/> from the server */
    PB_ERR_SASL_CLIENT,         /* our SCRAM client refused a server message */
    PB_ERR_BIND,
    PB_ERR_ROSTER,              /* roster get answered with an error */
    PB_ERR_ROSTER_SIZE,         /* roster without exactly the graph's contacts */
    PB_ERR_STREAM_ERROR,        /* <stream:error/> */
    PB_ERR_CLOSED,              /* the server closed a stream we did not close */
    PB_ERR_PARSE,               /* bytes pb_xml could not cut */
    PB_ERR_SEND,
    PB_ERR_RECV,
    PB_ERR_PRESENCE_ERROR,      /* presence of type error */
    PB_ERR_STANZA_ERROR,        /* another stanza of type error */
    PB_ERR_BAD_STAMP,           /* a presence whose <status> we did not write */
    PB_ERR_LOGIN_TIMEOUT,
    PB_ERR_ROSTER_TIMEOUT,
    PB_ERR_LOGOUT_TIMEOUT,
    PB_ERR_NO_REGISTER,         /* XEP-0077 registration not offered */
    PB_ERR_REGISTER,            /* registration refused (not for an existing account) */
    PB_ERR_REGISTER_TIMEOUT,
    PB_ERR_SUBSCRIBE_TIMEOUT,   /* a user's roster not all "both" in time */
    PB_ERR_COUNT
} pb_err_t;

static const char *const pb_err_names[PB_ERR_COUNT] = {
    "connect", "no_scram", "sasl_failure", "sasl_client", "bind", "roster", "roster_size",
    "stream_error", "closed_by_server", "parse", "send", "recv", "presence_error",
    "stanza_error", "bad_stamp", "login_timeout", "roster_timeout", "logout_timeout",
    "no_register", "register", "register_timeout", "subscribe_timeout",
};

/* ---- Workers and connections ----------------------------------------------- */

/* Phases as the main thread publishes them; PB_PH_STAGE + k is stage k. */
enum {
    PB_PH_INIT = 0,
    PB_PH_LOGIN,
    PB_PH_ROSTER,
    PB_PH_INITIAL,
    PB_PH_QUIET,
    PB_PH_LOGOUT,
    PB_PH_EXIT,
    PB_PH_REGISTER,             /* xmpp register: XEP-0077, one stream each */
    PB_PH_SUBSCRIBE,            /* xmpp register: RFC 6121 §3 handshakes */
    PB_PH_VERIFY,               /* xmpp register: every roster all "both" */
    PB_PH_STAGE = 16,
};

/*
 *  IDLE -connect-> CONNECTING -> FEATURES -<auth>-> CHALLENGE -<response>->
 *  SUCCESS -<stream restart>-> FEATURES2 -<bind>-> BIND -> BOUND
 *  BOUND -<roster get>-> ROSTER -> READY -</stream:stream>-> LOGOUT -> CLOSED
 *  any state -error-> FAILED
 *  register: CONNECTING -> REG_FEATURES -<iq set>-> REG_IQ -</stream:stream>->
 *            REG_CLOSE -> CLOSED, then the login above on a new stream
 */
typedef enum {
    C_IDLE = 0, C_CONNECTING, C_FEATURES, C_CHALLENGE, C_SUCCESS, C_FEATURES2, C_BIND,
    C_BOUND, C_ROSTER, C_READY, C_LOGOUT, C_CLOSED, C_FAILED,
    C_REG_FEATURES, C_REG_IQ, C_REG_CLOSE,
} pb_cstate_t;

typedef struct {
    char *data;
    uint32_t len, cap;
} pb_bytes_t;

typedef struct {
    uint32_t user;
    uint8_t state;
    bool installed;             /* holds a slot in the ring's file table */
    bool sending;
    bool dirty;                 /* on the worker's flush list */
    bool due;                   /* the current phase still owes this connection a step */
    uint32_t changes;
    uint32_t msgs;
    /* register: contacts above this user (it starts their handshakes), roster
     * pushes with subscription "both" for those and for all */
    uint32_t hi_owed, both_hi, both;
    uint32_t fly_off;
    uint64_t t_start;           /* login: socket created; roster: request queued */
    sasl_scram_client_t *scram;
    pb_bytes_t out;             /* appended to while `fly` is being sent */
    pb_bytes_t fly;
    pb_bytes_t part;            /* an unfinished element from the last receive */
} pb_conn_t;

typedef struct {
    pb_hist_t lat;
    uint64_t delivered;         /* presences stamped with this stage */
    uint64_t in_window;         /* ... that arrived before the stage's sending ended */
    uint64_t changes;           /* changes this worker sent in the stage */
    uint64_t expected;          /* deliveries they owe: their senders' online contacts */
    uint64_t lag_max_ns;        /* latest a change went out after its schedule */
    uint64_t lag_sum_ns;
    uint64_t receives;          /* receive completions with data during the stage's window: */
    uint64_t received_bytes;    /* deliveries per receive say how much the node coalesces */
    /* chat messages (--msg-rate) */
    pb_hist_t msg_lat;
    uint64_t msgs_sent;         /* each to a contact online when it was sent */
    uint64_t msgs_delivered, msgs_in_window;
} pb_stage_stats_t;

/* Seconds of a run with a per-second record (two hours); a longer run keeps
 * its totals and stops its time series there. */
#define PB_SERIES_MAX 7200u

/* One worker's per-second counts and latencies, second 0 starting when the
 * login phase does; merged across workers once they stopped. */
typedef struct {
    uint32_t logins[PB_SERIES_MAX];         /* bind results */
    uint32_t deliveries[PB_SERIES_MAX];     /* stamped presences, initial and stages */
    uint32_t messages[PB_SERIES_MAX];       /* stamped chat messages */
    uint32_t logouts[PB_SERIES_MAX];        /* streams the node closed after ours */
    pb_hist_t *lat[PB_SERIES_MAX];          /* stage change-to-delivery, allocated */
    pb_hist_t *msg_lat[PB_SERIES_MAX];      /* on the second's first sample */
    unsigned n;                             /* seconds up to the last with anything */
} pb_series_t;

typedef struct {
    unsigned id;
    pthread_t thread;
    struct io_uring ring;
    bufring_t br;
    uint32_t first_user, n;
    pb_conn_t *conns;
    uint32_t *flush;            /* connections with output to send this turn */
    uint32_t n_flush;
    sasl_scram_key_cache_t key_cache;
    int phase;
    uint64_t phase_t0;
    /* pacing */
    uint32_t next_start;        /* next connection to start (login, roster, initial) */
    uint32_t inflight, window;
    uint64_t started;
    uint32_t *ready;            /* READY connections, for the stages' round robin */
    uint32_t *contacts;         /* scratch: one user's contacts */
    uint32_t n_ready, rr;
    /* results, read by the main thread after the worker stopped or via atomics */
    pb_hist_t login_lat, roster_lat, initial_lat;
    uint64_t t_first_connect, t_last_bound, t_first_roster, t_last_roster;
    pb_hist_t logout_lat;       /* </stream:stream> queued to the node closing the socket */
    uint64_t t_logout, t_last_closed, logout_closed;
    uint32_t mrr;               /* the next READY connection to send a message */
    uint64_t messages_in;
    pb_series_t *series;
    uint64_t errors[PB_ERR_COUNT];
    uint64_t enobufs;
    uint64_t presence_available, presence_unavailable, presence_other;
    uint64_t initial_delivered;
    pb_stage_stats_t stage[PB_STAGES_MAX];
    char first_error[160];
    /* progress, published for the main thread (relaxed: counts only) */
    _Atomic uint64_t p_login_done, p_bound, p_roster_done, p_initial_done, p_presences,
        p_logout_done, p_reg_done, p_sub_done;
    uint64_t registered, reg_existed, t_last_registered, t_last_both, subscribes_sent;
    _Atomic uint64_t p_expect;  /* steps the phase owes, counted when the worker entered it */
    _Atomic int p_phase;        /* the phase the worker has entered (release) */
    uint64_t initial_sent;
} pb_worker_t;

static struct {
    _Atomic int phase;
    /* Users online with initial presence sent (1) or not (0), set by the
     * worker that holds them and read by all to count the deliveries a
     * change owes (relaxed: a change racing a login or a failure may count
     * one delivery more or less). */
    _Atomic uint8_t *online;
    /* A stage's start and the end of its sending, set before its phase is
     * published; atomics because the worker that reads one on a delivery
     * may not have seen that phase yet (it is set 20 ms before any change). */
    _Atomic uint64_t stage_t0[PB_STAGES_MAX];
    _Atomic uint64_t stage_t1[PB_STAGES_MAX];
    pb_worker_t *workers;
    struct sockaddr_in server;
    /* Second 0 of the time series: set before the login phase is published
     * (release), read by workers only in later phases. */
    uint64_t t0;
} g;

static pb_series_t *pb_series_at(pb_worker_t *w, uint64_t now, unsigned *sec)
{
    uint64_t s = now > g.t0 ? (now - g.t0) / 1000000000u : 0;
    if (s >= PB_SERIES_MAX)
        return NULL;
    *sec = (unsigned)s;
    if (w->series->n <= s)
        w->series->n = (unsigned)s + 1;
    return w->series;
}

static void pb_series_lat(pb_worker_t *w, pb_hist_t **slot, uint64_t ns)
{
    if (!*slot) {
        *slot = malloc(sizeof(pb_hist_t));
        if (!*slot)
            PANIC("worker %u: out of memory for a second's latencies", w->id);
        pb_hist_init(*slot);
    }
    pb_hist_add(*slot, ns);
}

/* user_data: kind in the top byte, connection index below. */
enum { UD_CONNECT = 1, UD_RECV, UD_SEND, UD_CLOSE, UD_CANCEL };
#define UD(kind, idx) (((uint64_t)(kind) << 56) | (uint64_t)(idx))

static struct io_uring_sqe *pb_sqe(pb_worker_t *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
        if (!sqe)
            PANIC("worker %u: no submission queue entry after a submit", w->id);
    }
    return sqe;
}

static void pb_bytes_append(pb_bytes_t *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            PANIC("out of memory growing a connection buffer");
        b->data = p;
        b->cap = (uint32_t)cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += (uint32_t)len;
}

static void pb_bytes_free(pb_bytes_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static void pb_error(pb_worker_t *w, pb_err_t kind, const pb_conn_t *c, const char *detail,
                     size_t detail_len)
{
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof(w->first_error), "%s u%" PRIu32 ": %.*s",
                 pb_err_names[kind], c ? c->user : 0,
                 (int)(detail_len > 100 ? 100 : detail_len), detail ? detail : "");
    w->errors[kind]++;
}

static void pb_write(pb_worker_t *w, uint32_t idx, const void *data, size_t len)
{
    pb_conn_t *c = &w->conns[idx];
    pb_bytes_append(&c->out, data, len);
    if (!c->dirty) {
        c->dirty = true;
        w->flush[w->n_flush++] = idx;
    }
}

static void pb_write_str(pb_worker_t *w, uint32_t idx, const char *s)
{
    pb_write(w, idx, s, strlen(s));
}

static void pb_send(pb_worker_t *w, uint32_t idx)
{
    pb_conn_t *c = &w->conns[idx];
    struct io_uring_sqe *sqe = pb_sqe(w);
    io_uring_prep_send(sqe, (int)idx, c->fly.data + c->fly_off, c->fly.len - c->fly_off,
                       MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, UD(UD_SEND, idx));
    c->sending = true;
}

/* Once per turn: one send per connection with queued output and none under
 * way (the rest goes when that one completes). */
static void pb_flush(pb_worker_t *w)
{
    for (uint32_t i = 0; i < w->n_flush; i++) {
        uint32_t idx = w->flush[i];
        pb_conn_t *c = &w->conns[idx];
        c->dirty = false;
        if (c->sending || !c->out.len || !c->installed)
            continue;
        pb_bytes_t t = c->fly;
        c->fly = c->out;
        c->out = t;
        c->out.len = 0;
        c->fly_off = 0;
        pb_send(w, idx);
    }
    w->n_flush = 0;
}

static bool pb_in_login(uint8_t st)
{
    return st >= C_CONNECTING && st <= C_BIND;
}

/* Ends a connection: cancels its receive and frees its file slot. Completions
 * still under way find the state CLOSED or FAILED and only give buffers back. */
static void pb_close(pb_worker_t *w, uint32_t idx, uint8_t final)
{
    pb_conn_t *c = &w->conns[idx];
    if (c->state == C_CLOSED || c->state == C_FAILED)
        return;
    if (pb_in_login(c->state) && w->inflight) {
        w->inflight--;
        atomic_fetch_add_explicit(w->phase == PB_PH_REGISTER ? &w->p_reg_done : &w->p_login_done,
                                  1, memory_order_relaxed);
    } else if (c->state == C_ROSTER && w->inflight) {
        w->inflight--;
        atomic_fetch_add_explicit(&w->p_roster_done, 1, memory_order_relaxed);
    } else if (c->state == C_LOGOUT) {
        atomic_fetch_add_explicit(&w->p_logout_done, 1, memory_order_relaxed);
    } else if (c->state >= C_REG_FEATURES && c->state <= C_REG_CLOSE && w->inflight) {
        w->inflight--;
        atomic_fetch_add_explicit(&w->p_reg_done, 1, memory_order_relaxed);
    }
    c->state = final;
    atomic_store_explicit(&g.online[c->user], 0, memory_order_relaxed);
    if (c->scram) {
        sasl_scram_client_fini(c->scram);
        free(c->scram);
        c->scram = NULL;
    }
    pb_bytes_free(&c->part);
    if (c->installed) {
        c->installed = false;
        struct io_uring_sqe *sqe = pb_sqe(w);
        io_uring_prep_cancel_fd(sqe, (int)idx, IORING_ASYNC_CANCEL_ALL |
                                               IORING_ASYNC_CANCEL_FD_FIXED);
        io_uring_sqe_set_data64(sqe, UD(UD_CANCEL, idx));
        sqe = pb_sqe(w);
        io_uring_prep_close_direct(sqe, idx);
        io_uring_sqe_set_data64(sqe, UD(UD_CLOSE, idx));
    }
}

static void pb_fail(pb_worker_t *w, uint32_t idx, pb_err_t kind, const char *detail, size_t len)
{
    pb_error(w, kind, &w->conns[idx], detail, len);
    pb_close(w, idx, C_FAILED);
}

/* ---- Login ----------------------------------------------------------------- */

static const char pb_stream_header_fmt[] =
    "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'>";

static void pb_send_header(pb_worker_t *w, uint32_t idx)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr), pb_stream_header_fmt, opt.domain);
    pb_write(w, idx, hdr, (size_t)n);
}

/* Creates, binds and registers sockets for connections [first, first+count)
 * and queues their connects. */
static void pb_start_batch(pb_worker_t *w, uint32_t first, uint32_t count, uint64_t now)
{
    int fds[PB_SOCKET_BATCH];
    ASSERT(count <= PB_SOCKET_BATCH);
    if (!count)
        return;
    for (uint32_t i = 0; i < count; i++) {
        pb_conn_t *c = &w->conns[first + i];
        c->t_start = now;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000002u + c->user % opt.sources);
        if (fds[i] < 0 ||
            setsockopt(fds[i], IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
            setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
            bind(fds[i], (struct sockaddr *)&src, sizeof(src)) < 0) {
            const char *why = strerror(errno);
            if (fds[i] >= 0)
                close(fds[i]);
            fds[i] = -1;
            c->state = C_CONNECTING;
            w->inflight++;
            pb_fail(w, first + i, PB_ERR_CONNECT, why, strlen(why));
        }
    }
    int rc = io_uring_register_files_update(&w->ring, first, fds, count);
    if (rc < 0 || (uint32_t)rc != count)
        PANIC("worker %u: registering %u sockets: %s", w->id, count,
              strerror(rc < 0 ? -rc : EIO));
    for (uint32_t i = 0; i < count; i++) {
        if (fds[i] < 0)
            continue;
        close(fds[i]);     /* the ring holds the socket now */
        uint32_t idx = first + i;
        pb_conn_t *c = &w->conns[idx];
        c->installed = true;
        c->state = C_CONNECTING;
        w->inflight++;
        struct io_uring_sqe *sqe = pb_sqe(w);
        io_uring_prep_connect(sqe, (int)idx, (struct sockaddr *)&g.server, sizeof(g.server));
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, UD(UD_CONNECT, idx));
    }
    if (!w->t_first_connect)
        w->t_first_connect = now;
}

static void pb_arm_recv(pb_worker_t *w, uint32_t idx)
{
    struct io_uring_sqe *sqe = pb_sqe(w);
    io_uring_prep_recv_multishot(sqe, (int)idx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = PB_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, UD(UD_RECV, idx));
}

static void pb_b64_element(pb_worker_t *w, uint32_t idx, const char *head, const char *tail,
                           const char *data, size_t len)
{
    char enc[4 * SASL_CLIENT_FINAL_MAX_BYTES / 3 + 8];
    size_t n = EVP_EncodeBlock((uint8_t *)enc, (const uint8_t *)data, len);
    pb_write_str(w, idx, head);
    pb_write(w, idx, enc, n);
    pb_write_str(w, idx, tail);
}

static void pb_on_features(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it)
{
    pb_conn_t *c = &w->conns[idx];
    if (c->state == C_FEATURES2) {
        char iq[256];
        int n = snprintf(iq, sizeof(iq),
                         "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                         "<resource>%s</resource></bind></iq>", opt.resource);
        pb_write(w, idx, iq, (size_t)n);
        c->state = C_BIND;
        return;
    }
    if (c->state != C_FEATURES)
        return;
    if (!memmem(it->whole.ptr, it->whole.len, ">SCRAM-SHA-256<", 15)) {
        pb_fail(w, idx, PB_ERR_NO_SCRAM, it->whole.ptr, it->whole.len);
        return;
    }
    c->scram = malloc(sizeof(*c->scram));
    if (!c->scram)
        PANIC("out of memory starting SCRAM");
    sasl_scram_client_init(c->scram, SASL_HASH_SHA256, false);
    sasl_scram_client_set_key_cache(c->scram, &w->key_cache);
    char user[16], first[SASL_CLIENT_FIRST_MAX_BYTES];
    size_t len;
    snprintf(user, sizeof(user), "u%" PRIu32, c->user);
    int rc = sasl_scram_client_first(c->scram, str_from_cstr(user), (str_t){ "", 0 }, first,
                                     sizeof(first), &len);
    if (rc < 0) {
        pb_fail(w, idx, PB_ERR_SASL_CLIENT, strerror(-rc), strlen(strerror(-rc)));
        return;
    }
    pb_b64_element(w, idx,
                   "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>",
                   "</auth>", first, len);
    c->state = C_CHALLENGE;
}

static int pb_b64_decode(str_t in, char *out, size_t cap, size_t *len)
{
    if (in.len == 1 && in.ptr[0] == '=') {
        *len = 0;
        return 0;
    }
    return EVP_DecodeBase64((uint8_t *)out, len, cap, (const uint8_t *)in.ptr, in.len) ? 0
                                                                                     : -EBADMSG;
}

static void pb_on_challenge(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it)
{
    pb_conn_t *c = &w->conns[idx];
    char sf[SASL_SERVER_FIRST_MAX_BYTES * 2], final[SASL_CLIENT_FINAL_MAX_BYTES];
    size_t sf_len, len;
    if (c->state != C_CHALLENGE || pb_b64_decode(pb_xml_text(it), sf, sizeof(sf), &sf_len) < 0) {
        pb_fail(w, idx, PB_ERR_SASL_CLIENT, it->whole.ptr, it->whole.len);
        return;
    }
    int rc = sasl_scram_client_final(c->scram, opt.password, strlen(opt.password), sf, sf_len,
                                     final, sizeof(final), &len);
    if (rc < 0) {
        pb_fail(w, idx, PB_ERR_SASL_CLIENT, strerror(-rc), strlen(strerror(-rc)));
        return;
    }
    pb_b64_element(w, idx, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", "</response>",
                   final, len);
    c->state = C_SUCCESS;
}

static void pb_on_success(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it)
{
    pb_conn_t *c = &w->conns[idx];
    char sfinal[SASL_SERVER_FINAL_MAX_BYTES * 2];
    size_t len;
    if (c->state != C_SUCCESS ||
        pb_b64_decode(pb_xml_text(it), sfinal, sizeof(sfinal), &len) < 0 ||
        sasl_scram_client_verify(c->scram, sfinal, len) < 0) {
        pb_fail(w, idx, PB_ERR_SASL_CLIENT, it->whole.ptr, it->whole.len);
        return;
    }
    sasl_scram_client_fini(c->scram);
    free(c->scram);
    c->scram = NULL;
    pb_send_header(w, idx);     /* RFC 6120 §6.4.6: a new stream */
    c->state = C_FEATURES2;
}

/* ---- Presence ---------------------------------------------------------------- */

/* xmpp register's handlers, below with the rest of it. */
static void pb_roster_both(pb_conn_t *c, const pb_xml_item_t *it);
static void pb_on_subscribe(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it);
static void pb_on_roster_push(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it,
                              uint64_t now);

/* "<status>pb STAGE NS</status>": stage 0 is initial presence. */
static void pb_send_presence(pb_worker_t *w, uint32_t idx, unsigned stage, bool away)
{
    char p[160];
    int n = snprintf(p, sizeof(p), "<presence>%s<status>pb %u %" PRIu64 "</status></presence>",
                     away ? "<show>away</show>" : "", stage, clk_monotonic_ns());
    pb_write(w, idx, p, (size_t)n);
}

static bool pb_parse_u64(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    *p = s;
    *out = v;
    return true;
}

static void pb_on_presence(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it, uint64_t now)
{
    str_t type = pb_xml_attr(it->tag, "type");
    if (type.ptr) {
        if (opt.registering && str_eq_cstr(type, "subscribe"))
            pb_on_subscribe(w, idx, it);
        else if (str_eq_cstr(type, "unavailable"))
            w->presence_unavailable++;
        else if (str_eq_cstr(type, "error"))
            pb_error(w, PB_ERR_PRESENCE_ERROR, &w->conns[idx], it->whole.ptr, it->whole.len);
        else
            w->presence_other++;
        return;
    }
    w->presence_available++;
    str_t st = pb_xml_between(it->whole, "<status>", "</status>");
    uint64_t stage, sent;
    const char *p = st.ptr, *end = st.ptr + st.len;
    if (!st.ptr || st.len < 4 || memcmp(p, "pb ", 3) || (p += 3, !pb_parse_u64(&p, end, &stage)) ||
        p >= end || *p++ != ' ' || !pb_parse_u64(&p, end, &sent) || stage > PB_STAGES_MAX ||
        sent > now) {
        pb_error(w, PB_ERR_BAD_STAMP, &w->conns[idx], it->whole.ptr, it->whole.len);
        return;
    }
    unsigned sec;
    pb_series_t *ser = pb_series_at(w, now, &sec);
    if (ser)
        ser->deliveries[sec]++;
    if (stage == 0) {
        w->initial_delivered++;
        pb_hist_add(&w->initial_lat, now - sent);
        return;
    }
    pb_stage_stats_t *s = &w->stage[stage - 1];
    s->delivered++;
    pb_hist_add(&s->lat, now - sent);
    if (ser)
        pb_series_lat(w, &ser->lat[sec], now - sent);
    if (now <= atomic_load_explicit(&g.stage_t1[stage - 1], memory_order_relaxed))
        s->in_window++;
}

/* "<body>pb STAGE NS</body>": the stage (1..) the message was sent in and
 * when, as for presence. */
static void pb_send_message(pb_worker_t *w, uint32_t idx, uint32_t to, unsigned stage)
{
    char m[256];
    int n = snprintf(m, sizeof(m),
                     "<message to='u%" PRIu32 "@%s' type='chat'><body>pb %u %" PRIu64
                     "</body></message>",
                     to, opt.domain, stage, clk_monotonic_ns());
    pb_write(w, idx, m, (size_t)n);
}

static void pb_on_message(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it, uint64_t now)
{
    str_t type = pb_xml_attr(it->tag, "type");
    if (type.ptr && str_eq_cstr(type, "error")) {
        pb_error(w, PB_ERR_STANZA_ERROR, &w->conns[idx], it->whole.ptr, it->whole.len);
        return;
    }
    str_t body = pb_xml_between(it->whole, "<body>", "</body>");
    uint64_t stage, sent;
    const char *p = body.ptr, *end = body.ptr + body.len;
    if (!body.ptr || body.len < 4 || memcmp(p, "pb ", 3) ||
        (p += 3, !pb_parse_u64(&p, end, &stage)) || p >= end || *p++ != ' ' ||
        !pb_parse_u64(&p, end, &sent) || stage < 1 || stage > PB_STAGES_MAX || sent > now) {
        pb_error(w, PB_ERR_BAD_STAMP, &w->conns[idx], it->whole.ptr, it->whole.len);
        return;
    }
    w->messages_in++;
    pb_stage_stats_t *s = &w->stage[stage - 1];
    s->msgs_delivered++;
    pb_hist_add(&s->msg_lat, now - sent);
    if (now <= atomic_load_explicit(&g.stage_t1[stage - 1], memory_order_relaxed))
        s->msgs_in_window++;
    unsigned sec;
    pb_series_t *ser = pb_series_at(w, now, &sec);
    if (ser) {
        ser->messages[sec]++;
        pb_series_lat(w, &ser->msg_lat[sec], now - sent);
    }
}

/* ---- Dispatch ------------------------------------------------------------------ */

static void pb_on_iq(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it, uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    str_t type = pb_xml_attr(it->tag, "type"), id = pb_xml_attr(it->tag, "id");
    bool result = type.ptr && str_eq_cstr(type, "result");
    if (c->state == C_BIND && id.ptr && str_eq_cstr(id, "bind")) {
        if (!result) {
            pb_fail(w, idx, PB_ERR_BIND, it->whole.ptr, it->whole.len);
            return;
        }
        c->state = C_BOUND;
        w->inflight--;
        pb_hist_add(&w->login_lat, now - c->t_start);
        unsigned sec;
        pb_series_t *ser = pb_series_at(w, now, &sec);
        if (ser)
            ser->logins[sec]++;
        if (now > w->t_last_bound)
            w->t_last_bound = now;
        atomic_fetch_add_explicit(&w->p_bound, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->p_login_done, 1, memory_order_relaxed);
        return;
    }
    if (c->state == C_ROSTER && id.ptr && str_eq_cstr(id, "roster")) {
        w->inflight--;
        atomic_fetch_add_explicit(&w->p_roster_done, 1, memory_order_relaxed);
        if (!result) {
            pb_error(w, PB_ERR_ROSTER, c, it->whole.ptr, it->whole.len);
            c->state = C_BOUND;
            return;
        }
        unsigned items = 0;
        const char *p = it->whole.ptr, *end = p + it->whole.len;
        while ((p = memmem(p, (size_t)(end - p), "<item ", 6))) {
            items++;
            p += 6;
        }
        /* Registered accounts start with an empty roster; after their
         * handshakes (PB_PH_VERIFY) every contact must be there, "both". */
        unsigned both = 0;
        for (p = it->whole.ptr; (p = memmem(p, (size_t)(end - p), "subscription=", 13)); p += 13)
            both += p + 19 <= end && !memcmp(p + 14, "both", 4);
        if (opt.registering && w->phase == PB_PH_ROSTER)
            pb_roster_both(c, it);
        if ((!opt.registering && items != graph.degree) ||
            (w->phase == PB_PH_VERIFY && (items != graph.degree || both != graph.degree)))
            pb_error(w, PB_ERR_ROSTER_SIZE, c, it->whole.ptr, it->whole.len);
        pb_hist_add(&w->roster_lat, now - c->t_start);
        if (now > w->t_last_roster)
            w->t_last_roster = now;
        c->state = C_READY;
        return;
    }
    if (type.ptr && str_eq_cstr(type, "error")) {
        pb_error(w, PB_ERR_STANZA_ERROR, c, it->whole.ptr, it->whole.len);
    } else if (type.ptr && (str_eq_cstr(type, "get") || str_eq_cstr(type, "set"))) {
        if (opt.registering && str_eq_cstr(type, "set"))
            pb_on_roster_push(w, idx, it, now);
        /* RFC 6120 §8.2.3: answer every get and set (roster pushes, pings). */
        char reply[200];
        int n = snprintf(reply, sizeof(reply), "<iq type='result' id='%.*s'/>",
                         (int)(id.len > 100 ? 100 : id.len), id.ptr ? id.ptr : "");
        pb_write(w, idx, reply, (size_t)n);
    }
}

/* ---- xmpp register: XEP-0077 and the RFC 6121 subscription handshake ----------- */

static void pb_on_register_item(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it,
                                uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    if (c->state == C_REG_FEATURES && str_eq_cstr(it->name, "stream:features")) {
        /* XEP-0077 §3.1: the stream feature says registration is open. */
        if (!pb_xml_find(it->whole.ptr, it->whole.len, "jabber.org/features/iq-register", 31)) {
            pb_fail(w, idx, PB_ERR_NO_REGISTER, it->whole.ptr, it->whole.len);
            return;
        }
        char iq[512];
        int n = snprintf(iq, sizeof(iq),
                         "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
                         "<username>u%" PRIu32 "</username><password>%s</password>"
                         "</query></iq>", c->user, opt.password);
        pb_write(w, idx, iq, (size_t)n);
        c->state = C_REG_IQ;
        return;
    }
    str_t type = pb_xml_attr(it->tag, "type"), id = pb_xml_attr(it->tag, "id");
    if (c->state != C_REG_IQ || !id.ptr || !str_eq_cstr(id, "reg"))
        return;
    if (type.ptr && str_eq_cstr(type, "result")) {
        w->registered++;
    } else if (pb_xml_find(it->whole.ptr, it->whole.len, "<conflict", 9)) {
        /* §3.1: the account exists, from an earlier run: log in with it. */
        w->reg_existed++;
    } else {
        pb_fail(w, idx, PB_ERR_REGISTER, it->whole.ptr, it->whole.len);
        return;
    }
    if (now > w->t_last_registered)
        w->t_last_registered = now;
    pb_write_str(w, idx, "</stream:stream>");
    c->state = C_REG_CLOSE;
}

/* The user number of a JID "u<n>@...", or UINT32_MAX. */
static uint32_t pb_jid_user(str_t jid)
{
    const char *p = jid.ptr, *end = jid.ptr + jid.len;
    uint64_t v;
    if (!p || p >= end || *p++ != 'u' || !pb_parse_u64(&p, end, &v) || p >= end || *p != '@' ||
        v >= opt.users)
        return UINT32_MAX;
    return (uint32_t)v;
}

/* RFC 6121 §3.1.3-§3.1.5: approve every request from a contact, and ask
 * back those below us (they started the handshake; we start those above). */
static void pb_on_subscribe(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it)
{
    pb_conn_t *c = &w->conns[idx];
    str_t from = pb_xml_attr(it->tag, "from");
    uint32_t u = pb_jid_user(from);
    if (u == UINT32_MAX) {
        pb_error(w, PB_ERR_STANZA_ERROR, c, it->whole.ptr, it->whole.len);
        return;
    }
    char p[256];
    int n = snprintf(p, sizeof(p), "<presence to='u%" PRIu32 "@%s' type='subscribed'/>", u,
                     opt.domain);
    pb_write(w, idx, p, (size_t)n);
    if (u < c->user) {
        n = snprintf(p, sizeof(p), "<presence to='u%" PRIu32 "@%s' type='subscribe'/>", u,
                     opt.domain);
        pb_write(w, idx, p, (size_t)n);
        w->subscribes_sent++;
    }
}

/* A roster read before the handshakes: the contacts "both" already, from an
 * earlier run, that no push will announce. */
static void pb_roster_both(pb_conn_t *c, const pb_xml_item_t *it)
{
    const char *p = it->whole.ptr, *end = p + it->whole.len;
    while ((p = pb_xml_find(p, (size_t)(end - p), "<item ", 6))) {
        size_t tl = pb_xml_tag_len(p, (size_t)(end - p));
        if (!tl)
            break;
        str_t tag = { p, tl };
        str_t sub = pb_xml_attr(tag, "subscription");
        uint32_t u = pb_jid_user(pb_xml_attr(tag, "jid"));
        if (sub.ptr && str_eq_cstr(sub, "both") && u != UINT32_MAX) {
            c->both++;
            c->both_hi += u > c->user;
        }
        p += tl;
    }
}

/* A roster push (RFC 6121 §2.1.6): counts the contacts now "both". */
static void pb_on_roster_push(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it,
                              uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    const char *p = pb_xml_find(it->whole.ptr, it->whole.len, "<item ", 6);
    if (!p)
        return;
    size_t tl = pb_xml_tag_len(p, (size_t)(it->whole.ptr + it->whole.len - p));
    str_t tag = { p, tl };
    str_t sub = tl ? pb_xml_attr(tag, "subscription") : (str_t){ NULL, 0 };
    if (!sub.ptr || !str_eq_cstr(sub, "both"))
        return;
    uint32_t u = pb_jid_user(pb_xml_attr(tag, "jid"));
    if (u == UINT32_MAX)
        return;
    c->both++;
    if (u > c->user && ++c->both_hi == c->hi_owed && w->inflight)
        w->inflight--;      /* its own handshakes are done: the next user may start */
    if (c->both == graph.degree) {
        atomic_fetch_add_explicit(&w->p_sub_done, 1, memory_order_relaxed);
        if (now > w->t_last_both)
            w->t_last_both = now;
    }
}

static void pb_on_item(pb_worker_t *w, uint32_t idx, const pb_xml_item_t *it, uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    if (it->kind == PB_XML_CLOSE) {
        if (c->state != C_LOGOUT && c->state != C_REG_CLOSE)
            pb_fail(w, idx, PB_ERR_CLOSED, it->whole.ptr, it->whole.len);
        return;
    }
    if (it->kind != PB_XML_ELEMENT)
        return;
    str_t name = it->name;
    if (c->state >= C_REG_FEATURES && c->state <= C_REG_CLOSE &&
        (str_eq_cstr(name, "stream:features") || str_eq_cstr(name, "iq"))) {
        pb_on_register_item(w, idx, it, now);
        return;
    }
    if (str_eq_cstr(name, "presence"))
        pb_on_presence(w, idx, it, now);
    else if (str_eq_cstr(name, "message"))
        pb_on_message(w, idx, it, now);
    else if (str_eq_cstr(name, "iq"))
        pb_on_iq(w, idx, it, now);
    else if (str_eq_cstr(name, "stream:features"))
        pb_on_features(w, idx, it);
    else if (str_eq_cstr(name, "challenge"))
        pb_on_challenge(w, idx, it);
    else if (str_eq_cstr(name, "success"))
        pb_on_success(w, idx, it);
    else if (str_eq_cstr(name, "failure"))
        pb_fail(w, idx, PB_ERR_SASL_FAILURE, it->whole.ptr, it->whole.len);
    else if (str_eq_cstr(name, "stream:error"))
        pb_fail(w, idx, PB_ERR_STREAM_ERROR, it->whole.ptr, it->whole.len);
    else if (pb_xml_attr(it->tag, "type").ptr &&
             str_eq_cstr(pb_xml_attr(it->tag, "type"), "error"))
        pb_error(w, PB_ERR_STANZA_ERROR, c, it->whole.ptr, it->whole.len);
}

/* Cuts data into items and handles them; returns the bytes used (the rest is
 * an unfinished element), or -1 when the connection failed. */
static ssize_t pb_parse(pb_worker_t *w, uint32_t idx, const char *data, size_t len,
                        uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    size_t off = 0;
    while (off < len) {
        pb_xml_item_t it;
        ssize_t n = pb_xml_next(data + off, len - off, &it);
        if (n < 0) {
            pb_fail(w, idx, PB_ERR_PARSE, data + off, len - off);
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
        pb_on_item(w, idx, &it, now);
        if (c->state == C_FAILED || c->state == C_CLOSED)
            return -1;
    }
    return (ssize_t)off;
}

static void pb_on_data(pb_worker_t *w, uint32_t idx, const char *data, size_t len, uint64_t now)
{
    pb_conn_t *c = &w->conns[idx];
    if (c->part.len) {
        pb_bytes_append(&c->part, data, len);
        ssize_t used = pb_parse(w, idx, c->part.data, c->part.len, now);
        if (used < 0)
            return;
        memmove(c->part.data, c->part.data + used, c->part.len - (size_t)used);
        c->part.len -= (uint32_t)used;
    } else {
        ssize_t used = pb_parse(w, idx, data, len, now);
        if (used < 0)
            return;
        if ((size_t)used < len)
            pb_bytes_append(&c->part, data + used, len - (size_t)used);
    }
    if (c->part.len > PB_PARTIAL_MAX)
        pb_fail(w, idx, PB_ERR_PARSE, "element too large", 17);
}

/* ---- Completions --------------------------------------------------------------- */

static void pb_on_cqe(pb_worker_t *w, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned kind = (unsigned)(ud >> 56);
    uint32_t idx = (uint32_t)(ud & 0xffffffffu);
    pb_conn_t *c = &w->conns[idx];
    int res = cqe->res;
    bool alive = c->state != C_CLOSED && c->state != C_FAILED;

    switch (kind) {
    case UD_CONNECT:
        if (!alive)
            return;
        if (res < 0) {
            pb_fail(w, idx, PB_ERR_CONNECT, strerror(-res), strlen(strerror(-res)));
            return;
        }
        pb_arm_recv(w, idx);
        pb_send_header(w, idx);
        c->state = w->phase == PB_PH_REGISTER ? C_REG_FEATURES : C_FEATURES;
        return;
    case UD_RECV: {
        bool more = cqe->flags & IORING_CQE_F_MORE;
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            bufring_taken(&w->br);
            if (alive && res > 0) {
                uint64_t now = clk_monotonic_ns();
                if (w->phase >= PB_PH_STAGE) {
                    unsigned k = (unsigned)(w->phase - PB_PH_STAGE);
                    if (now <= atomic_load_explicit(&g.stage_t1[k], memory_order_relaxed)) {
                        w->stage[k].receives++;
                        w->stage[k].received_bytes += (uint64_t)res;
                    }
                }
                pb_on_data(w, idx, bufring_buf(&w->br, bid), (size_t)res, now);
            }
            bufring_recycle(&w->br, bid);
        }
        alive = c->state != C_CLOSED && c->state != C_FAILED;
        if (!alive || more)
            return;
        if (res == -ENOBUFS) {
            w->enobufs++;
            pb_arm_recv(w, idx);
        } else if (res == 0) {
            if (c->state == C_REG_CLOSE) {
                pb_close(w, idx, C_CLOSED);
            } else if (c->state == C_LOGOUT) {
                uint64_t now = clk_monotonic_ns();
                pb_hist_add(&w->logout_lat, now - w->t_logout);
                w->t_last_closed = now;
                w->logout_closed++;
                unsigned sec;
                pb_series_t *ser = pb_series_at(w, now, &sec);
                if (ser)
                    ser->logouts[sec]++;
                pb_close(w, idx, C_CLOSED);
            } else {
                pb_fail(w, idx, PB_ERR_CLOSED, "end of stream", 13);
            }
        } else if (res < 0) {
            pb_fail(w, idx, PB_ERR_RECV, strerror(-res), strlen(strerror(-res)));
        } else {
            pb_arm_recv(w, idx);   /* multishot ended with data: keep reading */
        }
        return;
    }
    case UD_SEND:
        c->sending = false;
        if (!alive)
            return;
        if (res < 0) {
            pb_fail(w, idx, PB_ERR_SEND, strerror(-res), strlen(strerror(-res)));
            return;
        }
        c->fly_off += (uint32_t)res;
        if (c->fly_off < c->fly.len) {
            pb_send(w, idx);
            return;
        }
        c->fly.len = 0;
        if (c->out.len && !c->dirty) {
            c->dirty = true;
            w->flush[w->n_flush++] = idx;
        }
        return;
    default:
        return;     /* cancel and close: nothing to do */
    }
}

/* ---- Phases in a worker ---------------------------------------------------------- */

static uint64_t pb_due(uint64_t t0, uint64_t now, double rate_total)
{
    double per_worker = rate_total / opt.threads;
    return (uint64_t)((double)(now - t0) * per_worker / 1e9) + 1;
}

static uint64_t pb_login_tick(pb_worker_t *w, uint64_t now)
{
    uint64_t due = opt.login_rate > 0 ? pb_due(w->phase_t0, now, opt.login_rate) : UINT64_MAX;
    while (w->next_start < w->n && w->inflight < w->window && w->started < due) {
        uint32_t count = w->n - w->next_start;
        count = count < PB_SOCKET_BATCH ? count : PB_SOCKET_BATCH;
        if (count > w->window - w->inflight)
            count = w->window - w->inflight;
        if (due != UINT64_MAX && count > due - w->started)
            count = (uint32_t)(due - w->started);
        pb_start_batch(w, w->next_start, count, now);
        w->next_start += count;
        w->started += count;
    }
    return w->next_start < w->n && opt.login_rate > 0 ? PB_TICK_NS : PB_IDLE_WAIT_NS;
}

static uint64_t pb_roster_tick(pb_worker_t *w, uint64_t now)
{
    static const char get[] = "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>";
    while (w->next_start < w->n && w->inflight < w->window) {
        uint32_t idx = w->next_start++;
        pb_conn_t *c = &w->conns[idx];
        if (!c->due)
            continue;
        c->due = false;
        if (c->state != C_BOUND) {
            /* Lost since the phase began: owed no more. */
            atomic_fetch_add_explicit(&w->p_roster_done, 1, memory_order_relaxed);
            continue;
        }
        c->state = C_ROSTER;
        c->t_start = now;
        if (!w->t_first_roster)
            w->t_first_roster = now;
        w->inflight++;
        pb_write(w, idx, get, sizeof(get) - 1);
    }
    return PB_IDLE_WAIT_NS;
}

static uint64_t pb_initial_tick(pb_worker_t *w, uint64_t now)
{
    uint64_t due = opt.initial_rate > 0 ? pb_due(w->phase_t0, now, opt.initial_rate)
                                        : UINT64_MAX;
    while (w->next_start < w->n && w->started < due) {
        uint32_t idx = w->next_start++;
        pb_conn_t *c = &w->conns[idx];
        if (!c->due)
            continue;
        c->due = false;
        w->started++;
        if (c->state == C_READY) {
            atomic_store_explicit(&g.online[c->user], 1, memory_order_relaxed);
            pb_send_presence(w, idx, 0, false);
            w->ready[w->n_ready++] = idx;
            w->initial_sent++;
        }
        atomic_fetch_add_explicit(&w->p_initial_done, 1, memory_order_relaxed);
    }
    return w->next_start < w->n && opt.initial_rate > 0 ? PB_TICK_NS : PB_IDLE_WAIT_NS;
}

/* Stage k's window for what a worker sends in it: 0 when now is inside it
 * and the worker has users ready (t0 gets its start), else how long to wait. */
static uint64_t pb_stage_wait(const pb_worker_t *w, unsigned k, uint64_t now, uint64_t *t0)
{
    *t0 = atomic_load_explicit(&g.stage_t0[k], memory_order_relaxed);
    uint64_t t1 = atomic_load_explicit(&g.stage_t1[k], memory_order_relaxed);
    if (now < *t0)
        return *t0 - now < PB_TICK_NS ? *t0 - now : PB_TICK_NS;
    if (now >= t1 || !w->n_ready)
        return PB_IDLE_WAIT_NS;
    return 0;
}

static uint64_t pb_stage_tick(pb_worker_t *w, unsigned k, uint64_t now)
{
    uint64_t t0, until = pb_stage_wait(w, k, now, &t0);
    if (until)
        return until;
    pb_stage_stats_t *s = &w->stage[k];
    double per_worker = opt.rates[k] / opt.threads;
    uint64_t due = pb_due(t0, now, opt.rates[k]);
    uint32_t skipped = 0;
    while (s->changes < due && skipped < w->n_ready) {
        uint32_t idx = w->ready[w->rr++ % w->n_ready];
        pb_conn_t *c = &w->conns[idx];
        if (c->state != C_READY) {
            skipped++;      /* lost since: the others take its share */
            continue;
        }
        skipped = 0;
        uint64_t sched = t0 + (uint64_t)((double)s->changes * 1e9 / per_worker);
        uint64_t lag = now > sched ? now - sched : 0;
        s->lag_sum_ns += lag;
        if (lag > s->lag_max_ns)
            s->lag_max_ns = lag;
        s->changes++;
        c->changes++;
        pb_graph_contacts(&graph, c->user, w->contacts);
        for (unsigned i = 0; i < graph.degree; i++)
            s->expected +=
                atomic_load_explicit(&g.online[w->contacts[i]], memory_order_relaxed);
        pb_send_presence(w, idx, k + 1, c->changes % 2 == 1);
    }
    uint64_t next = t0 + (uint64_t)((double)s->changes * 1e9 / per_worker);
    uint64_t wait = next > now ? next - now : 0;
    return wait < PB_TICK_NS ? PB_TICK_NS : wait > PB_IDLE_WAIT_NS ? PB_IDLE_WAIT_NS : wait;
}

/* xmpp register: new streams at most --concurrency (all workers) at once. */
static uint64_t pb_register_tick(pb_worker_t *w, uint64_t now)
{
    while (w->next_start < w->n && w->inflight < w->window) {
        uint32_t count = w->n - w->next_start;
        count = count < PB_SOCKET_BATCH ? count : PB_SOCKET_BATCH;
        if (count > w->window - w->inflight)
            count = w->window - w->inflight;
        pb_start_batch(w, w->next_start, count, now);
        w->next_start += count;
    }
    return PB_IDLE_WAIT_NS;
}

/* xmpp register: each user in turn asks its contacts above it (RFC 6121
 * §3.1.1); at most --concurrency users (all workers) wait for those to
 * become "both", the contacts' side being pb_on_subscribe. */
static uint64_t pb_subscribe_tick(pb_worker_t *w, uint64_t now)
{
    (void)now;
    while (w->next_start < w->n && w->inflight < w->window) {
        uint32_t idx = w->next_start++;
        pb_conn_t *c = &w->conns[idx];
        if (!c->due)
            continue;
        c->due = false;
        if (c->state != C_READY)
            continue;       /* lost since: pb_enter counts it when the phase ends */
        pb_graph_contacts(&graph, c->user, w->contacts);
        for (unsigned i = 0; i < graph.degree; i++) {
            if (w->contacts[i] < c->user)
                continue;
            char p[256];
            int n = snprintf(p, sizeof(p), "<presence to='u%" PRIu32 "@%s' type='subscribe'/>",
                             w->contacts[i], opt.domain);
            pb_write(w, idx, p, (size_t)n);
            w->subscribes_sent++;
        }
        if (c->both_hi < c->hi_owed)
            w->inflight++;
    }
    return PB_IDLE_WAIT_NS;
}

/* --msg-rate: chat messages during stage k, paced like its changes, each
 * from the next READY user in turn to the next of its contacts that is
 * online (a message to an offline contact would wait in storage). */
static uint64_t pb_msg_tick(pb_worker_t *w, unsigned k, uint64_t now)
{
    uint64_t t0, until = pb_stage_wait(w, k, now, &t0);
    if (until)
        return until;
    pb_stage_stats_t *s = &w->stage[k];
    double per_worker = opt.msg_rate / opt.threads;
    uint64_t due = pb_due(t0, now, opt.msg_rate);
    uint32_t skipped = 0;
    while (s->msgs_sent < due && skipped < w->n_ready) {
        uint32_t idx = w->ready[w->mrr++ % w->n_ready];
        pb_conn_t *c = &w->conns[idx];
        uint32_t to = UINT32_MAX;
        if (c->state == C_READY) {
            pb_graph_contacts(&graph, c->user, w->contacts);
            for (unsigned i = 0; i < graph.degree && to == UINT32_MAX; i++) {
                uint32_t v = w->contacts[(c->msgs + i) % graph.degree];
                if (atomic_load_explicit(&g.online[v], memory_order_relaxed))
                    to = v;
            }
        }
        if (to == UINT32_MAX) {
            skipped++;      /* lost, or nobody to talk to: the others take its share */
            continue;
        }
        skipped = 0;
        c->msgs++;
        s->msgs_sent++;
        pb_send_message(w, idx, to, k + 1);
    }
    uint64_t next = t0 + (uint64_t)((double)s->msgs_sent * 1e9 / per_worker);
    uint64_t wait = next > now ? next - now : 0;
    return wait < PB_TICK_NS ? PB_TICK_NS : wait > PB_IDLE_WAIT_NS ? PB_IDLE_WAIT_NS : wait;
}

static uint64_t pb_logout_enter(pb_worker_t *w)
{
    uint64_t open = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        pb_conn_t *c = &w->conns[i];
        if (c->state == C_CLOSED || c->state == C_FAILED)
            continue;
        if (c->state == C_IDLE) {
            c->state = C_CLOSED;
            continue;
        }
        pb_write_str(w, i, "</stream:stream>");
        c->state = C_LOGOUT;
        open++;
    }
    return open;
}

/* Marks the connections in state st as owed a step of the new phase. */
static uint64_t pb_mark_due(pb_worker_t *w, uint8_t st)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        w->conns[i].due = w->conns[i].state == st;
        n += w->conns[i].due;
    }
    return n;
}

static void pb_enter(pb_worker_t *w, int phase, uint64_t now)
{
    /* Phases that end while connections still wait time out here. */
    if (w->phase == PB_PH_LOGIN || w->phase == PB_PH_ROSTER) {
        for (uint32_t i = 0; i < w->n; i++) {
            uint8_t st = w->conns[i].state;
            if (w->phase == PB_PH_LOGIN && (pb_in_login(st) || st == C_IDLE)) {
                pb_error(w, PB_ERR_LOGIN_TIMEOUT, &w->conns[i], "", 0);
                if (st == C_IDLE)
                    w->conns[i].state = C_FAILED;
                else
                    pb_close(w, i, C_FAILED);
            } else if (w->phase == PB_PH_ROSTER && st == C_ROSTER) {
                pb_error(w, PB_ERR_ROSTER_TIMEOUT, &w->conns[i], "", 0);
                w->conns[i].state = C_BOUND;    /* online, without a roster */
            }
        }
    }
    if (w->phase == PB_PH_REGISTER || w->phase == PB_PH_SUBSCRIBE) {
        for (uint32_t i = 0; i < w->n; i++) {
            pb_conn_t *c = &w->conns[i];
            if (w->phase == PB_PH_REGISTER &&
                (c->state == C_CONNECTING || (c->state >= C_REG_FEATURES &&
                                              c->state <= C_REG_CLOSE))) {
                pb_error(w, PB_ERR_REGISTER_TIMEOUT, c, "", 0);
                pb_close(w, i, C_FAILED);
            } else if (w->phase == PB_PH_SUBSCRIBE && c->state == C_READY &&
                       c->both < graph.degree) {
                pb_error(w, PB_ERR_SUBSCRIBE_TIMEOUT, c, "", 0);
            }
        }
    }
    w->phase = phase;
    w->phase_t0 = now;
    w->next_start = 0;
    w->started = 0;
    w->inflight = 0;
    unsigned window = phase == PB_PH_REGISTER || phase == PB_PH_SUBSCRIBE ? opt.concurrency
                                                                          : opt.login_window;
    w->window = window / opt.threads ? window / opt.threads : 1;
    uint64_t expect = 0;
    if (phase == PB_PH_LOGIN) {
        w->t_first_connect = 0;     /* not the registration's streams */
    } else if (phase == PB_PH_SUBSCRIBE) {
        expect = pb_mark_due(w, C_READY);
        for (uint32_t i = 0; i < w->n; i++) {
            pb_conn_t *c = &w->conns[i];
            pb_graph_contacts(&graph, c->user, w->contacts);
            c->hi_owed = 0;
            for (unsigned k = 0; k < graph.degree; k++)
                c->hi_owed += w->contacts[k] > c->user;
            if (c->due && c->both >= graph.degree) {
                c->due = false;     /* done in an earlier run */
                atomic_fetch_add_explicit(&w->p_sub_done, 1, memory_order_relaxed);
            }
        }
    } else if (phase == PB_PH_VERIFY) {
        for (uint32_t i = 0; i < w->n; i++)
            if (w->conns[i].state == C_READY)
                w->conns[i].state = C_BOUND;
        expect = pb_mark_due(w, C_BOUND);
    }
    if (phase == PB_PH_ROSTER) {
        expect = pb_mark_due(w, C_BOUND);
    } else if (phase == PB_PH_INITIAL) {
        expect = pb_mark_due(w, C_READY);
    } else if (phase == PB_PH_LOGOUT) {
        w->t_logout = now;
        expect = pb_logout_enter(w);
    } else if (phase == PB_PH_EXIT) {
        for (uint32_t i = 0; i < w->n; i++) {
            pb_conn_t *c = &w->conns[i];
            if (c->state == C_LOGOUT) {
                pb_error(w, PB_ERR_LOGOUT_TIMEOUT, c, "", 0);
                pb_close(w, i, C_FAILED);
            }
        }
    }
    atomic_store_explicit(&w->p_expect, expect, memory_order_relaxed);
    /* Release: p_expect is read by the main thread after it sees the phase. */
    atomic_store_explicit(&w->p_phase, phase, memory_order_release);
}

static void *pb_worker_main(void *arg)
{
    pb_worker_t *w = arg;
    struct io_uring_params p = { 0 };
    /* Single issuer and deferred task work: completions are handled when
     * this thread waits, never by interrupting it (as presenced's shards). */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = PB_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(PB_SQ_ENTRIES, &w->ring, &p);
    if (rc < 0)
        PANIC("worker %u: io_uring_setup: %s", w->id, strerror(-rc));
    rc = io_uring_register_files_sparse(&w->ring, w->n);
    if (rc < 0)
        PANIC("worker %u: %u direct descriptors: %s (RLIMIT_NOFILE caps a ring's table: "
              "use more --threads)", w->id, w->n, strerror(-rc));
    rc = bufring_init(&w->br, &w->ring, PB_BUF_GROUP, PB_RECV_BUFS, PB_RECV_BUF_BYTES);
    if (rc < 0)
        PANIC("worker %u: receive buffers: %s", w->id, strerror(-rc));

    for (;;) {
        uint64_t now = clk_monotonic_ns();
        int phase = atomic_load_explicit(&g.phase, memory_order_acquire);
        if (phase != w->phase)
            pb_enter(w, phase, now);
        if (phase == PB_PH_EXIT)
            break;
        uint64_t wait_ns = PB_IDLE_WAIT_NS;
        if (phase == PB_PH_LOGIN)
            wait_ns = pb_login_tick(w, now);
        else if (phase == PB_PH_ROSTER || phase == PB_PH_VERIFY)
            wait_ns = pb_roster_tick(w, now);
        else if (phase == PB_PH_REGISTER)
            wait_ns = pb_register_tick(w, now);
        else if (phase == PB_PH_SUBSCRIBE)
            wait_ns = pb_subscribe_tick(w, now);
        else if (phase == PB_PH_INITIAL)
            wait_ns = pb_initial_tick(w, now);
        else if (phase >= PB_PH_STAGE)
            wait_ns = pb_stage_tick(w, (unsigned)(phase - PB_PH_STAGE), now);
        if (phase >= PB_PH_STAGE && opt.msg_rate > 0) {
            uint64_t m = pb_msg_tick(w, (unsigned)(phase - PB_PH_STAGE), now);
            wait_ns = m < wait_ns ? m : wait_ns;
        }
        pb_flush(w);
        struct __kernel_timespec ts = { .tv_sec = (long long)(wait_ns / 1000000000u),
                                        .tv_nsec = (long long)(wait_ns % 1000000000u) };
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
            PANIC("worker %u: io_uring_enter: %s", w->id, strerror(-rc));
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            pb_on_cqe(w, cqe);
            seen++;
        }
        io_uring_cq_advance(&w->ring, seen);
        bufring_publish(&w->br);
        atomic_store_explicit(&w->p_presences,
                              w->presence_available + w->presence_unavailable +
                                  w->messages_in,
                              memory_order_relaxed);
    }
    /* Closing the ring closes every socket still in its file table. */
    bufring_fini(&w->br, &w->ring);
    io_uring_queue_exit(&w->ring);
    return NULL;
}

/* ---- Sampling the server and ourselves ------------------------------------------ */

typedef struct {
    uint64_t t_ns;
    double server_cpu_s;        /* utime + stime */
    long server_rss_kib;
    double gen_cpu_s;
    double machine_busy_s;      /* every CPU's non-idle time, /proc/stat */
} pb_sample_t;

static double pb_server_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which may hold spaces: state is field 3,
     * utime 14 and stime 15 (proc(5)). */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long pb_status_kib(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            kib = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* Busy CPU seconds of the whole machine: the server and the generator share
 * it with whatever else runs, and this says how much that was. */
static double pb_machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = { 0 };
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5)
        return -1;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];    /* not idle, iowait */
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static pb_sample_t pb_sample(void)
{
    pb_sample_t s = { .t_ns = clk_monotonic_ns(), .server_cpu_s = -1, .server_rss_kib = -1 };
    if (opt.server_pid > 0) {
        s.server_cpu_s = pb_server_cpu_s(opt.server_pid);
        s.server_rss_kib = pb_status_kib(opt.server_pid, "VmRSS");
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.gen_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    s.machine_busy_s = pb_machine_busy_s();
    return s;
}

typedef struct {
    const char *name;
    double wall_s, server_cores, gen_cores;
    double other_cores;         /* the machine's busy cores minus server and generator */
    long rss_end_kib;
} pb_phase_use_t;

static pb_phase_use_t pb_use(const char *name, pb_sample_t a, pb_sample_t b)
{
    pb_phase_use_t u = { .name = name, .wall_s = (double)(b.t_ns - a.t_ns) / 1e9 };
    u.server_cores = a.server_cpu_s >= 0 && b.server_cpu_s >= 0 && u.wall_s > 0
                         ? (b.server_cpu_s - a.server_cpu_s) / u.wall_s
                         : -1;
    u.gen_cores = u.wall_s > 0 ? (b.gen_cpu_s - a.gen_cpu_s) / u.wall_s : 0;
    u.other_cores = -1;
    if (a.machine_busy_s >= 0 && b.machine_busy_s >= 0 && u.wall_s > 0) {
        double o = (b.machine_busy_s - a.machine_busy_s) / u.wall_s - u.gen_cores -
                   (u.server_cores > 0 ? u.server_cores : 0);
        /* Approximate: /proc/stat and the processes' times are sampled on
         * ticks and disagree by a few tenths of a core when the processes
         * wake often (a worker wakes every millisecond), mostly at low load. */
        u.other_cores = o > 0 ? o : 0;
    }
    u.rss_end_kib = b.server_rss_kib;
    return u;
}

/* ---- Main thread: phases ------------------------------------------------------- */

typedef uint64_t (*pb_progress_fn)(const pb_worker_t *w);

static uint64_t pb_sum(pb_progress_fn fn)
{
    uint64_t s = 0;
    for (unsigned t = 0; t < opt.threads; t++)
        s += fn(&g.workers[t]);
    return s;
}

static uint64_t pr_login(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_login_done, memory_order_relaxed);
}
static uint64_t pr_bound(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_bound, memory_order_relaxed);
}
static uint64_t pr_roster(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_roster_done, memory_order_relaxed);
}
static uint64_t pr_initial(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_initial_done, memory_order_relaxed);
}
static uint64_t pr_presences(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_presences, memory_order_relaxed);
}
static uint64_t pr_logout(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_logout_done, memory_order_relaxed);
}
static uint64_t pr_reg(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_reg_done, memory_order_relaxed);
}
static uint64_t pr_sub(const pb_worker_t *w)
{
    return atomic_load_explicit(&w->p_sub_done, memory_order_relaxed);
}

static void pb_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* ---- The time series' sampler ------------------------------------------------ */

/* Samples the node and the generator at second k of the run (g.t0 + k s),
 * from its own thread so that the main thread's waits need not; the main
 * thread takes sample 0 before it starts and the last, partial one after
 * stopping it. */
static struct {
    pthread_t thread;
    _Atomic bool stop;
    pb_sample_t s[PB_SERIES_MAX + 2];
    int phase[PB_SERIES_MAX + 2];   /* the phase when the sample was taken */
    unsigned n;                     /* samples taken; read after the join */
} smp;

static void *pb_sampler_main(void *arg)
{
    (void)arg;
    for (unsigned k = 1; k <= PB_SERIES_MAX; k++) {
        uint64_t due = g.t0 + (uint64_t)k * 1000000000u;
        uint64_t now;
        while ((now = clk_monotonic_ns()) < due) {
            if (atomic_load_explicit(&smp.stop, memory_order_relaxed))
                return NULL;
            uint64_t left = due - now;
            pb_sleep_ms(left > 10000000u ? 10 : (unsigned)(left / 1000000u) + 1);
        }
        smp.phase[smp.n] = atomic_load_explicit(&g.phase, memory_order_relaxed);
        smp.s[smp.n++] = pb_sample();
    }
    return NULL;
}

static void pb_phase_name(int phase, char *buf, size_t cap)
{
    static const char *const names[] = { "init", "login", "roster", "initial", "quiet",
                                         "logout", "exit", "register", "subscribe", "verify" };
    if (phase >= PB_PH_STAGE)
        snprintf(buf, cap, "stage %d", phase - PB_PH_STAGE + 1);
    else
        snprintf(buf, cap, "%s", phase >= 0 && phase <= PB_PH_VERIFY ? names[phase] : "?");
}

/* Publishes a phase and waits until every worker has entered it; returns the
 * steps the workers counted as owed on entry. */
static uint64_t pb_set_phase(int phase)
{
    /* Release: stage times written before are visible to a worker that sees
     * the phase (its acquire load in pb_worker_main). */
    atomic_store_explicit(&g.phase, phase, memory_order_release);
    uint64_t expect = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        pb_worker_t *w = &g.workers[t];
        while (atomic_load_explicit(&w->p_phase, memory_order_acquire) != phase)
            pb_sleep_ms(1);
        expect += atomic_load_explicit(&w->p_expect, memory_order_relaxed);
    }
    return expect;
}

/* Waits until fn sums to target, or the phase timeout. Returns true if reached. */
static bool pb_wait_for(pb_progress_fn fn, uint64_t target)
{
    uint64_t deadline = clk_monotonic_ns() + (uint64_t)(opt.phase_timeout_s * 1e9);
    while (pb_sum(fn) < target) {
        if (clk_monotonic_ns() > deadline)
            return false;
        pb_sleep_ms(5);
    }
    return true;
}

/* Waits until no presence or message arrived for opt.quiet_s (or the phase timeout);
 * returns when the last one came. */
static uint64_t pb_wait_quiet(void)
{
    uint64_t deadline = clk_monotonic_ns() + (uint64_t)(opt.phase_timeout_s * 1e9);
    uint64_t last = pb_sum(pr_presences), last_t = clk_monotonic_ns();
    for (;;) {
        pb_sleep_ms(20);
        uint64_t now = clk_monotonic_ns(), v = pb_sum(pr_presences);
        if (v != last) {
            last = v;
            last_t = now;
        } else if (now - last_t >= (uint64_t)(opt.quiet_s * 1e9) || now > deadline) {
            return last_t;
        }
    }
}

/* ---- Report ----------------------------------------------------------------------- */

typedef struct {
    pb_hist_t login, roster, initial;
    pb_hist_t stage[PB_STAGES_MAX];
    pb_stage_stats_t stage_sum[PB_STAGES_MAX];
    uint64_t errors[PB_ERR_COUNT];
    uint64_t t_first_connect, t_last_bound, t_first_roster, t_last_roster;
    uint64_t bound, roster_ok, initial_sent, initial_delivered, enobufs;
    uint64_t presence_available, presence_unavailable;
    pb_hist_t logout;
    uint64_t logout_closed, t_logout, t_last_closed;
} pb_totals_t;

static pb_totals_t tot;
static pb_phase_use_t use_login, use_roster, use_initial, use_stage[PB_STAGES_MAX], use_logout;
static char stage_names[PB_STAGES_MAX][32];
static long rss_before_kib, rss_bound_kib, rss_connected_kib, rss_idle_kib, rss_stages_kib,
    rss_hwm_kib;
static double login_s, roster_s, initial_s, logout_s;

static void pb_collect(void)
{
    pb_hist_init(&tot.login);
    pb_hist_init(&tot.roster);
    pb_hist_init(&tot.initial);
    pb_hist_init(&tot.logout);
    tot.t_logout = UINT64_MAX;
    for (unsigned k = 0; k < opt.n_rates; k++) {
        pb_hist_init(&tot.stage[k]);
        pb_hist_init(&tot.stage_sum[k].msg_lat);
    }
    tot.t_first_connect = UINT64_MAX;
    tot.t_first_roster = UINT64_MAX;
    for (unsigned t = 0; t < opt.threads; t++) {
        pb_worker_t *w = &g.workers[t];
        pb_hist_merge(&tot.login, &w->login_lat);
        pb_hist_merge(&tot.roster, &w->roster_lat);
        pb_hist_merge(&tot.initial, &w->initial_lat);
        for (unsigned k = 0; k < opt.n_rates; k++) {
            pb_hist_merge(&tot.stage[k], &w->stage[k].lat);
            pb_stage_stats_t *s = &tot.stage_sum[k];
            s->delivered += w->stage[k].delivered;
            s->in_window += w->stage[k].in_window;
            s->changes += w->stage[k].changes;
            s->expected += w->stage[k].expected;
            s->receives += w->stage[k].receives;
            s->received_bytes += w->stage[k].received_bytes;
            s->lag_sum_ns += w->stage[k].lag_sum_ns;
            pb_hist_merge(&s->msg_lat, &w->stage[k].msg_lat);
            s->msgs_sent += w->stage[k].msgs_sent;
            s->msgs_delivered += w->stage[k].msgs_delivered;
            s->msgs_in_window += w->stage[k].msgs_in_window;
            if (w->stage[k].lag_max_ns > s->lag_max_ns)
                s->lag_max_ns = w->stage[k].lag_max_ns;
        }
        for (unsigned e = 0; e < PB_ERR_COUNT; e++)
            tot.errors[e] += w->errors[e];
        if (w->t_first_connect && w->t_first_connect < tot.t_first_connect)
            tot.t_first_connect = w->t_first_connect;
        if (w->t_last_bound > tot.t_last_bound)
            tot.t_last_bound = w->t_last_bound;
        if (w->t_first_roster && w->t_first_roster < tot.t_first_roster)
            tot.t_first_roster = w->t_first_roster;
        if (w->t_last_roster > tot.t_last_roster)
            tot.t_last_roster = w->t_last_roster;
        pb_hist_merge(&tot.logout, &w->logout_lat);
        tot.logout_closed += w->logout_closed;
        if (w->t_logout && w->t_logout < tot.t_logout)
            tot.t_logout = w->t_logout;
        if (w->t_last_closed > tot.t_last_closed)
            tot.t_last_closed = w->t_last_closed;
        tot.bound += atomic_load(&w->p_bound);
        tot.roster_ok += w->roster_lat.count;
        tot.initial_sent += w->initial_sent;
        tot.initial_delivered += w->initial_delivered;
        tot.enobufs += w->enobufs;
        tot.presence_available += w->presence_available;
        tot.presence_unavailable += w->presence_unavailable;
        if (w->first_error[0])
            fprintf(stderr, "presbench: worker %u first error: %s\n", t, w->first_error);
    }
    login_s = tot.t_last_bound > tot.t_first_connect
                  ? (double)(tot.t_last_bound - tot.t_first_connect) / 1e9 : 0;
    roster_s = tot.t_last_roster > tot.t_first_roster
                   ? (double)(tot.t_last_roster - tot.t_first_roster) / 1e9 : 0;
    /* The logout storm: from the first </stream:stream> queued to the node
     * closing the last stream. */
    logout_s = tot.t_last_closed > tot.t_logout && tot.t_logout != UINT64_MAX
                   ? (double)(tot.t_last_closed - tot.t_logout) / 1e9 : 0;
}

static void pb_print_lat(FILE *f, const char *label, const pb_hist_t *h, double unit,
                         const char *uname)
{
    fprintf(f, "  %-26s p50 %8.2f  p90 %8.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f %s (n=%" PRIu64
               ")\n",
            label, (double)pb_hist_quantile(h, 0.5) / unit, (double)pb_hist_quantile(h, 0.9) / unit,
            (double)pb_hist_quantile(h, 0.99) / unit, (double)pb_hist_quantile(h, 0.999) / unit,
            (double)h->max_ns / unit, uname, h->count);
}

static void pb_print_use(const pb_phase_use_t *u)
{
    printf("  %-22s %8.2f s  server %5.2f  generator %5.2f  others %5.2f cores  "
           "server RSS %ld KiB\n",
           u->name, u->wall_s, u->server_cores, u->gen_cores, u->other_cores, u->rss_end_kib);
}

static void pb_report_table(void)
{
    printf("presbench xmpp: %u users, %u contacts each, seed %" PRIu64 ", %u threads, "
           "%u sources\n", opt.users, graph.degree, opt.seed, opt.threads, opt.sources);
    printf("login: %" PRIu64 "/%u bound in %.3f s: %.0f logins/s\n", tot.bound, opt.users,
           login_s, login_s > 0 ? (double)tot.bound / login_s : 0);
    pb_print_lat(stdout, "login latency", &tot.login, 1e6, "ms");
    printf("roster: %" PRIu64 " fetched in %.3f s: %.0f/s\n", tot.roster_ok, roster_s,
           roster_s > 0 ? (double)tot.roster_ok / roster_s : 0);
    pb_print_lat(stdout, "roster latency", &tot.roster, 1e6, "ms");
    printf("initial presence: %" PRIu64 " sent, %" PRIu64 " delivered, quiet after %.3f s\n",
           tot.initial_sent, tot.initial_delivered, initial_s);
    pb_print_lat(stdout, "initial delivery latency", &tot.initial, 1e6, "ms");
    for (unsigned k = 0; k < opt.n_rates; k++) {
        pb_stage_stats_t *s = &tot.stage_sum[k];
        double offered = (double)s->expected;
        printf("stage %u: %.0f changes/s offered, %" PRIu64 " sent in %.1f s; deliveries %.0f/s "
               "(%" PRIu64 " of %.0f expected, %.2f%%)\n",
               k + 1, opt.rates[k], s->changes, opt.duration_s,
               (double)s->in_window / opt.duration_s, s->delivered, offered,
               offered > 0 ? 100.0 * (double)s->delivered / offered : 0);
        pb_print_lat(stdout, "change-to-delivery", &tot.stage[k], 1e3, "us");
        printf("  %-26s %.0f/s, %.2f deliveries and %.0f bytes each\n", "receives",
               (double)s->receives / opt.duration_s,
               s->receives ? (double)s->in_window / (double)s->receives : 0,
               s->receives ? (double)s->received_bytes / (double)s->receives : 0);
        printf("  %-26s mean %.1f us  max %.1f us\n", "send lag behind schedule",
               s->changes ? (double)s->lag_sum_ns / (double)s->changes / 1e3 : 0,
               (double)s->lag_max_ns / 1e3);
        if (opt.msg_rate > 0) {
            printf("  messages: %.0f/s offered, %" PRIu64 " sent, %" PRIu64 " delivered "
                   "(%.2f%%), %.0f/s\n",
                   opt.msg_rate, s->msgs_sent, s->msgs_delivered,
                   s->msgs_sent ? 100.0 * (double)s->msgs_delivered / (double)s->msgs_sent : 0,
                   (double)s->msgs_in_window / opt.duration_s);
            pb_print_lat(stdout, "message latency", &s->msg_lat, 1e3, "us");
        }
    }
    printf("logout: %" PRIu64 " streams closed by the node in %.3f s: %.0f logouts/s\n",
           tot.logout_closed, logout_s, logout_s > 0 ? (double)tot.logout_closed / logout_s : 0);
    pb_print_lat(stdout, "logout latency", &tot.logout, 1e6, "ms");
    printf("errors:");
    bool any = false;
    for (unsigned e = 0; e < PB_ERR_COUNT; e++)
        if (tot.errors[e]) {
            printf(" %s=%" PRIu64, pb_err_names[e], tot.errors[e]);
            any = true;
        }
    printf("%s (receive buffer shortages: %" PRIu64 ")\n", any ? "" : " none", tot.enobufs);
    printf("resources:\n");
    pb_print_use(&use_login);
    pb_print_use(&use_roster);
    pb_print_use(&use_initial);
    for (unsigned k = 0; k < opt.n_rates; k++)
        pb_print_use(&use_stage[k]);
    pb_print_use(&use_logout);
    if (opt.server_pid > 0 && tot.bound) {
        double per = 1024.0 / (double)tot.bound;
        printf("server RSS: %ld KiB before login, %ld KiB bound, %ld KiB connected and quiet "
               "(%.0f bytes per connected user), %ld KiB after %.0f s idle (%.0f), %ld KiB after "
               "the stages (%.0f), peak %ld KiB\n",
               rss_before_kib, rss_bound_kib, rss_connected_kib,
               (double)(rss_connected_kib - rss_before_kib) * per, rss_idle_kib, opt.idle_s,
               (double)(rss_idle_kib - rss_before_kib) * per, rss_stages_kib,
               (double)(rss_stages_kib - rss_before_kib) * per, rss_hwm_kib);
    }
}

static void pb_json_lat(FILE *f, const char *name, const pb_hist_t *h, double unit)
{
    fprintf(f, "\"%s\":{\"n\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
               "\"max\":%.3f,\"mean\":%.3f}",
            name, h->count, (double)pb_hist_quantile(h, 0.5) / unit,
            (double)pb_hist_quantile(h, 0.9) / unit, (double)pb_hist_quantile(h, 0.99) / unit,
            (double)pb_hist_quantile(h, 0.999) / unit, (double)h->max_ns / unit,
            h->count ? (double)h->sum_ns / (double)h->count / unit : 0);
}

static void pb_json_use(FILE *f, const pb_phase_use_t *u)
{
    fprintf(f, "\"wall_s\":%.3f,\"server_cores\":%.3f,\"generator_cores\":%.3f,"
               "\"other_cores\":%.3f,\"server_rss_kib\":%ld",
            u->wall_s, u->server_cores, u->gen_cores, u->other_cores, u->rss_end_kib);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void pb_json_str(FILE *f, const char *v)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* One entry a second of the run: the workers' counts and latencies for that
 * second, merged, next to the sampler's CPU and memory readings. */
static void pb_json_series(FILE *f)
{
    pb_hist_t *h = malloc(sizeof(*h)), *m = malloc(sizeof(*m));
    if (!h || !m)
        PANIC("out of memory writing the time series");
    unsigned n = smp.n ? smp.n - 1 : 0;
    fputs("\"timeseries\":[", f);
    for (unsigned i = 0; i < n; i++) {
        const pb_sample_t *a = &smp.s[i], *b = &smp.s[i + 1];
        uint64_t logins = 0, deliveries = 0, messages = 0, logouts = 0;
        pb_hist_init(h);
        pb_hist_init(m);
        for (unsigned t = 0; t < opt.threads; t++) {
            const pb_series_t *ws = g.workers[t].series;
            if (i >= ws->n)
                continue;
            logins += ws->logins[i];
            deliveries += ws->deliveries[i];
            messages += ws->messages[i];
            logouts += ws->logouts[i];
            if (ws->lat[i])
                pb_hist_merge(h, ws->lat[i]);
            if (ws->msg_lat[i])
                pb_hist_merge(m, ws->msg_lat[i]);
        }
        double dt = (double)(b->t_ns - a->t_ns) / 1e9;
        char phase[32];
        pb_phase_name(smp.phase[i + 1], phase, sizeof(phase));
        fprintf(f, "%s{\"t_s\":%.3f,\"seconds\":%.3f,\"phase\":\"%s\",\"logins\":%" PRIu64
                   ",\"deliveries\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"logouts\":%" PRIu64
                   ",\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"msg_p50_us\":%.1f,"
                   "\"msg_p99_us\":%.1f,\"server_cores\":%.3f,\"server_rss_kib\":%ld,"
                   "\"generator_cores\":%.3f}",
                i ? "," : "", (double)(a->t_ns - g.t0) / 1e9, dt, phase, logins, deliveries,
                messages, logouts, (double)pb_hist_quantile(h, 0.5) / 1e3,
                (double)pb_hist_quantile(h, 0.99) / 1e3, (double)pb_hist_quantile(m, 0.5) / 1e3,
                (double)pb_hist_quantile(m, 0.99) / 1e3,
                a->server_cpu_s >= 0 && b->server_cpu_s >= 0 && dt > 0
                    ? (b->server_cpu_s - a->server_cpu_s) / dt : -1,
                b->server_rss_kib, dt > 0 ? (b->gen_cpu_s - a->gen_cpu_s) / dt : 0);
    }
    fputs("]", f);
    free(h);
    free(m);
}

static int pb_report_json(void)
{
    FILE *f = fopen(opt.json_path, "w");
    if (!f) {
        fprintf(stderr, "presbench: %s: %s\n", opt.json_path, strerror(errno));
        return -1;
    }
    struct utsname un;
    uname(&un);
    fprintf(f, "{\"tool\":\"presbench\",\"mode\":\"xmpp\",\"label\":");
    pb_json_str(f, opt.label ? opt.label : "");
    fprintf(f, ",\"commit\":\"%s\",\"kernel\":\"%s\",\"cores\":%ld,",
            opt.commit ? opt.commit : "", un.release, sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, "\"params\":{\"users\":%u,\"contacts\":%u,\"seed\":%" PRIu64 ",\"threads\":%u,"
               "\"sources\":%u,\"login_rate\":%.0f,\"login_window\":%u,\"initial_rate\":%.0f,"
               "\"duration_s\":%.3f,\"settle_s\":%.3f,\"iterations\":%u,\"msg_rate\":%.3f},",
            opt.users, graph.degree, opt.seed, opt.threads, opt.sources, opt.login_rate,
            opt.login_window, opt.initial_rate, opt.duration_s, opt.settle_s, opt.iterations,
            opt.msg_rate);
    fprintf(f, "\"login\":{\"bound\":%" PRIu64 ",\"seconds\":%.6f,\"per_s\":%.1f,", tot.bound,
            login_s, login_s > 0 ? (double)tot.bound / login_s : 0);
    pb_json_lat(f, "latency_ms", &tot.login, 1e6);
    fputc(',', f);
    pb_json_use(f, &use_login);
    fprintf(f, "},\"roster\":{\"fetched\":%" PRIu64 ",\"seconds\":%.6f,", tot.roster_ok,
            roster_s);
    pb_json_lat(f, "latency_ms", &tot.roster, 1e6);
    fputc(',', f);
    pb_json_use(f, &use_roster);
    fprintf(f, "},\"initial\":{\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
               ",\"quiet_after_s\":%.3f,",
            tot.initial_sent, tot.initial_delivered, initial_s);
    pb_json_lat(f, "latency_ms", &tot.initial, 1e6);
    fputc(',', f);
    pb_json_use(f, &use_initial);
    fputs("},\"stages\":[", f);
    for (unsigned k = 0; k < opt.n_rates; k++) {
        pb_stage_stats_t *s = &tot.stage_sum[k];
        fprintf(f, "%s{\"rate\":%.0f,\"changes\":%" PRIu64 ",\"delivered\":%" PRIu64
                   ",\"expected\":%" PRIu64 ",\"deliveries_per_s\":%.1f,"
                   "\"send_lag_us_mean\":%.1f,\"send_lag_us_max\":%.1f,"
                   "\"receives_per_s\":%.1f,\"deliveries_per_receive\":%.3f,",
                k ? "," : "", opt.rates[k], s->changes, s->delivered,
                s->expected, (double)s->in_window / opt.duration_s,
                s->changes ? (double)s->lag_sum_ns / (double)s->changes / 1e3 : 0,
                (double)s->lag_max_ns / 1e3, (double)s->receives / opt.duration_s,
                s->receives ? (double)s->in_window / (double)s->receives : 0);
        pb_json_lat(f, "latency_us", &tot.stage[k], 1e3);
        fprintf(f, ",\"messages\":{\"offered_per_s\":%.3f,\"sent\":%" PRIu64
                   ",\"delivered\":%" PRIu64 ",\"delivered_per_s\":%.1f,",
                opt.msg_rate, s->msgs_sent, s->msgs_delivered,
                (double)s->msgs_in_window / opt.duration_s);
        pb_json_lat(f, "latency_us", &s->msg_lat, 1e3);
        fputs("},", f);
        pb_json_use(f, &use_stage[k]);
        fputc('}', f);
    }
    fprintf(f, "],\"logout\":{\"closed\":%" PRIu64 ",\"seconds\":%.6f,\"per_s\":%.1f,",
            tot.logout_closed, logout_s, logout_s > 0 ? (double)tot.logout_closed / logout_s : 0);
    pb_json_lat(f, "latency_ms", &tot.logout, 1e6);
    fputc(',', f);
    pb_json_use(f, &use_logout);
    fputs("},", f);
    pb_json_series(f);
    fputs(",\"errors\":{", f);
    bool first = true;
    for (unsigned e = 0; e < PB_ERR_COUNT; e++)
        if (tot.errors[e]) {
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", pb_err_names[e], tot.errors[e]);
            first = false;
        }
    fprintf(f, "},\"receive_buffer_shortages\":%" PRIu64 ",", tot.enobufs);
    double per = tot.bound ? 1024.0 / (double)tot.bound : 0;
    fprintf(f, "\"server\":{\"pid\":%d,\"rss_before_kib\":%ld,\"rss_bound_kib\":%ld,"
               "\"rss_connected_kib\":%ld,\"rss_idle_kib\":%ld,\"idle_s\":%.1f,"
               "\"rss_after_stages_kib\":%ld,\"rss_peak_kib\":%ld,"
               "\"bytes_per_connected_user\":%.1f,\"bytes_per_idle_user\":%.1f,"
               "\"bytes_per_user_after_stages\":%.1f}}\n",
            opt.server_pid, rss_before_kib, rss_bound_kib, rss_connected_kib, rss_idle_kib,
            opt.idle_s, rss_stages_kib, rss_hwm_kib,
            (double)(rss_connected_kib - rss_before_kib) * per,
            (double)(rss_idle_kib - rss_before_kib) * per,
            (double)(rss_stages_kib - rss_before_kib) * per);
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- register --------------------------------------------------------------------- */

/*
 * Provisioning through the protocol, for any XMPP server: XEP-0077 in-band
 * registration of every user (an account that exists already counts as done,
 * so a rerun completes a partial one), a login with SCRAM, roster get and
 * initial presence (RFC 6121 §3.1.3 delivers subscription requests to
 * available resources, and roster pushes go to interested ones), then the
 * subscription handshake of every edge of the graph, each started by its
 * lower user and answered both ways by the other, at most --concurrency users
 * waiting on theirs; then a roster get checks that every user has its K
 * contacts with subscription "both".
 */
static int pb_register_main(void)
{
    uint64_t t0 = clk_monotonic_ns();
    g.t0 = t0;
    fprintf(stderr, "presbench: registering %u users...\n", opt.users);
    pb_set_phase(PB_PH_REGISTER);
    pb_wait_for(pr_reg, opt.users);
    fprintf(stderr, "presbench: login...\n");
    pb_set_phase(PB_PH_LOGIN);
    pb_wait_for(pr_login, opt.users);
    uint64_t owed = pb_set_phase(PB_PH_ROSTER);
    pb_wait_for(pr_roster, owed);
    owed = pb_set_phase(PB_PH_INITIAL);
    pb_wait_for(pr_initial, owed);
    uint64_t t2 = clk_monotonic_ns();
    fprintf(stderr, "presbench: %" PRIu64 " bound; subscription handshakes...\n",
            pb_sum(pr_bound));
    owed = pb_set_phase(PB_PH_SUBSCRIBE);
    uint64_t users_sub = owed;
    pb_wait_for(pr_sub, owed);
    uint64_t before = pb_sum(pr_roster);
    owed = pb_set_phase(PB_PH_VERIFY);
    uint64_t checked = owed;
    pb_wait_for(pr_roster, before + owed);
    owed = pb_set_phase(PB_PH_LOGOUT);
    pb_wait_for(pr_logout, owed);
    uint64_t t4 = clk_monotonic_ns();
    pb_set_phase(PB_PH_EXIT);
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(g.workers[t].thread, NULL);

    uint64_t registered = 0, existed = 0, t_reg = t0, t_both = t2, subscribes = 0, complete = 0;
    uint64_t errors[PB_ERR_COUNT] = { 0 }, err_total = 0, bound = 0;
    uint64_t t_login0 = UINT64_MAX, t_bound = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        pb_worker_t *w = &g.workers[t];
        registered += w->registered;
        existed += w->reg_existed;
        subscribes += w->subscribes_sent;
        complete += atomic_load(&w->p_sub_done);
        bound += atomic_load(&w->p_bound);
        t_reg = w->t_last_registered > t_reg ? w->t_last_registered : t_reg;
        t_both = w->t_last_both > t_both ? w->t_last_both : t_both;
        if (w->t_first_connect && w->t_first_connect < t_login0)
            t_login0 = w->t_first_connect;
        t_bound = w->t_last_bound > t_bound ? w->t_last_bound : t_bound;
        for (unsigned e = 0; e < PB_ERR_COUNT; e++) {
            errors[e] += w->errors[e];
            err_total += w->errors[e];
        }
        if (w->first_error[0])
            fprintf(stderr, "presbench: worker %u first error: %s\n", t, w->first_error);
    }
    double reg_s = (double)(t_reg - t0) / 1e9;
    double login_s2 = t_bound > t_login0 ? (double)(t_bound - t_login0) / 1e9 : 0;
    double sub_s = (double)(t_both - t2) / 1e9, total_s = (double)(t4 - t0) / 1e9;
    uint64_t edges = (uint64_t)opt.users * graph.degree / 2;
    printf("presbench xmpp register: %u users, %u contacts each, seed %" PRIu64
           ", concurrency %u\n", opt.users, graph.degree, opt.seed, opt.concurrency);
    printf("register: %" PRIu64 " new, %" PRIu64 " existing, in %.3f s: %.0f/s\n", registered,
           existed, reg_s, reg_s > 0 ? (double)(registered + existed) / reg_s : 0);
    printf("login: %" PRIu64 "/%u bound in %.3f s\n", bound, opt.users, login_s2);
    printf("subscriptions: %" PRIu64 " handshakes (%" PRIu64 " subscribe requests), %" PRIu64
           "/%" PRIu64 " users with every contact \"both\", in %.3f s: %.0f handshakes/s\n",
           edges, subscribes, complete, users_sub, sub_s,
           sub_s > 0 ? (double)edges / sub_s : 0);
    printf("verify: %" PRIu64 " rosters read back, %" PRIu64 " wrong\n", checked,
           errors[PB_ERR_ROSTER_SIZE]);
    printf("total: %.3f s; errors:", total_s);
    for (unsigned e = 0; e < PB_ERR_COUNT; e++)
        if (errors[e])
            printf(" %s=%" PRIu64, pb_err_names[e], errors[e]);
    printf("%s\n", err_total ? "" : " none");
    if (opt.json_path) {
        FILE *f = fopen(opt.json_path, "w");
        if (!f) {
            fprintf(stderr, "presbench: %s: %s\n", opt.json_path, strerror(errno));
            return 1;
        }
        fprintf(f, "{\"tool\":\"presbench\",\"mode\":\"xmpp-register\",\"label\":");
        pb_json_str(f, opt.label ? opt.label : "");
        fprintf(f, ",\"commit\":\"%s\",\"params\":{\"users\":%u,\"contacts\":%u,"
                   "\"seed\":%" PRIu64 ",\"concurrency\":%u,\"threads\":%u},"
                   "\"register\":{\"registered\":%" PRIu64 ",\"existed\":%" PRIu64
                   ",\"seconds\":%.6f},\"login\":{\"bound\":%" PRIu64 ",\"seconds\":%.6f},"
                   "\"subscribe\":{\"handshakes\":%" PRIu64 ",\"requests\":%" PRIu64
                   ",\"users_complete\":%" PRIu64 ",\"seconds\":%.6f,\"per_s\":%.1f},"
                   "\"verify\":{\"rosters\":%" PRIu64 ",\"wrong\":%" PRIu64 "},"
                   "\"total_s\":%.6f,\"errors\":{",
                opt.commit ? opt.commit : "", opt.users, graph.degree, opt.seed,
                opt.concurrency, opt.threads, registered, existed, reg_s, bound, login_s2,
                edges, subscribes, complete, sub_s, sub_s > 0 ? (double)edges / sub_s : 0,
                checked, errors[PB_ERR_ROSTER_SIZE], total_s);
        bool first = true;
        for (unsigned e = 0; e < PB_ERR_COUNT; e++)
            if (errors[e]) {
                fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", pb_err_names[e], errors[e]);
                first = false;
            }
        fputs("}}\n", f);
        if (fclose(f) != 0)
            return 1;
    }
    return err_total ? 3 : 0;
}

/* ---- run ------------------------------------------------------------------------- */

static int pb_run(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    /* A ring's file table is capped at RLIMIT_NOFILE; keep room for the
     * batch of ordinary fds that exist while sockets are set up. */
    uint64_t per_ring = rl.rlim_cur > 2 * PB_SOCKET_BATCH + 64 ? rl.rlim_cur - PB_SOCKET_BATCH - 64
                                                              : PB_SOCKET_BATCH;
    unsigned need = (unsigned)((opt.users + per_ring - 1) / per_ring);
    if (opt.threads < need) {
        fprintf(stderr, "presbench: %u users need %u threads under RLIMIT_NOFILE %llu\n",
                opt.users, need, (unsigned long long)rl.rlim_cur);
        opt.threads = need;
    }
    if (opt.threads > PB_THREADS_MAX || opt.threads > opt.users)
        opt.threads = opt.users < PB_THREADS_MAX ? opt.users : PB_THREADS_MAX;
    /* Each source address reaches the server from ~28K ephemeral ports; keep
     * well inside that, with room for TIME_WAIT from earlier runs. */
    unsigned min_sources = opt.users / 10000 + 1;
    if (!opt.sources)
        opt.sources = min_sources < 4 ? 4 : min_sources;
    if (opt.sources > PB_SOURCES_MAX)
        opt.sources = PB_SOURCES_MAX;
    g.server.sin_family = AF_INET;
    g.server.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &g.server.sin_addr) != 1) {
        fprintf(stderr, "presbench: --host must be an IPv4 address\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    g.workers = calloc(opt.threads, sizeof(*g.workers));
    g.online = calloc(opt.users, sizeof(*g.online));
    if (!g.workers || !g.online)
        return 1;
    for (unsigned t = 0; t < opt.threads; t++) {
        pb_worker_t *w = &g.workers[t];
        w->id = t;
        w->first_user = (uint32_t)((uint64_t)opt.users * t / opt.threads);
        w->n = (uint32_t)((uint64_t)opt.users * (t + 1) / opt.threads) - w->first_user;
        w->conns = calloc(w->n, sizeof(*w->conns));
        w->flush = malloc(sizeof(uint32_t) * w->n);
        w->ready = malloc(sizeof(uint32_t) * w->n);
        w->contacts = malloc(sizeof(uint32_t) * (graph.degree + 1));
        if (!w->conns || !w->flush || !w->ready || !w->contacts)
            return 1;
        for (uint32_t i = 0; i < w->n; i++)
            w->conns[i].user = w->first_user + i;
        w->window = opt.login_window / opt.threads ? opt.login_window / opt.threads : 1;
        pb_hist_init(&w->login_lat);
        pb_hist_init(&w->roster_lat);
        pb_hist_init(&w->initial_lat);
        pb_hist_init(&w->logout_lat);
        for (unsigned k = 0; k < opt.n_rates; k++) {
            pb_hist_init(&w->stage[k].lat);
            pb_hist_init(&w->stage[k].msg_lat);
        }
        w->series = calloc(1, sizeof(*w->series));
        if (!w->series)
            return 1;
    }
    for (unsigned k = 0; k < PB_STAGES_MAX; k++)
        atomic_init(&g.stage_t1[k], UINT64_MAX);
    for (unsigned t = 0; t < opt.threads; t++)
        if (pthread_create(&g.workers[t].thread, NULL, pb_worker_main, &g.workers[t]) != 0)
            return 1;
    if (opt.registering)
        return pb_register_main();

    pb_sleep_ms(50);
    pb_sample_t s0 = pb_sample();
    rss_before_kib = s0.server_rss_kib;
    g.t0 = s0.t_ns;
    smp.s[0] = s0;
    smp.phase[0] = PB_PH_INIT;
    smp.n = 1;
    if (pthread_create(&smp.thread, NULL, pb_sampler_main, NULL) != 0)
        return 1;
    fprintf(stderr, "presbench: login %u users...\n", opt.users);
    pb_set_phase(PB_PH_LOGIN);
    pb_wait_for(pr_login, opt.users);
    pb_sample_t s1 = pb_sample();
    use_login = pb_use("login", s0, s1);
    rss_bound_kib = s1.server_rss_kib;
    fprintf(stderr, "presbench: %" PRIu64 " bound; roster...\n", pb_sum(pr_bound));

    uint64_t owed = pb_set_phase(PB_PH_ROSTER);
    pb_wait_for(pr_roster, owed);
    pb_sample_t s2 = pb_sample();
    use_roster = pb_use("roster", s1, s2);
    fprintf(stderr, "presbench: %" PRIu64 " rosters; initial presence...\n", pb_sum(pr_roster));

    owed = pb_set_phase(PB_PH_INITIAL);
    pb_wait_for(pr_initial, owed);
    uint64_t last = pb_wait_quiet();
    pb_set_phase(PB_PH_QUIET);
    initial_s = (double)(last - s2.t_ns) / 1e9;
    pb_sample_t s3 = pb_sample();
    use_initial = pb_use("initial presence", s2, s3);
    /* Connected, bound, roster read, presence exchanged, nothing moving: the
     * idle connected user whose memory the target bounds. */
    pb_sleep_ms(500);
    rss_connected_kib = pb_sample().server_rss_kib;
    /* The same after --idle seconds: what the allocator gives back of the
     * login storm's transient memory (parsers, SCRAM exchanges) once idle. */
    pb_sleep_ms((unsigned)(opt.idle_s * 1000));
    rss_idle_kib = pb_sample().server_rss_kib;

    for (unsigned k = 0; k < opt.n_rates; k++) {
        uint64_t t0 = clk_monotonic_ns() + 20000000u;   /* every worker awake by then */
        uint64_t t1 = t0 + (uint64_t)(opt.duration_s * 1e9);
        atomic_store_explicit(&g.stage_t0[k], t0, memory_order_relaxed);
        atomic_store_explicit(&g.stage_t1[k], t1, memory_order_relaxed);
        fprintf(stderr, "presbench: stage %u: %.0f changes/s for %.1f s...\n", k + 1,
                opt.rates[k], opt.duration_s);
        pb_set_phase(PB_PH_STAGE + (int)k);
        while (clk_monotonic_ns() < t0)
            pb_sleep_ms(1);
        pb_sample_t a = pb_sample();
        while (clk_monotonic_ns() < t1)
            pb_sleep_ms(5);
        pb_sample_t b = pb_sample();
        snprintf(stage_names[k], sizeof(stage_names[k]), "stage %u (%.0f/s)", k + 1,
                 opt.rates[k]);
        use_stage[k] = pb_use(stage_names[k], a, b);
        pb_set_phase(PB_PH_QUIET);
        /* Let an overloaded stage's backlog drain before the next one. */
        pb_sleep_ms((unsigned)(opt.settle_s * 1000));
        pb_wait_quiet();
    }

    fprintf(stderr, "presbench: logout...\n");
    pb_sample_t s4 = pb_sample();
    rss_stages_kib = s4.server_rss_kib;
    owed = pb_set_phase(PB_PH_LOGOUT);
    pb_wait_for(pr_logout, owed);
    pb_sample_t s5 = pb_sample();
    use_logout = pb_use("logout", s4, s5);
    if (opt.server_pid > 0)
        rss_hwm_kib = pb_status_kib(opt.server_pid, "VmHWM");
    atomic_store_explicit(&smp.stop, true, memory_order_relaxed);
    pthread_join(smp.thread, NULL);
    smp.phase[smp.n] = PB_PH_LOGOUT;
    smp.s[smp.n++] = pb_sample();       /* the last, partial second */
    pb_set_phase(PB_PH_EXIT);
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(g.workers[t].thread, NULL);

    pb_collect();
    pb_report_table();
    if (opt.json_path && pb_report_json() < 0)
        return 1;
    uint64_t errors = 0;
    for (unsigned e = 0; e < PB_ERR_COUNT; e++)
        errors += tot.errors[e];
    return errors ? 3 : 0;
}

/* ---- Command line ------------------------------------------------------------------ */

static void pb_usage(void)
{
    fprintf(stderr,
            "usage: presbench xmpp provision [--users N] [--contacts K] [--seed S] "
            "[--domain D] [--password P] [--salt B64] [--iterations I] [--out FILE]\n"
            "       presbench xmpp run --port P [--host A] [--users N] [--contacts K] [--seed S]\n"
            "                [--domain D] [--password P] [--threads T] [--sources S]\n"
            "                [--login-rate R] [--login-window W] [--initial-rate R]\n"
            "                [--rates R1,R2,... | --every T1,T2,...] [--msg-rate M | --msg-every T]\n"
            "                [--duration S] [--settle S]\n"
            "                [--quiet S] [--label L]\n"
            "                [--idle S]\n"
            "                [--phase-timeout S] [--server-pid PID] [--json FILE] [--commit C]\n"
            "       presbench xmpp register --port P [--host A] [--users N] [--contacts K]\n"
            "                [--seed S] [--domain D] [--password P] [--threads T]\n"
            "                [--concurrency C] [--phase-timeout S] [--json FILE] [--label L]\n"
            "       presbench sip provision|run ...   (sipbench's options, see sipbench)\n"
            "exit: 0 done, 2 usage, 3 done with errors, 1 could not run\n");
    exit(2);
}

static void pb_parse_rates(const char *s)
{
    opt.n_rates = 0;
    while (*s && opt.n_rates < PB_STAGES_MAX) {
        char *end;
        double r = strtod(s, &end);
        if (end == s || r <= 0)
            pb_usage();
        opt.rates[opt.n_rates++] = r;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            pb_usage();
    }
}

/* sipbench's main (bench/meson.build compiles it in under this name). */
int pb_sip_main(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "sip"))
        return pb_sip_main(argc - 1, argv + 1);
    if (argc < 3 || strcmp(argv[1], "xmpp"))
        pb_usage();
    bool provision = !strcmp(argv[2], "provision");
    bool every = false;         /* --every: the rates are each user's period */
    double msg_every = 0;
    opt.registering = !strcmp(argv[2], "register");
    if (!provision && !opt.registering && strcmp(argv[2], "run"))
        pb_usage();
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            pb_usage();
        i++;
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = (unsigned)atoi(v);
        else if (!strcmp(a, "--domain")) opt.domain = v;
        else if (!strcmp(a, "--users")) opt.users = (unsigned)atoi(v);
        else if (!strcmp(a, "--contacts")) opt.contacts = (unsigned)atoi(v);
        else if (!strcmp(a, "--seed")) opt.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--password")) opt.password = v;
        else if (!strcmp(a, "--salt")) opt.salt_b64 = v;
        else if (!strcmp(a, "--iterations")) opt.iterations = (unsigned)atoi(v);
        else if (!strcmp(a, "--threads")) opt.threads = (unsigned)atoi(v);
        else if (!strcmp(a, "--sources")) opt.sources = (unsigned)atoi(v);
        else if (!strcmp(a, "--login-rate")) opt.login_rate = atof(v);
        else if (!strcmp(a, "--login-window")) opt.login_window = (unsigned)atoi(v);
        else if (!strcmp(a, "--initial-rate")) opt.initial_rate = atof(v);
        else if (!strcmp(a, "--rates")) pb_parse_rates(v), every = false;
        else if (!strcmp(a, "--every")) pb_parse_rates(v), every = true;
        else if (!strcmp(a, "--msg-rate")) opt.msg_rate = atof(v), msg_every = 0;
        else if (!strcmp(a, "--msg-every")) msg_every = atof(v);
        else if (!strcmp(a, "--label")) opt.label = v;
        else if (!strcmp(a, "--concurrency")) opt.concurrency = (unsigned)atoi(v);
        else if (!strcmp(a, "--duration")) opt.duration_s = atof(v);
        else if (!strcmp(a, "--settle")) opt.settle_s = atof(v);
        else if (!strcmp(a, "--quiet")) opt.quiet_s = atof(v);
        else if (!strcmp(a, "--idle")) opt.idle_s = atof(v);
        else if (!strcmp(a, "--phase-timeout")) opt.phase_timeout_s = atof(v);
        else if (!strcmp(a, "--server-pid")) opt.server_pid = atoi(v);
        else if (!strcmp(a, "--json")) opt.json_path = v;
        else if (!strcmp(a, "--commit")) opt.commit = v;
        else if (!strcmp(a, "--out")) opt.out_path = v;
        else pb_usage();
    }
    if (!opt.users || !opt.threads || !opt.login_window || opt.duration_s <= 0 ||
        !opt.concurrency ||
        (!provision && !opt.port))
        pb_usage();
    /* Each user every T seconds is N/T for all users together. */
    for (unsigned k = 0; every && k < opt.n_rates; k++)
        opt.rates[k] = opt.users / opt.rates[k];
    if (msg_every > 0)
        opt.msg_rate = opt.users / msg_every;
    int grc = pb_graph_init(&graph, opt.users, opt.contacts, opt.seed);
    if (grc == -E2BIG)
        fprintf(stderr, "presbench: at most %u contacts\n", PB_GRAPH_DEGREE_MAX);
    else if (grc == -EINVAL)
        fprintf(stderr, "presbench: %u contacts need more than %u users\n", opt.contacts,
                opt.users);
    if (grc < 0)
        return 2;
    return provision ? pb_provision() : pb_run();
}
