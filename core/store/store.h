/*
 * store: one LMDB environment per workspace — records, schemas, secondary
 * indexes, the change log, consumer cursors and idempotency keys — written by
 * one writer thread with group commit.
 *
 * Threads. Reads run on any thread inside a read transaction (store_read_begin
 * .. store_read_end) that must not outlive one callback. Writes are ops
 * submitted to the writer thread; each op runs in its own nested transaction,
 * a batch of ops commits once with a full fsync, and only then does each op
 * complete: through a loop_inbox on the submitter's libuv loop
 * (store_submit), or by waking a blocked caller (store_exec).
 *
 * Errors are KITH_E* codes with the thread-local diagnostic (base/err.h).
 * See README.md for the on-disk layout and the filter grammar.
 */
#ifndef KITH_STORE_H
#define KITH_STORE_H

#include "base/buf.h"
#include "base/err.h"
#include "base/id.h"
#include "loop/loop_inbox.h"
#include "store/store_schema.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;
typedef struct store_rtxn store_rtxn_t;
typedef struct store_wtxn store_wtxn_t;
typedef struct store_op store_op_t;

/* ---- environment ------------------------------------------------------- */

typedef struct store_opts {
    size_t map_size;  /* initial map size in bytes; 0 = 64 MiB. Grows on demand. */
    int read_only;    /* no writes at all (check, export, backup) */
    int create;       /* create the directory if it does not exist */
    int no_writer;    /* no writer thread: store_exec runs ops on the caller's thread */
    size_t batch_max; /* most ops per commit; 0 = 1024 */
} store_opts_t;

/* Opens (or with opts->create, creates) the environment in dir. Fails with
 * KITH_ENOTFOUND (no such directory), KITH_EPERM (unreadable), KITH_ELOCKED,
 * KITH_ECORRUPT (not an LMDB environment, or a newer format) or KITH_EIO.
 * The caller owns *out; close it with store_close. */
int store_open(store_t **out, const char *dir, const store_opts_t *opts);

/* Runs every op already queued, stops the writer and closes the environment.
 * Ops submitted later complete with KITH_ESHUTDOWN. Not from the writer thread. */
void store_close(store_t *st);

const char *store_dir(const store_t *st);

/* ---- reading ------------------------------------------------------------ */

/* A consistent snapshot. Cheap (transactions are pooled); never keep one across
 * loop iterations: a long reader stops LMDB from reusing pages. Any thread. */
int store_read_begin(store_t *st, store_rtxn_t **out);
void store_read_end(store_rtxn_t *rt);

/* The schemas as of this snapshot; valid until store_read_end. */
const store_schema_t *store_read_schema(const store_rtxn_t *rt);

/* A stored record as it sits in the map: valid until store_read_end. */
typedef struct store_record {
    kith_id_t id;
    const store_coll_t *coll;
    uint64_t version;
    int64_t created_us;
    int64_t updated_us;
    const char *json; /* the fields, a compact JSON object */
    size_t json_len;
} store_record_t;

/* Looks up one record; verifies its checksum. KITH_ENOTFOUND (no such
 * collection or record) or KITH_ECORRUPT (checksum mismatch). */
int store_get(store_rtxn_t *rt, const char *coll, const kith_id_t *id, store_record_t *rec);

/* Appends the record as one JSON object: {"id","version","created_at",
 * "updated_at", ...fields}. Splices the stored JSON, no parsing. */
void store_record_render(buf_t *b, const store_record_t *rec);

/* The record's fields as a new jansson object (no id/version/times). */
json_t *store_record_fields(const store_record_t *rec);

/* Number of records in a collection (walks the collection). */
int store_count(store_rtxn_t *rt, const char *coll, uint64_t *count);

/* ---- queries (grammar: README.md) --------------------------------------- */

typedef struct store_query {
    const char *coll;
    const json_t *filter; /* NULL = everything */
    const char *sort;     /* field name, "-field" for descending; NULL = id order */
    size_t limit;         /* 0 = 50 */
    const char *cursor;   /* from a previous page, or NULL */
    size_t examine_max;   /* stop after examining this many records; 0 = no cap */
} store_query_t;

/* Called once per matching record, in result order. Return 0 to go on, or a
 * KITH_E* code to stop the query with that code. */
typedef int (*store_row_fn)(void *ctx, const store_record_t *rec);

