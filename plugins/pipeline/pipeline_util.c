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
