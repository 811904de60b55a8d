/*
 * node.c - see node.h.
 */
#include "engine/node.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/shard_int.h"
#include "engine/uring.h"

enum { NS_INIT, NS_STARTED, NS_RUNNING, NS_FAILED, NS_STOPPED };

typedef struct {
    node_t *node;
    unsigned id;
    pthread_t thread;
    bool thread_started;
    int cpu;                        /* -1: not pinned */
    int listen_fds[SHARD_LISTENERS_MAX];
    uring_shard_t *u;
    shard_t *sh;
    _Atomic int state;
    char err[256];
} node_shard_t;

typedef struct {
    cfg_addr_t addr;
    const conn_proto_t *proto;
    tls_ctx_t *tls;
    const dgram_proto_t *dgram;     /* a datagram listener (proto NULL) */
    int port_from;                  /* -1, or the listener whose port 0 choice it shares */
    unsigned port;
} node_listener_t;

struct node {
    cfg_t cfg;
    stor_t *stor;
    metrics_t *metrics;
    mbox_hub_t *hub;
    unsigned n_shards;
    node_shard_t *shards;
    int *ring_fds;
    uint32_t files_per_shard;
    node_listener_t listeners[SHARD_LISTENERS_MAX];
    unsigned n_listeners;
    uring_waker_t *waker;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool go;                        /* under lock: all shards may enter their loop */
    bool abort_start;               /* under lock: a shard failed; others exit */
    _Atomic bool stopping;
    _Atomic bool storage_open;
    double start_time_s;
};

static uint64_t node_clock_now(void *ctx)
{
    (void)ctx;
    return clk_monotonic_ns();
}

static const clk_ops_t clk_monotonic_ops = { .now_ns = node_clock_now };
const clk_t clk_monotonic = { &clk_monotonic_ops, NULL };

/* --- metrics sampled at scrape time --- */

static double node_sample_shards(void *ctx, unsigned shard)
{
    (void)shard;
    return ((node_t *)ctx)->n_shards;
}

static double node_sample_ready(void *ctx, unsigned shard)
{
    (void)shard;
    return node_ready(ctx) ? 1 : 0;
}

static double node_sample_storage(void *ctx, unsigned shard)
{
    (void)shard;
    return node_storage_open(ctx) ? 1 : 0;
}

static double node_sample_start(void *ctx, unsigned shard)
{
    (void)shard;
    return ((node_t *)ctx)->start_time_s;
}

static double node_sample_depth(void *ctx, unsigned shard)
{
    return (double)mbox_depth(mbox_hub_ep(((node_t *)ctx)->hub, shard));
}

static double node_sample_backlog(void *ctx, unsigned shard)
{
    return (double)mbox_backlog(mbox_hub_ep(((node_t *)ctx)->hub, shard));
}

static double node_sample_mbox(node_t *n, unsigned shard, size_t field)
{
    mbox_counters_t c;
    mbox_counters(mbox_hub_ep(n->hub, shard), &c);
    return (double)*(const uint64_t *)((const char *)&c + field);
}

static double node_sample_sent(void *ctx, unsigned shard)
{
    return node_sample_mbox(ctx, shard, offsetof(mbox_counters_t, sent));
}

static double node_sample_received(void *ctx, unsigned shard)
{
    return node_sample_mbox(ctx, shard, offsetof(mbox_counters_t, received));
}

static double node_sample_wakeups(void *ctx, unsigned shard)
{
    return node_sample_mbox(ctx, shard, offsetof(mbox_counters_t, wakeups));
}

static double node_sample_refused(void *ctx, unsigned shard)
{
    return node_sample_mbox(ctx, shard, offsetof(mbox_counters_t, refused));
}

