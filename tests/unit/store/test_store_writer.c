/* Tests core/store/store_writer.c: group commit with nested transactions (one
 * op's failure never leaks into the batch), failed commits (EIO and panic),
 * map growth under load, concurrent store_exec, store_close with queued ops,
 * and the inline mode without a writer thread. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *people = "{\"name\":\"people\",\"fields\":["
                            "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
                            "{\"name\":\"handle\",\"type\":\"string\",\"unique\":true},"
                            "{\"name\":\"name\",\"type\":\"string\",\"required\":true},"
                            "{\"name\":\"age\",\"type\":\"int\",\"indexed\":true}]}";

typedef struct fx {
    store_t *st;
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, people);
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

__attribute__((format(printf, 1, 2))) static json_t *jf(const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return tu_json(text);
}

static store_op_t *op_create_j(const char *coll, json_t *j)
{
    store_op_t *op = store_op_create(coll, j);
    json_decref(j);
    return op;
}

static store_op_t *op_update_j(const kith_id_t *id, json_t *patch, uint64_t if_version)
{
    store_op_t *op = store_op_update("people", id, patch, if_version);
    json_decref(patch);
    return op;
}

/* 0 or the store_get error; *fields (may be NULL) gets the record's fields. */
static int get_rec(store_t *st, const char *coll, const kith_id_t *id, json_t **fields,
                   uint64_t *version)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    int rc = store_get(rt, coll, id, &rec);
    if (rc == 0 && fields) *fields = store_record_fields(&rec);
    if (rc == 0 && version) *version = rec.version;
    store_read_end(rt);
    return rc;
}

/* Number of people whose field equals value (through the index). */
static size_t people_with(store_t *st, const char *field, const char *value, kith_id_t *first)
{
    char filter[256];
    snprintf(filter, sizeof filter, "{\"%s\":\"%s\"}", field, value);
    kith_id_t ids[4];
    size_t n = tu_query_ids(st, "people", filter, NULL, ids, 4);
    if (n && first) *first = ids[0];
    return n;
}

typedef struct logged {
    int op;
    kith_id_t id;
    uint64_t version;
    uint64_t seq;
} logged_t;

typedef struct log_collect {
    logged_t *v;
    size_t n, cap;
} log_collect_t;

static int collect_change(void *ctx, const store_change_t *ch)
{
    log_collect_t *c = ctx;
    if (c->n == c->cap) c->v = xrealloc(c->v, (c->cap = c->cap ? c->cap * 2 : 256) * sizeof *c->v);
    c->v[c->n++] = (logged_t){ch->op, ch->id, ch->version, ch->seq};
    return 0;
}

static log_collect_t changes_after(store_t *st, uint64_t after)
{
    log_collect_t c = {0};
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_changes(rt, after, 0, collect_change, &c));
    store_read_end(rt);
    return c;
}

static void assert_clean(store_t *st, uint64_t records, uint64_t index_entries)
{
    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    if (rep.problems) fail_msg("store_check: %s", problems);
    free(problems);
    assert_int_equal(rep.records, records);
    assert_int_equal(rep.index_entries, index_entries);
    assert_int_equal(rep.log_entries, tu_changes_last(st));
    assert_int_equal(rep.last_seq, tu_changes_last(st));
}

/* ---- a. one batch, many outcomes ---------------------------------------- */

#define BURST 200
#define NPRE  (BURST / 10)

enum {
    K_CREATE,
    K_UPDATE,
    K_STALE,
    K_INVALID,
    K_DUP_HANDLE,
    K_PAIR_WIN,
    K_PAIR_LOSE,
    K_DEL_MISSING,
    K_DELETE,
    K_REUSE
};

static int expected_status(int kind)
{
    switch (kind) {
    case K_STALE:
        return KITH_ECONFLICT;
    case K_INVALID:
        return KITH_EVALIDATION;
    case K_DUP_HANDLE:
    case K_PAIR_LOSE:
        return KITH_EEXIST;
    case K_DEL_MISSING:
        return KITH_ENOTFOUND;
    default:
        return 0;
    }
}

