/*
 * tests/bench/bench_util: what the benchmarks share. Every figure is printed as
 *   BENCH name=<id> value=<n> unit=<u> baseline=<n> ratio=<r>
 * with the baseline measured in the same run (ratio = value / baseline, so
 * higher is better for rates).
 */
#ifndef KITH_BENCH_UTIL_H
#define KITH_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>

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

#endif
