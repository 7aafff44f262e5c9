/* Tests core/base/csv.c: every case of the csv-spectrum corpus (fed whole,
 * byte by byte and split at every point), the edge cases of the contract
 * (BOM, line ends, quotes, empty lines and fields, errors and limits, NUL
 * bytes, stopping), and a randomized encode / parse round trip. */
#include "testutil.h"

#include "base/buf.h"
#include "base/csv.h"
#include "base/mem.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- collecting records ---------------------------------------------------- */

typedef struct row {
    size_t n;
    char **f;
    size_t *len;
} row_t;

typedef struct rows {
    row_t *v;
    size_t n, cap;
    buf_t dump;     /* every record as "#row:n\n" then "len:bytes\n" per field */
    size_t stop_at; /* return stop_rc when this row arrives (0: never) */
    int stop_rc;
} rows_t;

static int on_row(void *ctx, size_t row, const char *const *fields, const size_t *lens, size_t n)
{
    rows_t *r = ctx;
    if (row != r->n + 1) fail_msg("row %zu delivered after %zu rows", row, r->n);
    assert_true(n >= 1);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    row_t *rw = &r->v[r->n++];
    rw->n = n;
    rw->f = xcalloc(n, sizeof(*rw->f));
    rw->len = xcalloc(n, sizeof(*rw->len));
    buf_addf(&r->dump, "#%zu:%zu\n", row, n);
    for (size_t i = 0; i < n; i++) {
        if (fields[i][lens[i]] != '\0') fail_msg("row %zu field %zu: no NUL after it", row, i + 1);
        rw->f[i] = xmemdup(fields[i], lens[i] + 1);
        rw->len[i] = lens[i];
        buf_addf(&r->dump, "%zu:", lens[i]);
        buf_add(&r->dump, fields[i], lens[i]);
        buf_addc(&r->dump, '\n');
    }
    return row == r->stop_at ? r->stop_rc : 0;
}

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        for (size_t j = 0; j < r->v[i].n; j++)
            free(r->v[i].f[j]);
        free(r->v[i].f);
        free(r->v[i].len);
    }
    free(r->v);
    buf_free(&r->dump);
    memset(r, 0, sizeof(*r));
}

/* Records in a form tests can spell: fields joined by US, each record ended by
 * RS (both control bytes that no hand-written case below contains). */
#define US "\x1f"
#define RS "\x1e"

static char *rows_simple(const rows_t *r, size_t *len)
{
    buf_t b = BUF_INIT;
    buf_adds(&b, "");
    for (size_t i = 0; i < r->n; i++) {
        for (size_t j = 0; j < r->v[i].n; j++) {
            if (j) buf_adds(&b, US);
            buf_add(&b, r->v[i].f[j], r->v[i].len[j]);
        }
        buf_adds(&b, RS);
    }
    return buf_steal(&b, len);
}

