/*
 * lua/lua_int: what the lua module's files share.
 */
#ifndef KITH_LUA_INT_H
#define KITH_LUA_INT_H

#include "lua/lua_host.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

/* One sandboxed state. Its address sits in the state's extra space, so the
 * allocator, the hook and the bindings find it from any coroutine. */
typedef struct lsb {
    lua_State *L;
    lua_limits_t lim;
    size_t used;       /* bytes allocated now */
    size_t cap;        /* the allocator's ceiling now (state or call budget) */
    uint64_t deadline; /* monotonic ns; 0 = none */
    int timed_out, oom;           /* in the running call */
    int call_timed_out, call_oom; /* how the last lsb_call ended */
    lua_host_t *host;   /* NULL in a scratch state */
    const char *script; /* the script running now (load or handler) */
    int checking;       /* lua_check: kith.on validates and registers nothing */
} lsb_t;

lsb_t *lsb_new(const lua_limits_t *lim);
void lsb_free(lsb_t *s);
lsb_t *lsb_of(lua_State *L);

/* Loads text chunk src as script name with its own environment (globals
 * visible through a frozen proxy) and runs its top level under the budgets.
 * 0, or a KITH_E* code with err_set ("name:line: message"). */
int lsb_run_script(lsb_t *s, const char *name, const char *src, size_t len);
/* Calls the function at the top of the stack with nargs arguments (below
 * it), under the budgets, leaving nres results. 0 or a KITH_E* code with the
 * message in err (KITH_EHANDLER; KITH_ELIMIT for a budget). */
int lsb_call(lsb_t *s, int nargs, int nres);

/* Replaces the table at idx with a read-only proxy (recursively for table
 * values). Leaves the proxy on the top. */
void lsb_push_frozen(lua_State *L, int idx);

/* JSON <-> Lua (lua_json.c). null is kith.json.null (a light userdata). */
void lj_push(lua_State *L, const json_t *v);
/* The value at idx as JSON (new reference), or NULL with a message pushed
 * via luaL_error semantics left to the caller: *why is set. */
json_t *lj_to_json(lua_State *L, int idx, const char **why);
void lj_push_null(lua_State *L);
int lj_is_null(lua_State *L, int idx);
/* kith.json = {encode, decode, null} onto the table at the top. */
void lj_open(lua_State *L);

/* The kith table (lua_kith.c), pushed unfrozen. */
void lk_push_kith(lua_State *L);

#endif
