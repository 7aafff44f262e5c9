/* Tests core/store/store_query.c: sort orders, the planner's choice of access
 * path, limits, keyset cursors (also while other writes insert and delete
 * records between pages or from another thread), cursor validation and
 * examine_max. */
#include "testutil.h"

#include "base/mem.h"
#include "store/store_filter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define NBASE 60

static const char *deals_def =
    "{\"name\":\"deals\",\"fields\":["
    "{\"name\":\"rank\",\"type\":\"int\",\"indexed\":true},"
    "{\"name\":\"amount\",\"type\":\"money\",\"indexed\":true},"
    "{\"name\":\"stage\",\"type\":\"enum\",\"values\":[\"new\",\"won\",\"lost\"],\"indexed\":true},"
    "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
    "{\"name\":\"name\",\"type\":\"string\",\"searchable\":true},"
    "{\"name\":\"city\",\"type\":\"string\",\"indexed\":true},"
    "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\",\"indexed\":true},"
    "{\"name\":\"note\",\"type\":\"string\"}]}";

static const char *const stages[] = {"new", "won", "lost"};
static const char *const names[] = {"alpha", "Beta", "gamma", "ALPHONSE"};
static const char *const cities[] = {"berlin", "Austin", "cairo", "Delhi", "berlin"};

typedef struct fx {
    store_t *st;
    char *dir;
    uint64_t rng;
    unsigned serial; /* for unique e-mails of records made during a test */
} fx_t;

static uint32_t rnd(fx_t *f)
{
    /* xorshift64*: a fixed seed keeps every run the same */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (uint32_t)((f->rng * 2685821657736338717ull) >> 32);
}

/* The fields of base record i (deterministic), or of a random new record. */
static json_t *deal_fields(unsigned i, unsigned serial)
{
    json_t *j = json_object();
    if (i % 7 != 0) json_object_set_new(j, "rank", json_integer((json_int_t)((i * 37) % 13) - 6));
    int cents = (int)((i * 53) % 200) - 100;
    char amt[32];
    snprintf(amt, sizeof amt, "%s%d.%02d", cents < 0 ? "-" : "", abs(cents) / 10, abs(cents) % 10);
    json_object_set_new(j, "amount", json_string(amt));
    json_object_set_new(j, "stage", json_string(stages[i % 3]));
    char s[64];
    snprintf(s, sizeof s, "user%05u@Example.com", serial);
    json_object_set_new(j, "email", json_string(s));
    snprintf(s, sizeof s, "%s%02u", names[i % 4], i % 100);
    json_object_set_new(j, "name", json_string(s));
    if (i % 11 != 0) json_object_set_new(j, "city", json_string(cities[i % 5]));
    json_t *tags = json_array();
    if (i % 2) {
        snprintf(s, sizeof s, "t%u", i % 4);
        json_array_append_new(tags, json_string(s));
        snprintf(s, sizeof s, "t%u", i % 6);
        json_array_append_new(tags, json_string(s));
    }
    json_object_set_new(j, "tags", tags);
    snprintf(s, sizeof s, "n%u", i % 10);
    json_object_set_new(j, "note", json_string(s));
    return j;
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->rng = 0x9E3779B97F4A7C15ull;
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, deals_def);
    json_t *recs[NBASE];
    for (unsigned i = 0; i < NBASE; i++)
        recs[i] = deal_fields(i, f->serial++);
    /* a few batches, so records share created_at and id milliseconds */
    tu_create_many(f->st, "deals", recs, NBASE / 2, NULL);
    tu_create_many(f->st, "deals", recs + NBASE / 2, NBASE / 2, NULL);
    for (unsigned i = 0; i < NBASE; i++)
        json_decref(recs[i]);
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

/* ---- collecting rows ---- */

typedef struct rows {
    kith_id_t *ids;
    json_t **fields;
    int64_t *created;
    size_t n, cap;
} rows_t;

static void rows_push(rows_t *r, const kith_id_t *id, json_t *fields, int64_t created)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->ids = xrealloc(r->ids, r->cap * sizeof *r->ids);
        r->fields = xrealloc(r->fields, r->cap * sizeof *r->fields);
        r->created = xrealloc(r->created, r->cap * sizeof *r->created);
    }
    r->ids[r->n] = *id;
    r->fields[r->n] = fields;
    r->created[r->n] = created;
    r->n++;
}

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->fields[i]);
    free(r->ids);
    free(r->fields);
    free(r->created);
    memset(r, 0, sizeof *r);
}

static int row_collect(void *ctx, const store_record_t *rec)
{
    rows_push(ctx, &rec->id, store_record_fields(rec), rec->created_us);
    return 0;
}

static long rows_find(const rows_t *r, const kith_id_t *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (memcmp(r->ids[i].b, id->b, ID_LEN) == 0) return (long)i;
    return -1;
}