/* Bytes, printable (for failure messages), in out[256]. */
#define SHOW_MAX 256
static const char *show(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, SHOW_MAX - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* ---- feeding ------------------------------------------------------------- */

enum feed_how {
    FEED_WHOLE, /* one csv_feed */
    FEED_BYTES, /* one byte per csv_feed */
    FEED_SPLIT, /* two feeds, split at arg (0 or n: one of them is empty) */
};

typedef struct result {
    int rc;
    size_t csv_rows;
    char msg[ERR_MSG_MAX];
} result_t;

/* Parses in with the feeds that how says, then csv_finish if every feed
 * returned 0. */
static result_t parse_as(const csv_opts_t *opts, const char *in, size_t n, enum feed_how how,
                         size_t arg, rows_t *out)
{
    csv_parser_t *p = csv_new(on_row, out, opts);
    int rc = 0;
    switch (how) {
    case FEED_WHOLE:
        rc = csv_feed(p, in, n);
        break;
    case FEED_BYTES:
        for (size_t i = 0; i < n && !rc; i++)
            rc = csv_feed(p, in + i, 1);
        break;
    case FEED_SPLIT:
        rc = csv_feed(p, in, arg);
        if (!rc) rc = csv_feed(p, in + arg, n - arg);
        break;
    }
    if (!rc) rc = csv_finish(p);
    result_t res = {.rc = rc, .csv_rows = csv_rows(p)};
    if (rc) snprintf(res.msg, sizeof(res.msg), "%s", err_last()->msg);
    csv_free(p);
    return res;
}

/* Every way of feeding in: whole, byte by byte, and split at every point. Calls
 * check(ctx, label, result, rows) for each. */
typedef void (*check_fn)(void *ctx, const char *label, const result_t *res, const rows_t *rows);

static void parse_every_way(const csv_opts_t *opts, const char *in, size_t n, check_fn check,
                            void *ctx)
{
    char label[64];
    rows_t r = {0};
    result_t res = parse_as(opts, in, n, FEED_WHOLE, 0, &r);
    check(ctx, "whole", &res, &r);
    rows_free(&r);
    res = parse_as(opts, in, n, FEED_BYTES, 0, &r);
    check(ctx, "byte by byte", &res, &r);
    rows_free(&r);
    for (size_t k = 0; k <= n; k++) {
        snprintf(label, sizeof(label), "split at %zu", k);
        res = parse_as(opts, in, n, FEED_SPLIT, k, &r);
        check(ctx, label, &res, &r);
        rows_free(&r);
    }
}

typedef struct expect {
    const char *in;
    size_t in_len;
    const char *want; /* rows_simple form of the records delivered */
    size_t want_len;
    int rc;                  /* 0, or the error expected */
    const char *msg1, *msg2; /* substrings the diagnostic must hold (may be NULL) */
} expect_t;

static void check_expect(void *ctx, const char *label, const result_t *res, const rows_t *rows)
{
    const expect_t *e = ctx;
    char in[SHOW_MAX], g[SHOW_MAX], w[SHOW_MAX];
    show(in, e->in, e->in_len);
    if (res->rc != e->rc)
        fail_msg("%s (%s): rc %d (%s), want %d", in, label, res->rc, res->msg, e->rc);
    if (res->csv_rows != rows->n)
        fail_msg("%s (%s): csv_rows %zu, %zu delivered", in, label, res->csv_rows, rows->n);
    size_t got_len;
    char *got = rows_simple(rows, &got_len);
    if (got_len != e->want_len || memcmp(got, e->want, got_len) != 0)
        fail_msg("%s (%s): got %s, want %s", in, label, show(g, got, got_len),
                 show(w, e->want, e->want_len));
    free(got);
    if (e->msg1 && !strstr(res->msg, e->msg1))
        fail_msg("%s (%s): message \"%s\" lacks \"%s\"", in, label, res->msg, e->msg1);
    if (e->msg2 && !strstr(res->msg, e->msg2))
        fail_msg("%s (%s): message \"%s\" lacks \"%s\"", in, label, res->msg, e->msg2);
}

/* in parses (every way) to want. */
static void ok_n(const csv_opts_t *opts, const char *in, size_t n, const char *want,
                 size_t want_len)
{
    expect_t e = {in, n, want, want_len, 0, NULL, NULL};
    parse_every_way(opts, in, n, check_expect, &e);
}
/* String literals only: their length is their size (NUL bytes included). */
#define ok(opts, in, want) ok_n(opts, in, sizeof(in) - 1, want, sizeof(want) - 1)

/* in fails with rc (every way), after delivering want. */
static void fails(const csv_opts_t *opts, const char *in, const char *want, int rc,
                  const char *msg1, const char *msg2)
{
    expect_t e = {in, strlen(in), want, strlen(want), rc, msg1, msg2};
    parse_every_way(opts, in, strlen(in), check_expect, &e);
}

/* ---- the contract, case by case ------------------------------------------ */

static void simple_records(void **state)
{
    (void)state;
    ok(NULL, "", "");
    ok(NULL, "a", "a" RS);
    ok(NULL, "a,b,c\n1,2,3\n", "a" US "b" US "c" RS "1" US "2" US "3" RS);
    /* last line without a line end: csv_finish delivers it */
    ok(NULL, "a,b\nc,d", "a" US "b" RS "c" US "d" RS);
    ok(NULL, "a,b\r\nc,d", "a" US "b" RS "c" US "d" RS);
    /* spaces are data */
    ok(NULL, " a , b \n", " a " US " b " RS);
}

static void line_ends(void **state)
{
    (void)state;
    ok(NULL, "a,b\r\nc,d\r\n", "a" US "b" RS "c" US "d" RS);
    /* CR alone ends a record (old Mac exports) */
    ok(NULL, "a,b\rc,d\r", "a" US "b" RS "c" US "d" RS);
    ok(NULL, "a\rb\nc\r\nd", "a" RS "b" RS "c" RS "d" RS);
    /* LF CR is two line ends: the CR ends an empty line */
    ok(NULL, "a\n\rb\n", "a" RS "b" RS);
    /* a CRLF split across two feeds is still one line end (every split point
     * is tried by ok(); this one spelled out) */
    rows_t r = {0};
    csv_parser_t *p = csv_new(on_row, &r, NULL);
    assert_ok(csv_feed(p, "a,b\r", 4));
    assert_int_equal(csv_rows(p), 1);
    assert_ok(csv_feed(p, "\nc\r", 3));
    assert_int_equal(csv_rows(p), 2);
    assert_ok(csv_feed(p, "\n", 1));
    assert_ok(csv_finish(p));
    assert_int_equal(csv_rows(p), 2);
    char *got = rows_simple(&r, NULL);
    assert_string_equal(got, "a" US "b" RS "c" RS);
    free(got);
    csv_free(p);
    rows_free(&r);
}

static void empty_lines(void **state)
{
    (void)state;
    /* an empty line makes no record, wherever it is and whatever ends it;
     * row numbers count records, not lines */
    ok(NULL, "\n", "");
    ok(NULL, "\r\n\r\n", "");
    ok(NULL, "\n\na\n\n\r\n\rb\n\n", "a" RS "b" RS);
    ok(NULL, "a\r\n\r\nb\r\n", "a" RS "b" RS);
    /* but a line with an empty quoted field is a record with one empty field */
    ok(NULL, "a\n\"\"\nb\n", "a" RS "" RS "b" RS);
    /* and a line with only a delimiter is two empty fields */
    ok(NULL, ",\n", US RS);
    /* whitespace is not empty */
    ok(NULL, "a\n \nb", "a" RS " " RS "b" RS);
}

static void bom(void **state)
{
    (void)state;
    ok(NULL,
       "\xEF\xBB\xBF"
       "a,b\n",
       "a" US "b" RS);
    ok(NULL, "\xEF\xBB\xBF", "");
    ok(NULL, "\xEF\xBB\xBF\r\n", "");
    ok(NULL, "\xEF\xBB\xBF\"a\"", "a" RS);
    /* only at the very start */
    ok(NULL,
       "a\n\xEF\xBB\xBF"
       "b\n",
       "a" RS "\xEF\xBB\xBF"
       "b" RS);
    ok(NULL,
       "\xEF\xBB\xBF\xEF\xBB\xBF"
       "a",
       "\xEF\xBB\xBF"
       "a" RS);
    /* an incomplete BOM is data, also at the end of input */
    ok(NULL, "\xEF\xBBx\n", "\xEF\xBBx" RS);
    ok(NULL, "\xEFx", "\xEFx" RS);
    ok(NULL, "\xEF", "\xEF" RS);
    ok(NULL, "\xEF\xBB", "\xEF\xBB" RS);
    ok(NULL, "\xEF,b", "\xEF" US "b" RS);
    ok(NULL, "\xEF\xBB\n", "\xEF\xBB" RS);
    ok(NULL, "\xEF\"", "\xEF\"" RS);
    /* a BOM byte as the delimiter still works after a partial BOM */
    csv_opts_t o = {.delimiter = (char)0xEF};
    ok(&o, "\xEFx", US "x" RS);
    ok(&o,
       "\xEF\xBB\xBF"
       "a\xEF"
       "b",
       "a" US "b" RS);
}

static void quoted_fields(void **state)
{
    (void)state;
    /* "" escapes */
    ok(NULL, "\"a\"\"b\"\n", "a\"b" RS);
    ok(NULL, "\"\"\"\"", "\"" RS);
    ok(NULL, "\"\"\"\"\"\"", "\"\"" RS);
    ok(NULL, "\"a\"\"\",\"\"\"b\"", "a\"" US "\"b" RS);
    /* delimiters and line breaks inside quotes are data, kept as they are */
    ok(NULL, "\"a,b\",c\n", "a,b" US "c" RS);
    ok(NULL, "\"a\nb\",\"c\r\nd\",\"e\rf\"\n", "a\nb" US "c\r\nd" US "e\rf" RS);
    ok(NULL, "\"\n\",\"\r\n\"\r\n", "\n" US "\r\n" RS);
    /* a closing quote then a line end or the end of input */
    ok(NULL, "\"a\"\r\n\"b\"\r\"c\"\n\"d\"", "a" RS "b" RS "c" RS "d" RS);
}

static void bare_quotes(void **state)
{
    (void)state;
    /* a quote inside an unquoted field is data (real exports have them) */
    ok(NULL, "a\"b,c\n", "a\"b" US "c" RS);
    ok(NULL, "a\"\"b\n", "a\"\"b" RS);
    ok(NULL, "ab\",c\"\n", "ab\"" US "c\"" RS);
    ok(NULL, "12\" pipe,x", "12\" pipe" US "x" RS);
    /* a quote after a space does not open a quoted field */
    ok(NULL, " \"a,b\"\n", " \"a" US "b\"" RS);
}

static void empty_fields(void **state)
{
    (void)state;
    ok(NULL, ",,\n", US US RS);
    ok(NULL, "a,,b\n", "a" US US "b" RS);
    ok(NULL, "\"\",\"\"\n", US RS);
    ok(NULL, "\"\"", "" RS);
    /* a trailing delimiter means an empty last field, with or without a line end */
    ok(NULL, "a,b,\n", "a" US "b" US RS);
    ok(NULL, "a,b,\r\n", "a" US "b" US RS);
    ok(NULL, "a,b,", "a" US "b" US RS);
    ok(NULL, "a,\"\"", "a" US RS);
    ok(NULL, ",", US RS);
}

static void nul_bytes(void **state)
{
    (void)state;
    static const char in[] = "a\0b,\"c\0\"\n\0\n";
    size_t n = sizeof(in) - 1;
    ok(NULL, "a\0b,\"c\0\"\n\0\n", "a\0b" US "c\0" RS "\0" RS);
    rows_t r = {0};
    result_t res = parse_as(NULL, in, n, FEED_BYTES, 0, &r);
    assert_ok(res.rc);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[0].n, 2);
    assert_int_equal(r.v[0].len[0], 3);
    assert_memory_equal(r.v[0].f[0], "a\0b\0", 4);
    assert_int_equal(r.v[0].len[1], 2);
    assert_memory_equal(r.v[0].f[1], "c\0\0", 3);
    assert_int_equal(r.v[1].n, 1);
    assert_int_equal(r.v[1].len[0], 1);
    rows_free(&r);
}

