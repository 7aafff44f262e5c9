/* Tests core/store/store_idem.c: an idempotency key replays the first result
 * and writes nothing; the same key with another request is a conflict; keys
 * survive a reopen; failed ops do not consume keys; key length limits. */
#include "testutil.h"

#include "base/mem.h"

#include <stdio.h>
#include <string.h>

static const char *contacts = "{\"name\":\"contacts\",\"fields\":["
                              "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
                              "{\"name\":\"first\",\"type\":\"string\",\"required\":true},"
                              "{\"name\":\"age\",\"type\":\"int\"}]}";

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

/* What the store holds, to prove a replay wrote nothing. */
typedef struct snap {
    uint64_t records;
    uint64_t last_seq;
    uint64_t idem_keys;
} snap_t;

static snap_t snap(store_t *st)
{
    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    if (rep.problems) fail_msg("store_check: %s", problems);
    free(problems);
    snap_t s = {rep.records, rep.last_seq, rep.idem_keys};
    return s;
}

static void assert_snap_equal(snap_t a, snap_t b)
{
    assert_int_equal(a.records, b.records);
    assert_int_equal(a.last_seq, b.last_seq);
    assert_int_equal(a.idem_keys, b.idem_keys);
}

/* Runs a create with a key; the caller frees the op. */
static store_op_t *create_keyed(store_t *st, const char *key, const char *fields, int *rc)
{
    json_t *j = tu_json(fields);
    store_op_t *op = store_op_create("contacts", j);
    json_decref(j);
    if (key) store_op_set_idem(op, key);
    *rc = store_exec(st, op);
    return op;
}

static uint64_t version_of(store_t *st, const kith_id_t *id)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    uint64_t v = 0;
    if (store_get(rt, "contacts", id, &rec) == 0) v = rec.version;
    store_read_end(rt);
    return v;
}

static void assert_same_result(const store_op_t *a, const store_op_t *b)
{
    assert_memory_equal(a->rid.b, b->rid.b, ID_LEN);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->created_us, b->created_us);
    assert_int_equal(a->updated_us, b->updated_us);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->json_len, b->json_len);
    assert_memory_equal(a->json, b->json, a->json_len);
}

static void repeat_replays_first_result(void **state)
{
    fx_t *f = *state;
    int rc;
    store_op_t *first = create_keyed(f->st, "k-1", "{\"first\":\"Ada\",\"email\":\"a@x.io\"}", &rc);
    assert_ok(rc);
    assert_false(first->idem_replayed);
    snap_t s0 = snap(f->st);
    assert_int_equal(s0.records, 1);
    assert_int_equal(s0.idem_keys, 1);

    store_op_t *again = create_keyed(f->st, "k-1", "{\"first\":\"Ada\",\"email\":\"a@x.io\"}", &rc);
    assert_ok(rc); /* not KITH_EEXIST from the unique e-mail: nothing ran */
    assert_int_equal(again->idem_replayed, 1);
    assert_same_result(first, again);
    assert_snap_equal(snap(f->st), s0);

    /* the same request with its keys in another order is the same request */
    store_op_t *reordered =
        create_keyed(f->st, "k-1", "{\"email\":\"a@x.io\",\"first\":\"Ada\"}", &rc);
    assert_ok(rc);
    assert_int_equal(reordered->idem_replayed, 1);
    assert_same_result(first, reordered);
    assert_snap_equal(snap(f->st), s0);
    store_op_free(first);
    store_op_free(again);
    store_op_free(reordered);
}

