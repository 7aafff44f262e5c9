/*
 * bench_store: the store's figures beside a raw-LMDB program doing the same
 * work in the same run (same record bytes, same two indexes, same batch
 * sizes, full sync, fresh environments side by side on the same disk).
 *
 *   bulk_load      1,000,000 records in batches of 1,024           records/s
 *   point_get      one record by id, one read transaction each    records/s
 *   query50        50 records by an indexed field (eq)            queries/s
 *   create_cN      durable creates, N concurrent submitters       records/s
 *                  (the baseline commits batches of N)
 *
 * usage: bench_store DIR [--records N]
 */
#include "base/id.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"
#include "bench_util.h"
#include "store/store.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#define NSTAGES 20
#define BATCH   1024

static const char *schema = "{\"name\":\"bench\",\"fields\":["
                            "{\"name\":\"name\",\"type\":\"string\"},"
                            "{\"name\":\"stage\",\"type\":\"string\",\"indexed\":true},"
                            "{\"name\":\"score\",\"type\":\"int\",\"indexed\":true},"
                            "{\"name\":\"note\",\"type\":\"string\"}]}";

static unsigned long long io_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "write_bytes: %llu", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static json_t *gen_fields(uint64_t i)
{
    char name[64], stage[16], note[160];
    snprintf(name, sizeof name, "Customer %08llu of the benchmark", (unsigned long long)i);
    snprintf(stage, sizeof stage, "stage-%02llu", (unsigned long long)(i % NSTAGES));
    memset(note, 'n', 120);
    note[120] = '\0';
    return json_pack("{s:s,s:s,s:I,s:s}", "name", name, "stage", stage, "score",
                     (json_int_t)((i * 7919) % 100000), "note", note);
}

/* ---- the raw-LMDB baseline ---- */

typedef struct raw {
    MDB_env *env;
    MDB_dbi rec, idx;
    kith_id_t *ids;
    size_t nids;
} raw_t;

static void raw_open(raw_t *r, const char *dir)
{
    mkdir(dir, 0750);
    mdb_env_create(&r->env);
    mdb_env_set_maxdbs(r->env, 4);
    mdb_env_set_mapsize(r->env, (size_t)16 << 30);
    if (mdb_env_open(r->env, dir, MDB_NOTLS, 0640)) {
        fprintf(stderr, "raw env %s failed\n", dir);
        exit(1);
    }
    MDB_txn *t;
    mdb_txn_begin(r->env, NULL, 0, &t);
    mdb_dbi_open(t, "records", MDB_CREATE, &r->rec);
    mdb_dbi_open(t, "index", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &r->idx);
    mdb_txn_commit(t);
}

/* The same bytes the store writes: 32-byte header + compact JSON, and the same
 * index keys (index id + tag + encoded value). */
static void raw_put(raw_t *r, MDB_txn *t, uint64_t i, const char *json, size_t jl, kith_id_t *id)
{
    id_new(id, time_now_us() / 1000);
    uint8_t key[20], val[512];
    memset(key, 0, 4);
    key[3] = 1;
    memcpy(key + 4, id->b, 16);
    memset(val, 0, 32);
    memcpy(val + 32, json, jl);
    MDB_val k = {20, key}, d = {32 + jl, val};
    if (mdb_put(t, r->rec, &k, &d, 0)) abort();
    uint8_t ik[64];
    ik[0] = 0, ik[1] = 0, ik[2] = 0, ik[3] = 1, ik[4] = 1;
    int sl = snprintf((char *)ik + 5, 32, "stage-%02llu", (unsigned long long)(i % NSTAGES));
    MDB_val a = {5 + (size_t)sl, ik}, ad = {16, id->b};
    if (mdb_put(t, r->idx, &a, &ad, 0)) abort();
    ik[3] = 2;
    uint64_t sc = ((i * 7919) % 100000) ^ (1ull << 63);
    for (int b = 0; b < 8; b++)
        ik[5 + b] = (uint8_t)(sc >> (56 - 8 * b));
    MDB_val s = {13, ik};
    if (mdb_put(t, r->idx, &s, &ad, 0)) abort();
}

