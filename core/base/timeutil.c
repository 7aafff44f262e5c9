#include "base/timeutil.h"

#include "base/err.h"

#include <stdio.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Howard Hinnant's civil-from-days algorithms: exact over the whole int64 range we use. */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* v as exactly n decimal digits (zero-padded) at *o. */
static void put_digits(char **o, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v /= 10)
        (*o)[i] = (char)('0' + v % 10);
    *o += n;
}

size_t time_fmt_rfc3339(int64_t us, char *out, size_t cap, int frac_digits)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (frac_digits < 0) frac_digits = frac == 0 ? 0 : (frac % 1000 == 0 ? 3 : 6);
    if (y >= 0 && y <= 9999 && cap >= 28) {
        /* the common case without snprintf: it is on every record rendered */
        char *o = out;
        put_digits(&o, (uint64_t)y, 4);
        *o++ = '-';
        put_digits(&o, m, 2);
        *o++ = '-';
        put_digits(&o, d, 2);
        *o++ = 'T';
        put_digits(&o, (uint64_t)(sod / 3600), 2);
        *o++ = ':';
        put_digits(&o, (uint64_t)(sod / 60 % 60), 2);
        *o++ = ':';
        put_digits(&o, (uint64_t)(sod % 60), 2);
        if (frac_digits == 3 || frac_digits == 6) {
            *o++ = '.';
            put_digits(&o, (uint64_t)(frac_digits == 3 ? frac / 1000 : frac), (size_t)frac_digits);
        }
        *o++ = 'Z';
        *o = 0;
        return (size_t)(o - out);
    }
    int n;
    if (frac_digits == 3)
        n = snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02d.%03lldZ", (long long)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
                     (long long)(frac / 1000));
    else if (frac_digits == 6)
        n = snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ", (long long)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)frac);
    else
        n = snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static int parse_ymd(const char *s, int *y, int *m, int *d)
{
    if (digits(s, 4, y) || s[4] != '-' || digits(s + 5, 2, m) || s[7] != '-' || digits(s + 8, 2, d))
        return -1;
    if (*m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m)) return -1;
    return 0;
}

int time_parse_date(const char *s, size_t len, int32_t *days)
{
    int y, m, d;
    if (len != 10 || parse_ymd(s, &y, &m, &d))
        return err_set(KITH_EINVAL, "expected a date as YYYY-MM-DD");
    *days = (int32_t)time_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int time_parse_rfc3339(const char *s, size_t len, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    if (len < 20 || parse_ymd(s, &y, &mo, &d)) goto bad;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') goto bad;
    if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        goto bad;
    /* 60 is a leap second; we fold it into the next minute's first second. */
    if (h > 23 || mi > 59 || sec > 60) goto bad;
    size_t i = 19;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start || i - start > 9) goto bad;
    }
    int64_t off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (i + 6 > len || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            goto bad;
        off = (int64_t)(oh * 60 + om) * 60;
        if (s[i] == '-') off = -off;
        i += 6;
    } else {
        goto bad;
    }
    if (i != len) goto bad;
    int64_t days = time_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t t = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off;
    *us = t * 1000000 + frac;
    return 0;
bad:
    return err_set(KITH_EINVAL, "expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z");
}
