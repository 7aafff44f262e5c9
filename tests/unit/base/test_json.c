/* Tests core/base/json.c: string escaping, shortest round-trip reals, and
 * json_parse's limits (duplicate keys, depth, trailing garbage) against the
 * JSONTestSuite parsing corpus. */
#include "testutil.h"

#include "base/json.h"
#include "base/mem.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITE_DEFAULT "/work/shared/corpus/json-test-suite/test_parsing"

static char *write_str(const char *s, size_t len)
{
    buf_t b = BUF_INIT;
    json_write_str(&b, s, len);
    return buf_steal(&b, NULL);
}

static char *write_real(double v)
{
    buf_t b = BUF_INIT;
    json_write_real(&b, v);
    return buf_steal(&b, NULL);
}

static void str_escapes(void **state)
{
    (void)state;
    struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"", 0, "\"\""},
        {"plain", 5, "\"plain\""},
        {"a\"b", 3, "\"a\\\"b\""},
        {"a\\b", 3, "\"a\\\\b\""},
        {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"x\0y", 3, "\"x\\u0000y\""},
        {"/", 1, "\"/\""},
        {"\x7f", 1, "\"\x7f\""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"\"\\\"", 3, "\"\\\"\\\\\\\"\""},
        /* bytes that are not UTF-8 become U+FFFD, one per bad byte */
        {"a\xc3(", 3, "\"a\xef\xbf\xbd(\""},
        {"\xff\xfe", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"x\xe2\x82", 3, "\"x\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xc0\"", 2, "\"\xef\xbf\xbd\\\"\""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *s = write_str(cases[i].in, cases[i].len);
        if (strcmp(s, cases[i].out) != 0) fail_msg("case %zu: got %s, want %s", i, s, cases[i].out);
        free(s);
    }
    /* every ASCII byte, alone and between other text, reads back unchanged;
     * no raw control character ever reaches the output */
    for (int c = 0; c < 128; c++) {
        char in[3] = {'a', (char)c, 'z'};
        char *s = write_str(in, 3);
        for (const char *p = s; *p; p++)
            assert_true((unsigned char)*p >= 0x20);
        size_t n = strlen(s);
        buf_t doc = BUF_INIT;
        buf_addc(&doc, '[');
        buf_add(&doc, s, n);
        buf_addc(&doc, ']');
        json_error_t jerr;
        json_t *j = json_loadb(doc.p, doc.len, JSON_ALLOW_NUL, &jerr);
        if (!j) fail_msg("byte %d: %s does not parse: %s", c, s, jerr.text);
        json_t *str = json_array_get(j, 0);
        assert_int_equal(json_string_length(str), 3);
        assert_memory_equal(json_string_value(str), in, 3);
        json_decref(j);
        buf_free(&doc);
        free(s);
    }
    /* appends to what is there */
    buf_t b = BUF_INIT;
    buf_adds(&b, "k=");
    json_write_cstr(&b, "v\"");
    assert_string_equal(b.p, "k=\"v\\\"\"");
    buf_free(&b);
}

