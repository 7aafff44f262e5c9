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
    size_t used;                  /* bytes allocated now */
    size_t cap;                   /* the allocator's ceiling now (state or call budget) */
    uint64_t deadline;            /* monotonic ns; 0 = none */
    int timed_out, oom;           /* in the running call */
    int call_timed_out, call_oom; /* how the last lsb_call ended */
    lua_host_t *host;             /* NULL in a scratch state */
    const char *script;           /* the script running now (load or handler) */
    int checking;                 /* lua_check: kith.on validates and registers nothing */
    /* a test state (kith test, lua_test.c): its store and report, else NULL */
    struct lua_test_env *test;
} lsb_t;

lsb_t *lsb_new(const lua_limits_t *lim);
void lsb_free(lsb_t *s);
lsb_t *lsb_of(lua_State *L);

/* Loads text chunk src as script name with its own environment (globals
 * visible through a frozen proxy) and runs its top level under the budgets.
 * 0, or a KITH_E* code with err_set ("name:line: message"). */
int lsb_run_script(lsb_t *s, const char *name, const char *src, size_t len);
/* Pushes a new globals table for a chunk of its own: reads fall through to
 * the frozen sandbox globals. */
void lsb_push_globals(lua_State *L);
/* Compiles text chunk src (binary chunks are refused), named chunk ("=name"
 * or "@path"), with the table at env as its globals (0: a new
 * lsb_push_globals table). 0 with the function pushed, or nothing pushed and
 * KITH_EINVAL (the compiler's "name:line: message" in err) or KITH_ELIMIT
 * (out of memory). */
int lsb_load(lua_State *L, const char *chunk, const char *src, size_t len, int env);
/* Calls the function at the top of the stack with nargs arguments (below
 * it), under the budgets, leaving nres results. 0 or a KITH_E* code with the
 * message in err (KITH_EHANDLER; KITH_ELIMIT for a budget). */
int lsb_call(lsb_t *s, int nargs, int nres);

/* Pushes a read-only proxy of the table at idx (which must no longer be
 * used directly): its table values, at any depth, are replaced in place by
 * their own proxies (one per table, so shared sub-tables and cycles are
 * fine; keys are left as they are; deeper than 64 levels raises). A proxy
 * given is pushed as it is. */
void lsb_push_frozen(lua_State *L, int idx);

/* JSON <-> Lua (lua_json.c). null is kith.json.null (a light userdata). */
void lj_push(lua_State *L, const json_t *v);
/* The value at idx as JSON (new reference), or NULL with a message pushed
 * via luaL_error semantics left to the caller: *why is set. */
json_t *lj_to_json(lua_State *L, int idx, const char **why);
void lj_push_null(lua_State *L);
/* Pushes the value of JSON text s directly (no jansson values in between);
 * -1 with nothing pushed if s is not strict JSON, or has a number jansson
 * would refuse (then parse it with json_parse for the message). */
int lj_push_text(lua_State *L, const char *s, size_t n);
/* Makes rec (an object) equal to the plain table at idx, touching only the
 * fields that differ (kith.json.null or nil: no field); *changed = 1 if any
 * did. 0, or -1 with *why (then rec may be partly updated). */
int lj_merge_object(lua_State *L, int idx, json_t *rec, int *changed, const char **why);
int lj_is_null(lua_State *L, int idx);
/* kith.json = {encode, decode, null} onto the table at the top. */
void lj_open(lua_State *L);

/* The kith table (lua_kith.c), pushed unfrozen. */
void lk_push_kith(lua_State *L);

/* Test level (lua_test.c), for kith.entity, kith.emit and kith.log in a test
 * state: a write or an event is its own committed op on the test's store and
 * returns once the after-hooks caught up (the wait is not charged to the
 * running call's time budget); returns op->status / the code, with err set. */
int lt_write(lsb_t *s, store_op_t *op);
int lt_emit(lsb_t *s, const char *name, const char *payload, size_t len);
/* A kith.log line of a test, into the report. */
void lt_log(lsb_t *s, int level, const char *msg, size_t len);

#endif
