/* Tests core/store/store_op.c: create, update (merge patch), replace, delete,
 * versions, If-Match style conflicts, no-op updates. */
#include "testutil.h"

#include <string.h>

static const char *contacts =
    "{\"name\":\"contacts\",\"fields\":["
    "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
    "{\"name\":\"first\",\"type\":\"string\",\"required\":true},"
    "{\"name\":\"age\",\"type\":\"int\"},"
    "{\"name\":\"meta\",\"type\":\"object\"},"
    "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\",\"indexed\":true},"
    "{\"name\":\"stage\",\"type\":\"enum\",\"values\":[\"lead\",\"customer\"],\"default\":\"lead\"}"
    "]}";

typedef struct fx {
    store_t *st;
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, contacts);
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

static json_t *get_fields(store_t *st, const kith_id_t *id, uint64_t *version)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    json_t *j = NULL;
    if (store_get(rt, "contacts", id, &rec) == 0) {
        j = store_record_fields(&rec);
        if (version) *version = rec.version;
    }
    store_read_end(rt);
    return j;
}

static void create_get_render(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "contacts",
                        "{\"first\":\"Ada\",\"email\":\"  Ada@Example.com \","
                        "\"age\":36}",
                        &id));
    uint64_t v = 0;
    json_t *j = get_fields(f->st, &id, &v);
    assert_non_null(j);
    assert_int_equal(v, 1);
    /* canonical: trimmed e-mail, default applied, schema order */
    assert_string_equal(json_string_value(json_object_get(j, "email")), "Ada@Example.com");
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "lead");
    assert_int_equal(json_integer_value(json_object_get(j, "age")), 36);
    json_decref(j);

    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec;
    assert_ok(store_get(rt, "contacts", &id, &rec));
    buf_t b = BUF_INIT;
    store_record_render(&b, &rec);
    store_read_end(rt);
    json_t *r = tu_json(b.p);
    char ids[ID_TEXT_LEN + 1];
    id_encode(&id, ids);
    assert_string_equal(json_string_value(json_object_get(r, "id")), ids);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 1);
    assert_non_null(json_object_get(r, "created_at"));
    assert_string_equal(json_string_value(json_object_get(r, "first")), "Ada");
    json_decref(r);
    buf_free(&b);
}

static void validation_names_every_field(void **state)
{
    fx_t *f = *state;
    int rc =
        tu_create(f->st, "contacts",
                  "{\"email\":\"not-an-email\",\"age\":\"x\",\"bogus\":1,\"stage\":\"zzz\"}", NULL);
    assert_int_equal(rc, KITH_EVALIDATION);
    const err_diag_t *e = err_last();
    const char *want[] = {"bogus", "email", "first", "age", "stage"};
    for (size_t i = 0; i < 5; i++) {
        int found = 0;
        for (int k = 0; k < e->nfields; k++)
            if (strcmp(e->fields[k].name, want[i]) == 0) found = 1;
        if (!found) fail_msg("field %s not named in the validation error", want[i]);
    }
    assert_int_equal(e->nfields, 5);
}

static void pseudo_fields_cannot_be_written(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tu_create(f->st, "contacts", "{\"first\":\"A\",\"id\":\"x\"}", NULL),
                     KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "id");
}

static int exec_update(store_t *st, int kind, const kith_id_t *id, const char *patch, uint64_t ifv,
                       store_op_t **out)
{
    json_t *j = tu_json(patch);
    store_op_t *op = kind == STORE_OP_UPDATE ? store_op_update("contacts", id, j, ifv)
                                             : store_op_replace("contacts", id, j, ifv);
    json_decref(j);
    int rc = store_exec(st, op);
    *out = op;
    return rc;
}

static void update_merge_patch(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "contacts",
                        "{\"first\":\"Bo\",\"age\":3,\"meta\":{\"a\":1,\"b\":{\"c\":2}}}", &id));
    store_op_t *op;
    assert_ok(exec_update(f->st, STORE_OP_UPDATE, &id,
                          "{\"age\":null,\"meta\":{\"b\":{\"c\":null,\"d\":4},\"e\":5}}", 1, &op));
    assert_int_equal(op->version, 2);
    assert_false(op->nochange);
    store_op_free(op);
    json_t *j = get_fields(f->st, &id, NULL);
    assert_null(json_object_get(j, "age"));
    json_t *want = tu_json("{\"a\":1,\"b\":{\"d\":4},\"e\":5}");
    assert_true(json_equal(json_object_get(j, "meta"), want));
    json_decref(want);
    json_decref(j);

    /* stale version */
    assert_int_equal(exec_update(f->st, STORE_OP_UPDATE, &id, "{\"age\":4}", 1, &op),
                     KITH_ECONFLICT);
    store_op_free(op);
    /* required field cannot be removed */
    assert_int_equal(exec_update(f->st, STORE_OP_UPDATE, &id, "{\"first\":null}", 0, &op),
                     KITH_EVALIDATION);
    store_op_free(op);
    /* an update that changes nothing writes nothing */
    assert_ok(exec_update(f->st, STORE_OP_UPDATE, &id, "{\"first\":\"Bo\"}", 2, &op));
    assert_true(op->nochange);
    assert_int_equal(op->version, 2);
    assert_int_equal(op->seq, 0);
    store_op_free(op);
}

