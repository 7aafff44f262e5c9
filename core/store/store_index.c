/*
 * store_index: secondary index entries, uniqueness, and index build/drop jobs.
 *
 * Entries live in the dupsort "index" database: key = index id (u32 BE) + tag
 * + encoded value (store_key.c), data = the record id. A value index holds one
 * entry per distinct value of the field (per element for arrays) and a NULL
 * entry for records without the field, so a sort over the index sees every
 * record. A prefix index (searchable) holds ASCII-case-folded values only.
 *
 * New indexes on a non-empty collection are filled by jobs: the writer runs a
 * bounded step between batches, so a build never stalls writes for long. While
 * building, an index is maintained by every write but not used by queries.
 */
#include "store/store_int.h"

#include "base/codec.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB_BUILD_STEP 2000  /* records per build step */
#define JOB_DROP_STEP  20000 /* entries per drop step */

int schema_store_coll(MDB_txn *txn, store_t *st, const store_coll_t *c, int history);
int schema_bump_gen(MDB_txn *txn, store_t *st, uint64_t *gen);
void store_writer_publish(store_t *st, store_schema_t *s);

void keyset_init(keyset_t *ks)
{
    memset(ks, 0, sizeof *ks);
}

void keyset_free(keyset_t *ks)
{
    buf_free(&ks->data);
    free(ks->off);
    free(ks->len);
    keyset_init(ks);
}

static void keyset_reset(keyset_t *ks)
{
    buf_reset(&ks->data);
    ks->n = 0;
}

static void keyset_push(keyset_t *ks, size_t off)
{
    if (ks->n == ks->cap) {
        ks->cap = ks->cap ? ks->cap * 2 : 8;
        ks->off = xrealloc(ks->off, ks->cap * sizeof *ks->off);
        ks->len = xrealloc(ks->len, ks->cap * sizeof *ks->len);
    }
    ks->off[ks->n] = off;
    ks->len[ks->n] = ks->data.len - off;
    ks->n++;
}

static const char *keyset_key(const keyset_t *ks, size_t i)
{
    return ks->data.p + ks->off[i];
}

static int keyset_has(const keyset_t *ks, const char *k, size_t n)
{
    for (size_t i = 0; i < ks->n; i++)
        if (ks->len[i] == n && memcmp(keyset_key(ks, i), k, n) == 0) return 1;
    return 0;
}

static int key_one(keyset_t *ks, uint32_t index_id, int type, const json_t *v, int fold)
{
    size_t off = ks->data.len;
    buf_add_u32be(&ks->data, index_id);
    buf_addc(&ks->data, IKEY_TAG_VALUE);
    int rc = store_key_encode(type, v, 1, fold, &ks->data);
    if (rc) {
        ks->data.len = off;
        return rc;
    }
    /* Arrays may repeat a value: keep one entry per distinct key. */
    if (keyset_has(ks, ks->data.p + off, ks->data.len - off)) {
        ks->data.len = off;
        return 0;
    }
    keyset_push(ks, off);
    return 0;
}

int store_index_keys(const store_field_t *f, int prefix, uint32_t index_id, const json_t *fields,
                     keyset_t *ks)
{
    keyset_reset(ks);
    const json_t *v = fields ? json_object_get(fields, f->name) : NULL;
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    int rc = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && rc == 0; i++)
            rc = key_one(ks, index_id, type, json_array_get(v, i), prefix);
    } else if (v) {
        rc = key_one(ks, index_id, type, v, prefix);
    }
    if (rc == 0 && ks->n == 0 && !prefix) {
        size_t off = ks->data.len;
        buf_add_u32be(&ks->data, index_id);
        buf_addc(&ks->data, IKEY_TAG_NULL);
        keyset_push(ks, off);
    }
    return rc;
}

/* Full (untruncated) equality of field f between a stored record and fields. */
static int same_value(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f,
                      const kith_id_t *other, const json_t *fields)
{
    store_record_t rec;
    if (store_rec_get(w->st, w->txn, c, other, &rec)) return 1; /* be safe: conflict */
    json_t *o = json_parse(rec.json, rec.json_len);
    if (!o) return 1;
    buf_t a = BUF_INIT, b = BUF_INIT;
    int type = f->type;
    int ra = store_key_encode(type, json_object_get(o, f->name), 0, 0, &a);
    int rb = store_key_encode(type, json_object_get(fields, f->name), 0, 0, &b);
    int same = ra == 0 && rb == 0 && a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
    buf_free(&a);
    buf_free(&b);
    json_decref(o);
    return same;
}

