/*
 * store_check: the consistency walk behind `kith check`. One read snapshot,
 * so it is safe (and exact) while a server writes.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct check {
    store_t *st;
    MDB_txn *txn;
    store_schema_t *schema;
    store_check_report_t *rep;
    store_problem_fn fn;
    void *ctx;
    keyset_t ks;
} check_t;

__attribute__((format(printf, 2, 3))) static void problem(check_t *ck, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck->rep->problems++;
    if (ck->fn && ck->rep->problems <= 1000) ck->fn(ck->ctx, msg);
}

/* The field owning an index id, and whether it is the prefix index. */
static const store_field_t *index_owner(const store_schema_t *s, uint32_t index_id,
                                        const store_coll_t **c, int *prefix)
{
    for (size_t i = 0; i < s->ncolls; i++)
        for (size_t j = 0; j < s->colls[i]->nfields; j++) {
            const store_field_t *f = &s->colls[i]->fields[j];
            if (f->index_id == index_id || f->prefix_id == index_id) {
                *c = s->colls[i];
                *prefix = f->prefix_id == index_id;
                return f;
            }
        }
    return NULL;
}

static int has_job(check_t *ck, uint32_t index_id)
{
    char key[6] = {'j', '/'};
    store_u32be(key + 2, index_id);
    MDB_val k = {6, key}, d;
    return mdb_get(ck->txn, ck->st->dbi[DB_META], &k, &d) == 0;
}

static void check_record_indexes(check_t *ck, const store_coll_t *c, const kith_id_t *id,
                                 const json_t *fields, const char *ids)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(ck->txn, ck->st->dbi[DB_INDEX], &cur)) return;
    for (size_t i = 0; i < c->nfields; i++) {
        const store_field_t *f = &c->fields[i];
        for (int prefix = 0; prefix < 2; prefix++) {
            uint32_t iid = prefix ? f->prefix_id : f->index_id;
            int state = prefix ? f->prefix_state : f->index_state;
            if (!iid || state != IDX_READY) continue;
            if (store_index_keys(f, prefix, iid, fields, &ck->ks)) {
                problem(ck, "%s/%s: field %s cannot be indexed", c->name, ids, f->name);
                continue;
            }
            for (size_t k = 0; k < ck->ks.n; k++) {
                MDB_val key = {ck->ks.len[k], ck->ks.data.p + ck->ks.off[k]};
                MDB_val d = {ID_LEN, (void *)id->b};
                if (mdb_cursor_get(cur, &key, &d, MDB_GET_BOTH) != 0)
                    problem(ck, "%s/%s: %sindex on %s lacks this record's entry", c->name, ids,
                            prefix ? "prefix " : "", f->name);
            }
        }
    }
    mdb_cursor_close(cur);
}

static void check_problem_cb(void *ctx, const char *msg)
{
    problem(ctx, "%s", msg);
}

static int walk_records(check_t *ck)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ck->txn, ck->st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, "records");
    MDB_val k, d;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        ck->rep->records++;
        if (k.mv_size != RKEY_LEN) {
            problem(ck, "records: a key of %zu bytes (expected %d)", k.mv_size, RKEY_LEN);
            continue;
        }
        uint32_t cid = load_u32be(k.mv_data);
        kith_id_t id;
        memcpy(id.b, (uint8_t *)k.mv_data + 4, ID_LEN);
        char ids[ID_TEXT_LEN + 1];
        id_encode(&id, ids);
        const store_coll_t *c = store_schema_coll_by_id(ck->schema, cid);
        if (!c) {
            problem(ck, "record %s belongs to unknown collection id %u", ids, cid);
            continue;
        }
        store_record_t rec;
        if (store_rec_decode(c, &id, &d, &rec) != 0) {
            problem(ck, "%s", err_last()->msg);
            continue;
        }
        json_t *fields = json_parse(rec.json, rec.json_len);
        if (!json_is_object(fields)) {
            problem(ck, "record %s/%s: payload is not a JSON object", c->name, ids);
            if (fields) json_decref(fields);
            continue;
        }
        json_t *canon = store_validate(NULL, c, fields, NULL, VALIDATE_UPDATE);
        if (!canon) {
            const err_diag_t *e = err_last();
            problem(ck, "record %s/%s breaks the schema: %s %s", c->name, ids,
                    e->nfields ? e->fields[0].name : "", e->nfields ? e->fields[0].msg : e->msg);
        } else {
            json_decref(canon);
        }
        if (rec.version == 0 || rec.created_us > rec.updated_us)
            problem(ck, "record %s/%s: bad header (version %llu)", c->name, ids,
                    (unsigned long long)rec.version);
        check_record_indexes(ck, c, &id, fields, ids);
        json_decref(fields);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, "records");
}