static void node_register_metrics(node_t *n)
{
    metrics_t *m = n->metrics;
    metrics_register_sampled(m, "shards", "Shard threads in this node.", METRIC_GAUGE, false,
                             node_sample_shards, n);
    metrics_register_sampled(m, "ready", "1 when storage is open and every shard runs.",
                             METRIC_GAUGE, false, node_sample_ready, n);
    metrics_register_sampled(m, "storage_open", "1 while the node's storage is open.",
                             METRIC_GAUGE, false, node_sample_storage, n);
    metrics_register_sampled(m, "start_time_seconds", "Start time, seconds since the epoch.",
                             METRIC_GAUGE, false, node_sample_start, n);
    shard_metrics_register(m);
    metrics_register_sampled(m, "mailbox_sent_total", "Mailbox messages sent by the shard.",
                             METRIC_COUNTER, true, node_sample_sent, n);
    metrics_register_sampled(m, "mailbox_received_total",
                             "Mailbox messages received by the shard.", METRIC_COUNTER, true,
                             node_sample_received, n);
    metrics_register_sampled(m, "mailbox_wakeups_total",
                             "Sleeping shards this shard woke after posting to them.",
                             METRIC_COUNTER, true, node_sample_wakeups, n);
    metrics_register_sampled(m, "mailbox_refused_total",
                             "Mailbox sends refused because ring and backlog were full.",
                             METRIC_COUNTER, true, node_sample_refused, n);
    metrics_register_sampled(m, "mailbox_depth",
                             "Messages published to the shard and not yet drained.",
                             METRIC_GAUGE, true, node_sample_depth, n);
    metrics_register_sampled(m, "mailbox_backlog",
                             "Messages the shard holds back because a peer's ring is full.",
                             METRIC_GAUGE, true, node_sample_backlog, n);
}

/* --- creation --- */

static unsigned node_online_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The n-th CPU this process may run on, for pinning shard n. */
static int node_cpu_for(unsigned shard)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) == 0)
        return -1;
    unsigned want = shard % (unsigned)CPU_COUNT(&set);
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set) && (unsigned)seen++ == want)
            return cpu;
    }
    return -1;
}

int node_create(const cfg_t *cfg, node_t **out, char *err, size_t err_len)
{
    stor_sync_t sync;
    node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->cfg = *cfg;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    n->n_shards = cfg->shards ? cfg->shards : node_online_cpus();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    n->start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;

    int rc = stor_sync_parse(cfg->storage_sync, &sync);
    if (rc < 0) {
        snprintf(err, err_len, "bad storage sync policy '%s'", cfg->storage_sync);
        goto fail;
    }
    rc = stor_open_rocksdb(cfg->data_dir, sync, &n->stor, err, err_len);
    if (rc < 0)
        goto fail;
    atomic_store(&n->storage_open, true);

    n->metrics = metrics_create(n->n_shards);
    /* One endpoint per shard plus the main thread's, which only sends. */
    n->hub = mbox_hub_create(n->n_shards + 1, cfg->mailbox_ring_slots);
    n->shards = calloc(n->n_shards, sizeof(*n->shards));
    n->ring_fds = calloc(n->n_shards, sizeof(*n->ring_fds));
    if (!n->metrics || !n->hub || !n->shards || !n->ring_fds) {
        rc = -ENOMEM;
        snprintf(err, err_len, "out of memory creating %u shards", n->n_shards);
        goto fail;
    }
    node_register_metrics(n);
    rc = uring_waker_create(&n->waker);
    if (rc < 0) {
        snprintf(err, err_len, "io_uring is not available: %s", strerror(-rc));
        goto fail;
    }
    *out = n;
    return 0;
fail:
    node_destroy(n);
    return rc;
}

int node_add_listener(node_t *n, const cfg_addr_t *addr, const conn_proto_t *proto,
                      tls_ctx_t *tls, char *err, size_t err_len)
{
    if (n->n_listeners == SHARD_LISTENERS_MAX) {
        snprintf(err, err_len, "too many listeners (at most %d)", SHARD_LISTENERS_MAX);
        return -ENOSPC;
    }
    node_listener_t *l = &n->listeners[n->n_listeners++];
    l->addr = *addr;
    l->proto = proto;
    l->tls = tls;
    l->port_from = -1;
    return 0;
}

int node_add_dgram_listener(node_t *n, const cfg_addr_t *addr, const dgram_proto_t *proto,
                            int port_from, char *err, size_t err_len)
{
    if (n->n_listeners == SHARD_LISTENERS_MAX) {
        snprintf(err, err_len, "too many listeners (at most %d)", SHARD_LISTENERS_MAX);
        return -ENOSPC;
    }
    ASSERT(port_from < (int)n->n_listeners);
    node_listener_t *l = &n->listeners[n->n_listeners++];
    l->addr = *addr;
    l->dgram = proto;
    l->port_from = port_from;
    return 0;
}

