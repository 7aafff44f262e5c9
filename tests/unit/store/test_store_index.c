/* Tests core/store/store_index.c: secondary indexes added, changed and removed
 * on a live store. Background builds while another thread keeps writing,
 * index_state ("building" until the job is done, then "ready"), unique
 * indexes filled inside the schema op, and drop jobs. After every change the
 * index must give exactly what a scan gives, and store_check must be clean. */
#include "testutil.h"

#include "base/mem.h"
#include "store/store_filter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define NITEMS 6000

static const char *items_def = "{\"name\":\"items\",\"fields\":["
                               "{\"name\":\"seq\",\"type\":\"int\"},"
                               "{\"name\":\"name\",\"type\":\"string\"},"
                               "{\"name\":\"city\",\"type\":\"string\"},"
                               "{\"name\":\"score\",\"type\":\"int\"},"
                               "{\"name\":\"email\",\"type\":\"email\"}]}";

static const char *const first_names[] = {"ada", "Bea", "cyd", "BEN", "dora", "bert", "eve"};

typedef struct fx {
    store_t *st;
    char *dir;
    kith_id_t *ids; /* the records created by setup */
    size_t n;
} fx_t;

static json_t *item_fields(unsigned i)
{
    json_t *j = json_object();
    json_object_set_new(j, "seq", json_integer(i));
    char s[64];
    snprintf(s, sizeof s, "%s %u", first_names[i % 7], i);
    json_object_set_new(j, "name", json_string(s));
    if (i % 17 != 0) {
        snprintf(s, sizeof s, "c%02u", i % 13);
        json_object_set_new(j, "city", json_string(s));
    }
    json_object_set_new(j, "score", json_integer((json_int_t)((i * 7919u) % 1000) - 500));
    snprintf(s, sizeof s, "u%u@x.io", i);
    json_object_set_new(j, "email", json_string(s));
    return j;
}

static void load_items(fx_t *f, size_t n)
{
    json_t **recs = xcalloc(n, sizeof *recs);
    for (size_t i = 0; i < n; i++)
        recs[i] = item_fields((unsigned)i);
    f->ids = xcalloc(n, sizeof *f->ids);
    f->n = n;
    tu_create_many(f->st, "items", recs, n, f->ids);
    for (size_t i = 0; i < n; i++)
        json_decref(recs[i]);
    free(recs);
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, items_def);
    load_items(f, NITEMS);
    *state = f;
    return 0;
}

static int setup_small(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, items_def);
    load_items(f, 500);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tu_store_close(f->st, f->dir);
    free(f->ids);
    free(f);
    return 0;
}

/* ---- helpers ---- */

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

/* The field's entry in a collection definition (JSON), or NULL. */
static json_t *def_field(json_t *def, const char *name)
{
    json_t *fa = json_object_get(def, "fields");
    for (size_t i = 0; i < json_array_size(fa); i++) {
        json_t *e = json_array_get(fa, i);
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) return e;
    }
    return NULL;
}

/* index_state of field in the definition text: "building", "ready" or "none". */
static const char *state_in(json_t *def, const char *field)
{
    json_t *s = json_object_get(def_field(def, field), "index_state");
    return s ? json_string_value(s) : "none";
}

static const char *state_now(store_t *st, const char *field, char out[16])
{
    json_t *def = tu_coll_json(st, "items");
    snprintf(out, 16, "%s", state_in(def, field));
    json_decref(def);
    return out;
}

typedef struct rows {
    kith_id_t *ids;
    size_t n, cap;
} rows_t;

static int row_push(void *ctx, const store_record_t *rec)
{
    rows_t *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->ids = xrealloc(r->ids, r->cap * sizeof *r->ids);
    }
    r->ids[r->n++] = rec->id;
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

/* In one snapshot: the query through its plan (must be want_plan) and, as the
 * reference, every record matched against the compiled filter. Same records,
 * each once; a sorted query must also be in the order the reference gives. */
