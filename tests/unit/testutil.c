#include "testutil.h"

#include "base/mem.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/kith-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) fail_msg("mkdtemp failed");
    return xstrdup(tmpl);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)(n > 0 ? n : 0) + 1);
    *len = n > 0 ? fread(p, 1, (size_t)n, f) : 0;
    p[*len] = '\0';
    fclose(f);
    return p;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t tu_source_files(const char *rel, const char *prefix, const char *suffix, char **names,
                       size_t max, char *dir, size_t dircap)
{
    const char *src = getenv("KITH_SOURCE_DIR");
    snprintf(dir, dircap, "%s/%s", src ? src : "../..", rel);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s (set KITH_SOURCE_DIR)", dir);
    size_t n = 0, pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l > pl + sl && strncmp(e->d_name, prefix, pl) == 0 &&
            strcmp(e->d_name + l - sl, suffix) == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    return n;
}

json_t *tu_json(const char *text)
{
    json_t *j = json_parse(text, strlen(text));
    if (!j) fail_msg("bad test JSON: %s (%s)", err_last()->msg, text);
    return j;
}

store_t *tu_store_open(char **dir, int no_writer, size_t map_size)
{
    char *base = tu_tmpdir();
    size_t n = strlen(base) + 8;
    char *d = xmalloc(n);
    snprintf(d, n, "%s/ws", base);
    free(base);
    store_opts_t o = {.create = 1, .no_writer = no_writer, .map_size = map_size};
    store_t *st = NULL;
    assert_ok(store_open(&st, d, &o));
    *dir = d;
    return st;
}

void tu_store_close(store_t *st, char *dir)
{
    store_close(st);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    tu_rmtree(dir);
    free(dir);
}

void tu_schema(store_t *st, const char *def)
{
    json_t *j = tu_json(def);
    store_op_t *op = store_op_schema(j);
    json_decref(j);
    int rc = store_exec(st, op);
    if (rc) {
        const err_diag_t *e = err_last();
        fail_msg("schema op failed: %s (%s: %s)", e->msg, e->nfields ? e->fields[0].name : "",
                 e->nfields ? e->fields[0].msg : "");
    }
    store_op_free(op);
}

int tu_create(store_t *st, const char *coll, const char *fields, kith_id_t *id)
{
    json_t *j = tu_json(fields);
    store_op_t *op = store_op_create(coll, j);
    json_decref(j);
    int rc = store_exec(st, op);
    if (rc == 0 && id) *id = op->rid;
    store_op_free(op);
    return rc;
}

typedef struct collect {
    kith_id_t *ids;
    size_t cap, n;
} collect_t;

static int collect_row(void *ctx, const store_record_t *rec)
{
    collect_t *c = ctx;
    if (c->n < c->cap) c->ids[c->n] = rec->id;
    c->n++;
    return 0;
}

size_t tu_query_ids(store_t *st, const char *coll, const char *filter, const char *sort,
                    kith_id_t *ids, size_t cap)
{
    json_t *f = filter ? tu_json(filter) : NULL;
    collect_t c = {ids, cap, 0};
    char *cursor = NULL;
    size_t total = 0;
    do {
        store_rtxn_t *rt;
        assert_ok(store_read_begin(st, &rt));
        store_query_t q = {
            .coll = coll, .filter = f, .sort = sort, .limit = 1000, .cursor = cursor};
        char *next = NULL;
        int rc = store_query(rt, &q, collect_row, &c, &next);
        store_read_end(rt);
        if (rc) fail_msg("query %s failed: %s", filter ? filter : "{}", err_last()->msg);
        free(cursor);
        cursor = next;
        total = c.n;
    } while (cursor);
    if (f) json_decref(f);
    return total;
}

/* ---- bulk writes, plans and checks ---- */

typedef struct tu_bulk {
    loop_inbox_t inbox;
    size_t pending;
} tu_bulk_t;

static void tu_bulk_done(store_op_t *op, void *ctx)
{
    (void)op;
    tu_bulk_t *b = ctx;
    b->pending--;
}

void tu_exec_all(store_t *st, store_op_t **ops, size_t n)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) fail_msg("uv_loop_init failed");
    tu_bulk_t b = {.pending = n};
    assert_ok(loop_inbox_init(&b.inbox, &loop));
    for (size_t i = 0; i < n; i++)
        store_submit(st, ops[i], &b.inbox, tu_bulk_done, &b);
    while (b.pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
    loop_inbox_close(&b.inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) fail_msg("uv_loop_close: handles left open");
}

void tu_create_many(store_t *st, const char *coll, json_t *const *fields, size_t n, kith_id_t *ids)
{
    store_op_t **ops = xcalloc(n ? n : 1, sizeof *ops);
    for (size_t i = 0; i < n; i++)
        ops[i] = store_op_create(coll, fields[i]);
    tu_exec_all(st, ops, n);
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->status) fail_msg("create #%zu in %s failed: %s", i, coll, tu_op_msg(ops[i]));
        if (ids) ids[i] = ops[i]->rid;
        store_op_free(ops[i]);
    }
    free(ops);
}

char *tu_plan(store_t *st, const char *coll, const char *filter, const char *sort)
{
    json_t *f = filter ? tu_json(filter) : NULL;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_query_t q = {.coll = coll, .filter = f, .sort = sort};
    buf_t b = BUF_INIT;
    int rc = store_query_plan(rt, &q, &b);
    store_read_end(rt);
    if (f) json_decref(f);
    if (rc) fail_msg("plan of %s failed: %s", filter ? filter : "{}", err_last()->msg);
    size_t len;
    return buf_steal(&b, &len);
}