static int walk_index(check_t *ck)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ck->txn, ck->st->dbi[DB_INDEX], &cur);
    if (rc) return store_mdb_err(rc, "index");
    MDB_val k, d;
    uint32_t warned = 0;
    buf_t prevkey = BUF_INIT;
    int dup_reported = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        ck->rep->index_entries++;
        if (k.mv_size < 5 || d.mv_size != ID_LEN) {
            problem(ck, "index: a malformed entry (key %zu bytes, data %zu)", k.mv_size, d.mv_size);
            continue;
        }
        uint32_t iid = load_u32be(k.mv_data);
        const store_coll_t *c;
        int prefix;
        const store_field_t *f = index_owner(ck->schema, iid, &c, &prefix);
        if (!f) {
            if (!has_job(ck, iid) && warned != iid) {
                problem(ck, "index: entries of unknown index %u", iid);
                warned = iid;
            }
            continue;
        }
        kith_id_t id;
        memcpy(id.b, d.mv_data, ID_LEN);
        char ids[ID_TEXT_LEN + 1];
        id_encode(&id, ids);
        /* Entries of one key are adjacent: a second id under a unique value is a
         * duplicate (keys cut at IKEY_VALUE_MAX may legitimately collide). */
        int same = prevkey.len == k.mv_size && memcmp(prevkey.p, k.mv_data, k.mv_size) == 0;
        if (same && !prefix && (f->flags & SF_UNIQUE) &&
            ((uint8_t *)k.mv_data)[4] == IKEY_TAG_VALUE && k.mv_size < IKEY_MAX && !dup_reported) {
            problem(ck, "%s: unique index on %s holds several records for one value (e.g. %s)",
                    c->name, f->name, ids);
            dup_reported = 1;
        }
        if (!same) {
            buf_reset(&prevkey);
            buf_add(&prevkey, k.mv_data, k.mv_size);
            dup_reported = 0;
        }
        store_record_t rec;
        if (store_rec_get(ck->st, ck->txn, c, &id, &rec) != 0) {
            if (err_last()->code == KITH_ENOTFOUND)
                problem(ck, "%s: index on %s points at missing record %s", c->name, f->name, ids);
            continue; /* a corrupt record is reported by the record walk */
        }
        json_t *fields = json_parse(rec.json, rec.json_len);
        if (!fields) continue;
        if (store_index_keys(f, prefix, iid, fields, &ck->ks) == 0) {
            int found = 0;
            for (size_t i = 0; i < ck->ks.n && !found; i++)
                found = ck->ks.len[i] == k.mv_size &&
                        memcmp(ck->ks.data.p + ck->ks.off[i], k.mv_data, k.mv_size) == 0;
            if (!found)
                problem(ck, "%s/%s: stale %sindex entry on %s (the record's value differs)",
                        c->name, ids, prefix ? "prefix " : "", f->name);
        }
        json_decref(fields);
    }
    mdb_cursor_close(cur);
    buf_free(&prevkey);
    return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, "index");
}

