/*
 * store_filter: compiling and matching filters (grammar: README.md).
 *
 * Operands are canonicalised and encoded with store_key_encode when the filter
 * is compiled, and record values are encoded the same way when matched, so
 * every comparison is a memcmp with the field type's natural order.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"

#include <stdio.h>
#include <string.h>

#define FILTER_DEPTH_MAX 16
#define FILTER_NODES_MAX 256
#define FILTER_IN_MAX    1000

typedef struct fcompile {
    const store_coll_t *c;
    size_t nodes;
    int needs_fields;
} fcompile_t;

/* "filter.a.b[2]": where an error is, for messages. Cut silently when long. */
#define PATH_MAX_LEN 256
static void path_join(char *out, const char *path, const char *key, size_t index)
{
    int n = key ? snprintf(out, PATH_MAX_LEN, "%s.%s", path, key)
                : snprintf(out, PATH_MAX_LEN, "%s[%zu]", path, index);
    if (n < 0 || n >= PATH_MAX_LEN) out[PATH_MAX_LEN - 1] = '\0';
}

static fnode_t *node_new(fcompile_t *fc, int kind)
{
    fc->nodes++;
    fnode_t *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    return n;
}

static void node_free(fnode_t *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    buf_free(&n->vals);
    free(n->voff);
    free(n->vlen);
    free(n);
}

static void node_add_kid(fnode_t *n, fnode_t *k)
{
    n->kids = xrealloc(n->kids, (n->nkids + 1) * sizeof *n->kids);
    n->kids[n->nkids++] = k;
}

static int operand_add(fnode_t *n, const char *path, const json_t *v, int fold)
{
    const store_field_t *f = n->field;
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    const char *why = "invalid";
    json_t *cv = json_is_null(v) ? NULL : store_value_canon(f, type, v, &why);
    if (!cv) {
        if (json_is_null(v)) why = "null is not a value (use exists)";
        return err_set(KITH_EINVAL, "%s: %s", path, why);
    }
    size_t off = n->vals.len;
    int rc = store_key_encode(type, cv, 0, fold, &n->vals);
    json_decref(cv);
    if (rc) return err_set(KITH_EINVAL, "%s: cannot compare a %s", path, store_type_name(type));
    n->voff = xrealloc(n->voff, (n->nvals + 1) * sizeof *n->voff);
    n->vlen = xrealloc(n->vlen, (n->nvals + 1) * sizeof *n->vlen);
    n->voff[n->nvals] = off;
    n->vlen[n->nvals] = n->vals.len - off;
    n->nvals++;
    return 0;
}

static int compile(fcompile_t *fc, const json_t *j, const char *path, int depth, fnode_t **out);

static int compile_list(fcompile_t *fc, int kind, const json_t *arr, const char *path, int depth,
                        fnode_t **out)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return err_set(KITH_EINVAL, "%s: expected a non-empty array of filters", path);
    fnode_t *n = node_new(fc, kind);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char sub[PATH_MAX_LEN];
        path_join(sub, path, NULL, i);
        fnode_t *k = NULL;
        int rc = compile(fc, json_array_get(arr, i), sub, depth + 1, &k);
        if (rc) {
            node_free(n);
            return rc;
        }
        node_add_kid(n, k);
    }
    *out = n;
    return 0;
}

static const struct {
    const char *name;
    int kind;
    int cmp;
} ops[] = {
    {"eq", FN_CMP, CMP_EQ},   {"ne", FN_CMP, CMP_NE},        {"lt", FN_CMP, CMP_LT},
    {"lte", FN_CMP, CMP_LTE}, {"gt", FN_CMP, CMP_GT},        {"gte", FN_CMP, CMP_GTE},
    {"in", FN_IN, CMP_EQ},    {"prefix", FN_PREFIX, CMP_EQ}, {"exists", FN_EXISTS, CMP_EQ},
};