static void batch_isolates_failed_ops(void **state)
{
    fx_t *f = *state;
    kith_id_t pre[NPRE];
    for (int k = 0; k < NPRE; k++) {
        char fields[128];
        snprintf(fields, sizeof fields,
                 "{\"email\":\"pre%d@x.io\",\"handle\":\"pre%d\",\"name\":\"P%d\"}", k, k, k);
        assert_ok(tu_create(f->st, "people", fields, &pre[k]));
    }
    uint64_t seq0 = tu_changes_last(f->st);
    store_stats_t s0, s1, s2;
    store_stats_get(f->st, &s0);

    /* Ten kinds of op in each group of ten; group k works on pre[k]. */
    store_op_t *ops[BURST];
    int done[BURST] = {0};
    for (int i = 0; i < BURST; i++) {
        int k = i / 10;
        kith_id_t missing;
        switch (i % 10) {
        case K_CREATE:
            ops[i] = op_create_j("people", jf("{\"email\":\"u%d@x.io\",\"handle\":\"u%d\","
                                              "\"name\":\"U\",\"age\":%d}",
                                              i, i, i));
            break;
        case K_UPDATE: /* pre[k] goes to version 2 */
            ops[i] = op_update_j(&pre[k], jf("{\"age\":%d}", i), 1);
            break;
        case K_STALE: /* expects version 1, but the op before made it 2 */
            ops[i] = op_update_j(&pre[k], jf("{\"age\":999}"), 1);
            break;
        case K_INVALID: /* name is no string, and bogus is no field */
            ops[i] = op_create_j("people", jf("{\"email\":\"v%d@x.io\",\"handle\":\"v%d\","
                                              "\"name\":5,\"bogus\":1}",
                                              i, i));
            break;
        case K_DUP_HANDLE: /* a fresh e-mail (indexed first), a taken handle */
            ops[i] = op_create_j("people", jf("{\"email\":\"w%d@x.io\",\"handle\":\"pre%d\","
                                              "\"name\":\"W\",\"age\":%d}",
                                              i, k, i));
            break;
        case K_PAIR_WIN:
            ops[i] = op_create_j("people", jf("{\"email\":\"d%d@x.io\",\"handle\":\"d%d\","
                                              "\"name\":\"D\"}",
                                              i, i));
            break;
        case K_PAIR_LOSE: /* the same e-mail as the op before, in another case */
            ops[i] = op_create_j("people", jf("{\"email\":\"D%d@X.IO\",\"handle\":\"e%d\","
                                              "\"name\":\"E\"}",
                                              i - 1, i));
            break;
        case K_DEL_MISSING:
            id_new(&missing, time_now_us() / 1000);
            ops[i] = store_op_delete("people", &missing, 0);
            break;
        case K_DELETE:
            ops[i] = store_op_delete("people", &pre[k], 2);
            break;
        case K_REUSE: /* the unique values pre[k] freed in this batch */
            ops[i] = op_create_j("people", jf("{\"email\":\"pre%d@x.io\",\"handle\":\"pre%d\","
                                              "\"name\":\"R\"}",
                                              k, k));
            break;
        }
    }

    tu_loop_t l;
    tu_loop_init(&l);
    tu_gate_t g;
    tu_gate_hold(f->st, &g);
    for (int i = 0; i < BURST; i++)
        tu_loop_submit(&l, f->st, ops[i], &done[i]);
    store_stats_get(f->st, &s1);
    assert_int_equal(s1.queued, BURST);
    tu_gate_release(&g);
    tu_loop_finish(&l);
    store_stats_get(f->st, &s2);

    /* the burst was one batch, committed once */
    assert_int_equal(s2.batch_max, BURST);
    assert_int_equal(s2.commits - s0.commits, 2); /* the gate's and the burst's */
    assert_int_equal(s2.ops - s0.ops, BURST + 1);
    assert_int_equal(s2.ops_failed - s0.ops_failed, BURST / 2);
    assert_int_equal(s2.queued, 0);

    /* every op's own outcome */
    size_t nok = 0;
    uint64_t prev_seq = seq0;
    for (int i = 0; i < BURST; i++) {
        int kind = i % 10;
        store_op_t *op = ops[i];
        assert_int_equal(done[i], 1);
        if (op->status != expected_status(kind))
            fail_msg("op %d (kind %d): status %d (%s), want %d", i, kind, op->status, tu_op_msg(op),
                     expected_status(kind));
        if (op->status == 0) {
            nok++;
            /* the log order is the submission order */
            assert_int_equal(op->seq, prev_seq + 1);
            prev_seq = op->seq;
        } else {
            assert_int_equal(op->seq, 0);
            assert_int_equal(op->diag->code, op->status);
            assert_null(op->json);
        }
        if (kind == K_DUP_HANDLE) {
            assert_true(op->diag->nfields >= 1);
            assert_string_equal(op->diag->fields[0].name, "handle");
        }
        if (kind == K_PAIR_LOSE) assert_string_equal(op->diag->fields[0].name, "email");
        if (kind == K_INVALID) assert_int_equal(op->diag->nfields, 2);
    }
    assert_int_equal(nok, BURST / 2);

    /* what succeeded is there, what failed left nothing behind */
    for (int i = 0; i < BURST; i++) {
        int k = i / 10;
        store_op_t *op = ops[i];
        char v[32];
        kith_id_t hit;
        json_t *j = NULL;
        uint64_t ver = 0;
        switch (i % 10) {
        case K_CREATE:
        case K_PAIR_WIN:
        case K_REUSE:
            assert_ok(get_rec(f->st, "people", &op->rid, &j, &ver));
            assert_int_equal(ver, 1);
            assert_string_equal(json_string_value(json_object_get(j, "name")),
                                i % 10 == K_CREATE     ? "U"
                                : i % 10 == K_PAIR_WIN ? "D"
                                                       : "R");
            json_decref(j);
            break;
        case K_UPDATE:
            assert_int_equal(op->version, 2);
            break;
        case K_DELETE:
            assert_int_equal(get_rec(f->st, "people", &pre[k], NULL, NULL), KITH_ENOTFOUND);
            /* the deleted record carried the update of this batch, not the stale one */
            j = json_loadb(op->json, op->json_len, 0, NULL);
            assert_int_equal(json_integer_value(json_object_get(j, "age")), i - 7);
            json_decref(j);
            assert_int_equal(op->version, 2);
            break;
        case K_INVALID:
            snprintf(v, sizeof v, "v%d@x.io", i);
            assert_int_equal(people_with(f->st, "email", v, NULL), 0);
            snprintf(v, sizeof v, "v%d", i);
            assert_int_equal(people_with(f->st, "handle", v, NULL), 0);
            break;
        case K_DUP_HANDLE: /* its e-mail entry was written, then rolled back */
            snprintf(v, sizeof v, "w%d@x.io", i);
            assert_int_equal(people_with(f->st, "email", v, NULL), 0);
            snprintf(v, sizeof v, "pre%d", k);
            assert_int_equal(people_with(f->st, "handle", v, &hit), 1);
            assert_memory_equal(hit.b, ops[i + 5]->rid.b, ID_LEN); /* the K_REUSE record */
            break;
        case K_PAIR_LOSE: /* exactly one of the pair holds the e-mail */
            snprintf(v, sizeof v, "d%d@x.io", i - 1);
            assert_int_equal(people_with(f->st, "email", v, &hit), 1);
            assert_memory_equal(hit.b, ops[i - 1]->rid.b, ID_LEN);
            snprintf(v, sizeof v, "e%d", i);
            assert_int_equal(people_with(f->st, "handle", v, NULL), 0);
            break;
        default:
            break;
        }
    }
    /* 20 kept from before - 20 deleted + 3 x 20 created */
    assert_int_equal(tu_count(f->st, "people"), 3 * NPRE);

    /* the log holds exactly the successful ops, in order */
    log_collect_t c = changes_after(f->st, seq0);
    assert_int_equal(c.n, BURST / 2);
    assert_int_equal(tu_changes_last(f->st), seq0 + BURST / 2);
    size_t e = 0;
    for (int i = 0; i < BURST; i++) {
        store_op_t *op = ops[i];
        if (op->status) continue;
        int want = op->kind == STORE_OP_CREATE   ? STORE_CHANGE_CREATE
                   : op->kind == STORE_OP_UPDATE ? STORE_CHANGE_UPDATE
                                                 : STORE_CHANGE_DELETE;
        assert_int_equal(c.v[e].op, want);
        assert_int_equal(c.v[e].seq, op->seq);
        assert_int_equal(c.v[e].version, op->version);
        assert_memory_equal(c.v[e].id.b, op->rid.b, ID_LEN);
        e++;
    }
    free(c.v);
    /* email + handle + age (a NULL entry when missing) per record */
    assert_clean(f->st, 3 * NPRE, 3 * 3 * NPRE);
    for (int i = 0; i < BURST; i++)
        store_op_free(ops[i]);
}

