/*
 * lua_test: the runner of `kith test`. See lua_test.h.
 *
 * A test file runs in a state of its own made by lsb_new (the scripts'
 * sandbox, libraries and `kith`), with describe/it/expect/before_each/
 * after_each as its globals. Its top level runs once and only declares:
 * describe runs its body at once, it records (full name, function, line,
 * the enclosing describe frames). Then each `it` is one lsb_call, so one
 * that fails, loops or eats memory fails alone under its own budget.
 *
 * Test level: kith.entity and kith.emit work anywhere in the file; each
 * write is its own committed op (store_exec) on env->st, so the scripts'
 * before-hooks run (a veto is nil, {code=, message=}), and it returns once
 * the bus caught up, so the after-hooks' effects are visible to the next
 * line. Waiting for the store is not charged to the time budget: the budget
 * is there to stop a runaway test, not a slow disk.
 */
#include "lua/lua_test.h"

#include "lua/lua_int.h"

#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DESCRIBE_DEPTH_MAX 32
#define NAME_MAX_LEN       1024 /* a test's full name as printed */
#define REPR_MAX           240  /* one value in a failure message */
#define MSG_MAX            1024
#define EQUAL_DEPTH_MAX    64
#define REPR_ITEMS_MAX     8
#define REPR_KEYS_MAX      64

typedef struct run {
    lua_test_env_t *env;
    lsb_t *s;
    const char *path;
    char src[LUA_IDSIZE];      /* the chunk's name as Lua prints it in messages */
    int ref;                   /* registry: {tests = {entries}, stack = {frames}} */
    int running;               /* an `it` runs: describe and it are refused */
    char prefix[NAME_MAX_LEN]; /* "outer > inner > " */
    size_t plen;
} run_t;

/* ---- test level: writes and events as committed ops ------------------------ */

/* The store wait is not the test's running time. */
static void uncharge(lsb_t *s, uint64_t t0)
{
    if (s->deadline) s->deadline += time_mono_ns() - t0;
}

int lua_test_settle(lua_test_env_t *env)
{
    if (!env->bus) return 0;
    uint32_t ms = LUA_TEST_SETTLE_MS;
    uint64_t end = time_mono_ns() + (uint64_t)ms * 1000000u;
    while (!bus_caught_up(env->bus)) {
        if (time_mono_ns() > end) {
            log_warn("lua", "kith test: after-hooks still busy after %u ms; going on", ms);
            return err_set(KITH_EBUSY, "after-hooks still busy after %u ms", ms);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int lt_write(lsb_t *s, store_op_t *op)
{
    uint64_t t0 = time_mono_ns();
    int rc = store_exec(s->test->st, op);
    if (rc == 0) lua_test_settle(s->test);
    uncharge(s, t0);
    return rc;
}

typedef struct emit {
    const char *name, *payload;
    size_t len;
} emit_t;

static int emit_op(store_wtxn_t *w, store_op_t *op)
{
    emit_t *e = op->udata;
    return store_wtxn_emit(w, e->name, e->payload, e->len);
}

int lt_emit(lsb_t *s, const char *name, const char *payload, size_t len)
{
    emit_t e = {name, payload, len};
    store_op_t *op = store_op_custom(emit_op, &e);
    int rc = lt_write(s, op);
    store_op_free(op);
    return rc;
}

/* Each line of msg as "<indent># <tag><line>". */
static void comment(FILE *out, const char *indent, const char *tag, const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len;
    do {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(out, "%s# %s%.*s\n", indent, tag, (int)n, p);
        p = nl ? nl + 1 : end;
    } while (p < end);
}

void lt_log(lsb_t *s, int level, const char *msg, size_t len)
{
    const char *tag = level >= LOG_ERROR ? "error: " : level >= LOG_WARN ? "warn: " : "";
    comment(s->test->out, "", tag, msg, len > 2000 ? 2000 : len);
    fflush(s->test->out);
}

/* ---- describe, it, before_each, after_each --------------------------------- */

static run_t *run_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void push_frame(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "before");
    lua_newtable(L);
    lua_setfield(L, -2, "after");
}

/* Pushes the registry's run table's field (tests or stack). */
static int push_state(lua_State *L, run_t *r, const char *field)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
    return lua_gettop(L);
}

static void not_running(lua_State *L, run_t *r, const char *fn)
{
    if (r->running)
        luaL_error(L, "%s: not inside a running test (only at a file's top level or in describe)",
                   fn);
}

static int t_describe(lua_State *L)
{
    run_t *r = run_of(L);
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    not_running(L, r, "describe");
    int stack = push_state(L, r, "stack");
    lua_Integer depth = (lua_Integer)lua_rawlen(L, stack);
    if (depth > DESCRIBE_DEPTH_MAX)
        return luaL_error(L, "describe: nested deeper than %d", DESCRIBE_DEPTH_MAX);
    push_frame(L);
    lua_rawseti(L, stack, depth + 1);
    size_t plen0 = r->plen;
    r->plen +=
        (size_t)snprintf(r->prefix + r->plen, sizeof r->prefix - r->plen, "%.*s > ", (int)n, name);
    if (r->plen >= sizeof r->prefix) r->plen = sizeof r->prefix - 1;
    lua_pushvalue(L, 2);
    lua_call(L, 0, 0); /* an error ends the file's top level: nothing to restore */
    r->plen = plen0;
    r->prefix[plen0] = '\0';
    lua_pushnil(L);
    lua_rawseti(L, stack, depth + 1);
    return 0;
}

static int t_it(lua_State *L)
{
    run_t *r = run_of(L);
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    not_running(L, r, "it");
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) line = ar.currentline;
    int tests = push_state(L, r, "tests");
    int stack = push_state(L, r, "stack");
    lua_createtable(L, 0, 4);
    lua_pushfstring(L, "%s%s", r->prefix, name);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "fn");
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    /* the frames themselves: a before_each declared after this it applies too */
    lua_Integer depth = (lua_Integer)lua_rawlen(L, stack);
    lua_createtable(L, (int)depth, 0);
    for (lua_Integer i = 1; i <= depth; i++) {
        lua_rawgeti(L, stack, i);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "frames");
    lua_rawseti(L, tests, (lua_Integer)lua_rawlen(L, tests) + 1);
    return 0;
}

