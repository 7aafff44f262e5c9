/*
 * store_hooks: what core/bus needs from the writer — the hook table, writes
 * and events from inside a handler, and reads, queries and cursors in the
 * writer's transaction.
 */
#include "store/store_int.h"

#include <string.h>

void store_set_hooks(store_t *st, const store_hooks_t *h, void *ctx)
{
    st->hooks = h;
    st->hooks_ctx = ctx;
    st->deliver_on_commit = 1;
    store_hooks_kick(st);
}

void store_hooks_kick(store_t *st)
{
    uv_mutex_lock(&st->q_lock);
    st->hooks_kick = 1;
    uv_cond_signal(&st->q_cond);
    uv_mutex_unlock(&st->q_lock);
}

uint64_t store_writer_seq(store_t *st)
{
    return st->seq;
}

int store_wtxn_retrying(const store_wtxn_t *w)
{
    return w->retry != 0;
}

int store_wtxn_nested(store_wtxn_t *w, int (*fn)(store_wtxn_t *w, void *arg), void *arg)
{
    MDB_txn *parent = w->txn, *child;
    int rc = mdb_txn_begin(w->st->env, parent, 0, &child);
    if (rc) {
        rc = store_mdb_err(rc, "begin nested transaction");
        if (STORE_RETRYABLE(rc)) w->retry = rc;
        return rc;
    }
    uint64_t seq0 = w->seq;
    const char *origin0 = w->origin;
    int depth0 = w->depth;
    w->txn = child;
    rc = fn(w, arg);
    if (rc == 0) {
        rc = store_mdb_err(mdb_txn_commit(child), "commit nested transaction");
    } else {
        mdb_txn_abort(child);
    }
    w->txn = parent;
    w->origin = origin0;
    w->depth = depth0;
    if (rc) {
        w->seq = seq0;
        w->audit_seq = 0; /* its audit entries are gone: read the last again */
    }
    if (STORE_RETRYABLE(rc)) w->retry = rc;
    return rc;
}

static int write_fn(store_wtxn_t *w, void *arg)
{
    int rc = store_op_run(w, arg);
    /* a write made for a client (a plugin's route) is audited like its own */
    if (rc == 0) rc = store_audit_op(w, arg);
    return rc;
}

int store_wtxn_write(store_wtxn_t *w, store_op_t *op)
{
    switch (op->kind) {
    case STORE_OP_CREATE:
    case STORE_OP_UPDATE:
    case STORE_OP_REPLACE:
    case STORE_OP_DELETE:
    case STORE_OP_UPSERT:
    case STORE_OP_AUDIT: /* a plugin route's read of sensitive fields */
        break;
    default:
        return op->status = err_set(KITH_EINVAL, "only record and audit writes run inside a "
                                                 "handler");
    }
    store_op_reset(op);
    if (op->kind == STORE_OP_UPDATE || op->kind == STORE_OP_REPLACE ||
        op->kind == STORE_OP_DELETE) {
        /* a before-hook amends the record it handles; writing it would race
         * the write in progress (index and version from the stale copy) */
        for (int i = 0; i < w->nhandling; i++)
            if (memcmp(&w->handling[i].id, &op->id, sizeof op->id) == 0 &&
                strcmp(w->handling[i].coll, op->coll) == 0)
                return op->status = err_set(KITH_EINVAL,
                                            "a before-hook cannot write the record it handles "
                                            "(%s): amend ev.record instead",
                                            op->coll);
    }
    int rc = store_wtxn_nested(w, write_fn, op);
    if (rc) store_op_reset(op); /* clears the results, and status */
    op->status = rc;
    return rc;
}

int store_wtxn_set_origin(store_wtxn_t *w, const char *origin, int depth)
{
    int d = w->depth;
    w->origin = origin;
    w->depth = depth;
    return d;
}

const char *store_wtxn_origin(const store_wtxn_t *w)
{
    return w->origin;
}

int store_wtxn_depth(const store_wtxn_t *w)
{
    return w->depth;
}

uint64_t store_wtxn_committed(const store_wtxn_t *w)
{
    return w->committed;
}

static store_rtxn_t wtxn_view(store_wtxn_t *w)
{
    return (store_rtxn_t){.st = w->st, .txn = w->txn, .schema = w->schema};
}

int store_wtxn_changes(store_wtxn_t *w, uint64_t after, size_t limit, store_change_fn fn, void *ctx)
{
    if (after >= w->committed) return 0;
    size_t upto = (size_t)(w->committed - after);
    if (limit == 0 || limit > upto) limit = upto;
    store_rtxn_t rt = wtxn_view(w);
    return store_changes(&rt, after, limit, fn, ctx);
}

int store_wtxn_query(store_wtxn_t *w, const store_query_t *q, store_row_fn fn, void *ctx,
                     char **next_cursor)
{
    store_rtxn_t rt = wtxn_view(w);
    return store_query(&rt, q, fn, ctx, next_cursor);
}

int store_wtxn_query_all(store_wtxn_t *w, const store_query_t *q, store_row_fn fn, void *ctx)
{
    store_rtxn_t rt = wtxn_view(w);
    return store_query_all(&rt, q, fn, ctx);
}

int store_wtxn_cursor_get(store_wtxn_t *w, const char *consumer, uint64_t *seq)
{
    store_rtxn_t rt = wtxn_view(w);
    return store_cursor_get(&rt, consumer, seq);
}

int store_wtxn_cursor_put(store_wtxn_t *w, const char *consumer, uint64_t seq)
{
    return store_log_cursor_put(w, consumer, seq);
}
