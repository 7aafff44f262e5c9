/* Tests core/store/store_validate.c: the canonical form of each field type
 * (what is stored and what filter operands are compared as) and what each
 * type refuses; then whole records: refs that must exist, every offending
 * field named at once, size limits. */
#include "testutil.h"

#include "base/mem.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *types_def =
    "{\"name\":\"v\",\"fields\":["
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"s5\",\"type\":\"string\",\"max_length\":5},"
    "{\"name\":\"t\",\"type\":\"text\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"n\",\"type\":\"number\"},"
    "{\"name\":\"b\",\"type\":\"bool\"},"
    "{\"name\":\"dt\",\"type\":\"datetime\"},"
    "{\"name\":\"d\",\"type\":\"date\"},"
    "{\"name\":\"e\",\"type\":\"enum\",\"values\":[\"x\",\"y\"]},"
    "{\"name\":\"em\",\"type\":\"email\"},"
    "{\"name\":\"em10\",\"type\":\"email\",\"max_length\":10},"
    "{\"name\":\"ph\",\"type\":\"phone\"},"
    "{\"name\":\"m\",\"type\":\"money\"},"
    "{\"name\":\"r\",\"type\":\"ref\",\"ref\":\"v\"},"
    "{\"name\":\"ai\",\"type\":\"array\",\"items\":\"int\",\"max_length\":3},"
    "{\"name\":\"as\",\"type\":\"array\",\"items\":\"string\",\"max_length\":2},"
    "{\"name\":\"asl\",\"type\":\"array\",\"items\":\"string\"},"
    "{\"name\":\"aem\",\"type\":\"array\",\"items\":\"email\"},"
    "{\"name\":\"adt\",\"type\":\"array\",\"items\":\"datetime\"},"
    "{\"name\":\"ae\",\"type\":\"array\",\"items\":\"enum\",\"values\":[\"p\",\"q\"]},"
    "{\"name\":\"o\",\"type\":\"object\"}]}";

static store_coll_t *coll;

static int group_setup(void **state)
{
    (void)state;
    json_t *def = tu_json(types_def);
    assert_ok(schema_coll_parse(def, 0, &coll));
    json_decref(def);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    schema_coll_free(coll);
    return 0;
}

static const store_field_t *field(const char *name)
{
    const store_field_t *f = store_coll_field(coll, name);
    if (!f) fail_msg("no field %s", name);
    return f;
}

/* value (JSON text) of field is accepted, canonically want (JSON text). */
static void ok_v(const char *name, json_t *v, const char *want)
{
    const store_field_t *f = field(name);
    const char *why = NULL;
    json_t *c = store_value_canon(f, f->type, v, &why);
    char *in = json_to_str(v, NULL);
    if (!c) fail_msg("%s: %.80s refused: %s", name, in, why);
    if (want) {
        json_t *w = tu_json(want);
        if (!json_equal(c, w) || json_typeof(c) != json_typeof(w)) {
            char *got = json_to_str(c, NULL);
            fail_msg("%s: %.80s became %.80s, want %.80s", name, in, got, want);
        }
        json_decref(w);
    }
    free(in);
    json_decref(c);
    json_decref(v);
}

static void ok(const char *name, const char *value, const char *want)
{
    ok_v(name, tu_json(value), want ? want : value);
}

static void bad_v(const char *name, json_t *v)
{
    const store_field_t *f = field(name);
    const char *why = NULL;
    json_t *c = store_value_canon(f, f->type, v, &why);
    if (c) {
        char *in = json_to_str(v, NULL), *got = json_to_str(c, NULL);
        fail_msg("%s: %.80s accepted as %.80s", name, in, got);
    }
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    json_decref(v);
}

static void bad(const char *name, const char *value)
{
    bad_v(name, tu_json(value));
}

static json_t *string_of(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    json_t *j = json_stringn(s, n);
    free(s);
    return j;
}

/* ---- per type ---- */

