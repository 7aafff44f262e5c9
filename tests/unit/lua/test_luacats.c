/* Holds sdk/lua/kith.lua (the LuaCATS annotations of the `kith` global) to
 * the real table lk_push_kith builds in core/lua/lua_kith.c: every dotted
 * name under kith (functions, sub-tables and values) must be declared in
 * kith.lua exactly once, as the same kind, with a doc comment, and nothing
 * else may be declared. The convention kith.lua follows is stated at its
 * top: a declaration is a line at column 0, `function kith.<path>(` for a
 * function or `kith.<path> = ...` for a table or a value; a value written as
 * a number literal must equal the C one. kith.lua must also compile (it is
 * loaded, never run). */
#include "testutil.h"

#include "lua/lua_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_MAX      512
#define NAME_MAX_LEN   128
#define WALK_DEPTH_MAX 8

typedef struct decl {
    char name[NAME_MAX_LEN];
    char kind;      /* 'f' function, 'v' table or value */
    int line;       /* kith.lua line, 0 for the C side */
    int documented; /* kith.lua: a --- line right above */
    int has_num;    /* a number: C's value, or kith.lua's literal */
    double num;
} decl_t;

typedef struct names {
    decl_t v[NAMES_MAX];
    size_t n;
} names_t;

static char *kith_lua(size_t *len)
{
    const char *src = getenv("KITH_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/sdk/lua/kith.lua", src ? src : "../..");
    char *text = tu_slurp(path, len);
    if (!text) fail_msg("cannot read %s (set KITH_SOURCE_DIR)", path);
    return text;
}

static decl_t *names_add(names_t *ns, const char *name, char kind)
{
    if (ns->n == NAMES_MAX) fail_msg("more than %d names", NAMES_MAX);
    decl_t *d = &ns->v[ns->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = kind;
    return d;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const decl_t *)a)->name, ((const decl_t *)b)->name);
}

/* ---- the C side: walk the table at the top of the stack -------------------- */

static void walk(lua_State *L, const char *prefix, int depth, names_t *out)
{
    if (depth > WALK_DEPTH_MAX) fail_msg("%s: nested deeper than %d", prefix, WALK_DEPTH_MAX);
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            fail_msg("%s has a key that is not a string (%s)", prefix, luaL_typename(L, -2));
        char name[NAME_MAX_LEN];
        snprintf(name, sizeof name, "%s.%s", prefix, lua_tostring(L, -2));
        int type = lua_type(L, -1);
        decl_t *d = names_add(out, name, type == LUA_TFUNCTION ? 'f' : 'v');
        if (type == LUA_TNUMBER) {
            d->has_num = 1;
            d->num = lua_tonumber(L, -1);
        }
        if (type == LUA_TTABLE) walk(L, name, depth + 1, out);
        lua_pop(L, 1);
    }
}

/* The names of the table at the top of the stack, as "kith.<path>". */
static void c_names(lua_State *L, names_t *out)
{
    out->n = 0;
    walk(L, "kith", 0, out);
    qsort(out->v, out->n, sizeof out->v[0], by_name);
}

/* ---- the annotation side: scan kith.lua's declaration lines --------------- */

static size_t scan_path(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '.'))
        n++;
    return n;
}