static int unique_check(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f,
                        const kith_id_t *id, const char *key, size_t klen, const json_t *fields)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, w->st->dbi[DB_INDEX], &cur);
    if (rc) return store_mdb_err(rc, "index");
    MDB_val k = {klen, (void *)key}, d;
    int conflict = 0;
    kith_id_t other;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_DUP)) {
        if (d.mv_size != ID_LEN || memcmp(d.mv_data, id->b, ID_LEN) == 0) continue;
        memcpy(other.b, d.mv_data, ID_LEN);
        /* Keys cut at IKEY_VALUE_MAX may collide for different long values. */
        if (klen < IKEY_MAX || same_value(w, c, f, &other, fields)) {
            conflict = 1;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (conflict) {
        /* The message does not name the other record: callers may not be
         * allowed to see it. Its id goes in the diagnostic, for the writer to
         * show only to those who may (store_op_run). */
        err_set(KITH_EEXIST, "%s: %s must be unique; another record has this value", c->name,
                f->name);
        err_field_add(f->name, "another %s record has this value", c->name);
        char ids[ID_TEXT_LEN + 1];
        id_encode(&other, ids);
        err_existing(ids);
        return KITH_EEXIST;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return store_mdb_err(rc, "index");
    return 0;
}

static int index_move(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f, int prefix,
                      uint32_t index_id, const kith_id_t *id, const json_t *oldf,
                      const json_t *newf, keyset_t *ko, keyset_t *kn)
{
    int rc = 0;
    keyset_reset(ko);
    keyset_reset(kn);
    if (oldf) rc = store_index_keys(f, prefix, index_id, oldf, ko);
    if (rc == 0 && newf) rc = store_index_keys(f, prefix, index_id, newf, kn);
    if (rc) return err_set(KITH_EINTERNAL, "%s.%s: cannot encode index key", c->name, f->name);
    MDB_val d = {ID_LEN, (void *)id->b};
    for (size_t i = 0; i < ko->n; i++) {
        if (keyset_has(kn, keyset_key(ko, i), ko->len[i])) continue;
        MDB_val k = {ko->len[i], (void *)keyset_key(ko, i)};
        rc = mdb_del(w->txn, w->st->dbi[DB_INDEX], &k, &d);
        if (rc && rc != MDB_NOTFOUND) return store_mdb_err(rc, "index");
    }
    for (size_t i = 0; i < kn->n; i++) {
        if (keyset_has(ko, keyset_key(kn, i), kn->len[i])) continue;
        const char *key = keyset_key(kn, i);
        if (!prefix && (f->flags & SF_UNIQUE) && (uint8_t)key[4] == IKEY_TAG_VALUE) {
            rc = unique_check(w, c, f, id, key, kn->len[i], newf);
            if (rc) return rc;
        }
        MDB_val k = {kn->len[i], (void *)key};
        rc = mdb_put(w->txn, w->st->dbi[DB_INDEX], &k, &d, MDB_NODUPDATA);
        if (rc && rc != MDB_KEYEXIST) return store_mdb_err(rc, "index");
    }
    return 0;
}

int store_index_update(store_wtxn_t *w, const store_coll_t *c, const kith_id_t *id,
                       const json_t *old_fields, const json_t *new_fields)
{
    keyset_t ko, kn;
    keyset_init(&ko);
    keyset_init(&kn);
    int rc = 0;
    for (size_t i = 0; i < c->nfields && rc == 0; i++) {
        const store_field_t *f = &c->fields[i];
        if (f->index_id)
            rc = index_move(w, c, f, 0, f->index_id, id, old_fields, new_fields, &ko, &kn);
        if (rc == 0 && f->prefix_id)
            rc = index_move(w, c, f, 1, f->prefix_id, id, old_fields, new_fields, &ko, &kn);
    }
    keyset_free(&ko);
    keyset_free(&kn);
    return rc;
}

int store_index_build_all(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, w->st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, "records");
    uint8_t start[4];
    store_u32be(start, c->id);
    MDB_val k = {4, start}, d;
    keyset_t ko, kn;
    keyset_init(&ko);
    keyset_init(&kn);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != c->id) break;
        kith_id_t id;
        memcpy(id.b, (uint8_t *)k.mv_data + 4, ID_LEN);
        store_record_t rec;
        rc = store_rec_decode(c, &id, &d, &rec);
        json_t *fields = rc ? NULL : json_parse(rec.json, rec.json_len);
        if (!fields) {
            rc = rc ? rc : KITH_ECORRUPT;
            break;
        }
        rc = index_move(w, c, f, 0, f->index_id, &id, NULL, fields, &ko, &kn);
        json_decref(fields);
        if (rc) break;
    }
    mdb_cursor_close(cur);
    keyset_free(&ko);
    keyset_free(&kn);
    if (rc == MDB_NOTFOUND) rc = 0;
    return store_rc(rc, "records");
}

