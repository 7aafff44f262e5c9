#include "base/csv.h"

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

#define CSV_DEFAULT_FIELD_BYTES ((size_t)1 << 20)
#define CSV_DEFAULT_FIELDS      4096

/* Where the parser stands between two bytes. Everything needed to resume is
 * here, so a feed may end anywhere (inside a CRLF, after a quote that may be
 * the first half of "", inside the BOM). */
enum csv_state {
    ST_REC_START,   /* nothing of the next record yet: CR and LF are skipped here */
    ST_FIELD_START, /* after a delimiter: the next field has no byte yet */
    ST_UNQUOTED,    /* inside an unquoted field */
    ST_QUOTED,      /* inside a quoted field */
    ST_QUOTE_SEEN,  /* a quote inside a quoted field: "" escape or the closing one */
};

/* bom counts the bytes of EF BB BF matched at the very start; BOM_DONE once
 * decided either way. */
#define BOM_DONE 3
static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

struct csv_parser {
    csv_row_fn fn;
    void *ctx;
    unsigned char delim;
    size_t max_field_bytes, max_fields, max_record_bytes;
    /* 1 for the bytes that end an unquoted field: the delimiter, CR and LF. A
     * quote is not among them: inside an unquoted field it is data. */
    unsigned char stop[256];

    enum csv_state state;
    int bom;
    size_t rows;

    /* The record being built: every field's bytes followed by a NUL, one after
     * the other in rec; fields are located by offset (rec moves as it grows). */
    buf_t rec;
    size_t field_off; /* where the current field starts in rec */
    size_t nfields;   /* fields completed in the current record */
    size_t cap;       /* capacity of offs, lens and ptrs */
    size_t *offs, *lens;
    const char **ptrs;

    /* Once a call has returned nonzero the parser is stopped: later calls
     * return the same value and bring back the diagnostic. */
    int status;
    err_diag_t *status_diag;
};

static int csv_parse(csv_parser_t *p, const unsigned char *s, const unsigned char *end);
static int csv_field_end(csv_parser_t *p);
static int csv_record_end(csv_parser_t *p);
static int csv_stop(csv_parser_t *p, int rc);

csv_parser_t *csv_new(csv_row_fn fn, void *ctx, const csv_opts_t *opts)
{
    csv_parser_t *p = xcalloc(1, sizeof(*p));
    p->fn = fn;
    p->ctx = ctx;
    p->delim = ',';
    p->max_field_bytes = CSV_DEFAULT_FIELD_BYTES;
    p->max_fields = CSV_DEFAULT_FIELDS;
    if (opts) {
        char d = opts->delimiter;
        if (d != '\0' && d != '"' && d != '\r' && d != '\n') p->delim = (unsigned char)d;
        if (opts->max_field_bytes) p->max_field_bytes = opts->max_field_bytes;
        if (opts->max_fields) p->max_fields = opts->max_fields;
        p->max_record_bytes = opts->max_record_bytes;
    }
    p->stop[p->delim] = 1;
    p->stop['\r'] = 1;
    p->stop['\n'] = 1;
    p->state = ST_REC_START;
    buf_init(&p->rec);
    return p;
}

int csv_feed(csv_parser_t *p, const char *data, size_t n)
{
    if (p->status) return csv_stop(p, p->status);
    const unsigned char *s = (const unsigned char *)data, *end = s + n;
    /* The BOM is matched byte by byte, across feeds; on a mismatch the bytes
     * held back so far are parsed as data, then the rest. */
    while (p->bom < BOM_DONE && s < end) {
        if (*s == bom_bytes[p->bom]) {
            s++;
            if (++p->bom == BOM_DONE) break;
            continue;
        }
        int held = p->bom;
        p->bom = BOM_DONE;
        int rc = csv_parse(p, bom_bytes, bom_bytes + held);
        if (rc) return rc;
    }
    return csv_parse(p, s, end);
}

int csv_finish(csv_parser_t *p)
{
    if (p->status) return csv_stop(p, p->status);
    if (p->bom < BOM_DONE) {
        int held = p->bom;
        p->bom = BOM_DONE;
        int rc = csv_parse(p, bom_bytes, bom_bytes + held);
        if (rc) return rc;
    }
    int rc = 0;
    switch (p->state) {
    case ST_REC_START:
        break;
    case ST_QUOTED:
        rc =
            err_set(KITH_EINVAL, "csv: row %zu, field %zu: quoted field not closed at end of input",
                    p->rows + 1, p->nfields + 1);
        break;
    case ST_FIELD_START: /* "a," at the end: the last field is empty */
    case ST_UNQUOTED:
    case ST_QUOTE_SEEN:
        rc = csv_field_end(p);
        if (!rc) rc = csv_record_end(p);
        break;
    }
    p->state = ST_REC_START;
    return rc ? csv_stop(p, rc) : 0;
}

size_t csv_rows(const csv_parser_t *p)
{
    return p->rows;
}

void csv_free(csv_parser_t *p)
{
    if (!p) return;
    buf_free(&p->rec);
    free(p->offs);
    free(p->lens);
    free(p->ptrs);
    free(p->status_diag);
    free(p);
}

/* ---- the state machine ---------------------------------------------------- */