static void lua_names(const char *text, size_t len, names_t *out)
{
    out->n = 0;
    const char *p = text, *end = text + len, *prev = NULL; /* the line above */
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *s = NULL;
        char kind = 0;
        if (eol - p > 14 && memcmp(p, "function kith.", 14) == 0) {
            s = p + 9;
            kind = 'f';
        } else if (eol - p > 5 && memcmp(p, "kith.", 5) == 0) {
            s = p;
            kind = 'v';
        }
        if (s) {
            size_t n = scan_path(s, eol);
            const char *after = s + n;
            while (after < eol && (*after == ' ' || *after == '\t'))
                after++;
            int ok = kind == 'f'
                         ? after < eol && *after == '('
                         : after < eol && *after == '=' && (after + 1 == eol || after[1] != '=');
            if (ok && n > 5 && n < NAME_MAX_LEN && s[n - 1] != '.') {
                char name[NAME_MAX_LEN];
                memcpy(name, s, n);
                name[n] = '\0';
                decl_t *d = names_add(out, name, kind);
                d->line = line;
                d->documented = prev && p - prev > 3 && memcmp(prev, "---", 3) == 0;
                if (kind == 'v') {
                    char *num_end;
                    double v = strtod(after + 1, &num_end);
                    while (num_end < eol && isspace((unsigned char)*num_end))
                        num_end++;
                    if (num_end > after + 1 && num_end == eol) {
                        d->has_num = 1;
                        d->num = v;
                    }
                }
            }
        }
        prev = p;
        p = eol + 1;
    }
    qsort(out->v, out->n, sizeof out->v[0], by_name);
}

/* ---- the comparison -------------------------------------------------------- */

/* Appends one line per difference to report; returns how many there are. */
static int diff(const names_t *c, const names_t *lua, char *report, size_t cap)
{
    size_t used = 0;
    int count = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        count++;                                                                                   \
        if (used < cap) used += (size_t)snprintf(report + used, cap - used, __VA_ARGS__);          \
    } while (0)
    report[0] = '\0';
    for (size_t i = 1; i < lua->n; i++)
        if (strcmp(lua->v[i - 1].name, lua->v[i].name) == 0)
            ADD("  declared twice in kith.lua: %s (lines %d and %d)\n", lua->v[i].name,
                lua->v[i - 1].line, lua->v[i].line);
    for (size_t i = 0; i < lua->n; i++)
        if (!lua->v[i].documented)
            ADD("  no --- doc comment above kith.lua:%d: %s\n", lua->v[i].line, lua->v[i].name);
    size_t i = 0, j = 0;
    while (i < c->n || j < lua->n) {
        int cmp = i == c->n ? 1 : j == lua->n ? -1 : strcmp(c->v[i].name, lua->v[j].name);
        if (cmp < 0) {
            ADD("  in the C table, not in kith.lua: %s (a %s)\n", c->v[i].name,
                c->v[i].kind == 'f' ? "function" : "value");
            i++;
        } else if (cmp > 0) {
            ADD("  in kith.lua:%d, not in the C table: %s\n", lua->v[j].line, lua->v[j].name);
            j++;
        } else {
            const decl_t *a = &c->v[i], *b = &lua->v[j];
            if (a->kind != b->kind)
                ADD("  kith.lua:%d declares %s as a %s, the C table has a %s\n", b->line, a->name,
                    b->kind == 'f' ? "function" : "value", a->kind == 'f' ? "function" : "value");
            else if (b->has_num && (!a->has_num || a->num != b->num))
                ADD("  kith.lua:%d gives %s = %g, the C table has %s%g\n", b->line, a->name, b->num,
                    a->has_num ? "" : "a non-number, not ", a->has_num ? a->num : b->num);
            i++;
            while (++j < lua->n && strcmp(lua->v[j].name, a->name) == 0)
                ; /* a repeat was reported above */
        }
    }
#undef ADD
    return count;
}

static int stand_in(lua_State *L)
{
    (void)L;
    return 0;
}

static lua_State *state_with_kith(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    lk_push_kith(L);
    return L;
}

/* ---- tests ---------------------------------------------------------------- */

static void annotations_match_the_api(void **state)
{
    (void)state;
    static names_t c, lua;
    lua_State *L = state_with_kith();
    c_names(L, &c);
    lua_close(L);
    size_t len;
    char *text = kith_lua(&len);
    lua_names(text, len, &lua);
    free(text);
    /* the walk and the scan both found the API, not an empty set */
    assert_true(c.n >= 20);
    assert_true(lua.n >= 20);
    char report[8192];
    int n = diff(&c, &lua, report, sizeof report);
    if (n)
        fail_msg("sdk/lua/kith.lua and the kith table (core/lua/lua_kith.c lk_push_kith) "
                 "differ in %d place(s):\n%s",
                 n, report);
}

