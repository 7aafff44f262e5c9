/* Tests core/store/store_schema.c and store_schema_apply.c: validating
 * collection definitions (types, attributes, names), the changes allowed on a
 * live store and those refused, versions and their history, no-op changes,
 * the client form (store_coll_to_json) and persistence across a reopen. */
#include "testutil.h"

#include "base/mem.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx {
    store_t *st;
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tu_store_close(f->st, f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* Runs a schema op; returns its status. *out (if not NULL) keeps the op. */
static int schema_op(store_t *st, const char *def, int system, store_op_t **out)
{
    json_t *j = tu_json(def);
    store_op_t *op = store_op_schema(j);
    json_decref(j);
    op->system = system;
    int rc = store_exec(st, op);
    if (out)
        *out = op;
    else
        store_op_free(op);
    return rc;
}

static int field_op(store_t *st, const char *coll, const char *name, const char *def,
                    store_op_t **out)
{
    json_t *j = tu_json(def);
    store_op_t *op = store_op_field(coll, name, j);
    json_decref(j);
    int rc = store_exec(st, op);
    if (out)
        *out = op;
    else
        store_op_free(op);
    return rc;
}

/* The diagnostic names field (in its field list). */
static int names_field(const err_diag_t *d, const char *field)
{
    for (int i = 0; i < d->nfields; i++)
        if (strcmp(d->fields[i].name, field) == 0) return 1;
    return 0;
}

static void diag_print(const err_diag_t *d)
{
    print_message("  %s\n", d->msg);
    for (int i = 0; i < d->nfields; i++)
        print_message("    %s: %s\n", d->fields[i].name, d->fields[i].msg);
}

/* A definition must fail with code, naming field (NULL: no field list
 * expected), and create nothing. */
static void refuse(store_t *st, const char *def, int code, const char *field)
{
    store_op_t *op;
    int rc = schema_op(st, def, 0, &op);
    if (rc != code) {
        diag_print(op->diag);
        fail_msg("%s: status %d (%s), want %d", def, rc, err_name(rc), code);
    }
    if (field && !names_field(op->diag, field)) {
        diag_print(op->diag);
        fail_msg("%s: the error does not name '%s'", def, field);
    }
    json_t *j = tu_json(def);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (name && *name) {
        json_t *c = tu_coll_json(st, name);
        if (c) fail_msg("%s: a refused definition created collection %s", def, name);
    }
    json_decref(j);
    store_op_free(op);
}

/* {"name":"c","fields":[<field>]} refused with code, naming the field. */
static void refuse_field(store_t *st, const char *field_def, int code, const char *field)
{
    char def[4096];
    snprintf(def, sizeof def, "{\"name\":\"c\",\"fields\":[%s]}", field_def);
    refuse(st, def, code, field);
}

static json_t *def_field(json_t *def, const char *name)
{
    json_t *fa = json_object_get(def, "fields");
    for (size_t i = 0; i < json_array_size(fa); i++) {
        json_t *e = json_array_get(fa, i);
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) return e;
    }
    return NULL;
}

static json_int_t coll_version(store_t *st, const char *coll)
{
    json_t *j = tu_coll_json(st, coll);
    assert_non_null(j);
    json_int_t v = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    return v;
}

/* The stored history entry h/<coll>/<version>: its version, or 0 if none. */
static json_int_t history_version(store_t *st, const char *coll, uint32_t version)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    char key[STORE_NAME_MAX + 8];
    int kl = snprintf(key, sizeof key, "h/%s/", coll);
    store_u32be(key + kl, version);
    MDB_val k = {(size_t)kl + 4, key}, d;
    json_int_t v = 0;
    if (mdb_get(rt->txn, st->dbi[DB_META], &k, &d) == 0) {
        json_t *j = json_parse(d.mv_data, d.mv_size);
        assert_non_null(j);
        v = json_integer_value(json_object_get(j, "version"));
        json_decref(j);
    }
    store_read_end(rt);
    return v;
}

