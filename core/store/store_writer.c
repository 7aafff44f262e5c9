/*
 * store_writer: the one thread that writes. It takes every queued op (up to
 * batch_max), runs each in a nested transaction of one batch transaction,
 * commits once with a full sync, and only then completes the ops.
 *
 * Failure rules:
 *  - an op's own error aborts only its nested transaction;
 *  - MDB_MAP_FULL (anywhere) aborts the batch, doubles the map and runs the
 *    whole batch again (ops are pure functions of the transaction);
 *  - MDB_TXN_FULL splits the batch in halves;
 *  - a failed commit completes every op of the batch with KITH_EIO, never
 *    success; after MDB_PANIC the environment is closed and reopened.
 */
#include "store/store_int.h"

#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define IDEM_PURGE_EVERY_US (60LL * 1000000)

typedef struct waiter {
    uv_mutex_t lock;
    uv_cond_t cond;
    int done;
} waiter_t;

void store_writer_publish(store_t *st, store_schema_t *s)
{
    if (st->wschema) store_schema_unref(st->wschema);
    st->wschema = s;
    pthread_mutex_lock(&st->schema_lock);
    if (!st->schema || st->schema->gen < s->gen) {
        store_schema_t *old = st->schema;
        store_schema_ref(s);
        st->schema = s;
        if (old) store_schema_unref(old);
    }
    pthread_mutex_unlock(&st->schema_lock);
}

static void op_task_fn(loop_task_t *t)
{
    store_op_t *op = (store_op_t *)((char *)t - offsetof(store_op_t, task));
    op->done(op, op->done_ctx);
}

static void op_complete(store_t *st, store_op_t *op)
{
    atomic_fetch_add(&st->n_ops, 1);
    if (op->status) atomic_fetch_add(&st->n_ops_failed, 1);
    if (op->waiter) {
        waiter_t *w = op->waiter;
        uv_mutex_lock(&w->lock);
        w->done = 1;
        uv_cond_signal(&w->cond);
        uv_mutex_unlock(&w->lock);
    } else if (op->inbox) {
        op->task.fn = op_task_fn;
        loop_inbox_push(op->inbox, &op->task);
    } else if (op->done) {
        op->done(op, op->done_ctx);
    }
}

/* The op's diagnostic, allocated on its first failure. */
static err_diag_t *op_diag(store_op_t *op)
{
    if (!op->diag) op->diag = xmalloc(sizeof *op->diag);
    return op->diag;
}

static void op_fail_diag(store_op_t *op, const err_diag_t *d, int code)
{
    op->status = code;
    err_diag_t *od = op_diag(op);
    *od = *d;
    od->code = code;
}

static void op_fail(store_op_t *op, int code, const char *fmt, const char *detail)
{
    op->status = code;
    err_diag_t *d = op_diag(op);
    memset(d, 0, offsetof(err_diag_t, fields));
    d->code = code;
    snprintf(d->msg, sizeof d->msg, fmt, detail);
}

/* Whether the deliver hook should run at now_us (q_lock held); if not and
 * it asked for a time, *wait_ns (may be NULL) says how long until then. */
static int deliver_pending_locked(store_t *st, int64_t now_us, uint64_t *wait_ns)
{
    if (wait_ns) *wait_ns = 0;
    if (!st->hooks || !st->hooks->deliver) return 0;
    if (st->hooks_kick || (st->deliver_on_commit && st->seq > st->delivered_upto)) return 1;
    if (!st->deliver_wake_us) return 0;
    if (now_us >= st->deliver_wake_us) return 1;
    if (wait_ns) *wait_ns = (uint64_t)(st->deliver_wake_us - now_us) * 1000;
    return 0;
}

/* The same, taking the kick: the writer is about to deliver. */
static int deliver_due(store_t *st, int64_t now_us)
{
    if (!st->hooks || !st->hooks->deliver) return 0;
    uv_mutex_lock(&st->q_lock);
    int due = deliver_pending_locked(st, now_us, NULL);
    st->hooks_kick = 0;
    uv_mutex_unlock(&st->q_lock);
    return due;
}

