/*
 * store_schema: collection definitions — parsing, the stored form in the meta
 * database, the per-snapshot cache, and applying a change (store_schema_apply.c
 * would be the next split if this grows).
 *
 * meta keys: "gen" (u64), "next_coll" and "next_index" (u64 counters),
 * "s/<name>" (current stored definition), "h/<name>/<version u32 BE>" (history).
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

#include <stdio.h>
#include <string.h>

static const char *const type_names[ST__COUNT] = {
    [ST_NONE] = "none",         [ST_STRING] = "string", [ST_TEXT] = "text",
    [ST_INT] = "int",           [ST_NUMBER] = "number", [ST_BOOL] = "bool",
    [ST_DATETIME] = "datetime", [ST_DATE] = "date",     [ST_ENUM] = "enum",
    [ST_EMAIL] = "email",       [ST_PHONE] = "phone",   [ST_MONEY] = "money",
    [ST_REF] = "ref",           [ST_ARRAY] = "array",   [ST_OBJECT] = "object",
};

/* Words the filter grammar and the API reserve. */
static const char *const reserved_fields[] = {"id",  "version", "created_at", "updated_at",
                                              "and", "or",      "not"};
static const char *const reserved_colls[] = {"schema",  "changes", "audit",   "keys",   "roles",
                                             "scripts", "hooks",   "openapi", "me",     "reports",
                                             "capture", "metrics", "healthz", "plugins"};

static const store_field_t pseudo_fields[] = {
    {.name = "id", .type = ST_REF, .pseudo = SP_ID, .flags = SF_INDEXED, .index_state = IDX_READY},
    {.name = "version", .type = ST_INT, .pseudo = SP_VERSION},
    {.name = "created_at", .type = ST_DATETIME, .pseudo = SP_CREATED_AT},
    {.name = "updated_at", .type = ST_DATETIME, .pseudo = SP_UPDATED_AT},
};

const char *store_type_name(int type)
{
    return type > 0 && type < ST__COUNT ? type_names[type] : "none";
}

int store_type_from_name(const char *name)
{
    for (int t = 1; t < ST__COUNT; t++)
        if (strcmp(type_names[t], name) == 0) return t;
    return ST_NONE;
}

int store_type_indexable(int type)
{
    return type != ST_TEXT && type != ST_OBJECT && type != ST_NONE;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= STORE_NAME_MAX) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

const store_coll_t *store_schema_coll(const store_schema_t *s, const char *name)
{
    /* Collections are kept sorted by name. */
    size_t lo = 0, hi = s->ncolls;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->colls[mid]->name, name);
        if (c == 0) return s->colls[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const store_coll_t *store_schema_coll_by_id(const store_schema_t *s, uint32_t id)
{
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i]->id == id) return s->colls[i];
    return NULL;
}

const store_field_t *store_coll_field(const store_coll_t *c, const char *name)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (strcmp(c->fields[i].name, name) == 0) return &c->fields[i];
    return NULL;
}

const store_field_t *store_coll_field_or_pseudo(const store_coll_t *c, const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(pseudo_fields); i++)
        if (strcmp(pseudo_fields[i].name, name) == 0) return &pseudo_fields[i];
    return store_coll_field(c, name);
}

/* ---- schema sets ---- */

store_schema_t *schema_set_new(uint64_t gen)
{
    store_schema_t *s = xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->gen = gen;
    return s;
}

static int coll_cmp(const void *a, const void *b)
{
    return strcmp((*(store_coll_t *const *)a)->name, (*(store_coll_t *const *)b)->name);
}

store_schema_t *schema_set_with(const store_schema_t *s, store_coll_t *c, uint64_t gen)
{
    store_schema_t *n = schema_set_new(gen);
    n->colls = xcalloc(s->ncolls + 1, sizeof *n->colls);
    for (size_t i = 0; i < s->ncolls; i++)
        if (!c || strcmp(s->colls[i]->name, c->name) != 0)
            n->colls[n->ncolls++] = schema_coll_clone(s->colls[i]);
    if (c) n->colls[n->ncolls++] = c;
    qsort(n->colls, n->ncolls, sizeof *n->colls, coll_cmp);
    return n;
}