/* ---- definitions ---- */

static const char *all_types =
    "{\"name\":\"all\",\"fields\":["
    "{\"name\":\"s\",\"type\":\"string\",\"required\":true,\"max_length\":100,"
    "\"description\":\"a string\",\"searchable\":true,\"sensitive\":true},"
    "{\"name\":\"t\",\"type\":\"text\",\"max_length\":1000},"
    "{\"name\":\"i\",\"type\":\"int\",\"indexed\":true,\"default\":5},"
    "{\"name\":\"n\",\"type\":\"number\",\"default\":1.5},"
    "{\"name\":\"b\",\"type\":\"bool\",\"default\":false},"
    "{\"name\":\"dt\",\"type\":\"datetime\",\"indexed\":true,"
    "\"default\":\"2026-01-01T01:00:00+01:00\"},"
    "{\"name\":\"d\",\"type\":\"date\",\"default\":\"2024-02-29\"},"
    "{\"name\":\"e\",\"type\":\"enum\",\"values\":[\"x\",\"y\"],\"default\":\"y\","
    "\"searchable\":true},"
    "{\"name\":\"em\",\"type\":\"email\",\"unique\":true},"
    "{\"name\":\"ph\",\"type\":\"phone\",\"searchable\":true,\"max_length\":30},"
    "{\"name\":\"m\",\"type\":\"money\",\"indexed\":true,\"default\":19.9},"
    "{\"name\":\"r\",\"type\":\"ref\",\"ref\":\"all\",\"indexed\":true},"
    "{\"name\":\"arr\",\"type\":\"array\",\"items\":\"int\",\"max_length\":10,\"indexed\":true},"
    "{\"name\":\"tags\",\"type\":\"array\",\"searchable\":true},"
    "{\"name\":\"o\",\"type\":\"object\",\"description\":\"free\"}]}";

