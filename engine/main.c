/*
 * main.c - the presenced daemon: flags, configuration, signals.
 *
 * Without --config the node runs on the embedded default configuration
 * (cfg_defaults): RocksDB under ./data, admin endpoint on 127.0.0.1:8084.
 * Flags override the file. Signals are taken synchronously on the main thread
 * (blocked everywhere, sigwaitinfo here), so no handler runs on a shard.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/log.h"
#include "engine/node.h"
#include "engine/tls.h"
#include "protocols/http/http_admin.h"
#include "protocols/sip/sip_digest.h"
#include "protocols/sip/sip_service.h"
#include "protocols/xmpp/xmpp_c2s.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: presenced [options]\n"
            "  -c, --config FILE      configuration file (default: embedded defaults)\n"
            "  -s, --shards N         shard threads (0 = one per core)\n"
            "  -d, --data-dir DIR     storage directory\n"
            "  -l, --log-level LEVEL  error, warn, info or debug\n"
            "      --print-config     print the effective configuration and exit\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             this text\n"
            "Signals: TERM/INT stop cleanly, HUP reloads the log level from the file.\n");
}

typedef struct {
    const char *config_path;
    const char *shards;
    const char *data_dir;
    const char *log_level;
    bool print_config;
} main_flags_t;

/* The first enabled listener not bound to a loopback address, or NULL. */
static const char *main_non_loopback(const cfg_t *cfg)
{
    const cfg_addr_t *addrs[] = { &cfg->admin_listen, &cfg->xmpp_listen, &cfg->xmpp_tls_listen,
                                  &cfg->sip_listen,   &cfg->sip_tls_listen, &cfg->pws_listen,
                                  &cfg->pws_tls_listen };
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        const cfg_addr_t *a = addrs[i];
        if (!a->addr_len)
            continue;
        if (a->addr.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&a->addr;
            if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
                continue;
        } else if (a->addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->addr;
            if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                continue;
        }
        return a->text;
    }
    return NULL;
}

/* SIP on UDP and TCP at [sip] listen (one port for both), TLS at tls_listen. */
static int main_tls(const cfg_t *cfg, tls_ctx_t **out, char *err, size_t err_len);

/* jemalloc reads this at start: freed pages go back to the kernel within a
 * second, from a background thread, so the node's RSS follows what it holds
 * rather than its peak (a login storm's parser contexts are transient). Other
 * allocators ignore it. */
extern const char *malloc_conf;
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000";

static int main_sip(node_t *node, const cfg_t *cfg, tls_ctx_t **tls, char *err, size_t err_len)
{
    if (!cfg->sip_listen.text[0] && !cfg->sip_tls_listen.text[0])
        return 0;
    /* Peers reach us at the listening address, or by the domain when we
     * listen on every address. */
    static char via_host[sizeof(cfg->domain) + INET6_ADDRSTRLEN + 2];
    const cfg_addr_t *la = cfg->sip_listen.addr_len ? &cfg->sip_listen : &cfg->sip_tls_listen;
    unsigned port = 0, tls_port = 0;
    snprintf(via_host, sizeof(via_host), "%s", cfg->domain);
    if (la->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&la->addr;
        if (in->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &in->sin_addr, via_host, sizeof(via_host));
    } else if (la->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&la->addr;
        if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            via_host[0] = '[';
            inet_ntop(AF_INET6, &in6->sin6_addr, via_host + 1, sizeof(via_host) - 2);
            strcat(via_host, "]");
        }
    }
    if (cfg->sip_listen.addr_len)
        port = ntohs(((const struct sockaddr_in *)&cfg->sip_listen.addr)->sin_port);
    if (cfg->sip_tls_listen.addr_len)
        tls_port = ntohs(((const struct sockaddr_in *)&cfg->sip_tls_listen.addr)->sin_port);
    sip_service_config_t sc = {
        .domain = cfg->domain,
        .via_host = via_host,
        .port = port,
        .tls_port = tls_port,
        .auth = strcmp(cfg->sip_auth, "off") != 0,
        .min_expires_s = cfg->sip_min_expires_s,
        .max_expires_s = cfg->sip_max_expires_s,
        .default_expires_s = cfg->sip_default_expires_s,
        .max_unanswered = cfg->sip_max_unanswered,
        .metrics = node_metrics(node),
    };
    sc.digest_algs = (uint8_t)((strstr(cfg->sip_digest, "sha256")
                                    ? SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256) : 0) |
                               (strstr(cfg->sip_digest, "md5")
                                    ? SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5) : 0));
    sc.udp_listener = -1;
    if (cfg->gw_call_control.addr_len) {
        memcpy(&sc.gw_call_control, &cfg->gw_call_control.addr, cfg->gw_call_control.addr_len);
        sc.gw_call_control_len = cfg->gw_call_control.addr_len;
    }
    sc.gw_presence = !strcmp(cfg->gw_event, "presence");
    sc.gw_expires_s = cfg->gw_expires_s;
    sc.gw_retry_s = cfg->gw_retry_s;
    if (sip_trusted_parse(cfg->sip_trusted, &sc) < 0) {
        snprintf(err, err_len, "[sip] trusted: '%s' is not a list of at most %d IP addresses",
                 cfg->sip_trusted, SIP_TRUSTED_MAX);
        return -1;
    }
    if (cfg->sip_listen.text[0])
        sc.udp_listener = (int)node_listener_count(node) + 1;   /* after its TCP twin */
    sip_service_configure(&sc);
    if (cfg->sip_listen.text[0]) {
        int tcp = (int)node_listener_count(node);
        if (node_add_listener(node, &cfg->sip_listen, &sip_tcp_proto, NULL, err, err_len) < 0 ||
            node_add_dgram_listener(node, &cfg->sip_listen, &sip_udp_proto, tcp, err,
                                    err_len) < 0)
            return -1;
    }
    if (cfg->sip_tls_listen.text[0]) {
        if (!*tls && main_tls(cfg, tls, err, err_len) < 0)
            return -1;
        if (node_add_listener(node, &cfg->sip_tls_listen, &sip_tcp_proto, *tls, err, err_len) < 0)
            return -1;
    }
    return 0;
}

