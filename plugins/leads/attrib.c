/* leads/attrib: see attrib.h. */
#include "attrib.h"

#include <math.h>
#include <stdio.h>
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

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int64_t attrib_time_ms(const char *s, int *ok)
{
    *ok = 0;
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (!s || strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return 0;
    const char *p = s + 10;
    int64_t ms = 0, off_min = 0;
    if (*p) {
        if ((*p != 'T' && *p != 't' && *p != ' ') || !digits(p + 1, 2, &h) || p[3] != ':' ||
            !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &se) || h > 23 || mi > 59 ||
            se > 60)
            return 0;
        p += 9;
        if (*p == '.') {
            int scale = 100, any = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, any = 1) {
                ms += (*p - '0') * scale;
                scale /= 10;
            }
            if (!any) return 0;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om)) return 0;
            off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
            p += 6;
        } else {
            return 0;
        }
        if (*p) return 0;
    }
    *ok = 1;
    int64_t sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off_min * 60;
    return sec * 1000 + ms;
}

void attrib_time_format(int64_t ms, char out[ATTRIB_TIME_MAX])
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - sec * 1000);
    int64_t days = sec >= 0 ? sec / 86400 : (sec - 86399) / 86400;
    int64_t rem = sec - days * 86400;
    /* civil from days (Howard Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    y += m <= 2;
    snprintf(out, ATTRIB_TIME_MAX, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", (int)y, (unsigned)m,
             (unsigned)d, (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60),
             (unsigned)frac);
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