/* ---- b. a failed commit ------------------------------------------------ */

typedef struct fault_arg {
    store_t *st;
    int fault;
} fault_arg_t;

/* Arms the fault from inside a batch, so that batch's own commit fails. */
static int arm_fault(store_wtxn_t *w, store_op_t *op)
{
    (void)w;
    fault_arg_t *a = op->udata;
    store_test_fault(a->st, a->fault);
    return 0;
}

#define FAILED_CREATES 10

static void commit_failure(store_t *st, int fault)
{
    kith_id_t x, y;
    assert_ok(tu_create(st, "people", "{\"email\":\"x@x.io\",\"name\":\"X\",\"age\":1}", &x));
    assert_ok(tu_create(st, "people", "{\"email\":\"y@x.io\",\"name\":\"Y\"}", &y));
    uint64_t seq0 = tu_changes_last(st);
    uint64_t n0 = tu_count(st, "people");
    store_stats_t s0, s1;
    store_stats_get(st, &s0);

    fault_arg_t fa = {st, fault};
    store_op_t *ops[FAILED_CREATES + 6];
    int done[FAILED_CREATES + 6] = {0};
    kith_id_t ids[FAILED_CREATES];
    size_t n = 0;
    ops[n++] = store_op_custom(arm_fault, &fa);
    for (int i = 0; i < FAILED_CREATES; i++) {
        store_op_t *op = op_create_j("people", jf("{\"email\":\"f%d@x.io\",\"name\":\"F\"}", i));
        id_new(&ids[i], time_now_us() / 1000);
        op->id = ids[i];
        op->has_id = 1;
        ops[n++] = op;
    }
    store_op_t *bad = op_create_j("people", jf("{\"name\":7}"));
    ops[n++] = bad;
    store_op_t *keyed = op_create_j("people", jf("{\"email\":\"k@x.io\",\"name\":\"K\"}"));
    store_op_set_idem(keyed, "key-of-a-failed-batch");
    ops[n++] = keyed;
    ops[n++] = op_update_j(&x, jf("{\"age\":77}"), 1);
    ops[n++] = store_op_delete("people", &y, 0);
    json_t *ghosts = jf("{\"name\":\"ghosts\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}");
    ops[n++] = store_op_schema(ghosts);
    json_decref(ghosts);

    tu_loop_t l;
    tu_loop_init(&l);
    tu_gate_t g;
    tu_gate_hold(st, &g);
    for (size_t i = 0; i < n; i++)
        tu_loop_submit(&l, st, ops[i], &done[i]);
    tu_gate_release(&g);
    tu_loop_finish(&l);
    store_stats_get(st, &s1);

    /* never a success, for any op of the batch */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(done[i], 1);
        if (ops[i] == bad) {
            assert_int_not_equal(bad->status, 0);
            continue;
        }
        if (ops[i]->status != KITH_EIO)
            fail_msg("op %zu: status %d (%s), want KITH_EIO", i, ops[i]->status, tu_op_msg(ops[i]));
        assert_non_null(strstr(ops[i]->diag->msg, "nothing was written"));
        assert_int_equal(ops[i]->seq, 0);
        assert_false(ops[i]->idem_replayed);
    }
    assert_int_equal(s1.commits, s0.commits + 1); /* the gate's batch only */
    assert_int_equal(s1.reopens - s0.reopens, fault == STORE_FAULT_COMMIT_PANIC ? 1 : 0);

    /* nothing of the batch exists */
    for (int i = 0; i < FAILED_CREATES; i++) {
        assert_int_equal(get_rec(st, "people", &ids[i], NULL, NULL), KITH_ENOTFOUND);
        char v[32];
        snprintf(v, sizeof v, "f%d@x.io", i);
        assert_int_equal(people_with(st, "email", v, NULL), 0);
    }
    assert_int_equal(people_with(st, "email", "k@x.io", NULL), 0);
    json_t *xf = NULL;
    uint64_t xv = 0;
    assert_ok(get_rec(st, "people", &x, &xf, &xv));
    assert_int_equal(xv, 1);
    assert_int_equal(json_integer_value(json_object_get(xf, "age")), 1);
    json_decref(xf);
    assert_ok(get_rec(st, "people", &y, NULL, NULL));
    assert_int_equal(tu_count(st, "people"), n0);
    assert_int_equal(tu_changes_last(st), seq0);
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_null(store_schema_coll(store_read_schema(rt), "ghosts"));
    store_read_end(rt);
    assert_clean(st, n0, 3 * n0);

    /* later writes succeed, and see the state before the failed batch */
    for (int i = 0; i < FAILED_CREATES; i++) {
        store_op_t *op = op_create_j("people", jf("{\"email\":\"f%d@x.io\",\"name\":\"F\"}", i));
        op->id = ids[i];
        op->has_id = 1;
        assert_ok(store_exec(st, op));
        assert_int_equal(op->seq, seq0 + 1 + (uint64_t)i);
        store_op_free(op);
    }
    store_op_t *again = op_create_j("people", jf("{\"email\":\"k@x.io\",\"name\":\"K\"}"));
    store_op_set_idem(again, "key-of-a-failed-batch");
    assert_ok(store_exec(st, again));
    assert_false(again->idem_replayed); /* the failed batch did not keep the key */
    store_op_free(again);
    store_op_t *up = op_update_j(&x, jf("{\"age\":77}"), 1);
    assert_ok(store_exec(st, up));
    assert_int_equal(up->version, 2);
    store_op_free(up);
    store_op_t *del = store_op_delete("people", &y, 1);
    assert_ok(store_exec(st, del));
    store_op_free(del);
    tu_schema(st, "{\"name\":\"ghosts\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}");
    assert_ok(tu_create(st, "ghosts", "{\"a\":1}", NULL));
    assert_int_equal(tu_count(st, "people"), n0 + FAILED_CREATES);
    assert_int_equal(tu_changes_last(st), seq0 + FAILED_CREATES + 4);
    assert_clean(st, n0 + FAILED_CREATES + 1, 3 * (n0 + FAILED_CREATES));

    for (size_t i = 0; i < n; i++)
        store_op_free(ops[i]);
}

