/* Tests plugins/common/kp_util.c: calendar dates, RFC 3339 times, ASCII
 * case and query strings, as the first-party plugins read and write them. */
#include "testutil.h"

#include "kp_util.h"

#include <string.h>

#define DAY 86400000LL

static void dates(void **state)
{
    (void)state;
    int64_t d;
    assert_int_equal(kp_date_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(kp_date_parse("2017-03-01", &d), 0);
    assert_int_equal(d, 17226);
    assert_int_equal(kp_date_parse("2016-02-29", &d), 0);
    assert_int_equal(kp_date_parse("2026-05-01T09:30:00Z", &d), 0);
    const char *bad[] = {"2017-02-29", "2017-13-01",  "2017-00-10", "2017-04-31", "17-03-01",
                         "2017/03/01", "2017-03-01 ", "2017-03-0x", "1900-02-29"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kp_date_parse(bad[i], &d) == 0) fail_msg("'%s' read as a date", bad[i]);
    assert_int_equal(kp_date_parse("2000-02-29", &d), 0);

    char iso[KP_ISO_MAX], date[KP_DATE_MAX];
    assert_string_equal(kp_iso_from_ms(0, iso), "1970-01-01T00:00:00.000Z");
    assert_string_equal(kp_iso_from_ms(1777627800123, iso), "2026-05-01T09:30:00.123Z");
    assert_string_equal(kp_iso_from_ms(-1, iso), "1969-12-31T23:59:59.999Z");
    assert_string_equal(kp_date_from_ms(1777627800123, date), "2026-05-01");
    /* every day of four years round-trips */
    for (int64_t day = 17000; day < 17000 + 4 * 366; day++) {
        kp_date_from_ms(day * 86400000 + 3600000, date);
        assert_int_equal(kp_date_parse(date, &d), 0);
        assert_int_equal(d, day);
    }
}

static void times(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(kp_time_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(kp_time_parse("2026-11-23T05:50:30.123456Z", &ms), 0);
    assert_int_equal(ms, 1795413030123LL);
    /* an offset is the same instant in UTC */
    assert_int_equal(kp_time_parse("2026-11-23T13:50:30.123+08:00", &ms), 0);
    assert_int_equal(ms, 1795413030123LL);
    assert_int_equal(kp_time_parse("2024-02-29", &ms), 0);
    assert_int_equal(ms, 1709164800000LL);
    assert_int_equal(kp_time_parse("1969-12-31T23:59:59Z", &ms), 0);
    assert_int_equal(ms, -1000);
    const char *bad[] = {"",
                         "2026-13-01",
                         "2026-11-23T25:00:00Z",
                         "2026-11-23T05:50:30",
                         "2026-11-23T05:50:30.Z",
                         "yesterday",
                         "2026-11-23T05:50:30Zjunk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (kp_time_parse(bad[i], &ms) == 0) fail_msg("'%s' read as a time", bad[i]);
    }
    char s[KP_ISO_MAX];
    kp_iso_from_ms(1795413030123LL, s);
    assert_string_equal(s, "2026-11-23T05:50:30.123Z");
    kp_iso_from_ms(1709164800000LL, s);
    assert_string_equal(s, "2024-02-29T00:00:00.000Z");
    kp_iso_from_ms(-1000, s);
    assert_string_equal(s, "1969-12-31T23:59:59.000Z");
    /* round trips over a range of days, leap years included */
    for (int64_t t = -300 * 365 * DAY; t < 400 * 365 * DAY; t += 997 * DAY + 12345) {
        kp_iso_from_ms(t, s);
        assert_int_equal(kp_time_parse(s, &ms), 0);
        assert_int_equal(ms, t);
    }
}

static void text(void **state)
{
    (void)state;
    char n[8];
    assert_int_equal(kp_full_name("Ann", "Lee", n, sizeof n), 7);
    assert_string_equal(n, "Ann Lee");
    kp_full_name(NULL, "Lee", n, sizeof n);
    assert_string_equal(n, "Lee");
    kp_full_name("Ann", NULL, n, sizeof n);
    assert_string_equal(n, "Ann");
    /* cut to fit, never inside a character: "Zoë Lee" has 8 bytes */
    assert_int_equal(kp_full_name("Zo\xc3\xab", "Lee", n, sizeof n), 7);
    assert_string_equal(n, "Zo\xc3\xab Le");
    assert_int_equal(kp_full_name("ab\xe4\xb8\xad\xe6\x96\x87", NULL, n, 6), 5);
    assert_string_equal(n, "ab\xe4\xb8\xad");
    assert_int_equal(kp_full_name("abcd\xe4\xb8\xad", NULL, n, 7), 4); /* 中 would not fit */
    assert_string_equal(n, "abcd");
    assert_true(kp_ieq("Won", "won"));
    assert_false(kp_ieq("Won", "Wonder"));
    assert_false(kp_ieq(NULL, "x"));
    assert_int_equal(kp_hex('f'), 15);
    assert_int_equal(kp_hex('G'), -1);
}

static void query_params(void **state)
{
    (void)state;
    char v[16];
    assert_int_equal(kp_query_param("a=1&product=GTX%20Pro&b", "product", v, sizeof v), 1);
    assert_string_equal(v, "GTX Pro");
    assert_int_equal(kp_query_param("product=GTX+Pro", "product", v, sizeof v), 1);
    assert_string_equal(v, "GTX Pro");
    assert_int_equal(kp_query_param("productx=1&product=", "product", v, sizeof v), 1);
    assert_string_equal(v, "");
    assert_int_equal(kp_query_param("b", "b", v, sizeof v), 1);
    assert_int_equal(kp_query_param("", "a", v, sizeof v), 0);
    assert_int_equal(kp_query_param(NULL, "a", v, sizeof v), 0);
    assert_int_equal(kp_query_param("a=%zz", "a", v, sizeof v), -1);
    assert_int_equal(kp_query_param("a=%4", "a", v, sizeof v), -1);
    assert_int_equal(kp_query_param("a=%00", "a", v, sizeof v), -1);
    assert_int_equal(kp_query_param("a=0123456789abcdef", "a", v, sizeof v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(dates), cmocka_unit_test(times),
                                       cmocka_unit_test(text), cmocka_unit_test(query_params)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
