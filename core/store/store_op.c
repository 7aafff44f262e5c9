/*
 * store_op: write operations — constructors (any thread) and what each does
 * inside its nested transaction on the writer thread.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"
#include "base/rand.h"

#include <stdio.h>
#include <string.h>

int store_log_cursor_put(store_wtxn_t *w, const char *consumer, uint64_t seq);

static store_op_t *op_new(int kind, const char *coll)
{
    store_op_t *op = xcalloc(1, sizeof *op);
    op->kind = kind;
    if (coll) snprintf(op->coll, sizeof op->coll, "%s", coll);
    return op;
}

store_op_t *store_op_create(const char *coll, json_t *fields)
{
    store_op_t *op = op_new(STORE_OP_CREATE, coll);
    op->data = json_incref(fields);
    return op;
}

store_op_t *store_op_update(const char *coll, const kith_id_t *id, json_t *patch,
                            uint64_t if_version)
{
    store_op_t *op = op_new(STORE_OP_UPDATE, coll);
    op->id = *id;
    op->data = json_incref(patch);
    op->if_version = if_version;
    return op;
}

store_op_t *store_op_replace(const char *coll, const kith_id_t *id, json_t *fields,
                             uint64_t if_version)
{
    store_op_t *op = op_new(STORE_OP_REPLACE, coll);
    op->id = *id;
    op->data = json_incref(fields);
    op->if_version = if_version;
    return op;
}

store_op_t *store_op_delete(const char *coll, const kith_id_t *id, uint64_t if_version)
{
    store_op_t *op = op_new(STORE_OP_DELETE, coll);
    op->id = *id;
    op->if_version = if_version;
    return op;
}

store_op_t *store_op_schema(json_t *def)
{
    json_t *n = json_is_object(def) ? json_object_get(def, "name") : NULL;
    store_op_t *op = op_new(STORE_OP_SCHEMA, json_is_string(n) ? json_string_value(n) : "");
    op->data = json_incref(def);
    return op;
}

store_op_t *store_op_field(const char *coll, const char *name, json_t *def)
{
    store_op_t *op = op_new(STORE_OP_FIELD, coll);
    snprintf(op->field, sizeof op->field, "%s", name);
    op->data = json_incref(def);
    return op;
}

store_op_t *store_op_upsert(const char *coll, const char *match, json_t *fields)
{
    store_op_t *op = op_new(STORE_OP_UPSERT, coll);
    snprintf(op->field, sizeof op->field, "%s", match);
    op->data = json_incref(fields);
    return op;
}

store_op_t *store_op_cursor_set(const char *consumer, uint64_t seq)
{
    store_op_t *op = op_new(STORE_OP_CURSOR, NULL);
    op->consumer = xstrdup(consumer);
    op->cursor_seq = seq;
    return op;
}

store_op_t *store_op_custom(store_custom_fn fn, void *udata)
{
    store_op_t *op = op_new(STORE_OP_CUSTOM, NULL);
    op->custom = fn;
    op->udata = udata;
    return op;
}

void store_op_set_idem(store_op_t *op, const char *key)
{
    free(op->idem_key);
    op->idem_key = key ? xstrdup(key) : NULL;
}

void store_op_reset(store_op_t *op)
{
    free(op->json);
    op->json = NULL;
    op->json_len = 0;
    op->status = 0;
    op->version = 0;
    op->created_us = op->updated_us = 0;
    op->seq = 0;
    op->nochange = 0;
    op->idem_replayed = 0;
    op->upserted = 0;
    memset(&op->rid, 0, sizeof op->rid);
    free(op->diag); /* failures only: a success allocates nothing */
    op->diag = NULL;
    if (op->schema) store_schema_unref(op->schema);
    op->schema = NULL;
}

store_grave_t *store_grave_new(void)
{
    store_grave_t *g = xcalloc(1, sizeof *g);
    atomic_init(&g->refs, 1);
    uv_mutex_init(&g->lock);
    return g;
}