/* ---- jobs ---- */

static void job_key(char out[6], uint32_t index_id)
{
    out[0] = 'j';
    out[1] = '/';
    store_u32be(out + 2, index_id);
}

int store_job_add(store_wtxn_t *w, int kind, uint32_t coll_id, const char *field, int prefix,
                  uint32_t index_id)
{
    json_t *j = json_pack("{s:i,s:I,s:s,s:b,s:s}", "kind", kind, "coll", (json_int_t)coll_id,
                          "field", field, "prefix", prefix, "after", "");
    size_t n;
    char *s = json_to_str(j, &n);
    json_decref(j);
    char key[6];
    job_key(key, index_id);
    MDB_val k = {6, key}, d = {n, s};
    int rc = mdb_put(w->txn, w->st->dbi[DB_META], &k, &d, 0);
    free(s);
    w->jobs_changed = 1;
    return store_mdb_err(rc, "jobs");
}

size_t store_jobs_count(store_t *st, MDB_txn *txn)
{
    MDB_cursor *cur;
    size_t n = 0;
    if (mdb_cursor_open(txn, st->dbi[DB_META], &cur)) return 0;
    MDB_val k = {2, "j/"}, d;
    for (int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 6 || memcmp(k.mv_data, "j/", 2) != 0) break;
        n++;
    }
    mdb_cursor_close(cur);
    return n;
}

/* Marks the finished index ready: a new schema generation, same version. */
static int job_finish_build(store_t *st, MDB_txn *txn, const store_coll_t *c, const char *field,
                            int prefix, store_schema_t **news)
{
    store_coll_t *nc = schema_coll_clone(c);
    store_field_t *f = (store_field_t *)store_coll_field(nc, field);
    if (prefix)
        f->prefix_state = IDX_READY;
    else
        f->index_state = IDX_READY;
    uint64_t gen;
    int rc = schema_bump_gen(txn, st, &gen);
    if (rc == 0) rc = schema_store_coll(txn, st, nc, 0);
    if (rc) {
        schema_coll_free(nc);
        return rc;
    }
    *news = schema_set_with(st->wschema, nc, gen);
    log_info("store", "%s: index on %s.%s%s is ready", st->dir, c->name, field,
             prefix ? " (prefix)" : "");
    return 0;
}

static int job_step_build(store_t *st, MDB_txn *txn, json_t *job, uint32_t index_id, int *done,
                          store_schema_t **news)
{
    uint32_t coll_id = (uint32_t)json_integer_value(json_object_get(job, "coll"));
    const char *field = json_string_value(json_object_get(job, "field"));
    int prefix = json_is_true(json_object_get(job, "prefix"));
    const char *after = json_string_value(json_object_get(job, "after"));
    const store_coll_t *c = store_schema_coll_by_id(st->wschema, coll_id);
    const store_field_t *f = c && field ? store_coll_field(c, field) : NULL;
    if (!f || (prefix ? f->prefix_id : f->index_id) != index_id) {
        *done = 1; /* the index went away meanwhile; a drop job cleans up */
        return 0;
    }
    store_wtxn_t w = {.st = st, .txn = txn, .schema = st->wschema};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, "records");
    uint8_t start[RKEY_LEN];
    memset(start, 0, sizeof start);
    store_u32be(start, coll_id);
    int skip_first = 0;
    if (after && strlen(after) == (size_t)2 * ID_LEN) {
        for (size_t i = 0; i < ID_LEN; i++) {
            unsigned x = 0;
            sscanf(after + 2 * i, "%2x", &x);
            start[4 + i] = (uint8_t)x;
        }
        skip_first = 1;
    }
    MDB_val k = {RKEY_LEN, start}, d;
    keyset_t ko, kn;
    keyset_init(&ko);
    keyset_init(&kn);
    int n = 0;
    kith_id_t last;
    int have_last = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != coll_id) {
            rc = MDB_NOTFOUND;
            break;
        }
        if (skip_first && memcmp(k.mv_data, start, RKEY_LEN) == 0) continue;
        if (n >= JOB_BUILD_STEP) break;
        kith_id_t id;
        memcpy(id.b, (uint8_t *)k.mv_data + 4, ID_LEN);
        store_record_t rec;
        json_t *fields = NULL;
        if (store_rec_decode(c, &id, &d, &rec) == 0) fields = json_parse(rec.json, rec.json_len);
        if (fields) {
            rc = index_move(&w, c, f, prefix, index_id, &id, NULL, fields, &ko, &kn);
            json_decref(fields);
            if (rc) break;
        } else {
            /* A damaged record: kith check reports it; the build goes on. */
            char ids[ID_TEXT_LEN + 1];
            id_encode(&id, ids);
            log_error("store", "%s: index build skips unreadable record %s/%s", st->dir, c->name,
                      ids);
        }
        last = id;
        have_last = 1;
        n++;
    }
    mdb_cursor_close(cur);
    keyset_free(&ko);
    keyset_free(&kn);
    if (rc == MDB_NOTFOUND) {
        *done = 1;
        return job_finish_build(st, txn, c, field, prefix, news);
    }
    if (rc) return store_rc(rc, "index build");
    if (have_last) {
        char hex[2 * ID_LEN + 1];
        hex_encode(last.b, ID_LEN, hex);
        json_object_set_new(job, "after", json_string(hex));
    }
    return 0;
}