static int run_one(store_wtxn_t *w, store_op_t *op)
{
    uint8_t fp[32];
    if (op->idem_key) {
        int found = 0;
        store_op_fingerprint(op, fp);
        int rc = store_idem_lookup(w, op, fp, &found);
        if (rc || found) return rc;
    }
    int rc = store_op_run(w, op);
    if (rc == 0) rc = store_audit_op(w, op);
    /* Also for an update that changed nothing: the key is used either way. */
    if (rc == 0 && op->idem_key) rc = store_idem_save(w, op, fp);
    return rc;
}

static void jobs_recount(store_t *st)
{
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) return;
    size_t n = store_jobs_count(st, txn);
    mdb_txn_abort(txn);
    uv_mutex_lock(&st->jobs_lock);
    st->njobs = n;
    if (n == 0) uv_cond_broadcast(&st->jobs_cond);
    uv_mutex_unlock(&st->jobs_lock);
}

static void reload_after_reopen(store_t *st)
{
    MDB_txn *txn;
    store_schema_t *s = NULL;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (schema_load(st, txn, &s) == 0) store_writer_publish(st, s);
        mdb_txn_abort(txn);
    }
}

/* Group commit works only if a batch holds every op that is ready. When a
 * commit completes, the loop resubmits its clients' next ops one by one; the
 * first one wakes us, and committing at once would split the burst (a batch of
 * 200, then one of 56, each paying a full fsync). So we expect as many ops as
 * the recent batches held and wait while they are still arriving: at most
 * SETTLE_STEP_NS for each next op, SETTLE_MAX_NS of waiting in all. A batch
 * takes no more once it holds as many as expected, so a steady stream cannot
 * hold its commit back. When one op is expected (a lone client), we do not
 * wait at all.
 *
 * The ops that have arrived run while the rest are still arriving: the batch
 * transaction is open from its first op, and the writer takes the next ones
 * from the queue as it reaches the end of what it has. Waiting for the whole
 * burst first and then running it left the writer idle while the I/O thread
 * parsed requests, and the I/O thread idle while the writer ran them: at 64
 * connections a third of each commit cycle. */
#define SETTLE_STEP_NS 50000
#define SETTLE_MAX_NS  2000000

/* A batch being gathered: ops[0..n) so far, room for cap. While pull is set
 * the writer takes more from the queue (batch_pull); a batch that runs again
 * (a grown map, a split) runs only what it has. */
typedef struct batch {
    store_op_t **ops;
    size_t n, cap;
    int pull;
    size_t expect;   /* as many as the recent batches held */
    uint64_t waited; /* ns spent waiting for ops */
} batch_t;

static size_t settle_expect(const store_t *st)
{
    size_t e = 1;
    for (size_t i = 0; i < ARRAY_LEN(st->recent_batch); i++)
        if (st->recent_batch[i] > e) e = st->recent_batch[i];
    return e < st->opts.batch_max ? e : st->opts.batch_max;
}

/* Appends the queued ops to b, waiting for them while the burst is still
 * arriving, until b holds as many as expected. Returns how many it took; 0
 * ends the gathering. */
static size_t batch_pull(store_t *st, batch_t *b)
{
    if (!b->pull || b->n >= b->expect) {
        b->pull = 0;
        return 0;
    }
    size_t got = 0;
    uv_mutex_lock(&st->q_lock);
    while (!st->q_head && !st->stopping && b->n < b->expect && b->waited < SETTLE_MAX_NS) {
        /* Submitters wake us only when the expected batch is complete: a
         * wake-up per op costs a context switch each (a third of the
         * writer's time in a VM); otherwise we look once per step. */
        uint64_t w0 = uv_hrtime();
        st->q_wake = b->expect - b->n;
        uv_cond_timedwait(&st->q_cond, &st->q_lock, SETTLE_STEP_NS);
        st->q_wake = 0;
        b->waited += uv_hrtime() - w0;
        if (!st->q_head) break; /* the burst is over */
    }
    while (st->q_head && b->n < b->cap) {
        store_op_t *op = st->q_head;
        st->q_head = op->next;
        op->next = NULL;
        b->ops[b->n++] = op;
        st->q_len--;
        got++;
    }
    if (!st->q_head) st->q_tail = NULL;
    uv_mutex_unlock(&st->q_lock);
    if (!got) b->pull = 0;
    return got;
}