static int main_load_config(const main_flags_t *f, cfg_t *cfg)
{
    char err[512];

    cfg_defaults(cfg);
    if (f->config_path && cfg_load_file(cfg, f->config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "presenced: %s\n", err);
        return -1;
    }
    if ((f->shards && cfg_set(cfg, "node", "shards", f->shards, err, sizeof(err)) < 0) ||
        (f->data_dir && cfg_set(cfg, "node", "data_dir", f->data_dir, err, sizeof(err)) < 0) ||
        (f->log_level && cfg_set(cfg, "node", "log_level", f->log_level, err, sizeof(err)) < 0)) {
        fprintf(stderr, "presenced: command line: %s\n", err);
        return -1;
    }
    return 0;
}

/* SIGHUP: re-read the file for the log level; a flag given at start wins. */
static void main_reload(const main_flags_t *f)
{
    cfg_t cfg;
    char err[512];
    log_level_t level;

    if (f->log_level) {
        LOG_INFO("SIGHUP: log level fixed by --log-level at %s", f->log_level);
        return;
    }
    cfg_defaults(&cfg);
    if (f->config_path && cfg_load_file(&cfg, f->config_path, err, sizeof(err)) < 0) {
        LOG_ERROR("SIGHUP: keeping the current settings: %s", err);
        return;
    }
    if (log_level_parse(cfg.log_level, &level) == 0) {
        log_set_level(level);
        LOG_WARN("SIGHUP: log level is now %s", cfg.log_level);
    }
}

/* The node's certificate: configured files, or a self-signed pair for the
 * domain generated in the data dir on first start. */
static int main_tls(const cfg_t *cfg, tls_ctx_t **out, char *err, size_t err_len)
{
    char cert[4200], key[4200];
    if (cfg->tls_cert_file[0]) {
        snprintf(cert, sizeof(cert), "%s", cfg->tls_cert_file);
        snprintf(key, sizeof(key), "%s", cfg->tls_key_file[0] ? cfg->tls_key_file
                                                                : cfg->tls_cert_file);
    } else {
        snprintf(cert, sizeof(cert), "%s/tls.crt", cfg->data_dir);
        snprintf(key, sizeof(key), "%s/tls.key", cfg->data_dir);
        if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
            int rc = tls_generate_self_signed(cert, key, cfg->domain, err, err_len);
            if (rc < 0)
                return rc;
            LOG_WARN("generated a self-signed certificate for %s in %s (set [tls] cert_file "
                     "for a real one)", cfg->domain, cert);
        }
    }
    return tls_ctx_create_server(cert, key, out, err, err_len);
}

/* The secret behind SCRAM's answers for unknown users: random once, then
 * kept in storage so the answers stay the same across restarts. */
