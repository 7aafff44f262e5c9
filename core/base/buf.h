/*
 * base/buf: a growable byte buffer. Always NUL-terminated after any append so
 * that text content can be used as a C string; len excludes the terminator.
 */
#ifndef KITH_BASE_BUF_H
#define KITH_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Keeps the memory, forgets the content. */
void buf_reset(buf_t *b);
/* Ensures room for n more bytes (plus the terminator). */
void buf_reserve(buf_t *b, size_t n);
void buf_add(buf_t *b, const void *data, size_t n);
void buf_addc(buf_t *b, char c);
void buf_adds(buf_t *b, const char *s);
void buf_addf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_add_u16be(buf_t *b, uint16_t v);
void buf_add_u32be(buf_t *b, uint32_t v);
void buf_add_u64be(buf_t *b, uint64_t v);
/* Transfers ownership of the content to the caller (never NULL) and resets b. */
char *buf_steal(buf_t *b, size_t *len);

static inline uint16_t load_u16be(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)((b[0] << 8) | b[1]);
}
static inline uint32_t load_u32be(const void *p)
{
    const uint8_t *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static inline uint64_t load_u64be(const void *p)
{
    const uint8_t *b = p;
    return ((uint64_t)load_u32be(b) << 32) | load_u32be(b + 4);
}
static inline void store_u16be(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}
static inline void store_u32be(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}
static inline void store_u64be(void *p, uint64_t v)
{
    store_u32be(p, (uint32_t)(v >> 32));
    store_u32be((uint8_t *)p + 4, (uint32_t)v);
}

#endif