void store_schema_ref(store_schema_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void store_schema_unref(store_schema_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    for (size_t i = 0; i < s->ncolls; i++)
        schema_coll_free(s->colls[i]);
    free(s->colls);
    free(s);
}

static void field_free(store_field_t *f)
{
    for (size_t i = 0; i < f->nvalues; i++)
        free(f->values[i]);
    free(f->values);
    if (f->dflt) json_decref(f->dflt);
    free(f->description);
}

void schema_coll_free(store_coll_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nfields; i++)
        field_free(&c->fields[i]);
    free(c->fields);
    free(c);
}

store_coll_t *schema_coll_clone(const store_coll_t *c)
{
    store_coll_t *n = xmemdup(c, sizeof *c);
    n->fields = xcalloc(c->nfields ? c->nfields : 1, sizeof *n->fields);
    for (size_t i = 0; i < c->nfields; i++) {
        store_field_t *f = &n->fields[i];
        *f = c->fields[i];
        f->values = f->nvalues ? xcalloc(f->nvalues, sizeof *f->values) : NULL;
        for (size_t k = 0; k < f->nvalues; k++)
            f->values[k] = xstrdup(c->fields[i].values[k]);
        if (f->dflt) f->dflt = json_deep_copy(f->dflt);
        if (f->description) f->description = xstrdup(f->description);
    }
    return n;
}

/* ---- parsing definitions ---- */