static void commit_eio(void **state)
{
    fx_t *f = *state;
    commit_failure(f->st, STORE_FAULT_COMMIT_EIO);
    /* and the data is on disk: a fresh open sees it */
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 0);
    assert_int_equal(tu_count(f->st, "people"), 2 + FAILED_CREATES);
}

static void commit_panic(void **state)
{
    fx_t *f = *state;
    commit_failure(f->st, STORE_FAULT_COMMIT_PANIC);
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 0);
    assert_int_equal(tu_count(f->st, "people"), 2 + FAILED_CREATES);
    assert_clean(f->st, 2 + FAILED_CREATES + 1, 3 * (2 + FAILED_CREATES));
}

/* ---- c. the map grows under load ------------------------------------- */

#define GROW_RECORDS    20000
#define GROW_SUBMITTERS 64

typedef struct grow {
    store_t *st;
    tu_loop_t *l;
    int next;
    int failed;
    char first_error[ERR_MSG_MAX];
} grow_t;

static void grow_submit_next(grow_t *g);

static void grow_done(store_op_t *op, void *ctx)
{
    grow_t *g = ctx;
    g->l->completed++;
    if (op->status && g->failed++ == 0)
        snprintf(g->first_error, sizeof g->first_error, "%s", tu_op_msg(op));
    store_op_free(op);
    if (g->next < GROW_RECORDS) grow_submit_next(g);
}

