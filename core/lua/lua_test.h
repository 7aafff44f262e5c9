/*
 * lua/lua_test: the runner of `kith test` — admin-written Lua tests
 * (describe, it, expect, before_each, after_each) in a sandboxed state of
 * their own, with the `kith` API working at test level against a store whose
 * writer runs the workspace's scripts (core/main/cmd_test.c gives it a
 * throw-away copy of the workspace).
 *
 * Output, one line per test: "ok N - outer > inner > name", or "not ok N -
 * ..." followed by "  # file:line: message". N counts across files.
 */
#ifndef KITH_LUA_TEST_H
#define KITH_LUA_TEST_H

#include "bus/bus.h"
#include "lua/lua_host.h"
#include "store/store.h"

#include <stdint.h>
#include <stdio.h>

#define LUA_TEST_TIME_MS   1000 /* running time per `it` (waits for the store not counted) */
#define LUA_TEST_SETTLE_MS 5000 /* how long a write waits for its after-hooks */

typedef struct lua_test_env {
    store_t *st; /* where tests read and write; its writer runs the hooks */
    bus_t *bus;  /* st's bus (NULL: no after-hooks to wait for) */

    FILE *out;               /* the report */
    unsigned passed, failed; /* so far, across files */
} lua_test_env_t;

/* Compiles a test file (named path in messages) without running it: 0, or
 * KITH_EINVAL with "path:line: message". Any thread. */
int lua_test_check(const char *path, const char *src, size_t len);

/* Runs a test file: its top level (which declares the tests), then each `it`
 * in order under its own budget, printing one line per test to env->out and
 * counting it in env. An error at the top level is reported as one failed
 * test named after the file. 0, or KITH_EINVAL if the file does not compile
 * (nothing printed). Any thread but st's writer. */
int lua_test_run(lua_test_env_t *env, const char *path, const char *src, size_t len);

/* Waits until every after-hook of env->bus caught up with what committed, at
 * most LUA_TEST_SETTLE_MS (then logs a warning and returns KITH_EBUSY). */
int lua_test_settle(lua_test_env_t *env);

#endif