/* Runs q in rt. On success *next_cursor is a new string (free()) to fetch the
 * next page, or NULL when there are no more results. Errors: KITH_ENOTFOUND
 * (collection), KITH_EINVAL (filter, sort or cursor; the message says where). */
int store_query(store_rtxn_t *rt, const store_query_t *q, store_row_fn fn, void *ctx,
                char **next_cursor);

/* How q would run: "index:<field> eq", "scan", ... (for tests and EXPLAIN). */
int store_query_plan(store_rtxn_t *rt, const store_query_t *q, buf_t *out);
/* Runs q page after page (q->cursor ignored; 1,000 a page unless q->limit
 * says otherwise) until every match was passed to fn, in one snapshot. */
int store_query_all(store_rtxn_t *rt, const store_query_t *q, store_row_fn fn, void *ctx);

/* ---- change log ---------------------------------------------------------- */

enum store_change_op {
    STORE_CHANGE_CREATE = 1,
    STORE_CHANGE_UPDATE = 2,
    STORE_CHANGE_DELETE = 3,
    STORE_CHANGE_EVENT = 4, /* a domain event (store_wtxn_emit): coll is "_event" */
};

typedef struct store_change {
    uint64_t seq;
    int64_t time_us;
    int op;           /* enum store_change_op */
    const char *coll; /* collection name */
    kith_id_t id;
    uint64_t version; /* record version after the change (the deleted one for deletes) */
    size_t nchanged;  /* names of the fields the change touched */
    const char *changed[STORE_FIELDS_MAX];
    const char *before; /* JSON object of the previous values of changed fields
                           (the whole record for deletes; the payload of an
                           event), or NULL */
    size_t before_len;
    const char *event;  /* the event's name (STORE_CHANGE_EVENT), else NULL */
    const char *origin; /* the handler that wrote it, or NULL (a client) */
    int depth;          /* cascade depth: 0 for a client's write */
} store_change_t;

typedef int (*store_change_fn)(void *ctx, const store_change_t *ch);

/* Calls fn for each change with seq > after, in order, at most limit (0 = all).
 * Strings are valid during the call only. */
int store_changes(store_rtxn_t *rt, uint64_t after, size_t limit, store_change_fn fn, void *ctx);

/* The last sequence number written (0 for an empty log). */
uint64_t store_changes_last(store_rtxn_t *rt);

/* Appends one change as JSON {"seq","time","op","collection","id","version","changed"}. */
void store_change_render(buf_t *b, const store_change_t *ch);

/* A durable consumer cursor (0 if the consumer never saved one). */
int store_cursor_get(store_rtxn_t *rt, const char *consumer, uint64_t *seq);

/* ---- writing --------------------------------------------------------------- */

enum store_op_kind {
    STORE_OP_CREATE = 1,
    STORE_OP_UPDATE, /* JSON merge patch (RFC 7396) */
    STORE_OP_REPLACE,
    STORE_OP_DELETE,
    STORE_OP_SCHEMA, /* create or alter a collection */
    STORE_OP_FIELD,  /* add or change one field of a collection */
    STORE_OP_CURSOR, /* save a consumer cursor */
    STORE_OP_CUSTOM, /* caller's function on the writer thread */
    STORE_OP_AUDIT,  /* an audit entry only (a read that revealed data) */
    STORE_OP_UPSERT, /* update the record whose unique `field` matches, or create */
};

typedef void (*store_done_fn)(store_op_t *op, void *ctx);
typedef int (*store_custom_fn)(store_wtxn_t *w, store_op_t *op);
/* Runs inside the op's transaction before a create, update, replace or
 * delete is written, with the record's fields before (NULL for a create) and
 * after (NULL for a delete). Return 0 to go on, or a KITH_E* code (with
 * err_set) to fail the op: permission checks that cannot race with writes. */
typedef int (*store_guard_fn)(store_wtxn_t *w, store_op_t *op, const json_t *before,
                              const json_t *after);

/* One write. Build with a store_op_* constructor, submit once, read the result
 * fields after completion, free with store_op_free. */