static void replace_and_delete(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"Cy\",\"age\":9}", &id));
    store_op_t *op;
    assert_ok(exec_update(f->st, STORE_OP_REPLACE, &id, "{\"first\":\"Cyd\"}", 0, &op));
    store_op_free(op);
    json_t *j = get_fields(f->st, &id, NULL);
    assert_null(json_object_get(j, "age"));
    assert_null(json_object_get(j, "stage")); /* no defaults on replace */
    json_decref(j);

    op = store_op_delete("contacts", &id, 7);
    assert_int_equal(store_exec(f->st, op), KITH_ECONFLICT);
    store_op_free(op);
    op = store_op_delete("contacts", &id, 2);
    assert_ok(store_exec(f->st, op));
    store_op_free(op);
    assert_null(get_fields(f->st, &id, NULL));
    op = store_op_delete("contacts", &id, 0);
    assert_int_equal(store_exec(f->st, op), KITH_ENOTFOUND);
    store_op_free(op);
}

static void unknown_collection(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tu_create(f->st, "nope", "{}", NULL), KITH_ENOTFOUND);
    /* system collections are invisible without the system flag */
    assert_int_equal(tu_create(f->st, "_keys", "{}", NULL), KITH_ENOTFOUND);
}

static void unique_violation(void **state)
{
    fx_t *f = *state;
    kith_id_t a, b;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"A\",\"email\":\"x@y.io\"}", &a));
    /* e-mails compare case-insensitively */
    assert_int_equal(tu_create(f->st, "contacts", "{\"first\":\"B\",\"email\":\"X@Y.IO\"}", &b),
                     KITH_EEXIST);
    assert_string_equal(err_last()->fields[0].name, "email");
    /* after a delete the value is free again */
    store_op_t *op = store_op_delete("contacts", &a, 0);
    assert_ok(store_exec(f->st, op));
    store_op_free(op);
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"B\",\"email\":\"X@Y.IO\"}", &b));
}

/* Regression: a string with a NUL built in code (not parsed from JSON text)
 * was stored as "a\u0000b", which then could not be read back for updates. */
static void nul_in_strings_refused(void **state)
{
    fx_t *f = *state;
    json_t *o = json_object();
    json_object_set_new(o, "first", json_stringn("a\0b", 3));
    store_op_t *op = store_op_create("contacts", o);
    assert_int_equal(store_exec(f->st, op), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "first");
    store_op_free(op);
    json_object_set_new(o, "first", json_string("ok"));
    json_t *m = json_object();
    json_object_set_new(m, "k", json_stringn("x\0", 2));
    json_object_set_new(o, "meta", m);
    op = store_op_create("contacts", o);
    assert_int_equal(store_exec(f->st, op), KITH_EVALIDATION);
    store_op_free(op);
    json_decref(o);
}

static void upsert_matches_unique_field(void **state)
{
    fx_t *f = *state;
    json_t *a = tu_json("{\"first\":\"Eve\",\"email\":\"Eve@X.io\",\"age\":1}");
    store_op_t *op = store_op_upsert("contacts", "email", a);
    assert_ok(store_exec(f->st, op));
    assert_int_equal(op->upserted, 1);
    kith_id_t id = op->rid;
    store_op_free(op);
    /* same e-mail written differently: the same record, merged */
    json_t *b = tu_json("{\"email\":\" eve@x.IO\",\"age\":2}");
    op = store_op_upsert("contacts", "email", b);
    assert_ok(store_exec(f->st, op));
    assert_int_equal(op->upserted, 2);
    assert_memory_equal(op->rid.b, id.b, ID_LEN);
    assert_int_equal(op->version, 2);
    store_op_free(op);
    json_t *j = get_fields(f->st, &id, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "first")), "Eve");
    assert_int_equal(json_integer_value(json_object_get(j, "age")), 2);
    json_decref(j);
    /* again with nothing new: unchanged */
    op = store_op_upsert("contacts", "email", b);
    assert_ok(store_exec(f->st, op));
    assert_true(op->nochange);
    store_op_free(op);
    /* the match field is required, and must be unique */
    json_t *c = tu_json("{\"first\":\"X\"}");
    op = store_op_upsert("contacts", "email", c);
    assert_int_equal(store_exec(f->st, op), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "email");
    store_op_free(op);
    op = store_op_upsert("contacts", "first", a);
    assert_int_equal(store_exec(f->st, op), KITH_EINVAL);
    store_op_free(op);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