static void delimiters(void **state)
{
    (void)state;
    csv_opts_t semi = {.delimiter = ';'};
    ok(&semi, "a;b,c\n\"x;y\";z;\n", "a" US "b,c" RS "x;y" US "z" US RS);
    csv_opts_t tab = {.delimiter = '\t'};
    ok(&tab, "a\tb c,d\n\"x\ty\"\t\t\"\"\"\"\r\n", "a" US "b c,d" RS "x\ty" US US "\"" RS);
    ok(&tab, "a\t\"b\"\tc", "a" US "b" US "c" RS);
    /* junk after a closing quote is judged against the chosen delimiter */
    fails(&tab, "\"a\",b\n", "", KITH_EINVAL, "row 1", "field 1");
    /* zero members are the defaults; a delimiter that cannot work is ',' */
    csv_opts_t zero = {0};
    ok(&zero, "a,b\n", "a" US "b" RS);
    const char bad[] = {'"', '\r', '\n'};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        csv_opts_t o = {.delimiter = bad[i]};
        ok(&o, "a,\"b\"\n", "a" US "b" RS);
    }
}

static void open_quote(void **state)
{
    (void)state;
    fails(NULL, "a\n\"b", "a" RS, KITH_EINVAL, "row 2", "field 1");
    fails(NULL, "a,b\nc,\"d\ne,f\n", "a" US "b" RS, KITH_EINVAL, "row 2", "field 2");
    fails(NULL, "\"", "", KITH_EINVAL, "row 1", "not closed");
    fails(NULL, "\"a\"\"", "", KITH_EINVAL, "row 1", "not closed");
    fails(NULL, "\xEF\xBB\xBF\"", "", KITH_EINVAL, "row 1", "field 1");
}

