/* Tests core/store/store_record.c: reads by id, rendering, the fields object,
 * counting, and the checksum that every read verifies (records damaged on
 * disk with plain LMDB while the store is closed). */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>

static const char *contacts = "{\"name\":\"contacts\",\"fields\":["
                              "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
                              "{\"name\":\"first\",\"type\":\"string\",\"required\":true},"
                              "{\"name\":\"age\",\"type\":\"int\"},"
                              "{\"name\":\"score\",\"type\":\"number\"},"
                              "{\"name\":\"meta\",\"type\":\"object\"}]}";

static const char *notes =
    "{\"name\":\"notes\",\"fields\":[{\"name\":\"text\",\"type\":\"text\"}]}";

typedef struct fx {
    store_t *st;
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, contacts);
    tu_schema(f->st, notes);
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

static void ts(int64_t us, char *out)
{
    time_fmt_rfc3339(us, out, 40, 6);
}

static void get_render_fields(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "contacts",
                        "{\"meta\":{\"b\":[1,{\"c\":null}],\"a\":\"\\u00e9\"},\"score\":19.99,"
                        "\"first\":\"A \\\"q\\\" \\\\ \\n\",\"email\":\" Ada@X.io\"}",
                        &id));
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec;
    memset(&rec, 0, sizeof rec);
    assert_ok(store_get(rt, "contacts", &id, &rec));
    assert_memory_equal(rec.id.b, id.b, ID_LEN);
    assert_string_equal(rec.coll->name, "contacts");
    assert_int_equal(rec.version, 1);
    assert_int_equal(rec.created_us, rec.updated_us);
    assert_true(rec.created_us / 1000 >= id_time_ms(&id) - 1);
    /* stored compact, canonical, in schema order */
    const char *want = "{\"email\":\"Ada@X.io\",\"first\":\"A \\\"q\\\" \\\\ \\n\",\"score\":19.99,"
                       "\"meta\":{\"b\":[1,{\"c\":null}],\"a\":\"\xc3\xa9\"}}";
    assert_int_equal(rec.json_len, strlen(want));
    assert_memory_equal(rec.json, want, rec.json_len);

    json_t *fields = store_record_fields(&rec);
    json_t *wantj = tu_json(want);
    assert_true(json_equal(fields, wantj));
    assert_null(json_object_get(fields, "id"));
    json_decref(wantj);
    json_decref(fields);

    buf_t b = BUF_INIT;
    buf_adds(&b, "[");
    store_record_render(&b, &rec);
    buf_adds(&b, "]");
    json_t *arr = tu_json(b.p);
    json_t *r = json_array_get(arr, 0);
    char ids[ID_TEXT_LEN + 1], t[40];
    id_encode(&id, ids);
    const char *keys[] = {"id",    "version", "created_at", "updated_at",
                          "email", "first",   "score",      "meta"};
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(r, k, v)
    {
        assert_true(i < ARRAY_LEN(keys));
        assert_string_equal(k, keys[i]);
        i++;
    }
    assert_int_equal(i, ARRAY_LEN(keys));
    assert_string_equal(json_string_value(json_object_get(r, "id")), ids);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 1);
    ts(rec.created_us, t);
    assert_string_equal(json_string_value(json_object_get(r, "created_at")), t);
    ts(rec.updated_us, t);
    assert_string_equal(json_string_value(json_object_get(r, "updated_at")), t);
    assert_string_equal(json_string_value(json_object_get(r, "first")), "A \"q\" \\ \n");
    assert_true(json_real_value(json_object_get(r, "score")) == 19.99);
    json_decref(arr);
    buf_free(&b);
    store_read_end(rt);

    /* an update: a new version, the same creation time */
    json_t *p = tu_json("{\"age\":3}");
    store_op_t *op = store_op_update("contacts", &id, p, 1);
    json_decref(p);
    assert_ok(store_exec(f->st, op));
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec2;
    assert_ok(store_get(rt, "contacts", &id, &rec2));
    assert_int_equal(rec2.version, 2);
    assert_int_equal(rec2.created_us, op->created_us);
    assert_int_equal(rec2.updated_us, op->updated_us);
    assert_true(rec2.updated_us >= rec2.created_us);
    assert_int_equal(rec2.json_len, op->json_len);
    assert_memory_equal(rec2.json, op->json, op->json_len);
    store_read_end(rt);
    store_op_free(op);
}

