/* Tests core/store/store_check.c: a clean store's exact counts, and each kind
 * of damage made with plain LMDB while the store is closed (a flipped record
 * byte, a missing, stale, dangling or duplicate index entry, a gap or a lost
 * tail in the change log) reported as a problem naming what is wrong. */
#include "testutil.h"

#include "base/mem.h"

#include <stdio.h>
#include <string.h>

static const char *contacts =
    "{\"name\":\"contacts\",\"fields\":["
    "{\"name\":\"email\",\"type\":\"email\",\"unique\":true},"
    "{\"name\":\"first\",\"type\":\"string\",\"required\":true,\"searchable\":true},"
    "{\"name\":\"stage\",\"type\":\"enum\",\"values\":[\"lead\",\"customer\"],"
    "\"default\":\"lead\",\"indexed\":true},"
    "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\",\"indexed\":true}]}";

static const char *companies =
    "{\"name\":\"companies\",\"fields\":[{\"name\":\"name\",\"type\":\"string\",\"unique\":true}]}";

/* The fixture: c1, c2 (contacts) and k1, k2 (companies) after 7 changes. */
typedef struct fx {
    store_t *st;
    char *dir;
    kith_id_t c1, c2, c3, k1, k2;
} fx_t;

static void exec_ok(store_t *st, store_op_t *op)
{
    assert_ok(store_exec(st, op));
    store_op_free(op);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, contacts);
    tu_schema(f->st, companies);
    /* index entries: email 1, first (prefix) 1, stage 1, tags 2 */
    assert_ok(tu_create(f->st, "contacts",
                        "{\"email\":\"a@x.io\",\"first\":\"Ada\",\"tags\":[\"x\",\"y\"]}", &f->c1));
    /* email NULL 1, prefix 1, stage 1, tags NULL 1 */
    assert_ok(tu_create(f->st, "contacts", "{\"first\":\"Bo\",\"stage\":\"customer\"}", &f->c2));
    assert_ok(tu_create(f->st, "contacts",
                        "{\"email\":\"c@x.io\",\"first\":\"Cy\",\"tags\":[\"x\",\"x\"]}", &f->c3));
    json_t *j = tu_json("{\"name\":\"Acme\"}");
    store_op_t *op = store_op_create("companies", j);
    json_decref(j);
    store_op_set_idem(op, "idem-1");
    assert_ok(store_exec(f->st, op));
    f->k1 = op->rid;
    store_op_free(op);
    assert_ok(tu_create(f->st, "companies", "{\"name\":\"Initech\"}", &f->k2));
    /* c2's tags NULL entry becomes z: same count */
    j = tu_json("{\"tags\":[\"z\"]}");
    exec_ok(f->st, store_op_update("contacts", &f->c2, j, 0));
    json_decref(j);
    exec_ok(f->st, store_op_delete("contacts", &f->c3, 0));
    exec_ok(f->st, store_op_cursor_set("webhooks", 5));
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

#define CLEAN_INDEX_ENTRIES (5 + 4 + 2)
#define CLEAN_LOG_ENTRIES   7

static void clean_store(void **state)
{
    fx_t *f = *state;
    char *problems;
    store_check_report_t rep = tu_check(f->st, &problems);
    if (rep.problems) fail_msg("problems in a clean store: %s", problems);
    assert_string_equal(problems, "");
    free(problems);
    assert_int_equal(rep.collections, 2);
    assert_int_equal(rep.records, 4);
    assert_int_equal(rep.index_entries, CLEAN_INDEX_ENTRIES);
    assert_int_equal(rep.log_entries, CLEAN_LOG_ENTRIES);
    assert_int_equal(rep.last_seq, CLEAN_LOG_ENTRIES);
    assert_int_equal(rep.cursors, 1);
    assert_int_equal(rep.idem_keys, 1);
    assert_int_equal(rep.jobs, 0);
    assert_int_equal(rep.problems, 0);
    /* the same through a read-only open and a writer-less one */
    store_close(f->st);
    store_opts_t o = {.read_only = 1};
    assert_ok(store_open(&f->st, f->dir, &o));
    store_check_report_t ro = tu_check(f->st, NULL);
    assert_memory_equal(&ro, &rep, sizeof rep);
    store_close(f->st);
    f->st = tu_store_reopen(f->dir, 1);
    ro = tu_check(f->st, NULL);
    assert_memory_equal(&ro, &rep, sizeof rep);
    /* an empty store is clean too */
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    store_check_report_t e = tu_check(st, NULL);
    assert_int_equal(e.problems + e.records + e.collections + e.log_entries + e.index_entries, 0);
    tu_store_close(st, dir);
}

/* ---- helpers for damage ------------------------------------------------ */

