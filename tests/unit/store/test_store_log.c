/* Tests core/store/store_log.c: one change-log entry per create, update and
 * delete, in order, with the changed fields and the previous values; no entry
 * for no-op or failed writes; replay from any sequence; durable consumer
 * cursors; the JSON rendering of a change. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>

static const char *contacts =
    "{\"name\":\"contacts\",\"fields\":["
    "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
    "{\"name\":\"first\",\"type\":\"string\",\"required\":true},"
    "{\"name\":\"age\",\"type\":\"int\"},"
    "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\",\"indexed\":true},"
    "{\"name\":\"meta\",\"type\":\"object\"},"
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

/* A copy of one change, outliving the callback. */
typedef struct change {
    uint64_t seq;
    int64_t time_us;
    int op;
    char coll[STORE_NAME_MAX];
    kith_id_t id;
    uint64_t version;
    char changed[512]; /* names joined by ',' */
    json_t *before;    /* NULL if none */
    char *rendered;
} change_t;

typedef struct changes {
    change_t *v;
    size_t n, cap;
    size_t stop_after; /* 0 = never: else the callback returns KITH_EBUSY */
} changes_t;

static int collect(void *ctx, const store_change_t *ch)
{
    changes_t *c = ctx;
    if (c->stop_after && c->n == c->stop_after) return KITH_EBUSY;
    if (c->n == c->cap) c->v = xrealloc(c->v, (c->cap = c->cap ? c->cap * 2 : 16) * sizeof *c->v);
    change_t *x = &c->v[c->n++];
    memset(x, 0, sizeof *x);
    x->seq = ch->seq;
    x->time_us = ch->time_us;
    x->op = ch->op;
    snprintf(x->coll, sizeof x->coll, "%s", ch->coll);
    x->id = ch->id;
    x->version = ch->version;
    for (size_t i = 0; i < ch->nchanged; i++) {
        if (i) strcat(x->changed, ",");
        strcat(x->changed, ch->changed[i]);
    }
    if (ch->before) {
        x->before = json_parse(ch->before, ch->before_len);
        if (!x->before) x->before = json_string("<not JSON>");
    }
    buf_t b = BUF_INIT;
    store_change_render(&b, ch);
    x->rendered = buf_steal(&b, NULL);
    return 0;
}

static void changes_free(changes_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].before) json_decref(c->v[i].before);
        free(c->v[i].rendered);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

static changes_t read_changes(store_t *st, uint64_t after, size_t limit)
{
    changes_t c = {0};
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_changes(rt, after, limit, collect, &c));
    store_read_end(rt);
    return c;
}

static uint64_t last_seq(store_t *st)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    uint64_t s = store_changes_last(rt);
    store_read_end(rt);
    return s;
}

static store_op_t *run(store_t *st, store_op_t *op, int want)
{
    int rc = store_exec(st, op);
    if (rc != want) fail_msg("op kind %d: %d (%s), want %d", op->kind, rc, err_last()->msg, want);
    return op;
}

static store_op_t *create(store_t *st, const char *fields)
{
    json_t *j = tu_json(fields);
    store_op_t *op = store_op_create("contacts", j);
    json_decref(j);
    return run(st, op, 0);
}

static store_op_t *update(store_t *st, const kith_id_t *id, const char *patch, int want)
{
    json_t *j = tu_json(patch);
    store_op_t *op = store_op_update("contacts", id, j, 0);
    json_decref(j);
    return run(st, op, want);
}

static void assert_json(const json_t *got, const char *want)
{
    json_t *w = tu_json(want);
    if (!got || !json_equal((json_t *)got, w)) {
        char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
        fail_msg("got %s, want %s", g ? g : "NULL", want);
    }
    json_decref(w);
}