static int compile_op(fcompile_t *fc, const store_field_t *f, const char *opname, const json_t *v,
                      const char *path, fnode_t **out)
{
    int kind = -1, cmp = 0;
    for (size_t i = 0; i < ARRAY_LEN(ops); i++)
        if (strcmp(ops[i].name, opname) == 0) {
            kind = ops[i].kind;
            cmp = ops[i].cmp;
        }
    if (kind < 0)
        return err_set(KITH_EINVAL,
                       "%s: unknown operator '%s' (eq, ne, in, lt, lte, gt, gte, prefix, exists)",
                       path, opname);
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    if (kind != FN_EXISTS && (type == ST_OBJECT))
        return err_set(KITH_EINVAL, "%s: object fields can only be tested with exists", path);
    if (kind == FN_CMP && cmp != CMP_EQ && cmp != CMP_NE && type == ST_BOOL)
        return err_set(KITH_EINVAL, "%s: bool fields have no order", path);
    if (kind == FN_PREFIX && type != ST_STRING && type != ST_TEXT && type != ST_EMAIL &&
        type != ST_PHONE && type != ST_ENUM)
        return err_set(KITH_EINVAL, "%s: prefix applies to text fields", path);
    fnode_t *n = node_new(fc, kind);
    n->cmp = cmp;
    n->field = f;
    if (!f->pseudo) fc->needs_fields = 1;
    int rc = 0;
    if (kind == FN_EXISTS) {
        if (!json_is_boolean(v)) rc = err_set(KITH_EINVAL, "%s: expected true or false", path);
        n->exists = json_is_true(v);
        if (f->pseudo && rc == 0) {
            /* Pseudo-fields always exist. */
            n->kind = n->exists ? FN_TRUE : FN_NOT;
            if (!n->exists) node_add_kid(n, node_new(fc, FN_TRUE));
        }
    } else if (kind == FN_IN) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > FILTER_IN_MAX)
            rc = err_set(KITH_EINVAL, "%s: expected an array of 1 to %d values", path,
                         FILTER_IN_MAX);
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++)
            rc = operand_add(n, path, json_array_get(v, i), 0);
    } else if (kind == FN_PREFIX) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            rc = err_set(KITH_EINVAL, "%s: expected a non-empty string", path);
        else {
            /* A prefix is not a valid value of every type (an e-mail, say):
             * encode the raw text, folded. */
            size_t off = n->vals.len;
            json_t *s = json_incref((json_t *)v);
            rc = store_key_encode(ST_STRING, s, 0, 1, &n->vals);
            json_decref(s);
            n->voff = xmalloc(sizeof *n->voff);
            n->vlen = xmalloc(sizeof *n->vlen);
            n->voff[0] = off;
            n->vlen[0] = n->vals.len - off;
            n->nvals = 1;
        }
    } else {
        if (json_is_array(v) || json_is_object(v))
            rc =
                err_set(KITH_EINVAL, "%s: expected a single %s value", path, store_type_name(type));
        else
            rc = operand_add(n, path, v, 0);
    }
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int compile_field(fcompile_t *fc, const char *name, const json_t *v, const char *path,
                         fnode_t **out)
{
    const store_field_t *f = store_coll_field_or_pseudo(fc->c, name);
    if (!f) return err_set(KITH_EINVAL, "%s: no field '%s' in %s", path, name, fc->c->name);
    if (!json_is_object(v)) return compile_op(fc, f, "eq", v, path, out);
    if (json_object_size(v) == 0)
        return err_set(KITH_EINVAL, "%s: an operator object needs at least one operator", path);
    fnode_t *and = json_object_size(v) > 1 ? node_new(fc, FN_AND) : NULL;
    const char *op;
    json_t *x;
    json_object_foreach((json_t *)v, op, x)
    {
        char sub[PATH_MAX_LEN];
        path_join(sub, path, op, 0);
        fnode_t *n;
        int rc = compile_op(fc, f, op, x, sub, &n);
        if (rc) {
            node_free(and);
            return rc;
        }
        if (!and) {
            *out = n;
            return 0;
        }
        node_add_kid(and, n);
    }
    *out = and;
    return 0;
}