static void every_type_and_attribute(void **state)
{
    fx_t *f = *state;
    store_op_t *op;
    assert_ok(schema_op(f->st, all_types, 0, &op));
    assert_int_equal(op->version, 1);
    assert_false(op->nochange);
    json_t *pub = tu_json(op->json);
    store_op_free(op);
    json_t *now = tu_coll_json(f->st, "all");
    assert_true(json_equal(pub, now));
    json_decref(now);
    assert_string_equal(json_string_value(json_object_get(pub, "name")), "all");
    assert_int_equal(json_integer_value(json_object_get(pub, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(pub, "fields")), 15);

    /* every attribute comes back as given; defaults in canonical form */
    json_t *want = tu_json(
        "{\"s\":{\"name\":\"s\",\"type\":\"string\",\"required\":true,\"searchable\":true,"
        "\"sensitive\":true,\"max_length\":100,\"description\":\"a "
        "string\",\"index_state\":\"ready\"},"
        "\"t\":{\"name\":\"t\",\"type\":\"text\",\"max_length\":1000},"
        "\"i\":{\"name\":\"i\",\"type\":\"int\",\"indexed\":true,\"default\":5,\"index_state\":"
        "\"ready\"},"
        "\"n\":{\"name\":\"n\",\"type\":\"number\",\"default\":1.5},"
        "\"b\":{\"name\":\"b\",\"type\":\"bool\",\"default\":false},"
        "\"dt\":{\"name\":\"dt\",\"type\":\"datetime\",\"indexed\":true,"
        "\"default\":\"2026-01-01T00:00:00Z\",\"index_state\":\"ready\"},"
        "\"d\":{\"name\":\"d\",\"type\":\"date\",\"default\":\"2024-02-29\"},"
        "\"e\":{\"name\":\"e\",\"type\":\"enum\",\"values\":[\"x\",\"y\"],\"default\":\"y\","
        "\"searchable\":true,\"index_state\":\"ready\"},"
        "\"em\":{\"name\":\"em\",\"type\":\"email\",\"unique\":true,\"indexed\":true,"
        "\"index_state\":\"ready\"},"
        "\"ph\":{\"name\":\"ph\",\"type\":\"phone\",\"searchable\":true,\"max_length\":30,"
        "\"index_state\":\"ready\"},"
        "\"m\":{\"name\":\"m\",\"type\":\"money\",\"indexed\":true,\"default\":\"19.90\","
        "\"index_state\":\"ready\"},"
        "\"r\":{\"name\":\"r\",\"type\":\"ref\",\"ref\":\"all\",\"indexed\":true,\"index_state\":"
        "\"ready\"},"
        "\"arr\":{\"name\":\"arr\",\"type\":\"array\",\"items\":\"int\",\"max_length\":10,"
        "\"indexed\":true,\"index_state\":\"ready\"},"
        "\"tags\":{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\",\"searchable\":true,"
        "\"index_state\":\"ready\"},"
        "\"o\":{\"name\":\"o\",\"type\":\"object\",\"description\":\"free\"}}");
    const char *k;
    json_t *w;
    json_object_foreach(want, k, w)
    {
        json_t *got = def_field(pub, k);
        if (!json_equal(got, w)) {
            char *g = json_to_str(got, NULL), *x = json_to_str(w, NULL);
            fail_msg("field %s: got %s, want %s", k, g, x);
        }
    }
    json_decref(want);

    /* the client form is accepted back as is, and changes nothing */
    char *text = json_to_str(pub, NULL);
    assert_ok(schema_op(f->st, text, 0, &op));
    assert_true(op->nochange);
    assert_int_equal(op->version, 1);
    store_op_free(op);
    free(text);
    json_decref(pub);

    /* defaults apply on create */
    kith_id_t id;
    assert_ok(tu_create(f->st, "all", "{\"s\":\"x\"}", &id));
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec;
    assert_ok(store_get(rt, "all", &id, &rec));
    json_t *rf = store_record_fields(&rec);
    store_read_end(rt);
    json_t *wantrec =
        tu_json("{\"s\":\"x\",\"i\":5,\"n\":1.5,\"b\":false,\"dt\":\"2026-01-01T00:00:00Z\","
                "\"d\":\"2024-02-29\",\"e\":\"y\",\"m\":\"19.90\"}");
    assert_true(json_equal(rf, wantrec));
    json_decref(rf);
    json_decref(wantrec);

    /* type names */
    for (int t = ST_STRING; t < ST__COUNT; t++) {
        assert_int_equal(store_type_from_name(store_type_name(t)), t);
        assert_int_equal(store_type_indexable(t), t != ST_TEXT && t != ST_OBJECT);
    }
    assert_int_equal(store_type_from_name("varchar"), ST_NONE);
    assert_string_equal(store_type_name(99), "none");
}

static void bad_names(void **state)
{
    fx_t *f = *state;
    const char *bad[] = {
        "",    "Contacts", "1abc",
        "a-b", "a b",      "naïve",
        "a.b", "ab$",      "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"};
    char def[256];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        snprintf(def, sizeof def, "{\"name\":\"%s\",\"fields\":[]}", bad[i]);
        refuse(f->st, def, KITH_EINVAL, NULL);
        snprintf(def, sizeof def,
                 "{\"name\":\"ok\",\"fields\":[{\"name\":\"%s\",\"type\":\"int\"}]}", bad[i]);
        refuse(f->st, def, KITH_EVALIDATION, "fields");
    }
    refuse(f->st, "{\"fields\":[]}", KITH_EINVAL, NULL);
    refuse(f->st, "{\"name\":5}", KITH_EINVAL, NULL);
    refuse(f->st, "[]", KITH_EINVAL, NULL);
    refuse(f->st, "{\"name\":\"ok\",\"fields\":[{\"type\":\"int\"}]}", KITH_EVALIDATION, "fields");
    refuse(f->st, "{\"name\":\"ok\",\"fields\":[\"a\"]}", KITH_EVALIDATION, "fields");
    /* 63 characters and digits or '_' after the first letter are fine */
    assert_ok(
        schema_op(f->st,
                  "{\"name\":\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123\","
                  "\"fields\":[{\"name\":\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
                  "abcdefghij123\",\"type\":\"int\"},{\"name\":\"a_1\",\"type\":\"int\"}]}",
                  0, NULL));
    assert_ok(schema_op(f->st, "{\"name\":\"x\"}", 0, NULL)); /* no fields at all */
}