struct store_op {
    /* input (set by the constructors) */
    int kind;
    char coll[STORE_NAME_MAX];
    char field[STORE_NAME_MAX];
    kith_id_t id;
    int has_id;          /* create: use id instead of a new one */
    json_t *data;        /* record fields, patch, or definition (owned ref,
                            released with the op) */
    uint64_t if_version; /* update/replace/delete: 0 = any version */
    char *idem_key;      /* optional idempotency key */
    uint64_t cursor_seq;
    char *consumer;
    store_custom_fn custom;
    void *udata;          /* for the caller and custom ops */
    int system;           /* may touch system collections (names starting '_') */
    int no_record;        /* the caller needs no json result: the writer frees it
                             itself (bulk loads; a free on another thread costs
                             a malloc-arena lock) */
    store_guard_fn guard; /* optional, see store_guard_fn */
    json_t *audit;        /* optional: audit this write as {"actor","request",...} (owned
                             ref); the entry is written in the change's transaction */

    /* result (valid after completion) */
    int status;       /* 0 or KITH_E* */
    err_diag_t *diag; /* why, when status != 0 (NULL on success) */
    kith_id_t rid;    /* the record written */
    uint64_t version;
    int64_t created_us;
    int64_t updated_us;
    char *json; /* the record's fields as stored (compact JSON) */
    size_t json_len;
    uint64_t seq;           /* change-log sequence of this write; 0 if none */
    int nochange;           /* update that changed nothing: nothing written */
    int idem_replayed;      /* result of an earlier op with the same key */
    int upserted;           /* upsert: 1 created, 2 updated (or unchanged: nochange) */
    store_schema_t *schema; /* success: the schemas the write ran against (a
                               reference the op holds), to render the result
                               without a read transaction */

    /* plumbing (private) */
    struct store_grave *grave; /* its store's, once submitted (store_int.h) */
    store_op_t *next;
    loop_task_t task;
    loop_inbox_t *inbox;
    store_done_fn done;
    void *done_ctx;
    void *waiter;
};

store_op_t *store_op_create(const char *coll, json_t *fields);
store_op_t *store_op_update(const char *coll, const kith_id_t *id, json_t *patch,
                            uint64_t if_version);
store_op_t *store_op_replace(const char *coll, const kith_id_t *id, json_t *fields,
                             uint64_t if_version);
store_op_t *store_op_delete(const char *coll, const kith_id_t *id, uint64_t if_version);
/* def: {"name": "...", "fields": [{...}, ...]} (see README.md). */
store_op_t *store_op_schema(json_t *def);
/* def: one field definition; its "name" must equal name. */
store_op_t *store_op_field(const char *coll, const char *name, json_t *def);
store_op_t *store_op_cursor_set(const char *consumer, uint64_t seq);
/* Merges fields (RFC 7396) into the record whose unique field `match` has the
 * same value, or creates one. match must be a ready unique index. With match
 * "", the create is tried and, if it fails because a record exists (a unique
 * value, or a before-hook's duplicate check naming the record), that record
 * is updated instead. op->upserted: 1 created, 2 updated. */
store_op_t *store_op_upsert(const char *coll, const char *match, json_t *fields);
store_op_t *store_op_custom(store_custom_fn fn, void *udata);
/* An audit entry alone: entry is {"actor","request","action","collection",
 * "ids","fields"} (taken as a new reference). */
store_op_t *store_op_audit(json_t *entry);
/* Audit the op's write with who (a new reference): {"actor","request"}. */
void store_op_set_audit(store_op_t *op, json_t *who);

/* Constructors take a new reference to any json_t passed in. */
/* Sets the idempotency key: a later op with the same key within 24 hours
 * returns this op's result and writes nothing (an op with the same key but a
 * different request fails with KITH_ECONFLICT). */
void store_op_set_idem(store_op_t *op, const char *key);
void store_op_free(store_op_t *op);

/* Queues op; done(op, ctx) runs later on inbox's loop thread. Any thread. */
void store_submit(store_t *st, store_op_t *op, loop_inbox_t *inbox, store_done_fn done, void *ctx);

/* Runs op and waits for its commit; returns op->status with the diagnostic
 * restored on the calling thread. Any thread but the writer's. */
int store_exec(store_t *st, store_op_t *op);

/* ---- for custom ops and before-hooks (writer thread only) ---------------- */

/* The snapshot an op sees, including the batch's earlier ops. */
const store_schema_t *store_wtxn_schema(const store_wtxn_t *w);
int store_wtxn_get(store_wtxn_t *w, const char *coll, const kith_id_t *id, store_record_t *rec);
int64_t store_wtxn_now(const store_wtxn_t *w);