static void junk_after_quote(void **state)
{
    (void)state;
    fails(NULL, "a,b\nc,\"d\"x\ne,f\n", "a" US "b" RS, KITH_EINVAL, "row 2", "field 2");
    fails(NULL, "\"a\" ,b\n", "", KITH_EINVAL, "row 1", "field 1");
    fails(NULL, "x,y,\"a\"\"b\"c", "", KITH_EINVAL, "row 1", "field 3");
    fails(NULL, "\"a\"\x01", "", KITH_EINVAL, "row 1", "0x01");
    fails(NULL, "\"a\"b", "", KITH_EINVAL, "'b'", NULL);
}

static void limits(void **state)
{
    (void)state;
    csv_opts_t o = {.max_field_bytes = 3, .max_fields = 2};
    ok(&o, "abc,def\n\"ab\"\"\",\"\"\n", "abc" US "def" RS "ab\"" US RS);
    fails(&o, "abc\nabcd\n", "abc" RS, KITH_ELIMIT, "row 2", "field 1");
    fails(&o, "a,\"ab\"\"c\"\n", "", KITH_ELIMIT, "row 1", "field 2");
    fails(&o, "a,\"a\nbc\"\n", "", KITH_ELIMIT, "row 1", "field 2");
    /* the limit counts field bytes after unescaping, and nothing else */
    ok(&o, "\"\"\"\"\"\"\"\"\n", "\"\"\"" RS);
    fails(&o, "a,b\nc,d,e\n", "a" US "b" RS, KITH_ELIMIT, "row 2", "field 3");
    fails(&o, "a,b,", "", KITH_ELIMIT, "row 1", "field 3");
    fails(&o, "a,b,\"\"\n", "", KITH_ELIMIT, "more than 2 fields", NULL);
    /* the defaults: 4096 fields of up to 1 MiB */
    buf_t b = BUF_INIT;
    for (int i = 0; i < 4096; i++)
        buf_adds(&b, i ? ",x" : "x");
    rows_t r = {0};
    result_t res = parse_as(NULL, b.p, b.len, FEED_WHOLE, 0, &r);
    assert_ok(res.rc);
    assert_int_equal(r.v[0].n, 4096);
    rows_free(&r);
    buf_adds(&b, ",x");
    res = parse_as(NULL, b.p, b.len, FEED_WHOLE, 0, &r);
    assert_int_equal(res.rc, KITH_ELIMIT);
    assert_non_null(strstr(res.msg, "field 4097"));
    rows_free(&r);
    buf_reset(&b);
    for (size_t i = 0; i < ((size_t)1 << 20); i++)
        buf_addc(&b, 'x');
    res = parse_as(NULL, b.p, b.len, FEED_WHOLE, 0, &r);
    assert_ok(res.rc);
    assert_int_equal(r.v[0].len[0], (size_t)1 << 20);
    rows_free(&r);
    buf_addc(&b, 'x');
    res = parse_as(NULL, b.p, b.len, FEED_WHOLE, 0, &r);
    assert_int_equal(res.rc, KITH_ELIMIT);
    assert_non_null(strstr(res.msg, "row 1, field 1"));
    rows_free(&r);
    buf_free(&b);
}