static void one_entry_per_write(void **state)
{
    fx_t *f = *state;
    assert_int_equal(last_seq(f->st), 0);

    store_op_t *c = create(f->st, "{\"first\":\"Ada\",\"age\":36,\"tags\":[\"a\"]}");
    kith_id_t id = c->rid;
    assert_int_equal(c->seq, 1);
    changes_t ch = read_changes(f->st, 0, 0);
    assert_int_equal(ch.n, 1);
    assert_int_equal(ch.v[0].seq, 1);
    assert_int_equal(ch.v[0].op, STORE_CHANGE_CREATE);
    assert_string_equal(ch.v[0].coll, "contacts");
    assert_memory_equal(ch.v[0].id.b, id.b, ID_LEN);
    assert_int_equal(ch.v[0].version, 1);
    /* a create touches every stored field (defaults included), in schema order */
    assert_string_equal(ch.v[0].changed, "first,age,tags,stage");
    assert_null(ch.v[0].before);
    assert_int_equal(ch.v[0].time_us, c->updated_us);
    changes_free(&ch);
    store_op_free(c);

    /* update: only the fields that changed; previous values, null if absent */
    store_op_t *u = update(f->st, &id,
                           "{\"first\":\"Ada\",\"age\":37,\"email\":\"ada@x.io\",\"tags\":[\"a\"],"
                           "\"meta\":{\"k\":1}}",
                           0);
    assert_int_equal(u->seq, 2);
    ch = read_changes(f->st, 1, 0);
    assert_int_equal(ch.n, 1);
    assert_int_equal(ch.v[0].op, STORE_CHANGE_UPDATE);
    assert_int_equal(ch.v[0].version, 2);
    assert_string_equal(ch.v[0].changed, "email,age,meta");
    assert_json(ch.v[0].before, "{\"email\":null,\"age\":36,\"meta\":null}");
    assert_int_equal(ch.v[0].time_us, u->updated_us);
    changes_free(&ch);
    store_op_free(u);

    /* removing a field and changing inside an object */
    u = update(f->st, &id, "{\"age\":null,\"meta\":{\"k\":2},\"stage\":\"customer\"}", 0);
    ch = read_changes(f->st, 2, 0);
    assert_int_equal(ch.n, 1);
    assert_string_equal(ch.v[0].changed, "age,meta,stage");
    assert_json(ch.v[0].before, "{\"age\":37,\"meta\":{\"k\":1},\"stage\":\"lead\"}");
    assert_int_equal(ch.v[0].version, 3);
    changes_free(&ch);
    store_op_free(u);

    /* replace: fields it drops count as changed */
    json_t *j = tu_json("{\"first\":\"Adah\",\"email\":\"ada@x.io\"}");
    store_op_t *r = run(f->st, store_op_replace("contacts", &id, j, 0), 0);
    json_decref(j);
    ch = read_changes(f->st, 3, 0);
    assert_int_equal(ch.n, 1);
    assert_int_equal(ch.v[0].op, STORE_CHANGE_UPDATE);
    assert_string_equal(ch.v[0].changed, "first,tags,meta,stage");
    assert_json(ch.v[0].before,
                "{\"first\":\"Ada\",\"tags\":[\"a\"],\"meta\":{\"k\":2},\"stage\":\"customer\"}");
    changes_free(&ch);
    store_op_free(r);

    /* delete: the whole record as it was */
    store_op_t *d = run(f->st, store_op_delete("contacts", &id, 0), 0);
    assert_int_equal(d->seq, 5);
    ch = read_changes(f->st, 4, 0);
    assert_int_equal(ch.n, 1);
    assert_int_equal(ch.v[0].op, STORE_CHANGE_DELETE);
    assert_int_equal(ch.v[0].version, 4);
    assert_memory_equal(ch.v[0].id.b, id.b, ID_LEN);
    assert_string_equal(ch.v[0].changed, "email,first");
    assert_json(ch.v[0].before, "{\"email\":\"ada@x.io\",\"first\":\"Adah\"}");
    changes_free(&ch);
    store_op_free(d);
    assert_int_equal(last_seq(f->st), 5);

    /* the whole log in order */
    ch = read_changes(f->st, 0, 0);
    assert_int_equal(ch.n, 5);
    for (size_t i = 0; i < ch.n; i++) {
        assert_int_equal(ch.v[i].seq, i + 1);
        if (i) assert_true(ch.v[i].time_us >= ch.v[i - 1].time_us);
    }
    changes_free(&ch);
}

