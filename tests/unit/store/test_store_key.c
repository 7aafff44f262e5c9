/* Tests core/store/store_key.c: the order-preserving key encodings. For random
 * values of every scalar type, the memcmp order of the encoded keys (shorter
 * first on a common prefix, as LMDB compares) must be the values' natural
 * order, and equal values must encode equal. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"
#include "store/store_int.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVALUES 1500

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

static int key_cmp(const buf_t *a, const buf_t *b)
{
    int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    if (c) return sign(c);
    return (a->len > b->len) - (a->len < b->len);
}

/* n values of one type: v[i] is the JSON value, natural(i, j) their order. */
typedef int (*natural_fn)(const void *vals, size_t i, size_t j);

typedef struct sample {
    int type;
    json_t **json;
    buf_t *keys;
    size_t n;
} sample_t;

static void sample_encode(sample_t *s, int type, json_t **json, size_t n)
{
    s->type = type;
    s->json = json;
    s->n = n;
    s->keys = xcalloc(n, sizeof *s->keys);
    for (size_t i = 0; i < n; i++) {
        if (store_key_encode(type, json[i], 0, 0, &s->keys[i]) != 0) {
            char *t = json_to_str(json[i], NULL);
            fail_msg("%s: cannot encode %s", store_type_name(type), t);
        }
    }
}

static void sample_free(sample_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        buf_free(&s->keys[i]);
        json_decref(s->json[i]);
    }
    free(s->keys);
    free(s->json);
}

/* Every pair: key order == natural order (including equality). */
static void assert_order(const sample_t *s, const void *vals, natural_fn natural)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = i; j < s->n; j++) {
            int want = sign(natural(vals, i, j));
            int got = key_cmp(&s->keys[i], &s->keys[j]);
            if (want != got) {
                char *a = json_to_str(s->json[i], NULL), *b = json_to_str(s->json[j], NULL);
                fail_msg("%s: %s vs %s: keys compare %d, values %d", store_type_name(s->type), a, b,
                         got, want);
            }
        }
}

/* ---- int ---- */

static int int_natural(const void *vals, size_t i, size_t j)
{
    const int64_t *v = vals;
    return (v[i] > v[j]) - (v[i] < v[j]);
}

static void int_order(void **state)
{
    (void)state;
    int64_t *v = xcalloc(NVALUES, sizeof *v);
    json_t **j = xcalloc(NVALUES, sizeof *j);
    const int64_t fixed[] = {INT64_MIN,     INT64_MIN + 1, -1,  0,  1,
                             INT64_MAX - 1, INT64_MAX,     255, 256};
    for (size_t i = 0; i < NVALUES; i++) {
        if (i < ARRAY_LEN(fixed))
            v[i] = fixed[i];
        else if (i % 3 == 0)
            v[i] = (int64_t)(rnd64() % 2001) - 1000; /* near zero, with repeats */
        else
            v[i] = (int64_t)rnd64();
        j[i] = json_integer(v[i]);
    }
    sample_t s;
    sample_encode(&s, ST_INT, j, NVALUES);
    assert_order(&s, v, int_natural);
    for (size_t i = 0; i < NVALUES; i++)
        assert_int_equal(s.keys[i].len, 8);
    sample_free(&s);
    free(v);

    /* store_key_i64 and store_key_u64 are what pseudo-fields use */
    buf_t a = BUF_INIT, b = BUF_INIT;
    store_key_i64(&a, -1);
    store_key_i64(&b, 0);
    assert_true(key_cmp(&a, &b) < 0);
    buf_reset(&a);
    buf_reset(&b);
    store_key_u64(&a, 1);
    store_key_u64(&b, UINT64_MAX);
    assert_true(key_cmp(&a, &b) < 0);
    buf_free(&a);
    buf_free(&b);
}

/* ---- number ---- */

static int dbl_natural(const void *vals, size_t i, size_t j)
{
    const double *v = vals;
    return (v[i] > v[j]) - (v[i] < v[j]);
}