static void callback_stops(void **state)
{
    (void)state;
    const char *in = "a\nb\nc\n";
    rows_t r = {.stop_at = 2, .stop_rc = 42};
    csv_parser_t *p = csv_new(on_row, &r, NULL);
    assert_int_equal(csv_feed(p, in, strlen(in)), 42);
    assert_int_equal(csv_rows(p), 2);
    assert_int_equal(r.n, 2);
    /* stopped for good: nothing more is parsed, the same value comes back */
    assert_int_equal(csv_feed(p, "d\n", 2), 42);
    assert_int_equal(csv_finish(p), 42);
    assert_int_equal(r.n, 2);
    csv_free(p);
    rows_free(&r);

    /* the same, byte by byte: the feed that ends row 2 returns 42 */
    r = (rows_t){.stop_at = 2, .stop_rc = 42};
    p = csv_new(on_row, &r, NULL);
    for (size_t i = 0; i < 3; i++)
        assert_ok(csv_feed(p, in + i, 1));
    assert_int_equal(csv_feed(p, in + 3, 1), 42);
    assert_int_equal(csv_rows(p), 2);
    csv_free(p);
    rows_free(&r);

    /* a stop from the last record, delivered by csv_finish; a negative code */
    r = (rows_t){.stop_at = 2, .stop_rc = KITH_EVETO};
    p = csv_new(on_row, &r, NULL);
    assert_ok(csv_feed(p, "a\nb", 3));
    assert_int_equal(csv_rows(p), 1);
    assert_int_equal(csv_finish(p), KITH_EVETO);
    assert_int_equal(csv_rows(p), 2);
    csv_free(p);
    rows_free(&r);

    /* an error is sticky too, and its diagnostic comes back */
    r = (rows_t){0};
    p = csv_new(on_row, &r, NULL);
    assert_int_equal(csv_feed(p, "a\n\"b\"c", 6), KITH_EINVAL);
    err_clear();
    assert_int_equal(csv_feed(p, "\n", 1), KITH_EINVAL);
    assert_int_equal(err_last()->code, KITH_EINVAL);
    assert_non_null(strstr(err_last()->msg, "row 2"));
    assert_int_equal(csv_finish(p), KITH_EINVAL);
    assert_int_equal(csv_rows(p), 1);
    csv_free(p);
    rows_free(&r);
    csv_free(NULL);
}

