#include "base/buf.h"

#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(buf_t *b)
{
    free(b->p);
    buf_init(b);
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void buf_reserve(buf_t *b, size_t n)
{
    size_t need = b->len + n + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_add(buf_t *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_addc(buf_t *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_add_u16be(buf_t *b, uint16_t v)
{
    uint8_t x[2];
    store_u16be(x, v);
    buf_add(b, x, 2);
}

void buf_add_u32be(buf_t *b, uint32_t v)
{
    uint8_t x[4];
    store_u32be(x, v);
    buf_add(b, x, 4);
}

void buf_add_u64be(buf_t *b, uint64_t v)
{
    uint8_t x[8];
    store_u64be(x, v);
    buf_add(b, x, 8);
}

char *buf_steal(buf_t *b, size_t *len)
{
    if (!b->p) {
        b->p = xmalloc(1);
        b->cap = 1;
        b->len = 0;
    }
    char *p = b->p;
    p[b->len] = '\0';
    if (len) *len = b->len;
    buf_init(b);
    return p;
}