typedef struct qspec {
    const char *filter; /* JSON text or NULL */
    const char *sort;
    const char *plan; /* expected plan name */
} qspec_t;

/* One page; returns the status. *next gets the cursor (NULL at the end). */
static int query_page(store_t *st, const json_t *flt, const char *sort, size_t limit,
                      size_t examine_max, const char *cursor, rows_t *out, char **next)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_query_t q = {.coll = "deals",
                       .filter = flt,
                       .sort = sort,
                       .limit = limit,
                       .cursor = cursor,
                       .examine_max = examine_max};
    int rc = store_query(rt, &q, row_collect, out, next);
    store_read_end(rt);
    return rc;
}

/* Every page to the end (asserting success); returns the number of pages. */
static size_t query_all(store_t *st, const char *filter, const char *sort, size_t limit,
                        size_t examine_max, rows_t *out)
{
    json_t *flt = filter ? tu_json(filter) : NULL;
    char *cursor = NULL;
    size_t pages = 0;
    do {
        char *next = NULL;
        size_t before = out->n;
        int rc = query_page(st, flt, sort, limit, examine_max, cursor, out, &next);
        if (rc) fail_msg("%s sort %s: %s", filter, sort, err_last()->msg);
        if (out->n - before > (limit ? limit : 50)) fail_msg("a page longer than its limit");
        if (examine_max && out->n - before > examine_max)
            fail_msg("a page returned more rows than it may examine");
        free(cursor);
        cursor = next;
        if (++pages > 100000) fail_msg("pagination does not end");
    } while (cursor);
    if (flt) json_decref(flt);
    return pages;
}

/* The records matching filter, found by reading every record and matching the
 * compiled filter: what a scan returns (id order). */
static void truth(store_t *st, const char *filter, rows_t *out)
{
    rows_t all = {0};
    query_all(st, NULL, NULL, 10000, 0, &all);
    json_t *flt = filter ? tu_json(filter) : NULL;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), "deals");
    store_filter_t *cf;
    assert_ok(store_filter_compile(c, flt, &cf));
    for (size_t i = 0; i < all.n; i++) {
        store_record_t rec;
        if (store_get(rt, "deals", &all.ids[i], &rec) != 0) continue;
        int m = store_filter_match(cf, &rec, all.fields[i]);
        assert_true(m >= 0);
        if (m) rows_push(out, &all.ids[i], json_incref(all.fields[i]), rec.created_us);
    }
    store_filter_free(cf);
    store_read_end(rt);
    if (flt) json_decref(flt);
    rows_free(&all);
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

/* r's ids, sorted (free()). */
static kith_id_t *sorted_ids(const rows_t *r)
{
    kith_id_t *x = xcalloc(r->n + 1, sizeof *x);
    if (r->n) memcpy(x, r->ids, r->n * sizeof *x);
    qsort(x, r->n, sizeof *x, id_cmp);
    return x;
}

/* a and b hold the same ids, each once. */
static void assert_same_set(const rows_t *a, const rows_t *b, const char *what)
{
    if (a->n != b->n) fail_msg("%s: %zu records, want %zu", what, a->n, b->n);
    kith_id_t *x = sorted_ids(a), *y = sorted_ids(b);
    for (size_t i = 0; i < a->n; i++) {
        if (i && memcmp(x[i].b, x[i - 1].b, ID_LEN) == 0) fail_msg("%s: a duplicate", what);
        if (memcmp(x[i].b, y[i].b, ID_LEN) != 0) fail_msg("%s: the sets differ", what);
    }
    free(x);
    free(y);
}

/* ---- sorting ---- */

static double money_value(const json_t *v)
{
    return strtod(json_string_value(v), NULL);
}

/* Natural order of field values of deals; missing (NULL) first. */
static int value_cmp(const char *field, const json_t *a, const json_t *b)
{
    if (!a || !b) return (a != NULL) - (b != NULL);
    if (strcmp(field, "rank") == 0) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    if (strcmp(field, "amount") == 0) {
        double x = money_value(a), y = money_value(b);
        return (x > y) - (x < y);
    }
    if (strcmp(field, "email") == 0) return strcasecmp(json_string_value(a), json_string_value(b));
    return strcmp(json_string_value(a), json_string_value(b));
}

/* rows are in sort order: by the field (missing first), ties by id; reversed
 * for "-field". */
static void assert_sorted(const rows_t *r, const char *sort)
{
    int desc = sort[0] == '-';
    const char *field = sort + (sort[0] == '-' || sort[0] == '+');
    int by_id = strcmp(field, "id") == 0 || strcmp(field, "created_at") == 0;
    for (size_t i = 1; i < r->n; i++) {
        int c = by_id ? 0
                      : value_cmp(field, json_object_get(r->fields[i - 1], field),
                                  json_object_get(r->fields[i], field));
        if (c == 0) c = memcmp(r->ids[i - 1].b, r->ids[i].b, ID_LEN);
        if (desc) c = -c;
        if (c >= 0) fail_msg("sort %s: rows %zu and %zu are out of order", sort, i - 1, i);
    }
}