void store_grave_unref(store_grave_t *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    store_grave_drain(g);
    uv_mutex_destroy(&g->lock);
    free(g);
}

void store_grave_live(store_grave_t *g, int live)
{
    uv_mutex_lock(&g->lock);
    g->live = live;
    if (live) g->writer = uv_thread_self();
    uv_mutex_unlock(&g->lock);
    if (!live) store_grave_drain(g);
}

void store_grave_drain(store_grave_t *g)
{
    uv_mutex_lock(&g->lock);
    void **v = g->v;
    size_t n = atomic_exchange(&g->n, 0);
    g->v = NULL;
    g->cap = 0;
    uv_mutex_unlock(&g->lock);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Frees p, which g's writer allocated: from another thread while the writer
 * runs, hands it back for the writer to free. */
static void writer_free(store_grave_t *g, void *p)
{
    if (!p) return;
    if (g) {
        uv_thread_t self = uv_thread_self();
        uv_mutex_lock(&g->lock);
        if (g->live && !uv_thread_equal(&self, &g->writer)) {
            if (atomic_load(&g->n) == g->cap) {
                g->cap = g->cap ? g->cap * 2 : 1024;
                g->v = xrealloc(g->v, g->cap * sizeof *g->v);
            }
            g->v[atomic_fetch_add(&g->n, 1)] = p;
            p = NULL;
        }
        uv_mutex_unlock(&g->lock);
    }
    free(p);
}

void store_op_free(store_op_t *op)
{
    if (!op) return;
    if (op->data) json_decref(op->data);
    if (op->audit) json_decref(op->audit);
    writer_free(op->grave, op->json);
    free(op->idem_key);
    free(op->consumer);
    free(op->diag);
    if (op->schema) store_schema_unref(op->schema);
    store_grave_unref(op->grave);
    free(op);
}

/* ---- running ---- */

static const store_coll_t *op_coll(store_wtxn_t *w, const store_op_t *op)
{
    const store_coll_t *c = store_schema_coll(w->schema, op->coll);
    if (!c || (c->name[0] == '_' && !op->system)) {
        err_set(KITH_ENOTFOUND, "no collection '%s'", op->coll);
        return NULL;
    }
    return c;
}

static void op_set_result(store_op_t *op, const kith_id_t *id, uint64_t version, int64_t created,
                          int64_t updated, char *json, size_t len)
{
    op->rid = *id;
    op->version = version;
    op->created_us = created;
    op->updated_us = updated;
    free(op->json);
    if (op->no_record) {
        free(json);
        json = NULL;
        len = 0;
    }
    op->json = json;
    op->json_len = len;
}

/* Writes the record and its change-log entry. */
static int put_record(store_wtxn_t *w, const store_coll_t *c, const kith_id_t *id, uint64_t version,
                      int64_t created, const json_t *fields, unsigned flags, char **json_out,
                      size_t *len_out)
{
    size_t jl;
    char *js = json_to_str(fields, &jl);
    if (jl + REC_HDR_LEN > STORE_RECORD_MAX) {
        free(js);
        return err_set(KITH_ELIMIT, "%s: a record is at most %zu bytes", c->name, STORE_RECORD_MAX);
    }
    buf_t rb = BUF_INIT;
    store_rec_encode(&rb, c->id, id, version, created, w->now_us, js, jl);
    uint8_t key[RKEY_LEN];
    store_rkey(key, c->id, id);
    MDB_val k = {RKEY_LEN, key}, d = {rb.len, rb.p};
    int rc = mdb_put(w->txn, w->st->dbi[DB_RECORDS], &k, &d, flags);
    buf_free(&rb);
    if (rc == MDB_KEYEXIST) {
        free(js);
        err_set(KITH_EEXIST, "%s: a record with this id exists", c->name);
        char ids[ID_TEXT_LEN + 1];
        id_encode(id, ids);
        err_existing(ids);
        return KITH_EEXIST;
    }
    if (rc) {
        free(js);
        return store_mdb_err(rc, c->name);
    }
    *json_out = js;
    *len_out = jl;
    return 0;
}

/* A new record id that sorts after every id this writer made before, so id
 * order is creation order even within one millisecond (or if the clock steps
 * back). Then the next id is the previous one plus 1 + a random 32-bit step:
 * still ordered, not guessable from its predecessor. */
static void next_id(store_wtxn_t *w, kith_id_t *id)
{
    kith_id_t *last = &w->st->last_id;
    id_new(id, w->now_us / 1000);
    if (memcmp(id->b, last->b, ID_LEN) <= 0) {
        uint32_t step;
        rand_bytes(&step, sizeof step);
        uint64_t carry = (uint64_t)step + 1;
        *id = *last;
        for (int i = ID_LEN - 1; i >= 6 && carry; i--) {
            carry += id->b[i];
            id->b[i] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    *last = *id;
}

/* The before hook (core/bus) for a write about to happen. *fields (create,
 * update) may be amended by it, then validated again; names/n are refreshed.
 * For an update, *before gets the previous values of the changed fields. */
static int before_hook(store_wtxn_t *w, int kind, const store_coll_t *c, const kith_id_t *id,
                       const json_t *old, json_t **fields, const char **names, size_t *n)
{
    const store_hooks_t *h = w->st->hooks;
    if (!h || !h->before) return 0;
    store_pending_t p = {.op = kind,
                         .coll = c,
                         .id = *id,
                         .before = old,
                         .after = fields ? *fields : NULL,
                         .changed = names,
                         .nchanged = *n};
    if (w->nhandling >= (int)ARRAY_LEN(w->handling))
        return err_set(KITH_ELIMIT, "before-hooks nest too deep");
    w->handling[w->nhandling].coll = c->name;
    w->handling[w->nhandling].id = *id;
    w->nhandling++;
    /* the values as validated: a hook's amendment is checked only where it
     * differs (a whole second validation cost as much as the rules) */
    json_t *pre[STORE_FIELDS_MAX];
    size_t npre = fields ? c->nfields : 0;
    for (size_t i = 0; i < npre; i++)
        pre[i] = json_incref(json_object_get(*fields, c->fields[i].name));
    int rc = h->before(w->st->hooks_ctx, w, &p);
    w->nhandling--;
    if (rc == 0 && p.amended && fields) {
        rc = store_revalidate(w, c, *fields, pre, old,
                              kind == STORE_CHANGE_CREATE ? VALIDATE_CREATE : VALIDATE_REPLACE);
        if (rc) {
            /* name the hook's mistake, not the client's */
            err_diag_t d;
            err_save(&d);
            snprintf(d.msg, sizeof d.msg, "%s: a before-hook's change breaks the schema", c->name);
            err_restore(&d);
        }
    }
    for (size_t i = 0; i < npre; i++)
        json_decref(pre[i]);
    if (rc || !p.amended || !fields) return rc;
    *n = 0;
    for (size_t i = 0; i < c->nfields; i++) {
        const char *f = c->fields[i].name;
        json_t *a = old ? json_object_get(old, f) : NULL, *b = json_object_get(*fields, f);
        if ((a == NULL) != (b == NULL) || (a && !json_equal(a, b))) names[(*n)++] = f;
    }
    return 0;
}

static int op_create(store_wtxn_t *w, store_op_t *op)
{
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    json_t *fields = store_validate(w, c, op->data, NULL, VALIDATE_CREATE);
    if (!fields) return err_last()->code;
    kith_id_t id;
    if (op->has_id)
        id = op->id;
    else
        next_id(w, &id);
    const char *names[STORE_FIELDS_MAX];
    size_t n = 0;
    int rc = 0;
    if (w->st->hooks) {
        /* names from the schema: a hook may delete keys of fields */
        for (size_t i = 0; i < c->nfields; i++)
            if (json_object_get(fields, c->fields[i].name)) names[n++] = c->fields[i].name;
        rc = before_hook(w, STORE_CHANGE_CREATE, c, &id, NULL, &fields, names, &n);
    }
    if (rc == 0 && op->guard) rc = op->guard(w, op, NULL, fields);
    if (rc == 0) rc = store_index_update(w, c, &id, NULL, fields);
    char *js = NULL;
    size_t jl = 0;
    if (rc == 0) rc = put_record(w, c, &id, 1, w->now_us, fields, MDB_NOOVERWRITE, &js, &jl);
    if (rc == 0) {
        n = 0;
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v) names[n++] = k;
        rc = store_log_append(w, STORE_CHANGE_CREATE, c, &id, 1, names, n, NULL);
    }
    json_decref(fields);
    if (rc) {
        free(js);
        return rc;
    }
    op_set_result(op, &id, 1, w->now_us, w->now_us, js, jl);
    op->seq = w->seq;
    return 0;
}

/* RFC 7396 JSON merge patch; returns a new reference. */
static json_t *merge_patch(const json_t *target, const json_t *patch)
{
    if (!json_is_object(patch)) return json_incref((json_t *)patch);
    json_t *out = json_is_object(target) ? json_copy((json_t *)target) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(out, k);
        } else {
            json_t *m = merge_patch(json_object_get(out, k), v);
            json_object_set_new(out, k, m);
        }
    }
    return out;
}