/* before_each / after_each: upvalue 2 names the frame's list. */
static int t_each(lua_State *L)
{
    run_t *r = run_of(L);
    const char *list = lua_tostring(L, lua_upvalueindex(2));
    luaL_checktype(L, 1, LUA_TFUNCTION);
    not_running(L, r, list[0] == 'b' ? "before_each" : "after_each");
    int stack = push_state(L, r, "stack");
    lua_rawgeti(L, stack, (lua_Integer)lua_rawlen(L, stack));
    lua_getfield(L, -1, list);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 0;
}

/* Calls every function of each frame's list (outer first, or inner first). */
static void call_each(lua_State *L, int frames, const char *list, int inner_first)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, frames);
    for (lua_Integer k = 0; k < n; k++) {
        lua_rawgeti(L, frames, inner_first ? n - k : k + 1);
        lua_getfield(L, -1, list);
        lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, j);
            lua_call(L, 0, 0);
        }
        lua_pop(L, 2);
    }
}

/* Whether a pcall that ended with st ran out of a budget (time or memory):
 * then nothing more may run, and the error goes on up. */
static int budget_spent(lua_State *L, int st)
{
    const lsb_t *s = lsb_of(L);
    return st != LUA_OK && (s->timed_out || s->oom || st == LUA_ERRMEM);
}

/* One test (the entry is argument 1): its before_each functions, the test,
 * then its after_each functions even if the test failed (not after a budget
 * ran out: nothing more can run). */
static int t_run(lua_State *L)
{
    lua_getfield(L, 1, "frames");
    int frames = lua_gettop(L);
    call_each(L, frames, "before", 0);
    lua_getfield(L, 1, "fn");
    int st = lua_pcall(L, 0, 0, 0);
    if (budget_spent(L, st)) return lua_error(L);
    call_each(L, frames, "after", 1);
    if (st != LUA_OK) return lua_error(L); /* the test's error, still on the top */
    return 0;
}

/* ---- values in messages ------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t n, cap; /* cap counts the NUL */
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->n + 1 >= b->cap) return;
    size_t room = b->cap - 1 - b->n;
    if (n > room) n = room;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_adds(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void repr_into(lua_State *L, int idx, sbuf_t *b, int depth);

static void repr_string(sbuf_t *b, const char *s, size_t n)
{
    sb_add(b, "\"", 1);
    size_t shown = n > 80 ? 80 : n;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2);
        } else if (c == '\n') {
            sb_add(b, "\\n", 2);
        } else if (c < 0x20) {
            sb_addf(b, "\\%d", c);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_adds(b, shown < n ? "...\"" : "\"");
}

