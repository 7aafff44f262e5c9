/*
 * store_env: opening, closing, growing and reopening the LMDB environment, and
 * pooled read transactions.
 */
#include "store/store_int.h"

#include "base/log.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const db_names[DB__COUNT] = {
    [DB_RECORDS] = "records", [DB_INDEX] = "index", [DB_LOG] = "log",     [DB_CURSORS] = "cursors",
    [DB_IDEM] = "idem",       [DB_META] = "meta",   [DB_AUDIT] = "audit", [DB_SCHED] = "sched",
};

int store_mdb_err(int rc, const char *what)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return err_set(KITH_ENOTFOUND, "%s: not found", what);
    case MDB_KEYEXIST:
        return err_set(KITH_EEXIST, "%s: already exists", what);
    case MDB_MAP_FULL:
        err_set(KITH_ENOSPC, "%s: map full", what);
        return STORE_EMAPFULL;
    case MDB_TXN_FULL:
        err_set(KITH_ELIMIT, "%s: transaction too large", what);
        return STORE_ETXNFULL;
    case MDB_MAP_RESIZED:
        err_set(KITH_EIO, "%s: map resized by another process", what);
        return STORE_ERESIZED;
    case MDB_INVALID:
        return err_set(KITH_ECORRUPT, "%s: not an LMDB environment (or damaged)", what);
    case MDB_VERSION_MISMATCH:
        return err_set(KITH_ECORRUPT, "%s: written by an incompatible LMDB version", what);
    case MDB_CORRUPTED:
        return err_set(KITH_ECORRUPT, "%s: damaged B-tree page", what);
    case MDB_PANIC:
        return err_set(KITH_EIO, "%s: LMDB panic (environment must be reopened)", what);
    case MDB_READERS_FULL:
        return err_set(KITH_EBUSY, "%s: reader table full", what);
    case MDB_BAD_VALSIZE:
        return err_set(KITH_ELIMIT, "%s: key or value too large", what);
    default:
        if (rc > 0) return err_set(err_from_errno(rc), "%s: %s", what, strerror(rc));
        return err_set(KITH_EIO, "%s: %s", what, mdb_strerror(rc));
    }
}

void store_rkey(uint8_t out[RKEY_LEN], uint32_t coll_id, const kith_id_t *id)
{
    store_u32be(out, coll_id);
    memcpy(out + 4, id->b, ID_LEN);
}

int store_meta_get_u64(MDB_txn *txn, store_t *st, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(txn, st->dbi[DB_META], &k, &d);
    if (rc == MDB_NOTFOUND) {
        *v = 0;
        return 0;
    }
    if (rc) return store_mdb_err(rc, "meta");
    if (d.mv_size != 8) return err_set(KITH_ECORRUPT, "meta %s: bad size %zu", key, d.mv_size);
    *v = load_u64be(d.mv_data);
    return 0;
}

int store_meta_put_u64(MDB_txn *txn, store_t *st, const char *key, uint64_t v)
{
    uint8_t b[8];
    store_u64be(b, v);
    MDB_val k = {strlen(key), (void *)key}, d = {8, b};
    return store_mdb_err(mdb_put(txn, st->dbi[DB_META], &k, &d, 0), "meta");
}

static int env_open_dir(store_t *st)
{
    int rc = mdb_env_create(&st->env);
    if (rc) return store_mdb_err(rc, st->dir);
    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, 1024);
    mdb_env_set_mapsize(st->env, st->map_size);
    unsigned flags = MDB_NOTLS;
    if (st->opts.read_only) flags |= MDB_RDONLY;
    rc = mdb_env_open(st->env, st->dir, flags, 0640);
    if (rc) {
        int code = store_mdb_err(rc, st->dir);
        if (rc == EAGAIN || rc == EBUSY)
            err_set(KITH_ELOCKED, "%s: environment is locked", st->dir);
        mdb_env_close(st->env);
        st->env = NULL;
        return code;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize;
    return 0;
}

