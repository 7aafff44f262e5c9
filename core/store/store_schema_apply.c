/*
 * store_schema_apply: changing a collection's definition on a live store.
 *
 * Allowed: adding fields, adding or removing indexed / unique / searchable /
 * sensitive, widening max_length, adding enum values, editing descriptions and
 * defaults. Refused, with the reason: removing a field, changing a type or a
 * ref target, removing enum values, narrowing max_length on a non-empty
 * collection, and making a field required while a record lacks it.
 *
 * Index lifecycle: a new index on an empty collection is ready at once; a new
 * unique index is filled inside this op, so duplicates fail the change
 * atomically; any other new index is filled by a background job. Removed
 * indexes are emptied by a drop job; index ids are never reused.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"

#include <stdio.h>
#include <string.h>

int schema_store_coll(MDB_txn *txn, store_t *st, const store_coll_t *c, int history)
{
    json_t *j = schema_coll_to_stored(c);
    size_t n;
    char *s = json_to_str(j, &n);
    json_decref(j);
    char key[STORE_NAME_MAX + 8];
    int kl = snprintf(key, sizeof key, "s/%s", c->name);
    MDB_val k = {(size_t)kl, key}, d = {n, s};
    int rc = mdb_put(txn, st->dbi[DB_META], &k, &d, 0);
    if (rc == 0 && history) {
        kl = snprintf(key, sizeof key, "h/%s/", c->name);
        store_u32be(key + kl, c->version);
        k.mv_size = (size_t)kl + 4;
        rc = mdb_put(txn, st->dbi[DB_META], &k, &d, 0);
    }
    free(s);
    return store_mdb_err(rc, "schema");
}

int schema_bump_gen(MDB_txn *txn, store_t *st, uint64_t *gen)
{
    uint64_t g;
    int rc = store_meta_get_u64(txn, st, "gen", &g);
    if (rc == 0) rc = store_meta_put_u64(txn, st, "gen", ++g);
    if (rc == 0) *gen = g;
    return rc;
}

static int coll_is_empty(store_wtxn_t *w, uint32_t coll_id)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(w->txn, w->st->dbi[DB_RECORDS], &cur)) return 0;
    uint8_t start[4];
    store_u32be(start, coll_id);
    MDB_val k = {4, start}, d;
    int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    int empty = rc != 0 || k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != coll_id;
    mdb_cursor_close(cur);
    return empty;
}

/* Counts records of c that lack field name; *first gets the first such id. */
static int count_missing(store_wtxn_t *w, const store_coll_t *c, const char *name, size_t *missing,
                         kith_id_t *first)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, w->st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, "records");
    uint8_t start[4];
    store_u32be(start, c->id);
    MDB_val k = {4, start}, d;
    *missing = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != c->id) break;
        kith_id_t id;
        memcpy(id.b, (uint8_t *)k.mv_data + 4, ID_LEN);
        store_record_t rec;
        json_t *o = NULL;
        if (store_rec_decode(c, &id, &d, &rec) == 0) o = json_parse(rec.json, rec.json_len);
        if (!o || !json_object_get(o, name)) {
            if ((*missing)++ == 0) *first = id;
        }
        if (o) json_decref(o);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : store_mdb_err(rc, "records");
}

static int check_compatible(store_wtxn_t *w, const store_coll_t *old, store_coll_t *nc, int empty)
{
    int bad = 0;
    for (size_t i = 0; i < old->nfields; i++) {
        const store_field_t *of = &old->fields[i];
        const store_field_t *nf = store_coll_field(nc, of->name);
        if (!nf) {
            err_field_add(of->name, "fields cannot be removed");
            bad = 1;
            continue;
        }
        if (nf->type != of->type || nf->item_type != of->item_type) {
            err_field_add(of->name, "cannot change type from %s to %s", store_type_name(of->type),
                          store_type_name(nf->type));
            bad = 1;
        }
        if (strcmp(nf->ref, of->ref) != 0) {
            err_field_add(of->name, "cannot change the ref target from %s to %s", of->ref, nf->ref);
            bad = 1;
        }
        for (size_t k = 0; k < of->nvalues; k++) {
            int kept = 0;
            for (size_t m = 0; m < nf->nvalues; m++)
                if (strcmp(of->values[k], nf->values[m]) == 0) kept = 1;
            if (!kept) {
                err_field_add(of->name, "enum value '%s' cannot be removed", of->values[k]);
                bad = 1;
            }
        }
        if (!empty && nf->max_length < of->max_length) {
            err_field_add(of->name, "max_length cannot shrink while the collection has records");
            bad = 1;
        }
    }
    if (bad) return KITH_EVALIDATION;
    for (size_t i = 0; i < nc->nfields; i++) {
        const store_field_t *nf = &nc->fields[i];
        const store_field_t *of = store_coll_field(old, nf->name);
        if (empty || !(nf->flags & SF_REQUIRED) || (of && (of->flags & SF_REQUIRED))) continue;
        size_t missing = 0;
        kith_id_t first;
        int rc = count_missing(w, old, nf->name, &missing, &first);
        if (rc) return rc;
        if (missing) {
            char ids[ID_TEXT_LEN + 1];
            id_encode(&first, ids);
            err_field_add(nf->name, "cannot be required: %zu record(s) lack it, e.g. %s", missing,
                          ids);
            bad = 1;
        }
    }
    return bad ? KITH_EVALIDATION : 0;
}

