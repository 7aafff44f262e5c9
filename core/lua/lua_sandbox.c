/*
 * lua_sandbox: a Lua state an admin's script cannot escape or exhaust.
 *
 *  - Libraries: base, string, table, math, utf8 and coroutine only, opened one
 *    by one (never luaL_openlibs: Debian's shared liblua would bring package,
 *    the CVE-2022-0543 hole). Removed: load, loadfile, dofile, string.dump,
 *    rawset, collectgarbage, print. Text chunks only. require is Kith's own:
 *    it serves only the modules of the shipped scripts/lib (no package
 *    library, no search path), frozen and cached per state.
 *  - Every library, kith and the string metatable are frozen: scripts see
 *    read-only proxies (__metatable = false, __pairs that hides the table).
 *  - Memory: a capped allocator, per state and per call.
 *  - Time: a count hook checks a deadline every 1,000 instructions; once it
 *    has passed, the hook runs on every instruction and raises each time, so
 *    pcall cannot swallow it; coroutines inherit the hook.
 *  - Hooks do not fire inside C functions, so the functions whose work is not
 *    bounded by their input size are capped: string.rep, the pattern
 *    functions (a cost model of subject length and quantifiers),
 *    string.format, table.concat, table.move, table.sort.
 */
#include "lua/lua_int.h"

#include "base/err.h"
#include "base/mem.h"

#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define HOOK_EVERY       1000
#define ITER_MAX         1000000 /* elements a table function may walk */
#define REP_MAX          10000000
#define PATTERN_COST     2e7 /* about 100 ms of matching in the worst case */
#define PATTERN_LEN_MAX  1024
#define FORMAT_LEN_MAX   65536
#define FREEZE_DEPTH_MAX 64

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

lsb_t *lsb_of(lua_State *L)
{
    lsb_t *s;
    memcpy(&s, lua_getextraspace(L), sizeof s);
    return s;
}

static void *lsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lsb_t *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old && s->used + (nsize - old) > s->cap) {
        s->oom = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    s->used = s->used - old + nsize;
    return p;
}

static void lsb_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lsb_t *s = lsb_of(L);
    if (s->deadline && now_ns() > s->deadline) {
        s->timed_out = 1;
        lua_sethook(L, lsb_hook, LUA_MASKCOUNT, 1); /* every instruction from now */
        luaL_error(L, "time budget of %d ms exceeded", (int)s->lim.time_ms);
    }
}

/* ---- frozen proxies ----------------------------------------------------- */

static int frozen_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify a read-only table");
}

static int frozen_next(lua_State *L)
{
    /* upvalue 1: the hidden table; the control variable is the last key */
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

static int frozen_pairs(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, frozen_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

static int is_frozen(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    int yes = lua_tocfunction(L, -1) == frozen_newindex;
    lua_pop(L, 2);
    return yes;
}

/* Pushes the proxy of the table at idx, freezing its table values first
 * (in place). seen maps each table to its proxy, so a table met twice (a
 * shared sub-table, a cycle) gets one proxy. */
static void freeze(lua_State *L, int idx, int seen, int depth)
{
    if (depth > FREEZE_DEPTH_MAX)
        luaL_error(L, "a table nested deeper than %d levels cannot be frozen", FREEZE_DEPTH_MAX);
    luaL_checkstack(L, 8, "freezing a table");
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    int proxy = lua_gettop(L);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, proxy);
    lua_rawset(L, seen);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE && !is_frozen(L, -1)) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, seen) == LUA_TNIL) {
                lua_pop(L, 1);
                freeze(L, -1, seen, depth + 1);
            }
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, idx); /* an existing key: allowed while traversing */
        }
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, frozen_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushcfunction(L, frozen_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_setmetatable(L, proxy);
}

void lsb_push_frozen(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (is_frozen(L, idx)) {
        lua_pushvalue(L, idx);
        return;
    }
    lua_newtable(L);
    freeze(L, idx, lua_gettop(L), 0);
    lua_remove(L, -2);
}

/* ---- capped functions ----------------------------------------------------- */