static int env_open_dbs(store_t *st)
{
    MDB_txn *txn;
    int ro = st->opts.read_only;
    int rc = mdb_txn_begin(st->env, NULL, ro ? MDB_RDONLY : 0, &txn);
    if (rc) return store_mdb_err(rc, st->dir);
    for (int i = 0; i < DB__COUNT; i++) {
        unsigned flags = ro ? 0 : MDB_CREATE;
        if (i == DB_INDEX) flags |= MDB_DUPSORT | MDB_DUPFIXED;
        rc = mdb_dbi_open(txn, db_names[i], flags, &st->dbi[i]);
        if (rc) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND)
                return err_set(KITH_ECORRUPT, "%s: not a kith workspace (no '%s' database)",
                               st->dir, db_names[i]);
            return store_mdb_err(rc, st->dir);
        }
    }
    uint64_t format = 0;
    rc = store_meta_get_u64(txn, st, "format", &format);
    if (rc == 0 && format == 0 && !ro) rc = store_meta_put_u64(txn, st, "format", STORE_FORMAT);
    if (rc == 0 && format > STORE_FORMAT)
        rc = err_set(KITH_ECORRUPT, "%s: data format %llu is newer than this kith (%d)", st->dir,
                     (unsigned long long)format, STORE_FORMAT);
    if (rc == 0 && ro && format == 0)
        rc = err_set(KITH_ECORRUPT, "%s: not a kith workspace (no format marker)", st->dir);
    if (rc == 0) rc = store_meta_get_u64(txn, st, "seq", &st->seq);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* The log's last key is the truth if a crash left meta behind (it cannot:
     * both are written in one transaction, but a check costs nothing). */
    MDB_cursor *cur;
    MDB_val k, d;
    if (mdb_cursor_open(txn, st->dbi[DB_LOG], &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &d, MDB_LAST) == 0 && k.mv_size == 8) {
            uint64_t last = load_u64be(k.mv_data);
            if (last > st->seq) st->seq = last;
        }
        mdb_cursor_close(cur);
    }
    /* Committed even when read-only: LMDB closes the handles a transaction
     * opened if it is aborted. */
    rc = mdb_txn_commit(txn);
    return store_mdb_err(rc, st->dir);
}

int store_writer_start(store_t *st);
void store_writer_stop(store_t *st);

int store_open(store_t **out, const char *dir, const store_opts_t *opts)
{
    store_opts_t o = {0};
    if (opts) o = *opts;
    if (!o.batch_max) o.batch_max = STORE_BATCH_DEFAULT;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT && o.create && !o.read_only) {
            if (mkdir(dir, 0750) != 0 && errno != EEXIST)
                return err_set(err_from_errno(errno), "%s: cannot create: %s", dir,
                               strerror(errno));
        } else {
            return err_set(err_from_errno(errno), "%s: %s", dir, strerror(errno));
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        return err_set(KITH_EINVAL, "%s: not a directory", dir);
    }
    if (access(dir, R_OK | X_OK | (o.read_only ? 0 : W_OK)) != 0)
        return err_set(KITH_EPERM, "%s: %s", dir, strerror(errno));
    if (o.read_only) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        if (stat(path, &sb) != 0)
            return err_set(KITH_ECORRUPT, "%s: not a kith workspace (no data.mdb)", dir);
    }

    store_t *st = xcalloc(1, sizeof *st);
    st->dir = xstrdup(dir);
    st->opts = o;
    st->map_size = o.map_size ? o.map_size : STORE_MAP_DEFAULT;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->env_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&st->schema_lock, NULL);
    pthread_mutex_init(&st->pool_lock, NULL);
    uv_mutex_init(&st->q_lock);
    st->grave = store_grave_new();
    uv_cond_init(&st->q_cond);
    uv_mutex_init(&st->jobs_lock);
    uv_cond_init(&st->jobs_cond);

    int rc = env_open_dir(st);
    if (rc == 0) rc = env_open_dbs(st);
    MDB_txn *txn = NULL;
    if (rc == 0) rc = store_mdb_err(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), dir);
    if (rc == 0) rc = schema_load(st, txn, &st->schema);
    if (rc == 0) {
        st->njobs = store_jobs_count(st, txn);
        store_schema_ref(st->schema);
        st->wschema = st->schema;
    }
    if (txn) mdb_txn_abort(txn);
    if (rc == 0 && !o.read_only && !o.no_writer) rc = store_writer_start(st);
    if (rc) {
        err_diag_t d;
        err_save(&d);
        store_close(st);
        return err_restore(&d);
    }
    *out = st;
    return 0;
}

static void pool_flush(store_t *st)
{
    pthread_mutex_lock(&st->pool_lock);
    for (int i = 0; i < st->npool; i++) {
        mdb_txn_abort(st->pool[i]->txn);
        free(st->pool[i]);
    }
    st->npool = 0;
    pthread_mutex_unlock(&st->pool_lock);
}

void store_close(store_t *st)
{
    if (!st) return;
    store_writer_stop(st);
    pool_flush(st);
    if (st->schema) store_schema_unref(st->schema);
    if (st->wschema) store_schema_unref(st->wschema);
    if (st->env) mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->env_lock);
    pthread_mutex_destroy(&st->schema_lock);
    pthread_mutex_destroy(&st->pool_lock);
    uv_mutex_destroy(&st->q_lock);
    store_grave_unref(st->grave);
    uv_cond_destroy(&st->q_cond);
    uv_mutex_destroy(&st->jobs_lock);
    uv_cond_destroy(&st->jobs_cond);
    free(st->dir);
    free(st);
}