static void compare_with_scan(store_t *st, const char *filter, const char *sort,
                              const char *want_plan)
{
    json_t *flt = filter ? tu_json(filter) : NULL;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_query_t q = {.coll = "items", .filter = flt, .sort = sort, .limit = 10000};
    buf_t plan = BUF_INIT;
    assert_ok(store_query_plan(rt, &q, &plan));
    if (strcmp(plan.p, want_plan) != 0)
        fail_msg("%s sort %s: plan '%s', want '%s'", filter, sort, plan.p, want_plan);
    buf_free(&plan);

    rows_t got = {0}, all = {0};
    char *cursor = NULL;
    do {
        q.cursor = cursor;
        char *next = NULL;
        assert_ok(store_query(rt, &q, row_push, &got, &next));
        free(cursor);
        cursor = next;
    } while (cursor);
    store_query_t scan = {.coll = "items", .limit = 10000};
    do {
        scan.cursor = cursor;
        char *next = NULL;
        assert_ok(store_query(rt, &scan, row_push, &all, &next));
        free(cursor);
        cursor = next;
    } while (cursor);
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), "items");
    store_filter_t *cf;
    assert_ok(store_filter_compile(c, flt, &cf));
    rows_t want = {0};
    for (size_t i = 0; i < all.n; i++) {
        store_record_t rec;
        assert_ok(store_get(rt, "items", &all.ids[i], &rec));
        int m = store_filter_match(cf, &rec, NULL);
        assert_true(m >= 0);
        if (m) row_push(&want, &rec);
    }
    store_filter_free(cf);

    if (got.n != want.n)
        fail_msg("%s sort %s: %zu records through the index, %zu by scan", filter, sort, got.n,
                 want.n);
    if (sort) {
        /* the reference order: by the field's index key, then id */
        const char *field = sort + (sort[0] == '-');
        const store_field_t *sf = store_coll_field(c, field);
        assert_non_null(sf);
        for (size_t i = 1; i < got.n; i++) {
            store_record_t a, b;
            assert_ok(store_get(rt, "items", &got.ids[i - 1], &a));
            json_t *fa = store_record_fields(&a);
            assert_ok(store_get(rt, "items", &got.ids[i], &b));
            json_t *fb = store_record_fields(&b);
            json_t *va = json_object_get(fa, field), *vb = json_object_get(fb, field);
            int cmp = (va != NULL) - (vb != NULL);
            if (va && vb && sf->type == ST_INT)
                cmp = (json_integer_value(va) > json_integer_value(vb)) -
                      (json_integer_value(va) < json_integer_value(vb));
            else if (va && vb)
                cmp = strcmp(json_string_value(va), json_string_value(vb));
            if (cmp == 0) cmp = memcmp(got.ids[i - 1].b, got.ids[i].b, ID_LEN);
            if (sort[0] == '-') cmp = -cmp;
            if (cmp >= 0) fail_msg("sort %s: rows %zu and %zu out of order", sort, i - 1, i);
            json_decref(fa);
            json_decref(fb);
        }
    }
    qsort(got.ids, got.n, sizeof *got.ids, id_cmp);
    qsort(want.ids, want.n, sizeof *want.ids, id_cmp);
    for (size_t i = 0; i < got.n; i++) {
        if (i && memcmp(got.ids[i].b, got.ids[i - 1].b, ID_LEN) == 0)
            fail_msg("%s: a record came twice", filter);
        if (memcmp(got.ids[i].b, want.ids[i].b, ID_LEN) != 0)
            fail_msg("%s sort %s: the index and the scan disagree", filter, sort);
    }
    store_read_end(rt);
    free(got.ids);
    free(all.ids);
    free(want.ids);
    if (flt) json_decref(flt);
}

/* Holds the writer thread right after an op's batch commits: the op's done
 * callback runs on the writer thread and waits there until released, before
 * the writer can run a step of any index job. */
typedef struct hold {
    uv_sem_t committed, release;
} hold_t;

static void hold_done(store_op_t *op, void *ctx)
{
    (void)op;
    hold_t *h = ctx;
    uv_sem_post(&h->committed);
    uv_sem_wait(&h->release);
}

static store_op_t *submit_held(store_t *st, store_op_t *op, hold_t *h)
{
    uv_sem_init(&h->committed, 0);
    uv_sem_init(&h->release, 0);
    store_submit(st, op, NULL, hold_done, h);
    uv_sem_wait(&h->committed);
    return op;
}

static void hold_release(hold_t *h)
{
    uv_sem_post(&h->release);
}

static void hold_destroy(hold_t *h)
{
    uv_sem_destroy(&h->committed);
    uv_sem_destroy(&h->release);
}

static size_t jobs_pending(store_t *st)
{
    store_stats_t s;
    store_stats_get(st, &s);
    return s.jobs;
}

