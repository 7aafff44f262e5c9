#include "testutil.h"

#include "base/mem.h"

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
        store_query_t q = {.coll = coll, .filter = f, .sort = sort, .limit = 1000, .cursor = cursor};
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