static void reserved_names(void **state)
{
    fx_t *f = *state;
    const char *fields[] = {"id", "version", "created_at", "updated_at", "and", "or", "not"};
    char def[256];
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        snprintf(def, sizeof def,
                 "{\"name\":\"c\",\"fields\":[{\"name\":\"%s\",\"type\":\"string\"}]}", fields[i]);
        refuse(f->st, def, KITH_EVALIDATION, fields[i]);
    }
    const char *colls[] = {"schema",  "changes", "audit",   "keys",   "roles",
                           "scripts", "hooks",   "openapi", "me",     "reports",
                           "capture", "metrics", "healthz", "plugins"};
    for (size_t i = 0; i < ARRAY_LEN(colls); i++) {
        snprintf(def, sizeof def, "{\"name\":\"%s\",\"fields\":[]}", colls[i]);
        refuse(f->st, def, KITH_EINVAL, NULL);
        assert_non_null(strstr(err_last()->msg, "reserved"));
    }
    /* '_' names: only with the system flag, and never for fields */
    refuse(f->st, "{\"name\":\"_keys\",\"fields\":[]}", KITH_EPERM, NULL);
    assert_ok(schema_op(
        f->st, "{\"name\":\"_keys\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"}]}", 1, NULL));
    json_t *keys = tu_coll_json(f->st, "_keys");
    assert_non_null(keys);
    json_decref(keys);
    store_op_t *op;
    assert_int_equal(
        schema_op(f->st,
                  "{\"name\":\"_keys\",\"fields\":[{\"name\":\"k\",\"type\":\"string\"},"
                  "{\"name\":\"_x\",\"type\":\"int\"}]}",
                  1, &op),
        KITH_EVALIDATION);
    store_op_free(op);
    /* a field op on a system collection needs the flag too */
    assert_int_equal(field_op(f->st, "_keys", "v", "{\"type\":\"int\"}", NULL), KITH_ENOTFOUND);
}