static void number_order(void **state)
{
    (void)state;
    double *v = xcalloc(NVALUES, sizeof *v);
    json_t **j = xcalloc(NVALUES, sizeof *j);
    const double fixed[] = {0.0,     -0.0,     DBL_MIN, -DBL_MIN, 4.9e-324, -4.9e-324,
                            DBL_MAX, -DBL_MAX, 1.0,     -1.0,     0.5,      -0.5,
                            1e-300,  -1e-300,  2.5,     2.5,      1e300,    -1e300};
    for (size_t i = 0; i < NVALUES; i++) {
        if (i < ARRAY_LEN(fixed)) {
            v[i] = fixed[i];
        } else if (i % 4 == 0) {
            v[i] = (double)((int64_t)(rnd64() % 201) - 100) / 4; /* repeats, small */
        } else {
            uint64_t bits;
            do {
                bits = rnd64();
                memcpy(&v[i], &bits, 8);
            } while (!isfinite(v[i]));
        }
        j[i] = json_real(v[i]);
        assert_non_null(j[i]);
    }
    sample_t s;
    sample_encode(&s, ST_NUMBER, j, NVALUES);
    assert_order(&s, v, dbl_natural); /* -0.0 == 0.0 encode equal */
    sample_free(&s);
    free(v);

    /* an integer JSON value is the same number */
    buf_t a = BUF_INIT, b = BUF_INIT;
    json_t *i3 = json_integer(3), *r3 = json_real(3.0);
    assert_ok(store_key_encode(ST_NUMBER, i3, 0, 0, &a));
    assert_ok(store_key_encode(ST_NUMBER, r3, 0, 0, &b));
    assert_int_equal(key_cmp(&a, &b), 0);
    json_decref(i3);
    json_decref(r3);
    buf_free(&a);
    buf_free(&b);
}

/* ---- strings ---- */

typedef struct ustr {
    uint32_t cp[8];
    size_t n;
} ustr_t;

static size_t utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static uint32_t random_cp(void)
{
    switch (rnd64() % 6) {
    case 0:
        return 'a' + (uint32_t)(rnd64() % 3); /* few letters: many shared prefixes */
    case 1:
        return 'A' + (uint32_t)(rnd64() % 3);
    case 2:
        return 0x20 + (uint32_t)(rnd64() % 0x5F);
    case 3:
        return 0xA0 + (uint32_t)(rnd64() % 0x700);
    case 4: {
        uint32_t c;
        do
            c = 0x800 + (uint32_t)(rnd64() % 0xF800);
        while (c >= 0xD800 && c <= 0xDFFF);
        return c;
    }
    default:
        return 0x10000 + (uint32_t)(rnd64() % 0x100000);
    }
}

static int ustr_natural(const void *vals, size_t i, size_t j)
{
    const ustr_t *v = vals;
    for (size_t k = 0; k < v[i].n && k < v[j].n; k++)
        if (v[i].cp[k] != v[j].cp[k]) return v[i].cp[k] < v[j].cp[k] ? -1 : 1;
    return (v[i].n > v[j].n) - (v[i].n < v[j].n);
}