static void email_values(void **state)
{
    (void)state;
    ok("em", "\"a@b.co\"", NULL);
    ok("em", "\"  Ada@Example.com \\t\"", "\"Ada@Example.com\""); /* trimmed, case kept */
    ok("em", "\"first.last+tag@sub.example.io\"", NULL);
    ok("em", "\"x_y-z@a-b.c.d\"", NULL);
    ok("em", "\"\\r\\na@b.co\\n\"", "\"a@b.co\"");
    json_t *local64 = string_of('l', 64);
    char buf[400];
    snprintf(buf, sizeof buf, "\"%s@b.co\"", json_string_value(local64));
    ok("em", buf, NULL);
    snprintf(buf, sizeof buf, "\"%sl@b.co\"", json_string_value(local64)); /* 65 */
    bad("em", buf);
    json_decref(local64);
    /* 254 bytes at most */
    json_t *dom = string_of('d', 240);
    snprintf(buf, sizeof buf, "\"ab@%s.com\"", json_string_value(dom)); /* 247 */
    ok("em", buf, NULL);
    snprintf(buf, sizeof buf, "\"abcdefghij@%s.com\"", json_string_value(dom)); /* 255 */
    bad("em", buf);
    json_decref(dom);
    const char *bads[] = {"\"\"",
                          "\"a\"",
                          "\"a@\"",
                          "\"@b.co\"",
                          "\"a@b\"",
                          "\"a@@b.co\"",
                          "\"a@b@c.co\"",
                          "\"a@b..co\"",
                          "\"a@.b.co\"",
                          "\"a@b.co.\"",
                          "\"a b@c.co\"",
                          "\"a@b,c.co\"",
                          "\"<a@b.co>\"",
                          "\"a\\\"b@c.co\"",
                          "\"a;b@c.co\"",
                          "\"ab(c)@d.co\"",
                          "\"a@b.c\\u007f\"",
                          "\"a\\\\b@c.co\"",
                          "\"   \"",
                          "5",
                          "[\"a@b.co\"]",
                          "true"};
    for (size_t i = 0; i < ARRAY_LEN(bads); i++)
        bad("em", bads[i]);
    /* max_length counts the trimmed address */
    ok("em10", "\" abc@de.com \"", "\"abc@de.com\"");
    bad("em10", "\"abcd@de.com\"");
}

static void phone_values(void **state)
{
    (void)state;
    ok("ph", "\"+86 138 1234 5678\"", NULL);
    /* full-width digits (U+FF10..U+FF19), plus, parentheses and spaces */
    ok("ph",
       "\"\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"
       "\xef\xbc\x95\xef\xbc\x96\xef\xbc\x97\xef\xbc\x98\"",
       NULL); /* "１３８１２３４５６７８" */
    ok("ph",
       "\"\xef\xbc\x8b\xef\xbc\x98\xef\xbc\x96\xe3\x80\x80\xef\xbc\x88\xef\xbc\x91\xef\xbc\x93"
       "\xef\xbc\x98\xef\xbc\x89\xef\xbc\x8d\xef\xbc\x91\xef\xbc\x92\"",
       NULL); /* "＋８６　（１３８）－１２" */
    ok("ph", "\"(555) 123-4567\"", NULL);
    ok("ph", "\"+1.555.123.4567\"", NULL);
    ok("ph", "\"555/1234\"", NULL);
    ok("ph", "\"123\"", NULL);
    ok("ph", "\"12345678901234567890\"", NULL); /* 20 digits */
    ok("ph", "\"  +44 20 7946 0958 \"", "\"+44 20 7946 0958\"");
    const char *bads[] = {"\"12\"",
                          "\"abc\"",
                          "\"555-CALL-NOW\"",
                          "\"123456789012345678901\"", /* 21 digits */
                          "\"+1 555 123 4567 ext 5\"",
                          "\"\xe2\x98\x8e 555 1234\"", /* ☎ */
                          "\"555_1234\"",
                          "\"555#1234\"",
                          "\"\xef\xbc\xa1\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\"", /* full-width A */
                          "\"\"",
                          "\"\xef\xbc\x91\xef\xbc\x92\"", /* two full-width digits */
                          "5551234",
                          "null"};
    for (size_t i = 0; i < ARRAY_LEN(bads); i++)
        bad("ph", bads[i]);
}