/* ---- a second thread that keeps writing ---- */

typedef struct writer {
    store_t *st;
    const kith_id_t *base;
    size_t nbase;
    atomic_int stop;
    atomic_uint writes;
    uint64_t rng;
    int failed;
    char why[ERR_MSG_MAX];
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    kith_id_t mine[64];
    size_t nmine = 0;
    unsigned serial = 0;
    while (!atomic_load(&w->stop)) {
        w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(w->rng >> 33);
        char s[96];
        json_t *j = json_object();
        store_op_t *op;
        switch (r % 5) {
        case 0: /* move an existing record to another city and score */
        case 1:
            if (r % 7 == 0) {
                json_object_set_new(j, "city", json_null());
            } else {
                snprintf(s, sizeof s, "c%02u", (r >> 8) % 15);
                json_object_set_new(j, "city", json_string(s));
            }
            json_object_set_new(j, "score", json_integer((json_int_t)((r >> 4) % 1200) - 600));
            snprintf(s, sizeof s, "%s moved %u", first_names[(r >> 3) % 7], r % 1000);
            json_object_set_new(j, "name", json_string(s));
            if (r % 3 == 0)
                json_object_set_new(j, "region", json_string((r >> 5) % 2 ? "north" : "south"));
            op = store_op_update("items", &w->base[(r >> 6) % w->nbase], j, 0);
            break;
        case 2: /* delete one of ours */
            if (nmine > 0) {
                size_t k = (r >> 7) % nmine;
                op = store_op_delete("items", &mine[k], 0);
                mine[k] = mine[--nmine];
                break;
            }
            /* fall through */
        default: /* create */
            json_decref(j);
            j = item_fields(100000 + serial++);
            snprintf(s, sizeof s, "c%02u", r % 15);
            json_object_set_new(j, "city", json_string(s));
            op = store_op_create("items", j);
            break;
        }
        json_decref(j);
        int rc = store_exec(w->st, op);
        /* "region" may not exist yet: a refused update is expected then */
        if (rc && !(rc == KITH_EVALIDATION && op->kind == STORE_OP_UPDATE)) {
            snprintf(w->why, sizeof w->why, "%s", err_last()->msg);
            w->failed = 1;
        }
        if (rc == 0 && op->kind == STORE_OP_CREATE && nmine < ARRAY_LEN(mine))
            mine[nmine++] = op->rid;
        store_op_free(op);
        atomic_fetch_add(&w->writes, 1);
    }
    return NULL;
}

static void wait_writes(writer_t *w, unsigned n)
{
    unsigned w0 = atomic_load(&w->writes);
    while (atomic_load(&w->writes) < w0 + n)
        uv_sleep(1);
}

/* ---- tests ---- */

