/* Tests core/store/store_audit.c: the hash chain over batches that mix
 * audited writes, failed writes (no entry), reads that revealed data and
 * writes without an actor; dense sequence numbers; each entry naming its
 * action, record, the fields written and the sensitive fields revealed;
 * the chain verified by store_check, and a tampered entry found. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static const char *contacts = "{\"name\":\"contacts\",\"fields\":["
                              "{\"name\":\"name\",\"type\":\"string\",\"required\":true},"
                              "{\"name\":\"phone\",\"type\":\"phone\",\"sensitive\":true},"
                              "{\"name\":\"email\",\"type\":\"email\",\"sensitive\":true},"
                              "{\"name\":\"notes\",\"type\":\"object\"}]}";

typedef struct entries {
    json_t *list;
} entries_t;

static int collect(void *ctx, uint64_t seq, const char *json, size_t len)
{
    entries_t *e = ctx;
    json_t *v = json_parse(json, len);
    if (!v) fail_msg("audit entry %llu is not JSON: %.*s", (unsigned long long)seq, (int)len, json);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), (json_int_t)seq);
    json_array_append_new(e->list, v);
    return 0;
}

static json_t *audit_entries(store_t *st)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    entries_t e = {json_array()};
    assert_ok(store_audit_list(rt, 0, 100000, collect, &e));
    store_read_end(rt);
    return e.list;
}

static json_t *who(const char *actor, int reveal)
{
    json_t *w = json_pack("{s:s,s:s}", "actor", actor, "request", "req-1");
    if (reveal) json_object_set_new(w, "reveal", json_true());
    return w;
}

static store_op_t *create(const char *fields, const char *actor, int reveal)
{
    json_t *f = tu_json(fields);
    store_op_t *op = store_op_create("contacts", f);
    json_decref(f);
    if (actor) {
        json_t *w = who(actor, reveal);
        store_op_set_audit(op, w);
        json_decref(w);
    }
    return op;
}

/* Runs ops as one batch (the writer held at a gate while they queue). */
static void one_batch(store_t *st, store_op_t **ops, size_t n)
{
    tu_loop_t l;
    tu_loop_init(&l);
    tu_gate_t g;
    tu_gate_hold(st, &g);
    for (size_t i = 0; i < n; i++)
        tu_loop_submit(&l, st, ops[i], NULL);
    tu_gate_release(&g);
    tu_loop_finish(&l);
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void strings_equal(json_t *arr, const char *const *want, size_t n)
{
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(arr, i)), want[i]);
}

#define BATCH 48

static void chain_over_mixed_batches(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    tu_schema(st, contacts);
    json_t *before = audit_entries(st);
    size_t base = json_array_size(before); /* the schema op may be audited or not */
    json_decref(before);

    /* Three batches: every third op fails validation, every fourth is
     * written without an actor (no entry), some reveal, one is a read. */
    size_t want_entries = 0;
    int expect[3][BATCH]; /* 1: an entry; 2: an entry revealing phone */
    store_op_t *ops[3][BATCH];
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < BATCH; i++) {
            char fields[256];
            int fails = i % 3 == 1, anon = i % 4 == 3, reveal = i % 5 == 0;
            snprintf(fields, sizeof fields,
                     fails ? "{\"name\":\"x\",\"nosuch\":1}"
                           : "{\"notes\":{\"phone\":\"not a field\",\"s\":\"a\\\"}\"},"
                             "\"name\":\"Customer %d-%d\",\"phone\":\"+86 138 1234 5678\"}",
                     b, i);
            if (i == 7) {
                json_t *e = json_pack("{s:s,s:s,s:s,s:[s],s:[s]}", "actor", "reader", "request",
                                      "req-r", "collection", "contacts", "ids", "X", "fields",
                                      "phone");
                ops[b][i] = store_op_audit(e);
                json_decref(e);
                expect[b][i] = 1;
            } else {
                ops[b][i] = create(fields, anon ? NULL : "alice", reveal);
                expect[b][i] = fails || anon ? 0 : reveal ? 2 : 1;
            }
            want_entries += expect[b][i] != 0;
        }
        one_batch(st, ops[b], BATCH);
        for (int i = 0; i < BATCH; i++) {
            int fails = i % 3 == 1 && i != 7;
            if (fails)
                assert_int_not_equal(ops[b][i]->status, 0);
            else if (ops[b][i]->status)
                fail_msg("batch %d op %d: %s", b, i, tu_op_msg(ops[b][i]));
        }
    }

    json_t *all = audit_entries(st);
    assert_int_equal(json_array_size(all), base + want_entries);
    /* dense, chained (store_check recomputes the hashes), each naming what
     * happened */
    size_t k = base;
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < BATCH; i++) {
            if (!expect[b][i]) continue;
            json_t *e = json_array_get(all, k++);
            assert_int_equal(json_integer_value(json_object_get(e, "seq")), (json_int_t)k);
            assert_int_equal(strspn(str(e, "prev"), "0123456789abcdef"), 64);
            assert_string_equal(str(e, "collection"), "contacts");
            if (i == 7) {
                assert_string_equal(str(e, "action"), "read");
                assert_string_equal(str(e, "actor"), "reader");
                strings_equal(json_object_get(e, "ids"), (const char *[]){"X"}, 1);
                continue;
            }
            assert_string_equal(str(e, "action"), "create");
            assert_string_equal(str(e, "actor"), "alice");
            assert_string_equal(str(e, "request"), "req-1");
            char id[ID_TEXT_LEN + 1];
            id_encode(&ops[b][i]->rid, id);
            strings_equal(json_object_get(e, "ids"), (const char *[]){id}, 1);
            strings_equal(json_object_get(e, "fields"), (const char *[]){"notes", "name", "phone"},
                          3);
            json_t *rev = json_object_get(e, "revealed");
            if (expect[b][i] == 2)
                strings_equal(rev, (const char *[]){"phone"}, 1); /* not the key inside notes */
            else
                assert_null(rev);
        }
    }
    json_decref(all);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < BATCH; i++)
            store_op_free(ops[b][i]);

    /* store_check walks the whole chain */
    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    if (rep.problems) fail_msg("store_check: %s", problems);
    free(problems);
    assert_int_equal(rep.audit_entries, base + want_entries);
    tu_store_close(st, dir);
}