static int ident(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A table as {1, 2, a = 3, ...}: the array part, then string keys in order,
 * then the others; REPR_ITEMS_MAX items at most. */
static void repr_table(lua_State *L, int t, sbuf_t *b, int depth)
{
    if (depth >= 3) {
        sb_adds(b, "{...}");
        return;
    }
    sb_adds(b, "{");
    int items = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(L, t);
    for (lua_Integer i = 1; i <= len && items < REPR_ITEMS_MAX; i++, items++) {
        if (items) sb_adds(b, ", ");
        lua_rawgeti(L, t, i);
        repr_into(L, -1, b, depth + 1);
        lua_pop(L, 1);
    }
    const char *keys[REPR_KEYS_MAX];
    size_t nk = 0, more = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (nk < REPR_KEYS_MAX)
                keys[nk++] = lua_tostring(L, -1); /* alive: the table holds it */
            else
                more++;
        } else if (!(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
                     lua_tointeger(L, -1) <= len)) {
            more++;
        }
    }
    qsort(keys, nk, sizeof *keys, cmp_str);
    for (size_t i = 0; i < nk && items < REPR_ITEMS_MAX; i++, items++) {
        if (items) sb_adds(b, ", ");
        size_t kn = strlen(keys[i]);
        if (ident(keys[i], kn)) {
            sb_add(b, keys[i], kn);
        } else {
            sb_adds(b, "[");
            repr_string(b, keys[i], kn);
            sb_adds(b, "]");
        }
        sb_adds(b, " = ");
        lua_getfield(L, t, keys[i]);
        repr_into(L, -1, b, depth + 1);
        lua_pop(L, 1);
    }
    if ((size_t)items < (size_t)(len > 0 ? len : 0) + nk + more)
        sb_adds(b, items ? ", ..." : "...");
    sb_adds(b, "}");
}