static void rows_count(void **state)
{
    (void)state;
    rows_t r = {0};
    csv_parser_t *p = csv_new(on_row, &r, NULL);
    assert_int_equal(csv_rows(p), 0);
    assert_ok(csv_feed(p, "a,b\n\n", 5));
    assert_int_equal(csv_rows(p), 1);
    assert_ok(csv_feed(p, "\"c\nd", 4)); /* row 2 still open, in quotes */
    assert_int_equal(csv_rows(p), 1);
    assert_ok(csv_feed(p, "\"\r\n", 3));
    assert_int_equal(csv_rows(p), 2);
    assert_ok(csv_feed(p, "f", 1));
    assert_int_equal(csv_rows(p), 2);
    assert_ok(csv_finish(p));
    assert_int_equal(csv_rows(p), 3);
    char *got = rows_simple(&r, NULL);
    assert_string_equal(got, "a" US "b" RS "c\nd" RS "f" RS);
    free(got);
    csv_free(p);
    rows_free(&r);
}

/* ---- csv-spectrum -------------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_add(&b, chunk, k);
    fclose(f);
    return buf_steal(&b, len);
}

/* $KITH_CORPUS/csv-spectrum, else ../shared/corpus/csv-spectrum beside the
 * repository (found from this file's path: CMake compiles absolute paths). */
static char *spectrum_dir(void)
{
    buf_t b = BUF_INIT;
    const char *env = getenv("KITH_CORPUS");
    if (env && *env) {
        buf_addf(&b, "%s/csv-spectrum", env);
        return buf_steal(&b, NULL);
    }
    const char *file = __FILE__;
    const char *tail = strstr(file, "tests/unit/base/test_csv.c");
    if (tail)
        buf_add(&b, file, (size_t)(tail - file));
    else
        buf_adds(&b, "./"); /* a relative __FILE__: hope we run from the repository */
    buf_adds(&b, "../shared/corpus/csv-spectrum");
    return buf_steal(&b, NULL);
}

typedef struct spectrum_case {
    const char *name;
    const buf_t *whole_dump; /* the records of the one-feed parse */
} spectrum_case_t;

static void check_same_as_whole(void *ctx, const char *label, const result_t *res,
                                const rows_t *rows)
{
    const spectrum_case_t *c = ctx;
    if (res->rc) fail_msg("%s (%s): rc %d: %s", c->name, label, res->rc, res->msg);
    if (rows->dump.len != c->whole_dump->len ||
        memcmp(rows->dump.p, c->whole_dump->p, rows->dump.len) != 0)
        fail_msg("%s (%s): records differ from the one-feed parse", c->name, label);
}

