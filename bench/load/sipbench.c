/*
 * sipbench - the load generator's SIP mode: presence subscriptions, publications and
 * their NOTIFYs over UDP or TCP against a SIP presence server (presenced, or a peer such
 * as Kamailio's presence module on the same workload).
 *
 * Workload: N presentities p<i>@DOMAIN, each watched by M watchers w<i>_<j>@DOMAIN
 * (N*M subscriptions); every name follows from (N, M).
 *
 *   sipbench provision --presentities N --watchers M [--domain D] [--out FILE]
 *       writes the JSON-lines import file for `presencectl import`: every account with
 *       one password and one salt; each presentity's roster lets its watchers see it
 *       ("from") and each watcher's roster holds its presentity ("to"), so that a
 *       server that authorises watchers by the subscription record finds them allowed
 *   sipbench run --port P --presentities N --watchers M [--rates R1,R2,...]
 *                [--duration D] [--transport udp|tcp] [--server-pid PID] [--json FILE] ...
 *       phases, each run for every presentity or watcher before the next:
 *         prime        every presentity publishes once (PUBLISH without SIP-If-Match,
 *                      RFC 3903 §4.2), so that every subscription starts with a state
 *         subscribe    every watcher subscribes (Event: presence, Expires --expires,
 *                      RFC 6665 §4.1.2.1) with at most --window requests under way;
 *                      then the first NOTIFYs, until quiet
 *         stages       for each rate R: the presentities in turn modify their
 *                      publication (SIP-If-Match with the entity tag of their last 2xx,
 *                      RFC 3903 §4.4) so that the server receives R PUBLISH/s for D
 *                      seconds; each carries its send time (CLOCK_MONOTONIC ns, one
 *                      machine) in its PIDF note, so every NOTIFY whose body carries
 *                      that note gives one publish-to-notify latency
 *         unsubscribe  SUBSCRIBE with Expires: 0 in every dialog (RFC 6665 §4.1.2.3),
 *                      and the final NOTIFYs
 *         unpublish    PUBLISH with Expires: 0 (RFC 3903 §4.5)
 *       then prints a table (and with --json, a JSON document): per stage the PUBLISH/s
 *       sent and answered, the NOTIFYs/s received against those owed (one per active
 *       subscription of the publishing presentity), latency percentiles, errors by
 *       kind (non-2xx by method and status, timeouts, malformed or stray datagrams),
 *       the server's NOTIFY retransmissions and ours, the server's CPU and memory from
 *       /proc (--server-pid: that process and its descendants, for servers that fork
 *       workers) and the generator's own CPU.
 *
 * Every NOTIFY is answered with 200 (RFC 6665 §4.1.3), a retransmitted one too, or the
 * server would retransmit it for 32 s and end the subscription; a window of the last
 * SB_CSEQ_WINDOW CSeqs per dialog tells a retransmission (counted) from a late NOTIFY.
 * Requests are retransmitted as a UDP client transaction does (RFC 3261 §17.1.2.2: Timer
 * E from T1 = 500 ms doubling to T2 = 4 s) and given up at the first Timer E after
 * --timeout (Timer F, 64*T1 = 32 s by default). Over TCP nothing is retransmitted (Timer
 * E is for unreliable transports only) and Timer F alone ends a transaction.
 *
 * I/O: each worker thread has its own io_uring and a few UDP sockets, each connected to
 * the server and bound to a source address in 127.0.0.1 and up (--sources). A watcher
 * or a presentity belongs to one worker and one of its sockets, where the server's
 * responses and NOTIFYs come back: presenced answers over the flow a request came on,
 * and a peer sends NOTIFYs to the SUBSCRIBE's Contact, which names that socket.
 * Several sockets per worker spread the datagrams over a server's SO_REUSEPORT sockets
 * (the kernel picks one by the 4-tuple). Receives are multishot into a provided-buffer
 * ring; each datagram sent is copied into a send slot that lives until its completion.
 * A worker wakes for every completion, or with --wake-batch N sleeps until N are ready
 * or --wake-usec (default 100) after the first (engine/uring_wait.h), reading a latency
 * up to that late: woken for each datagram, it has the server's send pay the wake-up,
 * which over loopback is the server's CPU (bench/RESULTS.md measures both ways).
 * Responses are read with presenced's zero-copy SIP parser
 * (protocols/sip/sip_msg.h); a NOTIFY is read for what a watcher needs of it, and its 200
 * written from the lines it copies (sb_notify_quick), the parser and its response writer
 * taking any NOTIFY that reader does not expect (counted: "read by the full parser").
 *
 * --transport tcp: each of those sockets is instead one TCP connection to the server,
 * bound to its source address the same way, so that a few connections carry the dialogs
 * of many watchers and presentities, as a SIP trunk from call control does. Via says TCP
 * and the Contact names the connection's own address and port with ;transport=tcp, so a
 * server that sends NOTIFYs to the Contact finds the connection open to that address
 * (Kamailio looks for one by the remote address; presenced sends over the connection the
 * SUBSCRIBE came on). Receives are the same multishot ones; the bytes are framed
 * with sip_msg_frame_resume(), a message cut between receives waiting in the
 * connection's input buffer. What a turn writes to a connection is queued and sent with
 * one send at the turn's end, the next batch waiting until the kernel took the last one
 * whole, so that bytes go out in the order they were written. A connection the server
 * closes, or one that fails, is an error of its kind and ends the run at once (exit 1):
 * its dialogs would only time out one by one.
 */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench/load/pb_hist.h"
#include "engine/buf.h"
#include "engine/bufring.h"
#include "engine/clock.h"
#include "engine/uring_wait.h"
#include "protocols/sip/sip_msg.h"

/* ---- Limits ------------------------------------------------------------------------ */

#define SB_THREADS_MAX 16
#define SB_STAGES_MAX 16
#define SB_SOCKETS_MAX 256
/* Source addresses 127.0.0.1 .. 127.0.0.250. */
#define SB_SOURCES_MAX 250
/* Submission queue: a turn queues one send per datagram; a full queue is submitted and
 * refilled, so this only sets how many go per syscall. Completions get 16 times that: a
 * turn can complete thousands of receives and sends. */
#define SB_SQ_ENTRIES 4096u
#define SB_CQ_ENTRIES (16u * SB_SQ_ENTRIES)
/* Receive buffers per worker: 8192 x 4 KiB = 32 MiB. A NOTIFY with one PIDF tuple is
 * 0.7-1.2 KiB; a datagram that fills a whole buffer may have been cut and is counted as
 * an error. Running out only delays receives (the datagrams wait in the socket). */
#define SB_RECV_BUFS 8192u
#define SB_RECV_BUF_BYTES 4096u
#define SB_BUF_GROUP 1
/* Send slots per worker (16384 x 2 KiB = 32 MiB): one per datagram from its send to its
 * completion. 2 KiB holds the largest request written here (a PUBLISH with its PIDF,
 * ~700 bytes) and any 200 to a NOTIFY (its Via, From, To, Call-ID and CSeq). When every
 * slot is in flight the datagram is sent with a plain send(2) instead (counted). */
#define SB_SLOT_BYTES 2048u
#define SB_SLOTS 16384u
/* To tags and entity tags kept per dialog and publication: presenced writes 16 hex
 * digits, Kamailio about 45 characters. A longer one is an error. */
#define SB_TAG_MAX 64
/* RFC 3261 §17.1.2.2: a non-INVITE client transaction over UDP. */
#define SB_T1_NS 500000000ull
#define SB_T2_NS 4000000000ull
/* Timer E levels: T1, 2*T1, 4*T1, then T2 for good. Each level waits a constant time,
 * so a FIFO per level is ordered by due time. Over TCP one more FIFO holds Timer F
 * (--timeout after the request, constant too). */
#define SB_TIMER_LEVELS 4
#define SB_TIMER_F SB_TIMER_LEVELS
/* Bytes a TCP connection may hold queued for the server: one turn's requests and 200s to
 * its NOTIFYs (~400 bytes each; at 100,000 NOTIFYs/s and a turn a millisecond, ~40 KiB)
 * while the last turn's send is under way. 64 MiB means the server stopped reading
 * long ago: an error, not a wait. */
#define SB_TCP_QUEUE_MAX_BYTES (64u << 20)
/* NOTIFY CSeqs remembered per dialog (one bit each) to tell a retransmission from a
 * NOTIFY that arrives after a later one. A NOTIFY further behind is a retransmission:
 * a server sends a dialog's NOTIFYs in order, and only its retransmissions (for up to
 * 32 s) fall that far behind the dialog's newest. */
#define SB_CSEQ_WINDOW 64
/* A worker's sleep when nothing is scheduled: how late it notices a phase change.
 * Pacing sleeps are shorter (at least SB_TICK_NS). */
#define SB_IDLE_WAIT_NS 2000000ull
#define SB_TICK_NS 1000000ull
/* "sipbench STAGE NS": the note each PUBLISH carries. */
#define SB_NOTE_PREFIX ">sipbench "

/* ---- Options --------------------------------------------------------------------------- */

typedef struct {
    const char *host;
    unsigned port;
    const char *domain;
    unsigned presentities, watchers;
    const char *password;
    const char *salt_b64;
    unsigned iterations;
    unsigned threads, sockets, sources;
    bool tcp;                   /* --transport tcp: the sockets are TCP connections */
    unsigned window;            /* requests under way in bulk phases, all workers */
    double subscribe_rate;      /* SUBSCRIBEs/s started; 0: as fast as the window allows */
    unsigned expires_s;
    double rates[SB_STAGES_MAX];
    unsigned n_rates;
    double duration_s, settle_s, quiet_s, phase_timeout_s, timeout_s;
    double idle_s;              /* wait after subscribing before the second memory sample */
    unsigned wake_batch;        /* completions a worker sleeps for (1: wake for each) */
    unsigned wake_usec;         /* ... or this long after the first */
    int server_pid;
    const char *json_path;
    const char *commit;
    const char *label;
    const char *out_path;       /* provision */
} sb_opts_t;

static sb_opts_t opt = {
    .host = "127.0.0.1",
    .domain = "localhost",
    .presentities = 1000,
    .watchers = 10,
    .password = "sipbench",
    /* base64 of the 16 bytes "sipbench-salt-01": one salt, so that the server derives
     * the SCRAM keys of all accounts once (presencectl's import caches them) */
    .salt_b64 = "c2lwYmVuY2gtc2FsdC0wMQ==",
    .iterations = 4096,
    .threads = 1,
    .sockets = 64,
    .sources = 1,
    .window = 100,
    .expires_s = 3600,
    .duration_s = 10,
    .settle_s = 1,
    .quiet_s = 1,
    .phase_timeout_s = 120,
    .timeout_s = 32,
    .wake_batch = 1,
    .wake_usec = 100,
    .label = "server",
};

/* ---- provision ------------------------------------------------------------------------- */