static void render_empty_record(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "notes", "{}", &id));
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec;
    assert_ok(store_get(rt, "notes", &id, &rec));
    assert_int_equal(rec.json_len, 2);
    buf_t b = BUF_INIT;
    store_record_render(&b, &rec);
    json_t *r = json_parse(b.p, b.len);
    if (!r) fail_msg("not JSON: %s", b.p);
    assert_int_equal(json_object_size(r), 4);
    json_decref(r);
    json_t *fields = store_record_fields(&rec);
    assert_int_equal(json_object_size(fields), 0);
    json_decref(fields);
    buf_free(&b);
    store_read_end(rt);
}

static void not_found_and_count(void **state)
{
    fx_t *f = *state;
    kith_id_t a, missing;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"A\"}", &a));
    for (int i = 0; i < 4; i++)
        assert_ok(tu_create(f->st, "notes", "{\"text\":\"n\"}", NULL));
    id_new(&missing, 12345);
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_record_t rec;
    assert_int_equal(store_get(rt, "contacts", &missing, &rec), KITH_ENOTFOUND);
    char ids[ID_TEXT_LEN + 1];
    id_encode(&missing, ids);
    assert_non_null(strstr(err_last()->msg, ids));
    /* an id of one collection is not found in another */
    assert_int_equal(store_get(rt, "notes", &a, &rec), KITH_ENOTFOUND);
    assert_int_equal(store_get(rt, "nope", &a, &rec), KITH_ENOTFOUND);
    assert_non_null(strstr(err_last()->msg, "nope"));
    uint64_t n = 99;
    assert_ok(store_count(rt, "contacts", &n));
    assert_int_equal(n, 1);
    assert_ok(store_count(rt, "notes", &n));
    assert_int_equal(n, 4);
    assert_int_equal(store_count(rt, "nope", &n), KITH_ENOTFOUND);
    store_read_end(rt);
    /* a snapshot does not see later writes */
    assert_ok(store_read_begin(f->st, &rt));
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"B\"}", NULL));
    assert_ok(store_count(rt, "contacts", &n));
    assert_int_equal(n, 1);
    store_read_end(rt);
    assert_ok(store_read_begin(f->st, &rt));
    assert_ok(store_count(rt, "contacts", &n));
    assert_int_equal(n, 2);
    store_read_end(rt);
}

/* ---- damage on disk --------------------------------------------------- */

static uint32_t coll_id(store_t *st, const char *coll)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), coll);
    assert_non_null(c);
    uint32_t id = c->id;
    store_read_end(rt);
    return id;
}

static void rkey(uint8_t key[20], uint32_t cid, const kith_id_t *id)
{
    store_u32be(key, cid);
    memcpy(key + 4, id->b, ID_LEN);
}

typedef struct damage {
    uint8_t key[20];
    uint8_t to_key[20]; /* copy: where the value goes */
    const char *find;   /* flip the first byte of this text in the value */
    long off;           /* or flip this offset (when find is NULL), -1: none */
    size_t truncate;    /* or cut the value to this length (when > 0) */
    int copy;
} damage_t;

static int damage_fn(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    damage_t *d = ctx;
    MDB_val k = {20, d->key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc) return rc;
    uint8_t *copy = xmemdup(v.mv_data, v.mv_size);
    size_t len = v.mv_size;
    if (d->find) {
        uint8_t *p = memmem(copy, len, d->find, strlen(d->find));
        if (!p) {
            free(copy);
            return -1;
        }
        p[0] ^= 0x01;
    } else if (d->off >= 0) {
        copy[d->off] ^= 0x01;
    }
    if (d->truncate) len = d->truncate;
    MDB_val nk = {20, d->copy ? d->to_key : d->key}, nv = {len, copy};
    rc = mdb_put(txn, dbi, &nk, &nv, 0);
    free(copy);
    return rc;
}

