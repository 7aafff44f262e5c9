/*
 * store/store_int: what the store's own files share. Not for other modules.
 */
#ifndef KITH_STORE_INT_H
#define KITH_STORE_INT_H

#include "store/store.h"
#include "store/store_filter.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#define STORE_FORMAT        1 /* meta "format": layout of this environment */
#define STORE_MAP_DEFAULT   ((size_t)64 << 20)
#define STORE_BATCH_DEFAULT 1024
#define STORE_POOL_MAX      32

/* Record value: 32-byte header, then the fields as compact JSON. */
#define REC_FORMAT  1
#define REC_HDR_LEN 32
/* Record key: collection id (u32 BE) + record id. */
#define RKEY_LEN 20

/* Index key: index id (u32 BE) + tag + encoded value; data: the record id. */
#define IKEY_TAG_NULL  0x00 /* field missing: keeps every record in sort order */
#define IKEY_TAG_VALUE 0x01
#define IKEY_VALUE_MAX 400 /* longer values are truncated in the index only */
#define IKEY_MAX       (4 + 1 + IKEY_VALUE_MAX)

/* Internal codes the writer intercepts (never reported to callers): the
 * diagnostic carries the public code (KITH_ENOSPC, KITH_ELIMIT, KITH_EIO). */
#define STORE_EMAPFULL      (-1000) /* grow the map and run the batch again */
#define STORE_ETXNFULL      (-1001) /* split the batch */
#define STORE_ERESIZED      (-1002) /* another process grew the map: adopt it */
#define STORE_RETRYABLE(rc) ((rc) <= STORE_EMAPFULL && (rc) >= STORE_ERESIZED)

enum store_db {
    DB_RECORDS,
    DB_INDEX,
    DB_LOG,
    DB_CURSORS,
    DB_IDEM,
    DB_META,
    DB_AUDIT,
    DB_SCHED,
    DB__COUNT
};

enum store_job_kind { JOB_BUILD = 1, JOB_DROP = 2 };

struct store {
    char *dir;
    store_opts_t opts;
    MDB_env *env;
    MDB_dbi dbi[DB__COUNT];
    size_t map_size;
    size_t file_end;  /* bytes of data.mdb known written (zero-filled ahead); writer only */
    size_t fill_used; /* LMDB's used bytes at the last fill step; writer only */
    int fill_due;     /* a commit happened since the last fill step; writer only */
    int filling;      /* below half the margin: stepping back up to all of it */

    /* Readers hold it shared for the life of a read txn; the writer holds it
     * exclusively to remap (grow) or reopen the environment, which LMDB allows
     * only with no transaction active in the process. Writer-preferring. */
    pthread_rwlock_t env_lock;

    pthread_mutex_t schema_lock; /* guards schema */
    store_schema_t *schema;      /* newest set any thread has loaded */

    pthread_mutex_t pool_lock; /* guards pool, npool */
    store_rtxn_t *pool[STORE_POOL_MAX];
    int npool;

    /* Writer queue: q_lock guards q_head, q_tail, q_len, stopping, q_wake. */
    uv_mutex_t q_lock;
    uv_cond_t q_cond;
    store_op_t *q_head;
    store_op_t *q_tail;
    size_t q_len;
    size_t q_wake; /* signal q_cond when q_len reaches this (0: never) */
    int stopping;
    uv_thread_t writer;
    int writer_started;
    /* Results the writer allocated (op->json) and another thread released:
     * the writer frees them itself. A free into another thread's malloc
     * arena takes that arena's lock, and thousands of them per batch made
     * the writer's own mallocs wait (~30% of a create's cost). */
    struct store_grave *grave;

    /* Owned by the writer thread (or the caller when there is none). */
    store_schema_t *wschema; /* as of the last commit */
    uint64_t seq;            /* last change-log sequence committed */
    kith_id_t last_id;       /* the newest record id this writer minted */
    size_t recent_batch[8];  /* sizes of the last batches (group-commit settling) */
    size_t nbatches;
    int64_t idem_purged_us;

    /* jobs_lock guards njobs; jobs_cond signals when it drops to zero. */
    uv_mutex_t jobs_lock;
    uv_cond_t jobs_cond;
    size_t njobs;