static void sort_orders(void **state)
{
    fx_t *f = *state;
    rows_t all = {0};
    truth(f->st, NULL, &all);
    assert_int_equal(all.n, NBASE);

    const char *sorts[] = {"id",    "-id",   "+id",    "created_at", "-created_at",
                           "rank",  "-rank", "amount", "-amount",    "city",
                           "-city", "email", "-email", "stage",      "-stage"};
    for (size_t s = 0; s < ARRAY_LEN(sorts); s++) {
        for (size_t limit = 1; limit <= 10000; limit = limit == 1   ? 7
                                                       : limit == 7 ? 10000
                                                                    : 99999) {
            rows_t r = {0};
            query_all(f->st, NULL, sorts[s], limit, 0, &r);
            assert_same_set(&r, &all, sorts[s]);
            assert_sorted(&r, sorts[s]);
            rows_free(&r);
        }
    }
    /* no sort is id order */
    rows_t r = {0};
    query_all(f->st, NULL, NULL, 5, 0, &r);
    assert_sorted(&r, "id");
    rows_free(&r);

    /* created_at order is id order: an id carries its creation millisecond */
    query_all(f->st, NULL, "created_at", 100, 0, &r);
    for (size_t i = 1; i < r.n; i++)
        assert_true(r.created[i - 1] / 1000 <= r.created[i] / 1000);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(id_time_ms(&r.ids[i]), r.created[i] / 1000);
    rows_free(&r);

    /* records without the field come first ascending, last descending */
    query_all(f->st, NULL, "rank", 10000, 0, &r);
    assert_null(json_object_get(r.fields[0], "rank"));
    assert_non_null(json_object_get(r.fields[r.n - 1], "rank"));
    rows_free(&r);
    query_all(f->st, NULL, "-city", 10000, 0, &r);
    assert_non_null(json_object_get(r.fields[0], "city"));
    assert_null(json_object_get(r.fields[r.n - 1], "city"));
    rows_free(&r);

    /* a sort with a filter: the filter's records, in sort order */
    const qspec_t filtered[] = {
        {"{\"stage\":\"won\"}", "rank", NULL},
        {"{\"rank\":{\"gte\":0}}", "-rank", NULL},
        {"{\"rank\":{\"gt\":-3,\"lte\":4}}", "rank", NULL},
        {"{\"city\":{\"in\":[\"berlin\",\"cairo\"]}}", "-amount", NULL},
        {"{\"name\":{\"prefix\":\"alp\"}}", "email", NULL},
        {"{\"tags\":\"t1\"}", "-id", NULL},
        {"{\"rank\":{\"ne\":2}}", "rank", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(filtered); i++) {
        rows_t want = {0}, got = {0};
        truth(f->st, filtered[i].filter, &want);
        assert_true(want.n > 0);
        query_all(f->st, filtered[i].filter, filtered[i].sort, 4, 0, &got);
        assert_same_set(&got, &want, filtered[i].filter);
        assert_sorted(&got, filtered[i].sort);
        rows_free(&want);
        rows_free(&got);
    }
    rows_free(&all);
}

static void expect_query_error(store_t *st, const char *filter, const char *sort, int code,
                               const char *words)
{
    json_t *flt = filter ? tu_json(filter) : NULL;
    rows_t r = {0};
    char *next = NULL;
    int rc = query_page(st, flt, sort, 10, 0, NULL, &r, &next);
    if (rc != code) fail_msg("sort %s: status %d, want %d", sort, rc, code);
    if (!strstr(err_last()->msg, words))
        fail_msg("sort %s: message '%s' lacks '%s'", sort, err_last()->msg, words);
    assert_null(next);
    assert_int_equal(r.n, 0);
    if (flt) json_decref(flt);
}

static void sort_refused(void **state)
{
    fx_t *f = *state;
    expect_query_error(f->st, NULL, "note", KITH_EINVAL, "sort"); /* not indexed */
    expect_query_error(f->st, NULL, "-note", KITH_EINVAL, "note");
    expect_query_error(f->st, NULL, "name", KITH_EINVAL, "name");  /* searchable only */
    expect_query_error(f->st, NULL, "tags", KITH_EINVAL, "array"); /* an array */
    expect_query_error(f->st, NULL, "-tags", KITH_EINVAL, "tags");
    expect_query_error(f->st, NULL, "nope", KITH_EINVAL, "nope");
    expect_query_error(f->st, NULL, "version", KITH_EINVAL, "version");
    expect_query_error(f->st, NULL, "updated_at", KITH_EINVAL, "updated_at");
    expect_query_error(f->st, "{\"stage\":\"won\"}", "note", KITH_EINVAL, "sort");
}

static void plan_names(void **state)
{
    fx_t *f = *state;
    rows_t all = {0};
    truth(f->st, NULL, &all);
    char a[ID_TEXT_LEN + 1], b[ID_TEXT_LEN + 1];
    id_encode(&all.ids[3], a);
    id_encode(&all.ids[9], b);
    char by_id[96], by_ids[128], id_and_stage[128];
    snprintf(by_id, sizeof by_id, "{\"id\":\"%s\"}", a);
    snprintf(by_ids, sizeof by_ids, "{\"id\":{\"in\":[\"%s\",\"%s\"]}}", a, b);
    snprintf(id_and_stage, sizeof id_and_stage, "{\"stage\":\"won\",\"id\":\"%s\"}", a);
    buf_t in64 = BUF_INIT, in65 = BUF_INIT;
    buf_adds(&in64, "{\"rank\":{\"in\":[0");
    for (int i = 1; i < 64; i++)
        buf_addf(&in64, ",%d", i);
    buf_adds(&in64, "]}}");
    buf_adds(&in65, "{\"rank\":{\"in\":[0");
    for (int i = 1; i < 65; i++)
        buf_addf(&in65, ",%d", i);
    buf_adds(&in65, "]}}");

    const qspec_t cases[] = {
        {by_id, NULL, "ids"},
        {by_ids, NULL, "ids"},
        {by_ids, "-id", "ids desc"},
        {id_and_stage, NULL, "ids"},
        {"{\"stage\":\"won\"}", NULL, "eq stage"},
        {"{\"stage\":\"won\"}", "-id", "eq stage desc"},
        {"{\"stage\":\"won\"}", "created_at", "eq stage"},
        {"{\"stage\":\"won\",\"email\":\"user00001@example.com\"}", NULL, "eq email"},
        {"{\"stage\":\"won\",\"rank\":{\"gt\":1}}", NULL, "eq stage"},
        {"{\"tags\":\"t1\"}", NULL, "eq tags"},
        {"{\"stage\":{\"in\":[\"won\",\"lost\"]}}", NULL, "in stage"},
        {"{\"stage\":{\"in\":[\"won\",\"lost\"]}}", "-created_at", "in stage desc"},
        {in64.p, NULL, "in rank"},
        {in65.p, NULL, "scan"},
        {"{\"rank\":{\"gt\":1}}", NULL, "range rank"},
        {"{\"rank\":{\"gt\":1}}", "id", "scan"},
        {"{\"rank\":{\"gt\":1}}", "rank", "range rank"},
        {"{\"rank\":{\"gt\":1}}", "-rank", "range rank desc"},
        {"{\"rank\":{\"gt\":1}}", "city", "range city"},
        {"{\"amount\":{\"lte\":\"0\"}}", NULL, "range amount"},
        {"{\"tags\":{\"gte\":\"t3\"}}", NULL, "range tags"},
        {"{\"name\":{\"prefix\":\"al\"}}", NULL, "range prefix:name"},
        {"{\"name\":{\"prefix\":\"al\"}}", "id", "scan"},
        {"{\"email\":{\"prefix\":\"USER0\"}}", NULL, "range email"},
        {"{\"city\":{\"prefix\":\"b\"}}", NULL, "scan"},
        {"{\"note\":\"n1\"}", NULL, "scan"},
        {"{\"stage\":{\"ne\":\"won\"}}", NULL, "scan"},
        {"{\"or\":[{\"stage\":\"won\"},{\"rank\":1}]}", NULL, "scan"},
        {"{\"not\":{\"stage\":\"won\"}}", NULL, "scan"},
        {"{}", NULL, "scan"},
        {NULL, NULL, "scan"},
        {NULL, "-id", "scan desc"},
        {NULL, "-created_at", "scan desc"},
        {NULL, "rank", "range rank"},
        {NULL, "-email", "range email desc"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *p = tu_plan(f->st, "deals", cases[i].filter, cases[i].sort);
        if (strcmp(p, cases[i].plan) != 0)
            fail_msg("%s sort %s: plan '%s', want '%s'", cases[i].filter, cases[i].sort, p,
                     cases[i].plan);
        free(p);
        /* and every plan returns what a scan finds */
        rows_t want = {0}, got = {0};
        truth(f->st, cases[i].filter, &want);
        query_all(f->st, cases[i].filter, cases[i].sort, 3, 0, &got);
        assert_same_set(&got, &want, cases[i].plan);
        rows_free(&want);
        rows_free(&got);
    }

    /* direct reads page too: 12 ids (one repeated, one of no record), in id order */
    buf_t many = BUF_INIT;
    buf_adds(&many, "{\"id\":{\"in\":[");
    for (size_t i = 0; i < 12; i++) {
        char t[ID_TEXT_LEN + 1];
        id_encode(&all.ids[(i * 5) % NBASE], t);
        buf_addf(&many, "%s\"%s\"", i ? "," : "", t);
    }
    char again[ID_TEXT_LEN + 1];
    id_encode(&all.ids[10], again);
    buf_addf(&many, ",\"%s\",\"%s\"]}}", again, "00000000000000000000000000");
    for (int desc = 0; desc < 2; desc++) {
        char *p = tu_plan(f->st, "deals", many.p, desc ? "-id" : NULL);
        assert_string_equal(p, desc ? "ids desc" : "ids");
        free(p);
        rows_t want = {0}, got = {0};
        truth(f->st, many.p, &want);
        assert_int_equal(want.n, 12);
        for (size_t limit = 1; limit <= 5; limit++) {
            query_all(f->st, many.p, desc ? "-id" : "id", limit, 0, &got);
            assert_same_set(&got, &want, "ids");
            assert_sorted(&got, desc ? "-id" : "id");
            rows_free(&got);
        }
        rows_free(&want);
    }
    buf_free(&many);
    buf_free(&in64);
    buf_free(&in65);
    rows_free(&all);
}

/* One query of every plan kind, ascending and descending. */
static const qspec_t every_plan[] = {
    {NULL, NULL, "scan"},
    {NULL, "-id", "scan desc"},
    {"{\"note\":{\"in\":[\"n1\",\"n4\",\"n7\"]}}", NULL, "scan"},
    {"{\"stage\":\"won\"}", NULL, "eq stage"},
    {"{\"stage\":\"won\"}", "-id", "eq stage desc"},
    {"{\"stage\":{\"in\":[\"won\",\"lost\"]}}", NULL, "in stage"},
    {"{\"stage\":{\"in\":[\"won\",\"lost\"]}}", "-id", "in stage desc"},
    {"{\"tags\":{\"in\":[\"t1\",\"t3\"]}}", NULL, "in tags"},
    {"{\"rank\":{\"gte\":-2}}", NULL, "range rank"},
    {"{\"rank\":{\"gt\":-4,\"lt\":3}}", NULL, "range rank"},
    {"{\"tags\":{\"gte\":\"t2\"}}", NULL, "range tags"},
    {"{\"name\":{\"prefix\":\"alp\"}}", NULL, "range prefix:name"},
    {"{\"email\":{\"prefix\":\"user000\"}}", NULL, "range email"},
    {NULL, "rank", "range rank"},
    {NULL, "-rank", "range rank desc"},
    {"{\"city\":{\"gt\":\"B\"}}", "city", "range city"},
    {"{\"city\":{\"gt\":\"B\"}}", "-city", "range city desc"},
    {"{\"stage\":\"lost\"}", "-amount", "range amount desc"},
};

static void pagination_every_plan(void **state)
{
    fx_t *f = *state;
    for (size_t i = 0; i < ARRAY_LEN(every_plan); i++) {
        const qspec_t *q = &every_plan[i];
        char *p = tu_plan(f->st, "deals", q->filter, q->sort);
        assert_string_equal(p, q->plan);
        free(p);
        rows_t want = {0}, one = {0};
        truth(f->st, q->filter, &want);
        assert_true(want.n > 3);
        size_t pages = query_all(f->st, q->filter, q->sort, 10000, 0, &one);
        assert_int_equal(pages, 1);
        assert_same_set(&one, &want, q->plan);
        if (q->sort) assert_sorted(&one, q->sort);
        for (size_t limit = 1; limit <= 8; limit++) {
            rows_t paged = {0};
            pages = query_all(f->st, q->filter, q->sort, limit, 0, &paged);
            /* exactly the one-page sequence, in the same order */
            assert_int_equal(paged.n, one.n);
            for (size_t k = 0; k < one.n; k++)
                if (memcmp(paged.ids[k].b, one.ids[k].b, ID_LEN) != 0)
                    fail_msg("%s: limit %zu: row %zu differs", q->plan, limit, k);
            /* full pages, then no cursor: at most one trailing empty page */
            assert_true(pages >= (one.n + limit - 1) / limit);
            assert_true(pages <= (one.n + limit - 1) / limit + 1);
            rows_free(&paged);
        }
        rows_free(&want);
        rows_free(&one);
    }
}

/* ---- pagination while records come and go ---- */

static kith_id_t create_random(fx_t *f)
{
    json_t *j = deal_fields(rnd(f) % 1000, 100000 + f->serial++);
    store_op_t *op = store_op_create("deals", j);
    json_decref(j);
    assert_ok(store_exec(f->st, op));
    kith_id_t id = op->rid;
    store_op_free(op);
    return id;
}

static void delete_id(store_t *st, const kith_id_t *id)
{
    store_op_t *op = store_op_delete("deals", id, 0);
    assert_ok(store_exec(st, op));
    store_op_free(op);
}

/* Records that existed for the whole pagination and match (stable) were all
 * returned exactly once; nothing was returned twice. */
static void assert_stable_once(const rows_t *got, const rows_t *stable, const char *what)
{
    kith_id_t *x = sorted_ids(got);
    for (size_t i = 1; i < got->n; i++)
        if (memcmp(x[i].b, x[i - 1].b, ID_LEN) == 0) fail_msg("%s: a record came twice", what);
    for (size_t i = 0; i < stable->n; i++)
        if (!bsearch(&stable->ids[i], x, got->n, sizeof *x, id_cmp))
            fail_msg("%s: a record that existed throughout was skipped", what);
    free(x);
}

static void pagination_with_writes_between_pages(void **state)
{
    fx_t *f = *state;
    for (size_t qi = 0; qi < ARRAY_LEN(every_plan); qi++) {
        const qspec_t *q = &every_plan[qi];
        rows_t before = {0};
        truth(f->st, q->filter, &before);
        /* some matching records will be deleted midway: they did not exist
         * throughout, so they are not in the stable set */
        rows_t doomed = {0}, stable = {0};
        for (size_t i = 0; i < before.n; i++) {
            if (i % 4 == 1)
                rows_push(&doomed, &before.ids[i], NULL, 0);
            else
                rows_push(&stable, &before.ids[i], json_incref(before.fields[i]), 0);
        }
        rows_t got = {0}, transient = {0}, created = {0};
        json_t *flt = q->filter ? tu_json(q->filter) : NULL;
        char *cursor = NULL;
        size_t pages = 0, nd = 0;
        do {
            char *next = NULL;
            assert_ok(query_page(f->st, flt, q->sort, 3, 0, cursor, &got, &next));
            free(cursor);
            cursor = next;
            /* between pages: two new records (anywhere in the order), one
             * earlier new record and one doomed record go away */
            for (int k = 0; k < 2; k++) {
                kith_id_t id = create_random(f);
                rows_push(&transient, &id, NULL, 0);
                rows_push(&created, &id, NULL, 0);
            }
            if (transient.n > 2 && rnd(f) % 2) {
                size_t k = rnd(f) % (transient.n - 2);
                delete_id(f->st, &transient.ids[k]);
                transient.ids[k] = transient.ids[--transient.n];
            }
            if (nd < doomed.n) delete_id(f->st, &doomed.ids[nd++]);
            if (++pages > 5000) fail_msg("%s: pagination does not end", q->plan);
        } while (cursor);
        while (nd < doomed.n)
            delete_id(f->st, &doomed.ids[nd++]);
        assert_stable_once(&got, &stable, q->plan);
        /* anything else that came back was created during the pagination */
        for (size_t i = 0; i < got.n; i++)
            if (rows_find(&before, &got.ids[i]) < 0 && rows_find(&created, &got.ids[i]) < 0)
                fail_msg("%s: a record from nowhere", q->plan);
        if (flt) json_decref(flt);
        rows_free(&created);
        rows_free(&got);
        rows_free(&transient);
        rows_free(&doomed);
        rows_free(&stable);
        rows_free(&before);
    }
}

typedef struct churn {
    store_t *st;
    atomic_int stop;
    atomic_uint writes;
    unsigned serial;
    uint64_t rng;
    int failed;
} churn_t;

/* Another thread: creates records and deletes some of its own, until told to
 * stop or after 400 writes. Base records are never touched. */
static void *churn_main(void *arg)
{
    churn_t *c = arg;
    kith_id_t live[16];
    size_t nlive = 0;
    for (int w = 0; w < 400 && !atomic_load(&c->stop); w++) {
        c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(c->rng >> 33);
        store_op_t *op;
        if (nlive == ARRAY_LEN(live) || (nlive > 4 && r % 3 == 0)) {
            size_t k = r % nlive;
            op = store_op_delete("deals", &live[k], 0);
            live[k] = live[--nlive];
        } else {
            json_t *j = deal_fields(r % 1000, c->serial++);
            op = store_op_create("deals", j);
            json_decref(j);
        }
        if (store_exec(c->st, op) != 0) {
            print_error("churn: %s\n", err_last()->msg);
            c->failed = 1;
        } else if (op->kind == STORE_OP_CREATE)
            live[nlive++] = op->rid;
        store_op_free(op);
        atomic_fetch_add(&c->writes, 1);
    }
    atomic_store(&c->stop, 2);
    return NULL;
}

static void pagination_with_concurrent_writer(void **state)
{
    fx_t *f = *state;
    for (size_t qi = 0; qi < ARRAY_LEN(every_plan); qi++) {
        const qspec_t *q = &every_plan[qi];
        rows_t stable = {0};
        truth(f->st, q->filter, &stable);
        churn_t c = {.st = f->st, .rng = 42 + qi, .serial = 500000 + 1000 * (unsigned)qi};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, churn_main, &c), 0);
        rows_t got = {0};
        json_t *flt = q->filter ? tu_json(q->filter) : NULL;
        char *cursor = NULL;
        size_t pages = 0;
        do {
            char *next = NULL;
            assert_ok(query_page(f->st, flt, q->sort, 2, 0, cursor, &got, &next));
            free(cursor);
            cursor = next;
            /* let the other thread write between pages (unless it is done) */
            unsigned w0 = atomic_load(&c.writes);
            while (atomic_load(&c.writes) < w0 + 2 && atomic_load(&c.stop) != 2)
                uv_sleep(1);
            if (++pages > 5000) fail_msg("%s: pagination does not end", q->plan);
        } while (cursor);
        atomic_store(&c.stop, 1);
        pthread_join(th, NULL);
        assert_false(c.failed);
        assert_stable_once(&got, &stable, q->plan);
        if (flt) json_decref(flt);
        rows_free(&got);
        rows_free(&stable);
    }
}