/* The records (after the header) equal the expected JSON objects. */
static void check_spectrum(const char *name, const rows_t *r, json_t *want)
{
    /* upstream quirk (SOURCE.md): location_coordinates.json is one object, not
     * an array, and its phone number is not the CSV's */
    int quirk = strcmp(name, "location_coordinates") == 0;
    json_t *arr = want;
    if (json_is_object(want)) {
        arr = json_array();
        json_array_append(arr, want);
    } else {
        json_incref(arr);
    }
    if (r->n != json_array_size(arr) + 1)
        fail_msg("%s: %zu records, want header + %zu", name, r->n, json_array_size(arr));
    const row_t *head = &r->v[0];
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *obj = json_array_get(arr, i);
        const row_t *rw = &r->v[i + 1];
        if (rw->n != head->n || rw->n != json_object_size(obj))
            fail_msg("%s row %zu: %zu fields, header %zu, JSON %zu", name, i + 2, rw->n, head->n,
                     json_object_size(obj));
        for (size_t j = 0; j < rw->n; j++) {
            if (quirk && strcmp(head->f[j], "Contact Phone Number") == 0) continue;
            json_t *v = json_object_get(obj, head->f[j]);
            if (!json_is_string(v)) fail_msg("%s: no string \"%s\" in the JSON", name, head->f[j]);
            if (json_string_length(v) != rw->len[j] ||
                memcmp(json_string_value(v), rw->f[j], rw->len[j]) != 0) {
                char g[SHOW_MAX], w[SHOW_MAX];
                fail_msg("%s row %zu \"%s\": got %s, want %s", name, i + 2, head->f[j],
                         show(g, rw->f[j], rw->len[j]),
                         show(w, json_string_value(v), json_string_length(v)));
            }
        }
    }
    json_decref(arr);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void spectrum(void **state)
{
    (void)state;
    char *dir = spectrum_dir();
    char *csvs = NULL;
    buf_t path = BUF_INIT;
    buf_addf(&path, "%s/csvs", dir);
    DIR *d = opendir(path.p);
    if (!d) {
        print_message("skipped: no csv-spectrum corpus at %s (set KITH_CORPUS)\n", dir);
        free(dir);
        buf_free(&path);
        skip();
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".csv") != 0) continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrndup(de->d_name, len - 4);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        buf_reset(&path);
        buf_addf(&path, "%s/csvs/%s.csv", dir, names[i]);
        csvs = read_all(path.p, &len);
        if (!csvs) fail_msg("cannot read %s", path.p);
        buf_reset(&path);
        buf_addf(&path, "%s/json/%s.json", dir, names[i]);
        json_error_t jerr;
        json_t *want = json_load_file(path.p, 0, &jerr);
        if (!want) fail_msg("%s: %s", path.p, jerr.text);

        rows_t r = {0};
        result_t res = parse_as(NULL, csvs, len, FEED_WHOLE, 0, &r);
        if (res.rc) fail_msg("%s: rc %d: %s", names[i], res.rc, res.msg);
        check_spectrum(names[i], &r, want);
        spectrum_case_t c = {names[i], &r.dump};
        parse_every_way(NULL, csvs, len, check_same_as_whole, &c);
        rows_free(&r);
        json_decref(want);
        free(csvs);
        free(names[i]);
    }
    print_message("csv-spectrum: %zu cases, each fed whole, byte by byte and split at every "
                  "point\n",
                  n);
    assert_true(n >= 12);
    free(names);
    buf_free(&path);
    free(dir);
}

/* ---- randomized round trip ----------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void gen_field(uint64_t *rng, char delim, buf_t *f)
{
    buf_reset(f);
    uint64_t r = rng_next(rng);
    size_t len = r % 16 == 0 ? (size_t)(r >> 8) % 300 : (size_t)(r >> 8) % 12;
    for (size_t i = 0; i < len; i++) {
        uint64_t x = rng_next(rng);
        char c;
        switch (x % 12) {
        case 0:
        case 1:
            c = '"';
            break;
        case 2:
            c = delim;
            break;
        case 3:
            c = '\r';
            break;
        case 4:
            c = '\n';
            break;
        case 5:
            c = '\0';
            break;
        case 6:
            c = (char)(x >> 8); /* any byte, BOM bytes and high bytes included */
            break;
        default:
            c = (char)('a' + (x >> 8) % 26);
            break;
        }
        buf_addc(f, c);
    }
}

/* RFC 4180 encoding; a field is quoted when it needs it (delimiter, quote,
 * CR, LF; the only field of a record and empty, which would be an empty line;
 * a leading 0xEF, which might make the file start with a BOM) and sometimes
 * when it does not. */
static void encode_field(uint64_t *rng, char delim, const buf_t *f, int alone, buf_t *out)
{
    int quote = (alone && f->len == 0) || (f->len && (unsigned char)f->p[0] == 0xEF) ||
                rng_next(rng) % 8 == 0;
    for (size_t i = 0; i < f->len && !quote; i++)
        quote = f->p[i] == delim || f->p[i] == '"' || f->p[i] == '\r' || f->p[i] == '\n';
    if (!quote) {
        buf_add(out, f->p, f->len);
        return;
    }
    buf_addc(out, '"');
    for (size_t i = 0; i < f->len; i++) {
        if (f->p[i] == '"') buf_addc(out, '"');
        buf_addc(out, f->p[i]);
    }
    buf_addc(out, '"');
}