static uint32_t fold_cp(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ustr_natural_folded(const void *vals, size_t i, size_t j)
{
    const ustr_t *v = vals;
    for (size_t k = 0; k < v[i].n && k < v[j].n; k++) {
        uint32_t a = fold_cp(v[i].cp[k]), b = fold_cp(v[j].cp[k]);
        if (a != b) return a < b ? -1 : 1;
    }
    return (v[i].n > v[j].n) - (v[i].n < v[j].n);
}

static json_t **ustr_json(const ustr_t *v, size_t n)
{
    json_t **j = xcalloc(n, sizeof *j);
    for (size_t i = 0; i < n; i++) {
        char s[40];
        size_t len = 0;
        for (size_t k = 0; k < v[i].n; k++)
            len += utf8_put(v[i].cp[k], s + len);
        j[i] = json_stringn(s, len);
        assert_non_null(j[i]);
    }
    return j;
}

static void string_order(void **state)
{
    (void)state;
    ustr_t *v = xcalloc(NVALUES, sizeof *v);
    for (size_t i = 0; i < NVALUES; i++) {
        v[i].n = (size_t)(rnd64() % 7); /* the empty string too */
        for (size_t k = 0; k < v[i].n; k++)
            v[i].cp[k] = random_cp();
    }
    /* code point order for string, text, enum and phone */
    const int types[] = {ST_STRING, ST_TEXT, ST_ENUM, ST_PHONE};
    for (size_t t = 0; t < ARRAY_LEN(types); t++) {
        sample_t s;
        sample_encode(&s, types[t], ustr_json(v, NVALUES), NVALUES);
        assert_order(&s, v, ustr_natural);
        sample_free(&s);
    }
    /* e-mails compare ASCII-case-insensitively */
    sample_t s;
    sample_encode(&s, ST_EMAIL, ustr_json(v, NVALUES), NVALUES);
    assert_order(&s, v, ustr_natural_folded);
    sample_free(&s);
    /* and so does every type when folded (prefix indexes) */
    json_t **j = ustr_json(v, NVALUES);
    s.type = ST_STRING;
    s.json = j;
    s.n = NVALUES;
    s.keys = xcalloc(NVALUES, sizeof *s.keys);
    for (size_t i = 0; i < NVALUES; i++)
        assert_ok(store_key_encode(ST_STRING, j[i], 0, 1, &s.keys[i]));
    assert_order(&s, v, ustr_natural_folded);
    sample_free(&s);
    free(v);
}

static void string_truncate_and_fold(void **state)
{
    (void)state;
    char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('A' + i % 26);
    for (size_t n = 398; n <= 402; n++) {
        json_t *s = json_stringn(big, n);
        buf_t full = BUF_INIT, cut = BUF_INIT, folded = BUF_INIT;
        assert_ok(store_key_encode(ST_STRING, s, 0, 0, &full));
        assert_ok(store_key_encode(ST_STRING, s, 1, 0, &cut));
        assert_ok(store_key_encode(ST_STRING, s, 1, 1, &folded));
        assert_int_equal(full.len, n);
        assert_memory_equal(full.p, big, n);
        assert_int_equal(cut.len, n < IKEY_VALUE_MAX ? n : IKEY_VALUE_MAX);
        assert_memory_equal(cut.p, big, cut.len);
        for (size_t i = 0; i < folded.len; i++)
            assert_int_equal(folded.p[i], big[i] + 32);
        buf_free(&full);
        buf_free(&cut);
        buf_free(&folded);
        json_decref(s);
    }
    /* folding touches ASCII letters only */
    json_t *s = json_string("AZaz09@[`\xc3\x89\xc3\xa9");
    buf_t b = BUF_INIT;
    assert_ok(store_key_encode(ST_STRING, s, 0, 1, &b));
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.p, "azaz09@[`\xc3\x89\xc3\xa9", 13);
    buf_reset(&b);
    assert_ok(store_key_encode(ST_EMAIL, s, 0, 0, &b)); /* e-mails always fold */
    assert_memory_equal(b.p, "azaz09@[`\xc3\x89\xc3\xa9", 13);
    buf_free(&b);
    json_decref(s);
}

/* ---- datetimes and dates ---- */

static void datetime_order(void **state)
{
    (void)state;
    int64_t *v = xcalloc(NVALUES, sizeof *v);
    json_t **j = xcalloc(NVALUES, sizeof *j);
    const int64_t span = 200LL * 365 * 86400 * 1000000; /* about 1770 .. 2170 */
    for (size_t i = 0; i < NVALUES; i++) {
        if (i > 0 && i % 5 == 0) {
            v[i] = v[i - 1]; /* the same instant written with another offset */
        } else {
            v[i] = (int64_t)(rnd64() % (uint64_t)(2 * span)) - span;
            if (i % 3 == 0) v[i] -= v[i] % 1000000; /* whole seconds */
        }
        /* write it with a random offset of whole minutes (±14:00) */
        int off = (int)(rnd64() % (2 * 14 * 60 + 1)) - 14 * 60;
        char utc[40];
        time_fmt_rfc3339(v[i] + (int64_t)off * 60 * 1000000, utc, sizeof utc, 6);
        /* "YYYY-MM-DDTHH:MM:SS.ffffffZ": replace Z with the offset */
        size_t n = strlen(utc);
        snprintf(utc + n - 1, sizeof utc - (n - 1), "%c%02d:%02d", off < 0 ? '-' : '+',
                 abs(off) / 60, abs(off) % 60);
        j[i] = json_string(utc);
    }
    sample_t s;
    sample_encode(&s, ST_DATETIME, j, NVALUES);
    assert_order(&s, v, int_natural);
    sample_free(&s);
    free(v);

    /* fewer fraction digits mean the same instant */
    const char *same[] = {"2026-01-01T00:00:00Z",        "2026-01-01T00:00:00.000Z",
                          "2026-01-01T00:00:00.000000Z", "2026-01-01T01:00:00+01:00",
                          "2025-12-31T23:00:00-01:00",   "2026-01-01 00:00:00z"};
    buf_t a = BUF_INIT;
    json_t *x = json_string(same[0]);
    assert_ok(store_key_encode(ST_DATETIME, x, 0, 0, &a));
    json_decref(x);
    for (size_t i = 1; i < ARRAY_LEN(same); i++) {
        buf_t b = BUF_INIT;
        x = json_string(same[i]);
        assert_ok(store_key_encode(ST_DATETIME, x, 0, 0, &b));
        assert_int_equal(key_cmp(&a, &b), 0);
        json_decref(x);
        buf_free(&b);
    }
    buf_free(&a);
}