static void real_shortest(void **state)
{
    (void)state;
    struct {
        double v;
        const char *out;
    } cases[] = {
        {19.99, "19.99"},
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {3.0, "3.0"},
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {-2.5, "-2.5"},
        {100.0, "100.0"},
        {1e-7, "1e-07"},
        {0.30000000000000004, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789.0, "123456789.0"},
        {5e-324, "5e-324"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {DBL_MAX, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *s = write_real(cases[i].v);
        if (strcmp(s, cases[i].out) != 0)
            fail_msg("%.17g: got %s, want %s", cases[i].v, s, cases[i].out);
        free(s);
    }
    char *s = write_real(NAN);
    assert_string_equal(s, "null");
    free(s);
    s = write_real(INFINITY);
    assert_string_equal(s, "null");
    free(s);

    /* random bit patterns: round trip, read back as a real, and no shorter
     * precision would have read back */
    uint64_t x = 0x243F6A8885A308D3ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        uint64_t bits = i < 10000 ? x : (x >> 12) | 0x3FF0000000000000ull; /* also 1 <= v < 2 */
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        s = write_real(v);
        if (strtod(s, NULL) != v && !(v == 0)) fail_msg("%s does not read back as %.17g", s, v);
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        if (!json_is_real(j)) fail_msg("%s does not read back as a real", s);
        json_decref(j);
        int digits = 0;
        for (const char *p = s; *p && *p != 'e'; p++)
            if (*p >= '0' && *p <= '9') digits++;
        /* leading zeros ("0.001") and the ".0" suffix are not significant */
        const char *p = s + (*s == '-');
        while (*p == '0' || *p == '.') {
            if (*p == '0') digits--;
            p++;
        }
        if (strstr(s, ".0") && s[strlen(s) - 1] == '0' && s[strlen(s) - 2] == '.') digits--;
        if (digits > 1) {
            char shorter[400];
            snprintf(shorter, sizeof shorter, "%.*g", digits - 1, v);
            if (strtod(shorter, NULL) == v)
                fail_msg("%s is not shortest: %s reads back", s, shorter);
        }
        free(s);
    }
}

static void write_value_compact(void **state)
{
    (void)state;
    json_t *j = tu_json("{\"b\":[1,2.5,true,false,null,\"x\\n\"],\"a\":{\"c\":19.99,\"d\":3.0}}");
    size_t n;
    char *s = json_to_str(j, &n);
    assert_string_equal(s,
                        "{\"b\":[1,2.5,true,false,null,\"x\\n\"],\"a\":{\"c\":19.99,\"d\":3.0}}");
    assert_int_equal(n, strlen(s));
    free(s);
    json_decref(j);
    assert_int_equal(json_depth(json_null()), 1);
}

static void parse_refusals(void **state)
{
    (void)state;
    const char *dups[] = {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":1}",
                          "[{\"x\":{\"k\":1,\"k\":null}}]"};
    for (size_t i = 0; i < ARRAY_LEN(dups); i++) {
        assert_null(json_parse(dups[i], strlen(dups[i])));
        assert_int_equal(err_last()->code, KITH_EINVAL);
    }
    const char *trailing[] = {"[1] x", "{} {}", "1 2", "\"a\"\"b\"", "[1]]", "nullx", "{}\x01"};
    for (size_t i = 0; i < ARRAY_LEN(trailing); i++) {
        json_t *j = json_parse(trailing[i], strlen(trailing[i]));
        if (j) fail_msg("accepted trailing garbage: %s", trailing[i]);
        assert_int_equal(err_last()->code, KITH_EINVAL);
        assert_non_null(strstr(err_last()->msg, "line"));
    }
    /* a NUL byte inside a string (raw or escaped) and after the value */
    assert_null(json_parse("[\"a\\u0000b\"]", 12));
    assert_null(json_parse("[1]\0", 4));
    assert_null(json_parse("", 0));
    assert_null(json_parse(" ", 1));
    /* whitespace around a value is fine; so are scalars at the top */
    json_t *j = json_parse(" \n[1]\t\r\n ", 9);
    assert_non_null(j);
    json_decref(j);
    j = json_parse("42", 2);
    assert_int_equal(json_integer_value(j), 42);
    json_decref(j);
    /* the length bounds the input: what follows is not read */
    j = json_parse("[1]garbage", 3);
    assert_non_null(j);
    json_decref(j);
}

static char *nest(int depth, const char *open, const char *close, const char *inner)
{
    buf_t b = BUF_INIT;
    for (int i = 0; i < depth; i++)
        buf_adds(&b, open);
    buf_adds(&b, inner);
    for (int i = 0; i < depth; i++)
        buf_adds(&b, close);
    return buf_steal(&b, NULL);
}

static void parse_depth(void **state)
{
    (void)state;
    char *s = nest(JSON_DEPTH_MAX, "[", "]", "1");
    json_t *j = json_parse(s, strlen(s));
    assert_non_null(j);
    assert_int_equal(json_depth(j), JSON_DEPTH_MAX + 1);
    json_decref(j);
    free(s);
    s = nest(JSON_DEPTH_MAX + 1, "[", "]", "1");
    assert_null(json_parse(s, strlen(s)));
    assert_int_equal(err_last()->code, KITH_ELIMIT);
    free(s);
    s = nest(JSON_DEPTH_MAX + 1, "{\"a\":", "}", "{}");
    assert_null(json_parse(s, strlen(s)));
    assert_int_equal(err_last()->code, KITH_ELIMIT);
    free(s);
    s = nest(JSON_DEPTH_MAX - 1, "{\"a\":", "}", "[]");
    j = json_parse(s, strlen(s));
    assert_non_null(j);
    json_decref(j);
    free(s);
    /* far beyond jansson's own recursion limit: refused before it recurses */
    s = nest(100000, "[", "]", "");
    assert_null(json_parse(s, strlen(s)));
    assert_int_equal(err_last()->code, KITH_ELIMIT);
    free(s);
    /* brackets inside strings (also after escaped quotes) do not count */
    s = nest(200, "[", "", "");
    buf_t b = BUF_INIT;
    buf_adds(&b, "[\"\\\"\\\\");
    buf_adds(&b, s);
    buf_adds(&b, "\", \"{{{{\"]");
    j = json_parse(b.p, b.len);
    if (!j) fail_msg("brackets in strings counted as depth: %s", err_last()->msg);
    json_decref(j);
    buf_free(&b);
    free(s);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, n);
    fclose(f);
    return buf_steal(&b, len);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* y_ files json_parse refuses on purpose (json.h: duplicate keys and NUL in
 * strings are refused): each must be refused for that reason, and nothing else. */
static const struct {
    const char *name, *why;
} y_policy[] = {
    {"y_object_duplicated_key.json", "duplicate object key"},
    {"y_object_duplicated_key_and_value.json", "duplicate object key"},
    {"y_object_escaped_null_in_key.json", "NUL"},
    {"y_string_null_escape.json", "\\u0000"},
};

static const char *y_refused_by_policy(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(y_policy); i++)
        if (strcmp(y_policy[i].name, name) == 0) return y_policy[i].why;
    return NULL;
}

