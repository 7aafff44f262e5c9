/* Tests plugins/pipeline/pipeline_util.c: exact money sums, product keys
 * ("GTXPro" is "GTX Pro"), unknown query parameters (dates, times and query
 * values: test_kp_util.c). */
#include "testutil.h"

#include "pipeline_util.h"

#include <stdint.h>
#include <string.h>

static void money(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(pl_money_parse("1054", &v), 0);
    assert_int_equal(v, 10540000);
    assert_int_equal(pl_money_parse("19.9", &v), 0);
    assert_int_equal(v, 199000);
    assert_int_equal(pl_money_parse("-0.0001", &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(pl_money_parse("+.5", &v), 0);
    assert_int_equal(v, 5000);
    const char *bad[] = {"", "-", ".", "1.23456", "1e3", "12a", "1,5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pl_money_parse(bad[i], &v) == 0) fail_msg("'%s' read as %lld", bad[i], (long long)v);
    assert_int_equal(pl_money_parse(NULL, &v), -1);

    char out[PL_MONEY_MAX];
    assert_string_equal(pl_money_format(100055340000, out), "10005534");
    assert_string_equal(pl_money_format(199000, out), "19.9");
    assert_string_equal(pl_money_format(-1, out), "-0.0001");
    assert_string_equal(pl_money_format(0, out), "0");
    assert_string_equal(pl_money_format(INT64_MIN, out), "-922337203685477.5808");
    /* a sum of many amounts stays exact */
    int64_t sum = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(pl_money_parse("0.1", &v), 0);
        sum += v;
    }
    assert_string_equal(pl_money_format(sum, out), "100");
}

static void product_keys(void **state)
{
    (void)state;
    char k[32];
    assert_int_equal(pl_product_key("GTX Pro", k, sizeof k), 6);
    assert_string_equal(k, "gtxpro");
    pl_product_key("GTXPro", k, sizeof k);
    assert_string_equal(k, "gtxpro");
    pl_product_key("  gtx-PRO. ", k, sizeof k);
    assert_string_equal(k, "gtxpro");
    pl_product_key("GTK 500", k, sizeof k);
    assert_string_equal(k, "gtk500");
    pl_product_key("Caf\xc3\xa9 X", k, sizeof k); /* non-ASCII bytes are kept */
    assert_string_equal(k, "caf\xc3\xa9x");
    assert_int_equal(pl_product_key(" - ", k, sizeof k), 0);
    assert_int_equal(pl_product_key("abcdef", k, 4), 0); /* does not fit */
}

static void unknown_params(void **state)
{
    (void)state;
    static const char *const allowed[] = {"due", "limit", NULL};
    char bad[8];
    assert_int_equal(pl_query_unknown("due=today&limit=5", allowed, bad, sizeof bad), 0);
    assert_int_equal(pl_query_unknown("", allowed, bad, sizeof bad), 0);
    assert_int_equal(pl_query_unknown("due=today&&", allowed, bad, sizeof bad), 0);
    assert_int_equal(pl_query_unknown("due=1&dew=today", allowed, bad, sizeof bad), 1);
    assert_string_equal(bad, "dew");
    assert_int_equal(pl_query_unknown("d", allowed, bad, sizeof bad), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(money),
        cmocka_unit_test(product_keys),
        cmocka_unit_test(unknown_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