static void definition_errors(void **state)
{
    fx_t *f = *state;
    /* duplicates */
    refuse(f->st,
           "{\"name\":\"c\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
           "{\"name\":\"a\",\"type\":\"string\"}]}",
           KITH_EVALIDATION, "a");
    /* types */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"varchar\"}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\"}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":1}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"array\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"nope\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":3}", KITH_EVALIDATION, "a");
    /* enums */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\"}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\",\"values\":[]}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\",\"values\":[1]}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\",\"values\":[\"\"]}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\",\"values\":[\"x\",\"x\"]}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"enum\"}", KITH_EVALIDATION,
                 "a");
    /* refs */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"ref\",\"ref\":\"ghost\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"ref\"}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"ref\",\"ref\":\"Bad-Name\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"ref\",\"ref\":\"ghost\"}",
                 KITH_EVALIDATION, "a");
    /* redirect: only a ref to the collection itself */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"redirect\":true}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"ref\",\"ref\":\"other\",\"redirect\":true}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"ref\",\"ref\":\"c\",\"redirect\":1}",
                 KITH_EVALIDATION, "a");
    /* what cannot be indexed */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"text\",\"indexed\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"text\",\"unique\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"object\",\"indexed\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"object\",\"indexed\":true}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"items\":\"text\",\"indexed\":true}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"unique\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"searchable\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"money\",\"searchable\":true}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"object\",\"searchable\":true}",
                 KITH_EVALIDATION, "a");
    /* defaults that fail their type */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"default\":1.5}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"enum\",\"values\":[\"x\"],\"default\":\"z\"}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"email\",\"default\":\"bad\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"date\",\"default\":\"2026-02-30\"}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"money\",\"default\":\"1.23456\"}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st,
                 "{\"name\":\"a\",\"type\":\"string\",\"max_length\":3,\"default\":\"abcd\"}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st,
                 "{\"name\":\"a\",\"type\":\"array\",\"items\":\"int\",\"default\":[1,\"x\"]}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"unique\":true,\"default\":\"x\"}",
                 KITH_EVALIDATION, "a");
    /* attributes */
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"colour\":\"red\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"index\":5}", KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"prefix_index\":5}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"items\":\"int\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"values\":[\"x\"]}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"ref\":\"c\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"max_length\":5}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"max_length\":0}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"max_length\":4097}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"string\",\"max_length\":\"9\"}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"array\",\"max_length\":1001}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"text\",\"max_length\":262145}",
                 KITH_EVALIDATION, "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"description\":5}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"required\":\"yes\"}", KITH_EVALIDATION,
                 "a");
    refuse_field(f->st, "{\"name\":\"a\",\"type\":\"int\",\"indexed\":1}", KITH_EVALIDATION, "a");
    /* every bad field is named at once */
    store_op_t *op;
    assert_int_equal(schema_op(f->st,
                               "{\"name\":\"c\",\"fields\":[{\"name\":\"a\",\"type\":\"x\"},"
                               "{\"name\":\"b\",\"type\":\"int\"},"
                               "{\"name\":\"c\",\"type\":\"text\",\"indexed\":true},"
                               "{\"name\":\"d\",\"type\":\"datetime\",\"default\":\"soon\"},"
                               "{\"name\":\"e\",\"type\":\"ref\",\"ref\":\"c\",\"default\":\"x\"},"
                               "{\"name\":\"f\",\"type\":\"date\",\"default\":\"2026-02-30\"}]}",
                               0, &op),
                     KITH_EVALIDATION);
    if (op->diag->nfields != 5) diag_print(op->diag);
    assert_int_equal(op->diag->nfields, 5);
    assert_true(names_field(op->diag, "a") && names_field(op->diag, "c") &&
                names_field(op->diag, "d") && names_field(op->diag, "e") &&
                names_field(op->diag, "f"));
    store_op_free(op);
    /* the collection itself */
    refuse(f->st, "{\"name\":\"c\",\"fields\":{}}", KITH_EINVAL, NULL);
    refuse(f->st, "{\"name\":\"c\",\"fields\":[],\"colour\":1}", KITH_EINVAL, NULL);
    refuse(f->st, "{\"name\":\"c\",\"fields\":[],\"id\":3}", KITH_EINVAL, NULL);
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"name\":\"c\",\"fields\":[");
    for (int i = 0; i < 257; i++)
        buf_addf(&b, "%s{\"name\":\"f%d\",\"type\":\"int\"}", i ? "," : "", i);
    buf_adds(&b, "]}");
    refuse(f->st, b.p, KITH_ELIMIT, NULL);
    /* 256 are fine */
    buf_reset(&b);
    buf_adds(&b, "{\"name\":\"c\",\"fields\":[");
    for (int i = 0; i < 256; i++)
        buf_addf(&b, "%s{\"name\":\"f%d\",\"type\":\"int\"}", i ? "," : "", i);
    buf_adds(&b, "]}");
    assert_ok(schema_op(f->st, b.p, 0, NULL));
    buf_free(&b);
    /* refs to itself and to an existing collection are fine */
    assert_ok(schema_op(f->st,
                        "{\"name\":\"tree\",\"fields\":[{\"name\":\"parent\",\"type\":\"ref\","
                        "\"ref\":\"tree\"},{\"name\":\"c\",\"type\":\"array\",\"items\":\"ref\","
                        "\"ref\":\"c\",\"indexed\":true}]}",
                        0, NULL));
}