/* ---- hooks: before-writes and after-commit delivery (for core/bus) ------- */

/* A write about to happen, shown to the before hook inside its op's nested
 * transaction, after validation. */
typedef struct store_pending {
    int op; /* enum store_change_op */
    const store_coll_t *coll;
    kith_id_t id;
    const json_t *before;       /* stored fields (update, delete), or NULL */
    json_t *after;              /* fields to write (create, update), or NULL; the
                                   hook may change them and set amended */
    int amended;                /* after was changed: validate it again */
    const char *const *changed; /* the fields the write changes */
    size_t nchanged;
} store_pending_t;

typedef struct store_hooks {
    /* Writer thread, in the op's transaction. Return 0 to go on, or a KITH_E*
     * code with err_set (KITH_EVETO for a refusal) to fail the op. */
    int (*before)(void *ctx, store_wtxn_t *w, store_pending_t *p);
    /* Writer thread, at the start of a batch when due, in the batch's
     * transaction: deliver what committed before it to after-hook consumers
     * (each delivery in store_wtxn_nested). Sets *on_commit when it wants a
     * call after every commit, and *wake_us to a time it wants a call at
     * even with nothing committed (0: none). Return 0, or a KITH_E* code. */
    int (*deliver)(void *ctx, store_wtxn_t *w, int *on_commit, int64_t *wake_us);
} store_hooks_t;

/* Installs hooks before the first write; h and ctx must outlive the store. */
void store_set_hooks(store_t *st, const store_hooks_t *h, void *ctx);
/* The last sequence the writer committed. Writer thread, or before it runs. */
uint64_t store_writer_seq(store_t *st);
/* Asks the writer to call deliver soon (new consumers, scripts). Any thread. */
void store_hooks_kick(store_t *st);

/* Runs fn(w, arg) in a nested transaction of w: kept if fn returns 0, undone
 * otherwise (and fn's code returned). Writer thread. */
int store_wtxn_nested(store_wtxn_t *w, int (*fn)(store_wtxn_t *w, void *arg), void *arg);
/* Runs a create, update, replace, delete or upsert op inside w, in its own
 * nested transaction (a failure undoes only it); its before-hooks run, and
 * its change is logged with w's origin one level deeper. Returns op->status,
 * with the diagnostic in the thread's err. The caller frees op. */
int store_wtxn_write(store_wtxn_t *w, store_op_t *op);
/* Appends a domain event to the change log (payload: a JSON text or NULL). */
int store_wtxn_emit(store_wtxn_t *w, const char *event, const char *payload, size_t len);
/* Who writes next: changes are logged with origin (a handler's name, or
 * NULL) and depth. Returns the previous depth. */
int store_wtxn_set_origin(store_wtxn_t *w, const char *origin, int depth);
const char *store_wtxn_origin(const store_wtxn_t *w);
int store_wtxn_depth(const store_wtxn_t *w);
/* Whether a write in w hit something the writer cures by running the whole
 * batch again (a full map): stop and return. */
int store_wtxn_retrying(const store_wtxn_t *w);
/* The last change-log sequence committed before this batch. */
uint64_t store_wtxn_committed(const store_wtxn_t *w);
/* ---- durable timers (the sched database, for core/sched) ---------------- */

/* fn sees the store's memory (copy what it keeps) and must not write;
 * nonzero stops the walk. */
typedef int (*store_timer_fn)(void *ctx, const char *id, int64_t due_us, const char *job,
                              size_t len);
/* Sets timer id (replacing one of the same id) to fire at due_us with job
 * bytes, in w: it exists exactly when w's write commits. */
int store_wtxn_timer_put(store_wtxn_t *w, const char *id, int64_t due_us, const char *job,
                         size_t len);
/* Removes timer id: 0, or KITH_ENOTFOUND. */
int store_wtxn_timer_del(store_wtxn_t *w, const char *id);
/* Reads timer id (job: a NUL-terminated copy to free, may be NULL):
 * 0, or KITH_ENOTFOUND. */
int store_wtxn_timer_get(store_wtxn_t *w, const char *id, int64_t *due_us, char **job,
                         size_t *len);
