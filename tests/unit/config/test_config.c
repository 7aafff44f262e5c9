/* Tests core/config/config.c: reading <data>/kith.json over the defaults,
 * refusing unknown keys and bad values with the key named. */
#include "testutil.h"

#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void write_config(const char *dir, const char *json)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/kith.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
}

static void defaults_and_unknown_keys(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    config_t c;
    write_config(dir, "{\"kith_data_format\": 1}");
    assert_ok(config_load(&c, dir));
    assert_int_equal(c.listen_port, 8443);
    assert_string_equal(c.scripts_dir, "");
    write_config(dir, "{\"scripts_dirs\": \"x\"}");
    assert_int_equal(config_load(&c, dir), KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "unknown key 'scripts_dirs'"));
    tu_rmtree(dir);
    free(dir);
}

static void scripts_dir(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char sub[4200], want[4300];
    snprintf(sub, sizeof sub, "%s/lua", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    config_t c;

    /* relative to the data directory, like the TLS paths */
    write_config(dir, "{\"scripts_dir\": \"lua\"}");
    assert_ok(config_load(&c, dir));
    snprintf(want, sizeof want, "%s/lua", dir);
    assert_string_equal(c.scripts_dir, want);

    char json[4400];
    snprintf(json, sizeof json, "{\"scripts_dir\": \"%s\"}", sub);
    write_config(dir, json);
    assert_ok(config_load(&c, dir));
    assert_string_equal(c.scripts_dir, sub);

    /* refused: not a directory, missing, not a string, empty */
    const char *bad[] = {"{\"scripts_dir\": \"kith.json\"}", "{\"scripts_dir\": \"nope\"}",
                         "{\"scripts_dir\": 5}", "{\"scripts_dir\": \"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_config(dir, bad[i]);
        assert_int_equal(config_load(&c, dir), KITH_EINVAL);
        if (!strstr(err_last()->msg, "'scripts_dir'"))
            fail_msg("%s: the message does not name the key: %s", bad[i], err_last()->msg);
    }
    tu_rmtree(dir);
    free(dir);
}

/* The plugins section is checked, then kept for the loader (the file is
 * read once); a refused file keeps nothing; config_release lets it go. */
static void plugins_section_kept(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    config_t c;
    write_config(dir, "{\"kith_data_format\": 1}");
    assert_ok(config_load(&c, dir));
    assert_null(c.plugins);
    write_config(dir, "{\"plugins\": {\"load\": [\"hello\"], \"config\": {\"hello\": {\"n\": 2}}}}");
    assert_ok(config_load(&c, dir));
    assert_non_null(c.plugins);
    json_t *load = json_object_get(c.plugins, "load");
    assert_int_equal(json_array_size(load), 1);
    assert_string_equal(json_string_value(json_array_get(load, 0)), "hello");
    config_release(&c);
    assert_null(c.plugins);
    config_release(&c); /* again: nothing */
    write_config(dir, "{\"plugins\": {\"load\": [\"Bad Name\"]}}");
    assert_int_equal(config_load(&c, dir), KITH_EINVAL);
    assert_null(c.plugins);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_unknown_keys),
        cmocka_unit_test(plugins_section_kept),
        cmocka_unit_test(scripts_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
