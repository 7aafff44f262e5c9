/* lj_merge_object: a before-hook's record table written back into the
 * pending record, touching only the fields that differ (lua_json.c). */
#include "testutil.h"

#include "lua/lua_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- lj_push_text against jansson, on the JSONTestSuite parsing corpus ---- */

/* The Lua value at the top, back as JSON (new), or NULL. */
static json_t *back(lua_State *L)
{
    const char *why = "";
    json_t *j = lj_to_json(L, -1, &why);
    lua_pop(L, 1);
    return j;
}

/* Every case of the corpus: what jansson reads, lj_push_text reads to the
 * same value (or refuses, and its callers fall back to jansson); no invalid
 * document (n_) is accepted; a refusal leaves the stack as it was. */
static void text_matches_jansson(void **st)
{
    (void)st;
    const char *corpus = getenv("KITH_CORPUS"), *src = getenv("KITH_SOURCE_DIR");
    char dir[4096];
    if (corpus)
        snprintf(dir, sizeof dir, "%s/json-test-suite/test_parsing", corpus);
    else
        snprintf(dir, sizeof dir, "%s/../shared/corpus/json-test-suite/test_parsing",
                 src ? src : "../..");
    DIR *d = opendir(dir);
    if (!d) {
        print_message("skipped: no JSONTestSuite at %s (set KITH_CORPUS)\n", dir);
        return;
    }
    lsb_t *s = lsb_new(NULL);
    lua_State *L = s->L;
    int same = 0, refused = 0, fell_back = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *text = tu_slurp(path, &len);
        json_error_t je;
        json_t *ref = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        int top = lua_gettop(L);
        int mine = lj_push_text(L, text, len);
        if (ref && mine == 0) {
            json_t *a = back(L);
            lj_push(L, ref);
            json_t *b = back(L);
            if (!a || !b || !json_equal(a, b)) {
                print_error("%s: a different value than jansson's\n", e->d_name);
                bad++;
            }
            if (a) json_decref(a);
            if (b) json_decref(b);
            same++;
        } else if (ref) {
            fell_back++;
        } else if (mine == 0) {
            lua_pop(L, 1);
            /* valid JSON jansson refuses (duplicate keys) may be read; invalid may not */
            if (e->d_name[0] == 'n') {
                print_error("%s: accepted, but it is not JSON\n", e->d_name);
                bad++;
            }
        } else {
            refused++;
        }
        if (lua_gettop(L) != top) {
            print_error("%s: the stack moved\n", e->d_name);
            bad++;
            lua_settop(L, top);
        }
        if (ref) json_decref(ref);
        free(text);
    }
    closedir(d);
    lsb_free(s);
    print_message("%d read the same as jansson, %d refused by both, %d left to jansson\n", same,
                  refused, fell_back);
    assert_true(same > 80 && refused > 150);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unchanged),
        cmocka_unit_test(fields_change),
        cmocka_unit_test(fields_removed),
        cmocka_unit_test(bad_tables),
        cmocka_unit_test(text_matches_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