static void date_order(void **state)
{
    (void)state;
    int64_t *v = xcalloc(NVALUES, sizeof *v);
    json_t **j = xcalloc(NVALUES, sizeof *j);
    for (size_t i = 0; i < NVALUES; i++) {
        v[i] = (int64_t)(rnd64() % 200000) - 100000; /* ~1696 .. 2243 */
        if (i % 7 == 0 && i) v[i] = v[i - 1];
        char t[40];
        time_fmt_rfc3339(v[i] * 86400 * 1000000, t, sizeof t, 0);
        j[i] = json_stringn(t, 10);
    }
    sample_t s;
    sample_encode(&s, ST_DATE, j, NVALUES);
    assert_order(&s, v, int_natural);
    sample_free(&s);
    free(v);
}

/* ---- money ---- */

typedef struct amount {
    int neg;
    uint64_t ip; /* up to 15 digits */
    unsigned fp; /* 1/10000 units */
} amount_t;

static int amount_natural(const void *vals, size_t i, size_t j)
{
    const amount_t *v = vals;
    const amount_t *a = &v[i], *b = &v[j];
    int an = a->neg && (a->ip || a->fp), bn = b->neg && (b->ip || b->fp);
    if (an != bn) return an ? -1 : 1;
    int c = a->ip != b->ip ? (a->ip < b->ip ? -1 : 1) : (a->fp > b->fp) - (a->fp < b->fp);
    return an ? -c : c;
}

static void money_order(void **state)
{
    (void)state;
    amount_t *v = xcalloc(NVALUES, sizeof *v);
    json_t **j = xcalloc(NVALUES, sizeof *j);
    store_field_t money = {.type = ST_MONEY};
    static const uint64_t pow10[] = {1,
                                     10,
                                     100,
                                     1000,
                                     10000,
                                     100000,
                                     1000000,
                                     10000000,
                                     100000000,
                                     1000000000,
                                     10000000000ull,
                                     100000000000ull,
                                     1000000000000ull,
                                     10000000000000ull,
                                     100000000000000ull,
                                     1000000000000000ull};
    for (size_t i = 0; i < NVALUES; i++) {
        v[i].neg = (int)(rnd64() % 2);
        int digits = (int)(rnd64() % 16); /* 0 .. 15 integer digits */
        v[i].ip = rnd64() % pow10[digits];
        v[i].fp = (unsigned)(rnd64() % 10000);
        if (i % 6 == 0) v[i].fp = (unsigned)(rnd64() % 4) * 2500;
        if (i < 8) { /* the extremes */
            v[i].ip = i < 4 ? 999999999999999ull : 922337203685477ull;
            v[i].fp = i % 2 ? 9999 : 5808;
        }
        char text[48];
        snprintf(text, sizeof text, "%s%llu.%04u", v[i].neg ? "-" : "", (unsigned long long)v[i].ip,
                 v[i].fp);
        json_t *raw = json_string(text);
        const char *why = NULL;
        j[i] = store_value_canon(&money, ST_MONEY, raw, &why);
        if (!j[i]) fail_msg("money %s refused: %s", text, why);
        json_decref(raw);
    }
    sample_t s;
    sample_encode(&s, ST_MONEY, j, NVALUES);
    assert_order(&s, v, amount_natural);
    sample_free(&s);
    free(v);

    /* equal amounts written differently encode equal, canonical (as stored and
     * as filter operands are) or not */
    const char *same[][2] = {{"19.9", "19.90"},    {"19.9", "019.9000"}, {"-0", "0"},
                             {"0.00", "-0.0000"},  {".5", "0.5"},        {"+3", "3"},
                             {"1.2345", "1.23450"}};
    for (size_t i = 0; i < ARRAY_LEN(same) * 2; i++) {
        buf_t a = BUF_INIT, b = BUF_INIT;
        json_t *x = json_string(same[i / 2][0]), *y = json_string(same[i / 2][1]);
        if (i % 2) {
            const char *why;
            json_t *cx = store_value_canon(&money, ST_MONEY, x, &why);
            json_t *cy = store_value_canon(&money, ST_MONEY, y, &why);
            assert_string_equal(json_string_value(cx), json_string_value(cy));
            json_decref(x);
            json_decref(y);
            x = cx;
            y = cy;
        } else if (strchr(same[i / 2][1], '.') && strlen(strchr(same[i / 2][1], '.')) > 5) {
            json_decref(x);
            json_decref(y);
            continue; /* more than 4 decimals, even zeros, is not a key's input */
        }
        assert_ok(store_key_encode(ST_MONEY, x, 0, 0, &a));
        assert_ok(store_key_encode(ST_MONEY, y, 0, 0, &b));
        if (key_cmp(&a, &b) != 0)
            fail_msg("money %s and %s encode differently", same[i / 2][0], same[i / 2][1]);
        json_decref(x);
        json_decref(y);
        buf_free(&a);
        buf_free(&b);
    }
}

