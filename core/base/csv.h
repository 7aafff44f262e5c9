/*
 * base/csv: a streaming RFC 4180 CSV parser.
 *
 * Bytes are fed in chunks of any size (a 500,000-row file never needs to fit
 * in memory); each complete record is passed to a callback. Handles quoted
 * fields with "" escapes and line breaks inside quotes, CRLF / LF / CR line
 * ends, a UTF-8 byte-order mark at the start, and a last record without a line
 * end. Limits: bytes per field and fields per record.
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

typedef struct csv_opts {
    char delimiter;         /* default ',' */
    size_t max_field_bytes; /* default 1 MiB; more is KITH_ELIMIT */
    size_t max_fields;      /* default 4096; more is KITH_ELIMIT */
} csv_opts_t;

/* opts may be NULL for the defaults. Never NULL (aborts on out-of-memory). */
csv_parser_t *csv_new(csv_row_fn fn, void *ctx, const csv_opts_t *opts);

/* Feeds n bytes. Returns 0, the callback's nonzero value, KITH_EINVAL for
 * malformed input (a character other than a delimiter or a line end after a
 * closing quote) or KITH_ELIMIT, with a diagnostic naming the row and field. */
int csv_feed(csv_parser_t *p, const char *data, size_t n);

/* End of input: delivers a last record that had no line end. KITH_EINVAL if
 * a quoted field is still open. */
int csv_finish(csv_parser_t *p);

/* Records delivered so far. */
size_t csv_rows(const csv_parser_t *p);

void csv_free(csv_parser_t *p);

#endif