/* Calls the function this closure wraps (upvalue 1) with the same arguments. */
static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int cap_rep(lua_State *L)
{
    size_t l, sl = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &sl);
    lsb_t *s = lsb_of(L);
    if (n > 0 && (n > REP_MAX || (double)n * (double)(l + sl) > (double)s->lim.mem_call))
        return luaL_error(L, "string.rep: %I copies of %d bytes is over the limit", n,
                          (int)(l + sl));
    return call_original(L);
}

/* Where the set "[...]" starting at p[i] ends (one past its ']'). */
static size_t set_end(const char *p, size_t pl, size_t i)
{
    i++;
    if (i < pl && p[i] == '^') i++;
    if (i < pl && p[i] == ']') i++;
    while (i < pl && p[i] != ']')
        i += p[i] == '%' ? 2 : 1;
    return i + 1;
}

/* Rough worst-case steps for matching pattern p against n bytes: each
 * quantified item but a trailing one may retry over the subject, and an
 * unanchored search starts at every position. */
static double pattern_cost(const char *p, size_t pl, size_t n, int *too_long)
{
    *too_long = pl > PATTERN_LEN_MAX;
    int anchored = pl > 0 && p[0] == '^';
    size_t i = anchored ? 1 : 0;
    int k = 0, last_q = 0;
    while (i < pl) {
        char c = p[i];
        size_t item_end = i + 1;
        if (c == '%' && i + 1 < pl) {
            char e = p[i + 1];
            if (e == 'b') {
                item_end = i + 4;
                k++; /* a balance match scans */
            } else if (e == 'f') {
                item_end = i + 2 < pl && p[i + 2] == '[' ? set_end(p, pl, i + 2) : i + 2;
            } else {
                item_end = i + 2;
                if (e >= '0' && e <= '9') k++; /* a back reference compares */
            }
        } else if (c == '[') {
            item_end = set_end(p, pl, i);
        } else if (c == '(' || c == ')') {
            i++;
            continue;
        }
        i = item_end;
        if (i < pl && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
            k++;
            last_q = 1;
            i++;
        } else if (i < pl && p[i] == '?') {
            k++; /* optional items backtrack too: "a?" x n is 2^n */
            last_q = 1;
            i++;
        } else {
            last_q = 0;
        }
        /* a quantifier followed only by ')' and '$' is the trailing one */
        size_t j = i;
        while (j < pl && (p[j] == ')' || (p[j] == '$' && j == pl - 1)))
            j++;
        if (last_q && j == pl) k--;
        if (j == pl) break;
    }
    double nn = (double)(n ? n : 1);
    return (anchored ? 1.0 : nn) * pow(nn, k < 0 ? 0 : k);
}

static int cap_pattern(lua_State *L)
{
    size_t n, pl;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &pl);
    /* string.find with plain = true does no pattern matching */
    int plain = lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4);
    if (!plain) {
        int too_long;
        double cost = pattern_cost(p, pl, n, &too_long);
        if (too_long) return luaL_error(L, "pattern longer than %d bytes", PATTERN_LEN_MAX);
        if (cost > PATTERN_COST)
            return luaL_error(L,
                              "pattern too costly for a %d-byte subject (simplify it, "
                              "anchor it with ^, or shorten the input)",
                              (int)n);
    }
    return call_original(L);
}

static int cap_format(lua_State *L)
{
    size_t fl;
    luaL_checklstring(L, 1, &fl);
    if (fl > FORMAT_LEN_MAX) return luaL_error(L, "format longer than %d bytes", FORMAT_LEN_MAX);
    return call_original(L);
}

static lua_Integer range_len(lua_State *L, int t, int ai, int aj)
{
    lua_Integer i = luaL_optinteger(L, ai, 1);
    lua_Integer j = lua_isnoneornil(L, aj) ? luaL_len(L, t) : luaL_checkinteger(L, aj);
    return j >= i ? j - i + 1 : 0;
}

static int cap_concat(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (range_len(L, 1, 3, 4) > ITER_MAX)
        return luaL_error(L, "table.concat: more than %d elements", ITER_MAX);
    return call_original(L);
}