    atomic_uint_fast64_t n_commits, n_ops, n_ops_failed, n_batch_max, n_grows, n_reopens;
    atomic_uint_fast64_t batch_hist[STORE_BATCH_BUCKETS], batch_sum;
    atomic_int fault;

    /* core/bus's hooks (set before the first op); deliver_at_us: when the
     * writer calls deliver next (0: after the next commit); hooks_kick asks
     * for a call now (any thread, under q_lock). */
    const store_hooks_t *hooks;
    void *hooks_ctx;
    int deliver_on_commit;   /* writer only */
    int64_t deliver_wake_us; /* writer only; 0: none */
    uint64_t delivered_upto; /* writer only: committed seq deliver last saw */
    int hooks_kick;          /* under q_lock */
};

struct store_rtxn {
    store_t *st;
    MDB_txn *txn;
    store_schema_t *schema;
};

struct store_wtxn {
    store_t *st;
    MDB_txn *txn;           /* the current op's nested transaction */
    store_schema_t *schema; /* includes the batch's earlier schema changes */
    uint64_t seq;           /* last change-log sequence, including this batch */
    int64_t now_us;         /* the clock, read when the batch opens and again each time it
                               takes more ops (never before their requests arrived) */
    uint64_t committed;     /* last sequence committed before this batch */
    const char *origin;     /* the handler writing now (logged with changes), or NULL */
    int depth;              /* its cascade depth (0: a client's write) */
    int retry;              /* a nested write hit a STORE_RETRYABLE code */
    struct {                /* records whose before-hooks run now (innermost last) */
        const char *coll;
        kith_id_t id;
    } handling[16];
    int nhandling;
    int schema_changed;
    int jobs_changed;
    uint64_t audit_seq;  /* the audit log's last entry (0: not read yet) */
    char audit_prev[64]; /* and its hash, hex */
    /* One entry for a run of writes of one request (store_audit.c): the op
     * whose entry may join the run, whether it did, and the run so far. */
    const store_op_t *audit_defer_op;
    int audit_deferred;
    struct {
        const store_op_t *first; /* NULL: no run */
        buf_t ids, fields;
    } arun;
};

/* ---- store_env.c ---- */
/* Maps an LMDB or errno code to KITH_E* (or STORE_E*) with a diagnostic. */
int store_mdb_err(int rc, const char *what);
/* LMDB codes are positive (errno) or below -30000; ours are small negatives. */
static inline int store_rc(int rc, const char *what)
{
    return (rc > 0 || rc <= -30000) ? store_mdb_err(rc, what) : rc;
}
void store_rkey(uint8_t out[RKEY_LEN], uint32_t coll_id, const kith_id_t *id);
int store_meta_get_u64(MDB_txn *txn, store_t *st, const char *key, uint64_t *v);
int store_meta_put_u64(MDB_txn *txn, store_t *st, const char *key, uint64_t v);
/* Grows the map (doubling) with every reader of this process held off. */
int store_env_grow(store_t *st);
/* Keeps zero-filled space ahead of LMDB's last page, so a commit rarely
 * grows the file (growing it costs a journal commit on every fdatasync).
 * Writer thread only, after a batch's completions went out. */
void store_env_fill_ahead(store_t *st);
/* Takes the map size another process has set. */
int store_env_adopt(store_t *st);
/* Closes and reopens the environment after MDB_PANIC. Writer thread only. */
int store_env_reopen(store_t *st);
int store_rtxn_begin_raw(store_t *st, MDB_txn **out);

/* ---- store_schema.c ---- */
store_schema_t *schema_set_new(uint64_t gen);
/* A copy of s with c added or replacing the collection of the same name
 * (takes ownership of c) and gen set to gen. */