/* ---- cursors ---- */

static char *first_cursor(store_t *st, const char *filter, const char *sort)
{
    json_t *flt = filter ? tu_json(filter) : NULL;
    rows_t r = {0};
    char *next = NULL;
    assert_ok(query_page(st, flt, sort, 2, 0, NULL, &r, &next));
    assert_non_null(next);
    rows_free(&r);
    if (flt) json_decref(flt);
    return next;
}

static int with_cursor(store_t *st, const char *coll, const char *filter, const char *sort,
                       const char *cursor)
{
    json_t *flt = filter ? tu_json(filter) : NULL;
    rows_t r = {0};
    char *next = NULL;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_query_t q = {.coll = coll, .filter = flt, .sort = sort, .limit = 2, .cursor = cursor};
    int rc = store_query(rt, &q, row_collect, &r, &next);
    store_read_end(rt);
    if (rc) {
        assert_null(next);
        assert_int_equal(r.n, 0);
    }
    free(next);
    rows_free(&r);
    if (flt) json_decref(flt);
    return rc;
}

static void cursor_refused(void **state)
{
    fx_t *f = *state;
    tu_schema(f->st, "{\"name\":\"other\",\"fields\":[{\"name\":\"stage\",\"type\":\"string\"}]}");
    const char *won = "{\"stage\":\"won\"}";
    char *c = first_cursor(f->st, won, NULL);
    assert_ok(with_cursor(f->st, "deals", won, NULL, c));
    /* the same filter with its keys in another order is the same query */
    char *c2 = first_cursor(f->st, "{\"stage\":\"won\",\"rank\":{\"gt\":-10}}", NULL);
    assert_ok(with_cursor(f->st, "deals", "{\"rank\":{\"gt\":-10},\"stage\":\"won\"}", NULL, c2));
    assert_int_equal(
        with_cursor(f->st, "deals", "{\"stage\":\"won\",\"rank\":{\"gt\":-9}}", NULL, c2),
        KITH_EINVAL);
    free(c2);
    assert_int_equal(with_cursor(f->st, "deals", "{\"stage\":\"lost\"}", NULL, c), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "deals", NULL, NULL, c), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "deals", won, "-id", c), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "deals", won, "rank", c), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "other", won, NULL, c), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "cursor"));

    /* garbage, truncated, tampered */
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, "!!!"), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, "AAAA"), KITH_EINVAL);
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, "x"), KITH_EINVAL);
    char *cut = xstrdup(c);
    cut[strlen(cut) - 3] = '\0';
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, cut), KITH_EINVAL);
    free(cut);
    char *tampered = xstrdup(c);
    tampered[0] = tampered[0] == 'B' ? 'C' : 'B'; /* the version byte */
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, tampered), KITH_EINVAL);
    free(tampered);
    char longc[2000];
    memset(longc, 'A', sizeof longc - 1);
    longc[sizeof longc - 1] = '\0';
    assert_int_equal(with_cursor(f->st, "deals", won, NULL, longc), KITH_EINVAL);
    /* an empty cursor is no cursor */
    assert_ok(with_cursor(f->st, "deals", won, NULL, ""));
    free(c);

    /* a cursor of a range plan, after its index is removed */
    c = first_cursor(f->st, "{\"rank\":{\"gt\":0}}", NULL);
    char *s = first_cursor(f->st, NULL, "rank");
    json_t *def = tu_json("{\"type\":\"int\"}");
    store_op_t *op = store_op_field("deals", "rank", def);
    json_decref(def);
    assert_ok(store_exec(f->st, op));
    store_op_free(op);
    assert_int_equal(with_cursor(f->st, "deals", "{\"rank\":{\"gt\":0}}", NULL, c), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "indexes changed"));
    assert_int_equal(with_cursor(f->st, "deals", NULL, "rank", s), KITH_EINVAL); /* not sortable */
    free(c);
    free(s);
}