const char *store_dir(const store_t *st)
{
    return st->dir;
}

int store_env_grow(store_t *st)
{
    pthread_rwlock_wrlock(&st->env_lock);
    size_t want = st->map_size * 2;
    pool_flush(st);
    int rc = mdb_env_set_mapsize(st->env, want);
    if (rc == 0) {
        MDB_envinfo info;
        mdb_env_info(st->env, &info);
        st->map_size = info.me_mapsize;
    }
    pthread_rwlock_unlock(&st->env_lock);
    if (rc) return store_mdb_err(rc, "growing the map");
    atomic_fetch_add(&st->n_grows, 1);
    log_info("store", "%s: map grown to %zu MiB", st->dir, st->map_size >> 20);
    return 0;
}

/* How much zero-filled file to keep ahead of LMDB: an eighth of what is in
 * use, 4 MiB at least, 64 MiB at most. It is written a step at a time, one
 * step after a commit: zeros written now are flushed by the next commit's
 * fdatasync, so filling 64 MiB at once stalled that commit (and every
 * request waiting on it) for a tenth of a second. A step is 1 MiB, or twice
 * what LMDB grew since the last step when it grows faster (bulk loads), so
 * the fill keeps ahead without making any one commit pay for all of it.
 * Filling starts when less than half the margin is left and goes on until
 * all of it is there again. Without a writer thread (the CLI) no request
 * waits on a commit, and the whole margin is written at once, so a
 * short-lived process leaves the file as the next one needs it. */
#define FILL_MIN  (4u << 20)
#define FILL_MAX  (64u << 20)
#define FILL_STEP (1u << 20)

static size_t fill_target(size_t used)
{
    size_t ahead = used / 8;
    return used + (ahead < FILL_MIN ? FILL_MIN : ahead > FILL_MAX ? FILL_MAX : ahead);
}

static size_t used_bytes(store_t *st)
{
    MDB_envinfo info;
    MDB_stat ms;
    if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &ms)) return 0;
    return ((size_t)info.me_last_pgno + 1) * ms.ms_psize;
}

void store_env_fill_ahead(store_t *st)
{
    MDB_txn *t;
    int fd;
    if (st->opts.read_only || mdb_env_get_fd(st->env, &fd)) return;
    size_t used = used_bytes(st);
    if (!used || (st->file_end && st->file_end >= fill_target(used))) {
        st->filling = 0;
        return; /* the common case, without a transaction */
    }
    if (st->file_end && !st->filling && st->file_end >= used &&
        st->file_end - used >= (fill_target(used) - used) / 2)
        return; /* more than half the margin left */
    /* A write transaction holds every other process's writer off while we
     * look at the last page and write beyond it. */
    if (mdb_txn_begin(st->env, NULL, 0, &t)) return;
    if (!(used = used_bytes(st))) goto out;
    if (st->file_end == 0) {
        struct stat sb;
        if (fstat(fd, &sb) == 0) st->file_end = (size_t)sb.st_size;
    }
    if (st->file_end < used) st->file_end = used; /* LMDB grew the file itself */
    if (!st->filling && st->file_end - used >= (fill_target(used) - used) / 2) goto out;
    st->filling = 1;
    size_t end = fill_target(used), grew = used > st->fill_used ? used - st->fill_used : 0;
    size_t step = st->fill_used && grew * 2 > FILL_STEP ? grew * 2 : FILL_STEP;
    st->fill_used = used;
    if (st->writer_started && end > st->file_end + step) end = st->file_end + step;
    if (end > st->map_size) end = st->map_size;
    /* Beyond LMDB's last page nothing reads or writes but this writer
     * thread's own commits, so the zeros cannot overwrite data. They are
     * made durable by the next commit's fdatasync. */
    static const char zeros[FILL_STEP];
    while (st->file_end < end) {
        size_t n = end - st->file_end < FILL_STEP ? end - st->file_end : FILL_STEP;
        ssize_t w = pwrite(fd, zeros, n, (off_t)st->file_end);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            log_warn("store", "%s: cannot fill ahead in data.mdb: %s", st->dir,
                     w < 0 ? strerror(errno) : "short write");
            break; /* LMDB grows the file itself; a full disk surfaces there */
        }
        st->file_end += (size_t)w;
    }
out:
    mdb_txn_abort(t);
}

int store_env_adopt(store_t *st)
{
    pthread_rwlock_wrlock(&st->env_lock);
    pool_flush(st);
    int rc = mdb_env_set_mapsize(st->env, 0);
    if (rc == 0) {
        MDB_envinfo info;
        mdb_env_info(st->env, &info);
        st->map_size = info.me_mapsize;
    }
    pthread_rwlock_unlock(&st->env_lock);
    return store_mdb_err(rc, "adopting the map size");
}