static void repr_into(lua_State *L, int idx, sbuf_t *b, int depth)
{
    luaL_checkstack(L, 6, "value too deep to show");
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        sb_adds(b, "nil");
        break;
    case LUA_TBOOLEAN:
        sb_adds(b, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            sb_addf(b, "%lld", (long long)lua_tointeger(L, idx));
        else
            sb_addf(b, "%.14g", (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        repr_string(b, s, n);
        break;
    }
    case LUA_TTABLE:
        repr_table(L, idx, b, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        sb_adds(b, lj_is_null(L, idx) ? "kith.json.null" : "userdata");
        break;
    default:
        sb_adds(b, luaL_typename(L, idx));
        break;
    }
}

static const char *repr(lua_State *L, int idx, char out[REPR_MAX])
{
    sbuf_t b = {out, 0, REPR_MAX};
    out[0] = '\0';
    repr_into(L, idx, &b, 0);
    return out;
}

/* ---- expect ------------------------------------------------------------------ */

/* Deep equality: tables with the same keys and deep-equal values; anything
 * else raw equality (1 == 1.0). */
static int deep_equal(lua_State *L, int a, int b, int depth)
{
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (lua_rawequal(L, a, b)) return 1;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE) return 0;
    if (depth >= EQUAL_DEPTH_MAX) return 0;
    luaL_checkstack(L, 6, "tables too deep to compare");
    lua_pushnil(L);
    while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int same = !lua_isnil(L, -1) && deep_equal(L, -2, -1, depth + 1);
        lua_pop(L, 2);
        if (!same) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        int missing = lua_rawget(L, a) == LUA_TNIL;
        lua_pop(L, 1);
        if (missing) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return 1;
}

/* A matcher's arguments: drops the expectation when called with ':', keeps
 * nargs arguments at 1..nargs and pushes the actual value after them.
 * Returns whether the expectation is negated. */
static int expect_args(lua_State *L, int nargs)
{
    if (lua_rawequal(L, 1, lua_upvalueindex(1))) lua_remove(L, 1);
    lua_settop(L, nargs);
    lua_rawgeti(L, lua_upvalueindex(1), 1);
    lua_rawgeti(L, lua_upvalueindex(1), 2);
    int neg = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return neg;
}

/* Raises "file:line: message" at the line that called the matcher. */
static int expect_fail(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int expect_fail(lua_State *L, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    luaL_where(L, 1);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lua_error(L);
}

static const char *no(int neg)
{
    return neg ? "not " : "";
}

static int m_be(lua_State *L)
{
    int neg = expect_args(L, 1);
    if (lua_compare(L, 2, 1, LUA_OPEQ) != neg) return 0;
    char e[REPR_MAX], a[REPR_MAX];
    return expect_fail(L, "expected %s%s, got %s", no(neg), repr(L, 1, e), repr(L, 2, a));
}

static int m_equal(lua_State *L)
{
    int neg = expect_args(L, 1);
    if (deep_equal(L, 2, 1, 0) != neg) return 0;
    char e[REPR_MAX], a[REPR_MAX];
    return expect_fail(L, "expected %s%s (deep equality), got %s", no(neg), repr(L, 1, e),
                       repr(L, 2, a));
}

static int m_nil(lua_State *L)
{
    int neg = expect_args(L, 0);
    if (lua_isnil(L, 1) != neg) return 0;
    char a[REPR_MAX];
    return expect_fail(L, "expected %snil, got %s", no(neg), repr(L, 1, a));
}

static int m_truthy(lua_State *L)
{
    int neg = expect_args(L, 0);
    if (lua_toboolean(L, 1) != neg) return 0;
    char a[REPR_MAX];
    return expect_fail(L, "expected a %s value, got %s", neg ? "falsy" : "truthy", repr(L, 1, a));
}

static int m_falsy(lua_State *L)
{
    int neg = expect_args(L, 0);
    if ((!lua_toboolean(L, 1)) != neg) return 0;
    char a[REPR_MAX];
    return expect_fail(L, "expected a %s value, got %s", neg ? "truthy" : "falsy", repr(L, 1, a));
}

static int contains(const char *s, size_t n, const char *x, size_t xn)
{
    if (xn == 0) return 1;
    for (size_t i = 0; i + xn <= n; i++)
        if (s[i] == x[0] && memcmp(s + i, x, xn) == 0) return 1;
    return 0;
}

static int m_contain(lua_State *L)
{
    int neg = expect_args(L, 1);
    int found = 0;
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n, xn;
        const char *s = lua_tolstring(L, 2, &n);
        if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER)
            return luaL_error(L, "to_contain: a string contains strings, not a %s",
                              luaL_typename(L, 1));
        const char *x = lua_tolstring(L, 1, &xn);
        found = contains(s, n, x, xn);
    } else if (lua_type(L, 2) == LUA_TTABLE) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, 2);
        for (lua_Integer i = 1; i <= len && !found; i++) {
            lua_rawgeti(L, 2, i);
            found = deep_equal(L, -1, 1, 0);
            lua_pop(L, 1);
        }
    } else {
        return luaL_error(L, "to_contain: expect() was given a %s, not a string or a table",
                          luaL_typename(L, 2));
    }
    if (found != neg) return 0;
    char e[REPR_MAX], a[REPR_MAX];
    return expect_fail(L, "expected %s %sto contain %s", repr(L, 2, a), no(neg), repr(L, 1, e));
}

static int m_match(lua_State *L)
{
    int neg = expect_args(L, 1);
    luaL_checkstring(L, 1);
    int found = 0;
    if (lua_type(L, 2) == LUA_TSTRING) {
        /* the sandbox's string.find: its pattern cost cap applies */
        lua_getfield(L, LUA_REGISTRYINDEX, "kith.G");
        lua_getfield(L, -1, "string");
        lua_getfield(L, -1, "find");
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 1);
        lua_call(L, 2, 1);
        found = !lua_isnil(L, -1);
        lua_settop(L, 2);
    }
    if (found != neg) return 0;
    char e[REPR_MAX], a[REPR_MAX];
    return expect_fail(L, "expected %s %sto match %s", repr(L, 2, a), no(neg), repr(L, 1, e));
}