static double raw_load(raw_t *r, char **jsons, size_t *jl, uint64_t n, size_t batch, uint64_t base,
                       int keep_ids)
{
    double t0 = bench_now();
    for (uint64_t i = 0; i < n;) {
        MDB_txn *t;
        mdb_txn_begin(r->env, NULL, 0, &t);
        for (size_t b = 0; b < batch && i < n; b++, i++) {
            kith_id_t id;
            /* index values of the very record stored: the store indexes
             * fields[j] too, so both build identical index structures */
            (void)base;
            raw_put(r, t, i % 4096, jsons[i % 4096], jl[i % 4096], &id);
            if (keep_ids) r->ids[r->nids++] = id;
        }
        if (mdb_txn_commit(t)) abort();
    }
    return (double)n / (bench_now() - t0);
}

/* ---- the store ---- */

typedef struct qctx {
    size_t rows, bytes;
} qctx_t;

static int count_row(void *ctx, const store_record_t *rec)
{
    qctx_t *q = ctx;
    q->rows++;
    q->bytes += rec->json_len;
    return 0;
}

int main(int argc, char **argv)
{
    mem_init();
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store DIR [--records N]\n");
        return 2;
    }
    uint64_t nrec = 1000000;
    int only_creates = 0, no_baseline = 0;
    size_t raw_creates = 0; /* --raw-creates N: only the raw baseline at N submitters */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            nrec = strtoull(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--only-creates") == 0) only_creates = 1;
        if (strcmp(argv[i], "--no-baseline") == 0) no_baseline = 1; /* for profiling */
        if (strcmp(argv[i], "--raw-creates") == 0 && i + 1 < argc)
            raw_creates = strtoul(argv[i + 1], NULL, 10);
    }
    const char *dir = argv[1];
    mkdir(dir, 0750);
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/raw", dir);
    snprintf(p2, sizeof p2, "%s/store", dir);

    /* Pre-built inputs, outside every timed region. */
    json_t **fields = xmalloc(4096 * sizeof *fields);
    char **jsons = xmalloc(4096 * sizeof *jsons);
    size_t *jl = xmalloc(4096 * sizeof *jl);
    for (size_t i = 0; i < 4096; i++) {
        fields[i] = gen_fields(i);
        jsons[i] = json_to_str(fields[i], &jl[i]);
    }
    printf("# record: %zu bytes of JSON + 32-byte header, two indexes (string, int)\n", jl[0]);

    raw_t raw = {0};
    raw_open(&raw, p1);
    raw.ids = xmalloc(nrec * sizeof *raw.ids);
    if (raw_creates) {
        /* the HTTP benchmark's baseline: the same durable creates, raw, on a
         * collection of nrec records */
        raw_load(&raw, jsons, jl, nrec, BATCH, 0, 0);
        double rate = raw_load(&raw, jsons, jl, 40000, raw_creates, nrec, 0);
        printf("raw_creates submitters=%zu rate=%.0f\n", raw_creates, rate);
        mdb_env_close(raw.env);
        return 0;
    }
    store_t *st;
    store_opts_t o = {.create = 1, .map_size = (size_t)1 << 30, .batch_max = BATCH};
    if (store_open(&st, p2, &o)) {
        fprintf(stderr, "store: %s\n", err_last()->msg);
        return 1;
    }
    json_t *def = json_parse(schema, strlen(schema));
    store_op_t *op = store_op_schema(def);
    if (store_exec(st, op)) return 1;
    store_op_free(op);
    bench_runner_t r = {.coll = "bench", .fields = fields};
    loop_inbox_init(&r.inbox, uv_default_loop());
    r.ids = xmalloc(nrec * sizeof *r.ids);

    size_t sink = 0;
    /* bulk load */
    double base = no_baseline ? 0 : raw_load(&raw, jsons, jl, nrec, BATCH, 0, 1);
    double mine = bench_load(&r, st, nrec, 4 * BATCH);
    bench_line("bulk_load", mine, "records/s", base);
    kith_id_t *sids = r.ids; /* the store's loaded ids; later runs do not record */
    size_t nids = r.nids;
    r.ids = NULL;
    if (only_creates) goto creates;

    /* point get: random ids, one read transaction per get */
    uint64_t ngets = 2000000;
    uint32_t seed = 12345;
    MDB_txn *t;
    mdb_txn_begin(raw.env, NULL, MDB_RDONLY, &t);
    mdb_txn_reset(t);
    double t0 = bench_now();
    for (uint64_t i = 0; i < ngets; i++) {
        seed = seed * 1103515245u + 12345u;
        kith_id_t *id = &raw.ids[seed % raw.nids];
        mdb_txn_renew(t);
        uint8_t key[20] = {0, 0, 0, 1};
        memcpy(key + 4, id->b, 16);
        MDB_val k = {20, key}, d;
        if (mdb_get(t, raw.rec, &k, &d)) abort();
        sink += d.mv_size;
        mdb_txn_reset(t);
    }
    double gb = (double)ngets / (bench_now() - t0);
    mdb_txn_abort(t);
    t0 = bench_now();
    seed = 12345;
    for (uint64_t i = 0; i < ngets; i++) {
        seed = seed * 1103515245u + 12345u;
        store_rtxn_t *rt;
        store_record_t rec;
        if (store_read_begin(st, &rt)) abort();
        if (store_get(rt, "bench", &sids[seed % nids], &rec)) abort();
        sink += rec.json_len;
        store_read_end(rt);
    }
    bench_line("point_get", (double)ngets / (bench_now() - t0), "records/s", gb);

    /* indexed query of 50 */
    uint64_t nq = 100000;
    mdb_txn_begin(raw.env, NULL, MDB_RDONLY, &t);
    mdb_txn_reset(t);
    MDB_cursor *cur;
    t0 = bench_now();
    for (uint64_t i = 0; i < nq; i++) {
        mdb_txn_renew(t);
        mdb_cursor_open(t, raw.idx, &cur);
        uint8_t ik[32] = {0, 0, 0, 1, 1};
        int sl = snprintf((char *)ik + 5, 16, "stage-%02llu", (unsigned long long)(i % NSTAGES));
        MDB_val k = {5 + (size_t)sl, ik}, d;
        int rc = mdb_cursor_get(cur, &k, &d, MDB_SET);
        for (int n = 0; rc == 0 && n < 50; n++) {
            uint8_t key[20] = {0, 0, 0, 1};
            memcpy(key + 4, d.mv_data, 16);
            MDB_val rk = {20, key}, rd;
            if (mdb_get(t, raw.rec, &rk, &rd)) abort();
            sink += rd.mv_size;
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_DUP);
        }
        mdb_cursor_close(cur);
        mdb_txn_reset(t);
    }
    double qb = (double)nq / (bench_now() - t0);
    mdb_txn_abort(t);
    json_t *filters[NSTAGES];
    for (int i = 0; i < NSTAGES; i++) {
        char s[32];
        snprintf(s, sizeof s, "stage-%02d", i);
        filters[i] = json_pack("{s:s}", "stage", s);
    }
    t0 = bench_now();
    for (uint64_t i = 0; i < nq; i++) {
        store_rtxn_t *rt;
        if (store_read_begin(st, &rt)) abort();
        qctx_t qc = {0};
        char *next = NULL;
        store_query_t q = {.coll = "bench", .filter = filters[i % NSTAGES], .limit = 50};
        if (store_query(rt, &q, count_row, &qc, &next) || qc.rows != 50) abort();
        free(next);
        sink += qc.bytes;
        store_read_end(rt);
    }
    bench_line("query50", (double)nq / (bench_now() - t0), "queries/s", qb);