static int main_scram_key(node_t *node, uint8_t key[32])
{
    static const char name[] = "xmpp.scram-fake-salt-key";
    stor_t *st = node_storage(node);
    void *val = NULL;
    size_t len = 0;
    if (stor_get(st, STOR_CF_META, name, sizeof(name) - 1, &val, &len) == 0 && len == 32) {
        memcpy(key, val, 32);
        free(val);
        return 0;
    }
    free(val);
    FILE *r = fopen("/dev/urandom", "rb");
    if (!r || fread(key, 1, 32, r) != 32) {
        if (r)
            fclose(r);
        return -EIO;
    }
    fclose(r);
    stor_batch_t *b = stor_batch_create(st);
    stor_batch_put(b, STOR_CF_META, name, sizeof(name) - 1, key, 32);
    int rc = stor_batch_commit(st, b);
    stor_batch_destroy(b);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "shards", required_argument, NULL, 's' },
        { "data-dir", required_argument, NULL, 'd' },
        { "log-level", required_argument, NULL, 'l' },
        { "print-config", no_argument, NULL, 'P' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    main_flags_t flags = { 0 };
    int opt;

    while ((opt = getopt_long(argc, argv, "c:s:d:l:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': flags.config_path = optarg; break;
        case 's': flags.shards = optarg; break;
        case 'd': flags.data_dir = optarg; break;
        case 'l': flags.log_level = optarg; break;
        case 'P': flags.print_config = true; break;
        case 'V': printf("presenced %s\n", NODE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "presenced: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    cfg_t *cfg = malloc(sizeof(*cfg));
    if (!cfg || main_load_config(&flags, cfg) < 0)
        return 1;
    if (cfg->xmpp_test_auth && !flags.print_config) {
        const char *open_addr = main_non_loopback(cfg);
        if (open_addr) {
            fprintf(stderr, "presenced: [xmpp] test_auth = true accepts any password, so every "
                            "listener must be on loopback; %s is not\n", open_addr);
            return 1;
        }
    }
    if (flags.print_config) {
        char *out = malloc(1 << 16);
        int n = out ? cfg_format(cfg, out, 1 << 16) : -ENOMEM;
        if (n < 0)
            return 1;
        fwrite(out, 1, (size_t)n, stdout);
        free(out);
        free(cfg);
        return 0;
    }
    log_level_t level;
    if (log_level_parse(cfg->log_level, &level) == 0)
        log_set_level(level);
    if (cfg->xmpp_test_auth)
        LOG_WARN("[xmpp] test_auth is on: any password logs in and unknown accounts are "
                 "created; for interop test suites only");

    /* Block the signals we take synchronously before any thread exists, so
     * every shard inherits the mask. SIGPIPE stays blocked: sends use
     * MSG_NOSIGNAL and errors come back as -EPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char err[512];
    node_t *node;
    if (node_create(cfg, &node, err, sizeof(err)) < 0) {
        fprintf(stderr, "presenced: %s\n", err);
        return 1;
    }
    bool admin = cfg->admin_listen.text[0] != 0;
    bool xmpp = cfg->xmpp_listen.text[0] || cfg->xmpp_tls_listen.text[0];
    tls_ctx_t *tls = NULL;
    if (xmpp) {
        xmpp_c2s_config_t xc = {
            .domain = cfg->domain,
            .require_tls = cfg->xmpp_require_tls,
            .plain_without_tls = cfg->xmpp_plain_without_tls,
            .max_stanza_bytes = cfg->xmpp_max_stanza_bytes,
            .registration = cfg->xmpp_registration,
            .resume_timeout_s = cfg->xmpp_resume_timeout_s,
            .test_auth = cfg->xmpp_test_auth,
            .metrics = node_metrics(node),
        };
        if (main_tls(cfg, &tls, err, sizeof(err)) < 0 || main_scram_key(node, xc.fake_salt_key) < 0) {
            fprintf(stderr, "presenced: %s\n", err[0] ? err : "cannot set up XMPP");
            node_destroy(node);
            return 1;
        }
        xc.tls = tls;
        xmpp_c2s_configure(&xc);
    }
    if ((admin && node_add_listener(node, &cfg->admin_listen, &http_admin_proto, NULL, err,
                                    sizeof(err)) < 0) ||
        (cfg->xmpp_listen.text[0] &&
         node_add_listener(node, &cfg->xmpp_listen, &xmpp_c2s_proto, NULL, err, sizeof(err)) < 0) ||
        (cfg->xmpp_tls_listen.text[0] &&
         node_add_listener(node, &cfg->xmpp_tls_listen, &xmpp_c2s_proto, tls, err,
                           sizeof(err)) < 0) ||
        main_sip(node, cfg, &tls, err, sizeof(err)) < 0 ||
        node_start(node, err, sizeof(err)) < 0) {
        fprintf(stderr, "presenced: %s\n", err);
        node_destroy(node);
        return 1;
    }
    if (admin)
        LOG_INFO("presenced %s ready: %u shards, data in %s, admin on %s (port %u)",
                 NODE_VERSION, node_shards(node), cfg->data_dir, cfg->admin_listen.text,
                 node_listener_port(node, 0));
    else
        LOG_INFO("presenced %s ready: %u shards, data in %s, no admin endpoint", NODE_VERSION,
                 node_shards(node), cfg->data_dir);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig == SIGHUP) {
            main_reload(&flags);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            LOG_INFO("%s: stopping (drain deadline %u ms)", strsignal(sig),
                     cfg->drain_timeout_ms);
            break;
        }
    }
    bool clean = node_stop(node);
    node_destroy(node);
    tls_ctx_destroy(tls);
    LOG_INFO("stopped%s", clean ? "" : " (some shards missed the drain deadline)");
    free(cfg);
    return clean ? 0 : 1;
}