static int sb_provision(void)
{
    FILE *f = opt.out_path && strcmp(opt.out_path, "-") ? fopen(opt.out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "sipbench: %s: %s\n", opt.out_path, strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < opt.presentities; i++) {
        fprintf(f, "{\"jid\":\"p%" PRIu32 "@%s\",\"password\":\"%s\",\"salt\":\"%s\","
                   "\"iterations\":%u,\"roster\":[",
                i, opt.domain, opt.password, opt.salt_b64, opt.iterations);
        for (uint32_t j = 0; j < opt.watchers; j++)
            fprintf(f, "%s{\"jid\":\"w%" PRIu32 "_%" PRIu32 "@%s\",\"subscription\":\"from\"}",
                    j ? "," : "", i, j, opt.domain);
        fputs("]}\n", f);
        for (uint32_t j = 0; j < opt.watchers; j++)
            fprintf(f, "{\"jid\":\"w%" PRIu32 "_%" PRIu32 "@%s\",\"password\":\"%s\","
                       "\"salt\":\"%s\",\"iterations\":%u,\"roster\":[{\"jid\":\"p%" PRIu32
                       "@%s\",\"subscription\":\"to\"}]}\n",
                    i, j, opt.domain, opt.password, opt.salt_b64, opt.iterations, i,
                    opt.domain);
    }
    if (f != stdout && fclose(f) != 0) {
        fprintf(stderr, "sipbench: %s: %s\n", opt.out_path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "sipbench: %u presentities, %u watchers each: %u accounts\n",
            opt.presentities, opt.watchers, opt.presentities * (opt.watchers + 1));
    return 0;
}

/* ---- Errors and requests --------------------------------------------------------------- */

typedef enum {
    SB_ERR_SEND,                /* a send completed with an error */
    SB_ERR_RECV,                /* a receive completed with an error (ICMP: no server) */
    SB_ERR_MALFORMED,           /* a datagram sip_msg_parse refused */
    SB_ERR_TRUNCATED,           /* a datagram that filled its receive buffer */
    SB_ERR_STRAY,               /* a response or NOTIFY for nothing of ours */
    SB_ERR_OTHER_REQUEST,       /* a request other than NOTIFY */
    SB_ERR_BAD_STAMP,           /* a NOTIFY body without a note we wrote */
    SB_ERR_LONG_TAG,            /* a To tag or entity tag over SB_TAG_MAX */
    SB_ERR_TERMINATED,          /* the server ended a subscription we did not end */
    SB_ERR_CLOSED,              /* TCP: the server closed a connection */
    SB_ERR_UNFRAMED,            /* TCP: bytes sip_msg_frame refused: the stream is lost */
    SB_ERR_BACKLOG,             /* TCP: SB_TCP_QUEUE_MAX_BYTES queued on a connection */
    SB_ERR_COUNT
} sb_err_t;

static const char *const sb_err_names[SB_ERR_COUNT] = {
    "send", "recv", "malformed", "truncated", "stray", "other_request", "bad_stamp",
    "long_tag", "terminated_by_server", "closed", "unframed", "backlog",
};

/* What a request under way is; errors and retransmissions are counted by it. */
typedef enum { RQ_SUBSCRIBE, RQ_UNSUBSCRIBE, RQ_PUBLISH, RQ_UNPUBLISH, RQ_KINDS } sb_rq_kind_t;

static const char *const sb_rq_names[RQ_KINDS] = { "SUBSCRIBE", "unSUBSCRIBE", "PUBLISH",
                                                   "unPUBLISH" };

/* A client transaction: the request as sent (for retransmissions), or bytes NULL when
 * none is under way. */
typedef struct {
    char *bytes;
    uint16_t len;
    uint8_t kind;               /* sb_rq_kind_t */
    uint8_t tries;              /* transmissions so far */
    uint8_t phase;              /* the phase that started it */
    uint32_t cseq;
    uint64_t t_first_ns;
} sb_req_t;

/*
 * A watcher's subscription:
 *
 *   IDLE -SUBSCRIBE-> SUBSCRIBING -200/NOTIFY active-> ACTIVE <-NOTIFY-> PENDING
 *        SUBSCRIBING -202/NOTIFY pending-> PENDING
 *   ACTIVE, PENDING -SUBSCRIBE Expires 0-> UNSUBSCRIBING -NOTIFY terminated-> DONE
 *   any -NOTIFY terminated-> DONE;  SUBSCRIBING -non-2xx, timeout-> FAILED
 */
enum { S_IDLE = 0, S_SUBSCRIBING, S_ACTIVE, S_PENDING, S_UNSUBSCRIBING, S_DONE, S_FAILED };

typedef struct {
    sb_req_t rq;
    uint8_t state;
    uint8_t to_tag_len;
    bool due;                   /* the current bulk phase still owes this one a step */
    bool any_notify;
    uint32_t notify_cseq;       /* highest NOTIFY CSeq seen */
    uint64_t notify_seen;       /* bit k: notify_cseq - k seen */
    uint32_t cseq;              /* our last SUBSCRIBE's */
    char to_tag[SB_TAG_MAX];
} sb_sub_t;

typedef struct {
    sb_req_t rq;
    uint8_t etag_len;           /* 0: no publication in force */
    bool due;
    uint32_t cseq;
    char etag[SB_TAG_MAX];
} sb_pub_t;

/* ---- Workers ------------------------------------------------------------------------ */

/* Phases as the main thread publishes them; SB_PH_STAGE + k is stage k. */
enum {
    SB_PH_INIT = 0,
    SB_PH_PRIME,
    SB_PH_SUBSCRIBE,
    SB_PH_QUIET,
    SB_PH_UNSUBSCRIBE,
    SB_PH_UNPUBLISH,
    SB_PH_EXIT,
    SB_PH_STAGE = 16,
};

typedef struct {
    int fd;
    char addr[32];              /* "127.0.0.x:port": Via sent-by and Contact */
    /* TCP only */
    bool sending;               /* a send of wire is under way */
    bool dead;                  /* closed or failed: nothing more goes out */
    buf_t in;                   /* the start of a message still being received */
    sip_frame_state_t frame;    /* how far framing read in */
    buf_t out;                  /* written this turn, sent at its end */
    buf_t wire;                 /* under way: fixed until the kernel took all of it */
    size_t wire_off;            /* of wire, taken by the kernel so far */
} sb_sock_t;

typedef struct {
    uint64_t due_ns;
    uint32_t ref;               /* SB_REF_PUB | local index of a presentity, or a watcher's */
    uint32_t cseq;
} sb_timer_t;

#define SB_REF_PUB 0x80000000u

typedef struct {
    sb_timer_t *v;
    uint32_t head, tail, cap;   /* cap: a power of two; head == tail: empty */
} sb_fifo_t;

typedef struct {
    pb_hist_t lat;              /* publish-to-notify */
    pb_hist_t pub_lat;          /* PUBLISH to its 2xx */
    uint64_t slots;             /* PUBLISHes the schedule asked for */
    uint64_t publishes;         /* ... sent */
    uint64_t busy;              /* ... not sent: every presentity still waited for a 2xx */
    uint64_t publish_ok;
    uint64_t expected;          /* NOTIFYs the publications owe: active subscriptions */
    uint64_t notifies;          /* NOTIFYs stamped with this stage */
    uint64_t in_window;         /* ... received before the stage's sending ended */
    uint64_t lag_sum_ns, lag_max_ns;
} sb_stage_t;

typedef struct {
    unsigned id;
    pthread_t thread;
    struct io_uring ring;
    bufring_t br;
    sb_sock_t socks[SB_SOCKETS_MAX];
    unsigned n_socks;
    sb_sub_t *subs;             /* watcher g = local * threads + id */
    uint32_t n_subs;
    sb_pub_t *pubs;             /* presentity i = local * threads + id */
    uint32_t n_pubs;
    char *slots;
    uint32_t *free_slots;
    uint32_t n_free;
    sb_fifo_t timers[SB_TIMER_LEVELS + 1];
    sip_msg_t msg;              /* 6 KiB: the message being read */
    buf_t reply;
    int phase;
    uint64_t phase_t0;
    uint32_t next, inflight, window, rr;
    uint64_t started;
    /* results, read by the main thread after the worker stopped or through atomics */
    pb_hist_t rq_lat[RQ_KINDS];
    uint64_t t_first[RQ_KINDS], t_last[RQ_KINDS];
    uint64_t ok[RQ_KINDS], ok_202, prime_ok, timeouts[RQ_KINDS], retransmitted[RQ_KINDS];
    uint64_t stale_responses;   /* to a retransmission, after the first was taken */
    uint64_t status[RQ_KINDS][700];
    uint64_t errors[SB_ERR_COUNT];
    uint64_t notifies, notify_dups, notify_late, notify_nobody, notify_initial,
        notify_final, notify_whole;
    uint64_t sync_sends, enobufs;
    sb_stage_t stage[SB_STAGES_MAX];
    char first_error[200];
    /* progress, for the main thread (relaxed: counts only) */
    _Atomic uint64_t p_done, p_messages, p_expect;
    _Atomic int p_phase;        /* the phase the worker has entered (release) */
} sb_worker_t;

static struct {
    _Atomic int phase;
    /* Active subscriptions per presentity, kept by the workers that hold its watchers
     * and read by the one that publishes for it, to count the NOTIFYs a PUBLISH owes
     * (relaxed: a PUBLISH racing a subscription change may count one more or less). */
    _Atomic uint16_t *active;
    /* A stage's start and the end of its sending: set before its phase is published;
     * atomics because a worker reading one on a NOTIFY may not have seen the phase. */
    _Atomic uint64_t stage_t0[SB_STAGES_MAX];
    _Atomic uint64_t stage_t1[SB_STAGES_MAX];
    sb_worker_t *workers;
    struct sockaddr_in server;
    uint32_t nonce;             /* in every tag, branch and Call-ID: this run's */
    /* Set by a worker whose TCP connection closed or failed; the main thread ends the
     * run (relaxed: only a flag, the details are in the worker's first_error). */
    _Atomic bool aborted;
} g;

/* user_data: kind in the top byte, a socket or slot index below. */
enum { UD_RECV = 1, UD_SEND, UD_TCP_SEND };
#define UD(kind, idx) (((uint64_t)(kind) << 56) | (uint64_t)(idx))

static struct io_uring_sqe *sb_sqe(sb_worker_t *w)
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

static void sb_error(sb_worker_t *w, sb_err_t kind, const char *detail, size_t len)
{
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof(w->first_error), "%s: %.*s", sb_err_names[kind],
                 (int)(len > 150 ? 150 : len), detail ? detail : "");
    w->errors[kind]++;
}

/* A TCP connection that closed or failed: its dialogs are lost, so the run ends (the main
 * thread polls g.aborted) instead of waiting for each of them to time out. */
static void sb_conn_lost(sb_worker_t *w, unsigned sock, sb_err_t kind, const char *why)
{
    sb_sock_t *sk = &w->socks[sock];
    if (sk->dead)
        return;
    sk->dead = true;
    char d[160];
    int n = snprintf(d, sizeof(d), "connection from %s: %s", sk->addr, why);
    sb_error(w, kind, d, (size_t)n);
    fprintf(stderr, "sipbench: worker %u: %s: %s\n", w->id, sb_err_names[kind], d);
    atomic_store_explicit(&g.aborted, true, memory_order_relaxed);
}

static void sb_send_wire(sb_worker_t *w, unsigned sock)
{
    sb_sock_t *sk = &w->socks[sock];
    ASSERT(!sk->sending);
    ASSERT(sk->wire_off < sk->wire.len);
    struct io_uring_sqe *sqe = sb_sqe(w);
    io_uring_prep_send(sqe, sk->fd, sk->wire.data + sk->wire_off, sk->wire.len - sk->wire_off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(UD_TCP_SEND, sock));
    sk->sending = true;
}

/* The end of a turn: what each connection queued goes out in one send, after the last
 * one was taken whole; until then it waits, which keeps the bytes in order. */
static void sb_flush(sb_worker_t *w)
{
    for (unsigned k = 0; k < w->n_socks; k++) {
        sb_sock_t *sk = &w->socks[k];
        if (sk->sending || sk->dead || !sk->out.len)
            continue;
        buf_t t = sk->wire;
        sk->wire = sk->out;
        sk->out = t;
        sk->out.len = 0;
        sk->wire_off = 0;
        sb_send_wire(w, k);
    }
}

static void sb_on_tcp_sent(sb_worker_t *w, unsigned sock, int res)
{
    sb_sock_t *sk = &w->socks[sock];
    ASSERT(sk->sending);
    sk->sending = false;
    if (res <= 0) {
        sb_conn_lost(w, sock, SB_ERR_SEND, res < 0 ? strerror(-res) : "send took nothing");
        return;
    }
    sk->wire_off += (size_t)res;
    ASSERT(sk->wire_off <= sk->wire.len);
    if (sk->wire_off < sk->wire.len) {
        sb_send_wire(w, sock);      /* a short write: its rest before anything newer */
    } else {
        sk->wire.len = 0;
        sk->wire_off = 0;
    }
}

static void sb_send(sb_worker_t *w, unsigned sock, const char *data, size_t len)
{
    if (opt.tcp) {
        sb_sock_t *sk = &w->socks[sock];
        if (sk->dead)
            return;
        if (sk->out.len + (sk->wire.len - sk->wire_off) + len > SB_TCP_QUEUE_MAX_BYTES) {
            sb_conn_lost(w, sock, SB_ERR_BACKLOG, "the server stopped reading");
            return;
        }
        buf_append(&sk->out, data, len);
        return;
    }
    ASSERT(len <= SB_SLOT_BYTES);
    if (!w->n_free) {
        w->sync_sends++;
        if (send(w->socks[sock].fd, data, len, 0) < 0)
            sb_error(w, SB_ERR_SEND, strerror(errno), strlen(strerror(errno)));
        return;
    }
    uint32_t slot = w->free_slots[--w->n_free];
    char *p = w->slots + (size_t)slot * SB_SLOT_BYTES;
    memcpy(p, data, len);
    struct io_uring_sqe *sqe = sb_sqe(w);
    io_uring_prep_send(sqe, w->socks[sock].fd, p, len, 0);
    io_uring_sqe_set_data64(sqe, UD(UD_SEND, slot));
}

static void sb_arm_recv(sb_worker_t *w, unsigned sock)
{
    struct io_uring_sqe *sqe = sb_sqe(w);
    io_uring_prep_recv_multishot(sqe, w->socks[sock].fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = SB_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, UD(UD_RECV, sock));
}

/* ---- Timer E and F ------------------------------------------------------------------ */