static int job_step_drop(store_t *st, MDB_txn *txn, uint32_t index_id, int *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_INDEX], &cur);
    if (rc) return store_mdb_err(rc, "index");
    uint8_t start[4];
    store_u32be(start, index_id);
    size_t n = 0;
    while (n < JOB_DROP_STEP) {
        MDB_val k = {4, start}, d;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc == 0 && (k.mv_size < 4 || load_u32be(k.mv_data) != index_id)) rc = MDB_NOTFOUND;
        if (rc) break;
        size_t dups = 0;
        mdb_cursor_count(cur, &dups);
        rc = mdb_cursor_del(cur, MDB_NODUPDATA); /* the key and all its ids */
        if (rc) break;
        n += dups;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *done = 1;
        return 0;
    }
    return store_mdb_err(rc, "index drop");
}

/* One bounded step of the first pending job in txn. */
static int job_step(store_t *st, MDB_txn *txn, int *found, int *done, store_schema_t **news)
{
    MDB_cursor *cur;
    MDB_val k = {2, "j/"}, d;
    int rc = mdb_cursor_open(txn, st->dbi[DB_META], &cur);
    if (rc) return store_mdb_err(rc, "jobs");
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == 0 && (k.mv_size != 6 || memcmp(k.mv_data, "j/", 2) != 0)) rc = MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return store_mdb_err(rc, "jobs");
    *found = 1;
    char key[6];
    memcpy(key, k.mv_data, 6);
    uint32_t index_id = load_u32be(key + 2);
    json_t *job = json_parse(d.mv_data, d.mv_size);
    if (!job) {
        *done = 1; /* an unreadable job record: drop it rather than loop forever */
        log_error("store", "%s: dropping unreadable job for index %u", st->dir, index_id);
    } else if (json_integer_value(json_object_get(job, "kind")) == JOB_BUILD) {
        rc = job_step_build(st, txn, job, index_id, done, news);
    } else {
        rc = job_step_drop(st, txn, index_id, done);
    }
    MDB_val jk = {6, key};
    if (rc == 0 && *done) {
        rc = store_mdb_err(mdb_del(txn, st->dbi[DB_META], &jk, NULL), "jobs");
    } else if (rc == 0) {
        size_t n;
        char *s = json_to_str(job, &n);
        MDB_val jd = {n, s};
        rc = store_mdb_err(mdb_put(txn, st->dbi[DB_META], &jk, &jd, 0), "jobs");
        free(s);
    }
    if (job) json_decref(job);
    return rc;
}

int store_jobs_step(store_t *st)
{
    for (int attempt = 0; attempt < 64; attempt++) {
        MDB_txn *txn;
        int rc = store_mdb_err(mdb_txn_begin(st->env, NULL, 0, &txn), "jobs");
        int found = 0, done = 0;
        store_schema_t *news = NULL;
        if (rc == 0) {
            rc = job_step(st, txn, &found, &done, &news);
            if (rc == 0 && found)
                rc = store_mdb_err(mdb_txn_commit(txn), "jobs");
            else
                mdb_txn_abort(txn);
        }
        if (rc && news) {
            store_schema_unref(news);
            news = NULL;
        }
        if (rc == STORE_EMAPFULL || rc == STORE_ERESIZED) {
            int grc = rc == STORE_EMAPFULL ? store_env_grow(st) : store_env_adopt(st);
            if (grc) return grc;
            continue;
        }
        if (rc) return STORE_RETRYABLE(rc) ? err_last()->code : rc;
        if (!found) return 0;
        if (news) store_writer_publish(st, news);
        if (done) {
            uv_mutex_lock(&st->jobs_lock);
            if (st->njobs) st->njobs--;
            if (st->njobs == 0) uv_cond_broadcast(&st->jobs_cond);
            uv_mutex_unlock(&st->jobs_lock);
        }
        return 1;
    }
    return err_set(KITH_ENOSPC, "%s: index job cannot make room", st->dir);
}