static void money_values(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"\"19.9\"", "\"19.90\""},
        {"19.9", "\"19.90\""},
        {"19", "\"19.00\""},
        {"\"0019.900\"", "\"19.90\""},
        {"\"-0.00\"", "\"0.00\""},
        {"\"-0\"", "\"0.00\""},
        {"\".5\"", "\"0.50\""},
        {"\"5.\"", "\"5.00\""},
        {"\"+3\"", "\"3.00\""},
        {"\"1.2345\"", "\"1.2345\""},
        {"\"1.23450\"", "\"1.2345\""},
        {"\"-12.3\"", "\"-12.30\""},
        {"\"999999999999999.9999\"", NULL},
        {"\"-999999999999999.9999\"", NULL},
        {"\"0000000000000000001\"", "\"1.00\""},
        {"0.1", "\"0.10\""},
        {"-7", "\"-7.00\""},
        {"1e14", "\"100000000000000.00\""},
        {"0.0015", "\"0.0015\""},
        {"\"1.000000000\"", "\"1.00\""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        ok("m", cases[i][0], cases[i][1]);
    const char *bads[] = {"\"1.23456\"", "1.23456",   "\"1e3\"",
                          "\"abc\"",     "\"\"",      "\".\"",
                          "\"-\"",       "\"1,000\"", "\"1000000000000000\"",
                          "true",        "1e15",      "\"1.2.3\"",
                          "\" 1.00\"",   "\"1.00 \"", "0.30000000000000004",
                          "1e-5",        "[1]",       "\"--1\"",
                          "\"0x10\""};
    for (size_t i = 0; i < ARRAY_LEN(bads); i++)
        bad("m", bads[i]);
}

static void datetime_and_date_values(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"\"2026-11-22T10:00:00Z\"", NULL},
        {"\"2026-11-22T10:00:00+08:00\"", "\"2026-11-22T02:00:00Z\""},
        {"\"2026-11-22t10:00:00.5z\"", "\"2026-11-22T10:00:00.500Z\""},
        {"\"2026-11-22 10:00:00.123456-01:30\"", "\"2026-11-22T11:30:00.123456Z\""},
        {"\"2026-01-01T00:30:00+01:00\"", "\"2025-12-31T23:30:00Z\""},
        {"\"2024-02-29T23:59:59-00:30\"", "\"2024-03-01T00:29:59Z\""},
        {"\"1969-12-31T23:59:59.999999Z\"", NULL},
        {"\"2026-06-30T23:59:60Z\"", "\"2026-07-01T00:00:00Z\""}, /* leap second */
        {"\"2026-11-22T10:00:00.1234567Z\"", "\"2026-11-22T10:00:00.123456Z\""},
        {"\"2026-11-22T10:00:00.000Z\"", "\"2026-11-22T10:00:00Z\""},
        {"\"0001-01-01T00:00:00Z\"", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        ok("dt", cases[i][0], cases[i][1]);
    const char *bads[] = {"\"2026-02-30T00:00:00Z\"",
                          "\"2026-13-01T00:00:00Z\"",
                          "\"2026-11-22\"",
                          "\"2026-11-22T25:00:00Z\"",
                          "\"2026-11-22T10:60:00Z\"",
                          "\"2026-11-22T10:00:00\"",
                          "\"2026-11-22T10:00:00+0800\"",
                          "\"2026-11-22T10:00:00+24:00\"",
                          "\"2026-11-22T10:00:00.Z\"",
                          "\"2026-11-22T10:00:00Zjunk\"",
                          "\"2026-11-22X10:00:00Z\"",
                          "\"2025-02-29T00:00:00Z\"",
                          "1700000000",
                          "\"\""};
    for (size_t i = 0; i < ARRAY_LEN(bads); i++)
        bad("dt", bads[i]);

    const char *days[] = {"\"2026-02-28\"", "\"2024-02-29\"", "\"2000-02-29\"",
                          "\"1900-02-28\"", "\"2026-12-31\"", "\"0001-01-01\""};
    for (size_t i = 0; i < ARRAY_LEN(days); i++)
        ok("d", days[i], NULL);
    const char *bad_days[] = {"\"2026-02-29\"", "\"2100-02-29\"", "\"2026-02-30\"",
                              "\"2026-04-31\"", "\"2026-1-5\"",   "\"2026-01-01T00:00:00Z\"",
                              "\"26-01-01\"",   "\"2026/01/01\"", "\"2026-00-10\"",
                              "\"2026-12-32\"", "20260101",       "\"1900-02-29\""};
    for (size_t i = 0; i < ARRAY_LEN(bad_days); i++)
        bad("d", bad_days[i]);
}