static void sb_fifo_push(sb_fifo_t *q, sb_timer_t t)
{
    if (q->tail - q->head == q->cap) {
        uint32_t cap = q->cap ? 2 * q->cap : 1024;
        sb_timer_t *v = malloc(sizeof(*v) * cap);
        if (!v)
            PANIC("out of memory growing a timer queue");
        for (uint32_t i = 0; i < q->tail - q->head; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        q->tail -= q->head;
        q->head = 0;
        free(q->v);
        q->v = v;
        q->cap = cap;
    }
    q->v[q->tail++ & (q->cap - 1)] = t;
}

static uint64_t sb_level_ns(unsigned level)
{
    uint64_t ns = SB_T1_NS << level;
    return ns < SB_T2_NS ? ns : SB_T2_NS;
}

static sb_req_t *sb_req_of(sb_worker_t *w, uint32_t ref)
{
    return ref & SB_REF_PUB ? &w->pubs[ref & ~SB_REF_PUB].rq : &w->subs[ref].rq;
}

static unsigned sb_sock_of(const sb_worker_t *w, uint32_t local)
{
    return local % w->n_socks;
}

/* Sends a new request and starts its Timer E. bytes are the caller's; a copy is kept. */
static void sb_request(sb_worker_t *w, uint32_t ref, sb_rq_kind_t kind, uint32_t cseq,
                       const char *bytes, size_t len, uint64_t now)
{
    sb_req_t *rq = sb_req_of(w, ref);
    ASSERT(!rq->bytes);
    rq->bytes = malloc(len);
    if (!rq->bytes)
        PANIC("out of memory keeping a request");
    memcpy(rq->bytes, bytes, len);
    rq->len = (uint16_t)len;
    rq->kind = (uint8_t)kind;
    rq->tries = 1;
    rq->phase = (uint8_t)w->phase;
    rq->cseq = cseq;
    rq->t_first_ns = now;
    if (!w->t_first[kind])
        w->t_first[kind] = now;
    sb_send(w, sb_sock_of(w, ref & ~SB_REF_PUB), bytes, len);
    if (opt.tcp)
        sb_fifo_push(&w->timers[SB_TIMER_F],
                     (sb_timer_t){ now + (uint64_t)(opt.timeout_s * 1e9), ref, cseq });
    else
        sb_fifo_push(&w->timers[0], (sb_timer_t){ now + SB_T1_NS, ref, cseq });
}

static bool sb_bulk_phase(int phase)
{
    return phase == SB_PH_PRIME || phase == SB_PH_SUBSCRIBE || phase == SB_PH_UNSUBSCRIBE ||
           phase == SB_PH_UNPUBLISH;
}

/* The request is over (final response or timeout): one step of its bulk phase done. */
static void sb_req_done(sb_worker_t *w, sb_req_t *rq)
{
    if (rq->phase == w->phase && sb_bulk_phase(w->phase)) {
        if (w->inflight)
            w->inflight--;
        atomic_fetch_add_explicit(&w->p_done, 1, memory_order_relaxed);
    }
    free(rq->bytes);
    rq->bytes = NULL;
}

static void sb_set_state(sb_worker_t *w, uint32_t local, uint8_t st)
{
    sb_sub_t *s = &w->subs[local];
    if (s->state == st)
        return;
    uint32_t pres = (local * opt.threads + w->id) / opt.watchers;
    if (s->state == S_ACTIVE)
        atomic_fetch_sub_explicit(&g.active[pres], 1, memory_order_relaxed);
    if (st == S_ACTIVE)
        atomic_fetch_add_explicit(&g.active[pres], 1, memory_order_relaxed);
    s->state = st;
}

static void sb_timeout(sb_worker_t *w, uint32_t ref)
{
    sb_req_t *rq = sb_req_of(w, ref);
    w->timeouts[rq->kind]++;
    /* A publication keeps its entity tag: if the server took the lost request, the next
     * modification gets 412 and starts afresh. */
    if (rq->kind == RQ_SUBSCRIBE && w->subs[ref].state == S_SUBSCRIBING)
        sb_set_state(w, ref, S_FAILED);
    sb_req_done(w, rq);
}

/* Retransmits what is due (UDP) and ends what timed out; returns the time to the next due
 * timer (capped). */
static uint64_t sb_timers(sb_worker_t *w, uint64_t now)
{
    uint64_t next = SB_IDLE_WAIT_NS, timeout_ns = (uint64_t)(opt.timeout_s * 1e9);
    for (unsigned l = 0; l <= SB_TIMER_F; l++) {
        sb_fifo_t *q = &w->timers[l];
        while (q->head != q->tail) {
            sb_timer_t t = q->v[q->head & (q->cap - 1)];
            if (t.due_ns > now) {
                if (t.due_ns - now < next)
                    next = t.due_ns - now;
                break;
            }
            q->head++;
            sb_req_t *rq = sb_req_of(w, t.ref);
            if (!rq->bytes || rq->cseq != t.cseq)
                continue;       /* answered since */
            if (now - rq->t_first_ns >= timeout_ns) {
                sb_timeout(w, t.ref);
                continue;
            }
            ASSERT(l < SB_TIMER_F);     /* Timer F is due at the timeout, never before */
            sb_send(w, sb_sock_of(w, t.ref & ~SB_REF_PUB), rq->bytes, rq->len);
            w->retransmitted[rq->kind]++;
            unsigned lv = rq->tries < SB_TIMER_LEVELS ? rq->tries : SB_TIMER_LEVELS - 1;
            if (rq->tries < UINT8_MAX)
                rq->tries++;
            sb_fifo_push(&w->timers[lv], (sb_timer_t){ now + sb_level_ns(lv), t.ref, t.cseq });
        }
    }
    return next;
}

/* ---- Requests we write --------------------------------------------------------------- */

/* The Via transport, and the Contact's parameter that says it (RFC 3261 §19.1.1). */
static const char *sb_via_transport(void)
{
    return opt.tcp ? "TCP" : "UDP";
}

static const char *sb_contact_param(void)
{
    return opt.tcp ? ";transport=tcp" : "";
}

static uint32_t sb_global_sub(const sb_worker_t *w, uint32_t local)
{
    return local * opt.threads + w->id;
}

/* SUBSCRIBE: initial (no To tag) or, with expires 0, the unsubscribe in the dialog. */
static void sb_subscribe(sb_worker_t *w, uint32_t local, bool unsubscribe, uint64_t now)
{
    sb_sub_t *s = &w->subs[local];
    uint32_t gi = sb_global_sub(w, local), pres = gi / opt.watchers, j = gi % opt.watchers;
    const sb_sock_t *sk = &w->socks[sb_sock_of(w, local)];
    char m[SB_SLOT_BYTES];
    s->cseq++;
    int n = snprintf(m, sizeof(m),
                     "SUBSCRIBE sip:p%" PRIu32 "@%s SIP/2.0\r\n"
                     "Via: SIP/2.0/%s %s;branch=z9hG4bK%08xw%" PRIu32 "c%" PRIu32 ";rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:w%" PRIu32 "_%" PRIu32 "@%s>;tag=%08xw%" PRIu32 "\r\n"
                     "To: <sip:p%" PRIu32 "@%s>%s%.*s\r\n"
                     "Call-ID: %08xw%" PRIu32 "@sipbench\r\n"
                     "CSeq: %" PRIu32 " SUBSCRIBE\r\n"
                     "Contact: <sip:w%" PRIu32 "_%" PRIu32 "@%s%s>\r\n"
                     "Event: presence\r\nAccept: application/pidf+xml\r\n"
                     "Expires: %u\r\nContent-Length: 0\r\n\r\n",
                     pres, opt.domain, sb_via_transport(), sk->addr, g.nonce, gi, s->cseq,
                     pres, j, opt.domain,
                     g.nonce, gi, pres, opt.domain, unsubscribe ? ";tag=" : "",
                     unsubscribe ? (int)s->to_tag_len : 0, s->to_tag, g.nonce, gi, s->cseq,
                     pres, j, sk->addr, sb_contact_param(), unsubscribe ? 0 : opt.expires_s);
    ASSERT(n > 0 && (size_t)n < sizeof(m));
    if (unsubscribe)
        sb_set_state(w, local, S_UNSUBSCRIBING);
    else
        s->state = S_SUBSCRIBING;
    sb_request(w, local, unsubscribe ? RQ_UNSUBSCRIBE : RQ_SUBSCRIBE, s->cseq, m, (size_t)n,
               now);
}

/* PUBLISH: initial without an entity tag, a modification with one (RFC 3903 §4.4), or
 * a removal (expires 0). stage 0 is the prime phase; the note carries the send time. */
static void sb_publish(sb_worker_t *w, uint32_t local, unsigned stage, bool remove,
                       uint64_t now)
{
    sb_pub_t *p = &w->pubs[local];
    uint32_t i = local * opt.threads + w->id;
    const sb_sock_t *sk = &w->socks[sb_sock_of(w, local)];
    char body[512], m[SB_SLOT_BYTES];
    int bl = 0;
    if (!remove) {
        bl = snprintf(body, sizeof(body),
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
                      "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                      "entity=\"sip:p%" PRIu32 "@%s\"><tuple id=\"sb\"><status><basic>open"
                      "</basic></status><note>sipbench %u %" PRIu64 "</note></tuple>"
                      "</presence>\r\n",
                      i, opt.domain, stage, now);
        ASSERT(bl > 0 && (size_t)bl < sizeof(body));
    }
    p->cseq++;
    int n = snprintf(m, sizeof(m),
                     "PUBLISH sip:p%" PRIu32 "@%s SIP/2.0\r\n"
                     "Via: SIP/2.0/%s %s;branch=z9hG4bK%08xp%" PRIu32 "c%" PRIu32 ";rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:p%" PRIu32 "@%s>;tag=%08xp%" PRIu32 "\r\n"
                     "To: <sip:p%" PRIu32 "@%s>\r\n"
                     "Call-ID: %08xp%" PRIu32 "@sipbench\r\n"
                     "CSeq: %" PRIu32 " PUBLISH\r\n"
                     "Event: presence\r\nExpires: %u\r\n%s%.*s%s%s"
                     "Content-Length: %d\r\n\r\n%s",
                     i, opt.domain, sb_via_transport(), sk->addr, g.nonce, i, p->cseq, i,
                     opt.domain, g.nonce, i,
                     i, opt.domain, g.nonce, i, p->cseq, remove ? 0 : opt.expires_s,
                     p->etag_len ? "SIP-If-Match: " : "", (int)p->etag_len, p->etag,
                     p->etag_len ? "\r\n" : "",
                     remove ? "" : "Content-Type: application/pidf+xml\r\n", bl,
                     remove ? "" : body);
    ASSERT(n > 0 && (size_t)n < sizeof(m));
    sb_request(w, SB_REF_PUB | local, remove ? RQ_UNPUBLISH : RQ_PUBLISH, p->cseq, m,
               (size_t)n, now);
}

/* ---- Reading what the server sends ---------------------------------------------------- */

/* Our tags: this run's nonce in 8 hex digits, 'w' or 'p', the global index. */
static bool sb_tag_parse(str_t tag, char *kind, uint32_t *idx)
{
    char hex[9];
    if (tag.len < 10 || tag.len > 20)
        return false;
    memcpy(hex, tag.ptr, 8);
    hex[8] = 0;
    char *end;
    if (strtoul(hex, &end, 16) != g.nonce || *end)
        return false;
    *kind = tag.ptr[8];
    uint64_t v = 0;
    for (size_t k = 9; k < tag.len; k++) {
        if (tag.ptr[k] < '0' || tag.ptr[k] > '9')
            return false;
        v = v * 10 + (uint64_t)(tag.ptr[k] - '0');
    }
    *idx = (uint32_t)v;
    return (*kind == 'w' || *kind == 'p') && v <= UINT32_MAX;
}

/* The local index of the entity a tag names, if this worker holds it. */
static bool sb_local(const sb_worker_t *w, str_t tag, char *kind, uint32_t *local)
{
    uint32_t gi;
    if (!sb_tag_parse(tag, kind, &gi) || gi % opt.threads != w->id)
        return false;
    *local = gi / opt.threads;
    return *kind == 'w' ? *local < w->n_subs : *local < w->n_pubs;
}

static bool sb_copy_tag(sb_worker_t *w, str_t v, char *out, uint8_t *len)
{
    if (v.len > SB_TAG_MAX) {
        sb_error(w, SB_ERR_LONG_TAG, v.ptr, v.len);
        return false;
    }
    memcpy(out, v.ptr, v.len);
    *len = (uint8_t)v.len;
    return true;
}

static void sb_on_response(sb_worker_t *w, const sip_msg_t *m, uint64_t now)
{
    char kind;
    uint32_t local;
    if (!sb_local(w, m->from.tag, &kind, &local)) {
        sb_error(w, SB_ERR_STRAY, m->start_line.ptr, m->start_line.len);
        return;
    }
    sb_req_t *rq = kind == 'w' ? &w->subs[local].rq : &w->pubs[local].rq;
    sip_method_t want = kind == 'w' ? SIP_METHOD_SUBSCRIBE : SIP_METHOD_PUBLISH;
    if (!rq->bytes || m->cseq.seq != rq->cseq || m->cseq.method != want) {
        w->stale_responses++;
        return;
    }
    if (m->status < 200)
        return;     /* provisional: Timer E goes on (RFC 3261 §17.1.2.2 would slow it) */
    sb_rq_kind_t k = (sb_rq_kind_t)rq->kind;
    bool ok = m->status < 300;
    if (ok) {
        w->ok[k]++;
        pb_hist_add(&w->rq_lat[k], now - rq->t_first_ns);
        if (now > w->t_last[k])
            w->t_last[k] = now;
    } else {
        w->status[k][m->status]++;
    }
    if (kind == 'w') {
        sb_sub_t *s = &w->subs[local];
        if (k == RQ_SUBSCRIBE) {
            if (ok && !s->to_tag_len)
                sb_copy_tag(w, m->to.tag, s->to_tag, &s->to_tag_len);
            w->ok_202 += m->status == 202;
            if (s->state == S_SUBSCRIBING)     /* else a NOTIFY came first and said */
                sb_set_state(w, local, !ok ? S_FAILED : m->status == 202 ? S_PENDING
                                                                          : S_ACTIVE);
        }
    } else {
        sb_pub_t *p = &w->pubs[local];
        const sip_hdr_t *et = sip_msg_get(m, SIP_HDR_SIP_ETAG);
        /* A refusal (503 and the like) leaves the publication as it was: the next PUBLISH
         * modifies it still; after 412 it is gone and the next one starts afresh. */
        if (k == RQ_UNPUBLISH || m->status == 412 ||
            (ok && (!et || !sb_copy_tag(w, et->value, p->etag, &p->etag_len))))
            p->etag_len = 0;
        w->prime_ok += ok && rq->phase == SB_PH_PRIME;
        if (k == RQ_PUBLISH && rq->phase >= SB_PH_STAGE) {
            sb_stage_t *st = &w->stage[rq->phase - SB_PH_STAGE];
            st->publish_ok += ok;
            if (ok)
                pb_hist_add(&st->pub_lat, now - rq->t_first_ns);
        }
    }
    sb_req_done(w, rq);
}

/* True for a NOTIFY CSeq not seen before in this dialog. */
static bool sb_cseq_new(sb_worker_t *w, sb_sub_t *s, uint32_t cseq)
{
    if (!s->any_notify || cseq > s->notify_cseq) {
        uint32_t shift = s->any_notify ? cseq - s->notify_cseq : SB_CSEQ_WINDOW;
        s->notify_seen = shift >= SB_CSEQ_WINDOW ? 1 : (s->notify_seen << shift) | 1;
        s->notify_cseq = cseq;
        s->any_notify = true;
        return true;
    }
    uint32_t back = s->notify_cseq - cseq;
    if (back >= SB_CSEQ_WINDOW)
        return false;
    uint64_t bit = 1ull << back;
    if (s->notify_seen & bit)
        return false;
    s->notify_seen |= bit;
    w->notify_late++;
    return true;
}

static bool sb_parse_u64(const char **p, const char *end, uint64_t *out)
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

/*
 * The body's "sipbench STAGE NS" notes: the newest is the publication this NOTIFY
 * reports. A presentity whose modification was lost (412 after a timeout) published
 * afresh, and the server keeps its older publication until it expires, so a body may
 * hold the notes of both.
 */
static void sb_on_notify_body(sb_worker_t *w, str_t body, uint64_t now)
{
    const char *p = body.ptr, *end = body.ptr + body.len;
    uint64_t stage = 0, sent = 0;
    bool found = false;
    while ((p = memmem(p, (size_t)(end - p), SB_NOTE_PREFIX, sizeof(SB_NOTE_PREFIX) - 1))) {
        uint64_t st, ns;
        p += sizeof(SB_NOTE_PREFIX) - 1;
        if (!sb_parse_u64(&p, end, &st) || p >= end || *p++ != ' ' ||
            !sb_parse_u64(&p, end, &ns) || st > opt.n_rates || ns > now) {
            found = false;
            break;
        }
        if (!found || ns > sent) {
            stage = st;
            sent = ns;
        }
        found = true;
    }
    if (!found) {
        sb_error(w, SB_ERR_BAD_STAMP, body.ptr, body.len);
        return;
    }
    if (stage == 0) {
        w->notify_initial++;
        return;
    }
    sb_stage_t *st = &w->stage[stage - 1];
    st->notifies++;
    pb_hist_add(&st->lat, now - sent);
    if (now <= atomic_load_explicit(&g.stage_t1[stage - 1], memory_order_relaxed))
        st->in_window++;
}

static void sb_answer(sb_worker_t *w, unsigned sock, const sip_msg_t *m, unsigned status)
{
    sip_response_t rsp = { .status = status };
    w->reply.len = 0;
    if (sip_msg_write_response(m, &rsp, &w->reply) == 0 && w->reply.len <= SB_SLOT_BYTES)
        sb_send(w, sock, w->reply.data, w->reply.len);
}

/* What a watcher reads of a NOTIFY: the tags, the CSeq number, the Subscription-State
 * value (empty: none) and the body. */
typedef struct {
    str_t from_tag, to_tag, substate, body;
    uint32_t cseq;
} sb_notify_t;

/* A NOTIFY of one of our dialogs, answered already. */
static void sb_on_notify(sb_worker_t *w, uint32_t local, const sb_notify_t *n, uint64_t now)
{
    sb_sub_t *s = &w->subs[local];
    if (!sb_cseq_new(w, s, n->cseq)) {
        w->notify_dups++;
        return;
    }
    w->notifies++;
    if (!s->to_tag_len)
        sb_copy_tag(w, n->from_tag, s->to_tag, &s->to_tag_len);
    sip_subscription_state_t ss;
    if (n->substate.len && sip_subscription_state_parse(n->substate, &ss) == 0) {
        if (ss.state == SIP_SUBSTATE_TERMINATED) {
            w->notify_final++;
            if (s->state != S_UNSUBSCRIBING)
                sb_error(w, SB_ERR_TERMINATED, n->substate.ptr, n->substate.len);
            sb_set_state(w, local, S_DONE);
            return;
        }
        if (s->state == S_SUBSCRIBING || s->state == S_ACTIVE || s->state == S_PENDING)
            sb_set_state(w, local, ss.state == SIP_SUBSTATE_ACTIVE ? S_ACTIVE : S_PENDING);
    }
    if (n->body.len)
        sb_on_notify_body(w, n->body, now);
    else
        w->notify_nobody++;
}

/* A NOTIFY read by the full parser: one the quick reader below passed on. */
static void sb_on_notify_msg(sb_worker_t *w, unsigned sock, const sip_msg_t *m, uint64_t now)
{
    char kind;
    uint32_t local;
    if (!sb_local(w, m->to.tag, &kind, &local) || kind != 'w') {
        sb_error(w, SB_ERR_STRAY, m->start_line.ptr, m->start_line.len);
        sb_answer(w, sock, m, 481);     /* RFC 6665 §4.1.3: no such subscription */
        return;
    }
    sb_answer(w, sock, m, 200);
    w->notify_whole++;
    const sip_hdr_t *h = sip_msg_get(m, SIP_HDR_SUBSCRIPTION_STATE);
    sb_notify_t n = { .from_tag = m->from.tag, .to_tag = m->to.tag,
                      .substate = h ? h->value : (str_t){ NULL, 0 }, .body = m->body,
                      .cseq = m->cseq.seq };
    sb_on_notify(w, local, &n, now);
}

/* ---- A NOTIFY read quickly ---------------------------------------------------------- */

/*
 * At a server's peak the generator shares the machine with it, and reading each NOTIFY
 * whole with the full parser (every address, URI and host of every header) was a third of
 * the generator's CPU, taken from the server. A watcher needs less: the tags, the CSeq, the
 * Subscription-State and the body, and the 200 copies the Via, From, To, Call-ID and CSeq
 * lines as they came (RFC 3261 §8.2.6.2). sb_notify_quick() reads just that, a line at a
 * time, and gives up (false, nothing sent) on anything it does not expect: a folded line,
 * a quoted string in From or To, a header twice that may appear once, one missing, a tag
 * that is not ours. The full parser then reads the message and decides what it is.
 */

static bool sb_name_is(str_t name, const char *full, char compact)
{
    if (name.len == 1)
        return compact && (name.ptr[0] | 0x20) == compact;
    return name.len == strlen(full) && !strncasecmp(name.ptr, full, name.len);
}

static const char *sb_skip_wsp(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* The tag parameter of a From or To value: after the URI's '>' when it has one (a
 * parameter inside it is the URI's), else after the URI (RFC 3261 §20.10). */
static bool sb_quick_tag(str_t v, str_t *tag)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    if (memchr(p, '"', v.len))
        return false;
    const char *gt = memchr(p, '>', v.len);
    if (gt)
        p = gt + 1;
    while ((p = memchr(p, ';', (size_t)(end - p)))) {
        p = sb_skip_wsp(p + 1, end);
        if (end - p < 3 || strncasecmp(p, "tag", 3))
            continue;
        const char *q = sb_skip_wsp(p + 3, end);
        if (q == end || *q != '=')
            continue;
        q = sb_skip_wsp(q + 1, end);
        const char *t = q;
        while (q < end && *q != ';' && *q != ' ' && *q != '\t' && *q != ',')
            q++;
        *tag = (str_t){ t, (size_t)(q - t) };
        return q > t;
    }
    return false;
}

static bool sb_notify_quick(sb_worker_t *w, unsigned sock, const char *data, size_t len,
                            sip_msg_transport_t tp, uint64_t now)
{
    static const char start[] = "NOTIFY ";
    const char *end = data + len;
    if (len < sizeof(start) || memcmp(data, start, sizeof(start) - 1))
        return false;
    const char *eol = memchr(data, '\n', len);
    if (!eol || eol - data < 9 || eol[-1] != '\r' || memcmp(eol - 9, " SIP/2.0", 8))
        return false;
    buf_t *r = &w->reply;
    r->len = 0;
    buf_append_str(r, "SIP/2.0 200 OK\r\n");
    enum { F_VIA = 1, F_FROM = 2, F_TO = 4, F_CALL_ID = 8, F_CSEQ = 16, F_SUBSTATE = 32,
           F_LENGTH = 64 };
    unsigned seen = 0;
    sb_notify_t n = { 0 };
    uint64_t content_length = 0;
    const char *p = eol + 1;
    for (;;) {
        if (p == end)
            return false;
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || eol == p || eol[-1] != '\r')
            return false;
        if (eol == p + 1)
            break;      /* the empty line */
        if (eol + 1 < end && (eol[1] == ' ' || eol[1] == '\t'))
            return false;       /* folded */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return false;
        const char *ne = colon;
        while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        str_t name = { p, (size_t)(ne - p) };
        const char *vb = sb_skip_wsp(colon + 1, eol - 1), *ve = eol - 1;
        while (ve > vb && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        str_t value = { vb, (size_t)(ve - vb) };
        unsigned f = 0;
        bool copy = false;
        if (sb_name_is(name, "via", 'v')) {
            f = F_VIA;
            copy = true;
        } else if (sb_name_is(name, "from", 'f')) {
            f = F_FROM;
            copy = sb_quick_tag(value, &n.from_tag);
        } else if (sb_name_is(name, "to", 't')) {
            f = F_TO;
            copy = sb_quick_tag(value, &n.to_tag);
        } else if (sb_name_is(name, "call-id", 'i')) {
            f = F_CALL_ID;
            copy = value.len > 0;
        } else if (sb_name_is(name, "cseq", 0)) {
            f = F_CSEQ;
            const char *q = vb;
            uint64_t seq = 0;
            copy = sb_parse_u64(&q, ve, &seq) && seq <= UINT32_MAX && q < ve &&
                   (*q == ' ' || *q == '\t');
            q = sb_skip_wsp(q, ve);
            copy = copy && ve - q == 6 && !memcmp(q, "NOTIFY", 6);
            n.cseq = (uint32_t)seq;
        } else if (sb_name_is(name, "subscription-state", 0)) {
            f = F_SUBSTATE;
            n.substate = value;
        } else if (sb_name_is(name, "content-length", 'l')) {
            f = F_LENGTH;
            const char *q = vb;
            if (!sb_parse_u64(&q, ve, &content_length) || q != ve)
                return false;
        }
        if (f & seen & ~F_VIA)
            return false;       /* there once at most */
        if ((f & (F_FROM | F_TO | F_CALL_ID | F_CSEQ)) && !copy)
            return false;
        seen |= f;
        if (copy)
            buf_append(r, p, (size_t)(eol + 1 - p));
        p = eol + 1;
    }
    p += 2;
    if ((seen & (F_VIA | F_FROM | F_TO | F_CALL_ID | F_CSEQ)) !=
        (F_VIA | F_FROM | F_TO | F_CALL_ID | F_CSEQ))
        return false;
    /* RFC 3261 §18.3: a stream message was framed by its Content-Length; a datagram's
     * body is that many bytes, the rest dropped, and without one all that is left. */
    size_t rest = (size_t)(end - p);
    if (seen & F_LENGTH) {
        if (content_length > rest || (tp == SIP_MSG_STREAM && content_length != rest))
            return false;
        rest = (size_t)content_length;
    } else if (tp == SIP_MSG_STREAM) {
        return false;
    }
    n.body = (str_t){ p, rest };
    char kind;
    uint32_t local;
    if (!sb_local(w, n.to_tag, &kind, &local) || kind != 'w')
        return false;
    buf_append_str(r, "Content-Length: 0\r\n\r\n");
    if (r->len > SB_SLOT_BYTES)
        return false;
    sb_send(w, sock, (const char *)r->data, r->len);
    sb_on_notify(w, local, &n, now);
    return true;
}

static void sb_on_message(sb_worker_t *w, unsigned sock, const char *data, size_t len,
                          sip_msg_transport_t tp, uint64_t now)
{
    if (sb_notify_quick(w, sock, data, len, tp, now))
        return;
    sip_msg_t *m = &w->msg;
    if (sip_msg_parse(m, data, len, tp, NULL) < 0) {
        sb_error(w, SB_ERR_MALFORMED, data, len);
        return;
    }
    if (!m->is_request)
        sb_on_response(w, m, now);
    else if (m->method == SIP_METHOD_NOTIFY)
        sb_on_notify_msg(w, sock, m, now);
    else if (m->method != SIP_METHOD_ACK) {
        sb_error(w, SB_ERR_OTHER_REQUEST, m->start_line.ptr, m->start_line.len);
        sb_answer(w, sock, m, 501);
    }
}

static void sb_on_datagram(sb_worker_t *w, unsigned sock, const char *data, size_t len,
                           uint64_t now)
{
    atomic_fetch_add_explicit(&w->p_messages, 1, memory_order_relaxed);
    if (len >= SB_RECV_BUF_BYTES) {
        sb_error(w, SB_ERR_TRUNCATED, data, 80);
        return;
    }
    size_t crlf = 0;
    while (crlf < len && (data[crlf] == '\r' || data[crlf] == '\n'))
        crlf++;
    if (crlf == len)
        return;     /* RFC 5626 §4.4.1 keep-alive */
    sb_on_message(w, sock, data, len, SIP_MSG_DATAGRAM, now);
}

/*
 * Bytes from a TCP connection: every message they complete, framed by Content-Length
 * (RFC 3261 §18.3). Messages whole in the receive buffer are read where they lie; only a
 * message cut by the buffer's end is copied to the connection's input buffer, which the
 * framer's msg_max_bytes (64 KiB) bounds.
 */
static void sb_on_stream(sb_worker_t *w, unsigned sock, const char *data, size_t len,
                         uint64_t now)
{
    sb_sock_t *sk = &w->socks[sock];
    if (sk->dead)
        return;
    bool buffered = sk->in.len > 0;
    if (buffered) {
        buf_append(&sk->in, data, len);
        data = sk->in.data;
        len = sk->in.len;
    }
    size_t off = 0;
    while (off < len) {
        sip_frame_t fr;
        ssize_t n = sip_msg_frame_resume(&sk->frame, data + off, len - off, NULL, &fr);
        off += fr.skip_bytes;   /* CRLFs between messages; a server sends no pings */
        if (n == 0)
            break;
        if (n < 0) {
            sb_conn_lost(w, sock, SB_ERR_UNFRAMED, sip_msg_err_reason((sip_msg_err_t)n));
            return;
        }
        atomic_fetch_add_explicit(&w->p_messages, 1, memory_order_relaxed);
        sb_on_message(w, sock, data + off, (size_t)n, SIP_MSG_STREAM, now);
        off += (size_t)n;
    }
    ASSERT(off <= len);
    if (buffered) {
        memmove(sk->in.data, sk->in.data + off, len - off);
        sk->in.len = len - off;
    } else if (off < len) {
        buf_append(&sk->in, data + off, len - off);
    }
}

static void sb_on_cqe(sb_worker_t *w, const struct io_uring_cqe *cqe, uint64_t now)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned kind = (unsigned)(ud >> 56);
    uint32_t idx = (uint32_t)(ud & 0xffffffffu);
    int res = cqe->res;
    if (kind == UD_SEND) {
        w->free_slots[w->n_free++] = idx;
        if (res < 0)
            sb_error(w, SB_ERR_SEND, strerror(-res), strlen(strerror(-res)));
        return;
    }
    if (kind == UD_TCP_SEND) {
        sb_on_tcp_sent(w, idx, res);
        return;
    }
    if (kind != UD_RECV)
        return;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        bufring_taken(&w->br);
        if (res > 0 && opt.tcp)
            sb_on_stream(w, idx, bufring_buf(&w->br, bid), (size_t)res, now);
        else if (res > 0)
            sb_on_datagram(w, idx, bufring_buf(&w->br, bid), (size_t)res, now);
        bufring_recycle(&w->br, bid);
    }
    if (cqe->flags & IORING_CQE_F_MORE)
        return;
    if (res == -ENOBUFS) {
        w->enobufs++;
    } else if (opt.tcp && res <= 0) {
        sb_conn_lost(w, idx, res ? SB_ERR_RECV : SB_ERR_CLOSED,
                     res ? strerror(-res) : "closed by the server");
        return;
    } else if (res < 0) {
        sb_error(w, SB_ERR_RECV, strerror(-res), strlen(strerror(-res)));
    }
    sb_arm_recv(w, idx);        /* until the stream's end; a datagram socket has none */
}