static void grow_submit_next(grow_t *g)
{
    int i = g->next++;
    /* about 200 bytes of JSON, two indexed fields */
    json_t *j = jf("{\"sku\":\"SKU-%06d\",\"qty\":%d,\"body\":\"%0150d\"}", i, i % 100, i);
    store_op_t *op = op_create_j("items", j);
    g->l->submitted++;
    store_submit(g->st, op, &g->l->inbox, grow_done, g);
}

static void map_grows_under_load(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 1 << 20);
    tu_schema(st, "{\"name\":\"items\",\"fields\":["
                  "{\"name\":\"sku\",\"type\":\"string\",\"indexed\":true},"
                  "{\"name\":\"qty\",\"type\":\"int\",\"indexed\":true},"
                  "{\"name\":\"body\",\"type\":\"string\"}]}");
    store_stats_t s0, s1;
    store_stats_get(st, &s0);
    assert_true(s0.map_size <= (1 << 20));

    tu_loop_t l;
    tu_loop_init(&l);
    grow_t g = {.st = st, .l = &l};
    for (int i = 0; i < GROW_SUBMITTERS; i++)
        grow_submit_next(&g);
    tu_loop_finish(&l);
    if (g.failed) fail_msg("%d creates failed, first: %s", g.failed, g.first_error);
    assert_int_equal(l.completed, GROW_RECORDS);

    store_stats_get(st, &s1);
    assert_true(s1.map_grows > s0.map_grows);
    assert_true(s1.map_size > (1 << 20));
    /* zeros are kept ahead of LMDB's last page, never beyond the map */
    assert_true(s1.used_bytes > 0);
    assert_true(s1.file_bytes > s1.used_bytes);
    assert_true(s1.file_bytes <= s1.map_size);
    assert_int_equal(s1.ops - s0.ops, GROW_RECORDS);
    assert_int_equal(s1.ops_failed, 0);
    assert_int_equal(tu_count(st, "items"), GROW_RECORDS);
    assert_clean(st, GROW_RECORDS, 2 * GROW_RECORDS);
    assert_int_equal(tu_changes_last(st), GROW_RECORDS);
    assert_int_equal(tu_query_ids(st, "items", "{\"qty\":7}", NULL, NULL, 0), GROW_RECORDS / 100);
    assert_int_equal(tu_query_ids(st, "items", "{\"sku\":\"SKU-019999\"}", NULL, NULL, 0), 1);

    /* the grown map is what the next open uses */
    store_close(st);
    st = tu_store_reopen(dir, 0);
    assert_int_equal(tu_count(st, "items"), GROW_RECORDS);
    tu_store_close(st, dir);
}

