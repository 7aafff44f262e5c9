/* lj_merge_object: a before-hook's record table written back into the
 * pending record, touching only the fields that differ (lua_json.c). */
#include "testutil.h"

#include "lua/lua_int.h"

#include <string.h>

static const char *base = "{\"name\":\"Ann\",\"note\":\"long text\",\"score\":7,\"ok\":true,"
                          "\"tags\":[\"a\"],\"ratio\":1.5}";

/* Pushes the record as a handler sees it, runs chunk with it as `r`, then
 * merges it back into rec. Returns lj_merge_object's result. */
static int run(const char *chunk, json_t *rec, int *changed, const char **why)
{
    lsb_t *s = lsb_new(NULL);
    lua_State *L = s->L;
    lj_push(L, rec);
    assert_int_equal(luaL_loadbufferx(L, chunk, strlen(chunk), "=t", "t"), LUA_OK);
    lua_pushvalue(L, -2);
    lj_push_null(L); /* the chunk's second argument */
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
    *changed = 0;
    int rc = lj_merge_object(L, -1, rec, changed, why);
    lsb_free(s);
    return rc;
}

static void check(const char *chunk, const char *want, int want_changed)
{
    json_t *rec = json_loads(base, 0, NULL);
    json_t *exp = json_loads(want, 0, NULL);
    assert_non_null(exp);
    int changed;
    const char *why = "";
    assert_int_equal(run(chunk, rec, &changed, &why), 0);
    if (!json_equal(rec, exp)) {
        char *got = json_dumps(rec, JSON_SORT_KEYS);
        fail_msg("%s: got %s", chunk, got);
    }
    assert_int_equal(changed, want_changed);
    json_decref(rec);
    json_decref(exp);
}

static void unchanged(void **st)
{
    (void)st;
    check("local r = ...; local x = r.name .. r.note", base, 0);
    check("local r = ...; r.name = 'Ann'; r.score = 7; r.ok = true; r.ratio = 1.5", base, 0);
}

static void fields_change(void **st)
{
    (void)st;
    check("local r = ...; r.name = 'Bob'",
          "{\"name\":\"Bob\",\"note\":\"long text\",\"score\":7,\"ok\":true,\"tags\":[\"a\"],"
          "\"ratio\":1.5}",
          1);
    check("local r = ...; r.lead_score = 12; r.ok = false",
          "{\"name\":\"Ann\",\"note\":\"long text\",\"score\":7,\"ok\":false,\"tags\":[\"a\"],"
          "\"ratio\":1.5,\"lead_score\":12}",
          1);
    /* a number's type counts: 7 -> 7.5 and 1.5 -> 2 (an integer) */
    check("local r = ...; r.score = 7.5; r.ratio = 2",
          "{\"name\":\"Ann\",\"note\":\"long text\",\"score\":7.5,\"ok\":true,\"tags\":[\"a\"],"
          "\"ratio\":2}",
          1);
    /* a nested table changed in place */
    check("local r = ...; r.tags[#r.tags + 1] = 'hot'",
          "{\"name\":\"Ann\",\"note\":\"long text\",\"score\":7,\"ok\":true,"
          "\"tags\":[\"a\",\"hot\"],\"ratio\":1.5}",
          1);
}

static void fields_removed(void **st)
{
    (void)st;
    check("local r = ...; r.note = nil",
          "{\"name\":\"Ann\",\"score\":7,\"ok\":true,\"tags\":[\"a\"],\"ratio\":1.5}", 1);
    check("local r, null = ...; r.note = null; r.name = nil",
          "{\"score\":7,\"ok\":true,\"tags\":[\"a\"],\"ratio\":1.5}", 1);
    /* every field gone, and a new one */
    check("local r = ...; r.name, r.note, r.score, r.ok, r.tags, r.ratio = nil; r.x = 'y'",
          "{\"x\":\"y\"}", 1);
}

static void bad_tables(void **st)
{
    (void)st;
    json_t *rec = json_loads(base, 0, NULL);
    int changed;
    const char *why = "";
    assert_int_equal(run("local r = ...; r[1] = 'x'", rec, &changed, &why), -1);
    assert_non_null(strstr(why, "field names"));
    json_decref(rec);
    rec = json_loads(base, 0, NULL);
    why = "";
    assert_int_equal(run("local r = ...; r.f = function() end", rec, &changed, &why), -1);
    assert_true(why[0] != '\0');
    json_decref(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unchanged),
        cmocka_unit_test(fields_change),
        cmocka_unit_test(fields_removed),
        cmocka_unit_test(bad_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
