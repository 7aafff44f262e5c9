/* Tests core/lua/lua_shipped.c, require() in the sandbox, and the Lua that
 * ships with Kith (scripts/): every shipped rule and module passes lua_check
 * (so a broken one fails here, not in a workspace), the helpers' own tests
 * (tests/unit/lua/scripts/test_*.lua, run as a script's top level) pass, and
 * require() serves only files inside scripts/lib, once per state, frozen
 * (against a fixture directory set with lua_scripts_dir_set). */
#include "testutil.h"

#include "base/mem.h"
#include "lua/lua_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char source_dir[4096];

static void use_source_scripts(void)
{
    const char *src = getenv("KITH_SOURCE_DIR");
    snprintf(source_dir, sizeof source_dir, "%s/scripts", src ? src : "../..");
    lua_scripts_dir_set(source_dir);
}

static int check_src(const char *name, const char *src, const lua_limits_t *lim)
{
    return lua_check(name, src, strlen(src), lim);
}

static void shipped_rules_pass_lua_check(void **state)
{
    (void)state;
    use_source_scripts();
    lua_shipped_t *v = NULL;
    int n = lua_shipped_list(0, &v);
    assert_true(n >= 4);
    const char *want[] = {"normalize_contacts", "require_owner", "stamp_stage_changes",
                          "ticket_due_dates"};
    for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= strcmp(v[i].name, want[w]) == 0;
        if (!found) fail_msg("shipped rule %s is not listed", want[w]);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char rel[LUA_SCRIPT_NAME_MAX + 8];
        snprintf(rel, sizeof rel, "%s.lua", v[i].name);
        size_t len;
        char *src = lua_shipped_read(rel, &len);
        assert_non_null(src);
        assert_int_equal(len, v[i].len);
        if (lua_check(v[i].name, src, len, NULL) != 0) {
            print_message("scripts/%s: %s\n", rel, err_last()->msg);
            bad++;
        }
        if (strlen(v[i].description) < 20) {
            print_message("scripts/%s: no description (its first comment lines)\n", rel);
            bad++;
        }
        assert_int_equal(strlen(v[i].sha256), 64);
        free(src);
    }
    free(v);
    assert_int_equal(bad, 0);
}

static void shipped_modules_load(void **state)
{
    (void)state;
    use_source_scripts();
    lua_shipped_t *v = NULL;
    int n = lua_shipped_list(1, &v);
    int fields = 0, dates = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        fields |= strcmp(v[i].name, "fields") == 0;
        dates |= strcmp(v[i].name, "dates") == 0;
        char src[256];
        snprintf(src, sizeof src, "assert(type(require(\"%s\")) == \"table\")", v[i].name);
        if (check_src("load_module", src, NULL) != 0) {
            print_message("scripts/lib module %s: %s\n", v[i].name, err_last()->msg);
            bad++;
        }
        if (strlen(v[i].description) < 20) {
            print_message("scripts/lib module %s: no description\n", v[i].name);
            bad++;
        }
    }
    free(v);
    assert_true(fields && dates);
    assert_int_equal(bad, 0);
}

static void helper_tests_pass(void **state)
{
    (void)state;
    use_source_scripts();
    char dir[4096], *names[64];
    size_t n =
        tu_source_files("tests/unit/lua/scripts", "test_", ".lua", names, 64, dir, sizeof dir);
    assert_true(n >= 2);
    /* a test does more than a handler would: a roomier time budget */
    lua_limits_t roomy = {.time_ms = 5000};
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[8192], name[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        size_t len;
        char *text = tu_slurp(path, &len);
        assert_non_null(text);
        if (lua_check(name, text, len, &roomy) != 0) {
            print_message("%s: %s\n", names[i], err_last()->msg);
            bad++;
        }
        free(text);
        free(names[i]);
    }
    assert_int_equal(bad, 0);
}

/* ---- require against a fixture directory ---------------------------------------- */

static void put(const char *dir, const char *rel, const char *text)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void sub(const char *dir, const char *rel)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (mkdir(path, 0755) != 0) fail_msg("cannot make %s", path);
}