static int parse_bool(const json_t *fd, const char *key, int *out, const char *fname)
{
    json_t *v = json_object_get(fd, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        err_field_add(fname, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static const char *const field_keys[] = {
    "name",        "type",   "required",    "unique",       "indexed",     "searchable",
    "sensitive",   "values", "ref",         "items",        "max_length",  "default",
    "description", "index",  "index_state", "prefix_index", "prefix_state", "redirect"};

static int parse_field(const json_t *fd, store_field_t *f, int stored)
{
    const char *fname = "fields";
    int bad = 0;
    if (!json_is_object(fd)) {
        err_field_add(fname, "each field is an object");
        return -1;
    }
    json_t *jn = json_object_get(fd, "name");
    if (!json_is_string(jn) || !name_ok(json_string_value(jn)) || json_string_value(jn)[0] == '_') {
        err_field_add(fname, "a field needs a 'name' of lower-case letters, digits and _ "
                             "(starting with a letter, at most 63)");
        return -1;
    }
    fname = json_string_value(jn);
    snprintf(f->name, sizeof f->name, "%s", fname);
    for (size_t i = 0; i < ARRAY_LEN(reserved_fields); i++)
        if (strcmp(fname, reserved_fields[i]) == 0) {
            err_field_add(fname, "'%s' is a reserved name", fname);
            return -1;
        }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fd, k, v)
    {
        int known = 0;
        for (size_t i = 0; i < ARRAY_LEN(field_keys); i++)
            if (strcmp(k, field_keys[i]) == 0) known = 1;
        /* index_state is shown to clients ("ready"/"building") and ignored when a
         * client sends a definition back; the internal ids are never accepted. */
        if (!known || (!stored && (strcmp(k, "index") == 0 || strcmp(k, "prefix_index") == 0 ||
                                   strcmp(k, "prefix_state") == 0))) {
            err_field_add(fname, "unknown attribute '%s'", k);
            bad = 1;
        }
    }
    json_t *jt = json_object_get(fd, "type");
    f->type = json_is_string(jt) ? store_type_from_name(json_string_value(jt)) : ST_NONE;
    if (f->type == ST_NONE) {
        err_field_add(fname, "'type' must be one of string, text, int, number, bool, datetime, "
                             "date, enum, email, phone, money, ref, array, object");
        return -1;
    }
    int req = 0, uniq = 0, idx = 0, srch = 0, sens = 0, redir = 0;
    if (parse_bool(fd, "required", &req, fname) || parse_bool(fd, "unique", &uniq, fname) ||
        parse_bool(fd, "indexed", &idx, fname) || parse_bool(fd, "searchable", &srch, fname) ||
        parse_bool(fd, "sensitive", &sens, fname) || parse_bool(fd, "redirect", &redir, fname))
        return -1;
    f->flags = (req ? SF_REQUIRED : 0) | (uniq ? SF_UNIQUE | SF_INDEXED : 0) |
               (idx ? SF_INDEXED : 0) | (srch ? SF_SEARCHABLE : 0) | (sens ? SF_SENSITIVE : 0) |
               (redir ? SF_REDIRECT : 0);

    json_t *ji = json_object_get(fd, "items");
    if (f->type == ST_ARRAY) {
        f->item_type = json_is_string(ji) ? store_type_from_name(json_string_value(ji)) : ST_STRING;
        if (ji && !json_is_string(ji)) f->item_type = ST_NONE;
        if (f->item_type == ST_NONE || f->item_type == ST_ARRAY) {
            err_field_add(fname, "'items' must name a type other than array");
            return -1;
        }
    } else if (ji) {
        err_field_add(fname, "'items' applies only to arrays");
        bad = 1;
    }
    int vtype = f->type == ST_ARRAY ? f->item_type : f->type;

    json_t *jv = json_object_get(fd, "values");
    if (vtype == ST_ENUM) {
        if (!json_is_array(jv) || json_array_size(jv) == 0 ||
            json_array_size(jv) > STORE_ENUM_MAX) {
            err_field_add(fname, "an enum needs 'values': 1 to %d strings", STORE_ENUM_MAX);
            return -1;
        }
        f->values = xcalloc(json_array_size(jv), sizeof *f->values);
        for (size_t i = 0; i < json_array_size(jv); i++) {
            json_t *e = json_array_get(jv, i);
            if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 255) {
                err_field_add(fname, "enum values are non-empty strings of at most 255 bytes");
                return -1;
            }
            for (size_t j = 0; j < f->nvalues; j++)
                if (strcmp(f->values[j], json_string_value(e)) == 0) {
                    err_field_add(fname, "enum value '%s' is listed twice", f->values[j]);
                    return -1;
                }
            f->values[f->nvalues++] = xstrdup(json_string_value(e));
        }
    } else if (jv) {
        err_field_add(fname, "'values' applies only to enums");
        bad = 1;
    }
    json_t *jr = json_object_get(fd, "ref");
    if (vtype == ST_REF) {
        if (!json_is_string(jr) || !name_ok(json_string_value(jr))) {
            err_field_add(fname, "a ref needs 'ref': the target collection's name");
            return -1;
        }
        snprintf(f->ref, sizeof f->ref, "%s", json_string_value(jr));
    } else if (jr) {
        err_field_add(fname, "'ref' applies only to refs");
        bad = 1;
    }
    size_t maxdef = f->type == ST_TEXT    ? STORE_TEXT_MAX
                    : f->type == ST_ARRAY ? STORE_ARRAY_MAX
                                          : STORE_STRING_MAX;
    f->max_length = maxdef;
    json_t *jm = json_object_get(fd, "max_length");
    if (jm) {
        int applies = f->type == ST_STRING || f->type == ST_TEXT || f->type == ST_ARRAY ||
                      f->type == ST_PHONE || f->type == ST_EMAIL;
        if (!applies || !json_is_integer(jm) || json_integer_value(jm) < 1 ||
            (size_t)json_integer_value(jm) > maxdef) {
            err_field_add(fname, "'max_length' must be an integer from 1 to %zu for this type",
                          maxdef);
            bad = 1;
        } else {
            f->max_length = (size_t)json_integer_value(jm);
        }
    }
    json_t *jd = json_object_get(fd, "description");
    if (jd) {
        if (!json_is_string(jd) || json_string_length(jd) > 1000) {
            err_field_add(fname, "'description' is a string of at most 1000 bytes");
            bad = 1;
        } else {
            f->description = xstrdup(json_string_value(jd));
        }
    }
    /* vtype: an array's items are what its index holds */
    if ((f->flags & (SF_INDEXED | SF_UNIQUE)) && !store_type_indexable(vtype)) {
        err_field_add(fname, "%s fields cannot be indexed", store_type_name(vtype));
        bad = 1;
    }
    if ((f->flags & SF_UNIQUE) && f->type == ST_ARRAY) {
        err_field_add(fname, "arrays cannot be unique");
        bad = 1;
    }
    if ((f->flags & SF_SEARCHABLE) && vtype != ST_STRING && vtype != ST_EMAIL &&
        vtype != ST_PHONE && vtype != ST_ENUM && vtype != ST_TEXT) {
        err_field_add(fname, "only string, text, email, phone and enum fields are searchable");
        bad = 1;
    }
    json_t *jdf = json_object_get(fd, "default");
    if (jdf && !json_is_null(jdf)) {
        const char *why = NULL;
        /* canonicalising may call err_set (time and id parsers), which would
         * clear the fields named so far */
        err_diag_t keep;
        err_save(&keep);
        json_t *c = store_value_canon(f, f->type, jdf, &why);
        err_restore(&keep);
        if (!c) {
            err_field_add(fname, "'default' is not valid: %s", why);
            bad = 1;
        } else if (f->flags & SF_UNIQUE) {
            json_decref(c);
            err_field_add(fname, "a unique field cannot have a default");
            bad = 1;
        } else {
            f->dflt = c;
        }
    }
    if (stored) {
        json_t *x;
        if ((x = json_object_get(fd, "index"))) f->index_id = (uint32_t)json_integer_value(x);
        if ((x = json_object_get(fd, "index_state"))) f->index_state = (int)json_integer_value(x);
        if ((x = json_object_get(fd, "prefix_index")))
            f->prefix_id = (uint32_t)json_integer_value(x);
        if ((x = json_object_get(fd, "prefix_state"))) f->prefix_state = (int)json_integer_value(x);
    }
    return bad ? -1 : 0;
}

static int coll_parse(const json_t *def, int system, int stored, store_coll_t **out)
{
    err_clear();
    if (!json_is_object(def))
        return err_set(KITH_EINVAL, "a collection definition is a JSON object");
    json_t *jn = json_object_get(def, "name");
    const char *name = json_is_string(jn) ? json_string_value(jn) : "";
    if (!name_ok(name))
        return err_set(KITH_EINVAL, "collection 'name' must be lower-case letters, digits and _ "
                                    "(starting with a letter, at most 63)");
    if (name[0] == '_' && !system)
        return err_set(KITH_EPERM, "collection names starting with '_' are reserved for Kith");
    for (size_t i = 0; i < ARRAY_LEN(reserved_colls); i++)
        if (strcmp(name, reserved_colls[i]) == 0)
            return err_set(KITH_EINVAL, "'%s' is a reserved name", name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)def, k, v)
    {
        int known = strcmp(k, "name") == 0 || strcmp(k, "fields") == 0 ||
                    strcmp(k, "version") == 0 || (stored && strcmp(k, "id") == 0);
        if (!known) return err_set(KITH_EINVAL, "collection %s: unknown attribute '%s'", name, k);
    }
    json_t *jf = json_object_get(def, "fields");
    if (jf && !json_is_array(jf))
        return err_set(KITH_EINVAL, "collection %s: 'fields' must be an array", name);
    size_t nf = jf ? json_array_size(jf) : 0;
    if (nf > STORE_FIELDS_MAX)
        return err_set(KITH_ELIMIT, "collection %s: more than %d fields", name, STORE_FIELDS_MAX);
    store_coll_t *c = xcalloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fields = xcalloc(nf ? nf : 1, sizeof *c->fields);
    int bad = 0;
    for (size_t i = 0; i < nf; i++) {
        store_field_t *f = &c->fields[c->nfields];
        if (parse_field(json_array_get(jf, i), f, stored)) {
            field_free(f);
            memset(f, 0, sizeof *f);
            bad = 1;
            continue;
        }
        if (store_coll_field(c, f->name)) {
            err_field_add(f->name, "defined twice");
            field_free(f);
            memset(f, 0, sizeof *f);
            bad = 1;
            continue;
        }
        if ((f->flags & SF_REDIRECT) && (f->type != ST_REF || strcmp(f->ref, name) != 0)) {
            err_field_add(f->name, "'redirect' applies to a ref to the same collection (%s)",
                          name);
            bad = 1;
        }
        c->nfields++;
    }
    if (stored) {
        c->id = (uint32_t)json_integer_value(json_object_get(def, "id"));
        c->version = (uint32_t)json_integer_value(json_object_get(def, "version"));
    }
    if (bad) {
        schema_coll_free(c);
        err_diag_t d;
        err_save(&d);
        snprintf(d.msg, sizeof d.msg, "collection %s: invalid definition", name);
        d.code = KITH_EVALIDATION;
        return err_restore(&d);
    }
    *out = c;
    return 0;
}