static int m_fail(lua_State *L)
{
    int neg = expect_args(L, 1);
    size_t pn = 0;
    const char *pat = luaL_optlstring(L, 1, NULL, &pn);
    if (lua_type(L, 2) != LUA_TFUNCTION)
        return luaL_error(L, "to_fail: expect() was given a %s, not a function",
                          luaL_typename(L, 2));
    lua_pushvalue(L, 2);
    int st = lua_pcall(L, 0, 0, 0);
    if (budget_spent(L, st)) return lua_error(L);
    size_t en = 0;
    const char *emsg = NULL;
    if (st != LUA_OK) {
        emsg = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                   ? lua_tolstring(L, -1, &en)
                   : "(an error object that is not a string)";
        if (!lua_isstring(L, -1)) en = strlen(emsg);
    }
    int ok = st != LUA_OK && (!pat || contains(emsg, en, pat, pn));
    if (ok != neg) return 0;
    char p[REPR_MAX], m[REPR_MAX];
    if (pat) repr(L, 1, p);
    if (emsg) {
        sbuf_t b = {m, 0, REPR_MAX};
        m[0] = '\0';
        repr_string(&b, emsg, en);
    }
    if (!neg && !emsg) {
        if (pat) return expect_fail(L, "expected the function to fail with %s, it returned", p);
        return expect_fail(L, "expected the function to fail, it returned");
    }
    if (!neg)
        return expect_fail(L, "expected the function to fail with %s, it failed with %s", p, m);
    if (pat)
        return expect_fail(L, "expected the function not to fail with %s, it failed with %s", p, m);
    return expect_fail(L, "expected the function not to fail, it failed with %s", m);
}

static int order(lua_State *L, int op, const char *what)
{
    int neg = expect_args(L, 1);
    /* greater than: expected < actual; less than: actual < expected */
    int ok = op ? lua_compare(L, 1, 2, LUA_OPLT) : lua_compare(L, 2, 1, LUA_OPLT);
    if (ok != neg) return 0;
    char e[REPR_MAX], a[REPR_MAX];
    return expect_fail(L, "expected %s %sto be %s %s", repr(L, 2, a), no(neg), what, repr(L, 1, e));
}

static int m_gt(lua_State *L)
{
    return order(L, 1, "greater than");
}

static int m_lt(lua_State *L)
{
    return order(L, 0, "less than");
}

static const luaL_Reg matchers[] = {
    {"to_be", m_be},           {"to_equal", m_equal},
    {"to_be_nil", m_nil},      {"to_be_truthy", m_truthy},
    {"to_be_falsy", m_falsy},  {"to_contain", m_contain},
    {"to_match", m_match},     {"to_fail", m_fail},
    {"to_error", m_fail},      {"to_be_greater_than", m_gt},
    {"to_be_less_than", m_lt}, {NULL, NULL},
};

static void push_expectation(lua_State *L, int value, int neg)
{
    value = lua_absindex(L, value);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, value);
    lua_rawseti(L, -2, 1);
    lua_pushboolean(L, neg);
    lua_rawseti(L, -2, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "kith.expect");
    lua_setmetatable(L, -2);
}

/* expectation.<name>: a matcher bound to it, or never / not_ (negated). */
static int expect_index(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "never") == 0 || strcmp(k, "not_") == 0) {
        lua_rawgeti(L, 1, 1);
        lua_rawgeti(L, 1, 2);
        push_expectation(L, -2, !lua_toboolean(L, -1));
        return 1;
    }
    for (const luaL_Reg *m = matchers; m->name; m++) {
        if (strcmp(k, m->name) == 0) {
            lua_pushvalue(L, 1);
            lua_pushcclosure(L, m->func, 1);
            return 1;
        }
    }
    return luaL_error(L,
                      "expect: no matcher '%s' (to_be, to_equal, to_be_nil, to_be_truthy, "
                      "to_be_falsy, to_contain, to_match, to_fail, to_be_greater_than, "
                      "to_be_less_than; .never negates)",
                      k);
}

static int t_expect(lua_State *L)
{
    lua_settop(L, 1);
    push_expectation(L, 1, 0);
    return 1;
}

/* ---- the run ----------------------------------------------------------------- */

/* Builds the run's registry state and returns the file's globals table:
 * the test functions, reads falling through to the sandbox's globals. */
static int setup(lua_State *L)
{
    run_t *r = lua_touserdata(L, 1);
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "tests");
    lua_createtable(L, 1, 0);
    push_frame(L); /* the file's own: before_each outside any describe */
    lua_rawseti(L, -2, 1);
    lua_setfield(L, -2, "stack");
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, expect_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, "kith.expect");

    lsb_push_globals(L); /* the file's: describe, it, expect, before/after_each */
    static const luaL_Reg fns[] = {
        {"describe", t_describe}, {"it", t_it}, {"expect", t_expect}, {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, r);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    static const char *const each[][2] = {{"before_each", "before"}, {"after_each", "after"}};
    for (int i = 0; i < 2; i++) {
        lua_pushlightuserdata(L, r);
        lua_pushstring(L, each[i][1]);
        lua_pushcclosure(L, t_each, 2);
        lua_setfield(L, -2, each[i][0]);
    }
    return 1;
}