static int check_version(const store_op_t *op, const store_record_t *rec)
{
    if (op->if_version && op->if_version != rec->version) {
        char ids[ID_TEXT_LEN + 1];
        id_encode(&rec->id, ids);
        return err_set(KITH_ECONFLICT, "%s/%s is at version %llu, not %llu", op->coll, ids,
                       (unsigned long long)rec->version, (unsigned long long)op->if_version);
    }
    return 0;
}

static int op_modify(store_wtxn_t *w, store_op_t *op)
{
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    store_record_t rec;
    int rc = store_rec_get(w->st, w->txn, c, &op->id, &rec);
    if (rc) return rc;
    if ((rc = check_version(op, &rec))) return rc;
    if (!json_is_object(op->data)) return err_set(KITH_EINVAL, "an update is a JSON object");
    json_t *old = json_parse(rec.json, rec.json_len);
    if (!old) return err_set(KITH_ECORRUPT, "%s: stored record is not JSON", c->name);
    json_t *merged =
        op->kind == STORE_OP_UPDATE ? merge_patch(old, op->data) : json_incref(op->data);
    json_t *fields = store_validate(
        w, c, merged, old, op->kind == STORE_OP_UPDATE ? VALIDATE_UPDATE : VALIDATE_REPLACE);
    json_decref(merged);
    if (!fields) {
        json_decref(old);
        return err_last()->code;
    }
    const char *names[STORE_FIELDS_MAX];
    size_t n = 0;
    json_t *before = json_object();
    for (size_t i = 0; i < c->nfields; i++) {
        const char *f = c->fields[i].name;
        json_t *a = json_object_get(old, f), *b = json_object_get(fields, f);
        if ((a == NULL) != (b == NULL) || (a && !json_equal(a, b))) {
            names[n++] = f;
            json_object_set(before, f, a ? a : json_null());
        }
    }
    uint64_t version = rec.version;
    int64_t created = rec.created_us, updated0 = rec.updated_us;
    char *js = NULL;
    size_t jl = 0;
    if (n == 0) {
        /* Nothing changed: no new version, nothing written. */
        op->nochange = 1;
        op_set_result(op, &op->id, version, created, rec.updated_us,
                      xstrndup(rec.json, rec.json_len), rec.json_len);
    } else {
        if (w->st->hooks) {
            rc = before_hook(w, STORE_CHANGE_UPDATE, c, &op->id, old, &fields, names, &n);
            if (rc == 0) {
                json_object_clear(before);
                for (size_t i = 0; i < n; i++) {
                    json_t *a = json_object_get(old, names[i]);
                    json_object_set(before, names[i], a ? a : json_null());
                }
            }
        }
        if (rc == 0 && n == 0) {
            /* the hook put everything back: nothing to write (and rec may
             * point at pages the hook's writes replaced) */
            size_t ol;
            char *os = json_to_str(old, &ol);
            op->nochange = 1;
            op_set_result(op, &op->id, version, created, updated0, os, ol);
        } else {
            if (rc == 0 && op->guard) rc = op->guard(w, op, old, fields);
            if (rc == 0) rc = store_index_update(w, c, &op->id, old, fields);
            if (rc == 0) rc = put_record(w, c, &op->id, version + 1, created, fields, 0, &js, &jl);
            if (rc == 0)
                rc = store_log_append(w, STORE_CHANGE_UPDATE, c, &op->id, version + 1, names, n,
                                      before);
            if (rc == 0) {
                op_set_result(op, &op->id, version + 1, created, w->now_us, js, jl);
                op->seq = w->seq;
            } else {
                free(js);
            }
        }
    }
    json_decref(before);
    json_decref(fields);
    json_decref(old);
    return rc;
}