/* scripts/ with modules that misbehave, and a file outside it */
static char *fixture(char **scripts)
{
    char *root = tu_tmpdir();
    size_t n = strlen(root) + 16;
    *scripts = xmalloc(n);
    snprintf(*scripts, n, "%s/scripts", root);
    const char *s = *scripts;
    sub(root, "scripts");
    sub(s, "lib");
    sub(s, "lib/sub");
    sub(s, "lib/dir.lua");
    put(root, "outside.lua", "return 'outside'\n");
    put(s, "lib/cycle_a.lua", "return {b = require('cycle_b')}\n");
    put(s, "lib/cycle_b.lua", "return {a = require('cycle_a')}\n");
    put(s, "lib/boom.lua", "error('boom')\n");
    put(s, "lib/syntax.lua", "return {\n");
    put(s, "lib/bin.lua", "\x1bLua\x54\x00");
    put(s, "lib/spin.lua", "while true do end\n");
    put(s, "lib/nothing.lua", "local x = 1\n");
    put(s, "lib/shared.lua",
        "-- A shared table with a cycle.\n"
        "local t = {n = {1, 2}}\n"
        "t.self = t\n"
        "t.n2 = t.n\n"
        "function t.set(x) leaked = x end\n"
        "return t\n");
    put(s, "lib/sub/deep.lua", "return 'deep'\n");
    put(s, "lib/Upper.lua", "return 1\n");
    put(s, "rule_ok.lua",
        "-- A rule.\n"
        "-- Second line.\n"
        "--\n"
        "-- Details.\n"
        "kith.on('x.created', function() end)\n");
    put(s, "Bad-Name.lua", "return 1\n");
    char *big = xmalloc(LUA_SCRIPT_MAX + 16);
    memset(big, '-', LUA_SCRIPT_MAX + 8);
    big[LUA_SCRIPT_MAX + 8] = '\0';
    put(s, "lib/big.lua", big);
    free(big);
    char link[8192], target[8192];
    snprintf(link, sizeof link, "%s/lib/escape.lua", s);
    snprintf(target, sizeof target, "%s/outside.lua", root);
    if (symlink(target, link) != 0) fail_msg("symlink");
    snprintf(link, sizeof link, "%s/lib/inside.lua", s);
    if (symlink("nothing.lua", link) != 0) fail_msg("symlink");
    return root;
}

/* lua_check(src) fails with a message containing want (or passes: want NULL). */
static void expect(const char *src, const char *want)
{
    int rc = check_src("fixture", src, NULL);
    if (!want) {
        if (rc) fail_msg("%s: %s", src, err_last()->msg);
        return;
    }
    if (rc == 0) fail_msg("%s: passed, expected \"%s\"", src, want);
    if (!strstr(err_last()->msg, want))
        fail_msg("%s: expected \"%s\", got: %s", src, want, err_last()->msg);
}

static void require_fixture(void **state)
{
    (void)state;
    char *scripts;
    char *root = fixture(&scripts);
    lua_scripts_dir_set(scripts);

    expect("return require('cycle_a')", "module 'cycle_a' requires itself");
    expect("local ok, e = pcall(require, 'boom')\n"
           "assert(not ok and e:find('lib/boom.lua:1: boom', 1, true), e)\n"
           "ok, e = pcall(require, 'boom')\n"
           "assert(not ok and e:find('boom', 1, true) and not e:find('itself'), e)\n",
           NULL);
    expect("require('syntax')", "lib/syntax.lua:");
    expect("require('big')", "larger than");
    expect("require('bin')", "binary");
    expect("require('spin')", "time budget");
    expect("assert(require('nothing') == true)", NULL);
    expect("assert(require('sub.deep') == 'deep')", NULL);
    expect("assert(require('inside') == true)", NULL); /* a symlink inside scripts/ */
    expect("require('escape')", "module 'escape' is not a Kith module");
    expect("require('Upper')", "is not a Kith module");
    expect("require('dir')", "is not a Kith module");
    expect("require('sub')", "is not a Kith module");
    expect("require('missing')", "is not a Kith module");
    expect("local s = require('shared')\n"
           "assert(require('shared') == s, 'cached')\n"
           "assert(s.self == s, 'a cycle keeps one proxy')\n"
           "assert(s.n2 == s.n, 'a shared table keeps one proxy')\n"
           "assert(not pcall(function() s.n[1] = 5 end), 'nested tables are frozen')\n"
           "assert(s.n[1] == 1)\n"
           "assert(getmetatable(s) == false and getmetatable(s.n) == false)\n"
           "local ok, e = pcall(s.set, 1)\n"
           "assert(not ok and e:find('read-only', 1, true), 'its globals are sealed: ' .. "
           "tostring(e))\n",
           NULL);

    lua_shipped_t *v = NULL;
    int n = lua_shipped_list(1, &v);
    char got[512] = "";
    for (int i = 0; i < n; i++) {
        strcat(got, v[i].name);
        strcat(got, i + 1 < n ? "," : "");
    }
    assert_string_equal(got, "bin,boom,cycle_a,cycle_b,inside,nothing,shared,spin,sub.deep,syntax");
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, "shared") == 0)
            assert_string_equal(v[i].description, "A shared table with a cycle.");
    free(v);
    n = lua_shipped_list(0, &v);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "rule_ok");
    assert_string_equal(v[0].description, "A rule. Second line.");
    free(v);

    size_t len;
    assert_null(lua_shipped_read("../outside.lua", &len));
    assert_int_equal(err_last()->code, KITH_ENOTFOUND);
    assert_null(lua_shipped_read("lib/escape.lua", &len));
    assert_null(lua_shipped_read("lib", &len));
    char *text = lua_shipped_read("lib/sub/deep.lua", &len);
    assert_non_null(text);
    assert_string_equal(text, "return 'deep'\n");
    free(text);

    /* a directory that does not exist: nothing is shipped, nothing served */
    lua_scripts_dir_set("/nonexistent/kith/scripts");
    assert_int_equal(lua_shipped_list(0, &v), 0);
    expect("require('fields')", "is not a Kith module");

    use_source_scripts();
    tu_rmtree(root);
    free(root);
    free(scripts);
}

