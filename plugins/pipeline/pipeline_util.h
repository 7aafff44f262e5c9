/*
 * pipeline/pipeline_util: the plain C the pipeline plugin computes with —
 * exact money sums, calendar dates, product keys, query parameters. No Kith
 * headers, so tests can compile it on its own. Every function is pure and
 * may be called from any thread.
 */
#ifndef KITH_PIPELINE_UTIL_H
#define KITH_PIPELINE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PL_MONEY_SCALE 10000 /* money values in units of 1/10,000 (the store keeps 4 places) */
#define PL_MONEY_MAX   40    /* room for any formatted int64 amount and the NUL */
#define PL_ISO_MAX     25    /* "YYYY-MM-DDTHH:MM:SS.mmmZ" and the NUL */
#define PL_DATE_MAX    11    /* "YYYY-MM-DD" and the NUL */

/* A decimal amount ("1054", "-19.9", "0.0001") in units of 1/10,000: 0, or
 * -1 if s is not one (more than 4 places, no digits, overflow). */
int pl_money_parse(const char *s, int64_t *units);

/* units as the shortest exact decimal ("1054", "19.9", "-0.0001") in out
 * (PL_MONEY_MAX bytes). Returns out. */
char *pl_money_format(int64_t units, char out[PL_MONEY_MAX]);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t pl_days_from_civil(int64_t y, unsigned m, unsigned d);

/* "YYYY-MM-DD" (or the date part of an RFC 3339 time, which must then go on
 * with 'T' or 't') as days since 1970-01-01: 0, or -1 if it is not a real date. */
int pl_date_parse(const char *s, int64_t *days);

/* A time in Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (out: PL_ISO_MAX bytes). */
char *pl_iso_from_ms(int64_t ms, char out[PL_ISO_MAX]);

/* The UTC date of a time in Unix ms, "YYYY-MM-DD" (out: PL_DATE_MAX bytes). */
char *pl_date_from_ms(int64_t ms, char out[PL_DATE_MAX]);

/* The key products are matched on: ASCII letters lower-cased, digits and
 * other (non-ASCII) bytes kept, everything else (spaces, dashes, dots, ...)
 * dropped: "GTX Pro", "gtx-pro" and "GTXPro" all give "gtxpro". Returns the
 * key's length, or 0 if nothing is left or it does not fit in cap bytes. */
size_t pl_product_key(const char *in, char *out, size_t cap);

/* Whether a and b are equal ignoring ASCII case. */
int pl_ieq(const char *a, const char *b);

/* The value of parameter name in a raw query string ("a=1&b=x%20y"),
 * percent-decoded ('+' is a space), in out (cap bytes). 1 if found, 0 if
 * not, -1 if it is malformed (a bad escape, a NUL, too long). The first
 * occurrence counts. */
int pl_query_param(const char *query, const char *name, char *out, size_t cap);

/* Whether query names a parameter that is not in allowed (a NULL-terminated
 * list): 1, with the first such name in bad (cut to cap bytes), else 0. */
int pl_query_unknown(const char *query, const char *const *allowed, char *bad, size_t cap);

#endif