/* Runs b's ops as one transaction, taking more while it gathers. Returns 0
 * when every op has a status, or STORE_ETXNFULL when the caller should split
 * the batch. */
static int batch_run(store_t *st, batch_t *b)
{
    store_op_t **ops = b->ops;
    int delivering = 0; /* once due, also in an attempt that runs again (the kick is spent) */
    for (int attempt = 0;; attempt++) {
        MDB_txn *parent;
        int rc = mdb_txn_begin(st->env, NULL, 0, &parent);
        if (rc == MDB_MAP_RESIZED && attempt < 8) {
            if (store_env_adopt(st) == 0) continue;
        }
        if (rc) {
            err_diag_t d;
            store_mdb_err(rc, "begin write transaction");
            err_save(&d);
            for (size_t i = 0; i < b->n; i++) {
                store_op_reset(ops[i]);
                op_fail_diag(ops[i], &d, d.code);
            }
            return 0;
        }
        /* Another process (the CLI beside a server) may have written since our
         * last commit: LMDB serialises the writers, and we re-read what we
         * keep in memory inside this transaction. */
        uint64_t seq = 0, gen = 0;
        rc = store_meta_get_u64(parent, st, "seq", &seq);
        if (rc == 0) rc = store_meta_get_u64(parent, st, "gen", &gen);
        if (rc == 0 && gen != st->wschema->gen) {
            store_schema_t *s;
            rc = schema_load(st, parent, &s);
            if (rc == 0) store_writer_publish(st, s);
        }
        if (rc) {
            mdb_txn_abort(parent);
            err_diag_t d;
            err_save(&d);
            for (size_t i = 0; i < b->n; i++) {
                store_op_reset(ops[i]);
                op_fail_diag(ops[i], &d, d.code);
            }
            return 0;
        }
        if (seq > st->seq) st->seq = seq;
        store_wtxn_t w = {.st = st, .seq = st->seq, .committed = st->seq, .now_us = time_now_us()};
        w.schema = st->wschema;
        store_schema_ref(w.schema);
        int retry = 0;
        if (delivering || deliver_due(st, w.now_us)) {
            delivering = 1;
            /* after-hooks for what committed before this batch */
            w.txn = parent;
            int on_commit = 0;
            int64_t wake = 0;
            st->hooks->deliver(st->hooks_ctx, &w, &on_commit, &wake);
            if (w.retry) {
                retry = w.retry;
            } else {
                st->deliver_on_commit = on_commit;
                st->deliver_wake_us = wake;
                st->delivered_upto = w.committed;
            }
        }
        for (size_t i = 0; !retry; i++) {
            if (i == b->n) {
                if (!batch_pull(st, b)) break;
                /* ops taken now may have arrived after the batch opened: no
                 * record, id or log entry is stamped before its request */
                int64_t t = time_now_us();
                if (t > w.now_us) w.now_us = t;
            }
            store_op_t *op = ops[i];
            if (!store_audit_run_joins(&w, op)) {
                /* the run's entry goes before this op's writes */
                w.txn = parent;
                rc = store_audit_run_flush(&w);
                if (rc) {
                    retry = rc; /* a failed batch (or one to run again) */
                    break;
                }
            }
            store_op_reset(op);
            err_clear();
            MDB_txn *child;
            rc = mdb_txn_begin(st->env, parent, 0, &child);
            if (rc) {
                rc = store_mdb_err(rc, "begin nested transaction");
            } else {
                store_schema_t *schema0 = w.schema;
                store_schema_ref(schema0);
                uint64_t seq0 = w.seq;
                w.txn = child;
                w.audit_defer_op = op;
                w.audit_deferred = 0;
                rc = run_one(&w, op);
                w.audit_defer_op = NULL;
                /* a flagged retry wins over whatever the op made of it (a
                 * custom op or a plugin may have mapped the code) */
                if (w.retry) rc = w.retry;
                if (rc == 0)
                    rc = store_mdb_err(mdb_txn_commit(child), "commit nested transaction");
                else
                    mdb_txn_abort(child);
                if (rc) {
                    store_schema_unref(w.schema);
                    w.schema = schema0;
                    w.seq = seq0;
                    w.audit_seq = 0; /* its entries are gone: read the last again */
                    store_op_reset(op);
                } else {
                    store_schema_unref(schema0);
                    store_schema_ref(w.schema);
                    op->schema = w.schema;
                    if (w.audit_deferred) store_audit_run_add(&w, op);
                }
            }
            if (STORE_RETRYABLE(rc)) {
                retry = rc;
                break;
            }
            op->status = rc;
            if (rc) {
                err_save(op_diag(op));
                op->diag->code = rc; /* the op's status is the truth */
            }
        }
        b->pull = 0; /* another attempt runs what this one gathered */
        if (!retry) {
            w.txn = parent;
            rc = store_audit_run_flush(&w);
            if (rc) retry = rc;
        }
        if (!retry && w.seq != st->seq) {
            w.txn = parent;
            rc = store_meta_put_u64(parent, st, "seq", w.seq);
            if (STORE_RETRYABLE(rc)) retry = rc;
        }
        if (!retry && w.now_us - st->idem_purged_us > IDEM_PURGE_EVERY_US) {
            rc = store_idem_purge(st, parent, w.now_us, 1000);
            if (STORE_RETRYABLE(rc)) retry = rc;
            st->idem_purged_us = w.now_us;
        }
        int fault = retry ? 0 : atomic_exchange(&st->fault, STORE_FAULT_NONE);
        if (retry) {
            mdb_txn_abort(parent);
            rc = retry;
        } else if (fault == STORE_FAULT_COMMIT_PANIC) {
            mdb_txn_abort(parent);
            rc = MDB_PANIC;
        } else if (fault == STORE_FAULT_COMMIT_EIO) {
            mdb_txn_abort(parent);
            rc = EIO;
        } else {
            rc = mdb_txn_commit(parent);
            if (rc == MDB_MAP_FULL)
                rc = STORE_EMAPFULL;
            else if (rc == MDB_TXN_FULL)
                rc = STORE_ETXNFULL;
        }
        store_audit_run_free(&w);
        if (rc == STORE_EMAPFULL || rc == STORE_ERESIZED) {
            store_schema_unref(w.schema);
            int grc = rc == STORE_EMAPFULL ? store_env_grow(st) : store_env_adopt(st);
            if (grc == 0 && attempt < 64) continue;
            err_diag_t d;
            err_save(&d);
            for (size_t i = 0; i < b->n; i++) {
                store_op_reset(ops[i]);
                op_fail_diag(ops[i], &d, KITH_ENOSPC);
            }
            return 0;
        }
        if (rc == STORE_ETXNFULL) {
            store_schema_unref(w.schema);
            if (b->n > 1) return STORE_ETXNFULL;
            if (b->n == 0) {
                log_error("store", "%s: after-hook deliveries too large for one transaction",
                          st->dir);
                return 0;
            }
            store_op_reset(ops[0]);
            op_fail(ops[0], KITH_ELIMIT, "%s", "the write is too large for one transaction");
            return 0;
        }
        if (rc) {
            /* Nothing of this batch is stored: never report success. */
            store_schema_unref(w.schema);
            /* a Kith code (an audit run's entry that could not be written)
             * has its message in err; LMDB's codes and errno have theirs */
            const char *why = rc == MDB_PANIC            ? "LMDB panic"
                              : rc < 0 && rc > -30000 ? err_last()->msg
                                                      : mdb_strerror(rc);
            log_error("store", "%s: commit of %zu op(s) failed: %s", st->dir, b->n, why);
            for (size_t i = 0; i < b->n; i++) {
                store_op_reset(ops[i]);
                op_fail(ops[i], KITH_EIO, "commit failed (%.440s); nothing was written", why);
            }
            if (rc == MDB_PANIC && store_env_reopen(st) == 0) reload_after_reopen(st);
            return 0;
        }
        st->seq = w.seq;
        if (w.schema != st->wschema) {
            store_writer_publish(st, w.schema);
        } else {
            store_schema_unref(w.schema);
        }
        if (w.jobs_changed) jobs_recount(st);
        st->fill_due = 1;
        size_t n = b->n;
        if (n == 0) return 0; /* deliveries alone: not a client batch */
        atomic_fetch_add(&st->n_commits, 1);
        int bucket = 0;
        for (size_t lim = 1; bucket < STORE_BATCH_BUCKETS - 1 && n > lim; lim *= 4)
            bucket++;
        atomic_fetch_add(&st->batch_hist[bucket], 1);
        atomic_fetch_add(&st->batch_sum, n);
        uint64_t bm = atomic_load(&st->n_batch_max);
        if (n > bm) atomic_store(&st->n_batch_max, n);
        return 0;
    }
}

