/*
 * tests/unit/testutil: helpers shared by the cmocka unit tests. Each test
 * works in its own temporary directory, removed afterwards.
 */
#ifndef KITH_TESTUTIL_H
#define KITH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/json.h"
#include "store/store.h"

/* A fresh directory under $TMPDIR (or /tmp); free() the result. */
char *tu_tmpdir(void);
/* rm -rf path. */
void tu_rmtree(const char *path);

/* Parses JSON text that the test knows to be valid (fails the test if not). */
json_t *tu_json(const char *text);

/* Opens a store in a new directory: with a writer thread unless no_writer. */
store_t *tu_store_open(char **dir, int no_writer, size_t map_size);
void tu_store_close(store_t *st, char *dir);

/* Runs a schema op with the given JSON definition; asserts success. */
void tu_schema(store_t *st, const char *def);

/* Creates a record from JSON text; returns the op status, id in *id. */
int tu_create(store_t *st, const char *coll, const char *fields, kith_id_t *id);

/* Counts rows of a query, collecting up to cap ids; asserts no error. */
size_t tu_query_ids(store_t *st, const char *coll, const char *filter, const char *sort,
                    kith_id_t *ids, size_t cap);

#define assert_ok(expr)                                                                    \
    do {                                                                                   \
        int rc__ = (expr);                                                                 \
        if (rc__ != 0) fail_msg("%s -> %d (%s): %s", #expr, rc__, err_name(rc__),          \
                                err_last()->msg);                                          \
    } while (0)

#endif