static void expect_corrupt(store_t *st, const char *coll, const kith_id_t *id, const char *why)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    int rc = store_get(rt, coll, id, &rec);
    store_read_end(rt);
    if (rc != KITH_ECORRUPT) fail_msg("store_get: %d, want KITH_ECORRUPT", rc);
    char ids[ID_TEXT_LEN + 1];
    id_encode(id, ids);
    const char *msg = err_last()->msg;
    if (!strstr(msg, coll) || !strstr(msg, ids) || (why && !strstr(msg, why)))
        fail_msg("message '%s' should name %s, %s and '%s'", msg, coll, ids, why ? why : "");
}

static void expect_intact(store_t *st, const char *coll, const kith_id_t *id)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    assert_ok(store_get(rt, coll, id, &rec));
    store_read_end(rt);
}

static void flipped_payload_byte(void **state)
{
    fx_t *f = *state;
    kith_id_t a, b;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"Ada\",\"age\":36}", &a));
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"Bob\",\"age\":37}", &b));
    damage_t d = {.find = "Ada"}; /* 'A' -> '@': still valid JSON, wrong bytes */
    rkey(d.key, coll_id(f->st, "contacts"), &a);
    store_close(f->st);
    tu_raw_edit(f->dir, "records", damage_fn, &d);
    f->st = tu_store_reopen(f->dir, 0);
    expect_corrupt(f->st, "contacts", &a, "checksum");
    expect_intact(f->st, "contacts", &b);
    /* writes refuse to build on a damaged record */
    json_t *p = tu_json("{\"age\":1}");
    store_op_t *op = store_op_update("contacts", &a, p, 0);
    json_decref(p);
    assert_int_equal(store_exec(f->st, op), KITH_ECORRUPT);
    store_op_free(op);
    expect_corrupt(f->st, "contacts", &a, "checksum");
}

static void flipped_header_bytes(void **state)
{
    fx_t *f = *state;
    kith_id_t ids[5];
    for (int i = 0; i < 5; i++)
        assert_ok(tu_create(f->st, "contacts", "{\"first\":\"H\"}", &ids[i]));
    uint32_t cid = coll_id(f->st, "contacts");
    store_close(f->st);
    /* version, created, updated, the CRC itself, the format byte */
    long offs[] = {15, 16, 31, 4, 0};
    const char *why[] = {"checksum", "checksum", "checksum", "checksum", "format"};
    for (int i = 0; i < 5; i++) {
        damage_t d = {.off = offs[i]};
        rkey(d.key, cid, &ids[i]);
        tu_raw_edit(f->dir, "records", damage_fn, &d);
    }
    f->st = tu_store_reopen(f->dir, 0);
    for (int i = 0; i < 5; i++)
        expect_corrupt(f->st, "contacts", &ids[i], why[i]);
}

static void truncated_and_moved_records(void **state)
{
    fx_t *f = *state;
    kith_id_t a, b, c;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"A\"}", &a));
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"B\"}", &b));
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"C\"}", &c));
    uint32_t cid = coll_id(f->st, "contacts");
    uint32_t nid = coll_id(f->st, "notes");
    store_close(f->st);
    /* a header and a bit: truncated */
    damage_t d = {.off = -1, .truncate = 33};
    rkey(d.key, cid, &a);
    tu_raw_edit(f->dir, "records", damage_fn, &d);
    /* b's intact value copied over c's: the checksum covers the key */
    damage_t m = {.off = -1, .copy = 1};
    rkey(m.key, cid, &b);
    rkey(m.to_key, cid, &c);
    tu_raw_edit(f->dir, "records", damage_fn, &m);
    /* and under the same id in another collection */
    damage_t o = {.off = -1, .copy = 1};
    rkey(o.key, cid, &b);
    rkey(o.to_key, nid, &b);
    tu_raw_edit(f->dir, "records", damage_fn, &o);
    f->st = tu_store_reopen(f->dir, 0);
    expect_corrupt(f->st, "contacts", &a, "truncated");
    expect_intact(f->st, "contacts", &b);
    expect_corrupt(f->st, "contacts", &c, "checksum");
    expect_corrupt(f->st, "notes", &b, "checksum");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_render_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(render_empty_record, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(flipped_payload_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(flipped_header_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_and_moved_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