/* Timers due at or before until, in due order, at most limit (0: all). */
int store_wtxn_timers_due(store_wtxn_t *w, int64_t until, size_t limit, store_timer_fn fn,
                          void *ctx);
/* Timers whose id starts with prefix, in id order (in w, or a snapshot). */
int store_wtxn_timers_prefix(store_wtxn_t *w, const char *prefix, store_timer_fn fn, void *ctx);
int store_timers_prefix(store_rtxn_t *rt, const char *prefix, store_timer_fn fn, void *ctx);

/* store_changes, store_query, store_cursor_get, cursor put inside w. */
int store_wtxn_changes(store_wtxn_t *w, uint64_t after, size_t limit, store_change_fn fn,
                       void *ctx);
int store_wtxn_query(store_wtxn_t *w, const store_query_t *q, store_row_fn fn, void *ctx,
                     char **next_cursor);
int store_wtxn_query_all(store_wtxn_t *w, const store_query_t *q, store_row_fn fn, void *ctx);
int store_wtxn_cursor_get(store_wtxn_t *w, const char *consumer, uint64_t *seq);
int store_wtxn_cursor_put(store_wtxn_t *w, const char *consumer, uint64_t seq);

/* ---- audit log ---------------------------------------------------------------- */

/* Calls fn(ctx, seq, json, len) for each audit entry after seq `after`, at most
 * limit (0 = all): each entry is a JSON object {"seq","time","actor","request",
 * "action","collection","ids","fields","prev","hash"}. */
typedef int (*store_audit_fn)(void *ctx, uint64_t seq, const char *json, size_t len);
int store_audit_list(store_rtxn_t *rt, uint64_t after, size_t limit, store_audit_fn fn, void *ctx);

/* ---- maintenance ------------------------------------------------------------ */

#define STORE_BATCH_BUCKETS 7 /* batch sizes <= 1, 4, 16, 64, 256, 1024, more */

typedef struct store_stats {
    uint64_t commits; /* write transactions committed */
    uint64_t ops;     /* ops completed */
    uint64_t ops_failed;
    uint64_t batch_max; /* largest batch so far */
    uint64_t map_grows;
    uint64_t reopens;
    size_t map_size;
    size_t used_bytes;                        /* up to LMDB's last page */
    size_t file_bytes;                        /* data.mdb's size (zero-filled ahead) */
    size_t queued;                            /* ops waiting for the writer now */
    size_t jobs;                              /* index builds/drops pending */
    uint64_t batch_hist[STORE_BATCH_BUCKETS]; /* committed batches by size */
    uint64_t batch_sum;                       /* ops in committed batches */
} store_stats_t;

void store_stats_get(store_t *st, store_stats_t *out);

/* Blocks until no index build or drop is pending (for tests and the CLI). */
int store_jobs_wait(store_t *st);

/* Writes a compacting, consistent copy of the environment into dir (which
 * must exist and be empty). Safe while the writer runs. */
int store_backup(store_t *st, const char *dir);

/* ---- consistency check ------------------------------------------------------ */

typedef struct store_check_report {
    uint64_t collections;
    uint64_t records;
    uint64_t index_entries;
    uint64_t log_entries;
    uint64_t last_seq;
    uint64_t cursors;
    uint64_t idem_keys;
    uint64_t jobs;
    uint64_t audit_entries;
    uint64_t timers;
    uint64_t problems;
} store_check_report_t;

typedef void (*store_problem_fn)(void *ctx, const char *msg);

/* Walks one snapshot: every record's checksum and schema, every index entry
 * against its record and every record against its index entries, unique
 * indexes, the change log's sequence and the cursors. Calls fn once per
 * problem (naming the record or entry). Returns 0 if the walk completed
 * (problems are counted in rep), or an error if it could not. */
int store_check(store_t *st, store_check_report_t *rep, store_problem_fn fn, void *ctx);

/* ---- test hooks ---------------------------------------------------------------- */

enum store_fault {
    STORE_FAULT_NONE = 0,
    STORE_FAULT_COMMIT_PANIC = 1, /* the next batch commit fails as MDB_PANIC */
    STORE_FAULT_COMMIT_EIO = 2,   /* the next batch commit fails with EIO */
};
/* Makes the writer fail its next commit (the batch is aborted, never acked). */
void store_test_fault(store_t *st, int fault);

#endif