static const char *base_def = "{\"name\":\"c\",\"fields\":["
                              "{\"name\":\"a\",\"type\":\"string\",\"max_length\":10},"
                              "{\"name\":\"st\",\"type\":\"enum\",\"values\":[\"x\",\"y\"]},"
                              "{\"name\":\"s\",\"type\":\"email\"},"
                              "{\"name\":\"o\",\"type\":\"ref\",\"ref\":\"other\"},"
                              "{\"name\":\"l\",\"type\":\"array\",\"items\":\"int\"}]}";

static void with_records(fx_t *f)
{
    tu_schema(f->st, "{\"name\":\"other\",\"fields\":[]}");
    tu_schema(f->st, "{\"name\":\"other2\",\"fields\":[]}");
    tu_schema(f->st, base_def);
    assert_ok(tu_create(f->st, "c", "{\"a\":\"one\",\"st\":\"x\"}", NULL));
    assert_ok(tu_create(f->st, "c", "{\"a\":\"two\",\"s\":\"a@b.co\"}", NULL));
}

static void allowed_changes_bump_the_version(void **state)
{
    fx_t *f = *state;
    with_records(f);
    struct {
        const char *field, *def;
    } steps[] = {
        {"b", "{\"type\":\"int\"}"},                                  /* add a field */
        {"st", "{\"type\":\"enum\",\"values\":[\"x\",\"y\",\"z\"]}"}, /* add a value */
        {"a", "{\"type\":\"string\",\"max_length\":20}"},             /* widen */
        {"s", "{\"type\":\"email\",\"sensitive\":true}"},             /* sensitive on */
        {"s", "{\"type\":\"email\"}"},                                /* and off */
        {"a", "{\"type\":\"string\",\"max_length\":20,\"description\":\"A\"}"},
        {"b", "{\"type\":\"int\",\"default\":3}"},
        {"a", "{\"type\":\"string\",\"max_length\":20,\"required\":true}"}, /* all have it */
        {"b", "{\"type\":\"int\",\"default\":3,\"indexed\":true}"},
        {"st", "{\"type\":\"enum\",\"values\":[\"z\",\"y\",\"x\",\"w\"]}"}, /* reorder + add */
    };
    for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
        store_op_t *op;
        int rc = field_op(f->st, "c", steps[i].field, steps[i].def, &op);
        if (rc) {
            diag_print(op->diag);
            fail_msg("step %zu (%s %s) refused", i, steps[i].field, steps[i].def);
        }
        assert_false(op->nochange);
        assert_int_equal(op->version, i + 2);
        assert_int_equal(coll_version(f->st, "c"), i + 2);
        assert_int_equal(history_version(f->st, "c", (uint32_t)(i + 2)), i + 2);
        store_op_free(op);
    }
    assert_int_equal(history_version(f->st, "c", 1), 1);
    assert_int_equal(history_version(f->st, "c", 12), 0);
    assert_ok(store_jobs_wait(f->st));
    /* the new definition applies to writes */
    assert_ok(tu_create(f->st, "c", "{\"a\":\"twelve chars\",\"st\":\"w\"}", NULL));
    assert_int_equal(tu_create(f->st, "c", "{\"st\":\"z\"}", NULL),
                     KITH_EVALIDATION); /* a required */
    kith_id_t ids[4];
    assert_int_equal(tu_query_ids(f->st, "c", "{\"b\":3}", NULL, ids, 4), 1);

    /* shrinking max_length is allowed while the collection is empty */
    tu_schema(
        f->st,
        "{\"name\":\"e\",\"fields\":[{\"name\":\"a\",\"type\":\"string\",\"max_length\":9}]}");
    store_op_t *op;
    assert_ok(
        field_op(f->st, "e", "a", "{\"type\":\"string\",\"max_length\":3,\"required\":true}", &op));
    assert_int_equal(op->version, 2);
    store_op_free(op);
    assert_int_equal(tu_create(f->st, "e", "{\"a\":\"abcd\"}", NULL), KITH_EVALIDATION);
    /* a whole new definition through a schema op */
    assert_ok(schema_op(f->st,
                        "{\"name\":\"e\",\"fields\":[{\"name\":\"a\",\"type\":\"string\","
                        "\"max_length\":3,\"required\":true},{\"name\":\"z\",\"type\":\"date\"}]}",
                        0, &op));
    assert_int_equal(op->version, 3);
    store_op_free(op);
}

