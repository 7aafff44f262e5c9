/* Tests core/base/id.c: the 26-character Crockford base32 form, its decoder's
 * refusals, and ordering by creation time. */
#include "testutil.h"

#include "base/id.h"
#include "base/mem.h"

#include <string.h>

static void encode_known_values(void **state)
{
    (void)state;
    kith_id_t id;
    char s[ID_TEXT_LEN + 1];
    memset(id.b, 0, ID_LEN);
    id_encode(&id, s);
    assert_string_equal(s, "00000000000000000000000000");
    memset(id.b, 0xff, ID_LEN);
    id_encode(&id, s);
    assert_string_equal(s, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    memset(id.b, 0, ID_LEN);
    id.b[ID_LEN - 1] = 1;
    id_encode(&id, s);
    assert_string_equal(s, "00000000000000000000000001");
    memset(id.b, 0, ID_LEN);
    id.b[0] = 0x80; /* the top bit lands in the first character's value 4 */
    id_encode(&id, s);
    assert_string_equal(s, "40000000000000000000000000");
    /* 48-bit time 1 ms: bits 80..127 hold 1, i.e. bit 80 */
    id_new(&id, 1);
    assert_int_equal(id_time_ms(&id), 1);
}

static void round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        kith_id_t a, b;
        id_new(&a, (int64_t)i * 7919 * 1000003LL);
        char s[ID_TEXT_LEN + 1];
        memset(s, 'x', sizeof s);
        id_encode(&a, s);
        assert_int_equal(strlen(s), ID_TEXT_LEN);
        for (int k = 0; k < ID_TEXT_LEN; k++)
            assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", s[k]));
        memset(&b, 0xa5, sizeof b);
        assert_ok(id_decode(s, ID_TEXT_LEN, &b));
        assert_memory_equal(a.b, b.b, ID_LEN);
        assert_int_equal(id_time_ms(&b), (int64_t)i * 7919 * 1000003LL);
    }
    /* random bits differ between two IDs of the same millisecond */
    kith_id_t x, y;
    id_new(&x, 1700000000000);
    id_new(&y, 1700000000000);
    assert_memory_equal(x.b, y.b, 6);
    assert_memory_not_equal(x.b + 6, y.b + 6, ID_LEN - 6);
    /* the largest 48-bit time survives */
    id_new(&x, (1LL << 48) - 1);
    assert_int_equal(id_time_ms(&x), (1LL << 48) - 1);
}

static void sorts_by_time(void **state)
{
    (void)state;
    int64_t times[] = {0,
                       1,
                       255,
                       256,
                       65535,
                       65536,
                       1700000000000,
                       1700000000001,
                       1800000000000,
                       (1LL << 48) - 2,
                       (1LL << 48) - 1};
    char prev[ID_TEXT_LEN + 1] = "";
    kith_id_t prevb;
    for (size_t i = 0; i < ARRAY_LEN(times); i++) {
        kith_id_t id;
        id_new(&id, times[i]);
        char s[ID_TEXT_LEN + 1];
        id_encode(&id, s);
        if (i) {
            if (strcmp(prev, s) >= 0) fail_msg("%s does not sort before %s", prev, s);
            assert_true(memcmp(prevb.b, id.b, ID_LEN) < 0);
        }
        strcpy(prev, s);
        prevb = id;
    }
}

static void decode_refusals(void **state)
{
    (void)state;
    kith_id_t id;
    const char *good = "01JD3K7Q8M9N0PQRSTVWXYZ012";
    assert_ok(id_decode(good, strlen(good), &id));
    /* bad length */
    assert_int_equal(id_decode(good, 25, &id), KITH_EINVAL);
    assert_int_equal(id_decode("01JD3K7Q8M9N0PQRSTVWXYZ0123", 27, &id), KITH_EINVAL);
    assert_int_equal(id_decode("", 0, &id), KITH_EINVAL);
    /* characters outside Crockford base32 (U is excluded), anywhere */
    const char *bad[] = {"U1JD3K7Q8M9N0PQRSTVWXYZ012", "01JD3K7Q8M9N0PQRSTVWXYZ01U",
                         "01JD3K7Q8M9N-PQRSTVWXYZ012", "01JD3K7Q8M9N PQRSTVWXYZ012",
                         "01JD3K7Q8M9N0PQRSTVWXYZ01!", "01JD3K7Q8M9N0PQRSTVWXYZ01\xc3"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (id_decode(bad[i], ID_TEXT_LEN, &id) != KITH_EINVAL) fail_msg("accepted %s", bad[i]);
    /* an embedded NUL is a bad character, not the end */
    char withnul[ID_TEXT_LEN + 1];
    memcpy(withnul, good, sizeof withnul);
    withnul[10] = '\0';
    assert_int_equal(id_decode(withnul, ID_TEXT_LEN, &id), KITH_EINVAL);
    /* the first character carries 3 bits: 8 and above overflow 128 bits */
    assert_ok(id_decode("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", ID_TEXT_LEN, &id));
    const char *over[] = {"8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "80000000000000000000000000",
                          "Z0000000000000000000000000", "G0000000000000000000000000"};
    for (size_t i = 0; i < ARRAY_LEN(over); i++)
        if (id_decode(over[i], ID_TEXT_LEN, &id) != KITH_EINVAL) fail_msg("accepted %s", over[i]);
    assert_non_null(strstr(err_last()->msg, "range"));
}

static void decode_case_and_aliases(void **state)
{
    (void)state;
    kith_id_t a, b;
    id_new(&a, 1700000000000);
    char s[ID_TEXT_LEN + 1];
    id_encode(&a, s);
    char lower[ID_TEXT_LEN + 1];
    for (int i = 0; i <= ID_TEXT_LEN; i++)
        lower[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    assert_ok(id_decode(lower, ID_TEXT_LEN, &b));
    assert_memory_equal(a.b, b.b, ID_LEN);
    /* I, L read as 1 and O as 0, in either case */
    kith_id_t one, alias;
    assert_ok(id_decode("00000000000000000000000001", ID_TEXT_LEN, &one));
    const char *ones[] = {"0000000000000000000000000I", "0000000000000000000000000L",
                          "0000000000000000000000000i", "0000000000000000000000000l",
                          "OOOOOOOOOOOOOOOOOOOOOOOOO1", "ooooooooooooooooooooooooo1"};
    for (size_t i = 0; i < ARRAY_LEN(ones); i++) {
        assert_ok(id_decode(ones[i], ID_TEXT_LEN, &alias));
        assert_memory_equal(one.b, alias.b, ID_LEN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_known_values),     cmocka_unit_test(round_trip),
        cmocka_unit_test(sorts_by_time),           cmocka_unit_test(decode_refusals),
        cmocka_unit_test(decode_case_and_aliases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