static uint32_t node_dgram_mask(const node_t *n)
{
    uint32_t mask = 0;
    for (unsigned i = 0; i < n->n_listeners; i++)
        if (n->listeners[i].dgram)
            mask |= 1u << i;
    return mask;
}

/* --- listening sockets --- */

static unsigned node_addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void node_addr_set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static int node_listen(node_t *n, node_listener_t *l, unsigned backlog, char *err,
                       size_t err_len)
{
    int one = 1;
    if (l->port_from >= 0 && node_addr_port(&l->addr.addr) == 0)
        node_addr_set_port(&l->addr.addr, n->listeners[l->port_from].port);
    int fd = socket(l->addr.addr.ss_family, (l->dgram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
        snprintf(err, err_len, "socket for %s: %s", l->addr.text, strerror(errno));
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Output is coalesced per connection and sent once per loop turn, so
     * Nagle only adds delay (up to the peer's delayed ACK, 40 ms) to the
     * next turn's send. Accepted sockets inherit it from the listener. */
    if (!l->dgram)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A datagram socket's queue is all that absorbs a burst between two
     * turns (a PUBLISH storm's 200s to NOTIFYs): ask for 4 MiB, past
     * net.core.rmem_max when we may (CAP_NET_ADMIN), else what it allows. */
    int rcvbuf = 4 << 20;
    if (l->dgram && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    /* A protocol falling behind needs to know: each datagram says when the kernel queued
     * it, and how many its socket has dropped so far for want of room. */
    if (l->dgram) {
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    }
    /* One listening socket per shard on the same address: the kernel spreads
     * new connections across them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&l->addr.addr, l->addr.addr_len) < 0 ||
        (!l->dgram && listen(fd, (int)backlog) < 0)) {
        int e = errno;
        snprintf(err, err_len, "cannot listen on %s: %s", l->addr.text, strerror(e));
        close(fd);
        return -e;
    }
    if (node_addr_port(&l->addr.addr) == 0) {
        /* Port 0: the first shard's socket chose one; the others join it. */
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &len);
        node_addr_set_port(&l->addr.addr, node_addr_port(&ss));
    }
    l->port = node_addr_port(&l->addr.addr);
    return fd;
}

/* --- shard threads --- */

static void node_shard_fail(node_shard_t *ns)
{
    node_t *n = ns->node;
    pthread_mutex_lock(&n->lock);
    atomic_store(&ns->state, NS_FAILED);
    n->abort_start = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static void *node_shard_main(void *arg)
{
    node_shard_t *ns = arg;
    node_t *n = ns->node;
    char tag[32];

    snprintf(tag, sizeof(tag), "shard %u", ns->id);
    log_set_thread_tag(tag);
    if (ns->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(ns->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    uring_shard_config_t ucfg = {
        .shard_id = ns->id,
        .listen_fds = ns->listen_fds,
        .n_listeners = n->n_listeners,
        .dgram_mask = node_dgram_mask(n),
        .max_files = n->files_per_shard,
        .recv_buffers = n->cfg.recv_buffers_per_shard,
        .recv_buffer_bytes = n->cfg.recv_buffer_bytes,
        .ring_fds = n->ring_fds,
    };
    int rc = uring_shard_create(&ucfg, &ns->u, ns->err, sizeof(ns->err));
    if (rc < 0) {
        node_shard_fail(ns);
        return NULL;
    }
    shard_config_t scfg = {
        .id = ns->id,
        .count = n->n_shards,
        .node = n,
        .mbox = mbox_hub_ep(n->hub, ns->id),
        .metrics = metrics_shard(n->metrics, ns->id),
        .clock = clk_monotonic,
        .io_ops = &uring_io_ops,
        .io = ns->u,
        .idle_timeout_ms = n->cfg.idle_timeout_s * 1000u,
        .output_max_bytes = n->cfg.output_queue_max_bytes,
        .drain_timeout_ms = n->cfg.drain_timeout_ms,
        .max_connections = n->files_per_shard,
        .stor = n->stor,
        .n_listeners = n->n_listeners,
    };
    for (unsigned i = 0; i < n->n_listeners; i++) {
        scfg.listeners[i].proto = n->listeners[i].proto;
        scfg.listeners[i].tls = n->listeners[i].tls;
        scfg.listeners[i].dgram = n->listeners[i].dgram;
    }
    ns->sh = shard_create(&scfg);
    if (!ns->sh) {
        snprintf(ns->err, sizeof(ns->err), "out of memory creating the shard");
        node_shard_fail(ns);
        return NULL;
    }
    pthread_mutex_lock(&n->lock);
    n->ring_fds[ns->id] = uring_shard_ring_fd(ns->u);
    atomic_store(&ns->state, NS_STARTED);
    pthread_cond_broadcast(&n->cond);
    while (!n->go && !n->abort_start)
        pthread_cond_wait(&n->cond, &n->lock);
    bool go = n->go;
    pthread_mutex_unlock(&n->lock);
    if (!go)
        return NULL;

    LOG_DEBUG("running on cpu %d: %s", ns->cpu, uring_shard_features(ns->u));
    uring_shard_attach(ns->u, ns->sh);
    shard_run_start_hooks(ns->sh);
    atomic_store(&ns->state, NS_RUNNING);
    uring_shard_run(ns->u);
    atomic_store(&ns->state, NS_STOPPED);
    return NULL;
}

static uint32_t node_files_per_shard(const cfg_t *cfg)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        /* The kernel caps each ring's descriptor table at the soft limit. */
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t files = rl.rlim_cur;
    if (files > (1u << 20))
        files = 1u << 20;           /* IORING_MAX_FIXED_FILES */
    if (cfg->max_connections_per_shard && cfg->max_connections_per_shard < files)
        files = cfg->max_connections_per_shard;
    return (uint32_t)files;
}

int node_start(node_t *n, char *err, size_t err_len)
{
    int rc = 0;

    n->files_per_shard = node_files_per_shard(&n->cfg);
    for (unsigned s = 0; s < n->n_shards; s++) {
        node_shard_t *ns = &n->shards[s];
        ns->node = n;
        ns->id = s;
        ns->cpu = n->cfg.pin_shards ? node_cpu_for(s) : -1;
        for (unsigned i = 0; i < n->n_listeners; i++) {
            int fd = node_listen(n, &n->listeners[i], n->cfg.listen_backlog, err, err_len);
            if (fd < 0) {
                for (unsigned j = 0; j < i; j++)
                    close(ns->listen_fds[j]);
                for (unsigned t = 0; t < s; t++)
                    for (unsigned j = 0; j < n->n_listeners; j++)
                        close(n->shards[t].listen_fds[j]);
                return fd;
            }
            ns->listen_fds[i] = fd;
        }
    }
    for (unsigned s = 0; s < n->n_shards; s++) {
        node_shard_t *ns = &n->shards[s];
        rc = pthread_create(&ns->thread, NULL, node_shard_main, ns);
        if (rc != 0) {
            snprintf(err, err_len, "starting shard %u: %s", s, strerror(rc));
            pthread_mutex_lock(&n->lock);
            n->abort_start = true;
            pthread_cond_broadcast(&n->cond);
            pthread_mutex_unlock(&n->lock);
            rc = -rc;
            break;
        }
        ns->thread_started = true;
    }
    /* Wait until every shard has its ring (so every ring fd is known) or one failed. */
    pthread_mutex_lock(&n->lock);
    for (;;) {
        unsigned started = 0;
        for (unsigned s = 0; s < n->n_shards; s++)
            started += atomic_load(&n->shards[s].state) == NS_STARTED;
        if (n->abort_start || started == n->n_shards)
            break;
        pthread_cond_wait(&n->cond, &n->lock);
    }
    if (!n->abort_start)
        n->go = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (!n->go) {
        for (unsigned s = 0; s < n->n_shards; s++) {
            node_shard_t *ns = &n->shards[s];
            if (rc == 0 && atomic_load(&ns->state) == NS_FAILED) {
                snprintf(err, err_len, "shard %u: %s", s, ns->err);
                rc = -EIO;
            }
        }
        for (unsigned s = 0; s < n->n_shards; s++) {
            if (n->shards[s].thread_started) {
                pthread_join(n->shards[s].thread, NULL);
                n->shards[s].thread_started = false;
            }
        }
        return rc ? rc : -EIO;
    }
    /* Ready when every shard entered its loop. */
    for (unsigned tries = 0; tries < 5000; tries++) {
        unsigned running = 0;
        for (unsigned s = 0; s < n->n_shards; s++)
            running += atomic_load(&n->shards[s].state) == NS_RUNNING;
        if (running == n->n_shards)
            break;
        usleep(1000);
    }
    return 0;
}

bool node_stop(node_t *n)
{
    atomic_store(&n->stopping, true);
    for (unsigned s = 0; s < n->n_shards; s++) {
        node_shard_t *ns = &n->shards[s];
        if (ns->sh && ns->thread_started) {
            shard_request_stop(ns->sh);
            uring_waker_wake(n->waker, n->ring_fds[s]);
        }
    }
    /* Shards close their connections by the drain deadline; give them that
     * plus a margin before calling the stop failed. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    uint64_t ns_total = (uint64_t)deadline.tv_nsec + (uint64_t)(n->cfg.drain_timeout_ms + 2000) *
                                                        1000000u;
    deadline.tv_sec += (time_t)(ns_total / 1000000000u);
    deadline.tv_nsec = (long)(ns_total % 1000000000u);
    bool clean = true;
    for (unsigned s = 0; s < n->n_shards; s++) {
        node_shard_t *ns = &n->shards[s];
        if (!ns->thread_started)
            continue;
        if (pthread_timedjoin_np(ns->thread, NULL, &deadline) != 0) {
            LOG_ERROR("shard %u did not stop within the drain deadline", s);
            clean = false;
            continue;
        }
        ns->thread_started = false;
    }
    return clean;
}

void node_destroy(node_t *n)
{
    if (!n)
        return;
    if (n->shards) {
        for (unsigned s = 0; s < n->n_shards; s++) {
            node_shard_t *ns = &n->shards[s];
            if (ns->thread_started)
                continue;   /* still running: leak rather than free under it */
            shard_destroy(ns->sh);
            uring_shard_destroy(ns->u);
        }
    }
    if (n->stor) {
        atomic_store(&n->storage_open, false);
        stor_close(n->stor);
    }
    uring_waker_destroy(n->waker);
    mbox_hub_destroy(n->hub);
    metrics_destroy(n->metrics);
    free(n->shards);
    free(n->ring_fds);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
}

bool node_storage_open(const node_t *n)
{
    return atomic_load(&n->storage_open);
}

bool node_ready(const node_t *n)
{
    if (!node_storage_open(n) || atomic_load(&n->stopping) || !n->go)
        return false;
    for (unsigned s = 0; s < n->n_shards; s++)
        if (atomic_load(&n->shards[s].state) != NS_RUNNING)
            return false;
    return true;
}

unsigned node_shards(const node_t *n) { return n->n_shards; }
metrics_t *node_metrics(node_t *n) { return n->metrics; }
const cfg_t *node_config(const node_t *n) { return &n->cfg; }
stor_t *node_storage(node_t *n) { return n->stor; }

unsigned node_listener_count(const node_t *n)
{
    return n->n_listeners;
}

unsigned node_listener_port(const node_t *n, unsigned listener)
{
    ASSERT(listener < n->n_listeners);
    return n->listeners[listener].port;
}

static void node_wake(void *ctx, unsigned dst)
{
    node_t *n = ctx;
    uring_waker_wake(n->waker, n->ring_fds[dst]);
}

int node_call(node_t *n, unsigned dst, mbox_fn fn, const mbox_msg_t *args)
{
    mbox_ep_t *ep = mbox_hub_ep(n->hub, n->n_shards);
    mbox_msg_t m = args ? *args : (mbox_msg_t){ 0 };
    m.kind = MBOX_CALL;
    m.fn = fn;
    int rc = mbox_send(ep, dst, &m);
    mbox_flush(ep, node_wake, n);
    return rc;
}