int store_env_reopen(store_t *st)
{
    pthread_rwlock_wrlock(&st->env_lock);
    pool_flush(st);
    mdb_env_close(st->env);
    st->env = NULL;
    st->file_end = 0;
    st->fill_used = 0;
    st->filling = 0;
    int rc = env_open_dir(st);
    if (rc == 0) rc = env_open_dbs(st);
    pthread_rwlock_unlock(&st->env_lock);
    atomic_fetch_add(&st->n_reopens, 1);
    if (rc)
        log_error("store", "%s: reopen after panic failed: %s", st->dir, err_last()->msg);
    else
        log_warn("store", "%s: environment reopened after a failed commit", st->dir);
    return rc;
}

/* ---- read transactions ---- */

int store_rtxn_begin_raw(store_t *st, MDB_txn **out)
{
    return store_mdb_err(mdb_txn_begin(st->env, NULL, MDB_RDONLY, out), st->dir);
}

int store_read_begin(store_t *st, store_rtxn_t **out)
{
    store_rtxn_t *rt = NULL;
    int rc;
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&st->env_lock);
        pthread_mutex_lock(&st->pool_lock);
        rt = st->npool ? st->pool[--st->npool] : NULL;
        pthread_mutex_unlock(&st->pool_lock);
        if (rt) {
            rc = mdb_txn_renew(rt->txn);
        } else {
            rt = xcalloc(1, sizeof *rt);
            rt->st = st;
            rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &rt->txn);
            if (rc) {
                free(rt);
                rt = NULL;
            }
        }
        if (rc == 0) break;
        if (rt) {
            mdb_txn_abort(rt->txn);
            free(rt);
            rt = NULL;
        }
        pthread_rwlock_unlock(&st->env_lock);
        if (rc == MDB_MAP_RESIZED && attempt < 3) {
            int arc = store_env_adopt(st);
            if (arc) return arc;
            continue;
        }
        return store_mdb_err(rc, st->dir);
    }
    rc = schema_for_txn(st, rt->txn, &rt->schema);
    if (rc) {
        mdb_txn_abort(rt->txn);
        free(rt);
        pthread_rwlock_unlock(&st->env_lock);
        return rc;
    }
    *out = rt;
    return 0;
}

void store_read_end(store_rtxn_t *rt)
{
    if (!rt) return;
    store_t *st = rt->st;
    store_schema_unref(rt->schema);
    rt->schema = NULL;
    mdb_txn_reset(rt->txn);
    pthread_mutex_lock(&st->pool_lock);
    if (st->npool < STORE_POOL_MAX) {
        st->pool[st->npool++] = rt;
        rt = NULL;
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (rt) {
        mdb_txn_abort(rt->txn);
        free(rt);
    }
    pthread_rwlock_unlock(&st->env_lock);
}

const store_schema_t *store_read_schema(const store_rtxn_t *rt)
{
    return rt->schema;
}

void store_stats_get(store_t *st, store_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->commits = atomic_load(&st->n_commits);
    out->ops = atomic_load(&st->n_ops);
    out->ops_failed = atomic_load(&st->n_ops_failed);
    out->batch_max = atomic_load(&st->n_batch_max);
    out->map_grows = atomic_load(&st->n_grows);
    out->reopens = atomic_load(&st->n_reopens);
    for (int i = 0; i < STORE_BATCH_BUCKETS; i++)
        out->batch_hist[i] = atomic_load(&st->batch_hist[i]);
    out->batch_sum = atomic_load(&st->batch_sum);
    out->map_size = st->map_size;
    pthread_rwlock_rdlock(&st->env_lock);
    MDB_envinfo info;
    MDB_stat ms;
    struct stat sb;
    int fd;
    if (st->env && mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &ms) == 0)
        out->used_bytes = ((size_t)info.me_last_pgno + 1) * ms.ms_psize;
    if (st->env && mdb_env_get_fd(st->env, &fd) == 0 && fstat(fd, &sb) == 0)
        out->file_bytes = (size_t)sb.st_size;
    pthread_rwlock_unlock(&st->env_lock);
    uv_mutex_lock(&st->q_lock);
    out->queued = st->q_len;
    uv_mutex_unlock(&st->q_lock);
    uv_mutex_lock(&st->jobs_lock);
    out->jobs = st->njobs;
    uv_mutex_unlock(&st->jobs_lock);
}

int store_backup(store_t *st, const char *dir)
{
    /* The copy reads through its own transaction: keep the map where it is. */
    pthread_rwlock_rdlock(&st->env_lock);
    int rc = mdb_env_copy2(st->env, dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&st->env_lock);
    if (rc) return store_mdb_err(rc, dir);
    return 0;
}

void store_test_fault(store_t *st, int fault)
{
    atomic_store(&st->fault, fault);
}
