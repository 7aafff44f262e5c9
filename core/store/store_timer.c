/*
 * store_timer: the sched database, a table of durable timers for core/sched.
 *
 *   'i' id            -> due (u64 BE, µs since the epoch) || job bytes
 *   'd' due (u64 BE) id -> ""          (the due-time order)
 *
 * Both keys change in the caller's transaction, so a timer exists, moves
 * or goes exactly when the write around it commits. What a job means is
 * core/sched's business; here it is bytes.
 */
#include "store/store_int.h"

#include "base/codec.h"
#include "base/mem.h"

#include <string.h>

#define TIMER_KEY_MAX 511 /* LMDB's default key limit */

/* The two keys of a timer, in k (n + 9 <= TIMER_KEY_MAX, checked by callers). */
static MDB_val id_key(uint8_t k[TIMER_KEY_MAX], const char *id, size_t n)
{
    k[0] = 'i';
    memcpy(k + 1, id, n);
    return (MDB_val){n + 1, k};
}

static MDB_val due_key(uint8_t k[TIMER_KEY_MAX], const void *due_be, const char *id, size_t n)
{
    k[0] = 'd';
    memcpy(k + 1, due_be, 8);
    memcpy(k + 9, id, n);
    return (MDB_val){n + 9, k};
}

static int by_id(store_wtxn_t *w, const char *id, size_t n, MDB_val *d)
{
    uint8_t k[TIMER_KEY_MAX];
    MDB_val kk = id_key(k, id, n);
    return mdb_get(w->txn, w->st->dbi[DB_SCHED], &kk, d);
}

static int due_key_del(store_wtxn_t *w, const void *due_be, const char *id, size_t n)
{
    uint8_t k[TIMER_KEY_MAX];
    MDB_val kk = due_key(k, due_be, id, n);
    int rc = mdb_del(w->txn, w->st->dbi[DB_SCHED], &kk, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int id_ok(size_t n)
{
    if (n == 0 || n + 9 > TIMER_KEY_MAX) return err_set(KITH_EINVAL, "a timer id is 1 to %d bytes",
                                                         TIMER_KEY_MAX - 9);
    return 0;
}

int store_wtxn_timer_put(store_wtxn_t *w, const char *id, int64_t due_us, const char *job,
                         size_t len)
{
    size_t n = strlen(id);
    int rc = id_ok(n);
    if (rc) return rc;
    if (due_us < 0) due_us = 0;
    MDB_val d;
    rc = by_id(w, id, n, &d);
    if (rc == 0 && d.mv_size >= 8) rc = due_key_del(w, d.mv_data, id, n);
    else if (rc == MDB_NOTFOUND) rc = 0;
    if (rc) return store_mdb_err(rc, "timers");
    uint8_t k[TIMER_KEY_MAX], due_be[8];
    store_u64be(due_be, (uint64_t)due_us);
    MDB_val kk = id_key(k, id, n), dd = {len + 8, NULL};
    rc = mdb_put(w->txn, w->st->dbi[DB_SCHED], &kk, &dd, MDB_RESERVE);
    if (rc) return store_mdb_err(rc, "timers");
    memcpy(dd.mv_data, due_be, 8);
    if (len) memcpy((uint8_t *)dd.mv_data + 8, job, len);
    MDB_val dk = due_key(k, due_be, id, n), empty = {0, ""};
    rc = mdb_put(w->txn, w->st->dbi[DB_SCHED], &dk, &empty, 0);
    if (rc == 0) {
        /* the deliver hook runs after this batch and learns the new due time */
        uv_mutex_lock(&w->st->q_lock);
        w->st->hooks_kick = 1;
        uv_mutex_unlock(&w->st->q_lock);
    }
    return store_mdb_err(rc, "timers");
}

int store_wtxn_timer_del(store_wtxn_t *w, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n + 9 > TIMER_KEY_MAX) return err_set(KITH_ENOTFOUND, "no such timer");
    MDB_val d;
    int rc = by_id(w, id, n, &d);
    if (rc == MDB_NOTFOUND) return err_set(KITH_ENOTFOUND, "no timer '%s'", id);
    if (rc) return store_mdb_err(rc, "timers");
    if (d.mv_size >= 8) rc = due_key_del(w, d.mv_data, id, n);
    if (rc == 0) {
        uint8_t k[TIMER_KEY_MAX];
        MDB_val kk = id_key(k, id, n);
        rc = mdb_del(w->txn, w->st->dbi[DB_SCHED], &kk, NULL);
    }
    return store_mdb_err(rc, "timers");
}

int store_wtxn_timer_get(store_wtxn_t *w, const char *id, int64_t *due_us, char **job,
                         size_t *len)
{
    size_t n = strlen(id);
    if (n == 0 || n + 9 > TIMER_KEY_MAX) return KITH_ENOTFOUND;
    MDB_val d;
    int rc = by_id(w, id, n, &d);
    if (rc == MDB_NOTFOUND || (rc == 0 && d.mv_size < 8)) return KITH_ENOTFOUND;
    if (rc) return store_mdb_err(rc, "timers");
    if (due_us) *due_us = (int64_t)load_u64be(d.mv_data);
    if (job) *job = xstrndup((const char *)d.mv_data + 8, d.mv_size - 8);
    if (len) *len = d.mv_size - 8;
    return 0;
}

int store_timer_verify(store_t *st, MDB_txn *txn, uint64_t *count,
                       void (*problem)(void *, const char *), void *ctx)
{
    *count = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_SCHED], &cur);
    if (rc) return store_mdb_err(rc, "timers");
    MDB_val k, d;
    char msg[TIMER_KEY_MAX + 96];
    store_wtxn_t view = {.st = st, .txn = txn};
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size >= 2 && k.mv_size + 8 <= TIMER_KEY_MAX && kp[0] == 'i' && d.mv_size >= 8) {
            (*count)++;
            uint8_t dk[TIMER_KEY_MAX];
            MDB_val kk = due_key(dk, d.mv_data, (const char *)kp + 1, k.mv_size - 1), x;
            if (mdb_get(txn, st->dbi[DB_SCHED], &kk, &x)) {
                snprintf(msg, sizeof msg, "timer %.*s: missing from the due-time order",
                         (int)k.mv_size - 1, (const char *)kp + 1);
                problem(ctx, msg);
            }
        } else if (k.mv_size >= 10 && kp[0] == 'd') {
            MDB_val x;
            if (by_id(&view, (const char *)kp + 9, k.mv_size - 9, &x) || x.mv_size < 8 ||
                memcmp(x.mv_data, kp + 1, 8) != 0) {
                snprintf(msg, sizeof msg, "timer %.*s: a due-time entry without its timer",
                         (int)k.mv_size - 9, (const char *)kp + 9);
                problem(ctx, msg);
            }
        } else {
            problem(ctx, "timers: an entry of unknown shape");
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, "timers");
}