typedef struct ids {
    uint32_t contacts, companies;
    uint32_t email, stage, tags, first_prefix;
} ids_t;

static ids_t schema_ids(store_t *st)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    const store_schema_t *s = store_read_schema(rt);
    const store_coll_t *c = store_schema_coll(s, "contacts");
    const store_coll_t *k = store_schema_coll(s, "companies");
    ids_t x = {c->id,
               k->id,
               store_coll_field(c, "email")->index_id,
               store_coll_field(c, "stage")->index_id,
               store_coll_field(c, "tags")->index_id,
               store_coll_field(c, "first")->prefix_id};
    store_read_end(rt);
    assert_true(x.email && x.stage && x.tags && x.first_prefix);
    return x;
}

static char *text_id(const kith_id_t *id, char out[ID_TEXT_LEN + 1])
{
    id_encode(id, out);
    return out;
}

/* Runs the check on the damaged store; returns the problems, expecting n. */
static char *check_expect(fx_t *f, uint64_t n)
{
    f->st = tu_store_reopen(f->dir, 0);
    char *problems;
    store_check_report_t rep = tu_check(f->st, &problems);
    if (rep.problems != n)
        fail_msg("%llu problems, want %llu:\n%s", (unsigned long long)rep.problems,
                 (unsigned long long)n, problems);
    return problems;
}

static void expect_in(const char *problems, const char *a, const char *b, const char *c)
{
    /* one line holding all three */
    char *copy = xstrdup(problems);
    int found = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save))
        found = strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c));
    free(copy);
    if (!found)
        fail_msg("no problem names '%s' / '%s' / '%s' in:\n%s", a, b ? b : "", c ? c : "",
                 problems);
}

/* ---- records -------------------------------------------------------------- */

typedef struct flip {
    uint8_t key[20];
    const char *find;
} flip_t;

static int flip_fn(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    flip_t *fl = ctx;
    MDB_val k = {20, fl->key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc) return rc;
    uint8_t *copy = xmemdup(v.mv_data, v.mv_size);
    uint8_t *p = memmem(copy + 32, v.mv_size - 32, fl->find, strlen(fl->find));
    if (p) p[0] ^= 0x01;
    MDB_val nv = {v.mv_size, copy};
    rc = p ? mdb_put(txn, dbi, &k, &nv, 0) : -1;
    free(copy);
    return rc;
}

static void flipped_record_byte(void **state)
{
    fx_t *f = *state;
    ids_t x = schema_ids(f->st);
    flip_t fl = {.find = "Acme"};
    store_u32be(fl.key, x.companies);
    memcpy(fl.key + 4, f->k1.b, ID_LEN);
    store_close(f->st);
    tu_raw_edit(f->dir, "records", flip_fn, &fl);
    char *problems = check_expect(f, 1);
    char s[ID_TEXT_LEN + 1];
    expect_in(problems, text_id(&f->k1, s), "companies", "checksum");
    free(problems);
}

/* ---- index entries ------------------------------------------------------ */

typedef struct ientry {
    uint32_t index_id;
    kith_id_t of;      /* the record whose entry is used */
    int del;           /* delete that entry */
    kith_id_t add_for; /* else: add the same key for this record */
} ientry_t;

static int index_fn(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    ientry_t *e = ctx;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) return rc;
    MDB_val k, d;
    uint8_t key[512];
    size_t klen = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT))
        if (k.mv_size >= 5 && load_u32be(k.mv_data) == e->index_id && d.mv_size == ID_LEN &&
            memcmp(d.mv_data, e->of.b, ID_LEN) == 0) {
            klen = k.mv_size;
            memcpy(key, k.mv_data, klen);
            break;
        }
    mdb_cursor_close(cur);
    if (!klen) return -1;
    MDB_val kk = {klen, key};
    if (e->del) {
        MDB_val dd = {ID_LEN, e->of.b};
        return mdb_del(txn, dbi, &kk, &dd);
    }
    MDB_val dd = {ID_LEN, e->add_for.b};
    return mdb_put(txn, dbi, &kk, &dd, 0);
}

static void deleted_index_entry(void **state)
{
    fx_t *f = *state;
    ids_t x = schema_ids(f->st);
    ientry_t e = {.index_id = x.stage, .of = f->c1, .del = 1};
    ientry_t p = {.index_id = x.first_prefix, .of = f->c2, .del = 1};
    store_close(f->st);
    tu_raw_edit(f->dir, "index", index_fn, &e);
    tu_raw_edit(f->dir, "index", index_fn, &p);
    char *problems = check_expect(f, 2);
    char s[ID_TEXT_LEN + 1];
    expect_in(problems, text_id(&f->c1, s), "index on stage", "lacks");
    expect_in(problems, text_id(&f->c2, s), "prefix index on first", "lacks");
    free(problems);
    store_check_report_t rep = tu_check(f->st, NULL);
    assert_int_equal(rep.index_entries, CLEAN_INDEX_ENTRIES - 2);
}