static void annotations_compile(void **state)
{
    (void)state;
    size_t len;
    char *text = kith_lua(&len);
    assert_true(len > 0);
    assert_memory_equal(text, "---@meta", 8);
    lua_State *L = luaL_newstate();
    int rc = luaL_loadbufferx(L, text, len, "@sdk/lua/kith.lua", "t");
    if (rc != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
    lua_close(L);
    free(text);
}

/* The check itself: a name the C table gains, an annotation removed or
 * invented, a kind or a level that disagrees are each reported by name. */
static void drift_is_reported(void **state)
{
    (void)state;
    static names_t c, lua;
    char report[8192];
    size_t len;
    char *text = kith_lua(&len);
    /* counted on top of the differences the real pair has (none, unless
     * annotations_match_the_api fails too) */
    lua_State *L = state_with_kith();
    c_names(L, &c);
    lua_close(L);
    lua_names(text, len, &lua);
    int base = diff(&c, &lua, report, sizeof report);

    /* the C table gains a function and a value; kith.lua as it is */
    L = state_with_kith();
    lua_getfield(L, -1, "entity");
    lua_pushcfunction(L, stand_in);
    lua_setfield(L, -2, "upsert");
    lua_pop(L, 1);
    lua_pushliteral(L, "UTC");
    lua_setfield(L, -2, "zone");
    c_names(L, &c);
    lua_close(L);
    lua_names(text, len, &lua);
    assert_int_equal(diff(&c, &lua, report, sizeof report), base + 2);
    assert_non_null(
        strstr(report, "in the C table, not in kith.lua: kith.entity.upsert (a function)"));
    assert_non_null(strstr(report, "in the C table, not in kith.lua: kith.zone (a value)"));

    /* the real table against a copy of kith.lua without kith.cancel's
     * declaration, with kith.time.now turned into a value, another
     * api_level, and an invented function and an undocumented table */
    L = state_with_kith();
    c_names(L, &c);
    lua_close(L);
    char *copy = malloc(len + 512);
    memcpy(copy, text, len + 1);
    char *at = strstr(copy, "\nfunction kith.cancel(");
    assert_non_null(at);
    at[1] = '-'; /* "-unction kith.cancel(": no longer a declaration */
    at = strstr(copy, "\nfunction kith.time.now(");
    assert_non_null(at);
    memcpy(at + 1, "kith.time.now = nil --", 22);
    at = strstr(copy, "\nkith.api_level = 2");
    assert_non_null(at);
    at[18] = '7';
    size_t n = strlen(copy);
    n += (size_t)snprintf(copy + n, 512,
                          "\n---Invented.\nfunction kith.entity.upsert(c, f) end\n"
                          "kith.undocumented = {}\n");
    lua_names(copy, n, &lua);
    int count = diff(&c, &lua, report, sizeof report);
    assert_non_null(strstr(report, "in the C table, not in kith.lua: kith.cancel (a function)"));
    assert_non_null(strstr(report, "not in the C table: kith.entity.upsert"));
    assert_non_null(strstr(report, "not in the C table: kith.undocumented"));
    assert_non_null(strstr(report, "no --- doc comment above kith.lua:"));
    assert_non_null(
        strstr(report, "declares kith.time.now as a value, the C table has a function"));
    assert_non_null(strstr(report, "gives kith.api_level = 7"));
    assert_int_equal(count, base + 6);

    /* a declaration repeated */
    n = (size_t)snprintf(copy, len + 512, "---a\nkith.log = {}\n---b\nkith.log = {}\n");
    lua_names(copy, n, &lua);
    diff(&c, &lua, report, sizeof report);
    assert_non_null(strstr(report, "declared twice in kith.lua: kith.log (lines 2 and 4)"));

    free(copy);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(annotations_match_the_api),
        cmocka_unit_test(annotations_compile),
        cmocka_unit_test(drift_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