static int op_delete(store_wtxn_t *w, store_op_t *op)
{
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    store_record_t rec;
    int rc = store_rec_get(w->st, w->txn, c, &op->id, &rec);
    if (rc) return rc;
    if ((rc = check_version(op, &rec))) return rc;
    json_t *old = json_parse(rec.json, rec.json_len);
    if (!old) return err_set(KITH_ECORRUPT, "%s: stored record is not JSON", c->name);
    /* rec points into the map; copy what we report before deleting. */
    char *js = xstrndup(rec.json, rec.json_len);
    size_t jl = rec.json_len;
    uint64_t version = rec.version;
    int64_t created = rec.created_us, updated = rec.updated_us;
    rc = 0;
    if (w->st->hooks) {
        const char *names[STORE_FIELDS_MAX];
        size_t n = 0;
        for (size_t i = 0; i < c->nfields && n < STORE_FIELDS_MAX; i++)
            if (json_object_get(old, c->fields[i].name)) names[n++] = c->fields[i].name;
        rc = before_hook(w, STORE_CHANGE_DELETE, c, &op->id, old, NULL, names, &n);
        /* the hook may have written: rec's pointers are stale now */
    }
    if (rc == 0 && op->guard) rc = op->guard(w, op, old, NULL);
    if (rc == 0) rc = store_index_update(w, c, &op->id, old, NULL);
    if (rc == 0) {
        uint8_t key[RKEY_LEN];
        store_rkey(key, c->id, &op->id);
        MDB_val k = {RKEY_LEN, key};
        rc = store_mdb_err(mdb_del(w->txn, w->st->dbi[DB_RECORDS], &k, NULL), c->name);
    }
    if (rc == 0) {
        const char *names[STORE_FIELDS_MAX];
        size_t n = 0;
        const char *k;
        json_t *v;
        json_object_foreach(old, k, v) names[n++] = k;
        rc = store_log_append(w, STORE_CHANGE_DELETE, c, &op->id, version, names, n, old);
    }
    json_decref(old);
    if (rc) {
        free(js);
        return rc;
    }
    op_set_result(op, &op->id, version, created, updated, js, jl);
    op->seq = w->seq;
    return 0;
}

