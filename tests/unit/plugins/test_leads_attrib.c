/* Tests plugins/leads/attrib.c: how each attribution model splits one
 * conversion over its touches, and the RFC 3339 times they are computed from. */
#include "testutil.h"

#include "attrib.h"

#include <math.h>
#include <string.h>

#define DAY 86400000LL

static void models(void **state)
{
    (void)state;
    assert_int_equal(attrib_model("first"), ATTRIB_FIRST);
    assert_int_equal(attrib_model("time_decay"), ATTRIB_TIME_DECAY);
    assert_int_equal(attrib_model("u_shaped"), -1);
    assert_int_equal(attrib_model(NULL), -1);
    int64_t t[3] = {0, 7 * DAY, 14 * DAY};
    double w[3];
    attrib_credit(ATTRIB_FIRST, t, 3, 14 * DAY, 7 * DAY, w);
    assert_true(w[0] == 1 && w[1] == 0 && w[2] == 0);
    attrib_credit(ATTRIB_LAST, t, 3, 14 * DAY, 7 * DAY, w);
    assert_true(w[0] == 0 && w[1] == 0 && w[2] == 1);
    attrib_credit(ATTRIB_LINEAR, t, 3, 14 * DAY, 7 * DAY, w);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(w[i] - 1.0 / 3) < 1e-12);
    /* a week's half-life: touches 0, 1 and 2 weeks old weigh 1, 1/2, 1/4
     * before they are made to sum to 1 */
    attrib_credit(ATTRIB_TIME_DECAY, t, 3, 14 * DAY, 7 * DAY, w);
    assert_true(fabs(w[2] - 4.0 / 7) < 1e-12);
    assert_true(fabs(w[1] - 2.0 / 7) < 1e-12);
    assert_true(fabs(w[0] - 1.0 / 7) < 1e-12);
    /* one touch gets it all under every model */
    for (int m = ATTRIB_FIRST; m <= ATTRIB_TIME_DECAY; m++) {
        attrib_credit(m, t, 1, 30 * DAY, 7 * DAY, w);
        assert_true(fabs(w[0] - 1) < 1e-12);
    }
}

static void times(void **state)
{
    (void)state;
    int ok;
    assert_int_equal(attrib_time_ms("1970-01-01T00:00:00Z", &ok), 0);
    assert_true(ok);
    assert_int_equal(attrib_time_ms("2026-11-23T05:50:30.123456Z", &ok), 1795413030123LL);
    assert_true(ok);
    /* an offset is the same instant in UTC */
    assert_int_equal(attrib_time_ms("2026-11-23T13:50:30.123+08:00", &ok), 1795413030123LL);
    assert_int_equal(attrib_time_ms("2024-02-29", &ok), 1709164800000LL);
    assert_true(ok);
    assert_int_equal(attrib_time_ms("1969-12-31T23:59:59Z", &ok), -1000);
    const char *bad[] = {"", "2026-13-01", "2026-11-23T25:00:00Z", "2026-11-23T05:50:30",
                         "2026-11-23T05:50:30.Z", "yesterday", "2026-11-23T05:50:30Zjunk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attrib_time_ms(bad[i], &ok);
        if (ok) fail_msg("'%s' read as a time", bad[i]);
    }
    char s[ATTRIB_TIME_MAX];
    attrib_time_format(1795413030123LL, s);
    assert_string_equal(s, "2026-11-23T05:50:30.123Z");
    attrib_time_format(1709164800000LL, s);
    assert_string_equal(s, "2024-02-29T00:00:00.000Z");
    attrib_time_format(-1000, s);
    assert_string_equal(s, "1969-12-31T23:59:59.000Z");
    /* round trips over a range of days, leap years included */
    for (int64_t ms = -400 * 365 * DAY; ms < 400 * 365 * DAY; ms += 997 * DAY + 12345) {
        attrib_time_format(ms, s);
        assert_int_equal(attrib_time_ms(s, &ok), ms);
        assert_true(ok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(models), cmocka_unit_test(times)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