static int cap_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f && e - f >= ITER_MAX)
        return luaL_error(L, "table.move: more than %d elements", ITER_MAX);
    return call_original(L);
}

static int cap_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_len(L, 1) > ITER_MAX)
        return luaL_error(L, "table.sort: more than %d elements", ITER_MAX);
    return call_original(L);
}

/* xpcall whose message handler runs after the error is caught, as an
 * ordinary call. Lua runs message handlers (and __gc finalizers) with hooks
 * off, so a handler called for the deadline's error could loop forever. */
static int safe_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2); /* the handler, kept below */
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f h args... -> f h h f args... */
    int st = lua_pcall(L, n - 2, LUA_MULTRET, 0);
    if (st == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_replace(L, 3);
        return lua_gettop(L) - 2;
    }
    lua_call(L, 1, 1); /* h(err): hooks on, budgets apply */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* setmetatable that refuses __gc: finalizers run with hooks off. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_istable(L, 2)) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc is not allowed in scripts");
        lua_pop(L, 1);
    }
    return call_original(L);
}

/* Replaces lib[name] (lib at the top) with a C closure over the original. */
static void wrap(lua_State *L, const char *name, lua_CFunction f, int flag)
{
    lua_getfield(L, -1, name);
    lua_pushboolean(L, flag);
    lua_pushcclosure(L, f, 2);
    lua_setfield(L, -2, name);
}

/* ---- require: Kith's own modules ------------------------------------------------ */

/* Its address marks, in the cache, a module whose chunk is running. */
static const char module_loading;

static int not_kith(lua_State *L, const char *name)
{
    return luaL_error(L,
                      "module '%s' is not a Kith module (require serves only Kith's own "
                      "scripts/lib; names are a-z 0-9 _ and dots)",
                      name);
}

/* require(name): the module lib/<name with dots as slashes>.lua of the
 * shipped scripts, run once per state as a text chunk with its own globals,
 * under the budgets of whatever called require. Its value comes back frozen
 * and cached, and its globals are sealed afterwards: every script of the
 * state shares it, so none may change what another sees. */
static int l_require(lua_State *L)
{
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    char rel[LUA_SCRIPT_NAME_MAX + 16], shown[LUA_SCRIPT_NAME_MAX + 8];
    snprintf(shown, sizeof shown, "%s%s", n > LUA_SCRIPT_NAME_MAX ? "" : name,
             n > LUA_SCRIPT_NAME_MAX ? "(too long)" : "");
    if (strlen(name) != n || lua_module_path(name, rel, sizeof rel) != 0) return not_kith(L, shown);
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, "kith.modules") == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "kith.modules");
    }
    int cache = 2;
    lua_pushvalue(L, 1);
    int t = lua_rawget(L, cache);
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == &module_loading)
        return luaL_error(L, "module '%s' requires itself (a cycle of require)", shown);
    if (t != LUA_TNIL) return 1;
    lua_pop(L, 1);

    lsb_push_globals(L); /* its globals (before src: this may raise) */
    int env = 3;
    size_t len;
    char *src = lua_shipped_read(rel, &len);
    if (!src) {
        if (err_last()->code == KITH_ENOTFOUND) return not_kith(L, shown);
        return luaL_error(L, "module '%s': %s", shown, err_last()->msg);
    }
    char chunk[sizeof rel + 1];
    snprintf(chunk, sizeof chunk, "=%s", rel);
    int rc = lsb_load(L, chunk, src, len, env);
    free(src);
    if (rc) return luaL_error(L, "%s", err_last()->msg);
    int fn = 4;

    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, (void *)&module_loading);
    lua_rawset(L, cache);
    lua_pushvalue(L, fn);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        lua_rawset(L, cache); /* a later require tries again */
        return lua_error(L);
    }
    int val = 5;
    if (lua_isnil(L, val)) {
        lua_pushboolean(L, 1);
        lua_replace(L, val);
    } else if (lua_type(L, val) == LUA_TTABLE) {
        lsb_push_frozen(L, val);
        lua_replace(L, val);
    }
    lua_getmetatable(L, env);
    lua_pushcfunction(L, frozen_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, val);
    lua_rawset(L, cache);
    lua_settop(L, val);
    return 1;
}