static int op_schema(store_wtxn_t *w, store_op_t *op)
{
    store_coll_t *nc;
    int rc = schema_coll_parse(op->data, op->system, &nc);
    if (rc) return rc;
    return schema_apply(w, op, nc);
}

static int op_field(store_wtxn_t *w, store_op_t *op)
{
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    if (!json_is_object(op->data))
        return err_set(KITH_EINVAL, "a field definition is a JSON object");
    json_t *n = json_object_get(op->data, "name");
    if (n && (!json_is_string(n) || strcmp(json_string_value(n), op->field) != 0))
        return err_set(KITH_EINVAL, "the field's name must be '%s', as in the path", op->field);
    json_t *fd = json_copy(op->data);
    json_object_set_new(fd, "name", json_string(op->field));
    json_t *def = store_coll_to_json(c);
    json_object_del(def, "version");
    json_t *fa = json_object_get(def, "fields");
    int replaced = 0;
    for (size_t i = 0; i < json_array_size(fa); i++) {
        json_t *e = json_array_get(fa, i);
        if (strcmp(json_string_value(json_object_get(e, "name")), op->field) == 0) {
            json_array_set(fa, i, fd);
            replaced = 1;
        }
    }
    if (!replaced) json_array_append(fa, fd);
    json_decref(fd);
    store_coll_t *nc;
    int rc = schema_coll_parse(def, op->system, &nc);
    json_decref(def);
    if (rc) return rc;
    return schema_apply(w, op, nc);
}