store_schema_t *schema_set_with(const store_schema_t *s, store_coll_t *c, uint64_t gen);
store_coll_t *schema_coll_clone(const store_coll_t *c);
void schema_coll_free(store_coll_t *c);
/* Parses a client definition (no ids or states). */
int schema_coll_parse(const json_t *def, int system, store_coll_t **out);
json_t *schema_coll_to_stored(const store_coll_t *c);
int schema_coll_from_stored(const json_t *j, store_coll_t **out);
int schema_load(store_t *st, MDB_txn *txn, store_schema_t **out);
/* Schema set for a read snapshot, from the cache or loaded. New reference. */
int schema_for_txn(store_t *st, MDB_txn *txn, store_schema_t **out);
/* Applies a definition change inside w (the STORE_OP_SCHEMA / _FIELD ops). */
int schema_apply(store_wtxn_t *w, store_op_t *op, store_coll_t *newc);

/* ---- store_validate.c ---- */
enum { VALIDATE_CREATE = 1, VALIDATE_REPLACE = 2, VALIDATE_UPDATE = 3 };
/* Checks fields against c and returns the canonical object in schema order
 * (new reference), or NULL with KITH_EVALIDATION and the offending fields. w
 * (may be NULL) is used to check that refs point at existing records; refs
 * equal to those in old (the record before an update, or NULL) are not. */
json_t *store_validate(store_wtxn_t *w, const store_coll_t *c, const json_t *in, const json_t *old,
                       int mode);
/* store_validate again, in place, for rec, a record it returned that a
 * before-hook amended: only the values that are not the ones it had before
 * the hook (pre, indexed like c->fields, each holding a reference) are
 * checked, and the keys are put back in schema order. 0, or
 * KITH_EVALIDATION as store_validate's NULL. */
int store_revalidate(store_wtxn_t *w, const store_coll_t *c, json_t *rec, json_t *const *pre,
                     const json_t *old, int mode);
/* Canonical form of one value of field f, or NULL with a message in *why. */
json_t *store_value_canon(const store_field_t *f, int type, const json_t *v, const char **why);
int store_field_default_ok(const store_field_t *f);

/* ---- store_key.c ---- */
/* Appends the order-preserving encoding of a scalar v of the given type to out.
 * truncate: cut strings at IKEY_VALUE_MAX (index keys). prefix_fold: fold ASCII
 * case (searchable indexes and the prefix operator). 0 or KITH_EINVAL. */
int store_key_encode(int type, const json_t *v, int truncate, int fold, buf_t *out);
void store_key_u64(buf_t *out, uint64_t v);
void store_key_i64(buf_t *out, int64_t v);

/* ---- store_index.c ---- */
typedef struct keyset {
    buf_t data;  /* the keys, back to back */
    size_t *off; /* start of key i in data */
    size_t *len;
    size_t n, cap;
} keyset_t;
/* The index keys (full, with index id and tag) of record fields for one index. */
int store_index_keys(const store_field_t *f, int prefix, uint32_t index_id, const json_t *fields,
                     keyset_t *ks);
void keyset_init(keyset_t *ks);
void keyset_free(keyset_t *ks);
/* Moves every index of c from the record's old fields to its new ones (either
 * may be NULL), refusing duplicates on unique indexes. */
int store_index_update(store_wtxn_t *w, const store_coll_t *c, const kith_id_t *id,
                       const json_t *old_fields, const json_t *new_fields);
/* Fills a unique index for every existing record (inside the schema op). */
int store_index_build_all(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f);
/* Persists a job; the writer runs it in steps between batches. */
int store_job_add(store_wtxn_t *w, int kind, uint32_t coll_id, const char *field, int prefix,
                  uint32_t index_id);
/* Runs one bounded step of the first pending job in its own transaction.
 * Returns 1 if jobs remain, 0 if none, or an error. Writer thread only. */
int store_jobs_step(store_t *st);
size_t store_jobs_count(store_t *st, MDB_txn *txn);

/* ---- store_record.c ---- */
void store_rec_encode(buf_t *out, uint32_t coll_id, const kith_id_t *id, uint64_t version,
                      int64_t created_us, int64_t updated_us, const char *json, size_t json_len);
int store_rec_decode(const store_coll_t *c, const kith_id_t *id, const MDB_val *v,
                     store_record_t *rec);
int store_rec_get(store_t *st, MDB_txn *txn, const store_coll_t *c, const kith_id_t *id,
                  store_record_t *rec);