/* ---- Phases in a worker ------------------------------------------------------------------ */

static uint64_t sb_due(uint64_t t0, uint64_t now, double rate_total)
{
    return (uint64_t)((double)(now - t0) * rate_total / opt.threads / 1e9) + 1;
}

/* Starts the bulk phase's requests, at most w->window under way. */
static uint64_t sb_bulk_tick(sb_worker_t *w, uint64_t now)
{
    bool subs = w->phase == SB_PH_SUBSCRIBE || w->phase == SB_PH_UNSUBSCRIBE;
    uint32_t n = subs ? w->n_subs : w->n_pubs;
    double rate = w->phase == SB_PH_SUBSCRIBE ? opt.subscribe_rate : 0;
    uint64_t due = rate > 0 ? sb_due(w->phase_t0, now, rate) : UINT64_MAX;
    while (w->next < n && w->inflight < w->window && w->started < due) {
        uint32_t i = w->next++;
        bool *owed = subs ? &w->subs[i].due : &w->pubs[i].due;
        if (!*owed)
            continue;
        *owed = false;
        bool go;
        if (w->phase == SB_PH_SUBSCRIBE)
            go = w->subs[i].state == S_IDLE;
        else if (w->phase == SB_PH_UNSUBSCRIBE)
            go = !w->subs[i].rq.bytes && w->subs[i].to_tag_len &&
                 (w->subs[i].state == S_ACTIVE || w->subs[i].state == S_PENDING);
        else if (w->phase == SB_PH_UNPUBLISH)
            go = !w->pubs[i].rq.bytes && w->pubs[i].etag_len;
        else
            go = !w->pubs[i].rq.bytes;
        if (!go) {      /* changed since the phase began: owed no more */
            atomic_fetch_add_explicit(&w->p_done, 1, memory_order_relaxed);
            continue;
        }
        w->inflight++;
        w->started++;
        if (subs)
            sb_subscribe(w, i, w->phase == SB_PH_UNSUBSCRIBE, now);
        else
            sb_publish(w, i, 0, w->phase == SB_PH_UNPUBLISH, now);
    }
    return w->next < n && rate > 0 ? SB_TICK_NS : SB_IDLE_WAIT_NS;
}

