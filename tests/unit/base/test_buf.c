/* Tests core/base/buf.c: appends keep the content NUL-terminated, growth,
 * formatted appends past the stack buffer, big-endian helpers, steal. */
#include "testutil.h"

#include "base/buf.h"
#include "base/mem.h"

#include <string.h>

static void append_and_terminate(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    buf_add(&b, "", 0);
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    buf_adds(&b, "abc");
    buf_addc(&b, 'd');
    buf_add(&b, "efgh", 2);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.p, "abcdef");
    /* binary content with NULs keeps its length */
    buf_add(&b, "\0x", 2);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.p, "abcdef\0x\0", 9);
    assert_true(b.cap > b.len);
    buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);

    buf_t c;
    buf_init(&c);
    buf_reset(&c); /* on an empty buffer */
    assert_null(c.p);
    buf_free(&c);
}

static void growth(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    char expect[100000];
    for (size_t i = 0; i < sizeof expect; i++) {
        char ch = (char)('a' + i % 26);
        expect[i] = ch;
        buf_addc(&b, ch);
        assert_true(b.cap > b.len);
        assert_int_equal(b.p[b.len], '\0');
    }
    assert_int_equal(b.len, sizeof expect);
    assert_memory_equal(b.p, expect, sizeof expect);
    /* reset keeps the memory and forgets the content */
    size_t cap = b.cap;
    char *p = b.p;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.p, p);
    assert_string_equal(b.p, "");
    /* reserve guarantees room for n more bytes plus the terminator */
    buf_free(&b);
    buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001);
    char *before = b.p;
    buf_add(&b, expect, 1000);
    assert_ptr_equal(b.p, before);
    buf_free(&b);
}

static void formatted(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_addf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.p, "42-x");
    buf_addf(&b, "%s", "");
    assert_int_equal(b.len, 4);
    /* longer than the internal 256-byte stack buffer, and exactly at its edges */
    for (size_t n = 250; n < 1200; n += 1) {
        char *s = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('A' + i % 26);
        s[n] = '\0';
        buf_reset(&b);
        buf_adds(&b, "<");
        buf_addf(&b, "%s|%zu", s, n);
        char tail[32];
        int tl = snprintf(tail, sizeof tail, "|%zu", n);
        assert_int_equal(b.len, 1 + n + (size_t)tl);
        assert_int_equal(b.p[0], '<');
        assert_memory_equal(b.p + 1, s, n);
        assert_string_equal(b.p + 1 + n, tail);
        free(s);
    }
    buf_free(&b);
}

static void big_endian(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_add_u16be(&b, 0x0102);
    buf_add_u32be(&b, 0x03040506u);
    buf_add_u64be(&b, 0x0708090A0B0C0D0Eull);
    assert_int_equal(b.len, 14);
    assert_memory_equal(b.p, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e", 14);
    assert_int_equal(load_u16be(b.p), 0x0102);
    assert_int_equal(load_u32be(b.p + 2), 0x03040506u);
    assert_true(load_u64be(b.p + 6) == 0x0708090A0B0C0D0Eull);
    uint8_t x[8];
    store_u64be(x, 0xFFEEDDCCBBAA9988ull);
    assert_true(load_u64be(x) == 0xFFEEDDCCBBAA9988ull);
    assert_int_equal(x[0], 0xFF);
    assert_int_equal(x[7], 0x88);
    store_u32be(x, 0x80000001u);
    assert_int_equal(load_u32be(x), 0x80000001u);
    store_u16be(x, 0xFFFE);
    assert_int_equal(load_u16be(x), 0xFFFE);
    /* big-endian keys sort numerically under memcmp */
    uint8_t a[8], c[8];
    store_u64be(a, 255);
    store_u64be(c, 256);
    assert_true(memcmp(a, c, 8) < 0);
    buf_free(&b);
}

static void steal(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t len = 99;
    char *s = buf_steal(&b, &len); /* never NULL, even when empty */
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    buf_adds(&b, "hello");
    s = buf_steal(&b, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
    buf_adds(&b, "again");
    s = buf_steal(&b, NULL);
    assert_string_equal(s, "again");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_and_terminate),
        cmocka_unit_test(growth),
        cmocka_unit_test(formatted),
        cmocka_unit_test(big_endian),
        cmocka_unit_test(steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