static void same_key_other_request_conflicts(void **state)
{
    fx_t *f = *state;
    int rc;
    store_op_t *first = create_keyed(f->st, "k-2", "{\"first\":\"Bo\"}", &rc);
    assert_ok(rc);
    snap_t s0 = snap(f->st);

    store_op_t *other = create_keyed(f->st, "k-2", "{\"first\":\"Bob\"}", &rc);
    assert_int_equal(rc, KITH_ECONFLICT);
    assert_int_equal(err_last()->code, KITH_ECONFLICT);
    assert_non_null(strstr(err_last()->msg, "k-2"));
    assert_false(other->idem_replayed);
    store_op_free(other);

    /* another op kind, collection or expected version is another request too */
    json_t *p = tu_json("{\"first\":\"Bo\"}");
    store_op_t *up = store_op_update("contacts", &first->rid, p, 0);
    store_op_set_idem(up, "k-2");
    assert_int_equal(store_exec(f->st, up), KITH_ECONFLICT);
    store_op_free(up);
    up = store_op_update("contacts", &first->rid, p, 1);
    store_op_set_idem(up, "k-2");
    assert_int_equal(store_exec(f->st, up), KITH_ECONFLICT);
    store_op_free(up);
    json_decref(p);
    store_op_t *del = store_op_delete("contacts", &first->rid, 0);
    store_op_set_idem(del, "k-2");
    assert_int_equal(store_exec(f->st, del), KITH_ECONFLICT);
    store_op_free(del);
    tu_schema(f->st, "{\"name\":\"others\",\"fields\":[{\"name\":\"first\",\"type\":\"string\"}]}");
    p = tu_json("{\"first\":\"Bo\"}");
    store_op_t *elsewhere = store_op_create("others", p);
    json_decref(p);
    store_op_set_idem(elsewhere, "k-2");
    assert_int_equal(store_exec(f->st, elsewhere), KITH_ECONFLICT);
    store_op_free(elsewhere);

    assert_snap_equal(snap(f->st), s0);
    assert_int_equal(version_of(f->st, &first->rid), 1);
    store_op_free(first);
}

static void different_keys_write_twice(void **state)
{
    fx_t *f = *state;
    int rc;
    store_op_t *a = create_keyed(f->st, "k-a", "{\"first\":\"Cy\"}", &rc);
    assert_ok(rc);
    store_op_t *b = create_keyed(f->st, "k-b", "{\"first\":\"Cy\"}", &rc);
    assert_ok(rc);
    assert_false(b->idem_replayed);
    assert_memory_not_equal(a->rid.b, b->rid.b, ID_LEN);
    assert_int_equal(b->seq, a->seq + 1);
    /* and no key at all writes every time */
    store_op_t *c = create_keyed(f->st, NULL, "{\"first\":\"Cy\"}", &rc);
    assert_ok(rc);
    snap_t s = snap(f->st);
    assert_int_equal(s.records, 3);
    assert_int_equal(s.idem_keys, 2);
    /* keys are exact byte strings */
    store_op_t *d = create_keyed(f->st, "K-A", "{\"first\":\"Cy\"}", &rc);
    assert_ok(rc);
    assert_false(d->idem_replayed);
    store_op_free(a);
    store_op_free(b);
    store_op_free(c);
    store_op_free(d);
}

static void key_survives_reopen(void **state)
{
    fx_t *f = *state;
    int rc;
    store_op_t *first = create_keyed(f->st, "k-persist", "{\"first\":\"Di\",\"age\":4}", &rc);
    assert_ok(rc);
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 0);
    snap_t s0 = snap(f->st);
    store_op_t *again = create_keyed(f->st, "k-persist", "{\"first\":\"Di\",\"age\":4}", &rc);
    assert_ok(rc);
    assert_int_equal(again->idem_replayed, 1);
    assert_same_result(first, again);
    assert_snap_equal(snap(f->st), s0);
    store_op_t *other = create_keyed(f->st, "k-persist", "{\"first\":\"Di\",\"age\":5}", &rc);
    assert_int_equal(rc, KITH_ECONFLICT);
    store_op_free(first);
    store_op_free(again);
    store_op_free(other);

    /* also without a writer thread (the CLI) */
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 1);
    again = create_keyed(f->st, "k-persist", "{\"first\":\"Di\",\"age\":4}", &rc);
    assert_ok(rc);
    assert_int_equal(again->idem_replayed, 1);
    store_op_free(again);
    assert_snap_equal(snap(f->st), s0);
}

static void failed_op_keeps_key_free(void **state)
{
    fx_t *f = *state;
    int rc;
    snap_t s0 = snap(f->st);
    /* validation failure */
    store_op_t *bad = create_keyed(f->st, "k-f", "{\"first\":3}", &rc);
    assert_int_equal(rc, KITH_EVALIDATION);
    assert_false(bad->idem_replayed);
    store_op_free(bad);
    assert_snap_equal(snap(f->st), s0);
    /* the same failing request fails again the same way (not replayed) */
    bad = create_keyed(f->st, "k-f", "{\"first\":3}", &rc);
    assert_int_equal(rc, KITH_EVALIDATION);
    store_op_free(bad);
    /* a unique conflict does not consume it either */
    store_op_t *x = create_keyed(f->st, NULL, "{\"first\":\"X\",\"email\":\"x@x.io\"}", &rc);
    assert_ok(rc);
    store_op_free(x);
    s0 = snap(f->st);
    bad = create_keyed(f->st, "k-f", "{\"first\":\"Y\",\"email\":\"X@x.io\"}", &rc);
    assert_int_equal(rc, KITH_EEXIST);
    store_op_free(bad);
    assert_snap_equal(snap(f->st), s0);
    /* then the key serves a different, valid request */
    store_op_t *good = create_keyed(f->st, "k-f", "{\"first\":\"Ok\"}", &rc);
    assert_ok(rc);
    assert_false(good->idem_replayed);
    store_op_t *again = create_keyed(f->st, "k-f", "{\"first\":\"Ok\"}", &rc);
    assert_ok(rc);
    assert_true(again->idem_replayed);
    assert_same_result(good, again);
    store_op_free(good);
    store_op_free(again);
}

