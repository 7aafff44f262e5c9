/* identity/normalize: see normalize.h. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>

/* The length of a separator people put inside phone numbers at s, or 0. */
static size_t phone_sep(const unsigned char *s)
{
    switch (s[0]) {
    case ' ':
    case '\t':
    case '-':
    case '.':
    case '/':
    case '(':
    case ')':
        return 1;
    case 0xC2:
        return s[1] == 0xA0 ? 2 : 0; /* U+00A0 no-break space */
    case 0xE2:                       /* U+2010..U+2015 hyphens and dashes */
        return s[1] == 0x80 && s[2] >= 0x90 && s[2] <= 0x95 ? 3 : 0;
    case 0xE3:
        return s[1] == 0x80 && s[2] == 0x80 ? 3 : 0; /* U+3000 ideographic space */
    case 0xEF:                                       /* full-width ( ) - . / */
        return s[1] == 0xBC && (s[2] == 0x88 || s[2] == 0x89 || s[2] == 0x8D || s[2] == 0x8E ||
                                s[2] == 0x8F)
                   ? 3
                   : 0;
    default:
        return 0;
    }
}

int norm_phone(const char *in, const char *cc, char out[NORM_PHONE_MAX], const char **why)
{
    char d[64];
    size_t n = 0;
    int plus = 0;
    const unsigned char *s = (const unsigned char *)in;
    while (*s) {
        size_t k;
        int digit = -1, is_plus = 0;
        if (*s >= '0' && *s <= '9') {
            digit = *s - '0';
            k = 1;
        } else if (s[0] == 0xEF && s[1] == 0xBC && s[2] >= 0x90 && s[2] <= 0x99) {
            digit = s[2] - 0x90; /* U+FF10..U+FF19 */
            k = 3;
        } else if (*s == '+') {
            is_plus = 1;
            k = 1;
        } else if (s[0] == 0xEF && s[1] == 0xBC && s[2] == 0x8B) {
            is_plus = 1; /* U+FF0B */
            k = 3;
        } else if ((k = phone_sep(s)) == 0) {
            *why = "has a character that is not part of a phone number (an extension cannot "
                   "be stored in E.164)";
            return -1;
        }
        if (is_plus) {
            if (n || plus) {
                *why = "has '+' after the start";
                return -1;
            }
            plus = 1;
        } else if (digit >= 0) {
            if (n == sizeof d) {
                *why = "has too many digits";
                return -1;
            }
            d[n++] = (char)('0' + digit);
        }
        s += k;
    }
    const char *num = d;
    size_t len = n;
    char head[8] = "";
    if (!plus && len > 2 && num[0] == '0' && num[1] == '0') { /* 00: international */
        num += 2, len -= 2;
        plus = 1;
    }
    if (!plus) {
        size_t cl = cc ? strlen(cc) : 0;
        if (cl == 0 || cl > 3 || strspn(cc, "0123456789") != cl) {
            *why = "has no country code (+...) and no default country is configured";
            return -1;
        }
        if (len && num[0] == '0') { /* trunk prefix */
            num++, len--;
        } else if (strcmp(cc, "1") == 0 && len == 11 && num[0] == '1') {
            num++, len--;
        }
        memcpy(head, cc, cl + 1);
    }
    size_t hl = strlen(head);
    if (hl + len < 8 || hl + len > 15) {
        *why = "is not a full international number (8 to 15 digits with the country code)";
        return -1;
    }
    out[0] = '+';
    memcpy(out + 1, head, hl);
    memcpy(out + 1 + hl, num, len);
    out[1 + hl + len] = '\0';
    /* Chinese mobile numbers are 1[3-9] and 9 digits (Beijing's area code,
     * 10, also starts with 1) */
    if (strncmp(out, "+861", 4) == 0 && out[4] >= '3' && out[4] <= '9' && hl + len != 13) {
        *why = "is not a Chinese mobile number (11 digits starting with 1)";
        return -1;
    }
    return 0;
}

/* The length of white space at s (ASCII, U+00A0, U+3000), or 0. */
static size_t space_at(const unsigned char *s)
{
    if (*s == ' ' || (*s >= '\t' && *s <= '\r')) return 1;
    if (s[0] == 0xC2 && s[1] == 0xA0) return 2;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3;
    return 0;
}

/* in without white space at either end, as [*start, *end). */
static void trim(const char *in, const char **start, const char **end)
{
    const unsigned char *s = (const unsigned char *)in, *e = s + strlen(in);
    size_t k;
    while (s < e && (k = space_at(s)) != 0)
        s += k;
    for (;;) {
        if (e > s && space_at(e - 1) == 1) {
            e--;
        } else if (e - s >= 2 && space_at(e - 2) == 2) {
            e -= 2;
        } else if (e - s >= 3 && space_at(e - 3) == 3) {
            e -= 3;
        } else {
            break;
        }
    }
    *start = (const char *)s;
    *end = (const char *)e;
}

static char *lower_copy(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++)
        o[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    o[n] = '\0';
    return o;
}

char *norm_email(const char *in)
{
    const char *s, *e;
    trim(in, &s, &e);
    if (s == e) return NULL;
    const char *m = s;
    if (e - s > 7 && strncmp(s, "mailto:", 7) == 0) m = s + 7;
    return lower_copy(m, (size_t)(e - m));
}

char *norm_domain(const char *in)
{
    const char *s, *e;
    trim(in, &s, &e);
    const char *p = s;
    for (const char *q = s; q + 2 < e; q++) /* scheme:// */
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            p = q + 3;
            break;
        }
    const char *end = p;
    while (end < e && *end != '/' && *end != '?' && *end != '#')
        end++;
    for (const char *q = end; q > p; q--) /* user@ */
        if (q[-1] == '@') {
            p = q;
            break;
        }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon) end = colon;
    if (end - p > 4 && (p[0] == 'w' || p[0] == 'W') && (p[1] == 'w' || p[1] == 'W') &&
        (p[2] == 'w' || p[2] == 'W') && p[3] == '.')
        p += 4;
    while (end > p && end[-1] == '.')
        end--;
    if (end == p) return NULL;
    return lower_copy(p, (size_t)(end - p));
}
