/*
 * lua: the Lua 5.4 host — sandboxed states with memory and time budgets, the
 * `kith` API, and admin scripts as bus handlers.
 *
 * One host per workspace, living on that workspace's writer thread: scripts
 * are loaded (lua_host_load) and handlers run there, inside the write
 * transaction. lua_check runs on any thread, in a throw-away state.
 */
#ifndef KITH_LUA_HOST_H
#define KITH_LUA_HOST_H

#include "bus/bus.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

#define LUA_SCRIPT_NAME_MAX 64
#define LUA_SCRIPT_MAX      (256u * 1024) /* bytes of source */

typedef struct lua_limits {
    size_t mem_state; /* bytes a state may hold; 0 = 64 MiB */
    size_t mem_call;  /* bytes one handler call may add; 0 = 16 MiB */
    uint32_t time_ms; /* instruction deadline per handler or load; 0 = 50 */
} lua_limits_t;

typedef struct lua_script {
    const char *name;
    const char *source;
    size_t len;
} lua_script_t;

typedef struct lua_host lua_host_t;

typedef struct lua_host_stats {
    uint64_t calls, errors, timeouts, oom;
} lua_host_stats_t;

lua_host_t *lua_host_new(bus_t *bus, const char *workspace, const lua_limits_t *lim);
void lua_host_free(lua_host_t *h);

/* Replaces every loaded script with scripts[0..n) (in that order) in a fresh
 * state; a script that fails to load is logged and left out (its timers
 * stay). In w (may be NULL: no timers are touched): the recurring timers
 * each script declares at its top level (kith.every) are put, kept if
 * unchanged, removed when no longer declared, and every timer of a script
 * not in the list is removed. Writer thread (a custom op). */
int lua_host_load(lua_host_t *h, store_wtxn_t *w, const lua_script_t *scripts, size_t n);
/* lua_host_load with the workspace's current scripts: the newest version of
 * each name in `_scripts`, tombstones left out, in name order. Writer thread
 * (a custom op with system set). */
int lua_host_load_stored(lua_host_t *h, store_wtxn_t *w);
void lua_host_stats(lua_host_t *h, lua_host_stats_t *out);

/* Compiles and runs name's top level in a scratch sandbox (kith.on is
 * checked, nothing registers). 0, or KITH_EINVAL with "name:line: message"
 * (and KITH_ELIMIT for budgets). Any thread. */
int lua_check(const char *name, const char *src, size_t len, const lua_limits_t *lim);

/* Whether name is a script name: [a-z0-9_-], 1..LUA_SCRIPT_NAME_MAX. */
int lua_script_name_ok(const char *name);

/* ---- Kith's shipped Lua (lua_shipped.c) ------------------------------------
 * scripts/<name>.lua are rules an admin may enable in a workspace (they then
 * become that workspace's script <name>); scripts/lib/<a>/<b>.lua is module
 * "a.b", which require() serves to every script. */

/* The directory of the shipped Lua: the one lua_scripts_dir_set gave, else
 * <dir of the executable>/../share/kith/scripts if it is a directory (an
 * installed kith), else the source tree's scripts/ (KITH_SOURCE_SCRIPTS_DIR).
 * Never NULL; the string lives as long as the process. Any thread. */
const char *lua_scripts_dir(void);
/* Replaces the directory (the `scripts_dir` key of kith.json; NULL or ""
 * restores the default). Call before other threads read it: at startup. */
void lua_scripts_dir_set(const char *dir);

/* Reads <lua_scripts_dir()>/<rel>: a regular file whose real path is inside
 * that directory, of at most LUA_SCRIPT_MAX bytes. Returns its text,
 * NUL-terminated (the caller frees), and its length in *len; or NULL with
 * KITH_ENOTFOUND (missing, not a regular file, outside the directory),
 * KITH_ELIMIT (too large) or KITH_EIO. Any thread. */
char *lua_shipped_read(const char *rel, size_t *len);

/* A module's file relative to lua_scripts_dir(): "a.b" -> "lib/a/b.lua".
 * Module names are dot-separated segments of [a-z0-9_], at most
 * LUA_SCRIPT_NAME_MAX bytes in all. 0, or KITH_EINVAL if name is not one. */
int lua_module_path(const char *name, char *out, size_t cap);

typedef struct lua_shipped {
    char name[LUA_SCRIPT_NAME_MAX + 1]; /* a script name, or a module name */
    char description[512];              /* the header comment's first paragraph */
    char sha256[65];                    /* of the source, lower-case hex */
    size_t len;                         /* of the source */
} lua_shipped_t;

/* Fills info from a source: name as given, description and sha256. */
void lua_shipped_describe(const char *name, const char *src, size_t len, lua_shipped_t *info);

/* The shipped rules (modules = 0: scripts/<name>.lua with a script name) or
 * modules (modules = 1: scripts/lib, subfolders as dotted names), sorted by
 * name, into *out (the caller frees; NULL when there are none). Returns how
 * many (a missing directory: none). Files that cannot be read are left out.
 * Any thread. */
int lua_shipped_list(int modules, lua_shipped_t **out);

#endif