static void build_on_live_store(void **state)
{
    fx_t *f = *state;
    writer_t w = {.st = f->st, .base = f->ids, .nbase = f->n, .rng = 7};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    wait_writes(&w, 20);

    /* make an existing field indexed; stop the writer right after the commit */
    json_t *def = tu_json("{\"type\":\"string\",\"indexed\":true}");
    hold_t h;
    store_op_t *op = submit_held(f->st, store_op_field("items", "city", def), &h);
    json_decref(def);
    assert_int_equal(op->status, 0);
    json_t *pub = tu_json(op->json);
    assert_string_equal(state_in(pub, "city"), "building");
    json_decref(pub);
    char st[16];
    assert_string_equal(state_now(f->st, "city", st), "building");
    assert_true(jobs_pending(f->st) >= 1);
    /* a building index is maintained but not used */
    char *p = tu_plan(f->st, "items", "{\"city\":\"c03\"}", NULL);
    assert_string_equal(p, "scan");
    free(p);
    assert_int_equal(tu_check_problems(f->st), 0);
    hold_release(&h);

    /* more indexes while that one builds and the other thread writes */
    wait_writes(&w, 20);
    tu_schema(f->st, "{\"name\":\"items\",\"fields\":["
                     "{\"name\":\"seq\",\"type\":\"int\"},"
                     "{\"name\":\"name\",\"type\":\"string\",\"searchable\":true},"
                     "{\"name\":\"city\",\"type\":\"string\",\"indexed\":true},"
                     "{\"name\":\"score\",\"type\":\"int\",\"indexed\":true},"
                     "{\"name\":\"email\",\"type\":\"email\"},"
                     "{\"name\":\"region\",\"type\":\"string\",\"indexed\":true}]}");
    wait_writes(&w, 50);
    assert_ok(store_jobs_wait(f->st));
    hold_destroy(&h);
    store_op_free(op);
    wait_writes(&w, 20);

    const char *fields[] = {"city", "score", "region", "name"};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++)
        assert_string_equal(state_now(f->st, fields[i], st), "ready");
    assert_int_equal(jobs_pending(f->st), 0);

    /* through the new indexes exactly what a scan finds, while writes go on */
    compare_with_scan(f->st, "{\"city\":\"c03\"}", NULL, "eq city");
    compare_with_scan(f->st, "{\"city\":{\"in\":[\"c01\",\"c14\",\"c07\"]}}", NULL, "in city");
    compare_with_scan(f->st, "{\"city\":{\"gte\":\"c10\"}}", NULL, "range city");
    compare_with_scan(f->st, "{\"score\":{\"lt\":-450}}", NULL, "range score");
    compare_with_scan(f->st, "{\"score\":{\"gte\":100,\"lt\":130}}", NULL, "range score");
    compare_with_scan(f->st, "{\"name\":{\"prefix\":\"be\"}}", NULL, "range prefix:name");
    compare_with_scan(f->st, "{\"name\":{\"prefix\":\"Dora MOVED\"}}", NULL, "range prefix:name");
    compare_with_scan(f->st, "{\"region\":\"north\"}", NULL, "eq region");
    compare_with_scan(f->st, NULL, "city", "range city");
    compare_with_scan(f->st, NULL, "-score", "range score desc");
    compare_with_scan(f->st, "{\"score\":{\"gt\":400}}", "region", "range region");

    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    if (w.failed) fail_msg("the writing thread failed: %s", w.why);
    assert_ok(store_jobs_wait(f->st));
    store_check_report_t rep;
    assert_ok(store_check(f->st, &rep, NULL, NULL));
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.jobs, 0);
    /* one entry per record in each value index (NULL entries included) and one
     * per record in the prefix index (every record has a name) */
    assert_int_equal(rep.index_entries, 4 * rep.records);
    compare_with_scan(f->st, "{\"region\":{\"exists\":false},\"city\":\"c05\"}", NULL, "eq city");
}

static void building_then_ready(void **state)
{
    fx_t *f = *state;
    /* a new index on an empty collection is ready at once */
    tu_schema(f->st, "{\"name\":\"empty\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}");
    store_op_t *op;
    assert_ok(field_op(f->st, "empty", "a", "{\"type\":\"int\",\"indexed\":true}", &op));
    json_t *pub = tu_json(op->json);
    assert_string_equal(state_in(pub, "a"), "ready");
    json_decref(pub);
    store_op_free(op);
    assert_int_equal(jobs_pending(f->st), 0);

    /* a new field added indexed to a non-empty collection: building, then ready */
    json_t *def = tu_json("{\"type\":\"date\",\"indexed\":true}");
    hold_t h;
    op = submit_held(f->st, store_op_field("items", "due", def), &h);
    json_decref(def);
    assert_int_equal(op->status, 0);
    assert_int_equal(op->version, 2);
    pub = tu_json(op->json);
    assert_string_equal(state_in(pub, "due"), "building");
    json_decref(pub);
    char st[16];
    assert_string_equal(state_now(f->st, "due", st), "building");
    assert_string_equal(state_now(f->st, "seq", st), "none");
    assert_int_equal(jobs_pending(f->st), 1);
    char *p = tu_plan(f->st, "items", "{\"due\":\"2026-01-01\"}", NULL);
    assert_string_equal(p, "scan");
    free(p);
    /* sorting needs a ready index */
    json_t *none = NULL;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_query_t q = {.coll = "items", .filter = none, .sort = "due"};
    buf_t b = BUF_INIT;
    assert_int_equal(store_query_plan(rt, &q, &b), KITH_EINVAL);
    buf_free(&b);
    store_read_end(rt);
    hold_release(&h);

    assert_ok(store_jobs_wait(f->st));
    hold_destroy(&h);
    store_op_free(op);
    assert_string_equal(state_now(f->st, "due", st), "ready");
    /* readiness is a new generation, not a new version */
    json_t *now = tu_coll_json(f->st, "items");
    assert_int_equal(json_integer_value(json_object_get(now, "version")), 2);
    json_decref(now);
    p = tu_plan(f->st, "items", NULL, "due");
    assert_string_equal(p, "range due");
    free(p);
    compare_with_scan(f->st, "{\"due\":{\"exists\":false}}", "-due", "range due desc");
    assert_int_equal(tu_check_problems(f->st), 0);
}