static void parse_test_suite(void **state)
{
    (void)state;
    const char *dir = getenv("KITH_JSON_SUITE");
    if (!dir || !*dir) dir = SUITE_DEFAULT;
    DIR *d = opendir(dir);
    if (!d) {
        print_message("skipped: no JSONTestSuite corpus at %s (set KITH_JSON_SUITE)\n", dir);
        skip();
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = xrealloc(names, (cap = cap ? cap * 2 : 512) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    size_t ny = 0, nn = 0, ni = 0, failures = 0, npolicy = 0;
    buf_t n_accepted = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        char *text = read_all(path, &len);
        assert_non_null(text);
        json_t *j = json_parse(text, len);
        if (names[i][0] == 'y') {
            ny++;
            const char *why = y_refused_by_policy(names[i]);
            if (why && (j || !strstr(err_last()->msg, why))) {
                print_error("%s: expected a refusal naming '%s', got %s\n", names[i], why,
                            j ? "acceptance" : err_last()->msg);
                failures++;
            } else if (why) {
                npolicy++;
            } else if (!j) {
                print_error("refused %s: %s\n", names[i], err_last()->msg);
                failures++;
            }
        } else if (names[i][0] == 'n') {
            nn++;
            if (j) {
                buf_addf(&n_accepted, " %s", names[i]);
            }
        } else {
            ni++; /* implementation-defined: either answer is fine, no crash is the test */
        }
        if (j) json_decref(j);
        free(text);
        free(names[i]);
    }
    free(names);
    print_message("JSONTestSuite: %zu y_, %zu n_, %zu i_ files; n_ files accepted:%s\n", ny, nn, ni,
                  n_accepted.len ? n_accepted.p : " none");
    buf_free(&n_accepted);
    assert_true(ny > 90);
    assert_int_equal(npolicy, ARRAY_LEN(y_policy));
    if (failures) fail_msg("%zu y_ files refused", failures);
}

/* json_object_keys: the top-level keys of Kith's own compact JSON, in
 * order, agreeing with jansson on every object of a random-ish mix; keys
 * inside values, strings with quotes, braces and escapes are skipped. */
typedef struct keys {
    char got[16][64];
    int n, stop_at;
} keys_t;

static int key_cb(void *ctx, const char *k, size_t n)
{
    keys_t *ks = ctx;
    if (ks->n < 16) snprintf(ks->got[ks->n], sizeof ks->got[0], "%.*s", (int)n, k);
    ks->n++;
    return ks->n == ks->stop_at;
}

static void object_keys(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        "{\"a\":1}",
        "{\"a\":\"x,\\\"b\\\":2}\",\"c\":[{\"d\":1},\"]\"],\"e\":{\"f\":{\"g\":null}},\"h\":-1.5e3}",
        "{\"s\":\"\\\\\",\"t\":true,\"u\":false,\"v\":[],\"w\":{}}",
        " {\"sp\" : 1 , \"q\" : [ 1 , 2 ] }",
    };
    for (size_t d = 0; d < sizeof docs / sizeof *docs; d++) {
        json_t *v = json_parse(docs[d], strlen(docs[d]));
        assert_non_null(v);
        keys_t ks = {.n = 0};
        assert_int_equal(json_object_keys(docs[d], strlen(docs[d]), key_cb, &ks), 0);
        assert_int_equal(ks.n, (int)json_object_size(v));
        int i = 0;
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) assert_string_equal(ks.got[i++], k);
        json_decref(v);
    }
    keys_t ks = {.stop_at = 2};
    assert_int_equal(json_object_keys("{\"a\":1,\"b\":2,\"c\":3}", 19, key_cb, &ks), 0);
    assert_int_equal(ks.n, 2); /* stopped */
    assert_int_equal(json_object_keys("[1]", 3, key_cb, &ks), -1);
    assert_int_equal(json_object_keys("", 0, key_cb, &ks), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(str_escapes),         cmocka_unit_test(real_shortest),
        cmocka_unit_test(write_value_compact), cmocka_unit_test(parse_refusals),
        cmocka_unit_test(parse_depth),         cmocka_unit_test(parse_test_suite),
        cmocka_unit_test(object_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