static void stale_index_entry(void **state)
{
    fx_t *f = *state;
    ids_t x = schema_ids(f->st);
    /* c2 listed under c1's stage (lead; c2 is a customer) */
    ientry_t e = {.index_id = x.stage, .of = f->c1, .add_for = f->c2};
    store_close(f->st);
    tu_raw_edit(f->dir, "index", index_fn, &e);
    char *problems = check_expect(f, 1);
    char s[ID_TEXT_LEN + 1];
    expect_in(problems, text_id(&f->c2, s), "stale", "stage");
    free(problems);
    store_check_report_t rep = tu_check(f->st, NULL);
    assert_int_equal(rep.index_entries, CLEAN_INDEX_ENTRIES + 1);
}

static void dangling_index_entry(void **state)
{
    fx_t *f = *state;
    ids_t x = schema_ids(f->st);
    /* the deleted c3 back under c1's tag "x" */
    ientry_t e = {.index_id = x.tags, .of = f->c1, .add_for = f->c3};
    store_close(f->st);
    tu_raw_edit(f->dir, "index", index_fn, &e);
    char *problems = check_expect(f, 1);
    char s[ID_TEXT_LEN + 1];
    expect_in(problems, text_id(&f->c3, s), "missing record", "tags");
    free(problems);
}

static void duplicate_in_unique_index(void **state)
{
    fx_t *f = *state;
    ids_t x = schema_ids(f->st);
    /* c2 under c1's e-mail: two records for one unique value, and a stale entry */
    ientry_t e = {.index_id = x.email, .of = f->c1, .add_for = f->c2};
    store_close(f->st);
    tu_raw_edit(f->dir, "index", index_fn, &e);
    char *problems = check_expect(f, 2);
    char s[ID_TEXT_LEN + 1];
    expect_in(problems, "unique index on email", "several", NULL);
    expect_in(problems, text_id(&f->c2, s), "stale", "email");
    free(problems);
}

/* ---- the change log ---------------------------------------------------- */

typedef struct logdel {
    uint64_t seq;
} logdel_t;

static int log_del_fn(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    logdel_t *l = ctx;
    uint8_t key[8];
    store_u64be(key, l->seq);
    MDB_val k = {8, key};
    return mdb_del(txn, dbi, &k, NULL);
}

static void log_gap(void **state)
{
    fx_t *f = *state;
    logdel_t l = {3};
    store_close(f->st);
    tu_raw_edit(f->dir, "log", log_del_fn, &l);
    char *problems = check_expect(f, 1);
    expect_in(problems, "change log", "gap between 2 and 4", NULL);
    free(problems);
    store_check_report_t rep = tu_check(f->st, NULL);
    assert_int_equal(rep.log_entries, CLEAN_LOG_ENTRIES - 1);
    assert_int_equal(rep.last_seq, CLEAN_LOG_ENTRIES);
}

static void log_head_and_tail_lost(void **state)
{
    fx_t *f = *state;
    logdel_t first = {1}, last = {CLEAN_LOG_ENTRIES};
    store_close(f->st);
    tu_raw_edit(f->dir, "log", log_del_fn, &first);
    tu_raw_edit(f->dir, "log", log_del_fn, &last);
    char *problems = check_expect(f, 2);
    expect_in(problems, "change log", "starts at 2", NULL);
    expect_in(problems, "change log", "ends at 6", "meta says 7");
    free(problems);
}

static void cursor_beyond_the_log(void **state)
{
    fx_t *f = *state;
    logdel_t l6 = {6}, l7 = {7};
    store_close(f->st);
    tu_raw_edit(f->dir, "log", log_del_fn, &l7);
    tu_raw_edit(f->dir, "log", log_del_fn, &l6);
    /* the log now ends at 5 (meta says 7), the cursor sits at 5: fine */
    char *problems = check_expect(f, 1);
    expect_in(problems, "ends at 5", NULL, NULL);
    free(problems);
    store_close(f->st);
    logdel_t l5 = {5};
    tu_raw_edit(f->dir, "log", log_del_fn, &l5);
    problems = check_expect(f, 2);
    expect_in(problems, "cursor 'webhooks'", "beyond", NULL);
    free(problems);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(clean_store, setup, teardown),
        cmocka_unit_test_setup_teardown(flipped_record_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_index_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_index_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(dangling_index_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_in_unique_index, setup, teardown),
        cmocka_unit_test_setup_teardown(log_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(log_head_and_tail_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(cursor_beyond_the_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
