/*
 * base/csv: a streaming RFC 4180 CSV parser.
 *
 * Bytes are fed in chunks of any size (a 500,000-row file never needs to fit
 * in memory); each complete record is passed to a callback. Handles quoted
 * fields with "" escapes and line breaks inside quotes, CRLF / LF / CR line
 * ends, a UTF-8 byte-order mark at the start, and a last record without a line
 * end. Limits: bytes per field and fields per record.
 *
 * Choices where RFC 4180 is silent or real exports break it:
 * - An empty line (a line end right after another line end, or at the start)
 *   makes no record; a line holding only "" is a record with one empty field.
 *   A line end at the end of input therefore never adds a record.
 * - A quote inside an unquoted field is data (a"b is the 3 bytes a"b).
 * - Line breaks inside quotes are kept as they are (CRLF stays CRLF).
 * - The BOM (EF BB BF) is skipped only as the first 3 bytes of the input.
 * - Row numbers in diagnostics are record numbers (the row the callback would
 *   have seen), fields are numbered from 1.
 * One parser per input; not thread-safe. A parser may be moved between threads
 * between calls (the diagnostic goes to the calling thread).
 */
#ifndef KITH_BASE_CSV_H
#define KITH_BASE_CSV_H

#include <stddef.h>

typedef struct csv_parser csv_parser_t;

/* One record: fields[i] is NUL-terminated (but may contain NUL bytes: use
 * lens[i]); all valid during the call only. row is the record's 1-based number
 * (records, not lines: a quoted field may span lines). Return 0 to go on;
 * anything else stops parsing and is returned by csv_feed / csv_finish. */
typedef int (*csv_row_fn)(void *ctx, size_t row, const char *const *fields, const size_t *lens,
                          size_t n);

/* A zero member means its default. A delimiter of '"', CR or LF cannot work
 * and is taken as ',' (callers passing user input should refuse those first).
 * A record is held in memory whole, so it may grow to about
 * max_fields * max_field_bytes: size both for untrusted input. */
typedef struct csv_opts {
    char delimiter;          /* default ',' */
    size_t max_field_bytes;  /* default 1 MiB; more is KITH_ELIMIT */
    size_t max_fields;       /* default 4096; more is KITH_ELIMIT */
    size_t max_record_bytes; /* all fields of a record together; default: no limit
                                beyond the two above */
} csv_opts_t;

/* opts may be NULL for the defaults. Never NULL (aborts on out-of-memory). */
csv_parser_t *csv_new(csv_row_fn fn, void *ctx, const csv_opts_t *opts);

/* Feeds n bytes. Returns 0, the callback's nonzero value, KITH_EINVAL for
 * malformed input (a character other than a delimiter or a line end after a
 * closing quote) or KITH_ELIMIT, with a diagnostic naming the row and field.
 * Chunk boundaries never change the result. After a nonzero return the parser
 * is stopped: every later csv_feed / csv_finish returns the same value again
 * and restores the diagnostic of that first stop. */
int csv_feed(csv_parser_t *p, const char *data, size_t n);

/* End of input: delivers a last record that had no line end. KITH_EINVAL if
 * a quoted field is still open (the diagnostic names the row and field). */
int csv_finish(csv_parser_t *p);

/* Records delivered so far (passed to the callback, including one whose
 * callback stopped parsing). */
size_t csv_rows(const csv_parser_t *p);

void csv_free(csv_parser_t *p);

#endif