static void refused_changes_name_the_field(void **state)
{
    fx_t *f = *state;
    with_records(f);
    json_t *before = tu_coll_json(f->st, "c");
    /* base_def with one field replaced, removed (NULL) or added */
    struct {
        const char *field, *def;
    } cases[] = {
        {"s", NULL},                                                       /* removed */
        {"a", "{\"name\":\"a\",\"type\":\"text\",\"max_length\":10}"},     /* type */
        {"l", "{\"name\":\"l\",\"type\":\"array\",\"items\":\"number\"}"}, /* item type */
        {"st", "{\"name\":\"st\",\"type\":\"enum\",\"values\":[\"y\"]}"},  /* value removed */
        {"o", "{\"name\":\"o\",\"type\":\"ref\",\"ref\":\"other2\"}"},     /* ref target */
        {"a", "{\"name\":\"a\",\"type\":\"string\",\"max_length\":9}"},    /* shrunk */
        /* required, while a record lacks it: an existing field and a new one */
        {"st", "{\"name\":\"st\",\"type\":\"enum\",\"values\":[\"x\",\"y\"],\"required\":true}"},
        {"nw", "{\"name\":\"nw\",\"type\":\"int\",\"required\":true,\"default\":1}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        json_t *def = tu_json(base_def), *fa = json_object_get(def, "fields");
        size_t k = 0;
        while (k < json_array_size(fa) &&
               strcmp(json_string_value(json_object_get(json_array_get(fa, k), "name")),
                      cases[i].field) != 0)
            k++;
        if (!cases[i].def)
            json_array_remove(fa, k);
        else if (k < json_array_size(fa))
            json_array_set_new(fa, k, tu_json(cases[i].def));
        else
            json_array_append_new(fa, tu_json(cases[i].def));
        char *text = json_to_str(def, NULL);
        json_decref(def);
        store_op_t *op;
        int rc = schema_op(f->st, text, 0, &op);
        free(text);
        if (rc != KITH_EVALIDATION) fail_msg("case %zu: status %d", i, rc);
        if (!names_field(op->diag, cases[i].field)) {
            diag_print(op->diag);
            fail_msg("case %zu: the error does not name '%s'", i, cases[i].field);
        }
        store_op_free(op);
        json_t *after = tu_coll_json(f->st, "c");
        assert_true(json_equal(before, after));
        json_decref(after);
    }
    /* the same through field ops */
    store_op_t *op;
    assert_int_equal(field_op(f->st, "c", "a", "{\"type\":\"int\"}", &op), KITH_EVALIDATION);
    assert_true(names_field(op->diag, "a"));
    assert_non_null(strstr(op->diag->fields[0].msg, "type"));
    store_op_free(op);
    assert_int_equal(field_op(f->st, "c", "st", "{\"type\":\"enum\",\"values\":[\"x\"]}", &op),
                     KITH_EVALIDATION);
    assert_non_null(strstr(op->diag->fields[0].msg, "'y'"));
    store_op_free(op);
    assert_int_equal(field_op(f->st, "c", "q", "{\"type\":\"int\",\"required\":true}", &op),
                     KITH_EVALIDATION);
    assert_true(names_field(op->diag, "q"));
    assert_non_null(strstr(op->diag->fields[0].msg, "2 record"));
    store_op_free(op);
    /* field op plumbing */
    assert_int_equal(field_op(f->st, "c", "a", "{\"name\":\"b\",\"type\":\"int\"}", NULL),
                     KITH_EINVAL);
    assert_int_equal(field_op(f->st, "c", "a", "[]", NULL), KITH_EINVAL);
    assert_int_equal(field_op(f->st, "nope", "a", "{\"type\":\"int\"}", NULL), KITH_ENOTFOUND);
    assert_int_equal(field_op(f->st, "c", "A", "{\"type\":\"int\"}", NULL), KITH_EVALIDATION);
    json_t *after = tu_coll_json(f->st, "c");
    assert_true(json_equal(before, after));
    json_decref(after);
    json_decref(before);
    assert_int_equal(history_version(f->st, "c", 2), 0);
}

static void no_op_change_keeps_the_version(void **state)
{
    fx_t *f = *state;
    with_records(f);
    store_op_t *op;
    assert_ok(schema_op(f->st, base_def, 0, &op));
    assert_true(op->nochange);
    assert_int_equal(op->version, 1);
    store_op_free(op);
    assert_ok(field_op(f->st, "c", "a", "{\"type\":\"string\",\"max_length\":10}", &op));
    assert_true(op->nochange);
    assert_int_equal(op->version, 1);
    /* the result is the definition as it stands */
    json_t *pub = tu_json(op->json), *now = tu_coll_json(f->st, "c");
    assert_true(json_equal(pub, now));
    json_decref(pub);
    json_decref(now);
    store_op_free(op);
    /* "unique" implies "indexed": saying both is the same definition */
    assert_ok(field_op(f->st, "c", "s", "{\"type\":\"email\",\"unique\":true}", &op));
    assert_int_equal(op->version, 2);
    store_op_free(op);
    assert_ok(
        field_op(f->st, "c", "s", "{\"type\":\"email\",\"unique\":true,\"indexed\":true}", &op));
    assert_true(op->nochange);
    store_op_free(op);
    /* the client form, index_state and all, changes nothing */
    json_t *def = tu_coll_json(f->st, "c");
    char *text = json_to_str(def, NULL);
    json_decref(def);
    assert_ok(schema_op(f->st, text, 0, &op));
    free(text);
    assert_true(op->nochange);
    assert_int_equal(op->version, 2);
    store_op_free(op);
    assert_int_equal(coll_version(f->st, "c"), 2);
    assert_int_equal(history_version(f->st, "c", 3), 0);
}

static void survives_reopen(void **state)
{
    fx_t *f = *state;
    with_records(f);
    assert_ok(schema_op(f->st, all_types, 0, NULL));
    assert_ok(field_op(f->st, "c", "a", "{\"type\":\"string\",\"max_length\":10,\"indexed\":true}",
                       NULL));
    assert_ok(store_jobs_wait(f->st));
    json_t *c1 = tu_coll_json(f->st, "c"), *a1 = tu_coll_json(f->st, "all");
    store_close(f->st);
    store_opts_t o = {0};
    assert_ok(store_open(&f->st, f->dir, &o));
    json_t *c2 = tu_coll_json(f->st, "c"), *a2 = tu_coll_json(f->st, "all");
    assert_true(json_equal(c1, c2));
    assert_true(json_equal(a1, a2));
    json_decref(c1);
    json_decref(c2);
    json_decref(a1);
    json_decref(a2);
    char *p = tu_plan(f->st, "c", "{\"a\":\"one\"}", NULL);
    assert_string_equal(p, "eq a");
    free(p);
    kith_id_t id[2];
    assert_int_equal(tu_query_ids(f->st, "c", "{\"a\":\"one\"}", NULL, id, 2), 1);
    /* versions go on from where they were */
    store_op_t *op;
    assert_ok(field_op(f->st, "c", "z", "{\"type\":\"bool\"}", &op));
    assert_int_equal(op->version, 3);
    store_op_free(op);
    assert_int_equal(schema_op(f->st, base_def, 0, NULL), KITH_EVALIDATION); /* z removed */
    assert_int_equal(tu_check_problems(f->st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_type_and_attribute, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(reserved_names, setup, teardown),
        cmocka_unit_test_setup_teardown(definition_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(allowed_changes_bump_the_version, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_changes_name_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(no_op_change_keeps_the_version, setup, teardown),
        cmocka_unit_test_setup_teardown(survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