/* Walks 'i' keys from prefix (ids in order) or 'd' keys from the start (due
 * order, until `until`). fn sees LMDB's memory: it must not write. */
static int walk(MDB_txn *txn, store_t *st, int due_order, const char *prefix, int64_t until,
                size_t limit, store_timer_fn fn, void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_SCHED], &cur);
    if (rc) return store_mdb_err(rc, "timers");
    uint8_t start[TIMER_KEY_MAX];
    size_t pn = prefix ? strlen(prefix) : 0;
    if (pn + 1 > sizeof start) pn = sizeof start - 1;
    start[0] = due_order ? 'd' : 'i';
    if (pn) memcpy(start + 1, prefix, pn);
    MDB_val k = {due_order ? 1 : pn + 1, start}, d;
    size_t seen = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0 && (!limit || seen < limit);
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (due_order) {
            if (k.mv_size < 10 || kp[0] != 'd') break;
            int64_t due = (int64_t)load_u64be(kp + 1);
            if (due > until) break;
            char id[TIMER_KEY_MAX];
            memcpy(id, kp + 9, k.mv_size - 9);
            id[k.mv_size - 9] = '\0';
            MDB_val jd;
            int g = by_id(&(store_wtxn_t){.st = st, .txn = txn}, id, k.mv_size - 9, &jd);
            if (g || jd.mv_size < 8) continue; /* kith check's business */
            seen++;
            if (fn(ctx, id, due, (const char *)jd.mv_data + 8, jd.mv_size - 8)) break;
        } else {
            if (k.mv_size < 2 || kp[0] != 'i' || k.mv_size - 1 < pn ||
                memcmp(kp + 1, prefix ? prefix : "", pn) != 0 || d.mv_size < 8)
                break;
            char id[TIMER_KEY_MAX];
            memcpy(id, kp + 1, k.mv_size - 1);
            id[k.mv_size - 1] = '\0';
            seen++;
            if (fn(ctx, id, (int64_t)load_u64be(d.mv_data), (const char *)d.mv_data + 8,
                   d.mv_size - 8))
                break;
        }
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, "timers");
}

int store_wtxn_timers_due(store_wtxn_t *w, int64_t until, size_t limit, store_timer_fn fn,
                          void *ctx)
{
    return walk(w->txn, w->st, 1, NULL, until, limit, fn, ctx);
}

int store_wtxn_timers_prefix(store_wtxn_t *w, const char *prefix, store_timer_fn fn, void *ctx)
{
    return walk(w->txn, w->st, 0, prefix, 0, 0, fn, ctx);
}

int store_timers_prefix(store_rtxn_t *rt, const char *prefix, store_timer_fn fn, void *ctx)
{
    return walk(rt->txn, rt->st, 0, prefix, 0, 0, fn, ctx);
}