static void batch_run_split(store_t *st, store_op_t **ops, size_t n)
{
    batch_t b = {.ops = ops, .n = n, .cap = n};
    if (batch_run(st, &b) == STORE_ETXNFULL) {
        batch_run_split(st, ops, n / 2);
        batch_run_split(st, ops + n / 2, n - n / 2);
    }
}

/* After the completions, so no answer waits for the zeros. */
static void fill_ahead(store_t *st)
{
    if (!st->fill_due) return;
    st->fill_due = 0;
    store_env_fill_ahead(st);
}

/* Runs b (gathering more while b->pull), then completes its ops. */
static void batch_process(store_t *st, batch_t *b)
{
    if (batch_run(st, b) == STORE_ETXNFULL) {
        batch_run_split(st, b->ops, b->n / 2);
        batch_run_split(st, b->ops + b->n / 2, b->n - b->n / 2);
    }
    /* The inputs are freed with the op, on the thread that made them:
     * freeing them here took the I/O thread's malloc arena lock for every
     * value and held both threads up (a fifth of a CSV import's writer
     * time went to that lock). */
    for (size_t i = 0; i < b->n; i++)
        op_complete(st, b->ops[i]);
    fill_ahead(st);
}

/* One op, now, on the caller's thread (no writer thread: the CLI). */
static void batch_process_one(store_t *st, store_op_t *op)
{
    op->next = NULL;
    batch_t b = {.ops = &op, .n = 1, .cap = 1};
    batch_process(st, &b);
}