/* Stage k: R PUBLISH/s, each from the next presentity without one under way. */
static uint64_t sb_stage_tick(sb_worker_t *w, unsigned k, uint64_t now)
{
    uint64_t t0 = atomic_load_explicit(&g.stage_t0[k], memory_order_relaxed);
    uint64_t t1 = atomic_load_explicit(&g.stage_t1[k], memory_order_relaxed);
    if (now < t0)
        return t0 - now < SB_TICK_NS ? t0 - now : SB_TICK_NS;
    if (now >= t1 || !w->n_pubs)
        return SB_IDLE_WAIT_NS;
    sb_stage_t *st = &w->stage[k];
    double per_worker = opt.rates[k] / opt.threads;
    uint64_t due = sb_due(t0, now, opt.rates[k]);
    while (st->slots < due) {
        uint32_t tried = 0, i = 0;
        for (; tried < w->n_pubs; tried++) {
            i = w->rr++ % w->n_pubs;
            if (!w->pubs[i].rq.bytes)
                break;
        }
        if (tried == w->n_pubs) {
            /* Every presentity waits for a 2xx: the rest of this turn's schedule is lost,
             * not sent in a burst later. */
            st->busy += due - st->slots;
            st->slots = due;
            break;
        }
        uint64_t sched = t0 + (uint64_t)((double)st->slots * 1e9 / per_worker);
        uint64_t lag = now > sched ? now - sched : 0;
        st->lag_sum_ns += lag;
        if (lag > st->lag_max_ns)
            st->lag_max_ns = lag;
        st->slots++;
        st->publishes++;
        st->expected += atomic_load_explicit(&g.active[i * opt.threads + w->id],
                                             memory_order_relaxed);
        sb_publish(w, i, k + 1, false, now);
    }
    uint64_t next = t0 + (uint64_t)((double)st->slots * 1e9 / per_worker);
    uint64_t wait = next > now ? next - now : 0;
    return wait < SB_TICK_NS ? SB_TICK_NS : wait > SB_IDLE_WAIT_NS ? SB_IDLE_WAIT_NS : wait;
}

static void sb_enter(sb_worker_t *w, int phase, uint64_t now)
{
    w->phase = phase;
    w->phase_t0 = now;
    w->next = 0;
    w->started = 0;
    w->inflight = 0;
    uint64_t expect = 0;
    atomic_store_explicit(&w->p_done, 0, memory_order_relaxed);
    if (phase == SB_PH_SUBSCRIBE || phase == SB_PH_UNSUBSCRIBE) {
        for (uint32_t i = 0; i < w->n_subs; i++) {
            const sb_sub_t *s = &w->subs[i];
            w->subs[i].due = phase == SB_PH_SUBSCRIBE
                                 ? s->state == S_IDLE
                                 : s->state == S_ACTIVE || s->state == S_PENDING;
            expect += w->subs[i].due;
        }
    } else if (phase == SB_PH_PRIME || phase == SB_PH_UNPUBLISH) {
        for (uint32_t i = 0; i < w->n_pubs; i++) {
            w->pubs[i].due = phase == SB_PH_PRIME || w->pubs[i].etag_len;
            expect += w->pubs[i].due;
        }
    }
    atomic_store_explicit(&w->p_expect, expect, memory_order_relaxed);
    /* Release: p_expect is read by the main thread after it sees the phase. */
    atomic_store_explicit(&w->p_phase, phase, memory_order_release);
}

static int sb_open_socket(sb_worker_t *w, unsigned k)
{
    sb_sock_t *sk = &w->socks[k];
    unsigned global = w->id * opt.sockets + k;
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000001u + global % opt.sources);
    int fd = socket(AF_INET, (opt.tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* What a turn queued goes out at once: Nagle would hold a 200 to a NOTIFY until the
     * server acknowledged the last segment. */
    int one = 1;
    if (opt.tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* Room for a stage's bursts on both sides; FORCE goes past net.core.*mem_max when
     * root, else the plain option gets what the limit allows. */
    int rcv = 16 << 20, snd = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
    socklen_t sl = sizeof(src);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
        connect(fd, (struct sockaddr *)&g.server, sizeof(g.server)) < 0 ||
        getsockname(fd, (struct sockaddr *)&src, &sl) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &src.sin_addr, ip, sizeof(ip));
    snprintf(sk->addr, sizeof(sk->addr), "%s:%u", ip, ntohs(src.sin_port));
    sk->fd = fd;
    buf_init(&sk->in);
    buf_init(&sk->out);
    buf_init(&sk->wire);
    sip_frame_state_init(&sk->frame);
    return 0;
}

static void *sb_worker_main(void *arg)
{
    sb_worker_t *w = arg;
    struct io_uring_params p = { 0 };
    /* Single issuer and deferred task work: completions are handled when this thread
     * waits, never by interrupting it (as presenced's shards). */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = SB_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(SB_SQ_ENTRIES, &w->ring, &p);
    if (rc < 0)
        PANIC("worker %u: io_uring_setup: %s", w->id, strerror(-rc));
    rc = bufring_init(&w->br, &w->ring, SB_BUF_GROUP, SB_RECV_BUFS, SB_RECV_BUF_BYTES);
    if (rc < 0)
        PANIC("worker %u: receive buffers: %s", w->id, strerror(-rc));
    for (unsigned k = 0; k < w->n_socks; k++)
        sb_arm_recv(w, k);

    /*
     * A turn: enter the phase the main thread published; start what the phase's schedule
     * owes (requests, PUBLISHes); retransmit and time out; over TCP, send what each
     * connection queued; submit and wait until a completion or the next due time; reap the
     * completions in a batch (responses, NOTIFYs and their 200s, which the next turn's
     * flush sends) and advance once; give the receive buffers back.
     */
    for (;;) {
        uint64_t now = clk_monotonic_ns();
        int phase = atomic_load_explicit(&g.phase, memory_order_acquire);
        if (phase != w->phase)
            sb_enter(w, phase, now);
        if (phase == SB_PH_EXIT)
            break;
        uint64_t wait_ns = SB_IDLE_WAIT_NS;
        if (sb_bulk_phase(phase))
            wait_ns = sb_bulk_tick(w, now);
        else if (phase >= SB_PH_STAGE)
            wait_ns = sb_stage_tick(w, (unsigned)(phase - SB_PH_STAGE), now);
        uint64_t t = sb_timers(w, now);
        if (t < wait_ns)
            wait_ns = t;
        if (opt.tcp)
            sb_flush(w);
        struct __kernel_timespec ts = { .tv_sec = (long long)(wait_ns / 1000000000u),
                                        .tv_nsec = (long long)(wait_ns % 1000000000u) };
        struct io_uring_cqe *cqe;
        rc = uring_wait_batch(&w->ring, opt.wake_batch, opt.wake_usec, &ts);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
            PANIC("worker %u: io_uring_enter: %s", w->id, strerror(-rc));
        now = clk_monotonic_ns();
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            sb_on_cqe(w, cqe, now);
            seen++;
        }
        io_uring_cq_advance(&w->ring, seen);
        bufring_publish(&w->br);
    }
    bufring_fini(&w->br, &w->ring);
    io_uring_queue_exit(&w->ring);
    for (unsigned k = 0; k < w->n_socks; k++) {
        sb_sock_t *sk = &w->socks[k];
        close(sk->fd);
        buf_fini(&sk->in);
        buf_fini(&sk->out);
        buf_fini(&sk->wire);
    }
    return NULL;
}