/* Compiles the test file at path, with the table at env as its globals (0:
 * its own). */
static int load(lua_State *L, const char *path, const char *src, size_t len, int env)
{
    char *chunk = xmalloc(strlen(path) + 2);
    chunk[0] = '@';
    memcpy(chunk + 1, path, strlen(path) + 1);
    int rc = lsb_load(L, chunk, src, len, env);
    free(chunk);
    return rc;
}

int lua_test_check(const char *path, const char *src, size_t len)
{
    lsb_t *s = lsb_new(NULL);
    if (!s) return err_set(KITH_ENOMEM, "cannot create a Lua state");
    int rc = load(s->L, path, src, len, 0);
    lsb_free(s);
    return rc;
}

/* Prints one result. msg: the error, given a location (the test's line) if
 * it has none, and without lsb_call's "path: " before a budget's message. */
static void report(run_t *r, const char *name, int line, const char *msg)
{
    lua_test_env_t *env = r->env;
    unsigned n = env->passed + env->failed + 1;
    if (!msg) {
        env->passed++;
        fprintf(env->out, "ok %u - %s\n", n, name);
        fflush(env->out);
        return;
    }
    env->failed++;
    fprintf(env->out, "not ok %u - %s\n", n, name);
    size_t pl = strlen(r->path), sl = strlen(r->src);
    if (strncmp(msg, r->path, pl) == 0 && strncmp(msg + pl, ": ", 2) == 0) msg += pl + 2;
    char where[LUA_IDSIZE + 32] = "";
    if (!(strncmp(msg, r->src, sl) == 0 && msg[sl] == ':' && msg[sl + 1] >= '0' &&
          msg[sl + 1] <= '9')) {
        if (line)
            snprintf(where, sizeof where, "%s:%d: ", r->src, line);
        else
            snprintf(where, sizeof where, "%s: ", r->src);
    }
    char text[MSG_MAX + sizeof where];
    int tn = snprintf(text, sizeof text, "%s%s", where, msg);
    comment(env->out, "  ", "", text,
            tn < 0                     ? 0
            : (size_t)tn < sizeof text ? (size_t)tn
                                       : sizeof text - 1);
    fflush(env->out);
}

/* Runs test i of the file (1-based). */
static void run_one(run_t *r, lua_Integer i)
{
    lua_State *L = r->s->L;
    lua_pushcfunction(L, t_run);
    push_state(L, r, "tests");
    lua_rawgeti(L, -1, i);
    lua_remove(L, -2);
    char name[NAME_MAX_LEN];
    lua_getfield(L, -1, "name");
    snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
    lua_getfield(L, -2, "line");
    int line = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    r->running = 1;
    int rc = lsb_call(r->s, 1, 0);
    r->running = 0;
    report(r, name, line, rc ? err_last()->msg : NULL);
}

int lua_test_run(lua_test_env_t *env, const char *path, const char *src, size_t len)
{
    lua_limits_t lim = {.time_ms = LUA_TEST_TIME_MS};
    lsb_t *s = lsb_new(&lim);
    if (!s) return err_set(KITH_ENOMEM, "cannot create a Lua state");
    s->test = env;
    s->script = path;
    run_t *r = xcalloc(1, sizeof *r);
    r->env = env;
    r->s = s;
    r->path = path;
    lua_State *L = s->L;
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lsb_free(s);
        free(r);
        return err_set(KITH_ENOMEM, "cannot set up the test state");
    }
    int rc = load(L, path, src, len, -1); /* setup's table: the file's globals */
    if (rc) {
        lsb_free(s);
        free(r);
        return rc;
    }
    lua_remove(L, -2);
    lua_Debug ar;
    lua_pushvalue(L, -1);
    lua_getinfo(L, ">S", &ar);
    snprintf(r->src, sizeof r->src, "%s", ar.short_src);
    if (lsb_call(s, 0, 0)) {
        report(r, path, 0, err_last()->msg);
    } else {
        push_state(L, r, "tests");
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        lua_pop(L, 1);
        if (n == 0) fprintf(env->out, "# %s: no tests\n", path);
        for (lua_Integer i = 1; i <= n; i++)
            run_one(r, i);
    }
    lsb_free(s);
    free(r);
    return 0;
}