static size_t jobs_pending(store_t *st)
{
    uv_mutex_lock(&st->jobs_lock);
    size_t n = st->njobs;
    uv_mutex_unlock(&st->jobs_lock);
    return n;
}

static void jobs_step_logged(store_t *st)
{
    int rc = store_jobs_step(st);
    if (rc < 0) {
        log_error("store", "%s: index job failed: %s", st->dir, err_last()->msg);
        /* Do not spin on a persistent failure; the next batch tries again. */
        uv_sleep(100);
    } else if (rc == 0) {
        jobs_recount(st);
    }
}

static void writer_main(void *arg)
{
    store_t *st = arg;
    store_grave_live(st->grave, 1);
    store_op_t **ops = xmalloc(st->opts.batch_max * sizeof *ops);
    for (;;) {
        int jobs = jobs_pending(st) > 0;
        uv_mutex_lock(&st->q_lock);
        st->q_wake = 1; /* idle: the first op wakes us */
        uint64_t wait_ns = 0;
        int deliver = 0;
        while (!st->q_head && !st->stopping && !jobs &&
               !(deliver = deliver_pending_locked(st, time_now_us(), &wait_ns))) {
            if (wait_ns)
                uv_cond_timedwait(&st->q_cond, &st->q_lock, wait_ns);
            else
                uv_cond_wait(&st->q_cond, &st->q_lock);
        }
        st->q_wake = 0;
        int head = st->q_head != NULL;
        int stopping = st->stopping;
        uv_mutex_unlock(&st->q_lock);
        if (atomic_load_explicit(&st->grave->n, memory_order_relaxed)) store_grave_drain(st->grave);
        if (head) {
            batch_t b = {.ops = ops, .cap = st->opts.batch_max, .pull = 1,
                         .expect = settle_expect(st)};
            batch_pull(st, &b); /* takes what is queued, without waiting */
            batch_process(st, &b);
            st->recent_batch[st->nbatches++ % ARRAY_LEN(st->recent_batch)] = b.n;
        } else if (deliver && !stopping) {
            batch_t none = {0};
            batch_run(st, &none); /* deliveries alone */
            fill_ahead(st);
        }
        if (jobs && !stopping) jobs_step_logged(st);
        if (!head && stopping) break;
    }
    free(ops);
    store_grave_live(st->grave, 0); /* frees what is left; later frees are direct */
}