static void scalar_values(void **state)
{
    (void)state;
    ok("i", "5", NULL);
    ok("i", "-9223372036854775808", NULL);
    bad("i", "5.0");
    bad("i", "\"5\"");
    bad("i", "true");
    ok("n", "1.5", NULL);
    ok("n", "-0.0", NULL);
    ok("n", "3", NULL); /* an integer is a number */
    ok("n", "1e300", NULL);
    bad("n", "\"1\"");
    bad("n", "false");
    ok("b", "true", NULL);
    ok("b", "false", NULL);
    bad("b", "1");
    bad("b", "\"true\"");
    ok("e", "\"x\"", NULL);
    bad("e", "\"X\""); /* case matters */
    bad("e", "\"z\"");
    bad("e", "1");
    /* strings: max_length is in bytes */
    ok("s5", "\"hello\"", NULL);
    bad("s5", "\"h\xc3\xa9llo\"");
    ok("s", "\"\"", NULL);
    ok_v("s", string_of('a', 4096), NULL);
    bad_v("s", string_of('a', 4097));
    ok_v("t", string_of('a', 256 * 1024), NULL);
    bad_v("t", string_of('a', 256 * 1024 + 1));
    bad("s", "1");
    bad("t", "[\"a\"]");
    /* refs: canonical upper case; 26 Crockford characters */
    kith_id_t id;
    id_new(&id, 1700000000000);
    char up[ID_TEXT_LEN + 1], low[ID_TEXT_LEN + 3];
    id_encode(&id, up);
    snprintf(low, sizeof low, "\"%s\"", up);
    for (char *p = low; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    char want[ID_TEXT_LEN + 3];
    snprintf(want, sizeof want, "\"%s\"", up);
    ok("r", low, want);
    bad("r", "\"01\"");
    bad("r", "\"0123456789ABCDEFGHJKMNPQRU\""); /* U is not Crockford */
    bad("r", "\"8ZZZZZZZZZZZZZZZZZZZZZZZZZ\""); /* more than 128 bits */
    bad("r", "5");
    /* objects: 16 levels at most */
    json_t *o = json_integer(1);
    for (int depth = 2; depth <= 18; depth++) {
        json_t *w = json_object();
        json_object_set_new(w, "a", o);
        o = w;
        assert_int_equal(json_depth(o), depth);
        if (depth <= 16)
            ok_v("o", json_incref(o), NULL);
        else
            bad_v("o", json_incref(o));
    }
    json_decref(o);
    ok("o", "{}", NULL);
    ok("o", "{\"a\":[1,{\"b\":null}],\"c\":\"x\"}", NULL);
    bad("o", "[]");
    bad("o", "\"{}\"");
}

static void array_values(void **state)
{
    (void)state;
    ok("ai", "[1,2]", NULL);
    ok("ai", "[]", NULL);
    ok("ai", "[1,2,3]", NULL);
    bad("ai", "[1,2,3,4]"); /* max_length: items */
    bad("ai", "[1,\"x\"]");
    bad("ai", "[1,null]");
    bad("ai", "[1.5]");
    bad("ai", "[[1]]");
    bad("ai", "1");
    bad("ai", "{\"0\":1}");
    /* items are canonicalised one by one */
    ok("aem", "[\"  A@b.co \",\"c@d.io\"]", "[\"A@b.co\",\"c@d.io\"]");
    bad("aem", "[\"A@b.co\",\"nope\"]");
    ok("adt", "[\"2026-01-01T01:00:00+01:00\"]", "[\"2026-01-01T00:00:00Z\"]");
    ok("ae", "[\"p\",\"q\",\"p\"]", NULL);
    bad("ae", "[\"p\",\"r\"]");
    /* an array's max_length counts items, not the bytes of each item */
    ok("as", "[\"longer than two bytes\",\"x\"]", NULL);
    bad("as", "[\"a\",\"b\",\"c\"]");
    json_t *a = json_array();
    json_array_append_new(a, string_of('z', 2000));
    ok_v("asl", a, NULL); /* a string item may be 4096 bytes, whatever the item count */
    a = json_array();
    json_array_append_new(a, string_of('z', 4097));
    bad_v("asl", a);
    a = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(a, json_string("x"));
    ok_v("asl", json_incref(a), NULL);
    json_array_append_new(a, json_string("x"));
    bad_v("asl", a);
}

/* ---- whole records ---- */

static void records_in_a_store(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    tu_schema(st, "{\"name\":\"people\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"}]}");
    tu_schema(st, "{\"name\":\"deals\",\"fields\":["
                  "{\"name\":\"title\",\"type\":\"string\",\"required\":true},"
                  "{\"name\":\"owner\",\"type\":\"ref\",\"ref\":\"people\"},"
                  "{\"name\":\"owners\",\"type\":\"array\",\"items\":\"ref\",\"ref\":\"people\"},"
                  "{\"name\":\"parent\",\"type\":\"ref\",\"ref\":\"deals\"},"
                  "{\"name\":\"amount\",\"type\":\"money\"},"
                  "{\"name\":\"at\",\"type\":\"datetime\"},"
                  "{\"name\":\"mail\",\"type\":\"email\"},"
                  "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\"},"
                  "{\"name\":\"n1\",\"type\":\"text\"},{\"name\":\"n2\",\"type\":\"text\"},"
                  "{\"name\":\"n3\",\"type\":\"text\"},{\"name\":\"n4\",\"type\":\"text\"},"
                  "{\"name\":\"n5\",\"type\":\"text\"}]}");
    kith_id_t p, q;
    assert_ok(tu_create(st, "people", "{\"name\":\"P\"}", &p));
    assert_ok(tu_create(st, "people", "{\"name\":\"Q\"}", &q));
    char ps[ID_TEXT_LEN + 1], qs[ID_TEXT_LEN + 1], lower[ID_TEXT_LEN + 1];
    id_encode(&p, ps);
    id_encode(&q, qs);
    for (int i = 0; i <= ID_TEXT_LEN; i++)
        lower[i] = (char)((ps[i] >= 'A' && ps[i] <= 'Z') ? ps[i] + 32 : ps[i]);

    /* stored canonically */
    char text[1024];
    snprintf(text, sizeof text,
             "{\"title\":\"t\",\"owner\":\"%s\",\"owners\":[\"%s\",\"%s\"],\"amount\":19.9,"
             "\"at\":\"2026-01-01T08:00:00+08:00\",\"mail\":\" A@B.co \"}",
             lower, qs, lower);
    json_t *j = tu_json(text);
    store_op_t *op = store_op_create("deals", j);
    json_decref(j);
    assert_ok(store_exec(st, op));
    kith_id_t d1 = op->rid;
    json_t *stored = tu_json(op->json);
    store_op_free(op);
    snprintf(text, sizeof text,
             "{\"title\":\"t\",\"owner\":\"%s\",\"owners\":[\"%s\",\"%s\"],\"amount\":\"19.90\","
             "\"at\":\"2026-01-01T00:00:00Z\",\"mail\":\"A@B.co\"}",
             ps, qs, ps);
    json_t *want = tu_json(text);
    assert_true(json_equal(stored, want));
    json_decref(stored);
    json_decref(want);

    /* refs must name an existing record of the target collection */
    kith_id_t ghost;
    id_new(&ghost, 1700000000000);
    char gs[ID_TEXT_LEN + 1], ds[ID_TEXT_LEN + 1];
    id_encode(&ghost, gs);
    id_encode(&d1, ds);
    snprintf(text, sizeof text, "{\"title\":\"t\",\"owner\":\"%s\"}", gs);
    assert_int_equal(tu_create(st, "deals", text, NULL), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "owner");
    assert_non_null(strstr(err_last()->fields[0].msg, "people"));
    snprintf(text, sizeof text, "{\"title\":\"t\",\"owner\":\"%s\"}",
             ds); /* a deal, not a person */
    assert_int_equal(tu_create(st, "deals", text, NULL), KITH_EVALIDATION);
    snprintf(text, sizeof text, "{\"title\":\"t\",\"owners\":[\"%s\",\"%s\"]}", ps, gs);
    assert_int_equal(tu_create(st, "deals", text, NULL), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "owners");
    assert_non_null(strstr(err_last()->fields[0].msg, "item 1"));
    snprintf(text, sizeof text, "{\"title\":\"t\",\"parent\":\"%s\"}", ds); /* same collection */
    assert_ok(tu_create(st, "deals", text, NULL));
    /* a deleted target is gone */
    kith_id_t r;
    char rs[ID_TEXT_LEN + 1];
    assert_ok(tu_create(st, "people", "{\"name\":\"R\"}", &r));
    id_encode(&r, rs);
    op = store_op_delete("people", &r, 0);
    assert_ok(store_exec(st, op));
    store_op_free(op);
    snprintf(text, sizeof text, "{\"title\":\"t\",\"owner\":\"%s\"}", rs);
    assert_int_equal(tu_create(st, "deals", text, NULL), KITH_EVALIDATION);

    /* every offending field at once, and nothing written */
    assert_int_equal(
        tu_create(st, "deals",
                  "{\"amount\":\"1.23456\",\"at\":\"2026-02-30T00:00:00Z\",\"mail\":\"x\","
                  "\"owner\":\"bad\",\"tags\":[1],\"zzz\":1}",
                  NULL),
        KITH_EVALIDATION);
    const err_diag_t *e = err_last();
    const char *names[] = {"zzz", "title", "owner", "amount", "at", "mail", "tags"};
    assert_int_equal(e->nfields, (int)ARRAY_LEN(names));
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        int found = 0;
        for (int k = 0; k < e->nfields; k++)
            found |= strcmp(e->fields[k].name, names[i]) == 0;
        if (!found) fail_msg("%s is not named", names[i]);
    }
    uint64_t count;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_count(rt, "deals", &count));
    store_read_end(rt);
    assert_int_equal(count, 2);

    /* updates are validated as merged; null removes a field */
    j = tu_json("{\"amount\":\"abc\"}");
    op = store_op_update("deals", &d1, j, 0);
    json_decref(j);
    assert_int_equal(store_exec(st, op), KITH_EVALIDATION);
    store_op_free(op);
    j = tu_json("{\"amount\":null,\"mail\":\"b@c.de\"}");
    op = store_op_update("deals", &d1, j, 0);
    json_decref(j);
    assert_ok(store_exec(st, op));
    stored = tu_json(op->json);
    assert_null(json_object_get(stored, "amount"));
    assert_string_equal(json_string_value(json_object_get(stored, "mail")), "b@c.de");
    json_decref(stored);
    store_op_free(op);
    j = tu_json("{\"title\":null}");
    op = store_op_update("deals", &d1, j, 0);
    json_decref(j);
    assert_int_equal(store_exec(st, op), KITH_EVALIDATION);
    store_op_free(op);

    /* a record is at most 1 MiB of JSON */
    json_t *big = json_object();
    json_object_set_new(big, "title", json_string("big"));
    const char *notes[] = {"n1", "n2", "n3", "n4", "n5"};
    for (int i = 0; i < 4; i++)
        json_object_set_new(big, notes[i], string_of('x', 256 * 1024 - 100));
    op = store_op_create("deals", big);
    assert_ok(store_exec(st, op)); /* about 1,048,200 bytes */
    store_op_free(op);
    json_object_set_new(big, "n5", string_of('x', 1000));
    op = store_op_create("deals", big);
    assert_int_equal(store_exec(st, op), KITH_ELIMIT);
    store_op_free(op);
    json_decref(big);

    assert_int_equal(tu_check_problems(st), 0);
    tu_store_close(st, dir);
}