static void nothing_logged_without_a_change(void **state)
{
    fx_t *f = *state;
    store_op_t *c =
        create(f->st, "{\"first\":\"Bo\",\"email\":\"bo@x.io\",\"tags\":[\"x\",\"y\"]}");
    kith_id_t id = c->rid;
    store_op_free(c);
    uint64_t s0 = last_seq(f->st);

    /* no-op updates: same values, a null for an absent field, an empty patch,
     * a replace with what is stored */
    store_op_t *u = update(f->st, &id, "{\"first\":\"Bo\",\"age\":null,\"tags\":[\"x\",\"y\"]}", 0);
    assert_true(u->nochange);
    assert_int_equal(u->seq, 0);
    assert_int_equal(u->version, 1);
    store_op_free(u);
    u = update(f->st, &id, "{}", 0);
    assert_true(u->nochange);
    store_op_free(u);
    json_t *j = tu_json("{\"first\":\"Bo\",\"email\":\"bo@x.io\",\"tags\":[\"x\",\"y\"],"
                        "\"stage\":\"lead\"}");
    store_op_t *r = run(f->st, store_op_replace("contacts", &id, j, 0), 0);
    json_decref(j);
    assert_true(r->nochange);
    store_op_free(r);
    assert_int_equal(last_seq(f->st), s0);

    /* failed writes */
    u = update(f->st, &id, "{\"age\":\"x\"}", KITH_EVALIDATION);
    store_op_free(u);
    j = tu_json("{\"age\":1}");
    u = run(f->st, store_op_update("contacts", &id, j, 9), KITH_ECONFLICT);
    json_decref(j);
    store_op_free(u);
    kith_id_t missing;
    id_new(&missing, 1);
    store_op_free(run(f->st, store_op_delete("contacts", &missing, 0), KITH_ENOTFOUND));
    j = tu_json("{\"first\":\"Dup\",\"email\":\"BO@X.IO\"}");
    store_op_free(run(f->st, store_op_create("contacts", j), KITH_EEXIST));
    json_decref(j);
    assert_int_equal(last_seq(f->st), s0);
    changes_t ch = read_changes(f->st, s0, 0);
    assert_int_equal(ch.n, 0);
    changes_free(&ch);

    /* schema changes and cursors are not record changes */
    tu_schema(f->st, "{\"name\":\"other\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}");
    store_op_free(run(f->st, store_op_cursor_set("c", s0), 0));
    assert_int_equal(last_seq(f->st), s0);
}

static void replay_from_any_seq(void **state)
{
    fx_t *f = *state;
    enum { N = 60 };
    uint64_t seqs[N];
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"first\":\"R%d\",\"age\":%d}", i, i);
        store_op_t *c = create(f->st, text);
        seqs[i] = c->seq;
        if (i % 3 == 0) {
            store_op_free(update(f->st, &c->rid, "{\"age\":-1}", 0));
        }
        store_op_free(c);
    }
    uint64_t last = last_seq(f->st);
    assert_int_equal(last, N + N / 3);
    assert_int_equal(seqs[N - 1], last - 0); /* the last op was a create (59 % 3 != 0) */
    changes_t all = read_changes(f->st, 0, 0);
    assert_int_equal(all.n, last);
    for (uint64_t after = 0; after <= last + 2; after++) {
        changes_t c = read_changes(f->st, after, 0);
        assert_int_equal(c.n, after >= last ? 0 : last - after);
        for (size_t i = 0; i < c.n; i++) {
            assert_int_equal(c.v[i].seq, after + 1 + i);
            assert_string_equal(c.v[i].rendered, all.v[after + i].rendered);
        }
        changes_free(&c);
        for (size_t limit = 1; limit <= 4; limit++) {
            c = read_changes(f->st, after, limit);
            size_t want = after >= last ? 0 : last - after;
            if (want > limit) want = limit;
            assert_int_equal(c.n, want);
            if (c.n) assert_int_equal(c.v[0].seq, after + 1);
            changes_free(&c);
        }
    }
    changes_free(&all);
    /* the largest sequence is past the end too (after + 1 must not wrap) */
    changes_t none = read_changes(f->st, UINT64_MAX, 0);
    assert_int_equal(none.n, 0);
    changes_free(&none);
    /* a callback's error stops the walk and is returned */
    changes_t c = {.stop_after = 3};
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    assert_int_equal(store_changes(rt, 0, 0, collect, &c), KITH_EBUSY);
    store_read_end(rt);
    assert_int_equal(c.n, 3);
    changes_free(&c);
}

static int set_cursor(store_t *st, const char *consumer, uint64_t seq)
{
    store_op_t *op = store_op_cursor_set(consumer, seq);
    int rc = store_exec(st, op);
    store_op_free(op);
    return rc;
}

