/* Tests core/base/timeutil.c: RFC 3339 and date parsing (offsets, fractions,
 * leap days, refusals) and formatting, round trips included before 1970. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"

#include <string.h>

#define S 1000000LL

static int64_t parse_ok(const char *s)
{
    int64_t us = 0x5a5a5a5a;
    int rc = time_parse_rfc3339(s, strlen(s), &us);
    if (rc) fail_msg("refused %s: %s", s, err_last()->msg);
    return us;
}

static void rfc3339_parse(void **state)
{
    (void)state;
    const int64_t t = 1795341600LL * S; /* 2026-11-22T10:00:00Z */
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-11-22T10:00:00Z"), t);
    assert_int_equal(parse_ok("2026-11-22t10:00:00z"), t);
    assert_int_equal(parse_ok("2026-11-22 10:00:00Z"), t);
    /* offsets: the local time minus the offset */
    assert_int_equal(parse_ok("2026-11-22T18:00:00+08:00"), t);
    assert_int_equal(parse_ok("2026-11-22T04:30:00-05:30"), t);
    assert_int_equal(parse_ok("2026-11-22T10:00:00+00:00"), t);
    assert_int_equal(parse_ok("2026-11-22T10:00:00-00:00"), t);
    assert_int_equal(parse_ok("2026-11-23T09:59:00+23:59"), t);
    assert_int_equal(parse_ok("2026-11-21T10:01:00-23:59"), t);
    /* fractions: up to microseconds kept, nanoseconds cut */
    assert_int_equal(parse_ok("2026-11-22T10:00:00.5Z"), t + 500000);
    assert_int_equal(parse_ok("2026-11-22T10:00:00.000001Z"), t + 1);
    assert_int_equal(parse_ok("2026-11-22T10:00:00.123456Z"), t + 123456);
    assert_int_equal(parse_ok("2026-11-22T10:00:00.123456789Z"), t + 123456);
    assert_int_equal(parse_ok("2026-11-22T18:00:00.25+08:00"), t + 250000);
    /* leap days */
    assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 19782LL * 86400 * S);
    assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), (11017LL - 1) * 86400 * S + 12 * 3600 * S);
    /* a leap second folds into the next minute */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2017-01-01T00:00:00Z"));
    /* before the epoch and the ends of the four-digit years */
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -S);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999999Z"), -1);
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), -62135596800LL * S);
    assert_int_equal(parse_ok("9999-12-31T23:59:59Z"), 253402300799LL * S);
    assert_int_equal(parse_ok("1970-01-01T00:00:00+01:00"), -3600 * S);
}

static void rfc3339_refusals(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "2026-11-22",
        "2026-11-22T10:00:00", /* no offset */
        "2026-11-22T10:00Z",   /* no seconds */
        "2026-11-22X10:00:00Z",
        "2026-11-22T10:00:00ZZ", /* trailing */
        "2026-11-22T10:00:00Z ",
        "2026-11-22T10:00:00.Z", /* empty fraction */
        "2026-11-22T10:00:00.1234567891Z",
        "2026-11-22T10:00:00+8:00",
        "2026-11-22T10:00:00+08:0",
        "2026-11-22T10:00:00+0800",
        "2026-11-22T10:00:00+24:00",
        "2026-11-22T10:00:00+08:60",
        "2026-11-22T10:00:00+08",
        "2026-00-22T10:00:00Z",
        "2026-13-22T10:00:00Z",
        "2026-11-00T10:00:00Z",
        "2026-11-31T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2023-02-29T10:00:00Z",
        "1900-02-29T10:00:00Z",
        "2026-01-32T10:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T10:60:00Z",
        "2026-11-22T10:00:61Z",
        "2026-1-22T10:00:00Z",
        "2026/11/22T10:00:00Z",
        "2026-11-22T1a:00:00Z",
        "+2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00 Z",
        "２０２６-11-22T10:00:00Z",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t us = 42;
        int rc = time_parse_rfc3339(bad[i], strlen(bad[i]), &us);
        if (rc != KITH_EINVAL) fail_msg("accepted '%s' as %lld", bad[i], (long long)us);
        assert_int_equal(us, 42); /* output untouched */
    }
    /* the length bounds the input */
    int64_t us;
    assert_int_equal(time_parse_rfc3339("2026-11-22T10:00:00Zjunk", 20, &us), 0);
    assert_int_equal(time_parse_rfc3339("2026-11-22T10:00:00Z", 19, &us), KITH_EINVAL);
}