static void unique_over_duplicates_refused(void **state)
{
    fx_t *f = *state;
    tu_schema(f->st, "{\"name\":\"codes\",\"fields\":[{\"name\":\"code\",\"type\":\"string\"},"
                     "{\"name\":\"n\",\"type\":\"int\"}]}");
    char long1[512], long2[512];
    memset(long1, 'X', 450);
    memcpy(long2, long1, 450);
    snprintf(long1 + 450, 8, "1");
    snprintf(long2 + 450, 8, "2");
    json_t *recs[6];
    const char *codes[] = {"a", "b", "a", "c", long1, long2};
    for (int i = 0; i < 6; i++)
        recs[i] = json_pack("{s:s,s:i}", "code", codes[i], "n", i);
    kith_id_t ids[6];
    tu_create_many(f->st, "codes", recs, 6, ids);
    for (int i = 0; i < 6; i++)
        json_decref(recs[i]);
    json_t *before = tu_coll_json(f->st, "codes");
    store_check_report_t rep0;
    assert_ok(store_check(f->st, &rep0, NULL, NULL));

    /* through a field op */
    store_op_t *op;
    assert_int_equal(field_op(f->st, "codes", "code", "{\"type\":\"string\",\"unique\":true}", &op),
                     KITH_EVALIDATION);
    assert_int_equal(op->diag->nfields >= 1, 1);
    assert_string_equal(op->diag->fields[0].name, "code");
    assert_non_null(strstr(op->diag->msg, "code"));
    store_op_free(op);
    /* through a schema op */
    json_t *def = tu_json("{\"name\":\"codes\",\"fields\":[{\"name\":\"code\",\"type\":\"string\","
                          "\"unique\":true},{\"name\":\"n\",\"type\":\"int\",\"indexed\":true}]}");
    op = store_op_schema(def);
    json_decref(def);
    assert_int_equal(store_exec(f->st, op), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "code");
    store_op_free(op);

    /* nothing changed: same definition, no entries, no jobs */
    json_t *after = tu_coll_json(f->st, "codes");
    assert_true(json_equal(before, after));
    json_decref(after);
    store_check_report_t rep;
    assert_ok(store_check(f->st, &rep, NULL, NULL));
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.index_entries, rep0.index_entries);
    assert_int_equal(rep.jobs, 0);
    assert_int_equal(jobs_pending(f->st), 0);

    /* without the duplicate it works, and is ready at once (filled in the op);
     * the long codes differ only after the 400 bytes an index key keeps */
    op = store_op_delete("codes", &ids[2], 0);
    assert_ok(store_exec(f->st, op));
    store_op_free(op);
    assert_ok(field_op(f->st, "codes", "code", "{\"type\":\"string\",\"unique\":true}", &op));
    json_t *pub = tu_json(op->json);
    assert_string_equal(state_in(pub, "code"), "ready");
    assert_true(json_is_true(json_object_get(def_field(pub, "code"), "unique")));
    assert_int_equal(json_integer_value(json_object_get(pub, "version")),
                     json_integer_value(json_object_get(before, "version")) + 1);
    json_decref(pub);
    store_op_free(op);
    assert_int_equal(jobs_pending(f->st), 0);
    char *p = tu_plan(f->st, "codes", "{\"code\":\"b\"}", NULL);
    assert_string_equal(p, "eq code");
    free(p);
    kith_id_t got[4];
    char flt[600];
    snprintf(flt, sizeof flt, "{\"code\":\"%s\"}", long2);
    assert_int_equal(tu_query_ids(f->st, "codes", flt, NULL, got, 4), 1);
    assert_memory_equal(got[0].b, ids[5].b, ID_LEN);
    /* and it holds from now on */
    assert_int_equal(tu_create(f->st, "codes", "{\"code\":\"a\"}", NULL), KITH_EEXIST);
    assert_ok(tu_create(f->st, "codes", "{\"code\":\"A\"}", NULL));
    assert_int_equal(tu_check_problems(f->st), 0);
    json_decref(before);
}

