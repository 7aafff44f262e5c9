/*
 * `kith serve`: the network listener.
 *
 * One I/O loop per thread, each with its own SO_REUSEPORT socket; loop 0 runs
 * on the main thread and also handles signals:
 *   SIGHUP   reload the TLS certificate; a bad one is refused (logged) and the
 *            old one kept; open connections keep the context they began with
 *   SIGTERM  drain: stop accepting, finish requests in flight (and their
 *   SIGINT   commits), close idle connections, then exit 0
 */
#include "main/cli.h"

#include "api/api.h"
#include "base/log.h"
#include "base/mem.h"
#include "config/config.h"
#include "http/http_int.h"
#include "plugin/plugin.h"
#include "tls/tls_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOOPS_MAX 64

typedef struct server {
    config_t cfg;
    plugin_set_t *plugins;
    api_server_t *api;
    http_server_t http;
    http_loop_t *loops[LOOPS_MAX];
    int nloops;
    uv_thread_t threads[LOOPS_MAX];
    tls_ctx_t *tls;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uint64_t drain_started;
    atomic_int draining;
} server_t;

typedef struct loop_task_tls {
    loop_task_t task;
    http_loop_t *loop;
    tls_ctx_t *ctx;
} loop_task_tls_t;

typedef struct loop_task_simple {
    loop_task_t task;
    http_loop_t *loop;
} loop_task_simple_t;

static void task_swap_tls(loop_task_t *t)
{
    loop_task_tls_t *x = (loop_task_tls_t *)t;
    tls_ctx_t *old = x->loop->net.tr_ctx;
    x->loop->net.tr_ctx = x->ctx; /* the reference moves to the loop */
    tls_ctx_unref(old);
    free(x);
}

static void task_drain(loop_task_t *t)
{
    loop_task_simple_t *x = (loop_task_simple_t *)t;
    net_loop_stop_listening(&x->loop->net);
    http_loop_drain(&x->loop->net);
    free(x);
}

static void task_close(loop_task_t *t)
{
    loop_task_simple_t *x = (loop_task_simple_t *)t;
    http_loop_t *l = x->loop;
    free(x);
    api_loop_detach(&l->net);
    net_loop_close(&l->net);
}

static void post(http_loop_t *l, void (*fn)(loop_task_t *))
{
    loop_task_simple_t *x = xcalloc(1, sizeof *x);
    x->task.fn = fn;
    x->loop = l;
    loop_inbox_push(&l->net.inbox, &x->task);
}

static void on_hup(uv_signal_t *h, int sig)
{
    (void)sig;
    server_t *s = h->data;
    if (s->cfg.plain) return;
    tls_ctx_t *t;
    if (tls_ctx_new(s->cfg.tls_cert, s->cfg.tls_key, &t) != 0) {
        log_error("tls", "certificate reload refused, keeping the current one: %s",
                  err_last()->msg);
        return;
    }
    char desc[256];
    tls_ctx_describe(t, desc, sizeof desc);
    for (int i = 0; i < s->nloops; i++) {
        loop_task_tls_t *x = xcalloc(1, sizeof *x);
        x->task.fn = task_swap_tls;
        x->loop = s->loops[i];
        tls_ctx_ref(t);
        x->ctx = t;
        loop_inbox_push(&s->loops[i]->net.inbox, &x->task);
    }
    tls_ctx_unref(s->tls);
    s->tls = t;
    log_info("tls", "certificate reloaded: %s", desc);
}

static int loops_idle(server_t *s)
{
    for (int i = 0; i < s->nloops; i++) {
        http_loop_t *l = s->loops[i];
        /* read without the loop's lock: a stale value only delays the check */
        if (__atomic_load_n(&l->busy, __ATOMIC_RELAXED) ||
            __atomic_load_n(&l->nconns, __ATOMIC_RELAXED))
            return 0;
    }
    return 1;
}

static void on_drain_tick(uv_timer_t *t)
{
    server_t *s = t->data;
    uint64_t waited = uv_now(t->loop) - s->drain_started;
    if (!loops_idle(s) && waited < s->cfg.drain_timeout_ms) return;
    if (!loops_idle(s))
        log_warn("http", "drain timeout after %llu ms: closing the remaining connections",
                 (unsigned long long)waited);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    for (int i = 0; i < s->nloops; i++)
        post(s->loops[i], task_close);
}

