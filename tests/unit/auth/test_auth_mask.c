/* Tests core/auth/auth_role.c's masking of sensitive values: phones as
 * people read them (national 138****5678; international with the country
 * code kept, +86 138****5678), e-mail addresses, other text. */
#include "testutil.h"

#include "auth/auth_role.h"
#include "store/store_schema.h"

#include <string.h>

static void masked(int type, const char *in, const char *want)
{
    store_field_t f;
    memset(&f, 0, sizeof f);
    f.type = type;
    json_t *v = json_string(in), *m = auth_mask_value(&f, v);
    if (!json_is_string(m) || strcmp(json_string_value(m), want) != 0)
        fail_msg("'%s' masked as '%s', not '%s'", in, json_string_value(m), want);
    json_decref(v);
    json_decref(m);
}

static void phones(void **state)
{
    (void)state;
    masked(ST_PHONE, "13812345678", "138****5678");
    masked(ST_PHONE, "138-1234-5678", "138****5678");
    masked(ST_PHONE, "+8613812345678", "+86 138****5678");
    masked(ST_PHONE, "+15551234567", "+1 555***4567");
    masked(ST_PHONE, "+442079460958", "+44 207***0958");
    masked(ST_PHONE, "+35312345678", "+353 123*5678"); /* a three-digit code */
    masked(ST_PHONE, "+989121234567", "+98 912***4567"); /* the table's last entry */
    masked(ST_PHONE, "+861234567", "861**4567");       /* too short to keep the code */
    masked(ST_PHONE, "12345", "***");
}

static void others(void **state)
{
    (void)state;
    masked(ST_EMAIL, "alice@example.com", "a***@example.com");
    masked(ST_EMAIL, "no-at-sign", "***");
    masked(ST_STRING, "Confidential", "C***");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(phones), cmocka_unit_test(others)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
