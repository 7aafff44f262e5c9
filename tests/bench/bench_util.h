/*
 * tests/bench/bench_util: what the benchmarks share. Every figure is printed as
 *   BENCH name=<id> value=<n> unit=<u> baseline=<n> ratio=<r>
 * with the baseline measured in the same run (ratio = value / baseline, so
 * higher is better for rates).
 */
#ifndef KITH_BENCH_UTIL_H
#define KITH_BENCH_UTIL_H

#include "loop/loop_inbox.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_line(const char *name, double value, const char *unit, double baseline)
{
    printf("BENCH name=%s value=%.0f unit=%s baseline=%.0f ratio=%.2f\n", name, value, unit,
           baseline, baseline > 0 ? value / baseline : 0.0);
    fflush(stdout);
}

/* Durable creates into a store with a window of ops in flight, completed on
 * the default loop: the store side of the create and load figures. */
typedef struct bench_runner {
    store_t *st;
    loop_inbox_t inbox; /* loop_inbox_init(&r.inbox, uv_default_loop()) first */
    json_t **fields;    /* 4,096 field sets, used in turn */
    const char *coll;
    uint64_t next, total, done;
    kith_id_t *ids; /* if set, every new id in completion order */
    size_t nids;
    kith_id_t last; /* the last id written */
} bench_runner_t;

static inline void bench_submit(bench_runner_t *r);

static inline void bench_done(store_op_t *op, void *ctx)
{
    bench_runner_t *r = ctx;
    if (op->status) {
        fprintf(stderr, "bench: write failed: %s\n", op->diag->msg);
        exit(1);
    }
    r->last = op->rid;
    if (r->ids) r->ids[r->nids++] = op->rid;
    store_op_free(op);
    r->done++;
    if (r->next < r->total) bench_submit(r);
}

static inline void bench_submit(bench_runner_t *r)
{
    store_op_t *op = store_op_create(r->coll, r->fields[r->next++ % 4096]);
    store_submit(r->st, op, &r->inbox, bench_done, r);
}

/* n creates into st with `window` in flight; returns records/s. */
static inline double bench_load(bench_runner_t *r, store_t *st, uint64_t n, size_t window)
{
    r->st = st;
    r->next = r->done = 0;
    r->total = n;
    double t0 = bench_now();
    for (size_t i = 0; i < window && r->next < n; i++)
        bench_submit(r);
    while (r->done < n)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    return (double)n / (bench_now() - t0);
}

#endif