/* ---- Sampling the server and ourselves ----------------------------------------------- */

typedef struct {
    uint64_t t_ns;
    double server_cpu_s;        /* utime + stime of the server's processes */
    long server_rss_kib;        /* VmRSS summed over them */
    long server_pss_kib;        /* Pss summed: shared memory counted once */
    unsigned server_procs;
    double gen_cpu_s;
    double machine_busy_s;      /* every CPU's non-idle time, /proc/stat */
} sb_sample_t;

/* utime + stime (seconds) and the parent of a process; false when it is gone. */
static bool sb_proc_stat(int pid, double *cpu_s, int *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* After the command name, which may hold spaces: state is field 3, ppid 4, utime 14
     * and stime 15 (proc(5)). */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", ppid, &ut,
                     &st) != 3)
        return false;
    *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return true;
}

static long sb_proc_kib(int pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
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

/* The server is --server-pid and every process under it (Kamailio forks its workers
 * from a main process; presenced is one process with threads). */
static void sb_sample_server(sb_sample_t *s)
{
    enum { MAX_PROCS = 4096 };
    static int pids[MAX_PROCS], ppids[MAX_PROCS];
    static double cpus[MAX_PROCS];
    unsigned n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_PROCS;) {
        int pid = atoi(e->d_name);
        if (pid > 0 && sb_proc_stat(pid, &cpus[n], &ppids[n]))
            pids[n++] = pid;
    }
    closedir(d);
    s->server_cpu_s = 0;
    s->server_rss_kib = 0;
    s->server_pss_kib = 0;
    for (unsigned i = 0; i < n; i++) {
        int p = pids[i];
        bool ours = false;
        for (unsigned depth = 0; depth < 8 && p > 1 && !ours; depth++) {
            ours = p == opt.server_pid;
            unsigned j = 0;
            while (j < n && pids[j] != p)
                j++;
            p = j < n ? ppids[j] : 0;
        }
        if (!ours)
            continue;
        s->server_procs++;
        s->server_cpu_s += cpus[i];
        long rss = sb_proc_kib(pids[i], "status", "VmRSS");
        long pss = sb_proc_kib(pids[i], "smaps_rollup", "Pss");
        s->server_rss_kib += rss > 0 ? rss : 0;
        s->server_pss_kib += pss > 0 ? pss : 0;
    }
    if (!s->server_procs)
        s->server_cpu_s = s->server_rss_kib = s->server_pss_kib = -1;
}

static double sb_machine_busy_s(void)
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

static sb_sample_t sb_sample(void)
{
    sb_sample_t s = { .t_ns = clk_monotonic_ns(), .server_cpu_s = -1, .server_rss_kib = -1,
                      .server_pss_kib = -1 };
    if (opt.server_pid > 0)
        sb_sample_server(&s);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.gen_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    s.machine_busy_s = sb_machine_busy_s();
    return s;
}

typedef struct {
    const char *name;
    double wall_s, server_cores, gen_cores;
    double other_cores;         /* the machine's busy cores minus server and generator */
    long rss_end_kib, pss_end_kib;
} sb_use_t;

static sb_use_t sb_use(const char *name, sb_sample_t a, sb_sample_t b)
{
    sb_use_t u = { .name = name, .wall_s = (double)(b.t_ns - a.t_ns) / 1e9 };
    u.server_cores = a.server_cpu_s >= 0 && b.server_cpu_s >= 0 && u.wall_s > 0
                         ? (b.server_cpu_s - a.server_cpu_s) / u.wall_s
                         : -1;
    u.gen_cores = u.wall_s > 0 ? (b.gen_cpu_s - a.gen_cpu_s) / u.wall_s : 0;
    u.other_cores = a.machine_busy_s >= 0 && b.machine_busy_s >= 0 && u.wall_s > 0
                        ? (b.machine_busy_s - a.machine_busy_s) / u.wall_s - u.gen_cores -
                              (u.server_cores > 0 ? u.server_cores : 0)
                        : -1;
    if (u.other_cores < 0 && u.other_cores > -0.05)
        u.other_cores = 0;      /* tick rounding */
    u.rss_end_kib = b.server_rss_kib;
    u.pss_end_kib = b.server_pss_kib;
    return u;
}

/* ---- Main thread: phases ---------------------------------------------------------------- */

static void sb_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Publishes a phase and waits until every worker has entered it; returns the steps the
 * workers counted as owed on entry. */
static uint64_t sb_set_phase(int phase)
{
    /* Release: stage times written before are visible to a worker that sees the phase
     * (its acquire load in sb_worker_main). */
    atomic_store_explicit(&g.phase, phase, memory_order_release);
    uint64_t expect = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        sb_worker_t *w = &g.workers[t];
        while (atomic_load_explicit(&w->p_phase, memory_order_acquire) != phase)
            sb_sleep_ms(1);
        expect += atomic_load_explicit(&w->p_expect, memory_order_relaxed);
    }
    return expect;
}

static uint64_t sb_sum_done(void)
{
    uint64_t s = 0;
    for (unsigned t = 0; t < opt.threads; t++)
        s += atomic_load_explicit(&g.workers[t].p_done, memory_order_relaxed);
    return s;
}

static uint64_t sb_sum_messages(void)
{
    uint64_t s = 0;
    for (unsigned t = 0; t < opt.threads; t++)
        s += atomic_load_explicit(&g.workers[t].p_messages, memory_order_relaxed);
    return s;
}

static bool sb_aborted(void)
{
    return atomic_load_explicit(&g.aborted, memory_order_relaxed);
}

/* Waits until the phase's steps are done, or the phase timeout. */
static bool sb_wait_done(uint64_t owed)
{
    uint64_t deadline = clk_monotonic_ns() + (uint64_t)(opt.phase_timeout_s * 1e9);
    while (sb_sum_done() < owed) {
        if (sb_aborted())
            return false;
        if (clk_monotonic_ns() > deadline) {
            fprintf(stderr, "sipbench: phase timeout: %" PRIu64 " of %" PRIu64 " done\n",
                    sb_sum_done(), owed);
            return false;
        }
        sb_sleep_ms(5);
    }
    return true;
}

/* Waits until nothing arrived for opt.quiet_s (or the phase timeout): no NOTIFY, and no
 * retransmission of one either, so that an overloaded stage's tail does not run into
 * the next. Returns when the last message came. */
static uint64_t sb_wait_quiet(void)
{
    uint64_t deadline = clk_monotonic_ns() + (uint64_t)(opt.phase_timeout_s * 1e9);
    uint64_t last = sb_sum_messages(), last_t = clk_monotonic_ns();
    for (;;) {
        sb_sleep_ms(20);
        uint64_t now = clk_monotonic_ns(), v = sb_sum_messages();
        if (v != last) {
            last = v;
            last_t = now;
        } else if (now - last_t >= (uint64_t)(opt.quiet_s * 1e9) || now > deadline ||
                   sb_aborted()) {
            return last_t;
        }
    }
}

/* ---- Report ------------------------------------------------------------------------------ */

typedef struct {
    pb_hist_t rq_lat[RQ_KINDS];
    uint64_t t_first[RQ_KINDS], t_last[RQ_KINDS];
    uint64_t ok[RQ_KINDS], ok_202, prime_ok, timeouts[RQ_KINDS], retransmitted[RQ_KINDS];
    uint64_t stale_responses;
    uint64_t status[RQ_KINDS][700];
    uint64_t errors[SB_ERR_COUNT];
    uint64_t notifies, notify_dups, notify_late, notify_nobody, notify_initial, notify_final,
        notify_whole;
    uint64_t sync_sends, enobufs;
    sb_stage_t stage[SB_STAGES_MAX];
    uint64_t active_subscribed, active_end;
} sb_totals_t;

static sb_totals_t tot;
static sb_use_t use_prime, use_subscribe, use_stage[SB_STAGES_MAX], use_unsubscribe,
    use_unpublish;
static char stage_names[SB_STAGES_MAX][32];
static double subscribe_quiet_s;
static long mem_before_kib, mem_subscribed_kib, mem_idle_kib, rss_before_kib,
    rss_subscribed_kib;
static unsigned server_procs;

static void sb_collect(void)
{
    for (unsigned k = 0; k < RQ_KINDS; k++) {
        pb_hist_init(&tot.rq_lat[k]);
        tot.t_first[k] = UINT64_MAX;
    }
    for (unsigned s = 0; s < opt.n_rates; s++) {
        pb_hist_init(&tot.stage[s].lat);
        pb_hist_init(&tot.stage[s].pub_lat);
    }
    for (unsigned t = 0; t < opt.threads; t++) {
        sb_worker_t *w = &g.workers[t];
        for (unsigned k = 0; k < RQ_KINDS; k++) {
            pb_hist_merge(&tot.rq_lat[k], &w->rq_lat[k]);
            if (w->t_first[k] && w->t_first[k] < tot.t_first[k])
                tot.t_first[k] = w->t_first[k];
            if (w->t_last[k] > tot.t_last[k])
                tot.t_last[k] = w->t_last[k];
            tot.ok[k] += w->ok[k];
            tot.timeouts[k] += w->timeouts[k];
            tot.retransmitted[k] += w->retransmitted[k];
            for (unsigned c = 0; c < 700; c++)
                tot.status[k][c] += w->status[k][c];
        }
        tot.ok_202 += w->ok_202;
        tot.prime_ok += w->prime_ok;
        tot.stale_responses += w->stale_responses;
        for (unsigned e = 0; e < SB_ERR_COUNT; e++)
            tot.errors[e] += w->errors[e];
        tot.notifies += w->notifies;
        tot.notify_dups += w->notify_dups;
        tot.notify_late += w->notify_late;
        tot.notify_nobody += w->notify_nobody;
        tot.notify_whole += w->notify_whole;
        tot.notify_initial += w->notify_initial;
        tot.notify_final += w->notify_final;
        tot.sync_sends += w->sync_sends;
        tot.enobufs += w->enobufs;
        for (unsigned s = 0; s < opt.n_rates; s++) {
            sb_stage_t *a = &tot.stage[s], *b = &w->stage[s];
            pb_hist_merge(&a->lat, &b->lat);
            pb_hist_merge(&a->pub_lat, &b->pub_lat);
            a->slots += b->slots;
            a->publishes += b->publishes;
            a->busy += b->busy;
            a->publish_ok += b->publish_ok;
            a->expected += b->expected;
            a->notifies += b->notifies;
            a->in_window += b->in_window;
            a->lag_sum_ns += b->lag_sum_ns;
            if (b->lag_max_ns > a->lag_max_ns)
                a->lag_max_ns = b->lag_max_ns;
        }
        if (w->first_error[0])
            fprintf(stderr, "sipbench: worker %u first error: %s\n", t, w->first_error);
    }
}

static uint64_t sb_active_now(void)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < opt.presentities; i++)
        n += atomic_load_explicit(&g.active[i], memory_order_relaxed);
    return n;
}

static double sb_span_s(sb_rq_kind_t k)
{
    return tot.t_last[k] > tot.t_first[k] && tot.t_first[k] != UINT64_MAX
               ? (double)(tot.t_last[k] - tot.t_first[k]) / 1e9 : 0;
}

static void sb_print_lat(const char *label, const pb_hist_t *h, double unit, const char *uname)
{
    printf("  %-22s p50 %8.2f  p90 %8.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f %s (n=%" PRIu64
           ")\n",
           label, (double)pb_hist_quantile(h, 0.5) / unit, (double)pb_hist_quantile(h, 0.9) / unit,
           (double)pb_hist_quantile(h, 0.99) / unit, (double)pb_hist_quantile(h, 0.999) / unit,
           (double)h->max_ns / unit, uname, h->count);
}