/* A guard that lets the caller touch only records whose "first" is "A". */
static int only_a(store_wtxn_t *w, store_op_t *op, const json_t *before, const json_t *after)
{
    (void)w, (void)op;
    const json_t *r = before ? before : after;
    const char *first = json_string_value(json_object_get(r, "first"));
    if (first && strcmp(first, "A") != 0) return err_set(KITH_ENOTFOUND, "no such record");
    return 0;
}

static void upsert_on_conflict(void **state)
{
    fx_t *f = *state;
    kith_id_t a, b;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"A\",\"email\":\"a@y.io\"}", &a));
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"B\",\"email\":\"b@y.io\"}", &b));
    char as[ID_TEXT_LEN + 1];
    id_encode(&a, as);
    /* a unique conflict names the record it is with */
    assert_int_equal(tu_create(f->st, "contacts", "{\"first\":\"C\",\"email\":\"A@Y.io\"}", NULL),
                     KITH_EEXIST);
    assert_string_equal(err_last()->existing, as);
    /* upsert without a match field: the record the create conflicts with is
     * updated, in the same op */
    json_t *d = tu_json("{\"first\":\"A\",\"email\":\"a@Y.IO\",\"age\":7}");
    store_op_t *op = store_op_upsert("contacts", "", d);
    assert_ok(store_exec(f->st, op));
    assert_int_equal(op->upserted, 2);
    assert_memory_equal(op->rid.b, a.b, ID_LEN);
    assert_int_equal(op->version, 2);
    store_op_free(op);
    json_decref(d);
    /* no conflict: a create */
    d = tu_json("{\"first\":\"D\",\"email\":\"d@y.io\"}");
    op = store_op_upsert("contacts", "", d);
    assert_ok(store_exec(f->st, op));
    assert_int_equal(op->upserted, 1);
    store_op_free(op);
    json_decref(d);
    assert_int_equal(tu_count(f->st, "contacts"), 3);
    /* a guarded caller learns the id only of a record it may touch, and
     * cannot upsert onto one it may not: the conflict stands */
    d = tu_json("{\"first\":\"A\",\"email\":\"b@y.io\"}");
    op = store_op_upsert("contacts", "", d);
    op->guard = only_a;
    assert_int_equal(store_exec(f->st, op), KITH_EEXIST);
    assert_string_equal(op->diag->existing, "");
    store_op_free(op);
    op = store_op_create("contacts", d);
    op->guard = only_a;
    assert_int_equal(store_exec(f->st, op), KITH_EEXIST);
    assert_string_equal(op->diag->existing, "");
    store_op_free(op);
    json_decref(d);
    d = tu_json("{\"first\":\"A\",\"email\":\"a@y.io\"}");
    op = store_op_create("contacts", d);
    op->guard = only_a;
    assert_int_equal(store_exec(f->st, op), KITH_EEXIST);
    assert_string_equal(op->diag->existing, as);
    store_op_free(op);
    json_decref(d);
    json_t *j = get_fields(f->st, &b, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "first")), "B");
    json_decref(j);
}

/* Regression: records created in one millisecond (one batch) sorted by their
 * random bits, not in creation order. */
static void ids_follow_creation_order(void **state)
{
    fx_t *f = *state;
    kith_id_t prev = {{0}};
    for (int i = 0; i < 300; i++) {
        kith_id_t id;
        assert_ok(tu_create(f->st, "contacts", "{\"first\":\"x\"}", &id));
        assert_true(memcmp(prev.b, id.b, ID_LEN) < 0);
        prev = id;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_get_render, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_names_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(pseudo_fields_cannot_be_written, setup, teardown),
        cmocka_unit_test_setup_teardown(update_merge_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(replace_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_collection, setup, teardown),
        cmocka_unit_test_setup_teardown(unique_violation, setup, teardown),
        cmocka_unit_test_setup_teardown(nul_in_strings_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_matches_unique_field, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_on_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_follow_creation_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