/* Regression: an update re-checked every ref, so a record whose ref target had
 * been deleted could not be edited at all. Unchanged refs are not re-checked;
 * writing a ref to a missing record is still refused. */
/* ---- store_revalidate: a record a before-hook amended in place ---- */

typedef struct amended {
    store_coll_t *c;
    json_t *rec, *pre[8];
} amended_t;

/* A record as store_validate made it for a create, and the values a hook
 * starts from (as store_op's before_hook keeps them). */
static void amended_open(amended_t *a, store_coll_t *c, const char *in)
{
    a->c = c;
    json_t *j = tu_json(in);
    a->rec = store_validate(NULL, c, j, NULL, VALIDATE_CREATE);
    json_decref(j);
    assert_non_null(a->rec);
    for (size_t i = 0; i < c->nfields; i++)
        a->pre[i] = json_incref(json_object_get(a->rec, c->fields[i].name));
}

static int amended_check(amended_t *a)
{
    return store_revalidate(NULL, a->c, a->rec, a->pre, NULL, VALIDATE_CREATE);
}

/* The record's text (keys in object order) is want. */
static void amended_is(amended_t *a, const char *want)
{
    char *s = json_to_str(a->rec, NULL);
    assert_string_equal(s, want);
    free(s);
}

static void amended_close(amended_t *a)
{
    for (size_t i = 0; i < a->c->nfields; i++)
        json_decref(a->pre[i]);
    json_decref(a->rec);
}