static void examine_max_pages(void **state)
{
    fx_t *f = *state;
    const qspec_t cases[] = {
        {"{\"note\":\"n3\"}", NULL, "scan"},
        {"{\"note\":\"n3\"}", "-id", "scan desc"},
        {"{\"rank\":{\"gte\":0},\"note\":{\"in\":[\"n1\",\"n2\"]}}", NULL, "range rank"},
        {"{\"stage\":\"won\",\"note\":\"n3\"}", NULL, "eq stage"},
        {"{\"note\":\"n3\"}", "rank", "range rank"},
        {"{\"note\":\"nothing\"}", NULL, "scan"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        rows_t want = {0};
        truth(f->st, cases[i].filter, &want);
        for (size_t ex = 1; ex <= 7; ex += 3) {
            rows_t got = {0};
            json_t *flt = tu_json(cases[i].filter);
            char *cursor = NULL;
            size_t pages = 0, short_pages = 0;
            do {
                char *next = NULL;
                size_t before = got.n;
                assert_ok(query_page(f->st, flt, cases[i].sort, 50, ex, cursor, &got, &next));
                assert_true(got.n - before <= ex);
                if (next && got.n - before < 50) short_pages++;
                free(cursor);
                cursor = next;
                if (++pages > 1000) fail_msg("examine_max: pagination does not end");
            } while (cursor);
            json_decref(flt);
            assert_same_set(&got, &want, cases[i].filter);
            if (cases[i].sort) assert_sorted(&got, cases[i].sort);
            /* the whole collection (or the index span) took several bounded pages */
            assert_true(short_pages >= 2);
            rows_free(&got);
        }
        rows_free(&want);
    }
}

static int stop_at_third(void *ctx, const store_record_t *rec)
{
    (void)rec;
    int *n = ctx;
    return ++*n == 3 ? KITH_EVETO : 0;
}

static void limits(void **state)
{
    fx_t *f = *state;
    rows_t r = {0};
    char *next = NULL;
    /* 0 = 50 */
    assert_ok(query_page(f->st, NULL, NULL, 0, 0, NULL, &r, &next));
    assert_int_equal(r.n, 50);
    assert_non_null(next);
    free(next);
    rows_free(&r);
    /* a page that ends at the last record has no cursor */
    assert_ok(query_page(f->st, NULL, "rank", NBASE, 0, NULL, &r, &next));
    assert_int_equal(r.n, NBASE);
    assert_null(next);
    rows_free(&r);
    assert_ok(query_page(f->st, NULL, NULL, NBASE - 1, 0, NULL, &r, &next));
    assert_int_equal(r.n, NBASE - 1);
    assert_non_null(next);
    char *next2 = NULL;
    assert_ok(query_page(f->st, NULL, NULL, NBASE - 1, 0, next, &r, &next2));
    assert_int_equal(r.n, NBASE);
    assert_null(next2);
    free(next);
    rows_free(&r);
    /* at most 10,000 */
    assert_ok(query_page(f->st, NULL, NULL, 10000, 0, NULL, &r, &next));
    assert_null(next);
    rows_free(&r);
    assert_int_equal(query_page(f->st, NULL, NULL, 10001, 0, NULL, &r, &next), KITH_ELIMIT);
    assert_null(next);
    /* the row callback can stop the query with its code */
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    int n = 0;
    store_query_t q = {.coll = "deals"};
    assert_int_equal(store_query(rt, &q, stop_at_third, &n, &next), KITH_EVETO);
    assert_null(next);
    assert_int_equal(n, 3);
    /* collection errors */
    q.coll = "nope";
    assert_int_equal(store_query(rt, &q, stop_at_third, &n, &next), KITH_ENOTFOUND);
    q.coll = NULL;
    assert_int_equal(store_query(rt, &q, stop_at_third, &n, &next), KITH_EINVAL);
    buf_t b = BUF_INIT;
    q.coll = "nope";
    assert_int_equal(store_query_plan(rt, &q, &b), KITH_ENOTFOUND);
    buf_free(&b);
    store_read_end(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sort_orders, setup, teardown),
        cmocka_unit_test_setup_teardown(sort_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(plan_names, setup, teardown),
        cmocka_unit_test_setup_teardown(pagination_every_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(pagination_with_writes_between_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(pagination_with_concurrent_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(cursor_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(examine_max_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