static void random_round_trip(void **state)
{
    (void)state;
    static const char delims[] = {',', ';', '\t', '|'};
    static const char *const eols[] = {"\n", "\r\n", "\r"};
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    buf_t file = BUF_INIT, want = BUF_INIT, field = BUF_INIT;
    size_t total = 0, files = 0;
    while (total < 5000) {
        char delim = delims[rng_next(&rng) % ARRAY_LEN(delims)];
        size_t nrec = 1 + rng_next(&rng) % 60;
        buf_reset(&file);
        buf_reset(&want);
        if (rng_next(&rng) % 4 == 0) buf_adds(&file, "\xEF\xBB\xBF");
        for (size_t r = 0; r < nrec; r++) {
            size_t nf = 1 + rng_next(&rng) % 8;
            buf_addf(&want, "#%zu:%zu\n", r + 1, nf);
            for (size_t i = 0; i < nf; i++) {
                gen_field(&rng, delim, &field);
                if (i) buf_addc(&file, delim);
                encode_field(&rng, delim, &field, nf == 1, &file);
                buf_addf(&want, "%zu:", field.len);
                buf_add(&want, field.p, field.len);
                buf_addc(&want, '\n');
            }
            /* a line end (the last one may be missing), now and then empty lines */
            if (r + 1 < nrec || rng_next(&rng) % 2) buf_adds(&file, eols[rng_next(&rng) % 3]);
            while (rng_next(&rng) % 10 == 0)
                buf_adds(&file, eols[rng_next(&rng) % 3]);
        }
        csv_opts_t o = {.delimiter = delim};
        rows_t got = {0};
        csv_parser_t *p = csv_new(on_row, &got, &o);
        for (size_t at = 0; at < file.len;) {
            uint64_t x = rng_next(&rng);
            size_t k = x % 5 == 0 ? (size_t)(x >> 8) % 4 : 1 + (size_t)(x >> 8) % 300;
            if (k > file.len - at) k = file.len - at;
            assert_ok(csv_feed(p, file.p + at, k));
            at += k;
        }
        assert_ok(csv_finish(p));
        assert_int_equal(csv_rows(p), nrec);
        if (got.dump.len != want.len || memcmp(got.dump.p, want.p, want.len) != 0)
            fail_msg("file %zu (delimiter 0x%02x): records differ after the round trip", files,
                     (unsigned char)delim);
        csv_free(p);
        rows_free(&got);
        total += nrec;
        files++;
    }
    buf_free(&file);
    buf_free(&want);
    buf_free(&field);
}

static int count_rows_cb(void *ctx, size_t row, const char *const *fields, const size_t *lens,
                         size_t n)
{
    (void)row;
    (void)fields;
    (void)lens;
    (void)n;
    (*(size_t *)ctx)++;
    return 0;
}

/* A record over max_record_bytes is refused even when each field fits. */
static void record_byte_limit(void **state)
{
    (void)state;
    csv_opts_t o = {.max_record_bytes = 100};
    size_t rows = 0;
    csv_parser_t *p = csv_new(count_rows_cb, &rows, &o);
    char line[200];
    memset(line, 'x', sizeof line);
    for (int i = 0; i < 190; i += 10)
        line[i] = ',';
    line[199] = '\n';
    assert_int_equal(csv_feed(p, "a,b\n", 4), 0);
    assert_int_equal(csv_feed(p, line, sizeof line), KITH_ELIMIT);
    assert_non_null(strstr(err_last()->msg, "row 2"));
    csv_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_records),    cmocka_unit_test(line_ends),
        cmocka_unit_test(empty_lines),       cmocka_unit_test(bom),
        cmocka_unit_test(quoted_fields),     cmocka_unit_test(bare_quotes),
        cmocka_unit_test(empty_fields),      cmocka_unit_test(nul_bytes),
        cmocka_unit_test(delimiters),        cmocka_unit_test(open_quote),
        cmocka_unit_test(junk_after_quote),  cmocka_unit_test(limits),
        cmocka_unit_test(callback_stops),    cmocka_unit_test(rows_count),
        cmocka_unit_test(spectrum),          cmocka_unit_test(random_round_trip),
        cmocka_unit_test(record_byte_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