/* ---- d. concurrent store_exec, and closing with ops queued ------------- */

#define EXEC_THREADS 8
#define EXEC_PER     150

typedef struct exec_arg {
    store_t *st;
    int t;
    int failures;
    int order_broken;
    uint64_t seqs[EXEC_PER];
} exec_arg_t;

static void exec_thread(void *p)
{
    exec_arg_t *a = p;
    uint64_t prev = 0;
    for (int i = 0; i < EXEC_PER; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"email\":\"t%d-%d@x.io\",\"name\":\"T\",\"age\":%d}", a->t,
                 i, i);
        json_t *j = json_loads(text, 0, NULL);
        store_op_t *op = store_op_create("people", j);
        json_decref(j);
        int rc = store_exec(a->st, op);
        /* the status and the diagnostic arrive on this thread */
        if (rc != 0 || op->status != 0) a->failures++;
        if (op->seq <= prev) a->order_broken++;
        prev = op->seq;
        a->seqs[i] = op->seq;
        store_op_free(op);
    }
    /* a failing op reports its own error on this thread */
    json_t *j = json_loads("{\"name\":1}", 0, NULL);
    store_op_t *op = store_op_create("people", j);
    json_decref(j);
    if (store_exec(a->st, op) != KITH_EVALIDATION || err_last()->code != KITH_EVALIDATION ||
        err_last()->nfields != 1)
        a->failures++;
    store_op_free(op);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void exec_from_many_threads(void **state)
{
    fx_t *f = *state;
    uint64_t seq0 = tu_changes_last(f->st);
    exec_arg_t args[EXEC_THREADS];
    uv_thread_t th[EXEC_THREADS];
    for (int t = 0; t < EXEC_THREADS; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].st = f->st;
        args[t].t = t;
        assert_int_equal(uv_thread_create(&th[t], exec_thread, &args[t]), 0);
    }
    for (int t = 0; t < EXEC_THREADS; t++)
        uv_thread_join(&th[t]);
    uint64_t all[EXEC_THREADS * EXEC_PER];
    for (int t = 0; t < EXEC_THREADS; t++) {
        assert_int_equal(args[t].failures, 0);
        assert_int_equal(args[t].order_broken, 0);
        memcpy(all + t * EXEC_PER, args[t].seqs, sizeof args[t].seqs);
    }
    /* every write has its own sequence number, densely */
    qsort(all, EXEC_THREADS * EXEC_PER, sizeof all[0], cmp_u64);
    for (int i = 0; i < EXEC_THREADS * EXEC_PER; i++)
        assert_int_equal(all[i], seq0 + 1 + (uint64_t)i);
    assert_int_equal(tu_count(f->st, "people"), EXEC_THREADS * EXEC_PER);
    assert_clean(f->st, EXEC_THREADS * EXEC_PER, 3 * EXEC_THREADS * EXEC_PER);
}

static void close_thread(void *p)
{
    store_close(p);
}

#define QUEUED 50

