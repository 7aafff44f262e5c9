/* Tests core/base/codec.c: hex encoding, unpadded base64url (RFC 4648 §5)
 * vectors, round trips of every length, and the decoder's refusals. */
#include "testutil.h"

#include "base/codec.h"
#include "base/mem.h"

#include <string.h>

static void hex(void **state)
{
    (void)state;
    char out[64];
    hex_encode("", 0, out);
    assert_string_equal(out, "");
    hex_encode("\x00\x01\x7f\x80\xfe\xff", 6, out);
    assert_string_equal(out, "00017f80feff");
    hex_encode("Kith", 4, out);
    assert_string_equal(out, "4b697468");
    /* every byte value, in order, lower case */
    uint8_t all[256];
    char big[513];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    hex_encode(all, 256, big);
    assert_int_equal(strlen(big), 512);
    for (int i = 0; i < 256; i++) {
        char want[3];
        snprintf(want, sizeof want, "%02x", i);
        assert_memory_equal(big + 2 * i, want, 2);
    }
}

static void b64url_vectors(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < ARRAY_LEN(in); i++) {
        char enc[32];
        size_t n = b64url_encode(in[i], strlen(in[i]), enc);
        assert_string_equal(enc, out[i]);
        assert_int_equal(n, strlen(out[i]));
        assert_int_equal(b64url_len(strlen(in[i])), n);
        uint8_t dec[32];
        long m = b64url_decode(out[i], strlen(out[i]), dec, sizeof dec);
        assert_int_equal(m, (long)strlen(in[i]));
        assert_memory_equal(dec, in[i], (size_t)m);
    }
    /* the URL-safe alphabet: '-' and '_' instead of '+' and '/' */
    char enc[16];
    b64url_encode("\xfb\xff\xbf", 3, enc);
    assert_string_equal(enc, "-_-_");
    b64url_encode("\xff\xff", 2, enc);
    assert_string_equal(enc, "__8");
}

static void b64url_round_trip(void **state)
{
    (void)state;
    uint8_t data[300] = {0}, dec[300];
    char enc[402];
    uint64_t x = 0x123456789ABCDEFull;
    for (size_t len = 0; len <= sizeof data; len++) {
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data[i] = (uint8_t)x;
        }
        size_t n = b64url_encode(data, len, enc);
        assert_int_equal(n, b64url_len(len));
        assert_int_equal(strlen(enc), n);
        for (size_t i = 0; i < n; i++)
            assert_non_null(memchr(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", enc[i], 64));
        long m = b64url_decode(enc, n, dec, len);
        assert_int_equal(m, (long)len);
        assert_memory_equal(dec, data, len);
        /* one byte too little room */
        if (len) assert_int_equal(b64url_decode(enc, n, dec, len - 1), -1);
    }
}

static void b64url_refusals(void **state)
{
    (void)state;
    uint8_t out[64];
    const char *bad[] = {
        "Zg==",          /* padding */
        "Zm9v+", "ab+/", /* the standard alphabet */
        "ab/c",  "Z",    /* one character cannot encode a byte */
        "Zm9vY",         /* 4k+1 characters */
        "Zh",            /* non-zero leftover bits: "Zg" is the only encoding of "f" */
        "Zm9",           /* "Zm8" is the encoding of "fo" */
        "Zm 9v", "Zm9v\n", "Zm\x00v", "Zm\xc3\xa9",
    };
    size_t lens[] = {4, 5, 4, 4, 1, 5, 2, 3, 5, 5, 4, 4};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (b64url_decode(bad[i], lens[i], out, sizeof out) != -1)
            fail_msg("case %zu ('%s') decoded", i, bad[i]);
    /* the length bounds the input: a bad character past it is not read */
    assert_int_equal(b64url_decode("Zm9v!!", 4, out, sizeof out), 3);
    assert_int_equal(b64url_decode("", 0, out, 0), 0);
}

static void utf8_sequences(void **state)
{
    (void)state;
    struct {
        const char *s;
        size_t n, want;
    } cases[] = {
        {"a", 1, 1},
        {"\x7f", 1, 1},
        {"\xc3\xa9", 2, 2},         /* U+00E9 */
        {"\xe2\x82\xac", 3, 3},     /* U+20AC */
        {"\xf0\x9f\x98\x80", 4, 4}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF, the last code point */
        {"\xef\xbf\xbd", 3, 3},     /* U+FFFD itself */
        {"\x80", 1, 0},             /* a lone continuation byte */
        {"\xc0\xaf", 2, 0},         /* overlong '/' */
        {"\xc1\xbf", 2, 0},         /* overlong */
        {"\xe0\x80\xaf", 3, 0},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0},     /* U+D800, a surrogate */
        {"\xed\xbf\xbf", 3, 0},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0}, /* lead byte never valid */
        {"\xff", 1, 0},
        {"\xc3", 1, 0}, /* truncated by the length */
        {"\xe2\x82", 2, 0},
        {"\xc3(", 2, 0}, /* bad continuation */
        {"\xe2(\xac", 3, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (utf8_seq_len((const uint8_t *)cases[i].s, cases[i].n) != cases[i].want)
            fail_msg("case %zu: got %zu, want %zu", i,
                     utf8_seq_len((const uint8_t *)cases[i].s, cases[i].n), cases[i].want);
}

static void identifiers(void **state)
{
    (void)state;
    assert_true(ident_ok("hello_2", 32, NULL));
    assert_true(ident_ok("a", 1, NULL));
    assert_false(ident_ok("ab", 1, NULL));
    assert_false(ident_ok("", 32, NULL));
    assert_false(ident_ok(NULL, 32, NULL));
    assert_false(ident_ok("Hello", 32, NULL));
    assert_false(ident_ok("a-b", 32, NULL));
    assert_true(ident_ok("a-b.c", 32, ".-"));
    assert_false(ident_ok("a/b", 32, ".-"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex),
        cmocka_unit_test(identifiers),
        cmocka_unit_test(b64url_vectors),
        cmocka_unit_test(b64url_round_trip),
        cmocka_unit_test(b64url_refusals),
        cmocka_unit_test(utf8_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
