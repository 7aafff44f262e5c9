/*
 * pipeline/pipeline_util: the plain C the pipeline plugin computes with —
 * exact money sums, product keys, unknown query parameters (dates, times
 * and query values are plugins/common/kp_util). No Kith
 * headers, so tests can compile it on its own. Every function is pure and
 * may be called from any thread.
 */
#ifndef KITH_PIPELINE_UTIL_H
#define KITH_PIPELINE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kp_util.h" /* dates, times, case, query strings */

#define PL_MONEY_SCALE 10000 /* money values in units of 1/10,000 (the store keeps 4 places) */
#define PL_MONEY_MAX   40    /* room for any formatted int64 amount and the NUL */

/* A decimal amount ("1054", "-19.9", "0.0001") in units of 1/10,000: 0, or
 * -1 if s is not one (more than 4 places, no digits, overflow). */
int pl_money_parse(const char *s, int64_t *units);

/* units as the shortest exact decimal ("1054", "19.9", "-0.0001") in out
 * (PL_MONEY_MAX bytes). Returns out. */
char *pl_money_format(int64_t units, char out[PL_MONEY_MAX]);

/* The key products are matched on: ASCII letters lower-cased, digits and
 * other (non-ASCII) bytes kept, everything else (spaces, dashes, dots, ...)
 * dropped: "GTX Pro", "gtx-pro" and "GTXPro" all give "gtxpro". Returns the
 * key's length, or 0 if nothing is left or it does not fit in cap bytes. */
size_t pl_product_key(const char *in, char *out, size_t cap);

/* Whether query names a parameter that is not in allowed (a NULL-terminated
 * list): 1, with the first such name in bad (cut to cap bytes), else 0. */
int pl_query_unknown(const char *query, const char *const *allowed, char *bad, size_t cap);

#endif
