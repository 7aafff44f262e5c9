/* Tests plugins/leads/attrib.c: how each attribution model splits one
 * conversion over its touches, and working hours. */
#include "testutil.h"

#include "attrib.h"
#include "kp_util.h"

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

static int64_t at(const char *s)
{
    int64_t ms;
    if (kp_time_parse(s, &ms)) fail_msg("bad time %s", s);
    return ms;
}

static void working_hours(void **state)
{
    (void)state;
    /* Mon-Fri 09:00-18:00 in UTC+8; 2026-11-20 is a Friday */
    work_hours_t w = {.days = 0x1f, .start_h = 9, .end_h = 18, .tz_min = 480};
    struct {
        const char *from;
        int64_t minutes;
        const char *want;
    } cases[] = {
        {"2026-11-18T10:00:00+08:00", 240, "2026-11-18T14:00:00+08:00"}, /* within a day */
        {"2026-11-20T16:00:00+08:00", 240, "2026-11-23T11:00:00+08:00"}, /* over a weekend */
        {"2026-11-21T12:00:00+08:00", 240, "2026-11-23T13:00:00+08:00"}, /* from a Saturday */
        {"2026-11-18T07:30:00+08:00", 60, "2026-11-18T10:00:00+08:00"},  /* before opening */
        {"2026-11-18T20:00:00+08:00", 60, "2026-11-19T10:00:00+08:00"},  /* after closing */
        {"2026-11-18T17:00:00+08:00", 60, "2026-11-18T18:00:00+08:00"},  /* to the minute */
        /* 27 working hours from Wednesday 10:00: 8 + 9 + 9, then Monday's 1 */
        {"2026-11-18T10:00:00+08:00", 27 * 60, "2026-11-23T10:00:00+08:00"},
        {"2026-11-18T10:00:00+08:00", 0, "2026-11-18T10:00:00+08:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = work_hours_add(&w, at(cases[i].from), cases[i].minutes);
        int64_t want = at(cases[i].want);
        if (got != want) {
            char g[KP_ISO_MAX];
            kp_iso_from_ms(got, g);
            fail_msg("case %zu: %s", i, g);
        }
    }
    /* no working day at all: unchanged */
    work_hours_t none = {.days = 0, .start_h = 9, .end_h = 18};
    assert_int_equal(work_hours_add(&none, 1000, 60), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(models), cmocka_unit_test(working_hours)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
