/*
 * pipeline_util: see pipeline_util.h.
 */
#include "pipeline_util.h"

#include <stdio.h>
#include <string.h>

int pl_money_parse(const char *s, int64_t *units)
{
    if (!s) return -1;
    int neg = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    int64_t whole = 0, frac = 0;
    int digits = 0, places = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (whole > (INT64_MAX / PL_MONEY_SCALE - 9) / 10) return -1;
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, places++, digits++) {
            if (places == 4) return -1;
            frac = frac * 10 + (*s - '0');
        }
    }
    if (*s || !digits) return -1;
    for (int i = places; i < 4; i++)
        frac *= 10;
    int64_t v = whole * PL_MONEY_SCALE + frac;
    *units = neg ? -v : v;
    return 0;
}

char *pl_money_format(int64_t units, char out[PL_MONEY_MAX])
{
    /* through unsigned: INT64_MIN has no positive int64 */
    uint64_t u = units < 0 ? 0u - (uint64_t)units : (uint64_t)units;
    unsigned long long whole = (unsigned long long)(u / PL_MONEY_SCALE);
    unsigned frac = (unsigned)(u % PL_MONEY_SCALE);
    int n = snprintf(out, PL_MONEY_MAX, "%s%llu", units < 0 ? "-" : "", whole);
    if (frac) {
        char f[8];
        snprintf(f, sizeof f, "%04u", frac);
        size_t k = 4;
        while (k > 0 && f[k - 1] == '0')
            k--;
        snprintf(out + n, PL_MONEY_MAX - (size_t)n, ".%.*s", (int)k, f);
    }
    return out;
}

/* Howard Hinnant's days_from_civil. */
int64_t pl_days_from_civil(int64_t y, unsigned m, unsigned d)
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

int pl_date_parse(const char *s, int64_t *days)
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
    *days = pl_days_from_civil(y, m, d);
    return 0;
}

char *pl_iso_from_ms(int64_t ms, char out[PL_ISO_MAX])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rest = ms - days * 86400000;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* every part bounded, so the compiler sees that it fits */
    unsigned yy = (unsigned)(y < 0 ? 0 : y % 10000), r = (unsigned)rest;
    snprintf(out, PL_ISO_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", yy, m % 13, d % 32,
             r / 3600000 % 24, r / 60000 % 60, r / 1000 % 60, r % 1000);
    return out;
}

char *pl_date_from_ms(int64_t ms, char out[PL_DATE_MAX])
{
    char iso[PL_ISO_MAX];
    pl_iso_from_ms(ms, iso);
    memcpy(out, iso, 10);
    out[10] = '\0';
    return out;
}

size_t pl_product_key(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; p && *p; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80))
            continue;
        if (n + 1 >= cap) return 0;
        out[n++] = (char)c;
    }
    if (cap) out[n < cap ? n : 0] = '\0';
    return n;
}

int pl_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
    }
}

static int hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int pl_query_param(const char *query, const char *name, char *out, size_t cap)
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
                    int h = v + 2 < end ? hex(v[1]) : -1, l = h >= 0 ? hex(v[2]) : -1;
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

int pl_query_unknown(const char *query, const char *const *allowed, char *bad, size_t cap)
{
    for (const char *p = query ? query : ""; *p;) {
        size_t len = strcspn(p, "&");
        size_t klen = strcspn(p, "=&");
        int known = klen == 0; /* "a=1&&b=2": an empty piece */
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strlen(allowed[i]) == klen && memcmp(allowed[i], p, klen) == 0;
        if (!known) {
            snprintf(bad, cap, "%.*s", (int)klen, p);
            return 1;
        }
        p += len;
        if (*p) p++;
    }
    return 0;
}