static int compile(fcompile_t *fc, const json_t *j, const char *path, int depth, fnode_t **out)
{
    if (depth > FILTER_DEPTH_MAX)
        return err_set(KITH_ELIMIT, "%s: filter nested more than %d levels", path,
                       FILTER_DEPTH_MAX);
    if (fc->nodes > FILTER_NODES_MAX)
        return err_set(KITH_ELIMIT, "filter has more than %d terms", FILTER_NODES_MAX);
    if (!json_is_object(j)) return err_set(KITH_EINVAL, "%s: a filter is a JSON object", path);
    size_t nk = json_object_size(j);
    if (nk == 0) {
        *out = node_new(fc, FN_TRUE);
        return 0;
    }
    fnode_t *and = nk > 1 ? node_new(fc, FN_AND) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        char sub[PATH_MAX_LEN];
        path_join(sub, path, k, 0);
        fnode_t *n = NULL;
        int rc;
        if (strcmp(k, "and") == 0) {
            rc = compile_list(fc, FN_AND, v, sub, depth, &n);
        } else if (strcmp(k, "or") == 0) {
            rc = compile_list(fc, FN_OR, v, sub, depth, &n);
        } else if (strcmp(k, "not") == 0) {
            fnode_t *kid = NULL;
            rc = compile(fc, v, sub, depth + 1, &kid);
            if (rc == 0) {
                n = node_new(fc, FN_NOT);
                node_add_kid(n, kid);
            }
        } else {
            rc = compile_field(fc, k, v, sub, &n);
        }
        if (rc) {
            node_free(and);
            return rc;
        }
        if (!and) {
            *out = n;
            return 0;
        }
        node_add_kid(and, n);
    }
    *out = and;
    return 0;
}

int store_filter_compile(const store_coll_t *c, const json_t *j, store_filter_t **out)
{
    fcompile_t fc = {.c = c};
    fnode_t *root = NULL;
    int rc;
    if (!j || json_is_null(j)) {
        root = node_new(&fc, FN_TRUE);
        rc = 0;
    } else {
        rc = compile(&fc, j, "filter", 0, &root);
    }
    /* compile() checks the count on entry only; a clause's operators come after. */
    if (rc == 0 && fc.nodes > FILTER_NODES_MAX) {
        node_free(root);
        rc = err_set(KITH_ELIMIT, "filter has more than %d terms", FILTER_NODES_MAX);
    }
    if (rc) return rc;
    store_filter_t *f = xcalloc(1, sizeof *f);
    f->root = root;
    f->needs_fields = fc.needs_fields;
    *out = f;
    return 0;
}

void store_filter_free(store_filter_t *f)
{
    if (!f) return;
    node_free(f->root);
    free(f);
}

int store_filter_is_true(const store_filter_t *f)
{
    return f->root->kind == FN_TRUE;
}

static void fields_walk(const fnode_t *n, const store_field_t **out, size_t *k, size_t cap)
{
    if (n->field) {
        size_t i;
        for (i = 0; i < *k; i++)
            if (out[i] == n->field) break;
        if (i == *k && *k < cap) out[(*k)++] = n->field;
    }
    for (size_t i = 0; i < n->nkids; i++)
        fields_walk(n->kids[i], out, k, cap);
}

void store_filter_fields(const store_filter_t *f, const store_field_t **out, size_t *n, size_t cap)
{
    *n = 0;
    fields_walk(f->root, out, n, cap);
}

/* ---- matching ---- */

static int kcmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