static void consumer_cursors(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 5; i++)
        store_op_free(create(f->st, "{\"first\":\"C\"}"));
    assert_int_equal(tu_cursor(f->st, "webhooks"), 0); /* never saved */
    assert_ok(set_cursor(f->st, "webhooks", 3));
    assert_ok(set_cursor(f->st, "search", 5)); /* the end itself is fine */
    assert_ok(set_cursor(f->st, "zero", 0));
    assert_int_equal(tu_cursor(f->st, "webhooks"), 3);
    assert_int_equal(tu_cursor(f->st, "search"), 5);

    /* beyond the log's end: refused, nothing saved */
    assert_int_equal(set_cursor(f->st, "webhooks", 6), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "beyond"));
    assert_int_equal(set_cursor(f->st, "fresh", 1000), KITH_EINVAL);
    assert_int_equal(tu_cursor(f->st, "webhooks"), 3);
    assert_int_equal(tu_cursor(f->st, "fresh"), 0);
    /* bad consumer names */
    char longname[202];
    memset(longname, 'c', 201);
    longname[201] = '\0';
    assert_int_equal(set_cursor(f->st, "", 1), KITH_EINVAL);
    assert_int_equal(set_cursor(f->st, longname, 1), KITH_EINVAL);
    longname[200] = '\0';
    assert_ok(set_cursor(f->st, longname, 1));

    /* durable */
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 0);
    assert_int_equal(tu_cursor(f->st, "webhooks"), 3);
    assert_int_equal(tu_cursor(f->st, "search"), 5);
    assert_int_equal(tu_cursor(f->st, longname), 1);
    /* the end is known after a reopen too */
    assert_int_equal(set_cursor(f->st, "search", 6), KITH_EINVAL);
    assert_ok(set_cursor(f->st, "webhooks", 5));
    assert_int_equal(tu_cursor(f->st, "webhooks"), 5);
    /* and a consumer may move back (to replay) */
    assert_ok(set_cursor(f->st, "webhooks", 2));
    assert_int_equal(tu_cursor(f->st, "webhooks"), 2);

    char *problems;
    store_check_report_t rep = tu_check(f->st, &problems);
    if (rep.problems) fail_msg("store_check: %s", problems);
    free(problems);
    assert_int_equal(rep.cursors, 4);
    assert_int_equal(rep.log_entries, 5);

    /* a writer-less store (the CLI) knows the end as well */
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 1);
    assert_int_equal(set_cursor(f->st, "search", 6), KITH_EINVAL);
    assert_ok(set_cursor(f->st, "search", 4));
    assert_int_equal(tu_cursor(f->st, "search"), 4);
}

static void render_is_json(void **state)
{
    fx_t *f = *state;
    store_op_t *c = create(f->st, "{\"first\":\"Q\\\"uote\",\"age\":1}");
    store_op_t *u = update(f->st, &c->rid, "{\"age\":2,\"email\":\"q@x.io\"}", 0);
    store_op_t *d = run(f->st, store_op_delete("contacts", &c->rid, 0), 0);
    changes_t ch = read_changes(f->st, 0, 0);
    assert_int_equal(ch.n, 3);
    const char *ops[] = {"create", "update", "delete"};
    const char *changed[] = {"[\"first\",\"age\",\"stage\"]", "[\"email\",\"age\"]",
                             "[\"email\",\"first\",\"age\",\"stage\"]"};
    char ids[ID_TEXT_LEN + 1];
    id_encode(&c->rid, ids);
    for (size_t i = 0; i < 3; i++) {
        json_t *j = json_parse(ch.v[i].rendered, strlen(ch.v[i].rendered));
        if (!j) fail_msg("not JSON: %s", ch.v[i].rendered);
        assert_int_equal(json_object_size(j), 7);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), i + 1);
        assert_string_equal(json_string_value(json_object_get(j, "op")), ops[i]);
        assert_string_equal(json_string_value(json_object_get(j, "collection")), "contacts");
        assert_string_equal(json_string_value(json_object_get(j, "id")), ids);
        assert_int_equal(json_integer_value(json_object_get(j, "version")), i < 2 ? i + 1 : 2);
        assert_json(json_object_get(j, "changed"), changed[i]);
        /* the time is RFC 3339 with microseconds, the change's own */
        const char *t = json_string_value(json_object_get(j, "time"));
        assert_non_null(t);
        int64_t us;
        assert_ok(time_parse_rfc3339(t, strlen(t), &us));
        assert_int_equal(us, ch.v[i].time_us);
        json_decref(j);
    }
    changes_free(&ch);
    store_op_free(c);
    store_op_free(u);
    store_op_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_entry_per_write, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_logged_without_a_change, setup, teardown),
        cmocka_unit_test_setup_teardown(replay_from_any_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(consumer_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(render_is_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