int schema_coll_parse(const json_t *def, int system, store_coll_t **out)
{
    return coll_parse(def, system, 0, out);
}

int store_schema_def_check(const json_t *def)
{
    store_coll_t *c = NULL;
    int rc = schema_coll_parse(def, 0, &c);
    if (c) schema_coll_free(c);
    return rc;
}

int schema_coll_from_stored(const json_t *j, store_coll_t **out)
{
    int rc = coll_parse(j, 1, 1, out);
    if (rc) err_wrap("stored schema");
    return rc == KITH_EVALIDATION ? KITH_ECORRUPT : rc;
}

static json_t *field_to_json(const store_field_t *f, int stored)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(f->name));
    json_object_set_new(j, "type", json_string(store_type_name(f->type)));
    if (f->type == ST_ARRAY)
        json_object_set_new(j, "items", json_string(store_type_name(f->item_type)));
    if (f->nvalues) {
        json_t *a = json_array();
        for (size_t i = 0; i < f->nvalues; i++)
            json_array_append_new(a, json_string(f->values[i]));
        json_object_set_new(j, "values", a);
    }
    if (f->ref[0]) json_object_set_new(j, "ref", json_string(f->ref));
    if (f->flags & SF_REQUIRED) json_object_set_new(j, "required", json_true());
    if (f->flags & SF_UNIQUE) json_object_set_new(j, "unique", json_true());
    if (f->flags & SF_INDEXED) json_object_set_new(j, "indexed", json_true());
    if (f->flags & SF_SEARCHABLE) json_object_set_new(j, "searchable", json_true());
    if (f->flags & SF_SENSITIVE) json_object_set_new(j, "sensitive", json_true());
    if (f->flags & SF_REDIRECT) json_object_set_new(j, "redirect", json_true());
    size_t maxdef = f->type == ST_TEXT    ? STORE_TEXT_MAX
                    : f->type == ST_ARRAY ? STORE_ARRAY_MAX
                                          : STORE_STRING_MAX;
    if (f->max_length != maxdef)
        json_object_set_new(j, "max_length", json_integer((json_int_t)f->max_length));
    if (f->dflt) json_object_set(j, "default", f->dflt);
    if (f->description) json_object_set_new(j, "description", json_string(f->description));
    if (stored) {
        if (f->index_id) {
            json_object_set_new(j, "index", json_integer(f->index_id));
            json_object_set_new(j, "index_state", json_integer(f->index_state));
        }
        if (f->prefix_id) {
            json_object_set_new(j, "prefix_index", json_integer(f->prefix_id));
            json_object_set_new(j, "prefix_state", json_integer(f->prefix_state));
        }
    } else if (f->index_id || f->prefix_id) {
        int building = (f->index_id && f->index_state != IDX_READY) ||
                       (f->prefix_id && f->prefix_state != IDX_READY);
        json_object_set_new(j, "index_state", json_string(building ? "building" : "ready"));
    }
    return j;
}