static void module_paths(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(lua_module_path("fields", out, sizeof out), 0);
    assert_string_equal(out, "lib/fields.lua");
    assert_int_equal(lua_module_path("a.b_2.c", out, sizeof out), 0);
    assert_string_equal(out, "lib/a/b_2/c.lua");
    const char *bad[] = {"", ".a", "a.", "a..b", "A", "a/b", "a-b", "../a", "/a", "a b", "a\\b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (lua_module_path(bad[i], out, sizeof out) == 0) fail_msg("'%s' was accepted", bad[i]);
    char longname[LUA_SCRIPT_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_not_equal(lua_module_path(longname, out, sizeof out), 0);
    longname[LUA_SCRIPT_NAME_MAX] = '\0';
    assert_int_equal(lua_module_path(longname, out, sizeof out), 0);
    assert_int_not_equal(lua_module_path("fields", out, 10), 0); /* no room */
}

static void describe_and_hash(void **state)
{
    (void)state;
    lua_shipped_t info;
    lua_shipped_describe("x", "abc", 3, &info);
    assert_string_equal(info.sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(info.description, "");
    const char *doc = "---  Doc comment,\r\n-- over lines.  \n\n-- not this\n";
    lua_shipped_describe("x", doc, strlen(doc), &info);
    assert_string_equal(info.description, "Doc comment, over lines.");
    const char *block = "--[[ a block ]]\n-- no\n";
    lua_shipped_describe("x", block, strlen(block), &info);
    assert_string_equal(info.description, "");
    const char *bytes = "-- caf\xc3\xa9 \xff ok\n";
    lua_shipped_describe("x", bytes, strlen(bytes), &info);
    assert_string_equal(info.description, "caf\xc3\xa9 ? ok");
    /* a long description is cut on a character boundary */
    char longdoc[2048] = "-- ";
    for (int i = 0; i < 400; i++)
        strcat(longdoc, "\xc3\xa9");
    lua_shipped_describe("x", longdoc, strlen(longdoc), &info);
    assert_int_equal(strlen(info.description), 510);
}

static void default_dir(void **state)
{
    (void)state;
    lua_scripts_dir_set(NULL);
    const char *d = lua_scripts_dir();
    /* an installed layout beside this test's binary would win: there is none */
    assert_string_equal(d, KITH_SOURCE_SCRIPTS_DIR);
    use_source_scripts();
    assert_string_equal(lua_scripts_dir(), source_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_rules_pass_lua_check),
        cmocka_unit_test(shipped_modules_load),
        cmocka_unit_test(helper_tests_pass),
        cmocka_unit_test(require_fixture),
        cmocka_unit_test(module_paths),
        cmocka_unit_test(describe_and_hash),
        cmocka_unit_test(default_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