static void update_and_delete_with_keys(void **state)
{
    fx_t *f = *state;
    int rc;
    store_op_t *c = create_keyed(f->st, NULL, "{\"first\":\"Ed\",\"age\":1}", &rc);
    assert_ok(rc);
    kith_id_t id = c->rid;
    store_op_free(c);

    json_t *p = tu_json("{\"age\":2}");
    store_op_t *up = store_op_update("contacts", &id, p, 1);
    store_op_set_idem(up, "k-up");
    assert_ok(store_exec(f->st, up));
    assert_int_equal(up->version, 2);
    snap_t s0 = snap(f->st);
    /* the retry would be a stale-version conflict if it ran: it must replay */
    store_op_t *up2 = store_op_update("contacts", &id, p, 1);
    store_op_set_idem(up2, "k-up");
    assert_ok(store_exec(f->st, up2));
    assert_true(up2->idem_replayed);
    assert_same_result(up, up2);
    assert_snap_equal(snap(f->st), s0);
    assert_int_equal(version_of(f->st, &id), 2);
    json_decref(p);
    store_op_free(up);
    store_op_free(up2);

    store_op_t *del = store_op_delete("contacts", &id, 2);
    store_op_set_idem(del, "k-del");
    assert_ok(store_exec(f->st, del));
    s0 = snap(f->st);
    assert_int_equal(s0.records, 0);
    /* the retry would be KITH_ENOTFOUND if it ran */
    store_op_t *del2 = store_op_delete("contacts", &id, 2);
    store_op_set_idem(del2, "k-del");
    assert_ok(store_exec(f->st, del2));
    assert_true(del2->idem_replayed);
    assert_same_result(del, del2);
    assert_snap_equal(snap(f->st), s0);
    store_op_free(del);
    store_op_free(del2);
}

/* Regression: an update that changed nothing did not store its key, so the
 * same key could later be used for a different request. */
static void noop_update_uses_its_key(void **state)
{
    fx_t *f = *state;
    kith_id_t id;
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"Fay\",\"age\":1}", &id));
    json_t *same = tu_json("{\"age\":1}");
    store_op_t *a = store_op_update("contacts", &id, same, 0);
    store_op_set_idem(a, "k-noop");
    assert_ok(store_exec(f->st, a));
    assert_true(a->nochange);
    json_t *other = tu_json("{\"age\":5}");
    store_op_t *b = store_op_update("contacts", &id, other, 0);
    store_op_set_idem(b, "k-noop");
    assert_int_equal(store_exec(f->st, b), KITH_ECONFLICT);
    assert_int_equal(version_of(f->st, &id), 1);
    json_decref(same);
    json_decref(other);
    store_op_free(a);
    store_op_free(b);
}

static void key_length_limits(void **state)
{
    fx_t *f = *state;
    char key[300];
    memset(key, 'k', sizeof key);
    int rc;
    snap_t s0 = snap(f->st);
    key[256] = '\0';
    store_op_t *op = create_keyed(f->st, key, "{\"first\":\"Fa\"}", &rc);
    assert_int_equal(rc, KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "idempotency key"));
    store_op_free(op);
    op = create_keyed(f->st, "", "{\"first\":\"Fa\"}", &rc);
    assert_int_equal(rc, KITH_EINVAL);
    store_op_free(op);
    assert_snap_equal(snap(f->st), s0);
    /* 255 bytes is the longest key, and works */
    key[255] = '\0';
    op = create_keyed(f->st, key, "{\"first\":\"Fa\"}", &rc);
    assert_ok(rc);
    store_op_t *again = create_keyed(f->st, key, "{\"first\":\"Fa\"}", &rc);
    assert_ok(rc);
    assert_true(again->idem_replayed);
    assert_same_result(op, again);
    store_op_free(op);
    store_op_free(again);
    /* a prefix of a stored key is another key */
    key[254] = '\0';
    op = create_keyed(f->st, key, "{\"first\":\"Fa\"}", &rc);
    assert_ok(rc);
    assert_false(op->idem_replayed);
    store_op_free(op);
    assert_int_equal(snap(f->st).records, 2);
}