static void revalidate_after_an_amend(void **state)
{
    (void)state;
    store_coll_t *c;
    json_t *def = tu_json("{\"name\":\"r\",\"fields\":["
                          "{\"name\":\"a\",\"type\":\"string\",\"required\":true},"
                          "{\"name\":\"b\",\"type\":\"int\"},"
                          "{\"name\":\"c\",\"type\":\"email\"},"
                          "{\"name\":\"d\",\"type\":\"string\",\"default\":\"dflt\"},"
                          "{\"name\":\"e\",\"type\":\"int\"},"
                          "{\"name\":\"t\",\"type\":\"array\",\"items\":\"int\"}]}");
    assert_ok(schema_coll_parse(def, 0, &c));
    json_decref(def);
    amended_t a;

    /* keys the hook adds are checked, made canonical and put in schema
     * order; the values it left alone are the very same values */
    amended_open(&a, c, "{\"e\":5,\"a\":\"x\"}");
    amended_is(&a, "{\"a\":\"x\",\"d\":\"dflt\",\"e\":5}");
    json_t *a0 = json_object_get(a.rec, "a");
    json_object_set_new(a.rec, "c", json_string("  ann@example.com "));
    json_object_set_new(a.rec, "b", json_integer(7));
    assert_ok(amended_check(&a));
    amended_is(&a, "{\"a\":\"x\",\"b\":7,\"c\":\"ann@example.com\",\"d\":\"dflt\",\"e\":5}");
    assert_ptr_equal(json_object_get(a.rec, "a"), a0);
    amended_close(&a);

    /* a value replaced keeps its place; null means no value */
    amended_open(&a, c, "{\"a\":\"x\",\"b\":1,\"e\":5}");
    json_object_set_new(a.rec, "a", json_string(" y "));
    json_object_set_new(a.rec, "e", json_null());
    assert_ok(amended_check(&a));
    amended_is(&a, "{\"a\":\" y \",\"b\":1,\"d\":\"dflt\"}");
    amended_close(&a);

    /* a field with a default that the hook removed gets it back, in place */
    amended_open(&a, c, "{\"a\":\"x\",\"e\":5}");
    json_object_del(a.rec, "d");
    json_object_set_new(a.rec, "b", json_integer(2));
    assert_ok(amended_check(&a));
    amended_is(&a, "{\"a\":\"x\",\"b\":2,\"d\":\"dflt\",\"e\":5}");
    amended_close(&a);

    /* what breaks the schema: every offending key named */
    amended_open(&a, c, "{\"a\":\"x\"}");
    json_object_del(a.rec, "a");
    json_object_set_new(a.rec, "b", json_string("seven"));
    json_object_set_new(a.rec, "zz", json_integer(1));
    json_object_set_new(a.rec, "id", json_string("x"));
    assert_int_equal(amended_check(&a), KITH_EVALIDATION);
    const err_diag_t *e = err_last();
    assert_int_equal(e->nfields, 4);
    int seen = 0;
    for (int i = 0; i < e->nfields; i++) {
        const char *n = e->fields[i].name, *m = e->fields[i].msg;
        if (strcmp(n, "a") == 0 && strstr(m, "required")) seen |= 1;
        if (strcmp(n, "b") == 0) seen |= 2;
        if (strcmp(n, "zz") == 0 && strstr(m, "unknown field")) seen |= 4;
        if (strcmp(n, "id") == 0 && strstr(m, "set by Kith")) seen |= 8;
    }
    assert_int_equal(seen, 15);
    amended_close(&a);

    /* an array changed in place (the same pointer) is checked again */
    amended_open(&a, c, "{\"a\":\"x\",\"t\":[1]}");
    json_array_append_new(json_object_get(a.rec, "t"), json_string("two"));
    assert_int_equal(amended_check(&a), KITH_EVALIDATION);
    assert_string_equal(err_last()->fields[0].name, "t");
    amended_close(&a);

    /* nothing amended: nothing to do, and a clean result */
    amended_open(&a, c, "{\"a\":\"x\",\"b\":3}");
    assert_ok(amended_check(&a));
    amended_is(&a, "{\"a\":\"x\",\"b\":3,\"d\":\"dflt\"}");
    amended_close(&a);
    schema_coll_free(c);
}