static void sb_print_use(const sb_use_t *u)
{
    printf("  %-20s %8.2f s  server %5.2f  generator %5.2f  others %5.2f cores  "
           "server RSS %ld KiB, PSS %ld KiB\n",
           u->name, u->wall_s, u->server_cores, u->gen_cores, u->other_cores, u->rss_end_kib,
           u->pss_end_kib);
}

static double sb_stage_delivered_pct(const sb_stage_t *s)
{
    return s->expected ? 100.0 * (double)s->notifies / (double)s->expected : 0;
}

static void sb_report_table(void)
{
    uint64_t subs = (uint64_t)opt.presentities * opt.watchers;
    printf("sipbench %s over %s: %u presentities x %u watchers = %" PRIu64 " subscriptions, "
           "%u threads x %u %s, %u sources\n",
           opt.label, opt.tcp ? "TCP" : "UDP", opt.presentities, opt.watchers, subs,
           opt.threads, opt.sockets, opt.tcp ? "connections" : "sockets", opt.sources);
    printf("prime: %" PRIu64 "/%u published in %.3f s\n", tot.prime_ok, opt.presentities,
           use_prime.wall_s);
    double ss = sb_span_s(RQ_SUBSCRIBE);
    printf("subscribe: %" PRIu64 "/%" PRIu64 " accepted (%" PRIu64 " with 202) in %.3f s: %.0f/s; "
           "%" PRIu64 " active; first NOTIFYs %" PRIu64 ", quiet after %.3f s\n",
           tot.ok[RQ_SUBSCRIBE], subs, tot.ok_202, ss,
           ss > 0 ? (double)tot.ok[RQ_SUBSCRIBE] / ss : 0, tot.active_subscribed,
           tot.notify_initial, subscribe_quiet_s);
    sb_print_lat("SUBSCRIBE to 2xx", &tot.rq_lat[RQ_SUBSCRIBE], 1e6, "ms");
    for (unsigned k = 0; k < opt.n_rates; k++) {
        sb_stage_t *s = &tot.stage[k];
        printf("stage %u: %.0f PUBLISH/s offered: %.0f/s sent (%" PRIu64 " answered 2xx, %" PRIu64
               " not sent: presentity busy); NOTIFYs %.0f/s (%" PRIu64 " of %" PRIu64
               " owed, %.2f%%)\n",
               k + 1, opt.rates[k], (double)s->publishes / opt.duration_s, s->publish_ok,
               s->busy, (double)s->in_window / opt.duration_s, s->notifies, s->expected,
               sb_stage_delivered_pct(s));
        sb_print_lat("publish-to-notify", &s->lat, 1e3, "us");
        sb_print_lat("PUBLISH to 2xx", &s->pub_lat, 1e3, "us");
        printf("  %-22s mean %.1f us  max %.1f us\n", "send lag behind plan",
               s->publishes ? (double)s->lag_sum_ns / (double)s->publishes / 1e3 : 0,
               (double)s->lag_max_ns / 1e3);
    }
    printf("unsubscribe: %" PRIu64 " answered 2xx in %.3f s, %" PRIu64 " final NOTIFYs\n",
           tot.ok[RQ_UNSUBSCRIBE], use_unsubscribe.wall_s, tot.notify_final);
    printf("unpublish: %" PRIu64 " answered 2xx in %.3f s\n", tot.ok[RQ_UNPUBLISH],
           use_unpublish.wall_s);
    printf("NOTIFYs: %" PRIu64 " received, %" PRIu64 " retransmissions by the server (answered "
           "again), %" PRIu64 " out of order, %" PRIu64 " without a body, %" PRIu64
           " read by the full parser\n",
           tot.notifies, tot.notify_dups, tot.notify_late, tot.notify_nobody, tot.notify_whole);
    printf("requests retransmitted by us:");
    for (unsigned k = 0; k < RQ_KINDS; k++)
        printf(" %s=%" PRIu64, sb_rq_names[k], tot.retransmitted[k]);
    printf(" (late responses %" PRIu64 ")\n", tot.stale_responses);
    printf("errors:");
    bool any = false;
    for (unsigned k = 0; k < RQ_KINDS; k++) {
        for (unsigned c = 0; c < 700; c++)
            if (tot.status[k][c]) {
                printf(" %s_%u=%" PRIu64, sb_rq_names[k], c, tot.status[k][c]);
                any = true;
            }
        if (tot.timeouts[k]) {
            printf(" %s_timeout=%" PRIu64, sb_rq_names[k], tot.timeouts[k]);
            any = true;
        }
    }
    for (unsigned e = 0; e < SB_ERR_COUNT; e++)
        if (tot.errors[e]) {
            printf(" %s=%" PRIu64, sb_err_names[e], tot.errors[e]);
            any = true;
        }
    printf("%s (receive buffer shortages %" PRIu64 ", sends without a slot %" PRIu64 ")\n",
           any ? "" : " none", tot.enobufs, tot.sync_sends);
    printf("resources:\n");
    sb_print_use(&use_prime);
    sb_print_use(&use_subscribe);
    for (unsigned k = 0; k < opt.n_rates; k++)
        sb_print_use(&use_stage[k]);
    sb_print_use(&use_unsubscribe);
    sb_print_use(&use_unpublish);
    if (opt.server_pid > 0 && tot.active_subscribed)
        printf("server memory (%u processes): PSS %ld KiB before subscribing, %ld KiB "
               "subscribed: %.0f bytes per active subscription (RSS %ld -> %ld KiB)\n",
               server_procs, mem_before_kib, mem_subscribed_kib,
               (double)(mem_subscribed_kib - mem_before_kib) * 1024.0 /
                   (double)tot.active_subscribed,
               rss_before_kib, rss_subscribed_kib);
    if (opt.server_pid > 0 && tot.active_subscribed && opt.idle_s > 0)
        printf("server memory after %.0f s idle: PSS %ld KiB, %.0f bytes per subscription\n",
               opt.idle_s, mem_idle_kib,
               (double)(mem_idle_kib - mem_before_kib) * 1024.0 / (double)tot.active_subscribed);
}

static void sb_json_lat(FILE *f, const char *name, const pb_hist_t *h)
{
    fprintf(f, "\"%s\":{\"n\":%" PRIu64 ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
               "\"max\":%.1f,\"mean\":%.1f}",
            name, h->count, (double)pb_hist_quantile(h, 0.5) / 1e3,
            (double)pb_hist_quantile(h, 0.9) / 1e3, (double)pb_hist_quantile(h, 0.99) / 1e3,
            (double)pb_hist_quantile(h, 0.999) / 1e3, (double)h->max_ns / 1e3,
            h->count ? (double)h->sum_ns / (double)h->count / 1e3 : 0);
}

static void sb_json_use(FILE *f, const sb_use_t *u)
{
    fprintf(f, "\"wall_s\":%.3f,\"server_cores\":%.3f,\"generator_cores\":%.3f,"
               "\"other_cores\":%.3f,\"server_rss_kib\":%ld,\"server_pss_kib\":%ld",
            u->wall_s, u->server_cores, u->gen_cores, u->other_cores, u->rss_end_kib,
            u->pss_end_kib);
}

static int sb_report_json(void)
{
    FILE *f = fopen(opt.json_path, "w");
    if (!f) {
        fprintf(stderr, "sipbench: %s: %s\n", opt.json_path, strerror(errno));
        return -1;
    }
    struct utsname un;
    uname(&un);
    uint64_t subs = (uint64_t)opt.presentities * opt.watchers;
    fprintf(f, "{\"tool\":\"sipbench\",\"label\":\"%s\",\"transport\":\"%s\",\"commit\":\"%s\","
               "\"kernel\":\"%s\",\"cores\":%ld,",
            opt.label, opt.tcp ? "tcp" : "udp", opt.commit ? opt.commit : "", un.release,
            sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, "\"params\":{\"presentities\":%u,\"watchers\":%u,\"subscriptions\":%" PRIu64
               ",\"threads\":%u,\"sockets\":%u,\"sources\":%u,\"window\":%u,"
               "\"subscribe_rate\":%.0f,\"expires_s\":%u,\"duration_s\":%.3f},",
            opt.presentities, opt.watchers, subs, opt.threads, opt.sockets, opt.sources,
            opt.window, opt.subscribe_rate, opt.expires_s, opt.duration_s);
    fprintf(f, "\"prime\":{\"published\":%" PRIu64 ",", tot.prime_ok);
    sb_json_use(f, &use_prime);
    double ss = sb_span_s(RQ_SUBSCRIBE);
    fprintf(f, "},\"subscribe\":{\"accepted\":%" PRIu64 ",\"accepted_202\":%" PRIu64
               ",\"seconds\":%.6f,\"per_s\":%.1f,\"active\":%" PRIu64
               ",\"first_notifies\":%" PRIu64 ",\"quiet_after_s\":%.3f,",
            tot.ok[RQ_SUBSCRIBE], tot.ok_202, ss, ss > 0 ? (double)tot.ok[RQ_SUBSCRIBE] / ss : 0,
            tot.active_subscribed, tot.notify_initial, subscribe_quiet_s);
    sb_json_lat(f, "latency_us", &tot.rq_lat[RQ_SUBSCRIBE]);
    fputc(',', f);
    sb_json_use(f, &use_subscribe);
    fputs("},\"stages\":[", f);
    for (unsigned k = 0; k < opt.n_rates; k++) {
        sb_stage_t *s = &tot.stage[k];
        fprintf(f, "%s{\"rate\":%.0f,\"publishes\":%" PRIu64 ",\"publishes_per_s\":%.1f,"
                   "\"publish_ok\":%" PRIu64 ",\"busy\":%" PRIu64 ",\"expected\":%" PRIu64
                   ",\"notifies\":%" PRIu64 ",\"notifies_in_window\":%" PRIu64
                   ",\"notifies_per_s\":%.1f,\"delivered_pct\":%.3f,"
                   "\"send_lag_us_mean\":%.1f,\"send_lag_us_max\":%.1f,",
                k ? "," : "", opt.rates[k], s->publishes, (double)s->publishes / opt.duration_s,
                s->publish_ok, s->busy, s->expected, s->notifies, s->in_window,
                (double)s->in_window / opt.duration_s, sb_stage_delivered_pct(s),
                s->publishes ? (double)s->lag_sum_ns / (double)s->publishes / 1e3 : 0,
                (double)s->lag_max_ns / 1e3);
        sb_json_lat(f, "latency_us", &s->lat);
        fputc(',', f);
        sb_json_lat(f, "publish_latency_us", &s->pub_lat);
        fputc(',', f);
        sb_json_use(f, &use_stage[k]);
        fputc('}', f);
    }
    fprintf(f, "],\"unsubscribe\":{\"accepted\":%" PRIu64 ",\"final_notifies\":%" PRIu64 ",",
            tot.ok[RQ_UNSUBSCRIBE], tot.notify_final);
    sb_json_use(f, &use_unsubscribe);
    fprintf(f, "},\"unpublish\":{\"accepted\":%" PRIu64 ",", tot.ok[RQ_UNPUBLISH]);
    sb_json_use(f, &use_unpublish);
    fprintf(f, "},\"notify\":{\"received\":%" PRIu64 ",\"retransmissions_seen\":%" PRIu64
               ",\"out_of_order\":%" PRIu64 ",\"without_body\":%" PRIu64
               ",\"read_whole\":%" PRIu64 "},",
            tot.notifies, tot.notify_dups, tot.notify_late, tot.notify_nobody, tot.notify_whole);
    fputs("\"retransmitted_by_us\":{", f);
    for (unsigned k = 0; k < RQ_KINDS; k++)
        fprintf(f, "%s\"%s\":%" PRIu64, k ? "," : "", sb_rq_names[k], tot.retransmitted[k]);
    fprintf(f, "},\"late_responses\":%" PRIu64 ",\"errors\":{", tot.stale_responses);
    bool first = true;
    for (unsigned k = 0; k < RQ_KINDS; k++) {
        for (unsigned c = 0; c < 700; c++)
            if (tot.status[k][c]) {
                fprintf(f, "%s\"%s_%u\":%" PRIu64, first ? "" : ",", sb_rq_names[k], c,
                        tot.status[k][c]);
                first = false;
            }
        if (tot.timeouts[k]) {
            fprintf(f, "%s\"%s_timeout\":%" PRIu64, first ? "" : ",", sb_rq_names[k],
                    tot.timeouts[k]);
            first = false;
        }
    }
    for (unsigned e = 0; e < SB_ERR_COUNT; e++)
        if (tot.errors[e]) {
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", sb_err_names[e], tot.errors[e]);
            first = false;
        }
    double per = tot.active_subscribed ? 1024.0 / (double)tot.active_subscribed : 0;
    fprintf(f, "},\"receive_buffer_shortages\":%" PRIu64 ",\"sends_without_slot\":%" PRIu64 ","
               "\"server\":{\"pid\":%d,\"processes\":%u,\"pss_before_kib\":%ld,"
               "\"pss_subscribed_kib\":%ld,\"rss_before_kib\":%ld,\"rss_subscribed_kib\":%ld,"
               "\"bytes_per_subscription\":%.1f,\"idle_s\":%.1f,\"pss_idle_kib\":%ld,"
               "\"bytes_per_subscription_idle\":%.1f}}\n",
            tot.enobufs, tot.sync_sends, opt.server_pid, server_procs, mem_before_kib,
            mem_subscribed_kib, rss_before_kib, rss_subscribed_kib,
            (double)(mem_subscribed_kib - mem_before_kib) * per, opt.idle_s, mem_idle_kib,
            opt.idle_s > 0 ? (double)(mem_idle_kib - mem_before_kib) * per : 0);
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- run ------------------------------------------------------------------------------- */

static int sb_setup(void)
{
    if (opt.threads > SB_THREADS_MAX)
        opt.threads = SB_THREADS_MAX;
    if (opt.sockets > SB_SOCKETS_MAX)
        opt.sockets = SB_SOCKETS_MAX;
    if (opt.sources > SB_SOURCES_MAX)
        opt.sources = SB_SOURCES_MAX;
    /* One watcher index in 10 digits and a tag of 20 characters at most. */
    uint64_t subs = (uint64_t)opt.presentities * opt.watchers;
    if (subs > UINT32_MAX / 2 || opt.watchers > UINT16_MAX) {
        fprintf(stderr, "sipbench: too many subscriptions\n");
        return -1;
    }
    g.server.sin_family = AF_INET;
    g.server.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &g.server.sin_addr) != 1) {
        fprintf(stderr, "sipbench: --host must be an IPv4 address\n");
        return -1;
    }
    g.nonce = (uint32_t)(clk_monotonic_ns() ^ ((uint64_t)getpid() << 16));
    g.active = calloc(opt.presentities, sizeof(*g.active));
    g.workers = calloc(opt.threads, sizeof(*g.workers));
    if (!g.active || !g.workers)
        return -1;
    for (unsigned t = 0; t < opt.threads; t++) {
        sb_worker_t *w = &g.workers[t];
        w->id = t;
        w->n_subs = (uint32_t)((subs + opt.threads - 1 - t) / opt.threads);
        w->n_pubs = (opt.presentities + opt.threads - 1 - t) / opt.threads;
        w->subs = calloc(w->n_subs ? w->n_subs : 1, sizeof(*w->subs));
        w->pubs = calloc(w->n_pubs ? w->n_pubs : 1, sizeof(*w->pubs));
        w->slots = malloc((size_t)SB_SLOTS * SB_SLOT_BYTES);
        w->free_slots = malloc(sizeof(uint32_t) * SB_SLOTS);
        if (!w->subs || !w->pubs || !w->slots || !w->free_slots)
            return -1;
        for (uint32_t i = 0; i < SB_SLOTS; i++)
            w->free_slots[i] = SB_SLOTS - 1 - i;
        w->n_free = SB_SLOTS;
        w->window = opt.window / opt.threads ? opt.window / opt.threads : 1;
        w->phase = SB_PH_INIT;
        buf_init(&w->reply);
        for (unsigned k = 0; k < RQ_KINDS; k++)
            pb_hist_init(&w->rq_lat[k]);
        for (unsigned s = 0; s < opt.n_rates; s++) {
            pb_hist_init(&w->stage[s].lat);
            pb_hist_init(&w->stage[s].pub_lat);
        }
        w->n_socks = opt.sockets;
        for (unsigned k = 0; k < w->n_socks; k++) {
            int rc = sb_open_socket(w, k);
            if (rc < 0) {
                fprintf(stderr, "sipbench: socket: %s\n", strerror(-rc));
                return -1;
            }
        }
    }
    for (unsigned k = 0; k < SB_STAGES_MAX; k++)
        atomic_init(&g.stage_t1[k], UINT64_MAX);
    return 0;
}