/* ---- the state -------------------------------------------------------------- */

static const char *const base_keep[] = {
    "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "pcall",    "rawequal",
    "rawget", "rawlen", "select",       "tonumber", "tostring", "type",  "_VERSION", NULL,
};

static int open_libs(lua_State *L)
{
    luaL_requiref(L, "_G", luaopen_base, 1);
    int real_g = lua_gettop(L);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 0);
    /* stack: _G string table math utf8 coroutine */
    int str = real_g + 1, tab = real_g + 2;

    lua_pushvalue(L, str);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    wrap(L, "rep", cap_rep, 0);
    wrap(L, "find", cap_pattern, 1);
    wrap(L, "match", cap_pattern, 0);
    wrap(L, "gmatch", cap_pattern, 0);
    wrap(L, "gsub", cap_pattern, 0);
    wrap(L, "format", cap_format, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, tab);
    wrap(L, "concat", cap_concat, 0);
    wrap(L, "move", cap_move, 0);
    wrap(L, "sort", cap_sort, 0);
    lua_pop(L, 1);

    /* the string metatable: methods from the capped table, and frozen */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushvalue(L, str);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    /* the sandbox's globals: what base_keep names, the libraries and kith */
    lua_newtable(L);
    int g = lua_gettop(L);
    for (const char *const *k = base_keep; *k; k++) {
        lua_getfield(L, real_g, *k);
        lua_setfield(L, g, *k);
    }
    lua_pushcfunction(L, safe_xpcall);
    lua_setfield(L, g, "xpcall");
    lua_pushcfunction(L, l_require);
    lua_setfield(L, g, "require");
    lua_getfield(L, real_g, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, g, "setmetatable");
    static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                       LUA_UTF8LIBNAME, LUA_COLIBNAME};
    for (int i = 0; i < 5; i++) {
        lua_pushvalue(L, real_g + 1 + i);
        lua_setfield(L, g, libs[i]);
    }
    lk_push_kith(L);
    lua_setfield(L, g, "kith");
    lsb_push_frozen(L, g); /* the libraries inside are frozen too */
    lua_setfield(L, LUA_REGISTRYINDEX, "kith.G");
    lua_settop(L, 0);
    /* the real globals are unreachable: no debug library, no load */
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pop(L, 1);
    return 0;
}

lsb_t *lsb_new(const lua_limits_t *lim)
{
    lsb_t *s = xcalloc(1, sizeof *s);
    s->lim.mem_state = lim && lim->mem_state ? lim->mem_state : 64u << 20;
    s->lim.mem_call = lim && lim->mem_call ? lim->mem_call : 16u << 20;
    s->lim.time_ms = lim && lim->time_ms ? lim->time_ms : 50;
    s->cap = s->lim.mem_state;
    s->L = lua_newstate(lsb_alloc, s);
    if (!s->L) {
        free(s);
        return NULL;
    }
    /* handlers make short-lived garbage (event and record tables) around a
     * large, long-lived heap (libraries, proxies, scripts): generational
     * collection frees the young without walking the old every cycle
     * (bench_lua with an empty before-hook: 0.68-0.71 -> 0.78-0.80) */
    lua_gc(s->L, LUA_GCGEN, 0, 0);
    memcpy(lua_getextraspace(s->L), &s, sizeof s);
    lua_sethook(s->L, lsb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(s->L, open_libs);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        lua_close(s->L);
        free(s);
        return NULL;
    }
    return s;
}

void lsb_free(lsb_t *s)
{
    if (!s) return;
    lua_close(s->L);
    free(s);
}

