/* plugins/common/kp_util: see kp_util.h. */
#include "kp_util.h"

#include <stdio.h>
#include <string.h>

/* Howard Hinnant's days_from_civil. */
int64_t kp_days_from_civil(int64_t y, unsigned m, unsigned d)
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

static int digits_at(const char *s, int n, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        *v = *v * 10 + (unsigned)(s[i] - '0');
    }
    return 0;
}

int kp_date_parse(const char *s, int64_t *days)
{
    unsigned y, m, d;
    if (!s || strlen(s) < 10 || digits_at(s, 4, &y) || s[4] != '-' || digits_at(s + 5, 2, &m) ||
        s[7] != '-' || digits_at(s + 8, 2, &d))
        return -1;
    if (s[10] && s[10] != 'T' && s[10] != 't') return -1;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap) return -1;
    *days = kp_days_from_civil(y, m, d);
    return 0;
}

int kp_time_parse(const char *s, int64_t *ms)
{
    int64_t days;
    if (kp_date_parse(s, &days)) return -1;
    const char *p = s + 10;
    unsigned h = 0, mi = 0, se = 0;
    int64_t frac = 0, off_min = 0;
    if (*p) {
        if (digits_at(p + 1, 2, &h) || p[3] != ':' || digits_at(p + 4, 2, &mi) || p[6] != ':' ||
            digits_at(p + 7, 2, &se) || h > 23 || mi > 59 || se > 60)
            return -1;
        p += 9;
        if (*p == '.') {
            int scale = 100, any = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, any = 1) {
                frac += (*p - '0') * scale;
                scale /= 10;
            }
            if (!any) return -1;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            unsigned oh, om;
            if (digits_at(p + 1, 2, &oh) || p[3] != ':' || digits_at(p + 4, 2, &om) || oh > 23 ||
                om > 59)
                return -1;
            off_min = (int64_t)(oh * 60 + om) * (*p == '-' ? -1 : 1);
            p += 6;
        } else {
            return -1;
        }
        if (*p) return -1;
    }
    *ms = (days * 86400 + h * 3600 + mi * 60 + se - off_min * 60) * 1000 + frac;
    return 0;
}

char *kp_iso_from_ms(int64_t ms, char out[KP_ISO_MAX])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rest = ms - days * 86400000;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* every part bounded, so the compiler sees that it fits */
    unsigned yy = (unsigned)(y < 0 ? 0 : y % 10000), r = (unsigned)rest;
    snprintf(out, KP_ISO_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", yy, m % 13, d % 32,
             r / 3600000 % 24, r / 60000 % 60, r / 1000 % 60, r % 1000);
    return out;
}

char *kp_date_from_ms(int64_t ms, char out[KP_DATE_MAX])
{
    char iso[KP_ISO_MAX];
    kp_iso_from_ms(ms, iso);
    memcpy(out, iso, 10);
    out[10] = '\0';
    return out;
}

size_t kp_full_name(const char *first, const char *last, char *out, size_t cap)
{
    if (cap == 0) return 0;
    size_t n = 0;
    const char *parts[3] = {first, first && last ? " " : NULL, last};
    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; p && *p && n + 1 < cap; p++)
            out[n++] = *p;
    /* do not end inside a UTF-8 sequence: drop a trailing lead byte and its
     * continuation bytes if the sequence is incomplete */
    size_t k = n;
    while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[k - 1];
        size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (k - 1) < len) n = k - 1;
    }
    out[n] = '\0';
    return n;
}

int kp_ieq(const char *a, const char *b)
{
    if (!a || !b) return 0;
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
    }
}

int kp_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int kp_query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = query ? query : "";
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t n = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                int c = (unsigned char)*v;
                if (c == '+')
                    c = ' ';
                else if (c == '%') {
                    int h = v + 2 < end ? kp_hex(v[1]) : -1, l = h >= 0 ? kp_hex(v[2]) : -1;
                    if (l < 0) return -1;
                    c = h * 16 + l;
                    v += 2;
                }
                if (c == 0 || n + 1 >= cap) return -1;
                out[n++] = (char)c;
            }
            out[n] = '\0';
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}