int store_writer_start(store_t *st)
{
    if (uv_thread_create(&st->writer, writer_main, st) != 0)
        return err_set(KITH_EIO, "%s: cannot start the writer thread", st->dir);
    st->writer_started = 1;
    return 0;
}

void store_writer_stop(store_t *st)
{
    if (!st->writer_started) return;
    uv_mutex_lock(&st->q_lock);
    st->stopping = 1;
    uv_cond_signal(&st->q_cond);
    uv_mutex_unlock(&st->q_lock);
    uv_thread_join(&st->writer);
    st->writer_started = 0;
}

static int submit(store_t *st, store_op_t *op)
{
    op->next = NULL;
    if (!op->grave) {
        op->grave = st->grave;
        atomic_fetch_add(&st->grave->refs, 1);
    }
    uv_mutex_lock(&st->q_lock);
    if (st->stopping || st->opts.read_only) {
        uv_mutex_unlock(&st->q_lock);
        store_op_reset(op);
        op_fail(op, st->opts.read_only ? KITH_EPERM : KITH_ESHUTDOWN, "%s",
                st->opts.read_only ? "the store is open read-only" : "the store is closing");
        return -1;
    }
    if (st->q_tail)
        st->q_tail->next = op;
    else
        st->q_head = op;
    st->q_tail = op;
    st->q_len++;
    if (st->q_wake && st->q_len >= st->q_wake) uv_cond_signal(&st->q_cond);
    uv_mutex_unlock(&st->q_lock);
    return 0;
}

void store_submit(store_t *st, store_op_t *op, loop_inbox_t *inbox, store_done_fn done, void *ctx)
{
    op->inbox = inbox;
    op->done = done;
    op->done_ctx = ctx;
    op->waiter = NULL;
    if (!st->writer_started && !st->opts.read_only && !st->stopping) {
        /* No writer thread (CLI mode): run now, complete through the inbox. */
        batch_process_one(st, op);
        while (store_jobs_step(st) == 1) {
        }
        return;
    }
    if (submit(st, op) != 0) op_complete(st, op);
}

int store_exec(store_t *st, store_op_t *op)
{
    /* Not while closing: the writer has stopped then, and submit() refuses. */
    if (!st->writer_started && !st->opts.read_only && !st->stopping) {
        op->inbox = NULL;
        op->done = NULL;
        op->waiter = NULL;
        batch_process_one(st, op);
        while (store_jobs_step(st) == 1) {
        }
        if (op->status && op->diag) err_restore(op->diag);
        return op->status;
    }
    waiter_t w;
    uv_mutex_init(&w.lock);
    uv_cond_init(&w.cond);
    w.done = 0;
    op->inbox = NULL;
    op->done = NULL;
    op->waiter = &w;
    if (submit(st, op) == 0) {
        uv_mutex_lock(&w.lock);
        while (!w.done)
            uv_cond_wait(&w.cond, &w.lock);
        uv_mutex_unlock(&w.lock);
    }
    op->waiter = NULL;
    uv_mutex_destroy(&w.lock);
    uv_cond_destroy(&w.cond);
    if (op->status && op->diag) err_restore(op->diag);
    return op->status;
}

int store_jobs_wait(store_t *st)
{
    if (!st->writer_started) {
        int rc;
        while ((rc = store_jobs_step(st)) == 1) {
        }
        return rc < 0 ? rc : 0;
    }
    uv_mutex_lock(&st->jobs_lock);
    while (st->njobs > 0)
        uv_cond_wait(&st->jobs_cond, &st->jobs_lock);
    uv_mutex_unlock(&st->jobs_lock);
    /* Wake the writer in case it is idle with nothing queued. */
    return 0;
}
