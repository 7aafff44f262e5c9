/*
 * leads/attrib: attribution models and working hours. Plain C, no Kith
 * headers, so tests can compile it on its own (times: plugins/common/kp_util).
 */
#ifndef KITH_LEADS_ATTRIB_H
#define KITH_LEADS_ATTRIB_H

#include <stddef.h>
#include <stdint.h>

enum attrib_model { ATTRIB_FIRST, ATTRIB_LAST, ATTRIB_LINEAR, ATTRIB_TIME_DECAY };

/* "first", "last", "linear", "time_decay": the model, or -1. */
int attrib_model(const char *name);

/* Splits one conversion at conv_ms over n touches at t[0..n) (oldest first):
 * w[i] gets touch i's share, the shares sum to 1. time_decay halves a
 * touch's weight for every half_life_ms it came before the conversion. n > 0. */
void attrib_credit(int model, const int64_t *t, size_t n, int64_t conv_ms, double half_life_ms,
                   double *w);

/* Working time: days (bit 0 Monday .. bit 6 Sunday) from start_h to end_h
 * o'clock, local time at tz_min minutes east of UTC (a fixed offset). */
typedef struct work_hours {
    unsigned days;
    int start_h, end_h, tz_min;
} work_hours_t;

/* The moment `minutes` of working time after t (both Unix ms): time outside
 * working hours does not count, so 4 hours from Friday 16:00 (9-18) is
 * Monday 11:00. No working day in the week: t. */
int64_t work_hours_add(const work_hours_t *w, int64_t t, int64_t minutes);

#endif