static int walk_log(check_t *ck)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ck->txn, ck->st->dbi[DB_LOG], &cur);
    if (rc) return store_mdb_err(rc, "change log");
    MDB_val k, d;
    uint64_t prev = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        ck->rep->log_entries++;
        if (k.mv_size != 8) {
            problem(ck, "change log: a key of %zu bytes", k.mv_size);
            continue;
        }
        uint64_t seq = load_u64be(k.mv_data);
        if (prev == 0 && seq != 1)
            problem(ck, "change log: starts at %llu, not 1", (unsigned long long)seq);
        else if (prev && seq != prev + 1)
            problem(ck, "change log: gap between %llu and %llu", (unsigned long long)prev,
                    (unsigned long long)seq);
        const uint8_t *p = d.mv_data;
        if (d.mv_size < 44 || p[0] < 1 || p[0] > 2 || p[1] < 1 ||
            p[1] > (p[0] == 1 ? STORE_CHANGE_DELETE : STORE_CHANGE_EVENT))
            problem(ck, "change log: entry %llu is malformed", (unsigned long long)seq);
        else if (p[1] != STORE_CHANGE_EVENT &&
                 !store_schema_coll_by_id(ck->schema, load_u32be(p + 4)))
            problem(ck, "change log: entry %llu names unknown collection %u",
                    (unsigned long long)seq, load_u32be(p + 4));
        prev = seq;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return store_mdb_err(rc, "change log");
    ck->rep->last_seq = prev;
    uint64_t meta_seq;
    if ((rc = store_meta_get_u64(ck->txn, ck->st, "seq", &meta_seq))) return rc;
    if (meta_seq != prev)
        problem(ck, "change log: ends at %llu but meta says %llu", (unsigned long long)prev,
                (unsigned long long)meta_seq);
    return 0;
}

static int walk_small(check_t *ck)
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(ck->txn, ck->st->dbi[DB_CURSORS], &cur);
    if (rc) return store_mdb_err(rc, "cursors");
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        ck->rep->cursors++;
        if (d.mv_size != 8 || load_u64be(d.mv_data) > ck->rep->last_seq)
            problem(ck, "cursor '%.*s' is beyond the change log's end", (int)k.mv_size,
                    (char *)k.mv_data);
    }
    mdb_cursor_close(cur);
    if ((rc = mdb_cursor_open(ck->txn, ck->st->dbi[DB_IDEM], &cur)))
        return store_mdb_err(rc, "idempotency keys");
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT))
        if (k.mv_size > 0 && ((char *)k.mv_data)[0] == 'k') ck->rep->idem_keys++;
    mdb_cursor_close(cur);
    ck->rep->jobs = store_jobs_count(ck->st, ck->txn);
    return 0;
}

int store_check(store_t *st, store_check_report_t *rep, store_problem_fn fn, void *ctx)
{
    memset(rep, 0, sizeof *rep);
    check_t ck = {.st = st, .rep = rep, .fn = fn, .ctx = ctx};
    keyset_init(&ck.ks);
    pthread_rwlock_rdlock(&st->env_lock); /* no remap while we read */
    int rc = store_rtxn_begin_raw(st, &ck.txn);
    if (rc) {
        pthread_rwlock_unlock(&st->env_lock);
        return rc;
    }
    rc = schema_load(st, ck.txn, &ck.schema);
    if (rc == 0) {
        rep->collections = ck.schema->ncolls;
        rc = walk_records(&ck);
        if (rc == 0) rc = walk_index(&ck);
        if (rc == 0) rc = walk_log(&ck);
        if (rc == 0) rc = walk_small(&ck);
        if (rc == 0)
            rc = store_audit_verify(st, ck.txn, &rep->audit_entries, check_problem_cb, &ck);
        if (rc == 0) rc = store_timer_verify(st, ck.txn, &rep->timers, check_problem_cb, &ck);
        store_schema_unref(ck.schema);
    }
    mdb_txn_abort(ck.txn);
    pthread_rwlock_unlock(&st->env_lock);
    keyset_free(&ck.ks);
    return rc;
}
