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

/* A whole file, NUL-terminated (free()), its length in *len; NULL if it
 * cannot be opened. */
char *tu_slurp(const char *path, size_t *len);
/* The files of $KITH_SOURCE_DIR/<rel> whose names start with prefix and end
 * with suffix, sorted (strdup'd into names, at most max); *dir gets the
 * directory. Fails the test if the directory cannot be read. */
size_t tu_source_files(const char *rel, const char *prefix, const char *suffix, char **names,
                       size_t max, char *dir, size_t dircap);

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

/* An op's error message, or "" when it succeeded (for failure messages). */
#define tu_op_msg(op) ((op)->diag ? (op)->diag->msg : "")

#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        int rc__ = (expr);                                                                         \
        if (rc__ != 0)                                                                             \
            fail_msg("%s -> %d (%s): %s", #expr, rc__, err_name(rc__), err_last()->msg);           \
    } while (0)

/* ---- bulk writes, plans and checks (query, filter, index and schema tests) ---- */

/* Submits every op with store_submit and runs a private libuv loop until all
 * have completed, so the writer can group them into few commits (fast bulk
 * loads). The caller checks each op->status and frees the ops. */
void tu_exec_all(store_t *st, store_op_t **ops, size_t n);

/* Creates one record of coll per fields[i] (borrowed) through tu_exec_all;
 * asserts every create succeeded. ids (may be NULL) gets the new ids in order. */
void tu_create_many(store_t *st, const char *coll, json_t *const *fields, size_t n, kith_id_t *ids);

/* What store_query_plan names for the query ("eq stage", "scan", ...); fails
 * the test on an error. free() the result. */
char *tu_plan(store_t *st, const char *coll, const char *filter, const char *sort);

/* The collection's definition as clients see it (store_coll_to_json) in a
 * fresh snapshot, or NULL if there is no such collection. New reference. */
json_t *tu_coll_json(store_t *st, const char *coll);

/* Runs store_check and returns the number of problems, printing each. */
uint64_t tu_check_problems(store_t *st);

/* Records in coll, the change log's last sequence, and a consumer's cursor
 * (0 if never saved), each read in its own snapshot. */
uint64_t tu_count(store_t *st, const char *coll);
uint64_t tu_changes_last(store_t *st);
uint64_t tu_cursor(store_t *st, const char *consumer);

/* ---- writer gates, loops and raw LMDB edits ------------------------------ */

#include <lmdb.h>
#include <uv.h>

/* Holds the writer thread inside a custom op, so that every op submitted
 * meanwhile is queued and lands in the next batch. */
typedef struct tu_gate {
    uv_sem_t entered, release;
    uv_thread_t thread; /* runs store_exec of the gate op */
    store_t *st;
    store_op_t *op;
} tu_gate_t;
/* Returns once the writer is inside the gate op. */
void tu_gate_hold(store_t *st, tu_gate_t *g);
/* Lets the writer go on and waits until the gate's own batch has committed. */
void tu_gate_release(tu_gate_t *g);

/* A libuv loop on the test's thread with an inbox for store_submit. */
typedef struct tu_loop {
    uv_loop_t loop;
    loop_inbox_t inbox;
    uv_thread_t thread;
    size_t submitted, completed;
} tu_loop_t;
void tu_loop_init(tu_loop_t *l);
/* store_submit whose completion counts in l->completed, fails the test unless
 * it runs on the loop's thread, and increments *count (if not NULL). */
void tu_loop_submit(tu_loop_t *l, store_t *st, store_op_t *op, int *count);
/* Runs the loop until completed == submitted, then closes inbox and loop. */
void tu_loop_finish(tu_loop_t *l);

/* Opens an existing store in dir (create off). */
store_t *tu_store_reopen(const char *dir, int no_writer);

/* With the store closed: opens dir's environment with plain LMDB and runs fn
 * in one write transaction on database db ("records", "index", "log", ...),
 * committing it if fn returns 0. Fails the test on any LMDB error. */
typedef int (*tu_raw_fn)(MDB_txn *txn, MDB_dbi dbi, void *ctx);
void tu_raw_edit(const char *dir, const char *db, tu_raw_fn fn, void *ctx);

/* Runs store_check, collecting every problem message (joined by '\n') into
 * *problems (free()); returns the report. Asserts the walk itself succeeds. */
store_check_report_t tu_check(store_t *st, char **problems);

#endif
