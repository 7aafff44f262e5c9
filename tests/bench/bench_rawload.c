/*
 * bench_rawload: the baseline for the HTTP import figure — a raw-LMDB bulk
 * load of a CSV file's rows: each row becomes the same kind of record (a
 * 32-byte header + compact JSON of the mapped cells) and one entry per given
 * index column, in transactions of 1,024 rows with a full sync.
 *
 * usage: bench_rawload DIR FILE.csv COLUMN... (columns to index, by header name)
 * prints: rawload rows=<n> seconds=<s> rate=<rows/s>
 */
#include "base/buf.h"
#include "base/csv.h"
#include "base/id.h"
#include "base/json.h"
#include "base/timeutil.h"
#include "bench_util.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BATCH 1024

typedef struct load {
    MDB_env *env;
    MDB_dbi rec, idx;
    MDB_txn *txn;
    char **header;
    size_t ncols;
    int *indexed; /* per column: index id or 0 */
    size_t rows, in_batch;
    buf_t json, val, key;
} load_t;

static int on_row(void *ctx, size_t row, const char *const *f, const size_t *lens, size_t n)
{
    load_t *l = ctx;
    if (row == 1) {
        l->header = calloc(n, sizeof *l->header);
        for (size_t i = 0; i < n; i++)
            l->header[i] = strdup(f[i]);
        l->ncols = n;
        return 0;
    }
    if (!l->txn && mdb_txn_begin(l->env, NULL, 0, &l->txn)) abort();
    kith_id_t id;
    id_new(&id, time_now_us() / 1000);
    buf_reset(&l->json);
    buf_addc(&l->json, '{');
    int first = 1;
    for (size_t i = 0; i < n && i < l->ncols; i++) {
        if (!lens[i]) continue;
        if (!first) buf_addc(&l->json, ',');
        first = 0;
        json_write_cstr(&l->json, l->header[i]);
        buf_addc(&l->json, ':');
        json_write_str(&l->json, f[i], lens[i]);
    }
    buf_addc(&l->json, '}');
    buf_reset(&l->val);
    buf_reserve(&l->val, 32 + l->json.len);
    memset(l->val.p, 0, 32);
    l->val.len = 32;
    buf_add(&l->val, l->json.p, l->json.len);
    uint8_t rk[20] = {0, 0, 0, 1};
    memcpy(rk + 4, id.b, 16);
    MDB_val k = {20, rk}, d = {l->val.len, l->val.p};
    if (mdb_put(l->txn, l->rec, &k, &d, 0)) abort();
    for (size_t i = 0; i < n && i < l->ncols; i++) {
        if (!l->indexed[i]) continue;
        buf_reset(&l->key);
        buf_add_u32be(&l->key, (uint32_t)l->indexed[i]);
        buf_addc(&l->key, lens[i] ? 1 : 0);
        buf_add(&l->key, f[i], lens[i] > 400 ? 400 : lens[i]);
        MDB_val ik = {l->key.len, l->key.p}, id16 = {16, id.b};
        if (mdb_put(l->txn, l->idx, &ik, &id16, 0)) abort();
    }
    l->rows++;
    if (++l->in_batch == BATCH) {
        if (mdb_txn_commit(l->txn)) abort();
        l->txn = NULL;
        l->in_batch = 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_rawload DIR FILE.csv COLUMN...\n");
        return 2;
    }
    load_t l = {0};
    mkdir(argv[1], 0750);
    mdb_env_create(&l.env);
    mdb_env_set_maxdbs(l.env, 4);
    mdb_env_set_mapsize(l.env, (size_t)8 << 30);
    if (mdb_env_open(l.env, argv[1], MDB_NOTLS, 0640)) return 1;
    MDB_txn *t;
    mdb_txn_begin(l.env, NULL, 0, &t);
    mdb_dbi_open(t, "records", MDB_CREATE, &l.rec);
    mdb_dbi_open(t, "index", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &l.idx);
    mdb_txn_commit(t);
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 1;
    /* read the header first to learn which columns are indexed */
    char line[65536];
    if (!fgets(line, sizeof line, f)) return 1;
    rewind(f);
    size_t ncols = 1;
    for (char *p = line; *p; p++)
        ncols += *p == ',';
    l.indexed = calloc(ncols, sizeof *l.indexed);
    char *tok = strtok(line, ",\r\n");
    for (size_t i = 0; tok && i < ncols; i++, tok = strtok(NULL, ",\r\n"))
        for (int a = 3; a < argc; a++)
            if (strcmp(tok, argv[a]) == 0) l.indexed[i] = a - 2;
    csv_parser_t *p = csv_new(on_row, &l, NULL);
    char buf[65536];
    size_t n;
    double t0 = bench_now();
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (csv_feed(p, buf, n)) return 1;
    if (csv_finish(p)) return 1;
    if (l.txn && mdb_txn_commit(l.txn)) abort();
    double dt = bench_now() - t0;
    printf("rawload rows=%zu seconds=%.2f rate=%.0f\n", l.rows, dt, (double)l.rows / dt);
    csv_free(p);
    mdb_env_close(l.env);
    fclose(f);
    return 0;
}