static void close_with_ops_queued(void **state)
{
    (void)state;
    /* small batches, so the queue at close spans several of them */
    fx_t fs = {0}, *f = &fs;
    char *base = tu_tmpdir();
    f->dir = xmalloc(strlen(base) + 8);
    sprintf(f->dir, "%s/ws", base);
    free(base);
    store_opts_t o = {.create = 1, .batch_max = 8};
    assert_ok(store_open(&f->st, f->dir, &o));
    tu_schema(f->st, people);
    store_op_t *queued[QUEUED], *probes[4096], *late[8];
    int qdone[QUEUED] = {0}, pdone[4096] = {0}, ldone[8] = {0};
    tu_loop_t l;
    tu_loop_init(&l);
    tu_gate_t g;
    tu_gate_hold(f->st, &g);
    for (int i = 0; i < QUEUED; i++) {
        queued[i] = op_create_j("people", jf("{\"email\":\"q%d@x.io\",\"name\":\"Q\"}", i));
        tu_loop_submit(&l, f->st, queued[i], &qdone[i]);
    }
    /* close from another thread: it waits for the writer, held by the gate */
    uv_thread_t closer;
    assert_int_equal(uv_thread_create(&closer, close_thread, f->st), 0);
    /* Probe until the store refuses ops: then it is closing. The writer is held,
     * so an accepted probe's status cannot change under us. */
    int np = 0;
    for (;;) {
        if (np == (int)ARRAY_LEN(probes)) fail_msg("store_close never started refusing ops");
        store_op_t *p = op_create_j("people", jf("{\"email\":\"p%d@x.io\",\"name\":\"P\"}", np));
        probes[np] = p;
        tu_loop_submit(&l, f->st, p, &pdone[np]);
        np++;
        if (p->status == KITH_ESHUTDOWN) break;
        assert_int_equal(p->status, 0);
        uv_sleep(1);
    }
    /* from now on every submission is refused at once, with store_exec too */
    for (int i = 0; i < 8; i++) {
        late[i] = op_create_j("people", jf("{\"email\":\"late%d@x.io\",\"name\":\"L\"}", i));
        if (i % 2) {
            tu_loop_submit(&l, f->st, late[i], &ldone[i]);
        } else {
            assert_int_equal(store_exec(f->st, late[i]), KITH_ESHUTDOWN);
            assert_int_equal(err_last()->code, KITH_ESHUTDOWN);
            ldone[i] = 1;
        }
        assert_int_equal(late[i]->status, KITH_ESHUTDOWN);
        assert_non_null(strstr(late[i]->diag->msg, "closing"));
    }
    tu_gate_release(&g);
    uv_thread_join(&closer);
    /* store_close returned: every op has completed by now (none still queued) */
    loop_inbox_drain(&l.inbox);
    if (l.completed != l.submitted)
        fail_msg("%zu of %zu ops never completed", l.submitted - l.completed, l.submitted);
    tu_loop_finish(&l); /* each once */

    f->st = tu_store_reopen(f->dir, 0);
    size_t committed = 0;
    for (int i = 0; i < QUEUED + np; i++) {
        store_op_t *op = i < QUEUED ? queued[i] : probes[i - QUEUED];
        int d = i < QUEUED ? qdone[i] : pdone[i - QUEUED];
        assert_int_equal(d, 1);
        json_t *fields;
        char email[32]; /* the writer releases an op's input once it ran */
        snprintf(email, sizeof email, i < QUEUED ? "q%d@x.io" : "p%d@x.io",
                 i < QUEUED ? i : i - QUEUED);
        if (op->status == 0) {
            committed++;
            assert_ok(get_rec(f->st, "people", &op->rid, &fields, NULL));
            assert_string_equal(json_string_value(json_object_get(fields, "email")), email);
            json_decref(fields);
        } else if (op->status == KITH_ESHUTDOWN) {
            assert_int_equal(people_with(f->st, "email", email, NULL), 0);
        } else {
            fail_msg("op %d: status %d (%s)", i, op->status, tu_op_msg(op));
        }
    }
    /* ops queued before close began are run, not dropped */
    for (int i = 0; i < QUEUED; i++)
        assert_int_equal(queued[i]->status, 0);
    assert_int_equal(probes[np - 1]->status, KITH_ESHUTDOWN);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(ldone[i], 1);
        char email[32];
        snprintf(email, sizeof email, "late%d@x.io", i);
        assert_int_equal(people_with(f->st, "email", email, NULL), 0);
    }
    assert_int_equal(tu_count(f->st, "people"), committed);
    assert_clean(f->st, committed, 3 * committed);
    for (int i = 0; i < QUEUED; i++)
        store_op_free(queued[i]);
    for (int i = 0; i < np; i++)
        store_op_free(probes[i]);
    for (int i = 0; i < 8; i++)
        store_op_free(late[i]);
    tu_store_close(f->st, f->dir);
}

/* Once the batches hold several ops, a batch takes the ops that arrive while
 * it runs: ops queued while its first op runs (held at a gate) commit with it,
 * once. A lone op's batch (nothing recent to expect) does not wait. */