static void date_parse(void **state)
{
    (void)state;
    int32_t d = 99;
    assert_ok(time_parse_date("1970-01-01", 10, &d));
    assert_int_equal(d, 0);
    assert_ok(time_parse_date("2024-02-29", 10, &d));
    assert_int_equal(d, 19782);
    assert_ok(time_parse_date("1969-12-31", 10, &d));
    assert_int_equal(d, -1);
    assert_ok(time_parse_date("2000-03-01", 10, &d));
    assert_int_equal(d, 11017);
    assert_ok(time_parse_date("0001-01-01", 10, &d));
    assert_int_equal(d, -719162);
    const char *bad[] = {"2023-02-29",
                         "2024-2-29",
                         "2024-02-30",
                         "2024-13-01",
                         "2024-00-10",
                         "2024-01-00",
                         "20240229",
                         "2024-02-29T",
                         "2024-02-2x",
                         " 2024-02-29",
                         "2024-06-31",
                         "1900-02-29",
                         ""};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        d = 7;
        if (time_parse_date(bad[i], strlen(bad[i]), &d) != KITH_EINVAL)
            fail_msg("accepted date '%s'", bad[i]);
        assert_int_equal(d, 7);
    }
    assert_int_equal(time_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(time_days_from_civil(2024, 3, 1), 19783);
}

static void format(void **state)
{
    (void)state;
    char out[64];
    struct {
        int64_t us;
        int digits;
        const char *want;
    } cases[] = {
        {0, -1, "1970-01-01T00:00:00Z"},
        {0, 0, "1970-01-01T00:00:00Z"},
        {0, 3, "1970-01-01T00:00:00.000Z"},
        {0, 6, "1970-01-01T00:00:00.000000Z"},
        {1795341600LL * S, -1, "2026-11-22T10:00:00Z"},
        {1795341600LL * S + 500000, -1, "2026-11-22T10:00:00.500Z"},
        {1795341600LL * S + 123456, -1, "2026-11-22T10:00:00.123456Z"},
        {1795341600LL * S + 123456, 3, "2026-11-22T10:00:00.123Z"},
        {1795341600LL * S + 123456, 0, "2026-11-22T10:00:00Z"},
        {-1, -1, "1969-12-31T23:59:59.999999Z"},
        {-1, 0, "1969-12-31T23:59:59Z"},
        {-S, -1, "1969-12-31T23:59:59Z"},
        {-S - 1, 6, "1969-12-31T23:59:58.999999Z"},
        {-86400 * S, -1, "1969-12-31T00:00:00Z"},
        {-86400 * S - 1, -1, "1969-12-30T23:59:59.999999Z"},
        {19782LL * 86400 * S, -1, "2024-02-29T00:00:00Z"},
        {-62135596800LL * S, -1, "0001-01-01T00:00:00Z"},
        {253402300799LL * S + 999999, -1, "9999-12-31T23:59:59.999999Z"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t n = time_fmt_rfc3339(cases[i].us, out, sizeof out, cases[i].digits);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("%lld (%d digits): got %s, want %s", (long long)cases[i].us, cases[i].digits,
                     out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    /* a short buffer gets a truncated, terminated string */
    char small[8];
    assert_int_equal(time_fmt_rfc3339(0, small, sizeof small, 0), 7);
    assert_string_equal(small, "1970-01");
}

static void format_parse_round_trip(void **state)
{
    (void)state;
    const int64_t lo = -62135596800LL * S, hi = 253402300799LL * S + 999999;
    uint64_t x = 0x853C49E6748FEA9Bull;
    char out[64];
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t us;
        if (i < 2000)
            us = (int64_t)(i - 1000) * 999983; /* around the epoch */
        else
            us = lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
        if (i % 3 == 0) us -= us % S; /* whole seconds */
        if (i % 3 == 1) us -= us % 1000;
        for (int digits = -1; digits <= 6; digits += 7) {
            size_t n = time_fmt_rfc3339(us, out, sizeof out, digits);
            int64_t back;
            if (time_parse_rfc3339(out, n, &back))
                fail_msg("%lld formats as '%s', which does not parse", (long long)us, out);
            if (back != us) fail_msg("%lld -> %s -> %lld", (long long)us, out, (long long)back);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339_parse),
        cmocka_unit_test(rfc3339_refusals),
        cmocka_unit_test(date_parse),
        cmocka_unit_test(format),
        cmocka_unit_test(format_parse_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
