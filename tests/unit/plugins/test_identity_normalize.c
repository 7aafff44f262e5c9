/* Tests plugins/identity/normalize.c: phone numbers to E.164 as people write
 * them (Chinese mobile numbers in every usual form, full-width digits,
 * international prefixes, trunk zeros), e-mail addresses and web domains. */
#include "testutil.h"

#include "normalize.h"

#include <stdlib.h>
#include <string.h>

static void phone_is(const char *in, const char *cc, const char *want)
{
    char out[NORM_PHONE_MAX];
    const char *why = "";
    if (norm_phone(in, cc, out, &why) != 0) fail_msg("'%s': refused: %s", in, why);
    if (strcmp(out, want) != 0) fail_msg("'%s': '%s', not '%s'", in, out, want);
}

static void phone_bad(const char *in, const char *cc, const char *why_has)
{
    char out[NORM_PHONE_MAX];
    const char *why = "";
    if (norm_phone(in, cc, out, &why) == 0) fail_msg("'%s': read as '%s'", in, out);
    if (!strstr(why, why_has)) fail_msg("'%s': says '%s', not '%s'", in, why, why_has);
}

static void chinese_mobile_numbers(void **state)
{
    (void)state;
    const char *forms[] = {
        "13812345678",
        "138-1234-5678",
        "138 1234 5678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "+86 (138) 1234-5678",
        "0086 138 1234 5678",
        "  138.1234.5678 ",
        "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"
        "\xef\xbc\x95\xef\xbc\x96\xef\xbc\x97\xef\xbc\x98", /* "１３８１２３４５６７８" */
        "\xef\xbc\x8b\xef\xbc\x98\xef\xbc\x96\xe3\x80\x80\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98"
        "\xef\xbc\x8d\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x8d\xef\xbc\x95"
        "\xef\xbc\x96\xef\xbc\x97\xef\xbc\x98", /* "＋８６　１３８－１２３４－５６７８" */
        "138\xe2\x80\x93"
        "1234\xe2\x80\x93"
        "5678", /* en dashes */
        "138\xc2\xa0"
        "1234\xc2\xa0"
        "5678", /* no-break spaces */
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        phone_is(forms[i], "86", "+8613812345678");
    /* the default country does not matter once the number has one */
    phone_is("+86 138 1234 5678", "1", "+8613812345678");
    /* a Chinese mobile number is 11 digits */
    phone_bad("+86 138 1234 567", "86", "Chinese mobile");
    phone_bad("138 1234 56789", "86", "Chinese mobile");
}

static void other_numbers(void **state)
{
    (void)state;
    phone_is("010 8888 9999", "86", "+861088889999");    /* Beijing landline, trunk 0 */
    phone_is("+44 20 7946 0958", "86", "+442079460958"); /* London */
    phone_is("020 7946 0958", "44", "+442079460958");    /* the same, national */
    phone_is("(555) 123-4567", "1", "+15551234567");     /* NANP */
    phone_is("1 (555) 123-4567", "1", "+15551234567");   /* with its trunk 1 */
    phone_is("+1.555.123.4567", "86", "+15551234567");
    phone_is("0049 30 1234567", "86", "+49301234567"); /* Berlin, 00 prefix */
    phone_bad("123", "86", "8 to 15 digits");
    phone_bad("+1234567890123456", "86", "8 to 15 digits"); /* 16 digits */
    phone_bad("555-CALL-NOW", "1", "not part of a phone number");
    phone_bad("+1 555 123 4567 ext 5", "1", "extension");
    phone_bad("555 + 1234567", "1", "'+' after the start");
    phone_bad("5551234567", "", "no default country");
    phone_bad("", "86", "8 to 15 digits");
}

static void email_and_domain(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
    } emails[] = {{"Ann@Example.COM", "ann@example.com"},
                  {"  ann@example.com\t", "ann@example.com"},
                  {"\xe3\x80\x80"
                   "ANN@example.com\xc2\xa0",
                   "ann@example.com"},
                  {"mailto:Ann@Example.com", "ann@example.com"},
                  {"j\xc3\xb6rg@Example.com", "j\xc3\xb6rg@example.com"}}; /* non-ASCII kept */
    for (size_t i = 0; i < sizeof emails / sizeof emails[0]; i++) {
        char *o = norm_email(emails[i].in);
        assert_non_null(o);
        assert_string_equal(o, emails[i].want);
        free(o);
    }
    assert_null(norm_email("   "));
    assert_null(norm_email(""));

    struct {
        const char *in, *want;
    } domains[] = {{"https://www.Acme.com/about?x=1", "acme.com"},
                   {"acme.com", "acme.com"},
                   {"ACME.COM.", "acme.com"},
                   {"http://user@shop.acme.co.uk:8080/", "shop.acme.co.uk"},
                   {" www.acme.com ", "acme.com"},
                   {"wwwacme.com", "wwwacme.com"}};
    for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
        char *o = norm_domain(domains[i].in);
        assert_non_null(o);
        assert_string_equal(o, domains[i].want);
        free(o);
    }
    assert_null(norm_domain("https://"));
    assert_null(norm_domain("  "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chinese_mobile_numbers),
        cmocka_unit_test(other_numbers),
        cmocka_unit_test(email_and_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