static void on_term(uv_signal_t *h, int sig)
{
    server_t *s = h->data;
    if (atomic_exchange(&s->draining, 1)) {
        log_warn("http", "second signal: closing now");
        s->cfg.drain_timeout_ms = 0;
        return;
    }
    log_info("http", "%s: draining (no new connections; finishing requests in flight)",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    for (int i = 0; i < s->nloops; i++)
        post(s->loops[i], task_drain);
    s->drain_started = uv_now(h->loop);
    uv_timer_init(h->loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_timer_start(&s->drain_timer, on_drain_tick, 20, 20);
}

static void loop_main(void *arg)
{
    http_loop_t *l = arg;
    uv_run(&l->net.loop, UV_RUN_DEFAULT);
}

static int lock_data_dir(const char *data, int *fd_out)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/kith.lock", data);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return err_set(err_from_errno(errno), "%s: %s", p, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        close(fd);
        char *nl = strchr(pid, '\n');
        if (nl) *nl = '\0';
        return err_set(KITH_ELOCKED, "%s: locked by another kith server%s%s%s", data,
                       pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
    }
    *fd_out = fd;
    return 0;
}

static int serve_fail(const cli_cmd_t *cmd, server_t *s, int lockfd, const char *what)
{
    int out = what ? cli_fail_err(cmd, what) : cli_fail_err(cmd, NULL);
    config_release(&s->cfg);
    if (s->api) api_server_free(s->api);
    plugin_set_free(s->plugins);
    if (s->tls) tls_ctx_unref(s->tls);
    if (lockfd >= 0) close(lockfd);
    free(s);
    return out;
}

int cmd_serve(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA | CLI_ALLOW_SERVE, 0, 0, &o);
    if (rc >= 0) return rc;
    if (log_get_level() == LOG_WARN && !getenv("KITH_LOG")) log_set_level(LOG_INFO);
    log_async_start();
    server_t *s = xcalloc(1, sizeof *s);
    int lockfd = -1;
    if (config_load(&s->cfg, o.data) != 0) return serve_fail(cmd, s, lockfd, NULL);
    if (o.listen && config_set_listen(&s->cfg, o.listen) != 0)
        return serve_fail(cmd, s, lockfd, NULL);
    if (o.threads) {
        char *end;
        long t = strtol(o.threads, &end, 10);
        if (*end || t < 1 || t > LOOPS_MAX) {
            config_release(&s->cfg);
            free(s);
            return cli_fail(cmd, "--threads: a number from 1 to %d", LOOPS_MAX);
        }
        s->cfg.threads = (int)t;
    }
    s->cfg.plain = o.plain;
    if (s->cfg.plain && !config_host_is_loopback(s->cfg.listen_host)) {
        rc = cli_fail(cmd,
                      "--plain serves unencrypted HTTP and is allowed only on loopback "
                      "addresses (127.0.0.0/8, ::1), not %s",
                      s->cfg.listen_host);
        config_release(&s->cfg);
        free(s);
        return rc;
    }
    if (lock_data_dir(o.data, &lockfd) != 0) return serve_fail(cmd, s, lockfd, NULL);
    if (!s->cfg.plain && tls_ctx_new(s->cfg.tls_cert, s->cfg.tls_key, &s->tls) != 0)
        return serve_fail(cmd, s, lockfd, "TLS");
    /* a refused plugin is logged and left out; the server starts without it */
    s->plugins = plugin_load_all(&s->cfg);
    config_release(&s->cfg); /* the plugins section is needed no longer */
    api_ext_t ext = plugin_api_ext(s->plugins);
    if (api_server_new(&s->cfg, &ext, &s->api) != 0) return serve_fail(cmd, s, lockfd, NULL);
    size_t nroutes;
    const http_route_t *routes = api_server_routes(s->api, &nroutes);
    http_hooks_t hooks = api_hooks(s->api);
    http_server_init(&s->http, &s->cfg, routes, nroutes, &hooks);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s->nloops = s->cfg.threads ? s->cfg.threads : (int)(cores > 0 ? cores : 1);
    if (s->nloops > LOOPS_MAX) s->nloops = LOOPS_MAX;
    size_t per_loop = (s->cfg.max_connections + (size_t)s->nloops - 1) / (size_t)s->nloops;
    int port = s->cfg.listen_port;
    for (int i = 0; i < s->nloops; i++) {
        http_loop_t *l = xcalloc(1, sizeof *l);
        l->srv = &s->http;
        rc = net_loop_init(&l->net, i, s->cfg.listen_host, port,
                           s->cfg.plain ? &net_transport_plain : &tls_transport, &s->http.app,
                           &s->http, per_loop);
        if (rc) {
            free(l);
            /* loops already made have only their own handles; exit cleans up */
            return serve_fail(cmd, s, lockfd, "listen");
        }
        if (port == 0) port = net_loop_port(&l->net); /* the others share the chosen port */
        if (s->tls) {
            tls_ctx_ref(s->tls);
            l->net.tr_ctx = s->tls;
        }
        api_loop_attach(s->api, &l->net);
        s->loops[i] = l;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *main_loop = &s->loops[0]->net.loop;
    uv_signal_init(main_loop, &s->sig_term);
    uv_signal_init(main_loop, &s->sig_int);
    uv_signal_init(main_loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, on_term, SIGTERM);
    uv_signal_start(&s->sig_int, on_term, SIGINT);
    uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
    char desc[256] = "";
    if (s->tls) tls_ctx_describe(s->tls, desc, sizeof desc);
    int v6 = strchr(s->cfg.listen_host, ':') != NULL;
    printf("kith: listening on %s://%s%s%s:%d (%d I/O thread%s)%s%s\n",
           s->cfg.plain ? "http" : "https", v6 ? "[" : "", s->cfg.listen_host, v6 ? "]" : "", port,
           s->nloops, s->nloops == 1 ? "" : "s", desc[0] ? "; certificate: " : "", desc);
    fflush(stdout);
    log_info("http", "serving %s on %s:%d with %d loop(s)", o.data, s->cfg.listen_host, port,
             s->nloops);
    for (int i = 1; i < s->nloops; i++)
        uv_thread_create(&s->threads[i], loop_main, s->loops[i]);
    uv_run(main_loop, UV_RUN_DEFAULT);
    for (int i = 1; i < s->nloops; i++)
        uv_thread_join(&s->threads[i]);
    for (int i = 0; i < s->nloops; i++) {
        uv_run(&s->loops[i]->net.loop, UV_RUN_DEFAULT); /* close callbacks */
        if (s->loops[i]->net.tr_ctx) tls_ctx_unref(s->loops[i]->net.tr_ctx);
        uv_loop_close(&s->loops[i]->net.loop);
        buf_free(&s->loops[i]->scratch);
        free(s->loops[i]);
    }
    /* the stores' writers finish what is queued; every acknowledged write is
     * committed already */
    api_server_free(s->api);
    plugin_set_free(s->plugins); /* after the stores: no hook runs any more */
    tls_ctx_unref(s->tls);
    close(lockfd);
    free(s);
    log_info("http", "stopped");
    log_async_stop();
    return CLI_OK;
}