json_t *tu_coll_json(store_t *st, const char *coll)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), coll);
    json_t *j = c ? store_coll_to_json(c) : NULL;
    store_read_end(rt);
    return j;
}

static void tu_print_problem(void *ctx, const char *msg)
{
    (void)ctx;
    print_message("store_check: %s\n", msg);
}

uint64_t tu_check_problems(store_t *st)
{
    store_check_report_t rep;
    assert_ok(store_check(st, &rep, tu_print_problem, NULL));
    return rep.problems;
}

uint64_t tu_count(store_t *st, const char *coll)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    uint64_t n = 0;
    assert_ok(store_count(rt, coll, &n));
    store_read_end(rt);
    return n;
}

uint64_t tu_changes_last(store_t *st)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    uint64_t s = store_changes_last(rt);
    store_read_end(rt);
    return s;
}

uint64_t tu_cursor(store_t *st, const char *consumer)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    uint64_t seq = 99999;
    assert_ok(store_cursor_get(rt, consumer, &seq));
    store_read_end(rt);
    return seq;
}

/* ---- writer gates, loops and raw LMDB edits ---- */

static int gate_fn(store_wtxn_t *w, store_op_t *op)
{
    (void)w;
    tu_gate_t *g = op->udata;
    uv_sem_post(&g->entered);
    uv_sem_wait(&g->release);
    return 0;
}

static void gate_thread(void *arg)
{
    tu_gate_t *g = arg;
    int rc = store_exec(g->st, g->op);
    if (rc) fprintf(stderr, "gate op failed: %s\n", err_last()->msg);
}

void tu_gate_hold(store_t *st, tu_gate_t *g)
{
    memset(g, 0, sizeof *g);
    g->st = st;
    uv_sem_init(&g->entered, 0);
    uv_sem_init(&g->release, 0);
    g->op = store_op_custom(gate_fn, g);
    g->op->udata = g;
    if (uv_thread_create(&g->thread, gate_thread, g) != 0) fail_msg("cannot start a thread");
    uv_sem_wait(&g->entered);
}

void tu_gate_release(tu_gate_t *g)
{
    uv_sem_post(&g->release);
    uv_thread_join(&g->thread);
    assert_int_equal(g->op->status, 0);
    store_op_free(g->op);
    uv_sem_destroy(&g->entered);
    uv_sem_destroy(&g->release);
}

void tu_loop_init(tu_loop_t *l)
{
    memset(l, 0, sizeof *l);
    if (uv_loop_init(&l->loop) != 0) fail_msg("uv_loop_init failed");
    assert_ok(loop_inbox_init(&l->inbox, &l->loop));
    l->thread = uv_thread_self();
}

typedef struct loop_sub {
    tu_loop_t *l;
    int *count;
} loop_sub_t;

static void loop_done(store_op_t *op, void *ctx)
{
    (void)op;
    loop_sub_t *s = ctx;
    tu_loop_t *l = s->l;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &l->thread)) fail_msg("a completion ran off the loop's thread");
    l->completed++;
    if (s->count) (*s->count)++;
    free(s);
}

void tu_loop_submit(tu_loop_t *l, store_t *st, store_op_t *op, int *count)
{
    loop_sub_t *s = xmalloc(sizeof *s);
    s->l = l;
    s->count = count;
    l->submitted++;
    store_submit(st, op, &l->inbox, loop_done, s);
}

void tu_loop_finish(tu_loop_t *l)
{
    while (l->completed < l->submitted)
        uv_run(&l->loop, UV_RUN_ONCE);
    loop_inbox_close(&l->inbox, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&l->loop) != 0) fail_msg("the loop still has handles");
    assert_int_equal(l->completed, l->submitted);
}

store_t *tu_store_reopen(const char *dir, int no_writer)
{
    store_opts_t o = {.no_writer = no_writer};
    store_t *st = NULL;
    assert_ok(store_open(&st, dir, &o));
    return st;
}

void tu_raw_edit(const char *dir, const char *db, tu_raw_fn fn, void *ctx)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 16);
    if (rc == 0) rc = mdb_env_open(env, dir, 0, 0640);
    if (rc) fail_msg("raw open of %s: %s", dir, mdb_strerror(rc));
    rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc) fail_msg("raw begin: %s", mdb_strerror(rc));
    unsigned flags = strcmp(db, "index") == 0 ? MDB_DUPSORT | MDB_DUPFIXED : 0;
    rc = mdb_dbi_open(txn, db, flags, &dbi);
    if (rc) fail_msg("raw open of database %s: %s", db, mdb_strerror(rc));
    rc = fn(txn, dbi, ctx);
    if (rc) {
        mdb_txn_abort(txn);
        mdb_env_close(env);
        fail_msg("raw edit of %s failed: %d", db, rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc) fail_msg("raw commit: %s", mdb_strerror(rc));
    mdb_env_close(env);
}

static void check_collect(void *ctx, const char *msg)
{
    buf_t *b = ctx;
    if (b->len) buf_addc(b, '\n');
    buf_adds(b, msg);
}

store_check_report_t tu_check(store_t *st, char **problems)
{
    store_check_report_t rep;
    buf_t b = BUF_INIT;
    assert_ok(store_check(st, &rep, check_collect, &b));
    if (problems)
        *problems = buf_steal(&b, NULL);
    else
        buf_free(&b);
    return rep;
}