/* The fingerprint covers every input of an op, also the field of a field op
 * and the consumer and position of a cursor op. */
static void fingerprint_covers_field_and_cursor(void **state)
{
    fx_t *f = *state;
    json_t *def = tu_json("{\"type\":\"int\"}");
    store_op_t *a = store_op_field("contacts", "rank", def);
    store_op_set_idem(a, "k-field");
    assert_ok(store_exec(f->st, a));
    store_op_t *again = store_op_field("contacts", "rank", def);
    store_op_set_idem(again, "k-field");
    assert_ok(store_exec(f->st, again));
    assert_true(again->idem_replayed);
    store_op_t *b = store_op_field("contacts", "level", def);
    store_op_set_idem(b, "k-field");
    assert_int_equal(store_exec(f->st, b), KITH_ECONFLICT);
    json_decref(def);
    store_op_free(a);
    store_op_free(again);
    store_op_free(b);

    for (int i = 0; i < 3; i++) {
        int rc;
        store_op_free(create_keyed(f->st, NULL, "{\"first\":\"Cu\"}", &rc));
        assert_ok(rc);
    }
    store_op_t *c = store_op_cursor_set("hooks", 1);
    store_op_set_idem(c, "k-cursor");
    assert_ok(store_exec(f->st, c));
    store_op_free(c);
    c = store_op_cursor_set("hooks", 2);
    store_op_set_idem(c, "k-cursor");
    assert_int_equal(store_exec(f->st, c), KITH_ECONFLICT);
    store_op_free(c);
    c = store_op_cursor_set("other", 1);
    store_op_set_idem(c, "k-cursor");
    assert_int_equal(store_exec(f->st, c), KITH_ECONFLICT);
    store_op_free(c);
    c = store_op_cursor_set("hooks", 1);
    store_op_set_idem(c, "k-cursor");
    assert_ok(store_exec(f->st, c));
    assert_true(c->idem_replayed);
    store_op_free(c);
}

/* Two ops with one key in the same batch: the second sees the first's key. */
static void same_key_in_one_batch(void **state)
{
    fx_t *f = *state;
    store_op_t *ops[3];
    int done[3] = {0};
    const char *bodies[] = {"{\"first\":\"Gu\"}", "{\"first\":\"Gu\"}", "{\"first\":\"Gus\"}"};
    for (int i = 0; i < 3; i++) {
        json_t *j = tu_json(bodies[i]);
        ops[i] = store_op_create("contacts", j);
        json_decref(j);
        store_op_set_idem(ops[i], "k-batch");
    }
    tu_loop_t l;
    tu_loop_init(&l);
    tu_gate_t g;
    tu_gate_hold(f->st, &g);
    for (int i = 0; i < 3; i++)
        tu_loop_submit(&l, f->st, ops[i], &done[i]);
    tu_gate_release(&g);
    tu_loop_finish(&l);
    store_stats_t s;
    store_stats_get(f->st, &s);
    assert_int_equal(s.batch_max, 3);
    assert_int_equal(ops[0]->status, 0);
    assert_false(ops[0]->idem_replayed);
    assert_int_equal(ops[1]->status, 0);
    assert_true(ops[1]->idem_replayed);
    assert_same_result(ops[0], ops[1]);
    assert_int_equal(ops[2]->status, KITH_ECONFLICT);
    assert_int_equal(snap(f->st).records, 1);
    for (int i = 0; i < 3; i++)
        store_op_free(ops[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(repeat_replays_first_result, setup, teardown),
        cmocka_unit_test_setup_teardown(same_key_other_request_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(different_keys_write_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(key_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_op_keeps_key_free, setup, teardown),
        cmocka_unit_test_setup_teardown(update_and_delete_with_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(noop_update_uses_its_key, setup, teardown),
        cmocka_unit_test_setup_teardown(key_length_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(fingerprint_covers_field_and_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(same_key_in_one_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
