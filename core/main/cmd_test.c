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
#include "base/file.h"
#include "base/mem.h"
#include "config/config.h"
#include "lua/lua_host.h"
#include "lua/lua_test.h"
#include "plugin/plugin.h"

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
    config_t cfg;
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
    config_t *cfg = &c->cfg;
    if (config_load(cfg, data)) return err_last()->code;
    if (cfg->scripts_dir[0]) lua_scripts_dir_set(cfg->scripts_dir);
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
    /* opened as a server opens a workspace: the configured plugins (a refused
     * one is logged and left out there too), the scripts, due timers and
     * what the original had not delivered yet */
    c->plugins = plugin_load_all(cfg);
    plugin_set_testing(c->plugins);
    api_ext_t ext = plugin_api_ext(c->plugins);
    err_diag_t ext_err;
    rc = api_ws_runtime_open(ws, c->st, &ext, &c->bus, &c->lua, &ext_err);
    if (ext_err.code) {
        err_restore(&ext_err);
        return err_wrap("plugins");
    }
    if (rc) return err_wrap("loading the scripts");
    return 0;
}

static void copy_close(copy_t *c)
{
    if (c->st) store_close(c->st); /* no handler runs any more */
    api_ws_runtime_close(c->bus, c->lua);
    plugin_set_free(c->plugins); /* after the bus: its hooks are gone */
    config_release(&c->cfg);
    if (c->dir[0]) cli_rmtree(c->dir);
    sig_armed = 0;
}

/* ---- the command ---------------------------------------------------------------- */

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
        if (!(src[i] = file_read(o.pos[i], TEST_FILE_MAX, &len[i])) ||
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