static store_op_t *create_as(const char *fields, json_t *w)
{
    json_t *f = tu_json(fields);
    store_op_t *op = store_op_create("contacts", f);
    json_decref(f);
    store_op_set_audit(op, w);
    return op;
}

static void entry_is(json_t *e, const char *action, const char *actor, store_op_t **ops,
                     size_t nids, const char *const *fields, size_t nfields)
{
    assert_string_equal(str(e, "action"), action);
    assert_string_equal(str(e, "actor"), actor);
    char ids[8][ID_TEXT_LEN + 1];
    const char *want[8];
    for (size_t i = 0; i < nids; i++) {
        id_encode(&ops[i]->rid, ids[i]);
        want[i] = ids[i];
    }
    strings_equal(json_object_get(e, "ids"), want, nids);
    strings_equal(json_object_get(e, "fields"), fields, nfields);
}

/* One request's consecutive writes in a batch (an import's rows: one `who`
 * for all) share one entry: the ids that committed, in order, and the union
 * of the fields written. Another request's write, or another action, ends
 * the run, and the entries keep the order of the writes. */
static void one_request_one_entry_per_run(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    tu_schema(st, contacts);
    json_t *bulk = who("bulk", 0), *carol = who("carol", 0);
    store_op_t *pre = create_as("{\"name\":\"pre\"}", carol);
    assert_int_equal(store_exec(st, pre), 0);
    json_t *before = audit_entries(st);
    size_t base = json_array_size(before);
    json_decref(before);

    json_t *patch = tu_json("{\"phone\":\"+41 44 668 18 00\"}");
    store_op_t *ops[9] = {
        create_as("{\"name\":\"a\"}", bulk),
        create_as("{\"name\":\"b\",\"phone\":\"+41 44 668 18 00\"}", bulk),
        create_as("{\"name\":\"c\",\"nosuch\":1}", bulk), /* fails: no entry */
        create_as("{\"phone\":\"+41 44 668 18 01\",\"name\":\"d\"}", bulk),
        create_as("{\"name\":\"e\"}", carol), /* another request */
        create_as("{\"name\":\"f\"}", bulk),
        create_as("{\"name\":\"g\"}", bulk),
        store_op_update("contacts", &pre->rid, patch, 0), /* another action */
        create_as("{\"name\":\"h\"}", bulk),
    };
    json_decref(patch);
    store_op_set_audit(ops[7], bulk);
    one_batch(st, ops, 9);
    for (int i = 0; i < 9; i++)
        if (i == 2)
            assert_int_not_equal(ops[i]->status, 0);
        else if (ops[i]->status)
            fail_msg("op %d: %s", i, tu_op_msg(ops[i]));

    json_t *all = audit_entries(st);
    assert_int_equal(json_array_size(all), base + 5);
    const char *name[] = {"name"}, *name_phone[] = {"name", "phone"}, *phone[] = {"phone"};
    entry_is(json_array_get(all, base), "create", "bulk", (store_op_t *[]){ops[0], ops[1], ops[3]},
             3, name_phone, 2);
    entry_is(json_array_get(all, base + 1), "create", "carol", &ops[4], 1, name, 1);
    entry_is(json_array_get(all, base + 2), "create", "bulk", &ops[5], 2, name, 1);
    entry_is(json_array_get(all, base + 3), "update", "bulk", &pre, 1, phone, 1);
    entry_is(json_array_get(all, base + 4), "create", "bulk", &ops[8], 1, name, 1);
    json_decref(all);
    for (int i = 0; i < 9; i++)
        store_op_free(ops[i]);
    store_op_free(pre);
    json_decref(bulk);
    json_decref(carol);

    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    if (rep.problems) fail_msg("store_check: %s", problems);
    free(problems);
    assert_int_equal(rep.audit_entries, base + 5);
    tu_store_close(st, dir);
}

/* Rewrites one byte of entry 2's body: the chain no longer verifies. */
static int tamper(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    (void)ctx;
    uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 2};
    MDB_val k = {8, key}, d;
    assert_int_equal(mdb_get(txn, dbi, &k, &d), 0);
    char *copy = malloc(d.mv_size);
    memcpy(copy, d.mv_data, d.mv_size);
    char *p = strstr(copy + 64, "alice");
    assert_non_null(p);
    p[0] = 'A';
    MDB_val nd = {d.mv_size, copy};
    int rc = mdb_put(txn, dbi, &k, &nd, 0);
    free(copy);
    return rc;
}

static void tampering_is_found(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    tu_schema(st, contacts);
    store_op_t *ops[4];
    for (int i = 0; i < 4; i++)
        ops[i] = create("{\"name\":\"n\"}", "alice", 0);
    one_batch(st, ops, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ops[i]->status, 0);
        store_op_free(ops[i]);
    }
    store_close(st);
    tu_raw_edit(dir, "audit", tamper, NULL);
    st = tu_store_reopen(dir, 0);
    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    assert_true(rep.problems > 0);
    assert_non_null(strstr(problems, "audit"));
    free(problems);
    tu_store_close(st, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_over_mixed_batches),
        cmocka_unit_test(one_request_one_entry_per_run),
        cmocka_unit_test(tampering_is_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