creates:
    /* durable creates with N concurrent submitters (baseline: batches of N) */
    static const size_t subs[] = {1, 16, 64, 256};
    static const uint64_t counts[] = {1500, 16000, 40000, 80000};
    for (size_t i = 0; i < 4; i++) {
        unsigned long long w0 = io_written();
        double b = no_baseline
                       ? 0
                       : raw_load(&raw, jsons, jl, counts[i], subs[i], nrec + 1000000 * (i + 1), 0);
        unsigned long long w1 = io_written();
        store_stats_t s0, s1;
        store_stats_get(st, &s0);
        double m = bench_load(&r, st, counts[i], subs[i]);
        store_stats_get(st, &s1);
        unsigned long long w2 = io_written();
        printf("# c%zu: %llu commits, %.1f ops per commit; bytes written per op: raw %.0f, "
               "store %.0f\n",
               subs[i], (unsigned long long)(s1.commits - s0.commits),
               (double)counts[i] / (double)(s1.commits - s0.commits),
               (double)(w1 - w0) / (double)counts[i], (double)(w2 - w1) / (double)counts[i]);
        char name[32];
        snprintf(name, sizeof name, "create_c%zu", subs[i]);
        bench_line(name, m, "records/s", b);
    }
    store_stats_t ss;
    store_stats_get(st, &ss);
    printf("# store: %llu commits, largest batch %llu, map %zu MiB, %llu map grows (sink %zu)\n",
           (unsigned long long)ss.commits, (unsigned long long)ss.batch_max, ss.map_size >> 20,
           (unsigned long long)ss.map_grows, sink);
    store_close(st);
    mdb_env_close(raw.env);
    return 0;
}
