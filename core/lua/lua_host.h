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
void lua_host_stats(lua_host_t *h, lua_host_stats_t *out);

/* Compiles and runs name's top level in a scratch sandbox (kith.on is
 * checked, nothing registers). 0, or KITH_EINVAL with "name:line: message"
 * (and KITH_ELIMIT for budgets). Any thread. */
int lua_check(const char *name, const char *src, size_t len, const lua_limits_t *lim);

/* Whether name is a script name: [a-z0-9_-], 1..LUA_SCRIPT_NAME_MAX. */
int lua_script_name_ok(const char *name);

#endif