static json_t *coll_to_json(const store_coll_t *c, int stored)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(c->name));
    if (stored) json_object_set_new(j, "id", json_integer(c->id));
    json_object_set_new(j, "version", json_integer(c->version));
    json_t *fa = json_array();
    for (size_t i = 0; i < c->nfields; i++)
        json_array_append_new(fa, field_to_json(&c->fields[i], stored));
    json_object_set_new(j, "fields", fa);
    return j;
}

json_t *store_coll_to_json(const store_coll_t *c)
{
    return coll_to_json(c, 0);
}

json_t *schema_coll_to_stored(const store_coll_t *c)
{
    return coll_to_json(c, 1);
}

/* ---- loading and caching ---- */

int schema_load(store_t *st, MDB_txn *txn, store_schema_t **out)
{
    uint64_t gen;
    int rc = store_meta_get_u64(txn, st, "gen", &gen);
    if (rc) return rc;
    store_schema_t *s = schema_set_new(gen);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, st->dbi[DB_META], &cur);
    if (rc) {
        store_schema_unref(s);
        return store_mdb_err(rc, "schema");
    }
    MDB_val k = {2, "s/"}, d;
    size_t cap = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size < 3 || memcmp(k.mv_data, "s/", 2) != 0) break;
        json_t *j = json_parse(d.mv_data, d.mv_size);
        store_coll_t *c = NULL;
        int prc = j ? schema_coll_from_stored(j, &c) : KITH_ECORRUPT;
        if (j) json_decref(j);
        if (prc) {
            mdb_cursor_close(cur);
            store_schema_unref(s);
            return err_set(KITH_ECORRUPT, "stored schema '%.*s' is unreadable: %s",
                           (int)k.mv_size - 2, (char *)k.mv_data + 2, err_last()->msg);
        }
        if (s->ncolls == cap) {
            cap = cap ? cap * 2 : 8;
            s->colls = xrealloc(s->colls, cap * sizeof *s->colls);
        }
        s->colls[s->ncolls++] = c;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0) {
        store_schema_unref(s);
        return store_mdb_err(rc, "schema");
    }
    *out = s;
    return 0;
}

int schema_for_txn(store_t *st, MDB_txn *txn, store_schema_t **out)
{
    uint64_t gen;
    int rc = store_meta_get_u64(txn, st, "gen", &gen);
    if (rc) return rc;
    pthread_mutex_lock(&st->schema_lock);
    if (st->schema && st->schema->gen == gen) {
        store_schema_ref(st->schema);
        *out = st->schema;
        pthread_mutex_unlock(&st->schema_lock);
        return 0;
    }
    pthread_mutex_unlock(&st->schema_lock);
    store_schema_t *s = NULL;
    rc = schema_load(st, txn, &s);
    if (rc || !s) return rc ? rc : err_set(KITH_EINTERNAL, "schema load gave nothing");
    pthread_mutex_lock(&st->schema_lock);
    if (!st->schema || st->schema->gen < s->gen) {
        store_schema_t *old = st->schema;
        store_schema_ref(s);
        st->schema = s;
        if (old) store_schema_unref(old);
    }
    pthread_mutex_unlock(&st->schema_lock);
    *out = s;
    return 0;
}