/* Finds the record whose unique field f holds the (canonical) value v. */
static int find_unique(store_wtxn_t *w, const store_coll_t *c, const store_field_t *f,
                       const json_t *fields, kith_id_t *id, int *found)
{
    keyset_t ks;
    keyset_init(&ks);
    *found = 0;
    int rc = store_index_keys(f, 0, f->index_id, fields, &ks);
    if (rc == 0 && ks.n == 1 && (uint8_t)ks.data.p[ks.off[0] + 4] == IKEY_TAG_VALUE) {
        MDB_cursor *cur;
        rc = mdb_cursor_open(w->txn, w->st->dbi[DB_INDEX], &cur);
        if (rc == 0) {
            MDB_val k = {ks.len[0], ks.data.p + ks.off[0]}, d;
            int g = mdb_cursor_get(cur, &k, &d, MDB_SET);
            if (g == 0 && d.mv_size == ID_LEN) {
                memcpy(id->b, d.mv_data, ID_LEN);
                *found = 1;
            } else if (g != MDB_NOTFOUND) {
                rc = g;
            }
            mdb_cursor_close(cur);
        }
        rc = store_rc(rc, c->name);
    }
    keyset_free(&ks);
    return rc;
}

static int upsert_update(store_wtxn_t *w, store_op_t *op);
static int upsert_on_conflict(store_wtxn_t *w, store_op_t *op);

static int op_upsert(store_wtxn_t *w, store_op_t *op)
{
    if (!op->field[0]) return upsert_on_conflict(w, op);
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    const store_field_t *f = store_coll_field(c, op->field);
    if (!f || !(f->flags & SF_UNIQUE) || f->index_state != IDX_READY)
        return err_set(KITH_EINVAL, "%s: upsert needs a unique field to match on; '%s' is not one",
                       c->name, op->field);
    if (!json_is_object(op->data)) return err_set(KITH_EINVAL, "a record is a JSON object");
    json_t *v = json_object_get(op->data, f->name);
    const char *why = "is needed to match on";
    json_t *cv = v && !json_is_null(v) ? store_value_canon(f, f->type, v, &why) : NULL;
    if (!cv) {
        err_set(KITH_EVALIDATION, "%s: the record breaks the schema", c->name);
        err_field_add(f->name, "%s", why);
        return KITH_EVALIDATION;
    }
    json_t *probe = json_pack("{s:o}", f->name, cv);
    int found = 0;
    int rc = find_unique(w, c, f, probe, &op->id, &found);
    json_decref(probe);
    if (rc) return rc;
    if (!found) {
        rc = op_create(w, op);
        if (rc == 0) op->upserted = 1;
        return rc;
    }
    return upsert_update(w, op);
}