static int sb_run(void)
{
    if (sb_setup() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    for (unsigned t = 0; t < opt.threads; t++)
        if (pthread_create(&g.workers[t].thread, NULL, sb_worker_main, &g.workers[t]) != 0)
            return 1;
    sb_sleep_ms(50);
    /* Names for the report, which an aborted run prints before every phase ran. */
    use_prime.name = "prime";
    use_subscribe.name = "subscribe";
    use_unsubscribe.name = "unsubscribe";
    use_unpublish.name = "unpublish";
    for (unsigned k = 0; k < opt.n_rates; k++) {
        snprintf(stage_names[k], sizeof(stage_names[k]), "stage %u (%.0f/s)", k + 1,
                 opt.rates[k]);
        use_stage[k].name = stage_names[k];
    }

    sb_sample_t s0 = sb_sample();
    server_procs = s0.server_procs;
    fprintf(stderr, "sipbench: prime: %u presentities publish...\n", opt.presentities);
    sb_wait_done(sb_set_phase(SB_PH_PRIME));
    sb_set_phase(SB_PH_QUIET);
    if (sb_aborted())
        goto end;
    sb_sample_t s1 = sb_sample();
    use_prime = sb_use("prime", s0, s1);
    mem_before_kib = s1.server_pss_kib;
    rss_before_kib = s1.server_rss_kib;

    fprintf(stderr, "sipbench: subscribe: %" PRIu64 " watchers...\n",
            (uint64_t)opt.presentities * opt.watchers);
    sb_wait_done(sb_set_phase(SB_PH_SUBSCRIBE));
    uint64_t last = sb_wait_quiet();
    sb_set_phase(SB_PH_QUIET);
    if (sb_aborted())
        goto end;
    subscribe_quiet_s = (double)(last - s1.t_ns) / 1e9;
    sb_sample_t s2 = sb_sample();
    use_subscribe = sb_use("subscribe", s1, s2);
    tot.active_subscribed = sb_active_now();
    sb_sleep_ms(500);
    sb_sample_t s2b = sb_sample();
    mem_subscribed_kib = s2b.server_pss_kib;
    rss_subscribed_kib = s2b.server_rss_kib;
    fprintf(stderr, "sipbench: %" PRIu64 " active subscriptions\n", tot.active_subscribed);
    /* What the subscriptions hold once the set-up's transactions are gone: a server keeps
     * each SUBSCRIBE's response for Timer J (32 s) and each NOTIFY's transaction a while. */
    if (opt.idle_s > 0) {
        sb_sleep_ms((unsigned)(opt.idle_s * 1000));
        mem_idle_kib = sb_sample().server_pss_kib;
    }
    if (sb_aborted())
        goto end;

    for (unsigned k = 0; k < opt.n_rates; k++) {
        uint64_t t0 = clk_monotonic_ns() + 20000000u;   /* every worker awake by then */
        uint64_t t1 = t0 + (uint64_t)(opt.duration_s * 1e9);
        atomic_store_explicit(&g.stage_t0[k], t0, memory_order_relaxed);
        atomic_store_explicit(&g.stage_t1[k], t1, memory_order_relaxed);
        fprintf(stderr, "sipbench: stage %u: %.0f PUBLISH/s for %.1f s...\n", k + 1,
                opt.rates[k], opt.duration_s);
        sb_set_phase(SB_PH_STAGE + (int)k);
        while (clk_monotonic_ns() < t0)
            sb_sleep_ms(1);
        sb_sample_t a = sb_sample();
        while (clk_monotonic_ns() < t1 && !sb_aborted())
            sb_sleep_ms(5);
        sb_sample_t b = sb_sample();
        use_stage[k] = sb_use(stage_names[k], a, b);
        sb_set_phase(SB_PH_QUIET);
        if (sb_aborted())
            goto end;
        /* Let an overloaded stage's backlog drain before the next one. */
        sb_sleep_ms((unsigned)(opt.settle_s * 1000));
        sb_wait_quiet();
    }

    fprintf(stderr, "sipbench: unsubscribe...\n");
    sb_sample_t s3 = sb_sample();
    sb_wait_done(sb_set_phase(SB_PH_UNSUBSCRIBE));
    sb_wait_quiet();
    sb_set_phase(SB_PH_QUIET);
    if (sb_aborted())
        goto end;
    sb_sample_t s4 = sb_sample();
    use_unsubscribe = sb_use("unsubscribe", s3, s4);
    tot.active_end = sb_active_now();
    fprintf(stderr, "sipbench: unpublish...\n");
    sb_wait_done(sb_set_phase(SB_PH_UNPUBLISH));
    sb_sample_t s5 = sb_sample();
    use_unpublish = sb_use("unpublish", s4, s5);
end:
    sb_set_phase(SB_PH_EXIT);
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(g.workers[t].thread, NULL);

    sb_collect();
    sb_report_table();
    if (opt.json_path && sb_report_json() < 0)
        return 1;
    uint64_t errors = 0;
    for (unsigned k = 0; k < RQ_KINDS; k++) {
        errors += tot.timeouts[k];
        for (unsigned c = 0; c < 700; c++)
            errors += tot.status[k][c];
    }
    for (unsigned e = 0; e < SB_ERR_COUNT; e++)
        errors += tot.errors[e];
    if (sb_aborted()) {
        fprintf(stderr, "sipbench: run ended early: a TCP connection was lost (errors above)\n");
        return 1;
    }
    return errors ? 3 : 0;
}

/* ---- Command line ------------------------------------------------------------------------ */

static void sb_usage(void)
{
    fprintf(stderr,
            "usage: sipbench provision [--presentities N] [--watchers M] [--domain D] "
            "[--password P] [--salt B64] [--iterations I] [--out FILE]\n"
            "       sipbench run --port P [--host A] [--presentities N] [--watchers M]\n"
            "                [--domain D] [--transport udp|tcp] [--threads T] [--sockets S]\n"
            "                [--sources S] [--window W] [--subscribe-rate R] [--expires S]\n"
            "                [--rates R1,R2,...] [--duration S] [--settle S] [--quiet S]\n"
            "                [--timeout S] [--phase-timeout S] [--idle S] [--server-pid PID]\n"
            "                [--wake-batch N] [--wake-usec U]\n"
            "                [--json FILE] [--commit C] [--label NAME]\n"
            "exit: 0 done, 2 usage, 3 done with errors, 1 could not run or lost a TCP "
            "connection\n");
    exit(2);
}

static void sb_parse_rates(const char *s)
{
    opt.n_rates = 0;
    while (*s && opt.n_rates < SB_STAGES_MAX) {
        char *end;
        double r = strtod(s, &end);
        if (end == s || r <= 0)
            sb_usage();
        opt.rates[opt.n_rates++] = r;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            sb_usage();
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        sb_usage();
    bool provision = !strcmp(argv[1], "provision");
    if (!provision && strcmp(argv[1], "run"))
        sb_usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            sb_usage();
        i++;
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = (unsigned)atoi(v);
        else if (!strcmp(a, "--domain")) opt.domain = v;
        else if (!strcmp(a, "--presentities")) opt.presentities = (unsigned)atoi(v);
        else if (!strcmp(a, "--watchers")) opt.watchers = (unsigned)atoi(v);
        else if (!strcmp(a, "--password")) opt.password = v;
        else if (!strcmp(a, "--salt")) opt.salt_b64 = v;
        else if (!strcmp(a, "--iterations")) opt.iterations = (unsigned)atoi(v);
        else if (!strcmp(a, "--transport") && (!strcmp(v, "udp") || !strcmp(v, "tcp")))
            opt.tcp = !strcmp(v, "tcp");
        else if (!strcmp(a, "--threads")) opt.threads = (unsigned)atoi(v);
        else if (!strcmp(a, "--sockets")) opt.sockets = (unsigned)atoi(v);
        else if (!strcmp(a, "--sources")) opt.sources = (unsigned)atoi(v);
        else if (!strcmp(a, "--window")) opt.window = (unsigned)atoi(v);
        else if (!strcmp(a, "--subscribe-rate")) opt.subscribe_rate = atof(v);
        else if (!strcmp(a, "--expires")) opt.expires_s = (unsigned)atoi(v);
        else if (!strcmp(a, "--rates")) sb_parse_rates(v);
        else if (!strcmp(a, "--duration")) opt.duration_s = atof(v);
        else if (!strcmp(a, "--settle")) opt.settle_s = atof(v);
        else if (!strcmp(a, "--quiet")) opt.quiet_s = atof(v);
        else if (!strcmp(a, "--timeout")) opt.timeout_s = atof(v);
        else if (!strcmp(a, "--idle")) opt.idle_s = atof(v);
        else if (!strcmp(a, "--wake-batch")) opt.wake_batch = (unsigned)atoi(v);
        else if (!strcmp(a, "--wake-usec")) opt.wake_usec = (unsigned)atoi(v);
        else if (!strcmp(a, "--phase-timeout")) opt.phase_timeout_s = atof(v);
        else if (!strcmp(a, "--server-pid")) opt.server_pid = atoi(v);
        else if (!strcmp(a, "--json")) opt.json_path = v;
        else if (!strcmp(a, "--commit")) opt.commit = v;
        else if (!strcmp(a, "--label")) opt.label = v;
        else if (!strcmp(a, "--out")) opt.out_path = v;
        else sb_usage();
    }
    if (!opt.presentities || !opt.watchers || !opt.threads || !opt.sockets || !opt.sources ||
        !opt.window || opt.duration_s <= 0 || (!provision && !opt.port))
        sb_usage();
    return provision ? sb_provision() : sb_run();
}