/* ---- store_log.c ---- */
int store_log_append(store_wtxn_t *w, int op, const store_coll_t *c, const kith_id_t *id,
                     uint64_t version, const char *const *changed, size_t nchanged,
                     const json_t *before);

/* ---- store_idem.c ---- */
int store_idem_lookup(store_wtxn_t *w, store_op_t *op, const uint8_t fp[32], int *found);
int store_idem_save(store_wtxn_t *w, const store_op_t *op, const uint8_t fp[32]);
int store_idem_purge(store_t *st, MDB_txn *txn, int64_t now_us, size_t max);
void store_op_fingerprint(const store_op_t *op, uint8_t fp[32]);

/* ---- store_audit.c ---- */
/* Appends op's audit entry (if it asked for one) in w. For the batch's own op
 * (w->audit_defer_op) a record write's entry is left for its run instead:
 * w->audit_deferred says so, and the writer adds it once the op's nested
 * transaction committed. */
int store_audit_op(store_wtxn_t *w, store_op_t *op);
/* Whether op's entry would join the run in progress (or there is none). */
int store_audit_run_joins(const store_wtxn_t *w, const store_op_t *op);
/* Adds the committed op to the run (starting one if there is none). */
void store_audit_run_add(store_wtxn_t *w, const store_op_t *op);
/* Writes the run's one entry in w->txn and ends the run (0 if none). */
int store_audit_run_flush(store_wtxn_t *w);
void store_audit_run_free(store_wtxn_t *w);
/* Results the writer allocated and another thread released, for the writer
 * to free (store_op_free). Shared by the store and every op submitted to it
 * (reference-counted), so an op freed after its store closed is safe. */
typedef struct store_grave {
    atomic_int refs;
    uv_mutex_t lock;
    int live; /* the writer runs and drains (under lock) */
    uv_thread_t writer;
    void **v;
    atomic_size_t n; /* read without the lock by the writer, as a hint */
    size_t cap;
} store_grave_t;

store_grave_t *store_grave_new(void);
void store_grave_unref(store_grave_t *g);
/* The writer thread starts or stops draining g (stop frees what is left). */
void store_grave_live(store_grave_t *g, int live);
/* Frees what other threads handed back. Writer thread. */
void store_grave_drain(store_grave_t *g);
int store_audit_verify(store_t *st, MDB_txn *txn, uint64_t *count,
                       void (*problem)(void *, const char *), void *ctx);
/* ---- store_timer.c ---- */
/* Counts timers and checks both keys of each agree. */
int store_timer_verify(store_t *st, MDB_txn *txn, uint64_t *count,
                       void (*problem)(void *, const char *), void *ctx);

/* ---- store_op.c ---- */
/* Runs op inside w (the op's nested transaction). */
int store_op_run(store_wtxn_t *w, store_op_t *op);
int store_log_cursor_put(store_wtxn_t *w, const char *consumer, uint64_t seq);
/* Forgets results of an earlier attempt (the batch is being retried). */
void store_op_reset(store_op_t *op);

/* ---- store_filter.c (planner's view of a compiled filter) ---- */
enum fnode_kind { FN_TRUE, FN_AND, FN_OR, FN_NOT, FN_CMP, FN_IN, FN_PREFIX, FN_EXISTS };
enum fnode_cmp { CMP_EQ, CMP_NE, CMP_LT, CMP_LTE, CMP_GT, CMP_GTE };

typedef struct fnode {
    int kind;
    int cmp;
    const store_field_t *field;
    struct fnode **kids;
    size_t nkids;
    buf_t vals; /* encoded operands back to back (untruncated; folded for prefix) */
    size_t *voff;
    size_t *vlen;
    size_t nvals;
    int exists;
} fnode_t;

struct store_filter {
    fnode_t *root;
    int needs_fields; /* some term reads a stored field (not only pseudo-fields) */
};

/* Matching without one conjunctive term that the access path already proved
 * (skip: a term reached from the root through ANDs only, or NULL). */
int store_filter_match_skip(const store_filter_t *f, const fnode_t *skip, const store_record_t *rec,
                            const json_t *fields);
/* Whether matching without skip reads stored fields (so records need parsing). */
int store_filter_needs_fields_skip(const store_filter_t *f, const fnode_t *skip);

#endif