/* Upsert on conflict: the create runs in its own nested transaction, and if
 * it fails because the record exists (a unique value, or a before-hook's
 * duplicate check, such as one over normalised e-mail addresses), that record
 * is updated with the same fields instead. */
static int create_fn(store_wtxn_t *w, void *arg)
{
    return op_create(w, arg);
}

static int upsert_on_conflict(store_wtxn_t *w, store_op_t *op)
{
    const store_coll_t *c = op_coll(w, op);
    if (!c) return KITH_ENOTFOUND;
    int rc = store_wtxn_nested(w, create_fn, op);
    if (rc == 0) {
        op->upserted = 1;
        return 0;
    }
    const err_diag_t *e = err_last();
    if (rc != KITH_EEXIST || e->code != KITH_EEXIST || !e->existing[0] || w->retry) return rc;
    if (id_decode(e->existing, strlen(e->existing), &op->id) != 0) return rc;
    err_diag_t conflict;
    err_save(&conflict);
    rc = upsert_update(w, op);
    /* a record outside the caller's scope is not theirs to update: the
     * conflict stands (and existing_shown will not name it) */
    if (rc == KITH_ENOTFOUND && !w->retry) rc = err_restore(&conflict);
    return rc;
}

static int upsert_update(store_wtxn_t *w, store_op_t *op)
{
    int kind = op->kind;
    op->kind = STORE_OP_UPDATE; /* op_modify reads the kind */
    int rc = op_modify(w, op);
    op->kind = kind;
    if (rc == 0) op->upserted = 2;
    return rc;
}

/* A conflict names the existing record only if op's caller may see it (its
 * guard, as for a read of that record). */
static int existing_shown(store_wtxn_t *w, store_op_t *op, int rc)
{
    if (!err_last()->existing[0]) return rc;
    if (rc != KITH_EEXIST || err_last()->code != KITH_EEXIST) {
        /* only a duplicate names a record (a hook's veto may carry an
         * inner conflict's id) */
        err_existing(NULL);
        return rc;
    }
    /* the guard may set the thread's diagnostic: keep the conflict's */
    err_diag_t d;
    err_save(&d);
    const store_coll_t *c = store_schema_coll(w->schema, op->coll);
    kith_id_t id;
    store_record_t rec;
    int shown = 0;
    if (c && id_decode(d.existing, strlen(d.existing), &id) == 0 &&
        store_rec_get(w->st, w->txn, c, &id, &rec) == 0) {
        json_t *f = op->guard ? json_parse(rec.json, rec.json_len) : NULL;
        shown = !op->guard || (f && op->guard(w, op, f, NULL) == 0);
        if (f) json_decref(f);
    }
    if (!shown) d.existing[0] = '\0';
    err_restore(&d);
    return rc;
}

static int op_run(store_wtxn_t *w, store_op_t *op)
{
    switch (op->kind) {
    case STORE_OP_CREATE:
        return op_create(w, op);
    case STORE_OP_UPDATE:
    case STORE_OP_REPLACE:
        return op_modify(w, op);
    case STORE_OP_DELETE:
        return op_delete(w, op);
    case STORE_OP_UPSERT:
        return op_upsert(w, op);
    case STORE_OP_SCHEMA:
        return op_schema(w, op);
    case STORE_OP_FIELD:
        return op_field(w, op);
    case STORE_OP_CURSOR:
        return store_log_cursor_put(w, op->consumer, op->cursor_seq);
    case STORE_OP_CUSTOM:
    case STORE_OP_AUDIT:
        if (!op->custom) return err_set(KITH_EINVAL, "custom op without a function");
        return op->custom(w, op);
    default:
        return err_set(KITH_EINVAL, "unknown op kind %d", op->kind);
    }
}

int store_op_run(store_wtxn_t *w, store_op_t *op)
{
    return existing_shown(w, op, op_run(w, op));
}
