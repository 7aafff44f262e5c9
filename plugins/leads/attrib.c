/* leads/attrib: see attrib.h. */
#include "attrib.h"

#include <math.h>
#include <string.h>

int attrib_model(const char *name)
{
    static const char *const names[] = {"first", "last", "linear", "time_decay"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) return i;
    return -1;
}

void attrib_credit(int model, const int64_t *t, size_t n, int64_t conv_ms, double half_life_ms,
                   double *w)
{
    for (size_t i = 0; i < n; i++)
        w[i] = 0;
    switch (model) {
    case ATTRIB_FIRST:
        w[0] = 1;
        return;
    case ATTRIB_LAST:
        w[n - 1] = 1;
        return;
    case ATTRIB_LINEAR:
        for (size_t i = 0; i < n; i++)
            w[i] = 1.0 / (double)n;
        return;
    default: {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            double age = (double)(conv_ms - t[i]);
            if (age < 0) age = 0;
            w[i] = half_life_ms > 0 ? exp2(-age / half_life_ms) : 1;
            sum += w[i];
        }
        for (size_t i = 0; i < n; i++)
            w[i] = sum > 0 ? w[i] / sum : 1.0 / (double)n;
    }
    }
}

int64_t work_hours_add(const work_hours_t *w, int64_t t, int64_t minutes)
{
    const int64_t min_ms = 60000, day_ms = 86400000;
    if (!(w->days & 0x7f) || w->end_h <= w->start_h) return t;
    int64_t local = t + w->tz_min * min_ms, left = minutes * min_ms;
    for (int guard = 0; guard < 3700; guard++) { /* ten years of days at most */
        int64_t day = local >= 0 ? local / day_ms : (local - day_ms + 1) / day_ms;
        int wd = (int)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday: 3 */
        int64_t open = day * day_ms + w->start_h * 3600000LL,
                close = day * day_ms + w->end_h * 3600000LL;
        if ((w->days >> wd) & 1u) {
            if (local < open) local = open;
            if (local < close) {
                if (local + left <= close) return local + left - w->tz_min * min_ms;
                left -= close - local;
            }
        }
        local = (day + 1) * day_ms; /* the next day's midnight */
    }
    return t;
}