static int csv_field_add(csv_parser_t *p, const unsigned char *s, size_t n)
{
    size_t have = p->rec.len - p->field_off;
    if (n > p->max_field_bytes - have)
        return err_set(KITH_ELIMIT, "csv: row %zu, field %zu: longer than %zu bytes", p->rows + 1,
                       p->nfields + 1, p->max_field_bytes);
    /* rec holds the record's fields and their NULs: a hostile file must not
     * make one record take max_fields x max_field_bytes of memory */
    if (p->max_record_bytes &&
        (p->rec.len > p->max_record_bytes || n > p->max_record_bytes - p->rec.len))
        return err_set(KITH_ELIMIT, "csv: row %zu: longer than %zu bytes", p->rows + 1,
                       p->max_record_bytes);
    buf_add(&p->rec, s, n);
    return 0;
}

/* Runs bytes [s, end) through the state machine. Scans whole runs of plain
 * bytes (a table lookup per byte in unquoted fields, memchr for the closing
 * quote in quoted ones) and copies each run with one buf_add. */
static int csv_parse(csv_parser_t *p, const unsigned char *s, const unsigned char *end)
{
    const unsigned char *stop = p->stop;
    int rc = 0;
    while (s < end) {
        switch (p->state) {
        case ST_REC_START:
            /* An empty line makes no record, and the LF of a CRLF is the empty
             * "line" after the CR that ended the record: both land here. */
            if (*s == '\r' || *s == '\n') {
                s++;
                break;
            }
            p->state = ST_FIELD_START;
            /* fall through */
        case ST_FIELD_START:
            p->field_off = p->rec.len;
            if (*s == '"') {
                s++;
                p->state = ST_QUOTED;
                break;
            }
            p->state = ST_UNQUOTED;
            /* fall through */
        case ST_UNQUOTED: {
            const unsigned char *run = s;
            while (s < end && !stop[*s])
                s++;
            if (s > run && (rc = csv_field_add(p, run, (size_t)(s - run)))) goto fail;
            if (s == end) break;
            unsigned char c = *s++;
            if ((rc = csv_field_end(p))) goto fail;
            if (c == p->delim) {
                p->state = ST_FIELD_START;
            } else {
                p->state = ST_REC_START;
                if ((rc = csv_record_end(p))) goto fail;
            }
            break;
        }
        case ST_QUOTED: {
            const unsigned char *q = memchr(s, '"', (size_t)(end - s));
            const unsigned char *run_end = q ? q : end;
            if (run_end > s && (rc = csv_field_add(p, s, (size_t)(run_end - s)))) goto fail;
            s = run_end;
            if (q) {
                s++;
                p->state = ST_QUOTE_SEEN;
            }
            break;
        }
        case ST_QUOTE_SEEN: {
            unsigned char c = *s;
            if (c == '"') {
                if ((rc = csv_field_add(p, s, 1))) goto fail;
                s++;
                p->state = ST_QUOTED;
            } else if (c == p->delim) {
                s++;
                if ((rc = csv_field_end(p))) goto fail;
                p->state = ST_FIELD_START;
            } else if (c == '\r' || c == '\n') {
                s++;
                if ((rc = csv_field_end(p))) goto fail;
                p->state = ST_REC_START;
                if ((rc = csv_record_end(p))) goto fail;
            } else {
                char shown[8];
                if (c >= 0x20 && c < 0x7f) {
                    shown[0] = '\'';
                    shown[1] = (char)c;
                    shown[2] = '\'';
                    shown[3] = '\0';
                } else {
                    static const char hex[] = "0123456789abcdef";
                    memcpy(shown, "0x", 2);
                    shown[2] = hex[c >> 4];
                    shown[3] = hex[c & 15];
                    shown[4] = '\0';
                }
                rc = err_set(KITH_EINVAL,
                             "csv: row %zu, field %zu: %s after the closing quote (expected a "
                             "delimiter or a line end)",
                             p->rows + 1, p->nfields + 1, shown);
                goto fail;
            }
            break;
        }
        }
    }
    return 0;
fail:
    return csv_stop(p, rc);
}

/* Closes the current field: NUL-terminates it inside rec and records where it
 * is. */
static int csv_field_end(csv_parser_t *p)
{
    if (p->nfields == p->max_fields)
        return err_set(KITH_ELIMIT, "csv: row %zu, field %zu: more than %zu fields", p->rows + 1,
                       p->nfields + 1, p->max_fields);
    if (p->nfields == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        if (cap > p->max_fields) cap = p->max_fields;
        p->offs = xrealloc(p->offs, cap * sizeof(*p->offs));
        p->lens = xrealloc(p->lens, cap * sizeof(*p->lens));
        p->ptrs = xrealloc(p->ptrs, cap * sizeof(*p->ptrs));
        p->cap = cap;
    }
    p->offs[p->nfields] = p->field_off;
    p->lens[p->nfields] = p->rec.len - p->field_off;
    p->nfields++;
    buf_addc(&p->rec, '\0');
    p->field_off = p->rec.len;
    return 0;
}

/* Hands the record to the callback and empties it (keeping the memory). */
static int csv_record_end(csv_parser_t *p)
{
    size_t n = p->nfields;
    for (size_t i = 0; i < n; i++)
        p->ptrs[i] = p->rec.p + p->offs[i];
    p->rows++;
    int rc = p->fn(p->ctx, p->rows, p->ptrs, p->lens, n);
    buf_reset(&p->rec);
    p->nfields = 0;
    p->field_off = 0;
    return rc;
}

/* Makes rc the parser's sticky result. The first time, saves the diagnostic
 * (ours, or whatever the callback left); later, restores it. */
static int csv_stop(csv_parser_t *p, int rc)
{
    if (!p->status) {
        p->status = rc;
        if (!p->status_diag) p->status_diag = xmalloc(sizeof(*p->status_diag));
        err_save(p->status_diag);
    } else {
        err_restore(p->status_diag);
    }
    return rc;
}