int lsb_call(lsb_t *s, int nargs, int nres)
{
    lua_State *L = s->L;
    /* A handler's write may run another handler in this state (a nested
     * call): it gets its own budget, but never past the caller's, and the
     * caller's comes back when it returns. Resetting instead let a handler
     * run unbounded after one nested write. */
    size_t cap0 = s->cap;
    uint64_t deadline0 = s->deadline;
    int timed_out0 = s->timed_out, oom0 = s->oom;
    size_t call_cap = s->used + s->lim.mem_call;
    s->cap = call_cap < s->lim.mem_state ? call_cap : s->lim.mem_state;
    if (deadline0 && cap0 < s->cap) s->cap = cap0;
    s->timed_out = s->oom = 0;
    s->deadline = now_ns() + (uint64_t)s->lim.time_ms * 1000000u;
    if (deadline0 && deadline0 < s->deadline) s->deadline = deadline0;
    lua_sethook(L, lsb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int st = lua_pcall(L, nargs, nres, 0);
    int timed_out = s->call_timed_out = s->timed_out, oom = s->call_oom = s->oom;
    s->deadline = deadline0;
    lua_sethook(L, lsb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    s->cap = deadline0 ? cap0 : s->lim.mem_state;
    s->timed_out = timed_out0;
    s->oom = oom0;
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        int code = KITH_EHANDLER;
        if (timed_out) {
            code = KITH_ELIMIT;
            err_set(code, "%s: time budget of %u ms exceeded", s->script ? s->script : "?",
                    s->lim.time_ms);
        } else if (st == LUA_ERRMEM || oom) {
            code = KITH_ELIMIT;
            err_set(code, "%s: memory budget exceeded (%zu MiB per call, %zu MiB per state)",
                    s->script ? s->script : "?", s->lim.mem_call >> 20, s->lim.mem_state >> 20);
        } else {
            err_set(code, "%s", msg ? msg : "error object is not a string");
        }
        lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
        return code;
    }
    if (s->used > s->lim.mem_state / 2) lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

void lsb_push_globals(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 2); /* room for require's __newindex */
    lua_getfield(L, LUA_REGISTRYINDEX, "kith.G");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}

int lsb_load(lua_State *L, const char *chunk, const char *src, size_t len, int env)
{
    if (env) env = lua_absindex(L, env);
    int st = luaL_loadbufferx(L, src, len, chunk, "t"); /* protected: never raises */
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        int code = st == LUA_ERRMEM ? KITH_ELIMIT : KITH_EINVAL;
        err_set(code, "%s", msg ? msg : "cannot load the chunk");
        lua_pop(L, 1);
        return code;
    }
    if (env)
        lua_pushvalue(L, env);
    else
        lsb_push_globals(L);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1); /* _ENV, its first upvalue */
    return 0;
}

int lsb_run_script(lsb_t *s, const char *name, const char *src, size_t len)
{
    lua_State *L = s->L;
    char chunk[LUA_SCRIPT_NAME_MAX + 8];
    snprintf(chunk, sizeof chunk, "=%s", name);
    s->cap = s->lim.mem_state;
    int rc = lsb_load(L, chunk, src, len, 0);
    if (rc) return rc;
    const char *prev = s->script;
    s->script = name;
    rc = lsb_call(s, 0, 0);
    s->script = prev;
    if (rc == KITH_EHANDLER) {
        err_diag_t d;
        err_save(&d);
        d.code = KITH_EINVAL;
        err_restore(&d);
        rc = KITH_EINVAL;
    }
    return rc;
}

int lua_script_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > LUA_SCRIPT_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

int lua_check(const char *name, const char *src, size_t len, const lua_limits_t *lim)
{
    if (!lua_script_name_ok(name))
        return err_set(KITH_EINVAL, "a script name is 1 to %d of a-z 0-9 _ -", LUA_SCRIPT_NAME_MAX);
    if (len > LUA_SCRIPT_MAX)
        return err_set(KITH_ELIMIT, "a script is at most %u bytes", LUA_SCRIPT_MAX);
    lsb_t *s = lsb_new(lim);
    if (!s) return err_set(KITH_ENOMEM, "cannot create a Lua state");
    s->checking = 1;
    int rc = lsb_run_script(s, name, src, len);
    lsb_free(s);
    return rc;
}
