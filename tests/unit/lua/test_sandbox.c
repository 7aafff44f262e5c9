/* Tests core/lua/lua_sandbox.c with the hostile-script suite of tests/sandbox/:
 * each NAME.lua starts with "-- expect: TEXT" and is run as a script's top
 * level in a scratch sandbox with the default budgets (50 ms, 16 MiB per
 * call, 64 MiB per state). "ok" must load; anything else must fail with TEXT
 * in the message. A script that escaped its budget would hang (ctest's
 * timeout) or exhaust the process. */
#include "testutil.h"

#include "lua/lua_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hostile_suite(void **state)
{
    (void)state;
    char dir[4096], *names[256];
    size_t n = tu_source_files("tests/sandbox", "", ".lua", names, 256, dir, sizeof dir);
    assert_true(n >= 40);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[8192], name[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        size_t len = 0;
        char *text = tu_slurp(path, &len);
        assert_non_null(text);
        char expect[200] = "";
        if (sscanf(text, "-- expect: %199[^\n]", expect) != 1)
            fail_msg("%s: the first line must be \"-- expect: TEXT\"", names[i]);
        const char *only = getenv("KITH_SANDBOX_ONLY");
        if (only && strcmp(only, name) != 0) {
            free(names[i]);
            continue;
        }
        if (getenv("KITH_SANDBOX_VERBOSE")) print_message("%s\n", name);
        int rc = lua_check(name, text, len, NULL);
        const char *msg = rc ? err_last()->msg : "";
        int ok = strcmp(expect, "ok") == 0 ? rc == 0 : (rc != 0 && strstr(msg, expect) != NULL);
        if (!ok) {
            bad++;
            print_message("%s: expected %s, got rc %d: %s\n", names[i], expect, rc, msg);
        }
        free(text);
        free(names[i]);
    }
    assert_int_equal(bad, 0);
}

static void check_reports_line(void **state)
{
    (void)state;
    const char *src = "local x = 1\n\nx = = 2\n";
    assert_int_equal(lua_check("broken", src, strlen(src), NULL), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "broken:3:"));
    const char *rt = "local t = nil\nreturn t.x\n";
    assert_int_equal(lua_check("runtime", rt, strlen(rt), NULL), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "runtime:2:"));
    /* text chunks only: a binary chunk is refused by the loader itself */
    const char bin[] = "\x1bLua\x54\x00";
    assert_int_equal(lua_check("binary", bin, sizeof bin - 1, NULL), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "binary"));
    assert_int_equal(lua_check("Bad Name", "", 0, NULL), KITH_EINVAL);
}

static void budgets_are_configurable(void **state)
{
    (void)state;
    /* a tight time budget stops a loop that the default would also stop;
     * a small memory budget stops what the default allows */
    lua_limits_t tight = {.mem_state = 4u << 20, .mem_call = 1u << 20, .time_ms = 10000};
    const char *alloc = "local t = {} for i = 1, 30000 do t[i] = {i, i} end";
    assert_int_equal(lua_check("alloc", alloc, strlen(alloc), NULL), 0);
    assert_int_not_equal(lua_check("alloc", alloc, strlen(alloc), &tight), 0);
    assert_non_null(strstr(err_last()->msg, "memory budget"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_suite),
        cmocka_unit_test(check_reports_line),
        cmocka_unit_test(budgets_are_configurable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