static void batch_takes_ops_that_arrive_while_it_runs(void **state)
{
    fx_t *f = *state;
    enum { N = 6 };
    store_stats_t s0, s1, s2;

    /* a lone op expects no company: the queued ones are a batch of their own */
    store_stats_get(f->st, &s0);
    tu_loop_t l;
    tu_loop_init(&l);
    store_op_t *ops[2 * N];
    for (int i = 0; i < 2 * N; i++)
        ops[i] = op_create_j("people", jf("{\"email\":\"g%d@x.io\",\"name\":\"G\"}", i));
    tu_gate_t g;
    tu_gate_hold(f->st, &g);
    for (int i = 0; i < N; i++)
        tu_loop_submit(&l, f->st, ops[i], NULL);
    tu_gate_release(&g);
    tu_loop_finish(&l);
    store_stats_get(f->st, &s1);
    assert_int_equal(s1.commits - s0.commits, 2);

    /* the last batch held N: the next gathers what queues while its gate runs,
     * and stamps them with a time after they arrived, not when it opened */
    tu_loop_init(&l);
    tu_gate_hold(f->st, &g);
    uv_sleep(2);
    int64_t arrived = time_now_us();
    for (int i = N; i < 2 * N; i++)
        tu_loop_submit(&l, f->st, ops[i], NULL);
    tu_gate_release(&g);
    tu_loop_finish(&l);
    store_stats_get(f->st, &s2);
    assert_int_equal(s2.commits - s1.commits, 1);
    assert_int_equal(s2.ops - s1.ops, N + 1);
    for (int i = 0; i < 2 * N; i++) {
        if (ops[i]->status) fail_msg("op %d: %s", i, tu_op_msg(ops[i]));
        if (i >= N && ops[i]->created_us < arrived)
            fail_msg("op %d stamped %lld, before it arrived (%lld)", i,
                     (long long)ops[i]->created_us, (long long)arrived);
        store_op_free(ops[i]);
    }
    assert_int_equal(tu_count(f->st, "people"), 2 * N);
}

/* ---- e. no writer thread ------------------------------------------------ */

typedef struct where {
    uv_thread_t thread;
    int ran;
} where_t;

static int note_thread(store_wtxn_t *w, store_op_t *op)
{
    (void)w;
    where_t *at = op->udata;
    at->thread = uv_thread_self();
    at->ran++;
    return 0;
}

static int ran_on_caller(store_t *st)
{
    where_t at = {0};
    store_op_t *op = store_op_custom(note_thread, &at);
    assert_ok(store_exec(st, op));
    store_op_free(op);
    assert_int_equal(at.ran, 1);
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &at.thread);
}

static void no_writer_runs_inline(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 1, 0);
    tu_schema(st, people);
    assert_true(ran_on_caller(st));
    store_stats_t s0, s1;
    store_stats_get(st, &s0);
    kith_id_t id;
    assert_ok(tu_create(st, "people", "{\"email\":\"a@x.io\",\"name\":\"A\"}", &id));
    assert_ok(get_rec(st, "people", &id, NULL, NULL));
    assert_int_equal(tu_create(st, "people", "{\"email\":\"A@X.IO\",\"name\":\"B\"}", NULL),
                     KITH_EEXIST);
    assert_int_equal(err_last()->code, KITH_EEXIST);
    store_stats_get(st, &s1);
    assert_int_equal(s1.ops - s0.ops, 2);
    assert_int_equal(s1.ops_failed - s0.ops_failed, 1);

    /* store_submit runs the op at once but completes it through the inbox */
    tu_loop_t l;
    tu_loop_init(&l);
    int done = 0;
    store_op_t *op = op_create_j("people", jf("{\"email\":\"c@x.io\",\"name\":\"C\"}"));
    tu_loop_submit(&l, st, op, &done);
    assert_int_equal(done, 0);
    assert_int_equal(op->status, 0);
    assert_ok(get_rec(st, "people", &op->rid, NULL, NULL));
    tu_loop_finish(&l);
    assert_int_equal(done, 1);
    store_op_free(op);
    assert_int_equal(tu_count(st, "people"), 2);
    assert_clean(st, 2, 6);
    tu_store_close(st, dir);
}

static void writer_runs_ops_on_its_thread(void **state)
{
    fx_t *f = *state;
    assert_false(ran_on_caller(f->st));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batch_isolates_failed_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(commit_eio, setup, teardown),
        cmocka_unit_test_setup_teardown(commit_panic, setup, teardown),
        cmocka_unit_test(map_grows_under_load),
        cmocka_unit_test_setup_teardown(exec_from_many_threads, setup, teardown),
        cmocka_unit_test(close_with_ops_queued),
        cmocka_unit_test_setup_teardown(batch_takes_ops_that_arrive_while_it_runs, setup,
                                        teardown),
        cmocka_unit_test(no_writer_runs_inline),
        cmocka_unit_test_setup_teardown(writer_runs_ops_on_its_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
