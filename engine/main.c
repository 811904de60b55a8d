/*
 * main.c - the presenced daemon: flags, configuration, signals.
 *
 * Without --config the node runs on the embedded default configuration
 * (cfg_defaults): RocksDB under ./data, admin endpoint on 127.0.0.1:8084.
 * Flags override the file. Signals are taken synchronously on the main thread
 * (blocked everywhere, sigwaitinfo here), so no handler runs on a shard.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "engine/log.h"
#include "engine/node.h"
#include "protocols/http/http_admin.h"

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
    if ((admin && node_add_listener(node, &cfg->admin_listen, &http_admin_proto, NULL, err,
                                    sizeof(err)) < 0) ||
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
    LOG_INFO("stopped%s", clean ? "" : " (some shards missed the drain deadline)");
    free(cfg);
    return clean ? 0 : 1;
}
