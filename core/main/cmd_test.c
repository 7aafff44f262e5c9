/*
 * `kith test`: admin-written Lua tests (describe/it/expect) against a
 * throw-away copy of a workspace, so rules can be tried before they are
 * deployed.
 *
 * The copy is made as `kith backup` makes one (store_backup: compacting,
 * from one read snapshot of the original opened read-only, so it works
 * beside a running server, and the original is never written), into
 * $TMPDIR/kith-testcopy-XXXXXX. It is opened with a writer, a bus, the
 * scheduler's tick and a Lua host with the workspace's current scripts (as
 * a server opens a workspace), and removed afterwards whatever happens: on
 * an error, and on SIGINT, SIGTERM or SIGHUP too. Every file is read and
 * compiled before the copy is made; the runner is core/lua/lua_test.c.
 */
#include "main/cli.h"

#include "auth/auth.h"
#include "base/mem.h"
#include "bus/bus.h"
#include "config/config.h"
#include "lua/lua_host.h"
#include "lua/lua_test.h"
#include "plugin/plugin.h"
#include "sched/sched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_FILE_MAX (16u << 20)

typedef struct copy {
    char dir[4096]; /* "" until made */
    store_t *st;
    bus_t *bus;
    lua_host_t *lua;
    plugin_set_t *plugins; /* the configured plugins, as the server loads them */
} copy_t;

/* ---- removal on a signal ------------------------------------------------------ */

/* The copy's files, for the handler: unlink and rmdir are async-signal-safe,
 * and an LMDB environment is these two files. */
static char sig_paths[3][4200];
static volatile sig_atomic_t sig_armed;

static void on_signal(int sig)
{
    if (sig_armed) {
        unlink(sig_paths[0]);
        unlink(sig_paths[1]);
        rmdir(sig_paths[2]);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void signals_arm(const char *dir)
{
    snprintf(sig_paths[0], sizeof sig_paths[0], "%s/data.mdb", dir);
    snprintf(sig_paths[1], sizeof sig_paths[1], "%s/lock.mdb", dir);
    snprintf(sig_paths[2], sizeof sig_paths[2], "%s", dir);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sig_armed = 1;
}

/* ---- the copy ------------------------------------------------------------------- */

static int load_op(store_wtxn_t *w, store_op_t *op)
{
    return lua_host_load_stored(op->udata, w);
}

/* The scheduler fires due timers at the start of every delivery, as in a
 * server (api_scripts.c). */
static int sched_tick(void *ctx, store_wtxn_t *w, int64_t now_us, int64_t *wake_us)
{
    (void)ctx;
    return sched_fire(w, now_us, wake_us);
}

static int copy_make(copy_t *c, store_t *orig)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/kith-testcopy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->dir)) {
        int e = errno;
        int rc = err_set(err_from_errno(e), "%s: %s", c->dir, strerror(e));
        c->dir[0] = '\0';
        return rc;
    }
    signals_arm(c->dir);
    return store_backup(orig, c->dir);
}

static int copy_open(copy_t *c, const char *data, const char *ws)
{
    config_t cfg;
    if (config_load(&cfg, data)) return err_last()->code;
    if (cfg.scripts_dir[0]) lua_scripts_dir_set(cfg.scripts_dir);
    auth_dir_t *d;
    int rc = auth_dir_open(data, AUTH_DIR_READ, &d);
    if (rc) return rc;
    store_t *orig = NULL;
    if (!auth_workspace_exists(d, ws))
        rc = err_set(KITH_ENOTFOUND, "no workspace '%s' in %s (kith workspace list)", ws, data);
    else
        rc = auth_workspace_open(d, ws, &orig);
    if (rc == 0) {
        rc = copy_make(c, orig);
        store_close(orig);
    }
    auth_dir_close(d);
    if (rc) return rc;
    store_opts_t o = {0};
    if ((rc = store_open(&c->st, c->dir, &o))) return rc;
    c->bus = bus_new(c->st, ws);
    /* the plugins' hooks and collections, as a server opens the workspace
     * (a refused plugin is logged and left out there too) */
    if (!(c->plugins = plugin_load_all(data))) return err_last()->code;
    plugin_set_testing(c->plugins);
    api_ext_t ext = plugin_api_ext(c->plugins);
    if (ext.ws_open(ext.ctx, ws, c->st, c->bus)) return err_wrap("plugins");
    c->lua = lua_host_new(c->bus, ws, NULL);
    bus_set_tick(c->bus, sched_tick, NULL);
    bus_attach(c->bus);
    store_op_t *op = store_op_custom(load_op, c->lua);
    op->system = 1;
    rc = store_exec(c->st, op);
    store_op_free(op);
    if (rc) return err_wrap("loading the scripts");
    store_hooks_kick(c->st); /* what the original had not delivered yet, and due timers */
    return 0;
}

static void copy_close(copy_t *c)
{
    if (c->st) store_close(c->st); /* no handler runs any more */
    lua_host_free(c->lua);
    bus_free(c->bus);
    plugin_set_free(c->plugins); /* after the bus: its hooks are gone */
    if (c->dir[0]) cli_rmtree(c->dir);
    sig_armed = 0;
}

/* ---- the command ---------------------------------------------------------------- */

/* The file's bytes (free()), or NULL with err set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err_from_errno(errno), "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *p = xmalloc(cap);
    size_t got;
    while ((got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > TEST_FILE_MAX) break;
        if (n == cap) p = xrealloc(p, cap *= 2);
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad || n > TEST_FILE_MAX) {
        if (bad)
            err_set(err_from_errno(e), "%s: %s", path, strerror(e));
        else
            err_set(KITH_ELIMIT, "%s: a test file is at most %u MiB", path, TEST_FILE_MAX >> 20);
        free(p);
        return NULL;
    }
    *len = n;
    return p;
}

int cmd_test(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA | CLI_ALLOW_WORKSPACE, 1, CLI_POS_MAX, &o);
    if (rc >= 0) return rc;
    const char *ws = o.workspace ? o.workspace : "default";
    char *src[CLI_POS_MAX] = {0};
    size_t len[CLI_POS_MAX] = {0};
    rc = CLI_OK;
    /* a file that cannot be read or compiled stops everything before anything runs */
    for (int i = 0; i < o.npos && rc == CLI_OK; i++)
        if (!(src[i] = read_file(o.pos[i], &len[i])) ||
            lua_test_check(o.pos[i], src[i], len[i]) != 0)
            rc = cli_fail_err(cmd, NULL);
    copy_t c = {0};
    if (rc == CLI_OK && copy_open(&c, o.data, ws) != 0) rc = cli_fail_err(cmd, NULL);
    if (rc == CLI_OK) {
        lua_test_env_t env = {.st = c.st, .bus = c.bus, .out = stdout};
        lua_test_settle(&env);
        for (int i = 0; i < o.npos && rc == CLI_OK; i++)
            if (lua_test_run(&env, o.pos[i], src[i], len[i]) != 0) rc = cli_fail_err(cmd, o.pos[i]);
        if (rc == CLI_OK) {
            printf("%u passed, %u failed\n", env.passed, env.failed);
            rc = env.failed ? CLI_PROBLEM : CLI_OK;
        }
        fflush(stdout);
    }
    copy_close(&c);
    for (int i = 0; i < o.npos; i++)
        free(src[i]);
    return rc;
}