static void unchanged_ref_to_deleted_record(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    tu_schema(st, "{\"name\":\"people\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"}]}");
    tu_schema(st, "{\"name\":\"deals\",\"fields\":[{\"name\":\"title\",\"type\":\"string\"},"
                  "{\"name\":\"owner\",\"type\":\"ref\",\"ref\":\"people\"}]}");
    kith_id_t p, d;
    assert_ok(tu_create(st, "people", "{\"name\":\"P\"}", &p));
    char text[128], ps[ID_TEXT_LEN + 1];
    id_encode(&p, ps);
    snprintf(text, sizeof text, "{\"title\":\"a\",\"owner\":\"%s\"}", ps);
    assert_ok(tu_create(st, "deals", text, &d));
    store_op_t *op = store_op_delete("people", &p, 0);
    assert_ok(store_exec(st, op));
    store_op_free(op);
    json_t *patch = tu_json("{\"title\":\"b\"}");
    op = store_op_update("deals", &d, patch, 0);
    assert_ok(store_exec(st, op));
    store_op_free(op);
    json_decref(patch);
    /* a new ref to the deleted record is refused */
    snprintf(text, sizeof text, "{\"title\":\"c\",\"owner\":\"%s\"}", ps);
    assert_int_equal(tu_create(st, "deals", text, NULL), KITH_EVALIDATION);
    tu_store_close(st, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(email_values),       cmocka_unit_test(phone_values),
        cmocka_unit_test(money_values),       cmocka_unit_test(datetime_and_date_values),
        cmocka_unit_test(scalar_values),      cmocka_unit_test(array_values),
        cmocka_unit_test(records_in_a_store), cmocka_unit_test(unchanged_ref_to_deleted_record),
        cmocka_unit_test(revalidate_after_an_amend),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