/* ---- bool, ref ---- */

static void bool_and_ref_order(void **state)
{
    (void)state;
    buf_t f = BUF_INIT, t = BUF_INIT;
    assert_ok(store_key_encode(ST_BOOL, json_false(), 0, 0, &f));
    assert_ok(store_key_encode(ST_BOOL, json_true(), 0, 0, &t));
    assert_true(key_cmp(&f, &t) < 0);
    buf_free(&f);
    buf_free(&t);

    /* ids: the key is the 16 bytes; their order is the order of the text form */
    json_t **j = xcalloc(NVALUES, sizeof *j);
    char(*text)[ID_TEXT_LEN + 1] = xcalloc(NVALUES, sizeof *text);
    for (size_t i = 0; i < NVALUES; i++) {
        kith_id_t id;
        uint64_t a = rnd64(), b = rnd64();
        memcpy(id.b, &a, 8);
        memcpy(id.b + 8, &b, 8);
        if (i % 4 == 0) memset(id.b + (rnd64() % 16), 0, 1);
        if (i % 9 == 0 && i) id_decode(text[i - 1], ID_TEXT_LEN, &id);
        id_encode(&id, text[i]);
        /* lower case reads the same */
        char lower[ID_TEXT_LEN + 1];
        for (size_t k = 0; k <= ID_TEXT_LEN; k++)
            lower[k] =
                (char)((text[i][k] >= 'A' && text[i][k] <= 'Z') ? text[i][k] + 32 : text[i][k]);
        j[i] = json_string(i % 2 ? lower : text[i]);
    }
    sample_t s;
    sample_encode(&s, ST_REF, j, NVALUES);
    for (size_t i = 0; i < NVALUES; i++)
        assert_int_equal(s.keys[i].len, ID_LEN);
    for (size_t i = 0; i < NVALUES; i++)
        for (size_t k = i; k < NVALUES; k++)
            assert_int_equal(key_cmp(&s.keys[i], &s.keys[k]), sign(strcmp(text[i], text[k])));
    sample_free(&s);
    free(text);
}

static void wrong_values_refused(void **state)
{
    (void)state;
    struct {
        int type;
        const char *json;
    } bad[] = {
        {ST_INT, "\"1\""},
        {ST_INT, "1.5"},
        {ST_INT, "true"},
        {ST_NUMBER, "\"1\""},
        {ST_BOOL, "1"},
        {ST_STRING, "1"},
        {ST_EMAIL, "[]"},
        {ST_DATETIME, "\"2026-02-30T00:00:00Z\""},
        {ST_DATETIME, "1"},
        {ST_DATE, "\"2026-1-1\""},
        {ST_DATE, "\"2026-02-29\""},
        {ST_MONEY, "\"abc\""},
        {ST_MONEY, "19.9"},
        {ST_MONEY, "\"1e3\""},
        {ST_MONEY, "\"1.23456\""},
        {ST_REF, "\"nope\""},
        {ST_REF, "5"},
        {ST_OBJECT, "{}"},
        {ST_ARRAY, "[1]"},
        {ST_NONE, "1"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        json_t *v = tu_json(bad[i].json);
        buf_t b = BUF_INIT;
        int rc = store_key_encode(bad[i].type, v, 0, 0, &b);
        if (rc != KITH_EINVAL)
            fail_msg("%s %s: status %d, want EINVAL", store_type_name(bad[i].type), bad[i].json,
                     rc);
        buf_free(&b);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(int_order),
        cmocka_unit_test(number_order),
        cmocka_unit_test(string_order),
        cmocka_unit_test(string_truncate_and_fold),
        cmocka_unit_test(datetime_order),
        cmocka_unit_test(date_order),
        cmocka_unit_test(money_order),
        cmocka_unit_test(bool_and_ref_order),
        cmocka_unit_test(wrong_values_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