static int test_one(const fnode_t *n, const char *k, size_t kl)
{
    const char *v = n->vals.p;
    if (n->kind == FN_PREFIX) return kl >= n->vlen[0] && memcmp(k, v, n->vlen[0]) == 0;
    if (n->kind == FN_IN) {
        for (size_t i = 0; i < n->nvals; i++)
            if (kcmp(k, kl, v + n->voff[i], n->vlen[i]) == 0) return 1;
        return 0;
    }
    int c = kcmp(k, kl, v, n->vlen[0]);
    switch (n->cmp) {
    case CMP_EQ:
    case CMP_NE:
        return c == 0;
    case CMP_LT:
        return c < 0;
    case CMP_LTE:
        return c <= 0;
    case CMP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

static int pseudo_key(const store_record_t *rec, int pseudo, buf_t *b)
{
    switch (pseudo) {
    case SP_ID:
        buf_add(b, rec->id.b, ID_LEN);
        return 0;
    case SP_VERSION:
        store_key_i64(b, (int64_t)rec->version);
        return 0;
    case SP_CREATED_AT:
        store_key_i64(b, rec->created_us);
        return 0;
    case SP_UPDATED_AT:
        store_key_i64(b, rec->updated_us);
        return 0;
    }
    return -1;
}

/* The leaf's verdict over a field's value(s); arrays match if any item does,
 * ne if no item equals. Missing fields match only ne. */
static int eval_leaf(const fnode_t *n, const store_record_t *rec, const json_t *fields, buf_t *b)
{
    const store_field_t *f = n->field;
    int fold = n->kind == FN_PREFIX;
    if (f->pseudo) {
        buf_reset(b);
        pseudo_key(rec, f->pseudo, b);
        int t = test_one(n, b->p, b->len);
        return n->cmp == CMP_NE ? !t : t;
    }
    const json_t *v = json_object_get(fields, f->name);
    if (n->kind == FN_EXISTS) return (v != NULL) == n->exists;
    if (!v) return n->kind == FN_CMP && n->cmp == CMP_NE;
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    size_t cnt = json_is_array(v) ? json_array_size(v) : 1;
    int any = 0;
    for (size_t i = 0; i < cnt && !any; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        buf_reset(b);
        if (store_key_encode(type, x, 0, fold, b)) continue;
        any = test_one(n, b->p, b->len);
    }
    return n->cmp == CMP_NE && n->kind == FN_CMP ? !any : any;
}

static int eval(const fnode_t *n, const fnode_t *skip, const store_record_t *rec,
                const json_t *fields, buf_t *b)
{
    if (n == skip) return 1;
    switch (n->kind) {
    case FN_TRUE:
        return 1;
    case FN_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!eval(n->kids[i], skip, rec, fields, b)) return 0;
        return 1;
    case FN_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (eval(n->kids[i], NULL, rec, fields, b)) return 1;
        return 0;
    case FN_NOT:
        return !eval(n->kids[0], NULL, rec, fields, b);
    default:
        return eval_leaf(n, rec, fields, b);
    }
}

static int reads_fields(const fnode_t *n, const fnode_t *skip)
{
    if (n == skip) return 0;
    if (n->field && !n->field->pseudo) return 1;
    for (size_t i = 0; i < n->nkids; i++)
        if (reads_fields(n->kids[i], n->kind == FN_AND ? skip : NULL)) return 1;
    return 0;
}

int store_filter_needs_fields_skip(const store_filter_t *f, const fnode_t *skip)
{
    return reads_fields(f->root, skip);
}

int store_filter_match_skip(const store_filter_t *f, const fnode_t *skip, const store_record_t *rec,
                            const json_t *fields)
{
    if (f->root->kind == FN_TRUE || f->root == skip) return 1;
    json_t *own = NULL;
    if (!fields && reads_fields(f->root, skip)) {
        own = json_parse(rec->json, rec->json_len);
        if (!own) return err_set(KITH_ECORRUPT, "stored record is not JSON");
        fields = own;
    }
    buf_t b = BUF_INIT;
    int r = eval(f->root, skip, rec, fields, &b);
    buf_free(&b);
    if (own) json_decref(own);
    return r;
}

int store_filter_match(const store_filter_t *f, const store_record_t *rec, const json_t *fields)
{
    return store_filter_match_skip(f, NULL, rec, fields);
}