/* Decides one index (value or prefix) of field nf; of is the old field or NULL. */
static int plan_index(store_wtxn_t *w, store_coll_t *nc, store_field_t *nf, const store_field_t *of,
                      int prefix, int empty, uint64_t *next_index)
{
    int want = prefix ? (nf->flags & SF_SEARCHABLE) != 0 : (nf->flags & SF_INDEXED) != 0;
    uint32_t had = of ? (prefix ? of->prefix_id : of->index_id) : 0;
    int had_state = of ? (prefix ? of->prefix_state : of->index_state) : IDX_NONE;
    /* Turning unique on needs the existing values checked: a fresh index. */
    int unique_new = !prefix && (nf->flags & SF_UNIQUE) && !(of && (of->flags & SF_UNIQUE));
    uint32_t *id = prefix ? &nf->prefix_id : &nf->index_id;
    int *state = prefix ? &nf->prefix_state : &nf->index_state;
    int rc = 0;
    if (want && had && !unique_new) {
        *id = had;
        *state = had_state;
        return 0;
    }
    if (had) rc = store_job_add(w, JOB_DROP, nc->id, nf->name, prefix, had);
    if (rc || !want) {
        *id = 0;
        *state = IDX_NONE;
        return rc;
    }
    *id = (uint32_t)++ * next_index;
    if (empty) {
        *state = IDX_READY;
    } else if (!prefix && (nf->flags & SF_UNIQUE)) {
        rc = store_index_build_all(w, nc, nf);
        if (rc == KITH_EEXIST) {
            err_diag_t d;
            err_save(&d);
            err_set(KITH_EVALIDATION, "%s: cannot make %s unique: %s", nc->name, nf->name, d.msg);
            err_field_add(nf->name, "existing records share a value: %s", d.msg);
            return KITH_EVALIDATION;
        }
        *state = IDX_READY;
    } else {
        *state = IDX_BUILDING;
        rc = store_job_add(w, JOB_BUILD, nc->id, nf->name, prefix, *id);
    }
    return rc;
}

int schema_apply(store_wtxn_t *w, store_op_t *op, store_coll_t *nc)
{
    store_t *st = w->st;
    const store_coll_t *old = store_schema_coll(w->schema, nc->name);
    err_clear();
    int bad = 0;
    for (size_t i = 0; i < nc->nfields; i++) {
        const store_field_t *f = &nc->fields[i];
        if (f->ref[0] && strcmp(f->ref, nc->name) != 0 && !store_schema_coll(w->schema, f->ref)) {
            err_field_add(f->name, "refers to collection '%s', which does not exist", f->ref);
            bad = 1;
        }
    }
    if (bad) {
        schema_coll_free(nc);
        err_diag_t d;
        err_save(&d);
        d.code = KITH_EVALIDATION;
        snprintf(d.msg, sizeof d.msg, "%s: invalid definition", op->coll);
        return err_restore(&d);
    }
    uint64_t next_coll, next_index;
    int rc = store_meta_get_u64(w->txn, st, "next_coll", &next_coll);
    if (rc == 0) rc = store_meta_get_u64(w->txn, st, "next_index", &next_index);
    if (rc) goto fail;
    uint64_t next_index0 = next_index;
    int empty;
    if (old) {
        nc->id = old->id;
        nc->version = old->version + 1;
        empty = coll_is_empty(w, old->id);
        rc = check_compatible(w, old, nc, empty);
        if (rc) {
            if (rc == KITH_EVALIDATION) {
                err_diag_t d;
                err_save(&d);
                /* err_field_add sets no code; store_exec returns the diagnostic's */
                d.code = KITH_EVALIDATION;
                snprintf(d.msg, sizeof d.msg, "%s: this change is not allowed", nc->name);
                err_restore(&d);
            }
            goto fail;
        }
    } else {
        if (w->schema->ncolls >= 1000) {
            rc = err_set(KITH_ELIMIT, "at most 1000 collections per workspace");
            goto fail;
        }
        nc->id = (uint32_t)++next_coll;
        nc->version = 1;
        empty = 1;
    }
    for (size_t i = 0; i < nc->nfields && rc == 0; i++) {
        store_field_t *nf = &nc->fields[i];
        const store_field_t *of = old ? store_coll_field(old, nf->name) : NULL;
        rc = plan_index(w, nc, nf, of, 0, empty, &next_index);
        if (rc == 0) rc = plan_index(w, nc, nf, of, 1, empty, &next_index);
    }
    if (rc) goto fail;
    if (old) {
        /* Nothing changed: no new version, no write. */
        json_t *a = schema_coll_to_stored(old);
        store_coll_t tmp = *nc;
        tmp.version = old->version;
        json_t *b = schema_coll_to_stored(&tmp);
        int same = json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (same && next_index == next_index0) {
            op->nochange = 1;
            op->version = old->version;
            json_t *pub = store_coll_to_json(old);
            op->json = json_to_str(pub, &op->json_len);
            json_decref(pub);
            schema_coll_free(nc);
            return 0;
        }
    }
    uint64_t gen;
    rc = store_meta_put_u64(w->txn, st, "next_coll", next_coll);
    if (rc == 0) rc = store_meta_put_u64(w->txn, st, "next_index", next_index);
    if (rc == 0) rc = schema_store_coll(w->txn, st, nc, 1);
    if (rc == 0) rc = schema_bump_gen(w->txn, st, &gen);
    if (rc) goto fail;
    op->version = nc->version;
    json_t *pub = store_coll_to_json(nc);
    op->json = json_to_str(pub, &op->json_len);
    json_decref(pub);
    store_schema_t *ns = schema_set_with(w->schema, nc, gen);
    store_schema_unref(w->schema);
    w->schema = ns;
    w->schema_changed = 1;
    return 0;
fail:
    schema_coll_free(nc);
    return rc;
}