static uint64_t index_entries(store_t *st)
{
    store_check_report_t rep;
    assert_ok(store_check(st, &rep, NULL, NULL));
    assert_int_equal(rep.problems, 0);
    return rep.index_entries;
}

static void removing_an_index_drops_entries(void **state)
{
    fx_t *f = *state;
    assert_ok(field_op(f->st, "items", "city", "{\"type\":\"string\",\"indexed\":true}", NULL));
    assert_ok(field_op(f->st, "items", "name", "{\"type\":\"string\",\"searchable\":true}", NULL));
    assert_ok(store_jobs_wait(f->st));
    assert_int_equal(index_entries(f->st), 2 * f->n);
    char *p = tu_plan(f->st, "items", "{\"city\":\"c01\"}", NULL);
    assert_string_equal(p, "eq city");
    free(p);
    /* a cursor of the index, to use after it is gone */
    json_t *flt = tu_json("{\"city\":{\"gt\":\"c01\"}}");
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    store_query_t q = {.coll = "items", .filter = flt, .limit = 5};
    rows_t r = {0};
    char *cursor = NULL;
    assert_ok(store_query(rt, &q, row_push, &r, &cursor));
    store_read_end(rt);
    assert_non_null(cursor);

    store_op_t *op;
    assert_ok(field_op(f->st, "items", "city", "{\"type\":\"string\"}", &op));
    assert_int_equal(op->version, 4);
    json_t *pub = tu_json(op->json);
    assert_null(json_object_get(def_field(pub, "city"), "index_state"));
    assert_null(json_object_get(def_field(pub, "city"), "indexed"));
    json_decref(pub);
    store_op_free(op);
    /* queries stop using it at once */
    p = tu_plan(f->st, "items", "{\"city\":\"c01\"}", NULL);
    assert_string_equal(p, "scan");
    free(p);
    assert_ok(store_read_begin(f->st, &rt));
    q.cursor = cursor;
    char *next = NULL;
    assert_int_equal(store_query(rt, &q, row_push, &r, &next), KITH_EINVAL);
    q.cursor = NULL;
    q.sort = "city";
    assert_int_equal(store_query(rt, &q, row_push, &r, &next), KITH_EINVAL);
    store_read_end(rt);
    free(cursor);
    free(r.ids);
    json_decref(flt);

    assert_ok(store_jobs_wait(f->st));
    assert_int_equal(index_entries(f->st), f->n); /* the prefix index on name is left */
    compare_with_scan(f->st, "{\"city\":\"c01\"}", NULL, "scan");

    assert_ok(field_op(f->st, "items", "name", "{\"type\":\"string\"}", NULL));
    assert_ok(store_jobs_wait(f->st));
    assert_int_equal(index_entries(f->st), 0);
    p = tu_plan(f->st, "items", "{\"name\":{\"prefix\":\"a\"}}", NULL);
    assert_string_equal(p, "scan");
    free(p);

    /* indexed again: a new index, built from scratch */
    assert_ok(field_op(f->st, "items", "city", "{\"type\":\"string\",\"indexed\":true}", NULL));
    assert_ok(store_jobs_wait(f->st));
    assert_int_equal(index_entries(f->st), f->n);
    compare_with_scan(f->st, "{\"city\":{\"lt\":\"c05\"}}", NULL, "range city");
}

static void build_survives_restart(void **state)
{
    fx_t *f = *state;
    json_t *def = tu_json("{\"type\":\"int\",\"indexed\":true}");
    hold_t h;
    store_op_t *op = submit_held(f->st, store_op_field("items", "score", def), &h);
    json_decref(def);
    assert_int_equal(op->status, 0);
    /* close at once: whatever the job has not done yet is persisted and
     * resumed by the next writer */
    hold_release(&h);
    store_close(f->st);
    hold_destroy(&h);
    store_op_free(op);
    f->st = tu_store_reopen(f->dir, 0);
    assert_ok(store_jobs_wait(f->st));
    char st[16];
    assert_string_equal(state_now(f->st, "score", st), "ready");
    assert_int_equal(index_entries(f->st), f->n);
    compare_with_scan(f->st, "{\"score\":{\"gte\":0,\"lt\":10}}", NULL, "range score");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(build_on_live_store, setup, teardown),
        cmocka_unit_test_setup_teardown(building_then_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(unique_over_duplicates_refused, setup_small, teardown),
        cmocka_unit_test_setup_teardown(removing_an_index_drops_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(build_survives_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
