/* libFuzzer target for core/base/csv.c. The first three bytes choose how the
 * rest is parsed: byte 0 where to split it into two feeds, byte 1 the
 * delimiter (any byte: '"', CR, LF and NUL exercise the fallback to ','),
 * byte 2 the limits (tiny ones when its top bit is set). The same input is
 * parsed in one feed, in two, and byte by byte; the three runs must agree on
 * every record, the result and csv_rows, or the target aborts. */
#include "base/buf.h"
#include "base/csv.h"
#include "base/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
    buf_t dump; /* every record as "#row:n" then "len:bytes" per field */
    size_t rows;
} sink_t;

static int on_row(void *ctx, size_t row, const char *const *fields, const size_t *lens, size_t n)
{
    sink_t *s = ctx;
    if (row != s->rows + 1 || n == 0) abort();
    s->rows = row;
    buf_addf(&s->dump, "#%zu:%zu\n", row, n);
    for (size_t i = 0; i < n; i++) {
        if (fields[i][lens[i]] != '\0') abort();
        buf_addf(&s->dump, "%zu:", lens[i]);
        buf_add(&s->dump, fields[i], lens[i]);
    }
    return 0;
}

typedef struct run {
    sink_t sink;
    int rc;
    size_t rows;
} run_t;

/* Parses in: chunk > 0 feeds chunks of that size, chunk == 0 two feeds split
 * at split. */
static void run_parse(const csv_opts_t *o, const char *in, size_t n, size_t chunk, size_t split,
                      run_t *r)
{
    memset(r, 0, sizeof(*r));
    csv_parser_t *p = csv_new(on_row, &r->sink, o);
    int rc = 0;
    if (chunk) {
        for (size_t at = 0; at < n && !rc; at += chunk)
            rc = csv_feed(p, in + at, n - at < chunk ? n - at : chunk);
    } else {
        rc = csv_feed(p, in, split);
        if (!rc) rc = csv_feed(p, in + split, n - split);
    }
    if (!rc) rc = csv_finish(p);
    if (rc) {
        /* a stopped parser stays stopped and names the row */
        if (rc != KITH_EINVAL && rc != KITH_ELIMIT) abort();
        if (err_last()->code != rc || !strstr(err_last()->msg, "row ")) abort();
        if (csv_feed(p, "x", 1) != rc || csv_finish(p) != rc) abort();
    }
    r->rc = rc;
    r->rows = csv_rows(p);
    if (r->rows != r->sink.rows) abort();
    csv_free(p);
}

static void same(const run_t *a, const run_t *b)
{
    if (a->rc != b->rc || a->rows != b->rows || a->sink.dump.len != b->sink.dump.len) abort();
    if (a->sink.dump.len && memcmp(a->sink.dump.p, b->sink.dump.p, a->sink.dump.len) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    const char *in = (const char *)data + 3;
    size_t n = size - 3;
    size_t split = (size_t)data[0] * (n + 1) / 256;
    csv_opts_t o = {.delimiter = (char)data[1]};
    if (data[2] & 0x80) {
        o.max_field_bytes = 1 + (data[2] & 7) * 3;
        o.max_fields = 1 + ((data[2] >> 3) & 15);
    }
    run_t whole, two, bytes;
    run_parse(&o, in, n, n ? n : 1, 0, &whole);
    run_parse(&o, in, n, 0, split, &two);
    run_parse(&o, in, n, 1, 0, &bytes);
    same(&whole, &two);
    same(&whole, &bytes);
    buf_free(&whole.sink.dump);
    buf_free(&two.sink.dump);
    buf_free(&bytes.sink.dump);
    return 0;
}
